//! The records of past ingestions in PostgreSQL: one row each in `ingestions`, its counts in
//! columns and its invalid rows as JSON text, which lists leave unread.
//!
//! Ids are time-ordered UUIDs, so the primary key lists them newest first and a page's cursor
//! is the id of its last ingestion. The invalid rows are `text` holding JSON rather than
//! `jsonb`: they are only ever read whole, and `jsonb` refuses the escaped NUL character
//! (`\u0000`) that a reason quoting a damaged file may hold, which would lose the record.

use async_trait::async_trait;
use tokio_postgres::Row;

use super::users::into_page;
use super::{PgStore, corrupt, pg_error, ts};
use crate::domain::IngestionId;
use crate::ingest::{
    IngestReport, IngestSource, Ingestion, IngestionEnd, IngestionFormat, IngestionKind,
};
use crate::store::{IngestionStore, Page, PageRequest, StoreError};

/// This module's tables, part of the first migration.
pub(super) const SCHEMA: &str = r#"
CREATE TABLE ingestions (
    id                uuid PRIMARY KEY,
    kind              text NOT NULL CHECK (kind IN ('users', 'events')),
    source_file       text,
    format            text NOT NULL,
    started_at        timestamptz NOT NULL,
    finished_at       timestamptz NOT NULL,
    total             bigint NOT NULL,
    inserted          bigint NOT NULL,
    updated           bigint NOT NULL,
    duplicates        bigint NOT NULL,
    invalid           bigint NOT NULL,
    errors            text NOT NULL,
    errors_listed     bigint NOT NULL,
    errors_not_listed bigint NOT NULL,
    stopped_because   text
);
"#;

/// Every column but the invalid rows; `errors` follows them when a query reads it.
const COLUMNS: &str = "id, kind, source_file, format, started_at, finished_at, total, \
     inserted, updated, duplicates, invalid, errors_listed, errors_not_listed, stopped_because";

/// Reads a row selected with [`COLUMNS`], and `errors` after them if the query selected it.
fn ingestion_from_row(row: &Row) -> Result<Ingestion, StoreError> {
    let count = |index: usize| -> Result<u64, StoreError> {
        let n: i64 = row.try_get(index).map_err(corrupt)?;
        Ok(n.max(0) as u64)
    };
    let kind: &str = row.try_get(1).map_err(corrupt)?;
    let source: Option<String> = row.try_get(2).map_err(corrupt)?;
    let format: &str = row.try_get(3).map_err(corrupt)?;
    let stopped_because: Option<String> = row.try_get(13).map_err(corrupt)?;
    let errors = if row.len() > 14 {
        let errors: &str = row.try_get(14).map_err(corrupt)?;
        serde_json::from_str(errors).map_err(corrupt)?
    } else {
        Vec::new()
    };
    Ok(Ingestion {
        id: IngestionId(row.try_get(0).map_err(corrupt)?),
        kind: IngestionKind::parse(kind).ok_or_else(|| corrupt(kind))?,
        source: source.map_or(IngestSource::Api, IngestSource::File),
        format: IngestionFormat::parse(format).ok_or_else(|| corrupt(format))?,
        started_at: row.try_get(4).map_err(corrupt)?,
        finished_at: row.try_get(5).map_err(corrupt)?,
        report: IngestReport {
            total: count(6)?,
            inserted: count(7)?,
            updated: count(8)?,
            duplicates: count(9)?,
            invalid: count(10)?,
            errors,
            errors_not_listed: count(12)?,
        },
        errors_listed: count(11)?,
        end: match stopped_because {
            None => IngestionEnd::Completed,
            Some(reason) => IngestionEnd::Stopped { reason },
        },
    })
}

