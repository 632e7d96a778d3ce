//! A server killed with SIGKILL in the middle of a campaign, then restarted, finishes the
//! campaign with no recipient sent twice and none left out: the real binary, a real SQLite
//! file, and `examples/fake_twilio` over HTTP.

#[path = "common/processes.rs"]
mod processes;

use std::collections::HashSet;
use std::time::Duration;

use fake_twilio::{FakeConfig, FakeTwilio, Faults};
use messaging_core::Engine;
use messaging_core::domain::CampaignStatus;
use processes::{prepare, serve, sqlite_url, wait_until};

const RECIPIENTS: usize = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_campaign_finishes_it_after_a_restart_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let campaign = prepare(&sqlite_url(&db), RECIPIENTS).await;
    let twilio = FakeTwilio::start(FakeConfig::default()).await.unwrap();
    // Slow answers keep many sends in flight at the moment of the kill.
    twilio
        .set_faults(Faults {
            latency_ms: 20,
            jitter_ms: 20,
            ..Faults::default()
        })
        .unwrap();

    let mut first = serve(&sqlite_url(&db), &twilio, 600);
    wait_until(
        "a third of the sends",
        Duration::from_secs(60),
        async || twilio.messages().len() >= RECIPIENTS / 3,
    )
    .await;
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let at_kill = twilio.messages().len();
    assert!(at_kill < RECIPIENTS, "killed too late to prove anything");

    let mut second = serve(&sqlite_url(&db), &twilio, 600);
    let engine = Engine::open(&sqlite_url(&db)).await.unwrap();
    wait_until(
        "the campaign's completion",
        Duration::from_secs(120),
        async || {
            let status = engine.get_campaign(campaign).await.unwrap().status;
            status == CampaignStatus::Completed
        },
    )
    .await;

    let accepted = twilio.messages();
    let twice: Vec<_> = accepted.iter().filter(|m| m.times_accepted > 1).collect();
    assert!(twice.is_empty(), "sent twice: {twice:?}");
    let to: HashSet<_> = accepted.iter().map(|m| m.to.as_str()).collect();
    assert_eq!(to.len(), RECIPIENTS, "every recipient got the message");
    let stats = engine.stats(Some(campaign)).await.unwrap();
    assert_eq!(stats.messages, RECIPIENTS as u64);
    assert!(
        stats.failures_by_error_code.is_empty(),
        "{:?}",
        stats.by_status
    );

    // SIGTERM: the server stops claiming, lets sends in flight finish, and exits cleanly.
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    unsafe { libc::kill(second.id() as i32, libc::SIGTERM) };
    let status = second.wait().unwrap();
    assert!(status.success(), "{status:?}");
    twilio.shutdown().await;
}
