//! The state one running fake shares between its HTTP handlers, its callback tasks and its
//! [`crate::FakeTwilio`] handle: credentials, the current behaviour and the ledger.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use crate::callbacks::CallbackClient;
use crate::config::{Behaviour, CallbackPlan, ConfigError, FakeConfig, ScriptedFault};
use crate::connection::ConnectionRegistry;
use crate::inbound::{InboundError, InboundMessage, InboundRequest};
use crate::ledger::Ledger;
use crate::resource::new_message_sid;

/// What fault injection decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Handle it normally.
    Proceed,
    /// Answer 429.
    RateLimited,
    /// Answer this 5xx status.
    ServerError(u16),
    /// Close the connection without answering, after or before accepting the message.
    Drop { after_accept: bool },
}

/// Shared by everything inside one fake.
pub(crate) struct FakeState {
    pub account_sid: String,
    pub auth_token: String,
    pub service_sender: String,
    pub connections: ConnectionRegistry,
    pub callback_client: CallbackClient,
    /// Flips to true when the fake shuts down, so callback tasks stop.
    pub shutdown: watch::Receiver<bool>,
    initial: Behaviour,
    behaviour: Mutex<Behaviour>,
    ledger: Mutex<Ledger>,
}

impl FakeState {
    pub fn new(config: &FakeConfig, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            account_sid: config.account_sid.clone(),
            auth_token: config.auth_token.clone(),
            service_sender: config.service_sender.clone(),
            connections: ConnectionRegistry::default(),
            callback_client: CallbackClient::new(),
            shutdown,
            initial: config.behaviour.clone(),
            behaviour: Mutex::new(config.behaviour.clone()),
            ledger: Mutex::new(Ledger::default()),
        }
    }

    pub fn behaviour(&self) -> Behaviour {
        lock(&self.behaviour).clone()
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.behaviour) = behaviour;
    }

    /// Applies a JSON merge patch to the behaviour under one lock, so concurrent patches and
    /// requests consuming the fault script never lose each other's changes.
    pub fn patch_behaviour(&self, patch: &serde_json::Value) -> Result<Behaviour, ConfigError> {
        let mut behaviour = lock(&self.behaviour);
        let patched = behaviour.merge_patch(patch)?;
        *behaviour = patched.clone();
        Ok(patched)
    }

    /// Runs `change` on the ledger under its lock.
    pub fn ledger<R>(&self, change: impl FnOnce(&mut Ledger) -> R) -> R {
        change(&mut lock(&self.ledger))
    }

    /// Records a message a user sent to the account's sender (the `service_sender` unless the
    /// request names another), so that the list of messages shows it.
    pub fn receive_inbound(&self, request: InboundRequest) -> Result<InboundMessage, InboundError> {
        let message = InboundMessage::new(
            request,
            &self.account_sid,
            &self.service_sender,
            new_message_sid(),
        )?;
        self.ledger(|l| l.receive(message.clone()));
        tracing::info!(sid = %message.sid, from = %message.from, "inbound message received");
        Ok(message)
    }

    /// Forgets every message, callback and counter, and restores the behaviour of the start.
    pub fn reset(&self) {
        self.ledger(Ledger::reset);
        self.set_behaviour(self.initial.clone());
    }

    /// How long to wait before answering a Messages API request.
    pub fn latency(&self) -> Duration {
        let behaviour = lock(&self.behaviour);
        let faults = &behaviour.faults;
        let jitter = if faults.jitter_ms > 0 {
            fastrand::u64(0..=faults.jitter_ms)
        } else {
            0
        };
        Duration::from_millis(faults.latency_ms + jitter)
    }

    /// Decides the fate of the next request: the next scripted fault, else a random draw.
    pub fn next_fate(&self) -> Fate {
        let mut behaviour = lock(&self.behaviour);
        let faults = &mut behaviour.faults;
        if let Some(scripted) = faults.script.pop_front() {
            return match scripted {
                ScriptedFault::Ok => Fate::Proceed,
                ScriptedFault::RateLimited => Fate::RateLimited,
                ScriptedFault::ServerError => Fate::ServerError(500),
                ScriptedFault::Unavailable => Fate::ServerError(503),
                ScriptedFault::DropAfterAccept => Fate::Drop { after_accept: true },
                ScriptedFault::DropBeforeAccept => Fate::Drop {
                    after_accept: false,
                },
            };
        }
        let draw = fastrand::f64();
        let rate_limited = faults.rate_limited_share;
        let server_error = rate_limited + faults.server_error_share;
        let dropped = server_error + faults.dropped_connection_share;
        if draw < rate_limited {
            Fate::RateLimited
        } else if draw < server_error {
            Fate::ServerError(if fastrand::bool() { 500 } else { 503 })
        } else if draw < dropped {
            Fate::Drop {
                after_accept: faults.drop_after_accept,
            }
        } else {
            Fate::Proceed
        }
    }

    /// The 5xx status to answer a list request with, if `list_server_error_share` draws one.
    pub fn list_fault(&self) -> Option<u16> {
        let share = lock(&self.behaviour).faults.list_server_error_share;
        (fastrand::f64() < share).then(|| if fastrand::bool() { 500 } else { 503 })
    }

    /// The permanent error configured for a recipient (E.164, no channel prefix).
    pub fn permanent_error(&self, number: &str) -> Option<u32> {
        lock(&self.behaviour)
            .faults
            .permanent_errors
            .get(number)
            .copied()
    }

    pub fn callback_plan(&self) -> CallbackPlan {
        lock(&self.behaviour).callbacks.clone()
    }
}

/// Locks a mutex even if a panicking thread poisoned it: the fake keeps serving.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
