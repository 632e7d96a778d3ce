//! Twilio's REST error body (`{"code", "message", "more_info", "status"}`) and the catalogue
//! of error codes the fake answers with, worded as Twilio words them.

use poem::http::{StatusCode, header};
use poem::{IntoResponse, Response};
use serde::Serialize;

/// One error answer of the REST API, shaped exactly like Twilio's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct TwilioError {
    pub code: u32,
    pub message: String,
    pub more_info: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl TwilioError {
    pub fn new(status: u16, code: u32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            more_info: format!("https://www.twilio.com/docs/errors/{code}"),
            status,
            detail: None,
        }
    }

    /// 400 with one of the validation codes.
    pub fn bad_request(code: u32, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// 401 for missing or wrong credentials, as Twilio sends it.
    pub fn unauthenticated() -> Self {
        Self {
            detail: Some("Your AccountSid or AuthToken was incorrect.".to_owned()),
            ..Self::new(401, 20003, "Authenticate")
        }
    }

    /// 404 for a resource that does not exist.
    pub fn not_found(path: &str) -> Self {
        Self::new(
            404,
            20404,
            format!("The requested resource {path} was not found"),
        )
    }

    /// 429, the answer to a request over the account's concurrency or rate limit.
    pub fn rate_limited() -> Self {
        Self::new(429, 20429, "Too Many Requests")
    }

    /// 500 or 503, Twilio having a bad moment.
    pub fn server_error(status: u16) -> Self {
        if status == 503 {
            Self::new(503, 20503, "Service Unavailable")
        } else {
            Self::new(500, 20500, "An internal server error has occurred")
        }
    }

    /// The permanent error configured for a recipient, with Twilio's wording for known codes.
    pub fn permanent(code: u32, to: &str) -> Self {
        Self::bad_request(code, permanent_error_message(code, to))
    }
}

/// Twilio's message for a permanent, recipient-related error code.
pub(crate) fn permanent_error_message(code: u32, to: &str) -> String {
    match code {
        21211 => format!("The 'To' number {to} is not a valid phone number."),
        21408 => format!(
            "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}."
        ),
        21610 => "Attempt to send to unsubscribed recipient".to_owned(),
        21612 => format!("The 'To' phone number: {to}, is not currently reachable."),
        21614 => format!("'To' number {to} is not a valid mobile number"),
        30008 => "Unknown error".to_owned(),
        63003 => "Channel could not find To address".to_owned(),
        63016 => "Failed to send freeform message because you are outside the allowed window. \
                  If you are using WhatsApp, please use a Message Template."
            .to_owned(),
        63024 => "Invalid message recipient".to_owned(),
        _ => format!("Error {code} for recipient {to}"),
    }
}

impl IntoResponse for TwilioError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let body = serde_json::to_string(&self).unwrap_or_default();
        let mut response = Response::builder()
            .status(status)
            .content_type("application/json")
            .body(body);
        match self.status {
            401 => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Basic realm=\"Twilio API\""),
                );
            }
            429 => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_twilios_fields() {
        let body = serde_json::to_value(TwilioError::bad_request(
            21604,
            "A 'To' phone number is required.",
        ))
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "code": 21604,
                "message": "A 'To' phone number is required.",
                "more_info": "https://www.twilio.com/docs/errors/21604",
                "status": 400
            })
        );
    }
}
