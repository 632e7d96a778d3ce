//! [`DeliveryReceipt`]: one status report from the provider about one message, and what a
//! provider's error code means for the recipient ([`unsubscribes_recipient`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{FieldError, MessageStatus};

/// Twilio's error for a recipient who unsubscribed at the carrier.
const RECIPIENT_UNSUBSCRIBED: &str = "21610";

/// Whether a provider error code says the recipient unsubscribed at the carrier (Twilio error
/// 21610, on a refused send or in a status callback): such a recipient must never be messaged
/// again, so the store turns their consent to `OPT_OUT` in the same transaction that records
/// the failure. This is the one place the rule lives, so every store adapter applies it alike.
pub fn unsubscribes_recipient(error_code: Option<&str>) -> bool {
    error_code == Some(RECIPIENT_UNSUBSCRIBED)
}

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
    /// Whether this report says the recipient unsubscribed at the carrier
    /// (see [`unsubscribes_recipient`]).
    pub fn unsubscribes_recipient(&self) -> bool {
        unsubscribes_recipient(self.error_code.as_deref())
    }

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

    #[test]
    fn only_error_21610_unsubscribes_the_recipient() {
        assert!(unsubscribes_recipient(Some("21610")));
        for other in [None, Some("30008"), Some("21211"), Some("63016"), Some("")] {
            assert!(!unsubscribes_recipient(other), "{other:?}");
        }
        let fields = |code: &str| {
            [
                ("MessageSid", "SM1"),
                ("MessageStatus", "failed"),
                ("ErrorCode", code),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
        };
        let unsubscribed = DeliveryReceipt::from_webhook(fields("21610"), Utc::now()).unwrap();
        assert!(unsubscribed.unsubscribes_recipient());
        let undelivered = DeliveryReceipt::from_webhook(fields("30008"), Utc::now()).unwrap();
        assert!(!undelivered.unsubscribes_recipient());
    }
}
