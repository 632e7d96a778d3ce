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
use messaging_core::ingest::{IngestError, IngestReport, UserFileFormat};
use messaging_core::{Engine, EngineError};
use poem::Body;
use poem_openapi::payload::{Binary, Json};
use poem_openapi::types::multipart::Upload;
use poem_openapi::{ApiRequest, Multipart, Object, OpenApi};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::ApiTags;
use super::error::ApiError;

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

/// The answer of an import.
#[derive(Debug, Object)]
pub struct IngestionBody {
    /// The report.
    pub report: ReportBody,
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
                "note": "rows before the stop were stored",
            }));
        }
        return answer;
    }
    error.into()
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
                self.engine.ingest_users(reader, UserFileFormat::Csv).await
            }
            UsersUpload::Json(body) | UsersUpload::Ndjson(body) => {
                let reader = stream(body.0, self.limit, over.clone());
                self.engine.ingest_users(reader, UserFileFormat::Json).await
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
                self.engine.ingest_users(file, format).await
            }
        };
        let report = result.map_err(|e| failed(e, &over, self.limit))?;
        Ok(Json(IngestionBody {
            report: report.into(),
        }))
    }

    /// Import events
    ///
    /// JSONL, one event per line (`application/x-ndjson` or `application/json`), or a
    /// multipart form with the file in the field `file`. Events are unique by their `id`: a
    /// file ingested again triggers nothing again. Each event starts the campaigns listening
    /// for it.
    #[oai(
        path = "/ingestions/events",
        method = "post",
        operation_id = "ingest_events"
    )]
    async fn events(&self, upload: EventsUpload) -> Result<Json<IngestionBody>, ApiError> {
        let over = Arc::new(AtomicBool::new(false));
        let result = match upload {
            EventsUpload::Ndjson(body) | EventsUpload::Json(body) => {
                let reader = stream(body.0, self.limit, over.clone());
                self.engine.ingest_events(reader).await
            }
            EventsUpload::Form(form) => {
                let (file, _, _) = spooled(form, self.limit).await?;
                self.engine.ingest_events(file).await
            }
        };
        let report = result.map_err(|e| failed(e, &over, self.limit))?;
        Ok(Json(IngestionBody {
            report: report.into(),
        }))
    }
}
