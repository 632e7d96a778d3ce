//! [`Message`]: one outbound WhatsApp message and its status state machine.
//!
//! ```text
//! pending ─┬─► queued ─► sending ─► sent ─► delivered ─► read
//!          ├─► deferred ─► queued        └─► failed | undelivered
//!          └─► skipped | failed
//! ```
//! Only forward moves are legal; `read`, `failed`, `undelivered` and `skipped` are terminal.
//! A late provider status that would move a message backwards (a `sent` after `read`) is kept as
//! a receipt but never changes the message.

/// WhatsApp (and Twilio) refuse message bodies longer than this many characters.
pub const MAX_BODY_CHARS: usize = 1_600;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{AuditDecision, CampaignId, MessageId, PhoneNumber, RunId};

/// Where an outbound message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// In the outbox, no decision yet.
    Pending,
    /// Cleared by every policy; waiting for a sender.
    Queued,
    /// Handed to the provider; the outcome is not known yet.
    Sending,
    /// The provider accepted it (it has a provider SID) or reports it sent.
    Sent,
    /// Reached the recipient's phone.
    Delivered,
    /// The recipient read it.
    Read,
    /// The provider refused it or it could not be sent (see the error code).
    Failed,
    /// The provider could not deliver it.
    Undelivered,
    /// A policy decided not to send it (see the decisions).
    Skipped,
    /// A policy postponed it (quiet hours, daily limit); it will be queued later.
    Deferred,
}

/// How a message reaches the recipient on WhatsApp, decided when it is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendAs {
    /// Free text: the recipient wrote to us within the last 24 hours.
    FreeText,
    /// The template's approved Content SID: the only way outside the 24-hour window, and a
    /// business-initiated conversation in Meta's terms.
    ApprovedTemplate,
}

impl SendAs {
    /// The name used in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FreeText => "text",
            Self::ApprovedTemplate => "template",
        }
    }

    /// The value [`as_str`](Self::as_str) names.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "text" => Some(Self::FreeText),
            "template" => Some(Self::ApprovedTemplate),
            _ => None,
        }
    }
}

/// A move the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a message cannot go from {from:?} to {to:?}")]
pub struct IllegalTransition {
    /// The current status.
    pub from: MessageStatus,
    /// The refused status.
    pub to: MessageStatus,
}

impl MessageStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [MessageStatus; 10] = [
        Self::Pending,
        Self::Deferred,
        Self::Queued,
        Self::Sending,
        Self::Sent,
        Self::Delivered,
        Self::Read,
        Self::Failed,
        Self::Undelivered,
        Self::Skipped,
    ];

    /// Whether the message can move from `self` to `next`.
    pub fn can_become(self, next: MessageStatus) -> bool {
        use MessageStatus::*;
        match self {
            Pending => matches!(next, Queued | Deferred | Skipped | Failed),
            Deferred => matches!(next, Queued | Deferred | Skipped | Failed),
            Queued => matches!(next, Sending | Deferred | Skipped | Failed),
            // A transient provider error puts the message back in the queue for a retry; a
            // status callback can overtake the provider's answer, hence the later states.
            Sending => matches!(
                next,
                Queued | Sent | Delivered | Read | Failed | Undelivered
            ),
            Sent => matches!(next, Delivered | Read | Failed | Undelivered),
            Delivered => matches!(next, Read),
            Read | Failed | Undelivered | Skipped => false,
        }
    }

    /// The statuses a message may move to `next` from, in lifecycle order: [`can_become`]
    /// read backwards. A store's conditional update (`WHERE status IN (...)`) is built from
    /// this, so the state machine is written once, here, and a second store cannot drift.
    ///
    /// [`can_become`]: Self::can_become
    pub fn statuses_that_can_become(next: MessageStatus) -> impl Iterator<Item = MessageStatus> {
        Self::ALL
            .into_iter()
            .filter(move |from| from.can_become(next))
    }

    /// The statuses of a message not yet handed to the provider, in the order the dispatcher
    /// reads them: waiting for its decision, cleared for sending, or postponed.
    pub const UNSENT: [MessageStatus; 3] = [Self::Pending, Self::Queued, Self::Deferred];

    /// Whether the message is still unsent (one of [`UNSENT`](Self::UNSENT)): the dispatcher
    /// may claim it and decide about it, and a cancel may still skip it. A provider's answer
    /// never moves a message into one of these, so it is never sent twice.
    pub fn is_unsent(self) -> bool {
        Self::UNSENT.contains(&self)
    }

    /// Whether the message went, or is going, to the recipient: cleared for sending or on
    /// along the way to being read, neither failed nor skipped nor postponed. What the
    /// frequency cap and the count of business-initiated conversations look at.
    pub fn is_released(self) -> bool {
        use MessageStatus::*;
        matches!(self, Queued | Sending | Sent | Delivered | Read)
    }

    /// The status after moving to `next`, or why that is not allowed.
    pub fn become_(self, next: MessageStatus) -> Result<MessageStatus, IllegalTransition> {
        if self.can_become(next) {
            Ok(next)
        } else {
            Err(IllegalTransition {
                from: self,
                to: next,
            })
        }
    }

    /// No move leaves a terminal status.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Read | Self::Failed | Self::Undelivered | Self::Skipped
        )
    }

    /// The lower-case name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        use MessageStatus::*;
        match self {
            Pending => "pending",
            Queued => "queued",
            Sending => "sending",
            Sent => "sent",
            Delivered => "delivered",
            Read => "read",
            Failed => "failed",
            Undelivered => "undelivered",
            Skipped => "skipped",
            Deferred => "deferred",
        }
    }

    /// Parses the lower-case name.
    pub fn parse(name: &str) -> Option<MessageStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Maps a Twilio `MessageStatus` (`queued`, `sent`, `delivered`, `read`, `failed`,
    /// `undelivered`…) onto ours; `None` for statuses that say nothing about delivery
    /// (`receiving`, `received`). Twilio's own queue (`accepted`, `scheduled`, `queued`) is
    /// our `sending`: the provider has the message. It never maps to our `queued`, so a
    /// callback can never put a message back in the outbox to be sent again.
    pub fn from_twilio(status: &str) -> Option<MessageStatus> {
        use MessageStatus::*;
        match status.trim().to_ascii_lowercase().as_str() {
            "accepted" | "scheduled" | "queued" | "sending" => Some(Sending),
            "sent" => Some(Sent),
            "delivered" => Some(Delivered),
            "read" => Some(Read),
            "failed" | "canceled" => Some(Failed),
            "undelivered" => Some(Undelivered),
            _ => None,
        }
    }
}

