//! [`DeliveryReceipt`]: one status report from the provider about one message.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::MessageStatus;

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
