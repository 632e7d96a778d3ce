//! Events: record one trigger event typed as JSON and see what it did (the campaign runs it
//! opened and the messages they wrote, or the engine's explanation of why it opened none),
//! import a JSONL file of events with progress, Cancel and the report per event name, and the
//! most recent events. The engine parses the event and decides duplicates and listeners; the
//! panel only shows its answers.

use std::path::PathBuf;

use eframe::egui::{self, RichText};
use messaging_core::domain::{FieldError, TriggerEvent};
use messaging_core::engine::{EventOutcome, EventsIngestion};
use messaging_core::ingest::{IngestReport, IngestSource, IngestionEnd};
use messaging_core::store::PageRequest;

use super::import::FileImport;
use super::users::report_ui;
use super::{Panels, count, describe, error_line, heading};
use crate::backend::{Backend, Update};

/// A user event, the box's starting text.
const USER_EXAMPLE: &str =
    r#"{"user": "+94771234501", "name": "cart_abandoned", "data": {"item": "dance shoes"}}"#;

/// An alert to a segment, in the seed's shape.
const ALERT_EXAMPLE: &str = r#"{"segment_rule": {"topic": "DANCE"}, "alert_name": "Dance Festival", "trigger_data": {"venue": "Galle Face Green"}}"#;

/// How many recent events are listed.
const RECENT: u32 = 50;

/// The events panel's state.
pub struct Events {
    text: String,
    posting: bool,
    /// What the engine found wrong with the event typed, every field.
    field_errors: Vec<FieldError>,
    outcome: Option<EventOutcome>,
    error: Option<String>,
    import: Option<FileImport>,
    last_import: Option<(String, EventsIngestion)>,
    recent: Vec<TriggerEvent>,
    /// The recent events are to be read (again).
    stale: bool,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            text: USER_EXAMPLE.to_owned(),
            posting: false,
            field_errors: Vec::new(),
            outcome: None,
            error: None,
            import: None,
            last_import: None,
            recent: Vec::new(),
            stale: true,
        }
    }
}

impl Events {
    /// Draws the panel.
    pub fn ui(&mut self, ui: &mut egui::Ui, backend: &mut Backend) {
        if self.stale && backend.engine().is_some() {
            self.stale = false;
            load_recent(backend);
        }
        heading(ui, "Events");
        error_line(ui, &self.error);
        self.record_ui(ui, backend);
        ui.add_space(8.0);
        self.import_ui(ui, backend);
        ui.add_space(8.0);
        self.recent_ui(ui);
    }

    fn record_ui(&mut self, ui: &mut egui::Ui, backend: &mut Backend) {
        egui::Frame::group(ui.style())
            .inner_margin(10)
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.strong("Record an event");
                    ui.label(
                        RichText::new("a user event (user, name, data) or an alert to a segment")
                            .weak(),
                    );
                });
                let label = ui.label("Event (JSON)");
                ui.add(
                    egui::TextEdit::multiline(&mut self.text)
                        .code_editor()
                        .desired_rows(4)
                        .desired_width(f32::INFINITY),
                )
                .labelled_by(label.id);
                ui.horizontal(|ui| {
                    let record = ui.add_enabled(!self.posting, egui::Button::new("Record event"));
                    if record.clicked() {
                        self.record(backend);
                    }
                    if ui.button("Example: user event").clicked() {
                        self.text = USER_EXAMPLE.to_owned();
                    }
                    if ui.button("Example: alert to a segment").clicked() {
                        self.text = ALERT_EXAMPLE.to_owned();
                    }
                    if self.posting {
                        ui.spinner();
                    }
                });
                for error in &self.field_errors {
                    ui.colored_label(ui.visuals().error_fg_color, error.to_string());
                }
                if let Some(outcome) = &self.outcome {
                    outcome_ui(ui, outcome);
                }
            });
    }

    /// Sends the box's text to the engine as one event.
    fn record(&mut self, backend: &mut Backend) {
        let value = match serde_json::from_str::<serde_json::Value>(&self.text) {
            Ok(value) => value,
            Err(error) => {
                self.outcome = None;
                self.field_errors = vec![FieldError::new("", format!("not valid JSON: {error}"))];
                return;
            }
        };
        self.posting = true;
        self.error = None;
        backend.run(move |engine| async move {
            let result = match TriggerEvent::from_json(value, engine.clock().now()) {
                Ok(event) => Ok(engine.record_event(event).await),
                Err(errors) => Err(errors),
            };
            Box::new(move |panels: &mut Panels| {
                let this = &mut panels.events;
                this.posting = false;
                this.field_errors.clear();
                this.outcome = None;
                match result {
                    Ok(Ok(outcome)) => {
                        this.outcome = Some(outcome);
                        this.stale = true;
                    }
                    Ok(Err(error)) => this.error = Some(describe(&error)),
                    Err(errors) => this.field_errors = errors,
                }
            }) as Update
        });
    }

    fn import_ui(&mut self, ui: &mut egui::Ui, backend: &mut Backend) {
        egui::Frame::group(ui.style())
            .inner_margin(10)
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.strong("Import events");
                    ui.label(
                        RichText::new("JSONL, one event a line; an id seen before is a duplicate")
                            .weak(),
                    );
                });
                if let Some(path) = FileImport::progress_or_pick(
                    self.import.as_ref(),
                    ui,
                    "Events",
                    &["jsonl", "ndjson", "json", "txt"],
                ) {
                    self.start_import(path, backend);
                }
                if let Some((file, ingestion)) = &self.last_import {
                    ingestion_ui(ui, file, ingestion);
                }
            });
    }

    /// Imports a JSONL file of events with progress; the report and what each event name
    /// triggered show when it is done. Cancelling keeps the events already recorded.
    pub fn start_import(&mut self, path: PathBuf, backend: &mut Backend) {
        let (import, reader) = match FileImport::open(&path) {
            Ok(opened) => opened,
            Err(error) => {
                self.error = Some(error);
                return;
            }
        };
        let name = import.name.clone();
        self.import = Some(import);
        self.error = None;
        backend.run(move |engine| async move {
            let result = engine
                .ingest_events(reader, IngestSource::File(name.clone()))
                .await;
            Box::new(move |panels: &mut Panels| {
                let this = &mut panels.events;
                this.import = None;
                match result {
                    Ok(ingestion) => this.last_import = Some((name, ingestion)),
                    Err(error) => this.error = Some(describe(&error)),
                }
                this.stale = true;
            }) as Update
        });
    }

    /// The report of the last import, if one finished.
    pub fn last_report(&self) -> Option<&IngestReport> {
        self.last_import
            .as_ref()
            .map(|(_, ingestion)| &ingestion.ingestion.report)
    }

    /// What the last event recorded from the box did, if one was.
    pub fn last_outcome(&self) -> Option<&EventOutcome> {
        self.outcome.as_ref()
    }

    /// What the engine found wrong with the last event typed, every field (empty when it was
    /// recorded).
    pub fn field_errors(&self) -> &[FieldError] {
        &self.field_errors
    }

    /// Whether an import is running.
    pub fn importing(&self) -> bool {
        self.import.is_some()
    }

    fn recent_ui(&self, ui: &mut egui::Ui) {
        ui.strong("Recent events");
        if self.recent.is_empty() {
            ui.weak("None yet.");
            return;
        }
        egui::Grid::new("recent events")
            .striped(true)
            .spacing([16.0, 4.0])
            .show(ui, |ui| {
                ui.strong("Name");
                ui.strong("User or rule");
                ui.strong("Received");
                ui.end_row();
                for event in &self.recent {
                    ui.label(&event.name);
                    ui.label(about(event));
                    ui.label(event.received_at.format("%Y-%m-%d %H:%M:%S").to_string());
                    ui.end_row();
                }
            });
    }
}

