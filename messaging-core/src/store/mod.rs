//! The storage ports. The engine talks to storage only through these traits, so the embedded
//! SQLite adapter ([`sqlite::SqliteStore`]) and a shared PostgreSQL adapter can stand in for
//! each other without any caller changing.
//!
//! Every method is async; adapters over blocking drivers run their work off the async workers.
//! Every multi-row write is one transaction.

mod connect;
mod coordination;
mod dispatch;
pub mod postgres;
pub mod sqlite;

pub use connect::{Backend, connect, redact_url};
pub use coordination::{CoordinationStore, LiveProcess};

pub use dispatch::{
    AwaitedStatus, ClaimRequest, DispatchStore, Disposition, DueMessage, NextCheck, RecipientFacts,
    SendOutcome, SenderLease, UnresolvedSend,
};

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{
    AuditDecision, Campaign, CampaignId, CampaignStatus, Consent, DeliveryReceipt, EventId,
    InboundMessage, IngestionId, Message, MessageId, MessageStatus, PhoneNumber, RunId, Segment,
    SegmentId, Subscription, Template, TemplateId, Topic, TopicSummary, TriggerEvent,
    UpsertOutcome, User, UserUpsert,
};
use crate::ingest::Ingestion;
use crate::segment::SegmentRule;

/// An SQL list of names, `('a', 'b')`, for an `IN` condition whose values the domain decides
/// (which campaign states send, which statuses a message may leave for another), so the rule
/// stays in the domain and the query only spells it. Names are the domain's own `as_str`
/// words, never user input.
pub(crate) fn sql_names(names: impl IntoIterator<Item = &'static str>) -> String {
    let names: Vec<String> = names
        .into_iter()
        .inspect(|name| debug_assert!(!name.contains('\'')))
        .map(|name| format!("'{name}'"))
        .collect();
    format!("({})", names.join(", "))
}

/// What caused a storage error, as the database driver reported it.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why a storage operation failed. Adapters map their driver's errors here, so callers can
/// tell a conflict from a busy database from a broken one without knowing the backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed the operation.
    #[error("database error: {message}")]
    Database {
        /// What failed, for a person.
        message: String,
        /// The driver's error, when there is one.
        #[source]
        cause: Option<Cause>,
    },
    /// The write conflicts with data stored meanwhile (a unique key taken by a concurrent
    /// write); the caller reports a conflict, or reads again and decides.
    #[error("conflicting write: {message}")]
    Conflict {
        /// What conflicted.
        message: String,
        /// The driver's error.
        #[source]
        cause: Option<Cause>,
    },
    /// Another process held the database locked for longer than the store waits; trying
    /// again later may succeed.
    #[error("the database is locked by another process: {0}")]
    Locked(String),
    /// The database server was busy or out of reach (a serialisation failure, a deadlock,
    /// no free connection, the connection lost); trying again later may succeed.
    #[error("the database is busy or out of reach: {0}")]
    Busy(String),
    /// A stored row could not be read back into a domain value.
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    /// The database URL names no backend.
    #[error(
        "unsupported database URL {0:?}: expected sqlite://PATH or postgres://USER@HOST/DATABASE"
    )]
    UnsupportedUrl(String),
    /// The row is still referred to (a template a campaign uses) and was kept.
    #[error("{0} is still in use")]
    InUse(String),
    /// A cursor from a client could not be understood.
    #[error("invalid cursor {0:?}")]
    InvalidCursor(String),
    /// The worker running database calls went away (the process is shutting down).
    #[error("the database worker stopped unexpectedly")]
    WorkerGone,
}

impl StoreError {
    /// A database failure described in words, without a driver error.
    pub fn database(message: impl Into<String>) -> Self {
        Self::Database {
            message: message.into(),
            cause: None,
        }
    }

    /// Whether the same call may succeed if tried again later (the database was busy), as
    /// opposed to failing the same way every time.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Locked(_) | Self::Busy(_) | Self::WorkerGone)
    }

    /// Whether the call failed because of a concurrent write to the same data.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }
}

