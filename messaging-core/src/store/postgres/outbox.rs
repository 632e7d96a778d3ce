//! The outbox in PostgreSQL: campaign runs, one message row per recipient and run, and each
//! message's log of status changes and decisions.
//!
//! `campaign_runs` keys a run by an integer `seq` (what a message names its run by, as in the
//! SQLite adapter: eight bytes per message and per entry of the unique key instead of
//! sixteen), with its `uuid` id unique beside it and one run per `(campaign_id,
//! trigger_key)`. Deleting a campaign deletes its runs, their messages and their log.
//!
//! `messages` is unique per `(run_seq, phone)`, so a fan-out repeated after a crash adds
//! nothing twice; replies have no run and are never in conflict. Provider SIDs are unique
//! where set. Its indexes are partial where the dispatcher only looks at a few states (the
//! unsent messages it claims, the sends whose fate is unknown, the messages awaiting their
//! status); see `dispatch.rs` for the claims and how later steps are fenced.
//!
//! A fan-out batch goes in with binary `COPY` into a temporary table dropped at commit, then
//! one `INSERT … SELECT … ON CONFLICT (run_seq, phone) DO NOTHING`, and one more statement
//! logs the decisions taken at once of the entries that went in (those whose id is now in
//! `messages`: every entry comes with a new id, so an entry left out for a recipient the run
//! already has leaves no row under its id). The temporary table is read in the order it was
//! written (a fresh table read whole, by the backend that wrote it), so of two entries of one
//! batch for one recipient the first goes in, as in SQLite.
//!
//! `message_log` rows are numbered (`seq`) as they are written, so a message's history reads
//! back in the order it happened even where two changes share a millisecond.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::pin_mut;
use tokio_postgres::Row;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{Json, ToSql, Type};
use uuid::Uuid;

use super::catalog::{Conditions, get, id_cursor, query_page};
use super::{PgStore, corrupt, pg_error, ts};
use crate::domain::{
    AuditDecision, CampaignId, EventId, Message, MessageId, MessageStatus, PhoneNumber, RunId,
    StatusChange,
};
use crate::store::{
    CampaignRun, MessageQuery, OutboxEntry, OutboxStore, Page, PageRequest, StoreError,
};

/// This module's tables, part of the first migration.
pub(super) const SCHEMA: &str = r#"
CREATE TABLE campaign_runs (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          uuid NOT NULL UNIQUE,
    campaign_id uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    trigger_key text NOT NULL,
    event_id    uuid,
    recipients  bigint,
    created_at  timestamptz NOT NULL,
    UNIQUE (campaign_id, trigger_key)
);
-- Runs whose fan-out has not finished, oldest first.
CREATE INDEX campaign_runs_unfinished ON campaign_runs (created_at, id)
    WHERE recipients IS NULL;

CREATE TABLE messages (
    id                uuid PRIMARY KEY,
    campaign_id       uuid,
    run_seq           bigint REFERENCES campaign_runs (seq) ON DELETE CASCADE,
    phone             text COLLATE "C" NOT NULL,
    body              text NOT NULL,
    content_sid       text,
    content_variables jsonb,
    status            text NOT NULL,
    provider_sid      text,
    error_code        text,
    attempts          integer NOT NULL DEFAULT 0,
    due_at            timestamptz NOT NULL,
    -- The claim: until when, and by which dispatcher (see dispatch.rs).
    lease_until       timestamptz,
    claimed_by        text,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    sent_as           text,
    dispatched_at     timestamptz,
    -- Questions to the provider about a message whose final status has not come: when the
    -- next is due (NULL: never asked; 'infinity': given up), and how many did not settle it.
    status_check_at   timestamptz,
    status_checks     integer NOT NULL DEFAULT 0,
    UNIQUE (run_seq, phone)
);
CREATE UNIQUE INDEX messages_by_provider_sid ON messages (provider_sid)
    WHERE provider_sid IS NOT NULL;
-- Counting a campaign's messages by status.
CREATE INDEX messages_by_campaign ON messages (campaign_id, status);
-- Claiming a campaign's (or the replies') due messages, earliest first.
CREATE INDEX messages_due ON messages (campaign_id, due_at)
    WHERE status IN ('pending', 'queued', 'deferred');
-- Ending the claims of dispatchers that stopped.
CREATE INDEX messages_leased ON messages (lease_until)
    WHERE status IN ('pending', 'queued', 'deferred') AND lease_until IS NOT NULL;
-- Sends whose fate is unknown (and ending their claims).
CREATE INDEX messages_unresolved ON messages (lease_until) WHERE status = 'sending';
CREATE INDEX messages_by_phone ON messages (phone, id);
CREATE INDEX messages_conversations ON messages (dispatched_at) WHERE sent_as = 'template';
-- Messages awaiting their status: asked before, by when the next question is due; never
-- asked, by their last change.
CREATE INDEX messages_awaiting_status ON messages (status_check_at)
    WHERE status IN ('sending', 'sent') AND provider_sid IS NOT NULL;
