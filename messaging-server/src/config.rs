//! Configuration from the environment (and a `.env` file), as the product's specification
//! lists it. Printed at start-up without secrets.

use std::fmt;

/// Settings the server reads at start-up.
#[derive(Clone)]
pub struct Config {
    /// `DATABASE_URL`, e.g. `sqlite://messaging.db`.
    pub database_url: String,
    /// `BIND`, the listen address.
    pub bind: String,
    /// `PUBLIC_URL`, how Twilio reaches this server.
    pub public_url: String,
    /// `TWILIO_ACCOUNT_SID`, when Twilio is configured.
    pub twilio_account_sid: Option<String>,
    /// `TWILIO_AUTH_TOKEN` (never printed).
    pub twilio_auth_token: Option<String>,
    /// `TWILIO_WHATSAPP_NUMBER`.
    pub twilio_whatsapp_number: Option<String>,
    /// `API_TOKEN` (never printed).
    pub api_token: Option<String>,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Config {
    /// Reads the environment, falling back to the documented defaults.
    pub fn from_env() -> Self {
        Self {
            database_url: var("DATABASE_URL").unwrap_or_else(|| "sqlite://messaging.db".into()),
            bind: var("BIND").unwrap_or_else(|| "127.0.0.1:5000".into()),
            public_url: var("PUBLIC_URL").unwrap_or_else(|| "http://127.0.0.1:5000".into()),
            twilio_account_sid: var("TWILIO_ACCOUNT_SID"),
            twilio_auth_token: var("TWILIO_AUTH_TOKEN"),
            twilio_whatsapp_number: var("TWILIO_WHATSAPP_NUMBER"),
            api_token: var("API_TOKEN"),
        }
    }

    /// Whether Twilio credentials are set (otherwise the sandbox provider is used).
    pub fn twilio_configured(&self) -> bool {
        self.twilio_account_sid.is_some() && self.twilio_auth_token.is_some()
    }
}

fn secret(value: &Option<String>) -> &'static str {
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
        writeln!(
            f,
            "TWILIO_ACCOUNT_SID={}",
            self.twilio_account_sid
                .as_deref()
                .unwrap_or("unset (sandbox provider)")
        )?;
        writeln!(f, "TWILIO_AUTH_TOKEN={}", secret(&self.twilio_auth_token))?;
        writeln!(
            f,
            "TWILIO_WHATSAPP_NUMBER={}",
            self.twilio_whatsapp_number.as_deref().unwrap_or("unset")
        )?;
        write!(f, "API_TOKEN={}", secret(&self.api_token))
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
            twilio_account_sid: Some("AC123".into()),
            twilio_auth_token: Some("supersecret".into()),
            twilio_whatsapp_number: None,
            api_token: Some("token-value".into()),
        };
        let text = config.to_string();
        assert!(!text.contains("supersecret"));
        assert!(!text.contains("token-value"));
        assert!(text.contains("AC123"));
    }
}
