//! Inbound: conversations with the users who wrote in, newest first, one row per user with
//! their latest message; one conversation as chat bubbles (what we sent with its status, what
//! they wrote), refreshed every few seconds while shown, and a reply box sending free text or
//! an approved template. The engine decides whether a reply may go (WhatsApp's 24-hour
//! window): the panel shows its refusal as it says it, and a hint when the window is closed.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use eframe::egui::{self, Color32, RichText};
use messaging_core::domain::{InboundMessage, Message, PhoneNumber, Template, TemplateId, User};
use messaging_core::engine::ReplyContent;
use messaging_core::orchestrate::policy;
use messaging_core::store::{MessageQuery, PageRequest};

use super::{Panels, describe, error_line, heading, status_label};
use crate::backend::{Backend, Update};

/// How often the list and the open conversation are read again while shown.
const REFRESH: Duration = Duration::from_secs(3);

/// How many of the latest inbound messages the list of conversations is made from.
const LATEST: u32 = 200;

/// How many messages each way a conversation shows.
const HISTORY: u32 = 100;

/// The inbound panel's state.
#[derive(Default)]
pub struct Inbound {
    /// Each user's latest message, newest first.
    latest: Vec<InboundMessage>,
    loaded_at: Option<Instant>,
    loading: bool,
    /// Approved templates (those with a Content SID), for replies.
    templates: Vec<Template>,
    templates_loaded: bool,
    phone: String,
    error: Option<String>,
    open: Option<Conversation>,
}

/// One user's conversation and the reply being written.
struct Conversation {
    phone: PhoneNumber,
    user: Option<User>,
    /// Whether free text would be refused now (the engine's window rule, at its clock).
    window_closed: bool,
    entries: Vec<Entry>,
    loaded_at: Option<Instant>,
    loading: bool,
    /// Bumped when a reply is added, so a read that started before it is dropped.
    generation: u64,
    reply: String,
    template: Option<TemplateId>,
    sending: bool,
    error: Option<String>,
}

/// A message in a conversation, either way.
enum Entry {
    Ours(Message),
    Theirs(InboundMessage),
}

impl Entry {
    fn at(&self) -> DateTime<Utc> {
        match self {
            Entry::Ours(message) => message.created_at,
            Entry::Theirs(message) => message.received_at,
        }
    }
}

impl Inbound {
    /// Draws the panel.
    pub fn ui(&mut self, ui: &mut egui::Ui, backend: &mut Backend) {
        if backend.engine().is_none() {
            heading(ui, "Inbound");
            ui.label("Loading…");
            return;
        }
        if !self.templates_loaded {
            self.templates_loaded = true;
            load_templates(backend);
        }
        ui.ctx().request_repaint_after(REFRESH);
        if let Some(conversation) = &mut self.open {
            if !conversation.loading
                && conversation
                    .loaded_at
                    .is_none_or(|at| at.elapsed() >= REFRESH)
            {
                conversation.loading = true;
                load_conversation(conversation.phone.clone(), conversation.generation, backend);
            }
            let mut close = false;
            conversation_ui(ui, conversation, &self.templates, backend, &mut close);
            if close {
                self.open = None;
                self.loaded_at = None;
            }
            return;
        }
        if !self.loading && self.loaded_at.is_none_or(|at| at.elapsed() >= REFRESH) {
            self.loading = true;
            load_latest(backend);
        }
        self.list_ui(ui, backend);
    }

