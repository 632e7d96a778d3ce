//! The real desktop app, driven headless with egui_kittest over a temporary database on the
//! sandbox provider: it starts its engine, imports the sample users and shows the report and
//! the count, and the dashboard shows the engine's totals; the events panel imports the sample
//! events and records one typed in.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use messaging_desktop::app::DesktopApp;
use messaging_desktop::panels::Panel;
use messaging_desktop::panels::settings::DesktopSettings;

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../samples")
        .join(name)
}

/// Steps the app until `done` holds, failing after 30 s.
fn step_until(
    harness: &mut Harness<'_, DesktopApp>,
    what: &str,
    done: impl Fn(&DesktopApp) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(harness.state()) {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within 30 s"
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    harness.step();
}

#[test]
fn the_app_imports_the_sample_users_and_shows_the_report_and_the_count() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = DesktopSettings {
        database: dir.path().join("desktop.db").display().to_string(),
        ..DesktopSettings::default()
    };
    let handle = runtime.handle().clone();
    let mut harness = Harness::builder()
        .with_size([1180.0, 760.0])
        .build_eframe(move |_| DesktopApp::new(handle, settings, Panel::Users));
    step_until(&mut harness, "the engine's start", DesktopApp::idle);
    harness.get_by_label("Import users");
    harness.get_by_label_contains("0 users in all");

    let (panels, backend) = harness.state_mut().parts();
    panels.users.start_import(sample("users.csv"), backend);
    step_until(&mut harness, "the import", |app| {
        app.panels().users.last_report().is_some() && app.idle()
    });
    let report = harness
        .state()
        .panels()
        .users
        .last_report()
        .unwrap()
        .clone();
    assert!(report.inserted > 0, "{report:?}");
    assert!(report.invalid > 0, "the sample has broken rows: {report:?}");
    harness.get_by_label("Report of users.csv");
    for error in &report.errors {
        harness.get_by_label(&error.reason);
    }
    step_until(&mut harness, "the count", |app| app.idle());
    harness.run_steps(3);
    harness.get_by_label_contains(&format!("{} users in all", report.inserted));
    harness.get_by_label("Amaya Perera");

    harness.state_mut().show(Panel::Dashboard);
    harness.run_steps(2);
    step_until(&mut harness, "the dashboard's totals", |app| app.idle());
    harness.run_steps(2);
    harness.get_by_label("opted out");
    harness.get_by_label("delivery %");
}

/// The app on a fresh database in `dir`, showing `panel`, once its engine runs.
fn started_app(
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    panel: Panel,
) -> Harness<'static, DesktopApp> {
    let settings = DesktopSettings {
        database: dir.join("desktop.db").display().to_string(),
        ..DesktopSettings::default()
    };
    let handle = runtime.handle().clone();
    let mut harness = Harness::builder()
        .with_size([1180.0, 760.0])
        .build_eframe(move |_| DesktopApp::new(handle, settings, panel));
    step_until(&mut harness, "the engine's start", DesktopApp::idle);
    harness
}

#[test]
fn the_events_panel_imports_a_file_with_its_report_and_records_a_typed_event() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut harness = started_app(&runtime, dir.path(), Panel::Events);
    harness.get_by_label("Import events");

    let (panels, backend) = harness.state_mut().parts();
    panels.events.start_import(sample("events.jsonl"), backend);
    step_until(&mut harness, "the events import", |app| {
        app.panels().events.last_report().is_some() && app.idle()
    });
    let report = harness
        .state()
        .panels()
        .events
        .last_report()
        .unwrap()
        .clone();
    assert!(report.inserted > 0, "{report:?}");
    assert_eq!(report.duplicates, 1, "evt-1001 comes twice: {report:?}");
    assert!(
        report.invalid > 0,
        "the sample has a broken line: {report:?}"
    );
    harness.run_steps(2);
    harness.get_by_label("Report of events.jsonl");
    for error in &report.errors {
        harness.get_by_label(&error.reason);
    }
    // Nothing listens in a fresh database: each name says so.
    assert!(
        harness
            .query_all_by_label_contains("no campaign listens for `Concert Presale`")
            .next()
            .is_some()
    );
    // The recent events list was read again after the import.
    step_until(&mut harness, "the recent events", |app| app.idle());
    harness.get_by_label("+14155550104");

    // Every problem of a broken event is shown, each with its field.
    harness
        .get_by_label("Event (JSON)")
        .set_text_value_accesskit(r#"{"user": "12", "trigger_data": [1]}"#);
    harness.run_steps(2);
    harness.get_by_label("Record event").click();
    step_until(&mut harness, "the event's field errors", |app| {
        app.panels().events.field_errors().len() == 3
    });
    harness.get_by_label_contains("name: an event needs a name");
    harness.get_by_label_contains("user: ");
    harness.get_by_label_contains("trigger_data: expected a JSON object");

    harness.get_by_label("Event (JSON)").set_text_value_accesskit(
        r#"{"id": "evt-desk-1", "user": "+94771234502", "name": "order_paid", "data": {"total": 12}}"#,
    );
    harness.run_steps(2);
    harness.get_by_label("Record event").click();
    step_until(&mut harness, "the event's outcome", |app| {
        app.panels().events.last_outcome().is_some() && app.idle()
    });
    let outcome = harness
        .state()
        .panels()
        .events
        .last_outcome()
        .unwrap()
        .clone();
    assert!(!outcome.duplicate);
    assert!(outcome.runs.is_empty());
    harness.run_steps(3);
    harness.get_by_label("Recorded: order_paid");
    harness.get_by_label(&outcome.explanation().unwrap());
    // The recent list is read again after the event: it holds the new one.
    step_until(&mut harness, "the recent events again", |app| app.idle());
    harness.get_by_label("order_paid");
}
