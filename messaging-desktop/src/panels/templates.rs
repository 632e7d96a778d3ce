//! Templates: the list, and an editor with a live preview rendered by the engine as you type
//! (the unsaved text, for a stored user or typed attributes and event data), errors shown at
//! their line and column, the placeholders the template uses, and the Content SID and variables
//! of an approved WhatsApp template.

use std::collections::BTreeMap;
use std::time::Duration;

use eframe::egui::{self, RichText};
use messaging_core::domain::{Channel, PhoneNumber, Template, TemplateDraft, TemplateId};
use messaging_core::engine::PreviewInput;
use messaging_core::store::PageRequest;
use serde_json::{Map, Value};

use super::{Panels, TypingPause, describe, error_line, heading};
use crate::backend::{Backend, Update};

/// How long typing pauses before the preview is rendered again.
const PREVIEW_AFTER: Duration = Duration::from_millis(300);

/// The templates panel's state.
#[derive(Default)]
pub struct Templates {
    list: Option<Vec<Template>>,
    list_error: Option<String>,
    editor: Option<Editor>,
}

/// The template being edited.
struct Editor {
    id: TemplateId,
    name: String,
    content: String,
    locale: String,
    content_sid: String,
    content_variables: String,
    placeholders: Vec<String>,
    /// Render for this stored user…
    user: String,
    /// …or for these attributes and event data (JSON objects).
    attributes: String,
    event: String,
    pause: TypingPause,
    /// Whether the first user was looked up to render for.
    found_user: bool,
    preview: Option<Result<String, String>>,
    error: Option<String>,
    saved: bool,
}

impl Editor {
    fn of(template: Template, user: String) -> Self {
        Self {
            id: template.id,
            name: template.name,
            content: template.content,
            locale: template.locale.unwrap_or_default(),
            content_sid: template.content_sid.unwrap_or_default(),
            content_variables: template
                .content_variables
                .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
                .unwrap_or_default(),
            placeholders: template.placeholders,
            user,
            attributes: String::new(),
            event: String::new(),
            pause: TypingPause::over(),
            found_user: false,
            preview: None,
            error: None,
            saved: false,
        }
    }

    /// The draft the fields describe, or what is wrong with them.
    fn draft(&self) -> Result<TemplateDraft, String> {
        let content_variables = match self.content_variables.trim() {
            "" => None,
            text => Some(
                serde_json::from_str::<BTreeMap<String, String>>(text).map_err(|e| {
                    format!("content variables must be a JSON object of texts, like {{\"1\": \"{{{{name}}}}\"}}: {e}")
                })?,
            ),
        };
        Ok(TemplateDraft {
            name: self.name.trim().to_owned(),
            content: self.content.clone(),
            channel: Channel::default(),
            locale: Some(self.locale.trim().to_owned()).filter(|l| !l.is_empty()),
            content_sid: Some(self.content_sid.trim().to_owned()).filter(|s| !s.is_empty()),
            content_variables,
        })
    }

    /// Whom to render for: a stored user when a phone is given, else the typed data.
    fn preview_input(&self) -> Result<PreviewInput, String> {
        let object = |text: &str, what: &str| -> Result<Option<Map<String, Value>>, String> {
            match text.trim() {
                "" => Ok(None),
                text => match serde_json::from_str::<Value>(text) {
                    Ok(Value::Object(map)) => Ok(Some(map)),
                    Ok(_) => Err(format!("{what} must be a JSON object")),
                    Err(e) => Err(format!("{what} are not valid JSON: {e}")),
                },
            }
        };
        let user = match self.user.trim() {
            "" => None,
            phone => Some(PhoneNumber::parse(phone).map_err(|e| format!("user: {e}"))?),
        };
        Ok(PreviewInput {
            user,
            attributes: object(&self.attributes, "attributes")?,
            event: object(&self.event, "event data")?,
            content: Some(self.content.clone()),
            ..PreviewInput::default()
        })
    }
}

impl Templates {
    fn load(&mut self, backend: &mut Backend) {
        self.list = Some(Vec::new());
        backend.run(|engine| async move {
            let page = PageRequest {
                limit: 500,
                ..PageRequest::default()
            };
            let found = engine.list_templates(None, &page).await;
            Box::new(move |panels: &mut Panels| match found {
                Ok(page) => {
                    panels.templates.list = Some(page.items);
                    panels.templates.list_error = None;
                }
                Err(error) => panels.templates.list_error = Some(describe(&error)),
            }) as Update
        });
    }

