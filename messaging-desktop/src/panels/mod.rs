//! The app's panels, one file each, and what they share: the state of every panel in one
//! struct ([`Panels`]), status colours, and how an engine error is shown.

pub mod campaigns;
pub mod dashboard;
pub mod events;
mod import;
pub mod inbound;
pub mod segments;
pub mod settings;
pub mod templates;
pub mod users;

use std::time::{Duration, Instant};

use eframe::egui::{self, Color32, RichText};
use messaging_core::EngineError;
use messaging_core::domain::MessageStatus;
use messaging_core::startup::RunningEngine;

/// Which panel is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Panel {
    /// Totals and the chart.
    Dashboard,
    /// Users, import, one user.
    Users,
    /// Templates with live preview.
    Templates,
    /// Segments with live count.
    Segments,
    /// Campaigns: create, preview, launch, monitor.
    Campaigns,
    /// Trigger events.
    Events,
    /// Conversations and replies.
    Inbound,
    /// Database, provider, rates.
    Settings,
}

impl Panel {
    /// Every panel, in the order of the side bar.
    pub const ALL: [Panel; 8] = [
        Panel::Dashboard,
        Panel::Users,
        Panel::Templates,
        Panel::Segments,
        Panel::Campaigns,
        Panel::Events,
        Panel::Inbound,
        Panel::Settings,
    ];

    /// The panel's name in the side bar.
    pub fn title(self) -> &'static str {
        match self {
            Panel::Dashboard => "Dashboard",
            Panel::Users => "Users",
            Panel::Templates => "Templates",
            Panel::Segments => "Segments",
            Panel::Campaigns => "Campaigns",
            Panel::Events => "Events",
            Panel::Inbound => "Inbound",
            Panel::Settings => "Settings",
        }
    }
}

/// The state of every panel, and the engine once started.
#[derive(Default)]
pub struct Panels {
    /// The dashboard's state.
    pub dashboard: dashboard::Dashboard,
    /// The users panel's state.
    pub users: users::Users,
    /// The templates panel's state.
    pub templates: templates::Templates,
    /// The segments panel's state.
    pub segments: segments::Segments,
    /// The campaigns panel's state.
    pub campaigns: campaigns::Campaigns,
    /// The events panel's state.
    pub events: events::Events,
    /// The inbound panel's state.
    pub inbound: inbound::Inbound,
    /// The settings panel's state.
    pub settings: settings::SettingsPanel,
    /// An engine that just started, for the app to take.
    pub started: Option<RunningEngine>,
    /// A panel to switch to (a link from one panel to another).
    pub go_to: Option<Panel>,
    /// Who sends from the database, when it is another process (its label).
    pub other_sender: Option<String>,
}

/// Waits for typing to pause before the engine is asked again (a live preview or count).
#[derive(Debug, Default)]
pub(crate) struct TypingPause {
    edited_at: Option<Instant>,
    due_now: bool,
}

impl TypingPause {
    /// A pause that is over at once: the first answer is asked for without waiting.
    pub(crate) fn over() -> Self {
        Self {
            edited_at: None,
            due_now: true,
        }
    }

    /// Something was typed: wait again.
    pub(crate) fn typed(&mut self) {
        self.edited_at = Some(Instant::now());
    }

    /// Ask at the next frame, without waiting.
    pub(crate) fn ask_now(&mut self) {
        self.due_now = true;
    }

    /// Whether to ask now: once `after` has passed since the last keystroke (or at once when
    /// asked for); meanwhile the window repaints when the pause ends.
    pub(crate) fn over_after(&mut self, ui: &egui::Ui, after: Duration) -> bool {
        if std::mem::take(&mut self.due_now) {
            self.edited_at = None;
            return true;
        }
        match self.edited_at {
            Some(at) if at.elapsed() >= after => {
                self.edited_at = None;
                true
            }
            Some(_) => {
                ui.ctx().request_repaint_after(after);
                false
            }
            None => false,
        }
    }
}

