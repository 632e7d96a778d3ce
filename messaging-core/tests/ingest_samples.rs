//! Ingests the sample files through the engine and checks the reports and the stored rows.

mod common;

use common::{engine, open_sample};
use messaging_core::domain::{Consent, PhoneNumber, Topic};
use messaging_core::ingest::{IngestReport, IngestSource, UserFileFormat};
use messaging_core::store::{PageRequest, UserQuery};
use serde_json::json;

fn phone(text: &str) -> PhoneNumber {
    PhoneNumber::parse(text).unwrap()
}

fn counts(report: &IngestReport) -> [u64; 5] {
    [
        report.total,
        report.inserted,
        report.updated,
        report.duplicates,
        report.invalid,
    ]
}

#[tokio::test]
async fn users_csv_sample_gives_a_correct_report_and_rows() {
    let t = engine().await;
    let report = t.import_sample_users("users.csv").await;
    assert_eq!(counts(&report), [16, 12, 0, 1, 3], "{report:#?}");
    let errors: Vec<_> = report
        .errors
        .iter()
        .map(|e| (e.line, e.field.as_str()))
        .collect();
    assert_eq!(
        errors,
        [
            (15, "phone"),
            (16, "consent_state"),
            (17, "attributes"),
            (17, "timezone")
        ]
    );
    assert!(report.errors[0].reason.contains("must start with '+'"));

    let amaya = t.engine.get_user(&phone("+94771234501")).await.unwrap();
    assert_eq!(amaya.name.as_deref(), Some("Amaya Perera"));
    assert_eq!(amaya.consent_state, Consent::OptIn);
    assert_eq!(amaya.timezone.unwrap().name(), "Asia/Colombo");
    // The duplicate row later in the file merged its attribute in.
    assert_eq!(
        serde_json::Value::Object(amaya.attributes),
        json!({"city": "Colombo", "age": 29, "interests": ["dance", "music"],
               "plan": "gold", "newsletter": true})
    );
    assert_eq!(
        amaya.topics,
        vec![
            Topic::parse("DANCE").unwrap(),
            Topic::parse("MUSIC").unwrap()
        ]
    );

    // Decorated numbers were normalised, quoted commas kept, STOPPED mapped.
    let jordan = t.engine.get_user(&phone("+14155550104")).await.unwrap();
    assert_eq!(jordan.name.as_deref(), Some("Jordan Lee, Jr."));
    let nimali = t.engine.get_user(&phone("+94771234503")).await.unwrap();
    assert_eq!(nimali.consent_state, Consent::OptOut);
    assert!(t.engine.get_user(&phone("+94771234514")).await.is_err());
}

#[tokio::test]
async fn reingesting_merges_instead_of_duplicating() {
    let t = engine().await;
    let first = t.import_sample_users("users.csv").await;
    let again = t.import_sample_users("users.csv").await;
    assert_eq!(counts(&again), [16, 0, 12, 1, 3]);
    assert_eq!(again.errors, first.errors);

    let json = t.import_sample_users("users.json").await;
    assert_eq!(counts(&json), [6, 4, 1, 0, 1], "{json:#?}");
    assert_eq!(
        (json.errors[0].line, json.errors[0].field.as_str()),
        (7, "phone")
    );

    // Kasun was in the CSV; the JSON file merged new attributes key by key.
    let kasun = t.engine.get_user(&phone("+94771234502")).await.unwrap();
    assert_eq!(
        serde_json::Value::Object(kasun.attributes),
        json!({"city": "Colombo", "age": 41, "plan": "silver", "loyalty_points": 1200})
    );
    assert_eq!(
        kasun.locale.as_deref(),
        Some("si"),
        "fields absent from the JSON are kept"
    );

    let all = t
        .engine
        .list_users(&UserQuery::default(), &PageRequest::first(1000))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 16);
}

#[tokio::test]
async fn events_sample_is_recorded_once() {
    let t = engine().await;
    let report = t
        .engine
        .ingest_events(open_sample("events.jsonl"), IngestSource::Api)
        .await
        .unwrap()
        .ingestion
        .report;
    assert_eq!(counts(&report), [8, 6, 0, 1, 1], "{report:#?}");
    assert_eq!(
        (report.errors[0].line, report.errors[0].field.as_str()),
        (7, "trigger_data")
    );

    let again = t
        .engine
        .ingest_events(open_sample("events.jsonl"), IngestSource::Api)
        .await
        .unwrap()
        .ingestion
        .report;
    assert_eq!(
        counts(&again),
        [8, 0, 0, 7, 1],
        "re-ingesting records nothing twice"
    );

    let events = t
        .engine
        .list_events(&PageRequest::first(100))
        .await
        .unwrap();
    assert_eq!(events.items.len(), 6);
    let festival = events
        .items
        .iter()
        .find(|e| e.external_id.as_deref() == Some("evt-1001"))
        .unwrap();
    assert_eq!(festival.name, "Dance Festival");
    assert_eq!(festival.data["venue"], "Galle Face Green");
    assert!(festival.segment_rule.is_some());
}

#[tokio::test]
async fn csv_with_bom_quotes_and_newlines_in_fields() {
    let t = engine().await;
    let csv = "\u{feff}Phone,Name,Notes\r\n+94771234501,\"Perera, Amaya\",\"line one\nline two\"\r\n+94771234502,Kasun,\"said \"\"hi\"\"\"\r\nbad,Row,x\r\n";
    let report = t
        .engine
        .ingest_users(
            std::io::Cursor::new(csv.as_bytes().to_vec()),
            UserFileFormat::Csv,
            IngestSource::Api,
        )
        .await
        .unwrap()
        .report;
    assert_eq!(counts(&report), [3, 2, 0, 0, 1]);
    // The second record started on line 3 although the first spanned two lines: it is line 4.
    assert_eq!(report.errors[0].line, 5);
    let amaya = t.engine.get_user(&phone("+94771234501")).await.unwrap();
    assert_eq!(amaya.name.as_deref(), Some("Perera, Amaya"));
    assert_eq!(amaya.attributes["Notes"], "line one\nline two");
    let kasun = t.engine.get_user(&phone("+94771234502")).await.unwrap();
    assert_eq!(kasun.attributes["Notes"], "said \"hi\"");
}

#[tokio::test]
async fn a_file_without_a_phone_column_is_refused_with_its_columns() {
    let t = engine().await;
    let error = t
        .engine
        .ingest_users(
            std::io::Cursor::new(b"name,city\nAnn,Colombo\n".to_vec()),
            UserFileFormat::Csv,
            IngestSource::Api,
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("found: name, city"), "{error}");
}

#[tokio::test]
async fn a_bad_row_never_loses_rows_stored_before() {
    let t = engine().await;
    t.import_sample_users("users.csv").await;
    // A structurally broken JSON file stops at its damage; what was stored stays.
    let broken = b"[{\"phone\": \"+94771234501\", \"name\": \"Renamed\"}, {\"phone\": ".to_vec();
    let result = t
        .engine
        .ingest_users(
            std::io::Cursor::new(broken),
            UserFileFormat::Json,
            IngestSource::Api,
        )
        .await;
    assert!(result.is_err());
    let users = t
        .engine
        .list_users(&UserQuery::default(), &PageRequest::first(1000))
        .await
        .unwrap();
    assert_eq!(users.items.len(), 12);
}
