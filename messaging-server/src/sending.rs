//! How this server starts the engine: the provider its configuration names (Twilio, its
//! status callbacks pointed at this server, or the sandbox when no credentials are set), the
//! dispatcher's settings, and polling Twilio when `TWILIO_POLL_SECONDS` is set, handed to the
//! core's one start-up.

use std::time::Duration;

use messaging_core::engine::{DispatchConfig, PollConfig};
use messaging_core::orchestrate::decide::Limits;
use messaging_core::provider::TwilioConfig;
use messaging_core::startup::{ProviderSettings, Startup};

use crate::config::Config;

/// The engine's start-up for this configuration.
pub fn startup(config: &Config) -> Startup {
    let startup = Startup::new(config.database_url.clone(), provider(config))
        .dispatch(dispatch_config(config));
    match config.twilio_poll_seconds {
        Some(seconds) => startup.poll_twilio(PollConfig::every(Duration::from_secs(seconds))),
        None => startup,
    }
}

/// Twilio with the configured credentials and sender, or the sandbox.
fn provider(config: &Config) -> ProviderSettings {
    match &config.twilio {
        Some(twilio) => {
            let mut settings = TwilioConfig::new(
                twilio.account_sid.clone(),
                twilio.auth_token.clone(),
                twilio.sender.clone(),
            );
            settings.api_base = twilio.api_base.clone();
            settings.status_callback = Some(format!("{}/twilio/status", config.public_url));
            ProviderSettings::Twilio(settings)
        }
        None => ProviderSettings::sandbox(),
    }
}

/// The dispatcher's settings from the configuration.
pub fn dispatch_config(config: &Config) -> DispatchConfig {
    DispatchConfig {
        send_rate_per_second: config.send_rate_per_second,
        limits: Limits {
            frequency_cap: config.frequency_cap,
            daily_conversation_limit: config.daily_conversation_limit,
        },
        lease: Duration::from_secs(config.send_lease_seconds),
        label: format!(
            "messaging-server (pid {}, listening on {})",
            std::process::id(),
            config.bind
        ),
        ..DispatchConfig::default()
    }
}
