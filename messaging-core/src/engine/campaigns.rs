//! Campaigns: their definitions and their lifecycle (draft → scheduled → running ⇄ paused →
//! completed, or cancelled). Sending is driven from the outbox by the dispatcher; this file
//! only keeps the definitions consistent and moves campaigns between states.

use crate::domain::{
    AuditDecision, Campaign, CampaignCommand, CampaignDraft, CampaignId, CampaignStatus,
    FieldError, MessageStatus, Trigger,
};
use crate::store::{CampaignQuery, Page, PageRequest};

use super::fanout::LAUNCH;
use super::{Engine, EngineError};

impl Engine {
    /// Creates a campaign, as a draft unless the draft asks for `scheduled`.
    pub async fn create_campaign(&self, draft: CampaignDraft) -> Result<Campaign, EngineError> {
        let status = match draft.status {
            None | Some(CampaignStatus::Draft) => CampaignStatus::Draft,
            Some(CampaignStatus::Scheduled) => CampaignStatus::Scheduled,
            Some(other) => {
                return Err(EngineError::invalid(
                    "status",
                    format!("a new campaign is draft or scheduled, not {other:?}").to_lowercase(),
                ));
            }
        };
        self.check_campaign(&draft).await?;
        let now = self.clock.now();
        let campaign = draft.into_campaign(CampaignId::new(), status, now, now);
        self.store.insert_campaign(&campaign).await?;
        tracing::info!(campaign = %campaign.id, status = ?campaign.status, "created campaign");
        Ok(campaign)
    }

    /// Replaces a campaign's definition. Only campaigns that are not sending (draft,
    /// scheduled, paused) can change; the state itself changes only through
    /// [`Engine::command_campaign`].
    pub async fn update_campaign(
        &self,
        id: CampaignId,
        draft: CampaignDraft,
    ) -> Result<Campaign, EngineError> {
        let stored = self.get_campaign(id).await?;
        if !matches!(
            stored.status,
            CampaignStatus::Draft | CampaignStatus::Scheduled | CampaignStatus::Paused
        ) {
            return Err(EngineError::Conflict(
                format!(
                    "campaign {id} is {:?} and can no longer be changed; pause it first",
                    stored.status
                )
                .to_lowercase(),
            ));
        }
        self.check_campaign(&draft).await?;
        let campaign = draft.into_campaign(id, stored.status, stored.created_at, self.clock.now());
        if !self
            .store
            .update_campaign(&campaign, stored.status, stored.updated_at)
            .await?
        {
            return Err(changed_meanwhile(id));
        }
        Ok(campaign)
    }

    /// One campaign.
    pub async fn get_campaign(&self, id: CampaignId) -> Result<Campaign, EngineError> {
        self.store
            .get_campaign(id)
            .await?
            .ok_or_else(|| EngineError::not_found("campaign", id))
    }

    /// Campaigns, oldest first.
    pub async fn list_campaigns(
        &self,
        query: &CampaignQuery,
        page: &PageRequest,
    ) -> Result<Page<Campaign>, EngineError> {
        Ok(self.store.list_campaigns(query, page).await?)
    }

    /// Deletes a campaign that is not running (pause or cancel it first).
    pub async fn delete_campaign(&self, id: CampaignId) -> Result<(), EngineError> {
        let stored = self.get_campaign(id).await?;
        if stored.status == CampaignStatus::Running {
            return Err(EngineError::Conflict(format!(
                "campaign {id} is running; pause or cancel it before deleting it"
            )));
        }
        if self.store.delete_campaign(id, stored.status).await? {
            Ok(())
        } else {
            Err(changed_meanwhile(id))
        }
    }

    /// Moves a campaign through its lifecycle (launch, pause, resume, cancel…). A move the
    /// current state does not allow is a conflict, and so is losing a race with another
    /// process moving the same campaign.
    pub async fn command_campaign(
        &self,
        id: CampaignId,
        command: CampaignCommand,
    ) -> Result<Campaign, EngineError> {
        let stored = self.get_campaign(id).await?;
        let next = stored
            .status
            .apply(command)
            .map_err(|e| EngineError::Conflict(e.to_string().to_lowercase()))?;
        let now = self.clock.now();
        let manual = stored.trigger == Trigger::Manual;
        if manual && next == CampaignStatus::Running {
            // The launch run is opened before the campaign runs, so a crash in between leaves
            // a run that `complete_runs` finishes, never a running campaign without one.
            self.store.open_run(id, LAUNCH, None, now).await?;
        }
        if !self
            .store
            .set_campaign_status(id, stored.status, next, now)
            .await?
        {
            return Err(changed_meanwhile(id));
        }
        tracing::info!(campaign = %id, from = ?stored.status, to = ?next, "campaign moved");
        let campaign = Campaign {
            status: next,
            updated_at: now,
            ..stored
        };
        if next == CampaignStatus::Cancelled {
            let decision = AuditDecision {
                step: "campaign".into(),
                outcome: MessageStatus::Skipped,
                reason: "the campaign was cancelled".into(),
                at: now,
            };
            let skipped = self.store.skip_unsent(id, decision).await?;
            tracing::info!(campaign = %id, skipped, "unsent messages of a cancelled campaign skipped");
        }
        if command == CampaignCommand::Resume {
            // Runs that waited while the campaign was paused (a launch whose fan-out had not
            // finished, a scheduled campaign's first run) go on now; one that fails again
            // pauses the campaign again, which the answer shows.
            self.complete_runs().await?;
            return self.get_campaign(id).await;
        }
        Ok(campaign)
    }

    /// Checks that a campaign's definition refers to things that exist and makes sense.
    async fn check_campaign(&self, draft: &CampaignDraft) -> Result<(), EngineError> {
        let mut problems = Vec::new();
        if draft.name.trim().is_empty() {
            problems.push(FieldError::new("name", "must not be empty"));
        }
        if self.store.get_template(draft.template_id).await?.is_none() {
            problems.push(FieldError::new(
                "template_id",
                format!("no template {}", draft.template_id),
            ));
        }
        if let Some(segment) = draft.segment_id
            && self.store.get_segment(segment).await?.is_none()
        {
            problems.push(FieldError::new(
                "segment_id",
                format!("no segment {segment}"),
            ));
        }
        if let Trigger::Event { event } = &draft.trigger
            && event.trim().is_empty()
        {
            problems.push(FieldError::new(
                "trigger.event",
                "name the event (alert_name or event name) that starts the campaign",
            ));
        }
        if let (Some(start), Some(end)) = (draft.schedule.start_at, draft.schedule.end_at)
            && end <= start
        {
            problems.push(FieldError::new(
                "schedule.end_at",
                "must be after schedule.start_at",
            ));
        }
        if draft.rate_limit_per_second == Some(0) {
            problems.push(FieldError::new(
                "rate_limit_per_second",
                "must be at least 1 (leave it out for no campaign limit)",
            ));
        }
        if let Some(quiet) = draft.quiet_hours
            && quiet.start == quiet.end
        {
            problems.push(FieldError::new(
                "quiet_hours",
                "start and end are equal; leave quiet_hours out for none",
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(EngineError::Invalid(problems))
        }
    }
}

fn changed_meanwhile(id: CampaignId) -> EngineError {
    EngineError::Conflict(format!(
        "campaign {id} was changed by someone else meanwhile; reload it and try again"
    ))
}
