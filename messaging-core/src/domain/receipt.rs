//! [`DeliveryReceipt`]: one status report from the provider about one message.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{FieldError, MessageStatus};

/// A status callback, kept whether or not it changed the message (a late `sent` after `read`
/// is recorded here and changes nothing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryReceipt {
    /// Twilio's `MessageSid`.
    pub message_sid: String,
    /// The provider's status word as received (`delivered`).
    pub provider_status: String,
    /// The status it maps to, if it says anything about delivery.
    pub status: Option<MessageStatus>,
    /// Twilio's `ErrorCode`, if any.
    pub error_code: Option<String>,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// The webhook's form fields exactly as received.
    pub raw: BTreeMap<String, String>,
}

impl DeliveryReceipt {
    /// Reads Twilio's status-callback form fields (`MessageSid`, `MessageStatus`,
    /// `ErrorCode`; the older `SmsSid`/`SmsStatus` too), keeping them all as `raw`.
    pub fn from_webhook(
        fields: BTreeMap<String, String>,
        received_at: DateTime<Utc>,
    ) -> Result<Self, Vec<FieldError>> {
        let field = |names: &[&str]| {
            names
                .iter()
                .find_map(|name| fields.get(*name))
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let message_sid = field(&["MessageSid", "SmsSid"]);
        let provider_status =
            field(&["MessageStatus", "SmsStatus"]).map(|s| s.to_ascii_lowercase());
        let error_code = field(&["ErrorCode"]).filter(|code| code != "0");
        match (message_sid, provider_status) {
            (Some(message_sid), Some(provider_status)) => Ok(Self {
                message_sid,
                status: MessageStatus::from_twilio(&provider_status),
                provider_status,
                error_code,
                received_at,
                raw: fields,
            }),
            (sid, status) => Err([
                sid.is_none()
                    .then(|| FieldError::new("MessageSid", "missing")),
                status
                    .is_none()
                    .then(|| FieldError::new("MessageStatus", "missing")),
            ]
            .into_iter()
            .flatten()
            .collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_twilios_status_fields() {
        let fields: BTreeMap<String, String> = [
            ("MessageSid", "SM1"),
            ("MessageStatus", "Undelivered"),
            ("ErrorCode", "30008"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let receipt = DeliveryReceipt::from_webhook(fields, Utc::now()).unwrap();
        assert_eq!(receipt.status, Some(MessageStatus::Undelivered));
        assert_eq!(receipt.error_code.as_deref(), Some("30008"));
        assert_eq!(receipt.provider_status, "undelivered");
        let errors = DeliveryReceipt::from_webhook(BTreeMap::new(), Utc::now()).unwrap_err();
        assert_eq!(errors.len(), 2);
    }
}
