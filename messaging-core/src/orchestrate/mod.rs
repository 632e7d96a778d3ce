//! Orchestration: what happens to each outbox message between fan-out and the provider.
//!
//! [`policy`] holds the decisions, each a small named step that answers send, skip or defer
//! with a reason for the audit log; they are pure functions of the message, the recipient,
//! the campaign and the time, so they are tested without a database or a clock.

pub mod policy;
pub mod zones;
