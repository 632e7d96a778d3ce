//! Connections to one SQLite file: a single writer (SQLite allows one at a time) and a few
//! readers, which WAL mode lets run beside the writer. Every call runs on tokio's blocking
//! pool, never on an async worker.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

use crate::store::StoreError;

const READERS: usize = 4;
/// Page cache of the writer, in KiB (negative in the pragma's terms).
const WRITER_CACHE_KIB: i64 = -16_000;

/// The writer and the readers of one database file.
pub(crate) struct Database {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
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
        // Checkpoint every ~40 MB of WAL rather than every 4 MB: a bulk import commits batches
        // larger than the default, which would otherwise checkpoint (and fsync) each commit.
        writer
            .pragma_update(None, "wal_autocheckpoint", 10_000)
            .map_err(db_error)?;
        super::migrations::apply(&mut writer)?;
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
        Ok(Self {
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
        })
    }

    /// Runs `work` on the writer connection, off the async workers.
    pub(crate) async fn write<T, F>(self: &Arc<Self>, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut conn = db.writer.lock().unwrap_or_else(|e| e.into_inner());
            work(&mut conn)
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

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // WAL lets readers run beside the writer; NORMAL sync is durable across application
    // crashes (only an OS crash can lose the last commits) and much faster than FULL.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "busy_timeout", 5000)?;
    conn.pragma_update(None, "cache_size", -16_000)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Converts a driver error into the store's error.
pub(crate) fn db_error(error: rusqlite::Error) -> StoreError {
    StoreError::Database(error.to_string())
}
