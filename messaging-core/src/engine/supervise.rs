//! Campaign supervision, run by the dispatcher about once a second: scheduled campaigns
//! start at `schedule.start_at`, campaigns past `schedule.end_at` end (what they had not sent
//! is skipped with the reason), and a manual campaign whose every message has gone completes.

use std::collections::HashSet;

use crate::domain::{
    AuditDecision, Campaign, CampaignCommand, CampaignStatus, MessageStatus, Trigger,
};
use crate::store::{CampaignQuery, PageRequest};

use super::{Engine, EngineError};

/// What one supervision pass changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Supervision {
    /// Scheduled campaigns launched because their start time came.
    pub launched: Vec<Campaign>,
    /// Campaigns completed: past their end time, or with everything sent.
    pub completed: Vec<Campaign>,
}

impl Engine {
    /// Starts, ends and completes campaigns as their schedules and outboxes say (see the
    /// module docs). Idempotent; one campaign's failure does not stop the others.
    pub async fn supervise_campaigns(&self) -> Result<Supervision, EngineError> {
        let mut done = Supervision::default();
        let now = self.clock.now();
        let mut campaigns = self.campaigns_in(CampaignStatus::Scheduled).await?;
        campaigns.extend(self.campaigns_in(CampaignStatus::Running).await?);
        // Read after the campaigns: a launch opens its run before the campaign runs, so a
        // campaign seen running has its run in this list until its fan-out has written
        // everything. (Read before, a launch in between would look finished with nothing to
        // send, and be completed before its messages were written.)
        let fanning_out: HashSet<_> = self
            .store
            .unfinished_runs()
            .await?
            .into_iter()
            .map(|run| run.campaign_id)
            .collect();
        for campaign in campaigns {
            let id = campaign.id;
            let result = self.supervise(campaign, fanning_out.contains(&id), now, &mut done);
            if let Err(error) = result.await {
                tracing::error!(campaign = %id, %error, "could not supervise a campaign");
            }
        }
        Ok(done)
    }

    async fn supervise(
        &self,
        campaign: Campaign,
        fanning_out: bool,
        now: chrono::DateTime<chrono::Utc>,
        done: &mut Supervision,
    ) -> Result<(), EngineError> {
        let manual = campaign.trigger == Trigger::Manual;
        if let Some(end) = campaign.schedule.end_at
            && now >= end
        {
            let skipped = self
                .store
                .skip_unsent(
                    campaign.id,
                    AuditDecision {
                        step: "schedule".into(),
                        outcome: MessageStatus::Skipped,
                        reason: format!("the campaign ended at {}", end.to_rfc3339()),
                        at: now,
                    },
                )
                .await?;
            let ended = self
                .command_campaign(campaign.id, CampaignCommand::Complete)
                .await?;
            tracing::info!(campaign = %campaign.id, skipped, "campaign ended at its end time");
            done.completed.push(ended);
            return Ok(());
        }
        match campaign.status {
            CampaignStatus::Scheduled
                if manual && campaign.schedule.start_at.is_some_and(|start| now >= start) =>
            {
                let (launched, _) = self.launch_campaign(campaign.id).await?;
                done.launched.push(launched);
            }
            CampaignStatus::Running
                if manual && !fanning_out && self.store.count_unsent(campaign.id).await? == 0 =>
            {
                let completed = self
                    .command_campaign(campaign.id, CampaignCommand::Complete)
                    .await?;
                tracing::info!(campaign = %campaign.id, "campaign completed: everything sent");
                done.completed.push(completed);
            }
            _ => {}
        }
        Ok(())
    }

    /// Every campaign in `status`.
    pub(super) async fn campaigns_in(
        &self,
        status: CampaignStatus,
    ) -> Result<Vec<Campaign>, EngineError> {
        let query = CampaignQuery {
            status: Some(status),
            ..CampaignQuery::default()
        };
        let mut page = PageRequest::first(1_000);
        let mut all = Vec::new();
        loop {
            let found = self.store.list_campaigns(&query, &page).await?;
            all.extend(found.items);
            match found.next_cursor {
                Some(cursor) => page.cursor = Some(cursor),
                None => return Ok(all),
            }
        }
    }
}