/// Who an event is about: its user, its segment rule as JSON, or everyone its campaigns target.
fn about(event: &TriggerEvent) -> String {
    match (&event.user, &event.segment_rule) {
        (Some(user), _) => user.as_str().to_owned(),
        (None, Some(rule)) => serde_json::to_string(rule).unwrap_or_default(),
        (None, None) => "—".to_owned(),
    }
}

fn load_recent(backend: &mut Backend) {
    backend.run(move |engine| async move {
        let page = PageRequest {
            limit: RECENT,
            ..PageRequest::default()
        };
        let events = engine.list_events(&page).await;
        Box::new(move |panels: &mut Panels| {
            let this = &mut panels.events;
            match events {
                Ok(page) => this.recent = page.items,
                Err(error) => this.error = Some(describe(&error)),
            }
        }) as Update
    });
}

/// One event's outcome: the runs it opened, or why it opened none.
fn outcome_ui(ui: &mut egui::Ui, outcome: &EventOutcome) {
    ui.add_space(6.0);
    let what = if outcome.duplicate {
        "Already recorded"
    } else {
        "Recorded"
    };
    ui.label(RichText::new(format!("{what}: {}", outcome.event.name)).strong());
    for run in &outcome.runs {
        ui.label(format!(
            "campaign \"{}\" ({}): run opened, {} messages",
            run.campaign.name,
            run.campaign.status.as_str(),
            count(run.messages)
        ));
    }
    if let Some(explanation) = outcome.explanation() {
        ui.label(explanation);
    }
}

/// An events import: the rows' report, then per event name what it triggered.
fn ingestion_ui(ui: &mut egui::Ui, file: &str, ingestion: &EventsIngestion) {
    report_ui(ui, file, &ingestion.ingestion.report);
    if let IngestionEnd::Stopped { reason } = &ingestion.ingestion.end {
        ui.colored_label(
            ui.visuals().error_fg_color,
            format!("stopped before the end: {reason}"),
        );
    }
    if ingestion.by_name.is_empty() {
        return;
    }
    ui.add_space(6.0);
    egui::Grid::new("events by name")
        .striped(true)
        .spacing([16.0, 4.0])
        .show(ui, |ui| {
            ui.strong("Event");
            ui.strong("Recorded");
            ui.strong("Duplicates");
            ui.strong("Triggered");
            ui.end_row();
            for name in &ingestion.by_name {
                ui.label(&name.name);
                ui.label(count(name.recorded));
                ui.label(count(name.duplicates));
                ui.vertical(|ui| {
                    for triggered in &name.triggered {
                        ui.label(format!(
                            "campaign \"{}\": {} runs, {} messages",
                            triggered.campaign.name,
                            count(triggered.runs),
                            count(triggered.messages)
                        ));
                    }
                    if let Some(explanation) = name.explanation() {
                        ui.weak(explanation);
                    }
                });
                ui.end_row();
            }
        });
    if ingestion.events_of_names_not_listed > 0 {
        ui.weak(format!(
            "… and {} events of further names",
            count(ingestion.events_of_names_not_listed)
        ));
    }
}
