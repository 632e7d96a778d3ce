//! Real server processes on one SQLite file: a database with a launched campaign, a server
//! binary started on it against `examples/fake_twilio`, and polling with a deadline.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_twilio::FakeTwilio;
use messaging_core::Engine;
use messaging_core::domain::{CampaignDraft, CampaignId, TemplateDraft};
use messaging_core::ingest::{IngestSource, UserFileFormat};
use serde_json::json;

/// A database with `recipients` users and a launched campaign, fanned out and unsent.
pub async fn prepare(db: &Path, recipients: usize) -> CampaignId {
    let engine = Engine::open(db.to_str().unwrap()).await.unwrap();
    let csv = std::iter::once("phone".to_owned())
        .chain((0..recipients).map(|i| format!("+9477{:07}", 2_000_000 + i)))
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
    assert_eq!(run.unwrap().messages, recipients as u64);
    campaign.id
}

/// The server binary on `db`, sending to `twilio` at `rate` messages a second.
pub fn serve(db: &Path, twilio: &FakeTwilio, rate: u32) -> Child {
    Command::new(env!("CARGO_BIN_EXE_messaging-server"))
        .arg("serve")
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("BIND", "127.0.0.1:0")
        .env("TWILIO_ACCOUNT_SID", twilio.account_sid())
        .env("TWILIO_AUTH_TOKEN", twilio.auth_token())
        .env("TWILIO_WHATSAPP_NUMBER", "whatsapp:+14155550100")
        .env("TWILIO_API_BASE", twilio.base_url())
        .env("SEND_RATE_PER_SECOND", rate.to_string())
        .env("SEND_LEASE_SECONDS", "20")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the server starts")
}

/// Polls `done` until it holds, failing the test after `within`.
pub async fn wait_until(what: &str, within: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen in {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
