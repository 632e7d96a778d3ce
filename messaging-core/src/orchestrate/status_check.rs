//! When to ask the provider where a message is, once its status callbacks have stopped coming
//! (they failed while the server was down, or never left the provider).
//!
//! A message handed to the provider is *awaiting its status* while it is `sending` with a
//! provider SID, or `sent`: no callback has said delivered, read, failed or undelivered.
//! `delivered` is not asked about: it is already a success, and many recipients turn read
//! receipts off, so asking until `read` would cost a request per delivered message for
//! nothing.
//!
//! ```text
//! last status change ──10 min──► ask ──20 min──► ask ──40 min──► ask … every 6 h at most
//!                                                    … 3 days after the send: last ask, then give up
//! ```
//!
//! Each answer goes through the receipt path (stored once per SID and status, forward moves
//! only). An answer that is not final (`queued`, `sent`) leaves the message for a later pass,
//! at a doubling interval; three days after the send the engine stops asking and records the
//! decision "no final status … after 3 days". A provider that does not know the message is
//! not asked again either.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::{AuditDecision, MessageStatus};
use crate::store::NextCheck;

/// The step name of status-check decisions in a message's log.
pub const STEP: &str = "status_check";

/// How messages awaiting their status are checked with the provider.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatusCheckPolicy {
    /// How long a message may go without a status change before the provider is first asked.
    pub quiet_for: Duration,
    /// The longest wait between two questions about one message.
    pub max_interval: Duration,
    /// How long after the send the engine stops asking.
    pub give_up_after: Duration,
    /// How often the dispatcher looks for messages to ask about.
    pub every: Duration,
    /// The most messages asked about in one pass, oldest first.
    pub batch: u32,
    /// The most questions a second (the provider's read API has its own limits, and sends
    /// come first).
    pub per_second: f64,
}

impl Default for StatusCheckPolicy {
    /// First question after 10 quiet minutes, then 20, 40… minutes later, at most 6 h apart,
    /// for 3 days; a pass every 30 s of at most 100 messages, 5 questions a second.
    fn default() -> Self {
        Self {
            quiet_for: Duration::from_secs(10 * 60),
            max_interval: Duration::from_secs(6 * 3600),
            give_up_after: Duration::from_secs(3 * 24 * 3600),
            every: Duration::from_secs(30),
            batch: 100,
            per_second: 5.0,
        }
    }
}

impl StatusCheckPolicy {
    /// Messages whose status last changed before this time are due their first question.
    pub fn first_check_before(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - to_chrono(self.quiet_for)
    }

    /// The wait after the `checks`-th question that did not settle the message (1 for the
    /// first): `quiet_for · 2^checks`, at most `max_interval`.
    pub fn interval(&self, checks: u32) -> Duration {
        self.quiet_for
            .saturating_mul(1 << checks.min(30))
            .min(self.max_interval)
            .max(Duration::from_secs(1))
    }

    /// What follows the `checks`-th unsettling answer about a message (now `status`) handed
    /// to `provider` at `sent_at`: the next question, never later than the give-up time
    /// (so the last one is asked then), or, from that time on, giving up.
    pub fn after_check(
        &self,
        checks: u32,
        sent_at: DateTime<Utc>,
        now: DateTime<Utc>,
        provider: &str,
        status: MessageStatus,
    ) -> NextCheck {
        let give_up_at = sent_at + to_chrono(self.give_up_after);
        if now >= give_up_at {
            return NextCheck::GiveUp(AuditDecision {
                step: STEP.into(),
                outcome: status,
                reason: format!(
                    "no final status from {provider} after {}: it stays {status} and is not \
                     asked about again",
                    words(self.give_up_after)
                ),
                at: now,
            });
        }
        NextCheck::At((now + to_chrono(self.interval(checks))).min(give_up_at))
    }

    /// The decision when the provider does not know the message (or cannot report statuses).
    pub fn unknown_to(
        &self,
        provider: &str,
        status: MessageStatus,
        now: DateTime<Utc>,
    ) -> AuditDecision {
        AuditDecision {
            step: STEP.into(),
            outcome: status,
            reason: format!(
                "{provider} has no status for this message: it stays {status} and is not asked \
                 about again"
            ),
            at: now,
        }
    }
}

fn to_chrono(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// A duration as an operator reads it: `3 days`, `6 hours`, `10 minutes`, `45 seconds`.
fn words(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (count, unit) = match seconds {
        s if s >= 86_400 && s % 86_400 == 0 => (s / 86_400, "day"),
        s if s >= 3_600 && s % 3_600 == 0 => (s / 3_600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{count} {unit}{}", if count == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn sent_at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
    }

    fn minutes(n: i64) -> chrono::Duration {
        chrono::Duration::minutes(n)
    }

    #[test]
    fn the_first_question_waits_for_ten_quiet_minutes() {
        let policy = StatusCheckPolicy::default();
        assert_eq!(
            policy.first_check_before(sent_at()),
            sent_at() - minutes(10)
        );
    }

    #[test]
    fn questions_come_at_doubling_intervals_up_to_six_hours() {
        let policy = StatusCheckPolicy::default();
        let waits: Vec<u64> = (1..=7).map(|n| policy.interval(n).as_secs() / 60).collect();
        assert_eq!(waits, [20, 40, 80, 160, 320, 360, 360]);
        assert_eq!(policy.interval(u32::MAX), Duration::from_secs(6 * 3600));
    }

    #[test]
    fn the_last_question_is_asked_at_the_give_up_time_and_then_none() {
        let policy = StatusCheckPolicy::default();
        let give_up = sent_at() + chrono::Duration::days(3);
        let now = give_up - minutes(60);
        assert_eq!(
            policy.after_check(12, sent_at(), now, "twilio", MessageStatus::Sent),
            NextCheck::At(give_up)
        );
        match policy.after_check(13, sent_at(), give_up, "twilio", MessageStatus::Sent) {
            NextCheck::GiveUp(decision) => {
                assert_eq!(decision.step, STEP);
                assert_eq!(decision.outcome, MessageStatus::Sent);
                assert!(
                    decision
                        .reason
                        .starts_with("no final status from twilio after 3 days"),
                    "{}",
                    decision.reason
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn durations_read_in_their_largest_whole_unit() {
        assert_eq!(words(Duration::from_secs(3 * 86_400)), "3 days");
        assert_eq!(words(Duration::from_secs(3_600)), "1 hour");
        assert_eq!(words(Duration::from_secs(90 * 60)), "90 minutes");
        assert_eq!(words(Duration::from_secs(45)), "45 seconds");
    }
}
