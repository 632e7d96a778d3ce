//! Trigger events in PostgreSQL. An event's external id is unique: recording the same id
//! twice stores it once, which is what makes re-ingesting a file harmless.
//!
//! A batch of events is recorded in one transaction of three statements, whatever its size:
//! 1. the events go over as arrays, one per column, and one `INSERT … SELECT FROM unnest(…)
//!    WITH ORDINALITY ORDER BY ordinality ON CONFLICT (external_id) DO NOTHING RETURNING id`
//!    stores those whose external id is new, in batch order, so of two events of the batch
//!    with one external id the first is stored and the second is a duplicate (as in SQLite);
//! 2. one query finds the campaigns listening for the names of the events stored
//!    ([`CampaignStatus::listens_for_events`], by `trigger_event_key`), locking them `FOR
//!    SHARE`: a concurrent launch, pause or delete of one of them waits for this transaction,
//!    so an event either opens its runs before the change or sees the campaign as changed;
//! 3. one more `INSERT … SELECT FROM unnest(…)` opens a run per (event, campaign) in
//!    `campaign_runs` (the outbox's table: `seq`, `id`, `campaign_id`, `trigger_key`,
//!    `event_id`, `recipients`, `created_at`, unique per campaign and trigger key), keyed
//!    [`TriggerEvent::run_trigger_key`], `ON CONFLICT DO NOTHING`.
//!
//! Run ids are made here (time-ordered UUIDs, as everywhere else), not by the database.
//!
//! `name_key` ([`event_name_key`]) and `user_phone` are byte-ordered text (`COLLATE "C"`, as
//! the users' phones are), and `(user_phone, name_key, occurred_at)` is indexed for the
//! event-history conditions of segments; `received_at` is indexed for reading events by
//! arrival. Events are listed newest first by their time-ordered id.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use tokio_postgres::types::Json;
use uuid::Uuid;

use super::campaigns::{SELECT_CAMPAIGNS, campaign_from_row};
use super::catalog::{Conditions, get, id_cursor, query_one, query_page};
use super::{PgStore, corrupt, pg_error, ts};
use crate::domain::{
    Campaign, CampaignId, CampaignStatus, EventId, PhoneNumber, RunId, TriggerEvent,
};
use crate::segment::SegmentRule;
use crate::segment::sql::event_name_key;
use crate::store::{
    EventStore, Page, PageRequest, RecordOutcome, RecordedEvent, StoreError, sql_names,
};

/// This module's tables, part of the first migration.
pub(super) const SCHEMA: &str = r#"
CREATE TABLE events (
    id           uuid PRIMARY KEY,
    external_id  text UNIQUE,
    name         text NOT NULL,
    name_key     text COLLATE "C" NOT NULL,
    user_phone   text COLLATE "C",
    segment_rule jsonb,
    data         jsonb NOT NULL,
    occurred_at  timestamptz NOT NULL,
    received_at  timestamptz NOT NULL
);
CREATE INDEX events_by_user ON events (user_phone, name_key, occurred_at);
CREATE INDEX events_by_time ON events (received_at, id);
"#;

const EVENT_COLUMNS: &str =
    "id, external_id, name, user_phone, segment_rule, data, occurred_at, received_at";

/// Stores the new events of a batch, in batch order; answers the ids stored.
const INSERT_EVENTS: &str = "
    INSERT INTO events (id, external_id, name, name_key, user_phone, segment_rule, data,
                        occurred_at, received_at)
    SELECT id, external_id, name, name_key, user_phone, segment_rule, data, occurred_at,
           received_at
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[],
                $7::jsonb[], $8::timestamptz[], $9::timestamptz[])
         WITH ORDINALITY AS e(id, external_id, name, name_key, user_phone, segment_rule, data,
                              occurred_at, received_at, ordinality)
    ORDER BY ordinality
    ON CONFLICT (external_id) DO NOTHING
    RETURNING id";