    fn list_ui(&mut self, ui: &mut egui::Ui, backend: &mut Backend) {
        heading(ui, "Inbound");
        ui.horizontal(|ui| {
            let label = ui.label("Open a conversation with");
            let edit = ui
                .add(egui::TextEdit::singleline(&mut self.phone).hint_text("+94771234501"))
                .labelled_by(label.id);
            let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if ui.button("Open").clicked() || enter {
                match PhoneNumber::parse(self.phone.trim()) {
                    Ok(phone) => self.open(phone, backend),
                    Err(error) => self.error = Some(format!("phone: {error}")),
                }
            }
        });
        error_line(ui, &self.error);
        ui.add_space(6.0);
        if self.latest.is_empty() {
            ui.weak(if self.loaded_at.is_some() {
                "Nobody has written in yet."
            } else {
                "Loading…"
            });
            return;
        }
        let mut open = None;
        egui::Grid::new("conversations")
            .striped(true)
            .spacing([16.0, 6.0])
            .show(ui, |ui| {
                ui.strong("User");
                ui.strong("Latest message");
                ui.strong("Received");
                ui.strong("Command");
                ui.end_row();
                for message in &self.latest {
                    if ui.link(message.from.as_str()).clicked() {
                        open = Some(message.from.clone());
                    }
                    ui.label(&message.body);
                    ui.label(message.received_at.format("%Y-%m-%d %H:%M").to_string());
                    ui.label(command_text(message));
                    ui.end_row();
                }
            });
        if let Some(phone) = open {
            self.open(phone, backend);
        }
    }

    /// Opens `phone`'s conversation (whether or not they wrote in), reading it at once.
    pub fn open(&mut self, phone: PhoneNumber, backend: &mut Backend) {
        self.error = None;
        self.open = Some(Conversation {
            phone: phone.clone(),
            user: None,
            window_closed: false,
            entries: Vec::new(),
            loaded_at: None,
            loading: true,
            generation: 0,
            reply: String::new(),
            template: None,
            sending: false,
            error: None,
        });
        load_conversation(phone, 0, backend);
    }

    /// How many users are in the list of conversations.
    pub fn conversations(&self) -> usize {
        self.latest.len()
    }

    /// How many messages, both ways, the open conversation shows (0 when none is open).
    pub fn conversation_len(&self) -> usize {
        self.open.as_ref().map_or(0, |c| c.entries.len())
    }

    /// Whether the open conversation has been read from the engine at least once.
    pub fn conversation_loaded(&self) -> bool {
        self.open
            .as_ref()
            .is_some_and(|c| c.loaded_at.is_some() && !c.loading)
    }

    /// Whether a reply is on its way to the engine.
    pub fn sending(&self) -> bool {
        self.open.as_ref().is_some_and(|c| c.sending)
    }

    /// The error the open conversation shows (a refused reply), or the panel's.
    pub fn last_error(&self) -> Option<&str> {
        self.open
            .as_ref()
            .and_then(|c| c.error.as_deref())
            .or(self.error.as_deref())
    }
}

/// `STOP`, `SUBSCRIBE DANCE`…, or nothing for conversation.
fn command_text(message: &InboundMessage) -> String {
    let Some(command) = message.command else {
        return String::new();
    };
    let mut text = format!("{command:?}").to_uppercase();
    if let Some(topic) = &message.topic {
        text.push(' ');
        text.push_str(topic.as_str());
    }
    text
}

fn load_latest(backend: &mut Backend) {
    backend.run(move |engine| async move {
        let page = PageRequest {
            limit: LATEST,
            ..PageRequest::default()
        };
        let found = engine.list_inbound(None, &page).await;
        Box::new(move |panels: &mut Panels| {
            let this = &mut panels.inbound;
            this.loading = false;
            this.loaded_at = Some(Instant::now());
            match found {
                Ok(page) => {
                    // Newest first already: the first message of each sender is their latest.
                    let mut latest: Vec<InboundMessage> = Vec::new();
                    for message in page.items {
                        if !latest.iter().any(|m| m.from == message.from) {
                            latest.push(message);
                        }
                    }
                    this.latest = latest;
                }
                Err(error) => this.error = Some(describe(&error)),
            }
        }) as Update
    });
}