/// The colour of a message status: green delivered and read, blue on its way, red failed,
/// amber skipped or deferred.
pub fn status_colour(status: MessageStatus, dark: bool) -> Color32 {
    use MessageStatus::*;
    match (status, dark) {
        (Delivered | Read, true) => Color32::from_rgb(74, 222, 128),
        (Delivered | Read, false) => Color32::from_rgb(22, 128, 61),
        (Sent | Sending | Queued | Pending, true) => Color32::from_rgb(96, 165, 250),
        (Sent | Sending | Queued | Pending, false) => Color32::from_rgb(29, 78, 216),
        (Failed | Undelivered, true) => Color32::from_rgb(248, 113, 113),
        (Failed | Undelivered, false) => Color32::from_rgb(185, 28, 28),
        (_, true) => Color32::from_rgb(251, 191, 36),
        (_, false) => Color32::from_rgb(161, 98, 7),
    }
}

/// A message status as a coloured label.
pub fn status_label(ui: &mut egui::Ui, status: MessageStatus) {
    let colour = status_colour(status, ui.visuals().dark_mode);
    ui.label(RichText::new(status.as_str()).color(colour).strong());
}

/// What an engine error says to a person, with every field it names.
pub fn describe(error: &EngineError) -> String {
    error.to_string()
}

/// An error, shown in red (nothing when there is none).
pub fn error_line(ui: &mut egui::Ui, error: &Option<String>) {
    if let Some(error) = error {
        ui.colored_label(ui.visuals().error_fg_color, error);
    }
}

/// A heading with the spacing every panel uses.
pub fn heading(ui: &mut egui::Ui, text: &str) {
    ui.add_space(4.0);
    ui.heading(text);
    ui.add_space(8.0);
}

/// A big number with its caption, as the dashboard's tiles.
pub fn tile(ui: &mut egui::Ui, caption: &str, value: String, colour: Option<Color32>) {
    // A size known before drawing lets a wrapping row start a new line instead of overflowing.
    ui.allocate_ui(egui::vec2(150.0, 64.0), |ui| {
        tile_frame(ui, caption, value, colour)
    });
}

fn tile_frame(ui: &mut egui::Ui, caption: &str, value: String, colour: Option<Color32>) {
    egui::Frame::group(ui.style())
        .inner_margin(egui::Margin::symmetric(14, 10))
        .show(ui, |ui| {
            ui.set_min_width(120.0);
            ui.vertical(|ui| {
                ui.label(RichText::new(caption).small().weak());
                let text = RichText::new(value).size(22.0).strong();
                ui.label(match colour {
                    Some(colour) => text.color(colour),
                    None => text,
                });
            });
        });
}

/// The tiles of messages per status, each in its status's colour: queued (pending, queued,
/// sending), sent, delivered (delivered and read), read, failed (failed and undelivered),
/// skipped and deferred.
pub fn status_tiles(ui: &mut egui::Ui, by_status: &std::collections::BTreeMap<MessageStatus, u64>) {
    use MessageStatus::*;
    const TILES: [(&str, &[MessageStatus], MessageStatus); 7] = [
        ("queued", &[Pending, Queued, Sending], Queued),
        ("sent", &[Sent], Sent),
        ("delivered", &[Delivered, Read], Delivered),
        ("read", &[Read], Read),
        ("failed", &[Failed, Undelivered], Failed),
        ("skipped", &[Skipped], Skipped),
        ("deferred", &[Deferred], Deferred),
    ];
    let dark = ui.visuals().dark_mode;
    for (caption, statuses, colour) in TILES {
        let n = statuses
            .iter()
            .map(|s| by_status.get(s).copied().unwrap_or(0))
            .sum();
        tile(ui, caption, count(n), Some(status_colour(colour, dark)));
    }
}

/// A count with thousands separators (`1,000,000`).
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(super::count(0), "0");
        assert_eq!(super::count(999), "999");
        assert_eq!(super::count(1_000), "1,000");
        assert_eq!(super::count(1_234_567), "1,234,567");
    }
}
