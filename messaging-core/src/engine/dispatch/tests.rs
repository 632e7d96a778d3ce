//! The dispatcher's decisions with a mocked provider, a real SQLite outbox and a manual clock:
//! every path from claim to recorded outcome, deterministically.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::TimeZone as _;
use serde_json::json;

use super::*;
use crate::clock::ManualClock;
use crate::domain::{CampaignCommand, CampaignDraft, Consent, Message, PhoneNumber, TemplateDraft};
use crate::engine::{MAX_BODY_CHARS, ReplyContent};
use crate::ingest::{IngestSource, UserFileFormat};
use crate::provider::{Accepted, MockProvider, SendError};
use crate::store::sqlite::SqliteStore;
use crate::store::{MessageQuery, PageRequest};

struct Setup {
    engine: Engine,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

fn noon() -> DateTime<Utc> {
    // Noon UTC: daytime for the Sri Lankan numbers below (17:30 in Colombo).
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
}

async fn setup(users: &[&str]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("t.db")).await.unwrap();
    let clock = Arc::new(ManualClock::new(noon()));
    let engine = Engine::new(Arc::new(store), clock.clone());
    let csv = std::iter::once("phone,name".to_owned())
        .chain(users.iter().map(|p| format!("{p},User {p}")))
        .collect::<Vec<_>>()
        .join("\n");
    let report = engine
        .ingest_users(
            std::io::Cursor::new(csv.into_bytes()),
            UserFileFormat::Csv,
            IngestSource::Api,
        )
        .await
        .unwrap()
        .report;
    assert_eq!(report.inserted, users.len() as u64);
    Setup {
        engine,
        clock,
        _dir: dir,
    }
}

/// A running campaign to every opted-in user, with an approved template (so that users who
/// never wrote to us can be reached), and `extra` merged into its definition.
async fn launch(engine: &Engine, extra: serde_json::Value) -> Campaign {
    let template: TemplateDraft = serde_json::from_value(json!({
        "name": "hello", "content": "Hello {{ name }}", "content_sid": "HX0123456789abcdef0123456789abcdef",
    }))
    .unwrap();
    let template = engine.create_template(template).await.unwrap();
    let mut draft = json!({ "name": "Launch", "template_id": template.id.to_string() });
    for (key, value) in extra.as_object().unwrap() {
        draft[key] = value.clone();
    }
    let draft: CampaignDraft = serde_json::from_value(draft).unwrap();
    let campaign = engine.create_campaign(draft).await.unwrap();
    engine.launch_campaign(campaign.id).await.unwrap().0
}

fn config() -> DispatchConfig {
    DispatchConfig {
        send_rate_per_second: 1_000_000.0,
        ..DispatchConfig::default()
    }
}

fn accepted(sid: &str) -> Result<Accepted, SendError> {
    Ok(Accepted {
        provider_sid: sid.to_owned(),
        status: MessageStatus::Sending,
    })
}

/// A provider that accepts everything with SIDs SM1, SM2…, counting sends.
fn accepting(sends: Arc<AtomicU32>) -> MockProvider {
    let mut provider = MockProvider::new();
    provider.expect_name().return_const("mock");
    provider.expect_send().returning(move |_| {
        let n = sends.fetch_add(1, Ordering::SeqCst) + 1;
        accepted(&format!("SM{n}"))
    });
    provider
}

async fn round(dispatcher: &Dispatcher) -> RoundReport {
    let report = dispatcher.dispatch_round().await.unwrap();
    dispatcher.drain().await;
    report
}

async fn messages(engine: &Engine) -> Vec<Message> {
    let page = engine
        .list_messages(&MessageQuery::default(), &PageRequest::first(1000))
        .await
        .unwrap();
    let mut full = Vec::new();
    for m in page.items {
        full.push(engine.get_message(m.id).await.unwrap());
    }
    full
}

async fn only_message(engine: &Engine) -> Message {
    let mut all = messages(engine).await;
    assert_eq!(all.len(), 1);
    all.remove(0)
}

