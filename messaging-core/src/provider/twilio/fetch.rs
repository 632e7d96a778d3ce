//! [`Provider::fetch_status`](super::Provider::fetch_status) for Twilio: read one Message
//! resource (`GET …/Messages/{Sid}.json`) and turn it into the fields of a status callback, so
//! a status whose callback was lost takes the webhook's path.
//!
//! | Twilio's answer | result |
//! |---|---|
//! | 200 with `sid` and `status` | `Some` status: `MessageSid`, `MessageStatus`, `ErrorCode`, `To`, `From`… as a callback names them, with the resource's `DateUpdated` and `DateSent` |
//! | 404 (Twilio has no such message, e.g. deleted) | `None`: there is nothing to ask about |
//! | 429, 408, 5xx, no connection, a timeout | `Err` transient: ask again later |
//! | another 4xx (wrong credentials…), an unreadable body | `Err`: ask again later, logged |

use super::list::MessageResource;
use super::{TwilioProvider, classify_transport_error, read_error, snippet};
use crate::provider::{ProviderStatus, SendError};

/// Whether `sid` can be put in a path as it is (Twilio SIDs are letters and digits).
fn is_plain_sid(sid: &str) -> bool {
    !sid.is_empty() && sid.len() <= 64 && sid.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Sorts Twilio's answer to a fetch (see the module docs).
fn classify(status: u16, body: &[u8]) -> Result<Option<ProviderStatus>, SendError> {
    if (200..300).contains(&status) {
        let resource: Option<MessageResource> = serde_json::from_slice(body).ok();
        return match resource.and_then(MessageResource::status_fields) {
            Some(fields) => Ok(Some(ProviderStatus { fields })),
            None => Err(SendError::Transient {
                code: None,
                message: format!(
                    "Twilio answered {status} without a message SID and status: {}",
                    snippet(body)
                ),
                retry_after: None,
            }),
        };
    }
    let (code, message) = read_error(status, body);
    match status {
        404 => Ok(None),
        429 | 408 | 500..=599 => Err(SendError::Transient {
            code: code.or_else(|| Some(status.to_string())),
            message,
            retry_after: None,
        }),
        _ => Err(SendError::Permanent { code, message }),
    }
}

impl TwilioProvider {
    /// Reads the Message resource `sid` (see the module docs).
    pub(super) async fn fetch_message(
        &self,
        sid: &str,
    ) -> Result<Option<ProviderStatus>, SendError> {
        if !is_plain_sid(sid) {
            return Err(SendError::Permanent {
                code: None,
                message: format!("{sid:?} is not a Twilio message SID"),
            });
        }
        let url = format!("{}/{sid}.json", self.messages_url.trim_end_matches(".json"));
        let _slot = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| SendError::Transient {
                code: None,
                message: "the Twilio provider is shutting down".into(),
                retry_after: None,
            })?;
        let response = self
            .client
            .get(&url)
            .basic_auth(&self.config.account_sid, Some(&self.config.auth_token))
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|error| match classify_transport_error(&error) {
                // A read changes nothing at Twilio: a lost answer is only a missed answer.
                SendError::Unknown { message } => SendError::Transient {
                    code: None,
                    message,
                    retry_after: None,
                },
                other => other,
            })?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|error| SendError::Transient {
                code: None,
                message: format!("Twilio answered {status} but the body was lost: {error}"),
                retry_after: None,
            })?;
        classify(status, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_is_none_and_refusals_are_errors() {
        assert_eq!(classify(404, br#"{"code": 20404}"#), Ok(None));
        assert!(matches!(
            classify(503, b""),
            Err(SendError::Transient { .. })
        ));
        assert!(matches!(
            classify(429, br#"{"code": 20429}"#),
            Err(SendError::Transient { .. })
        ));
        assert!(matches!(
            classify(401, br#"{"code": 20003}"#),
            Err(SendError::Permanent { .. })
        ));
        assert!(matches!(
            classify(200, br#"{"status": "sent"}"#),
            Err(SendError::Transient { .. })
        ));
    }

    #[test]
    fn only_plain_sids_go_into_the_path() {
        assert!(is_plain_sid("SM0123456789abcdef0123456789abcdef"));
        for bad in ["", "SM1/../x", "SM1?x=1", "SM 1"] {
            assert!(!is_plain_sid(bad), "{bad:?}");
        }
    }
}
