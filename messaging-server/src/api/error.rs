//! Errors of the JSON API, in one shape: `{"error": {"code", "message", "details"}}`, with
//! the status codes of the specification. Engine errors map to statuses here and nowhere
//! else; errors raised before a handler runs (malformed JSON, a wrong parameter type, an
//! unknown path, a body over the limit) are rewritten into the same shape by [`envelope`].

use messaging_core::EngineError;
use messaging_core::ingest::IngestError;
use messaging_core::store::StoreError;
use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use serde_json::{Value, json};

/// What went wrong.
#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    /// A stable, machine-readable code (`not_found`, `invalid`, `conflict`…).
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// More about it: the invalid fields with their reasons, a position in a template…
    #[oai(skip_serializing_if_is_none)]
    pub details: Option<Value>,
}

/// The body of every error answer.
#[derive(Debug, Clone, Object)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

/// An error answer of the API.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request is malformed (a body that is not JSON, with its line and column; a
    /// parameter of the wrong type).
    #[oai(status = 400)]
    BadRequest(Json<ErrorEnvelope>),
    /// `Authorization: Bearer <API_TOKEN>` is missing or wrong.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorEnvelope>),
    /// The resource does not exist.
    #[oai(status = 404)]
    NotFound(Json<ErrorEnvelope>),
    /// The request conflicts with the current state (launching a running campaign…).
    #[oai(status = 409)]
    Conflict(Json<ErrorEnvelope>),
    /// The body is larger than the server accepts.
    #[oai(status = 413)]
    TooLarge(Json<ErrorEnvelope>),
    /// Well-formed, but not acceptable: a body that does not fit its schema (every missing,
    /// mistyped or unknown field named in `details.fields`), an invalid phone, a template
    /// that does not compile…
    #[oai(status = 422)]
    Invalid(Json<ErrorEnvelope>),
    /// The server failed (the database is unavailable…).
    #[oai(status = 500)]
    Internal(Json<ErrorEnvelope>),
}

fn body(code: &str, message: impl Into<String>, details: Option<Value>) -> Json<ErrorEnvelope> {
    Json(ErrorEnvelope {
        error: ErrorBody {
            code: code.to_owned(),
            message: message.into(),
            details,
        },
    })
}

impl ApiError {
    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(body("bad_request", message, None))
    }

    /// 400 for a body that is not JSON at all, with where the parser stopped.
    pub fn not_json(error: &serde_json::Error) -> Self {
        let message = if error.is_eof() && error.line() == 1 && error.column() == 0 {
            "the body is empty; this operation takes a JSON body".to_owned()
        } else {
            format!("the body is not valid JSON: {error}")
        };
        Self::BadRequest(body(
            "bad_request",
            message,
            Some(json!({ "line": error.line(), "column": error.column() })),
        ))
    }

    /// 401.
    pub fn unauthorized() -> Self {
        Self::Unauthorized(body(
            "unauthorized",
            "send Authorization: Bearer <API_TOKEN>",
            None,
        ))
    }

    /// 404 for a `kind` with `id`.
    pub fn not_found(kind: &str, id: impl std::fmt::Display) -> Self {
        Self::NotFound(body("not_found", format!("{kind} {id} not found"), None))
    }

    /// 422 for one field.
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::Invalid(body(
            "invalid",
            format!("invalid {field}: {reason}"),
            Some(json!({ "fields": [{ "field": field, "reason": reason }] })),
        ))
    }

    /// 413 for an upload over `limit` bytes (`MAX_BODY_BYTES`).
    pub fn too_large(limit: u64) -> Self {
        Self::too_large_for(limit, "MAX_BODY_BYTES")
    }

    /// 413 for a body over `limit` bytes, the limit the server's `setting` sets.
    pub fn too_large_for(limit: u64, setting: &str) -> Self {
        Self::TooLarge(body(
            "too_large",
            format!("the body is larger than the limit of {limit} bytes ({setting})"),
            Some(json!({ "limit": limit })),
        ))
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        let message = error.to_string();
        match error {
            EngineError::NotFound { .. } => Self::NotFound(body("not_found", message, None)),
            EngineError::Invalid(fields) => {
                let fields: Vec<Value> = fields
                    .iter()
                    .map(|f| json!({ "field": f.field, "reason": f.reason }))
                    .collect();
                Self::Invalid(body("invalid", message, Some(json!({ "fields": fields }))))
            }
            EngineError::Conflict(_) => Self::Conflict(body("conflict", message, None)),
            EngineError::Template(error) => Self::Invalid(body(
                "invalid_template",
                message,
                Some(serde_json::to_value(&error).unwrap_or(Value::Null)),
            )),
            EngineError::Segment(error) => Self::Invalid(body(
                "invalid_segment",
                message,
                Some(json!({ "path": error.path })),
            )),
            EngineError::Ingest(IngestError::Stopped { report, .. }) => Self::Invalid(body(
                "ingestion_stopped",
                message,
                serde_json::to_value(&report).ok(),
            )),
            EngineError::Ingest(_) => Self::Invalid(body("invalid_input", message, None)),
            EngineError::Store(StoreError::InvalidCursor(_)) => Self::BadRequest(body(
                "bad_request",
                format!("{message}: pass a next_cursor from an earlier page"),
                None,
            )),
            EngineError::Store(StoreError::InUse(_)) => {
                Self::Conflict(body("in_use", message, None))
            }
            EngineError::Store(error) => {
                tracing::error!(%error, "storage failed");
                Self::Internal(body(
                    "internal",
                    "the server could not complete the request",
                    None,
                ))
            }
        }
    }
}

fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}

/// Rewrites every error answer that is not already JSON (poem's and poem-openapi's own: a
/// malformed body, a parameter of the wrong type, an unknown route, a wrong method) into the
/// API's error shape, keeping its status and message.
pub async fn envelope<E: Endpoint>(next: E, request: Request) -> poem::Result<Response> {
    let response = match next.call(request).await {
        Ok(response) => response.into_response(),
        Err(error) => error.into_response(),
    };
    let status = response.status();
    let is_json = response
        .headers()
        .get(poem::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return Ok(response);
    }
    let text = response.into_body().into_string().await.unwrap_or_default();
    let message = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let json = json!({ "error": { "code": code_for(status), "message": message } });
    Ok(Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .body(json.to_string()))
}
