//! Statuses and inbound messages learnt by polling Twilio's list of messages, with no webhook
//! at all: the Twilio adapter against `examples/fake_twilio` over HTTP (no status callbacks
//! named, so the fake posts none), on a real SQLite file. What is read takes the webhooks'
//! paths, so their rules hold: repeats change nothing, statuses never move back, commands in
//! inbound messages apply, and a restart goes on from the mark kept in the database.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use fake_twilio::{CallbackPlan, FakeConfig, FakeTwilio, InboundRequest, MessageStatus as Fake};
use messaging_core::Engine;
use messaging_core::clock::ManualClock;
use messaging_core::domain::{
    CampaignDraft, Consent, MessageId, MessageStatus, PhoneNumber, TemplateDraft,
};
use messaging_core::engine::{DispatchConfig, Dispatcher, PollConfig, Poller};
use messaging_core::provider::{
    MessageHistory, OutboundMessage, Provider, Sender, TwilioConfig, TwilioProvider,
};
use messaging_core::startup::{ProviderSettings, Startup};
use messaging_core::store::PageRequest;
use messaging_core::store::sqlite::SqliteStore;
use serde_json::json;
use tempfile::TempDir;

/// The platform's WhatsApp number at the fake.
const SENDER: &str = "+14155550100";

fn sender_address() -> String {
    format!("whatsapp:{SENDER}")
}

struct Setup {
    engine: Engine,
    clock: Arc<ManualClock>,
    dir: TempDir,
    twilio: FakeTwilio,
    provider: Arc<TwilioProvider>,
    dispatcher: Dispatcher,
    poller: Poller,
}

/// Twilio settings for `twilio`: our number, no status callback (so no webhook ever comes),
/// pages of `page_size` when polling.
fn twilio_settings(twilio: &FakeTwilio, page_size: u32) -> TwilioConfig {
    let mut settings = TwilioConfig::new(
        twilio.account_sid(),
        twilio.auth_token(),
        Sender::Number(PhoneNumber::parse(SENDER).unwrap()),
    );
    settings.api_base = twilio.base_url();
    settings.status_callback = None;
    settings.timeout = Duration::from_secs(10);
    settings.list_page_size = page_size;
    settings
}

/// An engine on a fresh file with `users`, its clock at the real time (the fake dates
/// messages by the real clock), and a fake Twilio that plays `plan`; the dispatcher sends to
/// it and the poller reads it back, both through one Twilio adapter.
async fn start(users: &[&str], plan: CallbackPlan, page_size: u32) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("poll.db")).await.unwrap());
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let engine = Engine::new(store, clock.clone());
    if !users.is_empty() {
        common::import_csv_rows(&engine, "phone", users.iter().map(|p| p.to_string())).await;
    }
    let twilio = FakeTwilio::start(FakeConfig::default()).await.unwrap();
    twilio.set_callback_plan(plan).unwrap();
    let provider = Arc::new(TwilioProvider::new(twilio_settings(&twilio, page_size)).unwrap());
    let config = DispatchConfig {
        send_rate_per_second: 1_000_000.0,
        ..DispatchConfig::default()
    };
    let dispatcher = engine.dispatcher(provider.clone(), config);
    let poller = engine.poller(provider.clone(), PollConfig::every(Duration::from_secs(10)));
    Setup {
        engine,
        clock,
        dir,
        twilio,
        provider,
        dispatcher,
        poller,
    }
}

/// Sends an approved template to everyone through the dispatcher, and waits until the fake
/// has taken every message to `last`.
async fn send_all(setup: &Setup, count: usize, last: Fake) {
    let template: TemplateDraft = serde_json::from_value(json!({
        "name": "hello", "content": "Hello", "content_sid": "HX0123456789abcdef0123456789abcdef",
    }))
    .unwrap();
    let engine = &setup.engine;
    let template = engine.create_template(template).await.unwrap();
    let draft: CampaignDraft =
        serde_json::from_value(json!({ "name": "Launch", "template_id": template.id.to_string() }))
            .unwrap();
    let campaign = engine.create_campaign(draft).await.unwrap();
    engine.launch_campaign(campaign.id).await.unwrap();
    let report = setup.dispatcher.dispatch_round().await.unwrap();
    setup.dispatcher.drain().await;
    assert_eq!(report.sent, count);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let messages = setup.twilio.messages();
        if messages.len() == count && messages.iter().all(|m| m.status == last) {
            break;
        }
        assert!(Instant::now() < deadline, "{messages:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for message in common::all_messages(engine, 1_000).await {
        assert_eq!(message.status, MessageStatus::Sending, "no webhook came");
    }
}

