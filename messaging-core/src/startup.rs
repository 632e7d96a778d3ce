//! Starting the engine: one way for every front end (the server, the desktop app, an embedding
//! program) to open the database, choose the provider, and run the dispatcher beside it until a
//! shutdown signal.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use messaging_core::startup::{ProviderSettings, Startup};
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let running = Startup::new("sqlite://messaging.db", ProviderSettings::sandbox())
//!     .start(async move { let _ = stopped.await; })
//!     .await?;
//! println!("{} users", running.engine().count_users().await?);
//! let _ = stop.send(());
//! running.finished().await;
//! # Ok(()) }
//! ```
//!
//! What [`Startup::start`] does, in order: opens (creating and migrating) the database; makes
//! the provider (Twilio, or the sandbox, whose simulated statuses are fed to the engine exactly
//! as the status webhook would); starts the dispatcher, which also completes campaign runs a
//! previous process left unfinished, launches scheduled campaigns, and asks the provider about
//! statuses that never came; and, when asked for with [`Startup::poll_twilio`] and the
//! provider is Twilio, polls Twilio's list of messages for statuses and inbound messages beside
//! it (see [`crate::engine::Poller`]), for a machine Twilio's webhooks cannot reach. Nothing
//! stored keeps `start` from answering: unfinished work is done beside the front end, never
//! before it.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::engine::{DispatchConfig, Engine, EngineError, PollConfig};
use crate::provider::{
    MessageHistory, Provider, SandboxConfig, SandboxProvider, TwilioConfig, TwilioProvider,
    TwilioSetupError,
};

/// Which provider sends.
#[derive(Debug, Clone)]
pub enum ProviderSettings {
    /// The built-in sandbox: nothing leaves the machine, statuses are simulated.
    Sandbox(SandboxConfig),
    /// Twilio's Messages API with these credentials and sender.
    Twilio(TwilioConfig),
}

impl ProviderSettings {
    /// The sandbox with its defaults (statuses half a second apart, no failures).
    pub fn sandbox() -> Self {
        Self::Sandbox(SandboxConfig::default())
    }

    /// `"sandbox"` or `"twilio"`, for logs and settings pages.
    pub fn mode(&self) -> &'static str {
        match self {
            Self::Sandbox(_) => "sandbox",
            Self::Twilio(_) => "twilio",
        }
    }
}

/// Wraps the provider the start-up makes (the server counts sends for its metrics this way).
pub type ProviderLayer = Box<dyn FnOnce(Arc<dyn Provider>) -> Arc<dyn Provider> + Send>;

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error("cannot open the database {url}: {source}")]
    Database {
        /// The database URL, as given.
        url: String,
        /// What went wrong.
        #[source]
        source: EngineError,
    },
    /// The Twilio settings are not usable.
    #[error("cannot set up Twilio: {0}")]
    Twilio(#[from] TwilioSetupError),
}

/// What to start: the database, the provider and how to send. Made with [`Startup::new`],
/// adjusted with its builder methods, started with [`Startup::start`].
pub struct Startup {
    database_url: String,
    provider: ProviderSettings,
    dispatch: DispatchConfig,
    layer: Option<ProviderLayer>,
    poll: Option<PollConfig>,
}

impl Startup {
    /// The engine on `database_url` (`sqlite://PATH`), sending through `provider` with the
    /// dispatcher's defaults.
    pub fn new(database_url: impl Into<String>, provider: ProviderSettings) -> Self {
        Self {
            database_url: database_url.into(),
            provider,
            dispatch: DispatchConfig::default(),
            layer: None,
            poll: None,
        }
    }

    /// Sends with these rates, limits and leases.
    pub fn dispatch(mut self, config: DispatchConfig) -> Self {
        self.dispatch = config;
        self
    }

    /// With Twilio, also learns statuses and inbound messages by polling Twilio's list of
    /// messages as `config` says, beside the webhooks (which are still taken when they come):
    /// for a machine Twilio cannot reach. The sandbox reports its statuses itself; with it,
    /// this changes nothing.
    pub fn poll_twilio(mut self, config: PollConfig) -> Self {
        self.poll = Some(config);
        self
    }

