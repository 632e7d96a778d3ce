//! Orchestration: what happens to each outbox message between fan-out and the provider.
//!
//! [`policy`] holds the decisions, each a small named step that answers send, skip or defer
//! with a reason for the audit log; [`decide`] runs them in order for one claimed message.
//! They are pure functions of the message, the recipient, the campaign and the time, so they
//! are tested without a database or a clock. [`rate`] holds the send rates (the sender's
//! ceiling and each campaign's), [`retry`] what an answer from the provider leads to,
//! [`status_check`] when to ask the provider about a message whose status callbacks stopped
//! coming, and [`zones`] the recipient's time zone. The dispatcher that drives them lives in
//! the engine.

pub mod decide;
pub mod policy;
pub mod rate;
pub mod retry;
pub mod status_check;
pub mod zones;