    /// Opens a template in the editor (rendered for the first user, when there is one).
    pub fn open(&mut self, template: Template) {
        self.editor = Some(Editor::of(template, String::new()));
    }

    /// Creates a template with a greeting to start from, and opens it.
    pub fn create(&mut self, backend: &mut Backend) {
        let draft = TemplateDraft {
            name: format!("New template {}", chrono::Local::now().format("%H:%M:%S")),
            content: "Hi {{ name | default(\"there\") }}!".into(),
            channel: Channel::default(),
            locale: None,
            content_sid: None,
            content_variables: None,
        };
        backend.run(move |engine| async move {
            let created = engine.create_template(draft).await;
            Box::new(move |panels: &mut Panels| match created {
                Ok(template) => {
                    panels.templates.list = None;
                    panels.templates.editor = Some(Editor::of(template, String::new()));
                }
                Err(error) => panels.templates.list_error = Some(describe(&error)),
            }) as Update
        });
    }

    /// The text of the last preview (tests read it).
    pub fn preview(&self) -> Option<&str> {
        match self.editor.as_ref()?.preview.as_ref()? {
            Ok(body) => Some(body),
            Err(_) => None,
        }
    }

    /// Replaces the editor's text, as typing does (tests use it).
    pub fn set_content(&mut self, content: &str) {
        if let Some(editor) = &mut self.editor {
            editor.content = content.to_owned();
            editor.pause.typed();
        }
    }

    /// Draws the panel.
    pub fn ui(&mut self, ui: &mut egui::Ui, backend: &mut Backend) {
        if self.list.is_none() && backend.engine().is_some() {
            self.load(backend);
        }
        heading(ui, "Templates");
        error_line(ui, &self.list_error);
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.set_width(220.0);
                if ui.button("New template").clicked() {
                    self.create(backend);
                }
                ui.add_space(6.0);
                let mut open = None;
                for template in self.list.iter().flatten() {
                    let selected = self.editor.as_ref().is_some_and(|e| e.id == template.id);
                    if ui.selectable_label(selected, &template.name).clicked() {
                        open = Some(template.clone());
                    }
                }
                if self.list.as_ref().is_some_and(Vec::is_empty) {
                    ui.weak("No templates yet.");
                }
                if let Some(template) = open {
                    self.open(template);
                }
            });
            ui.separator();
            ui.vertical(|ui| match &mut self.editor {
                Some(editor) => {
                    let mut reload = false;
                    editor_ui(ui, editor, backend, &mut reload);
                    if reload {
                        self.list = None;
                    }
                }
                None => {
                    ui.weak("Choose a template, or create one.");
                }
            });
        });
    }
}

/// Fills the preview's user with the first stored user, once, so placeholders have values.
fn find_first_user(editor: &mut Editor, backend: &mut Backend) {
    editor.found_user = true;
    let id = editor.id;
    backend.run(move |engine| async move {
        let page = PageRequest {
            limit: 1,
            ..PageRequest::default()
        };
        let first = engine.list_users(&Default::default(), &page).await;
        Box::new(move |panels: &mut Panels| {
            if let (Some(editor), Ok(page)) = (&mut panels.templates.editor, first)
                && editor.id == id
                && editor.user.is_empty()
                && let Some(user) = page.items.first()
            {
                editor.user = user.phone.to_string();
                editor.pause.ask_now();
            }
        }) as Update
    });
}

