//! Status checks on a manual clock: when a message whose status callbacks never came is asked
//! about at the provider, asked again, and given up on, and that answers take the receipt
//! path.

use std::sync::Mutex;

use super::*;
use crate::orchestrate::status_check::StatusCheckPolicy;
use crate::provider::{ProviderStatus, StatusFields};
use crate::store::ReceiptOutcome;

/// Twilio's status-callback fields for `sid` at `status`.
fn fields(sid: &str, status: &str, error_code: Option<&str>) -> StatusFields {
    let mut fields = StatusFields::from([
        ("MessageSid".to_owned(), sid.to_owned()),
        ("MessageStatus".to_owned(), status.to_owned()),
        (
            "DateUpdated".to_owned(),
            "Tue, 24 Nov 2026 12:10:00 +0000".to_owned(),
        ),
    ]);
    if let Some(code) = error_code {
        fields.insert("ErrorCode".into(), code.into());
    }
    fields
}

fn checking_config() -> DispatchConfig {
    DispatchConfig {
        status_checks: StatusCheckPolicy {
            per_second: 1_000_000.0,
            ..StatusCheckPolicy::default()
        },
        ..config()
    }
}

/// A provider that accepts the one message as SM1 and answers `answer` to every question,
/// noting the clock's time of each.
fn answering(
    clock: Arc<ManualClock>,
    asked: Arc<Mutex<Vec<DateTime<Utc>>>>,
    answer: impl Fn() -> Result<Option<ProviderStatus>, SendError> + Send + 'static,
) -> MockProvider {
    let mut provider = MockProvider::new();
    provider.expect_name().return_const("mock");
    provider
        .expect_send()
        .times(1)
        .returning(|_| accepted("SM1"));
    provider.expect_fetch_status().returning(move |sid| {
        assert_eq!(sid, "SM1");
        asked
            .lock()
            .unwrap()
            .push(crate::clock::Clock::now(&*clock));
        answer()
    });
    provider
}

fn still(status: &'static str) -> impl Fn() -> Result<Option<ProviderStatus>, SendError> {
    move || {
        Ok(Some(ProviderStatus {
            fields: fields("SM1", status, None),
        }))
    }
}

/// Minutes after noon (the send) at which the provider was asked.
fn minutes(asked: &Mutex<Vec<DateTime<Utc>>>) -> Vec<i64> {
    asked
        .lock()
        .unwrap()
        .iter()
        .map(|at| (*at - noon()).num_minutes())
        .collect()
}

/// Sends the one message at noon; passes status checks each minute for `minutes` minutes.
async fn checked_each_minute(dispatcher: &Dispatcher, clock: &ManualClock, minutes: i64) {
    for _ in 0..minutes {
        clock.advance(chrono::Duration::minutes(1));
        dispatcher.check_statuses().await.unwrap();
    }
}

#[tokio::test]
async fn a_message_without_news_is_asked_about_after_ten_quiet_minutes_through_the_receipt_path() {
    let s = setup(&["+94771234501"]).await;
    launch(&s.engine, json!({})).await;
    let asked = Arc::new(Mutex::new(Vec::new()));
    let provider = answering(s.clock.clone(), asked.clone(), still("delivered"));
    let dispatcher = s.engine.dispatcher(Arc::new(provider), checking_config());
    round(&dispatcher).await;
    assert_eq!(dispatcher.check_statuses().await.unwrap().asked, 0);
    s.clock.advance(chrono::Duration::minutes(9));
    assert_eq!(dispatcher.check_statuses().await.unwrap().asked, 0);
    s.clock.advance(chrono::Duration::minutes(1));
    let report = dispatcher.check_statuses().await.unwrap();
    assert_eq!(report.asked, 1);
    assert_eq!(
        report.receipts[0].outcome,
        ReceiptOutcome::Applied(MessageStatus::Delivered)
    );
    assert_eq!(
        report.receipts[0].receipt.raw["DateUpdated"], "Tue, 24 Nov 2026 12:10:00 +0000",
        "the receipt keeps the fields the provider answered"
    );
    let message = only_message(&s.engine).await;
    assert_eq!(message.status, MessageStatus::Delivered);
    // Delivered is not asked about again, however long it stays so.
    checked_each_minute(&dispatcher, &s.clock, 120).await;
    assert_eq!(minutes(&asked), [10]);
}

