//! Configuration from the environment (and a `.env` file), as the product's specification
//! lists it. Every value is checked at start-up, with an error naming the variable; the
//! whole is printed without secrets.

use std::fmt;

use anyhow::{Context, bail};
use messaging_core::domain::PhoneNumber;
use messaging_core::provider::TWILIO_SANDBOX_SEND_RATE;
use messaging_core::provider::{Sender, TWILIO_SANDBOX_NUMBER, TwilioConfig};

/// Twilio's WhatsApp default throughput, in messages per second.
const DEFAULT_SEND_RATE: f64 = 80.0;

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
    /// `MAX_BODY_BYTES`: the largest upload accepted (the ingestions); larger ones answer 413
    /// as soon as the limit is passed.
    pub max_body_bytes: u64,
    /// `MAX_JSON_BODY_BYTES`: the largest JSON body of every other operation; larger ones
    /// answer 413 as soon as the limit is passed.
    pub max_json_body_bytes: u64,
    /// `TWILIO_POLL_SECONDS`: when set, statuses and inbound messages are also read from
    /// Twilio's list of messages this often (for a machine Twilio's webhooks cannot reach).
    pub twilio_poll_seconds: Option<u64>,
}

/// The default body limit: 2 GiB, so a 1 GB upload goes through (it is streamed, never held
/// in memory).
const DEFAULT_MAX_BODY_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// The default JSON body limit: 1 MiB, far above any user, template or campaign (a template
/// holds at most 10,000 characters) and small enough that no request ties up much memory.
const DEFAULT_MAX_JSON_BODY_BYTES: u64 = 1024 * 1024;

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
        let max_json_body_bytes = number::<u64>("MAX_JSON_BODY_BYTES", "a whole number of bytes")?
            .unwrap_or(DEFAULT_MAX_JSON_BODY_BYTES);
        if max_body_bytes == 0 || max_json_body_bytes == 0 {
            bail!("MAX_BODY_BYTES and MAX_JSON_BODY_BYTES must be above 0");
        }
        if daily_conversation_limit == Some(0) || frequency_cap == Some(0) {
            bail!("DAILY_CONVERSATION_LIMIT and FREQUENCY_CAP_PER_24H must be above 0 when set");
        }
        let twilio_poll_seconds = poll_seconds(var("TWILIO_POLL_SECONDS").as_deref())?;
        let database_url = var("DATABASE_URL").unwrap_or_else(|| "sqlite://messaging.db".into());
        messaging_core::store::Backend::of(&database_url)
            .map_err(|error| anyhow::anyhow!("DATABASE_URL: {error}"))?;
        let bind = var("BIND").unwrap_or_else(|| DEFAULT_BIND.into());
        check_bind(&bind)?;
        let public_url = match var("PUBLIC_URL") {
            Some(url) => check_public_url(&url)?,
            None => default_public_url(&bind),
        };
        Ok(Self {
            database_url,
            bind,
            public_url,
            twilio,
            validate_signature,
            api_token: var("API_TOKEN"),
            send_rate_per_second,
            daily_conversation_limit,
            frequency_cap,
            send_lease_seconds,
            max_body_bytes,
            max_json_body_bytes,
            twilio_poll_seconds,
        })
    }

    /// Whether Twilio credentials are set (otherwise the sandbox provider is used).
    pub fn twilio_configured(&self) -> bool {
        self.twilio.is_some()
    }
}

/// `TWILIO_POLL_SECONDS`, when set: a whole number of seconds above 0.
fn poll_seconds(value: Option<&str>) -> anyhow::Result<Option<u64>> {
    match value.map(|v| (v, v.parse::<u64>())) {
        None => Ok(None),
        Some((_, Ok(seconds))) if seconds > 0 => Ok(Some(seconds)),
        Some((v, _)) => bail!(
            "TWILIO_POLL_SECONDS={v:?} is not a whole number of seconds above 0 (how often to \
             read Twilio's list of messages, e.g. 15; leave it unset for webhooks only)"
        ),
    }
}

/// Where the server listens unless `BIND` says otherwise.
const DEFAULT_BIND: &str = "127.0.0.1:5000";

/// `BIND` must be `HOST:PORT` (`127.0.0.1:5000`, `0.0.0.0:8080`, `[::1]:5000`, `localhost:5000`).
fn check_bind(bind: &str) -> anyhow::Result<()> {
    let port = bind
        .rsplit_once(':')
        .map(|(host, port)| (host, port.parse::<u16>()));
    match port {
        Some((host, Ok(_))) if !host.is_empty() => Ok(()),
        _ => bail!("BIND={bind:?} is not HOST:PORT (for example 127.0.0.1:5000 or 0.0.0.0:8080)"),
    }
}