/// Which page of a list to read. `cursor` (from a previous page's `next_cursor`) is preferred;
/// `offset` is accepted for clients that count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// At most this many items (clamped to 1..=10,000; front ends set their own lower cap).
    pub limit: u32,
    /// Continue after this cursor.
    pub cursor: Option<String>,
    /// Skip this many items (ignored when a cursor is given).
    pub offset: Option<u64>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: 50,
            cursor: None,
            offset: None,
        }
    }
}

impl PageRequest {
    /// The first page of `limit` items.
    pub fn first(limit: u32) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    /// The limit, clamped to what one page may hold.
    pub fn clamped_limit(&self) -> u32 {
        self.limit.clamp(1, 10_000)
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Page<T> {
    /// The items, in the list's order.
    pub items: Vec<T>,
    /// Pass this as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Filters for listing users.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserQuery {
    /// Free text matched against phone, name and attribute values; a number (four or more
    /// digits, with a leading `+` matched as a prefix) is matched against phones only.
    pub q: Option<String>,
    /// Only users with this consent state.
    pub consent: Option<Consent>,
    /// Only subscribers of this topic.
    pub topic: Option<Topic>,
}

/// What recording one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// A new event, stored.
    Recorded,
    /// An event with the same external id was already stored; nothing was written.
    Duplicate,
}

/// What recording one event of a batch did, with the runs it opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Stored, or a duplicate (which opens nothing).
    pub outcome: RecordOutcome,
    /// The runs opened for it, one per campaign listening for it, as (campaign, run).
    pub runs: Vec<(CampaignId, RunId)>,
}

/// Users and their attributes.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates or merges many users in one transaction: given fields replace stored ones,
    /// attributes merge key by key, topics are added as subscriptions. Answers one outcome per
    /// input, in order.
    async fn upsert_users(
        &self,
        batch: Vec<UserUpsert>,
        now: DateTime<Utc>,
    ) -> Result<Vec<UpsertOutcome>, StoreError>;

    /// Creates one user, `OPT_IN` unless `user` gives a consent, with their topics, and
    /// answers them as stored. `None` when the phone is stored already; then nothing is
    /// written. Whether the phone is taken is decided by the write itself, so of any number
    /// of concurrent creates of one phone exactly one creates it.
    async fn insert_user(
        &self,
        user: UserUpsert,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError>;

    /// Merges into one stored user as [`upsert_users`](Self::upsert_users) does (given fields
    /// replace stored ones, attributes merge key by key, topics are added) and answers them
    /// as stored. `None` when no user has the phone; then nothing is written (a merge never
    /// creates). The check and the write are one statement.
    async fn update_user(
        &self,
        user: UserUpsert,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError>;

    /// Creates or replaces one user whole, in one transaction: fields not given are cleared
    /// and attributes replaced, but a consent not given keeps the stored one (a new user is
    /// `OPT_IN`); subscriptions are kept and topics added. Answers the user as stored and
    /// whether they were created.
    async fn replace_user(
        &self,
        user: UserUpsert,
        now: DateTime<Utc>,
    ) -> Result<(User, UpsertOutcome), StoreError>;

    /// One user, with their topics.
    async fn get_user(&self, phone: &PhoneNumber) -> Result<Option<User>, StoreError>;

    /// Users ordered by phone.
    async fn list_users(
        &self,
        query: &UserQuery,
        page: &PageRequest,
    ) -> Result<Page<User>, StoreError>;

    /// Deletes a user and their subscriptions; `false` when there was none.
    async fn delete_user(&self, phone: &PhoneNumber) -> Result<bool, StoreError>;

    /// How many users are stored.
    async fn count_users(&self) -> Result<u64, StoreError>;
}

/// Topic subscriptions.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait SubscriptionStore: Send + Sync {
    /// Subscribes a stored user; `false` when already subscribed.
    async fn subscribe(
        &self,
        phone: &PhoneNumber,
        topic: &Topic,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Unsubscribes; `false` when the user was not subscribed.
    async fn unsubscribe(&self, phone: &PhoneNumber, topic: &Topic) -> Result<bool, StoreError>;

    /// A user's subscriptions, by topic.
    async fn subscriptions(&self, phone: &PhoneNumber) -> Result<Vec<Subscription>, StoreError>;

    /// Every topic with its number of subscribers, by topic.
    async fn topics(&self) -> Result<Vec<TopicSummary>, StoreError>;
}

/// Message templates.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait TemplateStore: Send + Sync {
    /// Stores a new template.
    async fn insert_template(&self, template: &Template) -> Result<(), StoreError>;
    /// Replaces a stored template; `false` when there was none with its id.
    async fn update_template(&self, template: &Template) -> Result<bool, StoreError>;
    /// One template.
    async fn get_template(&self, id: TemplateId) -> Result<Option<Template>, StoreError>;
    /// Templates, oldest first, optionally those whose name or content contains `q`.
    async fn list_templates(
        &self,
        q: Option<String>,
        page: &PageRequest,
    ) -> Result<Page<Template>, StoreError>;
    /// Deletes a template; `false` when there was none.
    async fn delete_template(&self, id: TemplateId) -> Result<bool, StoreError>;
}

