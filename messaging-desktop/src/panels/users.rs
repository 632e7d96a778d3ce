//! Users: a table over every user that stays smooth with a million of them (only the rows in
//! view are drawn, and they are read from the engine a hundred at a time as they come into
//! view), search and filters, an import through a native file dialog with progress, cancel and
//! the data-quality report, and one user's details and history.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use eframe::egui::{self, RichText};
use egui_extras::{Column, TableBuilder};
use messaging_core::domain::{Consent, InboundMessage, Message, PhoneNumber, Topic, User};
use messaging_core::ingest::{IngestReport, IngestSource, UserFileFormat};
use messaging_core::store::{MessageQuery, PageRequest, UserQuery};

use super::import::FileImport;
use super::{Panels, count, describe, error_line, heading, status_label};
use crate::backend::{Backend, Update};

const BLOCK: u64 = 100;

/// The users panel's state.
#[derive(Default)]
pub struct Users {
    search: String,
    consent: Option<Consent>,
    topic: String,
    /// Bumped when the filters change, so answers to an older query are dropped.
    generation: u64,
    total: Option<u64>,
    blocks: HashMap<u64, Vec<User>>,
    loading: HashSet<u64>,
    /// The first block that came back short: the end of the list.
    end: Option<u64>,
    topics: Vec<String>,
    error: Option<String>,
    import: Option<FileImport>,
    last_report: Option<(String, IngestReport)>,
    selected: Option<UserDetail>,
    /// The user shown changed: read them again.
    reload_selected: bool,
}

/// One user's page.
struct UserDetail {
    user: User,
    name: String,
    timezone: String,
    consent: Consent,
    attributes: String,
    new_topic: String,
    messages: Vec<Message>,
    inbound: Vec<InboundMessage>,
    error: Option<String>,
    saved: bool,
}

impl Users {
    fn query(&self) -> UserQuery {
        UserQuery {
            q: Some(self.search.trim().to_owned()).filter(|q| !q.is_empty()),
            consent: self.consent,
            topic: Topic::parse(self.topic.trim()).ok(),
        }
    }

    fn filtered(&self) -> bool {
        !self.search.trim().is_empty() || self.consent.is_some() || !self.topic.trim().is_empty()
    }

    /// Forgets what was loaded; rows are read again as they come into view.
    pub fn reload(&mut self) {
        self.generation += 1;
        self.blocks.clear();
        self.loading.clear();
        self.end = None;
        self.total = None;
    }

    fn load_total(&mut self, backend: &mut Backend) {
        let generation = self.generation;
        backend.run(move |engine| async move {
            let total = engine.count_users().await;
            let topics = engine.topics().await;
            Box::new(move |panels: &mut Panels| {
                let this = &mut panels.users;
                if let Ok(topics) = topics {
                    this.topics = topics.into_iter().map(|t| t.topic.to_string()).collect();
                }
                if this.generation == generation {
                    match total {
                        Ok(total) => this.total = Some(total),
                        Err(error) => this.error = Some(describe(&error)),
                    }
                }
            }) as Update
        });
    }

    fn load_block(&mut self, block: u64, backend: &mut Backend) {
        if self.blocks.contains_key(&block) || !self.loading.insert(block) {
            return;
        }
        let (generation, query) = (self.generation, self.query());
        backend.run(move |engine| async move {
            let page = PageRequest {
                limit: BLOCK as u32,
                cursor: None,
                offset: Some(block * BLOCK),
            };
            let found = engine.list_users(&query, &page).await;
            Box::new(move |panels: &mut Panels| {
                let this = &mut panels.users;
                if this.generation != generation {
                    return;
                }
                this.loading.remove(&block);
                match found {
                    Ok(page) => {
                        if (page.items.len() as u64) < BLOCK {
                            this.end = Some(this.end.map_or(block, |e| e.min(block)));
                        }
                        this.blocks.insert(block, page.items);
                        this.error = None;
                    }
                    Err(error) => this.error = Some(describe(&error)),
                }
            }) as Update
        });
    }

