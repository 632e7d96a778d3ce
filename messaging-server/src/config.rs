//! Configuration from the environment (and a `.env` file), as the product's specification
//! lists it. Every value is checked at start-up, with an error naming the variable; the
//! whole is printed without secrets.

use std::fmt;

use anyhow::{Context, bail};
use messaging_core::domain::PhoneNumber;
use messaging_core::provider::{Sender, TWILIO_SANDBOX_NUMBER, TwilioConfig};

/// Twilio's WhatsApp default throughput, in messages per second.
const DEFAULT_SEND_RATE: f64 = 80.0;

/// Twilio's shared sandbox number takes one message every 3 seconds (error 63018 beyond).
const TWILIO_SANDBOX_SEND_RATE: f64 = 1.0 / 3.0;

/// How to reach Twilio, when credentials are set.
#[derive(Clone)]
pub struct TwilioSettings {
    /// `TWILIO_ACCOUNT_SID`.
    pub account_sid: String,
    /// `TWILIO_AUTH_TOKEN` (never printed).
    pub auth_token: String,
    /// `TWILIO_WHATSAPP_NUMBER` or `TWILIO_MESSAGING_SERVICE_SID`.
    pub sender: Sender,
    /// `TWILIO_API_BASE`.
    pub api_base: String,
}

/// Settings the server reads at start-up.
#[derive(Clone)]
pub struct Config {
    /// `DATABASE_URL`, e.g. `sqlite://messaging.db`.
    pub database_url: String,
    /// `BIND`, the listen address.
    pub bind: String,
    /// `PUBLIC_URL`, how Twilio reaches this server.
    pub public_url: String,
    /// Twilio, when `TWILIO_ACCOUNT_SID` and `TWILIO_AUTH_TOKEN` are set; the sandbox
    /// provider otherwise.
    pub twilio: Option<TwilioSettings>,
    /// `TWILIO_VALIDATE_SIGNATURE`.
    pub validate_signature: bool,
    /// `API_TOKEN` (never printed).
    pub api_token: Option<String>,
    /// `SEND_RATE_PER_SECOND`.
    pub send_rate_per_second: f64,
    /// `DAILY_CONVERSATION_LIMIT`.
    pub daily_conversation_limit: Option<u32>,
    /// `FREQUENCY_CAP_PER_24H`: campaign messages per user per rolling 24 hours.
    pub frequency_cap: Option<u32>,
    /// `SEND_LEASE_SECONDS`: how long a claimed or sending message is reserved for this
    /// process; a send still unanswered after it is looked up at the provider.
    pub send_lease_seconds: u64,
    /// `MAX_BODY_BYTES`: the largest request body accepted (uploads included); larger ones
    /// answer 413.
    pub max_body_bytes: u64,
}

/// The default body limit: 2 GiB, so a 1 GB upload goes through (it is streamed, never held
/// in memory).
const DEFAULT_MAX_BODY_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Longer than any send can take (the Twilio request timeout is 15 s), so a message is never
/// looked up while its request may still be on its way.
const MIN_SEND_LEASE_SECONDS: u64 = 20;

/// The default lease: two minutes.
const DEFAULT_SEND_LEASE_SECONDS: u64 = 120;

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn number<T: std::str::FromStr>(name: &str, what: &str) -> anyhow::Result<Option<T>> {
    var(name)
        .map(|v| {
            v.parse::<T>()
                .ok()
                .with_context(|| format!("{name}={v:?} is not {what}"))
        })
        .transpose()
}

impl Config {
    /// Reads the environment, falling back to the documented defaults.
    pub fn from_env() -> anyhow::Result<Self> {
        let twilio = match (var("TWILIO_ACCOUNT_SID"), var("TWILIO_AUTH_TOKEN")) {
            (Some(account_sid), Some(auth_token)) => Some(TwilioSettings {
                account_sid,
                auth_token,
                sender: sender()?,
                api_base: var("TWILIO_API_BASE")
                    .unwrap_or_else(|| TwilioConfig::DEFAULT_API_BASE.into()),
            }),
            (None, None) => None,
            (Some(_), None) => bail!("TWILIO_ACCOUNT_SID is set but TWILIO_AUTH_TOKEN is not"),
            (None, Some(_)) => bail!("TWILIO_AUTH_TOKEN is set but TWILIO_ACCOUNT_SID is not"),
        };
        let validate_signature = match var("TWILIO_VALIDATE_SIGNATURE").as_deref() {
            None => twilio.is_some(),
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => true,
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => false,
            Some(v) => bail!("TWILIO_VALIDATE_SIGNATURE={v:?} is not true or false"),
        };
        if validate_signature && twilio.is_none() {
            bail!(
                "TWILIO_VALIDATE_SIGNATURE=true needs TWILIO_AUTH_TOKEN (and TWILIO_ACCOUNT_SID) \
                 to check signatures with"
            );
        }
        let sandbox_sender = twilio
            .as_ref()
            .is_some_and(|t| t.sender.is_twilio_sandbox());
        let send_rate_per_second =
            number::<f64>("SEND_RATE_PER_SECOND", "a number")?.unwrap_or(if sandbox_sender {
                TWILIO_SANDBOX_SEND_RATE
            } else {
                DEFAULT_SEND_RATE
            });
        if !(send_rate_per_second.is_finite() && send_rate_per_second > 0.0) {
            bail!("SEND_RATE_PER_SECOND must be a number above 0, not {send_rate_per_second}");
        }
        let positive = "a whole number above 0";
        let daily_conversation_limit = number::<u32>("DAILY_CONVERSATION_LIMIT", positive)?;
        let frequency_cap = number::<u32>("FREQUENCY_CAP_PER_24H", positive)?;
        let send_lease_seconds = number::<u64>("SEND_LEASE_SECONDS", "a whole number of seconds")?
            .unwrap_or(DEFAULT_SEND_LEASE_SECONDS);
        if send_lease_seconds < MIN_SEND_LEASE_SECONDS {
            bail!(
                "SEND_LEASE_SECONDS must be at least {MIN_SEND_LEASE_SECONDS} (longer than a send \
                 can take), not {send_lease_seconds}"
            );
        }
        let max_body_bytes = number::<u64>("MAX_BODY_BYTES", "a whole number of bytes")?
            .unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if daily_conversation_limit == Some(0) || frequency_cap == Some(0) {
            bail!("DAILY_CONVERSATION_LIMIT and FREQUENCY_CAP_PER_24H must be above 0 when set");
        }
        Ok(Self {
            database_url: var("DATABASE_URL").unwrap_or_else(|| "sqlite://messaging.db".into()),
            bind: var("BIND").unwrap_or_else(|| "127.0.0.1:5000".into()),
            public_url: var("PUBLIC_URL")
                .unwrap_or_else(|| "http://127.0.0.1:5000".into())
                .trim_end_matches('/')
                .to_owned(),
            twilio,
            validate_signature,
            api_token: var("API_TOKEN"),
            send_rate_per_second,
            daily_conversation_limit,
            frequency_cap,
            send_lease_seconds,
            max_body_bytes,
        })
    }

