//! Campaigns: the list; a form to create and edit one (template, topic, segment, manual or
//! event trigger, rate, quiet hours); a campaign's page with its preview (recipients, sample
//! messages, why anyone would be skipped), launch, pause, resume and cancel (each confirmed,
//! each offered only when the engine's lifecycle allows it), a live monitor of its progress
//! and counts per status, and its messages with each one's timeline.

use std::time::{Duration, Instant};

use chrono::NaiveTime;
use eframe::egui::{self, RichText};
use messaging_core::domain::{
    Campaign, CampaignCommand, CampaignDraft, CampaignId, CampaignStatus, Message, MessageStatus,
    QuietHours, Schedule, Segment, Template, Topic, Trigger,
};
use messaging_core::engine::{CampaignPreview, Stats};
use messaging_core::store::{CampaignQuery, MessageQuery, PageRequest};

use super::{Panels, count, describe, error_line, heading, status_colour, status_label, tile};
use crate::backend::{Backend, Update};

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

/// The create or edit form (`id` is `None` for a new campaign).
struct Form {
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

/// One campaign's page.
struct CampaignPage {
    campaign: Campaign,
    confirm: Option<CampaignCommand>,
    preview: Option<Result<CampaignPreview, String>>,
    stats: Option<Stats>,
    messages: Vec<Message>,
    timeline: Option<Message>,
    refreshed_at: Option<Instant>,
    notice: Option<String>,
    error: Option<String>,
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
        self.view = View::Form(Box::new(Form {
            id: None,
            name: name.to_owned(),
            template: template.map(|t| t.id.to_string()),
            topic: topic.to_owned(),
            segment: None,
            event: String::new(),
            by_event: false,
            rate: None,
            quiet: None,
            error: None,
        }));
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

impl Form {
    fn empty() -> Self {
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

    fn of(campaign: &Campaign) -> Self {
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
fn form_ui(
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

fn save(form: &mut Form, backend: &mut Backend) {
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

impl CampaignPage {
    fn of(campaign: Campaign) -> Self {
        Self {
            campaign,
            confirm: None,
            preview: None,
            stats: None,
            messages: Vec::new(),
            timeline: None,
            refreshed_at: None,
            notice: None,
            error: None,
        }
    }
}

/// The commands a person may give, in the order of the buttons; each is offered only when
/// the engine's lifecycle allows it from the campaign's state.
const COMMANDS: [(CampaignCommand, &str, &str); 4] = [
    (
        CampaignCommand::Launch,
        "Launch",
        "Messages go out to every recipient it resolves (an event campaign starts listening).",
    ),
    (
        CampaignCommand::Pause,
        "Pause",
        "Nothing more is sent until it is resumed.",
    ),
    (
        CampaignCommand::Resume,
        "Resume",
        "Sending goes on where it stopped.",
    ),
    (
        CampaignCommand::Cancel,
        "Cancel campaign",
        "Messages not yet sent are never sent.",
    ),
];

/// Draws a campaign's page; answers `true` when it is left.
fn page_ui(ui: &mut egui::Ui, page: &mut CampaignPage, backend: &mut Backend) -> bool {
    if page.refreshed_at.is_none_or(|at| at.elapsed() >= REFRESH) {
        page.refreshed_at = Some(Instant::now());
        refresh(page.campaign.id, backend);
    }
    ui.ctx().request_repaint_after(REFRESH);
    let mut leave = false;
    ui.horizontal(|ui| {
        if ui.button("Back to campaigns").clicked() {
            leave = true;
        }
        heading(ui, &page.campaign.name);
        campaign_status(ui, page.campaign.status);
    });
    ui.horizontal(|ui| {
        for (command, label, _) in COMMANDS {
            if page.campaign.status.apply(command).is_ok() && ui.button(label).clicked() {
                page.confirm = Some(command);
            }
        }
        let editable = matches!(
            page.campaign.status,
            CampaignStatus::Draft | CampaignStatus::Paused | CampaignStatus::Scheduled
        );
        if editable && ui.button("Edit").clicked() {
            // Editing happens in the form; the page reopens when it is saved.
            backend.spawn(edit(page.campaign.clone()));
        }
    });
    if let Some(command) = page.confirm {
        let (_, label, meaning) = COMMANDS
            .iter()
            .find(|(c, _, _)| *c == command)
            .copied()
            .unwrap_or(COMMANDS[0]);
        egui::Frame::group(ui.style())
            .inner_margin(10)
            .show(ui, |ui| {
                ui.label(RichText::new(format!("{label}: are you sure?")).strong());
                ui.label(meaning);
                ui.horizontal(|ui| {
                    if ui.button(RichText::new(label).strong()).clicked() {
                        run_command(page, command, backend);
                    }
                    if ui.button("Keep it as it is").clicked() {
                        page.confirm = None;
                    }
                });
            });
    }
    if let Some(notice) = &page.notice {
        ui.label(RichText::new(notice).strong());
    }
    error_line(ui, &page.error);
    if let Some(problem) = &page.campaign.problem {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            format!("Paused by itself: {problem}"),
        );
    }
    ui.add_space(6.0);
    ui.label(format!(
        "{} · topic {} · rate {} · quiet hours {}",
        trigger_text(&page.campaign.trigger),
        page.campaign.topic.as_ref().map_or("any", Topic::as_str),
        page.campaign
            .rate_limit_per_second
            .map_or("the sender's ceiling".into(), |r| format!("{r}/s")),
        page.campaign.quiet_hours.map_or("none".into(), |q| format!(
            "{}–{}",
            q.start.format("%H:%M"),
            q.end.format("%H:%M")
        )),
    ));
    ui.add_space(8.0);
    monitor_ui(ui, page);
    ui.add_space(8.0);
    preview_ui(ui, page, backend);
    ui.add_space(8.0);
    messages_ui(ui, page, backend);
    leave
}

async fn edit(campaign: Campaign) -> Update {
    Box::new(move |panels: &mut Panels| {
        panels.campaigns.view = View::Form(Box::new(Form::of(&campaign)));
    })
}

fn run_command(page: &mut CampaignPage, command: CampaignCommand, backend: &mut Backend) {
    page.confirm = None;
    page.error = None;
    let id = page.campaign.id;
    backend.run(move |engine| async move {
        let done = match command {
            CampaignCommand::Launch => engine.launch_campaign(id).await.map(|(campaign, run)| {
                let notice = run.map(|r| {
                    format!(
                        "Launched: {} messages written to the outbox.",
                        count(r.messages)
                    )
                });
                (campaign, notice)
            }),
            other => engine.command_campaign(id, other).await.map(|c| (c, None)),
        };
        Box::new(move |panels: &mut Panels| {
            if let View::Page(page) = &mut panels.campaigns.view
                && page.campaign.id == id
            {
                match done {
                    Ok((campaign, notice)) => {
                        page.campaign = campaign;
                        page.notice = notice;
                        page.refreshed_at = None;
                    }
                    Err(error) => page.error = Some(describe(&error)),
                }
            }
            panels.campaigns.list = None;
        }) as Update
    });
}

fn refresh(id: CampaignId, backend: &mut Backend) {
    backend.run(move |engine| async move {
        let campaign = engine.get_campaign(id).await;
        let stats = engine.stats(Some(id)).await;
        let query = MessageQuery {
            campaign_id: Some(id),
            ..MessageQuery::default()
        };
        let messages = engine
            .list_messages(
                &query,
                &PageRequest {
                    limit: 50,
                    ..PageRequest::default()
                },
            )
            .await;
        Box::new(move |panels: &mut Panels| {
            if let View::Page(page) = &mut panels.campaigns.view
                && page.campaign.id == id
            {
                match (campaign, stats, messages) {
                    (Ok(campaign), Ok(stats), Ok(messages)) => {
                        page.campaign = campaign;
                        page.stats = Some(stats);
                        page.messages = messages.items;
                    }
                    (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                        page.error = Some(describe(&e))
                    }
                }
            }
        }) as Update
    });
}

const FINISHED: [MessageStatus; 6] = [
    MessageStatus::Sent,
    MessageStatus::Delivered,
    MessageStatus::Read,
    MessageStatus::Failed,
    MessageStatus::Undelivered,
    MessageStatus::Skipped,
];

fn monitor_ui(ui: &mut egui::Ui, page: &CampaignPage) {
    ui.label(RichText::new("Monitor").strong());
    let Some(stats) = &page.stats else {
        ui.weak("Loading…");
        return;
    };
    let by = |s: MessageStatus| stats.by_status.get(&s).copied().unwrap_or(0);
    let done: u64 = FINISHED.iter().map(|s| by(*s)).sum();
    if stats.messages == 0 {
        ui.weak(if page.campaign.status == CampaignStatus::Draft {
            "Not launched yet."
        } else {
            "No messages yet."
        });
    } else {
        let fraction = done as f32 / stats.messages as f32;
        ui.add(
            egui::ProgressBar::new(fraction)
                .desired_width(520.0)
                .text(format!(
                    "{} of {} messages finished ({:.0} %)",
                    count(done),
                    count(stats.messages),
                    fraction * 100.0
                )),
        );
    }
    let dark = ui.visuals().dark_mode;
    ui.horizontal_wrapped(|ui| {
        tile(
            ui,
            "queued",
            count(
                by(MessageStatus::Pending) + by(MessageStatus::Queued) + by(MessageStatus::Sending),
            ),
            Some(status_colour(MessageStatus::Queued, dark)),
        );
        tile(
            ui,
            "sent",
            count(by(MessageStatus::Sent)),
            Some(status_colour(MessageStatus::Sent, dark)),
        );
        tile(
            ui,
            "delivered",
            count(by(MessageStatus::Delivered) + by(MessageStatus::Read)),
            Some(status_colour(MessageStatus::Delivered, dark)),
        );
        tile(
            ui,
            "read",
            count(by(MessageStatus::Read)),
            Some(status_colour(MessageStatus::Read, dark)),
        );
        tile(
            ui,
            "failed",
            count(by(MessageStatus::Failed) + by(MessageStatus::Undelivered)),
            Some(status_colour(MessageStatus::Failed, dark)),
        );
        tile(
            ui,
            "skipped",
            count(by(MessageStatus::Skipped)),
            Some(status_colour(MessageStatus::Skipped, dark)),
        );
        tile(
            ui,
            "deferred",
            count(by(MessageStatus::Deferred)),
            Some(status_colour(MessageStatus::Deferred, dark)),
        );
    });
    if !stats.skipped_by_step.is_empty() {
        ui.label(RichText::new("Why messages were skipped").strong());
        for skipped in &stats.skipped_by_step {
            ui.label(format!(
                "{} × {}: {}",
                count(skipped.count),
                skipped.step,
                skipped.reason
            ));
        }
    }
}

fn preview_ui(ui: &mut egui::Ui, page: &mut CampaignPage, backend: &mut Backend) {
    ui.horizontal(|ui| {
        ui.label(RichText::new("Preview").strong());
        if ui.button("Preview recipients and messages").clicked() {
            page.preview = None;
            let id = page.campaign.id;
            backend.run(move |engine| async move {
                let preview = engine.preview_campaign(id, 10).await;
                Box::new(move |panels: &mut Panels| {
                    if let View::Page(page) = &mut panels.campaigns.view
                        && page.campaign.id == id
                    {
                        page.preview = Some(preview.map_err(|e| describe(&e)));
                    }
                }) as Update
            });
        }
    });
    match &page.preview {
        Some(Ok(preview)) => {
            ui.label(format!(
                "{} recipients, {} opted in, {} would be skipped as opted out",
                count(preview.recipients),
                count(preview.opted_in),
                count(preview.recipients - preview.opted_in)
            ));
            egui::Grid::new("preview")
                .striped(true)
                .spacing([12.0, 4.0])
                .show(ui, |ui| {
                    for title in ["Recipient", "Message", "Sent as", "Skip reason"] {
                        ui.strong(title);
                    }
                    ui.end_row();
                    for sample in &preview.sample {
                        ui.label(sample.user.as_str());
                        ui.label(sample.body.as_deref().unwrap_or("—"));
                        ui.label(sample.send_as.map_or("—".into(), |s| format!("{s:?}")));
                        match &sample.skip_reason {
                            Some(reason) => ui.colored_label(ui.visuals().error_fg_color, reason),
                            None => ui.label("—"),
                        };
                        ui.end_row();
                    }
                });
        }
        Some(Err(error)) => {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        None => {}
    }
}

fn messages_ui(ui: &mut egui::Ui, page: &mut CampaignPage, backend: &mut Backend) {
    ui.label(RichText::new("Messages").strong());
    if page.messages.is_empty() {
        ui.weak("None yet.");
    }
    egui::Grid::new("messages")
        .striped(true)
        .spacing([12.0, 4.0])
        .show(ui, |ui| {
            for message in &page.messages {
                ui.label(message.user.as_str());
                status_label(ui, message.status);
                ui.label(message.error_code.as_deref().unwrap_or(""));
                if ui.small_button("Timeline").clicked() {
                    let id = message.id;
                    backend.run(move |engine| async move {
                        let found = engine.get_message(id).await;
                        Box::new(move |panels: &mut Panels| {
                            if let View::Page(page) = &mut panels.campaigns.view {
                                match found {
                                    Ok(message) => page.timeline = Some(message),
                                    Err(error) => page.error = Some(describe(&error)),
                                }
                            }
                        }) as Update
                    });
                }
                ui.end_row();
            }
        });
    if let Some(message) = &page.timeline {
        egui::Frame::group(ui.style())
            .inner_margin(10)
            .show(ui, |ui| {
                ui.label(
                    RichText::new(format!("Timeline of the message to {}", message.user)).strong(),
                );
                ui.label(&message.body);
                for change in &message.history {
                    ui.horizontal(|ui| {
                        ui.weak(change.at.format("%H:%M:%S%.3f").to_string());
                        status_label(ui, change.status);
                    });
                }
                for decision in &message.decisions {
                    ui.horizontal(|ui| {
                        ui.weak(decision.at.format("%H:%M:%S%.3f").to_string());
                        ui.monospace(&decision.step);
                        ui.label(&decision.reason);
                    });
                }
            });
    }
}
