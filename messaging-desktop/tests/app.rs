//! The real desktop app, driven headless with egui_kittest over a temporary database on the
//! sandbox provider: it starts its engine, imports the sample users and shows the report and
//! the count, and the dashboard shows the engine's totals; the events panel imports the sample
//! events and records one typed in; the inbound panel opens a conversation, sends a reply and
//! shows the WhatsApp window of a user who never wrote.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use messaging_core::domain::{MessageStatus, PhoneNumber};
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

#[test]
fn the_inbound_panel_opens_a_conversation_sends_a_reply_and_shows_the_window() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut harness = started_app(&runtime, dir.path(), Panel::Inbound);
    harness.get_by_label("Nobody has written in yet.");

    let (panels, backend) = harness.state_mut().parts();
    panels.users.start_import(sample("users.csv"), backend);
    step_until(&mut harness, "the users import", |app| {
        app.panels().users.last_report().is_some() && app.idle()
    });

    // Amaya writes in, as Twilio's inbound webhook would bring it.
    let engine = harness.state_mut().parts().1.engine().unwrap().clone();
    let fields: BTreeMap<String, String> = [
        ("MessageSid", "SM00000000000000000000000000000001"),
        ("From", "whatsapp:+94771234501"),
        ("To", "whatsapp:+14155238886"),
        ("Body", "Hello! When does the festival start?"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let receipt = runtime.block_on(engine.receive_inbound(fields)).unwrap();
    assert!(receipt.reply.is_none(), "conversation, not a command");

    // The list reads itself again every few seconds.
    step_until(&mut harness, "Amaya's conversation in the list", |app| {
        app.panels().inbound.conversations() == 1
    });
    harness.get_by_label("Hello! When does the festival start?");
    harness.get_by_label("+94771234501").click();
    step_until(&mut harness, "Amaya's conversation", |app| {
        app.panels().inbound.conversation_loaded() && app.panels().inbound.conversation_len() == 1
    });
    harness.get_by_label("Hello! When does the festival start?");
    assert!(
        harness
            .query_by_label_contains("Outside WhatsApp's 24-hour window")
            .is_none(),
        "Amaya wrote just now: the window is open"
    );

    let reply = "It starts at 6 pm at Galle Face Green.";
    harness
        .get_by_label("Reply")
        .set_text_value_accesskit(reply);
    harness.run_steps(2);
    harness.get_by_label("Send reply").click();
    step_until(&mut harness, "the reply", |app| {
        let inbound = &app.panels().inbound;
        inbound.conversation_len() == 2 && !inbound.sending()
    });
    assert_eq!(harness.state().panels().inbound.last_error(), None);
    harness.run_steps(2);
    harness.get_by_label(reply);
    let statuses = MessageStatus::ALL.map(MessageStatus::as_str);
    assert!(
        statuses
            .iter()
            .any(|status| harness.query_all_by_label(status).next().is_some()),
        "the reply is shown with its status"
    );

    // Kasun never wrote: the window's text is shown, and free text to him is refused.
    harness.get_by_label("Back to conversations").click();
    harness.run_steps(2);
    harness
        .get_by_label("Open a conversation with")
        .set_text_value_accesskit("+94771234502");
    harness.run_steps(2);
    harness.get_by_label("Open").click();
    step_until(&mut harness, "Kasun's conversation", |app| {
        app.panels().inbound.conversation_loaded()
    });
    harness.run_steps(2);
    harness.get_by_label_contains(
        "Outside WhatsApp's 24-hour window: +94771234502 has never written in",
    );
    harness
        .get_by_label("Reply")
        .set_text_value_accesskit("Hello Kasun");
    harness.run_steps(2);
    harness.get_by_label("Send reply").click();
    step_until(&mut harness, "the refusal", |app| {
        app.panels().inbound.last_error().is_some() && !app.panels().inbound.sending()
    });
    let refusal = harness
        .state()
        .panels()
        .inbound
        .last_error()
        .unwrap()
        .to_owned();
    assert!(refusal.contains("send an approved template"), "{refusal}");
    harness.run_steps(2);
    harness.get_by_label(&refusal);
    assert_eq!(harness.state().panels().inbound.conversation_len(), 0);

    // A conversation can also be opened directly.
    let (panels, backend) = harness.state_mut().parts();
    panels
        .inbound
        .open(PhoneNumber::parse("+94771234501").unwrap(), backend);
    step_until(&mut harness, "Amaya's conversation again", |app| {
        app.panels().inbound.conversation_len() == 2
    });
}

#[test]
fn a_template_previews_as_typed_a_segment_counts_and_a_campaign_sends_to_completion() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut harness = started_app(&runtime, dir.path(), Panel::Templates);
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
