//! Fan-out: turning one run of a campaign into one outbox message per recipient.
//!
//! Recipients are the subscribers of the campaign's topic (when set), narrowed by its segment
//! (when set), narrowed by the triggering event's own rule; a campaign with neither topic nor
//! segment goes to every opted-in user. Each recipient's message is rendered here, and
//! decisions that can be taken at once are recorded with it (opted out, missing placeholder:
//! skipped). Messages are unique per run and recipient, so running the fan-out of a run again
//! (after a crash) adds only what is missing and never a second message.
//!
//! One engine at a time fans a run out, whichever process it is in: it holds the run's lease
//! in the store ([`OutboxStore::lease_run`], 15 s, renewed every 5 s while it works) and,
//! within the process, the run's place in [`Fanning`]. Another that finds the run held
//! leaves it (completing runs) or waits for it (a launch, which answers the run's count); a
//! process that dies mid-way leaves a lease that runs out, and the next one to try takes it
//! and adds only what is missing.
//!
//! [`OutboxStore::lease_run`]: crate::store::OutboxStore::lease_run

mod ids;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::domain::{
    AuditDecision, Campaign, CampaignCommand, CampaignId, Message, MessageId, MessageStatus, RunId,
    Trigger, TriggerEvent, User,
};
use crate::orchestrate::policy::{self, Verdict};
use crate::segment::SegmentRule;
use crate::store::{CampaignRun, MessageQuery, OutboxEntry, Page, PageRequest, RunLease};
use crate::template::{CompiledTemplate, RenderContext, RenderError, Rendered};

use self::ids::MessageIds;
use super::{Engine, EngineError};

/// The trigger key of a manual campaign's run.
pub(super) const LAUNCH: &str = "launch";

/// Users read, rendered and written per transaction.
const FAN_OUT_BATCH: u32 = 5_000;

/// A run stops when this many recipients in a row, from its start, could not be rendered
/// within the budget (see [`RenderError::is_over_budget`]): the template is at fault.
const OVER_BUDGET_STOP: u32 = 100;

/// How long a fan-out's lease lasts unless renewed: how soon another process finishes the
/// fan-out of one that died.
const RUN_LEASE: Duration = Duration::from_secs(15);

/// How often a fan-out renews its lease.
const RUN_LEASE_RENEWAL: Duration = Duration::from_secs(5);

/// How often a launch looks again at a launch run another process is fanning out.
const RUN_WAIT_STEP: Duration = Duration::from_millis(200);

/// The longest a launch waits for a launch run another process is fanning out: far more
/// than a fan-out of millions takes, and a bound however the other process fares.
const RUN_WAIT_LIMIT: Duration = Duration::from_secs(600);

/// The runs one engine is fanning out right now (see the module docs).
#[derive(Debug, Default)]
pub(super) struct Fanning(Mutex<HashSet<RunId>>);

/// A run's place in [`Fanning`], given back when dropped (whatever ends the fan-out).
struct FanningRun<'a> {
    fanning: &'a Fanning,
    run: RunId,
}

impl Fanning {
    /// Takes `run`'s place, unless another task of this engine holds it.
    fn take(&self, run: RunId) -> Option<FanningRun<'_>> {
        let taken = self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(run);
        // Built only when taken (never `then_some`, which builds it either way): dropping
        // one gives the place back, so one built here in vain would free another's place
        // and wait for the lock still held.
        if taken {
            Some(FanningRun { fanning: self, run })
        } else {
            None
        }
    }
}

impl Drop for FanningRun<'_> {
    fn drop(&mut self) {
        let mut runs = self.fanning.0.lock().unwrap_or_else(|e| e.into_inner());
        runs.remove(&self.run);
    }
}

/// What became of an attempt at a run's fan-out.
pub(super) enum FanOut {
    /// This attempt fanned the run out.
    Done(RunSummary),
    /// The run had been fanned out already (by another process, just before).
    Finished(RunSummary),
    /// Someone else is fanning it out right now.
    Elsewhere,
}

/// [`RUN_LEASE`] as the clock counts it.
fn lease_length() -> chrono::Duration {
    chrono::Duration::from_std(RUN_LEASE).unwrap_or(chrono::Duration::MAX)
}