    /// How many rows the table has: every user when unfiltered; with filters, the rows
    /// found so far and one more block while the list goes on.
    fn rows(&self) -> u64 {
        if !self.filtered()
            && let Some(total) = self.total
        {
            return total;
        }
        match self.end {
            Some(end) => end * BLOCK + self.blocks.get(&end).map_or(0, |b| b.len() as u64),
            None => (self.blocks.keys().max().map_or(0, |b| b + 1) + 1) * BLOCK,
        }
    }

    fn row(&self, index: u64) -> Option<&User> {
        self.blocks
            .get(&(index / BLOCK))
            .and_then(|block| block.get((index % BLOCK) as usize))
    }

    /// Draws the panel.
    pub fn ui(&mut self, ui: &mut egui::Ui, backend: &mut Backend) {
        if self.total.is_none() && backend.engine().is_some() {
            self.total = Some(0);
            self.load_total(backend);
        }
        if std::mem::take(&mut self.reload_selected)
            && let Some(detail) = &self.selected
        {
            load_history(detail.user.phone.clone(), backend);
        }
        if let Some(detail) = &mut self.selected {
            let mut close = false;
            detail_ui(ui, detail, backend, &mut close);
            if close {
                self.selected = None;
                self.reload();
            }
            return;
        }
        heading(ui, "Users");
        self.import_ui(ui, backend);
        ui.add_space(8.0);
        let mut changed = false;
        ui.horizontal(|ui| {
            ui.label("Search");
            changed |= ui
                .add(
                    egui::TextEdit::singleline(&mut self.search)
                        .hint_text("name, phone or attribute"),
                )
                .changed();
            ui.label("Consent");
            egui::ComboBox::from_id_salt("consent")
                .selected_text(match self.consent {
                    None => "any",
                    Some(Consent::OptIn) => "opted in",
                    Some(Consent::OptOut) => "opted out",
                })
                .show_ui(ui, |ui| {
                    changed |= ui
                        .selectable_value(&mut self.consent, None, "any")
                        .changed();
                    changed |= ui
                        .selectable_value(&mut self.consent, Some(Consent::OptIn), "opted in")
                        .changed();
                    changed |= ui
                        .selectable_value(&mut self.consent, Some(Consent::OptOut), "opted out")
                        .changed();
                });
            ui.label("Topic");
            egui::ComboBox::from_id_salt("topic")
                .selected_text(if self.topic.is_empty() {
                    "any"
                } else {
                    &self.topic
                })
                .show_ui(ui, |ui| {
                    changed |= ui
                        .selectable_value(&mut self.topic, String::new(), "any")
                        .changed();
                    for topic in self.topics.clone() {
                        changed |= ui
                            .selectable_value(&mut self.topic, topic.clone(), topic)
                            .changed();
                    }
                });
            if let Some(total) = self.total {
                ui.label(RichText::new(format!("{} users in all", count(total))).weak());
            }
        });
        if changed {
            self.reload();
            self.total = None;
        }
        error_line(ui, &self.error);
        ui.add_space(4.0);
        self.table(ui, backend);
    }

    fn table(&mut self, ui: &mut egui::Ui, backend: &mut Backend) {
        let rows = self.rows();
        let mut wanted = Vec::new();
        let mut open = None;
        TableBuilder::new(ui)
            .striped(true)
            .resizable(true)
            .column(Column::initial(150.0))
            .column(Column::initial(200.0))
            .column(Column::initial(90.0))
            .column(Column::initial(160.0))
            .column(Column::remainder())
            .header(22.0, |mut header| {
                for title in ["Phone", "Name", "Consent", "Topics", "Time zone"] {
                    header.col(|ui| {
                        ui.strong(title);
                    });
                }
            })
            .body(|body| {
                body.rows(22.0, rows as usize, |mut row| {
                    let index = row.index() as u64;
                    match self.row(index) {
                        Some(user) => {
                            row.col(|ui| {
                                if ui.link(user.phone.as_str()).clicked() {
                                    open = Some(user.clone());
                                }
                            });
                            row.col(|ui| {
                                ui.label(user.name.as_deref().unwrap_or("—"));
                            });
                            row.col(|ui| {
                                ui.label(user.consent_state.as_str());
                            });
                            row.col(|ui| {
                                let topics: Vec<&str> =
                                    user.topics.iter().map(Topic::as_str).collect();
                                ui.label(if topics.is_empty() {
                                    "—".into()
                                } else {
                                    topics.join(", ")
                                });
                            });
                            row.col(|ui| {
                                ui.label(
                                    user.timezone.as_ref().map_or("—".into(), |z| z.to_string()),
                                );
                            });
                        }
                        None => {
                            wanted.push(index / BLOCK);
                            row.col(|ui| {
                                ui.weak("…");
                            });
                            for _ in 0..4 {
                                row.col(|_| {});
                            }
                        }
                    }
                });
            });
        wanted.dedup();
        for block in wanted {
            if self.end.is_none_or(|end| block <= end) {
                self.load_block(block, backend);
            }
        }
        if let Some(user) = open {
            self.open(user, backend);
        }
    }

