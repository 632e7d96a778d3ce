//! The campaign form: create or edit a campaign (template, topic, segment, manual or event
//! trigger, rate, quiet hours), checked by the engine when saved.

use chrono::NaiveTime;
use eframe::egui;
use messaging_core::domain::{
    Campaign, CampaignDraft, CampaignId, QuietHours, Schedule, Segment, Template, Topic, Trigger,
};

use super::super::{Panels, describe, error_line, heading};
use super::View;
use super::page::CampaignPage;
use crate::backend::{Backend, Update};

/// The create or edit form (`id` is `None` for a new campaign).
pub(super) struct Form {
    id: Option<CampaignId>,
    name: String,
    template: Option<String>,
    topic: String,
    segment: Option<String>,
    event: String,
    by_event: bool,
    rate: Option<u32>,
    quiet: Option<(String, String)>,
    error: Option<String>,
}

impl Form {
    pub(super) fn empty() -> Self {
        Self {
            id: None,
            name: String::new(),
            template: None,
            topic: String::new(),
            segment: None,
            event: String::new(),
            by_event: false,
            rate: None,
            quiet: None,
            error: None,
        }
    }

    /// A new campaign's form with a name, a template and a topic filled in.
    pub(super) fn prefilled(name: &str, template: Option<&Template>, topic: &str) -> Self {
        Self {
            name: name.to_owned(),
            template: template.map(|t| t.id.to_string()),
            topic: topic.to_owned(),
            ..Self::empty()
        }
    }

    pub(super) fn of(campaign: &Campaign) -> Self {
        let (by_event, event) = match &campaign.trigger {
            Trigger::Manual => (false, String::new()),
            Trigger::Event { event } => (true, event.clone()),
        };
        Self {
            id: Some(campaign.id),
            name: campaign.name.clone(),
            template: Some(campaign.template_id.to_string()),
            topic: campaign
                .topic
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            segment: campaign.segment_id.map(|s| s.to_string()),
            event,
            by_event,
            rate: campaign.rate_limit_per_second,
            quiet: campaign.quiet_hours.map(|q| {
                (
                    q.start.format("%H:%M").to_string(),
                    q.end.format("%H:%M").to_string(),
                )
            }),
            error: None,
        }
    }

    /// The draft the form describes, or what is wrong with it.
    fn draft(&self) -> Result<CampaignDraft, String> {
        let template_id = self
            .template
            .as_deref()
            .ok_or("choose a template")?
            .parse()
            .map_err(|_| "the template is not valid".to_owned())?;
        let topic = match self.topic.trim() {
            "" => None,
            topic => Some(Topic::parse(topic).map_err(|e| format!("topic: {e}"))?),
        };
        let segment_id = self
            .segment
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|_| "the segment is not valid".to_owned())?;
        let trigger = if self.by_event {
            let event = self.event.trim();
            if event.is_empty() {
                return Err("name the event that triggers the campaign".into());
            }
            Trigger::Event {
                event: event.to_owned(),
            }
        } else {
            Trigger::Manual
        };
        let quiet_hours = match &self.quiet {
            None => None,
            Some((start, end)) => {
                let time = |text: &str, what: &str| {
                    NaiveTime::parse_from_str(text.trim(), "%H:%M")
                        .map_err(|_| format!("quiet hours {what}: write it as 22:00"))
                };
                Some(QuietHours {
                    start: time(start, "start")?,
                    end: time(end, "end")?,
                })
            }
        };
        Ok(CampaignDraft {
            name: self.name.trim().to_owned(),
            topic,
            template_id,
            segment_id,
            trigger,
            schedule: Schedule::default(),
            rate_limit_per_second: self.rate,
            quiet_hours,
            status: None,
        })
    }
}

