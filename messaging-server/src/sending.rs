//! How this server sends: the provider its configuration names (Twilio, or the sandbox when
//! no credentials are set) and the dispatcher's settings.

use std::sync::Arc;

use anyhow::Context;
use messaging_core::Engine;
use messaging_core::engine::DispatchConfig;
use messaging_core::orchestrate::decide::Limits;
use messaging_core::provider::{
    Provider, SandboxConfig, SandboxProvider, TwilioConfig, TwilioProvider,
};
use tokio::sync::mpsc;

use crate::config::Config;

/// Twilio with the configured credentials and sender, its status callbacks pointed at this
/// server; or the sandbox, whose simulated statuses are fed to the engine exactly as the
/// status webhook would.
pub fn provider(config: &Config, engine: &Engine) -> anyhow::Result<Arc<dyn Provider>> {
    match &config.twilio {
        Some(twilio) => {
            let mut settings = TwilioConfig::new(
                twilio.account_sid.clone(),
                twilio.auth_token.clone(),
                twilio.sender.clone(),
            );
            settings.api_base = twilio.api_base.clone();
            settings.status_callback = Some(format!("{}/twilio/status", config.public_url));
            let provider = TwilioProvider::new(settings).context("cannot set up Twilio")?;
            Ok(Arc::new(provider))
        }
        None => {
            let (statuses, received) = mpsc::channel(1_024);
            let engine = engine.clone();
            tokio::spawn(async move { engine.receive_statuses(received).await });
            Ok(Arc::new(SandboxProvider::new(
                SandboxConfig::default(),
                statuses,
            )))
        }
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
        lease: std::time::Duration::from_secs(config.send_lease_seconds),
        ..DispatchConfig::default()
    }
}
