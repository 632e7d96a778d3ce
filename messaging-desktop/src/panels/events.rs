//! Events (being built).

use eframe::egui;

use crate::backend::Backend;

/// The events panel's state.
#[derive(Default)]
pub struct Events;

impl Events {
    /// Draws the panel.
    pub fn ui(&mut self, ui: &mut egui::Ui, _backend: &mut Backend) {
        super::heading(ui, "Events");
    }
}
