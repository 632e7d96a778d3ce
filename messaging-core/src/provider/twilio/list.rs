//! Twilio's Message resource and its list (`GET …/Messages.json`), read the same way by
//! everything that asks Twilio about messages: the lookup of a send whose answer was lost
//! (`lookup`), the fetch of one message's status (`fetch`) and polling (`poll`).
//!
//! A page is read holding an in-flight slot, like a send, so reads never push the account
//! past its concurrency limit; a page that cannot be read is an `Err` with the reason, in
//! words fit for a log. A resource becomes the fields of the webhook that would have brought
//! the same news ([`MessageResource::status_fields`], [`MessageResource::inbound_fields`]), so
//! that what is read takes the webhooks' paths in the engine.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{TwilioProvider, error_chain, read_error, snippet};
use crate::provider::StatusFields;

/// The fields of Twilio's Message resource the platform reads, as a fetch answers it and as
/// each entry of the list carries it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub(super) struct MessageResource {
    pub sid: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    /// `inbound`, `outbound-api`, `outbound-reply`, `outbound-call`.
    #[serde(default)]
    pub direction: Option<String>,
    #[serde(default)]
    pub error_code: Option<serde_json::Value>,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default)]
    pub account_sid: Option<String>,
    #[serde(default)]
    pub api_version: Option<String>,
    /// Twilio writes counts as strings (`"0"`).
    #[serde(default)]
    pub num_media: Option<serde_json::Value>,
    #[serde(default)]
    pub num_segments: Option<serde_json::Value>,
    /// RFC 2822, as Twilio writes dates (`Tue, 24 Nov 2026 21:17:41 +0000`).
    #[serde(default)]
    pub date_created: Option<String>,
    #[serde(default)]
    pub date_updated: Option<String>,
    /// When the message left Twilio, or arrived at it for an inbound one; `null` before.
    #[serde(default)]
    pub date_sent: Option<String>,
}

/// A JSON string or number as text; `None` for null, empty or anything else.
fn text(value: Option<serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::Number(number) => Some(number.to_string()),
        serde_json::Value::String(text) if !text.trim().is_empty() => Some(text),
        _ => None,
    }
}

/// An RFC 2822 date as Twilio writes it.
fn date(text: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(text?.trim())
        .ok()
        .map(|date| date.with_timezone(&Utc))
}

impl MessageResource {
    /// When Twilio created it, if the date reads.
    pub fn created(&self) -> Option<DateTime<Utc>> {
        date(self.date_created.as_deref())
    }

    /// When it was sent (received, for an inbound message), if Twilio says and the date reads.
    pub fn sent(&self) -> Option<DateTime<Utc>> {
        date(self.date_sent.as_deref())
    }

    /// Whether a user sent it to the account.
    pub fn is_inbound(&self) -> bool {
        self.direction.as_deref() == Some("inbound")
    }

    /// Whether the account sent it.
    pub fn is_outbound(&self) -> bool {
        self.direction
            .as_deref()
            .is_some_and(|direction| direction.starts_with("outbound"))
    }

    /// Its current status in the fields of a status callback (`MessageSid`, `MessageStatus`,
    /// `ErrorCode`, `To`, `From`…), with the resource's `DateUpdated` and `DateSent`; `None`
    /// without a SID or a status.
    pub fn status_fields(self) -> Option<StatusFields> {
        let sid = Some(self.sid).filter(|s| !s.trim().is_empty())?;
        let status = self.status.filter(|s| !s.trim().is_empty())?;
        let mut fields = StatusFields::new();
        if self
            .to
            .as_deref()
            .is_some_and(|to| to.starts_with("whatsapp:"))
        {
            fields.insert("ChannelPrefix".into(), "whatsapp".into());
        }
        let named = [
            ("SmsSid", Some(sid.clone())),
            ("MessageSid", Some(sid)),
            ("SmsStatus", Some(status.clone())),
            ("MessageStatus", Some(status)),
            ("ErrorCode", text(self.error_code)),
            ("ErrorMessage", self.error_message),
            ("AccountSid", self.account_sid),
            ("From", self.from),
            ("To", self.to),
            ("MessagingServiceSid", self.messaging_service_sid),
            ("ApiVersion", self.api_version),
            ("DateUpdated", self.date_updated),
            ("DateSent", self.date_sent),
        ];
        insert_present(&mut fields, named);
        Some(fields)
    }

    /// The message a user sent, in the fields of the inbound webhook (`MessageSid`, `From`,
    /// `To`, `Body`, `NumMedia`…), with the resource's `DateSent`. The list does not carry the
    /// webhook's `ProfileName` and `WaId`, so they are absent. `None` without a SID.
    pub fn inbound_fields(self) -> Option<StatusFields> {
        let sid = Some(self.sid).filter(|s| !s.trim().is_empty())?;
        let mut fields = StatusFields::new();
        let named = [
            ("SmsMessageSid", Some(sid.clone())),
            ("SmsSid", Some(sid.clone())),
            ("MessageSid", Some(sid)),
            ("SmsStatus", self.status),
            ("AccountSid", self.account_sid),
            ("MessagingServiceSid", self.messaging_service_sid),
            ("From", self.from),
            ("To", self.to),
            // An inbound message with only media has an empty body, which is still its body.
            ("Body", Some(self.body.unwrap_or_default())),
            ("NumMedia", text(self.num_media)),
            ("NumSegments", text(self.num_segments)),
            ("ApiVersion", self.api_version),
            ("DateSent", self.date_sent),
        ];
        insert_present(&mut fields, named);
        Some(fields)
    }
}

