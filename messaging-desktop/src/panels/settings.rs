//! Settings: the database file, the provider (the sandbox, or Twilio with its account, sender
//! and auth token) and the send rate. They are kept between runs (eframe's storage); the
//! Twilio auth token is kept in the operating system's keychain when there is one, and
//! otherwise asked for at each start (or read from `TWILIO_AUTH_TOKEN`), never written in
//! plain text. Applying them restarts the engine.

use std::time::Duration;

use eframe::egui::{self, RichText};
use messaging_core::domain::PhoneNumber;
use messaging_core::engine::{DispatchConfig, PollConfig};
use messaging_core::provider::{
    Sender, TWILIO_SANDBOX_NUMBER, TWILIO_SANDBOX_SEND_RATE, TwilioConfig,
};
use messaging_core::startup::{ProviderSettings, Startup};
use serde::{Deserialize, Serialize};

use super::{Panels, error_line, heading};
use crate::backend::{Backend, Update};

/// How often Twilio is asked for statuses and replies.
const POLL_EVERY: Duration = Duration::from_secs(15);

/// The keychain service the auth token is kept under (one entry per account SID).
const KEYCHAIN_SERVICE: &str = "messaging-desktop";

/// What is kept between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DesktopSettings {
    /// The SQLite file.
    pub database: String,
    /// Send through Twilio (otherwise the sandbox).
    pub twilio: bool,
    /// Twilio's account SID.
    pub account_sid: String,
    /// The WhatsApp sender, `+14155238886`.
    pub sender: String,
    /// The sender's ceiling in messages per second.
    pub send_rate_per_second: f64,
}

impl Default for DesktopSettings {
    fn default() -> Self {
        Self {
            database: std::env::var("DATABASE_URL")
                .ok()
                .and_then(|url| url.strip_prefix("sqlite://").map(str::to_owned))
                .unwrap_or_else(|| "messaging.db".into()),
            twilio: false,
            account_sid: String::new(),
            sender: String::new(),
            send_rate_per_second: 80.0,
        }
    }
}

/// Where the engine stands.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum EngineState {
    /// Not started yet.
    #[default]
    Stopped,
    /// Opening the database.
    Starting,
    /// Running, sending through this provider.
    Running(&'static str),
    /// Could not start, for this reason.
    Failed(String),
}

/// The settings panel's state.
#[derive(Default)]
pub struct SettingsPanel {
    /// The settings in force.
    pub settings: DesktopSettings,
    /// The settings being edited.
    draft: Option<DesktopSettings>,
    /// The auth token as typed or found (kept in memory only).
    auth_token: String,
    /// Where the token came from, to say so.
    token_source: &'static str,
    /// Whether the engine runs, and how.
    pub state: EngineState,
    error: Option<String>,
}

impl SettingsPanel {
    /// The panel with these settings; the auth token is looked up in the environment and the
    /// keychain.
    pub fn new(settings: DesktopSettings, runtime: &tokio::runtime::Handle) -> Self {
        let mut this = Self {
            settings,
            ..Self::default()
        };
        this.find_token(runtime);
        this
    }

    fn find_token(&mut self, runtime: &tokio::runtime::Handle) {
        if let Ok(token) = std::env::var("TWILIO_AUTH_TOKEN")
            && !token.is_empty()
        {
            self.auth_token = token;
            self.token_source = "from TWILIO_AUTH_TOKEN";
            return;
        }
        if self.settings.account_sid.is_empty() {
            return;
        }
        let account = self.settings.account_sid.clone();
        if let Ok(token) = keychain(runtime, move || {
            keyring::Entry::new(KEYCHAIN_SERVICE, &account)?.get_password()
        }) {
            self.auth_token = token;
            self.token_source = "from the keychain";
        }
    }

    /// The start-up these settings describe.
    pub fn startup(&self) -> Result<Startup, String> {
        let settings = &self.settings;
        let provider = if settings.twilio {
            if self.auth_token.is_empty() {
                return Err("Twilio needs its auth token: type it in Settings.".into());
            }
            let number = settings.sender.trim();
            let sender = PhoneNumber::parse(number.strip_prefix("whatsapp:").unwrap_or(number))
                .map(Sender::Number)
                .map_err(|error| format!("sender: {error}"))?;
            ProviderSettings::Twilio(TwilioConfig::new(
                settings.account_sid.trim(),
                self.auth_token.trim(),
                sender,
            ))
        } else {
            ProviderSettings::sandbox()
        };
        let twilio = matches!(provider, ProviderSettings::Twilio(_));
        // Twilio's shared sandbox number takes one message every 3 s, whatever is set.
        let sandbox_number =
            matches!(&provider, ProviderSettings::Twilio(t) if t.sender.is_twilio_sandbox());
        let send_rate_per_second = if sandbox_number {
            settings.send_rate_per_second.min(TWILIO_SANDBOX_SEND_RATE)
        } else {
            settings.send_rate_per_second
        };
        let startup = Startup::new(format!("sqlite://{}", settings.database), provider).dispatch(
            DispatchConfig {
                send_rate_per_second,
                label: own_label(),
                ..DispatchConfig::default()
            },
        );
        // A laptop has no public URL for Twilio's callbacks: statuses and replies are polled.
        Ok(if twilio {
            startup.poll_twilio(PollConfig::every(POLL_EVERY))
        } else {
            startup
        })
    }

