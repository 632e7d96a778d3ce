//! Segments: the list, and a rule editor with a live count and a sample of the members as the
//! rule changes (counted by the engine over the whole database). The rule is the JSON the API
//! takes (the seed's shorthand `{"topic": "DANCE"}` works); buttons add the common conditions.

use std::time::Duration;

use eframe::egui::{self, RichText};
use messaging_core::domain::{Segment, SegmentDraft, SegmentId, User};
use messaging_core::segment::SegmentRule;
use messaging_core::store::PageRequest;
use serde_json::{Value, json};

use super::{Panels, TypingPause, count, describe, error_line, heading};
use crate::backend::{Backend, Update};

/// How long typing pauses before the rule is counted again.
const COUNT_AFTER: Duration = Duration::from_millis(300);

/// The segments panel's state.
#[derive(Default)]
pub struct Segments {
    list: Option<Vec<Segment>>,
    list_error: Option<String>,
    editor: Option<Editor>,
}

/// The segment being edited (`id` is `None` for a new one).
struct Editor {
    id: Option<SegmentId>,
    name: String,
    rule: String,
    pause: TypingPause,
    counted: Option<Result<(u64, Vec<User>), String>>,
    error: Option<String>,
    saved: bool,
}

impl Editor {
    fn new(id: Option<SegmentId>, name: String, rule: &Value) -> Self {
        Self {
            id,
            name,
            rule: serde_json::to_string_pretty(rule).unwrap_or_default(),
            pause: TypingPause::over(),
            counted: None,
            error: None,
            saved: false,
        }
    }

    /// The rule as parsed by the engine, or what is wrong with it.
    fn parsed(&self) -> Result<SegmentRule, String> {
        let value: Value =
            serde_json::from_str(&self.rule).map_err(|e| format!("the rule is not JSON: {e}"))?;
        SegmentRule::parse(&value).map_err(|e| e.to_string())
    }

    /// Adds a condition to the rule: into its `all` list, making one when needed.
    fn add(&mut self, condition: Value) {
        let current: Value = serde_json::from_str(&self.rule).unwrap_or(json!({}));
        let next = match current {
            Value::Object(map) if map.is_empty() => condition,
            Value::Object(mut map) if map.len() == 1 && map.contains_key("all") => {
                if let Some(Value::Array(items)) = map.get_mut("all") {
                    items.push(condition);
                }
                Value::Object(map)
            }
            other => json!({"all": [other, condition]}),
        };
        self.rule = serde_json::to_string_pretty(&next).unwrap_or_default();
        self.pause.typed();
    }
}

impl Segments {
    fn load(&mut self, backend: &mut Backend) {
        self.list = Some(Vec::new());
        backend.run(|engine| async move {
            let page = PageRequest {
                limit: 500,
                ..PageRequest::default()
            };
            let found = engine.list_segments(None, &page).await;
            Box::new(move |panels: &mut Panels| match found {
                Ok(page) => {
                    panels.segments.list = Some(page.items);
                    panels.segments.list_error = None;
                }
                Err(error) => panels.segments.list_error = Some(describe(&error)),
            }) as Update
        });
    }

    /// Starts a new segment with `rule` in the editor (counted at once).
    pub fn new_segment(&mut self, rule: Value) {
        self.editor = Some(Editor::new(None, "New segment".into(), &rule));
    }

    /// The live count of the rule in the editor, once counted (tests read it).
    pub fn count(&self) -> Option<u64> {
        match self.editor.as_ref()?.counted.as_ref()? {
            Ok((count, _)) => Some(*count),
            Err(_) => None,
        }
    }

    /// Draws the panel.
    pub fn ui(&mut self, ui: &mut egui::Ui, backend: &mut Backend) {
        if self.list.is_none() && backend.engine().is_some() {
            self.load(backend);
        }
        heading(ui, "Segments");
        error_line(ui, &self.list_error);
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.set_width(220.0);
                if ui.button("New segment").clicked() {
                    self.new_segment(json!({"topic": "DANCE"}));
                }
                ui.add_space(6.0);
                let mut open = None;
                for segment in self.list.iter().flatten() {
                    let selected = self
                        .editor
                        .as_ref()
                        .is_some_and(|e| e.id == Some(segment.id));
                    if ui.selectable_label(selected, &segment.name).clicked() {
                        open = Some(segment.clone());
                    }
                }
                if self.list.as_ref().is_some_and(Vec::is_empty) {
                    ui.weak("No segments yet.");
                }
                if let Some(segment) = open {
                    self.editor = Some(Editor::new(
                        Some(segment.id),
                        segment.name,
                        segment.rule.as_json(),
                    ));
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
                    ui.weak("Choose a segment, or create one.");
                }
            });
        });
    }
}

