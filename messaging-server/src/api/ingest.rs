//! `ingestions/users` and `ingestions/events`: imports that stream. The body goes from the
//! socket to the engine's parser thread through a small bounded channel, so a 1 GB upload is
//! never held in memory; a multipart upload (field `file`) is spooled to a temporary file by
//! the multipart parser and read from there. A body over `MAX_BODY_BYTES` stops the import
//! with 413; what was stored before the stop stays, and the answer says how far it got.

use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use messaging_core::domain::IngestionId;
use messaging_core::engine::{EventNameOutcome, EventsIngestion};
use messaging_core::ingest::{
    IngestError, IngestReport, IngestSource, Ingestion, IngestionEnd, UserFileFormat,
};
use messaging_core::{Engine, EngineError};
use poem::Body;
use poem_openapi::param::Query;
use poem_openapi::payload::{Binary, Json};
use poem_openapi::types::multipart::Upload;
use poem_openapi::{ApiRequest, Multipart, Object, OpenApi};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::activity::{IdleListenerBody, idle_listener_bodies};
use super::error::ApiError;
use super::timestamp::Timestamp;
use super::{ApiTags, page};

/// One refused row.
#[derive(Debug, Object)]
pub struct RowErrorBody {
    /// The line (a CSV's header is line 1; JSONL lines count from 1).
    pub line: u64,
    /// The field at fault; empty when the row as a whole is.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

/// The data-quality report of an import.
#[derive(Debug, Object)]
pub struct ReportBody {
    /// Rows read.
    pub total: u64,
    /// New rows stored.
    pub inserted: u64,
    /// Stored rows updated.
    pub updated: u64,
    /// Rows repeating an earlier row of the same input (or, for events, an event already stored).
    pub duplicates: u64,
    /// Rows refused.
    pub invalid: u64,
    /// Every refused row with its reason (the first 10,000).
    pub errors: Vec<RowErrorBody>,
    /// Refused rows beyond those listed.
    pub errors_not_listed: u64,
}

impl From<IngestReport> for ReportBody {
    fn from(report: IngestReport) -> Self {
        Self {
            total: report.total,
            inserted: report.inserted,
            updated: report.updated,
            duplicates: report.duplicates,
            invalid: report.invalid,
            errors: report
                .errors
                .into_iter()
                .map(|e| RowErrorBody {
                    line: e.line,
                    field: e.field,
                    reason: e.reason,
                })
                .collect(),
            errors_not_listed: report.errors_not_listed,
        }
    }
}

/// The answer of an import of users.
#[derive(Debug, Object)]
pub struct IngestionBody {
    /// The id of the ingestion's record (`GET /ingestions/{id}`).
    pub id: String,
    /// The report.
    pub report: ReportBody,
}

/// The runs the events of one name opened for one campaign.
#[derive(Debug, Object)]
pub struct TriggeredCampaignBody {
    /// The campaign.
    pub campaign_id: String,
    /// Its name.
    pub campaign_name: String,
    /// Runs opened (one per event).
    pub runs: u64,
    /// Messages their fan-outs wrote into the outbox.
    pub messages: u64,
    /// The first runs' ids (at most 100).
    pub run_ids: Vec<String>,
}

/// What the events of one name triggered.
#[derive(Debug, Object)]
pub struct EventNameBody {
    /// The event name.
    pub name: String,
    /// Events of this name newly recorded.
    pub recorded: u64,
    /// Events of this name recorded before (they triggered nothing again).
    pub duplicates: u64,
    /// The campaigns they opened runs for.
    pub triggered: Vec<TriggeredCampaignBody>,
    /// When they opened no run, why (`no campaign listens for …`); null otherwise.
    pub note: Option<String>,
    /// Draft or paused campaigns triggered by this name, which do not listen until launched
    /// or resumed.
    pub idle_listeners: Vec<IdleListenerBody>,
}

impl From<EventNameOutcome> for EventNameBody {
    fn from(outcome: EventNameOutcome) -> Self {
        Self {
            note: outcome.explanation(),
            idle_listeners: idle_listener_bodies(&outcome.idle_listeners),
            name: outcome.name,
            recorded: outcome.recorded,
            duplicates: outcome.duplicates,
            triggered: outcome
                .triggered
                .into_iter()
                .map(|t| TriggeredCampaignBody {
                    campaign_id: t.campaign.id.to_string(),
                    campaign_name: t.campaign.name,
                    runs: t.runs,
                    messages: t.messages,
                    run_ids: t.run_ids.iter().map(ToString::to_string).collect(),
                })
                .collect(),
        }
    }
}

/// The answer of an import of events.
#[derive(Debug, Object)]
pub struct EventsIngestionBody {
    /// The id of the ingestion's record (`GET /ingestions/{id}`).
    pub id: String,
    /// The report.
    pub report: ReportBody,
    /// Per event name, what its events triggered (the first 1,000 names).
    pub by_event_name: Vec<EventNameBody>,
    /// Events of names beyond those listed.
    pub events_of_names_not_listed: u64,
}

impl From<EventsIngestion> for EventsIngestionBody {
    fn from(answer: EventsIngestion) -> Self {
        Self {
            id: answer.ingestion.id.to_string(),
            report: answer.ingestion.report.into(),
            by_event_name: answer.by_name.into_iter().map(Into::into).collect(),
            events_of_names_not_listed: answer.events_of_names_not_listed,
        }
    }
}

/// How an ingestion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
pub enum IngestionStatus {
    /// The whole input was read.
    Completed,
    /// It stopped part-way (`stopped_because` says why); what was stored before stays.
    Stopped,
}

/// The record of a past ingestion.
#[derive(Debug, Object)]
pub struct IngestionRecordBody {
    /// Its id.
    pub id: String,
    /// `users` or `events`.
    pub kind: String,
    /// The file's name (the CLI's file, a multipart upload's name), or `api` for a body.
    pub source: String,
    /// `csv`, `json` or `jsonl`.
    pub format: String,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended.
    pub finished_at: Timestamp,
    /// `completed`, or `stopped` part-way.
    pub status: IngestionStatus,
    /// Why it stopped; null when it completed.
    pub stopped_because: Option<String>,
    /// Its report (partial when it stopped). In lists, `errors` is empty: fetch the record
    /// for them; `errors_listed` says how many it holds.
    pub report: ReportBody,
    /// How many invalid rows' problems the record lists.
    pub errors_listed: u64,
}

impl From<Ingestion> for IngestionRecordBody {
    fn from(i: Ingestion) -> Self {
        let (status, stopped_because) = match i.end {
            IngestionEnd::Completed => (IngestionStatus::Completed, None),
            IngestionEnd::Stopped { reason } => (IngestionStatus::Stopped, Some(reason)),
        };
        Self {
            id: i.id.to_string(),
            kind: i.kind.as_str().to_owned(),
            source: i.source.label().to_owned(),
            format: i.format.as_str().to_owned(),
            started_at: i.started_at.into(),
            finished_at: i.finished_at.into(),
            status,
            stopped_because,
            report: i.report.into(),
            errors_listed: i.errors_listed,
        }
    }
}

/// A page of past ingestions.
#[derive(Debug, Object)]
pub struct IngestionPage {
    /// The ingestions, newest first, without their invalid rows.
    pub items: Vec<IngestionRecordBody>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A multipart upload.
#[derive(Debug, Multipart)]
pub struct UploadForm {
    /// The file (CSV, JSON or JSONL; the format comes from its name or content type).
    pub file: Upload,
}

/// A file of users.
#[derive(Debug, ApiRequest)]
pub enum UsersUpload {
    /// CSV with a header line (`phone` required; unknown columns become attributes).
    #[oai(content_type = "text/csv")]
    Csv(Binary<Body>),
    /// A JSON array of user objects, or one object per line.
    #[oai(content_type = "application/json")]
    Json(Binary<Body>),
    /// One user object per line.
    #[oai(content_type = "application/x-ndjson")]
    Ndjson(Binary<Body>),
    /// A form with the file in the field `file`.
    Form(UploadForm),
}

/// A file of events.
#[derive(Debug, ApiRequest)]
pub enum EventsUpload {
    /// One event object per line.
    #[oai(content_type = "application/x-ndjson")]
    Ndjson(Binary<Body>),
    /// One event object per line (the same, under the generic JSON type).
    #[oai(content_type = "application/json")]
    Json(Binary<Body>),
    /// A form with the file in the field `file`.
    Form(UploadForm),
}

/// A blocking reader over a body that arrives in chunks from an async task.
struct ChunkReader {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            // Called on the engine's parser thread, never on the async runtime.
            match self.chunks.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(error)) => return Err(error),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Streams `body` into a reader, stopping with an error past `limit` bytes (and setting
/// `over`).
fn stream(body: Body, limit: u64, over: Arc<AtomicBool>) -> ChunkReader {
    let (sender, chunks) = mpsc::channel(8);
    tokio::spawn(async move {
        let mut body = body.into_async_read();
        let mut total = 0u64;
        loop {
            let mut chunk = Vec::with_capacity(64 * 1024);
            let read = match body.read_buf(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(error) => {
                    let _ = sender.send(Err(error)).await;
                    break;
                }
            };
            total += read as u64;
            if total > limit {
                over.store(true, Ordering::SeqCst);
                let error = io::Error::other(format!("the body is over {limit} bytes"));
                let _ = sender.send(Err(error)).await;
                break;
            }
            if sender.send(Ok(Bytes::from(chunk))).await.is_err() {
                break; // the import stopped reading
            }
        }
    });
    ChunkReader {
        chunks,
        current: Bytes::new(),
    }
}

/// A multipart upload as a blocking reader, and the format its name or type says.
async fn spooled(
    form: UploadForm,
    limit: u64,
) -> Result<(std::fs::File, Option<String>, Option<String>), ApiError> {
    let upload = form.file;
    if upload.size() as u64 > limit {
        return Err(ApiError::too_large(limit));
    }
    let (name, content_type) = (
        upload.file_name().map(str::to_owned),
        upload.content_type().map(str::to_owned),
    );
    let file = upload.into_file().into_std().await;
    Ok((file, name, content_type))
}

/// What an import's failure means for the client.
fn failed(error: EngineError, over: &AtomicBool, limit: u64) -> ApiError {
    if over.load(Ordering::SeqCst) {
        let mut answer = ApiError::too_large(limit);
        if let (
            ApiError::TooLarge(body),
            EngineError::Ingest(IngestError::Stopped { report, .. }),
        ) = (&mut answer, &error)
        {
            body.0.error.details = Some(serde_json::json!({
                "limit": limit,
                "report": report,
                "ingestion_id": error_ingestion(&error),
                "note": "rows before the stop were stored",
            }));
        }
        return answer;
    }
    error.into()
}

/// The record kept of a stopped import, if any.
fn error_ingestion(error: &EngineError) -> Option<String> {
    match error {
        EngineError::Ingest(error) => error.ingestion().map(|id| id.to_string()),
        _ => None,
    }
}

/// Imports.
pub struct IngestApi {
    engine: Engine,
    limit: u64,
}

impl IngestApi {
    pub fn new(engine: Engine, limit: u64) -> Self {
        Self { engine, limit }
    }
}

#[OpenApi(tag = "ApiTags::Ingestion")]
impl IngestApi {
    /// Import users
    ///
    /// CSV (`text/csv`), JSON (`application/json`: an array, or one object per line), JSONL
    /// (`application/x-ndjson`), or a multipart form with the file in the field `file`. The
    /// body is streamed; users are merged into the stored ones (attributes key by key). The
    /// answer reports every row: inserted, updated, duplicates, and each invalid row's line,
    /// field and reason.
    #[oai(
        path = "/ingestions/users",
        method = "post",
        operation_id = "ingest_users"
    )]
    async fn users(&self, upload: UsersUpload) -> Result<Json<IngestionBody>, ApiError> {
        let over = Arc::new(AtomicBool::new(false));
        let result = match upload {
            UsersUpload::Csv(body) => {
                let reader = stream(body.0, self.limit, over.clone());
                self.engine
                    .ingest_users(reader, UserFileFormat::Csv, IngestSource::Api)
                    .await
            }
            UsersUpload::Json(body) | UsersUpload::Ndjson(body) => {
                let reader = stream(body.0, self.limit, over.clone());
                self.engine
                    .ingest_users(reader, UserFileFormat::Json, IngestSource::Api)
                    .await
            }
            UsersUpload::Form(form) => {
                let (file, name, content_type) = spooled(form, self.limit).await?;
                let format = name
                    .as_deref()
                    .and_then(|n| UserFileFormat::from_path(Path::new(n)))
                    .or_else(|| {
                        content_type
                            .as_deref()
                            .and_then(UserFileFormat::from_content_type)
                    })
                    .unwrap_or(UserFileFormat::Csv);
                let source = IngestSource::file_or_api(name.as_deref());
                self.engine.ingest_users(file, format, source).await
            }
        };
        let ingestion = result.map_err(|e| failed(e, &over, self.limit))?;
        Ok(Json(IngestionBody {
            id: ingestion.id.to_string(),
            report: ingestion.report.into(),
        }))
    }

