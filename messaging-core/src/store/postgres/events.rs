//! (being written) EventStore on PostgreSQL.

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
impl EventStore for PgStore {
    async fn record_events(
        &self,
        events: Vec<TriggerEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Err(super::not_built("EventStore"))
    }

    async fn get_event(&self, id: EventId) -> Result<Option<TriggerEvent>, StoreError> {
        Err(super::not_built("EventStore"))
    }

    async fn find_event(&self, external_id: &str) -> Result<Option<TriggerEvent>, StoreError> {
        Err(super::not_built("EventStore"))
    }

    async fn list_events(&self, page: &PageRequest) -> Result<Page<TriggerEvent>, StoreError> {
        Err(super::not_built("EventStore"))
    }

    async fn campaigns_triggered_by(&self, event_name: &str) -> Result<Vec<Campaign>, StoreError> {
        Err(super::not_built("EventStore"))
    }
}
