//! [`Ingestion`]: the durable record of one import, so past imports can be listed and read
//! back with their report: when it ran, what it read, what it did, and whether it finished.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{IngestReport, UserFileFormat};
use crate::domain::IngestionId;

/// What an ingestion imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IngestionKind {
    /// Users (CSV or JSON).
    Users,
    /// Trigger events (JSONL).
    Events,
}

impl IngestionKind {
    /// `users` or `events`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Events => "events",
        }
    }

    /// Reads [`IngestionKind::as_str`] back.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Users, Self::Events]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// The format an ingestion read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IngestionFormat {
    /// CSV with a header line.
    Csv,
    /// A JSON array of objects, or one object per line.
    Json,
    /// One JSON object per line (events).
    Jsonl,
}

impl IngestionFormat {
    /// `csv`, `json` or `jsonl`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Jsonl => "jsonl",
        }
    }

    /// Reads [`IngestionFormat::as_str`] back.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Csv, Self::Json, Self::Jsonl]
            .into_iter()
            .find(|format| format.as_str() == text)
    }
}

impl From<UserFileFormat> for IngestionFormat {
    fn from(format: UserFileFormat) -> Self {
        match format {
            UserFileFormat::Csv => Self::Csv,
            UserFileFormat::Json => Self::Json,
        }
    }
}

/// Where an ingestion's input came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IngestSource {
    /// A request body sent to the API (not a named file).
    Api,
    /// A named file: the CLI's file, or a multipart upload's file name.
    File(String),
}

impl IngestSource {
    /// A file's name as the source, or [`IngestSource::Api`] when there is none.
    pub fn file_or_api(name: Option<&str>) -> Self {
        match name.map(str::trim).filter(|n| !n.is_empty()) {
            Some(name) => Self::File(name.to_owned()),
            None => Self::Api,
        }
    }

    /// The file's name, or `api`.
    pub fn label(&self) -> &str {
        match self {
            Self::Api => "api",
            Self::File(name) => name,
        }
    }
}

/// How an ingestion ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum IngestionEnd {
    /// The whole input was read.
    Completed,
    /// It stopped before the end of its input; what was written before the stop stays.
    Stopped {
        /// Why (the error, as the import answered it).
        reason: String,
    },
}

/// The record of one ingestion, kept after it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ingestion {
    /// Its id (time-ordered).
    pub id: IngestionId,
    /// Users or events.
    pub kind: IngestionKind,
    /// The file it read, or the API.
    pub source: IngestSource,
    /// The format it read.
    pub format: IngestionFormat,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Its counts and invalid rows (partial when it stopped). Lists of ingestions leave
    /// `errors` empty; [`Ingestion::errors_listed`] says how many the full record holds.
    pub report: IngestReport,
    /// How many problems the full record's `report.errors` lists.
    pub errors_listed: u64,
    /// Whether it completed, or stopped and why.
    pub end: IngestionEnd,
}
