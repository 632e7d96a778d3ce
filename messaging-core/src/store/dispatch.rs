//! What the dispatcher needs from storage: claiming due outbox messages under a lease,
//! recording each policy decision and send outcome, finding sends a crash left unresolved,
//! and finding messages whose final status never came. Every call is one transaction, so a process killed at any point leaves each
//! message either before or after a step, never half-way.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{OutboxEntry, StoreError};
use crate::domain::{
    AuditDecision, CampaignId, Consent, MessageId, MessageStatus, PhoneNumber, SendAs, TimeZone,
};

/// Up to `limit` due messages of one campaign (`None`: replies, which have no campaign).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimRequest {
    /// Whose messages.
    pub campaign_id: Option<CampaignId>,
    /// How many at most.
    pub limit: u32,
}

/// What the policies need to know about a recipient, read in the claim's transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct RecipientFacts {
    /// The user's consent.
    pub consent: Consent,
    /// The user's own time zone, when known.
    pub timezone: Option<TimeZone>,
    /// When the user last wrote to us (opens WhatsApp's 24-hour window).
    pub last_inbound_at: Option<DateTime<Utc>>,
    /// Messages released to the user (queued, sending or sent since) in the last 24 hours.
    pub sent_last_24_hours: u64,
    /// Whether one of those went as an approved template (a business-initiated conversation
    /// with this user is already open, so another one does not count again).
    pub conversation_open: bool,
}

/// A due message, claimed under a lease: no other dispatcher takes it until the lease ends.
#[derive(Debug, Clone, PartialEq)]
pub struct DueMessage {
    /// Its id.
    pub id: MessageId,
    /// Its campaign (`None` for a reply).
    pub campaign_id: Option<CampaignId>,
    /// The recipient.
    pub phone: PhoneNumber,
    /// The rendered text.
    pub body: String,
    /// The approved template's Content SID, when the template has one.
    pub content_sid: Option<String>,
    /// The approved template's variables, rendered.
    pub content_variables: Option<BTreeMap<String, String>>,
    /// `pending`, `queued` (a retry) or `deferred`.
    pub status: MessageStatus,
    /// Send attempts so far.
    pub attempts: u32,
    /// How it was to go, when it was queued before (a retry).
    pub sent_as: Option<SendAs>,
    /// When it was released to the provider the first time (frequency cap, conversations).
    pub dispatched_at: Option<DateTime<Utc>>,
    /// The recipient (`None` when the user was deleted after the fan-out).
    pub recipient: Option<RecipientFacts>,
}

/// What the policies decided about a claimed message.
#[derive(Debug, Clone, PartialEq)]
pub enum Disposition {
    /// Not sent, for the decision's reason.
    Skip(AuditDecision),
    /// Waits until `until`; claimable again then.
    Defer {
        /// When it may go.
        until: DateTime<Utc>,
        /// Why it waits.
        decision: AuditDecision,
    },
    /// Cleared for sending, as `sent_as`; the claim's lease still holds it.
    Queue {
        /// Free text or the approved template.
        sent_as: SendAs,
        /// Why it goes that way.
        decision: AuditDecision,
    },
}

/// What became of one send.
#[derive(Debug, Clone, PartialEq)]
pub enum SendOutcome {
    /// The provider took it under this SID (statuses parked for the SID apply now).
    Accepted {
        /// The provider's id of the message.
        provider_sid: String,
        /// The status the provider reported at once.
        status: MessageStatus,
    },
    /// Not taken this time: back to `queued`, due again at `at`.
    Retry {
        /// When to try again.
        at: DateTime<Utc>,
        /// The attempt's error and the plan.
        decision: AuditDecision,
    },
    /// Failed for good, with the provider's error code when it gave one. A code that says
    /// the recipient unsubscribed at the carrier
    /// ([`unsubscribes_recipient`](crate::domain::unsubscribes_recipient), 21610) also turns
    /// the user to `OPT_OUT`, in the same transaction.
    Failed {
        /// The provider's error code.
        error_code: Option<String>,
        /// What happened.
        decision: AuditDecision,
    },
    /// Nobody knows whether the provider took it (the connection died after the request went
    /// out). It stays `sending`; at `check_at` it is looked up at the provider before anything
    /// else happens to it, and never resent blindly.
    Unresolved {
        /// When to look it up.
        check_at: DateTime<Utc>,
        /// What happened.
        decision: AuditDecision,
    },
}

/// A message left `sending` past its lease: a crash or a lost answer. Claimed under a new
/// lease while the provider is asked about it.
#[derive(Debug, Clone, PartialEq)]
pub struct UnresolvedSend {
    /// The message as it was sent.
    pub message: DueMessage,
    /// When it was handed to the provider.
    pub sending_since: DateTime<Utc>,
}

/// A message handed to the provider whose final status has not come: `sending` with a
/// provider SID, or `sent`. Claimed (held for a while) while the provider is asked about it.
#[derive(Debug, Clone, PartialEq)]
pub struct AwaitedStatus {
    /// Its id.
    pub id: MessageId,
    /// The provider's id of it.
    pub provider_sid: String,
    /// `sending` or `sent`.
    pub status: MessageStatus,
    /// When it was first released to the provider (when to give up counts from there).
    pub sent_at: DateTime<Utc>,
    /// Questions asked about it so far that did not settle it.
    pub checks: u32,
}

