//! (being written) OutboxStore on PostgreSQL.

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
impl OutboxStore for PgStore {
    async fn open_run(
        &self,
        campaign_id: CampaignId,
        trigger_key: &str,
        event_id: Option<EventId>,
        now: DateTime<Utc>,
    ) -> Result<CampaignRun, StoreError> {
        Err(super::not_built("OutboxStore"))
    }

    async fn enqueue(
        &self,
        run: &CampaignRun,
        entries: Vec<OutboxEntry>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        Err(super::not_built("OutboxStore"))
    }

    async fn unfinished_runs(&self) -> Result<Vec<CampaignRun>, StoreError> {
        Err(super::not_built("OutboxStore"))
    }

    async fn finish_run(&self, run: RunId) -> Result<u64, StoreError> {
        Err(super::not_built("OutboxStore"))
    }

    async fn get_message(&self, id: MessageId) -> Result<Option<Message>, StoreError> {
        Err(super::not_built("OutboxStore"))
    }

    async fn list_messages(
        &self,
        query: &MessageQuery,
        page: &PageRequest,
    ) -> Result<Page<Message>, StoreError> {
        Err(super::not_built("OutboxStore"))
    }
}
