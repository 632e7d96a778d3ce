//! What to do with the answer to a send: record the acceptance, retry a transient failure
//! after an exponential backoff with jitter, fail a permanent one at once with its code, and
//! never resend blindly when the outcome is unknown.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::{AuditDecision, MessageStatus};
use crate::provider::{Accepted, SendError};
use crate::store::SendOutcome;

/// How sends are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; a transient failure of the last one fails the
    /// message.
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles with each further one.
    pub base_delay: Duration,
    /// The longest wait between attempts.
    pub max_delay: Duration,
    /// How long after a send with no answer the provider is asked about it.
    pub unresolved_check: Duration,
}

impl Default for RetryPolicy {
    /// Five attempts, waiting about 2 s, 4 s, 8 s, 16 s (at most 5 minutes) in between; a send
    /// without an answer is looked up a minute later.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(300),
            unresolved_check: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1 for the first): `base · 2^(attempt−1)`
    /// capped at `max_delay`, then a random point in its upper half, so that messages refused
    /// together do not come back together; never shorter than what the provider asked for.
    pub fn backoff(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        rng: &mut fastrand::Rng,
    ) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        let full = self
            .base_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        let half = full / 2;
        let jittered = half + full.saturating_sub(half).mul_f64(rng.f64());
        jittered.max(retry_after.unwrap_or_default())
    }

    /// The outcome to record for the answer to attempt number `attempt` of a send.
    pub fn outcome(
        &self,
        answer: Result<Accepted, SendError>,
        attempt: u32,
        now: DateTime<Utc>,
        rng: &mut fastrand::Rng,
    ) -> SendOutcome {
        let decision = |step: &str, outcome, reason: String| AuditDecision {
            step: step.to_owned(),
            outcome,
            reason,
            at: now,
        };
        match answer {
            Ok(accepted) => SendOutcome::Accepted {
                provider_sid: accepted.provider_sid,
                status: accepted.status,
            },
            Err(SendError::Permanent { code, message }) => SendOutcome::Failed {
                decision: decision(
                    "send",
                    MessageStatus::Failed,
                    format!("refused by the provider{}: {message}", code_text(&code)),
                ),
                error_code: code,
            },
            Err(SendError::Transient {
                code,
                message,
                retry_after,
            }) if attempt < self.max_attempts => {
                let wait = self.backoff(attempt, retry_after, rng);
                let at = now + chrono::Duration::from_std(wait).unwrap_or_default();
                SendOutcome::Retry {
                    at,
                    decision: decision(
                        "retry",
                        MessageStatus::Queued,
                        format!(
                            "attempt {attempt} of {} not taken{}: {message}; retrying at {}",
                            self.max_attempts,
                            code_text(&code),
                            at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                        ),
                    ),
                }
            }
            Err(SendError::Transient { code, message, .. }) => SendOutcome::Failed {
                decision: decision(
                    "retry",
                    MessageStatus::Failed,
                    format!(
                        "gave up after {attempt} attempts; the last was not taken{}: {message}",
                        code_text(&code)
                    ),
                ),
                error_code: code,
            },
            Err(SendError::Unknown { message }) => {
                let check = chrono::Duration::from_std(self.unresolved_check).unwrap_or_default();
                SendOutcome::Unresolved {
                    check_at: now + check,
                    decision: decision(
                        "send",
                        MessageStatus::Sending,
                        format!(
                            "outcome unknown ({message}); the provider may have taken it, so it \
                             is not resent: it will be looked up at the provider first"
                        ),
                    ),
                }
            }
        }
    }
}

fn code_text(code: &Option<String>) -> String {
    code.as_ref()
        .map(|c| format!(" (code {c})"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
    }

    fn transient(retry_after: Option<Duration>) -> Result<Accepted, SendError> {
        Err(SendError::Transient {
            code: Some("20429".into()),
            message: "Too Many Requests".into(),
            retry_after,
        })
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let policy = RetryPolicy::default();
        let mut rng = fastrand::Rng::with_seed(7);
        for attempt in 1..=12 {
            let full = Duration::from_secs(2 << (attempt - 1)).min(Duration::from_secs(300));
            for _ in 0..100 {
                let wait = policy.backoff(attempt, None, &mut rng);
                assert!(wait >= full / 2 && wait <= full, "{attempt}: {wait:?}");
            }
        }
    }

    #[test]
    fn jitter_spreads_messages_refused_together() {
        let policy = RetryPolicy::default();
        let mut rng = fastrand::Rng::with_seed(1);
        let waits: std::collections::HashSet<_> =
            (0..50).map(|_| policy.backoff(3, None, &mut rng)).collect();
        assert!(waits.len() > 40, "{}", waits.len());
    }

    #[test]
    fn the_providers_retry_after_is_respected() {
        let policy = RetryPolicy::default();
        let mut rng = fastrand::Rng::with_seed(7);
        let wait = policy.backoff(1, Some(Duration::from_secs(30)), &mut rng);
        assert_eq!(wait, Duration::from_secs(30));
    }

    #[test]
    fn transient_errors_retry_until_the_last_attempt() {
        let policy = RetryPolicy::default();
        let mut rng = fastrand::Rng::with_seed(7);
        match policy.outcome(transient(None), 1, now(), &mut rng) {
            SendOutcome::Retry { at, decision } => {
                assert!(at >= now() + chrono::Duration::seconds(1));
                assert!(at <= now() + chrono::Duration::seconds(2));
                assert_eq!(decision.outcome, MessageStatus::Queued);
                assert!(
                    decision.reason.contains("attempt 1 of 5"),
                    "{}",
                    decision.reason
                );
                assert!(decision.reason.contains("20429"), "{}", decision.reason);
            }
            other => panic!("{other:?}"),
        }
        match policy.outcome(transient(None), 5, now(), &mut rng) {
            SendOutcome::Failed {
                error_code,
                decision,
            } => {
                assert_eq!(error_code.as_deref(), Some("20429"));
                assert!(decision.reason.contains("gave up after 5 attempts"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn permanent_errors_fail_at_once_with_their_code() {
        let policy = RetryPolicy::default();
        let mut rng = fastrand::Rng::with_seed(7);
        let refused = Err(SendError::Permanent {
            code: Some("21211".into()),
            message: "Invalid 'To' Phone Number".into(),
        });
        match policy.outcome(refused, 1, now(), &mut rng) {
            SendOutcome::Failed {
                error_code,
                decision,
            } => {
                assert_eq!(error_code.as_deref(), Some("21211"));
                assert_eq!(decision.step, "send");
                assert!(decision.reason.contains("Invalid 'To'"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unknown_outcome_is_looked_up_not_resent() {
        let policy = RetryPolicy::default();
        let mut rng = fastrand::Rng::with_seed(7);
        let lost = Err(SendError::Unknown {
            message: "connection closed before the answer".into(),
        });
        match policy.outcome(lost, 1, now(), &mut rng) {
            SendOutcome::Unresolved { check_at, decision } => {
                assert_eq!(check_at, now() + chrono::Duration::seconds(60));
                assert!(decision.reason.contains("not resent"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_acceptance_is_recorded_as_is() {
        let policy = RetryPolicy::default();
        let mut rng = fastrand::Rng::with_seed(7);
        let accepted = Ok(Accepted {
            provider_sid: "SM1".into(),
            status: MessageStatus::Sending,
        });
        assert_eq!(
            policy.outcome(accepted, 1, now(), &mut rng),
            SendOutcome::Accepted {
                provider_sid: "SM1".into(),
                status: MessageStatus::Sending
            }
        );
    }
}
