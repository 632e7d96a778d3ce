//! Heartbeats and shared rate buckets in SQLite. One process sends from a SQLite file at a
//! time (under the sending lease), so the buckets are kept for the same behaviour on every
//! backend rather than for sharing; times are Unix milliseconds.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::connection::db_error;
use super::{SqliteStore, from_millis, millis};
use crate::store::{CoordinationStore, LiveProcess, StoreError};

#[async_trait]
impl CoordinationStore for SqliteStore {
    fn concurrent_senders(&self) -> bool {
        false
    }

    async fn heartbeat(
        &self,
        id: &str,
        label: &str,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (id, label) = (id.to_owned(), label.to_owned());
        self.db
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO process_heartbeats (id, label, until) VALUES (?1, ?2, ?3)
                     ON CONFLICT (id) DO UPDATE SET label = excluded.label,
                         until = MAX(until, excluded.until)",
                )
                .and_then(|mut s| s.execute(params![id, label, millis(until)]))
                .map_err(db_error)?;
                Ok(())
            })
            .await
    }

    async fn end_heartbeat(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.db
            .write(move |conn| {
                conn.execute("DELETE FROM process_heartbeats WHERE id = ?1", [id])
                    .map_err(db_error)?;
                Ok(())
            })
            .await
    }

    async fn live_processes(&self, now: DateTime<Utc>) -> Result<Vec<LiveProcess>, StoreError> {
        self.db
            .read(move |conn| {
                let mut statement = conn
                    .prepare_cached(
                        "SELECT id, label, until FROM process_heartbeats WHERE until > ?1
                         ORDER BY started_at, id",
                    )
                    .map_err(db_error)?;
                statement
                    .query_map([millis(now)], |r| {
                        Ok(LiveProcess {
                            id: r.get(0)?,
                            label: r.get(1)?,
                            until: from_millis(r.get(2)?),
                        })
                    })
                    .and_then(|rows| rows.collect())
                    .map_err(db_error)
            })
            .await
    }

    async fn take_permits(
        &self,
        key: &str,
        per_second: f64,
        burst: f64,
        want: u32,
        now: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        let key = key.to_owned();
        self.db
            .write(move |conn| {
                let tx = conn.transaction().map_err(db_error)?;
                let stored: Option<(f64, i64)> = tx
                    .query_row(
                        "SELECT tokens, refreshed_at FROM send_buckets WHERE key = ?1",
                        [&key],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(db_error)?;
                let (available, refreshed_at) = refill(stored, per_second, burst, millis(now));
                let taken = (available.floor().max(0.0) as u32).min(want);
                tx.execute(
                    "INSERT INTO send_buckets (key, tokens, refreshed_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens,
                         refreshed_at = excluded.refreshed_at",
                    params![key, available - f64::from(taken), refreshed_at],
                )
                .map_err(db_error)?;
                tx.commit().map_err(db_error)?;
                Ok(taken)
            })
            .await
    }
}

/// The permits a bucket holds at `now_ms` (full when new), and the time it is refilled to.
fn refill(stored: Option<(f64, i64)>, per_second: f64, burst: f64, now_ms: i64) -> (f64, i64) {
    match stored {
        None => (burst, now_ms),
        Some((tokens, refreshed_at)) => {
            let elapsed = (now_ms - refreshed_at).max(0) as f64 / 1000.0;
            (
                (tokens + elapsed * per_second).min(burst),
                refreshed_at.max(now_ms),
            )
        }
    }
}
