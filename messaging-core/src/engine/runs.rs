//! Completing campaign runs: every run opened but not fanned out yet (opened with an event,
//! cut short by a crash, or waiting for its paused campaign) is fanned out by
//! [`Engine::complete_runs`], which the dispatcher calls about once a second and which
//! recording events calls at once.
//!
//! A run that fails is never left looking busy. A failure that would happen again whatever
//! the moment (the template cannot be rendered, the segment is gone) pauses its campaign and
//! records the reason as the campaign's `problem`; after a fix, resuming the campaign tries
//! the run again. A failure that may pass (the database is busy) is retried with growing
//! pauses, from 1 s to a minute.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::fanout::{FanOut, RunSummary};
use super::{Engine, EngineError};
use crate::domain::{Campaign, CampaignCommand, CampaignStatus, RunId, Trigger};
use crate::store::CampaignRun;

/// The first pause before a run whose fan-out failed is tried again; it doubles each time.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// The longest pause between two attempts at one run.
const LAST_RETRY: Duration = Duration::from_secs(60);

/// When each run that failed for a passing reason may be tried again.
#[derive(Debug, Default)]
pub(super) struct RunRetries(Mutex<HashMap<RunId, (u32, DateTime<Utc>)>>);

impl RunRetries {
    fn due(&self, run: RunId, now: DateTime<Utc>) -> bool {
        let retries = self.0.lock().unwrap_or_else(|e| e.into_inner());
        retries.get(&run).is_none_or(|(_, at)| now >= *at)
    }

    /// Records a failed attempt and answers the pause until the next.
    fn failed(&self, run: RunId, now: DateTime<Utc>) -> Duration {
        let mut retries = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let attempts = retries.get(&run).map_or(0, |(n, _)| *n);
        let pause = FIRST_RETRY
            .saturating_mul(2u32.saturating_pow(attempts.min(16)))
            .min(LAST_RETRY);
        let at = now + chrono::Duration::from_std(pause).unwrap_or(chrono::Duration::MAX);
        retries.insert(run, (attempts + 1, at));
        pause
    }

    fn succeeded(&self, run: RunId) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&run);
    }
}

impl Engine {
    /// Fans out every run whose fan-out has not finished: runs opened by recorded events
    /// (for the campaigns listening for them), and runs cut short by a crash. Idempotent; the
    /// dispatcher calls it about once a second, and recording events calls it at once. Runs
    /// of paused campaigns wait for them to resume; runs of campaigns that ended are closed
    /// with what they have; a run whose last attempt failed waits for its retry time.
    pub async fn complete_runs(&self) -> Result<Vec<RunSummary>, EngineError> {
        let mut completed = Vec::new();
        let now = self.clock.now();
        for run in self.store.unfinished_runs().await? {
            if !self.run_retries.due(run.id, now) {
                continue;
            }
            // One run that cannot be completed now must not hold up the others.
            match self.complete_run(run.clone()).await {
                Ok(summary) => {
                    self.run_retries.succeeded(run.id);
                    completed.extend(summary);
                }
                Err(error) if is_lasting(&error) => {
                    self.run_retries.succeeded(run.id);
                    if let Some(campaign) = self.store.get_campaign(run.campaign_id).await? {
                        self.fan_out_failed(&campaign, &run.trigger_key, &error)
                            .await;
                    }
                }
                Err(error) => {
                    let pause = self.run_retries.failed(run.id, now);
                    tracing::warn!(
                        run = %run.id,
                        campaign = %run.campaign_id,
                        %error,
                        retry_in = ?pause,
                        "could not complete a campaign run; trying again later"
                    );
                }
            }
        }
        Ok(completed)
    }

    /// Fans out one unfinished run if its campaign still wants it, closes it if the campaign
    /// never will, and leaves it for later if the campaign is paused.
    async fn complete_run(&self, run: CampaignRun) -> Result<Option<RunSummary>, EngineError> {
        let Some(campaign) = self.store.get_campaign(run.campaign_id).await? else {
            return Ok(None);
        };
        let event = match run.event_id {
            Some(id) => self.store.get_event(id).await?,
            None => None,
        };
        let wanted = match (&campaign.trigger, &event) {
            (Trigger::Manual, None) => run.event_id.is_none(),
            (Trigger::Event { event: name }, Some(event)) => event.matches(name),
            _ => false,
        };
        let listening = match campaign.trigger {
            Trigger::Manual => campaign.status == CampaignStatus::Running,
            Trigger::Event { .. } => campaign.status.listens_for_events(),
        };
        if wanted && listening {
            // A run someone else is fanning out is theirs to finish.
            return Ok(
                match self.fan_out_run(&campaign, run, event.as_ref()).await? {
                    FanOut::Done(summary) => Some(summary),
                    FanOut::Finished(_) | FanOut::Elsewhere => None,
                },
            );
        }
        if !wanted || campaign.status.is_terminal() {
            self.store.finish_run(run.id).await?;
        }
        Ok(None)
    }

    /// Deals with a fan-out of `campaign` (its run `trigger_key`) that failed with `error`:
    /// a lasting failure pauses the campaign and records the reason as its problem; a passing
    /// one leaves the run to be tried again.
    pub(super) async fn fan_out_failed(
        &self,
        campaign: &Campaign,
        trigger_key: &str,
        error: &EngineError,
    ) {
        if !is_lasting(error) {
            return;
        }
        let problem = format!("its run ({trigger_key}) could not be fanned out: {error}");
        tracing::error!(campaign = %campaign.id, %problem, "campaign paused");
        if let Err(failure) = self
            .store
            .set_campaign_problem(campaign.id, Some(problem))
            .await
        {
            tracing::error!(campaign = %campaign.id, %failure, "could not record the problem");
        }
        if matches!(
            campaign.status,
            CampaignStatus::Running | CampaignStatus::Scheduled
        ) && let Err(failure) =
            // Boxed: pausing is a campaign command, and resuming one completes runs.
            Box::pin(self.command_campaign(campaign.id, CampaignCommand::Pause)).await
        {
            tracing::error!(campaign = %campaign.id, %failure, "could not pause the campaign");
        }
    }
}

/// Whether a fan-out failure will happen again until someone changes something (the
/// template, the segment); storage failures may pass.
fn is_lasting(error: &EngineError) -> bool {
    !matches!(error, EngineError::Store(_) | EngineError::Conflict(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_of_a_run_back_off_from_a_second_to_a_minute() {
        let retries = RunRetries::default();
        let (run, now) = (RunId::new(), Utc::now());
        assert!(retries.due(run, now));
        let pauses: Vec<u64> = (0..9).map(|_| retries.failed(run, now).as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert!(!retries.due(run, now + chrono::Duration::seconds(59)));
        assert!(retries.due(run, now + chrono::Duration::seconds(60)));
        retries.succeeded(run);
        assert!(retries.due(run, now));
    }
}