CREATE INDEX messages_awaiting_first_check ON messages (updated_at)
    WHERE status IN ('sending', 'sent') AND provider_sid IS NOT NULL
        AND status_check_at IS NULL;

-- Status changes (step IS NULL) and policy decisions (step names the policy).
CREATE TABLE message_log (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    at         timestamptz NOT NULL,
    status     text NOT NULL,
    step       text,
    reason     text
);
CREATE INDEX message_log_by_message ON message_log (message_id, at);
CREATE INDEX message_log_by_time ON message_log (at, status);
"#;

/// The columns [`message_from_row`] reads, from `messages m`.
const MESSAGE_COLUMNS: &str = "m.id, m.campaign_id, \
     (SELECT r.id FROM campaign_runs r WHERE r.seq = m.run_seq), m.phone, m.body, m.status, \
     m.provider_sid, m.error_code, m.attempts, m.created_at, m.updated_at";

const RUN_COLUMNS: &str = "id, campaign_id, trigger_key, event_id, recipients, created_at";

/// A status as stored.
pub(super) fn status_of(text: &str) -> Result<MessageStatus, StoreError> {
    MessageStatus::parse(text).ok_or_else(|| corrupt(format!("unknown message status {text:?}")))
}

fn message_from_row(row: &Row) -> Result<Message, StoreError> {
    let phone: String = get(row, 3)?;
    let status: String = get(row, 5)?;
    let attempts: i32 = get(row, 8)?;
    Ok(Message {
        id: MessageId(get(row, 0)?),
        campaign_id: get::<Option<Uuid>>(row, 1)?.map(CampaignId),
        run_id: get::<Option<Uuid>>(row, 2)?.map(RunId),
        user: PhoneNumber::parse(&phone).map_err(corrupt)?,
        body: get(row, 4)?,
        status: status_of(&status)?,
        provider_sid: get(row, 6)?,
        error_code: get(row, 7)?,
        attempts: attempts.max(0) as u32,
        history: Vec::new(),
        decisions: Vec::new(),
        created_at: get(row, 9)?,
        updated_at: get(row, 10)?,
    })
}

fn run_from_row(row: &Row) -> Result<CampaignRun, StoreError> {
    let recipients: Option<i64> = get(row, 4)?;
    Ok(CampaignRun {
        id: RunId(get(row, 0)?),
        campaign_id: CampaignId(get(row, 1)?),
        trigger_key: get(row, 2)?,
        event_id: get::<Option<Uuid>>(row, 3)?.map(EventId),
        recipients: recipients.map(|r| r.max(0) as u64),
        created_at: get(row, 5)?,
    })
}

/// Rows for `message_log`, gathered in the order they happened and written with one
/// statement.
#[derive(Debug, Default)]
pub(super) struct LogRows {
    ids: Vec<Uuid>,
    at: Vec<DateTime<Utc>>,
    statuses: Vec<&'static str>,
    steps: Vec<Option<String>>,
    reasons: Vec<Option<String>>,
}

impl LogRows {
    /// A status change.
    pub(super) fn change(&mut self, id: Uuid, at: DateTime<Utc>, status: MessageStatus) {
        self.push(id, at, status, None);
    }

    /// A decision, logged under its outcome.
    pub(super) fn decision(&mut self, id: Uuid, decision: &AuditDecision) {
        self.push(id, decision.at, decision.outcome, Some(decision));
    }

    /// A decision, and the status change it made when the status changed.
    pub(super) fn decided(
        &mut self,
        id: Uuid,
        before: MessageStatus,
        after: MessageStatus,
        decision: &AuditDecision,
    ) {
        if before != after {
            self.change(id, decision.at, after);
        }
        self.decision(id, decision);
    }

    fn push(
        &mut self,
        id: Uuid,
        at: DateTime<Utc>,
        status: MessageStatus,
        decision: Option<&AuditDecision>,
    ) {
        self.ids.push(id);
        self.at.push(ts(at));
        self.statuses.push(status.as_str());
        self.steps.push(decision.map(|d| d.step.clone()));
        self.reasons.push(decision.map(|d| d.reason.clone()));
    }

