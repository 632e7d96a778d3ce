//! Status callbacks through the engine: forms are read as Twilio sends them, repeats are
//! idempotent, and statuses for SIDs not yet known wait.

mod common;

use std::collections::BTreeMap;

use common::engine;
use messaging_core::EngineError;
use messaging_core::store::ReceiptOutcome;

fn callback(sid: &str, status: &str) -> BTreeMap<String, String> {
    [
        ("MessageSid", sid),
        ("SmsSid", sid),
        ("MessageStatus", status),
        ("SmsStatus", status),
        ("AccountSid", "AC123"),
        ("To", "whatsapp:+14155552671"),
        ("ApiVersion", "2010-04-01"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

#[tokio::test]
async fn callbacks_for_unknown_sids_are_parked_once() {
    let t = engine().await;
    let first = t
        .engine
        .receive_status(callback("SMx", "delivered"))
        .await
        .unwrap();
    assert_eq!(first.outcome, ReceiptOutcome::Parked);
    assert_eq!(first.receipt.raw["AccountSid"], "AC123");
    let again = t
        .engine
        .receive_status(callback("SMx", "delivered"))
        .await
        .unwrap();
    assert_eq!(again.outcome, ReceiptOutcome::Duplicate);
}

#[tokio::test]
async fn a_callback_without_sid_or_status_is_refused() {
    let t = engine().await;
    let mut fields = callback("SMx", "sent");
    fields.remove("MessageSid");
    fields.remove("SmsSid");
    assert!(matches!(
        t.engine.receive_status(fields).await,
        Err(EngineError::Invalid(problems)) if problems[0].field == "MessageSid"
    ));
}
