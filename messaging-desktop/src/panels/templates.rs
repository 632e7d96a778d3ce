//! Templates (being built).

use eframe::egui;

use crate::backend::Backend;

/// The templates panel's state.
#[derive(Default)]
pub struct Templates;

impl Templates {
    /// Draws the panel.
    pub fn ui(&mut self, ui: &mut egui::Ui, _backend: &mut Backend) {
        super::heading(ui, "Templates");
    }
}
