//! Heartbeats and shared rate buckets in PostgreSQL. A bucket is one row, refilled and taken
//! from in one statement that locks it, so any number of processes taking permits at once
//! never take more than the rate allows together.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PgStore, pg_error, ts};
use crate::store::{CoordinationStore, LiveProcess, StoreError};

/// This module's tables, part of the first migration.
pub(super) const SCHEMA: &str = r#"
CREATE TABLE process_heartbeats (
    id         text PRIMARY KEY,
    label      text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    until      timestamptz NOT NULL
);
CREATE TABLE send_buckets (
    key          text PRIMARY KEY,
    tokens       double precision NOT NULL,
    refreshed_at timestamptz NOT NULL
);
"#;

/// Refills the bucket to `$5` at `$2` a second (at most `$3`) and takes up to `$4` whole
/// permits, answering how many it took; no row when the bucket does not exist yet.
const TAKE: &str = "
WITH current AS (
    SELECT key, LEAST($3::float8, tokens + GREATEST(0, EXTRACT(EPOCH FROM ($5 - refreshed_at)))::float8 * $2::float8) AS available
    FROM send_buckets WHERE key = $1 FOR UPDATE
)
UPDATE send_buckets b
SET tokens = c.available - LEAST($4::int8, floor(c.available)::int8),
    refreshed_at = GREATEST(b.refreshed_at, $5)
FROM current c WHERE b.key = c.key
RETURNING LEAST($4::int8, floor(c.available)::int8)";

#[async_trait]
impl CoordinationStore for PgStore {
    fn concurrent_senders(&self) -> bool {
        true
    }

    async fn heartbeat(
        &self,
        id: &str,
        label: &str,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO process_heartbeats (id, label, until) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET label = excluded.label,
                     until = GREATEST(process_heartbeats.until, excluded.until)",
            )
            .await
            .map_err(pg_error)?;
        client
            .execute(&statement, &[&id, &label, &ts(until)])
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    async fn end_heartbeat(&self, id: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM process_heartbeats WHERE id = $1", &[&id])
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    async fn live_processes(&self, now: DateTime<Utc>) -> Result<Vec<LiveProcess>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT id, label, until FROM process_heartbeats WHERE until > $1
                 ORDER BY started_at, id",
            )
            .await
            .map_err(pg_error)?;
        let rows = client
            .query(&statement, &[&ts(now)])
            .await
            .map_err(pg_error)?;
        Ok(rows
            .iter()
            .map(|row| LiveProcess {
                id: row.get(0),
                label: row.get(1),
                until: row.get(2),
            })
            .collect())
    }

    async fn take_permits(
        &self,
        key: &str,
        per_second: f64,
        burst: f64,
        want: u32,
        now: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        let client = self.client().await?;
        let take = client.prepare_cached(TAKE).await.map_err(pg_error)?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
            [&key, &per_second, &burst, &i64::from(want), &ts(now)];
        if let Some(row) = client.query_opt(&take, &params).await.map_err(pg_error)? {
            return Ok(row.get::<_, i64>(0).clamp(0, i64::from(want)) as u32);
        }
        // A new bucket starts full; of processes creating it at once, one does.
        client
            .execute(
                "INSERT INTO send_buckets (key, tokens, refreshed_at) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO NOTHING",
                &[&key, &burst, &ts(now)],
            )
            .await
            .map_err(pg_error)?;
        let row = client.query_one(&take, &params).await.map_err(pg_error)?;
        Ok(row.get::<_, i64>(0).clamp(0, i64::from(want)) as u32)
    }
}
