//! What the dashboard and the settings page read beside the statistics: the time series of
//! sends, deliveries and failures (`stats/timeseries`), and the server's settings as an
//! operator needs them (`settings`: provider, sender, webhook URLs, limits), secrets never
//! included.

use messaging_core::Engine;
use messaging_core::engine::{SeriesWindow, TimeSeries};
use messaging_core::provider::Sender;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};

use super::ApiTags;
use super::error::ApiError;
use super::timestamp::Timestamp;
use crate::config::Config;

/// The span of a time series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum Window {
    /// The last hour, per minute.
    Hour,
    /// The last 24 hours, per 15 minutes.
    Day,
    /// The last 7 days, per 2 hours.
    Week,
}

impl From<Window> for SeriesWindow {
    fn from(window: Window) -> Self {
        match window {
            Window::Hour => SeriesWindow::Hour,
            Window::Day => SeriesWindow::Day,
            Window::Week => SeriesWindow::Week,
        }
    }
}

/// Status changes within one bucket of time.
#[derive(Debug, Clone, Object)]
pub struct SeriesPointBody {
    /// The bucket's start.
    pub start: Timestamp,
    /// Messages handed to the provider (`sent`).
    pub sent: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Messages read.
    pub read: u64,
    /// Messages failed or undelivered.
    pub failed: u64,
}

/// Sends, deliveries, reads and failures over a window, oldest bucket first.
#[derive(Debug, Clone, Object)]
pub struct TimeSeriesBody {
    /// The window asked for.
    pub window: Window,
    /// The length of one bucket in seconds.
    pub bucket_seconds: i64,
    /// One point per bucket, every bucket listed (zeros when nothing happened).
    pub points: Vec<SeriesPointBody>,
}

impl TimeSeriesBody {
    fn new(window: Window, series: TimeSeries) -> Self {
        Self {
            window,
            bucket_seconds: series.bucket_seconds,
            points: series
                .points
                .into_iter()
                .map(|p| SeriesPointBody {
                    start: p.start.into(),
                    sent: p.sent,
                    delivered: p.delivered,
                    read: p.read,
                    failed: p.failed,
                })
                .collect(),
        }
    }
}

/// The URLs to paste into the Twilio console.
#[derive(Debug, Clone, Object)]
pub struct WebhookUrls {
    /// "When a message comes in": `PUBLIC_URL` + `/twilio/inbound`.
    pub inbound: String,
    /// "Status callback URL": `PUBLIC_URL` + `/twilio/status` (sent with every message too).
    pub status: String,
}

/// How this server is configured, without any secret.
#[derive(Debug, Clone, Object)]
pub struct SettingsBody {
    /// `sandbox` (the built-in provider: no network, simulated statuses) or `twilio`.
    pub provider: String,
    /// The sender: `whatsapp:+…` or a Messaging Service SID (`MG…`); null on the sandbox.
    pub sender: Option<String>,
    /// Whether the sender is Twilio's shared sandbox number (one message every 3 s).
    pub twilio_sandbox_sender: bool,
    /// `TWILIO_API_BASE`; null on the sandbox.
    pub twilio_api_base: Option<String>,
    /// `PUBLIC_URL`: how Twilio reaches this server.
    pub public_url: String,
    /// The webhook URLs built from `PUBLIC_URL`.
    pub webhooks: WebhookUrls,
    /// Whether `X-Twilio-Signature` is checked on the webhooks.
    pub validate_signature: bool,
    /// Whether `/api/v1` requires `API_TOKEN` as a bearer token.
    pub api_token_required: bool,
    /// `sqlite` or `postgres` (the URL itself is not shown: it may hold a password).
    pub database: String,
    /// `SEND_RATE_PER_SECOND`: the ceiling for all sends of this sender.
    pub send_rate_per_second: f64,
    /// `DAILY_CONVERSATION_LIMIT`: Meta's messaging-limit tier; null for no limit.
    pub daily_conversation_limit: Option<u32>,
    /// `FREQUENCY_CAP_PER_24H`: campaign messages per user per rolling 24 hours.
    pub frequency_cap_per_24h: Option<u32>,
    /// `SEND_LEASE_SECONDS`.
    pub send_lease_seconds: u64,
    /// `MAX_BODY_BYTES`: the largest upload.
    pub max_body_bytes: u64,
    /// `MAX_JSON_BODY_BYTES`: the largest JSON body.
    pub max_json_body_bytes: u64,
    /// `TWILIO_POLL_SECONDS`: how often statuses and inbound messages are read from Twilio's
    /// list of messages (for a server Twilio's webhooks cannot reach); null when they come by
    /// webhook only, and always on the sandbox.
    pub twilio_poll_seconds: Option<u64>,
    /// The server's version.
    pub version: String,
}