    /// Writes the rows, in the order they were gathered.
    pub(super) async fn write(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
    ) -> Result<(), StoreError> {
        if self.ids.is_empty() {
            return Ok(());
        }
        let statement = tx
            .prepare_cached(
                "INSERT INTO message_log (message_id, at, status, step, reason)
                 SELECT id, at, status, step, reason
                 FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[])
                      WITH ORDINALITY AS l(id, at, status, step, reason, n)
                 ORDER BY n",
            )
            .await
            .map_err(pg_error)?;
        tx.execute(
            &statement,
            &[
                &self.ids,
                &self.at,
                &self.statuses,
                &self.steps,
                &self.reasons,
            ],
        )
        .await
        .map_err(pg_error)?;
        Ok(())
    }
}

/// The temporary table a fan-out batch is copied into.
const CREATE_FANOUT: &str = "CREATE TEMPORARY TABLE fanout (
         id                uuid NOT NULL,
         phone             text NOT NULL,
         body              text NOT NULL,
         content_sid       text,
         content_variables jsonb,
         status            text NOT NULL,
         outcome           text,
         decided_at        timestamptz,
         step              text,
         reason            text
     ) ON COMMIT DROP";

/// The column types of [`CREATE_FANOUT`], for the binary copy.
const FANOUT_TYPES: [Type; 10] = [
    Type::UUID,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::JSONB,
    Type::TEXT,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
];

/// Adds the copied entries to run `$1` (of campaign `$2`), due at `$3`.
const INSERT_FANOUT: &str = "INSERT INTO messages (id, campaign_id, run_seq, phone, body,
         content_sid, content_variables, status, due_at, created_at, updated_at)
     SELECT id, $2::uuid, $1::bigint, phone, body, content_sid, content_variables, status,
            $3::timestamptz, $3, $3
     FROM fanout
     ON CONFLICT (run_seq, phone) DO NOTHING";

/// Logs the decisions taken at once of the copied entries that went in: every message
/// enters as pending, so the move and its reason.
const LOG_FANOUT: &str = "INSERT INTO message_log (message_id, at, status, step, reason)
     SELECT f.id, f.decided_at, f.outcome, l.step, l.reason
     FROM fanout f JOIN messages m ON m.id = f.id
          CROSS JOIN LATERAL (VALUES (1, NULL, NULL), (2, f.step, f.reason)) AS l(n, step, reason)
     WHERE f.step IS NOT NULL
     ORDER BY f.id, l.n";

/// Writes outbox entries of run `run_seq` (of `campaign`) due at `now`, in the caller's
/// transaction; answers how many went in.
async fn write_entries(
    tx: &deadpool_postgres::Transaction<'_>,
    entries: &[OutboxEntry],
    campaign: CampaignId,
    run_seq: i64,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    if entries.is_empty() {
        return Ok(0);
    }
    tx.batch_execute(CREATE_FANOUT).await.map_err(pg_error)?;
    let sink = tx
        .copy_in(
            "COPY fanout (id, phone, body, content_sid, content_variables, status, outcome,
                 decided_at, step, reason) FROM STDIN (FORMAT binary)",
        )
        .await
        .map_err(pg_error)?;
    let writer = BinaryCopyInWriter::new(sink, &FANOUT_TYPES);
    pin_mut!(writer);
    for entry in entries {
        let variables = entry.content_variables.as_ref().map(Json);
        let decided_at = entry.decision.as_ref().map(|d| ts(d.at));
        let step = entry.decision.as_ref().map(|d| d.step.as_str());
        let reason = entry.decision.as_ref().map(|d| d.reason.as_str());
        let outcome = entry.decision.as_ref().map(|d| d.outcome.as_str());
        let row: [&(dyn ToSql + Sync); 10] = [
            &entry.id.0,
            &entry.phone.as_str(),
            &entry.body,
            &entry.content_sid,
            &variables,
            &entry.status.as_str(),
            &outcome,
            &decided_at,
            &step,
            &reason,
        ];
        writer.as_mut().write(&row).await.map_err(pg_error)?;
    }
    writer.finish().await.map_err(pg_error)?;
    let written = tx
        .execute(INSERT_FANOUT, &[&run_seq, &campaign.0, &ts(now)])
        .await
        .map_err(pg_error)?;
    if entries.iter().any(|e| e.decision.is_some()) {
        tx.execute(LOG_FANOUT, &[]).await.map_err(pg_error)?;
    }
    Ok(written)
}

