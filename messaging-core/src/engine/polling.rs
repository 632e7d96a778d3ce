//! Polling: learning delivery statuses and inbound messages by asking the provider what the
//! sender sent and received lately ([`MessageHistory`]), for a machine its webhooks cannot
//! reach (a laptop without a public URL).
//!
//! Everything read takes a webhook's own path: a sent message's status goes to
//! [`Engine::receive_status`] (stored once per SID and status, never moving a message
//! backwards, parked until its SID is recorded, 21610 opting the user out), a received
//! message to the inbound webhook's (stored once per SID, its START/STOP/SUBSCRIBE/
//! UNSUBSCRIBE/HELP command applied). Polling beside the webhooks, or twice over the same
//! window, therefore records nothing twice. Statuses that only say the provider still holds
//! the message (`accepted`, `queued`, `sending`) tell nothing the send's answer did not, and
//! are passed over.
//!
//! Each poll reads from a little before the time the last one started
//! ([`PollConfig::overlap`]: the provider's list lags a moment behind, and clocks differ), and
//! that time is kept in the database for each source, so a restart goes on from where it
//! stopped; the first poll of a source reaches back [`PollConfig::first_lookback`]. The mark
//! moves only once everything read was stored: a poll that fails part-way is read again.
//! A received message counts from when the provider received it (its 24-hour window opens
//! then), not from when it was read.
//!
//! What polling cannot see: the provider lists each message with its status *now*, and only
//! messages sent within the window, so a status that comes after its message left the window
//! (a `read` hours later) is missed; messages left `sending` or `sent` are still asked about
//! one by one by the dispatcher's status checks. A command's confirmation, which the inbound
//! webhook answers with, has no one to go to and is not sent.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound as _, Utc};
use serde::Serialize;
use tracing::Instrument as _;

use super::{Engine, EngineError};
use crate::domain::MessageStatus;
use crate::provider::{Direction, HistoryError, MessageHistory, ReportedMessage};
use crate::store::ReceiptOutcome;

/// How polling works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollConfig {
    /// How long to wait between polls (`TWILIO_POLL_SECONDS`).
    pub every: Duration,
    /// How far before the start of the last poll each poll reads.
    pub overlap: Duration,
    /// How far back the first poll of a source reads.
    pub first_lookback: Duration,
}

impl PollConfig {
    /// Two minutes: well past how far Twilio's list lags behind, and past the usual
    /// `sent → delivered` of a WhatsApp message.
    pub const DEFAULT_OVERLAP: Duration = Duration::from_secs(120);
    /// A day: WhatsApp's window, so a user who wrote while nobody polled can be answered,
    /// and a STOP sent meanwhile is applied.
    pub const DEFAULT_FIRST_LOOKBACK: Duration = Duration::from_secs(24 * 60 * 60);
    /// The longest wait between polls after failures, whatever `every` is below it.
    pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

    /// Polls every `every`, with the default overlap and first look back.
    pub fn every(every: Duration) -> Self {
        Self {
            every,
            overlap: Self::DEFAULT_OVERLAP,
            first_lookback: Self::DEFAULT_FIRST_LOOKBACK,
        }
    }

    /// How long to wait after `failures` polls in a row failed: `every`, doubled for each
    /// failure after the first, never more than [`MAX_BACKOFF`](Self::MAX_BACKOFF) (or
    /// `every`, when that is longer).
    pub fn pause_after(&self, failures: u32) -> Duration {
        let doubled = self
            .every
            .saturating_mul(1u32 << failures.saturating_sub(1).min(16));
        doubled.min(Self::MAX_BACKOFF.max(self.every))
    }
}

impl Default for PollConfig {
    /// Every 30 seconds.
    fn default() -> Self {
        Self::every(Duration::from_secs(30))
    }
}

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PollReport {
    /// The provider was asked for what was sent from this time on.
    pub since: DateTime<Utc>,
    /// The mark kept for the next poll (when this one started).
    pub until: DateTime<Utc>,
    /// Messages the provider listed.
    pub listed: usize,
    /// Statuses that moved a message forward.
    pub applied: usize,
    /// Statuses kept as receipts that did not move their message (a late `sent` after
    /// `delivered`).
    pub ignored: usize,
    /// Statuses of SIDs not recorded yet, kept until they are.
    pub parked: usize,
    /// Inbound messages recorded (commands applied).
    pub inbound: usize,
    /// Statuses and inbound messages recorded before (by a webhook or an earlier poll):
    /// nothing was done again.
    pub repeated: usize,
    /// Sent messages still in the provider's hands (`accepted`, `queued`, `sending`): nothing
    /// to record.
    pub in_queue: usize,
    /// Listed messages whose fields could not be read (no SID, an unreadable sender); logged
    /// and passed over.
    pub refused: usize,
}

impl PollReport {
    /// Whether the poll changed anything.
    pub fn changed_anything(&self) -> bool {
        self.applied + self.ignored + self.parked + self.inbound > 0
    }
}

