//! Shared helpers for the integration tests: a real engine on a fresh SQLite file.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use messaging_core::Engine;
use messaging_core::clock::ManualClock;
use messaging_core::ingest::{IngestReport, IngestSource, UserFileFormat};
use messaging_core::store::Store;
use messaging_core::store::sqlite::SqliteStore;
use tempfile::TempDir;

/// An engine on its own temporary database, with a clock the test controls.
pub struct TestEngine {
    pub engine: Engine,
    /// The engine's store, for tests that stage what a crash leaves behind.
    pub store: Arc<SqliteStore>,
    pub clock: Arc<ManualClock>,
    pub dir: TempDir,
}

pub fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

pub async fn engine() -> TestEngine {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("test.db")).await.unwrap());
    let clock = Arc::new(ManualClock::new(start_time()));
    let engine = Engine::new(store.clone(), clock.clone());
    TestEngine {
        engine,
        store,
        clock,
        dir,
    }
}

/// An engine over one storage backend, for behaviour every backend must share.
pub struct BackendEngine {
    /// The backend's name, for assertion messages.
    pub name: &'static str,
    pub engine: Engine,
    /// The store behind the engine, through its port only.
    pub store: Arc<dyn Store>,
    pub clock: Arc<ManualClock>,
    _dir: TempDir,
}

/// An engine on a fresh database of every backend the store suite runs against: SQLite on a
/// temporary file. (A PostgreSQL adapter joins this list with a fresh database per test.)
pub async fn backends() -> Vec<BackendEngine> {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("test.db")).await.unwrap());
    let clock = Arc::new(ManualClock::new(start_time()));
    vec![BackendEngine {
        name: "sqlite",
        engine: Engine::new(store.clone(), clock.clone()),
        store,
        clock,
        _dir: dir,
    }]
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
