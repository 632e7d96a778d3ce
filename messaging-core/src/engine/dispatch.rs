//! The dispatcher: the background worker that takes due messages from the outbox and sends
//! them through the [`Provider`], exactly once per recipient and run.
//!
//! One round:
//! 1. messages left `sending` past their lease (a crash, a lost answer) are looked up at the
//!    provider: found → recorded as sent; not found → queued again; cannot tell → failed,
//!    "outcome unknown, not resent";
//! 2. due messages of sending campaigns (and replies) are claimed under a lease, no more than
//!    the rates allow in about a second;
//! 3. each gets its policy decision ([`decide`]), all recorded in one transaction;
//! 4. queued ones wait for their campaign's and the sender's rate, are marked `sending` in
//!    small batches just before they go, and are sent concurrently; each answer becomes an
//!    outcome ([`RetryPolicy::outcome`]) recorded by a writer task in batches.
//!
//! Because a message is `sending` in the database before its request leaves, a process
//! killed at any point never sends a message twice: after a restart the message is looked up
//! before anything else happens to it.
//!
//! Beside the rounds, about every 30 s, messages whose final status never came (callbacks
//! lost while the server was down) are asked about at the provider, and the answers take the
//! status webhook's path (see [`status_checks`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tracing::Instrument as _;

use super::{Engine, EngineError};
use crate::domain::{
    AuditDecision, Campaign, CampaignId, CampaignStatus, MessageId, MessageStatus, SendAs,
};
use crate::orchestrate::decide::{Limits, Round, decide};
use crate::orchestrate::rate::{Limiter, SendRates};
use crate::orchestrate::retry::RetryPolicy;
use crate::orchestrate::status_check::StatusCheckPolicy;
use crate::provider::{Lookup, OutboundMessage, Provider};
use crate::store::{ClaimRequest, Disposition, DueMessage, SendOutcome, UnresolvedSend};
use sender_lease::SenderLeaseKeeper;
use shared_rate::{SENDER_BUCKET, SharedRates, campaign_bucket};
use status_checks::{StatusCheckReport, StatusChecks};

/// How the dispatcher works.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchConfig {
    /// The sender's ceiling in messages per second (`SEND_RATE_PER_SECOND`); fractions are
    /// allowed (Twilio's sandbox number takes one message every 3 s: 1/3).
    pub send_rate_per_second: f64,
    /// The frequency cap and the daily conversation limit.
    pub limits: Limits,
    /// Retries and backoff.
    pub retry: RetryPolicy,
    /// How long claimed and sending messages stay leased; longer than any send can take.
    pub lease: Duration,
    /// The most messages one round claims.
    pub max_claim: u32,
    /// The most sends in flight at once.
    pub max_in_flight: usize,
    /// How long to wait before looking again when nothing was due.
    pub idle_wait: Duration,
    /// When messages whose final status never came are asked about at the provider.
    pub status_checks: StatusCheckPolicy,
    /// The term of the database's sending lease: one dispatcher sends from a database at a
    /// time; another process on the same database waits, and takes over within this long
    /// after this one stops or dies (at once when it stops cleanly).
    pub sender_lease: Duration,
    /// Who this dispatcher is, in words, for the logs of other processes that find the
    /// sending lease held (`messaging-server pid 4242 on host`).
    pub label: String,
}

