//! Statuses whose callbacks were lost are fetched from Twilio: the Twilio adapter against
//! `examples/fake_twilio` over HTTP, on a real SQLite file and a manual clock. The fake drops
//! every status callback (as when this server was down), so only the status checks can tell
//! the engine where its messages are; their answers take the webhook's receipt path.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fake_twilio::{CallbackPlan, FailureStatus, FakeConfig, FakeTwilio, MessageStatus as Fake};
use messaging_core::Engine;
use messaging_core::domain::{CampaignDraft, Consent, MessageStatus, PhoneNumber, TemplateDraft};
use messaging_core::engine::{DispatchConfig, Dispatcher};
use messaging_core::ingest::{IngestSource, UserFileFormat};
use messaging_core::orchestrate::status_check::StatusCheckPolicy;
use messaging_core::provider::{
    Accepted, Lookup, OutboundMessage, Provider, ProviderStatus, SendError, Sender, TwilioConfig,
    TwilioProvider,
};
use messaging_core::store::ReceiptOutcome;
use serde_json::json;

const SENDER: &str = "+14155550100";

struct Setup {
    test: common::TestEngine,
    twilio: FakeTwilio,
    dispatcher: Dispatcher,
}

/// A fake Twilio that plays `plan` and drops every status callback, and an engine with
/// `users` whose dispatcher sends to it through `wrap(TwilioProvider)`.
async fn start(
    users: &[&str],
    plan: CallbackPlan,
    wrap: impl FnOnce(TwilioProvider, Engine) -> Arc<dyn Provider>,
) -> Setup {
    let test = common::engine().await;
    let csv = std::iter::once("phone".to_owned())
        .chain(users.iter().map(|p| p.to_string()))
        .collect::<Vec<_>>()
        .join("\n");
    test.engine
        .ingest_users(
            std::io::Cursor::new(csv.into_bytes()),
            UserFileFormat::Csv,
            IngestSource::Api,
        )
        .await
        .unwrap();
    let twilio = FakeTwilio::start(FakeConfig::default()).await.unwrap();
    twilio
        .set_callback_plan(CallbackPlan {
            dropped_share: 1.0,
            ..plan
        })
        .unwrap();
    let mut settings = TwilioConfig::new(
        twilio.account_sid(),
        twilio.auth_token(),
        Sender::Number(PhoneNumber::parse(SENDER).unwrap()),
    );
    settings.api_base = twilio.base_url();
    settings.status_callback = Some("http://127.0.0.1:9/twilio/status".into());
    settings.timeout = Duration::from_secs(10);
    let provider = wrap(TwilioProvider::new(settings).unwrap(), test.engine.clone());
    let config = DispatchConfig {
        send_rate_per_second: 1_000_000.0,
        status_checks: StatusCheckPolicy {
            per_second: 1_000.0,
            ..StatusCheckPolicy::default()
        },
        ..DispatchConfig::default()
    };
    let dispatcher = test.engine.dispatcher(provider, config);
    Setup {
        test,
        twilio,
        dispatcher,
    }
}

fn plain(provider: TwilioProvider, _: Engine) -> Arc<dyn Provider> {
    Arc::new(provider)
}

