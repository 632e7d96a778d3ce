//! Delivery statuses from the provider: Twilio's status webhooks, the statuses read by
//! polling Twilio's list of messages, and the sandbox's simulated ones, which all take exactly
//! the same path.

//!
//! Receipts are committed in groups: each call puts its receipt in a queue ([`ReceiptQueue`])
//! and waits for its own outcome, while a writer task records whatever has queued up in one
//! transaction ([`ReceiptStore::record_receipts`]). Under a burst of webhooks a commit serves
//! hundreds of them instead of one, which is what keeps a single SQLite writer (and a
//! PostgreSQL database's commit rate) from setting the webhooks' latency. A lone receipt
//! goes at once: a writer never waits for a group to fill. Where transactions run side by
//! side, the queue has several lanes, each with its writer, and a SID always takes the same
//! lane.
//!
//! [`ReceiptStore::record_receipts`]: crate::store::ReceiptStore::record_receipts

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::domain::{DeliveryReceipt, MessageId, MessageStatus};
use crate::provider::{Accepted, StatusFields};
use crate::store::{ReceiptOutcome, Store, StoreError};

use super::{Engine, EngineError};

/// What became of a status callback.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReceipt {
    /// The receipt as read from the callback.
    pub receipt: DeliveryReceipt,
    /// What it did.
    pub outcome: ReceiptOutcome,
}

impl Engine {
    /// Handles one status callback from Twilio's form fields (or the sandbox's). Repeats are
    /// idempotent, statuses never move a message backwards, and a status for a SID not yet
    /// recorded waits until it is.
    pub async fn receive_status(
        &self,
        fields: BTreeMap<String, String>,
    ) -> Result<StatusReceipt, EngineError> {
        let receipt = DeliveryReceipt::from_webhook(fields, self.clock.now())
            .map_err(EngineError::Invalid)?;
        let outcome = self.receipts.record(&self.store, receipt.clone()).await?;
        // Repeats are routine when polling re-reads its overlap: not worth a line each.
        if outcome == ReceiptOutcome::Duplicate {
            tracing::debug!(sid = %receipt.message_sid, status = %receipt.provider_status, "delivery status repeated");
        } else {
            tracing::info!(
                sid = %receipt.message_sid,
                status = %receipt.provider_status,
                ?outcome,
                "delivery status"
            );
        }
        Ok(StatusReceipt { receipt, outcome })
    }

    /// Feeds status reports (the sandbox provider's simulated ones) through
    /// [`receive_status`](Self::receive_status), exactly as if they had come by webhook, until
    /// the channel closes.
    pub async fn receive_statuses(&self, mut statuses: mpsc::Receiver<StatusFields>) {
        while let Some(fields) = statuses.recv().await {
            if let Err(error) = self.receive_status(fields).await {
                tracing::warn!(%error, "a status report could not be applied");
            }
        }
    }

    /// Records the provider's acceptance of a message (its SID and first status) and applies
    /// any statuses that arrived for that SID before it. The dispatcher calls this after each
    /// accepted send.
    pub async fn record_acceptance(
        &self,
        message: MessageId,
        accepted: &Accepted,
    ) -> Result<MessageStatus, EngineError> {
        Ok(self
            .store
            .record_acceptance(
                message,
                &accepted.provider_sid,
                accepted.status,
                self.clock.now(),
            )
            .await?)
    }
}

/// The most receipts one transaction records.
const MAX_GROUP: usize = 1_000;

type Reply = oneshot::Sender<Result<ReceiptOutcome, StoreError>>;

/// Receipts waiting to be recorded in groups (see the module docs), in lanes: a receipt's
/// lane follows from its SID, and each lane has at most one writer task. Receipts for one
/// SID are so recorded in their order of arrival, and two writers never wait for each other
/// on a SID (a transaction holds its SIDs' locks on PostgreSQL until it commits).
pub(super) struct ReceiptQueue {
    lanes: Vec<Mutex<Lane>>,
}

#[derive(Default)]
struct Lane {
    waiting: VecDeque<(DeliveryReceipt, Reply)>,
    writing: bool,
}

impl ReceiptQueue {
    /// A queue of `lanes` lanes, so with at most that many writer tasks: one where the store
    /// has a single writer anyway (SQLite), more where transactions run side by side.
    pub(super) fn new(lanes: usize) -> Self {
        Self {
            lanes: (0..lanes.max(1)).map(|_| Mutex::default()).collect(),
        }
    }

