//! Writing messages into the outbox: one at a time (a reply) or a batch of one run (a
//! fan-out), each with the decision taken when it was made, if any.
//!
//! A fan-out writes a million rows, so a batch goes in with multi-row `INSERT` statements: one
//! statement keeps its cursors on the table and on every index open across all its rows,
//! where a statement per row opens and closes them for each message. At fan-out that halved
//! the writer's time per message; beyond a few dozen rows per statement the gain levels off.

use rusqlite::{CachedStatement, Connection, Statement, params};

use super::super::connection::db_error;
use super::super::millis;
use super::key;
use crate::store::{OutboxEntry, StoreError};

/// Messages per `INSERT` statement when a batch is written.
const ROWS_PER_INSERT: usize = 100;

/// Parameters every row of an insert shares: `?1` campaign, `?2` run, `?3` now.
const SHARED_PARAMS: usize = 3;
/// Parameters of each row: id, phone, body, content SID, content variables, status.
const ROW_PARAMS: usize = 6;

/// A message to write, with its content variables already as JSON text.
pub(in super::super) type PendingMessage = (OutboxEntry, Option<String>);

/// The run a batch of messages belongs to, as the outbox stores it.
#[derive(Debug, Clone, Copy, Default)]
pub(in super::super) struct RunKey {
    /// The campaign's id ([`key`]); `None` for a reply.
    pub campaign: Option<[u8; 16]>,
    /// The run's `seq`; `None` for a reply.
    pub run: Option<i64>,
}

/// `INSERT` of `rows` messages of one run (numbered parameters: [`SHARED_PARAMS`] first, then
/// [`ROW_PARAMS`] per row) that adds nothing for a recipient the run already has a message for.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO messages (id, campaign_id, run_seq, phone, body, content_sid,
             content_variables, status, due_at, created_at, updated_at) VALUES ",
    );
    for row in 0..rows {
        let p = SHARED_PARAMS + 1 + row * ROW_PARAMS;
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(?{p}, ?1, ?2, ?{}, ?{}, ?{}, ?{}, ?{}, ?3, ?3, ?3)",
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5
        ));
    }
    sql.push_str(" ON CONFLICT (run_seq, phone) DO NOTHING");
    sql
}

/// Writes outbox messages with statements prepared once per transaction.
pub(in super::super) struct MessageWriter<'c> {
    insert_one: CachedStatement<'c>,
    insert_many: CachedStatement<'c>,
    log: CachedStatement<'c>,
}

impl<'c> MessageWriter<'c> {
    /// Prepares (or takes from the connection's cache) the statements of a writer.
    pub(in super::super) fn new(conn: &'c Connection) -> Result<Self, StoreError> {
        Ok(Self {
            insert_one: conn.prepare_cached(&insert_sql(1)).map_err(db_error)?,
            insert_many: conn
                .prepare_cached(&insert_sql(ROWS_PER_INSERT))
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
    pub(in super::super) fn write(
        &mut self,
        entry: &OutboxEntry,
        variables: Option<&str>,
        run: RunKey,
        now: i64,
    ) -> Result<bool, StoreError> {
        bind_shared(&mut self.insert_one, run, now)?;
        bind_row(&mut self.insert_one, 0, entry, variables)?;
        if self.insert_one.raw_execute().map_err(db_error)? == 0 {
            return Ok(false);
        }
        if let Some(decision) = &entry.decision {
            // Every message enters as pending; a decision taken at once moves it on, and the
            // log keeps both the move and its reason.
            let (id, at) = (key(entry.id.0), millis(decision.at));
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

    /// Writes messages of one run due at `now`; answers how many were added (a recipient the
    /// run already has a message for adds nothing).
    pub(in super::super) fn write_all(
        &mut self,
        messages: &[PendingMessage],
        run: RunKey,
        now: i64,
    ) -> Result<u64, StoreError> {
        // A message with a decision also needs its log, which needs to know whether that very
        // row went in: those go one by one. The rest (nearly all) go many to a statement.
        let (plain, decided): (Vec<&PendingMessage>, Vec<&PendingMessage>) = messages
            .iter()
            .partition(|(entry, _)| entry.decision.is_none());
        let mut written = 0;
        let mut chunks = plain.chunks_exact(ROWS_PER_INSERT);
        if chunks.len() > 0 {
            bind_shared(&mut self.insert_many, run, now)?;
        }
        for chunk in &mut chunks {
            for (row, (entry, variables)) in chunk.iter().copied().enumerate() {
                bind_row(&mut self.insert_many, row, entry, variables.as_deref())?;
            }
            written += self.insert_many.raw_execute().map_err(db_error)? as u64;
        }
        for (entry, variables) in chunks.remainder().iter().copied().chain(decided) {
            written += u64::from(self.write(entry, variables.as_deref(), run, now)?);
        }
        Ok(written)
    }
}

/// Binds the parameters every row of an [`insert_sql`] statement shares.
fn bind_shared(insert: &mut Statement<'_>, run: RunKey, now: i64) -> Result<(), StoreError> {
    insert
        .raw_bind_parameter(1, run.campaign)
        .map_err(db_error)?;
    insert.raw_bind_parameter(2, run.run).map_err(db_error)?;
    insert.raw_bind_parameter(3, now).map_err(db_error)
}

/// Binds the parameters of row `row` (from 0) of an [`insert_sql`] statement.
fn bind_row(
    insert: &mut Statement<'_>,
    row: usize,
    entry: &OutboxEntry,
    variables: Option<&str>,
) -> Result<(), StoreError> {
    let p = SHARED_PARAMS + 1 + row * ROW_PARAMS;
    let values: [&dyn rusqlite::ToSql; ROW_PARAMS] = [
        entry.id.0.as_bytes(),
        &entry.phone.as_str(),
        &entry.body,
        &entry.content_sid,
        &variables,
        &entry.status.as_str(),
    ];
    for (offset, value) in values.into_iter().enumerate() {
        insert
            .raw_bind_parameter(p + offset, value)
            .map_err(db_error)?;
    }
    Ok(())
}