/// Opens runs, in the order given; answers the ids of those opened.
const OPEN_RUNS: &str = "
    INSERT INTO campaign_runs (id, campaign_id, trigger_key, event_id, created_at)
    SELECT id, campaign_id, trigger_key, event_id, created_at
    FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::timestamptz[])
         WITH ORDINALITY AS r(id, campaign_id, trigger_key, event_id, created_at, ordinality)
    ORDER BY ordinality
    ON CONFLICT (campaign_id, trigger_key) DO NOTHING
    RETURNING id";

/// The campaigns listening for any of the event name keys `$1`, with the key each listens
/// for, locked against a concurrent change of state until the transaction ends; the states
/// that listen come from [`CampaignStatus::listens_for_events`].
fn listening_campaigns() -> String {
    let states = sql_names(
        CampaignStatus::ALL
            .into_iter()
            .filter(|status| status.listens_for_events())
            .map(CampaignStatus::as_str),
    );
    format!(
        "SELECT id, trigger_event_key FROM campaigns
         WHERE trigger_event_key = ANY($1::text[]) AND status IN {states}
         ORDER BY id
         FOR SHARE"
    )
}

fn event_from_row(row: &Row) -> Result<TriggerEvent, StoreError> {
    let user: Option<String> = get(row, 3)?;
    let rule: Option<serde_json::Value> = get(row, 4)?;
    let Json(data) = get(row, 5)?;
    Ok(TriggerEvent {
        id: EventId(get(row, 0)?),
        external_id: get(row, 1)?,
        name: get(row, 2)?,
        user: user
            .as_deref()
            .map(PhoneNumber::parse)
            .transpose()
            .map_err(corrupt)?,
        segment_rule: rule
            .as_ref()
            .map(SegmentRule::parse_stored)
            .transpose()
            .map_err(corrupt)?,
        data,
        occurred_at: get(row, 6)?,
        received_at: get(row, 7)?,
    })
}

/// The runs to open: one per (stored event, campaign listening for its name), in batch order
/// and then campaign order.
struct Runs {
    ids: Vec<Uuid>,
    campaigns: Vec<Uuid>,
    trigger_keys: Vec<String>,
    events: Vec<Uuid>,
    created_at: Vec<DateTime<Utc>>,
}

