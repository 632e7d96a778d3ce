//! Users and their subscriptions.

use crate::domain::{
    PhoneNumber, Subscription, Topic, TopicSummary, UpsertOutcome, User, UserChanges, UserUpsert,
};
use crate::store::{Page, PageRequest, UserQuery};

use super::{Engine, EngineError};

impl Engine {
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