impl std::fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change of a message's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusChange {
    /// The new status.
    pub status: MessageStatus,
    /// When it changed.
    pub at: DateTime<Utc>,
}

/// An outbound message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Its id.
    pub id: MessageId,
    /// The campaign it belongs to; `None` for one-off replies.
    pub campaign_id: Option<CampaignId>,
    /// The campaign run it belongs to.
    pub run_id: Option<RunId>,
    /// The recipient.
    pub user: PhoneNumber,
    /// The text as rendered for this recipient.
    pub body: String,
    /// Where it is.
    pub status: MessageStatus,
    /// Twilio's `MessageSid` once the provider accepted it.
    pub provider_sid: Option<String>,
    /// The provider's error code when it failed (`21211`, `63016`…).
    pub error_code: Option<String>,
    /// How many send attempts were made.
    pub attempts: u32,
    /// Every status change, oldest first.
    pub history: Vec<StatusChange>,
    /// Every policy decision taken about it, oldest first.
    pub decisions: Vec<AuditDecision>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::MessageStatus::*;
    use super::*;

    #[test]
    fn the_happy_path_is_legal() {
        let mut status = Pending;
        for next in [Queued, Sending, Sent, Delivered, Read] {
            status = status.become_(next).unwrap();
        }
        assert_eq!(status, Read);
    }

    #[test]
    fn status_never_moves_backwards() {
        assert!(Read.become_(Sent).is_err());
        assert!(Delivered.become_(Sent).is_err());
        assert!(Sent.become_(Queued).is_err());
        assert!(Sent.become_(Sending).is_err());
    }

    #[test]
    fn status_never_moves_backwards_along_the_way_to_read() {
        let way = [Pending, Queued, Sending, Sent, Delivered, Read];
        for (earlier, to) in way.iter().enumerate() {
            for from in &way[earlier + 1..] {
                // The one step back: a transient provider error returns a message being sent
                // to the queue, to be retried.
                let retry = (*from, *to) == (Sending, Queued);
                assert_eq!(from.can_become(*to), retry, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn a_message_moves_to_sending_only_from_queued_and_is_skipped_only_while_unsent() {
        let to_sending: Vec<_> = MessageStatus::statuses_that_can_become(Sending).collect();
        assert_eq!(to_sending, [Queued]);
        let mut to_skipped: Vec<_> = MessageStatus::statuses_that_can_become(Skipped).collect();
        to_skipped.sort();
        let mut unsent = MessageStatus::UNSENT;
        unsent.sort();
        assert_eq!(to_skipped, unsent);
    }

    #[test]
    fn the_provider_never_puts_a_message_back_among_the_unsent() {
        for word in [
            "accepted",
            "scheduled",
            "queued",
            "sending",
            "sent",
            "delivered",
            "read",
            "failed",
            "canceled",
            "undelivered",
        ] {
            let status = MessageStatus::from_twilio(word).unwrap();
            assert!(!status.is_unsent(), "{word}");
        }
    }

    #[test]
    fn released_messages_are_those_cleared_for_sending_and_not_failed() {
        let released: Vec<_> = MessageStatus::ALL
            .into_iter()
            .filter(|s| s.is_released())
            .collect();
        assert_eq!(released, [Queued, Sending, Sent, Delivered, Read]);
    }

    #[test]
    fn terminal_states_accept_nothing() {
        for from in MessageStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in MessageStatus::ALL {
                assert!(!from.can_become(to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn names_round_trip_and_twilio_statuses_map() {
        for status in MessageStatus::ALL {
            assert_eq!(MessageStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(MessageStatus::from_twilio("DELIVERED"), Some(Delivered));
        assert_eq!(MessageStatus::from_twilio("received"), None);
        assert_eq!(MessageStatus::from_twilio("queued"), Some(Sending));
    }
}
