//! Twilio's webhooks: `POST /twilio/inbound` (a WhatsApp message from a user) and
//! `POST /twilio/status` (a delivery status). Both check `X-Twilio-Signature` exactly as Twilio
//! computes it — over the URL Twilio called (`PUBLIC_URL` + the request's path and query) and
//! the POST parameters — and answer 403 when it does not match. Both answer TwiML; the inbound
//! one carries the confirmation of a command. Repeats (same `MessageSid`) are idempotent in the
//! engine.

use std::collections::BTreeMap;
use std::sync::Arc;

use messaging_core::provider::is_valid_twilio_signature;
use messaging_core::{Engine, EngineError};
use poem::http::StatusCode;
use poem::web::Data;
use poem::{Body, Request, Response, handler};

use crate::metrics::Metrics;

/// What the webhooks need besides the engine.
#[derive(Clone)]
pub struct WebhookSettings {
    /// `PUBLIC_URL`, without a trailing slash.
    pub public_url: String,
    /// The auth token signatures are checked with; `None` turns the check off.
    pub signing_token: Option<String>,
}

/// The largest webhook body accepted: Twilio's are a few kilobytes; a larger one answers
/// 413.
const MAX_WEBHOOK_BYTES: usize = 64 * 1024;

fn twiml(message: Option<&str>) -> Response {
    let body = match message {
        Some(text) => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{}</Message></Response>",
            xml_escape(text)
        ),
        None => "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>".to_owned(),
    };
    Response::builder()
        .content_type("text/xml; charset=utf-8")
        .body(body)
}

fn plain(status: StatusCode, text: &str) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/plain; charset=utf-8")
        .body(text.to_owned())
}

fn xml_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Reads the form and checks its signature; the error is the answer to give.
async fn signed_form(
    request: &Request,
    body: Body,
    settings: &WebhookSettings,
) -> Result<Vec<(String, String)>, Response> {
    let too_large = || {
        plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the webhook body is larger than {MAX_WEBHOOK_BYTES} bytes"),
        )
    };
    // A declared length over the limit is refused before a byte is read; without one, the
    // reading stops as soon as the limit is passed.
    let declared = request
        .header(poem::http::header::CONTENT_LENGTH)
        .and_then(|length| length.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_WEBHOOK_BYTES as u64) {
        return Err(too_large());
    }
    let bytes = body
        .into_bytes_limit(MAX_WEBHOOK_BYTES)
        .await
        .map_err(|_| too_large())?;
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
        .map_err(|e| plain(StatusCode::BAD_REQUEST, &format!("not a form: {e}")))?;
    if let Some(token) = &settings.signing_token {
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let url = format!("{}{path}", settings.public_url);
        let signature = request.header("X-Twilio-Signature").unwrap_or_default();
        if !is_valid_twilio_signature(token, &url, &fields, signature) {
            tracing::warn!(%url, "webhook refused: X-Twilio-Signature does not match");
            return Err(plain(
                StatusCode::FORBIDDEN,
                "X-Twilio-Signature does not match this request (check PUBLIC_URL and \
                 TWILIO_AUTH_TOKEN)",
            ));
        }
    }
    Ok(fields)
}

fn invalid(error: EngineError) -> Response {
    match error {
        EngineError::Invalid(_) => plain(StatusCode::BAD_REQUEST, &error.to_string()),
        other => {
            tracing::error!(error = %other, "webhook could not be stored");
            // 5xx makes Twilio retry the webhook later, which is what we want.
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the webhook could not be stored",
            )
        }
    }
}

/// Which webhook a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Inbound,
    Status,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Inbound => "inbound",
            Kind::Status => "status",
        }
    }
}

/// `POST /twilio/inbound`.
#[handler]
pub async fn inbound_webhook(
    request: &Request,
    body: Body,
    engine: Data<&Engine>,
    settings: Data<&WebhookSettings>,
    metrics: Data<&Arc<Metrics>>,
) -> Response {
    webhook(Kind::Inbound, request, body, &engine, &settings, &metrics).await
}

/// `POST /twilio/status`.
#[handler]
pub async fn status_webhook(
    request: &Request,
    body: Body,
    engine: Data<&Engine>,
    settings: Data<&WebhookSettings>,
    metrics: Data<&Arc<Metrics>>,
) -> Response {
    webhook(Kind::Status, request, body, &engine, &settings, &metrics).await
}

/// Checks a webhook, hands it to the engine, answers TwiML and counts the answer.
async fn webhook(
    kind: Kind,
    request: &Request,
    body: Body,
    engine: &Engine,
    settings: &WebhookSettings,
    metrics: &Metrics,
) -> Response {
    let (kind, answer) = match signed_form(request, body, settings).await {
        Err(answer) => (kind, answer),
        Ok(fields) => {
            let fields: BTreeMap<String, String> = fields.into_iter().collect();
            // The prototype's setup told users to paste the same URL as the sandbox's status
            // callback: a status report arriving at the inbound URL is handled as one.
            let is_status = fields.contains_key("MessageStatus") && !fields.contains_key("Body");
            let kind = if is_status { Kind::Status } else { kind };
            let answer = match kind {
                Kind::Inbound => engine
                    .receive_inbound(fields)
                    .await
                    .map(|receipt| twiml(receipt.reply.as_deref())),
                Kind::Status => engine.receive_status(fields).await.map(|_| twiml(None)),
            };
            (kind, answer.unwrap_or_else(invalid))
        }
    };
    metrics.webhook(kind.name(), answer.status());
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twiml_escapes_the_reply() {
        let text = "You're <subscribed> & \"happy\"";
        let response = twiml(Some(text));
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "text/xml; charset=utf-8"
        );
        assert_eq!(
            xml_escape(text),
            "You&apos;re &lt;subscribed&gt; &amp; &quot;happy&quot;"
        );
    }
}
