//! How far each provider's history has been read by polling, in SQLite: one row per source
//! in `poll_marks`, its time in Unix milliseconds, only ever moved forward.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::connection::db_error;
use super::{SqliteStore, from_millis, millis};
use crate::store::{PollStore, StoreError};

#[async_trait]
impl PollStore for SqliteStore {
    async fn polled_until(&self, source: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let source = source.to_owned();
        self.db
            .read(move |conn| {
                conn.query_row(
                    "SELECT polled_until FROM poll_marks WHERE source = ?",
                    [source],
                    |r| r.get::<_, i64>(0),
                )
                .optional()
                .map(|at| at.map(from_millis))
                .map_err(db_error)
            })
            .await
    }

    async fn set_polled_until(&self, source: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
        let source = source.to_owned();
        self.db
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO poll_marks (source, polled_until) VALUES (?1, ?2)
                     ON CONFLICT (source) DO UPDATE
                         SET polled_until = MAX(polled_until, excluded.polled_until)",
                    params![source, millis(until)],
                )
                .map_err(db_error)?;
                Ok(())
            })
            .await
    }
}