    /// Import events
    ///
    /// JSONL, one event per line (`application/x-ndjson` or `application/json`), or a
    /// multipart form with the file in the field `file`. Events are unique by their `id`: a
    /// file ingested again triggers nothing again. Each event starts the campaigns listening
    /// for it; the answer says, per event name, which campaign runs its events opened, or
    /// why none (no campaign listens, and the draft or paused campaigns that would once
    /// launched or resumed). Every import is kept and listed at `GET /ingestions`.
    #[oai(
        path = "/ingestions/events",
        method = "post",
        operation_id = "ingest_events"
    )]
    async fn events(&self, upload: EventsUpload) -> Result<Json<EventsIngestionBody>, ApiError> {
        let over = Arc::new(AtomicBool::new(false));
        let result = match upload {
            EventsUpload::Ndjson(body) | EventsUpload::Json(body) => {
                let reader = stream(body.0, self.limit, over.clone());
                self.engine.ingest_events(reader, IngestSource::Api).await
            }
            EventsUpload::Form(form) => {
                let (file, name, _) = spooled(form, self.limit).await?;
                let source = IngestSource::file_or_api(name.as_deref());
                self.engine.ingest_events(file, source).await
            }
        };
        let answer = result.map_err(|e| failed(e, &over, self.limit))?;
        Ok(Json(answer.into()))
    }

    /// List past ingestions
    ///
    /// Newest first: when each ran, its kind (`users`/`events`), its source (the uploaded
    /// file's name, or `api` for a body), its format, its counts, and whether it completed
    /// or stopped and why. The invalid rows are left out (`errors_listed` counts them);
    /// `GET /ingestions/{id}` has them.
    #[oai(path = "/ingestions", method = "get", operation_id = "list_ingestions")]
    async fn list(
        &self,
        /// At most this many (1–1000, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// The previous page's `next_cursor`.
        cursor: Query<Option<String>>,
        /// Skip this many (when no cursor is given).
        offset: Query<Option<u64>>,
    ) -> Result<Json<IngestionPage>, ApiError> {
        let found = self
            .engine
            .list_ingestions(&page::request(limit.0, cursor.0, offset.0))
            .await?;
        Ok(Json(IngestionPage {
            items: found.items.into_iter().map(Into::into).collect(),
            next_cursor: found.next_cursor,
        }))
    }

    /// Get an ingestion
    ///
    /// The whole record, with every invalid row its report lists (line, field, reason).
    #[oai(
        path = "/ingestions/:id",
        method = "get",
        operation_id = "get_ingestion"
    )]
    async fn get(
        &self,
        id: poem_openapi::param::Path<String>,
    ) -> Result<Json<IngestionRecordBody>, ApiError> {
        let ingestion_id: IngestionId = id
            .parse()
            .map_err(|_| ApiError::not_found("ingestion", &*id))?;
        Ok(Json(self.engine.get_ingestion(ingestion_id).await?.into()))
    }
}
