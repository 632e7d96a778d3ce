//! (being written) IngestionStore on PostgreSQL.

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
impl IngestionStore for PgStore {
    async fn insert_ingestion(&self, ingestion: &Ingestion) -> Result<(), StoreError> {
        Err(super::not_built("IngestionStore"))
    }

    async fn get_ingestion(&self, id: IngestionId) -> Result<Option<Ingestion>, StoreError> {
        Err(super::not_built("IngestionStore"))
    }

    async fn list_ingestions(&self, page: &PageRequest) -> Result<Page<Ingestion>, StoreError> {
        Err(super::not_built("IngestionStore"))
    }
}
