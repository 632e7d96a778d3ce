//! Trigger events, one at a time, and what they triggered: the campaign runs each event
//! opened, or, when it opened none, the campaigns that would listen for it once launched or
//! resumed. Which campaigns listen is [`CampaignStatus::listens_for_events`]; this file only
//! explains it.

use std::collections::HashMap;

use serde::Serialize;

use crate::domain::{
    Campaign, CampaignCommand, CampaignId, CampaignStatus, EventId, RunId, TriggerEvent,
};
use crate::store::{Page, PageRequest, RecordOutcome};

use super::fanout::RunSummary;
use super::{Engine, EngineError};

/// A campaign, as an answer about events names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CampaignSummary {
    /// Its id.
    pub id: CampaignId,
    /// Its name.
    pub name: String,
    /// Its state now.
    pub status: CampaignStatus,
}

impl From<&Campaign> for CampaignSummary {
    fn from(campaign: &Campaign) -> Self {
        Self {
            id: campaign.id,
            name: campaign.name.clone(),
            status: campaign.status,
        }
    }
}

/// A campaign run an event opened, and what its fan-out wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenedRun {
    /// The campaign.
    pub campaign: CampaignSummary,
    /// The run.
    pub run_id: RunId,
    /// Messages the run's fan-out wrote into the outbox (0 when it is still to be fanned out,
    /// for a campaign paused meanwhile).
    pub messages: u64,
}

/// A campaign triggered by an event's name that does not listen now, and the command that
/// would make it listen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdleListener {
    /// The campaign (a draft, or paused).
    pub campaign: CampaignSummary,
    /// `launch` for a draft (it arms it without sending anything), `resume` for a paused one.
    pub command: CampaignCommand,
}

/// What recording one event did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventOutcome {
    /// The event: the one given, or, for a duplicate, the one recorded first.
    pub event: TriggerEvent,
    /// An event with the same id was recorded before; nothing was recorded or triggered again.
    pub duplicate: bool,
    /// The runs it opened, one per campaign listening for it.
    pub runs: Vec<OpenedRun>,
    /// The campaigns triggered by its name that do not listen (drafts, paused ones).
    pub idle_listeners: Vec<IdleListener>,
}

impl EventOutcome {
    /// Why the event triggered nothing, for a person; `None` when it opened a run.
    pub fn explanation(&self) -> Option<String> {
        match (self.runs.is_empty(), self.duplicate) {
            (false, _) => None,
            (true, true) => Some(format!(
                "event {} was recorded before; it triggered nothing again",
                self.event.external_id.as_deref().unwrap_or_default()
            )),
            (true, false) => Some(nothing_listens(&self.event.name, &self.idle_listeners)),
        }
    }
}

/// "no campaign listens for `name`", and what would make the idle ones listen.
pub(super) fn nothing_listens(name: &str, idle: &[IdleListener]) -> String {
    let mut text = format!("no campaign listens for `{}`", name.trim());
    let remedies: Vec<String> = idle
        .iter()
        .map(|listener| {
            format!(
                "campaign \"{}\" ({}) is {}: {} it to listen",
                listener.campaign.name,
                listener.campaign.id,
                listener.campaign.status.as_str(),
                listener.command.as_str()
            )
        })
        .collect();
    if remedies.is_empty() {
        text.push_str(" (no campaign is triggered by that name)");
    } else {
        text.push_str("; ");
        text.push_str(&remedies.join("; "));
    }
    text
}

impl Engine {
    /// Records one event and fans out the runs of the campaigns listening for it, answering
    /// those runs, or the campaigns that would listen once launched or resumed. When an event
    /// with the same external id exists, nothing is recorded or triggered and the stored event
    /// is answered as a duplicate.
    pub async fn record_event(&self, event: TriggerEvent) -> Result<EventOutcome, EngineError> {
        let recorded = self
            .store
            .record_events(vec![event.clone()])
            .await?
            .into_iter()
            .next();
        // A repeat may follow a first attempt whose fan-out failed: this finishes it too.
        let completed = self.complete_runs().await?;
        let idle_listeners = self.idle_listeners(&event.name).await?;
        match (recorded, &event.external_id) {
            (Some(recorded), Some(id)) if recorded.outcome == RecordOutcome::Duplicate => {
                let stored = self
                    .store
                    .find_event(id)
                    .await?
                    .ok_or_else(|| EngineError::not_found("event", id))?;
                Ok(EventOutcome {
                    event: stored,
                    duplicate: true,
                    runs: Vec::new(),
                    idle_listeners,
                })
            }
            (recorded, _) => {
                let opened = recorded.map(|r| r.runs).unwrap_or_default();
                let runs = self.opened_runs(&opened, &completed).await?;
                Ok(EventOutcome {
                    event,
                    duplicate: false,
                    runs,
                    idle_listeners,
                })
            }
        }
    }

    /// The campaigns triggered by `event_name` that do not listen now but would once
    /// launched or resumed.
    pub(super) async fn idle_listeners(
        &self,
        event_name: &str,
    ) -> Result<Vec<IdleListener>, EngineError> {
        Ok(self
            .store
            .campaigns_triggered_by(event_name)
            .await?
            .iter()
            .filter(|campaign| campaign.is_triggered_by(event_name))
            .filter_map(|campaign| {
                Some(IdleListener {
                    command: campaign.status.command_to_listen()?,
                    campaign: campaign.into(),
                })
            })
            .collect())
    }

    /// The runs `opened` (campaign, run) with their campaigns and what their fan-outs in
    /// `completed` wrote.
    pub(super) async fn opened_runs(
        &self,
        opened: &[(CampaignId, RunId)],
        completed: &[RunSummary],
    ) -> Result<Vec<OpenedRun>, EngineError> {
        let messages: HashMap<RunId, u64> = completed
            .iter()
            .map(|summary| (summary.run.id, summary.messages))
            .collect();
        let campaigns = self
            .campaign_summaries(opened.iter().map(|(c, _)| *c).collect())
            .await?;
        Ok(opened
            .iter()
            .filter_map(|(campaign, run)| {
                Some(OpenedRun {
                    campaign: campaigns.get(campaign)?.clone(),
                    run_id: *run,
                    messages: messages.get(run).copied().unwrap_or(0),
                })
            })
            .collect())
    }

    /// The summaries of the campaigns with these ids (those deleted meanwhile are left out).
    pub(super) async fn campaign_summaries(
        &self,
        ids: Vec<CampaignId>,
    ) -> Result<HashMap<CampaignId, CampaignSummary>, EngineError> {
        let mut summaries = HashMap::new();
        for id in ids {
            if summaries.contains_key(&id) {
                continue;
            }
            if let Some(campaign) = self.store.get_campaign(id).await? {
                summaries.insert(id, CampaignSummary::from(&campaign));
            }
        }
        Ok(summaries)
    }

    /// One event.
    pub async fn get_event(&self, id: EventId) -> Result<TriggerEvent, EngineError> {
        self.store
            .get_event(id)
            .await?
            .ok_or_else(|| EngineError::not_found("event", id))
    }

    /// Events, newest first.
    pub async fn list_events(&self, page: &PageRequest) -> Result<Page<TriggerEvent>, EngineError> {
        Ok(self.store.list_events(page).await?)
    }
}
