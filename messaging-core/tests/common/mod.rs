//! Shared helpers for the integration tests: a real engine on a fresh database of the backend
//! `TEST_STORE` names (a SQLite file by default, or a scratch PostgreSQL database).

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use messaging_core::Engine;
use messaging_core::clock::ManualClock;
use messaging_core::domain::{
    AuditDecision, CampaignDraft, CampaignId, Message, MessageStatus, SendAs, TemplateDraft,
};
use messaging_core::ingest::{IngestReport, IngestSource, UserFileFormat};
use messaging_core::store::Disposition;
use messaging_core::store::postgres::{PgStore, ScratchDatabase};
use messaging_core::store::sqlite::SqliteStore;
use messaging_core::store::{MessageQuery, PageRequest, Store};
use serde_json::json;
use tempfile::TempDir;

/// An engine on its own temporary database, with a clock the test controls.
pub struct TestEngine {
    pub engine: Engine,
    /// The engine's store, through its port only, for tests that stage what a crash leaves
    /// behind.
    pub store: Arc<dyn Store>,
    /// The backend's name (`sqlite`), for assertion messages.
    pub backend: &'static str,
    pub clock: Arc<ManualClock>,
    pub dir: TempDir,
    /// The PostgreSQL database of this test, dropped with it (after the engine, whose
    /// connections it ends).
    pub database: Option<ScratchDatabase>,
}

pub fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

pub async fn engine() -> TestEngine {
    let dir = tempfile::tempdir().unwrap();
    let (backend, store, database) = test_store(&dir).await;
    let clock = Arc::new(ManualClock::new(start_time()));
    let engine = Engine::new(store.clone(), clock.clone());
    TestEngine {
        engine,
        store,
        backend,
        clock,
        dir,
        database,
    }
}

/// The store every engine test runs on: the backend `TEST_STORE` names (`sqlite`, the
/// default, or `postgres`: a scratch database on the server `TEST_DATABASE_URL` names, the
/// local one by default), on a fresh database. Engine tests go through the store port only,
/// so running them with another `TEST_STORE` runs the same behaviour against that backend.
async fn test_store(dir: &TempDir) -> (&'static str, Arc<dyn Store>, Option<ScratchDatabase>) {
    match std::env::var("TEST_STORE").as_deref().unwrap_or("sqlite") {
        "sqlite" => (
            "sqlite",
            Arc::new(SqliteStore::open(dir.path().join("test.db")).await.unwrap()),
            None,
        ),
        "postgres" => {
            let database = ScratchDatabase::create()
                .await
                .expect("a PostgreSQL server for TEST_STORE=postgres (see TEST_DATABASE_URL)");
            let store = PgStore::connect(database.url()).await.unwrap();
            ("postgres", Arc::new(store), Some(database))
        }
        other => {
            panic!("TEST_STORE={other:?} names no store this build has (sqlite, postgres)")
        }
    }
}

/// An engine on a fresh database of each backend this run covers (see [`engine`]), for tests
/// written as a loop over backends.
pub async fn backends() -> Vec<TestEngine> {
    vec![engine().await]
}

/// Imports users given as CSV `rows` under `header` (`phone`, `phone,timezone`…), as an
/// API upload would, and answers the report.
pub async fn import_csv_rows(
    engine: &Engine,
    header: &str,
    rows: impl IntoIterator<Item = String>,
) -> IngestReport {
    let csv = std::iter::once(header.to_owned())
        .chain(rows)
        .collect::<Vec<_>>()
        .join("\n");
    engine
        .ingest_users(
            std::io::Cursor::new(csv.into_bytes()),
            UserFileFormat::Csv,
            IngestSource::Api,
        )
        .await
        .unwrap()
        .report
}

/// The first `limit` messages, each read whole (its history and decisions).
pub async fn all_messages(engine: &Engine, limit: u32) -> Vec<Message> {
    let page = engine
        .list_messages(&MessageQuery::default(), &PageRequest::first(limit))
        .await
        .unwrap();
    let mut full = Vec::new();
    for message in page.items {
        full.push(engine.get_message(message.id).await.unwrap());
    }
    full
}

pub fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("samples")
        .join(name)
}

pub fn open_sample(name: &str) -> std::fs::File {
    std::fs::File::open(sample(name)).unwrap()
}

impl TestEngine {
    /// Imports the sample users file `name` (`users.csv`, `users.json`), as an API upload
    /// would, and answers its report.
    pub async fn import_sample_users(&self, name: &str) -> IngestReport {
        let format = UserFileFormat::from_path(std::path::Path::new(name))
            .expect("a sample named by its format");
        self.engine
            .ingest_users(open_sample(name), format, IngestSource::Api)
            .await
            .unwrap()
            .report
    }
}

/// A launched campaign to `recipients` users: that many pending messages.
pub async fn launched(t: &TestEngine, recipients: usize) -> CampaignId {
    import_csv_rows(
        &t.engine,
        "phone",
        (0..recipients).map(|i| format!("+9477{:07}", 3_000_000 + i)),
    )
    .await;
    let template = t
        .engine
        .create_template(TemplateDraft {
            name: "t".into(),
            content: "Hello".into(),
            content_sid: Some("HX0123456789abcdef0123456789abcdef".into()),
            ..TemplateDraft::default()
        })
        .await
        .unwrap();
    let draft: CampaignDraft =
        serde_json::from_value(json!({"name": "c", "template_id": template.id})).unwrap();
    let campaign = t.engine.create_campaign(draft).await.unwrap();
    t.engine.launch_campaign(campaign.id).await.unwrap();
    campaign.id
}

pub fn queue(at: chrono::DateTime<chrono::Utc>) -> Disposition {
    Disposition::Queue {
        sent_as: SendAs::ApprovedTemplate,
        decision: AuditDecision {
            step: "test".into(),
            outcome: MessageStatus::Queued,
            reason: "cleared".into(),
            at,
        },
    }
}
