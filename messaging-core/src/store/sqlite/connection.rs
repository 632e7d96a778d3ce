//! Connections to one SQLite file: a single writer (SQLite allows one at a time) and a few
//! readers, which WAL mode lets run beside the writer. Every call runs on tokio's blocking
//! pool, never on an async worker.
//!
//! Writes come in two kinds. Ordinary writes (a webhook's receipt, an outcome, an API
//! change) are short and someone waits for each. Bulk writes (an import's rows, a fan-out's
//! messages) come as a stream of transactions of a few thousand rows: before each, a bulk
//! writer lets the ordinary writes that are waiting go first (for up to 20 ms, so it still
//! progresses under a steady stream of them), so a million-row import delays a webhook by
//! about one bulk transaction, not by the whole import.
//!
//! Write transactions begin `IMMEDIATE`, taking SQLite's write lock at once: a transaction
//! that began reading and later wanted to write could fail with "database is locked" at once
//! when another process holds the lock, while an immediate one waits (`busy_timeout`) for it.
//! A write that still finds the file locked after that is tried again a few times.
//!
//! Checkpoints (copying the write-ahead log back into the database file) run on a thread of
//! their own, a passive one ten times a second ([`start_checkpointer`]). Left to SQLite, the
//! commit that crosses the log's size limit runs the whole checkpoint itself, with its fsyncs,
//! and the webhook that happened to make that commit waits for all of it. The writer still
//! checkpoints past SQLite's usual limit (4 MB of log; 40 MB in bulk transactions, whose
//! commits are larger), since only a checkpoint that catches up with the log lets the log
//! start over, and a log that only grows makes every later checkpoint slower; but by then the
//! checkpointer has copied nearly all of it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use crate::store::StoreError;

const READERS: usize = 4;
/// Page cache of the writer, in KiB (negative in the pragma's terms).
const WRITER_CACHE_KIB: i64 = -16_000;

/// How long a connection waits for another process's lock on the file before SQLite answers
/// "database is locked".
const BUSY_TIMEOUT_MS: u32 = 10_000;

/// Rows a bulk writer puts in one transaction (see the module docs).
pub(crate) const BULK_ROWS: usize = 5_000;

/// The longest a bulk transaction lets ordinary writes go first: an import or fan-out keeps
/// going under a steady stream of webhooks, each of which then waits behind at most one bulk
/// transaction.
const BULK_MAX_YIELD: Duration = Duration::from_millis(20);

/// How many times a write that found the file locked by another process is tried.
const LOCKED_ATTEMPTS: u32 = 3;

/// How often the checkpointer copies the log back into the file (see the module docs).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// The log's length, in pages, past which an ordinary write's commit checkpoints what the
/// checkpointer has not copied yet (little, as it runs ten times a second), which lets the
/// log start over from its beginning: SQLite's default, about 4 MB.
const ORDINARY_AUTOCHECKPOINT: i64 = 1_000;

/// The same for bulk transactions, whose commits are larger than 4 MB of log: at the
/// ordinary limit each of them would checkpoint (and fsync) the file.
const BULK_AUTOCHECKPOINT: i64 = 10_000;

/// The writer and the readers of one database file.
pub(crate) struct Database {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// Ordinary writes waiting for the writer, which bulk writes let go first.
    waiting_writes: AtomicUsize,
    /// Set when the database is dropped, which stops its checkpointer.
    closed: Arc<AtomicBool>,
}

impl Drop for Database {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
    }
}

impl Database {
    /// Opens (creating if needed) the file, applies pragmas and migrations.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let mut writer = Connection::open(path).map_err(db_error)?;
        configure(&writer).map_err(db_error)?;
        // The writer gets a larger page cache: bulk imports dirty many index pages per
        // transaction, and every page that stays cached is a page not re-read.
        writer
            .pragma_update(None, "cache_size", WRITER_CACHE_KIB)
            .map_err(db_error)?;
        writer
            .pragma_update(None, "wal_autocheckpoint", ORDINARY_AUTOCHECKPOINT)
            .map_err(db_error)?;
        super::migrations::apply(&mut writer)?;
        writer.set_transaction_behavior(TransactionBehavior::Immediate);
        let readers = (0..READERS)
            .map(|_| {
                let reader = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                configure(&reader)?;
                Ok(Mutex::new(reader))
            })
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db_error)?;
        let closed = Arc::new(AtomicBool::new(false));
        start_checkpointer(path, Arc::clone(&closed))?;
        Ok(Self {
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            waiting_writes: AtomicUsize::new(0),
            closed,
        })
    }

    /// Runs `work` on the writer connection, off the async workers, ahead of bulk writes.
    pub(crate) async fn write<T, F>(self: &Arc<Self>, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            db.waiting_writes.fetch_add(1, Ordering::SeqCst);
            let mut conn = db.writer.lock().unwrap_or_else(|e| e.into_inner());
            db.waiting_writes.fetch_sub(1, Ordering::SeqCst);
            work(&mut conn)
        })
        .await
        .map_err(|_| StoreError::WorkerGone)?
    }

    /// Runs one transaction of a bulk write (at most [`BULK_ROWS`] rows) on the writer, after
    /// the ordinary writes waiting for it. `work` may run more than once: when another
    /// process holds the file locked past the busy timeout, its transaction is rolled back
    /// and tried again, up to [`LOCKED_ATTEMPTS`] times.
    pub(crate) async fn write_bulk<T, F>(self: &Arc<Self>, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut work = work;
            let mut attempt = 1;
            loop {
                let yielding_since = std::time::Instant::now();
                let mut conn = loop {
                    let conn = db.writer.lock().unwrap_or_else(|e| e.into_inner());
                    // Under a steady stream of ordinary writes it still takes its turn.
                    if db.waiting_writes.load(Ordering::SeqCst) == 0
                        || yielding_since.elapsed() >= BULK_MAX_YIELD
                    {
                        break conn;
                    }
                    drop(conn);
                    std::thread::sleep(Duration::from_micros(200));
                };
                let result = bulk_transaction(&mut conn, &mut work);
                match result {
                    Err(StoreError::Locked(_)) if attempt < LOCKED_ATTEMPTS => {
                        drop(conn);
                        std::thread::sleep(Duration::from_millis(100 * u64::from(attempt)));
                        attempt += 1;
                    }
                    result => return result,
                }
            }
        })
        .await
        .map_err(|_| StoreError::WorkerGone)?
    }

    /// Runs `work` on one of the reader connections, off the async workers.
    pub(crate) async fn read<T, F>(self: &Arc<Self>, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let start = db.next_reader.fetch_add(1, Ordering::Relaxed);
            // Take the first idle reader; if all are busy, wait for the one whose turn it is.
            for i in 0..db.readers.len() {
                if let Ok(conn) = db.readers[(start + i) % db.readers.len()].try_lock() {
                    return work(&conn);
                }
            }
            let conn = db.readers[start % db.readers.len()]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            work(&conn)
        })
        .await
        .map_err(|_| StoreError::WorkerGone)?
    }
}

