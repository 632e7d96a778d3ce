//! Messages users send to the platform's sender (WhatsApp → Twilio → the account), put into
//! the fake by a test or a person (`POST /_fake/inbound`, [`crate::FakeTwilio::receive_inbound`])
//! so that Twilio's list of messages shows them as Twilio would: `direction` `inbound`,
//! `status` `received`, `date_sent` the moment they arrived. The fake posts no inbound
//! webhook: they are there to be listed (a platform that polls instead of taking webhooks).

use serde::{Deserialize, Serialize};

use crate::resource::rfc2822_now;

/// What a user writes to the sender, as a test describes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundRequest {
    /// The user, as Twilio writes them (`whatsapp:+14155552671`).
    pub from: String,
    /// The sender written to (`whatsapp:+14155238886`); the fake's `service_sender` when
    /// `None`.
    #[serde(default)]
    pub to: Option<String>,
    /// What they wrote.
    #[serde(default)]
    pub body: String,
    /// The Messaging Service the sender belongs to, if any.
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// When it arrived (RFC 2822, as Twilio writes dates); now when `None`. An earlier date
    /// stands for a message that arrived while nobody was looking.
    #[serde(default)]
    pub date_sent: Option<String>,
}

/// A message a user sent, as the fake keeps and lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// `SM` and 32 hex digits, like every message.
    pub sid: String,
    /// The account it arrived on.
    pub account_sid: String,
    /// The user.
    pub from: String,
    /// The sender.
    pub to: String,
    /// What they wrote.
    pub body: String,
    /// The sender's Messaging Service, if any.
    pub messaging_service_sid: Option<String>,
    /// When it arrived (RFC 2822).
    pub date_sent: String,
    /// When the fake recorded it (RFC 2822).
    pub date_created: String,
}

/// Why an inbound message was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    /// `from` is empty.
    #[error("`from` is required (e.g. whatsapp:+14155552671)")]
    MissingFrom,
    /// `date_sent` is not an RFC 2822 date.
    #[error("`date_sent` {0:?} is not an RFC 2822 date (e.g. Tue, 24 Nov 2026 21:17:41 +0000)")]
    InvalidDate(String),
}

impl InboundMessage {
    /// The message `request` describes, arrived on `account_sid` at `default_to` unless it
    /// names its own sender.
    pub(crate) fn new(
        request: InboundRequest,
        account_sid: &str,
        default_to: &str,
        sid: String,
    ) -> Result<Self, InboundError> {
        let from = request.from.trim().to_owned();
        if from.is_empty() {
            return Err(InboundError::MissingFrom);
        }
        let now = rfc2822_now();
        let date_sent = match request.date_sent {
            None => now.clone(),
            Some(date) => chrono::DateTime::parse_from_rfc2822(date.trim())
                .map(|at| {
                    at.with_timezone(&chrono::Utc)
                        .format("%a, %d %b %Y %H:%M:%S +0000")
                        .to_string()
                })
                .map_err(|_| InboundError::InvalidDate(date))?,
        };
        Ok(Self {
            sid,
            account_sid: account_sid.to_owned(),
            from,
            to: request
                .to
                .map(|to| to.trim().to_owned())
                .filter(|to| !to.is_empty())
                .unwrap_or_else(|| default_to.to_owned()),
            body: request.body,
            messaging_service_sid: request.messaging_service_sid,
            date_sent,
            date_created: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inbound_message_needs_a_sender_and_a_readable_date() {
        let request = |from: &str, date: Option<&str>| InboundRequest {
            from: from.into(),
            body: "STOP".into(),
            date_sent: date.map(str::to_owned),
            ..InboundRequest::default()
        };
        let made = |r| InboundMessage::new(r, "AC1", "whatsapp:+14155238886", "SM1".into());
        let message = made(request("whatsapp:+1415555", None)).unwrap();
        assert_eq!(message.to, "whatsapp:+14155238886");
        assert_eq!(message.date_sent, message.date_created);
        assert_eq!(made(request(" ", None)), Err(InboundError::MissingFrom));
        assert!(matches!(
            made(request("whatsapp:+1", Some("yesterday"))),
            Err(InboundError::InvalidDate(_))
        ));
        let earlier = made(request(
            "whatsapp:+1",
            Some("Tue, 24 Nov 2026 21:17:41 +0100"),
        ));
        assert_eq!(
            earlier.unwrap().date_sent,
            "Tue, 24 Nov 2026 20:17:41 +0000"
        );
    }
}
