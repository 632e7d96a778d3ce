//! Trigger events in SQLite. An event's external id is unique: recording the same id twice
//! stores it once, which is what makes re-ingesting a file harmless.

use async_trait::async_trait;
use rusqlite::{Row, params};

use super::campaigns::{SELECT_CAMPAIGNS, campaign_from_row, status_text};
use super::connection::db_error;
use super::users::list_newest_first;
use super::{SqliteStore, corrupt, from_millis, millis, query_one, to_json_text};
use crate::domain::{
    Campaign, CampaignId, CampaignStatus, EventId, PhoneNumber, RunId, TriggerEvent,
};
use crate::segment::SegmentRule;
use crate::segment::sql::event_name_key;
use crate::store::{EventStore, Page, PageRequest, RecordOutcome, RecordedEvent, StoreError};

const EVENT_COLUMNS: &str =
    "id, external_id, name, user_phone, segment_rule, data, occurred_at, received_at";

const INSERT_EVENT: &str = "
    INSERT INTO events (id, external_id, name, name_key, user_phone, segment_rule, data,
                        occurred_at, received_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (external_id) DO NOTHING";

/// The campaigns listening for an event name (its key is the one parameter, the states that
/// listen follow), with the states taken from [`CampaignStatus::listens_for_events`].
fn listening_campaigns() -> (String, Vec<rusqlite::types::Value>) {
    let states: Vec<_> = CampaignStatus::ALL
        .into_iter()
        .filter(|status| status.listens_for_events())
        .map(status_text)
        .collect();
    let placeholders = vec!["?"; states.len()].join(", ");
    let sql = format!(
        "SELECT id FROM campaigns WHERE trigger_event_key = ? AND status IN ({placeholders})"
    );
    (sql, states)
}

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<Result<TriggerEvent, StoreError>> {
    let id: String = row.get(0)?;
    let external_id: Option<String> = row.get(1)?;
    let name: String = row.get(2)?;
    let user: Option<String> = row.get(3)?;
    let rule: Option<String> = row.get(4)?;
    let data: String = row.get(5)?;
    let (occurred_at, received_at): (i64, i64) = (row.get(6)?, row.get(7)?);
    Ok((|| {
        Ok(TriggerEvent {
            id: id.parse().map_err(corrupt)?,
            external_id,
            name,
            user: user
                .as_deref()
                .map(PhoneNumber::parse)
                .transpose()
                .map_err(corrupt)?,
            segment_rule: rule
                .map(|r| SegmentRule::from_stored_json(&r))
                .transpose()
                .map_err(corrupt)?,
            data: serde_json::from_str(&data).map_err(corrupt)?,
            occurred_at: from_millis(occurred_at),
            received_at: from_millis(received_at),
        })
    })())
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn record_events(
        &self,
        events: Vec<TriggerEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = events
            .into_iter()
            .map(|e| {
                let rule = e.segment_rule.as_ref().map(to_json_text).transpose()?;
                let data = to_json_text(&e.data)?;
                Ok((e, rule, data))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.db
            .write(move |conn| {
                let tx = conn.transaction().map_err(db_error)?;
                let mut outcomes = Vec::with_capacity(rows.len());
                {
                    let mut insert = tx.prepare_cached(INSERT_EVENT).map_err(db_error)?;
                    // The runs of the campaigns listening for an event are opened with the
                    // event itself, so a crash can delay their fan-out but never lose it.
                    let (listening_sql, listening_states) = listening_campaigns();
                    let mut listening = tx.prepare_cached(&listening_sql).map_err(db_error)?;
                    let mut open_run = tx
                        .prepare_cached(
                            "INSERT INTO campaign_runs (id, campaign_id, trigger_key, event_id,
                                 created_at)
                             VALUES (?, ?, ?, ?, ?)
                             ON CONFLICT (campaign_id, trigger_key) DO NOTHING",
                        )
                        .map_err(db_error)?;
                    for (event, rule, data) in &rows {
                        let inserted = insert
                            .execute(params![
                                event.id.to_string(),
                                event.external_id,
                                event.name,
                                event_name_key(&event.name),
                                event.user.as_ref().map(PhoneNumber::as_str),
                                rule,
                                data,
                                millis(event.occurred_at),
                                millis(event.received_at),
                            ])
                            .map_err(db_error)?;
                        if inserted == 0 {
                            outcomes.push(RecordedEvent {
                                outcome: RecordOutcome::Duplicate,
                                runs: Vec::new(),
                            });
                            continue;
                        }
                        let key = rusqlite::types::Value::Text(event_name_key(&event.name));
                        let campaigns = listening
                            .query_map(
                                rusqlite::params_from_iter(
                                    std::iter::once(&key).chain(&listening_states),
                                ),
                                |r| r.get::<_, String>(0),
                            )
                            .map_err(db_error)?
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(db_error)?;
                        let mut runs = Vec::with_capacity(campaigns.len());
                        for campaign in campaigns {
                            let run = RunId::new();
                            let opened = open_run
                                .execute(params![
                                    run.to_string(),
                                    campaign,
                                    event.run_trigger_key(),
                                    event.id.to_string(),
                                    millis(event.received_at),
                                ])
                                .map_err(db_error)?;
                            if opened > 0 {
                                let campaign: CampaignId = campaign.parse().map_err(corrupt)?;
                                runs.push((campaign, run));
                            }
                        }
                        outcomes.push(RecordedEvent {
                            outcome: RecordOutcome::Recorded,
                            runs,
                        });
                    }
                }
                tx.commit().map_err(db_error)?;
                Ok(outcomes)
            })
            .await
    }

    async fn get_event(&self, id: EventId) -> Result<Option<TriggerEvent>, StoreError> {
        self.db
            .read(move |conn| {
                let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?");
                query_one(conn, &sql, id.to_string(), event_from_row)
            })
            .await
    }

    async fn find_event(&self, external_id: &str) -> Result<Option<TriggerEvent>, StoreError> {
        let external_id = external_id.to_owned();
        self.db
            .read(move |conn| {
                let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE external_id = ?");
                query_one(conn, &sql, external_id, event_from_row)
            })
            .await
    }

    async fn campaigns_triggered_by(&self, event_name: &str) -> Result<Vec<Campaign>, StoreError> {
        let key = event_name_key(event_name);
        self.db
            .read(move |conn| {
                let sql = format!("{SELECT_CAMPAIGNS} WHERE trigger_event_key = ? ORDER BY id");
                let mut stmt = conn.prepare_cached(&sql).map_err(db_error)?;
                stmt.query_map([key], campaign_from_row)
                    .map_err(db_error)?
                    .map(|row| row.map_err(db_error).and_then(|campaign| campaign))
                    .collect()
            })
            .await
    }

    async fn list_events(&self, page: &PageRequest) -> Result<Page<TriggerEvent>, StoreError> {
        let page = page.clone();
        self.db
            .read(move |conn| {
                let select = format!("SELECT {EVENT_COLUMNS} FROM events");
                list_newest_first(conn, &select, Vec::new(), &page, event_from_row, |e| {
                    e.id.to_string()
                })
            })
            .await
    }
}