#[tokio::test]
async fn each_recipient_is_sent_once_and_the_sid_recorded() {
    let s = setup(&["+94771234501", "+94771234502", "+94771234503"]).await;
    launch(&s.engine, json!({})).await;
    let sends = Arc::new(AtomicU32::new(0));
    let dispatcher = s
        .engine
        .dispatcher(Arc::new(accepting(sends.clone())), config());
    let report = round(&dispatcher).await;
    assert_eq!((report.claimed, report.sent), (3, 3));
    // Nothing is due any more: later rounds send nothing again.
    assert_eq!(round(&dispatcher).await.claimed, 0);
    s.clock.advance(chrono::Duration::minutes(10));
    assert_eq!(round(&dispatcher).await.claimed, 0);
    assert_eq!(sends.load(Ordering::SeqCst), 3);
    for message in messages(&s.engine).await {
        assert_eq!(message.status, MessageStatus::Sending);
        assert!(message.provider_sid.as_deref().unwrap().starts_with("SM"));
        assert_eq!(message.attempts, 1);
        let steps: Vec<_> = message.decisions.iter().map(|d| d.step.as_str()).collect();
        assert_eq!(steps, ["whatsapp_window"], "{message:?}");
        let history: Vec<_> = message.history.iter().map(|h| h.status).collect();
        use MessageStatus::*;
        assert_eq!(history, [Pending, Queued, Sending]);
    }
}

#[tokio::test]
async fn the_approved_template_goes_outside_the_window_and_free_text_inside() {
    let s = setup(&["+94771234501", "+94771234502"]).await;
    let fields = BTreeMap::from([
        ("MessageSid".to_owned(), "SMin1".to_owned()),
        ("From".to_owned(), "whatsapp:+94771234502".to_owned()),
        ("Body".to_owned(), "hi there".to_owned()),
    ]);
    s.engine.receive_inbound(fields).await.unwrap();
    launch(&s.engine, json!({})).await;
    let mut provider = MockProvider::new();
    provider.expect_name().return_const("mock");
    provider
        .expect_send()
        .withf(|m| {
            m.to.as_str() == "+94771234501"
                && m.body.is_none()
                && m.content_sid.as_deref() == Some("HX0123456789abcdef0123456789abcdef")
        })
        .times(1)
        .returning(|_| accepted("SM1"));
    provider
        .expect_send()
        .withf(|m| {
            m.to.as_str() == "+94771234502"
                && m.body.as_deref() == Some("Hello User +94771234502")
                && m.content_sid.is_none()
        })
        .times(1)
        .returning(|_| accepted("SM2"));
    let dispatcher = s.engine.dispatcher(Arc::new(provider), config());
    assert_eq!(round(&dispatcher).await.sent, 2);
}

#[tokio::test]
async fn transient_errors_are_retried_after_a_backoff_until_taken() {
    let s = setup(&["+94771234501"]).await;
    launch(&s.engine, json!({})).await;
    let calls = Arc::new(AtomicU32::new(0));
    let mut provider = MockProvider::new();
    provider.expect_name().return_const("mock");
    let counter = calls.clone();
    provider.expect_send().times(2).returning(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            Err(SendError::Transient {
                code: Some("20429".into()),
                message: "Too Many Requests".into(),
                retry_after: None,
            })
        } else {
            accepted("SM9")
        }
    });
    let dispatcher = s.engine.dispatcher(Arc::new(provider), config());
    round(&dispatcher).await;
    let waiting = only_message(&s.engine).await;
    assert_eq!(waiting.status, MessageStatus::Queued);
    // Not due again before the backoff (1–2 s for the first retry)...
    assert_eq!(round(&dispatcher).await.claimed, 0);
    s.clock.advance(chrono::Duration::seconds(2));
    assert_eq!(round(&dispatcher).await.sent, 1);
    let sent = only_message(&s.engine).await;
    assert_eq!(sent.provider_sid.as_deref(), Some("SM9"));
    assert_eq!(sent.attempts, 2);
    assert!(sent.decisions.iter().any(|d| d.step == "retry"
        && d.reason.contains("attempt 1 of 5")
        && d.reason.contains("20429")));
}

