//! The dispatcher end to end against `examples/fake_twilio` over real HTTP, on a real SQLite
//! file and the system clock: a 10,000-recipient campaign is accepted exactly once per
//! recipient, still exactly once with 20 % of requests answered 429/5xx and some connections
//! dropped after acceptance, and opted-out, quiet-hours and out-of-window recipients get the
//! right decisions.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};
use fake_twilio::{FakeConfig, FakeTwilio, Faults};
use messaging_core::Engine;
use messaging_core::domain::{
    Campaign, CampaignDraft, CampaignStatus, MessageStatus, PhoneNumber, TemplateDraft,
};
use messaging_core::engine::DispatchConfig;
use messaging_core::orchestrate::retry::RetryPolicy;
use messaging_core::provider::{Sender, TwilioConfig, TwilioProvider};
use messaging_core::store::{MessageQuery, PageRequest};
use serde_json::json;
use tokio::sync::oneshot;

const SENDER: &str = "+14155550100";
const CONTENT_SID: &str = "HX0123456789abcdef0123456789abcdef";

struct Running {
    engine: Engine,
    twilio: FakeTwilio,
    stop: oneshot::Sender<()>,
    dispatching: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// An engine on a fresh file with `users` (CSV rows after the header `phone,timezone`) and
/// a dispatcher sending to a fake Twilio with `faults`.
async fn start(users: Vec<String>, faults: Faults) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().join("db.sqlite").to_str().unwrap())
        .await
        .unwrap();
    common::import_csv_rows(&engine, "phone,timezone", users).await;
    let twilio = FakeTwilio::start(FakeConfig::default()).await.unwrap();
    twilio.set_faults(faults).unwrap();
    let mut settings = TwilioConfig::new(
        twilio.account_sid(),
        twilio.auth_token(),
        Sender::Number(PhoneNumber::parse(SENDER).unwrap()),
    );
    settings.api_base = twilio.base_url();
    // Generous: on a loaded 2-core machine the fake can be slow to answer, and a timeout is an
    // unknown outcome that these tests are not about.
    settings.timeout = Duration::from_secs(10);
    let provider = Arc::new(TwilioProvider::new(settings).unwrap());
    let config = DispatchConfig {
        send_rate_per_second: 1_000_000.0,
        // Fast retries, but enough of them (about half a minute) that a loaded machine does not
        // turn injected faults into failed messages.
        retry: RetryPolicy {
            max_attempts: 40,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(1),
            unresolved_check: Duration::from_millis(100),
        },
        lease: Duration::from_secs(15),
        idle_wait: Duration::from_millis(20),
        ..DispatchConfig::default()
    };
    let dispatcher = engine.dispatcher(provider, config);
    let (stop, stopped) = oneshot::channel::<()>();
    let dispatching = tokio::spawn(dispatcher.run(async {
        let _ = stopped.await;
    }));
    Running {
        engine,
        twilio,
        stop,
        dispatching,
        _dir: dir,
    }
}

async fn launch(engine: &Engine, content_sid: Option<&str>, extra: serde_json::Value) -> Campaign {
    let template: TemplateDraft = serde_json::from_value(json!({
        "name": "hello", "content": "Hello from the campaign", "content_sid": content_sid,
    }))
    .unwrap();
    let template = engine.create_template(template).await.unwrap();
    let mut draft = json!({ "name": "Big launch", "template_id": template.id.to_string() });
    for (key, value) in extra.as_object().unwrap() {
        draft[key] = value.clone();
    }
    let draft: CampaignDraft = serde_json::from_value(draft).unwrap();
    let campaign = engine.create_campaign(draft).await.unwrap();
    engine.launch_campaign(campaign.id).await.unwrap().0
}