/// Why a poll did not finish; the next one reads the same window again.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// The provider's history could not be read.
    #[error("cannot read the provider's messages: {0}")]
    History(#[from] HistoryError),
    /// What was read could not be stored.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Polls one provider's history into the engine (see the module docs). Made by
/// [`Engine::poller`]; driven by [`run`](Poller::run), or poll by poll in tests.
pub struct Poller {
    engine: Engine,
    history: Arc<dyn MessageHistory>,
    config: PollConfig,
    source: String,
}

impl Engine {
    /// A poller of `history` into this engine.
    pub fn poller(&self, history: Arc<dyn MessageHistory>, config: PollConfig) -> Poller {
        Poller {
            engine: self.clone(),
            source: history.source(),
            history,
            config,
        }
    }
}

/// Whether a status says more than that the provider holds the message, which its answer to
/// the send said already.
fn says_more_than_accepted(fields: &std::collections::BTreeMap<String, String>) -> bool {
    let status = fields
        .get("MessageStatus")
        .or_else(|| fields.get("SmsStatus"));
    status
        .and_then(|status| MessageStatus::from_twilio(status))
        .is_some_and(|status| status != MessageStatus::Sending)
}

impl Poller {
    /// One poll: reads what the provider listed since a little before the last poll started,
    /// applies it oldest first through the webhooks' paths, then moves the mark.
    pub async fn poll_once(&self) -> Result<PollReport, PollError> {
        let span = tracing::debug_span!("poll", source = %self.source);
        self.poll().instrument(span).await
    }

    async fn poll(&self) -> Result<PollReport, PollError> {
        // To the millisecond, as the mark is kept.
        let started = self.engine.clock.now().trunc_subsecs(3);
        let mark = self
            .engine
            .store
            .polled_until(&self.source)
            .await
            .map_err(EngineError::from)?;
        let since = match mark {
            Some(mark) => mark - chrono_duration(self.config.overlap),
            None => started - chrono_duration(self.config.first_lookback),
        };
        let mut listed = self.history.messages_since(since).await?;
        // The provider answers oldest first; the stable sort keeps its order within a second.
        listed.sort_by_key(|message| (message.sent_at.is_none(), message.sent_at));
        let mut report = PollReport {
            since,
            until: started,
            listed: listed.len(),
            ..PollReport::default()
        };
        for message in listed {
            self.apply(message, started, &mut report).await?;
        }
        self.engine
            .store
            .set_polled_until(&self.source, started)
            .await
            .map_err(EngineError::from)?;
        Ok(report)
    }

    /// Passes one listed message to its webhook's path and counts what it did.
    async fn apply(
        &self,
        message: ReportedMessage,
        started: DateTime<Utc>,
        report: &mut PollReport,
    ) -> Result<(), PollError> {
        let sid = message
            .fields
            .get("MessageSid")
            .cloned()
            .unwrap_or_default();
        let outcome = match message.direction {
            Direction::Sent if !says_more_than_accepted(&message.fields) => {
                report.in_queue += 1;
                return Ok(());
            }
            Direction::Sent => self
                .engine
                .receive_status(message.fields)
                .await
                .map(|receipt| match receipt.outcome {
                    ReceiptOutcome::Applied(_) => report.applied += 1,
                    ReceiptOutcome::Ignored(_) => report.ignored += 1,
                    ReceiptOutcome::Parked => report.parked += 1,
                    ReceiptOutcome::Duplicate => report.repeated += 1,
                }),
            Direction::Received => {
                // Never later than now: a provider clock ahead of ours must not open a
                // window that has not begun.
                let received_at = message.sent_at.map_or(started, |at| at.min(started));
                self.engine
                    .receive_inbound_at(message.fields, received_at)
                    .await
                    .map(|receipt| {
                        if receipt.duplicate {
                            report.repeated += 1;
                        } else {
                            report.inbound += 1;
                        }
                    })
            }
        };
        match outcome {
            Ok(()) => Ok(()),
            Err(EngineError::Invalid(errors)) => {
                let reasons: Vec<String> = errors.iter().map(ToString::to_string).collect();
                tracing::warn!(%sid, reasons = ?reasons, "a listed message could not be read");
                report.refused += 1;
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Polls every [`PollConfig::every`] until `shutdown` completes. A poll that fails is
    /// logged and tried again after a longer pause each time ([`PollConfig::pause_after`]);
    /// nothing stops the loop but the shutdown. A poll cut short by it is read again at the
    /// next start.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        tracing::info!(
            source = %self.source,
            every = ?self.config.every,
            "polling the provider for statuses and inbound messages"
        );
        let mut failures = 0u32;
        loop {
            let outcome = tokio::select! {
                biased;
                () = &mut shutdown => break,
                outcome = self.poll_once() => outcome,
            };
            let pause = match outcome {
                Ok(report) => {
                    failures = 0;
                    if report.changed_anything() || report.refused > 0 {
                        tracing::info!(
                            listed = report.listed,
                            applied = report.applied,
                            ignored = report.ignored,
                            parked = report.parked,
                            inbound = report.inbound,
                            refused = report.refused,
                            "polled the provider"
                        );
                    } else {
                        tracing::debug!(listed = report.listed, "polled the provider: nothing new");
                    }
                    self.config.every
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let pause = self.config.pause_after(failures);
                    tracing::warn!(%error, failures, retry_in = ?pause, "could not poll the provider");
                    pause
                }
            };
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        tracing::info!(source = %self.source, "polling stopped");
    }
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_by_doubling_up_to_five_minutes() {
        let config = PollConfig::every(Duration::from_secs(10));
        let pauses: Vec<u64> = (1..=7).map(|n| config.pause_after(n).as_secs()).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(config.pause_after(u32::MAX), Duration::from_secs(300));
        let slow = PollConfig::every(Duration::from_secs(600));
        assert_eq!(slow.pause_after(3), Duration::from_secs(600));
    }

    #[test]
    fn only_statuses_past_the_providers_queue_are_news() {
        let fields = |status: &str| {
            std::collections::BTreeMap::from([("MessageStatus".to_owned(), status.to_owned())])
        };
        for status in ["accepted", "queued", "sending", "received", "teleported"] {
            assert!(!says_more_than_accepted(&fields(status)), "{status}");
        }
        for status in [
            "sent",
            "delivered",
            "read",
            "failed",
            "undelivered",
            "canceled",
        ] {
            assert!(says_more_than_accepted(&fields(status)), "{status}");
        }
    }
}