/// `http://` + `BIND`, with a wildcard address (`0.0.0.0`, `[::]`) read as this machine.
fn default_public_url(bind: &str) -> String {
    let (host, port) = bind.rsplit_once(':').unwrap_or((bind, "5000"));
    let host = match host {
        "0.0.0.0" | "[::]" | "::" => "127.0.0.1",
        host => host,
    };
    format!("http://{host}:{port}")
}

/// `PUBLIC_URL` must be an `http://` or `https://` URL with a host, and nothing after the
/// path: Twilio signs the URL it calls, which is this one plus the webhook's path.
fn check_public_url(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let host = rest.map(|rest| rest.split('/').next().unwrap_or(""));
    let valid = host.is_some_and(|host| !host.is_empty() && !host.starts_with(':'))
        && !url.contains(|c: char| c.is_whitespace() || c == '?' || c == '#');
    if !valid {
        bail!(
            "PUBLIC_URL={url:?} is not an http(s) URL: give the address Twilio reaches this \
             server at, e.g. https://abc123.ngrok-free.app (no query, no fragment)"
        );
    }
    Ok(url.trim_end_matches('/').to_owned())
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
        writeln!(
            f,
            "DATABASE_URL={}",
            messaging_core::store::redact_url(&self.database_url)
        )?;
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
        writeln!(f, "MAX_JSON_BODY_BYTES={}", self.max_json_body_bytes)?;
        match (self.twilio_poll_seconds, &self.twilio) {
            (None, _) => writeln!(f, "TWILIO_POLL_SECONDS=unset (webhooks only)")?,
            (Some(seconds), Some(_)) => writeln!(f, "TWILIO_POLL_SECONDS={seconds}")?,
            (Some(seconds), None) => writeln!(
                f,
                "TWILIO_POLL_SECONDS={seconds} (unused: the sandbox reports its own statuses)"
            )?,
        }
        write!(f, "API_TOKEN={}", secret(self.api_token.as_deref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_url_follows_bind_unless_given() {
        assert_eq!(
            default_public_url("127.0.0.1:8080"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(default_public_url("0.0.0.0:5001"), "http://127.0.0.1:5001");
        assert_eq!(
            default_public_url("localhost:5000"),
            "http://localhost:5000"
        );
        assert!(check_bind("127.0.0.1").is_err());
        assert!(check_bind(":5000").is_err());
        assert!(check_bind("[::1]:5000").is_ok());
    }

    #[test]
    fn a_public_url_that_is_not_http_is_refused_with_the_variable_name() {
        for bad in [
            "ftp//x",
            "ftp://x",
            "http://",
            "https://:80",
            "example.com",
            "http://a b",
        ] {
            let error = check_public_url(bad).unwrap_err().to_string();
            assert!(error.starts_with("PUBLIC_URL="), "{bad}: {error}");
        }
        assert_eq!(
            check_public_url("https://abc.ngrok-free.app/").unwrap(),
            "https://abc.ngrok-free.app"
        );
        assert_eq!(
            check_public_url("http://10.0.0.5:5000/base").unwrap(),
            "http://10.0.0.5:5000/base"
        );
    }

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
            max_json_body_bytes: 512,
            twilio_poll_seconds: Some(15),
        };
        let text = config.to_string();
        assert!(!text.contains("supersecret"));
        assert!(!text.contains("token-value"));
        assert!(text.contains("AC123"));
        assert!(text.contains("one message every 3 s"), "{text}");
        assert!(text.contains("FREQUENCY_CAP_PER_24H=3"), "{text}");
        assert!(text.contains("MAX_JSON_BODY_BYTES=512"), "{text}");
        assert!(text.contains("TWILIO_POLL_SECONDS=15"), "{text}");
    }

    #[test]
    fn the_poll_interval_is_a_whole_number_of_seconds_above_zero() {
        assert_eq!(poll_seconds(None).unwrap(), None);
        assert_eq!(poll_seconds(Some("15")).unwrap(), Some(15));
        for bad in ["0", "abc", "-5", "1.5"] {
            let error = poll_seconds(Some(bad)).unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("TWILIO_POLL_SECONDS=\"{bad}\"")),
                "{bad}: {error}"
            );
        }
    }
}