/// What every batch of one fan-out shares.
struct Recipients {
    rule: SegmentRule,
    /// The template's name, for errors.
    template_name: String,
    template: Arc<CompiledTemplate>,
    /// Whether any recipient's message has rendered within its budget yet.
    any_within_budget: Arc<AtomicBool>,
    content_sid: Option<String>,
    event: Arc<serde_json::Map<String, serde_json::Value>>,
    now: chrono::DateTime<chrono::Utc>,
    ids: Arc<MessageIds>,
}

/// What a fan-out did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// The run.
    pub run: CampaignRun,
    /// Messages the run holds in all.
    pub messages: u64,
    /// Messages this call added (0 when the run had been fanned out already).
    pub added: u64,
}

impl Engine {
    /// Launches a campaign. A manual campaign starts running and its recipients are fanned
    /// out into the outbox at once; an event-triggered one starts listening for its events.
    pub async fn launch_campaign(
        &self,
        id: CampaignId,
    ) -> Result<(Campaign, Option<RunSummary>), EngineError> {
        let campaign = self.command_campaign(id, CampaignCommand::Launch).await?;
        match campaign.trigger {
            Trigger::Manual => match self.fan_out(&campaign, None).await {
                Ok(summary) => Ok((campaign, Some(summary))),
                Err(error) => {
                    self.fan_out_failed(&campaign, LAUNCH, &error).await;
                    Err(error)
                }
            },
            Trigger::Event { .. } => Ok((campaign, None)),
        }
    }

    /// Fans one run of `campaign` out into the outbox: the launch run, or the run of `event`.
    /// Safe to repeat: the run and its messages are unique, so a repeat adds only what a
    /// crash left missing.
    pub async fn fan_out(
        &self,
        campaign: &Campaign,
        event: Option<&TriggerEvent>,
    ) -> Result<RunSummary, EngineError> {
        let (trigger_key, event_id) = match event {
            Some(event) => (event.run_trigger_key(), Some(event.id)),
            None => (LAUNCH.to_owned(), None),
        };
        let run = self
            .store
            .open_run(campaign.id, &trigger_key, event_id, self.clock.now())
            .await?;
        // Another process (or this one's run completion) may be on it already: its count
        // is the answer once it is done.
        let waiting_since = std::time::Instant::now();
        loop {
            match self.fan_out_run(campaign, run.clone(), event).await? {
                FanOut::Done(summary) | FanOut::Finished(summary) => return Ok(summary),
                FanOut::Elsewhere if waiting_since.elapsed() < RUN_WAIT_LIMIT => {
                    tokio::time::sleep(RUN_WAIT_STEP).await;
                }
                FanOut::Elsewhere => {
                    return Err(EngineError::Conflict(format!(
                        "the run {} of campaign {} is still being fanned out by another \
                         process after {} s; its messages go out as it completes",
                        run.id,
                        campaign.id,
                        RUN_WAIT_LIMIT.as_secs()
                    )));
                }
            }
        }
    }

    /// Fans out an opened run (see [`Engine::fan_out`]) under its lease, unless someone
    /// else holds that.
    pub(super) async fn fan_out_run(
        &self,
        campaign: &Campaign,
        run: CampaignRun,
        event: Option<&TriggerEvent>,
    ) -> Result<FanOut, EngineError> {
        let Some(_place) = self.fanning.take(run.id) else {
            return Ok(FanOut::Elsewhere);
        };
        let now = self.clock.now();
        match self
            .store
            .lease_run(run.id, &self.instance, now, now + lease_length())
            .await?
        {
            RunLease::Taken => {}
            RunLease::HeldElsewhere => return Ok(FanOut::Elsewhere),
            RunLease::Finished(messages) => {
                return Ok(FanOut::Finished(RunSummary {
                    run,
                    messages,
                    added: 0,
                }));
            }
        }
        let run_id = run.id;
        let outcome = tokio::select! {
            result = self.fan_out_leased(campaign, run, event) => result.map(FanOut::Done),
            () = self.keep_run_lease(run_id) => Ok(FanOut::Elsewhere),
        };
        // Given back at once, so a failed fan-out can be tried again without waiting for the
        // lease to run out (a finished run needs no lease).
        if let Err(error) = self.store.release_run(run_id, &self.instance).await {
            tracing::warn!(run = %run_id, %error, "could not give back a fan-out's lease");
        }
        outcome
    }