/// Launches a campaign to everyone (an approved template, so no window applies), sends it,
/// and waits until the fake has taken every message to `last`.
async fn send_all(setup: &Setup, count: usize, last: Fake) {
    let template: TemplateDraft = serde_json::from_value(json!({
        "name": "hello", "content": "Hello", "content_sid": "HX0123456789abcdef0123456789abcdef",
    }))
    .unwrap();
    let engine = &setup.test.engine;
    let template = engine.create_template(template).await.unwrap();
    let draft: CampaignDraft =
        serde_json::from_value(json!({ "name": "Launch", "template_id": template.id.to_string() }))
            .unwrap();
    let campaign = engine.create_campaign(draft).await.unwrap();
    engine.launch_campaign(campaign.id).await.unwrap();
    let report = setup.dispatcher.dispatch_round().await.unwrap();
    setup.dispatcher.drain().await;
    assert_eq!(report.sent, count);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let messages = setup.twilio.messages();
        if messages.len() == count && messages.iter().all(|m| m.status == last) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{messages:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for message in common::all_messages(engine, 100).await {
        assert_eq!(message.status, MessageStatus::Sending, "no callback came");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_lost_while_callbacks_failed_are_fetched_and_applied_as_receipts() {
    let users = ["+94770000001", "+94770000002", "+94770000003"];
    let plan = CallbackPlan {
        send_read: true,
        ..CallbackPlan::default()
    };
    let setup = start(&users, plan, plain).await;
    send_all(&setup, users.len(), Fake::Read).await;

    // Not asked about before ten quiet minutes.
    assert_eq!(setup.dispatcher.check_statuses().await.unwrap().asked, 0);
    setup.test.clock.advance(chrono::Duration::minutes(10));
    let report = setup.dispatcher.check_statuses().await.unwrap();
    assert_eq!(report.asked, users.len());
    assert_eq!(setup.twilio.counters().fetches, users.len() as u64);
    for receipt in &report.receipts {
        assert_eq!(
            receipt.outcome,
            ReceiptOutcome::Applied(MessageStatus::Read)
        );
        let raw = &receipt.receipt.raw;
        assert_eq!(raw["MessageStatus"], "read");
        assert_eq!(raw["AccountSid"], setup.twilio.account_sid());
        assert!(raw["To"].starts_with("whatsapp:+9477"), "{raw:?}");
        assert!(raw.contains_key("DateUpdated"), "{raw:?}");
    }
    for message in common::all_messages(&setup.test.engine, 100).await {
        assert_eq!(message.status, MessageStatus::Read);
        let history: Vec<_> = message.history.iter().map(|h| h.status).collect();
        assert_eq!(history.last(), Some(&MessageStatus::Read));
    }
    // Read is final: never asked about again.
    setup.test.clock.advance(chrono::Duration::hours(6));
    assert_eq!(setup.dispatcher.check_statuses().await.unwrap().asked, 0);
    assert_eq!(setup.twilio.counters().fetches, users.len() as u64);
}

/// Twilio through the adapter, except that the recipient's `read` webhook lands while the
/// question is on its way: Twilio's answer (`sent`) is then older than what is stored.
struct ReadArrivesMeanwhile {
    twilio: TwilioProvider,
    engine: Engine,
}

#[async_trait]
impl Provider for ReadArrivesMeanwhile {
    fn name(&self) -> &'static str {
        self.twilio.name()
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Accepted, SendError> {
        self.twilio.send(message).await
    }

    async fn lookup(&self, message: &OutboundMessage, since: DateTime<Utc>) -> Lookup {
        self.twilio.lookup(message, since).await
    }

    async fn fetch_status(&self, sid: &str) -> Result<Option<ProviderStatus>, SendError> {
        let read = BTreeMap::from([
            ("MessageSid".to_owned(), sid.to_owned()),
            ("MessageStatus".to_owned(), "read".to_owned()),
        ]);
        self.engine.receive_status(read).await.unwrap();
        self.twilio.fetch_status(sid).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_fetched_sent_never_moves_a_read_message_back() {
    let plan = CallbackPlan {
        stop_at: Some(Fake::Sent),
        ..CallbackPlan::default()
    };
    let setup = start(&["+94770000001"], plan, |twilio, engine| {
        Arc::new(ReadArrivesMeanwhile { twilio, engine })
    })
    .await;
    send_all(&setup, 1, Fake::Sent).await;
    setup.test.clock.advance(chrono::Duration::minutes(10));
    let report = setup.dispatcher.check_statuses().await.unwrap();
    assert_eq!(report.asked, 1);
    assert_eq!(report.receipts[0].receipt.provider_status, "sent");
    assert_eq!(
        report.receipts[0].outcome,
        ReceiptOutcome::Ignored(MessageStatus::Read),
        "kept as a receipt, but it does not move the message"
    );
    let message = common::all_messages(&setup.test.engine, 100)
        .await
        .remove(0);
    assert_eq!(message.status, MessageStatus::Read);
    let history: Vec<_> = message.history.iter().map(|h| h.status).collect();
    assert!(!history.contains(&MessageStatus::Sent), "{history:?}");
    setup.test.clock.advance(chrono::Duration::days(1));
    assert_eq!(setup.dispatcher.check_statuses().await.unwrap().asked, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetched_failure_with_21610_opts_the_user_out() {
    let plan = CallbackPlan {
        failed_share: 1.0,
        failure_status: FailureStatus::Failed,
        failure_error_code: 21610,
        ..CallbackPlan::default()
    };
    let phone = "+94770000001";
    let setup = start(&[phone], plan, plain).await;
    send_all(&setup, 1, Fake::Failed).await;
    setup.test.clock.advance(chrono::Duration::minutes(10));
    let report = setup.dispatcher.check_statuses().await.unwrap();
    assert_eq!(
        report.receipts[0].receipt.error_code.as_deref(),
        Some("21610")
    );
    let message = common::all_messages(&setup.test.engine, 100)
        .await
        .remove(0);
    assert_eq!(message.status, MessageStatus::Failed);
    assert_eq!(message.error_code.as_deref(), Some("21610"));
    let user = setup
        .test
        .engine
        .get_user(&PhoneNumber::parse(phone).unwrap())
        .await
        .unwrap();
    assert_eq!(user.consent_state, Consent::OptOut);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_twilio_still_reports_sent_is_asked_again_later_not_every_pass() {
    let plan = CallbackPlan {
        stop_at: Some(Fake::Sent),
        ..CallbackPlan::default()
    };
    let setup = start(&["+94770000001"], plan, plain).await;
    send_all(&setup, 1, Fake::Sent).await;
    for _ in 0..30 {
        setup.test.clock.advance(chrono::Duration::minutes(1));
        setup.dispatcher.check_statuses().await.unwrap();
    }
    // Asked at 10 minutes (sending → sent), then 20 minutes later.
    assert_eq!(setup.twilio.counters().fetches, 2);
    let message = common::all_messages(&setup.test.engine, 100)
        .await
        .remove(0);
    assert_eq!(message.status, MessageStatus::Sent);
}
