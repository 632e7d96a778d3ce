//! Twilio's Message resource: the JSON the REST API answers for a created or fetched message,
//! field for field as Twilio writes it (counts and prices as strings, RFC 2822 dates).

use serde_json::{Value, json};

use crate::inbound::InboundMessage;
use crate::ledger::AcceptedMessage;

/// The API version in every path and resource.
pub(crate) const API_VERSION: &str = "2010-04-01";

/// A new message SID: `SM` and 32 lowercase hex digits.
pub(crate) fn new_message_sid() -> String {
    format!("SM{:032x}", fastrand::u128(..))
}

/// Now, as Twilio writes dates: `Tue, 04 Jun 2024 10:15:30 +0000`.
pub(crate) fn rfc2822_now() -> String {
    chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S +0000")
        .to_string()
}

/// The path of a message resource, as in its `uri` field.
pub(crate) fn message_uri(account_sid: &str, sid: &str) -> String {
    format!("/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json")
}

/// The Message resource for an accepted message.
pub(crate) fn message_json(message: &AcceptedMessage) -> Value {
    let uri = message_uri(&message.account_sid, &message.sid);
    let media = format!(
        "/{API_VERSION}/Accounts/{}/Messages/{}/Media.json",
        message.account_sid, message.sid
    );
    json!({
        "account_sid": message.account_sid,
        "api_version": API_VERSION,
        "body": message.body.clone().unwrap_or_default(),
        "date_created": message.date_created,
        "date_sent": message.date_sent,
        "date_updated": message.date_updated,
        "direction": "outbound-api",
        "error_code": message.error_code,
        "error_message": message.error_code.map(|_| "Unknown error"),
        "from": message.from,
        "messaging_service_sid": message.messaging_service_sid,
        "num_media": "0",
        "num_segments": message.num_segments.to_string(),
        "price": Value::Null,
        "price_unit": "USD",
        "sid": message.sid,
        "status": message.status.as_str(),
        "subresource_uris": { "media": media },
        "to": message.to,
        "uri": uri,
    })
}

/// The Message resource for a message a user sent in: `direction` `inbound`, `status`
/// `received`, sent when it arrived.
pub(crate) fn inbound_json(message: &InboundMessage) -> Value {
    let uri = message_uri(&message.account_sid, &message.sid);
    let media = format!(
        "/{API_VERSION}/Accounts/{}/Messages/{}/Media.json",
        message.account_sid, message.sid
    );
    json!({
        "account_sid": message.account_sid,
        "api_version": API_VERSION,
        "body": message.body,
        "date_created": message.date_created,
        "date_sent": message.date_sent,
        "date_updated": message.date_created,
        "direction": "inbound",
        "error_code": Value::Null,
        "error_message": Value::Null,
        "from": message.from,
        "messaging_service_sid": message.messaging_service_sid,
        "num_media": "0",
        "num_segments": "1",
        "price": Value::Null,
        "price_unit": "USD",
        "sid": message.sid,
        "status": "received",
        "subresource_uris": { "media": media },
        "to": message.to,
        "uri": uri,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_sids_are_sm_and_32_hex_digits() {
        let sid = new_message_sid();
        assert_eq!(sid.len(), 34);
        assert!(sid.starts_with("SM"));
        assert!(sid[2..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(sid, new_message_sid());
    }

    #[test]
    fn dates_parse_as_rfc_2822() {
        assert!(chrono::DateTime::parse_from_rfc2822(&rfc2822_now()).is_ok());
    }
}