/// What follows a question to the provider that did not settle a message.
#[derive(Debug, Clone, PartialEq)]
pub enum NextCheck {
    /// Ask again at this time.
    At(DateTime<Utc>),
    /// Never ask again, for the decision's reason (logged with the message).
    GiveUp(AuditDecision),
}

/// Who holds a database's sending lease: one dispatcher sends from a database at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderLease {
    /// The holder's id (unique to one dispatcher of one process).
    pub holder: String,
    /// Who the holder is, in words (program, process id, host), for other processes' logs.
    pub label: String,
    /// When the lease runs out unless renewed.
    pub until: DateTime<Utc>,
    /// Whether this call took the lease (it was free, released or expired) rather than
    /// renewing it or finding it held by another.
    pub taken: bool,
}

/// The dispatcher's storage.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait DispatchStore: Send + Sync {
    /// Claims, in one transaction, the due messages (`pending`, `queued` or `deferred` with
    /// `due_at <= now` and no live lease) of each request's campaign, oldest due first, and
    /// leases them to `owner` (the claiming dispatcher's id) until `lease_until`. Messages of
    /// campaigns that are not sending (paused, draft) are never claimed. Concurrent claims
    /// never take the same message.
    async fn claim_due(
        &self,
        requests: &[ClaimRequest],
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<DueMessage>, StoreError>;

    /// Records the policies' decisions on messages `owner` claimed: skipped and deferred
    /// messages are released from their lease; queued ones keep it until
    /// [`mark_sending`](Self::mark_sending). A message claimed by another dispatcher since
    /// (this one's claim was ended when its heartbeat stopped) is left as it is.
    async fn record_decisions(
        &self,
        decisions: Vec<(MessageId, Disposition)>,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Moves queued messages that `owner` still holds to `sending` (one more attempt) just
    /// before they go to the provider, leased until `lease_until`, and answers those it
    /// moved. Messages whose campaign was paused or ended meanwhile are not moved and lose
    /// their lease, so they wait in the queue; messages another dispatcher claimed since are
    /// not moved either.
    async fn mark_sending(
        &self,
        ids: Vec<MessageId>,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<MessageId>, StoreError>;

    /// Records the outcomes of sends in one transaction. An outcome for a message that is no
    /// longer `sending` is ignored.
    async fn record_send_outcomes(
        &self,
        outcomes: Vec<(MessageId, SendOutcome)>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Claims up to `limit` messages still `sending` after their lease ended, leasing them
    /// to `owner` until `lease_until` while their fate is looked up.
    async fn claim_unresolved(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<UnresolvedSend>, StoreError>;

    /// Claims up to `limit` messages awaiting their status (see [`AwaitedStatus`]) that are
    /// due a question to the provider, oldest due first: those asked before and due again by
    /// `now`, and those never asked whose status has not changed since `quiet_since`. They
    /// are held until `hold_until`, so no other pass asks about them meanwhile.
    async fn claim_status_checks(
        &self,
        now: DateTime<Utc>,
        quiet_since: DateTime<Utc>,
        hold_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<AwaitedStatus>, StoreError>;

    /// Records, in one transaction, what follows each question that did not settle its
    /// message (one more question counted): the next one, or giving up with its decision
    /// logged. Messages no longer awaiting their status (a status arrived meanwhile) are left
    /// as they are.
    async fn record_status_checks(
        &self,
        checks: Vec<(MessageId, NextCheck)>,
    ) -> Result<(), StoreError>;

    /// Business-initiated conversations (distinct users sent an approved template) released
    /// since `since`, and the earliest of them.
    async fn conversations_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<(u64, Option<DateTime<Utc>>), StoreError>;

    /// Skips, with `decision`, every message of a campaign that has not gone to the provider
    /// (pending, queued, deferred); answers how many.
    async fn skip_unsent(
        &self,
        campaign: CampaignId,
        decision: AuditDecision,
    ) -> Result<u64, StoreError>;

    /// Messages of a campaign that still wait for a decision or a send (pending, queued,
    /// deferred, sending).
    async fn count_unsent(&self, campaign: CampaignId) -> Result<u64, StoreError>;

    /// Takes or renews the sending lease for `holder` until `until` when it is free, was
    /// released, ran out by `now`, or is `holder`'s already; answers the lease as it stands
    /// afterwards (another holder's when it is theirs).
    async fn take_sender_lease(
        &self,
        holder: &str,
        label: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<SenderLease, StoreError>;

    /// Gives the sending lease up, when `holder` has it, so another process takes it at once.
    async fn release_sender_lease(&self, holder: &str) -> Result<(), StoreError>;

    /// The sending lease as it stands (`taken` is false), if any process ever held it.
    async fn sender_lease(&self) -> Result<Option<SenderLease>, StoreError>;

    /// Ends the leases of messages claimed by dispatchers that stopped, for `owner` (the
    /// dispatcher that leads): messages waiting to be sent are claimable at once, and
    /// messages left `sending` are looked up at the provider from `look_up_from` (when no
    /// send of theirs can still be in flight). Which dispatchers stopped is the backend's
    /// to know: where one dispatcher sends at a time (SQLite), every other one, since
    /// `owner` has just taken the sending lease; where several send at once (PostgreSQL),
    /// those whose heartbeat ran out by `now`. Answers how many messages were released.
    async fn release_claims(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        look_up_from: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Writes a reply (a message to one user outside any campaign), due at once.
    async fn insert_reply(&self, entry: OutboxEntry, now: DateTime<Utc>) -> Result<(), StoreError>;
}