/// A user writes `body` to our number (`from` is E.164).
fn writes(twilio: &FakeTwilio, from: &str, body: &str) {
    twilio
        .receive_inbound(InboundRequest {
            from: format!("whatsapp:{from}"),
            to: Some(sender_address()),
            body: body.into(),
            ..InboundRequest::default()
        })
        .unwrap();
}

fn phone(text: &str) -> PhoneNumber {
    PhoneNumber::parse(text).unwrap()
}

async fn inbound_count(engine: &Engine) -> usize {
    engine
        .list_inbound(None, &PageRequest::first(1_000))
        .await
        .unwrap()
        .items
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_reach_the_engine_by_polling_alone() {
    let users = ["+94770000001", "+94770000002", "+94770000003"];
    let plan = CallbackPlan {
        send_read: true,
        ..CallbackPlan::default()
    };
    let setup = start(&users, plan, 1_000).await;
    send_all(&setup, users.len(), Fake::Read).await;
    assert!(setup.twilio.callbacks().is_empty(), "no status callback");

    let report = setup.poller.poll_once().await.unwrap();
    assert_eq!(report.listed, users.len());
    assert_eq!(report.applied, users.len());
    assert_eq!((report.parked, report.refused), (0, 0));
    for message in common::all_messages(&setup.engine, 1_000).await {
        assert_eq!(message.status, MessageStatus::Read);
        let history: Vec<_> = message.history.iter().map(|h| h.status).collect();
        assert_eq!(history.last(), Some(&MessageStatus::Read), "{history:?}");
    }
    assert!(setup.twilio.counters().lists >= 2, "From= and To= lists");
}

/// Sends one message from our number through the adapter but outside the engine (another
/// program on the account, or a send of ours whose answer is not recorded yet), and waits
/// until the fake has delivered it; answers its SID.
async fn send_outside_the_engine(setup: &Setup, to: &str) -> String {
    let accepted = setup
        .provider
        .send(&OutboundMessage {
            id: MessageId::new(),
            to: phone(to),
            body: Some("Hello from elsewhere".into()),
            content_sid: None,
            content_variables: None,
        })
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while setup.twilio.messages()[0].status != Fake::Delivered {
        assert!(Instant::now() < deadline, "never delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    accepted.provider_sid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_for_a_sid_not_recorded_yet_is_kept_once() {
    let setup = start(&[], CallbackPlan::default(), 1_000).await;
    let sid = send_outside_the_engine(&setup, "+94770000009").await;
    assert!(sid.starts_with("SM"));
    let report = setup.poller.poll_once().await.unwrap();
    assert_eq!((report.listed, report.parked), (1, 1), "{report:?}");
    let again = setup.poller.poll_once().await.unwrap();
    assert_eq!((again.parked, again.repeated), (0, 1), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_messages_arrive_as_inbound_records_and_stop_opts_the_user_out() {
    let (ada, bob, cy) = ("+94770000001", "+94770000002", "+94770000003");
    let setup = start(&[ada], CallbackPlan::default(), 1_000).await;
    assert_eq!(
        setup
            .engine
            .get_user(&phone(ada))
            .await
            .unwrap()
            .consent_state,
        Consent::OptIn
    );
    writes(&setup.twilio, ada, "Hello there");
    writes(&setup.twilio, ada, "STOP");
    writes(&setup.twilio, bob, "SUBSCRIBE dance");
    // Written three hours ago, while nobody polled.
    let earlier = Utc::now() - TimeDelta::hours(3);
    setup
        .twilio
        .receive_inbound(InboundRequest {
            from: format!("whatsapp:{cy}"),
            to: Some(sender_address()),
            body: "hi".into(),
            date_sent: Some(earlier.format("%a, %d %b %Y %H:%M:%S +0000").to_string()),
            ..InboundRequest::default()
        })
        .unwrap();
    // To another number of the account: not ours.
    setup
        .twilio
        .receive_inbound(InboundRequest {
            from: format!("whatsapp:{bob}"),
            to: Some("whatsapp:+14155550111".into()),
            body: "STOP".into(),
            ..InboundRequest::default()
        })
        .unwrap();

    let report = setup.poller.poll_once().await.unwrap();
    assert_eq!((report.inbound, report.refused), (4, 0), "{report:?}");
    let engine = &setup.engine;
    let ada_wrote = engine
        .list_inbound(Some(phone(ada)), &PageRequest::first(10))
        .await
        .unwrap()
        .items;
    let bodies: Vec<&str> = ada_wrote.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["STOP", "Hello there"], "newest first");
    assert_eq!(ada_wrote[0].raw["To"], sender_address());
    assert_eq!(
        engine.get_user(&phone(ada)).await.unwrap().consent_state,
        Consent::OptOut
    );
    let bob_user = engine.get_user(&phone(bob)).await.unwrap();
    assert_eq!(bob_user.consent_state, Consent::OptIn, "SUBSCRIBE opts in");
    assert_eq!(bob_user.topics.len(), 1);
    assert_eq!(bob_user.topics[0].as_str(), "DANCE");
    // The window opens from when the message reached Twilio, not from when it was read.
    let cy_user = engine.get_user(&phone(cy)).await.unwrap();
    assert_eq!(
        cy_user.consent_state,
        Consent::OptOut,
        "writing is not consent"
    );
    let opened = cy_user.last_inbound_at.unwrap();
    assert!(
        (opened - earlier).num_seconds().abs() <= 1,
        "{opened} vs {earlier}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_again_over_overlapping_windows_records_nothing_twice() {
    let users = ["+94770000001", "+94770000002"];
    let setup = start(&users, CallbackPlan::default(), 1_000).await;
    send_all(&setup, users.len(), Fake::Delivered).await;
    writes(&setup.twilio, users[0], "STOP");
    writes(&setup.twilio, users[1], "hello");

    let first = setup.poller.poll_once().await.unwrap();
    assert_eq!((first.applied, first.inbound), (2, 2), "{first:?}");
    let before = common::all_messages(&setup.engine, 1_000).await;
    let inbound_before = inbound_count(&setup.engine).await;

    // Thirty seconds later: the window reaches two minutes before the first poll.
    setup.clock.advance(TimeDelta::seconds(30));
    let second = setup.poller.poll_once().await.unwrap();
    assert_eq!(second.since, first.until - TimeDelta::minutes(2));
    assert_eq!(second.listed, first.listed);
    assert_eq!(second.repeated, first.applied + first.inbound);
    assert!(!second.changed_anything(), "{second:?}");
    assert_eq!(
        common::all_messages(&setup.engine, 1_000).await,
        before,
        "statuses and history unchanged"
    );
    assert_eq!(inbound_count(&setup.engine).await, inbound_before);

    // A restart (another store on the same file) goes on from the mark kept in the database.
    let store = Arc::new(
        SqliteStore::open(setup.dir.path().join("poll.db"))
            .await
            .unwrap(),
    );
    let restarted = Engine::new(store, setup.clock.clone());
    let history: Arc<dyn MessageHistory> = setup.provider.clone();
    let poller = restarted.poller(history, PollConfig::every(Duration::from_secs(10)));
    let third = poller.poll_once().await.unwrap();
    assert_eq!(third.since, second.until - TimeDelta::minutes(2));
    assert_eq!(third.repeated, second.repeated);
    assert_eq!(inbound_count(&restarted).await, inbound_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_sent_never_moves_a_delivered_message_back() {
    let plan = CallbackPlan {
        stop_at: Some(Fake::Sent),
        ..CallbackPlan::default()
    };
    let setup = start(&["+94770000001"], plan, 1_000).await;
    send_all(&setup, 1, Fake::Sent).await;
    // The delivery came by webhook meanwhile; Twilio's list still says `sent`.
    let sid = setup.twilio.messages()[0].sid.clone();
    let delivered = std::collections::BTreeMap::from([
        ("MessageSid".to_owned(), sid),
        ("MessageStatus".to_owned(), "delivered".to_owned()),
    ]);
    setup.engine.receive_status(delivered).await.unwrap();

    let report = setup.poller.poll_once().await.unwrap();
    assert_eq!((report.applied, report.ignored), (0, 1), "{report:?}");
    let message = common::all_messages(&setup.engine, 1_000).await.remove(0);
    assert_eq!(message.status, MessageStatus::Delivered);
    let history: Vec<_> = message.history.iter().map(|h| h.status).collect();
    assert!(!history.contains(&MessageStatus::Sent), "{history:?}");
    // Read again, the `sent` is a repeat.
    let again = setup.poller.poll_once().await.unwrap();
    assert_eq!((again.ignored, again.repeated), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_messages_across_several_pages_are_all_seen() {
    let users: Vec<String> = (1..=10).map(|n| format!("+947700000{n:02}")).collect();
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    let setup = start(&users, CallbackPlan::default(), 3).await;
    send_all(&setup, users.len(), Fake::Delivered).await;
    for user in &users[..7] {
        writes(&setup.twilio, user, "hello");
    }
    let lists_before = setup.twilio.counters().lists;

    let report = setup.poller.poll_once().await.unwrap();
    assert_eq!(report.listed, 17);
    assert_eq!((report.applied, report.inbound), (10, 7), "{report:?}");
    // Ten sent messages on four pages of three, seven received ones on three.
    assert_eq!(setup.twilio.counters().lists - lists_before, 7);
    for message in common::all_messages(&setup.engine, 1_000).await {
        assert_eq!(message.status, MessageStatus::Delivered);
    }
    assert_eq!(inbound_count(&setup.engine).await, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_started_engine_polls_twilio_until_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let twilio = FakeTwilio::start(FakeConfig::default()).await.unwrap();
    let url = format!("sqlite://{}", dir.path().join("started.db").display());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = Startup::new(
        url,
        ProviderSettings::Twilio(twilio_settings(&twilio, 1_000)),
    )
    .poll_twilio(PollConfig::every(Duration::from_millis(50)))
    .start(async move {
        let _ = stopped.await;
    })
    .await
    .unwrap();
    assert!(running.is_polling());
    writes(&twilio, "+94770000001", "STOP");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let user = running.engine().get_user(&phone("+94770000001")).await;
        if user.is_ok_and(|user| user.consent_state == Consent::OptOut) {
            break;
        }
        assert!(Instant::now() < deadline, "the STOP was never polled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(20), running.finished())
        .await
        .expect("polling stops with the engine");

    // The sandbox reports its own statuses: nothing to poll.
    let sandbox = Startup::new(
        format!("sqlite://{}", dir.path().join("sandbox.db").display()),
        ProviderSettings::sandbox(),
    )
    .poll_twilio(PollConfig::every(Duration::from_millis(50)))
    .start(std::future::pending())
    .await
    .unwrap();
    assert!(!sandbox.is_polling());
    sandbox.stop();
    sandbox.finished().await;
}

/// The mark polling keeps per source, through the store port on the backend `TEST_STORE`
/// names: it only moves forward, so a slower process polling the same database never moves
/// it back.
#[tokio::test]
async fn the_mark_of_each_source_only_moves_forward() {
    let t = common::engine().await;
    let store = &t.store;
    let at = common::start_time();
    assert_eq!(store.polled_until("twilio AC1 a").await.unwrap(), None);
    store.set_polled_until("twilio AC1 a", at).await.unwrap();
    store
        .set_polled_until("twilio AC1 a", at - TimeDelta::minutes(5))
        .await
        .unwrap();
    assert_eq!(store.polled_until("twilio AC1 a").await.unwrap(), Some(at));
    assert_eq!(store.polled_until("twilio AC2 a").await.unwrap(), None);
    let later = at + TimeDelta::seconds(30);
    store.set_polled_until("twilio AC1 a", later).await.unwrap();
    assert_eq!(
        store.polled_until("twilio AC1 a").await.unwrap(),
        Some(later),
        "{}",
        t.backend
    );
}
