//! Ingestions: streaming imports of users and events, each kept as an [`Ingestion`] record
//! (when, from where, its report, whether it completed) that can be listed afterwards. An
//! events ingestion also answers, per event name, the campaign runs its events opened.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{CampaignId, IngestionId, RunId, TriggerEvent};
use crate::ingest::{
    self, IngestError, IngestReport, IngestSource, Ingestion, IngestionEnd, IngestionFormat,
    IngestionKind, Outcome, UserFileFormat,
};
use crate::segment::sql::event_name_key;
use crate::store::{Page, PageRequest, RecordOutcome};

use super::events::{CampaignSummary, IdleListener, nothing_listens};
use super::{Engine, EngineError};

/// The most event names an events ingestion answers one by one; events of further names are
/// only counted.
pub const MAX_LISTED_EVENT_NAMES: usize = 1_000;

/// The runs the events of one name opened for one campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TriggeredCampaign {
    /// The campaign.
    pub campaign: CampaignSummary,
    /// Runs opened (one per event).
    pub runs: u64,
    /// Messages their fan-outs wrote into the outbox.
    pub messages: u64,
    /// The first runs' ids (at most 100).
    pub run_ids: Vec<RunId>,
}

/// What the events of one name in an ingestion triggered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventNameOutcome {
    /// The name, as its first event wrote it.
    pub name: String,
    /// Events of this name newly recorded.
    pub recorded: u64,
    /// Events of this name recorded before (they triggered nothing again).
    pub duplicates: u64,
    /// The campaigns the events opened runs for.
    pub triggered: Vec<TriggeredCampaign>,
    /// The campaigns triggered by this name that do not listen (drafts, paused ones).
    pub idle_listeners: Vec<IdleListener>,
}

impl EventNameOutcome {
    /// Why the events of this name triggered nothing, for a person; `None` when they opened
    /// a run.
    pub fn explanation(&self) -> Option<String> {
        if !self.triggered.is_empty() {
            return None;
        }
        if self.recorded == 0 {
            return Some(format!(
                "every `{}` event was recorded before; nothing was triggered again",
                self.name.trim()
            ));
        }
        Some(nothing_listens(&self.name, &self.idle_listeners))
    }
}

/// An events ingestion's record and what its events triggered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventsIngestion {
    /// The record kept of it.
    pub ingestion: Ingestion,
    /// Per event name, in the order names first appear, at most
    /// [`MAX_LISTED_EVENT_NAMES`] of them.
    pub by_name: Vec<EventNameOutcome>,
    /// Events of names beyond those listed.
    pub events_of_names_not_listed: u64,
}

/// The events of one name, as an ingestion records them.
#[derive(Default)]
struct NameTally {
    name: String,
    recorded: u64,
    duplicates: u64,
    runs: Vec<(CampaignId, RunId)>,
}

/// Per event name, what the batches written so far did.
#[derive(Default)]
struct EventTally {
    names: Vec<NameTally>,
    index: HashMap<String, usize>,
    events_of_names_not_listed: u64,
}

impl EventTally {
    fn add(&mut self, name: &str, outcome: RecordOutcome, runs: Vec<(CampaignId, RunId)>) {
        let key = event_name_key(name);
        let slot = match self.index.get(&key) {
            Some(&slot) => slot,
            None if self.names.len() < MAX_LISTED_EVENT_NAMES => {
                self.names.push(NameTally {
                    name: name.trim().to_owned(),
                    ..NameTally::default()
                });
                self.index.insert(key, self.names.len() - 1);
                self.names.len() - 1
            }
            None => {
                self.events_of_names_not_listed += 1;
                return;
            }
        };
        let tally = &mut self.names[slot];
        match outcome {
            RecordOutcome::Recorded => tally.recorded += 1,
            RecordOutcome::Duplicate => tally.duplicates += 1,
        }
        tally.runs.extend(runs);
    }
}

impl Engine {
    /// Imports users from a CSV or JSON stream, merging them into the stored ones, reports on
    /// every row and keeps the report as an [`Ingestion`] (a stopped import too, with what it
    /// did before the stop). Memory stays flat whatever the size of the input.
    pub async fn ingest_users<R>(
        &self,
        input: R,
        format: UserFileFormat,
        source: IngestSource,
    ) -> Result<Ingestion, EngineError>
    where
        R: Read + Send + 'static,
    {
        let started_at = self.clock.now();
        let store = self.store.clone();
        let clock = self.clock.clone();
        let result = ingest::run(
            move |sink| match format {
                UserFileFormat::Csv => ingest::parse_users_csv(input, sink),
                UserFileFormat::Json => ingest::parse_users_json(input, sink),
            },
            move |batch| {
                let store = store.clone();
                let now = clock.now();
                async move {
                    let outcomes = store.upsert_users(batch, now).await?;
                    Ok(outcomes.into_iter().map(Outcome::from).collect())
                }
            },
        )
        .await;
        let ingestion = self
            .keep_ingestion(
                IngestionKind::Users,
                source,
                format.into(),
                started_at,
                result,
            )
            .await?;
        let report = &ingestion.report;
        tracing::info!(
            ingestion = %ingestion.id,
            total = report.total,
            inserted = report.inserted,
            updated = report.updated,
            duplicates = report.duplicates,
            invalid = report.invalid,
            "ingested users"
        );
        Ok(ingestion)
    }

