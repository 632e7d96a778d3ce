//! The outbox in PostgreSQL: campaign runs, one message row per recipient and run, and each
//! message's log of status changes and decisions.
//!
//! `campaign_runs` keys a run by an integer `seq` (what a message names its run by, as in the
//! SQLite adapter: eight bytes per message and per index entry instead of sixteen), with its
//! `uuid` id unique beside it and one run per `(campaign_id, trigger_key)`. Deleting a
//! campaign deletes its runs, their messages and their log.
//!
//! # Messages, and what a fan-out costs
//!
//! A fan-out writes a row and an entry in every index per recipient, a million at a time, so
//! their number sets its pace (each entry is also a WAL record). `messages` therefore has
//! four indexes that every new message enters, each serving several queries:
//! - the primary key (ids are time-ordered, so new ones append);
//! - `UNIQUE (phone, run_seq)`: one message per recipient and run, so a fan-out repeated
//!   after a crash adds nothing twice (replies have no run and never conflict); phone first,
//!   so that it also finds a recipient's messages (the frequency cap, a user's messages);
//! - `messages_by_campaign (campaign_id, run_seq, status)`: counts per campaign and status,
//!   a run's messages (`finish_run`, deleting a run);
//! - `messages_due (campaign_id, due_at)`, partial over unsent messages: the claims.
//!
//! The other indexes are partial over what a new campaign message never is (a reply, under
//! a live lease, a send whose fate is unknown, a template conversation, awaiting its status,
//! known to the provider), so a fan-out does not write them.
//! Neither a message's run nor a log row's message is a foreign key: each would be checked
//! row by row (a lookup and a row lock each, about 6 µs), a quarter of a fan-out's time and
//! a cost on every status change. Instead `enqueue` locks its run `FOR KEY SHARE` once per
//! batch (the lock a foreign key check takes, so the run cannot be deleted under it), log
//! rows are only written by the transaction that writes their message or holds it locked,
//! and a statement trigger on `campaign_runs` deletes the messages of deleted runs and their
//! log (messages are deleted no other way).
//!
//! A fan-out batch goes in with binary `COPY`. A first fan-out has no recipient the run
//! already has, so the batch is copied straight into `messages` under a savepoint, and the
//! decisions taken at once are logged from arrays; a repeated one (after a crash) fails at
//! once on its first recipient already there, with a unique violation, and the batch is then
//! copied into a temporary table dropped at commit and written with one `INSERT … SELECT …
//! ON CONFLICT (run_seq, phone) DO NOTHING` that also logs, in the same statement, the
//! decisions of the entries that went in. (Going through the temporary table every time
//! costs a third more: the rows are written and read twice, and a speculative insertion costs
//! about a quarter more than a plain one.) The temporary table is read in the order it was
//! written (a fresh table read whole, by the backend that wrote it), so of two entries of one
//! batch for one recipient the first goes in, as in SQLite. A batch commits without waiting
//! for its WAL to reach the disk: a fan-out is repeated until `finish_run` commits (durably,
//! and with it every batch before), and a dispatcher's claim of a message commits durably
//! after the batch that wrote it, so no message is sent whose batch a crash could lose.
//!
//! `message_log` rows are numbered (`seq`) as they are written, so a message's history reads
//! back in the order it happened even where two changes share a millisecond.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use futures_util::pin_mut;
use tokio_postgres::Row;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{Json, ToSql, Type};
use uuid::Uuid;

use super::catalog::{Conditions, get, id_cursor, query_page};
use super::{PgStore, corrupt, pg_error, ts};
use crate::domain::{
    AuditDecision, CampaignId, EventId, Message, MessageId, MessageStatus, PhoneNumber, RunId,
    StatusChange,
};
use crate::store::{
    CampaignRun, MessageQuery, OutboxEntry, OutboxStore, Page, PageRequest, RunLease, StoreError,
};