impl Default for DispatchConfig {
    /// 80 messages a second (Twilio's WhatsApp default), no frequency cap or conversation
    /// limit, the default retries, two-minute leases, rounds of at most 1,000 messages, 128
    /// sends in flight, a quarter of a second between looks when idle, the default status
    /// checks, a sending lease of 15 s.
    fn default() -> Self {
        Self {
            send_rate_per_second: 80.0,
            limits: Limits::default(),
            retry: RetryPolicy::default(),
            lease: Duration::from_secs(120),
            max_claim: 1_000,
            max_in_flight: 128,
            idle_wait: Duration::from_millis(250),
            status_checks: StatusCheckPolicy::default(),
            sender_lease: Duration::from_secs(15),
            label: format!("pid {}", std::process::id()),
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Sends without an answer that were looked up at the provider.
    pub looked_up: usize,
    /// Messages claimed.
    pub claimed: usize,
    /// Messages handed to the provider.
    pub sent: usize,
}

enum ToWriter {
    Outcome(MessageId, SendOutcome),
    Flush(oneshot::Sender<()>),
}

/// The dispatcher (see the module docs). Made by [`Engine::dispatcher`]; driven by
/// [`run`](Dispatcher::run), or round by round in tests.
pub struct Dispatcher {
    engine: Engine,
    provider: Arc<dyn Provider>,
    config: DispatchConfig,
    rates: SendRates,
    in_flight: Arc<Semaphore>,
    outcomes: mpsc::Sender<ToWriter>,
    rng: Arc<Mutex<fastrand::Rng>>,
    status_checks: StatusChecks,
    sender_lease: SenderLeaseKeeper,
    /// The database's rate buckets, when several processes send from it at once.
    shared_rates: Option<SharedRates>,
}

impl Engine {
    /// A dispatcher sending this engine's outbox through `provider`. Must be called inside a
    /// Tokio runtime: it starts the task that records send outcomes.
    pub fn dispatcher(&self, provider: Arc<dyn Provider>, config: DispatchConfig) -> Dispatcher {
        let (outcomes, receiver) = mpsc::channel(4 * config.max_in_flight.max(1));
        tokio::spawn(write_outcomes(self.clone(), receiver));
        Dispatcher {
            engine: self.clone(),
            status_checks: StatusChecks::new(self.clone(), provider.clone(), config.status_checks),
            sender_lease: SenderLeaseKeeper::new(
                self.clone(),
                config.label.clone(),
                config.sender_lease,
            ),
            shared_rates: self
                .store
                .concurrent_senders()
                .then(|| SharedRates::new(self.clone())),
            provider,
            rates: SendRates::new(config.send_rate_per_second),
            in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            outcomes,
            rng: Arc::new(Mutex::new(fastrand::Rng::new())),
            config,
        }
    }
}

impl Engine {
    /// Who sends from this database now: the label of the dispatcher holding the sending lease
    /// (`messaging-server (pid 4242, listening on 127.0.0.1:5000)`), or `None` when no live
    /// dispatcher holds it. A front end shows it, so a person knows why their process does not
    /// send while another one does.
    pub async fn current_sender(&self) -> Result<Option<String>, EngineError> {
        let now = self.clock.now();
        Ok(self
            .store
            .sender_lease()
            .await?
            .filter(|lease| lease.until > now)
            .map(|lease| lease.label))
    }
}

/// Records outcomes in batches, as they come, until every sender is gone.
async fn write_outcomes(engine: Engine, mut receiver: mpsc::Receiver<ToWriter>) {
    let mut buffer = Vec::new();
    while receiver.recv_many(&mut buffer, 1_000).await > 0 {
        let mut outcomes = Vec::with_capacity(buffer.len());
        let mut flushed = Vec::new();
        for item in buffer.drain(..) {
            match item {
                ToWriter::Outcome(id, outcome) => outcomes.push((id, outcome)),
                ToWriter::Flush(done) => flushed.push(done),
            }
        }
        if !outcomes.is_empty() {
            let count = outcomes.len();
            if let Err(error) = engine
                .store
                .record_send_outcomes(outcomes, engine.clock.now())
                .await
            {
                // The messages stay `sending`; when their lease ends they are looked up at
                // the provider, so nothing is sent twice or forgotten.
                tracing::error!(%error, count, "could not record send outcomes");
            }
        }
        for done in flushed {
            let _ = done.send(());
        }
    }
}

impl Dispatcher {
    /// Sends until `shutdown` completes; then stops claiming, lets the sends in flight finish
    /// and records their outcomes. Rounds that fail (the database is busy or gone) are logged
    /// and tried again after a pause.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut supervised_at: Option<DateTime<Utc>> = None;
        // Runs are completed beside the rounds, so a long fan-out never holds up sending.
        let mut completing: Option<tokio::task::JoinHandle<()>> = None;
        // Status checks too: they pace themselves, and must not slow the sends down.
        let mut checked_at: Option<DateTime<Utc>> = None;
        let mut checking: Option<tokio::task::JoinHandle<()>> = None;
        let check_every = chrono::Duration::from_std(self.status_checks.every())
            .unwrap_or(chrono::Duration::seconds(30));
        tracing::info!(
            provider = self.provider.name(),
            rate = self.config.send_rate_per_second,
            "dispatcher started"
        );
        loop {
            // Only the holder of the database's sending lease supervises and completes runs;
            // where one process sends at a time it alone sends, and another waits for it to
            // stop; where several send at once, every one with a live heartbeat sends.
            let concurrent = self.sender_lease.concurrent();
            let leading = self.sender_lease.hold().await.unwrap_or_else(|error| {
                tracing::error!(%error, "could not renew the sending lease");
                !concurrent && self.sender_lease.may_send()
            });
            let sends = leading || (concurrent && self.sender_lease.may_send());
            if !sends {
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
            let now = self.engine.clock.now();
            if leading && supervised_at.is_none_or(|at| now - at >= chrono::Duration::seconds(1)) {
                supervised_at = Some(now);
                if completing.as_ref().is_none_or(|task| task.is_finished()) {
                    let engine = self.engine.clone();
                    completing = Some(tokio::spawn(async move {
                        match engine.complete_runs().await {
                            Ok(done) if !done.is_empty() => {
                                tracing::info!(runs = done.len(), "completed campaign runs");
                            }
                            Ok(_) => {}
                            Err(error) => tracing::error!(%error, "could not complete runs"),
                        }
                    }));
                }
                if let Err(error) = self.engine.supervise_campaigns().await {
                    tracing::error!(%error, "could not supervise campaigns");
                }
            }
            if leading
                && checked_at.is_none_or(|at| now - at >= check_every)
                && checking.as_ref().is_none_or(|task| task.is_finished())
            {
                checked_at = Some(now);
                let checks = self.status_checks.clone();
                checking = Some(tokio::spawn(async move {
                    if let Err(error) = checks.pass().await {
                        tracing::error!(%error, "could not check statuses with the provider");
                    }
                }));
            }
            let pause = match self.dispatch_round().await {
                Ok(report) if report.claimed + report.looked_up > 0 => None,
                Ok(_) => Some(self.config.idle_wait),
                Err(error) => {
                    tracing::error!(%error, "dispatch round failed");
                    Some(Duration::from_secs(1))
                }
            };
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = tokio::time::sleep(pause.unwrap_or_default()) => {}
            }
        }
        // A fan-out cut short is completed at the next start, without duplicates.
        if let Some(task) = completing {
            task.abort();
        }
        // Messages of a pass cut short are asked about again when their hold ends.
        if let Some(task) = checking {
            task.abort();
        }
        tracing::info!("dispatcher stopping: waiting for the sends in flight");
        self.drain().await;
        self.sender_lease.release().await;
        tracing::info!("dispatcher stopped");
    }

    /// One pass of status checks: messages whose final status has not come are asked about
    /// at the provider ([`Provider::fetch_status`]) when [`StatusCheckPolicy`] says, at most a
    /// batch, oldest first, and each answer goes through [`Engine::receive_status`]. [`run`](Self::run) does this about every
    /// [`StatusCheckPolicy::every`].
    pub async fn check_statuses(&self) -> Result<StatusCheckReport, EngineError> {
        self.status_checks.pass().await
    }

    /// Waits until every send in flight has answered and its outcome is recorded.
    pub async fn drain(&self) {
        let all = self.config.max_in_flight.max(1) as u32;
        if let Ok(permits) = self.in_flight.acquire_many(all).await {
            drop(permits);
        }
        let (done, flushed) = oneshot::channel();
        if self.outcomes.send(ToWriter::Flush(done)).await.is_ok() {
            let _ = flushed.await;
        }
    }

    /// One round (see the module docs). Sends are still in flight when it returns; see
    /// [`drain`](Self::drain).
    pub async fn dispatch_round(&self) -> Result<RoundReport, EngineError> {
        let mut report = RoundReport {
            looked_up: self.resolve_unresolved().await?,
            ..RoundReport::default()
        };
        let campaigns = self.sending_campaigns().await?;
        let now = self.engine.clock.now();
        let lease_until = now + self.lease();
        let requests = self.claim_requests(&campaigns);
        let claimed = self
            .engine
            .store
            .claim_due(&requests, self.sender_lease.id(), now, lease_until)
            .await?;
        report.claimed = claimed.len();
        if claimed.is_empty() {
            return Ok(report);
        }
        let mut round = match self.config.limits.daily_conversation_limit {
            Some(_) => {
                let (open, earliest) = self
                    .engine
                    .store
                    .conversations_since(now - chrono::Duration::hours(24))
                    .await?;
                Round::new(open, earliest)
            }
            None => Round::default(),
        };
        let mut decisions = Vec::with_capacity(claimed.len());
        let mut queued = Vec::new();
        for message in claimed {
            let campaign = message.campaign_id.and_then(|id| campaigns.get(&id));
            let disposition = decide(&message, campaign, &self.config.limits, &mut round, now);
            if let Disposition::Queue { sent_as, .. } = &disposition {
                queued.push((message.clone(), *sent_as));
            }
            decisions.push((message.id, disposition));
        }
        self.engine
            .store
            .record_decisions(decisions, self.sender_lease.id(), now)
            .await?;
        report.sent = self.send(queued, &campaigns).await?;
        Ok(report)
    }

    fn lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.config.lease).unwrap_or(chrono::Duration::minutes(2))
    }

    /// Campaigns whose messages are sent now ([`CampaignStatus::sends_messages`]), by id.
    async fn sending_campaigns(&self) -> Result<HashMap<CampaignId, Campaign>, EngineError> {
        let mut campaigns = HashMap::new();
        for status in CampaignStatus::ALL
            .into_iter()
            .filter(|s| s.sends_messages())
        {
            let found = self.engine.campaigns_in(status).await?;
            campaigns.extend(found.into_iter().map(|c| (c.id, c)));
        }
        Ok(campaigns)
    }

    /// What to claim: about a second's worth of sends at the sender's rate, shared among the
    /// sending campaigns and replies, each no more than its own rate allows in that time.
    fn claim_requests(&self, campaigns: &HashMap<CampaignId, Campaign>) -> Vec<ClaimRequest> {
        let sender = self.config.send_rate_per_second.max(0.0);
        let budget = (sender.ceil() as u64).clamp(1, u64::from(self.config.max_claim.max(1)));
        let share = (budget / (campaigns.len() as u64 + 1)).max(1) as u32;
        let mut requests: Vec<ClaimRequest> = campaigns
            .values()
            .map(|campaign| {
                let own = campaign
                    .rate_limit_per_second
                    .filter(|rate| *rate > 0)
                    .unwrap_or(u32::MAX);
                ClaimRequest {
                    campaign_id: Some(campaign.id),
                    limit: share.min(own),
                }
            })
            .collect();
        requests.push(ClaimRequest {
            campaign_id: None,
            limit: share,
        });
        requests
    }

    /// Sends queued messages at the allowed rates (see the module docs); answers how many
    /// went to the provider.
    async fn send(
        &self,
        queued: Vec<(DueMessage, SendAs)>,
        campaigns: &HashMap<CampaignId, Campaign>,
    ) -> Result<usize, EngineError> {
        /// Marked `sending` together: small, so that a crash leaves few messages to look up.
        const CHUNK: usize = 64;
        let sender = self.rates.sender();
        let mut chunk: Vec<(DueMessage, SendAs, OwnedSemaphorePermit)> = Vec::new();
        let mut sent = 0;
        for (message, sent_as) in queued {
            let campaign_limiter = message.campaign_id.and_then(|id| {
                let rate = campaigns.get(&id).and_then(|c| c.rate_limit_per_second);
                self.rates.campaign(id, rate)
            });
            if let Some(limiter) = &campaign_limiter {
                self.take(limiter, &mut chunk, &mut sent).await?;
            }
            self.take(&sender, &mut chunk, &mut sent).await?;
            if let Some(shared) = &self.shared_rates {
                if let Some((id, rate)) = message.campaign_id.and_then(|id| {
                    let rate = campaigns.get(&id)?.rate_limit_per_second?;
                    (rate > 0).then_some((id, rate))
                }) {
                    let bucket = campaign_bucket(id);
                    self.take_shared(shared, &bucket, f64::from(rate), &mut chunk, &mut sent)
                        .await?;
                }
                let rate = self.config.send_rate_per_second;
                self.take_shared(shared, SENDER_BUCKET, rate, &mut chunk, &mut sent)
                    .await?;
            }
            let permit = match self.in_flight.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    sent += self.flush(&mut chunk).await?;
                    self.in_flight
                        .clone()
                        .acquire_owned()
                        .await
                        .map_err(|_| crate::store::StoreError::WorkerGone)?
                }
            };
            chunk.push((message, sent_as, permit));
            if chunk.len() >= CHUNK {
                sent += self.flush(&mut chunk).await?;
            }
        }
        sent += self.flush(&mut chunk).await?;
        Ok(sent)
    }

    /// Takes a permit from `limiter`, sending what is ready before waiting for one.
    async fn take(
        &self,
        limiter: &Limiter,
        chunk: &mut Vec<(DueMessage, SendAs, OwnedSemaphorePermit)>,
        sent: &mut usize,
    ) -> Result<(), EngineError> {
        loop {
            match self.rates.try_take(limiter) {
                Ok(()) => return Ok(()),
                Err(wait) => {
                    *sent += self.flush(chunk).await?;
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Takes a permit from the database's bucket `key`, sending what is ready before asking
    /// the database (and maybe waiting) for more.
    async fn take_shared(
        &self,
        shared: &SharedRates,
        key: &str,
        per_second: f64,
        chunk: &mut Vec<(DueMessage, SendAs, OwnedSemaphorePermit)>,
        sent: &mut usize,
    ) -> Result<(), EngineError> {
        if !shared.has_unused(key) {
            *sent += self.flush(chunk).await?;
        }
        shared.take(key, per_second).await
    }

    /// Marks a chunk `sending` and starts its sends; answers how many started.
    async fn flush(
        &self,
        chunk: &mut Vec<(DueMessage, SendAs, OwnedSemaphorePermit)>,
    ) -> Result<usize, EngineError> {
        if chunk.is_empty() {
            return Ok(0);
        }
        if !self.sender_lease.may_send() {
            // The lease is running out: whoever takes it over sends these.
            chunk.clear();
            return Ok(0);
        }
        let now = self.engine.clock.now();
        let ids = chunk.iter().map(|(m, _, _)| m.id).collect();
        let marked = self
            .engine
            .store
            .mark_sending(ids, self.sender_lease.id(), now, now + self.lease())
            .await?;
        let mut started = 0;
        for (message, sent_as, permit) in chunk.drain(..) {
            // Not marked: its campaign was paused or ended meanwhile; it waits in the queue.
            if !marked.contains(&message.id) {
                continue;
            }
            started += 1;
            self.spawn_send(message, sent_as, permit);
        }
        Ok(started)
    }

    fn spawn_send(&self, message: DueMessage, sent_as: SendAs, permit: OwnedSemaphorePermit) {
        let (provider, outcomes) = (self.provider.clone(), self.outcomes.clone());
        let (engine, retry, rng) = (self.engine.clone(), self.config.retry, self.rng.clone());
        let attempt = message.attempts + 1;
        // One span per send attempt, with the ids an operator searches logs by.
        let span = tracing::info_span!(
            "send",
            message = %message.id,
            campaign = message.campaign_id.map(tracing::field::display),
            to = %message.phone,
            attempt,
            provider = provider.name(),
        );
        let outbound = outbound(message, sent_as);
        let send = async move {
            let answer = provider.send(&outbound).await;
            match &answer {
                Ok(accepted) => tracing::debug!(sid = %accepted.provider_sid, "accepted"),
                Err(error) => tracing::warn!(%error, "send not accepted"),
            }
            let outcome = {
                let mut rng = rng.lock().unwrap_or_else(|e| e.into_inner());
                retry.outcome(answer, attempt, engine.clock.now(), &mut rng)
            };
            let _ = outcomes.send(ToWriter::Outcome(outbound.id, outcome)).await;
            drop(permit);
        };
        tokio::spawn(send.instrument(span));
    }

    /// Looks up, at the provider, sends left without an answer; answers how many.
    async fn resolve_unresolved(&self) -> Result<usize, EngineError> {
        let now = self.engine.clock.now();
        let unresolved = self
            .engine
            .store
            .claim_unresolved(self.sender_lease.id(), now, now + self.lease(), 100)
            .await?;
        let count = unresolved.len();
        for send in unresolved {
            let permit = self
                .in_flight
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| crate::store::StoreError::WorkerGone)?;
            let (provider, outcomes) = (self.provider.clone(), self.outcomes.clone());
            let (engine, max_attempts) = (self.engine.clone(), self.config.retry.max_attempts);
            tokio::spawn(async move {
                let UnresolvedSend {
                    message,
                    sending_since,
                } = send;
                let attempts = message.attempts;
                let sent_as = message.sent_as.unwrap_or(SendAs::FreeText);
                let outbound = outbound(message, sent_as);
                let found = provider.lookup(&outbound, sending_since).await;
                let outcome = unresolved_outcome(found, attempts, max_attempts, engine.clock.now());
                tracing::info!(message = %outbound.id, ?outcome, "looked up a send without an answer");
                let _ = outcomes.send(ToWriter::Outcome(outbound.id, outcome)).await;
                drop(permit);
            });
        }
        Ok(count)
    }
}

/// The message as the provider gets it.
fn outbound(message: DueMessage, sent_as: SendAs) -> OutboundMessage {
    let (body, content_sid, content_variables) = match sent_as {
        SendAs::FreeText => (Some(message.body), None, None),
        SendAs::ApprovedTemplate => (None, message.content_sid, message.content_variables),
    };
    OutboundMessage {
        id: message.id,
        to: message.phone,
        body,
        content_sid,
        content_variables,
    }
}

/// What a lookup at the provider means for a send that got no answer.
fn unresolved_outcome(
    found: Lookup,
    attempts: u32,
    max_attempts: u32,
    now: DateTime<Utc>,
) -> SendOutcome {
    let decision = |outcome, reason: String| AuditDecision {
        step: "lookup".into(),
        outcome,
        reason,
        at: now,
    };
    match found {
        Lookup::Found(accepted) => SendOutcome::Accepted {
            provider_sid: accepted.provider_sid,
            status: accepted.status,
        },
        Lookup::NotFound if attempts < max_attempts => SendOutcome::Retry {
            at: now,
            decision: decision(
                MessageStatus::Queued,
                "the provider has no such message: it was never taken, so it is sent again".into(),
            ),
        },
        Lookup::NotFound => SendOutcome::Failed {
            error_code: None,
            decision: decision(
                MessageStatus::Failed,
                format!("gave up after {attempts} attempts that got no answer"),
            ),
        },
        Lookup::Unknown(why) => SendOutcome::Failed {
            error_code: None,
            decision: decision(
                MessageStatus::Failed,
                format!(
                    "outcome unknown, not resent: the provider may have taken it and could not \
                     say ({why})"
                ),
            ),
        },
    }
}

mod sender_lease;
mod shared_rate;
pub mod status_checks;
#[cfg(test)]
mod tests;