#[tokio::test]
async fn retries_stop_after_the_last_attempt() {
    let s = setup(&["+94771234501"]).await;
    launch(&s.engine, json!({})).await;
    let mut provider = MockProvider::new();
    provider.expect_name().return_const("mock");
    provider.expect_send().times(5).returning(|_| {
        Err(SendError::Transient {
            code: Some("503".into()),
            message: "Service Unavailable".into(),
            retry_after: None,
        })
    });
    let dispatcher = s.engine.dispatcher(Arc::new(provider), config());
    for _ in 0..8 {
        round(&dispatcher).await;
        s.clock.advance(chrono::Duration::minutes(10));
    }
    let failed = only_message(&s.engine).await;
    assert_eq!(failed.status, MessageStatus::Failed);
    assert_eq!(failed.error_code.as_deref(), Some("503"));
    assert_eq!(failed.attempts, 5);
}

#[tokio::test]
async fn a_permanent_error_fails_at_once_and_21610_opts_the_user_out() {
    let s = setup(&["+94771234501"]).await;
    launch(&s.engine, json!({})).await;
    let mut provider = MockProvider::new();
    provider.expect_name().return_const("mock");
    provider.expect_send().times(1).returning(|_| {
        Err(SendError::Permanent {
            code: Some("21610".into()),
            message: "Attempt to send to unsubscribed recipient".into(),
        })
    });
    let dispatcher = s.engine.dispatcher(Arc::new(provider), config());
    round(&dispatcher).await;
    s.clock.advance(chrono::Duration::hours(1));
    round(&dispatcher).await;
    let failed = only_message(&s.engine).await;
    assert_eq!(failed.status, MessageStatus::Failed);
    assert_eq!(failed.error_code.as_deref(), Some("21610"));
    let user = s.engine.get_user(&failed.user).await.unwrap();
    assert_eq!(user.consent_state, Consent::OptOut);
}

