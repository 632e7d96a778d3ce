//! One campaign's page: its settings, the commands its state allows (each confirmed), the live
//! monitor of its counts per status, its preview, and its messages with their timelines.

use std::time::Instant;

use eframe::egui::{self, RichText};
use messaging_core::domain::{
    Campaign, CampaignCommand, CampaignId, CampaignStatus, Message, MessageStatus, SendAs, Topic,
};
use messaging_core::engine::{CampaignPreview, Stats};
use messaging_core::store::{MessageQuery, PageRequest};

use super::super::{Panels, count, describe, error_line, heading, status_label, status_tiles};
use super::form::Form;
use super::{REFRESH, View, campaign_status, trigger_text};
use crate::backend::{Backend, Update};

/// One campaign's page.
pub(super) struct CampaignPage {
    pub(super) campaign: Campaign,
    confirm: Option<CampaignCommand>,
    preview: Option<Result<CampaignPreview, String>>,
    pub(super) stats: Option<Stats>,
    messages: Vec<Message>,
    timeline: Option<Message>,
    refreshed_at: Option<Instant>,
    notice: Option<String>,
    error: Option<String>,
}

impl CampaignPage {
    pub(super) fn of(campaign: Campaign) -> Self {
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
pub(super) fn page_ui(ui: &mut egui::Ui, page: &mut CampaignPage, backend: &mut Backend) -> bool {
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

pub(super) fn run_command(
    page: &mut CampaignPage,
    command: CampaignCommand,
    backend: &mut Backend,
) {
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
    ui.horizontal_wrapped(|ui| status_tiles(ui, &stats.by_status));
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
                    for title in ["Recipient", "Message", "Sent as, or why it is skipped"] {
                        ui.strong(title);
                    }
                    ui.end_row();
                    for sample in &preview.sample {
                        ui.label(sample.user.as_str());
                        ui.label(sample.body.as_deref().unwrap_or("—"));
                        match (&sample.skip_reason, sample.send_as) {
                            (Some(reason), _) => ui.add(
                                egui::Label::new(
                                    RichText::new(format!("skipped: {reason}"))
                                        .color(ui.visuals().error_fg_color),
                                )
                                .wrap(),
                            ),
                            (None, Some(SendAs::FreeText)) => ui.label("free text"),
                            (None, Some(SendAs::ApprovedTemplate)) => ui.label("approved template"),
                            (None, None) => ui.label("—"),
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
