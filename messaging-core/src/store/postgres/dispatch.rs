//! (being written) DispatchStore on PostgreSQL.

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
impl DispatchStore for PgStore {
    async fn claim_due(
        &self,
        requests: &[ClaimRequest],
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<DueMessage>, StoreError> {
        Err(super::not_built("DispatchStore"))
    }

    async fn record_decisions(
        &self,
        decisions: Vec<(MessageId, Disposition)>,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        Err(super::not_built("DispatchStore"))
    }

    async fn mark_sending(
        &self,
        ids: Vec<MessageId>,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<MessageId>, StoreError> {
        Err(super::not_built("DispatchStore"))
    }

    async fn record_send_outcomes(
        &self,
        outcomes: Vec<(MessageId, SendOutcome)>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        Err(super::not_built("DispatchStore"))
    }

    async fn claim_unresolved(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<UnresolvedSend>, StoreError> {
        Err(super::not_built("DispatchStore"))
    }

    async fn claim_status_checks(
        &self,
        now: DateTime<Utc>,
        quiet_since: DateTime<Utc>,
        hold_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<AwaitedStatus>, StoreError> {
        Err(super::not_built("DispatchStore"))
    }

    async fn record_status_checks(
        &self,
        checks: Vec<(MessageId, NextCheck)>,
    ) -> Result<(), StoreError> {
        Err(super::not_built("DispatchStore"))
    }

    async fn conversations_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<(u64, Option<DateTime<Utc>>), StoreError> {
        Err(super::not_built("DispatchStore"))
    }

    async fn skip_unsent(
        &self,
        campaign: CampaignId,
        decision: AuditDecision,
    ) -> Result<u64, StoreError> {
        Err(super::not_built("DispatchStore"))
    }

    async fn count_unsent(&self, campaign: CampaignId) -> Result<u64, StoreError> {
        Err(super::not_built("DispatchStore"))
    }

    async fn take_sender_lease(
        &self,
        holder: &str,
        label: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<SenderLease, StoreError> {
        Err(super::not_built("DispatchStore"))
    }

    async fn release_sender_lease(&self, holder: &str) -> Result<(), StoreError> {
        Err(super::not_built("DispatchStore"))
    }

    async fn sender_lease(&self) -> Result<Option<SenderLease>, StoreError> {
        Err(super::not_built("DispatchStore"))
    }

    async fn release_claims(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        look_up_from: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        Err(super::not_built("DispatchStore"))
    }

    async fn insert_reply(&self, entry: OutboxEntry, now: DateTime<Utc>) -> Result<(), StoreError> {
        Err(super::not_built("DispatchStore"))
    }
}