/// This module's tables, part of the first migration.
/// Who is fanning each run out, and until when (a lease, renewed while it goes on): the
/// second migration.
pub(super) const FAN_OUT_LEASES: &str = "
ALTER TABLE campaign_runs ADD COLUMN fan_out_by text, ADD COLUMN fan_out_until timestamptz;
";

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
    -- The run (campaign_runs.seq; see the module docs for why no foreign key).
    run_seq           bigint,
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
    -- One message per recipient and run; also a recipient's messages.
    UNIQUE (phone, run_seq)
);
CREATE UNIQUE INDEX messages_by_provider_sid ON messages (provider_sid)
    WHERE provider_sid IS NOT NULL;
-- A campaign's messages by run and status: counts, a run's messages.
CREATE INDEX messages_by_campaign ON messages (campaign_id, run_seq, status);
-- Claiming a campaign's due messages, earliest first; and the replies' (no campaign).
CREATE INDEX messages_due ON messages (campaign_id, due_at)
    WHERE status IN ('pending', 'queued', 'deferred');
CREATE INDEX messages_due_replies ON messages (due_at)
    WHERE campaign_id IS NULL AND status IN ('pending', 'queued', 'deferred');
-- Ending the claims of dispatchers that stopped.
CREATE INDEX messages_leased ON messages (lease_until)
    WHERE status IN ('pending', 'queued', 'deferred') AND lease_until IS NOT NULL;
-- Sends whose fate is unknown (and ending their claims).
CREATE INDEX messages_unresolved ON messages (lease_until) WHERE status = 'sending';
CREATE INDEX messages_conversations ON messages (dispatched_at) WHERE sent_as = 'template';
-- Messages awaiting their status: asked before, by when the next question is due; never
-- asked, by their last change.
CREATE INDEX messages_awaiting_status ON messages (status_check_at)
    WHERE status IN ('sending', 'sent') AND provider_sid IS NOT NULL;
CREATE INDEX messages_awaiting_first_check ON messages (updated_at)
    WHERE status IN ('sending', 'sent') AND provider_sid IS NOT NULL
        AND status_check_at IS NULL;

-- A deleted run's messages and their log go with it (once per statement, found by campaign
-- and run).
CREATE FUNCTION outbox_delete_runs_messages() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM message_log l USING messages m, deleted_runs r
    WHERE m.campaign_id = r.campaign_id AND m.run_seq = r.seq AND l.message_id = m.id;
    DELETE FROM messages m USING deleted_runs r
    WHERE m.campaign_id = r.campaign_id AND m.run_seq = r.seq;
    RETURN NULL;
END
$$;
CREATE TRIGGER campaign_runs_delete_messages AFTER DELETE ON campaign_runs
    REFERENCING OLD TABLE AS deleted_runs
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_delete_runs_messages();