impl From<&Config> for SettingsBody {
    fn from(config: &Config) -> Self {
        let twilio = config.twilio.as_ref();
        let database = if config.database_url.starts_with("postgres") {
            "postgres"
        } else {
            "sqlite"
        };
        Self {
            provider: if twilio.is_some() {
                "twilio"
            } else {
                "sandbox"
            }
            .to_owned(),
            sender: twilio.map(|t| match &t.sender {
                Sender::Number(number) => format!("whatsapp:{number}"),
                Sender::MessagingService(sid) => sid.clone(),
            }),
            twilio_sandbox_sender: twilio.is_some_and(|t| t.sender.is_twilio_sandbox()),
            twilio_api_base: twilio.map(|t| t.api_base.clone()),
            public_url: config.public_url.clone(),
            webhooks: WebhookUrls {
                inbound: format!("{}/twilio/inbound", config.public_url),
                status: format!("{}/twilio/status", config.public_url),
            },
            validate_signature: config.validate_signature,
            api_token_required: config.api_token.is_some(),
            database: database.to_owned(),
            send_rate_per_second: config.send_rate_per_second,
            daily_conversation_limit: config.daily_conversation_limit,
            frequency_cap_per_24h: config.frequency_cap,
            send_lease_seconds: config.send_lease_seconds,
            max_body_bytes: config.max_body_bytes,
            max_json_body_bytes: config.max_json_body_bytes,
            twilio_poll_seconds: twilio.and(config.twilio_poll_seconds),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// The time series and the settings.
pub struct OverviewApi {
    engine: Engine,
    settings: SettingsBody,
}

impl OverviewApi {
    pub fn new(engine: Engine, config: &Config) -> Self {
        Self {
            engine,
            settings: config.into(),
        }
    }
}

#[OpenApi]
impl OverviewApi {
    /// Sends, deliveries and failures over time
    ///
    /// Status changes of every message over the last hour (per minute), day (per 15 minutes)
    /// or week (per 2 hours), from the messages' status history: a message sent then
    /// delivered counts in `sent` and in `delivered`, each at the time of its change.
    #[oai(
        path = "/stats/timeseries",
        method = "get",
        operation_id = "stats_timeseries",
        tag = "ApiTags::Stats"
    )]
    async fn time_series(
        &self,
        /// `hour`, `day` (the default) or `week`.
        window: Query<Option<Window>>,
    ) -> Result<Json<TimeSeriesBody>, ApiError> {
        let window = window.0.unwrap_or(Window::Day);
        let series = self.engine.time_series(window.into()).await?;
        Ok(Json(TimeSeriesBody::new(window, series)))
    }

    /// The server's settings
    ///
    /// The provider, the sender, the webhook URLs to paste into the Twilio console, whether
    /// signatures are checked, and the send rate and limits. Secrets (the auth token, the
    /// API token, the database URL) are never included.
    #[oai(
        path = "/settings",
        method = "get",
        operation_id = "settings",
        tag = "ApiTags::Settings"
    )]
    async fn settings(&self) -> Json<SettingsBody> {
        Json(self.settings.clone())
    }
}
