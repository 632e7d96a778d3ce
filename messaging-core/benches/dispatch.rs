//! Dispatch benchmark: how fast the dispatcher empties the outbox into Twilio's Messages API,
//! against `examples/fake_twilio` on loopback, with a bare HTTP loop against the same fake in
//! the same run as the ceiling; and how close the rate limiter holds the configured rates.
//!
//! ```text
//! cargo bench -p messaging-core --bench dispatch                      # 20,000 messages
//! BENCH_MESSAGES=5000 cargo bench -p messaging-core --bench dispatch
//! ```
//!
//! 1. **ceiling**: `reqwest` posts N messages to the fake, 128 at a time, the same form fields
//!    the Twilio adapter sends: HTTP and the fake only;
//! 2. **engine**: a campaign to N users is fanned out (not timed), then a dispatcher with the
//!    limits lifted sends it: claim, policy decisions, marks, provider calls, outcomes, all
//!    durable in SQLite; timed from start until the campaign has completed;
//! 3. **rate limiter**: the sender ceiling at 250/s and a campaign limit of 50/s, each on its
//!    own campaign: achieved rate (messages over the time from the first to the last send)
//!    against the configured one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_twilio::{FakeConfig, FakeTwilio};
use messaging_core::Engine;
use messaging_core::domain::{
    CampaignDraft, CampaignId, CampaignStatus, PhoneNumber, TemplateDraft,
};
use messaging_core::engine::DispatchConfig;
use messaging_core::ingest::{IngestSource, UserFileFormat};
use messaging_core::provider::{Sender, TwilioConfig, TwilioProvider};
use serde_json::json;
use tokio::sync::{Semaphore, oneshot};

const CONTENT_SID: &str = "HX0123456789abcdef0123456789abcdef";
const SENDER: &str = "+14155550100";
const IN_FLIGHT: usize = 128;

fn phone(i: usize) -> String {
    format!("+9477{:07}", 1_000_000 + i)
}

