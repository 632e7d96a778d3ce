//! The Twilio adapter of the [`Provider`] port: one `POST …/Messages.json` per message.
//!
//! Requests share one keep-alive connection pool; at most
//! [`TwilioConfig::max_concurrent_requests`] are in flight at once (Twilio caps concurrent API
//! requests per account and answers 429 beyond it), and each has a hard
//! [`TwilioConfig::timeout`] that covers connecting, sending and reading the answer (time spent
//! waiting for a free slot does not count against it).
//!
//! Every outcome is sorted into what the caller should do next (see [`SendError`]):
//!
//! | what happened | outcome |
//! |---|---|
//! | 2xx with a message SID | [`Accepted`] |
//! | 2xx whose body has no SID | [`SendError::Unknown`]: Twilio may have the message |
//! | 429 (with `Retry-After` when given), 408, 5xx | [`SendError::Transient`] |
//! | any other 4xx | [`SendError::Permanent`] with Twilio's error code (21211, 21610, 63016…) |
//! | no connection (refused, DNS, TLS, connect timeout) | [`SendError::Transient`]: nothing was sent |
//! | timeout or dropped connection after connecting | [`SendError::Unknown`] |
//!
//! For a message whose send got no answer, [`Provider::lookup`] reads Twilio's list of
//! messages to the same recipient and tells whether it is there (the rules are in the
//! `lookup` submodule). [`Provider::fetch_status`] reads one Message resource (`GET
//! …/Messages/{Sid}.json`) for a message whose status callbacks never came (the `fetch`
//! submodule). [`MessageHistory`](super::MessageHistory) reads the list of the sender's
//! messages since a time, for polling instead of webhooks (the `poll` submodule). All three
//! read Twilio's Message resource and its pages the same way (the `list` submodule).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::sync::Semaphore;
use tracing::Instrument as _;

use super::{Accepted, Lookup, OutboundMessage, Provider, ProviderStatus, SendError};
use crate::domain::{MessageStatus, PhoneNumber};

mod fetch;
mod list;
mod lookup;
mod poll;

/// The E.164 number of Twilio's shared WhatsApp sandbox sender, which Twilio limits to one
/// message every 3 seconds.
pub const TWILIO_SANDBOX_NUMBER: &str = "+14155238886";

/// The most messages a second Twilio's shared sandbox sender takes: one every 3 seconds
/// (error 63018 beyond it). The sender's ceiling when sending from [`TWILIO_SANDBOX_NUMBER`].
pub const TWILIO_SANDBOX_SEND_RATE: f64 = 1.0 / 3.0;

/// Who a message is sent from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// A WhatsApp-enabled Twilio number, sent as `From=whatsapp:+…`.
    Number(PhoneNumber),
    /// A Messaging Service (`MG…`), sent as `MessagingServiceSid`; Twilio picks the number.
    MessagingService(String),
}

impl Sender {
    /// Whether this is Twilio's shared sandbox number, whose own rate limit (one message per
    /// 3 s, error 63018 beyond it) is far below a production sender's.
    pub fn is_twilio_sandbox(&self) -> bool {
        matches!(self, Sender::Number(number) if number.as_str() == TWILIO_SANDBOX_NUMBER)
    }

    /// The form field that names the sender in a Messages API request.
    fn form_field(&self) -> (&'static str, String) {
        match self {
            Sender::Number(number) => ("From", number.whatsapp_address()),
            Sender::MessagingService(sid) => ("MessagingServiceSid", sid.clone()),
        }
    }
}

/// How to reach Twilio. Build it with [`TwilioConfig::new`] and adjust the public fields.
#[derive(Clone)]
pub struct TwilioConfig {
    /// The account SID (`AC…`), also the Basic-auth user name.
    pub account_sid: String,
    /// The auth token, the Basic-auth password (never printed by `Debug`).
    pub auth_token: String,
    /// Who messages are sent from.
    pub sender: Sender,
    /// The REST API's base URL, without a trailing path ([`TwilioConfig::DEFAULT_API_BASE`];
    /// tests point it at a fake server).
    pub api_base: String,
    /// Where Twilio posts status changes (`{PUBLIC_URL}/twilio/status`), if anywhere.
    pub status_callback: Option<String>,
    /// The longest one request may take, from connecting to reading the answer.
    pub timeout: Duration,
    /// How many requests may be in flight at once; further sends wait for a free slot.
    pub max_concurrent_requests: usize,
    /// Messages per page when the history is read for polling (`PageSize`, 1 to 1,000).
    pub list_page_size: u32,
}