    /// Records trigger events from a JSONL stream, fans out the runs of the campaigns they
    /// trigger, keeps the report as an [`Ingestion`], and answers per event name the runs
    /// opened or why none were. An event whose `id` was recorded before is counted as a
    /// duplicate and triggers nothing again.
    pub async fn ingest_events<R>(
        &self,
        input: R,
        source: IngestSource,
    ) -> Result<EventsIngestion, EngineError>
    where
        R: Read + Send + 'static,
    {
        let started_at = self.clock.now();
        let store = self.store.clone();
        let tally = Arc::new(Mutex::new(EventTally::default()));
        let written = tally.clone();
        let result = ingest::run(
            move |sink| ingest::parse_events(input, started_at, sink),
            move |batch: Vec<TriggerEvent>| {
                let (store, tally) = (store.clone(), written.clone());
                async move {
                    let names: Vec<String> = batch.iter().map(|e| e.name.clone()).collect();
                    let recorded = store.record_events(batch).await?;
                    let mut tally = tally.lock().unwrap_or_else(|e| e.into_inner());
                    let mut outcomes = Vec::with_capacity(recorded.len());
                    for (name, recorded) in names.iter().zip(recorded) {
                        outcomes.push(Outcome::from(recorded.outcome));
                        tally.add(name, recorded.outcome, recorded.runs);
                    }
                    Ok(outcomes)
                }
            },
        )
        .await;
        let tally = std::mem::take(&mut *tally.lock().unwrap_or_else(|e| e.into_inner()));
        // Runs opened before a stop are fanned out too: their events stay recorded.
        let recorded_any =
            tally.names.iter().any(|n| n.recorded > 0) || tally.events_of_names_not_listed > 0;
        let completed = if recorded_any {
            self.complete_runs().await?
        } else {
            Vec::new()
        };
        let ingestion = self
            .keep_ingestion(
                IngestionKind::Events,
                source,
                IngestionFormat::Jsonl,
                started_at,
                result,
            )
            .await?;
        let messages: HashMap<RunId, u64> = completed
            .iter()
            .map(|summary| (summary.run.id, summary.messages))
            .collect();
        let mut campaign_ids: Vec<CampaignId> = tally
            .names
            .iter()
            .flat_map(|n| n.runs.iter().map(|r| r.0))
            .collect();
        campaign_ids.sort_unstable();
        campaign_ids.dedup();
        let campaigns = self.campaign_summaries(campaign_ids).await?;
        let mut by_name = Vec::with_capacity(tally.names.len());
        for name in tally.names {
            let mut triggered: Vec<TriggeredCampaign> = Vec::new();
            for (campaign, run) in name.runs {
                let Some(summary) = campaigns.get(&campaign) else {
                    continue;
                };
                let slot = match triggered.iter().position(|t| t.campaign.id == campaign) {
                    Some(slot) => slot,
                    None => {
                        triggered.push(TriggeredCampaign {
                            campaign: summary.clone(),
                            runs: 0,
                            messages: 0,
                            run_ids: Vec::new(),
                        });
                        triggered.len() - 1
                    }
                };
                let entry = &mut triggered[slot];
                entry.runs += 1;
                entry.messages += messages.get(&run).copied().unwrap_or(0);
                if entry.run_ids.len() < 100 {
                    entry.run_ids.push(run);
                }
            }
            by_name.push(EventNameOutcome {
                idle_listeners: self.idle_listeners(&name.name).await?,
                name: name.name,
                recorded: name.recorded,
                duplicates: name.duplicates,
                triggered,
            });
        }
        let report = &ingestion.report;
        tracing::info!(
            ingestion = %ingestion.id,
            total = report.total,
            recorded = report.inserted,
            duplicates = report.duplicates,
            invalid = report.invalid,
            "ingested events"
        );
        Ok(EventsIngestion {
            ingestion,
            by_name,
            events_of_names_not_listed: tally.events_of_names_not_listed,
        })
    }

    /// Keeps the record of an ingestion that ended, completed or stopped, and answers it (or
    /// the error that stopped it, naming the record).
    async fn keep_ingestion(
        &self,
        kind: IngestionKind,
        source: IngestSource,
        format: IngestionFormat,
        started_at: DateTime<Utc>,
        result: Result<IngestReport, IngestError>,
    ) -> Result<Ingestion, EngineError> {
        let (report, end, error) = match result {
            Ok(report) => (report, IngestionEnd::Completed, None),
            Err(error) => {
                let reason = match &error {
                    IngestError::Stopped { cause, .. } => cause.to_string(),
                    other => other.to_string(),
                };
                let report = error.partial_report().cloned().unwrap_or_default();
                (report, IngestionEnd::Stopped { reason }, Some(error))
            }
        };
        let ingestion = Ingestion {
            id: IngestionId::new(),
            kind,
            source,
            format,
            started_at,
            finished_at: self.clock.now(),
            errors_listed: report.errors.len() as u64,
            report,
            end,
        };
        let kept = self.store.insert_ingestion(&ingestion).await;
        match (error, kept) {
            (None, kept) => {
                kept?;
                Ok(ingestion)
            }
            (Some(error), Ok(())) => Err(error.kept_as(ingestion.id).into()),
            (Some(error), Err(store_error)) => {
                // The import's own error is the one its caller needs to see.
                tracing::error!(%store_error, "could not keep the record of a stopped ingestion");
                Err(error.into())
            }
        }
    }

    /// One ingestion, with every invalid row its report lists.
    pub async fn get_ingestion(&self, id: IngestionId) -> Result<Ingestion, EngineError> {
        self.store
            .get_ingestion(id)
            .await?
            .ok_or_else(|| EngineError::not_found("ingestion", id))
    }

    /// Past ingestions, newest first, without their invalid rows (see
    /// [`Ingestion::errors_listed`]).
    pub async fn list_ingestions(
        &self,
        page: &PageRequest,
    ) -> Result<Page<Ingestion>, EngineError> {
        Ok(self.store.list_ingestions(page).await?)
    }
}