fn insert_present<const N: usize>(fields: &mut StatusFields, named: [(&str, Option<String>); N]) {
    for (name, value) in named {
        if let Some(value) = value {
            fields.insert(name.into(), value);
        }
    }
}

/// One page of Twilio's list.
#[derive(Deserialize)]
pub(super) struct MessagePage {
    pub messages: Vec<MessageResource>,
    #[serde(default)]
    pub next_page_uri: Option<String>,
}

impl TwilioProvider {
    /// The first page of the list with these query parameters.
    pub(super) fn first_page(&self, query: &[(&str, String)]) -> reqwest::RequestBuilder {
        self.client.get(&self.messages_url).query(query)
    }

    /// The page a `next_page_uri` names (a path on the API base); `Err` when it is not a path.
    pub(super) fn next_page(&self, next: &str) -> Result<reqwest::RequestBuilder, String> {
        if !next.starts_with('/') {
            return Err(format!("Twilio's next_page_uri {next:?} is not a path"));
        }
        let base = self.config.api_base.trim().trim_end_matches('/');
        Ok(self.client.get(format!("{base}{next}")))
    }

    /// Reads one page of the list, holding an in-flight slot like a send; `Err` says why not.
    pub(super) async fn list_page(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<MessagePage, String> {
        let _slot = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| "the Twilio provider is shutting down".to_string())?;
        let response = request
            .basic_auth(&self.config.account_sid, Some(&self.config.auth_token))
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|error| format!("cannot list Twilio's messages: {}", error_chain(&error)))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|error| {
            format!(
                "Twilio answered {status} to the list but the body was lost: {}",
                error_chain(&error)
            )
        })?;
        if !(200..300).contains(&status) {
            let (code, message) = read_error(status, &body);
            let code = code
                .map(|code| format!(" (code {code})"))
                .unwrap_or_default();
            return Err(format!("cannot list Twilio's messages: {message}{code}"));
        }
        serde_json::from_slice(&body).map_err(|error| {
            format!(
                "Twilio's list of messages does not read ({error}): {}",
                snippet(&body)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(json: &str) -> MessageResource {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_message_resource_becomes_the_fields_of_a_status_callback() {
        let fields = resource(
            r#"{"sid": "SM1", "status": "undelivered", "error_code": 30003,
            "error_message": "Unreachable destination handset", "account_sid": "AC1",
            "from": "whatsapp:+14155238886", "to": "whatsapp:+14155552671",
            "messaging_service_sid": null, "api_version": "2010-04-01",
            "date_updated": "Tue, 24 Nov 2026 21:17:41 +0000", "date_sent": null}"#,
        )
        .status_fields()
        .unwrap();
        let field = |name: &str| fields.get(name).map(String::as_str);
        assert_eq!(field("MessageSid"), Some("SM1"));
        assert_eq!(field("MessageStatus"), Some("undelivered"));
        assert_eq!(field("ErrorCode"), Some("30003"));
        assert_eq!(field("To"), Some("whatsapp:+14155552671"));
        assert_eq!(field("ChannelPrefix"), Some("whatsapp"));
        assert_eq!(
            field("DateUpdated"),
            Some("Tue, 24 Nov 2026 21:17:41 +0000")
        );
        assert_eq!(field("MessagingServiceSid"), None);
        assert_eq!(field("DateSent"), None);
        assert_eq!(resource(r#"{"sid": "SM1"}"#).status_fields(), None);
    }

    #[test]
    fn an_inbound_resource_becomes_the_fields_of_the_inbound_webhook() {
        let message = resource(
            r#"{"sid": "SM2", "status": "received", "direction": "inbound",
            "from": "whatsapp:+14155552671", "to": "whatsapp:+14155238886", "body": "STOP",
            "num_media": "0", "num_segments": "1", "account_sid": "AC1",
            "date_sent": "Tue, 24 Nov 2026 21:17:41 +0000"}"#,
        );
        assert!(message.is_inbound() && !message.is_outbound());
        assert_eq!(
            message.sent(),
            Some(
                DateTime::parse_from_rfc3339("2026-11-24T21:17:41Z")
                    .unwrap()
                    .into()
            )
        );
        let fields = message.inbound_fields().unwrap();
        let field = |name: &str| fields.get(name).map(String::as_str);
        assert_eq!(field("MessageSid"), Some("SM2"));
        assert_eq!(field("SmsMessageSid"), Some("SM2"));
        assert_eq!(field("From"), Some("whatsapp:+14155552671"));
        assert_eq!(field("Body"), Some("STOP"));
        assert_eq!(field("NumMedia"), Some("0"));
        assert_eq!(field("ProfileName"), None);
        let media_only = resource(r#"{"sid": "SM3", "direction": "inbound", "body": null}"#);
        assert_eq!(media_only.inbound_fields().unwrap()["Body"], "");
    }
}
