//! `fake_twilio`: runs the fake Twilio Messaging API until Ctrl-C, and prints how to point
//! the platform at it.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;
use fake_twilio::{
    Behaviour, CallbackPlan, DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FailureStatus, FakeConfig,
    FakeTwilio, Faults, default_permanent_errors,
};

/// A fake of Twilio's Programmable Messaging API for tests, load tests and demos.
///
/// Every option can also be set with its environment variable. While it runs, the control
/// API under /_fake/ (messages, callbacks, inbound, stats, config, reset) reads and changes
/// it.
#[derive(Debug, Parser)]
#[command(name = "fake_twilio", version)]
struct Options {
    /// Address to listen on.
    #[arg(long, env = "FAKE_TWILIO_BIND", default_value = "127.0.0.1:4010")]
    bind: SocketAddr,
    /// Account SID to accept (Basic-auth user and path segment).
    #[arg(long, env = "TWILIO_ACCOUNT_SID", default_value = DEFAULT_ACCOUNT_SID)]
    account_sid: String,
    /// Auth token to accept and to sign status callbacks with.
    #[arg(long, env = "TWILIO_AUTH_TOKEN", default_value = DEFAULT_AUTH_TOKEN)]
    auth_token: String,
    /// Fixed delay before each answer, in milliseconds.
    #[arg(long, env = "FAKE_TWILIO_LATENCY_MS", default_value_t = 0)]
    latency_ms: u64,
    /// Extra random delay, up to this many milliseconds.
    #[arg(long, env = "FAKE_TWILIO_JITTER_MS", default_value_t = 0)]
    jitter_ms: u64,
    /// Share of requests answered 429 (0 to 1).
    #[arg(long, env = "FAKE_TWILIO_RATE_LIMITED_SHARE", default_value_t = 0.0)]
    rate_limited_share: f64,
    /// Share of requests answered 500 or 503 (0 to 1).
    #[arg(long, env = "FAKE_TWILIO_SERVER_ERROR_SHARE", default_value_t = 0.0)]
    server_error_share: f64,
    /// Share of requests whose connection is closed without an answer (0 to 1).
    #[arg(
        long,
        env = "FAKE_TWILIO_DROPPED_CONNECTION_SHARE",
        default_value_t = 0.0
    )]
    dropped_connection_share: f64,
    /// Drop those connections before accepting the message (default: after, so the message
    /// is sent but the client never hears of it).
    #[arg(long, env = "FAKE_TWILIO_DROP_BEFORE_ACCEPT")]
    drop_before_accept: bool,
    /// Share of list requests (GET .../Messages.json) answered 500 or 503 (0 to 1).
    #[arg(
        long,
        env = "FAKE_TWILIO_LIST_SERVER_ERROR_SHARE",
        default_value_t = 0.0
    )]
    list_server_error_share: f64,
    /// A recipient that always fails, as NUMBER=CODE (e.g. +15005550002=21610); repeat for
    /// more. Replaces the defaults +15005550001=21211, +15005550002=21610, +15005550003=63016.
    #[arg(long = "permanent-error", value_name = "NUMBER=CODE", value_parser = parse_permanent_error)]
    permanent_errors: Vec<(String, u32)>,
    /// Delay before each status callback (sent, delivered, ...), in milliseconds.
    #[arg(long, env = "FAKE_TWILIO_CALLBACK_DELAY_MS", default_value_t = 500)]
    callback_delay_ms: u64,
    /// Also report `read` after `delivered`.
    #[arg(long, env = "FAKE_TWILIO_SEND_READ")]
    send_read: bool,
    /// Share of accepted messages that end in failure with ErrorCode 30008 (0 to 1).
    #[arg(long, env = "FAKE_TWILIO_FAILED_SHARE", default_value_t = 0.0)]
    failed_share: f64,
    /// How those messages end: `undelivered` (after `sent`) or `failed`.
    #[arg(long, env = "FAKE_TWILIO_FAILURE_STATUS", default_value = "undelivered", value_parser = parse_failure_status)]
    failure_status: FailureStatus,
    /// Sender reported for messages sent through a Messaging Service.
    #[arg(
        long,
        env = "TWILIO_WHATSAPP_NUMBER",
        default_value = "whatsapp:+14155238886"
    )]
    service_sender: String,
}

fn parse_permanent_error(text: &str) -> Result<(String, u32), String> {
    let (number, code) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NUMBER=CODE, got `{text}`"))?;
    let code = code
        .trim()
        .parse()
        .map_err(|_| format!("`{code}` is not an error code"))?;
    let number = number.trim().trim_start_matches("whatsapp:");
    Ok((number.to_owned(), code))
}

fn parse_failure_status(text: &str) -> Result<FailureStatus, String> {
    match text {
        "undelivered" => Ok(FailureStatus::Undelivered),
        "failed" => Ok(FailureStatus::Failed),
        other => Err(format!("expected `undelivered` or `failed`, got `{other}`")),
    }
}

impl Options {
    fn into_config(self) -> FakeConfig {
        let permanent_errors = if self.permanent_errors.is_empty() {
            default_permanent_errors()
        } else {
            self.permanent_errors
                .into_iter()
                .collect::<BTreeMap<_, _>>()
        };
        FakeConfig {
            bind: self.bind,
            account_sid: self.account_sid,
            auth_token: self.auth_token,
            service_sender: self.service_sender,
            behaviour: Behaviour {
                faults: Faults {
                    latency_ms: self.latency_ms,
                    jitter_ms: self.jitter_ms,
                    rate_limited_share: self.rate_limited_share,
                    server_error_share: self.server_error_share,
                    dropped_connection_share: self.dropped_connection_share,
                    drop_after_accept: !self.drop_before_accept,
                    permanent_errors,
                    list_server_error_share: self.list_server_error_share,
                    ..Faults::default()
                },
                callbacks: CallbackPlan {
                    delay_ms: self.callback_delay_ms,
                    send_read: self.send_read,
                    failed_share: self.failed_share,
                    failure_status: self.failure_status,
                    ..CallbackPlan::default()
                },
            },
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr, so stdout carries only the lines meant for the user.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "fake_twilio=info,poem=warn".into()),
        )
        .init();
    let config = Options::parse().into_config();
    let twilio = FakeTwilio::start(config)
        .await
        .context("cannot start the fake Twilio")?;

    let base = twilio.base_url();
    println!("Fake Twilio listening on {base}");
    println!();
    println!("Point the platform at it:");
    println!("  TWILIO_API_BASE={base}");
    println!("  TWILIO_ACCOUNT_SID={}", twilio.account_sid());
    if twilio.auth_token() == DEFAULT_AUTH_TOKEN {
        println!("  TWILIO_AUTH_TOKEN={DEFAULT_AUTH_TOKEN}");
    } else {
        // A token given by the user may be a real one: keep it off the screen.
        println!("  TWILIO_AUTH_TOKEN=(the token given with --auth-token)");
    }
    println!();
    println!("Accepted messages: {base}/_fake/messages   (also /_fake/stats, /_fake/config)");
    println!("Ctrl-C stops it.");

    tokio::signal::ctrl_c()
        .await
        .context("cannot listen for Ctrl-C")?;
    let counters = twilio.counters();
    twilio.shutdown().await;
    println!(
        "Stopped after {} requests, {} messages accepted.",
        counters.requests, counters.accepted
    );
    Ok(())
}
