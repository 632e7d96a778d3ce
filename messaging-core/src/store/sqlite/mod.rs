//! The SQLite adapter: the embedded default store, one file, no server.
//!
//! Times are stored as INTEGER Unix milliseconds, JSON as TEXT. See `migrations.rs` for the
//! schema and `connection.rs` for how calls reach the database without blocking async code.

mod campaigns;
mod catalog;
mod connection;
mod coordination;
mod dispatch;
mod events;
mod inbound;
mod ingestions;
mod migrations;
mod outbox;
mod poll_marks;
mod receipts;
mod segment_params;
mod stats;
mod status_checks;
mod users;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, TimeZone as _, Utc};

use self::connection::Database;
use super::StoreError;

/// A [`Store`](super::Store) on one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    db: Arc<Database>,
}

impl SqliteStore {
    /// Opens the file at `path` (creating it and its schema if needed) and brings its schema up
    /// to date.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_owned();
        let db = tokio::task::spawn_blocking(move || Database::open(&path))
            .await
            .map_err(|_| StoreError::WorkerGone)??;
        Ok(Self { db: Arc::new(db) })
    }

    /// Opens the store a `sqlite://PATH` URL names (`sqlite:PATH` and a bare path work too).
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() || path.contains("://") {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        }
        if path == ":memory:" || path.starts_with("file::memory:") {
            // Each connection would get its own empty database.
            return Err(StoreError::database(
                "in-memory SQLite databases are not supported: give a file path",
            ));
        }
        Self::open(path).await
    }
}

/// The schema version this build writes.
pub const SCHEMA_VERSION: usize = migrations::LATEST;

pub(crate) fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

pub(crate) fn corrupt(error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(error.to_string())
}

/// Reads at most one row: `sql` selects by one key, `from_row` maps it.
pub(crate) fn query_one<T>(
    conn: &rusqlite::Connection,
    sql: &str,
    key: String,
    from_row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<Result<T, StoreError>>,
) -> Result<Option<T>, StoreError> {
    use rusqlite::OptionalExtension;
    conn.prepare_cached(sql)
        .and_then(|mut s| s.query_row([key], from_row).optional())
        .map_err(connection::db_error)?
        .transpose()
}

pub(crate) fn to_json_text(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_memory_databases_are_refused_with_a_reason() {
        for url in ["sqlite::memory:", "sqlite://:memory:"] {
            let error = SqliteStore::open_url(url).await.err().expect("refused");
            assert!(error.to_string().contains("give a file path"), "{error}");
        }
        assert!(matches!(
            SqliteStore::open_url("postgres://localhost/db").await,
            Err(StoreError::UnsupportedUrl(_))
        ));
    }
}
