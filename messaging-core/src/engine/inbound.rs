//! What users send us: keyword commands (START, STOP, `SUBSCRIBE <topic>`, `UNSUBSCRIBE <topic>`,
//! HELP) change their consent and subscriptions; everything else is kept as conversation.
//! A sender not stored yet becomes a user; only START or SUBSCRIBE opts them in.
//! Webhook front ends call [`Engine::receive_inbound`] with Twilio's form fields and answer
//! with the reply it gives; polling (see [`super::Poller`]) takes the same path with the
//! fields read from Twilio's list, and has no one to give the reply to.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::{Command, Consent, InboundMessage, PhoneNumber};
use crate::store::{InboundEffects, Page, PageRequest, RecordOutcome};

use super::{Engine, EngineError};

/// What became of an inbound message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboundReceipt {
    /// The message as stored (the first one, when Twilio repeated the webhook).
    pub message: InboundMessage,
    /// Twilio had delivered this `MessageSid` before; nothing was changed again.
    pub duplicate: bool,
    /// The confirmation to send back, for commands; `None` for conversation.
    pub reply: Option<String>,
}

/// The confirmation for a command.
fn reply_to(message: &InboundMessage) -> Option<String> {
    let topic = message
        .topic
        .as_ref()
        .map(|t| t.as_str())
        .unwrap_or_default();
    let text = match message.command? {
        Command::Start => {
            "You are subscribed to our WhatsApp messages again. Reply STOP to stop them, HELP for help.".to_owned()
        }
        Command::Stop => {
            "You will get no more messages from us. Reply START to receive them again.".to_owned()
        }
        Command::Subscribe => {
            format!("You are now subscribed to {topic}. Reply UNSUBSCRIBE {topic} to stop.")
        }
        Command::Unsubscribe => {
            format!("You are unsubscribed from {topic}. Reply SUBSCRIBE {topic} to follow it again.")
        }
        Command::Help => "Reply START to receive messages, STOP to stop them, \
             SUBSCRIBE <topic> or UNSUBSCRIBE <topic> to follow a topic or not."
            .to_owned(),
    };
    Some(text)
}

impl Engine {
    /// Handles one inbound WhatsApp message from Twilio's webhook fields. Idempotent on
    /// `MessageSid`: a repeated webhook changes nothing and gets the same reply.
    pub async fn receive_inbound(
        &self,
        fields: BTreeMap<String, String>,
    ) -> Result<InboundReceipt, EngineError> {
        self.receive_inbound_at(fields, self.clock.now()).await
    }

    /// [`receive_inbound`](Self::receive_inbound) for a message that arrived at Twilio at
    /// `received_at`, learnt of later (by polling): its 24-hour window opens from then, not
    /// from when it was read.
    pub(super) async fn receive_inbound_at(
        &self,
        fields: BTreeMap<String, String>,
        received_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<InboundReceipt, EngineError> {
        let profile_name = fields
            .get("ProfileName")
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty());
        let message =
            InboundMessage::from_webhook(fields, received_at).map_err(EngineError::Invalid)?;
        let effects = InboundEffects {
            profile_name,
            consent: match message.command {
                // Asking for a topic is asking for messages.
                Some(Command::Start | Command::Subscribe) => Some(Consent::OptIn),
                Some(Command::Stop) => Some(Consent::OptOut),
                _ => None,
            },
            // Writing to the number is not consent to campaigns: a stranger's "hi" must not
            // put them on every list. Replies within the 24-hour window remain possible.
            new_user_consent: Consent::OptOut,
            subscribe: (message.command == Some(Command::Subscribe))
                .then(|| message.topic.clone())
                .flatten(),
            unsubscribe: (message.command == Some(Command::Unsubscribe))
                .then(|| message.topic.clone())
                .flatten(),
        };
        let outcome = self.store.receive_inbound(&message, &effects).await?;
        let message = match outcome {
            RecordOutcome::Recorded => message,
            RecordOutcome::Duplicate => self
                .store
                .find_inbound(&message.message_sid)
                .await?
                .ok_or_else(|| EngineError::not_found("inbound message", &message.message_sid))?,
        };
        if outcome == RecordOutcome::Duplicate {
            // Routine when polling re-reads its overlap.
            tracing::debug!(sid = %message.message_sid, "inbound message repeated");
        } else {
            tracing::info!(
                sid = %message.message_sid,
                from = %message.from,
                command = ?message.command,
                "inbound message"
            );
        }
        Ok(InboundReceipt {
            reply: reply_to(&message),
            duplicate: outcome == RecordOutcome::Duplicate,
            message,
        })
    }

    /// Inbound messages, newest first, optionally one user's.
    pub async fn list_inbound(
        &self,
        from: Option<PhoneNumber>,
        page: &PageRequest,
    ) -> Result<Page<InboundMessage>, EngineError> {
        Ok(self.store.list_inbound(from, page).await?)
    }
}
