//! (being written) CampaignStore on PostgreSQL.

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
impl CampaignStore for PgStore {
    async fn insert_campaign(&self, campaign: &Campaign) -> Result<(), StoreError> {
        Err(super::not_built("CampaignStore"))
    }

    async fn update_campaign(
        &self,
        campaign: &Campaign,
        expected: CampaignStatus,
        read_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Err(super::not_built("CampaignStore"))
    }

    async fn set_campaign_status(
        &self,
        id: CampaignId,
        from: CampaignStatus,
        to: CampaignStatus,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Err(super::not_built("CampaignStore"))
    }

    async fn set_campaign_problem(
        &self,
        id: CampaignId,
        problem: Option<String>,
    ) -> Result<(), StoreError> {
        Err(super::not_built("CampaignStore"))
    }

    async fn get_campaign(&self, id: CampaignId) -> Result<Option<Campaign>, StoreError> {
        Err(super::not_built("CampaignStore"))
    }

    async fn list_campaigns(
        &self,
        query: &CampaignQuery,
        page: &PageRequest,
    ) -> Result<Page<Campaign>, StoreError> {
        Err(super::not_built("CampaignStore"))
    }

    async fn delete_campaign(
        &self,
        id: CampaignId,
        expected: CampaignStatus,
    ) -> Result<bool, StoreError> {
        Err(super::not_built("CampaignStore"))
    }
}
