//! Versioned schema migrations, kept in code. `PRAGMA user_version` records how many have been
//! applied; each pending one runs in its own transaction, so a failed upgrade changes nothing.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::connection::db_error;
use crate::store::StoreError;

/// Every migration, in order. Never edit one that has shipped: add a new one.
const MIGRATIONS: &[&str] = &[
    // 1: users, subscriptions, templates, segments, events.
    r#"
    -- A rowid table with a unique phone index rather than WITHOUT ROWID: rows append in
    -- insertion order and only the narrow index takes random writes, which is several times
    -- faster for bulk imports of numbers in no particular order.
    CREATE TABLE users (
        phone           TEXT NOT NULL UNIQUE,
        name            TEXT,
        wa_id           TEXT,
        consent_state   TEXT NOT NULL CHECK (consent_state IN ('OPT_IN', 'OPT_OUT')),
        -- SQLite's binary JSON: segment predicates read it without re-parsing text.
        attributes      BLOB NOT NULL DEFAULT (jsonb('{}')),
        timezone        TEXT,
        locale          TEXT,
        last_inbound_at INTEGER,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        revision        INTEGER NOT NULL DEFAULT 0
    );

    CREATE TABLE subscriptions (
        phone      TEXT NOT NULL REFERENCES users (phone) ON DELETE CASCADE,
        topic      TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (phone, topic)
    ) WITHOUT ROWID;
    CREATE INDEX subscriptions_by_topic ON subscriptions (topic, phone);

    CREATE TABLE templates (
        id                TEXT PRIMARY KEY NOT NULL,
        name              TEXT NOT NULL,
        content           TEXT NOT NULL,
        channel           TEXT NOT NULL,
        locale            TEXT,
        content_sid       TEXT,
        content_variables TEXT,
        placeholders      TEXT NOT NULL,
        created_at        INTEGER NOT NULL,
        updated_at        INTEGER NOT NULL
    );

    CREATE TABLE segments (
        id         TEXT PRIMARY KEY NOT NULL,
        name       TEXT NOT NULL,
        rule       TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );

    CREATE TABLE events (
        id           TEXT PRIMARY KEY NOT NULL,
        external_id  TEXT UNIQUE,
        name         TEXT NOT NULL,
        name_key     TEXT NOT NULL,
        user_phone   TEXT,
        segment_rule TEXT,
        data         TEXT NOT NULL,
        occurred_at  INTEGER NOT NULL,
        received_at  INTEGER NOT NULL
    );
    CREATE INDEX events_by_user ON events (user_phone, name_key, occurred_at);
    CREATE INDEX events_by_time ON events (received_at, id);
    "#,
    // 2: campaigns.
    r#"
    CREATE TABLE campaigns (
        id                    TEXT PRIMARY KEY NOT NULL,
        name                  TEXT NOT NULL,
        topic                 TEXT,
        template_id           TEXT NOT NULL REFERENCES templates (id),
        segment_id            TEXT REFERENCES segments (id),
        trigger               TEXT NOT NULL,
        trigger_event_key     TEXT,
        start_at              INTEGER,
        end_at                INTEGER,
        rate_limit_per_second INTEGER,
        quiet_hours           TEXT,
        status                TEXT NOT NULL,
        created_at            INTEGER NOT NULL,
        updated_at            INTEGER NOT NULL
    );
    CREATE INDEX campaigns_by_status ON campaigns (status);
    CREATE INDEX campaigns_by_trigger ON campaigns (trigger_event_key)
        WHERE trigger_event_key IS NOT NULL;
    "#,
    // 3: inbound messages.
    r#"
    CREATE TABLE inbound (
        id          TEXT PRIMARY KEY NOT NULL,
        message_sid TEXT NOT NULL UNIQUE,
        phone       TEXT NOT NULL,
        wa_id       TEXT,
        body        TEXT NOT NULL,
        command     TEXT,
        topic       TEXT,
        received_at INTEGER NOT NULL,
        raw         TEXT NOT NULL
    );
    CREATE INDEX inbound_by_phone ON inbound (phone, id);
    "#,
    // 4: the outbox: campaign runs, messages and their log of status changes and decisions.
    r#"
    CREATE TABLE campaign_runs (
        id          TEXT PRIMARY KEY NOT NULL,
        campaign_id TEXT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
        trigger_key TEXT NOT NULL,
        event_id    TEXT,
        recipients  INTEGER,
        created_at  INTEGER NOT NULL,
        UNIQUE (campaign_id, trigger_key)
    );

    CREATE TABLE messages (
        id                TEXT PRIMARY KEY NOT NULL,
        campaign_id       TEXT,
        run_id            TEXT REFERENCES campaign_runs (id) ON DELETE CASCADE,
        phone             TEXT NOT NULL,
        body              TEXT NOT NULL,
        content_sid       TEXT,
        content_variables TEXT,
        status            TEXT NOT NULL,
        provider_sid      TEXT UNIQUE,
        error_code        TEXT,
        attempts          INTEGER NOT NULL DEFAULT 0,
        due_at            INTEGER NOT NULL,
        lease_until       INTEGER,
        created_at        INTEGER NOT NULL,
        updated_at        INTEGER NOT NULL,
        UNIQUE (run_id, phone)
    );
    CREATE INDEX messages_due ON messages (due_at)
        WHERE status IN ('pending', 'queued', 'deferred', 'sending');
    CREATE INDEX messages_by_campaign ON messages (campaign_id, status);
    CREATE INDEX messages_by_phone ON messages (phone, id);

    -- Status changes (step IS NULL) and policy decisions (step names the policy).
    CREATE TABLE message_log (
        message_id TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        at         INTEGER NOT NULL,
        status     TEXT NOT NULL,
        step       TEXT,
        reason     TEXT
    );
    CREATE INDEX message_log_by_message ON message_log (message_id, at);
    "#,
    // 5: delivery receipts, kept whether or not they changed a message.
    r#"
    CREATE TABLE receipts (
        id              INTEGER PRIMARY KEY,
        message_sid     TEXT NOT NULL,
        provider_status TEXT NOT NULL,
        status          TEXT,
        error_code      TEXT,
        received_at     INTEGER NOT NULL,
        raw             TEXT NOT NULL,
        outcome         TEXT NOT NULL,
        UNIQUE (message_sid, provider_status)
    );
    CREATE INDEX receipts_parked ON receipts (message_sid) WHERE outcome = 'parked';
    "#,
    // 6: the dispatcher: how a message goes out, when it was first released to the provider,
    // and indexes for claiming due messages per campaign and finding unresolved sends.
    r#"
    ALTER TABLE messages ADD COLUMN sent_as TEXT;
    ALTER TABLE messages ADD COLUMN dispatched_at INTEGER;
    DROP INDEX messages_due;
    CREATE INDEX messages_due ON messages (campaign_id, due_at)
        WHERE status IN ('pending', 'queued', 'deferred');
    CREATE INDEX messages_unresolved ON messages (lease_until) WHERE status = 'sending';
    CREATE INDEX messages_conversations ON messages (dispatched_at) WHERE sent_as = 'template';
    "#,
    // 7: a compact outbox. A fan-out writes one message row, and an entry in each index, per
    // recipient, so their size and number set its pace: ids are stored as their 16 bytes
    // rather than 36 characters of text, a message names its run by the run's integer key,
    // provider SIDs are unique where set instead of indexing every message still without one,
    // and one index on (campaign, status, due time) serves both claiming due messages and
    // counting a campaign's messages by status. The tables are rebuilt (foreign keys are
    // checked once the migration is done, see `apply`).
    r#"
    CREATE TABLE campaign_runs_new (
        seq         INTEGER PRIMARY KEY,
        id          TEXT NOT NULL UNIQUE,
        campaign_id TEXT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
        trigger_key TEXT NOT NULL,
        event_id    TEXT,
        recipients  INTEGER,
        created_at  INTEGER NOT NULL,
        UNIQUE (campaign_id, trigger_key)
    );
    INSERT INTO campaign_runs_new (id, campaign_id, trigger_key, event_id, recipients, created_at)
        SELECT id, campaign_id, trigger_key, event_id, recipients, created_at
        FROM campaign_runs ORDER BY rowid;

    CREATE TABLE messages_new (
        id                BLOB PRIMARY KEY NOT NULL,
        campaign_id       BLOB,
        run_seq           INTEGER REFERENCES campaign_runs (seq) ON DELETE CASCADE,
        phone             TEXT NOT NULL,
        body              TEXT NOT NULL,
        content_sid       TEXT,
        content_variables TEXT,
        status            TEXT NOT NULL,
        provider_sid      TEXT,
        error_code        TEXT,
        attempts          INTEGER NOT NULL DEFAULT 0,
        due_at            INTEGER NOT NULL,
        lease_until       INTEGER,
        created_at        INTEGER NOT NULL,
        updated_at        INTEGER NOT NULL,
        sent_as           TEXT,
        dispatched_at     INTEGER,
        UNIQUE (run_seq, phone)
    );
    INSERT INTO messages_new (id, campaign_id, run_seq, phone, body, content_sid,
            content_variables, status, provider_sid, error_code, attempts, due_at, lease_until,
            created_at, updated_at, sent_as, dispatched_at)
        SELECT unhex(replace(m.id, '-', '')), unhex(replace(m.campaign_id, '-', '')), r.seq,
            m.phone, m.body, m.content_sid, m.content_variables, m.status, m.provider_sid,
            m.error_code, m.attempts, m.due_at, m.lease_until, m.created_at, m.updated_at,
            m.sent_as, m.dispatched_at
        FROM messages m LEFT JOIN campaign_runs_new r ON r.id = m.run_id ORDER BY m.rowid;

    CREATE TABLE message_log_new (
        message_id BLOB NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        at         INTEGER NOT NULL,
        status     TEXT NOT NULL,
        step       TEXT,
        reason     TEXT
    );
    INSERT INTO message_log_new (message_id, at, status, step, reason)
        SELECT unhex(replace(message_id, '-', '')), at, status, step, reason
        FROM message_log ORDER BY rowid;

    DROP TABLE message_log;
    DROP TABLE messages;
    DROP TABLE campaign_runs;
    ALTER TABLE campaign_runs_new RENAME TO campaign_runs;
    ALTER TABLE messages_new RENAME TO messages;
    ALTER TABLE message_log_new RENAME TO message_log;

    CREATE UNIQUE INDEX messages_by_provider_sid ON messages (provider_sid)
        WHERE provider_sid IS NOT NULL;
    CREATE INDEX messages_by_campaign ON messages (campaign_id, status, due_at);
    CREATE INDEX messages_by_phone ON messages (phone, id);
    CREATE INDEX messages_unresolved ON messages (lease_until) WHERE status = 'sending';
    CREATE INDEX messages_conversations ON messages (dispatched_at) WHERE sent_as = 'template';
    CREATE INDEX message_log_by_message ON message_log (message_id, at);
    "#,
    // 8: the records of past ingestions, each with its report. Ids are time-ordered, so the
    // primary key lists them newest first.
    r#"
    CREATE TABLE ingestions (
        id                 TEXT PRIMARY KEY NOT NULL,
        kind               TEXT NOT NULL CHECK (kind IN ('users', 'events')),
        source_file        TEXT,
        format             TEXT NOT NULL,
        started_at         INTEGER NOT NULL,
        finished_at        INTEGER NOT NULL,
        total              INTEGER NOT NULL,
        inserted           INTEGER NOT NULL,
        updated            INTEGER NOT NULL,
        duplicates         INTEGER NOT NULL,
        invalid            INTEGER NOT NULL,
        errors             TEXT NOT NULL,
        errors_listed      INTEGER NOT NULL,
        errors_not_listed  INTEGER NOT NULL,
        stopped_because    TEXT
    );
    "#,
    // 9: why a campaign stopped by itself (a run that could not be fanned out).
    r#"
    ALTER TABLE campaigns ADD COLUMN problem TEXT;
    "#,
    // 10: asking the provider about messages whose final status never came (their status
    // callbacks failed while the server was down): when to ask next (NULL: never asked, due
    // ten quiet minutes after the last status change), and how many answers did not settle
    // it. One partial index, over the few messages awaiting their status, serves both the
    // first question (NULL, by last change) and the next ones (by time due).
    r#"
    ALTER TABLE messages ADD COLUMN status_check_at INTEGER;
    ALTER TABLE messages ADD COLUMN status_checks INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX messages_awaiting_status ON messages (status_check_at, updated_at)
        WHERE status IN ('sending', 'sent') AND provider_sid IS NOT NULL;
    "#,
    // 11: status changes by time, for the time series of sends, deliveries and failures; it
    // covers the query, which reads no table row.
    r#"
    CREATE INDEX message_log_by_time ON message_log (at, status);
    "#,
    // 12: the sending lease: the one dispatcher that sends from this database (a server and
    // a desktop app opened on one file never send together), renewed while it runs.
    r#"
    CREATE TABLE sender_lease (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        holder      TEXT NOT NULL,
        label       TEXT NOT NULL,
        until       INTEGER NOT NULL
    );
    "#,
    // 13: opted-out users, counted by the dashboard and listed by the consent filter
    // without reading every user (a tenth of them, typically).
    r#"
    CREATE INDEX users_opted_out ON users (phone) WHERE consent_state = 'OPT_OUT';
    "#,
    // 14: how far each provider's history has been read by polling (statuses and inbound
    // messages without webhooks), by source (`twilio ACxxx whatsapp:+…`), so a restart goes
    // on from there.
    r#"
    CREATE TABLE poll_marks (
        source       TEXT PRIMARY KEY NOT NULL,
        polled_until INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 15: dispatchers' heartbeats, the buckets of permits that rate ceilings shared by
    // processes are kept in, and which dispatcher holds each claim.
    r#"
    ALTER TABLE messages ADD COLUMN claimed_by TEXT;
    CREATE TABLE process_heartbeats (
        id         TEXT PRIMARY KEY NOT NULL,
        label      TEXT NOT NULL,
        started_at INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
        until      INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE send_buckets (
        key          TEXT PRIMARY KEY NOT NULL,
        tokens       REAL NOT NULL,
        refreshed_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 16: who is fanning each run out, and until when (a lease, renewed while it goes on).
    r#"
    ALTER TABLE campaign_runs ADD COLUMN fan_out_by TEXT;
    ALTER TABLE campaign_runs ADD COLUMN fan_out_until INTEGER;
    "#,
];

/// How many migrations this build knows.
pub(crate) const LATEST: usize = MIGRATIONS.len();

/// Applies every migration the database has not seen yet. Each runs in an immediate
/// transaction that re-reads the version first, so two processes opening a new file at once
/// apply each migration once.
pub(crate) fn apply(conn: &mut Connection) -> Result<(), StoreError> {
    // A migration that rebuilds a table drops the old one, and with foreign keys enforced
    // that drop would first delete every row referring to it (`ON DELETE CASCADE`). So they
    // are off while migrations run (the pragma cannot change inside a transaction), and each
    // migration checks them as a whole before it commits.
    let enforced: bool = conn
        .query_row("PRAGMA foreign_keys", [], |row| row.get(0))
        .map_err(db_error)?;
    conn.pragma_update(None, "foreign_keys", false)
        .map_err(db_error)?;
    let applied = apply_pending(conn);
    conn.pragma_update(None, "foreign_keys", enforced)
        .map_err(db_error)?;
    applied
}

fn apply_pending(conn: &mut Connection) -> Result<(), StoreError> {
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_error)?;
        let applied: usize = tx
            .query_row("PRAGMA user_version", [], |row| row.get::<_, i64>(0))
            .map_err(db_error)? as usize;
        if applied > LATEST {
            return Err(StoreError::database(format!(
                "the database is at schema version {applied}, newer than this build's {LATEST}; \
                 upgrade the program"
            )));
        }
        let Some(sql) = MIGRATIONS.get(applied) else {
            return Ok(());
        };
        tx.execute_batch(sql).map_err(db_error)?;
        let dangling: Option<String> = tx
            .query_row("PRAGMA foreign_key_check", [], |row| row.get(0))
            .optional()
            .map_err(db_error)?;
        if let Some(table) = dangling {
            return Err(StoreError::database(format!(
                "migration {} would leave rows of {table} referring to nothing",
                applied + 1
            )));
        }
        tx.pragma_update(None, "user_version", (applied + 1) as i64)
            .map_err(db_error)?;
        tx.commit().map_err(db_error)?;
        tracing::info!(version = applied + 1, "applied database migration");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_are_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        apply(&mut conn).unwrap();
        apply(&mut conn).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version as usize, LATEST);
    }

    /// A database at schema 6 with one campaign run, a message of it with its log, and a
    /// reply (no campaign, no run) that the provider accepted.
    fn database_at_version_6() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        for sql in &MIGRATIONS[..6] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 6).unwrap();
        conn.execute_batch(
            "INSERT INTO templates (id, name, content, channel, placeholders, created_at,
                 updated_at) VALUES ('t', 't', 'Hi', 'whatsapp', '[]', 0, 0);
             INSERT INTO campaigns (id, name, template_id, trigger, status, created_at,
                 updated_at)
                 VALUES ('0190b5a6-0000-7000-8000-00000000000c', 'c', 't', 'manual', 'running',
                         0, 0);
             INSERT INTO campaign_runs (id, campaign_id, trigger_key, created_at)
                 VALUES ('0190b5a6-0000-7000-8000-0000000000a1',
                         '0190b5a6-0000-7000-8000-00000000000c', 'launch', 0);
             INSERT INTO messages (id, campaign_id, run_id, phone, body, status, due_at,
                 created_at, updated_at)
                 VALUES ('0190b5a6-0000-7000-8000-000000000001',
                         '0190b5a6-0000-7000-8000-00000000000c',
                         '0190b5a6-0000-7000-8000-0000000000a1',
                         '+94771234501', 'Hi', 'skipped', 0, 0, 0);
             INSERT INTO message_log (message_id, at, status, step, reason)
                 VALUES ('0190b5a6-0000-7000-8000-000000000001', 1, 'skipped', 'consent',
                         'opted out');
             INSERT INTO messages (id, phone, body, status, provider_sid, due_at, created_at,
                 updated_at)
                 VALUES ('0190b5a6-0000-7000-8000-000000000002', '+94771234502', 'Yes',
                         'sent', 'SM1', 0, 0, 0);",
        )
        .unwrap();
        conn
    }

    #[test]
    fn the_compact_outbox_keeps_every_message_its_log_and_its_run() {
        let mut conn = database_at_version_6();
        apply(&mut conn).unwrap();
        let message: (String, String, String, String) = conn
            .query_row(
                "SELECT lower(hex(m.id)), lower(hex(m.campaign_id)), r.id, m.phone
                 FROM messages m JOIN campaign_runs r ON r.seq = m.run_seq",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(
            message,
            (
                "0190b5a6000070008000000000000001".into(),
                "0190b5a600007000800000000000000c".into(),
                "0190b5a6-0000-7000-8000-0000000000a1".into(),
                "+94771234501".into()
            )
        );
        let reason: String = conn
            .query_row(
                "SELECT reason FROM message_log
                 WHERE message_id = X'0190b5a6000070008000000000000001'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(reason, "opted out");
        let reply: (Option<i64>, String) = conn
            .query_row(
                "SELECT run_seq, phone FROM messages WHERE provider_sid = 'SM1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(reply, (None, "+94771234502".into()));
        let enforced: bool = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert!(enforced, "foreign keys are enforced again after migrating");
    }

    #[test]
    fn deleting_a_campaign_still_deletes_its_runs_messages_and_their_log() {
        let mut conn = database_at_version_6();
        apply(&mut conn).unwrap();
        conn.execute("DELETE FROM campaigns", []).unwrap();
        let left: (i64, i64, i64) = conn
            .query_row(
                "SELECT (SELECT COUNT(*) FROM campaign_runs), (SELECT COUNT(*) FROM messages),
                     (SELECT COUNT(*) FROM message_log)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            left,
            (0, 1, 0),
            "only the reply, which belongs to no run, is left"
        );
    }

    #[test]
    fn provider_sids_stay_unique_where_set() {
        let mut conn = database_at_version_6();
        apply(&mut conn).unwrap();
        let duplicate = conn.execute(
            "UPDATE messages SET provider_sid = 'SM1' WHERE provider_sid IS NULL",
            [],
        );
        assert!(
            duplicate.is_err(),
            "a second message with SID SM1 is refused"
        );
    }

    #[test]
    fn refuses_a_newer_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
        assert!(apply(&mut conn).is_err());
    }
}