    /// Shows one user's page, loading their messages and what they wrote.
    pub fn open(&mut self, user: User, backend: &mut Backend) {
        let phone = user.phone.clone();
        self.selected = Some(UserDetail::new(user));
        load_history(phone, backend);
    }

    fn import_ui(&mut self, ui: &mut egui::Ui, backend: &mut Backend) {
        egui::Frame::group(ui.style())
            .inner_margin(10)
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.strong("Import users");
                    ui.label(RichText::new("CSV or JSON; duplicates and re-imports merge").weak());
                });
                if let Some(path) = FileImport::progress_or_pick(
                    self.import.as_ref(),
                    ui,
                    "Users",
                    &["csv", "json", "jsonl", "ndjson", "txt"],
                ) {
                    self.start_import(path, backend);
                }
                if let Some((file, report)) = &self.last_report {
                    report_ui(ui, file, report);
                }
            });
    }

    /// Imports a users file (CSV or JSON by its extension) with progress; the report shows
    /// when it is done. Cancelling keeps the rows already written.
    pub fn start_import(&mut self, path: PathBuf, backend: &mut Backend) {
        let (import, reader) = match FileImport::open(&path) {
            Ok(opened) => opened,
            Err(error) => {
                self.error = Some(error);
                return;
            }
        };
        let name = import.name.clone();
        // The file dialog offers only the extensions the core knows; anything else is read as CSV.
        let format = UserFileFormat::from_path(&path).unwrap_or(UserFileFormat::Csv);
        self.import = Some(import);
        self.error = None;
        backend.run(move |engine| async move {
            let result = engine
                .ingest_users(reader, format, IngestSource::File(name.clone()))
                .await;
            Box::new(move |panels: &mut Panels| {
                let this = &mut panels.users;
                this.import = None;
                match result {
                    Ok(ingestion) => this.last_report = Some((name, ingestion.report)),
                    Err(error) => this.error = Some(describe(&error)),
                }
                this.reload();
            }) as Update
        });
    }

    /// The report of the last import, if one finished.
    pub fn last_report(&self) -> Option<&IngestReport> {
        self.last_report.as_ref().map(|(_, report)| report)
    }

    /// Whether an import is running.
    pub fn importing(&self) -> bool {
        self.import.is_some()
    }
}

/// An import's report: counts, then every invalid row with its line, field and reason.
pub fn report_ui(ui: &mut egui::Ui, file: &str, report: &IngestReport) {
    ui.add_space(6.0);
    ui.label(RichText::new(format!("Report of {file}")).strong());
    ui.horizontal_wrapped(|ui| {
        for (caption, n) in [
            ("rows", report.total),
            ("inserted", report.inserted),
            ("updated", report.updated),
            ("duplicates", report.duplicates),
            ("invalid", report.invalid),
        ] {
            ui.label(format!("{caption}: {}", count(n)));
            ui.separator();
        }
    });
    if !report.errors.is_empty() {
        egui::ScrollArea::vertical()
            .max_height(160.0)
            .id_salt("report")
            .show(ui, |ui| {
                egui::Grid::new("invalid rows")
                    .striped(true)
                    .show(ui, |ui| {
                        ui.strong("Line");
                        ui.strong("Field");
                        ui.strong("Reason");
                        ui.end_row();
                        for error in &report.errors {
                            ui.label(error.line.to_string());
                            ui.monospace(if error.field.is_empty() {
                                "row"
                            } else {
                                &error.field
                            });
                            ui.colored_label(ui.visuals().error_fg_color, &error.reason);
                            ui.end_row();
                        }
                    });
            });
        if report.errors_not_listed > 0 {
            ui.weak(format!(
                "… and {} more not listed",
                count(report.errors_not_listed)
            ));
        }
    }
}