/// Runs one bulk transaction's `work` with the bulk checkpoint limit
/// ([`BULK_AUTOCHECKPOINT`]), the ordinary one restored after it.
fn bulk_transaction<T>(
    conn: &mut Connection,
    work: &mut impl FnMut(&mut Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.pragma_update(None, "wal_autocheckpoint", BULK_AUTOCHECKPOINT)
        .map_err(db_error)?;
    let result = work(conn);
    conn.pragma_update(None, "wal_autocheckpoint", ORDINARY_AUTOCHECKPOINT)
        .map_err(db_error)?;
    result
}

/// Starts the thread that checkpoints the file at `path` every [`CHECKPOINT_EVERY`] on a
/// connection of its own, passively (it never waits for the writer or the readers, and
/// copies what it can), until `closed` is set.
fn start_checkpointer(path: &Path, closed: Arc<AtomicBool>) -> Result<(), StoreError> {
    let conn = Connection::open(path).map_err(db_error)?;
    configure(&conn).map_err(db_error)?;
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while !closed.load(Ordering::SeqCst) {
                std::thread::sleep(CHECKPOINT_EVERY);
                if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                    row.get::<_, i64>(0)
                }) {
                    tracing::debug!(%error, "a checkpoint did not run");
                }
            }
        })
        .map_err(|e| StoreError::database(format!("cannot start the checkpointer: {e}")))?;
    Ok(())
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // WAL lets readers run beside the writer; NORMAL sync is durable across application
    // crashes (only an OS crash can lose the last commits) and much faster than FULL.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "busy_timeout", BUSY_TIMEOUT_MS)?;
    conn.pragma_update(None, "cache_size", -16_000)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Converts a driver error into the store's error; another process holding the file locked
/// past the busy timeout is [`StoreError::Locked`], worth trying again.
pub(crate) fn db_error(error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Locked(error.to_string())
        }
        // A unique or primary key taken by another write.
        Some(ErrorCode::ConstraintViolation)
            if matches!(
                &error,
                rusqlite::Error::SqliteFailure(failure, _)
                    if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        || failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ) =>
        {
            StoreError::Conflict {
                message: error.to_string(),
                cause: Some(Box::new(error)),
            }
        }
        _ => StoreError::Database {
            message: error.to_string(),
            cause: Some(Box::new(error)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write transaction that reads first, while another process writes the file: it waits
    /// for the other's lock instead of failing with "database is locked".
    #[tokio::test(flavor = "multi_thread")]
    async fn a_write_waits_for_another_process_instead_of_failing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("two.db");
        let db = Arc::new(Database::open(&path).unwrap());
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        other
            .execute(
                "INSERT INTO users (phone, consent_state, created_at, updated_at)
                 VALUES ('+94770000001', 'OPT_IN', 0, 0)",
                [],
            )
            .unwrap();
        let ours = tokio::spawn({
            let db = Arc::clone(&db);
            async move {
                db.write(|conn| {
                    let tx = conn.transaction().map_err(db_error)?;
                    let before: i64 = tx
                        .query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
                        .map_err(db_error)?;
                    tx.execute(
                        "INSERT INTO users (phone, consent_state, created_at, updated_at)
                         VALUES ('+94770000002', 'OPT_IN', 0, 0)",
                        [],
                    )
                    .map_err(db_error)?;
                    tx.commit().map_err(db_error)?;
                    Ok(before)
                })
                .await
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        other.execute_batch("COMMIT").unwrap();
        let before = ours.await.unwrap().expect("the write waited and succeeded");
        // It began after the other process's commit, so it saw that row.
        assert_eq!(before, 1);
    }

    #[test]
    fn locked_errors_are_worth_retrying_and_others_are_not() {
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            Some("database is locked".into()),
        );
        assert!(db_error(busy).is_retryable());
        let constraint = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
            None,
        );
        assert!(!db_error(constraint).is_retryable());
    }
}
