//! How far each provider's history has been read by polling, in PostgreSQL: one row per
//! source in `poll_marks`, only ever moved forward.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PgStore, pg_error, ts};
use crate::store::{PollStore, StoreError};

/// This module's tables, part of the first migration.
pub(super) const SCHEMA: &str = r#"
CREATE TABLE poll_marks (
    source       text PRIMARY KEY,
    polled_until timestamptz NOT NULL
);
"#;

#[async_trait]
impl PollStore for PgStore {
    async fn polled_until(&self, source: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT polled_until FROM poll_marks WHERE source = $1")
            .await
            .map_err(pg_error)?;
        let row = client
            .query_opt(&statement, &[&source])
            .await
            .map_err(pg_error)?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn set_polled_until(&self, source: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO poll_marks (source, polled_until) VALUES ($1, $2)
                 ON CONFLICT (source) DO UPDATE
                     SET polled_until = GREATEST(poll_marks.polled_until, excluded.polled_until)",
            )
            .await
            .map_err(pg_error)?;
        client
            .execute(&statement, &[&source, &ts(until)])
            .await
            .map_err(pg_error)?;
        Ok(())
    }
}