-- Status changes (step IS NULL) and policy decisions (step names the policy), numbered in
-- the order they were written (nothing looks a row up by its number, so it is no key).
-- `message_id` is not a foreign key either (see the module docs).
CREATE TABLE message_log (
    seq        bigint GENERATED ALWAYS AS IDENTITY,
    message_id uuid NOT NULL,
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
    pub(super) async fn write(&self, tx: &impl GenericClient) -> Result<(), StoreError> {
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

/// The column types of a binary copy straight into `messages` ([`copy_messages`]).
const MESSAGE_TYPES: [Type; 11] = [
    Type::UUID,
    Type::UUID,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::JSONB,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
];

/// Copies entries straight into `messages` (all of them, or none: one recipient the run
/// already has fails the copy with a unique violation).
async fn copy_messages(
    tx: &deadpool_postgres::Transaction<'_>,
    entries: &[OutboxEntry],
    campaign: CampaignId,
    run_seq: i64,
    now: DateTime<Utc>,
) -> Result<(), tokio_postgres::Error> {
    let sink = tx
        .copy_in(
            "COPY messages (id, campaign_id, run_seq, phone, body, content_sid,
                 content_variables, status, due_at, created_at, updated_at)
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    let writer = BinaryCopyInWriter::new(sink, &MESSAGE_TYPES);
    pin_mut!(writer);
    let now = ts(now);
    for entry in entries {
        let variables = entry.content_variables.as_ref().map(Json);
        let row: [&(dyn ToSql + Sync); 11] = [
            &entry.id.0,
            &campaign.0,
            &run_seq,
            &entry.phone.as_str(),
            &entry.body,
            &entry.content_sid,
            &variables,
            &entry.status.as_str(),
            &now,
            &now,
            &now,
        ];
        writer.as_mut().write(&row).await?;
    }
    writer.finish().await?;
    Ok(())
}

/// Adds the entries copied into `fanout` to run `$1` (of campaign `$2`), due at `$3`,
/// leaving out recipients the run already has, and logs, in the same statement, the
/// decisions taken at once of those that went in (every message enters as pending, so the
/// move and its reason); answers how many went in.
const WRITE_FANOUT: &str = "
    WITH inserted AS (
        INSERT INTO messages (id, campaign_id, run_seq, phone, body, content_sid,
            content_variables, status, due_at, created_at, updated_at)
        SELECT id, $2::uuid, $1::bigint, phone, body, content_sid, content_variables, status,
            $3::timestamptz, $3, $3
        FROM fanout
        ON CONFLICT (run_seq, phone) DO NOTHING
        RETURNING id
    ), logged AS (
        INSERT INTO message_log (message_id, at, status, step, reason)
        SELECT f.id, f.decided_at, f.outcome, l.step, l.reason
        FROM inserted i JOIN fanout f ON f.id = i.id
             CROSS JOIN LATERAL (VALUES (1, NULL, NULL), (2, f.step, f.reason))
                 AS l(n, step, reason)
        WHERE f.step IS NOT NULL
        ORDER BY f.id, l.n
    )
    SELECT COUNT(*) FROM inserted";

/// Writes outbox entries of run `run_seq` (of `campaign`) due at `now`, in the caller's
/// transaction; answers how many went in (see the module docs).
async fn write_entries(
    tx: &mut deadpool_postgres::Transaction<'_>,
    entries: &[OutboxEntry],
    campaign: CampaignId,
    run_seq: i64,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    if entries.is_empty() {
        return Ok(0);
    }
    // Straight into `messages` first, under a savepoint (see the module docs).
    let attempt = tx.savepoint("fanout_copy").await.map_err(pg_error)?;
    match copy_messages(&attempt, entries, campaign, run_seq, now).await {
        Ok(()) => {
            let mut log = LogRows::default();
            for entry in entries {
                if let Some(decision) = &entry.decision {
                    log.change(entry.id.0, decision.at, decision.outcome);
                    log.decision(entry.id.0, decision);
                }
            }
            log.write(&attempt).await?;
            attempt.commit().await.map_err(pg_error)?;
            return Ok(entries.len() as u64);
        }
        Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            attempt.rollback().await.map_err(pg_error)?;
        }
        Err(error) => return Err(pg_error(error)),
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
    let row = tx
        .query_one(WRITE_FANOUT, &[&run_seq, &campaign.0, &ts(now)])
        .await
        .map_err(pg_error)?;
    Ok(get::<i64>(&row, 0)?.max(0) as u64)
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
        let mut tx = client.transaction().await.map_err(pg_error)?;
        // See the module docs: durable with `finish_run`, or with the claim of a message.
        tx.batch_execute("SET LOCAL synchronous_commit TO off")
            .await
            .map_err(pg_error)?;
        // The run stays while its messages are written (the lock a foreign key would take).
        let seq = tx
            .prepare_cached("SELECT seq FROM campaign_runs WHERE id = $1 FOR KEY SHARE")
            .await
            .map_err(pg_error)?;
        let seq: i64 = tx
            .query_opt(&seq, &[&run.id.0])
            .await
            .map_err(pg_error)?
            .ok_or_else(|| StoreError::database(format!("no run {}", run.id)))?
            .get(0);
        let written = write_entries(&mut tx, &entries, run.campaign_id, seq, now).await?;
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
                                   WHERE campaign_id = campaign_runs.campaign_id
                                       AND run_seq = campaign_runs.seq)
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

    async fn lease_run(
        &self,
        run: RunId,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<RunLease, StoreError> {
        let client = self.client().await?;
        // Taken when free, run out or already the owner's; otherwise what the run is, read
        // in the same statement (the update's snapshot sees the row as it was).
        let statement = client
            .prepare_cached(
                "WITH taken AS (
                     UPDATE campaign_runs SET fan_out_by = $2, fan_out_until = $3
                     WHERE id = $1 AND recipients IS NULL
                         AND (fan_out_by IS NULL OR fan_out_by = $2 OR fan_out_until <= $4)
                     RETURNING id)
                 SELECT EXISTS (SELECT 1 FROM taken), recipients FROM campaign_runs
                 WHERE id = $1",
            )
            .await
            .map_err(pg_error)?;
        let row = client
            .query_opt(&statement, &[&run.0, &owner, &ts(until), &ts(now)])
            .await
            .map_err(pg_error)?
            .ok_or_else(|| StoreError::database(format!("no run {run}")))?;
        Ok(RunLease::from_attempt(get(&row, 0)?, get(&row, 1)?))
    }

    async fn release_run(&self, run: RunId, owner: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "UPDATE campaign_runs SET fan_out_by = NULL, fan_out_until = NULL
                 WHERE id = $1 AND fan_out_by = $2",
            )
            .await
            .map_err(pg_error)?;
        client
            .execute(&statement, &[&run.0, &owner])
            .await
            .map_err(pg_error)?;
        Ok(())
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

#[cfg(test)]
pub(super) mod tests {
    use std::time::Instant;

    use chrono::TimeZone as _;

    use super::*;
    use crate::store::postgres::ScratchDatabase;

    /// A time `second`s after the tests' epoch.
    pub(in super::super) fn at(second: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + second, 0).unwrap()
    }

    /// A campaign in `status`, with its template, written with plain SQL.
    pub(in super::super) async fn campaign_in(store: &PgStore, status: &str) -> CampaignId {
        let client = store.client().await.unwrap();
        let (template, campaign) = (Uuid::now_v7(), CampaignId::new());
        client
            .execute(
                "INSERT INTO templates (id, name, content, channel, placeholders, created_at,
                     updated_at) VALUES ($1, 't', 'Hi', 'whatsapp', '[]', now(), now())",
                &[&template],
            )
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO campaigns (id, name, template_id, trigger, status, created_at,
                     updated_at) VALUES ($1, 'c', $2, '\"manual\"', $3, now(), now())",
                &[&campaign.0, &template, &status],
            )
            .await
            .unwrap();
        campaign
    }

    /// A store with one running campaign and its launch run.
    pub(in super::super) async fn store_with_run() -> (PgStore, CampaignRun, ScratchDatabase) {
        let (store, database) = super::super::scratch().await;
        let campaign = campaign_in(&store, "running").await;
        let run = store
            .open_run(campaign, "launch", None, at(0))
            .await
            .unwrap();
        (store, run, database)
    }

    /// `count` messages to `+9477000NNNN`; every tenth skipped by a decision taken at once.
    pub(in super::super) fn entries(count: usize) -> Vec<OutboxEntry> {
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
                    phone: PhoneNumber::parse(&format!("+9477{i:07}")).unwrap(),
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
        let (store, run, _database) = store_with_run().await;
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
        let client = store.client().await.unwrap();
        let logged: i64 = client
            .query_one("SELECT COUNT(*) FROM message_log", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(logged, 50, "the repeat logged nothing");
    }

    #[tokio::test]
    async fn a_repeated_batch_adds_only_the_recipients_the_run_lacks_with_their_decisions() {
        let (store, run, _database) = store_with_run().await;
        assert_eq!(store.enqueue(&run, entries(250), at(1)).await.unwrap(), 250);
        let again = entries(300);
        assert_eq!(store.enqueue(&run, again.clone(), at(2)).await.unwrap(), 50);
        assert_eq!(store.finish_run(run.id).await.unwrap(), 300);
        assert_eq!(store.get_message(again[0].id).await.unwrap(), None);
        let added = store.get_message(again[260].id).await.unwrap().unwrap();
        assert_eq!(added.status, MessageStatus::Skipped);
        assert_eq!(added.decisions.len(), 1);
        let client = store.client().await.unwrap();
        let logged: i64 = client
            .query_one("SELECT COUNT(*) FROM message_log", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(logged, 60, "two rows for each of the 30 skipped at once");
    }

    #[tokio::test]
    async fn of_two_entries_of_one_batch_for_one_recipient_the_first_goes_in() {
        let (store, run, _database) = store_with_run().await;
        let mut batch = entries(3);
        let mut again = entries(1).remove(0);
        again.body = "second".into();
        batch.push(again);
        assert_eq!(store.enqueue(&run, batch.clone(), at(1)).await.unwrap(), 3);
        let first = store.get_message(batch[0].id).await.unwrap().unwrap();
        assert_eq!(first.body, "Hi 0");
        assert_eq!(first.decisions.len(), 1);
        assert_eq!(store.get_message(batch[3].id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_run_opens_once_per_trigger_and_finishes_with_its_count() {
        let (store, run, _database) = store_with_run().await;
        let again = store
            .open_run(run.campaign_id, "launch", None, at(5))
            .await
            .unwrap();
        assert_eq!(again, run);
        let event = EventId::new();
        let other = store
            .open_run(run.campaign_id, "event:1", Some(event), at(6))
            .await
            .unwrap();
        assert_ne!(other.id, run.id);
        assert_eq!(other.event_id, Some(event));
        let unfinished: Vec<_> = store
            .unfinished_runs()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(unfinished, [run.id, other.id], "oldest first");
        store.enqueue(&run, entries(12), at(7)).await.unwrap();
        assert_eq!(store.finish_run(run.id).await.unwrap(), 12);
        let unfinished = store.unfinished_runs().await.unwrap();
        assert_eq!(unfinished, [other]);
    }

    #[tokio::test]
    async fn deleting_a_campaign_deletes_its_runs_messages_and_their_log() {
        let (store, run, _database) = store_with_run().await;
        store.enqueue(&run, entries(30), at(1)).await.unwrap();
        let other = campaign_in(&store, "running").await;
        let other_run = store.open_run(other, "launch", None, at(2)).await.unwrap();
        store.enqueue(&other_run, entries(20), at(3)).await.unwrap();
        let client = store.client().await.unwrap();
        client
            .execute("DELETE FROM campaigns WHERE id = $1", &[&run.campaign_id.0])
            .await
            .unwrap();
        let left: (i64, i64, i64) = {
            let row = client
                .query_one(
                    "SELECT (SELECT COUNT(*) FROM campaign_runs), (SELECT COUNT(*) FROM messages),
                         (SELECT COUNT(*) FROM message_log)",
                    &[],
                )
                .await
                .unwrap();
            (row.get(0), row.get(1), row.get(2))
        };
        assert_eq!(
            left,
            (1, 20, 4),
            "only the other campaign's run, messages and log"
        );
    }

    #[tokio::test]
    async fn messages_are_listed_newest_first_page_by_page() {
        let (store, run, _database) = store_with_run().await;
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

        let skipped = MessageQuery {
            status: Some(MessageStatus::Skipped),
            user: Some(batch[0].phone.clone()),
            ..query.clone()
        };
        let found = store
            .list_messages(&skipped, &PageRequest::first(10))
            .await
            .unwrap();
        assert_eq!(found.items.len(), 1);

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

    /// How long the outbox takes to write a fan-out of `FAN_OUT_ENTRIES` recipients in the
    /// fan-out's batches of 5,000 (run with `--ignored --nocapture`, in release).
    #[tokio::test]
    #[ignore = "a measurement, not a check"]
    async fn fan_out_timing() {
        let count: usize = std::env::var("FAN_OUT_ENTRIES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(100_000);
        let (store, run, _database) = store_with_run().await;
        let batches: Vec<Vec<OutboxEntry>> = entries(count)
            .chunks(5_000)
            .map(<[OutboxEntry]>::to_vec)
            .collect();
        let started = Instant::now();
        let mut written = 0;
        for batch in batches {
            written += store.enqueue(&run, batch, at(1)).await.unwrap();
        }
        let took = started.elapsed();
        assert_eq!(written, count as u64);
        println!(
            "enqueued {count} entries (a tenth with a decision) in {took:?}: {:.0} per second",
            count as f64 / took.as_secs_f64()
        );
    }
}
