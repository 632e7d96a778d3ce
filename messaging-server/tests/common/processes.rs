//! Real server processes on one database (a SQLite file or a PostgreSQL database, by URL): a
//! database with a launched campaign, server binaries started on it against
//! `examples/fake_twilio`, and polling with a deadline.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_twilio::FakeTwilio;
use messaging_core::Engine;
use messaging_core::domain::{CampaignDraft, CampaignId, TemplateDraft, TemplateId};
use messaging_core::ingest::{IngestSource, UserFileFormat};
use serde_json::json;

/// The URL of the SQLite file at `path`.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// A database with `recipients` users and a launched campaign, fanned out and unsent.
pub async fn prepare(database_url: &str, recipients: usize) -> CampaignId {
    let engine = Engine::open(database_url).await.unwrap();
    add_users(&engine, recipients).await;
    let template = template(&engine).await;
    let draft: CampaignDraft = serde_json::from_value(json!({
        "name": "crash", "template_id": template.to_string(),
    }))
    .unwrap();
    let campaign = engine.create_campaign(draft).await.unwrap();
    let (_, run) = engine.launch_campaign(campaign.id).await.unwrap();
    assert_eq!(run.unwrap().messages, recipients as u64);
    campaign.id
}

/// Stores `recipients` users, `+94772000000` on.
pub async fn add_users(engine: &Engine, recipients: usize) {
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
}

/// An approved template (a Content SID: it may go outside the 24-hour window).
pub async fn template(engine: &Engine) -> TemplateId {
    let template: TemplateDraft = serde_json::from_value(json!({
        "name": "t", "content": "Hello", "content_sid": "HX0123456789abcdef0123456789abcdef",
    }))
    .unwrap();
    engine.create_template(template).await.unwrap().id
}

/// The server binary on the database at `database_url`, sending to `twilio` at `rate`
/// messages a second.
pub fn serve(database_url: &str, twilio: &FakeTwilio, rate: u32) -> Child {
    Command::new(env!("CARGO_BIN_EXE_messaging-server"))
        .arg("serve")
        .env("DATABASE_URL", database_url)
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
