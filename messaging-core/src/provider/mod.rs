//! The [`Provider`] port: how a message leaves the platform. Adapters: Twilio's Messages API
//! over HTTP ([`twilio`]), and the sandbox ([`sandbox`]), which sends nothing and reports
//! simulated statuses back through the same path as Twilio's status webhooks. [`signature`]
//! checks that a webhook really came from Twilio.
//!
//! Besides sending, a provider may answer two questions about messages it took: whether a
//! send whose answer was lost reached it ([`Provider::lookup`]), and where a message is now
//! ([`Provider::fetch_status`]), for messages whose status callbacks never arrived.
//!
//! A provider that keeps a history of the sender's messages (Twilio's list of messages) may
//! also implement [`MessageHistory`]: what was sent and received since a time, for a machine
//! its webhooks cannot reach, which then learns statuses and inbound messages by polling.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{MessageId, MessageStatus, PhoneNumber};

pub mod sandbox;
pub mod signature;
pub mod twilio;

pub use sandbox::{SANDBOX_ACCOUNT_SID, SANDBOX_FROM, SandboxConfig, SandboxProvider};
pub use signature::{is_valid_twilio_signature, twilio_signature};
pub use twilio::{
    Sender, TWILIO_SANDBOX_NUMBER, TWILIO_SANDBOX_SEND_RATE, TwilioConfig, TwilioProvider,
    TwilioSetupError,
};

/// One message, ready for the provider.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundMessage {
    /// Our id of the message (used for idempotency and logs).
    pub id: MessageId,
    /// The recipient.
    pub to: PhoneNumber,
    /// Free text (inside WhatsApp's 24-hour window).
    pub body: Option<String>,
    /// An approved template's Content SID (`HX…`), used outside the window.
    pub content_sid: Option<String>,
    /// The approved template's variables, rendered (`{"1": "Amaya"}`).
    pub content_variables: Option<BTreeMap<String, String>>,
}

/// The provider accepted the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The provider's id for it (Twilio's `MessageSid`, `SM…`).
    pub provider_sid: String,
    /// The status the provider reported at once (Twilio answers `queued` or `accepted`, which
    /// is our `sending`).
    pub status: MessageStatus,
}

/// Why a send did not succeed, sorted by what the caller should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The provider refused the message for good (Twilio 21211 invalid number, 21610
    /// unsubscribed recipient, 63016 outside the 24-hour window…): do not retry.
    #[error("refused by the provider (code {code:?}): {message}")]
    Permanent {
        /// The provider's error code, when it gave one.
        code: Option<String>,
        /// The provider's explanation.
        message: String,
    },
    /// The message was not taken (rate limited, provider error, connection refused): retry
    /// later, after `retry_after` when the provider said.
    #[error("temporarily refused (code {code:?}): {message}")]
    Transient {
        /// The provider's error code or HTTP status, when known.
        code: Option<String>,
        /// What happened.
        message: String,
        /// How long the provider asked us to wait.
        retry_after: Option<Duration>,
    },
    /// The request may have reached the provider but no answer came back (the connection
    /// died, the request timed out): the message may or may not have been sent.
    #[error("outcome unknown: {message}")]
    Unknown {
        /// What happened.
        message: String,
    },
}

/// What a provider knows about a message whose send got no answer (see
/// [`Provider::lookup`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The provider has it: it was sent, under this SID and status.
    Found(Accepted),
    /// The provider has no such message: it was never taken, and sending it is safe.
    NotFound,
    /// The provider could not tell (or cannot look messages up): why.
    Unknown(String),
}

/// A status report from a provider, in Twilio's status-callback form fields (`MessageSid`,
/// `MessageStatus`, `ErrorCode`…). The sandbox produces these too, so simulated statuses take
/// exactly the path of real webhooks.
pub type StatusFields = BTreeMap<String, String>;

/// A message's current status as the provider answers when asked (see
/// [`Provider::fetch_status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderStatus {
    /// The status in the fields of Twilio's status callback (`MessageSid`, `MessageStatus`,
    /// `ErrorCode`…, plus what else the provider said, such as `DateUpdated`), so that it takes
    /// the webhook's path and is kept as the receipt's raw fields.
    pub fields: StatusFields,
}

/// Which way a message in a provider's history went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The sender sent it: what is reported is its status.
    Sent,
    /// A user sent it to the sender.
    Received,
}

/// One message of a provider's history (see [`MessageHistory::messages_since`]), in the
/// fields of the webhook that would have brought the same news, so that it takes that
/// webhook's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedMessage {
    /// Which way it went: [`Direction::Sent`] carries a status callback's fields
    /// (`MessageSid`, `MessageStatus`, `ErrorCode`…), [`Direction::Received`] the inbound
    /// webhook's (`MessageSid`, `From`, `To`, `Body`…).
    pub direction: Direction,
    /// The fields, with Twilio's names.
    pub fields: BTreeMap<String, String>,
    /// When the provider says it was sent (arrived, for a received one), if it says.
    pub sent_at: Option<DateTime<Utc>>,
}

/// Why a provider's history could not be read this time (unreachable, refused, unreadable);
/// the words say which, with the provider's error code when it gave one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HistoryError(pub String);

/// A provider's history of the sender's messages, sent and received: how a machine that its
/// webhooks cannot reach (a laptop without a public URL) learns statuses and inbound
/// messages, by asking every so often (see [`crate::engine::Poller`]).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait MessageHistory: Send + Sync {
    /// Whose history this is, in words (`twilio AC… whatsapp:+…`): named in logs, and the key
    /// under which how far it was read is kept, so that what was read of one account and
    /// sender never counts for another.
    fn source(&self) -> String;

    /// The sender's messages, sent and received, that the provider says were sent at or after
    /// `since`, each once, oldest first: sent ones with their current status, received ones
    /// as they arrived. The provider's list may lag behind by a moment, so callers ask again
    /// from a little before where they stopped.
    async fn messages_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<ReportedMessage>, HistoryError>;
}

/// Sends messages.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Provider: Send + Sync {
    /// A short name for logs and metrics (`twilio`, `sandbox`).
    fn name(&self) -> &'static str;

    /// Sends one message.
    async fn send(&self, message: &OutboundMessage) -> Result<Accepted, SendError>;

    /// Looks for `message` among what the provider took since `since` (just before the send
    /// whose answer was lost). The dispatcher asks this before it ever sends such a message
    /// again; only [`Lookup::NotFound`] lets it resend.
    async fn lookup(&self, message: &OutboundMessage, since: DateTime<Utc>) -> Lookup {
        let _ = (message, since);
        Lookup::Unknown(format!(
            "the {} provider cannot look messages up",
            self.name()
        ))
    }

    /// Asks the provider where the message it accepted under `provider_sid` is now (Twilio:
    /// `GET …/Messages/{Sid}.json`). The dispatcher asks this about messages whose status
    /// callbacks stopped coming (they failed while the server was down), and feeds the answer
    /// to the same receipt path as the status webhook.
    ///
    /// `Ok(None)`: the provider does not know the message, or cannot report statuses (the
    /// default, for providers that only report by callback); it is not asked again. `Err`: no
    /// answer this time (rate limited, unreachable); it is asked again later.
    async fn fetch_status(&self, provider_sid: &str) -> Result<Option<ProviderStatus>, SendError> {
        let _ = provider_sid;
        Ok(None)
    }
}
