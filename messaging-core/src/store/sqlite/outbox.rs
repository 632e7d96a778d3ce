//! The outbox in SQLite: campaign runs, one message row per recipient and run (a unique key,
//! so a repeated fan-out adds nothing), and each message's log of status changes and
//! decisions.
//!
//! A message's id and its campaign's are stored as their 16 bytes ([`key`]), and a message
//! names its run by the run's integer `seq`: a fan-out writes a row, and an entry in each
//! index, per recipient, and ids as 36 characters of text made up most of their size.

mod writer;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params, types::Value as SqlValue};
use uuid::Uuid;

pub(super) use self::writer::{MessageWriter, RunKey};
use super::connection::db_error;
use super::users::query_page;
use super::{SqliteStore, corrupt, from_millis, millis, to_json_text};
use crate::domain::{
    AuditDecision, CampaignId, EventId, Message, MessageId, MessageStatus, PhoneNumber, RunId,
    StatusChange,
};
use crate::store::{
    CampaignRun, MessageQuery, OutboxEntry, OutboxStore, Page, PageRequest, RunLease, StoreError,
};

/// The columns [`message_from_row`] reads, from `messages m`.
const MESSAGE_COLUMNS: &str = "m.id, m.campaign_id, \
     (SELECT r.id FROM campaign_runs r WHERE r.seq = m.run_seq), m.phone, m.body, m.status, \
     m.provider_sid, m.error_code, m.attempts, m.created_at, m.updated_at";

/// An id as the outbox stores it (a message's, or the campaign of a message): its 16 bytes.
pub(super) fn key(id: Uuid) -> [u8; 16] {
    id.into_bytes()
}

/// Reads an id stored as its [`key`].
pub(super) fn id_from_key(bytes: &[u8]) -> Result<Uuid, StoreError> {
    Uuid::from_slice(bytes).map_err(corrupt)
}

fn status_of(text: &str) -> Result<MessageStatus, StoreError> {
    MessageStatus::parse(text).ok_or_else(|| corrupt(format!("unknown message status {text:?}")))
}

