//! Users and their subscriptions.
//!
//! The rules of changing a user live here, so every front end gets the same ones: a create
//! never overwrites a stored user, an update never creates one, and a replace that leaves the
//! consent out never opts anyone back in. Each is one atomic write in the store (the write
//! itself finds whether the phone is stored), not a read followed by a write that another
//! request could come between.

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

    /// Creates a user, `OPT_IN` unless `changes` gives a consent, subscribed to
    /// `changes.topics`. A phone that is stored already is a [`EngineError::Conflict`] and
    /// changes nothing, however many creates of it run at once. Text fields with control
    /// characters are refused ([`UserChanges::problems`]).
    pub async fn create_user(
        &self,
        phone: PhoneNumber,
        changes: UserChanges,
    ) -> Result<User, EngineError> {
        let upsert = checked(phone.clone(), changes)?;
        self.store
            .insert_user(upsert, self.clock.now())
            .await?
            .ok_or_else(|| {
                EngineError::Conflict(format!(
                    "user {phone} exists already; change it with PUT or PATCH /users/{phone}"
                ))
            })
    }

    /// Merges `changes` into a stored user: attributes key by key, other fields replaced when
    /// given and kept when not, `changes.topics` added. An unknown phone is
    /// [`EngineError::NotFound`]; this never creates a user. Text fields are checked as by
    /// [`create_user`](Self::create_user).
    pub async fn update_user(
        &self,
        phone: PhoneNumber,
        changes: UserChanges,
    ) -> Result<User, EngineError> {
        let upsert = checked(phone.clone(), changes)?;
        self.store
            .update_user(upsert, self.clock.now())
            .await?
            .ok_or_else(|| EngineError::not_found("user", phone))
    }

    /// Creates or replaces a user whole: fields not given are cleared, attributes replaced,
    /// except the consent, which a stored user keeps when `changes` gives none (leaving it
    /// out never opts anyone back in); a new user is `OPT_IN` unless given. Subscriptions
    /// are kept (and `changes.topics` added). Answers whether the user was created. Text
    /// fields are checked as by [`create_user`](Self::create_user).
    pub async fn replace_user(
        &self,
        phone: PhoneNumber,
        changes: UserChanges,
    ) -> Result<(User, UpsertOutcome), EngineError> {
        let upsert = checked(phone, changes)?;
        Ok(self.store.replace_user(upsert, self.clock.now()).await?)
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

/// The write of `changes` to the user `phone`, once its text fields are known to be plain
/// one-line text ([`UserChanges::problems`]).
fn checked(phone: PhoneNumber, changes: UserChanges) -> Result<UserUpsert, EngineError> {
    let problems = changes.problems();
    if !problems.is_empty() {
        return Err(EngineError::Invalid(problems));
    }
    Ok(UserUpsert { phone, changes })
}