fn editor_ui(ui: &mut egui::Ui, editor: &mut Editor, backend: &mut Backend, reload: &mut bool) {
    ui.horizontal(|ui| {
        ui.label("Name");
        ui.add(egui::TextEdit::singleline(&mut editor.name).desired_width(300.0));
    });
    ui.add_space(4.0);
    ui.horizontal_wrapped(|ui| {
        ui.label("Add:");
        if ui.button("topic").clicked() {
            editor.add(json!({"topic": "DANCE"}));
        }
        if ui.button("attribute equals").clicked() {
            editor.add(json!({"attribute": "city", "op": "eq", "value": "Colombo"}));
        }
        if ui.button("attribute at least").clicked() {
            editor.add(json!({"attribute": "age", "op": "gte", "value": 18}));
        }
        if ui.button("opted in").clicked() {
            editor.add(json!({"consent": "OPT_IN"}));
        }
        if ui.button("did an event").clicked() {
            editor.add(json!({"event": "cart_abandoned", "min_count": 1, "within_days": 7}));
        }
    });
    let changed = ui
        .add(
            egui::TextEdit::multiline(&mut editor.rule)
                .code_editor()
                .desired_rows(8)
                .desired_width(520.0),
        )
        .changed();
    if changed {
        editor.pause.typed();
        editor.saved = false;
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
    ui.add_space(8.0);
    match &editor.counted {
        Some(Ok((n, sample))) => {
            ui.label(
                RichText::new(format!("{} users match", count(*n)))
                    .size(18.0)
                    .strong(),
            );
            egui::Grid::new("sample").striped(true).show(ui, |ui| {
                for user in sample {
                    ui.label(user.phone.as_str());
                    ui.label(user.name.as_deref().unwrap_or("—"));
                    ui.label(user.consent_state.as_str());
                    ui.end_row();
                }
            });
        }
        Some(Err(error)) => {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        None => {
            ui.weak("Counting…");
        }
    }
    if editor.pause.over_after(ui, COUNT_AFTER) {
        count_rule(editor, backend);
    }
}

fn count_rule(editor: &mut Editor, backend: &mut Backend) {
    let rule = match editor.parsed() {
        Ok(rule) => rule,
        Err(error) => {
            editor.counted = Some(Err(error));
            return;
        }
    };
    let text = editor.rule.clone();
    backend.run(move |engine| async move {
        let preview = engine.preview_segment(&rule, 10).await;
        Box::new(move |panels: &mut Panels| {
            if let Some(editor) = &mut panels.segments.editor
                && editor.rule == text
            {
                editor.counted = Some(
                    preview
                        .map(|p| (p.count, p.sample))
                        .map_err(|e| describe(&e)),
                );
            }
        }) as Update
    });
}

fn save(editor: &mut Editor, backend: &mut Backend, reload: &mut bool) {
    let rule = match editor.parsed() {
        Ok(rule) => rule,
        Err(error) => {
            editor.error = Some(error);
            return;
        }
    };
    let draft = SegmentDraft {
        name: editor.name.trim().to_owned(),
        rule,
    };
    let id = editor.id;
    *reload = true;
    backend.run(move |engine| async move {
        let saved = match id {
            Some(id) => engine.update_segment(id, draft).await,
            None => engine.create_segment(draft).await,
        };
        Box::new(move |panels: &mut Panels| {
            if let Some(editor) = &mut panels.segments.editor
                && editor.id == id
            {
                match saved {
                    Ok(segment) => {
                        editor.id = Some(segment.id);
                        editor.error = None;
                        editor.saved = true;
                    }
                    Err(error) => editor.error = Some(describe(&error)),
                }
            }
            panels.segments.list = None;
        }) as Update
    });
}
