//! Status checks: the dispatcher's pass, every half minute or so, over messages whose final
//! status never came (their status callbacks failed while the server was down). Each is
//! asked about at the provider ([`Provider::fetch_status`]) at a small fixed rate, and the
//! answer goes to [`Engine::receive_status`], the status webhook's own path: stored once per
//! SID and status, forward moves only, 21610 opts the user out. When to ask, ask again and
//! give up is [`StatusCheckPolicy`]'s.

use std::sync::Arc;

use governor::RateLimiter;
use governor::clock::{Clock as _, MonotonicClock};
use tracing::Instrument as _;

use crate::domain::MessageStatus;
use crate::engine::{Engine, EngineError, StatusReceipt};
use crate::orchestrate::rate::{Limiter, quota};
use crate::orchestrate::status_check::StatusCheckPolicy;
use crate::provider::Provider;
use crate::store::{AwaitedStatus, NextCheck, ReceiptOutcome};

/// What one pass of status checks did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusCheckReport {
    /// Messages asked about at the provider.
    pub asked: usize,
    /// What each answer did, as it went through the receipt path.
    pub receipts: Vec<StatusReceipt>,
    /// Questions that got no usable answer this time; asked again later.
    pub unanswered: usize,
    /// Messages not asked about again: the provider does not know them, or the give-up time
    /// passed.
    pub given_up: usize,
}

/// The status checks of one dispatcher; cheap to clone into the task of a pass.
#[derive(Clone)]
pub(super) struct StatusChecks {
    engine: Engine,
    provider: Arc<dyn Provider>,
    policy: StatusCheckPolicy,
    pace: Arc<Limiter>,
}

impl StatusChecks {
    pub(super) fn new(
        engine: Engine,
        provider: Arc<dyn Provider>,
        policy: StatusCheckPolicy,
    ) -> Self {
        Self {
            pace: Arc::new(RateLimiter::direct(quota(policy.per_second))),
            engine,
            provider,
            policy,
        }
    }

    /// How often a pass runs.
    pub(super) fn every(&self) -> std::time::Duration {
        self.policy.every
    }

    /// One pass: claims the messages due a question (at most a batch, oldest first), asks
    /// about each at the allowed rate, and records what follows.
    pub(super) async fn pass(&self) -> Result<StatusCheckReport, EngineError> {
        let now = self.engine.clock.now();
        // Long enough for a whole batch at the allowed rate, with slow answers; a pass cut
        // short (a crash) leaves its messages to be asked about when the hold ends.
        let hold = chrono::Duration::from_std(self.policy.quiet_for)
            .unwrap_or(chrono::Duration::minutes(10))
            .max(chrono::Duration::minutes(10));
        let awaited = self
            .engine
            .store
            .claim_status_checks(
                now,
                self.policy.first_check_before(now),
                now + hold,
                self.policy.batch,
            )
            .await?;
        let mut report = StatusCheckReport::default();
        let mut next = Vec::with_capacity(awaited.len());
        for message in awaited {
            self.paced().await;
            report.asked += 1;
            let id = message.id;
            let span = tracing::debug_span!(
                "status_check",
                message = %id,
                sid = %message.provider_sid,
                checks = message.checks,
            );
            let check = self.ask(message, &mut report).instrument(span).await;
            next.push((id, check));
        }
        let next: Vec<_> = next
            .into_iter()
            .filter_map(|(id, check)| check.map(|check| (id, check)))
            .collect();
        if !next.is_empty() {
            self.engine.store.record_status_checks(next).await?;
        }
        if report.asked > 0 {
            tracing::info!(
                asked = report.asked,
                answered = report.receipts.len(),
                unanswered = report.unanswered,
                given_up = report.given_up,
                "checked statuses with the provider"
            );
        }
        Ok(report)
    }

    /// Asks about one message and passes the answer on; answers what follows, `None` when the
    /// answer settled it.
    async fn ask(
        &self,
        message: AwaitedStatus,
        report: &mut StatusCheckReport,
    ) -> Option<NextCheck> {
        let provider = self.provider.name();
        let answer = self.provider.fetch_status(&message.provider_sid).await;
        let now = self.engine.clock.now();
        let checks = message.checks + 1;
        let mut status = message.status;
        match answer {
            Ok(Some(answer)) => {
                let about = answer.fields.get("MessageSid").map(String::as_str);
                if about != Some(message.provider_sid.as_str()) {
                    tracing::warn!(?about, "the provider answered about another message");
                    report.unanswered += 1;
                } else {
                    match self.engine.receive_status(answer.fields).await {
                        Ok(receipt) => {
                            match receipt.outcome {
                                ReceiptOutcome::Applied(now_at)
                                | ReceiptOutcome::Ignored(now_at) => status = now_at,
                                ReceiptOutcome::Parked | ReceiptOutcome::Duplicate => {}
                            }
                            report.receipts.push(receipt);
                        }
                        Err(error) => {
                            tracing::warn!(%error, "the provider's answer could not be applied");
                            report.unanswered += 1;
                        }
                    }
                }
            }
            Ok(None) => {
                report.given_up += 1;
                return Some(NextCheck::GiveUp(
                    self.policy.unknown_to(provider, status, now),
                ));
            }
            Err(error) => {
                tracing::warn!(%error, "no status from the provider this time");
                report.unanswered += 1;
            }
        }
        if !matches!(status, MessageStatus::Sending | MessageStatus::Sent) {
            return None;
        }
        let next = self
            .policy
            .after_check(checks, message.sent_at, now, provider, status);
        if matches!(next, NextCheck::GiveUp(_)) {
            report.given_up += 1;
        }
        Some(next)
    }

    /// Waits for the next question's turn at the allowed rate.
    async fn paced(&self) {
        while let Err(not_until) = self.pace.check() {
            tokio::time::sleep(not_until.wait_time_from(MonotonicClock.now())).await;
        }
    }
}
