//! (being written) EventStore on PostgreSQL.

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
