//! Segments (being built).

use eframe::egui;

use crate::backend::Backend;

/// The segments panel's state.
#[derive(Default)]
pub struct Segments;

impl Segments {
    /// Draws the panel.
    pub fn ui(&mut self, ui: &mut egui::Ui, _backend: &mut Backend) {
        super::heading(ui, "Segments");
    }
}