/// Draws the form; answers `true` when it is left.
pub(super) fn form_ui(
    ui: &mut egui::Ui,
    form: &mut Form,
    templates: &[Template],
    segments: &[Segment],
    backend: &mut Backend,
) -> bool {
    let mut leave = false;
    ui.horizontal(|ui| {
        if ui.button("Back to campaigns").clicked() {
            leave = true;
        }
        heading(
            ui,
            if form.id.is_some() {
                "Edit campaign"
            } else {
                "New campaign"
            },
        );
    });
    egui::Grid::new("campaign form")
        .num_columns(2)
        .spacing([12.0, 8.0])
        .show(ui, |ui| {
            ui.label("Name");
            ui.add(egui::TextEdit::singleline(&mut form.name).desired_width(320.0));
            ui.end_row();
            ui.label("Template");
            let chosen = templates
                .iter()
                .find(|t| Some(t.id.to_string()) == form.template)
                .map_or("choose…".to_owned(), |t| t.name.clone());
            egui::ComboBox::from_id_salt("template")
                .selected_text(chosen)
                .show_ui(ui, |ui| {
                    for template in templates {
                        ui.selectable_value(
                            &mut form.template,
                            Some(template.id.to_string()),
                            &template.name,
                        );
                    }
                });
            ui.end_row();
            ui.label("Topic");
            ui.add(
                egui::TextEdit::singleline(&mut form.topic)
                    .hint_text("subscribers of a topic, or empty"),
            );
            ui.end_row();
            ui.label("Segment");
            let chosen = segments
                .iter()
                .find(|s| Some(s.id.to_string()) == form.segment)
                .map_or("none".to_owned(), |s| s.name.clone());
            egui::ComboBox::from_id_salt("segment")
                .selected_text(chosen)
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut form.segment, None, "none");
                    for segment in segments {
                        ui.selectable_value(
                            &mut form.segment,
                            Some(segment.id.to_string()),
                            &segment.name,
                        );
                    }
                });
            ui.end_row();
            ui.label("Trigger");
            ui.horizontal(|ui| {
                ui.radio_value(&mut form.by_event, false, "launched by hand");
                ui.radio_value(&mut form.by_event, true, "each event named");
                if form.by_event {
                    ui.add(
                        egui::TextEdit::singleline(&mut form.event)
                            .hint_text("Dance Festival")
                            .desired_width(160.0),
                    );
                }
            });
            ui.end_row();
            ui.label("Rate");
            ui.horizontal(|ui| {
                let mut limited = form.rate.is_some();
                ui.checkbox(&mut limited, "at most");
                if limited {
                    let rate = form.rate.get_or_insert(10);
                    ui.add(
                        egui::DragValue::new(rate)
                            .range(1..=400)
                            .suffix(" per second"),
                    );
                } else {
                    form.rate = None;
                    ui.weak("the sender's ceiling");
                }
            });
            ui.end_row();
            ui.label("Quiet hours");
            ui.horizontal(|ui| {
                let mut quiet = form.quiet.is_some();
                ui.checkbox(&mut quiet, "none sent between");
                if quiet {
                    let (start, end) = form.quiet.get_or_insert(("22:00".into(), "07:00".into()));
                    ui.add(egui::TextEdit::singleline(start).desired_width(50.0));
                    ui.label("and");
                    ui.add(egui::TextEdit::singleline(end).desired_width(50.0));
                    ui.weak("in each recipient's time zone");
                } else {
                    form.quiet = None;
                }
            });
            ui.end_row();
        });
    error_line(ui, &form.error);
    if ui.add(egui::Button::new("Save")).clicked() {
        save(form, backend);
    }
    leave
}

pub(super) fn save(form: &mut Form, backend: &mut Backend) {
    let draft = match form.draft() {
        Ok(draft) => draft,
        Err(error) => {
            form.error = Some(error);
            return;
        }
    };
    let id = form.id;
    backend.run(move |engine| async move {
        let saved = match id {
            Some(id) => engine.update_campaign(id, draft).await,
            None => engine.create_campaign(draft).await,
        };
        Box::new(move |panels: &mut Panels| {
            let this = &mut panels.campaigns;
            match saved {
                Ok(campaign) => {
                    this.list = None;
                    this.view = View::Page(Box::new(CampaignPage::of(campaign)));
                }
                Err(error) => {
                    if let View::Form(form) = &mut this.view {
                        form.error = Some(describe(&error));
                    }
                }
            }
        }) as Update
    });
}
