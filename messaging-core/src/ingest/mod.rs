//! Streaming ingestion of users (CSV, JSON) and trigger events (JSONL).
//!
//! Input is read incrementally and written in batches, so memory stays flat whatever the file
//! size: a parser thread turns rows into domain values while the store writes the previous
//! batch. Bad rows never abort the rows around them; each is reported with its line, field and
//! reason in the [`IngestReport`].

mod csv_users;
mod events;
mod json_stream;
mod json_users;
mod pipeline;
mod record;
mod user_row;

use serde::{Deserialize, Serialize};

use crate::domain::IngestionId;
use crate::store::StoreError;

pub use record::{IngestSource, Ingestion, IngestionEnd, IngestionFormat, IngestionKind};

pub(crate) use csv_users::parse_users_csv;
pub(crate) use events::parse_events;
pub(crate) use json_users::parse_users_json;
pub(crate) use pipeline::{Outcome, run};

/// The most invalid rows listed one by one in a report; the rest are only counted, so a file
/// of a million bad rows cannot exhaust memory.
pub const MAX_LISTED_ERRORS: usize = 10_000;

/// The most fields one user may have in a file: columns of a CSV header, keys of a JSON
/// object. Far more than any real file has, it keeps the work per row bounded.
pub const MAX_FIELDS: usize = 1_000;

/// Rows per write transaction.
pub(crate) const BATCH_SIZE: usize = 50_000;

/// The format of a users file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserFileFormat {
    /// CSV with a header line.
    Csv,
    /// A JSON array of objects, or one object per line (JSONL).
    Json,
}

impl UserFileFormat {
    /// Guesses the format from a file name's extension (`.csv`, `.json`, `.jsonl`, `.ndjson`).
    pub fn from_path(path: &std::path::Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "csv" | "txt" => Some(Self::Csv),
            "json" | "jsonl" | "ndjson" => Some(Self::Json),
            _ => None,
        }
    }

    /// Reads a MIME type (`text/csv`, `application/json`, `application/x-ndjson`).
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let mime = content_type.split(';').next()?.trim().to_ascii_lowercase();
        match mime.as_str() {
            "text/csv" | "application/csv" | "text/plain" => Some(Self::Csv),
            "application/json"
            | "application/x-ndjson"
            | "application/jsonl"
            | "application/x-jsonlines" => Some(Self::Json),
            _ => None,
        }
    }
}

/// One invalid row: where it is and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    /// 1-based line (a CSV's header is line 1; a row spanning lines is counted at its start).
    pub line: u64,
    /// The field at fault (`phone`, `attributes`…); empty when the row as a whole is.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

/// The data-quality report of one ingestion.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestReport {
    /// Rows read (header excluded).
    pub total: u64,
    /// Rows that created a user or event.
    pub inserted: u64,
    /// Rows merged into a user stored before this file.
    pub updated: u64,
    /// Rows repeating a key seen earlier in the same file (merged into it), or, for events, an
    /// id already recorded (nothing triggered again).
    pub duplicates: u64,
    /// Rows refused.
    pub invalid: u64,
    /// The invalid rows' problems, at most [`MAX_LISTED_ERRORS`] of them.
    pub errors: Vec<RowError>,
    /// Problems not listed because the list was full.
    #[serde(default)]
    pub errors_not_listed: u64,
}

/// Why an ingestion stopped before the end of its input. Rows written before the stop stay
/// written, and [`IngestError::Stopped`] carries the report of what was done.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The input could not be read.
    #[error("could not read the input: {0}")]
    Read(#[from] std::io::Error),
    /// The input holds nothing at all.
    #[error("the input is empty")]
    Empty,
    /// The input is UTF-16 text (a byte order mark, or the NUL bytes of UTF-16 in its first
    /// characters).
    #[error("the file is UTF-16 text; UTF-16 is not supported, save the file as UTF-8")]
    Utf16,
    /// A CSV header without a phone column.
    #[error(
        "the CSV header has no phone column (expected one named phone, phone_number or id); found: {found}"
    )]
    MissingPhoneColumn {
        /// The header's columns.
        found: String,
    },
    /// A CSV header that cannot be read unambiguously.
    #[error("the CSV header is not usable: {reason}")]
    BadHeader {
        /// What is wrong with it.
        reason: String,
    },
    /// The input's structure is broken in a way that no later row can be trusted.
    #[error("line {line}: {reason}")]
    Malformed {
        /// Where the damage starts.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// Writing to the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The input stopped (or the store failed) part-way, after some rows were handled; the
    /// report says what they were. Batches written before the stop stay written.
    #[error("{cause} (stopped after {} rows: {} inserted, {} updated, {} duplicates, {} invalid)",
        .report.total, .report.inserted, .report.updated, .report.duplicates, .report.invalid)]
    Stopped {
        /// What stopped it.
        cause: Box<IngestError>,
        /// What was done before the stop.
        report: Box<IngestReport>,
        /// The record the engine kept of the stopped ingestion (`None` until it is kept).
        ingestion: Option<IngestionId>,
    },
}

impl IngestError {
    /// The report of the rows handled before the stop, if any were.
    pub fn partial_report(&self) -> Option<&IngestReport> {
        match self {
            Self::Stopped { report, .. } => Some(report),
            _ => None,
        }
    }

    /// The id of the record the engine kept of this stopped ingestion.
    pub fn ingestion(&self) -> Option<IngestionId> {
        match self {
            Self::Stopped { ingestion, .. } => *ingestion,
            _ => None,
        }
    }

    /// The same error, naming the record kept of it.
    pub(crate) fn kept_as(mut self, id: IngestionId) -> Self {
        if let Self::Stopped { ingestion, .. } = &mut self {
            *ingestion = Some(id);
        }
        self
    }
}

#[cfg(test)]
mod tests;