impl UserDetail {
    fn new(user: User) -> Self {
        Self {
            name: user.name.clone().unwrap_or_default(),
            timezone: user
                .timezone
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            consent: user.consent_state,
            attributes: serde_json::to_string_pretty(&user.attributes).unwrap_or_default(),
            new_topic: String::new(),
            messages: Vec::new(),
            inbound: Vec::new(),
            error: None,
            saved: false,
            user,
        }
    }
}

fn load_history(phone: PhoneNumber, backend: &mut Backend) {
    backend.run(move |engine| async move {
        let page = PageRequest {
            limit: 50,
            ..PageRequest::default()
        };
        let query = MessageQuery {
            user: Some(phone.clone()),
            ..MessageQuery::default()
        };
        let messages = engine.list_messages(&query, &page).await;
        let inbound = engine.list_inbound(Some(phone.clone()), &page).await;
        let user = engine.get_user(&phone).await;
        Box::new(move |panels: &mut Panels| {
            if let Some(detail) = &mut panels.users.selected
                && detail.user.phone == phone
            {
                match (user, messages, inbound) {
                    (Ok(user), Ok(messages), Ok(inbound)) => {
                        let saved = detail.saved;
                        *detail = UserDetail::new(user);
                        detail.saved = saved;
                        detail.messages = messages.items;
                        detail.inbound = inbound.items;
                    }
                    (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                        detail.error = Some(describe(&e))
                    }
                }
            }
        }) as Update
    });
}

fn detail_ui(ui: &mut egui::Ui, detail: &mut UserDetail, backend: &mut Backend, close: &mut bool) {
    ui.horizontal(|ui| {
        if ui.button("Back to all users").clicked() {
            *close = true;
        }
        heading(ui, detail.user.phone.as_str());
    });
    error_line(ui, &detail.error);
    if detail.saved {
        ui.colored_label(egui::Color32::from_rgb(22, 163, 74), "Saved.");
    }
    egui::Grid::new("user fields")
        .num_columns(2)
        .spacing([12.0, 6.0])
        .show(ui, |ui| {
            ui.label("Name");
            ui.text_edit_singleline(&mut detail.name);
            ui.end_row();
            ui.label("Consent");
            ui.horizontal(|ui| {
                ui.radio_value(&mut detail.consent, Consent::OptIn, "opted in");
                ui.radio_value(&mut detail.consent, Consent::OptOut, "opted out");
            });
            ui.end_row();
            ui.label("Time zone");
            ui.add(egui::TextEdit::singleline(&mut detail.timezone).hint_text("Asia/Colombo"));
            ui.end_row();
            ui.label("Attributes (JSON)");
            ui.add(
                egui::TextEdit::multiline(&mut detail.attributes)
                    .code_editor()
                    .desired_rows(4),
            );
            ui.end_row();
            ui.label("Topics");
            ui.horizontal_wrapped(|ui| {
                for topic in detail.user.topics.clone() {
                    ui.label(topic.as_str());
                    if ui.small_button("unsubscribe").clicked() {
                        let phone = detail.user.phone.clone();
                        backend.run(move |engine| async move {
                            let done = engine.unsubscribe(&phone, &topic).await;
                            after_change(phone, done.map(|_| ()))
                        });
                    }
                }
                ui.add(
                    egui::TextEdit::singleline(&mut detail.new_topic)
                        .hint_text("topic")
                        .desired_width(90.0),
                );
                if ui.button("Subscribe").clicked() {
                    match Topic::parse(detail.new_topic.trim()) {
                        Ok(topic) => {
                            let phone = detail.user.phone.clone();
                            backend.run(move |engine| async move {
                                let done = engine.subscribe(&phone, &topic).await;
                                after_change(phone, done.map(|_| ()))
                            });
                            detail.new_topic.clear();
                        }
                        Err(error) => detail.error = Some(error.to_string()),
                    }
                }
            });
            ui.end_row();
        });
    if ui.button("Save").clicked() {
        save(detail, backend);
    }
    ui.add_space(10.0);
    ui.columns(2, |columns| {
        columns[0].strong("Messages sent to them");
        egui::ScrollArea::vertical()
            .id_salt("messages")
            .max_height(260.0)
            .show(&mut columns[0], |ui| {
                if detail.messages.is_empty() {
                    ui.weak("None yet.");
                }
                for message in &detail.messages {
                    ui.horizontal(|ui| {
                        status_label(ui, message.status);
                        ui.weak(message.created_at.format("%Y-%m-%d %H:%M").to_string());
                    });
                    ui.label(&message.body);
                    ui.separator();
                }
            });
        columns[1].strong("What they wrote");
        egui::ScrollArea::vertical()
            .id_salt("inbound")
            .max_height(260.0)
            .show(&mut columns[1], |ui| {
                if detail.inbound.is_empty() {
                    ui.weak("Nothing yet.");
                }
                for inbound in &detail.inbound {
                    ui.horizontal(|ui| {
                        ui.weak(inbound.received_at.format("%Y-%m-%d %H:%M").to_string());
                        if let Some(command) = &inbound.command {
                            ui.label(RichText::new(format!("{command:?}").to_uppercase()).strong());
                        }
                    });
                    ui.label(&inbound.body);
                    ui.separator();
                }
            });
    });
}