/// Segments and audience queries.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait SegmentStore: Send + Sync {
    /// Stores a new segment.
    async fn insert_segment(&self, segment: &Segment) -> Result<(), StoreError>;
    /// Replaces a stored segment; `false` when there was none with its id.
    async fn update_segment(&self, segment: &Segment) -> Result<bool, StoreError>;
    /// One segment.
    async fn get_segment(&self, id: SegmentId) -> Result<Option<Segment>, StoreError>;
    /// Segments, oldest first, optionally those whose name contains `q`.
    async fn list_segments(
        &self,
        q: Option<String>,
        page: &PageRequest,
    ) -> Result<Page<Segment>, StoreError>;
    /// Deletes a segment; `false` when there was none.
    async fn delete_segment(&self, id: SegmentId) -> Result<bool, StoreError>;

    /// How many users the rule selects (`now` anchors event-history windows).
    async fn count_audience(
        &self,
        rule: &SegmentRule,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// The users the rule selects, ordered by phone.
    async fn audience(
        &self,
        rule: &SegmentRule,
        now: DateTime<Utc>,
        page: &PageRequest,
    ) -> Result<Page<User>, StoreError>;
}

/// Trigger events.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Stores events in one transaction; an event whose external id is already stored (or
    /// appears earlier in the batch) is a duplicate and is not stored again. For each new
    /// event, a run is opened, in the same transaction, for every campaign listening for it
    /// (event-triggered, scheduled or running), to be fanned out from
    /// [`OutboxStore::unfinished_runs`].
    async fn record_events(
        &self,
        events: Vec<TriggerEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// One event.
    async fn get_event(&self, id: EventId) -> Result<Option<TriggerEvent>, StoreError>;

    /// The event recorded under a sender's own id.
    async fn find_event(&self, external_id: &str) -> Result<Option<TriggerEvent>, StoreError>;

    /// Events, newest first.
    async fn list_events(&self, page: &PageRequest) -> Result<Page<TriggerEvent>, StoreError>;

    /// Every campaign triggered by events named `event_name` (compared as
    /// [`TriggerEvent::matches`] does), whatever its state, oldest first.
    async fn campaigns_triggered_by(&self, event_name: &str) -> Result<Vec<Campaign>, StoreError>;
}

/// The records of past ingestions.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait IngestionStore: Send + Sync {
    /// Keeps the record of an ingestion that ended.
    async fn insert_ingestion(&self, ingestion: &Ingestion) -> Result<(), StoreError>;

    /// One ingestion, with every invalid row its report lists.
    async fn get_ingestion(&self, id: IngestionId) -> Result<Option<Ingestion>, StoreError>;

    /// Ingestions, newest first, their reports without the invalid rows (see
    /// [`Ingestion::errors_listed`]).
    async fn list_ingestions(&self, page: &PageRequest) -> Result<Page<Ingestion>, StoreError>;
}

/// Filters for listing campaigns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CampaignQuery {
    /// Free text matched against the name.
    pub q: Option<String>,
    /// Only campaigns in this state.
    pub status: Option<CampaignStatus>,
}

