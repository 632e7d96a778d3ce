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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::Trigger;
    use crate::store::postgres::catalog::tests::{at, campaign, template};
    use crate::store::{CampaignStore, TemplateStore};

    /// The outbox part's table of runs as this part writes it, for tests of this part on a
    /// build where that part may not be there yet; where it is, its own table is used.
    async fn runs_table(store: &PgStore) {
        let client = store.client().await.unwrap();
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS campaign_runs (
                     seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                     id          uuid NOT NULL UNIQUE,
                     campaign_id uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
                     trigger_key text NOT NULL,
                     event_id    uuid,
                     recipients  bigint,
                     created_at  timestamptz NOT NULL,
                     UNIQUE (campaign_id, trigger_key)
                 )",
            )
            .await
            .unwrap();
    }

    fn event(external_id: Option<&str>, name: &str) -> TriggerEvent {
        let mut event = TriggerEvent::from_json(
            json!({"id": external_id, "name": name, "user": "+94771234501",
                   "segment_rule": {"attributes.age": {"gte": 18.0}}, "data": {"n": 1.50}}),
            at("2026-11-24T10:00:00.123456Z"),
        )
        .unwrap();
        event.occurred_at = at("2026-11-23T09:00:00.987654Z");
        event
    }

    #[tokio::test]
    async fn a_batch_stores_each_external_id_once_and_opens_the_runs_of_listening_campaigns() {
        let (store, _database) = super::super::scratch().await;
        runs_table(&store).await;
        let t = template("Hello", "Hi");
        store.insert_template(&t).await.unwrap();
        let mut listening = Vec::new();
        for status in CampaignStatus::ALL {
            let mut c = campaign(t.id, None);
            c.trigger = Trigger::Event {
                event: " Cart_Abandoned".into(),
            };
            c.status = status;
            store.insert_campaign(&c).await.unwrap();
            if status.listens_for_events() {
                listening.push(c.id);
            }
        }
        let earlier = event(Some("evt-1"), "cart_abandoned");
        let first = store.record_events(vec![earlier.clone()]).await.unwrap();
        assert_eq!(first[0].outcome, RecordOutcome::Recorded);

        let batch = vec![
            event(Some("evt-1"), "cart_abandoned"),
            event(Some("evt-2"), "CART_ABANDONED "),
            event(Some("evt-2"), "cart_abandoned"),
            event(None, "purchase"),
            event(None, "cart_abandoned"),
        ];
        let recorded = store.record_events(batch.clone()).await.unwrap();
        let outcomes: Vec<_> = recorded.iter().map(|r| r.outcome).collect();
        use RecordOutcome::{Duplicate, Recorded};
        assert_eq!(
            outcomes,
            [Duplicate, Recorded, Duplicate, Recorded, Recorded]
        );
        let campaigns_of =
            |i: usize| -> Vec<CampaignId> { recorded[i].runs.iter().map(|(c, _)| *c).collect() };
        assert_eq!(campaigns_of(1), listening);
        assert_eq!(campaigns_of(4), listening);
        assert!(campaigns_of(0).is_empty() && campaigns_of(2).is_empty());
        assert!(
            campaigns_of(3).is_empty(),
            "no campaign listens for purchases"
        );

        // The runs are stored under the event's run key.
        let client = store.client().await.unwrap();
        let (run_campaign, run) = recorded[1].runs[0];
        let row = client
            .query_one(
                "SELECT campaign_id, trigger_key, event_id, created_at FROM campaign_runs
                 WHERE id = $1",
                &[&run.0],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, Uuid>(0), run_campaign.0);
        assert_eq!(row.get::<_, String>(1), batch[1].run_trigger_key());
        assert_eq!(row.get::<_, Uuid>(2), batch[1].id.0);
        assert_eq!(row.get::<_, DateTime<Utc>>(3), ts(batch[1].received_at));

        // What was stored reads back as given, to the millisecond.
        let mut expected = batch[1].clone();
        expected.occurred_at = ts(expected.occurred_at);
        expected.received_at = ts(expected.received_at);
        assert_eq!(
            store.find_event("evt-2").await.unwrap(),
            Some(expected.clone())
        );
        assert_eq!(store.get_event(expected.id).await.unwrap(), Some(expected));
        assert_eq!(store.find_event("evt-3").await.unwrap(), None);
        assert!(store.record_events(Vec::new()).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn events_list_newest_first_and_campaigns_are_found_by_trigger_name() {
        let (store, _database) = super::super::scratch().await;
        let events: Vec<_> = (0..5)
            .map(|i| event(Some(&format!("evt-{i}")), "visit"))
            .collect();
        store.record_events(events.clone()).await.unwrap();
        let mut page = PageRequest::first(2);
        let mut seen = Vec::new();
        loop {
            let listed = store.list_events(&page).await.unwrap();
            seen.extend(listed.items.iter().map(|e| e.id));
            match listed.next_cursor {
                Some(cursor) => page.cursor = Some(cursor),
                None => break,
            }
        }
        let newest_first: Vec<_> = events.iter().rev().map(|e| e.id).collect();
        assert_eq!(seen, newest_first);

        let t = template("Hello", "Hi");
        store.insert_template(&t).await.unwrap();
        let mut c = campaign(t.id, None);
        c.trigger = Trigger::Event {
            event: "Dance Festival".into(),
        };
        store.insert_campaign(&c).await.unwrap();
        store.insert_campaign(&campaign(t.id, None)).await.unwrap();
        let found = store
            .campaigns_triggered_by(" dance FESTIVAL")
            .await
            .unwrap();
        assert_eq!(found, [c]);
        assert!(
            store
                .campaigns_triggered_by("other")
                .await
                .unwrap()
                .is_empty()
        );
    }
}
