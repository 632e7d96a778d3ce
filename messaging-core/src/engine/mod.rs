//! [`Engine`]: the one way into the core. Front ends hold an `Arc<Engine>` and call its
//! methods; everything behind it (store, clock, parsing, rendering) stays inside the crate.

mod campaigns;
mod catalog;
mod demo;
mod dispatch;
mod events;
mod fanout;
mod inbound;
mod ingestions;
mod people;
mod polling;
mod preview;
mod receipts;
mod replies;
mod runs;
mod stats;
mod supervise;

use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::domain::FieldError;
use crate::ingest::IngestError;
use crate::segment::SegmentError;
use crate::store::{Store, StoreError};
use crate::template::TemplateError;

pub use catalog::{PreviewInput, SegmentPreview, TemplatePreview};
pub use demo::{DEMO_CAMPAIGN, DemoSummary, check_demo_samples};
pub use dispatch::status_checks::StatusCheckReport;
pub use dispatch::{DispatchConfig, Dispatcher, RoundReport};
pub use events::{CampaignSummary, EventOutcome, IdleListener, OpenedRun};
pub use fanout::RunSummary;
pub use inbound::InboundReceipt;
pub use ingestions::{
    EventNameOutcome, EventsIngestion, MAX_LISTED_EVENT_NAMES, TriggeredCampaign,
};
pub use polling::{PollConfig, PollError, PollReport, Poller};
pub use preview::{CampaignPreview, RecipientPreview};
pub use receipts::StatusReceipt;
pub use replies::{MAX_BODY_CHARS, ReplyContent};
pub use stats::{SeriesPoint, SeriesWindow, Stats, TimeSeries};
pub use supervise::Supervision;

/// The messaging engine.
#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    run_retries: Arc<runs::RunRetries>,
    receipts: Arc<receipts::ReceiptQueue>,
    /// This engine among the processes sharing the database: who holds a fan-out's lease.
    instance: Arc<str>,
    /// Runs this engine is fanning out right now.
    fanning: Arc<fanout::Fanning>,
}

/// Why an engine call failed. Front ends map each kind to their own way of saying it (an
/// HTTP status code, a dialog) in one place.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The thing asked for does not exist.
    #[error("{kind} {id} not found")]
    NotFound {
        /// What kind of thing (`user`, `template`…).
        kind: &'static str,
        /// The id or key that was asked for.
        id: String,
    },
    /// The request is well-formed but a field's value is not acceptable.
    #[error("invalid {}", list_fields(.0))]
    Invalid(Vec<FieldError>),
    /// The request conflicts with the current state (launching a running campaign, editing
    /// one that is sending).
    #[error("{0}")]
    Conflict(String),
    /// A template does not compile.
    #[error("invalid template: {0}")]
    Template(#[from] TemplateError),
    /// A segment definition is not valid.
    #[error("invalid segment rule: {0}")]
    Segment(#[from] SegmentError),
    /// An ingestion could not go on.
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn list_fields(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl EngineError {
    /// A single invalid field.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, reason)])
    }

    fn not_found(kind: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            kind,
            id: id.to_string(),
        }
    }
}

impl Engine {
    /// An engine over any store and clock (tests use a fake clock; embedders may bring their
    /// own store).
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        // Where transactions run side by side, a few writers commit groups at once.
        let writers = if store.concurrent_senders() { 4 } else { 1 };
        Self {
            store,
            clock,
            run_retries: Arc::default(),
            receipts: Arc::new(receipts::ReceiptQueue::new(writers)),
            instance: format!("{}-{}", std::process::id(), uuid::Uuid::now_v7()).into(),
            fanning: Arc::default(),
        }
    }

    /// Opens the store a database URL names ([`store::connect`](crate::store::connect): the
    /// adapter follows the URL's scheme) with the system clock, creating and migrating the
    /// database as needed.
    pub async fn open(database_url: &str) -> Result<Self, EngineError> {
        let store = crate::store::connect(database_url).await?;
        Ok(Self::new(store, Arc::new(SystemClock)))
    }

    /// The engine's clock.
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }
}
