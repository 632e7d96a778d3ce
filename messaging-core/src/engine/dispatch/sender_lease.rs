//! The sending lease: one dispatcher sends from a database at a time, or, on a database that
//! several processes send from at once (PostgreSQL), one of them leads.
//!
//! A server and a desktop app opened on the same SQLite file, or a server restarted while the
//! old process is still stopping, must not send together: each would keep its own rate, so the
//! sender's ceiling would be exceeded, and a message claimed by one could be looked up and sent
//! again by the other. So the dispatcher holds a lease on the database's sending, renewed every
//! third of its term while it runs; a process that finds it held by another serves everything
//! else (the API, webhooks, imports) and takes over when the lease runs out.
//!
//! When a dispatcher takes the lease, every message lease left by dispatchers that stopped is
//! ended ([`DispatchStore::release_claims`](crate::store::DispatchStore::release_claims)):
//! waiting messages are claimable at once, and messages left `sending` are looked up at the
//! provider one term later. A holder stops starting sends when its lease is close to running
//! out (it could not renew: the database was locked, the process stalled), and each send
//! answers within the provider's timeout, so by then no send of the previous holder can
//! still be in flight: a restart or a takeover resumes within one term, never sending twice.
//!
//! Where several processes send at once ([`CoordinationStore::concurrent_senders`]), every
//! dispatcher sends, each keeping a heartbeat (renewed every third of the term, alive for a
//! term), and each claim names the dispatcher that made it. The lease then only says who
//! leads: the leader launches scheduled campaigns, completes runs, asks the provider about
//! missing statuses, and every few seconds ends the claims of dispatchers whose heartbeat
//! stopped, so their work is picked up within about one term of their death. A dispatcher
//! stops starting sends when its own heartbeat is close to running out.
//!
//! [`CoordinationStore::concurrent_senders`]: crate::store::CoordinationStore::concurrent_senders

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::engine::{Engine, EngineError};

/// Keeps this dispatcher's sending lease (see the module docs).
pub(super) struct SenderLeaseKeeper {
    engine: Engine,
    id: String,
    label: String,
    term: chrono::Duration,
    /// Whether every dispatcher sends (see the module docs).
    concurrent: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Until when this dispatcher holds the lease, as last renewed; `None` when it does not.
    held_until: Option<DateTime<Utc>>,
    renewed_at: Option<DateTime<Utc>>,
    /// The other holder last reported, so the log says so once, not every round.
    reported: Option<String>,
    /// Whether the lease was ever asked for: a dispatcher driven round by round (tests) is
    /// not kept by a lease.
    managed: bool,
    /// Until when this dispatcher's heartbeat says it is alive, as last renewed.
    beat_until: Option<DateTime<Utc>>,
    beat_at: Option<DateTime<Utc>>,
    /// When the lease was last asked for while another held it.
    tried_at: Option<DateTime<Utc>>,
    /// When the claims of dispatchers that stopped were last ended.
    released_at: Option<DateTime<Utc>>,
}

/// How often a dispatcher that does not hold the lease asks for it.
const TRY_EVERY: chrono::Duration = chrono::Duration::seconds(1);

/// How often the leader of concurrent senders ends the claims of dispatchers that stopped.
const RELEASE_EVERY: chrono::Duration = chrono::Duration::seconds(2);

