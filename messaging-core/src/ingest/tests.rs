//! Property tests: whatever bytes arrive, ingestion never panics and its report adds up.
//! They drive the real pipeline (parser thread, channel, writer) with a writer that stores
//! nothing, so that thousands of cases run in seconds.

use chrono::Utc;
use proptest::prelude::*;

use super::{
    IngestError, IngestReport, Outcome, parse_events, parse_users_csv, parse_users_json, run,
};

#[derive(Clone, Copy, Debug)]
pub(super) enum Kind {
    Csv,
    Json,
    Events,
}

pub(super) fn ingest(kind: Kind, input: Vec<u8>) -> Result<IngestReport, IngestError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a test runtime");
    let input = std::io::Cursor::new(input);
    let write = |n: usize| async move { Ok(vec![Outcome::Inserted; n]) };
    runtime.block_on(async move {
        match kind {
            Kind::Csv => {
                run(
                    move |sink| parse_users_csv(input, sink),
                    |b: Vec<_>| write(b.len()),
                )
                .await
            }
            Kind::Json => {
                run(
                    move |sink| parse_users_json(input, sink),
                    |b: Vec<_>| write(b.len()),
                )
                .await
            }
            Kind::Events => {
                run(
                    move |sink| parse_events(input, Utc::now(), sink),
                    |b: Vec<_>| write(b.len()),
                )
                .await
            }
        }
    })
}

fn adds_up(report: &IngestReport) -> bool {
    report.total == report.inserted + report.updated + report.duplicates + report.invalid
        && report.errors.len() as u64 + report.errors_not_listed >= report.invalid
}

/// Text made mostly of the characters that give CSV and JSON their structure.
fn structured_text() -> impl Strategy<Value = String> {
    proptest::string::string_regex(r#"[\[\]{}",:\\\n\r +0-9a-zA-Z_.-]{0,300}"#).unwrap()
}

/// Plausible user rows with random damage.
fn csv_rows() -> impl Strategy<Value = String> {
    let cell = prop_oneof![
        Just(String::new()),
        "\\+[0-9]{6,16}",
        "[a-zA-Z ]{0,12}",
        Just("STARTED".to_owned()),
        Just("\"{\"\"city\"\": \"\"Colombo\"\"}\"".to_owned()),
        Just("Asia/Colombo".to_owned()),
        "\"[a-z,\n\"]{0,10}\"",
    ];
    let row = proptest::collection::vec(cell, 1..7).prop_map(|cells| cells.join(","));
    proptest::collection::vec(row, 0..30).prop_map(|rows| {
        format!(
            "phone,name,consent_state,attributes,timezone,extra\n{}",
            rows.join("\n")
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn csv_ingestion_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(report) = ingest(Kind::Csv, bytes) {
            prop_assert!(adds_up(&report));
        }
    }

    #[test]
    fn csv_ingestion_accounts_for_every_row(text in csv_rows()) {
        let report = ingest(Kind::Csv, text.into_bytes()).unwrap();
        prop_assert!(adds_up(&report), "{report:?}");
    }

    #[test]
    fn json_ingestion_never_panics(text in structured_text()) {
        if let Ok(report) = ingest(Kind::Json, text.into_bytes()) {
            prop_assert!(adds_up(&report), "{report:?}");
        }
    }

    #[test]
    fn json_ingestion_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(report) = ingest(Kind::Json, bytes) {
            prop_assert!(adds_up(&report));
        }
    }

    #[test]
    fn event_ingestion_never_panics(text in structured_text()) {
        if let Ok(report) = ingest(Kind::Events, text.into_bytes()) {
            prop_assert!(adds_up(&report), "{report:?}");
        }
    }
}

#[test]
fn json_objects_with_any_field_types_are_reported_not_fatal() {
    let input = br#"[{"phone": 14155552671}, {"phone": "+14155552671", "name": ["x"]},
                     {"phone": "+14155552672", "topics": [1]}, {"phone": "+14155552673", "attributes": "[]"}]"#;
    let report = ingest(Kind::Json, input.to_vec()).unwrap();
    assert_eq!((report.total, report.invalid), (4, 4));
    let fields: Vec<_> = report.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["phone", "name", "topics", "attributes"]);
}

#[test]
fn invalid_rows_beyond_the_list_limit_are_counted() {
    let mut csv = String::from("phone\n");
    for _ in 0..super::MAX_LISTED_ERRORS + 5 {
        csv.push_str("nope\n");
    }
    let report = ingest(Kind::Csv, csv.into_bytes()).unwrap();
    assert_eq!(report.invalid as usize, super::MAX_LISTED_ERRORS + 5);
    assert_eq!(report.errors.len(), super::MAX_LISTED_ERRORS);
    assert_eq!(report.errors_not_listed, 5);
}

#[test]
fn a_failing_write_stops_the_import_instead_of_hanging() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut csv = String::from("phone\n");
    for i in 0..(super::BATCH_SIZE * 3) {
        csv.push_str(&format!("+1415{:07}\n", i));
    }
    let input = std::io::Cursor::new(csv.into_bytes());
    let mut batches = 0;
    let result = runtime.block_on(run(
        move |sink| parse_users_csv(input, sink),
        |batch: Vec<_>| {
            batches += 1;
            let fail = batches == 2;
            async move {
                if fail {
                    Err(crate::store::StoreError::database("disk full"))
                } else {
                    Ok(vec![Outcome::Inserted; batch.len()])
                }
            }
        },
    ));
    let error = result.unwrap_err();
    let report = error.partial_report().expect("the first batch was written");
    assert_eq!(report.inserted as usize, super::BATCH_SIZE);
    assert!(error.to_string().contains("disk full"), "{error}");
}

#[test]
fn a_structural_error_keeps_the_report_of_rows_before_it() {
    let error = ingest(
        Kind::Json,
        br#"[{"phone": "+14155552671"}, {"phone": "+1415"#.to_vec(),
    )
    .unwrap_err();
    let report = error.partial_report().expect("one row was handled");
    assert_eq!((report.total, report.inserted), (1, 1));
    assert!(matches!(error, IngestError::Stopped { .. }));
}
