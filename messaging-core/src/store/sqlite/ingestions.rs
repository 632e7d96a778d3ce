//! The records of past ingestions in SQLite: one row each, its counts in columns and its
//! invalid rows as JSON text, which lists leave unread.

use async_trait::async_trait;
use rusqlite::{Row, params};

use super::connection::db_error;
use super::users::list_newest_first;
use super::{SqliteStore, corrupt, from_millis, millis, query_one, to_json_text};
use crate::domain::IngestionId;
use crate::ingest::{
    IngestReport, IngestSource, Ingestion, IngestionEnd, IngestionFormat, IngestionKind,
};
use crate::store::{IngestionStore, Page, PageRequest, StoreError};

/// Every column but the invalid rows; `errors` follows them when a query reads it.
const COLUMNS: &str = "id, kind, source_file, format, started_at, finished_at, total, \
     inserted, updated, duplicates, invalid, errors_listed, errors_not_listed, stopped_because";

fn ingestion_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Ingestion, StoreError>> {
    let id: String = row.get(0)?;
    let kind: String = row.get(1)?;
    let source: Option<String> = row.get(2)?;
    let format: String = row.get(3)?;
    let (started_at, finished_at): (i64, i64) = (row.get(4)?, row.get(5)?);
    let counts: [i64; 7] = [
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
        row.get(11)?,
        row.get(12)?,
    ];
    let stopped_because: Option<String> = row.get(13)?;
    // The invalid rows are read only by queries that select them (a 15th column).
    let errors: Option<String> = if row.as_ref().column_count() > 14 {
        Some(row.get(14)?)
    } else {
        None
    };
    let [
        total,
        inserted,
        updated,
        duplicates,
        invalid,
        errors_listed,
        errors_not_listed,
    ] = counts.map(|n| n.max(0) as u64);
    Ok((|| {
        Ok(Ingestion {
            id: id.parse().map_err(corrupt)?,
            kind: IngestionKind::parse(&kind).ok_or_else(|| corrupt(&kind))?,
            source: source.map_or(IngestSource::Api, IngestSource::File),
            format: IngestionFormat::parse(&format).ok_or_else(|| corrupt(&format))?,
            started_at: from_millis(started_at),
            finished_at: from_millis(finished_at),
            report: IngestReport {
                total,
                inserted,
                updated,
                duplicates,
                invalid,
                errors: errors
                    .map(|e| serde_json::from_str(&e))
                    .transpose()
                    .map_err(corrupt)?
                    .unwrap_or_default(),
                errors_not_listed,
            },
            errors_listed,
            end: match stopped_because {
                None => IngestionEnd::Completed,
                Some(reason) => IngestionEnd::Stopped { reason },
            },
        })
    })())
}

fn count(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

#[async_trait]
impl IngestionStore for SqliteStore {
    async fn insert_ingestion(&self, ingestion: &Ingestion) -> Result<(), StoreError> {
        let i = ingestion.clone();
        let errors = to_json_text(&i.report.errors)?;
        self.db
            .write(move |conn| {
                let source = match &i.source {
                    IngestSource::Api => None,
                    IngestSource::File(name) => Some(name.as_str()),
                };
                let stopped_because = match &i.end {
                    IngestionEnd::Completed => None,
                    IngestionEnd::Stopped { reason } => Some(reason.as_str()),
                };
                let r = &i.report;
                conn.execute(
                    "INSERT INTO ingestions (id, kind, source_file, format, started_at,
                         finished_at, total, inserted, updated, duplicates, invalid,
                         errors_listed, errors_not_listed, stopped_because, errors)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    params![
                        i.id.to_string(),
                        i.kind.as_str(),
                        source,
                        i.format.as_str(),
                        millis(i.started_at),
                        millis(i.finished_at),
                        count(r.total),
                        count(r.inserted),
                        count(r.updated),
                        count(r.duplicates),
                        count(r.invalid),
                        count(i.errors_listed),
                        count(r.errors_not_listed),
                        stopped_because,
                        errors,
                    ],
                )
                .map_err(db_error)?;
                Ok(())
            })
            .await
    }

    async fn get_ingestion(&self, id: IngestionId) -> Result<Option<Ingestion>, StoreError> {
        self.db
            .read(move |conn| {
                let sql = format!("SELECT {COLUMNS}, errors FROM ingestions WHERE id = ?");
                query_one(conn, &sql, id.to_string(), ingestion_from_row)
            })
            .await
    }

    async fn list_ingestions(&self, page: &PageRequest) -> Result<Page<Ingestion>, StoreError> {
        let page = page.clone();
        self.db
            .read(move |conn| {
                let select = format!("SELECT {COLUMNS} FROM ingestions");
                list_newest_first(conn, &select, Vec::new(), &page, ingestion_from_row, |i| {
                    i.id.to_string()
                })
            })
            .await
    }
}
