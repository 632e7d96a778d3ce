//! Campaign supervision, run by the dispatcher about once a second: scheduled campaigns
//! start at `schedule.start_at`, campaigns past `schedule.end_at` end (what they had not sent
//! is skipped with the reason), and a manual campaign whose every message has gone completes.

use std::collections::HashSet;

use crate::domain::{
    AuditDecision, Campaign, CampaignCommand, CampaignStatus, MessageStatus, Trigger,
};
use crate::store::{CampaignQuery, PageRequest};

use super::{Engine, EngineError, Stats};

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
                self.log_completion(&completed).await?;
                done.completed.push(completed);
            }
            _ => {}
        }
        Ok(())
    }

    /// Says how a completed campaign ended, loudly when it sent nothing at all.
    async fn log_completion(&self, campaign: &Campaign) -> Result<(), EngineError> {
        let stats = self.stats(Some(campaign.id)).await?;
        match completion(&stats) {
            Completion::Sent(summary) => {
                tracing::info!(campaign = %campaign.id, "campaign completed: {summary}")
            }
            Completion::NothingSent(summary) => tracing::warn!(
                campaign = %campaign.id,
                "campaign completed without sending anything: {summary}"
            ),
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

/// How a campaign ended, for its completion log line.
#[derive(Debug, PartialEq, Eq)]
enum Completion {
    /// Some messages went to the provider: how many, and what else happened.
    Sent(String),
    /// None did: what happened to them instead, and the commonest reason.
    NothingSent(String),
}

fn completion(stats: &Stats) -> Completion {
    use MessageStatus::*;
    let count = |statuses: &[MessageStatus]| -> u64 {
        statuses
            .iter()
            .map(|s| stats.by_status.get(s).copied().unwrap_or(0))
            .sum()
    };
    // A campaign completes only once each of its `sending` messages was taken by the
    // provider (it has its SID and waits for its statuses): those went too.
    let sent = count(&[Sending, Sent, Delivered, Read, Undelivered]);
    let (skipped, failed) = (count(&[Skipped]), count(&[Failed]));
    let mut summary = format!("{sent} sent, {skipped} skipped, {failed} failed");
    if let Some(by) = stats.skipped_by_step.first() {
        summary.push_str(&format!(
            "; most skipped by {} ({}): {}",
            by.step, by.count, by.reason
        ));
    }
    if sent == 0 {
        Completion::NothingSent(summary)
    } else {
        Completion::Sent(summary)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::store::SkippedBy;

    fn stats(by_status: &[(MessageStatus, u64)], skipped_by_step: Vec<SkippedBy>) -> Stats {
        Stats {
            messages: by_status.iter().map(|(_, n)| n).sum(),
            by_status: by_status.iter().copied().collect(),
            delivery_percent: None,
            failures_by_error_code: BTreeMap::new(),
            skipped_by_step,
            opted_out_users: None,
            inbound_messages: None,
            inbound_commands: None,
        }
    }

    #[test]
    fn a_campaign_that_skipped_everyone_is_not_reported_as_sent() {
        let window = SkippedBy {
            step: "whatsapp_window".into(),
            count: 3,
            reason: "outside WhatsApp's 24-hour window".into(),
        };
        let all_skipped = stats(&[(MessageStatus::Skipped, 3)], vec![window]);
        assert_eq!(
            completion(&all_skipped),
            Completion::NothingSent(
                "0 sent, 3 skipped, 0 failed; most skipped by whatsapp_window (3): outside \
                 WhatsApp's 24-hour window"
                    .into()
            )
        );
        let some_sent = stats(
            &[(MessageStatus::Delivered, 2), (MessageStatus::Failed, 1)],
            Vec::new(),
        );
        assert_eq!(
            completion(&some_sent),
            Completion::Sent("2 sent, 0 skipped, 1 failed".into())
        );
    }
}
