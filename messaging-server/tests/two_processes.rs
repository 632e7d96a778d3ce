//! Two server processes opened on one SQLite file (as a server and the desktop app may be):
//! only the holder of the database's sending lease sends, so together they keep one sender
//! ceiling and send each recipient once; when the holder is killed, the other takes over
//! within the lease's term and finishes the campaign. The real binary twice, a real SQLite
//! file, and `examples/fake_twilio` over HTTP.

#[path = "common/processes.rs"]
mod processes;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use fake_twilio::{FakeConfig, FakeTwilio};
use messaging_core::Engine;
use messaging_core::domain::CampaignStatus;
use processes::{prepare, serve, sqlite_url, wait_until};

const RECIPIENTS: usize = 2_400;
const RATE: u32 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_file_share_one_ceiling_and_the_survivor_finishes_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let campaign = prepare(&sqlite_url(&db), RECIPIENTS).await;
    let twilio = FakeTwilio::start(FakeConfig::default()).await.unwrap();

    let mut first = serve(&sqlite_url(&db), &twilio, RATE);
    wait_until(
        "the first process's sends",
        Duration::from_secs(30),
        async || twilio.messages().len() >= 100,
    )
    .await;
    // The second opens the same file while the first is sending.
    let mut second = serve(&sqlite_url(&db), &twilio, RATE);
    // Two senders that did not know of each other would go at twice the ceiling.
    let (started, from) = (Instant::now(), twilio.messages().len());
    wait_until("800 more sends", Duration::from_secs(30), async || {
        twilio.messages().len() >= from + 800
    })
    .await;
    let rate = (twilio.messages().len() - from) as f64 / started.elapsed().as_secs_f64();
    assert!(
        rate <= f64::from(RATE) * 1.15,
        "both processes together sent {rate:.0} messages a second; the ceiling is {RATE}"
    );

    // Kill the one that sends; the other takes over within the lease's term (15 s).
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let at_kill = twilio.messages().len();
    assert!(at_kill < RECIPIENTS, "killed too late to prove anything");
    let engine = Engine::open(&sqlite_url(&db)).await.unwrap();
    let killed_at = Instant::now();
    wait_until(
        "the survivor's first sends",
        Duration::from_secs(30),
        async || twilio.messages().len() > at_kill + 10,
    )
    .await;
    assert!(
        killed_at.elapsed() < Duration::from_secs(25),
        "the survivor took {:?} to go on",
        killed_at.elapsed()
    );
    wait_until(
        "the campaign's completion",
        Duration::from_secs(120),
        async || engine.get_campaign(campaign).await.unwrap().status == CampaignStatus::Completed,
    )
    .await;

    let accepted = twilio.messages();
    let twice: Vec<_> = accepted.iter().filter(|m| m.times_accepted > 1).collect();
    assert!(twice.is_empty(), "sent twice: {twice:?}");
    let to: HashSet<_> = accepted.iter().map(|m| m.to.as_str()).collect();
    assert_eq!(to.len(), RECIPIENTS, "every recipient got the message");
    let stats = engine.stats(Some(campaign)).await.unwrap();
    assert!(
        stats.failures_by_error_code.is_empty(),
        "{:?}",
        stats.by_status
    );
    second.kill().unwrap();
    second.wait().unwrap();
    twilio.shutdown().await;
}