fn load_templates(backend: &mut Backend) {
    backend.run(move |engine| async move {
        let page = PageRequest {
            limit: 500,
            ..PageRequest::default()
        };
        let found = engine.list_templates(None, &page).await;
        Box::new(move |panels: &mut Panels| {
            let this = &mut panels.inbound;
            match found {
                Ok(page) => {
                    this.templates = page
                        .items
                        .into_iter()
                        .filter(|t| t.content_sid.is_some())
                        .collect();
                }
                Err(error) => this.error = Some(describe(&error)),
            }
        }) as Update
    });
}

fn load_conversation(phone: PhoneNumber, generation: u64, backend: &mut Backend) {
    backend.run(move |engine| async move {
        let page = PageRequest {
            limit: HISTORY,
            ..PageRequest::default()
        };
        let query = MessageQuery {
            user: Some(phone.clone()),
            ..MessageQuery::default()
        };
        let user = engine.get_user(&phone).await;
        let sent = engine.list_messages(&query, &page).await;
        let wrote = engine.list_inbound(Some(phone.clone()), &page).await;
        let now = engine.clock().now();
        Box::new(move |panels: &mut Panels| {
            let Some(this) = &mut panels.inbound.open else {
                return;
            };
            if this.phone != phone {
                return;
            }
            this.loading = false;
            if this.generation != generation {
                // A reply was added meanwhile: read again rather than show the list without it.
                this.loaded_at = None;
                return;
            }
            this.loaded_at = Some(Instant::now());
            match (user, sent, wrote) {
                (Ok(user), Ok(sent), Ok(wrote)) => {
                    this.window_closed =
                        policy::whatsapp_window(user.last_inbound_at, false, now).is_err();
                    this.user = Some(user);
                    let mut entries: Vec<Entry> = sent.items.into_iter().map(Entry::Ours).collect();
                    entries.extend(wrote.items.into_iter().map(Entry::Theirs));
                    entries.sort_by_key(Entry::at);
                    this.entries = entries;
                }
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                    this.error = Some(describe(&e));
                }
            }
        }) as Update
    });
}

fn conversation_ui(
    ui: &mut egui::Ui,
    conversation: &mut Conversation,
    templates: &[Template],
    backend: &mut Backend,
    close: &mut bool,
) {
    ui.horizontal(|ui| {
        if ui.button("Back to conversations").clicked() {
            *close = true;
        }
        heading(ui, conversation.phone.as_str());
        if let Some(name) = conversation.user.as_ref().and_then(|u| u.name.as_deref()) {
            ui.label(RichText::new(name).weak());
        }
    });
    let height = (ui.available_height() - 200.0).max(160.0);
    egui::ScrollArea::vertical()
        .id_salt("conversation")
        .max_height(height)
        .auto_shrink([false, true])
        .stick_to_bottom(true)
        .show(ui, |ui| {
            if conversation.entries.is_empty() {
                ui.weak(if conversation.loaded_at.is_some() {
                    "No messages either way yet."
                } else {
                    "Loading…"
                });
            }
            for entry in &conversation.entries {
                bubble(ui, entry);
            }
        });
    ui.separator();
    reply_ui(ui, conversation, templates, backend);
}

/// One message as a chat bubble: ours on the right, tinted, with its status; theirs on the
/// left with the command it carried.
fn bubble(ui: &mut egui::Ui, entry: &Entry) {
    let ours = matches!(entry, Entry::Ours(_));
    let layout = if ours {
        egui::Layout::right_to_left(egui::Align::Min)
    } else {
        egui::Layout::left_to_right(egui::Align::Min)
    };
    let fill = match (ours, ui.visuals().dark_mode) {
        (true, true) => Color32::from_rgb(20, 83, 45),
        (true, false) => Color32::from_rgb(220, 248, 198),
        (false, _) => ui.visuals().faint_bg_color,
    };
    ui.with_layout(layout, |ui| {
        egui::Frame::new()
            .fill(fill)
            .corner_radius(8)
            .inner_margin(egui::Margin::symmetric(10, 6))
            .show(ui, |ui| {
                ui.set_max_width(ui.available_width().min(460.0) * 0.8);
                ui.vertical(|ui| match entry {
                    Entry::Ours(message) => {
                        ui.label(&message.body);
                        ui.horizontal(|ui| {
                            ui.weak(message.created_at.format("%Y-%m-%d %H:%M").to_string());
                            status_label(ui, message.status);
                            if let Some(code) = &message.error_code {
                                ui.weak(format!("error {code}"));
                            }
                        });
                    }
                    Entry::Theirs(message) => {
                        ui.label(&message.body);
                        ui.horizontal(|ui| {
                            ui.weak(message.received_at.format("%Y-%m-%d %H:%M").to_string());
                            let command = command_text(message);
                            if !command.is_empty() {
                                ui.label(RichText::new(command).strong());
                            }
                        });
                    }
                });
            });
    });
    ui.add_space(4.0);
}

