//! (being written) InboundStore on PostgreSQL.

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
impl InboundStore for PgStore {
    async fn receive_inbound(
        &self,
        message: &InboundMessage,
        effects: &InboundEffects,
    ) -> Result<RecordOutcome, StoreError> {
        Err(super::not_built("InboundStore"))
    }

    async fn find_inbound(&self, message_sid: &str) -> Result<Option<InboundMessage>, StoreError> {
        Err(super::not_built("InboundStore"))
    }

    async fn list_inbound(
        &self,
        from: Option<PhoneNumber>,
        page: &PageRequest,
    ) -> Result<Page<InboundMessage>, StoreError> {
        Err(super::not_built("InboundStore"))
    }
}
