//! Inbound WhatsApp messages through the engine: commands change consent and subscriptions,
//! repeats of a webhook act once, and every message opens the sender's 24-hour window.

mod common;

use std::collections::BTreeMap;

use common::engine;
use messaging_core::EngineError;
use messaging_core::domain::{Command, Consent, PhoneNumber};
use messaging_core::store::PageRequest;

fn webhook(sid: &str, from: &str, body: &str) -> BTreeMap<String, String> {
    [
        ("MessageSid", sid),
        ("AccountSid", "AC123"),
        ("From", from),
        ("To", "whatsapp:+14155238886"),
        ("Body", body),
        ("WaId", from.trim_start_matches("whatsapp:+")),
        ("ProfileName", "Ann"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

const ANN: &str = "whatsapp:+14155552671";

fn ann() -> PhoneNumber {
    PhoneNumber::parse(ANN).unwrap()
}

#[tokio::test]
async fn a_first_message_creates_the_user_and_opens_the_window() {
    let t = engine().await;
    let receipt = t
        .engine
        .receive_inbound(webhook("SM1", ANN, "hello there"))
        .await
        .unwrap();
    assert_eq!(receipt.reply, None, "conversation gets no automatic reply");
    assert!(!receipt.duplicate);
    let user = t.engine.get_user(&ann()).await.unwrap();
    assert_eq!(user.name.as_deref(), Some("Ann"));
    assert_eq!(user.wa_id.as_deref(), Some("14155552671"));
    assert_eq!(user.last_inbound_at, Some(common::start_time()));
    assert_eq!(
        user.consent_state,
        Consent::OptOut,
        "writing to the number is not consent to campaigns"
    );
    t.engine
        .receive_inbound(webhook("SM2", ANN, "SUBSCRIBE dance"))
        .await
        .unwrap();
    assert_eq!(
        t.engine.get_user(&ann()).await.unwrap().consent_state,
        Consent::OptIn
    );
    assert_eq!(receipt.message.raw["Body"], "hello there");
}

#[tokio::test]
async fn commands_change_consent_and_subscriptions() {
    let t = engine().await;
    let stop = t
        .engine
        .receive_inbound(webhook("SM1", ANN, "STOP"))
        .await
        .unwrap();
    assert!(stop.reply.unwrap().contains("START"));
    assert_eq!(
        t.engine.get_user(&ann()).await.unwrap().consent_state,
        Consent::OptOut
    );

    t.engine
        .receive_inbound(webhook("SM2", ANN, "start"))
        .await
        .unwrap();
    assert_eq!(
        t.engine.get_user(&ann()).await.unwrap().consent_state,
        Consent::OptIn
    );

    let sub = t
        .engine
        .receive_inbound(webhook("SM3", ANN, "Subscribe dance"))
        .await
        .unwrap();
    assert_eq!(sub.message.command, Some(Command::Subscribe));
    assert!(sub.reply.unwrap().contains("DANCE"));
    assert_eq!(
        t.engine.get_user(&ann()).await.unwrap().topics[0].as_str(),
        "DANCE"
    );

    t.engine
        .receive_inbound(webhook("SM4", ANN, "UNSUBSCRIBE DANCE"))
        .await
        .unwrap();
    assert!(t.engine.get_user(&ann()).await.unwrap().topics.is_empty());

    let help = t
        .engine
        .receive_inbound(webhook("SM5", ANN, "help"))
        .await
        .unwrap();
    assert!(help.reply.unwrap().contains("SUBSCRIBE <topic>"));
}

#[tokio::test]
async fn a_repeated_webhook_acts_once() {
    let t = engine().await;
    let first = t
        .engine
        .receive_inbound(webhook("SM1", ANN, "STOP"))
        .await
        .unwrap();
    // The user opts in again, then Twilio re-delivers the old STOP.
    t.engine
        .receive_inbound(webhook("SM2", ANN, "START"))
        .await
        .unwrap();
    let again = t
        .engine
        .receive_inbound(webhook("SM1", ANN, "STOP"))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message.id, first.message.id);
    assert_eq!(again.reply, first.reply);
    assert_eq!(
        t.engine.get_user(&ann()).await.unwrap().consent_state,
        Consent::OptIn
    );
    let stored = t
        .engine
        .list_inbound(Some(ann()), &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(stored.items.len(), 2);
    assert_eq!(stored.items[0].message_sid, "SM2", "newest first");
}

#[tokio::test]
async fn a_late_webhook_never_closes_the_window_earlier() {
    let t = engine().await;
    t.clock.advance(chrono::Duration::hours(2));
    t.engine
        .receive_inbound(webhook("SM2", ANN, "later"))
        .await
        .unwrap();
    let later = t.engine.get_user(&ann()).await.unwrap().last_inbound_at;
    t.clock.advance(chrono::Duration::hours(-1));
    t.engine
        .receive_inbound(webhook("SM1", ANN, "earlier"))
        .await
        .unwrap();
    assert_eq!(
        t.engine.get_user(&ann()).await.unwrap().last_inbound_at,
        later
    );
}

#[tokio::test]
async fn forged_or_broken_fields_are_refused_with_reasons() {
    let t = engine().await;
    let mut fields = webhook("SM1", "whatsapp:12345", "hi");
    fields.remove("MessageSid");
    let Err(EngineError::Invalid(problems)) = t.engine.receive_inbound(fields).await else {
        panic!("expected field problems")
    };
    let names: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(names, ["MessageSid", "From"]);
}
