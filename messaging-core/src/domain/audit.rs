//! [`AuditDecision`]: why the engine did what it did with a message.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::MessageStatus;

/// One decision about one message, taken by one named policy step, with its reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditDecision {
    /// The policy or stage that decided (`consent`, `frequency_cap`, `quiet_hours`, `send`…).
    pub step: String,
    /// The status the decision leads to.
    pub outcome: MessageStatus,
    /// Why, in words an operator understands.
    pub reason: String,
    /// When.
    pub at: DateTime<Utc>,
}