impl TwilioConfig {
    /// Twilio's production REST API.
    pub const DEFAULT_API_BASE: &'static str = "https://api.twilio.com";
    /// Twilio usually answers in well under a second; past this something is wrong.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
    /// Below Twilio's per-account limit of concurrent API requests, above what 400 messages
    /// per second need at a typical latency.
    pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 64;
    /// The largest page Twilio serves: the fewest requests per poll.
    pub const MAX_LIST_PAGE_SIZE: u32 = 1_000;

    /// A configuration with the defaults: production API, no status callback, 15 s timeout,
    /// 64 concurrent requests, pages of 1,000 messages when polling.
    pub fn new(
        account_sid: impl Into<String>,
        auth_token: impl Into<String>,
        sender: Sender,
    ) -> Self {
        Self {
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
            sender,
            api_base: Self::DEFAULT_API_BASE.to_string(),
            status_callback: None,
            timeout: Self::DEFAULT_TIMEOUT,
            max_concurrent_requests: Self::DEFAULT_MAX_CONCURRENT_REQUESTS,
            list_page_size: Self::MAX_LIST_PAGE_SIZE,
        }
    }
}

impl fmt::Debug for TwilioConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioConfig")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .field("sender", &self.sender)
            .field("api_base", &self.api_base)
            .field("status_callback", &self.status_callback)
            .field("timeout", &self.timeout)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("list_page_size", &self.list_page_size)
            .finish()
    }
}

/// Why a [`TwilioProvider`] could not be built from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwilioSetupError {
    /// A required setting is empty.
    #[error("Twilio setting {field} is empty")]
    Missing {
        /// The setting's name in [`TwilioConfig`].
        field: &'static str,
    },
    /// The API base is not an http(s) URL.
    #[error("Twilio API base {value:?} is not an http(s) URL: {reason}")]
    ApiBase {
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `max_concurrent_requests` is 0, which would never send anything.
    #[error("Twilio max_concurrent_requests must be at least 1")]
    NoConcurrency,
    /// `timeout` is zero, which would fail every request.
    #[error("Twilio timeout must be longer than zero")]
    NoTimeout,
    /// `list_page_size` is outside what Twilio serves.
    #[error("Twilio list_page_size must be 1 to 1000, not {0}")]
    ListPageSize(u32),
    /// The HTTP client could not be set up (TLS initialisation).
    #[error("cannot set up the HTTP client for Twilio: {0}")]
    HttpClient(String),
}

/// Sends WhatsApp messages through Twilio's Messages API.
#[derive(Debug)]
pub struct TwilioProvider {
    config: TwilioConfig,
    messages_url: String,
    client: reqwest::Client,
    in_flight: Semaphore,
}

