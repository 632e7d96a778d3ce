//! Users, subscriptions, events and the ingestion of their files.

use std::io::Read;

use crate::domain::{
    EventId, PhoneNumber, Subscription, Topic, TopicSummary, TriggerEvent, UpsertOutcome, User,
    UserChanges, UserUpsert,
};
use crate::ingest::{self, IngestReport, Outcome, UserFileFormat};
use crate::store::{Page, PageRequest, RecordOutcome, UserQuery};

use super::{Engine, EngineError};

impl Engine {
    /// Imports users from a CSV or JSON stream, merging them into the stored ones, and reports
    /// on every row. Memory stays flat whatever the size of the input.
    pub async fn ingest_users<R>(
        &self,
        input: R,
        format: UserFileFormat,
    ) -> Result<IngestReport, EngineError>
    where
        R: Read + Send + 'static,
    {
        let store = self.store.clone();
        let clock = self.clock.clone();
        let report = ingest::run(
            move |sink| match format {
                UserFileFormat::Csv => ingest::parse_users_csv(input, sink),
                UserFileFormat::Json => ingest::parse_users_json(input, sink),
            },
            move |batch| {
                let store = store.clone();
                let now = clock.now();
                async move {
                    let outcomes = store.upsert_users(batch, now).await?;
                    Ok(outcomes.into_iter().map(Outcome::from).collect())
                }
            },
        )
        .await?;
        tracing::info!(
            total = report.total,
            inserted = report.inserted,
            updated = report.updated,
            duplicates = report.duplicates,
            invalid = report.invalid,
            "ingested users"
        );
        Ok(report)
    }

    /// Records trigger events from a JSONL stream and fans out the runs of the campaigns they
    /// trigger. An event whose `id` was recorded before is counted as a duplicate and triggers
    /// nothing again.
    pub async fn ingest_events<R>(&self, input: R) -> Result<IngestReport, EngineError>
    where
        R: Read + Send + 'static,
    {
        let store = self.store.clone();
        let received_at = self.clock.now();
        let report = ingest::run(
            move |sink| ingest::parse_events(input, received_at, sink),
            move |batch| {
                let store = store.clone();
                async move {
                    let outcomes = store.record_events(batch).await?;
                    Ok(outcomes.into_iter().map(Outcome::from).collect())
                }
            },
        )
        .await?;
        if report.inserted > 0 {
            self.complete_runs().await?;
        }
        tracing::info!(
            total = report.total,
            recorded = report.inserted,
            duplicates = report.duplicates,
            invalid = report.invalid,
            "ingested events"
        );
        Ok(report)
    }

    /// Records one event and fans out the runs of the campaigns it triggers. When an event
    /// with the same external id exists, nothing is recorded or triggered and the stored event
    /// is answered with [`RecordOutcome::Duplicate`].
    pub async fn record_event(
        &self,
        event: TriggerEvent,
    ) -> Result<(TriggerEvent, RecordOutcome), EngineError> {
        let external_id = event.external_id.clone();
        let outcome = self.store.record_events(vec![event.clone()]).await?;
        match (outcome.first(), external_id) {
            (Some(RecordOutcome::Duplicate), Some(id)) => {
                // A repeat may follow a first attempt whose fan-out failed: finish it now.
                self.complete_runs().await?;
                let stored = self
                    .store
                    .find_event(&id)
                    .await?
                    .ok_or_else(|| EngineError::not_found("event", &id))?;
                Ok((stored, RecordOutcome::Duplicate))
            }
            _ => {
                self.complete_runs().await?;
                Ok((event, RecordOutcome::Recorded))
            }
        }
    }

    /// One event.
    pub async fn get_event(&self, id: EventId) -> Result<TriggerEvent, EngineError> {
        self.store
            .get_event(id)
            .await?
            .ok_or_else(|| EngineError::not_found("event", id))
    }

    /// Events, newest first.
    pub async fn list_events(&self, page: &PageRequest) -> Result<Page<TriggerEvent>, EngineError> {
        Ok(self.store.list_events(page).await?)
    }

    /// How many users are stored.
    pub async fn count_users(&self) -> Result<u64, EngineError> {
        Ok(self.store.count_users().await?)
    }

    /// One user.
    pub async fn get_user(&self, phone: &PhoneNumber) -> Result<User, EngineError> {
        self.store
            .get_user(phone)
            .await?
            .ok_or_else(|| EngineError::not_found("user", phone))
    }

    /// Users, ordered by phone, filtered by `query`.
    pub async fn list_users(
        &self,
        query: &UserQuery,
        page: &PageRequest,
    ) -> Result<Page<User>, EngineError> {
        Ok(self.store.list_users(query, page).await?)
    }

    /// Creates a user or merges `changes` into the stored one (attributes key by key). Text
    /// fields with control characters are refused ([`UserChanges::problems`]).
    pub async fn save_user(
        &self,
        phone: PhoneNumber,
        changes: UserChanges,
    ) -> Result<(User, UpsertOutcome), EngineError> {
        let problems = changes.problems();
        if !problems.is_empty() {
            return Err(EngineError::Invalid(problems));
        }
        let upsert = UserUpsert {
            phone: phone.clone(),
            changes,
        };
        let outcome = self
            .store
            .upsert_users(vec![upsert], self.clock.now())
            .await?
            .into_iter()
            .next()
            .unwrap_or(UpsertOutcome::Updated);
        Ok((self.get_user(&phone).await?, outcome))
    }

    /// Creates or replaces a user whole: fields not given are cleared, attributes replaced.
    /// Subscriptions are kept (and `changes.topics` added). Text fields are checked as by
    /// [`save_user`](Self::save_user).
    pub async fn replace_user(
        &self,
        phone: PhoneNumber,
        changes: UserChanges,
    ) -> Result<(User, UpsertOutcome), EngineError> {
        let problems = changes.problems();
        if !problems.is_empty() {
            return Err(EngineError::Invalid(problems));
        }
        let upsert = UserUpsert {
            phone: phone.clone(),
            changes,
        };
        let outcome = self.store.replace_user(upsert, self.clock.now()).await?;
        Ok((self.get_user(&phone).await?, outcome))
    }

    /// Deletes a user and their subscriptions.
    pub async fn delete_user(&self, phone: &PhoneNumber) -> Result<(), EngineError> {
        if self.store.delete_user(phone).await? {
            Ok(())
        } else {
            Err(EngineError::not_found("user", phone))
        }
    }

    /// Subscribes a stored user to a topic; `false` when they already were.
    pub async fn subscribe(&self, phone: &PhoneNumber, topic: &Topic) -> Result<bool, EngineError> {
        self.get_user(phone).await?;
        Ok(self.store.subscribe(phone, topic, self.clock.now()).await?)
    }

    /// Unsubscribes a user from a topic.
    pub async fn unsubscribe(&self, phone: &PhoneNumber, topic: &Topic) -> Result<(), EngineError> {
        if self.store.unsubscribe(phone, topic).await? {
            Ok(())
        } else {
            Err(EngineError::not_found(
                "subscription",
                format!("{phone}/{topic}"),
            ))
        }
    }

    /// A stored user's subscriptions.
    pub async fn subscriptions(
        &self,
        phone: &PhoneNumber,
    ) -> Result<Vec<Subscription>, EngineError> {
        self.get_user(phone).await?;
        Ok(self.store.subscriptions(phone).await?)
    }

    /// Every topic with its subscriber count.
    pub async fn topics(&self) -> Result<Vec<TopicSummary>, EngineError> {
        Ok(self.store.topics().await?)
    }
}