#[tokio::test]
async fn a_message_still_sent_is_asked_at_doubling_intervals_then_given_up_after_three_days() {
    let s = setup(&["+94771234501"]).await;
    launch(&s.engine, json!({})).await;
    let asked = Arc::new(Mutex::new(Vec::new()));
    let provider = answering(s.clock.clone(), asked.clone(), still("sent"));
    let dispatcher = s.engine.dispatcher(Arc::new(provider), checking_config());
    round(&dispatcher).await;
    checked_each_minute(&dispatcher, &s.clock, 160).await;
    // 10 quiet minutes, then 20, 40, 80 minutes later.
    assert_eq!(minutes(&asked), [10, 30, 70, 150]);
    assert_eq!(only_message(&s.engine).await.status, MessageStatus::Sent);

    // Then at most every 6 hours, the last question at the three-day mark.
    s.clock
        .set(noon() + chrono::Duration::days(3) - chrono::Duration::minutes(1));
    dispatcher.check_statuses().await.unwrap();
    let before = asked.lock().unwrap().len();
    s.clock.set(noon() + chrono::Duration::days(3));
    let last = dispatcher.check_statuses().await.unwrap();
    assert_eq!((last.asked, last.given_up), (1, 1));
    assert_eq!(asked.lock().unwrap().len(), before + 1);
    s.clock.advance(chrono::Duration::days(1));
    assert_eq!(dispatcher.check_statuses().await.unwrap().asked, 0);

    let message = only_message(&s.engine).await;
    assert_eq!(
        message.status,
        MessageStatus::Sent,
        "giving up invents no status"
    );
    let decision = message.decisions.last().unwrap();
    assert_eq!(decision.step, "status_check");
    assert!(
        decision
            .reason
            .starts_with("no final status from mock after 3 days"),
        "{}",
        decision.reason
    );
}

#[tokio::test]
async fn a_question_without_an_answer_is_asked_again_later_not_at_every_pass() {
    let s = setup(&["+94771234501"]).await;
    launch(&s.engine, json!({})).await;
    let asked = Arc::new(Mutex::new(Vec::new()));
    let provider = answering(s.clock.clone(), asked.clone(), || {
        Err(SendError::Transient {
            code: Some("503".into()),
            message: "Service Unavailable".into(),
            retry_after: None,
        })
    });
    let dispatcher = s.engine.dispatcher(Arc::new(provider), checking_config());
    round(&dispatcher).await;
    checked_each_minute(&dispatcher, &s.clock, 75).await;
    assert_eq!(minutes(&asked), [10, 30, 70]);
    assert_eq!(only_message(&s.engine).await.status, MessageStatus::Sending);
}

#[tokio::test]
async fn a_message_the_provider_does_not_know_is_not_asked_about_again() {
    let s = setup(&["+94771234501"]).await;
    launch(&s.engine, json!({})).await;
    let asked = Arc::new(Mutex::new(Vec::new()));
    let provider = answering(s.clock.clone(), asked.clone(), || Ok(None));
    let dispatcher = s.engine.dispatcher(Arc::new(provider), checking_config());
    round(&dispatcher).await;
    checked_each_minute(&dispatcher, &s.clock, 60).await;
    assert_eq!(minutes(&asked), [10]);
    let message = only_message(&s.engine).await;
    assert_eq!(message.status, MessageStatus::Sending);
    let decision = message.decisions.last().unwrap();
    assert_eq!(decision.step, "status_check");
    assert!(
        decision.reason.starts_with("mock has no status"),
        "{}",
        decision.reason
    );
}

#[tokio::test]
async fn a_fetched_failure_with_21610_fails_the_message_and_opts_the_user_out() {
    let s = setup(&["+94771234501"]).await;
    launch(&s.engine, json!({})).await;
    let asked = Arc::new(Mutex::new(Vec::new()));
    let provider = answering(s.clock.clone(), asked.clone(), || {
        Ok(Some(ProviderStatus {
            fields: fields("SM1", "failed", Some("21610")),
        }))
    });
    let dispatcher = s.engine.dispatcher(Arc::new(provider), checking_config());
    round(&dispatcher).await;
    checked_each_minute(&dispatcher, &s.clock, 30).await;
    assert_eq!(minutes(&asked), [10]);
    let message = only_message(&s.engine).await;
    assert_eq!(message.status, MessageStatus::Failed);
    assert_eq!(message.error_code.as_deref(), Some("21610"));
    let phone = PhoneNumber::parse("+94771234501").unwrap();
    let user = s.engine.get_user(&phone).await.unwrap();
    assert_eq!(user.consent_state, Consent::OptOut);
}