/// The bare loop: N form posts, `IN_FLIGHT` at a time, on one pooled client.
async fn ceiling(twilio: &FakeTwilio, n: usize) -> Duration {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()
        .unwrap();
    let url = twilio.messages_url();
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = gate.clone().acquire_owned().await.unwrap();
        let (client, url) = (client.clone(), url.clone());
        let (user, password) = (
            twilio.account_sid().to_owned(),
            twilio.auth_token().to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            let form = [
                ("To", format!("whatsapp:{}", phone(i))),
                ("From", format!("whatsapp:{SENDER}")),
                ("ContentSid", CONTENT_SID.to_owned()),
                ("ContentVariables", r#"{"1":"Hello"}"#.to_owned()),
            ];
            let answer = client
                .post(&url)
                .basic_auth(user, Some(password))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert!(answer.status().is_success(), "{}", answer.status());
            answer.bytes().await.unwrap();
            drop(permit);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

async fn engine_with_users(dir: &std::path::Path, users: std::ops::Range<usize>) -> Engine {
    let engine = Engine::open(dir.join("bench.db").to_str().unwrap())
        .await
        .unwrap();
    let csv = std::iter::once("phone".to_owned())
        .chain(users.map(phone))
        .collect::<Vec<_>>()
        .join("\n");
    engine
        .ingest_users(
            std::io::Cursor::new(csv.into_bytes()),
            UserFileFormat::Csv,
            IngestSource::Api,
        )
        .await
        .unwrap();
    engine
}

/// Launches a campaign to the users matching `rule` (fan-out happens here, untimed).
async fn launch(engine: &Engine, rule: serde_json::Value, rate: Option<u32>) -> CampaignId {
    let template: TemplateDraft = serde_json::from_value(json!({
        "name": "bench", "content": "Hello", "content_sid": CONTENT_SID,
        "content_variables": { "1": "Hello" },
    }))
    .unwrap();
    let template = engine.create_template(template).await.unwrap();
    let segment = serde_json::from_value(json!({ "name": "bench", "rule": rule })).unwrap();
    let segment = engine.create_segment(segment).await.unwrap();
    let draft: CampaignDraft = serde_json::from_value(json!({
        "name": "bench", "template_id": template.id.to_string(),
        "segment_id": segment.id.to_string(), "rate_limit_per_second": rate,
    }))
    .unwrap();
    let campaign = engine.create_campaign(draft).await.unwrap();
    engine.launch_campaign(campaign.id).await.unwrap();
    campaign.id
}

fn provider(twilio: &FakeTwilio) -> Arc<TwilioProvider> {
    let mut settings = TwilioConfig::new(
        twilio.account_sid(),
        twilio.auth_token(),
        Sender::Number(PhoneNumber::parse(SENDER).unwrap()),
    );
    settings.api_base = twilio.base_url();
    settings.max_concurrent_requests = IN_FLIGHT;
    Arc::new(TwilioProvider::new(settings).unwrap())
}

/// Runs a dispatcher until every campaign in `campaigns` has completed; answers how long.
async fn dispatch_until_done(
    engine: &Engine,
    twilio: &FakeTwilio,
    rate: f64,
    campaigns: &[CampaignId],
) -> Duration {
    let config = DispatchConfig {
        send_rate_per_second: rate,
        max_in_flight: IN_FLIGHT,
        idle_wait: Duration::from_millis(5),
        ..DispatchConfig::default()
    };
    let dispatcher = engine.dispatcher(provider(twilio), config);
    let (stop, stopped) = oneshot::channel::<()>();
    let started = Instant::now();
    let running = tokio::spawn(dispatcher.run(async {
        let _ = stopped.await;
    }));
    loop {
        let mut done = true;
        for id in campaigns {
            done &= engine.get_campaign(*id).await.unwrap().status == CampaignStatus::Completed;
        }
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    let _ = stop.send(());
    running.await.unwrap();
    elapsed
}

/// Sends a campaign of `count` messages with the sender at `sender`/s and the campaign at
/// `campaign`/s, watching the fake; answers the achieved rate: the messages after the first
/// over the time from the first arrival to the last.
async fn measure_rate(
    twilio: &FakeTwilio,
    count: usize,
    sender: f64,
    campaign: Option<u32>,
) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_users(dir.path(), 0..count).await;
    let id = launch(
        &engine,
        json!({ "field": "phone", "op": "starts_with", "value": "+9477" }),
        campaign,
    )
    .await;
    let watch = async {
        let mut seen = std::collections::HashSet::new();
        let mut arrivals = Vec::with_capacity(count);
        while seen.len() < count {
            for message in twilio.messages() {
                if seen.insert(message.sid) {
                    arrivals.push(Instant::now());
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        arrivals
    };
    let ids = [id];
    let (_, arrivals) = tokio::join!(dispatch_until_done(&engine, twilio, sender, &ids), watch);
    let span = arrivals[arrivals.len() - 1].duration_since(arrivals[0]);
    (count - 1) as f64 / span.as_secs_f64()
}

fn main() {
    messaging_core::memory::tune_allocator();
    let n: usize = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let twilio = FakeTwilio::start(FakeConfig::default()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();

        let bare = ceiling(&twilio, n).await;
        let bare_rate = n as f64 / bare.as_secs_f64();
        println!(
            "ceiling   bare reqwest loop, {n} posts, {IN_FLIGHT} in flight: {:>6.2} s  {bare_rate:>8.0} msgs/s",
            bare.as_secs_f64()
        );
        twilio.reset();

        let engine = engine_with_users(dir.path(), 0..n).await;
        let all = launch(&engine, json!({ "field": "phone", "op": "starts_with", "value": "+9477" }), None).await;
        let took = dispatch_until_done(&engine, &twilio, 1_000_000.0, &[all]).await;
        let rate = n as f64 / took.as_secs_f64();
        let accepted = twilio.messages();
        assert_eq!(accepted.len(), n);
        assert!(accepted.iter().all(|m| m.times_accepted == 1));
        println!(
            "engine    dispatcher, limits lifted, {n} messages:        {:>6.2} s  {rate:>8.0} msgs/s  ({:.0} % of ceiling)",
            took.as_secs_f64(),
            100.0 * rate / bare_rate
        );
        twilio.reset();

        for (count, sender, campaign) in [(500, 250.0, None), (150, 1_000.0, Some(50))] {
            let achieved = measure_rate(&twilio, count, sender, campaign).await;
            let (what, configured) = match campaign {
                None => (format!("sender ceiling {sender}/s"), sender),
                Some(rate) => (format!("campaign limit {rate}/s"), f64::from(rate)),
            };
            println!(
                "rate      {what:<24} {count} messages: achieved {achieved:>7.1} msgs/s ({:+.1} %)",
                100.0 * (achieved / configured - 1.0)
            );
            twilio.reset();
        }
        twilio.shutdown().await;
    });
}