    /// Renews the lease of `run`'s fan-out every [`RUN_LEASE_RENEWAL`]; returns only if
    /// another owner took it over (this one was too slow to renew it in time), which ends
    /// this fan-out and leaves the run to that owner.
    async fn keep_run_lease(&self, run: RunId) {
        loop {
            tokio::time::sleep(RUN_LEASE_RENEWAL).await;
            let now = self.clock.now();
            match self
                .store
                .lease_run(run, &self.instance, now, now + lease_length())
                .await
            {
                Ok(RunLease::Taken) => {}
                // Finished can only be this fan-out's own doing, about to return.
                Ok(RunLease::Finished(_)) => std::future::pending::<()>().await,
                Ok(RunLease::HeldElsewhere) => {
                    tracing::warn!(%run, "another process took over this fan-out; leaving it");
                    return;
                }
                // The lease outlasts two renewals: a passing failure costs nothing.
                Err(error) => tracing::warn!(%run, %error, "could not renew a fan-out's lease"),
            }
        }
    }

    /// Fans out an opened run whose lease this engine holds.
    async fn fan_out_leased(
        &self,
        campaign: &Campaign,
        run: CampaignRun,
        event: Option<&TriggerEvent>,
    ) -> Result<RunSummary, EngineError> {
        let template = self.get_template(campaign.template_id).await?;
        let compiled = CompiledTemplate::new(&template)?;
        let rule = self.recipients_rule(campaign, event).await?;
        let now = self.clock.now();
        let recipients = Recipients {
            rule,
            template_name: template.name.clone(),
            template: Arc::new(compiled),
            any_within_budget: Arc::default(),
            content_sid: template.content_sid.clone(),
            event: Arc::new(event.map(|e| e.data.clone()).unwrap_or_default()),
            now,
            ids: Arc::default(),
        };
        // Reading, rendering and writing run side by side, each at its own pace, handing
        // batches on through queues one deep: the store reads while it writes the previous
        // batch, and rendering runs on a thread of its own.
        let (pages, mut to_render) = mpsc::channel::<Vec<User>>(1);
        let (batches, mut to_write) = mpsc::channel::<Vec<OutboxEntry>>(1);
        let recipients = &recipients;
        let read = async move {
            let mut cursor = None;
            loop {
                let Page { items, next_cursor } = self.read_batch(recipients, cursor).await?;
                // A closed queue means a later stage failed; its error is the one reported.
                if !items.is_empty() && pages.send(items).await.is_err() {
                    break;
                }
                match next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            Ok::<_, EngineError>(())
        };
        let render = async move {
            while let Some(users) = to_render.recv().await {
                let entries = self.render_batch(recipients, users).await?;
                if batches.send(entries).await.is_err() {
                    break;
                }
            }
            Ok::<_, EngineError>(())
        };
        let write = async {
            let mut added = 0;
            while let Some(entries) = to_write.recv().await {
                added += self.store.enqueue(&run, entries, now).await?;
            }
            Ok::<_, EngineError>(added)
        };
        let ((), (), added) = tokio::try_join!(read, render, write)?;
        let messages = self.store.finish_run(run.id).await?;
        if campaign.problem.is_some() {
            self.store.set_campaign_problem(campaign.id, None).await?;
        }
        tracing::info!(campaign = %campaign.id, run = %run.id, messages, added, "fanned out");
        Ok(RunSummary {
            run,
            messages,
            added,
        })
    }

    /// Reads the batch of recipients after `cursor` (from the first without one).
    async fn read_batch(
        &self,
        recipients: &Recipients,
        cursor: Option<String>,
    ) -> Result<Page<User>, EngineError> {
        let page = PageRequest {
            cursor,
            ..PageRequest::first(FAN_OUT_BATCH)
        };
        Ok(self
            .store
            .audience(&recipients.rule, recipients.now, &page)
            .await?)
    }

    /// Renders the messages of a batch of recipients, off the async workers.
    async fn render_batch(
        &self,
        recipients: &Recipients,
        users: Vec<User>,
    ) -> Result<Vec<OutboxEntry>, EngineError> {
        let (template, event) = (recipients.template.clone(), recipients.event.clone());
        let (content_sid, now) = (recipients.content_sid.clone(), self.clock.now());
        let within_budget = recipients.any_within_budget.clone();
        let ids = recipients.ids.take(users.len());
        let entries = tokio::task::spawn_blocking(move || {
            let mut over_budget = 0;
            let mut entries = Vec::with_capacity(users.len());
            for (user, id) in users.into_iter().zip(ids) {
                let (mut entry, error) = entry_for(id, user, &template, &event, now);
                match error {
                    Some(error) if error.is_over_budget() => {
                        over_budget += 1;
                        // The template, not the data: stop before it costs a whole run.
                        if over_budget >= OVER_BUDGET_STOP && !within_budget.load(Relaxed) {
                            return Err(error);
                        }
                    }
                    _ => within_budget.store(true, Relaxed),
                }
                entry.content_sid = content_sid.clone();
                entries.push(entry);
            }
            Ok(entries)
        })
        .await
        .map_err(|_| crate::store::StoreError::WorkerGone)?;
        entries.map_err(|error| {
            EngineError::invalid(
                "template_id",
                format!(
                    "the template \"{}\" cannot be rendered: {error}",
                    recipients.template_name
                ),
            )
        })
    }

    /// Who a run of `campaign` (for `event`, if any) is for.
    pub(super) async fn recipients_rule(
        &self,
        campaign: &Campaign,
        event: Option<&TriggerEvent>,
    ) -> Result<SegmentRule, EngineError> {
        let mut parts = Vec::new();
        if let Some(topic) = &campaign.topic {
            parts.push(SegmentRule::parse(&json!({ "topic": topic.as_str() }))?);
        }
        if let Some(segment) = campaign.segment_id {
            parts.push(self.get_segment(segment).await?.rule);
        }
        if parts.is_empty() {
            parts.push(SegmentRule::parse(&json!({ "consent": "OPT_IN" }))?);
        }
        if let Some(rule) = event.and_then(|e| e.segment_rule.as_ref()) {
            parts.push(rule.clone());
        }
        // A user event (`{"user": …, "name": "cart_abandoned"}`) is about that user alone.
        if let Some(user) = event.and_then(|e| e.user.as_ref()) {
            parts.push(SegmentRule::parse(
                &json!({ "field": "phone", "op": "eq", "value": user.as_str() }),
            )?);
        }
        let mut rule = parts.remove(0);
        for part in &parts {
            rule = rule.and(part);
        }
        Ok(rule)
    }

    /// One message with its status history and decisions.
    pub async fn get_message(&self, id: MessageId) -> Result<Message, EngineError> {
        self.store
            .get_message(id)
            .await?
            .ok_or_else(|| EngineError::not_found("message", id))
    }

    /// Messages, newest first.
    pub async fn list_messages(
        &self,
        query: &MessageQuery,
        page: &PageRequest,
    ) -> Result<Page<Message>, EngineError> {
        Ok(self.store.list_messages(query, page).await?)
    }
}

/// One recipient's message as a run writes it: rendered with the run's event data (none for
/// a launch), with the decision that needs nothing but the user. The fan-out writes it and the
/// campaign preview shows it, through this one function, so a preview is what is sent.
pub(super) struct PreparedMessage {
    /// The rendered text; `None` when it could not be rendered.
    pub body: Option<String>,
    /// The approved template's variables, rendered, when the template has them.
    pub content_variables: Option<BTreeMap<String, String>>,
    /// Skipped at once (the message cannot be rendered, the user opted out); `None` to leave
    /// it to the dispatcher.
    pub decision: Option<AuditDecision>,
    /// Why it could not be rendered.
    pub error: Option<RenderError>,
}

/// Renders `user`'s message and takes the decisions that need nothing but the user: a message
/// that cannot be rendered is skipped for that, then an opted-out user is.
pub(super) fn prepare_message(
    user: User,
    template: &CompiledTemplate,
    event: &Arc<serde_json::Map<String, serde_json::Value>>,
    now: chrono::DateTime<chrono::Utc>,
) -> PreparedMessage {
    let consent = policy::consent(&user);
    let context = RenderContext::from_user(user).with_event(Arc::clone(event));
    match template.render(&context) {
        Err(error) => PreparedMessage {
            body: None,
            content_variables: None,
            decision: policy::decision("template", &Verdict::Skip(error.to_string()), now),
            error: Some(error),
        },
        Ok(Rendered {
            body,
            content_variables,
        }) => PreparedMessage {
            body: Some(body),
            content_variables,
            decision: policy::decision("consent", &consent, now),
            error: None,
        },
    }
}

/// The outbox entry of one recipient (see [`prepare_message`]), and why it could not be
/// rendered.
fn entry_for(
    id: MessageId,
    user: User,
    template: &CompiledTemplate,
    event: &Arc<serde_json::Map<String, serde_json::Value>>,
    now: chrono::DateTime<chrono::Utc>,
) -> (OutboxEntry, Option<RenderError>) {
    let phone = user.phone.clone();
    let prepared = prepare_message(user, template, event, now);
    let entry = OutboxEntry {
        id,
        phone,
        body: prepared.body.unwrap_or_default(),
        content_sid: None,
        content_variables: prepared.content_variables,
        status: prepared
            .decision
            .as_ref()
            .map_or(MessageStatus::Pending, |d| d.outcome),
        decision: prepared.decision,
    };
    (entry, prepared.error)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::SystemClock;
    use crate::domain::{CampaignDraft, TemplateDraft};
    use crate::ingest::{IngestSource, UserFileFormat};
    use crate::store::sqlite::SqliteStore;

    /// Users `+9477000000N`, every hundredth without a name.
    async fn engine_with_users(count: usize) -> (Engine, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("f.db")).await.unwrap();
        let engine = Engine::new(Arc::new(store), Arc::new(SystemClock));
        let rows = (0..count).map(|i| {
            let name = if i % 100 == 0 {
                String::new()
            } else {
                format!("User {i}")
            };
            format!("+9477{i:07},{name}")
        });
        let csv: Vec<String> = std::iter::once("phone,name".to_owned())
            .chain(rows)
            .collect();
        let file = Cursor::new(csv.join("\n").into_bytes());
        engine
            .ingest_users(file, UserFileFormat::Csv, IngestSource::Api)
            .await
            .unwrap();
        (engine, dir)
    }

