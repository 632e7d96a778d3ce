//! The app: the side bar of panels, a status bar, and the frame loop that applies the engine's
//! answers before drawing. All state is in [`DesktopApp`]; each panel draws itself from its own
//! file; work goes to the engine through the [`Backend`].

use eframe::egui::{self, RichText};
use messaging_core::startup::RunningEngine;

use crate::backend::Backend;
use crate::panels::settings::{DesktopSettings, EngineState, STOP_GRACE, SettingsPanel, own_label};
use crate::panels::{Panel, Panels};

const SETTINGS_KEY: &str = "settings";
/// How often the app asks which process sends from the database.
const SENDER_CHECK: std::time::Duration = std::time::Duration::from_secs(5);
const PANEL_KEY: &str = "panel";

/// The desktop app.
pub struct DesktopApp {
    backend: Backend,
    panels: Panels,
    panel: Panel,
    running: Option<RunningEngine>,
    sender_checked_at: Option<std::time::Instant>,
}

impl DesktopApp {
    /// The app with `settings`, its engine work on `runtime`; the engine starts at once.
    pub fn new(runtime: tokio::runtime::Handle, settings: DesktopSettings, panel: Panel) -> Self {
        let mut app = Self {
            panels: Panels {
                settings: SettingsPanel::new(settings, &runtime),
                ..Panels::default()
            },
            backend: Backend::new(runtime),
            panel,
            running: None,
            sender_checked_at: None,
        };
        app.panels.settings.start(&mut app.backend);
        app
    }

    /// The app as eframe creates it: settings and the last panel from eframe's storage.
    pub fn from_creation(
        cc: &eframe::CreationContext<'_>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        let settings = cc
            .storage
            .and_then(|s| eframe::get_value(s, SETTINGS_KEY))
            .unwrap_or_default();
        let panel = cc
            .storage
            .and_then(|s| eframe::get_value(s, PANEL_KEY))
            .unwrap_or(Panel::Dashboard);
        let mut app = Self::new(runtime, settings, panel);
        app.backend.set_context(&cc.egui_ctx);
        app
    }

    /// The state of every panel (tests look at it).
    pub fn panels(&self) -> &Panels {
        &self.panels
    }

    /// The state of every panel, and the backend to run work with (tests drive panels so).
    pub fn parts(&mut self) -> (&mut Panels, &mut Backend) {
        (&mut self.panels, &mut self.backend)
    }

    /// Shows `panel`.
    pub fn show(&mut self, panel: Panel) {
        self.panel = panel;
    }

    /// Whether the engine runs and no work is in flight.
    pub fn idle(&self) -> bool {
        self.running.is_some() && !self.backend.busy() && !self.panels.users.importing()
    }

    fn take_started_engine(&mut self) {
        if let Some(running) = self.panels.started.take() {
            if let Some(old) = self.running.replace(running) {
                stop(old, &self.backend);
            }
            self.backend.set_engine(self.running.as_ref());
            self.panels.users.reload();
        }
    }

    fn restart(&mut self) {
        if let Some(old) = self.running.take() {
            stop(old, &self.backend);
        }
        self.backend.set_engine(None);
        self.panels.settings.start(&mut self.backend);
    }

    /// Asks every few seconds which process sends from the database, so the status bar can
    /// say when another one does (this app then waits and takes over when it stops).
    fn check_sender(&mut self) {
        if self
            .sender_checked_at
            .is_some_and(|at| at.elapsed() < SENDER_CHECK)
        {
            return;
        }
        self.sender_checked_at = Some(std::time::Instant::now());
        self.backend.run(|engine| async move {
            let sender = engine.current_sender().await.ok().flatten();
            Box::new(move |panels: &mut Panels| {
                panels.other_sender = sender.filter(|label| *label != own_label());
            }) as crate::backend::Update
        });
    }

