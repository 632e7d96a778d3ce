//! (being written) UserStore, SubscriptionStore on PostgreSQL.

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
impl UserStore for PgStore {
    async fn upsert_users(
        &self,
        batch: Vec<UserUpsert>,
        now: DateTime<Utc>,
    ) -> Result<Vec<UpsertOutcome>, StoreError> {
        Err(super::not_built("UserStore"))
    }

    async fn insert_user(
        &self,
        user: UserUpsert,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        Err(super::not_built("UserStore"))
    }

    async fn update_user(
        &self,
        user: UserUpsert,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        Err(super::not_built("UserStore"))
    }

    async fn replace_user(
        &self,
        user: UserUpsert,
        now: DateTime<Utc>,
    ) -> Result<(User, UpsertOutcome), StoreError> {
        Err(super::not_built("UserStore"))
    }

    async fn get_user(&self, phone: &PhoneNumber) -> Result<Option<User>, StoreError> {
        Err(super::not_built("UserStore"))
    }

    async fn list_users(
        &self,
        query: &UserQuery,
        page: &PageRequest,
    ) -> Result<Page<User>, StoreError> {
        Err(super::not_built("UserStore"))
    }

    async fn delete_user(&self, phone: &PhoneNumber) -> Result<bool, StoreError> {
        Err(super::not_built("UserStore"))
    }

    async fn count_users(&self) -> Result<u64, StoreError> {
        Err(super::not_built("UserStore"))
    }
}

#[async_trait]
impl SubscriptionStore for PgStore {
    async fn subscribe(
        &self,
        phone: &PhoneNumber,
        topic: &Topic,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Err(super::not_built("SubscriptionStore"))
    }

    async fn unsubscribe(&self, phone: &PhoneNumber, topic: &Topic) -> Result<bool, StoreError> {
        Err(super::not_built("SubscriptionStore"))
    }

    async fn subscriptions(&self, phone: &PhoneNumber) -> Result<Vec<Subscription>, StoreError> {
        Err(super::not_built("SubscriptionStore"))
    }

    async fn topics(&self) -> Result<Vec<TopicSummary>, StoreError> {
        Err(super::not_built("SubscriptionStore"))
    }
}