/// A count as the schema keeps it.
fn count(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

/// Rows an ingestion writes from which the tables' statistics are refreshed at its end.
const ANALYZE_AFTER: u64 = 10_000;

#[async_trait]
impl IngestionStore for PgStore {
    async fn insert_ingestion(&self, ingestion: &Ingestion) -> Result<(), StoreError> {
        let i = ingestion;
        let errors = serde_json::to_string(&i.report.errors).map_err(corrupt)?;
        let source = match &i.source {
            IngestSource::Api => None,
            IngestSource::File(name) => Some(name.as_str()),
        };
        let stopped_because = match &i.end {
            IngestionEnd::Completed => None,
            IngestionEnd::Stopped { reason } => Some(reason.as_str()),
        };
        let r = &i.report;
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO ingestions (id, kind, source_file, format, started_at,
                     finished_at, total, inserted, updated, duplicates, invalid,
                     errors_listed, errors_not_listed, stopped_because, errors)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            )
            .await
            .map_err(pg_error)?;
        client
            .execute(
                &statement,
                &[
                    &i.id.0,
                    &i.kind.as_str(),
                    &source,
                    &i.format.as_str(),
                    &ts(i.started_at),
                    &ts(i.finished_at),
                    &count(r.total),
                    &count(r.inserted),
                    &count(r.updated),
                    &count(r.duplicates),
                    &count(r.invalid),
                    &count(i.errors_listed),
                    &count(r.errors_not_listed),
                    &stopped_because,
                    &errors,
                ],
            )
            .await
            .map_err(pg_error)?;
        // A large import changes the tables' statistics more than autovacuum notices before
        // the next query: without fresh ones the planner takes the users table for empty
        // and scans it whole for every page of a fan-out (seconds a page at a million users).
        if r.inserted + r.updated >= ANALYZE_AFTER {
            let tables = match i.kind {
                IngestionKind::Users => "users, subscriptions",
                IngestionKind::Events => "events",
            };
            client
                .batch_execute(&format!("ANALYZE {tables}"))
                .await
                .map_err(pg_error)?;
        }
        Ok(())
    }

    async fn get_ingestion(&self, id: IngestionId) -> Result<Option<Ingestion>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {COLUMNS}, errors FROM ingestions WHERE id = $1");
        let statement = client.prepare_cached(&sql).await.map_err(pg_error)?;
        let row = client
            .query_opt(&statement, &[&id.0])
            .await
            .map_err(pg_error)?;
        row.as_ref().map(ingestion_from_row).transpose()
    }

    async fn list_ingestions(&self, page: &PageRequest) -> Result<Page<Ingestion>, StoreError> {
        let limit = i64::from(page.clamped_limit()) + 1;
        let client = self.client().await?;
        let rows = match (&page.cursor, page.offset) {
            (Some(cursor), _) => {
                let after: IngestionId = cursor
                    .parse()
                    .map_err(|_| StoreError::InvalidCursor(cursor.clone()))?;
                let sql = format!(
                    "SELECT {COLUMNS} FROM ingestions WHERE id < $1 ORDER BY id DESC LIMIT $2"
                );
                let statement = client.prepare_cached(&sql).await.map_err(pg_error)?;
                client.query(&statement, &[&after.0, &limit]).await
            }
            (None, offset) => {
                let offset = offset.unwrap_or(0).min(i64::MAX as u64) as i64;
                let sql =
                    format!("SELECT {COLUMNS} FROM ingestions ORDER BY id DESC LIMIT $1 OFFSET $2");
                let statement = client.prepare_cached(&sql).await.map_err(pg_error)?;
                client.query(&statement, &[&limit, &offset]).await
            }
        }
        .map_err(pg_error)?;
        let ingestions = rows
            .iter()
            .map(ingestion_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(into_page(ingestions, page.clamped_limit(), |i| {
            i.id.to_string()
        }))
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::ingest::RowError;
    use crate::store::sqlite::SqliteStore;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn ingestion(n: u32, end: IngestionEnd, errors: Vec<RowError>) -> Ingestion {
        Ingestion {
            id: IngestionId::new(),
            kind: if n % 2 == 0 {
                IngestionKind::Users
            } else {
                IngestionKind::Events
            },
            source: if n % 3 == 0 {
                IngestSource::Api
            } else {
                IngestSource::File(format!("users-{n}.csv"))
            },
            format: IngestionFormat::Csv,
            started_at: at("2026-11-24T10:00:00.123456Z"),
            finished_at: at("2026-11-24T10:01:00.5Z"),
            report: IngestReport {
                total: 10 + u64::from(n),
                inserted: 5,
                updated: 2,
                duplicates: 1,
                invalid: errors.len() as u64,
                errors_not_listed: 3,
                errors: errors.clone(),
            },
            errors_listed: errors.len() as u64,
            end,
        }
    }

    fn row_error(line: u64, reason: &str) -> RowError {
        RowError {
            line,
            field: "phone".into(),
            reason: reason.into(),
        }
    }

    /// Writes and reads ingestions, answering everything read.
    async fn transcript<S: IngestionStore>(store: &S, kept: &[Ingestion]) -> Vec<String> {
        let mut said = Vec::new();
        for ingestion in kept {
            store.insert_ingestion(ingestion).await.unwrap();
        }
        for ingestion in kept {
            said.push(format!(
                "{:?}",
                store.get_ingestion(ingestion.id).await.unwrap()
            ));
        }
        said.push(format!(
            "{:?}",
            store.get_ingestion(IngestionId::new()).await.unwrap()
        ));
        let mut page = PageRequest::first(2);
        loop {
            let listed = store.list_ingestions(&page).await.unwrap();
            said.push(format!("{listed:?}"));
            let Some(cursor) = listed.next_cursor else {
                break;
            };
            page.cursor = Some(cursor);
        }
        let offset = PageRequest {
            offset: Some(1),
            ..PageRequest::first(2)
        };
        said.push(format!(
            "{:?}",
            store.list_ingestions(&offset).await.unwrap()
        ));
        said
    }

    /// Every answer is the one the SQLite adapter gives.
    #[tokio::test]
    async fn answers_as_the_sqlite_adapter_does() {
        let kept: Vec<Ingestion> = (0..5)
            .map(|n| {
                let end = if n == 2 {
                    IngestionEnd::Stopped {
                        reason: "the database is busy".into(),
                    }
                } else {
                    IngestionEnd::Completed
                };
                let errors = (0..n)
                    .map(|line| row_error(u64::from(line) + 2, "contains \u{0} and \"quotes\""))
                    .collect();
                ingestion(n, end, errors)
            })
            .collect();
        let (pg, _database) = super::super::scratch().await;
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(dir.path().join("reference.db"))
            .await
            .unwrap();
        let expected = transcript(&sqlite, &kept).await;
        let answered = transcript(&pg, &kept).await;
        assert_eq!(answered, expected);
    }

    #[tokio::test]
    async fn lists_go_newest_first_without_the_invalid_rows() {
        let (store, _database) = super::super::scratch().await;
        let older = ingestion(1, IngestionEnd::Completed, vec![row_error(3, "bad")]);
        let newer = ingestion(2, IngestionEnd::Completed, Vec::new());
        store.insert_ingestion(&older).await.unwrap();
        store.insert_ingestion(&newer).await.unwrap();
        let listed = store.list_ingestions(&PageRequest::first(1)).await.unwrap();
        assert_eq!(listed.items[0].id, newer.id);
        let rest = store
            .list_ingestions(&PageRequest {
                cursor: listed.next_cursor,
                ..PageRequest::first(10)
            })
            .await
            .unwrap();
        assert_eq!(rest.items.len(), 1);
        assert_eq!(rest.items[0].id, older.id);
        assert!(rest.items[0].report.errors.is_empty());
        assert_eq!(rest.items[0].errors_listed, 1);
        assert_eq!(rest.next_cursor, None);
        let whole = store.get_ingestion(older.id).await.unwrap().unwrap();
        assert_eq!(whole.report.errors, older.report.errors);
        assert_eq!(whole.started_at, at("2026-11-24T10:00:00.123Z"));
        assert!(matches!(
            store
                .list_ingestions(&PageRequest {
                    cursor: Some("not an id".into()),
                    ..PageRequest::first(10)
                })
                .await,
            Err(StoreError::InvalidCursor(_))
        ));
    }
}