    /// Draws one frame.
    pub fn frame(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.backend.set_context(&ctx);
        self.backend.apply(&mut self.panels);
        self.take_started_engine();
        if let Some(panel) = self.panels.go_to.take() {
            self.panel = panel;
        }
        self.check_sender();
        ui.ctx().request_repaint_after(SENDER_CHECK);
        egui::Panel::left("panels")
            .resizable(false)
            .exact_size(150.0)
            .show(ui, |ui| {
                ui.add_space(10.0);
                ui.label(RichText::new("Messaging").size(18.0).strong());
                ui.add_space(12.0);
                for panel in Panel::ALL {
                    let label = RichText::new(panel.title()).size(15.0);
                    if ui
                        .add_sized(
                            [ui.available_width(), 28.0],
                            egui::Button::selectable(self.panel == panel, label),
                        )
                        .clicked()
                    {
                        self.panel = panel;
                    }
                }
            });
        egui::Panel::bottom("status").show(ui, |ui| {
            ui.horizontal(|ui| {
                match &self.panels.settings.state {
                    EngineState::Running(mode) => {
                        ui.label(format!(
                            "{} · {mode}",
                            self.panels.settings.settings.database
                        ));
                    }
                    EngineState::Starting => {
                        ui.label("opening the database…");
                    }
                    EngineState::Failed(why) => {
                        ui.colored_label(ui.visuals().error_fg_color, why);
                    }
                    EngineState::Stopped => {
                        ui.label("stopped");
                    }
                }
                if let Some(other) = &self.panels.other_sender {
                    ui.separator();
                    ui.colored_label(
                        ui.visuals().warn_fg_color,
                        format!("{other} sends from this database; this app sends when it stops"),
                    );
                }
                if self.backend.busy() {
                    ui.spinner();
                }
            });
        });
        let mut restart = false;
        egui::CentralPanel::default_margins().show(ui, |ui| {
            match self.panel {
                // The users table scrolls itself, drawing only the rows in view.
                Panel::Users => self.panels.users.ui(ui, &mut self.backend),
                Panel::Templates => {
                    scrolled(ui, |ui| self.panels.templates.ui(ui, &mut self.backend))
                }
                Panel::Segments => {
                    scrolled(ui, |ui| self.panels.segments.ui(ui, &mut self.backend))
                }
                Panel::Campaigns => {
                    scrolled(ui, |ui| self.panels.campaigns.ui(ui, &mut self.backend))
                }
                Panel::Events => scrolled(ui, |ui| self.panels.events.ui(ui, &mut self.backend)),
                Panel::Inbound => scrolled(ui, |ui| self.panels.inbound.ui(ui, &mut self.backend)),
                Panel::Dashboard => {
                    egui::ScrollArea::vertical()
                        .auto_shrink(false)
                        .show(ui, |ui| self.panels.dashboard.ui(ui, &mut self.backend));
                }
                Panel::Settings => {
                    egui::ScrollArea::vertical()
                        .auto_shrink(false)
                        .show(ui, |ui| {
                            restart = self.panels.settings.ui(ui, self.backend.runtime());
                        });
                }
            }
        });
        if restart {
            self.restart();
        }
    }
}

/// A panel in a vertical scroll area filling the central panel.
fn scrolled(ui: &mut egui::Ui, panel: impl FnOnce(&mut egui::Ui)) {
    egui::ScrollArea::vertical()
        .auto_shrink(false)
        .show(ui, panel);
}

/// Stops an engine on its runtime, letting its sends in flight finish.
fn stop(running: RunningEngine, backend: &Backend) {
    running.stop();
    backend.runtime().spawn(async move {
        let _ = tokio::time::timeout(STOP_GRACE, running.finished()).await;
    });
}

impl eframe::App for DesktopApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.frame(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, SETTINGS_KEY, &self.panels.settings.settings);
        eframe::set_value(storage, PANEL_KEY, &self.panel);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        if let Some(running) = self.running.take() {
            running.stop();
            // The window is closing: sends in flight get a moment to answer.
            self.backend.runtime().block_on(async {
                let _ = tokio::time::timeout(STOP_GRACE, running.finished()).await;
            });
        }
    }
}
