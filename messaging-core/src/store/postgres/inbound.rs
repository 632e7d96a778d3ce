//! (being written) InboundStore on PostgreSQL.

#![allow(unused_variables)]

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::PgStore;
#[allow(unused_imports)]
use crate::domain::*;
#[allow(unused_imports)]
use crate::ingest::Ingestion;
#[allow(unused_imports)]
use crate::segment::SegmentRule;
#[allow(unused_imports)]
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
