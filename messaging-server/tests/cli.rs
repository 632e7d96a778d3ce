//! Runs the real `messaging-server` binary on the sample files.

use std::path::PathBuf;
use std::process::Command;

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samples")
}

fn run(db: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_messaging-server"))
        .args(args)
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs")
}

#[test]
fn ingest_users_prints_the_data_quality_report() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let csv = samples().join("users.csv");
    let output = run(&db, &["ingest", "users", csv.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("rows read:   16"), "{text}");
    assert!(text.contains("inserted:    12"), "{text}");
    assert!(text.contains("line     15  phone"), "{text}");

    // Again, as JSON: everything is an update now, and --fail-on-invalid fails.
    let output = run(
        &db,
        &[
            "ingest",
            "users",
            csv.to_str().unwrap(),
            "--json",
            "--fail-on-invalid",
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["report"]["updated"], 12);
    assert_eq!(report["report"]["invalid"], 3);
}

#[test]
fn ingest_events_counts_duplicates_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let events = samples().join("events.jsonl");
    let first = run(
        &db,
        &["ingest", "events", events.to_str().unwrap(), "--json"],
    );
    let again = run(
        &db,
        &["ingest", "events", events.to_str().unwrap(), "--json"],
    );
    let first: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(first["report"]["inserted"], 6);
    let names = first["by_event_name"].as_array().unwrap();
    assert_eq!(names[0]["name"], "Dance Festival", "{first}");
    assert!(
        names[0]["note"]
            .as_str()
            .unwrap()
            .contains("no campaign listens for `Dance Festival`"),
        "{first}"
    );
    assert_eq!(again["report"]["inserted"], 0);
    assert_eq!(again["report"]["duplicates"], 7);
}

#[test]
fn unreadable_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let output = run(&db, &["ingest", "users", "/no/such/file.csv"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot open /no/such/file.csv"), "{stderr}");

    let output = run(&db, &["ingest", "users", "users.xlsx"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--format csv"), "{stderr}");
}

#[test]
fn standard_input_needs_a_format_and_the_error_shows_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let output = run(&db, &["ingest", "users", "-"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("messaging-server ingest users - --format csv < users.csv"),
        "{stderr}"
    );
}

#[test]
fn a_demo_that_cannot_run_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let nowhere = dir.path().join("no-samples");
    let output = run(
        &db,
        &["demo", "--no-serve", "--samples", nowhere.to_str().unwrap()],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("users.csv"), "{stderr}");
    assert!(!db.exists(), "the failed demo left a database behind");
}

#[test]
fn the_demo_shows_the_broken_rows_of_the_samples() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let output = run(
        &db,
        &[
            "demo",
            "--no-serve",
            "--samples",
            samples().to_str().unwrap(),
        ],
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("users.csv: 16 rows"), "{text}");
    assert!(text.contains("line     15  phone"), "{text}");
}

#[test]
fn a_public_url_that_is_not_a_url_stops_the_server_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let output = Command::new(env!("CARGO_BIN_EXE_messaging-server"))
        .arg("migrate")
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("PUBLIC_URL", "ftp//x")
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("PUBLIC_URL=\"ftp//x\""), "{stderr}");
}

#[test]
fn a_poll_interval_that_is_not_a_positive_number_stops_the_server_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    for bad in ["0", "abc"] {
        let output = Command::new(env!("CARGO_BIN_EXE_messaging-server"))
            .arg("migrate")
            .env("DATABASE_URL", format!("sqlite://{}", db.display()))
            .env("TWILIO_POLL_SECONDS", bad)
            .output()
            .expect("the binary runs");
        assert!(!output.status.success(), "{bad} is refused");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("TWILIO_POLL_SECONDS=\"{bad}\"")),
            "{bad}: {stderr}"
        );
    }
    assert!(!db.exists(), "nothing was opened");
}

#[tokio::test]
async fn a_cli_import_is_listed_with_its_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let csv = samples().join("users.csv");
    let output = run(&db, &["ingest", "users", csv.to_str().unwrap(), "--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    let engine = messaging_core::Engine::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let listed = engine
        .list_ingestions(&messaging_core::store::PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let kept = &listed.items[0];
    assert_eq!(
        kept.source,
        messaging_core::ingest::IngestSource::File("users.csv".into())
    );
    assert_eq!(answer["id"], kept.id.to_string());
    assert_eq!(kept.report.inserted, 12);
}

#[test]
fn a_database_url_that_cannot_be_opened_stops_the_server_with_its_name_and_why() {
    for (url, says) in [
        ("mysql://app@db/messaging", "expected sqlite://PATH"),
        (
            "postgres://postgres:secret@127.0.0.1:5432/no_such_database_here",
            "no_such_database_here",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_messaging-server"))
            .arg("migrate")
            .env("DATABASE_URL", url)
            .output()
            .expect("the binary runs");
        assert!(!output.status.success(), "{url} is refused");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{url}: {stderr}");
        assert!(
            !stderr.contains("secret"),
            "the password is never shown: {stderr}"
        );
    }
}

#[tokio::test]
async fn migrate_creates_the_schema_of_an_empty_postgresql_database() {
    let database = messaging_core::store::postgres::ScratchDatabase::create()
        .await
        .expect("a PostgreSQL server (see TEST_DATABASE_URL)");
    for _ in 0..2 {
        let output = Command::new(env!("CARGO_BIN_EXE_messaging-server"))
            .arg("migrate")
            .env("DATABASE_URL", database.url())
            .output()
            .expect("the binary runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