#[async_trait]
impl EventStore for PgStore {
    async fn record_events(
        &self,
        events: Vec<TriggerEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = events.iter().map(|e| e.id.0).collect();
        let external_ids: Vec<Option<&str>> =
            events.iter().map(|e| e.external_id.as_deref()).collect();
        let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
        let keys: Vec<String> = events.iter().map(|e| event_name_key(&e.name)).collect();
        let users: Vec<Option<&str>> = events
            .iter()
            .map(|e| e.user.as_ref().map(PhoneNumber::as_str))
            .collect();
        let rules: Vec<Option<Json<&SegmentRule>>> = events
            .iter()
            .map(|e| e.segment_rule.as_ref().map(Json))
            .collect();
        let data: Vec<Json<&serde_json::Map<String, serde_json::Value>>> =
            events.iter().map(|e| Json(&e.data)).collect();
        let occurred: Vec<DateTime<Utc>> = events.iter().map(|e| ts(e.occurred_at)).collect();
        let received: Vec<DateTime<Utc>> = events.iter().map(|e| ts(e.received_at)).collect();

        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let insert = tx.prepare_cached(INSERT_EVENTS).await.map_err(pg_error)?;
        let stored: HashSet<Uuid> = tx
            .query(
                &insert,
                &[
                    &ids,
                    &external_ids,
                    &names,
                    &keys,
                    &users,
                    &rules,
                    &data,
                    &occurred,
                    &received,
                ],
            )
            .await
            .map_err(pg_error)?
            .iter()
            .map(|row| get(row, 0))
            .collect::<Result<_, _>>()?;

        // The runs of the campaigns listening for an event are opened with the event itself,
        // so a crash can delay their fan-out but never lose it.
        let stored_keys: Vec<&str> = {
            let mut seen = HashSet::new();
            events
                .iter()
                .zip(&keys)
                .filter(|(event, key)| stored.contains(&event.id.0) && seen.insert(key.as_str()))
                .map(|(_, key)| key.as_str())
                .collect()
        };
        let mut listening: HashMap<String, Vec<Uuid>> = HashMap::new();
        if !stored_keys.is_empty() {
            let find = tx
                .prepare_cached(&listening_campaigns())
                .await
                .map_err(pg_error)?;
            for row in tx.query(&find, &[&stored_keys]).await.map_err(pg_error)? {
                let key: String = get(&row, 1)?;
                listening.entry(key).or_default().push(get(&row, 0)?);
            }
        }
        let mut runs = Runs {
            ids: Vec::new(),
            campaigns: Vec::new(),
            trigger_keys: Vec::new(),
            events: Vec::new(),
            created_at: Vec::new(),
        };
        for (event, key) in events.iter().zip(&keys) {
            if !stored.contains(&event.id.0) {
                continue;
            }
            for campaign in listening.get(key).into_iter().flatten() {
                runs.ids.push(RunId::new().0);
                runs.campaigns.push(*campaign);
                runs.trigger_keys.push(event.run_trigger_key());
                runs.events.push(event.id.0);
                runs.created_at.push(ts(event.received_at));
            }
        }
        let mut opened: HashSet<Uuid> = HashSet::new();
        if !runs.ids.is_empty() {
            let open = tx.prepare_cached(OPEN_RUNS).await.map_err(pg_error)?;
            opened = tx
                .query(
                    &open,
                    &[
                        &runs.ids,
                        &runs.campaigns,
                        &runs.trigger_keys,
                        &runs.events,
                        &runs.created_at,
                    ],
                )
                .await
                .map_err(pg_error)?
                .iter()
                .map(|row| get(row, 0))
                .collect::<Result<_, _>>()?;
        }
        tx.commit().await.map_err(pg_error)?;

        let mut runs_of: HashMap<Uuid, Vec<(CampaignId, RunId)>> = HashMap::new();
        for ((run, campaign), event) in runs.ids.iter().zip(&runs.campaigns).zip(&runs.events) {
            if opened.contains(run) {
                runs_of
                    .entry(*event)
                    .or_default()
                    .push((CampaignId(*campaign), RunId(*run)));
            }
        }
        Ok(events
            .iter()
            .map(|event| {
                if stored.contains(&event.id.0) {
                    RecordedEvent {
                        outcome: RecordOutcome::Recorded,
                        runs: runs_of.remove(&event.id.0).unwrap_or_default(),
                    }
                } else {
                    RecordedEvent {
                        outcome: RecordOutcome::Duplicate,
                        runs: Vec::new(),
                    }
                }
            })
            .collect())
    }

    async fn get_event(&self, id: EventId) -> Result<Option<TriggerEvent>, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1");
        query_one(self, &sql, &id.0, event_from_row).await
    }

    async fn find_event(&self, external_id: &str) -> Result<Option<TriggerEvent>, StoreError> {
        if external_id.contains('\0') {
            // No stored text holds a NUL character.
            return Ok(None);
        }
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE external_id = $1");
        query_one(self, &sql, &external_id, event_from_row).await
    }

    async fn list_events(&self, page: &PageRequest) -> Result<Page<TriggerEvent>, StoreError> {
        let mut conditions = Conditions::default();
        if let Some(cursor) = id_cursor(page)? {
            let p = conditions.bind(cursor);
            conditions.and(format!("id < {p}"));
        }
        query_page(
            self,
            &format!("SELECT {EVENT_COLUMNS} FROM events"),
            conditions,
            "id DESC",
            page,
            event_from_row,
            |e| e.id.to_string(),
        )
        .await
    }

    async fn campaigns_triggered_by(&self, event_name: &str) -> Result<Vec<Campaign>, StoreError> {
        let key = event_name_key(event_name);
        if key.contains('\0') {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "{SELECT_CAMPAIGNS} WHERE trigger_event_key = $1 ORDER BY id"
            ))
            .await
            .map_err(pg_error)?;
        client
            .query(&statement, &[&key])
            .await
            .map_err(pg_error)?
            .iter()
            .map(campaign_from_row)
            .collect()
    }
}