    /// The lane of the receipts for `sid`.
    fn lane_of(&self, sid: &str) -> usize {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        sid.hash(&mut hasher);
        (hasher.finish() % self.lanes.len() as u64) as usize
    }

    /// Records `receipt` in the next group of its lane and answers its outcome.
    ///
    /// The writing happens in a task of its own, never in the caller's future: a caller that
    /// goes away (an HTTP client that hung up) leaves the group it joined to be written all
    /// the same, and never strands the receipts queued behind it.
    async fn record(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
        receipt: DeliveryReceipt,
    ) -> Result<ReceiptOutcome, StoreError> {
        let lane = self.lane_of(&receipt.message_sid);
        let (reply, outcome) = oneshot::channel();
        let start_writer = {
            let mut state = self.lanes[lane].lock().unwrap_or_else(|e| e.into_inner());
            state.waiting.push_back((receipt, reply));
            !std::mem::replace(&mut state.writing, true)
        };
        if start_writer {
            // The lane is given back however the task ends, even dropped unstarted.
            let writing = Writing(Some((Arc::clone(self), lane)));
            let store = Arc::clone(store);
            tokio::spawn(async move { writing.write(store).await });
        }
        outcome.await.unwrap_or(Err(StoreError::WorkerGone))
    }

    /// A writer task's work: records the groups of `lane` until it is empty, then gives the
    /// lane back and answers `true`. Whether it stops is decided under the lock every caller
    /// queues under, so a receipt is never left without a writer.
    async fn write(&self, lane: usize, store: &dyn Store) -> bool {
        loop {
            let group: Vec<(DeliveryReceipt, Reply)> = {
                let mut state = self.lanes[lane].lock().unwrap_or_else(|e| e.into_inner());
                if state.waiting.is_empty() {
                    state.writing = false;
                    return true;
                }
                let take = state.waiting.len().min(MAX_GROUP);
                state.waiting.drain(..take).collect()
            };
            let (receipts, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
            match store.record_receipts(&receipts).await {
                Ok(outcomes) if outcomes.len() == receipts.len() => {
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(Ok(outcome));
                    }
                }
                Ok(outcomes) => {
                    let error = StoreError::database(format!(
                        "{} receipts recorded with {} outcomes",
                        receipts.len(),
                        outcomes.len()
                    ));
                    tracing::error!(%error, "a group of receipts was answered wrongly");
                    alone(store, receipts, replies).await;
                }
                // One bad receipt must not fail the others: each is tried alone, which is
                // harmless for any the group did record (a repeat changes nothing).
                Err(error) if receipts.len() > 1 => {
                    tracing::warn!(%error, receipts = receipts.len(), "a group of receipts failed; recording them one by one");
                    alone(store, receipts, replies).await;
                }
                Err(error) => {
                    if let Some(reply) = replies.into_iter().next() {
                        let _ = reply.send(Err(error));
                    }
                }
            }
        }
    }
}

/// Records each receipt in a transaction of its own, answering each.
async fn alone(store: &dyn Store, receipts: Vec<DeliveryReceipt>, replies: Vec<Reply>) {
    for (receipt, reply) in receipts.iter().zip(replies) {
        let _ = reply.send(store.record_receipt(receipt).await);
    }
}

/// A writer task's hold on its lane. It is given back when the lane is empty, or, if the task
/// ends before that (it panicked, or its runtime shut down, maybe before it ever ran), when
/// this is dropped; the receipts still queued in the lane are then answered with an error
/// rather than left waiting.
struct Writing(Option<(Arc<ReceiptQueue>, usize)>);

impl Writing {
    /// Records the lane's groups until it is empty (see [`ReceiptQueue::write`]).
    async fn write(mut self, store: Arc<dyn Store>) {
        let Some((queue, lane)) = self.0.clone() else {
            return;
        };
        if queue.write(lane, store.as_ref()).await {
            // The lane was given back with its queue empty.
            self.0 = None;
        }
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        let Some((queue, lane)) = self.0.take() else {
            return;
        };
        let mut state = queue.lanes[lane].lock().unwrap_or_else(|e| e.into_inner());
        state.writing = false;
        // Dropping a reply answers its caller `WorkerGone`.
        state.waiting.clear();
    }
}