impl TwilioProvider {
    /// Checks the configuration and sets up the connection pool; nothing is sent yet.
    pub fn new(mut config: TwilioConfig) -> Result<Self, TwilioSetupError> {
        config.account_sid = config.account_sid.trim().to_string();
        if config.account_sid.is_empty() {
            return Err(TwilioSetupError::Missing {
                field: "account_sid",
            });
        }
        if config.auth_token.is_empty() {
            return Err(TwilioSetupError::Missing {
                field: "auth_token",
            });
        }
        if config.max_concurrent_requests == 0 {
            return Err(TwilioSetupError::NoConcurrency);
        }
        if config.timeout.is_zero() {
            return Err(TwilioSetupError::NoTimeout);
        }
        if !(1..=TwilioConfig::MAX_LIST_PAGE_SIZE).contains(&config.list_page_size) {
            return Err(TwilioSetupError::ListPageSize(config.list_page_size));
        }
        let base = config.api_base.trim().trim_end_matches('/');
        let parsed = reqwest::Url::parse(base).map_err(|error| TwilioSetupError::ApiBase {
            value: config.api_base.clone(),
            reason: error.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(TwilioSetupError::ApiBase {
                value: config.api_base.clone(),
                reason: format!("scheme {:?} is neither http nor https", parsed.scheme()),
            });
        }
        let messages_url = format!(
            "{base}/2010-04-01/Accounts/{}/Messages.json",
            config.account_sid
        );

        let client = reqwest::Client::builder()
            .user_agent(concat!("messaging-core/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout)
            // Strictly shorter than the whole timeout, so a request that never connected is
            // reported as a connect error (nothing sent: retry) and not as a bare timeout
            // (which means "maybe sent").
            .connect_timeout((config.timeout / 2).min(Duration::from_secs(10)))
            .pool_max_idle_per_host(config.max_concurrent_requests)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()
            .map_err(|error| TwilioSetupError::HttpClient(error.to_string()))?;

        Ok(Self {
            in_flight: Semaphore::new(config.max_concurrent_requests),
            messages_url,
            client,
            config,
        })
    }

    /// The form fields of the Messages API request for `message`, in the order sent.
    fn form(&self, message: &OutboundMessage) -> Result<Vec<(&'static str, String)>, SendError> {
        let mut form = vec![
            ("To", message.to.whatsapp_address()),
            self.config.sender.form_field(),
        ];
        match (&message.content_sid, &message.body) {
            (Some(content_sid), _) => {
                // An approved template is the only thing WhatsApp accepts outside the 24-hour
                // window, so it wins over a free-text body.
                form.push(("ContentSid", content_sid.clone()));
                if let Some(variables) = &message.content_variables {
                    let json =
                        serde_json::to_string(variables).map_err(|error| SendError::Permanent {
                            code: None,
                            message: format!("content variables cannot be encoded: {error}"),
                        })?;
                    form.push(("ContentVariables", json));
                }
            }
            (None, Some(body)) => form.push(("Body", body.clone())),
            (None, None) => {
                return Err(SendError::Permanent {
                    code: None,
                    message: "the message has neither a body nor a content SID".into(),
                });
            }
        }
        if let Some(url) = &self.config.status_callback {
            form.push(("StatusCallback", url.clone()));
        }
        Ok(form)
    }

    async fn post(&self, form: &[(&'static str, String)]) -> Result<Accepted, SendError> {
        let _slot = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| SendError::Transient {
                code: None,
                message: "the Twilio provider is shutting down".into(),
                retry_after: None,
            })?;
        let response = self
            .client
            .post(&self.messages_url)
            .basic_auth(&self.config.account_sid, Some(&self.config.auth_token))
            .header(reqwest::header::ACCEPT, "application/json")
            .form(form)
            .send()
            .await
            .map_err(|error| classify_transport_error(&error))?;

        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_retry_after);
        match response.bytes().await {
            Ok(body) => classify_response(status, retry_after, &body),
            // The status line arrived, so the status still tells what happened, except that a
            // success without its body leaves us without the SID.
            Err(error) if (200..300).contains(&status) => Err(SendError::Unknown {
                message: format!("Twilio answered {status} but the body was lost: {error}"),
            }),
            Err(_) => classify_response(status, retry_after, &[]),
        }
    }
}

#[async_trait]
impl Provider for TwilioProvider {
    fn name(&self) -> &'static str {
        "twilio"
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Accepted, SendError> {
        let span = tracing::debug_span!("twilio_send", message_id = %message.id);
        async {
            let form = self.form(message)?;
            let outcome = self.post(&form).await;
            match &outcome {
                Ok(accepted) => tracing::debug!(provider_sid = %accepted.provider_sid, "accepted"),
                Err(error) => tracing::debug!(%error, "not accepted"),
            }
            outcome
        }
        .instrument(span)
        .await
    }

    async fn lookup(&self, message: &OutboundMessage, since: DateTime<Utc>) -> Lookup {
        let span = tracing::debug_span!("twilio_lookup", message_id = %message.id);
        async {
            let outcome = self.find_sent(message, since).await;
            tracing::debug!(?outcome, "looked up");
            outcome
        }
        .instrument(span)
        .await
    }

    async fn fetch_status(&self, provider_sid: &str) -> Result<Option<ProviderStatus>, SendError> {
        let span = tracing::debug_span!("twilio_fetch", provider_sid);
        async {
            let outcome = self.fetch_message(provider_sid).await;
            tracing::debug!(?outcome, "fetched");
            outcome
        }
        .instrument(span)
        .await
    }
}

/// Twilio's answer to a successful create.
#[derive(Deserialize)]
struct CreatedMessage {
    sid: Option<String>,
    status: Option<String>,
}

/// Twilio's error document (`{"code": 21211, "message": "…", "more_info": "…", "status": 400}`).
#[derive(Deserialize, Default)]
struct TwilioErrorBody {
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    more_info: Option<String>,
}

/// Sorts an HTTP answer from Twilio into the caller's next step.
fn classify_response(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<Accepted, SendError> {
    if (200..300).contains(&status) {
        let created: Option<CreatedMessage> = serde_json::from_slice(body).ok();
        return match created {
            Some(CreatedMessage {
                sid: Some(sid),
                status: reported,
            }) if !sid.trim().is_empty() => Ok(Accepted {
                provider_sid: sid,
                // Twilio answers `queued` or `accepted`; anything we cannot read still means
                // Twilio has the message.
                status: reported
                    .as_deref()
                    .and_then(MessageStatus::from_twilio)
                    .unwrap_or(MessageStatus::Sending),
            }),
            _ => Err(SendError::Unknown {
                message: format!(
                    "Twilio answered {status} without a message SID: {}",
                    snippet(body)
                ),
            }),
        };
    }

    let (code, message) = read_error(status, body);
    match status {
        // 429: too many requests; 408: the request never fully arrived.
        // Rate limits Twilio reports with a code under another status (20429 too many
        // requests; 63018 the sender's WhatsApp rate) are waits, not refusals.
        _ if matches!(code.as_deref(), Some("20429" | "63018")) => Err(SendError::Transient {
            code,
            message,
            retry_after,
        }),
        429 | 408 | 500..=599 => Err(SendError::Transient {
            code: code.or_else(|| Some(status.to_string())),
            message,
            retry_after,
        }),
        _ => Err(SendError::Permanent { code, message }),
    }
}

/// Twilio's error code (when it gave one) and a readable account of a non-2xx answer.
fn read_error(status: u16, body: &[u8]) -> (Option<String>, String) {
    let error: TwilioErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let code = error.code.and_then(|code| match code {
        serde_json::Value::Number(number) => Some(number.to_string()),
        serde_json::Value::String(text) if !text.trim().is_empty() => Some(text),
        _ => None,
    });
    let mut message = match error.message {
        Some(text) => format!("Twilio answered {status}: {text}"),
        None if body.is_empty() => format!("Twilio answered {status}"),
        None => format!("Twilio answered {status}: {}", snippet(body)),
    };
    if let Some(link) = error.more_info {
        message.push_str(&format!(" ({link})"));
    }
    (code, message)
}

/// Sorts a failure to get any HTTP answer: whether the request can have reached Twilio decides
/// between a safe retry and an unknown outcome.
fn classify_transport_error(error: &reqwest::Error) -> SendError {
    let message = error_chain(error);
    if error.is_connect() {
        // No connection (refused, DNS failure, TLS handshake, connect timeout): not a byte of
        // the request was written.
        SendError::Transient {
            code: None,
            message,
            retry_after: None,
        }
    } else if error.is_builder() {
        SendError::Permanent {
            code: None,
            message,
        }
    } else {
        // Timed out or dropped after connecting: Twilio may have created the message.
        SendError::Unknown { message }
    }
}

/// An HTTP client error with all its causes: the full chain names what happened (refused, DNS,
/// certificate, timeout…), which the top error alone rarely does.
fn error_chain(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// `Retry-After` as seconds (what Twilio sends) or as an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// The start of a body, for an error message.
fn snippet(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(body);
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None if text.is_empty() => "(empty body)".into(),
        None => text.into_owned(),
    }
}

#[cfg(test)]
mod tests;
