//! The outbox in SQLite: campaign runs, one message row per recipient and run (a unique key,
//! so a repeated fan-out adds nothing), and each message's log of status changes and
//! decisions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params, types::Value as SqlValue};

use super::connection::db_error;
use super::users::list_newest_first;
use super::{SqliteStore, corrupt, from_millis, millis, to_json_text};
use crate::domain::{
    AuditDecision, CampaignId, EventId, Message, MessageId, MessageStatus, PhoneNumber, RunId,
    StatusChange,
};
use crate::store::{
    CampaignRun, MessageQuery, OutboxEntry, OutboxStore, Page, PageRequest, StoreError,
};

const MESSAGE_COLUMNS: &str = "id, campaign_id, run_id, phone, body, status, provider_sid, \
     error_code, attempts, created_at, updated_at";

fn status_of(text: &str) -> Result<MessageStatus, StoreError> {
    MessageStatus::parse(text).ok_or_else(|| corrupt(format!("unknown message status {text:?}")))
}

fn message_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Message, StoreError>> {
    let id: String = row.get(0)?;
    let campaign_id: Option<String> = row.get(1)?;
    let run_id: Option<String> = row.get(2)?;
    let phone: String = row.get(3)?;
    let body: String = row.get(4)?;
    let status: String = row.get(5)?;
    let provider_sid: Option<String> = row.get(6)?;
    let error_code: Option<String> = row.get(7)?;
    let attempts: i64 = row.get(8)?;
    let (created_at, updated_at): (i64, i64) = (row.get(9)?, row.get(10)?);
    Ok((|| {
        Ok(Message {
            id: id.parse().map_err(corrupt)?,
            campaign_id: campaign_id
                .map(|c| c.parse())
                .transpose()
                .map_err(corrupt)?,
            run_id: run_id.map(|r| r.parse()).transpose().map_err(corrupt)?,
            user: PhoneNumber::parse(&phone).map_err(corrupt)?,
            body,
            status: status_of(&status)?,
            provider_sid,
            error_code,
            attempts: attempts as u32,
            history: Vec::new(),
            decisions: Vec::new(),
            created_at: from_millis(created_at),
            updated_at: from_millis(updated_at),
        })
    })())
}

fn run_from_row(row: &Row<'_>) -> rusqlite::Result<Result<CampaignRun, StoreError>> {
    let id: String = row.get(0)?;
    let campaign_id: String = row.get(1)?;
    let trigger_key: String = row.get(2)?;
    let event_id: Option<String> = row.get(3)?;
    let recipients: Option<i64> = row.get(4)?;
    let created_at: i64 = row.get(5)?;
    Ok((|| {
        Ok(CampaignRun {
            id: id.parse().map_err(corrupt)?,
            campaign_id: campaign_id.parse().map_err(corrupt)?,
            trigger_key,
            event_id: event_id.map(|e| e.parse()).transpose().map_err(corrupt)?,
            recipients: recipients.map(|r| r as u64),
            created_at: from_millis(created_at),
        })
    })())
}

/// Writes outbox messages with statements prepared once per transaction.
pub(super) struct MessageWriter<'c> {
    insert: rusqlite::CachedStatement<'c>,
    log: rusqlite::CachedStatement<'c>,
}

