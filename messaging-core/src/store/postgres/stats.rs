//! (being written) StatsStore on PostgreSQL.

#![allow(unused_imports, unused_variables)]

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::PgStore;
use crate::domain::*;
use crate::ingest::Ingestion;
use crate::segment::SegmentRule;
use crate::store::*;

#[async_trait]
impl StatsStore for PgStore {
    async fn message_counts(
        &self,
        campaign: Option<CampaignId>,
    ) -> Result<MessageCounts, StoreError> {
        Err(super::not_built("StatsStore"))
    }

    async fn count_opted_out(&self) -> Result<u64, StoreError> {
        Err(super::not_built("StatsStore"))
    }

    async fn count_inbound(&self) -> Result<(u64, u64), StoreError> {
        Err(super::not_built("StatsStore"))
    }

    async fn status_changes(
        &self,
        since: DateTime<Utc>,
        bucket: chrono::Duration,
        statuses: &[MessageStatus],
    ) -> Result<Vec<StatusChanges>, StoreError> {
        Err(super::not_built("StatsStore"))
    }
}