/// Waits, with a deadline, until the campaign has completed (every message went out).
async fn until_completed(engine: &Engine, campaign: &Campaign, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let now = engine.get_campaign(campaign.id).await.unwrap();
        let stats = engine.stats(Some(campaign.id)).await.unwrap();
        if now.status == CampaignStatus::Completed {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not completed in {within:?}: {:?}",
            stats.by_status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn recipients(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!("+9477{:07},", 1_000_000 + i))
        .collect()
}

/// Every recipient was accepted by the fake exactly once, and every message holds the SID the
/// fake gave it.
async fn assert_exactly_once(running: &Running, count: usize) {
    let accepted = running.twilio.messages();
    let twice: Vec<_> = accepted.iter().filter(|m| m.times_accepted > 1).collect();
    assert!(twice.is_empty(), "sent twice: {twice:?}");
    let to: HashSet<_> = accepted.iter().map(|m| m.to.clone()).collect();
    if accepted.len() != count {
        let stats = running.engine.stats(None).await.unwrap();
        panic!(
            "the fake accepted {} of {count} ({} recipients); fake counters {:?}; stored {:?}, \
             failures {:?}",
            accepted.len(),
            to.len(),
            running.twilio.counters(),
            stats.by_status,
            stats.failures_by_error_code
        );
    }
    assert_eq!(to.len(), count);
    let sids: HashSet<_> = accepted.iter().map(|m| m.sid.clone()).collect();
    let mut page = PageRequest::first(1_000);
    let mut stored = 0;
    loop {
        let found = running
            .engine
            .list_messages(&MessageQuery::default(), &page)
            .await
            .unwrap();
        for message in &found.items {
            let sid = message
                .provider_sid
                .as_ref()
                .expect("every message has its SID");
            assert!(sids.contains(sid), "{sid} is not a SID the fake gave");
            // `sending` as Twilio's answer said (queued), or further along for a send found
            // through Twilio's list after its answer was lost.
            assert!(
                matches!(
                    message.status,
                    MessageStatus::Sending | MessageStatus::Sent | MessageStatus::Delivered
                ),
                "{message:?}"
            );
            stored += 1;
        }
        match found.next_cursor {
            Some(cursor) => page.cursor = Some(cursor),
            None => break,
        }
    }
    assert_eq!(stored, count);
}

async fn stop(running: Running) {
    let _ = running.stop.send(());
    running.dispatching.await.unwrap();
    running.twilio.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10000_recipient_campaign_is_accepted_exactly_once_per_recipient() {
    let running = start(recipients(10_000), Faults::default()).await;
    let campaign = launch(&running.engine, Some(CONTENT_SID), json!({})).await;
    until_completed(&running.engine, &campaign, Duration::from_secs(120)).await;
    assert_exactly_once(&running, 10_000).await;
    stop(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_fifth_of_requests_refused_and_answers_lost_each_recipient_still_gets_one() {
    let faults = Faults {
        rate_limited_share: 0.1,
        server_error_share: 0.1,
        dropped_connection_share: 0.03,
        drop_after_accept: true,
        ..Faults::default()
    };
    let running = start(recipients(10_000), faults).await;
    let campaign = launch(&running.engine, Some(CONTENT_SID), json!({})).await;
    until_completed(&running.engine, &campaign, Duration::from_secs(180)).await;
    assert_exactly_once(&running, 10_000).await;
    let counters = running.twilio.counters();
    assert!(
        counters.requests > 10_000,
        "faults were injected: {counters:?}"
    );
    stop(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opted_out_quiet_hours_and_out_of_window_recipients_get_the_right_decisions() {
    let (opted_out, quiet, silent, reachable) = (
        "+94770000001",
        "+94770000002",
        "+94770000003",
        "+94770000004",
    );
    let users = vec![
        format!("{opted_out},UTC"),
        format!("{quiet},UTC"),
        format!("{silent},UTC"),
        // Twelve hours ahead of UTC: far from quiet hours set around the present UTC hour.
        format!("{reachable},Etc/GMT-12"),
    ];
    let running = start(users, Faults::default()).await;
    for (sid, phone, body) in [
        ("SMin1", opted_out, "STOP"),
        ("SMin2", quiet, "hello"),
        ("SMin4", reachable, "hello"),
    ] {
        let fields = BTreeMap::from([
            ("MessageSid".to_owned(), sid.to_owned()),
            ("From".to_owned(), format!("whatsapp:{phone}")),
            ("Body".to_owned(), body.to_owned()),
        ]);
        running.engine.receive_inbound(fields).await.unwrap();
    }
    let hour = Utc::now().hour();
    let quiet_hours = json!({
        "start": format!("{:02}:00", (hour + 23) % 24),
        "end": format!("{:02}:00", (hour + 2) % 24),
    });
    // A segment of everyone, so the opted-out user is a recipient too (a campaign without
    // topic or segment goes to opted-in users only).
    let everyone: messaging_core::domain::SegmentDraft = serde_json::from_value(json!({
        "name": "everyone", "rule": { "field": "phone", "op": "starts_with", "value": "+9477" },
    }))
    .unwrap();
    let everyone = running.engine.create_segment(everyone).await.unwrap();
    // No approved template: only users who wrote within 24 hours can be reached.
    let extra = json!({ "quiet_hours": quiet_hours, "segment_id": everyone.id.to_string() });
    let campaign = launch(&running.engine, None, extra).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let decided = loop {
        let page = running
            .engine
            .list_messages(&MessageQuery::default(), &PageRequest::first(10))
            .await
            .unwrap();
        if page
            .items
            .iter()
            .all(|m| m.status != MessageStatus::Pending)
            && running.twilio.messages().len() == 1
        {
            break page.items;
        }
        assert!(Instant::now() < deadline, "{:?}", page.items);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let step_of = |phone: &str| {
        let message = decided.iter().find(|m| m.user.as_str() == phone).unwrap();
        (message.status, message.id)
    };
    let expect = [
        (opted_out, MessageStatus::Skipped, "consent"),
        (quiet, MessageStatus::Deferred, "quiet_hours"),
        (silent, MessageStatus::Skipped, "whatsapp_window"),
    ];
    for (phone, status, step) in expect {
        let (found, id) = step_of(phone);
        assert_eq!(found, status, "{phone}");
        let message = running.engine.get_message(id).await.unwrap();
        assert_eq!(
            message.decisions[0].step, step,
            "{phone}: {:?}",
            message.decisions
        );
    }
    let sent = running.twilio.messages();
    assert_eq!(sent[0].to, format!("whatsapp:{reachable}"));
    assert_eq!(sent[0].body.as_deref(), Some("Hello from the campaign"));
    assert_eq!(
        running
            .engine
            .get_campaign(campaign.id)
            .await
            .unwrap()
            .status,
        CampaignStatus::Running,
        "a deferred message keeps the campaign running"
    );
    stop(running).await;
}
