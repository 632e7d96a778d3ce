//! (being written) ReceiptStore on PostgreSQL.

#![allow(unused_imports, unused_variables)]

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::PgStore;
use crate::domain::*;
use crate::ingest::Ingestion;
use crate::segment::SegmentRule;
use crate::store::*;

/// This module's tables, part of the first migration.
pub(super) const SCHEMA: &str = "";

#[async_trait]
impl ReceiptStore for PgStore {
    async fn record_receipt(
        &self,
        receipt: &DeliveryReceipt,
    ) -> Result<ReceiptOutcome, StoreError> {
        Err(super::not_built("ReceiptStore"))
    }

    async fn record_acceptance(
        &self,
        message: MessageId,
        provider_sid: &str,
        status: MessageStatus,
        now: DateTime<Utc>,
    ) -> Result<MessageStatus, StoreError> {
        Err(super::not_built("ReceiptStore"))
    }
}