    /// Wraps the provider before the dispatcher gets it.
    pub fn provider_layer(
        mut self,
        layer: impl FnOnce(Arc<dyn Provider>) -> Arc<dyn Provider> + Send + 'static,
    ) -> Self {
        self.layer = Some(Box::new(layer));
        self
    }

    /// Opens the database and starts sending (see the module docs) until `shutdown`
    /// completes or [`RunningEngine::stop`] is called. Must be called inside a Tokio runtime.
    pub async fn start(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<RunningEngine, StartError> {
        let engine =
            Engine::open(&self.database_url)
                .await
                .map_err(|source| StartError::Database {
                    url: self.database_url.clone(),
                    source,
                })?;
        let mode = self.provider.mode();
        let mut history: Option<Arc<dyn MessageHistory>> = None;
        let provider: Arc<dyn Provider> = match self.provider {
            ProviderSettings::Twilio(settings) => {
                // One provider for sends and polls: they share its connections and its limit
                // of requests in flight.
                let twilio = Arc::new(TwilioProvider::new(settings)?);
                history = Some(twilio.clone());
                twilio
            }
            ProviderSettings::Sandbox(settings) => {
                let (statuses, received) = mpsc::channel(1_024);
                let feed = engine.clone();
                tokio::spawn(async move { feed.receive_statuses(received).await });
                Arc::new(SandboxProvider::new(settings, statuses))
            }
        };
        let provider = match self.layer {
            Some(layer) => layer(provider),
            None => provider,
        };
        let (stop, stopped) = watch::channel(false);
        let signal = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            let _ = signal.send(true);
        });
        let dispatcher = engine.dispatcher(provider, self.dispatch);
        let finished = tokio::spawn(dispatcher.run(wait_for(stopped.clone())));
        let polling = match (self.poll, history) {
            (Some(config), Some(history)) => {
                let poller = engine.poller(history, config);
                Some(tokio::spawn(poller.run(wait_for(stopped.clone()))))
            }
            (Some(_), None) => {
                tracing::info!("the sandbox reports its own statuses: nothing to poll");
                None
            }
            (None, _) => None,
        };
        tracing::info!(
            provider = mode,
            polling = polling.is_some(),
            "engine started"
        );
        Ok(RunningEngine {
            engine,
            mode,
            stop,
            stopped,
            finished,
            polling,
        })
    }
}

/// A started engine: the [`Engine`] to call, and its background work (the dispatcher, and
/// the poller when there is one).
pub struct RunningEngine {
    engine: Engine,
    mode: &'static str,
    stop: watch::Sender<bool>,
    stopped: watch::Receiver<bool>,
    finished: JoinHandle<()>,
    polling: Option<JoinHandle<()>>,
}

impl RunningEngine {
    /// The engine, to call from the front end (clones share everything).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// `"sandbox"` or `"twilio"`.
    pub fn provider_mode(&self) -> &'static str {
        self.mode
    }

    /// Whether Twilio's list of messages is being polled (see [`Startup::poll_twilio`]).
    pub fn is_polling(&self) -> bool {
        self.polling.is_some()
    }

    /// Asks the background work to stop: no more claims or polls; sends in flight finish.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Completes once a stop was asked for (by the shutdown signal or [`stop`](Self::stop)),
    /// so a front end can stop its own work at the same moment.
    pub fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
        wait_for(self.stopped.clone())
    }

    /// Waits until the background work has stopped (after a stop was asked for), sends in
    /// flight answered and recorded.
    pub async fn finished(self) {
        if let Err(error) = self.finished.await {
            tracing::error!(%error, "the dispatcher ended abnormally");
        }
        if let Some(polling) = self.polling
            && let Err(error) = polling.await
        {
            tracing::error!(%error, "polling ended abnormally");
        }
    }
}

/// Completes when `stopped` turns true (or its sender is gone).
async fn wait_for(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}