    /// Whether Twilio credentials are set (otherwise the sandbox provider is used).
    pub fn twilio_configured(&self) -> bool {
        self.twilio.is_some()
    }
}

/// The sender: a Messaging Service when its SID is set, else the WhatsApp number.
fn sender() -> anyhow::Result<Sender> {
    if let Some(service) = var("TWILIO_MESSAGING_SERVICE_SID") {
        if !service.starts_with("MG") {
            bail!("TWILIO_MESSAGING_SERVICE_SID={service:?} does not start with MG");
        }
        return Ok(Sender::MessagingService(service));
    }
    let number = var("TWILIO_WHATSAPP_NUMBER").context(
        "TWILIO_WHATSAPP_NUMBER (e.g. whatsapp:+14155238886) or TWILIO_MESSAGING_SERVICE_SID \
         is required when Twilio credentials are set",
    )?;
    let phone = PhoneNumber::parse(&number)
        .map_err(|e| anyhow::anyhow!("TWILIO_WHATSAPP_NUMBER={number:?}: {e}"))?;
    Ok(Sender::Number(phone))
}

fn secret(value: Option<&str>) -> &'static str {
    if value.is_some() {
        "set (hidden)"
    } else {
        "unset"
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "DATABASE_URL={}", self.database_url)?;
        writeln!(f, "BIND={}", self.bind)?;
        writeln!(f, "PUBLIC_URL={}", self.public_url)?;
        match &self.twilio {
            None => writeln!(f, "TWILIO_ACCOUNT_SID=unset (sandbox provider)")?,
            Some(twilio) => {
                writeln!(f, "TWILIO_ACCOUNT_SID={}", twilio.account_sid)?;
                writeln!(f, "TWILIO_AUTH_TOKEN={}", secret(Some(&twilio.auth_token)))?;
                match &twilio.sender {
                    Sender::Number(number) => {
                        let note = if number.as_str() == TWILIO_SANDBOX_NUMBER {
                            " (Twilio's sandbox: one message every 3 s)"
                        } else {
                            ""
                        };
                        writeln!(f, "TWILIO_WHATSAPP_NUMBER=whatsapp:{number}{note}")?
                    }
                    Sender::MessagingService(sid) => {
                        writeln!(f, "TWILIO_MESSAGING_SERVICE_SID={sid}")?
                    }
                }
                writeln!(f, "TWILIO_API_BASE={}", twilio.api_base)?;
            }
        }
        writeln!(f, "TWILIO_VALIDATE_SIGNATURE={}", self.validate_signature)?;
        writeln!(f, "SEND_RATE_PER_SECOND={}", self.send_rate_per_second)?;
        let or_unset = |v: Option<u32>| v.map_or("unset".to_owned(), |v| v.to_string());
        writeln!(
            f,
            "DAILY_CONVERSATION_LIMIT={}",
            or_unset(self.daily_conversation_limit)
        )?;
        writeln!(f, "FREQUENCY_CAP_PER_24H={}", or_unset(self.frequency_cap))?;
        writeln!(f, "SEND_LEASE_SECONDS={}", self.send_lease_seconds)?;
        writeln!(f, "MAX_BODY_BYTES={}", self.max_body_bytes)?;
        write!(f, "API_TOKEN={}", secret(self.api_token.as_deref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_hides_secrets() {
        let config = Config {
            database_url: "sqlite://x.db".into(),
            bind: "127.0.0.1:5000".into(),
            public_url: "http://127.0.0.1:5000".into(),
            twilio: Some(TwilioSettings {
                account_sid: "AC123".into(),
                auth_token: "supersecret".into(),
                sender: Sender::Number(PhoneNumber::parse(TWILIO_SANDBOX_NUMBER).unwrap()),
                api_base: "https://api.twilio.com".into(),
            }),
            validate_signature: true,
            api_token: Some("token-value".into()),
            send_rate_per_second: TWILIO_SANDBOX_SEND_RATE,
            daily_conversation_limit: None,
            frequency_cap: Some(3),
            send_lease_seconds: 120,
            max_body_bytes: 1024,
        };
        let text = config.to_string();
        assert!(!text.contains("supersecret"));
        assert!(!text.contains("token-value"));
        assert!(text.contains("AC123"));
        assert!(text.contains("one message every 3 s"), "{text}");
        assert!(text.contains("FREQUENCY_CAP_PER_24H=3"), "{text}");
    }
}
