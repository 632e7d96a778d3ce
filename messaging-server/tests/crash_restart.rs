//! A server killed with SIGKILL in the middle of a campaign, then restarted, finishes the
//! campaign with no recipient sent twice and none left out: the real binary, a real SQLite
//! file, and `examples/fake_twilio` over HTTP.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_twilio::{FakeConfig, FakeTwilio, Faults};
use messaging_core::Engine;
use messaging_core::domain::{CampaignDraft, CampaignId, CampaignStatus, TemplateDraft};
use messaging_core::ingest::{IngestSource, UserFileFormat};
use serde_json::json;

const RECIPIENTS: usize = 3_000;

/// A database with `RECIPIENTS` users and a launched campaign, fanned out and unsent.
async fn prepare(db: &Path) -> CampaignId {
    let engine = Engine::open(db.to_str().unwrap()).await.unwrap();
    let csv = std::iter::once("phone".to_owned())
        .chain((0..RECIPIENTS).map(|i| format!("+9477{:07}", 2_000_000 + i)))
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
    let template: TemplateDraft = serde_json::from_value(json!({
        "name": "t", "content": "Hello", "content_sid": "HX0123456789abcdef0123456789abcdef",
    }))
    .unwrap();
    let template = engine.create_template(template).await.unwrap();
    let draft: CampaignDraft = serde_json::from_value(json!({
        "name": "crash", "template_id": template.id.to_string(),
    }))
    .unwrap();
    let campaign = engine.create_campaign(draft).await.unwrap();
    let (_, run) = engine.launch_campaign(campaign.id).await.unwrap();
    assert_eq!(run.unwrap().messages, RECIPIENTS as u64);
    campaign.id
}

fn serve(db: &Path, twilio: &FakeTwilio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_messaging-server"))
        .arg("serve")
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("BIND", "127.0.0.1:0")
        .env("TWILIO_ACCOUNT_SID", twilio.account_sid())
        .env("TWILIO_AUTH_TOKEN", twilio.auth_token())
        .env("TWILIO_WHATSAPP_NUMBER", "whatsapp:+14155550100")
        .env("TWILIO_API_BASE", twilio.base_url())
        .env("SEND_RATE_PER_SECOND", "600")
        .env("SEND_LEASE_SECONDS", "20")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the server starts")
}

async fn wait_until(what: &str, within: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen in {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_campaign_finishes_it_after_a_restart_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let campaign = prepare(&db).await;
    let twilio = FakeTwilio::start(FakeConfig::default()).await.unwrap();
    // Slow answers keep many sends in flight at the moment of the kill.
    twilio
        .set_faults(Faults {
            latency_ms: 20,
            jitter_ms: 20,
            ..Faults::default()
        })
        .unwrap();

    let mut first = serve(&db, &twilio);
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

    let mut second = serve(&db, &twilio);
    let engine = Engine::open(db.to_str().unwrap()).await.unwrap();
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