/// Campaigns.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait CampaignStore: Send + Sync {
    /// Stores a new campaign.
    async fn insert_campaign(&self, campaign: &Campaign) -> Result<(), StoreError>;

    /// Replaces a stored campaign's definition if it is still as it was read: in the state
    /// `expected` and last changed at `read_at`; `false` otherwise (or when it does not
    /// exist), so of two concurrent edits only one wins.
    async fn update_campaign(
        &self,
        campaign: &Campaign,
        expected: CampaignStatus,
        read_at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Moves a campaign from `from` to `to`, only if it is still in `from`; `false` otherwise.
    async fn set_campaign_status(
        &self,
        id: CampaignId,
        from: CampaignStatus,
        to: CampaignStatus,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Records why a campaign stopped by itself (`None` clears it); see
    /// [`Campaign::problem`].
    async fn set_campaign_problem(
        &self,
        id: CampaignId,
        problem: Option<String>,
    ) -> Result<(), StoreError>;

    /// One campaign.
    async fn get_campaign(&self, id: CampaignId) -> Result<Option<Campaign>, StoreError>;

    /// Campaigns, oldest first.
    async fn list_campaigns(
        &self,
        query: &CampaignQuery,
        page: &PageRequest,
    ) -> Result<Page<Campaign>, StoreError>;

    /// Deletes a campaign if it is in the state `expected`; `false` otherwise.
    async fn delete_campaign(
        &self,
        id: CampaignId,
        expected: CampaignStatus,
    ) -> Result<bool, StoreError>;
}

/// What an inbound message changes about its sender, applied with the message itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InboundEffects {
    /// The sender's WhatsApp profile name, used as the name of a user not yet stored.
    pub profile_name: Option<String>,
    /// A new consent state (START, STOP).
    pub consent: Option<Consent>,
    /// The consent of a sender not stored yet, when the message does not set one.
    pub new_user_consent: Consent,
    /// A topic to follow (SUBSCRIBE).
    pub subscribe: Option<Topic>,
    /// A topic to stop following (UNSUBSCRIBE).
    pub unsubscribe: Option<Topic>,
}

/// Inbound WhatsApp messages.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait InboundStore: Send + Sync {
    /// Stores an inbound message and, in the same transaction, applies its effects: the
    /// sender becomes (or stays) a user, their 24-hour window opens at `received_at`, and
    /// `effects` apply. A message whose `message_sid` is already stored changes nothing and
    /// answers [`RecordOutcome::Duplicate`], so a webhook Twilio repeats acts once.
    async fn receive_inbound(
        &self,
        message: &InboundMessage,
        effects: &InboundEffects,
    ) -> Result<RecordOutcome, StoreError>;

    /// The inbound message with this `MessageSid`.
    async fn find_inbound(&self, message_sid: &str) -> Result<Option<InboundMessage>, StoreError>;

    /// Inbound messages, newest first, optionally only one sender's.
    async fn list_inbound(
        &self,
        from: Option<PhoneNumber>,
        page: &PageRequest,
    ) -> Result<Page<InboundMessage>, StoreError>;
}

/// One run of a campaign: a launch, or one matching event. Its messages are unique per
/// recipient, so a fan-out that is repeated after a crash adds no second message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CampaignRun {
    /// Its id.
    pub id: RunId,
    /// The campaign.
    pub campaign_id: CampaignId,
    /// What started it: `launch`, or `event:<event id>`
    /// ([`TriggerEvent::run_trigger_key`](crate::domain::TriggerEvent::run_trigger_key));
    /// unique per campaign.
    pub trigger_key: String,
    /// The event that started it, for event-triggered campaigns.
    pub event_id: Option<EventId>,
    /// How many recipients the fan-out wrote, once it finished.
    pub recipients: Option<u64>,
    /// When the run was opened.
    pub created_at: DateTime<Utc>,
}

/// The answer to [`OutboxStore::lease_run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunLease {
    /// The caller holds the lease now.
    Taken,
    /// Another owner holds a lease that has not run out.
    HeldElsewhere,
    /// The run's fan-out is complete, with this many messages.
    Finished(u64),
}

impl RunLease {
    /// The answer, from whether the caller's attempt took the lease and the run's recipient
    /// count as stored (set once its fan-out is complete).
    pub fn from_attempt(taken: bool, recipients: Option<i64>) -> Self {
        match (taken, recipients) {
            (true, _) => Self::Taken,
            (false, Some(n)) => Self::Finished(n.max(0) as u64),
            (false, None) => Self::HeldElsewhere,
        }
    }
}

