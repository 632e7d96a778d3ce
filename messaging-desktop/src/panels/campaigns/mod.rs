//! Campaigns: the list; a form to create and edit one (template, topic, segment, manual or
//! event trigger, rate, quiet hours); a campaign's page with its preview (recipients, sample
//! messages, why anyone would be skipped), launch, pause, resume and cancel (each confirmed,
//! each offered only when the engine's lifecycle allows it), a live monitor of its progress
//! and counts per status, and its messages with each one's timeline.

mod form;
mod page;

use std::time::Duration;

use eframe::egui::{self, RichText};
use messaging_core::domain::{
    Campaign, CampaignCommand, CampaignStatus, MessageStatus, Segment, Template, Topic, Trigger,
};
use messaging_core::engine::Stats;
use messaging_core::store::{CampaignQuery, PageRequest};

use super::{Panels, describe, error_line, heading, status_colour};
use crate::backend::{Backend, Update};
use form::{Form, form_ui, save};
use page::{CampaignPage, page_ui, run_command};

/// How often the monitor refreshes while a campaign is shown.
const REFRESH: Duration = Duration::from_secs(2);

/// The campaigns panel's state.
#[derive(Default)]
pub struct Campaigns {
    list: Option<Vec<Campaign>>,
    templates: Vec<Template>,
    segments: Vec<Segment>,
    error: Option<String>,
    view: View,
}

#[derive(Default)]
enum View {
    #[default]
    List,
    Form(Box<Form>),
    Page(Box<CampaignPage>),
}

impl Campaigns {
    fn load(&mut self, backend: &mut Backend) {
        self.list = Some(Vec::new());
        backend.run(|engine| async move {
            let page = PageRequest {
                limit: 500,
                ..PageRequest::default()
            };
            let campaigns = engine
                .list_campaigns(&CampaignQuery::default(), &page)
                .await;
            let templates = engine.list_templates(None, &page).await;
            let segments = engine.list_segments(None, &page).await;
            Box::new(move |panels: &mut Panels| {
                let this = &mut panels.campaigns;
                match (campaigns, templates, segments) {
                    (Ok(c), Ok(t), Ok(s)) => {
                        this.list = Some(c.items);
                        this.templates = t.items;
                        this.segments = s.items;
                        this.error = None;
                    }
                    (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                        this.error = Some(describe(&e))
                    }
                }
            }) as Update
        });
    }

    /// Opens the form for a new campaign with `template` chosen.
    pub fn new_campaign(&mut self, name: &str, template: Option<&Template>, topic: &str) {
        self.view = View::Form(Box::new(Form::prefilled(name, template, topic)));
    }

    /// The templates the form offers (tests pick one).
    pub fn templates(&self) -> &[Template] {
        &self.templates
    }

    /// Saves the form as a user would with its Save button.
    pub fn submit(&mut self, backend: &mut Backend) {
        if let View::Form(form) = &mut self.view {
            save(form, backend);
        }
    }

    /// Asks for `command` on the open campaign and confirms it, as the buttons do.
    pub fn command(&mut self, command: CampaignCommand, backend: &mut Backend) {
        if let View::Page(page) = &mut self.view {
            run_command(page, command, backend);
        }
    }

    /// The open campaign, its last stats and the notice of its last command (tests read them).
    pub fn open_campaign(&self) -> Option<(&Campaign, Option<&Stats>)> {
        match &self.view {
            View::Page(page) => Some((&page.campaign, page.stats.as_ref())),
            _ => None,
        }
    }

    /// Draws the panel.
    pub fn ui(&mut self, ui: &mut egui::Ui, backend: &mut Backend) {
        if self.list.is_none() && backend.engine().is_some() {
            self.load(backend);
        }
        let mut next = None;
        match &mut self.view {
            View::List => {
                heading(ui, "Campaigns");
                error_line(ui, &self.error);
                if ui.button("New campaign").clicked() {
                    next = Some(View::Form(Box::new(Form::empty())));
                }
                ui.add_space(6.0);
                list_ui(ui, self.list.as_deref().unwrap_or_default(), &mut next);
            }
            View::Form(form) => {
                if form_ui(ui, form, &self.templates, &self.segments, backend) {
                    next = Some(View::List);
                }
            }
            View::Page(page) => {
                if page_ui(ui, page, backend) {
                    next = Some(View::List);
                    self.list = None;
                }
            }
        }
        if let Some(view) = next {
            self.view = view;
        }
    }
}

fn list_ui(ui: &mut egui::Ui, campaigns: &[Campaign], next: &mut Option<View>) {
    if campaigns.is_empty() {
        ui.weak("No campaigns yet: create one from a template.");
        return;
    }
    egui::Grid::new("campaigns")
        .striped(true)
        .spacing([16.0, 6.0])
        .show(ui, |ui| {
            for title in ["Name", "Status", "Trigger", "Topic", "Created"] {
                ui.strong(title);
            }
            ui.end_row();
            for campaign in campaigns {
                if ui.link(&campaign.name).clicked() {
                    *next = Some(View::Page(Box::new(CampaignPage::of(campaign.clone()))));
                }
                campaign_status(ui, campaign.status);
                ui.label(trigger_text(&campaign.trigger));
                ui.label(campaign.topic.as_ref().map_or("—", Topic::as_str));
                ui.label(campaign.created_at.format("%Y-%m-%d %H:%M").to_string());
                ui.end_row();
            }
        });
}

fn campaign_status(ui: &mut egui::Ui, status: CampaignStatus) {
    let as_message = match status {
        CampaignStatus::Running => MessageStatus::Sent,
        CampaignStatus::Completed => MessageStatus::Delivered,
        CampaignStatus::Cancelled => MessageStatus::Failed,
        CampaignStatus::Paused | CampaignStatus::Scheduled => MessageStatus::Deferred,
        CampaignStatus::Draft => MessageStatus::Pending,
    };
    let colour = if status == CampaignStatus::Draft {
        ui.visuals().weak_text_color()
    } else {
        status_colour(as_message, ui.visuals().dark_mode)
    };
    ui.label(RichText::new(status.as_str()).color(colour).strong());
}

fn trigger_text(trigger: &Trigger) -> String {
    match trigger {
        Trigger::Manual => "manual".into(),
        Trigger::Event { event } => format!("event “{event}”"),
    }
}