    /// Starts the engine with the settings in force; the app takes it when it is up.
    pub fn start(&mut self, backend: &mut Backend) {
        let startup = match self.startup() {
            Ok(startup) => startup,
            Err(error) => {
                self.state = EngineState::Failed(error);
                return;
            }
        };
        self.state = EngineState::Starting;
        backend.spawn(async move {
            // The engine runs until the app stops it (or the window closes).
            let started = startup.start(std::future::pending::<()>()).await;
            Box::new(move |panels: &mut Panels| match started {
                Ok(running) => {
                    panels.settings.state = EngineState::Running(running.provider_mode());
                    panels.started = Some(running);
                }
                Err(error) => panels.settings.state = EngineState::Failed(error.to_string()),
            }) as Update
        });
    }

    /// Draws the panel; answers `true` when the settings were applied (the engine restarts).
    pub fn ui(&mut self, ui: &mut egui::Ui, runtime: &tokio::runtime::Handle) -> bool {
        heading(ui, "Settings");
        match &self.state {
            EngineState::Running(mode) => {
                let through = if *mode == "twilio" {
                    "Twilio"
                } else {
                    "the sandbox"
                };
                ui.label(format!(
                    "The engine is running on {}, sending through {through}.",
                    self.settings.database
                ));
            }
            EngineState::Starting => {
                ui.label("Opening the database…");
            }
            EngineState::Failed(why) => {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("The engine did not start: {why}"),
                );
            }
            EngineState::Stopped => {
                ui.label("The engine is stopped.");
            }
        }
        ui.add_space(8.0);
        let draft = self.draft.get_or_insert_with(|| self.settings.clone());
        egui::Grid::new("settings")
            .num_columns(2)
            .spacing([12.0, 8.0])
            .show(ui, |ui| {
                ui.label("Database file");
                ui.horizontal(|ui| {
                    ui.text_edit_singleline(&mut draft.database);
                    if ui.button("Choose…").clicked()
                        && let Some(path) = rfd::FileDialog::new()
                            .add_filter("SQLite database", &["db", "sqlite", "sqlite3"])
                            .set_file_name("messaging.db")
                            .save_file()
                    {
                        draft.database = path.display().to_string();
                    }
                });
                ui.end_row();
                ui.label("Provider");
                ui.horizontal(|ui| {
                    ui.radio_value(
                        &mut draft.twilio,
                        false,
                        "Sandbox (nothing leaves this machine)",
                    );
                    ui.radio_value(&mut draft.twilio, true, "Twilio");
                });
                ui.end_row();
                if draft.twilio {
                    ui.label("Account SID");
                    ui.add(egui::TextEdit::singleline(&mut draft.account_sid).hint_text("AC…"));
                    ui.end_row();
                    ui.label("Auth token");
                    ui.horizontal(|ui| {
                        ui.add(egui::TextEdit::singleline(&mut self.auth_token).password(true));
                        if !self.token_source.is_empty() {
                            ui.weak(self.token_source);
                        }
                    });
                    ui.end_row();
                    ui.label("WhatsApp sender");
                    ui.horizontal(|ui| {
                        ui.add(
                            egui::TextEdit::singleline(&mut draft.sender).hint_text("+14155238886"),
                        );
                        if draft.sender.trim().trim_start_matches("whatsapp:")
                            == TWILIO_SANDBOX_NUMBER
                        {
                            ui.weak("Twilio's sandbox number: one message every 3 s");
                        }
                    });
                    ui.end_row();
                }
                ui.label("Send rate");
                ui.add(
                    egui::DragValue::new(&mut draft.send_rate_per_second)
                        .range(0.1..=400.0)
                        .suffix(" messages/s"),
                );
                ui.end_row();
            });
        if draft.twilio {
            ui.label(
                RichText::new(
                    "Without a public URL Twilio cannot call back: statuses and replies are \
                     fetched from Twilio's Messages API every 15 s instead.",
                )
                .weak(),
            );
        }
        error_line(ui, &self.error);
        ui.add_space(8.0);
        let changed = *draft != self.settings;
        let apply = ui
            .add_enabled(
                changed || matches!(self.state, EngineState::Failed(_)),
                egui::Button::new("Apply and restart"),
            )
            .clicked();
        if apply {
            let draft = self.draft.take().unwrap_or_default();
            if draft.twilio && !self.auth_token.is_empty() {
                let (account, token) = (draft.account_sid.clone(), self.auth_token.clone());
                match keychain(runtime, move || {
                    keyring::Entry::new(KEYCHAIN_SERVICE, &account)?.set_password(&token)
                }) {
                    Ok(()) => self.token_source = "kept in the keychain",
                    Err(error) => {
                        self.token_source = "for this run only";
                        self.error = Some(format!(
                            "no keychain to keep the auth token in ({error}); it is used until the app closes"
                        ));
                    }
                }
            }
            self.settings = draft;
        }
        apply
    }
}

/// Runs a keychain call on the runtime's blocking threads (the Secret Service client talks
/// D-Bus through Tokio) and waits for it: a short call, made at start and when applying.
fn keychain<T: Send + 'static>(
    runtime: &tokio::runtime::Handle,
    call: impl FnOnce() -> keyring::Result<T> + Send + 'static,
) -> keyring::Result<T> {
    runtime
        .block_on(runtime.spawn_blocking(call))
        .unwrap_or_else(|error| Err(keyring::Error::PlatformFailure(Box::new(error))))
}

/// How this app's dispatcher names itself to other processes on the same database.
pub fn own_label() -> String {
    format!("messaging-desktop (pid {})", std::process::id())
}

/// How long the app waits for sends in flight when it closes.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