impl<'c> MessageWriter<'c> {
    pub(super) fn new(conn: &'c rusqlite::Connection) -> Result<Self, StoreError> {
        Ok(Self {
            insert: conn
                .prepare_cached(
                    "INSERT INTO messages (id, campaign_id, run_id, phone, body, content_sid,
                         content_variables, status, due_at, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?9)
                     ON CONFLICT (run_id, phone) DO NOTHING",
                )
                .map_err(db_error)?,
            log: conn
                .prepare_cached(
                    "INSERT INTO message_log (message_id, at, status, step, reason)
                     VALUES (?, ?, ?, ?, ?)",
                )
                .map_err(db_error)?,
        })
    }

    /// Writes one message due at `now` (with its decision, if one was taken at once);
    /// `false` when the run already has a message for the recipient.
    pub(super) fn write(
        &mut self,
        entry: &OutboxEntry,
        variables: Option<&str>,
        campaign_id: Option<&str>,
        run_id: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let id = entry.id.to_string();
        let added = self
            .insert
            .execute(params![
                id,
                campaign_id,
                run_id,
                entry.phone.as_str(),
                entry.body,
                entry.content_sid,
                variables,
                entry.status.as_str(),
                now,
            ])
            .map_err(db_error)?;
        if added == 0 {
            return Ok(false);
        }
        if let Some(decision) = &entry.decision {
            // Every message enters as pending; a decision taken at once moves it on, and the
            // log keeps both the move and its reason.
            let at = millis(decision.at);
            let outcome = decision.outcome.as_str();
            self.log
                .execute(params![id, at, outcome, None::<String>, None::<String>])
                .map_err(db_error)?;
            self.log
                .execute(params![id, at, outcome, decision.step, decision.reason])
                .map_err(db_error)?;
        }
        Ok(true)
    }
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn open_run(
        &self,
        campaign_id: CampaignId,
        trigger_key: &str,
        event_id: Option<EventId>,
        now: DateTime<Utc>,
    ) -> Result<CampaignRun, StoreError> {
        let trigger_key = trigger_key.to_owned();
        self.db
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO campaign_runs (id, campaign_id, trigger_key, event_id, created_at)
                     VALUES (?, ?, ?, ?, ?)
                     ON CONFLICT (campaign_id, trigger_key) DO NOTHING",
                    params![
                        RunId::new().to_string(),
                        campaign_id.to_string(),
                        trigger_key,
                        event_id.map(|e| e.to_string()),
                        millis(now),
                    ],
                )
                .map_err(db_error)?;
                conn.query_row(
                    "SELECT id, campaign_id, trigger_key, event_id, recipients, created_at
                     FROM campaign_runs WHERE campaign_id = ? AND trigger_key = ?",
                    params![campaign_id.to_string(), trigger_key],
                    run_from_row,
                )
                .map_err(db_error)?
            })
            .await
    }

    async fn enqueue(
        &self,
        run: &CampaignRun,
        entries: Vec<OutboxEntry>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let (run_id, campaign_id) = (run.id.to_string(), run.campaign_id.to_string());
        let rows = entries
            .into_iter()
            .map(|e| {
                let variables = e.content_variables.as_ref().map(to_json_text).transpose()?;
                Ok((e, variables))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.db
            .write(move |conn| {
                let now = millis(now);
                let tx = conn.transaction().map_err(db_error)?;
                let mut written = 0;
                {
                    let mut writer = MessageWriter::new(&tx)?;
                    for (entry, variables) in &rows {
                        let added = writer.write(
                            entry,
                            variables.as_deref(),
                            Some(&campaign_id),
                            Some(&run_id),
                            now,
                        )?;
                        written += u64::from(added);
                    }
                }
                tx.commit().map_err(db_error)?;
                Ok(written)
            })
            .await
    }

    async fn unfinished_runs(&self) -> Result<Vec<CampaignRun>, StoreError> {
        self.db
            .read(|conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT id, campaign_id, trigger_key, event_id, recipients, created_at
                         FROM campaign_runs WHERE recipients IS NULL ORDER BY created_at, id",
                    )
                    .map_err(db_error)?;
                stmt.query_map([], run_from_row)
                    .map_err(db_error)?
                    .map(|row| row.map_err(db_error).and_then(|r| r))
                    .collect()
            })
            .await
    }

    async fn finish_run(&self, run: RunId) -> Result<u64, StoreError> {
        self.db
            .write(move |conn| {
                conn.query_row(
                    "UPDATE campaign_runs
                     SET recipients = (SELECT COUNT(*) FROM messages WHERE run_id = ?1)
                     WHERE id = ?1 RETURNING recipients",
                    [run.to_string()],
                    |row| row.get::<_, i64>(0),
                )
                .map(|n| n as u64)
                .map_err(db_error)
            })
            .await
    }

    async fn get_message(&self, id: MessageId) -> Result<Option<Message>, StoreError> {
        self.db
            .read(move |conn| {
                let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?");
                let Some(mut message) = conn
                    .prepare_cached(&sql)
                    .and_then(|mut s| s.query_row([id.to_string()], message_from_row).optional())
                    .map_err(db_error)?
                    .transpose()?
                else {
                    return Ok(None);
                };
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT at, status, step, reason FROM message_log
                         WHERE message_id = ? ORDER BY at, rowid",
                    )
                    .map_err(db_error)?;
                let rows = stmt
                    .query_map([id.to_string()], |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, Option<String>>(2)?,
                            row.get::<_, Option<String>>(3)?,
                        ))
                    })
                    .map_err(db_error)?;
                // Every message enters the outbox as pending; the log holds every move since.
                message.history.push(StatusChange {
                    status: MessageStatus::Pending,
                    at: message.created_at,
                });
                for row in rows {
                    let (at, status, step, reason) = row.map_err(db_error)?;
                    let (at, status) = (from_millis(at), status_of(&status)?);
                    match step {
                        Some(step) => message.decisions.push(AuditDecision {
                            step,
                            outcome: status,
                            reason: reason.unwrap_or_default(),
                            at,
                        }),
                        None => message.history.push(StatusChange { status, at }),
                    }
                }
                Ok(Some(message))
            })
            .await
    }

    async fn list_messages(
        &self,
        query: &MessageQuery,
        page: &PageRequest,
    ) -> Result<Page<Message>, StoreError> {
        let (query, page) = (query.clone(), page.clone());
        self.db
            .read(move |conn| {
                let mut filters = Vec::new();
                if let Some(campaign) = query.campaign_id {
                    filters.push(("campaign_id = ?", SqlValue::Text(campaign.to_string())));
                }
                if let Some(user) = &query.user {
                    filters.push(("phone = ?", SqlValue::Text(user.to_string())));
                }
                if let Some(status) = query.status {
                    filters.push(("status = ?", SqlValue::Text(status.as_str().into())));
                }
                let select = format!("SELECT {MESSAGE_COLUMNS} FROM messages");
                list_newest_first(conn, &select, filters, &page, message_from_row, |m| {
                    m.id.to_string()
                })
            })
            .await
    }
}
