//! Versioned schema migrations, kept in code. `PRAGMA user_version` records how many have been
//! applied; each pending one runs in its own transaction, so a failed upgrade changes nothing.

use rusqlite::{Connection, TransactionBehavior};

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
];

/// How many migrations this build knows.
pub(crate) const LATEST: usize = MIGRATIONS.len();

/// Applies every migration the database has not seen yet. Each runs in an immediate
/// transaction that re-reads the version first, so two processes opening a new file at once
/// apply each migration once.
pub(crate) fn apply(conn: &mut Connection) -> Result<(), StoreError> {
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_error)?;
        let applied: usize = tx
            .query_row("PRAGMA user_version", [], |row| row.get::<_, i64>(0))
            .map_err(db_error)? as usize;
        if applied > LATEST {
            return Err(StoreError::Database(format!(
                "the database is at schema version {applied}, newer than this build's {LATEST}; \
                 upgrade the program"
            )));
        }
        let Some(sql) = MIGRATIONS.get(applied) else {
            return Ok(());
        };
        tx.execute_batch(sql).map_err(db_error)?;
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

    #[test]
    fn refuses_a_newer_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
        assert!(apply(&mut conn).is_err());
    }
}
