//! (being written) TemplateStore, SegmentStore on PostgreSQL.

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
impl TemplateStore for PgStore {
    async fn insert_template(&self, template: &Template) -> Result<(), StoreError> {
        Err(super::not_built("TemplateStore"))
    }

    async fn update_template(&self, template: &Template) -> Result<bool, StoreError> {
        Err(super::not_built("TemplateStore"))
    }

    async fn get_template(&self, id: TemplateId) -> Result<Option<Template>, StoreError> {
        Err(super::not_built("TemplateStore"))
    }

    async fn list_templates(
        &self,
        q: Option<String>,
        page: &PageRequest,
    ) -> Result<Page<Template>, StoreError> {
        Err(super::not_built("TemplateStore"))
    }

    async fn delete_template(&self, id: TemplateId) -> Result<bool, StoreError> {
        Err(super::not_built("TemplateStore"))
    }
}

#[async_trait]
impl SegmentStore for PgStore {
    async fn insert_segment(&self, segment: &Segment) -> Result<(), StoreError> {
        Err(super::not_built("SegmentStore"))
    }

    async fn update_segment(&self, segment: &Segment) -> Result<bool, StoreError> {
        Err(super::not_built("SegmentStore"))
    }

    async fn get_segment(&self, id: SegmentId) -> Result<Option<Segment>, StoreError> {
        Err(super::not_built("SegmentStore"))
    }

    async fn list_segments(
        &self,
        q: Option<String>,
        page: &PageRequest,
    ) -> Result<Page<Segment>, StoreError> {
        Err(super::not_built("SegmentStore"))
    }

    async fn delete_segment(&self, id: SegmentId) -> Result<bool, StoreError> {
        Err(super::not_built("SegmentStore"))
    }

    async fn count_audience(
        &self,
        rule: &SegmentRule,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        Err(super::not_built("SegmentStore"))
    }

    async fn audience(
        &self,
        rule: &SegmentRule,
        now: DateTime<Utc>,
        page: &PageRequest,
    ) -> Result<Page<User>, StoreError> {
        Err(super::not_built("SegmentStore"))
    }
}
