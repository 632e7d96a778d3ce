//! The bridge between the window and the engine: work is sent to the engine's Tokio runtime,
//! and what it answers comes back over a channel as an update to apply to the app's state,
//! polled once a frame. The window repaints as soon as an answer arrives, and never waits for
//! the engine: panels only ever call [`Backend::run`].

use std::future::Future;
use std::sync::mpsc;

use messaging_core::Engine;
use messaging_core::startup::RunningEngine;
use tokio::runtime::Handle;

use crate::panels::Panels;

/// A change to the app's state, made on the UI thread with what the engine answered.
pub type Update = Box<dyn FnOnce(&mut Panels) + Send>;

/// Runs engine work off the UI thread and brings its answers back (see the module docs).
pub struct Backend {
    runtime: Handle,
    engine: Option<Engine>,
    sender: mpsc::Sender<Update>,
    receiver: mpsc::Receiver<Update>,
    repaint: Option<eframe::egui::Context>,
    in_flight: usize,
}

impl Backend {
    /// A backend spawning its work on `runtime`.
    pub fn new(runtime: Handle) -> Self {
        let (sender, receiver) = mpsc::channel();
        Self {
            runtime,
            engine: None,
            sender,
            receiver,
            repaint: None,
            in_flight: 0,
        }
    }

    /// The runtime work runs on.
    pub fn runtime(&self) -> &Handle {
        &self.runtime
    }

    /// Repaints `ctx` whenever an answer arrives.
    pub fn set_context(&mut self, ctx: &eframe::egui::Context) {
        self.repaint = Some(ctx.clone());
    }

    /// The engine, once started.
    pub fn engine(&self) -> Option<&Engine> {
        self.engine.as_ref()
    }

    /// Uses this engine from now on (the settings panel starts and restarts it).
    pub fn set_engine(&mut self, running: Option<&RunningEngine>) {
        self.engine = running.map(|r| r.engine().clone());
    }

    /// Whether work is still in flight (a spinner in the status bar).
    pub fn busy(&self) -> bool {
        self.in_flight > 0
    }

    /// Runs `work` with the engine on the runtime; the update it answers is applied on the
    /// UI thread. Does nothing before the engine is started.
    pub fn run<W, F>(&mut self, work: W)
    where
        W: FnOnce(Engine) -> F,
        F: Future<Output = Update> + Send + 'static,
    {
        let Some(engine) = self.engine.clone() else {
            return;
        };
        self.spawn(work(engine));
    }

    /// Runs a future on the runtime; the update it answers is applied on the UI thread.
    pub fn spawn<F>(&mut self, future: F)
    where
        F: Future<Output = Update> + Send + 'static,
    {
        self.in_flight += 1;
        let sender = self.sender.clone();
        let repaint = self.repaint.clone();
        self.runtime.spawn(async move {
            let update = future.await;
            let _ = sender.send(update);
            if let Some(ctx) = repaint {
                ctx.request_repaint();
            }
        });
    }

    /// Applies every answer that arrived since the last frame.
    pub fn apply(&mut self, panels: &mut Panels) {
        while let Ok(update) = self.receiver.try_recv() {
            self.in_flight = self.in_flight.saturating_sub(1);
            update(panels);
        }
    }
}