impl SenderLeaseKeeper {
    pub(super) fn new(engine: Engine, label: String, term: Duration) -> Self {
        Self {
            id: format!("{}-{}", std::process::id(), uuid::Uuid::now_v7().simple()),
            concurrent: engine.store.concurrent_senders(),
            engine,
            label,
            term: chrono::Duration::from_std(term).unwrap_or(chrono::Duration::seconds(15)),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Renews the lease when a third of its term has passed, or tries to take it; answers
    /// whether this dispatcher may send now. Taking it ends the claims of the dispatchers that
    /// stopped.
    pub(super) async fn hold(&self) -> Result<bool, EngineError> {
        let now = self.engine.clock.now();
        if self.concurrent {
            self.beat(now).await?;
        }
        let renewed_lately = {
            let mut state = self.state();
            state.managed = true;
            if state.held_until.is_none() && state.tried_at.is_some_and(|at| now - at < TRY_EVERY) {
                return Ok(false);
            }
            let renewed_lately = state.held_until.is_some()
                && state.renewed_at.is_some_and(|at| now - at < self.term / 3);
            if !renewed_lately {
                state.tried_at = Some(now);
            }
            renewed_lately
        };
        if renewed_lately {
            self.release_stopped(now, false).await?;
            return Ok(true);
        }
        let lease = self
            .engine
            .store
            .take_sender_lease(&self.id, &self.label, now, now + self.term)
            .await?;
        let ours = lease.holder == self.id;
        if ours {
            self.release_stopped(now, lease.taken).await?;
        }
        let mut state = self.state();
        if ours {
            state.held_until = Some(lease.until);
            state.renewed_at = Some(now);
            state.reported = None;
        } else {
            if state.held_until.take().is_some() {
                tracing::warn!(holder = %lease.label, "lost the sending lease of this database");
            }
            if state.reported.as_deref() != Some(lease.holder.as_str()) {
                if self.concurrent {
                    tracing::info!(
                        leader = %lease.label,
                        "another process leads (schedules, run completion, status checks);                          this one sends beside it and leads when it stops"
                    );
                } else {
                    tracing::warn!(
                        holder = %lease.label,
                        until = %lease.until,
                        "another process is sending from this database; this one sends when                          it stops"
                    );
                }
                state.reported = Some(lease.holder.clone());
            }
        }
        Ok(ours)
    }

    /// Whether sends may start now: the lease is held and not close to running out (the last
    /// fifth of its term is kept for sends already started to answer).
    pub(super) fn may_send(&self) -> bool {
        let state = self.state();
        if !state.managed {
            return true;
        }
        let alive_until = if self.concurrent {
            state.beat_until
        } else {
            state.held_until
        };
        alive_until.is_some_and(|until| self.engine.clock.now() < until - self.term / 5)
    }

    /// Whether this dispatcher sends without holding the lease (see the module docs).
    pub(super) fn concurrent(&self) -> bool {
        self.concurrent
    }

    /// The id this dispatcher's claims are made under.
    pub(super) fn id(&self) -> &str {
        &self.id
    }

    /// Renews this dispatcher's heartbeat when a third of its term has passed.
    async fn beat(&self, now: DateTime<Utc>) -> Result<(), EngineError> {
        if self
            .state()
            .beat_at
            .is_some_and(|at| now - at < self.term / 3)
        {
            return Ok(());
        }
        let until = now + self.term;
        self.engine
            .store
            .heartbeat(&self.id, &self.label, until)
            .await?;
        let mut state = self.state();
        state.beat_until = Some(until);
        state.beat_at = Some(now);
        Ok(())
    }

    /// Ends the claims of dispatchers that stopped: when the lease was just taken (every
    /// earlier sender has stopped), and, among concurrent senders, every few seconds (those
    /// whose heartbeat ran out).
    async fn release_stopped(&self, now: DateTime<Utc>, taken: bool) -> Result<(), EngineError> {
        let due = self.concurrent
            && self
                .state()
                .released_at
                .is_none_or(|at| now - at >= RELEASE_EVERY);
        if !taken && !due {
            return Ok(());
        }
        self.state().released_at = Some(now);
        let released = self
            .engine
            .store
            .release_claims(&self.id, now, now + self.term)
            .await?;
        if taken {
            tracing::info!(
                released,
                "took the sending lease of this database; claims of dispatchers that stopped ended"
            );
        } else if released > 0 {
            tracing::warn!(
                released,
                "a dispatcher stopped beating; its claims were ended for the others to send"
            );
        }
        Ok(())
    }

    /// Gives the lease up (the dispatcher stopped and its sends answered), so another
    /// process sends at once.
    pub(super) async fn release(&self) {
        let held = self.state().held_until.take().is_some();
        if held && let Err(error) = self.engine.store.release_sender_lease(&self.id).await {
            tracing::warn!(%error, "could not give up the sending lease; it runs out by itself");
        }
        let beating = self.state().beat_until.take().is_some();
        if beating && let Err(error) = self.engine.store.end_heartbeat(&self.id).await {
            tracing::warn!(%error, "could not end the heartbeat; it runs out by itself");
        }
    }
}