#[async_trait]
impl OutboxStore for PgStore {
    async fn open_run(
        &self,
        campaign_id: CampaignId,
        trigger_key: &str,
        event_id: Option<EventId>,
        now: DateTime<Utc>,
    ) -> Result<CampaignRun, StoreError> {
        let client = self.client().await?;
        // The insert answers the run it opened; a run opened before (or by a concurrent call,
        // which the unique key makes this one wait for) is read after it.
        let insert = client
            .prepare_cached(&format!(
                "INSERT INTO campaign_runs (id, campaign_id, trigger_key, event_id, created_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (campaign_id, trigger_key) DO NOTHING
                 RETURNING {RUN_COLUMNS}"
            ))
            .await
            .map_err(pg_error)?;
        let opened = client
            .query_opt(
                &insert,
                &[
                    &RunId::new().0,
                    &campaign_id.0,
                    &trigger_key,
                    &event_id.map(|e| e.0),
                    &ts(now),
                ],
            )
            .await
            .map_err(pg_error)?;
        if let Some(row) = opened {
            return run_from_row(&row);
        }
        let select = client
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM campaign_runs
                 WHERE campaign_id = $1 AND trigger_key = $2"
            ))
            .await
            .map_err(pg_error)?;
        let row = client
            .query_one(&select, &[&campaign_id.0, &trigger_key])
            .await
            .map_err(pg_error)?;
        run_from_row(&row)
    }

    async fn enqueue(
        &self,
        run: &CampaignRun,
        entries: Vec<OutboxEntry>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let seq = tx
            .prepare_cached("SELECT seq FROM campaign_runs WHERE id = $1")
            .await
            .map_err(pg_error)?;
        let seq: i64 = tx
            .query_opt(&seq, &[&run.id.0])
            .await
            .map_err(pg_error)?
            .ok_or_else(|| StoreError::database(format!("no run {}", run.id)))?
            .get(0);
        let written = write_entries(&tx, &entries, run.campaign_id, seq, now).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(written)
    }

    async fn unfinished_runs(&self) -> Result<Vec<CampaignRun>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM campaign_runs WHERE recipients IS NULL
                 ORDER BY created_at, id"
            ))
            .await
            .map_err(pg_error)?;
        let rows = client.query(&statement, &[]).await.map_err(pg_error)?;
        rows.iter().map(run_from_row).collect()
    }

    async fn finish_run(&self, run: RunId) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "UPDATE campaign_runs
                 SET recipients = (SELECT COUNT(*) FROM messages
                                   WHERE run_seq = campaign_runs.seq)
                 WHERE id = $1 RETURNING recipients",
            )
            .await
            .map_err(pg_error)?;
        let row = client
            .query_opt(&statement, &[&run.0])
            .await
            .map_err(pg_error)?
            .ok_or_else(|| StoreError::database(format!("no run {run}")))?;
        let recipients: i64 = get(&row, 0)?;
        Ok(recipients.max(0) as u64)
    }

    async fn get_message(&self, id: MessageId) -> Result<Option<Message>, StoreError> {
        let client = self.client().await?;
        let select = format!("SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = $1");
        let (message, log) = tokio::try_join!(
            client.prepare_cached(&select),
            client.prepare_cached(
                "SELECT at, status, step, reason FROM message_log
                 WHERE message_id = $1 ORDER BY at, seq"
            ),
        )
        .map_err(pg_error)?;
        let key: [&(dyn ToSql + Sync); 1] = [&id.0];
        let (row, log) =
            tokio::try_join!(client.query_opt(&message, &key), client.query(&log, &key))
                .map_err(pg_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut message = message_from_row(&row)?;
        // Every message enters the outbox as pending; the log holds every move since.
        message.history.push(StatusChange {
            status: MessageStatus::Pending,
            at: message.created_at,
        });
        for row in &log {
            let at: DateTime<Utc> = get(row, 0)?;
            let status = status_of(&get::<String>(row, 1)?)?;
            match get::<Option<String>>(row, 2)? {
                Some(step) => message.decisions.push(AuditDecision {
                    step,
                    outcome: status,
                    reason: get::<Option<String>>(row, 3)?.unwrap_or_default(),
                    at,
                }),
                None => message.history.push(StatusChange { status, at }),
            }
        }
        Ok(Some(message))
    }

    async fn list_messages(
        &self,
        query: &MessageQuery,
        page: &PageRequest,
    ) -> Result<Page<Message>, StoreError> {
        // Newest first by the time-ordered id; the cursor is the id of the last message seen.
        let mut conditions = Conditions::default();
        if let Some(campaign) = query.campaign_id {
            let p = conditions.bind(campaign.0);
            conditions.and(format!("m.campaign_id = {p}"));
        }
        if let Some(user) = &query.user {
            let p = conditions.bind(user.as_str().to_owned());
            conditions.and(format!("m.phone = {p}"));
        }
        if let Some(status) = query.status {
            let p = conditions.bind(status.as_str());
            conditions.and(format!("m.status = {p}"));
        }
        if let Some(before) = id_cursor(page)? {
            let p = conditions.bind(before);
            conditions.and(format!("m.id < {p}"));
        }
        query_page(
            self,
            &format!("SELECT {MESSAGE_COLUMNS} FROM messages m"),
            conditions,
            "m.id DESC",
            page,
            message_from_row,
            |m| m.id.to_string(),
        )
        .await
    }
}