    #[test]
    fn a_run_taken_in_the_process_is_refused_to_others_until_given_back() {
        let fanning = Fanning::default();
        let run = RunId::new();
        let first = fanning.take(run).expect("a free run is taken");
        // Refused, and refusing leaves the first holder's place alone.
        assert!(fanning.take(run).is_none());
        assert!(fanning.take(run).is_none());
        assert!(fanning.take(RunId::new()).is_some());
        drop(first);
        assert!(fanning.take(run).is_some());
    }

    #[tokio::test]
    async fn a_fan_out_over_several_batches_writes_every_recipient_once() {
        let count = 2 * FAN_OUT_BATCH as usize + 345;
        let (engine, _dir) = engine_with_users(count).await;
        let template = engine
            .create_template(TemplateDraft {
                name: "t".into(),
                content: "Hi {{ name }}".into(),
                ..TemplateDraft::default()
            })
            .await
            .unwrap();
        let draft: CampaignDraft =
            serde_json::from_value(json!({"name": "c", "template_id": template.id})).unwrap();
        let campaign = engine.create_campaign(draft).await.unwrap();
        let (campaign, summary) = engine.launch_campaign(campaign.id).await.unwrap();
        let summary = summary.unwrap();
        assert_eq!(
            (summary.messages, summary.added),
            (count as u64, count as u64)
        );

        let again = engine.fan_out(&campaign, None).await.unwrap();
        assert_eq!((again.messages, again.added), (count as u64, 0));

        let stats = engine.stats(Some(campaign.id)).await.unwrap();
        let unnamed = count.div_ceil(100) as u64;
        assert_eq!(stats.by_status[&MessageStatus::Skipped], unnamed);
        assert_eq!(
            stats.by_status[&MessageStatus::Pending],
            count as u64 - unnamed
        );
        let query = MessageQuery {
            campaign_id: Some(campaign.id),
            ..MessageQuery::default()
        };
        let newest = engine
            .list_messages(&query, &PageRequest::first(1))
            .await
            .unwrap()
            .items
            .remove(0);
        let message = engine.get_message(newest.id).await.unwrap();
        assert_eq!(message.run_id, Some(summary.run.id));
        match message.status {
            MessageStatus::Pending => assert!(message.body.starts_with("Hi User "), "{message:?}"),
            _ => assert_eq!(message.decisions[0].step, "template"),
        }
    }
}