fn editor_ui(ui: &mut egui::Ui, editor: &mut Editor, backend: &mut Backend, reload: &mut bool) {
    if !editor.found_user {
        find_first_user(editor, backend);
    }
    let mut edited = false;
    egui::Grid::new("template fields")
        .num_columns(2)
        .spacing([12.0, 6.0])
        .show(ui, |ui| {
            ui.label("Name");
            ui.add(egui::TextEdit::singleline(&mut editor.name).desired_width(360.0));
            ui.end_row();
            ui.label("Text");
            edited |= ui
                .add(
                    egui::TextEdit::multiline(&mut editor.content)
                        .code_editor()
                        .desired_rows(6)
                        .desired_width(520.0),
                )
                .changed();
            ui.end_row();
            ui.label("Locale");
            ui.add(
                egui::TextEdit::singleline(&mut editor.locale)
                    .hint_text("en")
                    .desired_width(80.0),
            );
            ui.end_row();
            ui.label("Content SID");
            ui.add(
                egui::TextEdit::singleline(&mut editor.content_sid)
                    .hint_text("HX… (an approved WhatsApp template)"),
            );
            ui.end_row();
            ui.label("Content variables");
            ui.add(
                egui::TextEdit::multiline(&mut editor.content_variables)
                    .code_editor()
                    .desired_rows(2)
                    .hint_text("{\"1\": \"{{name}}\"}"),
            );
            ui.end_row();
        });
    if !editor.placeholders.is_empty() {
        ui.label(RichText::new(format!("Placeholders: {}", editor.placeholders.join(", "))).weak());
    }
    ui.horizontal(|ui| {
        if ui.button("Save").clicked() {
            save(editor, backend, reload);
        }
        if editor.saved {
            ui.colored_label(egui::Color32::from_rgb(22, 163, 74), "Saved.");
        }
    });
    error_line(ui, &editor.error);

    ui.add_space(10.0);
    ui.label(RichText::new("Preview").strong());
    egui::Grid::new("preview for")
        .num_columns(2)
        .spacing([12.0, 6.0])
        .show(ui, |ui| {
            ui.label("For the user");
            edited |= ui
                .add(
                    egui::TextEdit::singleline(&mut editor.user)
                        .hint_text("+94771234501, or leave empty"),
                )
                .changed();
            ui.end_row();
            ui.label("or attributes");
            edited |= ui
                .add(
                    egui::TextEdit::singleline(&mut editor.attributes).hint_text(
                        "{\"name\": \"Amaya\", \"attributes\": {\"city\": \"Colombo\"}}",
                    ),
                )
                .changed();
            ui.end_row();
            ui.label("and event data");
            edited |= ui
                .add(
                    egui::TextEdit::singleline(&mut editor.event)
                        .hint_text("{\"venue\": \"Galle Face Green\"}"),
                )
                .changed();
            ui.end_row();
        });
    if edited {
        editor.pause.typed();
        editor.saved = false;
    }
    match &editor.preview {
        Some(Ok(body)) => {
            egui::Frame::group(ui.style())
                .fill(ui.visuals().faint_bg_color)
                .inner_margin(10)
                .show(ui, |ui| {
                    ui.set_max_width(520.0);
                    ui.label(body);
                });
        }
        Some(Err(error)) => {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        None => {
            ui.weak("Rendering…");
        }
    }
    if editor.pause.over_after(ui, PREVIEW_AFTER) {
        render(editor, backend);
    }
}

fn render(editor: &mut Editor, backend: &mut Backend) {
    let input = match editor.preview_input() {
        Ok(input) => input,
        Err(error) => {
            editor.preview = Some(Err(error));
            return;
        }
    };
    let (id, content) = (editor.id, editor.content.clone());
    backend.run(move |engine| async move {
        let rendered = engine.preview_template(id, input).await;
        Box::new(move |panels: &mut Panels| {
            // An answer for text that has changed since is dropped: a newer one is coming.
            if let Some(editor) = &mut panels.templates.editor
                && editor.id == id
                && editor.content == content
            {
                editor.preview = Some(rendered.map(|p| p.body).map_err(|e| describe(&e)));
            }
        }) as Update
    });
}

fn save(editor: &mut Editor, backend: &mut Backend, reload: &mut bool) {
    let draft = match editor.draft() {
        Ok(draft) => draft,
        Err(error) => {
            editor.error = Some(error);
            return;
        }
    };
    let id = editor.id;
    *reload = true;
    backend.run(move |engine| async move {
        let saved = engine.update_template(id, draft).await;
        Box::new(move |panels: &mut Panels| {
            if let Some(editor) = &mut panels.templates.editor
                && editor.id == id
            {
                match saved {
                    Ok(template) => {
                        editor.placeholders = template.placeholders;
                        editor.error = None;
                        editor.saved = true;
                    }
                    // A template that does not compile says where: field, line and column.
                    Err(error) => editor.error = Some(describe(&error)),
                }
            }
            panels.templates.list = None;
        }) as Update
    });
}
