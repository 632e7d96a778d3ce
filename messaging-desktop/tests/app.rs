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

#[test]
fn a_template_previews_as_typed_a_segment_counts_and_a_campaign_sends_to_completion() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = DesktopSettings {
        database: dir.path().join("desktop.db").display().to_string(),
        ..DesktopSettings::default()
    };
    let handle = runtime.handle().clone();
    let mut harness = Harness::builder()
        .with_size([1180.0, 760.0])
        .build_eframe(move |_| DesktopApp::new(handle, settings, Panel::Templates));
    step_until(&mut harness, "the engine's start", DesktopApp::idle);
    let (panels, backend) = harness.state_mut().parts();
    panels.users.start_import(sample("users.csv"), backend);
    step_until(&mut harness, "the import", |app| {
        app.panels().users.last_report().is_some() && app.idle()
    });

    // A template, previewed for the first user as its text changes.
    let (panels, backend) = harness.state_mut().parts();
    panels.templates.create(backend);
    step_until(&mut harness, "the first preview", |app| {
        app.panels().templates.preview().is_some()
    });
    harness
        .state_mut()
        .parts()
        .0
        .templates
        .set_content("Dear {{ name }}, the festival is on!");
    step_until(&mut harness, "the preview of the new text", |app| {
        app.panels()
            .templates
            .preview()
            .is_some_and(|p| p.starts_with("Dear ") && p.ends_with("the festival is on!"))
    });
    let preview = harness
        .state()
        .panels()
        .templates
        .preview()
        .unwrap()
        .to_owned();
    harness.get_by_label(&preview);

    // A segment counted as it is written.
    harness.state_mut().show(Panel::Segments);
    harness
        .state_mut()
        .parts()
        .0
        .segments
        .new_segment(serde_json::json!({"topic": "DANCE"}));
    step_until(&mut harness, "the segment's count", |app| {
        app.panels().segments.count().is_some()
    });
    let dancers = harness.state().panels().segments.count().unwrap();
    assert!(dancers > 0);
    harness.get_by_label(&format!("{dancers} users match"));

    // A campaign to the dancers, launched on the sandbox and watched to 100 %.
    harness.state_mut().show(Panel::Campaigns);
    step_until(&mut harness, "the campaign form's templates", |app| {
        !app.panels().campaigns.templates().is_empty()
    });
    let (panels, backend) = harness.state_mut().parts();
    let template = panels.campaigns.templates()[0].clone();
    panels
        .campaigns
        .new_campaign("Festival", Some(&template), "DANCE");
    panels.campaigns.submit(backend);
    step_until(&mut harness, "the campaign's page", |app| {
        app.panels().campaigns.open_campaign().is_some()
    });
    harness.get_by_label("Launch");
    let (panels, backend) = harness.state_mut().parts();
    panels
        .campaigns
        .command(messaging_core::domain::CampaignCommand::Launch, backend);
    step_until(&mut harness, "the campaign's completion", |app| {
        app.panels()
            .campaigns
            .open_campaign()
            .is_some_and(|(campaign, stats)| {
                campaign.status == messaging_core::domain::CampaignStatus::Completed
                    && stats.is_some_and(|s| s.messages > 0)
            })
    });
    harness.run_steps(2);
    let (_, stats) = harness.state().panels().campaigns.open_campaign().unwrap();
    let total = stats.unwrap().messages;
    harness.get_by_label_contains(&format!("{total} of {total} messages finished (100 %)"));
}
