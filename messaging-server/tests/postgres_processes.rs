//! Several server processes on one PostgreSQL database, as an operator scales out: the real
//! binary three times, a scratch database on the local PostgreSQL server (`TEST_DATABASE_URL`
//! names another), and `examples/fake_twilio` over HTTP. Together they send each recipient
//! once, though one of them is killed; keep one sender ceiling; launch a scheduled campaign
//! once; and start together on an empty database.

#[path = "common/processes.rs"]
mod processes;

use std::collections::HashSet;
use std::process::Child;
use std::time::{Duration, Instant};

use chrono::Utc;
use fake_twilio::{FakeConfig, FakeTwilio};
use messaging_core::Engine;
use messaging_core::domain::{CampaignDraft, CampaignId, CampaignStatus};
use messaging_core::store::postgres::ScratchDatabase;
use processes::{add_users, prepare, serve, template, wait_until};
use serde_json::json;

/// The tests run one at a time: each starts three servers, and two cores shared by several
/// such tests would measure the machine rather than the servers.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Servers(Vec<Child>);

impl Servers {
    fn start(url: &str, twilio: &FakeTwilio, rate: u32, count: usize) -> Self {
        Self((0..count).map(|_| serve(url, twilio, rate)).collect())
    }

    fn kill(&mut self, pid: u32) {
        let child = self
            .0
            .iter_mut()
            .find(|child| child.id() == pid)
            .expect("the process is one of ours");
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }

    fn all_running(&mut self) -> bool {
        self.0
            .iter_mut()
            .all(|child| child.try_wait().unwrap().is_none())
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The process id in a dispatcher's label (`messaging-server (pid 4242, listening on …)`).
fn pid_of(label: &str) -> u32 {
    label
        .split("pid ")
        .nth(1)
        .and_then(|rest| rest.split([',', ')']).next())
        .and_then(|pid| pid.trim().parse().ok())
        .unwrap_or_else(|| panic!("no process id in {label:?}"))
}

async fn completed(engine: &Engine, campaign: CampaignId) -> bool {
    engine.get_campaign(campaign).await.unwrap().status == CampaignStatus::Completed
}

/// How many dispatchers claimed messages that went to the provider.
async fn dispatchers_that_sent(url: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .query_one(
            "SELECT COUNT(DISTINCT claimed_by) FROM messages WHERE provider_sid IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Every accepted message went to a different recipient, once, and there are `expected`.
fn assert_each_once(twilio: &FakeTwilio, expected: usize) {
    let accepted = twilio.messages();
    let twice: Vec<_> = accepted.iter().filter(|m| m.times_accepted > 1).collect();
    assert!(
        twice.is_empty(),
        "sent twice: {:?}",
        &twice[..twice.len().min(5)]
    );
    let to: HashSet<_> = accepted.iter().map(|m| m.to.as_str()).collect();
    assert_eq!(to.len(), accepted.len(), "a recipient got two messages");
    assert_eq!(to.len(), expected, "every recipient got the message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_send_each_recipient_once_though_one_is_killed() {
    const RECIPIENTS: usize = 50_000;
    let _turn = ONE_AT_A_TIME.lock().await;
    let database = ScratchDatabase::create().await.unwrap();
    let campaign = prepare(database.url(), RECIPIENTS).await;
    let twilio = FakeTwilio::start(FakeConfig::default()).await.unwrap();
    let engine = Engine::open(database.url()).await.unwrap();

    let mut servers = Servers::start(database.url(), &twilio, 5_000, 3);
    wait_until(
        "a third of the sends",
        Duration::from_secs(60),
        async || twilio.messages().len() >= RECIPIENTS / 3,
    )
    .await;
    // Kill the process that is sending, halfway, and do not restart it.
    let sender = engine
        .current_sender()
        .await
        .unwrap()
        .expect("a process sends");
    servers.kill(pid_of(&sender));
    let at_kill = twilio.messages().len();
    assert!(at_kill < RECIPIENTS, "killed too late to prove anything");
    let killed_at = Instant::now();
    wait_until(
        "the others' first sends",
        Duration::from_secs(30),
        async || twilio.messages().len() > at_kill + 10,
    )
    .await;
    assert!(
        killed_at.elapsed() < Duration::from_secs(25),
        "the survivors took {:?} to go on",
        killed_at.elapsed()
    );
    wait_until(
        "the campaign's completion",
        Duration::from_secs(180),
        async || completed(&engine, campaign).await,
    )
    .await;
    assert_each_once(&twilio, RECIPIENTS);
    let stats = engine.stats(Some(campaign)).await.unwrap();
    assert!(
        stats.failures_by_error_code.is_empty(),
        "{:?}",
        stats.by_status
    );
    drop(servers);
    twilio.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_keep_one_sender_ceiling() {
    const RATE: u32 = 300;
    let _turn = ONE_AT_A_TIME.lock().await;
    let database = ScratchDatabase::create().await.unwrap();
    prepare(database.url(), 12_000).await;
    let twilio = FakeTwilio::start(FakeConfig::default()).await.unwrap();
    let _servers = Servers::start(database.url(), &twilio, RATE, 3);
    wait_until("the first sends", Duration::from_secs(30), async || {
        twilio.messages().len() >= 200
    })
    .await;
    let (started, from) = (Instant::now(), twilio.messages().len());
    tokio::time::sleep(Duration::from_secs(20)).await;
    let rate = (twilio.messages().len() - from) as f64 / started.elapsed().as_secs_f64();
    assert!(
        rate <= f64::from(RATE) * 1.05,
        "three processes together sent {rate:.0} messages a second; the ceiling is {RATE}"
    );
    assert!(
        rate >= f64::from(RATE) * 0.8,
        "three processes together sent only {rate:.0} messages a second (ceiling {RATE})"
    );
    // They sent together, each its own claims, not one while the others waited.
    let senders = dispatchers_that_sent(database.url()).await;
    assert_eq!(senders, 3, "{senders} of the three processes sent");
    twilio.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_campaign_launches_once_across_processes() {
    const RECIPIENTS: usize = 500;
    let _turn = ONE_AT_A_TIME.lock().await;
    let database = ScratchDatabase::create().await.unwrap();
    let engine = Engine::open(database.url()).await.unwrap();
    add_users(&engine, RECIPIENTS).await;
    let template = template(&engine).await;
    let twilio = FakeTwilio::start(FakeConfig::default()).await.unwrap();
    let _servers = Servers::start(database.url(), &twilio, 1_000, 3);
    let start_at = Utc::now() + chrono::Duration::seconds(4);
    let draft: CampaignDraft = serde_json::from_value(json!({
        "name": "at four", "template_id": template.to_string(), "status": "scheduled",
        "schedule": { "start_at": start_at },
    }))
    .unwrap();
    let campaign = engine.create_campaign(draft).await.unwrap().id;
    let before_start = (start_at - Utc::now() - chrono::Duration::milliseconds(700))
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(before_start).await;
    assert!(twilio.messages().is_empty(), "sent before its start time");
    wait_until(
        "the scheduled campaign's completion",
        Duration::from_secs(60),
        async || completed(&engine, campaign).await,
    )
    .await;
    assert_each_once(&twilio, RECIPIENTS);
    twilio.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_starting_together_on_an_empty_database_all_serve() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let database = ScratchDatabase::create().await.unwrap();
    let twilio = FakeTwilio::start(FakeConfig::default()).await.unwrap();
    // Three processes create the schema of one empty database at the same moment.
    let mut servers = Servers::start(database.url(), &twilio, 100, 3);
    let engine = Engine::open(database.url())
        .await
        .expect("the database opens beside them");
    wait_until("a process sending", Duration::from_secs(30), async || {
        engine.current_sender().await.unwrap().is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(servers.all_running(), "a process stopped while starting");
    // And they work: a campaign sent from them reaches everyone once.
    let campaign = {
        add_users(&engine, 50).await;
        let template = template(&engine).await;
        let draft: CampaignDraft = serde_json::from_value(json!({
            "name": "now", "template_id": template.to_string(),
        }))
        .unwrap();
        let campaign = engine.create_campaign(draft).await.unwrap().id;
        engine.launch_campaign(campaign).await.unwrap();
        campaign
    };
    wait_until(
        "the campaign's completion",
        Duration::from_secs(60),
        async || completed(&engine, campaign).await,
    )
    .await;
    assert_each_once(&twilio, 50);
    twilio.shutdown().await;
}