/// A send whose answer was lost, then looked up: `lookup` answers `found`.
async fn lost_then(found: Lookup) -> (Message, u32) {
    let s = setup(&["+94771234501"]).await;
    launch(&s.engine, json!({})).await;
    let sends = Arc::new(AtomicU32::new(0));
    let counter = sends.clone();
    let mut provider = MockProvider::new();
    provider.expect_name().return_const("mock");
    provider.expect_send().returning(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            Err(SendError::Unknown {
                message: "connection closed before the answer".into(),
            })
        } else {
            accepted("SM-resent")
        }
    });
    provider
        .expect_lookup()
        .times(1)
        .returning(move |_, _| found.clone());
    let dispatcher = s.engine.dispatcher(Arc::new(provider), config());
    round(&dispatcher).await;
    let unresolved = only_message(&s.engine).await;
    assert_eq!(unresolved.status, MessageStatus::Sending);
    assert!(
        unresolved
            .decisions
            .iter()
            .any(|d| d.reason.contains("not resent"))
    );
    // Nothing happens to it before the lookup is due, a minute later.
    assert_eq!(round(&dispatcher).await, RoundReport::default());
    s.clock.advance(chrono::Duration::seconds(61));
    assert_eq!(round(&dispatcher).await.looked_up, 1);
    round(&dispatcher).await;
    (only_message(&s.engine).await, sends.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_lost_answer_found_at_the_provider_is_recorded_as_sent_without_resending() {
    let found = Lookup::Found(Accepted {
        provider_sid: "SM-original".into(),
        status: MessageStatus::Sent,
    });
    let (message, sends) = lost_then(found).await;
    assert_eq!(sends, 1);
    assert_eq!(message.status, MessageStatus::Sent);
    assert_eq!(message.provider_sid.as_deref(), Some("SM-original"));
}

#[tokio::test]
async fn a_lost_send_the_provider_never_got_is_sent_again() {
    let (message, sends) = lost_then(Lookup::NotFound).await;
    assert_eq!(sends, 2);
    assert_eq!(message.provider_sid.as_deref(), Some("SM-resent"));
    assert!(message.decisions.iter().any(|d| d.step == "lookup"));
}

#[tokio::test]
async fn a_lost_send_the_provider_cannot_account_for_fails_and_is_not_resent() {
    let (message, sends) = lost_then(Lookup::Unknown("list timed out".into())).await;
    assert_eq!(sends, 1);
    assert_eq!(message.status, MessageStatus::Failed);
    let last = message.decisions.last().unwrap();
    assert!(
        last.reason.contains("outcome unknown, not resent"),
        "{last:?}"
    );
}

#[tokio::test]
async fn a_paused_campaign_sends_nothing_until_resumed_and_nothing_twice() {
    let s = setup(&["+94771234501", "+94771234502"]).await;
    let campaign = launch(&s.engine, json!({})).await;
    s.engine
        .command_campaign(campaign.id, CampaignCommand::Pause)
        .await
        .unwrap();
    let sends = Arc::new(AtomicU32::new(0));
    let dispatcher = s
        .engine
        .dispatcher(Arc::new(accepting(sends.clone())), config());
    assert_eq!(round(&dispatcher).await.claimed, 0);
    s.engine
        .command_campaign(campaign.id, CampaignCommand::Resume)
        .await
        .unwrap();
    assert_eq!(round(&dispatcher).await.sent, 2);
    s.engine
        .command_campaign(campaign.id, CampaignCommand::Pause)
        .await
        .unwrap();
    s.engine
        .command_campaign(campaign.id, CampaignCommand::Resume)
        .await
        .unwrap();
    assert_eq!(round(&dispatcher).await.claimed, 0);
    assert_eq!(sends.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn quiet_hours_defer_until_they_end_in_the_recipients_zone() {
    let s = setup(&["+94771234501"]).await;
    // 17:30 in Colombo at noon UTC: inside 17:00–19:00 there.
    launch(
        &s.engine,
        json!({ "quiet_hours": { "start": "17:00", "end": "19:00" } }),
    )
    .await;
    let sends = Arc::new(AtomicU32::new(0));
    let dispatcher = s
        .engine
        .dispatcher(Arc::new(accepting(sends.clone())), config());
    round(&dispatcher).await;
    let deferred = only_message(&s.engine).await;
    assert_eq!(deferred.status, MessageStatus::Deferred);
    assert!(deferred.decisions[0].reason.contains("Asia/Colombo"));
    // 19:00 in Colombo is 13:30 UTC.
    s.clock
        .set(Utc.with_ymd_and_hms(2026, 11, 24, 13, 29, 0).unwrap());
    assert_eq!(round(&dispatcher).await.claimed, 0);
    s.clock
        .set(Utc.with_ymd_and_hms(2026, 11, 24, 13, 30, 0).unwrap());
    assert_eq!(round(&dispatcher).await.sent, 1);
    assert_eq!(sends.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn cancelling_a_campaign_skips_what_it_had_not_sent() {
    let s = setup(&["+94771234501", "+94771234502"]).await;
    let campaign = launch(&s.engine, json!({})).await;
    s.engine
        .command_campaign(campaign.id, CampaignCommand::Cancel)
        .await
        .unwrap();
    let dispatcher = s
        .engine
        .dispatcher(Arc::new(accepting(Arc::default())), config());
    assert_eq!(round(&dispatcher).await.claimed, 0);
    for message in messages(&s.engine).await {
        assert_eq!(message.status, MessageStatus::Skipped);
        assert_eq!(message.decisions[0].reason, "the campaign was cancelled");
    }
}

#[tokio::test]
async fn a_scheduled_campaign_starts_at_its_time_and_completes_when_all_is_sent() {
    let s = setup(&["+94771234501"]).await;
    let start = noon() + chrono::Duration::minutes(5);
    let template: TemplateDraft = serde_json::from_value(json!({
        "name": "t", "content": "Hi", "content_sid": "HX0123456789abcdef0123456789abcdef",
    }))
    .unwrap();
    let template = s.engine.create_template(template).await.unwrap();
    let draft: CampaignDraft = serde_json::from_value(json!({
        "name": "Later", "template_id": template.id.to_string(), "status": "scheduled",
        "schedule": { "start_at": start.to_rfc3339() },
    }))
    .unwrap();
    let campaign = s.engine.create_campaign(draft).await.unwrap();
    let done = s.engine.supervise_campaigns().await.unwrap();
    assert!(done.launched.is_empty());
    s.clock.set(start);
    let done = s.engine.supervise_campaigns().await.unwrap();
    assert_eq!(done.launched[0].id, campaign.id);
    let dispatcher = s
        .engine
        .dispatcher(Arc::new(accepting(Arc::default())), config());
    assert_eq!(round(&dispatcher).await.sent, 1);
    let done = s.engine.supervise_campaigns().await.unwrap();
    assert_eq!(done.completed[0].status, CampaignStatus::Completed);
}

#[tokio::test]
async fn a_campaign_past_its_end_time_ends_and_skips_the_rest() {
    let s = setup(&["+94771234501", "+94771234502"]).await;
    let end = noon() + chrono::Duration::minutes(1);
    let campaign = launch(
        &s.engine,
        json!({ "schedule": { "end_at": end.to_rfc3339() }, "quiet_hours": { "start": "17:00", "end": "19:00" } }),
    )
    .await;
    let dispatcher = s
        .engine
        .dispatcher(Arc::new(accepting(Arc::default())), config());
    round(&dispatcher).await; // both deferred by quiet hours
    s.clock.set(end);
    let done = s.engine.supervise_campaigns().await.unwrap();
    assert_eq!(done.completed[0].id, campaign.id);
    for message in messages(&s.engine).await {
        assert_eq!(message.status, MessageStatus::Skipped);
        assert!(message.decisions.last().unwrap().reason.contains("ended"));
    }
}

#[tokio::test]
async fn replies_go_as_free_text_within_the_window_and_are_skipped_outside_it() {
    let s = setup(&["+94771234501", "+94771234502"]).await;
    let fields = BTreeMap::from([
        ("MessageSid".to_owned(), "SMin1".to_owned()),
        ("From".to_owned(), "whatsapp:+94771234501".to_owned()),
        ("Body".to_owned(), "where is my order?".to_owned()),
    ]);
    s.engine.receive_inbound(fields).await.unwrap();
    let writer = PhoneNumber::parse("+94771234501").unwrap();
    let silent = PhoneNumber::parse("+94771234502").unwrap();
    let reply = s
        .engine
        .send_reply(&writer, ReplyContent::Text("On its way!".into()))
        .await
        .unwrap();
    assert_eq!(reply.status, MessageStatus::Pending);
    assert_eq!(reply.campaign_id, None);
    // Outside the window, free text is refused at once, saying what to send instead.
    let refused = s
        .engine
        .send_reply(&silent, ReplyContent::Text("Hello?".into()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("24-hour window") && refused.contains("template_id"),
        "{refused}"
    );
    let mut provider = MockProvider::new();
    provider.expect_name().return_const("mock");
    provider
        .expect_send()
        .withf(|m| m.body.as_deref() == Some("On its way!"))
        .times(1)
        .returning(|_| accepted("SMr"));
    let dispatcher = s.engine.dispatcher(Arc::new(provider), config());
    round(&dispatcher).await;
    let sent = s.engine.get_message(reply.id).await.unwrap();
    assert_eq!(sent.provider_sid.as_deref(), Some("SMr"));
    assert!(messages(&s.engine).await.iter().all(|m| m.user != silent));
}

#[tokio::test]
async fn replies_must_say_something_to_someone_who_exists() {
    let s = setup(&["+94771234501"]).await;
    let user = PhoneNumber::parse("+94771234501").unwrap();
    let empty = s
        .engine
        .send_reply(&user, ReplyContent::Text("  ".into()))
        .await;
    assert!(matches!(empty, Err(EngineError::Invalid(_))));
    let long = "x".repeat(MAX_BODY_CHARS + 1);
    let long = s.engine.send_reply(&user, ReplyContent::Text(long)).await;
    assert!(matches!(long, Err(EngineError::Invalid(_))));
    let stranger = PhoneNumber::parse("+94771234599").unwrap();
    let unknown = s
        .engine
        .send_reply(&stranger, ReplyContent::Text("hi".into()))
        .await;
    assert!(matches!(unknown, Err(EngineError::NotFound { .. })));
}

#[tokio::test]
async fn a_campaign_rate_limit_spaces_its_sends() {
    let s = setup(&["+94771234501", "+94771234502", "+94771234503"]).await;
    launch(&s.engine, json!({ "rate_limit_per_second": 20 })).await;
    let sends = Arc::new(AtomicU32::new(0));
    let dispatcher = s
        .engine
        .dispatcher(Arc::new(accepting(sends.clone())), config());
    let started = std::time::Instant::now();
    while sends.load(Ordering::SeqCst) < 3 {
        round(&dispatcher).await;
    }
    // Three sends at 20 a second: the second and third wait 50 ms each.
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );
}

mod status_checks;