/// Shows what a subscription change answered, then reads the user again.
fn after_change(phone: PhoneNumber, done: Result<(), messaging_core::EngineError>) -> Update {
    Box::new(move |panels: &mut Panels| {
        if let Some(detail) = &mut panels.users.selected
            && detail.user.phone == phone
        {
            match done {
                Ok(()) => {
                    detail.error = None;
                    panels.users.reload_selected = true;
                }
                Err(error) => detail.error = Some(describe(&error)),
            }
        }
    })
}

fn save(detail: &mut UserDetail, backend: &mut Backend) {
    use messaging_core::domain::{AttributePatch, TimeZone, UserChanges};
    let attributes = match serde_json::from_str::<serde_json::Value>(&detail.attributes) {
        Ok(serde_json::Value::Object(map)) => map,
        Ok(_) => {
            detail.error =
                Some("attributes must be a JSON object, like {\"city\": \"Colombo\"}".into());
            return;
        }
        Err(error) => {
            detail.error = Some(format!("attributes are not valid JSON: {error}"));
            return;
        }
    };
    let timezone = match detail.timezone.trim() {
        "" => None,
        zone => match TimeZone::parse(zone) {
            Ok(zone) => Some(zone),
            Err(error) => {
                detail.error = Some(format!("time zone: {error}"));
                return;
            }
        },
    };
    let changes = UserChanges {
        name: Some(detail.name.trim().to_owned()).filter(|n| !n.is_empty()),
        consent_state: Some(detail.consent),
        attributes: AttributePatch::new(attributes.into_iter().collect()),
        timezone,
        locale: detail.user.locale.clone(),
        wa_id: detail.user.wa_id.clone(),
        topics: Vec::new(),
    };
    let phone = detail.user.phone.clone();
    detail.saved = false;
    backend.run(move |engine| async move {
        let saved = engine.replace_user(phone.clone(), changes).await;
        Box::new(move |panels: &mut Panels| {
            if let Some(detail) = &mut panels.users.selected {
                match saved {
                    Ok((user, _)) => {
                        let (messages, inbound) = (
                            std::mem::take(&mut detail.messages),
                            std::mem::take(&mut detail.inbound),
                        );
                        *detail = UserDetail::new(user);
                        detail.messages = messages;
                        detail.inbound = inbound;
                        detail.saved = true;
                    }
                    Err(error) => detail.error = Some(describe(&error)),
                }
            }
        }) as Update
    });
}
