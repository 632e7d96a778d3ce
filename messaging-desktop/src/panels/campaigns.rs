//! Campaigns (being built).

use eframe::egui;

use crate::backend::Backend;

/// The campaigns panel's state.
#[derive(Default)]
pub struct Campaigns;

impl Campaigns {
    /// Draws the panel.
    pub fn ui(&mut self, ui: &mut egui::Ui, _backend: &mut Backend) {
        super::heading(ui, "Campaigns");
    }
}
