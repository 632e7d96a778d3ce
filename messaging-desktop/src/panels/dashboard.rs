//! Dashboard: messages per status, delivery %, failures by error code, opt-outs and inbound
//! counts, and a chart of sends, deliveries, reads and failures over the last hour, day or
//! week. Refreshes every few seconds while shown.

use std::time::{Duration, Instant};

use eframe::egui::{self, RichText};
use egui_plot::{Legend, Line, Plot, PlotPoints};
use messaging_core::domain::MessageStatus;
use messaging_core::engine::{SeriesWindow, Stats, TimeSeries};

use super::{Panels, count, describe, error_line, heading, status_colour, status_tiles, tile};
use crate::backend::Backend;

/// The dashboard's state.
pub struct Dashboard {
    stats: Option<Stats>,
    series: Option<TimeSeries>,
    window: SeriesWindow,
    error: Option<String>,
    loaded_at: Option<Instant>,
    loading: bool,
}

impl Default for Dashboard {
    fn default() -> Self {
        Self {
            stats: None,
            series: None,
            window: SeriesWindow::Day,
            error: None,
            loaded_at: None,
            loading: false,
        }
    }
}

/// How often the dashboard refreshes itself while shown.
const REFRESH: Duration = Duration::from_secs(3);

impl Dashboard {
    /// Loads the stats and the series again.
    pub fn refresh(&mut self, backend: &mut Backend) {
        if self.loading || backend.engine().is_none() {
            return;
        }
        self.loading = true;
        let window = self.window;
        backend.run(move |engine| async move {
            let stats = engine.stats(None).await;
            let series = engine.time_series(window).await;
            Box::new(move |panels: &mut Panels| {
                let this = &mut panels.dashboard;
                this.loading = false;
                this.loaded_at = Some(Instant::now());
                match (stats, series) {
                    (Ok(stats), Ok(series)) => {
                        this.stats = Some(stats);
                        this.series = Some(series);
                        this.error = None;
                    }
                    (Err(error), _) | (_, Err(error)) => this.error = Some(describe(&error)),
                }
            }) as crate::backend::Update
        });
    }

    /// Draws the dashboard.
    pub fn ui(&mut self, ui: &mut egui::Ui, backend: &mut Backend) {
        if self.loaded_at.is_none_or(|at| at.elapsed() >= REFRESH) {
            self.refresh(backend);
        }
        ui.ctx().request_repaint_after(REFRESH);
        heading(ui, "Dashboard");
        error_line(ui, &self.error);
        let Some(stats) = &self.stats else {
            ui.label("Loading…");
            return;
        };
        let dark = ui.visuals().dark_mode;
        ui.horizontal_wrapped(|ui| {
            tile(ui, "messages", count(stats.messages), None);
            status_tiles(ui, &stats.by_status);
            tile(
                ui,
                "delivery %",
                stats
                    .delivery_percent
                    .map_or("—".into(), |p| format!("{p:.1} %")),
                None,
            );
            tile(
                ui,
                "opted out",
                count(stats.opted_out_users.unwrap_or(0)),
                None,
            );
            tile(
                ui,
                "inbound",
                count(stats.inbound_messages.unwrap_or(0)),
                None,
            );
            tile(
                ui,
                "commands",
                count(stats.inbound_commands.unwrap_or(0)),
                None,
            );
        });
        ui.add_space(12.0);
        ui.horizontal(|ui| {
            ui.label(RichText::new("Over the last").strong());
            for (window, name) in [
                (SeriesWindow::Hour, "hour"),
                (SeriesWindow::Day, "day"),
                (SeriesWindow::Week, "week"),
            ] {
                if ui.selectable_label(self.window == window, name).clicked()
                    && self.window != window
                {
                    self.window = window;
                    self.loaded_at = None;
                }
            }
        });
        if let Some(series) = &self.series {
            chart(ui, series, dark);
        }
        if !stats.failures_by_error_code.is_empty() {
            ui.add_space(8.0);
            ui.label(RichText::new("Failures by error code").strong());
            egui::Grid::new("failures").striped(true).show(ui, |ui| {
                for (code, n) in &stats.failures_by_error_code {
                    ui.monospace(code);
                    ui.label(count(*n));
                    ui.end_row();
                }
            });
        }
    }
}

fn chart(ui: &mut egui::Ui, series: &TimeSeries, dark: bool) {
    let start = series.points.first().map_or(0, |p| p.start.timestamp());
    let line = |name: &str,
                status: MessageStatus,
                value: fn(&messaging_core::engine::SeriesPoint) -> u64| {
        let points: PlotPoints = series
            .points
            .iter()
            .map(|p| {
                [
                    ((p.start.timestamp() - start) as f64) / 3600.0,
                    value(p) as f64,
                ]
            })
            .collect();
        Line::new(name, points)
            .color(status_colour(status, dark))
            .width(2.0)
    };
    Plot::new("series")
        .height(260.0)
        .legend(Legend::default())
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        .x_axis_label("hours from the start of the window")
        .y_axis_label("messages")
        .include_y(0.0)
        .show(ui, |plot| {
            plot.line(line("sent", MessageStatus::Sent, |p| p.sent));
            plot.line(line("delivered", MessageStatus::Delivered, |p| p.delivered));
            plot.line(line("read", MessageStatus::Read, |p| p.read));
            plot.line(line("failed", MessageStatus::Failed, |p| p.failed));
        });
}
