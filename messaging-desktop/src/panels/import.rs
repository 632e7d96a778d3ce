//! A file import in progress, shared by the users and events panels: the file is read through
//! [`Counted`], which counts the bytes for the progress bar and stops at the next read once
//! Cancel is pressed (the engine then reports what it stored before the stop).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use eframe::egui;

/// An import in progress: which file, how big, how far, and the switch that stops it.
pub(crate) struct FileImport {
    /// The file's name, as the import's source.
    pub(crate) name: String,
    size: u64,
    read: Arc<AtomicU64>,
    cancel: Arc<AtomicBool>,
}

/// A file read with its progress counted and a way to stop it.
pub(crate) struct Counted<R> {
    inner: R,
    read: Arc<AtomicU64>,
    cancel: Arc<AtomicBool>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("the import was cancelled"));
        }
        let n = self.inner.read(buffer)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl FileImport {
    /// Opens `path` for an import: the import's state and the reader to hand the engine.
    pub(crate) fn open(path: &Path) -> Result<(Self, Counted<BufReader<File>>), String> {
        let file =
            File::open(path).map_err(|error| format!("cannot open {}: {error}", path.display()))?;
        let import = Self {
            name: path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            size: file.metadata().map_or(0, |m| m.len()),
            read: Arc::default(),
            cancel: Arc::default(),
        };
        let reader = Counted {
            inner: BufReader::new(file),
            read: import.read.clone(),
            cancel: import.cancel.clone(),
        };
        Ok((import, reader))
    }

    /// The running import's progress, or a button that picks a file (of `kind`, with these
    /// extensions) through the system's dialog: answers the file picked.
    pub(crate) fn progress_or_pick(
        running: Option<&Self>,
        ui: &mut egui::Ui,
        kind: &str,
        extensions: &[&str],
    ) -> Option<PathBuf> {
        match running {
            Some(import) => {
                import.progress_ui(ui);
                None
            }
            None if ui.button("Choose a file…").clicked() => rfd::FileDialog::new()
                .add_filter(kind, extensions)
                .pick_file(),
            None => None,
        }
    }

    /// The progress bar with the bytes read, and Cancel.
    fn progress_ui(&self, ui: &mut egui::Ui) {
        let read = self.read.load(Ordering::Relaxed);
        let fraction = if self.size == 0 {
            0.0
        } else {
            read as f32 / self.size as f32
        };
        ui.horizontal(|ui| {
            ui.add(
                egui::ProgressBar::new(fraction.min(1.0))
                    .desired_width(320.0)
                    .show_percentage()
                    .text(format!("{} — {}", self.name, bytes(read))),
            );
            if ui.button("Cancel").clicked() {
                self.cancel.store(true, Ordering::Relaxed);
            }
        });
        ui.ctx().request_repaint_after(Duration::from_millis(100));
    }
}

/// A size in bytes, as people read it.
fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MB", n as f64 / (1 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.0} KB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}
