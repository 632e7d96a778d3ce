//! Inbound (being built).

use eframe::egui;

use crate::backend::Backend;

/// The inbound panel's state.
#[derive(Default)]
pub struct Inbound;

impl Inbound {
    /// Draws the panel.
    pub fn ui(&mut self, ui: &mut egui::Ui, _backend: &mut Backend) {
        super::heading(ui, "Inbound");
    }
}