/// A message as the fan-out writes it into the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// Its id.
    pub id: MessageId,
    /// The recipient.
    pub phone: PhoneNumber,
    /// The rendered text (empty when rendering failed).
    pub body: String,
    /// The approved template's Content SID, when the template has one.
    pub content_sid: Option<String>,
    /// The approved template's variables, rendered.
    pub content_variables: Option<BTreeMap<String, String>>,
    /// `pending`, or `skipped` when a decision was already taken (a missing placeholder).
    pub status: MessageStatus,
    /// The decision that set the status, if any.
    pub decision: Option<AuditDecision>,
}

/// Filters for listing messages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageQuery {
    /// Only this campaign's messages.
    pub campaign_id: Option<CampaignId>,
    /// Only messages to this user.
    pub user: Option<PhoneNumber>,
    /// Only messages in this status.
    pub status: Option<MessageStatus>,
}

/// The outbox: campaign runs and their messages.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Opens the run of a campaign for `trigger_key`, or answers the run already opened for
    /// it (after a crash, or when the same event arrives twice).
    async fn open_run(
        &self,
        campaign_id: CampaignId,
        trigger_key: &str,
        event_id: Option<EventId>,
        now: DateTime<Utc>,
    ) -> Result<CampaignRun, StoreError>;

    /// Writes entries of a run in one transaction, leaving out recipients the run already
    /// has; answers how many were written.
    async fn enqueue(
        &self,
        run: &CampaignRun,
        entries: Vec<OutboxEntry>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Runs whose fan-out has not finished (opened with an event, or cut short by a crash),
    /// oldest first.
    async fn unfinished_runs(&self) -> Result<Vec<CampaignRun>, StoreError>;

    /// Records that a run's fan-out is complete, with its number of messages.
    async fn finish_run(&self, run: RunId) -> Result<u64, StoreError>;

    /// Takes (or renews) the lease of `run`'s fan-out for `owner` until `until`, unless
    /// another owner holds a lease lasting past `now` or the run is finished. Whoever holds
    /// the lease is the one fanning the run out, so two processes never do it side by side,
    /// and one that died leaves it to another when its lease runs out.
    async fn lease_run(
        &self,
        run: RunId,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<RunLease, StoreError>;

    /// Gives back `owner`'s lease of `run`'s fan-out, if it still holds it.
    async fn release_run(&self, run: RunId, owner: &str) -> Result<(), StoreError>;

    /// One message, with its status history and decisions.
    async fn get_message(&self, id: MessageId) -> Result<Option<Message>, StoreError>;

    /// Messages, newest first (history and decisions left empty).
    async fn list_messages(
        &self,
        query: &MessageQuery,
        page: &PageRequest,
    ) -> Result<Page<Message>, StoreError>;
}

/// What a delivery receipt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptOutcome {
    /// The message moved to this status.
    Applied(MessageStatus),
    /// Kept, but the message stays as it is: the status would move it backwards (a late
    /// `sent` after `read`) or says nothing about delivery.
    Ignored(MessageStatus),
    /// No message has this SID yet; the receipt waits and is applied when the SID is recorded.
    Parked,
    /// The same status for the same SID arrived before; nothing was done again.
    Duplicate,
}

