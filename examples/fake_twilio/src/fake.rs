//! [`FakeTwilio`]: one running fake, started in-process on its own port, and the handle a test
//! or the binary uses to read what it received and to change how it behaves.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use poem::{EndpointExt, Route, Server, get, post};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Behaviour, CallbackPlan, ConfigError, FakeConfig, Faults};
use crate::connection::SeverableAcceptor;
use crate::inbound::{InboundError, InboundMessage, InboundRequest};
use crate::ledger::{AcceptedMessage, CallbackRecord, Counters};
use crate::resource::API_VERSION;
use crate::state::FakeState;
use crate::{api, control};

/// Why a fake could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The starting behaviour does not make sense.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The address could not be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: io::Error,
    },
}

/// A running fake Twilio. Dropping it stops the server too; [`FakeTwilio::shutdown`] also
/// waits until it has stopped.
pub struct FakeTwilio {
    state: Arc<FakeState>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: Option<JoinHandle<io::Result<()>>>,
}

impl FakeTwilio {
    /// Listens on `config.bind` (port 0 picks a free one) and serves until shut down.
    ///
    /// Must be called inside a Tokio runtime; the server and the status callbacks run as
    /// tasks of that runtime.
    pub async fn start(config: FakeConfig) -> Result<FakeTwilio, StartError> {
        config.behaviour.validate()?;
        let bind_error = |source| StartError::Bind {
            addr: config.bind,
            source,
        };
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;

        let (stop, stopped) = watch::channel(false);
        let state = Arc::new(FakeState::new(&config, stopped.clone()));
        let acceptor =
            SeverableAcceptor::new(listener, state.connections.clone()).map_err(bind_error)?;
        let app = Route::new()
            .at(
                format!("/{API_VERSION}/Accounts/:account_sid/Messages.json"),
                post(api::create_message).get(api::list_messages),
            )
            .at(
                format!("/{API_VERSION}/Accounts/:account_sid/Messages/:message"),
                get(api::fetch_message),
            )
            .at("/_fake/messages", get(control::list_messages))
            .at("/_fake/callbacks", get(control::list_callbacks))
            .at("/_fake/stats", get(control::stats))
            .at(
                "/_fake/inbound",
                get(control::list_inbound).post(control::receive_inbound),
            )
            .at(
                "/_fake/config",
                get(control::get_config).post(control::patch_config),
            )
            .at("/_fake/reset", post(control::reset))
            .data(state.clone());

        let mut stop_signal = stopped;
        let server = tokio::spawn(
            Server::new_with_acceptor(acceptor)
                .name("fake-twilio")
                .run_with_graceful_shutdown(
                    app,
                    async move {
                        // Either a shutdown request or the handle being gone ends the server.
                        let _ = stop_signal.wait_for(|stop| *stop).await;
                    },
                    Some(Duration::from_secs(1)),
                ),
        );
        tracing::info!(%addr, account_sid = %config.account_sid, "fake Twilio started");
        Ok(FakeTwilio {
            state,
            addr,
            stop,
            server: Some(server),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What to set as `TWILIO_API_BASE`, e.g. `http://127.0.0.1:4010`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The full URL of the create-message endpoint of its account.
    pub fn messages_url(&self) -> String {
        format!(
            "{}/{API_VERSION}/Accounts/{}/Messages.json",
            self.base_url(),
            self.state.account_sid
        )
    }

    /// The account SID it accepts.
    pub fn account_sid(&self) -> &str {
        &self.state.account_sid
    }

    /// The auth token it accepts and signs callbacks with.
    pub fn auth_token(&self) -> &str {
        &self.state.auth_token
    }

    /// Every accepted message, oldest first (what `GET /_fake/messages` lists).
    pub fn messages(&self) -> Vec<AcceptedMessage> {
        self.state.ledger(|l| l.messages())
    }

    /// Every status callback posted so far, in the order they finished.
    pub fn callbacks(&self) -> Vec<CallbackRecord> {
        self.state.ledger(|l| l.callbacks())
    }

    /// Puts a message from a user to the sender into the account (what `POST /_fake/inbound`
    /// does): Twilio's list of messages shows it from now on, `direction` `inbound`. No
    /// webhook is posted.
    pub fn receive_inbound(&self, request: InboundRequest) -> Result<InboundMessage, InboundError> {
        self.state.receive_inbound(request)
    }

    /// Every message users sent in, oldest first (what `GET /_fake/inbound` lists).
    pub fn inbound(&self) -> Vec<InboundMessage> {
        self.state.ledger(|l| l.inbound())
    }

    /// Counters of every outcome of the Messages API.
    pub fn counters(&self) -> Counters {
        self.state.ledger(|l| l.counters.clone())
    }

    /// The current behaviour (faults and callbacks).
    pub fn behaviour(&self) -> Behaviour {
        self.state.behaviour()
    }

    /// Replaces the whole behaviour.
    pub fn set_behaviour(&self, behaviour: Behaviour) -> Result<(), ConfigError> {
        behaviour.validate()?;
        self.state.set_behaviour(behaviour);
        Ok(())
    }

    /// Replaces the fault injection, keeping the callback plan.
    pub fn set_faults(&self, faults: Faults) -> Result<(), ConfigError> {
        self.set_behaviour(Behaviour {
            faults,
            ..self.behaviour()
        })
    }

    /// Replaces the callback plan, keeping the fault injection.
    pub fn set_callback_plan(&self, callbacks: CallbackPlan) -> Result<(), ConfigError> {
        self.set_behaviour(Behaviour {
            callbacks,
            ..self.behaviour()
        })
    }

    /// Forgets messages, callbacks and counters, and restores the behaviour it started with.
    pub fn reset(&self) {
        self.state.reset();
    }

    /// Stops serving, stops pending callbacks, and waits for the server to finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(server) = self.server.take()
            && let Ok(Err(error)) = server.await
        {
            tracing::warn!(%error, "fake Twilio stopped with an error");
        }
    }
}

impl Drop for FakeTwilio {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
