//! The real desktop app, driven headless with egui_kittest over a temporary database on the
//! sandbox provider: it starts its engine, imports the sample users and shows the report and
//! the count, and the dashboard shows the engine's totals.

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