fn message_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Message, StoreError>> {
    let id: Vec<u8> = row.get(0)?;
    let campaign_id: Option<Vec<u8>> = row.get(1)?;
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
            id: MessageId(id_from_key(&id)?),
            campaign_id: campaign_id
                .map(|c| id_from_key(&c).map(CampaignId))
                .transpose()?,
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
        let (run_id, campaign) = (run.id.to_string(), key(run.campaign_id.0));
        let messages = entries
            .into_iter()
            .map(|e| {
                let variables = e.content_variables.as_ref().map(to_json_text).transpose()?;
                Ok((e, variables))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // A fan-out writes batch after batch: each lets waiting webhooks and outcomes first.
        self.db
            .write_bulk(move |conn| {
                let tx = conn.transaction().map_err(db_error)?;
                let seq: i64 = tx
                    .prepare_cached("SELECT seq FROM campaign_runs WHERE id = ?")
                    .and_then(|mut s| s.query_row([&run_id], |r| r.get(0)))
                    .map_err(db_error)?;
                let run = RunKey {
                    campaign: Some(campaign),
                    run: Some(seq),
                };
                let written = MessageWriter::new(&tx)?.write_all(&messages, run, millis(now))?;
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
                     SET recipients = (SELECT COUNT(*) FROM messages
                                       WHERE run_seq = campaign_runs.seq)
                     WHERE id = ? RETURNING recipients",
                    [run.to_string()],
                    |row| row.get::<_, i64>(0),
                )
                .map(|n| n as u64)
                .map_err(db_error)
            })
            .await
    }

    async fn lease_run(
        &self,
        run: RunId,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<RunLease, StoreError> {
        let owner = owner.to_owned();
        self.db
            .write(move |conn| {
                let taken = conn
                    .prepare_cached(
                        "UPDATE campaign_runs SET fan_out_by = ?1, fan_out_until = ?2
                         WHERE id = ?3 AND recipients IS NULL
                             AND (fan_out_by IS NULL OR fan_out_by = ?1 OR fan_out_until <= ?4)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![owner, millis(until), run.to_string(), millis(now)])
                    })
                    .map_err(db_error)?;
                if taken > 0 {
                    return Ok(RunLease::Taken);
                }
                let recipients: Option<i64> = conn
                    .query_row(
                        "SELECT recipients FROM campaign_runs WHERE id = ?",
                        [run.to_string()],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(db_error)?
                    .ok_or_else(|| StoreError::database(format!("no run {run}")))?;
                Ok(RunLease::from_attempt(false, recipients))
            })
            .await
    }

    async fn release_run(&self, run: RunId, owner: &str) -> Result<(), StoreError> {
        let owner = owner.to_owned();
        self.db
            .write(move |conn| {
                conn.execute(
                    "UPDATE campaign_runs SET fan_out_by = NULL, fan_out_until = NULL
                     WHERE id = ? AND fan_out_by = ?",
                    params![run.to_string(), owner],
                )
                .map_err(db_error)?;
                Ok(())
            })
            .await
    }

    async fn get_message(&self, id: MessageId) -> Result<Option<Message>, StoreError> {
        self.db
            .read(move |conn| {
                let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = ?");
                let Some(mut message) = conn
                    .prepare_cached(&sql)
                    .and_then(|mut s| s.query_row([key(id.0)], message_from_row).optional())
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
                    .query_map([key(id.0)], |row| {
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
        // Newest first by the time-ordered id; the cursor is the id of the last message seen.
        let before = page
            .cursor
            .as_deref()
            .map(|cursor| {
                cursor
                    .parse::<MessageId>()
                    .map_err(|_| StoreError::InvalidCursor(cursor.to_owned()))
            })
            .transpose()?;
        self.db
            .read(move |conn| {
                let mut filters = Vec::new();
                if let Some(campaign) = query.campaign_id {
                    filters.push(("m.campaign_id = ?", blob(key(campaign.0))));
                }
                if let Some(user) = &query.user {
                    filters.push(("m.phone = ?", SqlValue::Text(user.to_string())));
                }
                if let Some(status) = query.status {
                    filters.push(("m.status = ?", SqlValue::Text(status.as_str().into())));
                }
                if let Some(before) = before {
                    filters.push(("m.id < ?", blob(key(before.0))));
                }
                let (conditions, params): (Vec<&str>, Vec<SqlValue>) = filters.into_iter().unzip();
                query_page(
                    conn,
                    &format!("SELECT {MESSAGE_COLUMNS} FROM messages m"),
                    conditions.into_iter().map(str::to_owned).collect(),
                    params,
                    "m.id DESC",
                    &page,
                    message_from_row,
                    |m| m.id.to_string(),
                )
            })
            .await
    }
}

/// A [`key`] as a query parameter.
fn blob(key: [u8; 16]) -> SqlValue {
    SqlValue::Blob(key.to_vec())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn at(second: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + second, 0).unwrap()
    }

    /// A store with one running campaign and its launch run.
    async fn store_with_run() -> (SqliteStore, CampaignRun, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("o.db")).await.unwrap();
        let campaign = CampaignId::new();
        let id = campaign.to_string();
        store
            .db
            .write(move |conn| {
                conn.execute_batch(&format!(
                    "INSERT INTO templates (id, name, content, channel, placeholders, created_at,
                         updated_at) VALUES ('t', 't', 'Hi', 'whatsapp', '[]', 0, 0);
                     INSERT INTO campaigns (id, name, template_id, trigger, status, created_at,
                         updated_at) VALUES ('{id}', 'c', 't', 'manual', 'running', 0, 0);"
                ))
                .map_err(db_error)
            })
            .await
            .unwrap();
        let run = store
            .open_run(campaign, "launch", None, at(0))
            .await
            .unwrap();
        (store, run, dir)
    }

    /// `count` messages to `+9477000NNNN`; every tenth skipped by a decision taken at once.
    fn entries(count: usize) -> Vec<OutboxEntry> {
        (0..count)
            .map(|i| {
                let decision = (i % 10 == 0).then(|| AuditDecision {
                    step: "consent".into(),
                    outcome: MessageStatus::Skipped,
                    reason: "the user has opted out".into(),
                    at: at(1),
                });
                OutboxEntry {
                    id: MessageId::new(),
                    phone: PhoneNumber::parse(&format!("+9477000{i:04}")).unwrap(),
                    body: format!("Hi {i}"),
                    content_sid: None,
                    content_variables: None,
                    status: decision
                        .as_ref()
                        .map_or(MessageStatus::Pending, |d| d.outcome),
                    decision,
                }
            })
            .collect()
    }

    #[tokio::test]
    async fn a_batch_of_many_statements_is_written_once_with_its_decisions() {
        let (store, run, _dir) = store_with_run().await;
        let batch = entries(250);
        assert_eq!(
            store.enqueue(&run, batch.clone(), at(1)).await.unwrap(),
            250
        );
        // The same recipients again (as a repeated fan-out renders them, with new ids).
        assert_eq!(store.enqueue(&run, entries(250), at(2)).await.unwrap(), 0);
        assert_eq!(store.finish_run(run.id).await.unwrap(), 250);

        let skipped = store.get_message(batch[10].id).await.unwrap().unwrap();
        assert_eq!(skipped.status, MessageStatus::Skipped);
        assert_eq!(
            (skipped.campaign_id, skipped.run_id),
            (Some(run.campaign_id), Some(run.id))
        );
        assert_eq!(skipped.decisions[0].reason, "the user has opted out");
        let history: Vec<_> = skipped.history.iter().map(|h| h.status).collect();
        assert_eq!(history, [MessageStatus::Pending, MessageStatus::Skipped]);
        let pending = store.get_message(batch[249].id).await.unwrap().unwrap();
        assert_eq!(
            (pending.status, pending.body.as_str()),
            (MessageStatus::Pending, "Hi 249")
        );
        assert!(pending.decisions.is_empty());
    }

    #[tokio::test]
    async fn messages_are_listed_newest_first_page_by_page() {
        let (store, run, _dir) = store_with_run().await;
        let mut batch = entries(25);
        batch.sort_by_key(|e| e.id);
        store.enqueue(&run, batch.clone(), at(1)).await.unwrap();
        let query = MessageQuery {
            campaign_id: Some(run.campaign_id),
            ..MessageQuery::default()
        };
        let mut page = PageRequest::first(10);
        let mut listed = Vec::new();
        loop {
            let found = store.list_messages(&query, &page).await.unwrap();
            listed.extend(found.items.iter().map(|m| m.id));
            match found.next_cursor {
                Some(cursor) => page.cursor = Some(cursor),
                None => break,
            }
        }
        let newest_first: Vec<_> = batch.iter().rev().map(|e| e.id).collect();
        assert_eq!(listed, newest_first);

        let other = MessageQuery {
            campaign_id: Some(CampaignId::new()),
            ..MessageQuery::default()
        };
        let none = store.list_messages(&other, &PageRequest::first(10)).await;
        assert!(none.unwrap().items.is_empty());
        page.cursor = Some("not-an-id".into());
        assert!(matches!(
            store.list_messages(&query, &page).await,
            Err(StoreError::InvalidCursor(_))
        ));
    }
}
