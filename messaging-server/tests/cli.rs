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