fn reply_ui(
    ui: &mut egui::Ui,
    conversation: &mut Conversation,
    templates: &[Template],
    backend: &mut Backend,
) {
    if conversation.user.is_some() && conversation.window_closed {
        let last = conversation
            .user
            .as_ref()
            .and_then(|u| u.last_inbound_at)
            .map_or_else(
                || "has never written in".to_owned(),
                |at| format!("last wrote at {}", at.format("%Y-%m-%d %H:%M UTC")),
            );
        ui.colored_label(
            ui.visuals().warn_fg_color,
            format!(
                "Outside WhatsApp's 24-hour window: {} {last}. Free text will be refused; \
                 send an approved template instead.",
                conversation.phone
            ),
        );
    }
    ui.horizontal(|ui| {
        ui.label("Send");
        let chosen = conversation
            .template
            .and_then(|id| templates.iter().find(|t| t.id == id))
            .map_or("free text", |t| t.name.as_str());
        egui::ComboBox::from_id_salt("reply with")
            .selected_text(chosen)
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut conversation.template, None, "free text");
                for template in templates {
                    ui.selectable_value(
                        &mut conversation.template,
                        Some(template.id),
                        &template.name,
                    );
                }
            });
        if templates.is_empty() {
            ui.weak("no approved template (one with a Content SID) yet");
        }
    });
    if conversation.template.is_none() {
        let label = ui.label("Reply");
        ui.add(
            egui::TextEdit::multiline(&mut conversation.reply)
                .desired_rows(2)
                .desired_width(f32::INFINITY)
                .hint_text("what to write back"),
        )
        .labelled_by(label.id);
    }
    ui.horizontal(|ui| {
        // Free text needs something to send; a template renders its own.
        let ready = conversation.template.is_some() || !conversation.reply.trim().is_empty();
        let send = ui.add_enabled(
            ready && !conversation.sending,
            egui::Button::new("Send reply"),
        );
        if send.clicked() {
            send_reply(conversation, backend);
        }
        if conversation.sending {
            ui.spinner();
        }
    });
    error_line(ui, &conversation.error);
}

fn send_reply(conversation: &mut Conversation, backend: &mut Backend) {
    let content = match conversation.template {
        Some(id) => ReplyContent::Template(id),
        None => ReplyContent::Text(conversation.reply.clone()),
    };
    let phone = conversation.phone.clone();
    conversation.sending = true;
    conversation.error = None;
    backend.run(move |engine| async move {
        let sent = engine.send_reply(&phone, content).await;
        Box::new(move |panels: &mut Panels| {
            let Some(this) = &mut panels.inbound.open else {
                return;
            };
            if this.phone != phone {
                return;
            }
            this.sending = false;
            match sent {
                Ok(message) => {
                    this.reply.clear();
                    this.generation += 1;
                    this.entries.push(Entry::Ours(message));
                    // Read again at once: the dispatcher moves the reply on.
                    this.loaded_at = None;
                }
                Err(error) => this.error = Some(describe(&error)),
            }
        }) as Update
    });
}
