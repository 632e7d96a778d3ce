//! Delivery statuses from the provider: Twilio's status webhooks, the statuses read by
//! polling Twilio's list of messages, and the sandbox's simulated ones, which all take exactly
//! the same path.

use std::collections::BTreeMap;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::domain::{DeliveryReceipt, MessageId, MessageStatus};
use crate::provider::{Accepted, StatusFields};
use crate::store::ReceiptOutcome;

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
        let outcome = self.store.record_receipt(&receipt).await?;
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