/// Delivery receipts (status callbacks).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ReceiptStore: Send + Sync {
    /// Records `receipts` in one transaction, in order, answering an outcome each. Each is
    /// stored once per (SID, status) and, in the same transaction, applied to its message
    /// when the status moves the message forward; a repeat of an earlier one (stored before,
    /// or earlier in the slice) is a [`Duplicate`](ReceiptOutcome::Duplicate), and one whose
    /// SID is not recorded yet is parked. A receipt that says the recipient unsubscribed at
    /// the carrier ([`DeliveryReceipt::unsubscribes_recipient`], error 21610) also turns the
    /// user to `OPT_OUT`. A burst of webhooks so costs one commit, not one each; on failure
    /// none of them is recorded.
    async fn record_receipts(
        &self,
        receipts: &[DeliveryReceipt],
    ) -> Result<Vec<ReceiptOutcome>, StoreError>;

    /// Records one receipt (see [`record_receipts`](Self::record_receipts)).
    async fn record_receipt(
        &self,
        receipt: &DeliveryReceipt,
    ) -> Result<ReceiptOutcome, StoreError> {
        let mut outcomes = self.record_receipts(std::slice::from_ref(receipt)).await?;
        outcomes
            .pop()
            .ok_or_else(|| StoreError::database("a receipt was recorded without an outcome"))
    }

    /// Records that the provider accepted a message under `provider_sid` (moving it to
    /// `status`), then applies, in arrival order, the receipts parked for that SID.
    async fn record_acceptance(
        &self,
        message: MessageId,
        provider_sid: &str,
        status: MessageStatus,
        now: DateTime<Utc>,
    ) -> Result<MessageStatus, StoreError>;
}

/// Counts behind the delivery statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageCounts {
    /// Messages per status (statuses without messages are absent).
    pub by_status: BTreeMap<MessageStatus, u64>,
    /// Failed and undelivered messages per provider error code.
    pub by_error_code: BTreeMap<String, u64>,
    /// Skipped messages per policy step that skipped them, most first; counted for one
    /// campaign only (empty for all messages).
    pub skipped_by_step: Vec<SkippedBy>,
}

/// Skipped messages that one policy step skipped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SkippedBy {
    /// The step (`consent`, `template`, `whatsapp_window`, `schedule`…).
    pub step: String,
    /// How many messages it skipped.
    pub count: u64,
    /// One of the reasons it gave, which says what to do about it.
    pub reason: String,
}

/// Statistics queries.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait StatsStore: Send + Sync {
    /// Message counts, for one campaign or for all messages.
    async fn message_counts(
        &self,
        campaign: Option<CampaignId>,
    ) -> Result<MessageCounts, StoreError>;

    /// How many users have opted out.
    async fn count_opted_out(&self) -> Result<u64, StoreError>;

    /// How many inbound messages were received, and how many of them were commands.
    async fn count_inbound(&self) -> Result<(u64, u64), StoreError>;

    /// Status changes of messages into `statuses` from `since` on, counted per bucket of
    /// `bucket` length (buckets start at `since`); buckets without changes are absent.
    async fn status_changes(
        &self,
        since: DateTime<Utc>,
        bucket: chrono::Duration,
        statuses: &[MessageStatus],
    ) -> Result<Vec<StatusChanges>, StoreError>;
}

/// How many messages changed into one status within one bucket of time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChanges {
    /// Which bucket, counted from the first (0).
    pub bucket: u32,
    /// The status the messages changed into.
    pub status: MessageStatus,
    /// How many did.
    pub count: u64,
}

/// How far a provider's history has been read by polling (see
/// [`crate::engine::Poller`]), kept so that a restart neither reads everything again nor
/// misses what came while the process was stopped.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait PollStore: Send + Sync {
    /// The time up to which everything `source` listed has been applied; `None` before its
    /// first poll.
    async fn polled_until(&self, source: &str) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Records that everything `source` listed up to `until` has been applied. The mark only
    /// moves forward: an earlier `until` (a slower process polling the same database) leaves
    /// it where it is.
    async fn set_polled_until(&self, source: &str, until: DateTime<Utc>) -> Result<(), StoreError>;
}

/// Everything the engine stores. Implemented automatically for any type with all the parts.
pub trait Store:
    UserStore
    + SubscriptionStore
    + TemplateStore
    + SegmentStore
    + EventStore
    + CampaignStore
    + InboundStore
    + OutboxStore
    + ReceiptStore
    + StatsStore
    + DispatchStore
    + IngestionStore
    + PollStore
    + CoordinationStore
{
}

impl<T> Store for T where
    T: UserStore
        + SubscriptionStore
        + TemplateStore
        + SegmentStore
        + EventStore
        + CampaignStore
        + InboundStore
        + OutboxStore
        + ReceiptStore
        + StatsStore
        + DispatchStore
        + IngestionStore
        + PollStore
        + CoordinationStore
{
}
