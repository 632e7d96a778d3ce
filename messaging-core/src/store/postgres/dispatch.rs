//! The dispatcher's storage in PostgreSQL, shared by dispatchers in any number of processes:
//! claims under a lease, decisions, sends and their outcomes, questions about lost statuses,
//! and the sending lease (which, where every process sends, says who leads).
//!
//! # Claims
//!
//! A claim is `lease_until` and `claimed_by` (the claiming dispatcher's id) on the message
//! row. Each claim (`claim_due`, `claim_unresolved`, `claim_status_checks`) is one statement:
//! a `MATERIALIZED` CTE picks the candidates in order, `LIMIT n`, `FOR UPDATE SKIP LOCKED`,
//! and the `UPDATE` of the same statement leases them. A row another transaction is claiming
//! is skipped, not waited for; a row another claim changed after this statement's snapshot
//! is locked in its newest version and checked again against the candidate conditions
//! (PostgreSQL's re-check of locked rows), so it is dropped once its lease is live. So two
//! dispatchers, in one process or in two, never claim the same message.
//!
//! # Fencing
//!
//! Every later step names the state it expects, so a dispatcher whose claim ended (its
//! heartbeat stopped, a leader ended its claims and another dispatcher claimed the
//! messages) changes nothing it no longer holds:
//! - `record_decisions` locks the messages (`FOR UPDATE`, in id order) and applies a decision
//!   only to a message still unsent, not claimed by another dispatcher, and whose status may
//!   take it (the domain's [`can_become`](MessageStatus::can_become)), written back only if
//!   the status is still the one read;
//! - `mark_sending` moves a message only if it is still in a status that may become
//!   `sending`, still claimed by the same dispatcher, and its campaign still sends (the
//!   campaign rows are read `FOR SHARE`, so a pause waits for the mark, or the mark sees the
//!   pause);
//! - `record_send_outcomes` applies an outcome only to a message still `sending` (as read
//!   under lock); `record_status_checks` only to a message still awaiting its status;
//!   receipts only ever move a status forward (see `receipts.rs`).
//!
//! Batches are one transaction of set-based statements (arrays passed as parameters), never
//! a statement per message. Transactions that lock several messages lock them in id order,
//! so two of them never wait for each other in a cycle.
//!
//! Which statuses a query may take a message from is the domain's rule: the `IN` lists are
//! built from [`MessageStatus`] ([`statuses_that_can_become`](MessageStatus::statuses_that_can_become),
//! [`UNSENT`](MessageStatus::UNSENT), [`is_released`](MessageStatus::is_released)) and
//! [`CampaignStatus::sends_messages`].
//!
//! # Ending the claims of dispatchers that stopped
//!
//! Every dispatcher keeps a heartbeat (`process_heartbeats`, the coordination part's table).
//! The leader's `release_claims` ends the leases of claims whose dispatcher has no live
//! heartbeat: waiting messages are claimable at once, and messages left `sending` are looked
//! up at the provider from `look_up_from`.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use tokio_postgres::Row;
use tokio_postgres::types::Json;
use uuid::Uuid;

use super::catalog::get;
use super::outbox::{LogRows, status_of};
use super::receipts::{Changes, lock_sids, parked_for};
use super::{PgStore, corrupt, pg_error, ts};
use crate::domain::{
    AuditDecision, CampaignId, CampaignStatus, Consent, MessageId, MessageStatus, PhoneNumber,
    SendAs, TimeZone, unsubscribes_recipient,
};
use crate::store::sql_names;
use crate::store::{
    AwaitedStatus, ClaimRequest, DispatchStore, Disposition, DueMessage, NextCheck, OutboxEntry,
    RecipientFacts, SendOutcome, SenderLease, StoreError, UnresolvedSend,
};

/// This module's tables, part of the first migration.
pub(super) const SCHEMA: &str = r#"
-- The sending lease: one row, held by one dispatcher at a time (where every process sends,
-- the leader).
CREATE TABLE sender_lease (
    id     integer PRIMARY KEY CHECK (id = 1),
    holder text NOT NULL,
    label  text NOT NULL,
    until  timestamptz NOT NULL
);
"#;

/// Statuses of a message that went, or is going, to the recipient
/// ([`MessageStatus::is_released`]): what the frequency cap and the conversation count look at.
fn released() -> String {
    sql_names(
        MessageStatus::ALL
            .into_iter()
            .filter(|s| s.is_released())
            .map(MessageStatus::as_str),
    )
}

/// The unsent statuses ([`MessageStatus::UNSENT`]) as an SQL list.
fn unsent() -> String {
    sql_names(MessageStatus::UNSENT.map(MessageStatus::as_str))
}

/// The statuses a message may move to `next` from, as an SQL list.
fn able_to_become(next: MessageStatus) -> String {
    sql_names(MessageStatus::statuses_that_can_become(next).map(MessageStatus::as_str))
}

/// The campaign states whose messages are sent ([`CampaignStatus::sends_messages`]).
fn sending_states() -> String {
    sql_names(
        CampaignStatus::ALL
            .into_iter()
            .filter(|status| status.sends_messages())
            .map(CampaignStatus::as_str),
    )
}

/// Messages awaiting their status (`sending` with a provider SID, or `sent`), word for word
/// the condition of the partial indexes `messages_awaiting_*`, with the columns of `table`
/// (`""`, or an alias and a dot).
fn awaiting(table: &str) -> String {
    format!(
        "{table}status IN ('sending', 'sent') AND {table}provider_sid IS NOT NULL",
        table = table
    )
}

/// The columns a claim's `UPDATE … RETURNING` hands to [`due_sql`], from `messages m`.
const CLAIMED_COLUMNS: &str = "m.id, m.campaign_id, m.phone, m.body, m.content_sid, \
     m.content_variables, m.status, m.attempts, m.sent_as, m.dispatched_at, m.due_at";

/// Reads the messages of the CTE `claimed` (with [`CLAIMED_COLUMNS`]) with what the
/// policies need about their recipients (`since`: the placeholder of the time 24 hours ago),
/// in the order [`due_message_from_row`] reads.
fn due_sql(since: &str) -> String {
    format!(
        "SELECT c.id, c.campaign_id, c.phone, c.body, c.content_sid, c.content_variables,
             c.status, c.attempts, c.sent_as, c.dispatched_at,
             u.consent_state, u.timezone, u.last_inbound_at,
             (SELECT COUNT(*) FROM messages x WHERE x.phone = c.phone AND x.id <> c.id
                 AND x.dispatched_at > {since} AND x.status IN {released}),
             (SELECT COUNT(*) FROM messages x WHERE x.phone = c.phone AND x.id <> c.id
                 AND x.dispatched_at > {since} AND x.sent_as = 'template'
                 AND x.status IN {released})
         FROM claimed c LEFT JOIN users u ON u.phone = c.phone",
        released = released()
    )
}

fn due_message_from_row(row: &Row) -> Result<DueMessage, StoreError> {
    let phone: String = get(row, 2)?;
    let variables: Option<Json<BTreeMap<String, String>>> = get(row, 5)?;
    let status: String = get(row, 6)?;
    let attempts: i32 = get(row, 7)?;
    let sent_as: Option<String> = get(row, 8)?;
    let consent: Option<String> = get(row, 10)?;
    let timezone: Option<String> = get(row, 11)?;
    let (recent, templates): (i64, i64) = (get(row, 13)?, get(row, 14)?);
    let recipient = match consent {
        None => None,
        Some(consent) => Some(RecipientFacts {
            consent: consent.parse::<Consent>().map_err(corrupt)?,
            timezone: timezone
                .map(|t| TimeZone::parse(&t))
                .transpose()
                .map_err(corrupt)?,
            last_inbound_at: get(row, 12)?,
            sent_last_24_hours: recent.max(0) as u64,
            conversation_open: templates > 0,
        }),
    };
    Ok(DueMessage {
        id: MessageId(get(row, 0)?),
        campaign_id: get::<Option<Uuid>>(row, 1)?.map(CampaignId),
        phone: PhoneNumber::parse(&phone).map_err(corrupt)?,
        body: get(row, 3)?,
        content_sid: get(row, 4)?,
        content_variables: variables.map(|Json(v)| v),
        status: status_of(&status)?,
        attempts: attempts.max(0) as u32,
        sent_as: sent_as.as_deref().and_then(SendAs::parse),
        dispatched_at: get(row, 9)?,
        recipient,
    })
}

/// Whose messages a claim takes: those of campaign `campaign` (a placeholder) while it
/// sends, or the replies (which belong to no campaign) when `None`.
fn whose(campaign: Option<&str>) -> String {
    match campaign {
        Some(campaign) => format!(
            "campaign_id = {campaign}
             AND EXISTS (SELECT 1 FROM campaigns c WHERE c.id = {campaign} AND c.status IN {})",
            sending_states()
        ),
        None => "campaign_id IS NULL".to_owned(),
    }
}

/// The unleased messages under `whose` ([`whose`]) due at `now`, earliest first, at most
/// `limit` (placeholders): one ordered range of the partial index `messages_due`.
fn due_candidates_sql(whose: &str, now: &str, limit: &str) -> String {
    format!(
        "SELECT id FROM messages
         WHERE {whose} AND status IN {unsent} AND due_at <= {now}
             AND (lease_until IS NULL OR lease_until <= {now})
         ORDER BY due_at
         LIMIT {limit}",
        unsent = unsent(),
    )
}

/// Claims the due messages of one campaign (`$3`; the replies when `campaign` is false and
/// `$3` is NULL), leased until `$2` to `$5`: at most `$4`, earliest due first, among those
/// due by `$1` without a live lease ([`due_candidates_sql`]). `$6` is the time 24 hours
/// before `$1`.
fn claim_due_sql(campaign: bool) -> String {
    let whose = if campaign {
        whose(Some("$3"))
    } else {
        format!("{} AND $3::uuid IS NULL", whose(None))
    };
    format!(
        "WITH due AS MATERIALIZED (
             {candidates}
             FOR UPDATE SKIP LOCKED
         ), claimed AS (
             UPDATE messages m SET lease_until = $2, claimed_by = $5
             FROM due WHERE m.id = due.id
             RETURNING {CLAIMED_COLUMNS}
         )
         {select}
         ORDER BY c.due_at, c.id",
        candidates = due_candidates_sql(&whose, "$1", "$4"),
        select = due_sql("$6"),
    )
}

/// Claims up to `$3` messages still `sending` after their lease ended (by `$2`), leased
/// until `$1` to `$4`; each with when it went to the provider. `$5` is the time 24 hours
/// before `$2`.
fn claim_unresolved_sql() -> String {
    format!(
        "WITH due AS MATERIALIZED (
             SELECT id FROM messages
             WHERE status = 'sending' AND lease_until <= $2 AND provider_sid IS NULL
             ORDER BY lease_until
             LIMIT $3
             FOR UPDATE SKIP LOCKED
         ), claimed AS (
             UPDATE messages m SET lease_until = $1, claimed_by = $4
             FROM due WHERE m.id = due.id
             RETURNING {CLAIMED_COLUMNS}
         ), due_messages AS (
             {select}
         )
         SELECT d.*, (SELECT MAX(l.at) FROM message_log l
                      WHERE l.message_id = d.id AND l.status = 'sending' AND l.step IS NULL)
         FROM due_messages d
         ORDER BY d.id",
        select = due_sql("$5"),
    )
}

/// Messages asked before and due again by `now`, by time due, at most `limit` (each a
/// placeholder): one ordered range of the partial index `messages_awaiting_status`.
fn again_sql(now: &str, limit: &str) -> String {
    format!(
        "SELECT id, status_check_at AS due FROM messages
         WHERE {awaiting} AND status_check_at <= {now}
         ORDER BY status_check_at LIMIT {limit}",
        awaiting = awaiting("")
    )
}

/// Messages never asked whose status has not changed since `quiet_since`, oldest change
/// first, at most `limit`, each due one quiet period (`now - quiet_since`) after its last
/// change: one ordered range of the partial index `messages_awaiting_first_check`.
fn first_sql(now: &str, quiet_since: &str, limit: &str) -> String {
    format!(
        "SELECT id, updated_at + ({now} - {quiet_since}) AS due FROM messages
         WHERE {awaiting} AND status_check_at IS NULL AND updated_at <= {quiet_since}
         ORDER BY updated_at LIMIT {limit}",
        awaiting = awaiting("")
    )
}

/// Claims up to `$4` messages due a question to the provider, held until `$3`: asked
/// before and due again by `$1`, or never asked and unchanged since `$2`, earliest due
/// first. The candidates of both ranges ([`again_sql`], [`first_sql`]) are locked, skipping
/// those another pass holds, and checked again.
fn claim_status_checks_sql() -> String {
    format!(
        "WITH candidates AS (
             ({again})
             UNION ALL
             ({first})
         ), due AS MATERIALIZED (
             SELECT m.id, c.due FROM messages m JOIN candidates c ON c.id = m.id
             WHERE {awaiting_m}
                 AND (m.status_check_at <= $1
                      OR (m.status_check_at IS NULL AND m.updated_at <= $2))
             ORDER BY c.due, m.id
             LIMIT $4
             FOR UPDATE OF m SKIP LOCKED
         )
         UPDATE messages m SET status_check_at = $3
         FROM due WHERE m.id = due.id
         RETURNING m.id, m.provider_sid, m.status, COALESCE(m.dispatched_at, m.updated_at),
             m.status_checks, due.due",
        again = again_sql("$1", "$4"),
        first = first_sql("$1", "$2", "$4"),
        awaiting_m = awaiting("m."),
    )
}

/// Splits items into rounds in which no message appears twice, keeping their order, so that
/// a set-based statement applies repeats one after the other as a statement per item would.
fn rounds<T>(items: Vec<(MessageId, T)>) -> Vec<Vec<(MessageId, T)>> {
    let mut seen: HashMap<MessageId, usize> = HashMap::new();
    let mut rounds: Vec<Vec<(MessageId, T)>> = Vec::new();
    for (id, item) in items {
        let round = seen.entry(id).or_insert(0);
        if rounds.len() <= *round {
            rounds.push(Vec::new());
        }
        rounds[*round].push((id, item));
        *round += 1;
    }
    rounds
}

/// Locks messages `ids` (`FOR UPDATE`, in id order) before a batch changes them.
async fn lock_messages(
    tx: &deadpool_postgres::Transaction<'_>,
    ids: &[Uuid],
) -> Result<(), StoreError> {
    let statement = tx
        .prepare_cached("SELECT 1 FROM messages WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .await
        .map_err(pg_error)?;
    tx.query(&statement, &[&ids]).await.map_err(pg_error)?;
    Ok(())
}

/// Applies one decision to a tracked message (see `DispatchStore::record_decisions`).
fn decide(
    changes: &mut Changes,
    id: Uuid,
    owner: &str,
    disposition: &Disposition,
    now: DateTime<Utc>,
) {
    let Some(message) = changes.get(id) else {
        return;
    };
    // Claimed by another dispatcher since: theirs to decide.
    if message.claimed_by.as_deref().is_some_and(|by| by != owner) {
        return;
    }
    let before = message.status;
    let (after, decision) = match disposition {
        Disposition::Skip(decision) => (MessageStatus::Skipped, decision),
        Disposition::Defer { decision, .. } => (MessageStatus::Deferred, decision),
        Disposition::Queue { decision, .. } => (MessageStatus::Queued, decision),
    };
    // Only a message still waiting for its decision takes one; anything else (skipped by a
    // cancel meanwhile) stays as it is.
    if !before.is_unsent() || (before != after && !before.can_become(after)) {
        return;
    }
    let Some(message) = changes.change(id) else {
        return;
    };
    message.status = after;
    message.updated_at = now;
    match disposition {
        Disposition::Skip(_) => message.lease_until = None,
        Disposition::Defer { until, .. } => {
            message.due_at = *until;
            message.lease_until = None;
        }
        Disposition::Queue { sent_as, .. } => {
            message.sent_as = Some(sent_as.as_str().to_owned());
            message.dispatched_at = Some(message.dispatched_at.unwrap_or(now));
        }
    }
    changes.log.decided(id, before, after, decision);
}

/// Applies one send outcome to a tracked message still `sending` (see
/// `DispatchStore::record_send_outcomes`).
fn record_outcome(
    changes: &mut Changes,
    id: Uuid,
    outcome: &SendOutcome,
    now: DateTime<Utc>,
    parked: &[super::receipts::Parked],
) {
    // An outcome only ever applies to a message that is still being sent: a late answer for
    // a message resolved otherwise meanwhile changes nothing.
    let Some(phone) = changes
        .get(id)
        .filter(|m| m.status == MessageStatus::Sending)
        .map(|m| m.phone.clone())
    else {
        return;
    };
    match outcome {
        SendOutcome::Accepted {
            provider_sid,
            status,
        } => changes.accept(id, provider_sid, *status, now, parked),
        SendOutcome::Retry { at, decision } => {
            if let Some(message) = changes.change(id) {
                message.status = MessageStatus::Queued;
                message.due_at = *at;
                message.lease_until = None;
                message.updated_at = now;
            }
            changes
                .log
                .decided(id, MessageStatus::Sending, MessageStatus::Queued, decision);
        }
        SendOutcome::Failed {
            error_code,
            decision,
        } => {
            if let Some(message) = changes.change(id) {
                message.status = MessageStatus::Failed;
                message.error_code = error_code.clone();
                message.lease_until = None;
                message.updated_at = now;
            }
            if unsubscribes_recipient(error_code.as_deref()) {
                changes.opt_out(&phone, now);
            }
            changes
                .log
                .decided(id, MessageStatus::Sending, MessageStatus::Failed, decision);
        }
        SendOutcome::Unresolved { check_at, decision } => {
            if let Some(message) = changes.change(id) {
                message.lease_until = Some(*check_at);
                message.updated_at = now;
            }
            changes.log.decision(id, decision);
        }
    }
}

fn lease_from_row(row: &Row, taken: bool) -> Result<SenderLease, StoreError> {
    Ok(SenderLease {
        holder: get(row, 0)?,
        label: get(row, 1)?,
        until: get(row, 2)?,
        taken,
    })
}

#[async_trait]
impl DispatchStore for PgStore {
    async fn claim_due(
        &self,
        requests: &[ClaimRequest],
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<DueMessage>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let (campaign_sql, replies_sql) = (claim_due_sql(true), claim_due_sql(false));
        let (for_campaign, for_replies) = tokio::try_join!(
            tx.prepare_cached(&campaign_sql),
            tx.prepare_cached(&replies_sql),
        )
        .map_err(pg_error)?;
        let (at, lease, since) = (ts(now), ts(lease_until), ts(now - Duration::hours(24)));
        let mut messages = Vec::new();
        for request in requests {
            let statement = match request.campaign_id {
                Some(_) => &for_campaign,
                None => &for_replies,
            };
            let rows = tx
                .query(
                    statement,
                    &[
                        &at,
                        &lease,
                        &request.campaign_id.map(|c| c.0),
                        &i64::from(request.limit),
                        &owner,
                        &since,
                    ],
                )
                .await
                .map_err(pg_error)?;
            for row in &rows {
                messages.push(due_message_from_row(row)?);
            }
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(messages)
    }

    async fn record_decisions(
        &self,
        decisions: Vec<(MessageId, Disposition)>,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if decisions.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let mut changes = Changes::default();
        let ids: Vec<Uuid> = decisions.iter().map(|(id, _)| id.0).collect();
        changes.lock(&tx, &ids).await?;
        for (id, disposition) in &decisions {
            decide(&mut changes, id.0, owner, disposition, now);
        }
        changes.write(&tx).await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn mark_sending(
        &self,
        ids: Vec<MessageId>,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<MessageId>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let keys: Vec<Uuid> = ids.iter().map(|id| id.0).collect();
        // The campaigns that still send, held so that a pause waits for this transaction (or
        // this transaction sees the pause).
        let campaigns = tx
            .prepare_cached(&format!(
                "SELECT id FROM campaigns
                 WHERE id IN (SELECT campaign_id FROM messages WHERE id = ANY($1))
                     AND status IN {}
                 ORDER BY id
                 FOR SHARE",
                sending_states()
            ))
            .await
            .map_err(pg_error)?;
        let sending: Vec<Uuid> = tx
            .query(&campaigns, &[&keys])
            .await
            .map_err(pg_error)?
            .iter()
            .map(|row| get(row, 0))
            .collect::<Result<_, _>>()?;
        lock_messages(&tx, &keys).await?;
        let able = able_to_become(MessageStatus::Sending);
        // A message that could not be marked keeps its status and loses its claim.
        let mark = tx
            .prepare_cached(&format!(
                "WITH marked AS (
                     UPDATE messages SET status = 'sending', attempts = attempts + 1,
                         lease_until = $2, updated_at = $3
                     WHERE id = ANY($1) AND status IN {able}
                         AND claimed_by IS NOT DISTINCT FROM $4
                         AND (campaign_id IS NULL OR campaign_id = ANY($5))
                     RETURNING id
                 ), released AS (
                     UPDATE messages SET lease_until = NULL
                     WHERE id = ANY($1) AND id NOT IN (SELECT id FROM marked)
                         AND status IN {able} AND claimed_by IS NOT DISTINCT FROM $4
                 ), logged AS (
                     INSERT INTO message_log (message_id, at, status)
                     SELECT id, $3, 'sending' FROM marked ORDER BY id
                 )
                 SELECT id FROM marked"
            ))
            .await
            .map_err(pg_error)?;
        let marked: std::collections::HashSet<Uuid> = tx
            .query(
                &mark,
                &[&keys, &ts(lease_until), &ts(now), &owner, &sending],
            )
            .await
            .map_err(pg_error)?
            .iter()
            .map(|row| get(row, 0))
            .collect::<Result<_, _>>()?;
        tx.commit().await.map_err(pg_error)?;
        // In the order given, each once.
        let mut answered = std::collections::HashSet::new();
        Ok(ids
            .into_iter()
            .filter(|id| marked.contains(&id.0) && answered.insert(*id))
            .collect())
    }

    async fn record_send_outcomes(
        &self,
        outcomes: Vec<(MessageId, SendOutcome)>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let sids: Vec<&str> = outcomes
            .iter()
            .filter_map(|(_, outcome)| match outcome {
                SendOutcome::Accepted { provider_sid, .. } => Some(provider_sid.as_str()),
                _ => None,
            })
            .collect();
        lock_sids(&tx, &sids).await?;
        let mut changes = Changes::default();
        let ids: Vec<Uuid> = outcomes.iter().map(|(id, _)| id.0).collect();
        changes.lock(&tx, &ids).await?;
        let parked = parked_for(&tx, &sids).await?;
        for (id, outcome) in &outcomes {
            record_outcome(&mut changes, id.0, outcome, now, &parked);
        }
        changes.write(&tx).await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn claim_unresolved(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<UnresolvedSend>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&claim_unresolved_sql())
            .await
            .map_err(pg_error)?;
        let rows = client
            .query(
                &statement,
                &[
                    &ts(lease_until),
                    &ts(now),
                    &i64::from(limit),
                    &owner,
                    &ts(now - Duration::hours(24)),
                ],
            )
            .await
            .map_err(pg_error)?;
        rows.iter()
            .map(|row| {
                let since: Option<DateTime<Utc>> = get(row, 15)?;
                Ok(UnresolvedSend {
                    message: due_message_from_row(row)?,
                    sending_since: since.unwrap_or(now),
                })
            })
            .collect()
    }

    async fn claim_status_checks(
        &self,
        now: DateTime<Utc>,
        quiet_since: DateTime<Utc>,
        hold_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<AwaitedStatus>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&claim_status_checks_sql())
            .await
            .map_err(pg_error)?;
        let rows = client
            .query(
                &statement,
                &[
                    &ts(now),
                    &ts(quiet_since),
                    &ts(hold_until),
                    &i64::from(limit),
                ],
            )
            .await
            .map_err(pg_error)?;
        let mut claimed = rows
            .iter()
            .map(|row| {
                let checks: i32 = get(row, 4)?;
                let due: DateTime<Utc> = get(row, 5)?;
                let status: String = get(row, 2)?;
                let claimed = AwaitedStatus {
                    id: MessageId(get(row, 0)?),
                    provider_sid: get(row, 1)?,
                    status: status_of(&status)?,
                    sent_at: get(row, 3)?,
                    checks: checks.max(0) as u32,
                };
                Ok((due, claimed))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        claimed.sort_by_key(|(due, claimed)| (*due, claimed.id));
        Ok(claimed.into_iter().map(|(_, claimed)| claimed).collect())
    }

    async fn record_status_checks(
        &self,
        checks: Vec<(MessageId, NextCheck)>,
    ) -> Result<(), StoreError> {
        if checks.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let ids: Vec<Uuid> = checks.iter().map(|(id, _)| id.0).collect();
        lock_messages(&tx, &ids).await?;
        // Giving up is a next question at 'infinity', after any time a pass uses.
        let statement = tx
            .prepare_cached(&format!(
                "WITH c AS (
                     SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[],
                                          $5::timestamptz[])
                          WITH ORDINALITY AS c(id, next_at, step, reason, at, n)
                 ), updated AS (
                     UPDATE messages m
                     SET status_check_at = COALESCE(c.next_at, 'infinity'),
                         status_checks = m.status_checks + 1
                     FROM c WHERE m.id = c.id AND {}
                     RETURNING m.id, m.status, c.step, c.reason, c.at, c.n
                 )
                 INSERT INTO message_log (message_id, at, status, step, reason)
                 SELECT id, at, status, step, reason FROM updated WHERE step IS NOT NULL
                 ORDER BY n",
                awaiting("m.")
            ))
            .await
            .map_err(pg_error)?;
        for round in rounds(checks) {
            let mut ids = Vec::with_capacity(round.len());
            let mut next_at = Vec::with_capacity(round.len());
            let mut steps = Vec::with_capacity(round.len());
            let mut reasons = Vec::with_capacity(round.len());
            let mut at = Vec::with_capacity(round.len());
            for (id, next) in &round {
                ids.push(id.0);
                match next {
                    NextCheck::At(when) => {
                        next_at.push(Some(ts(*when)));
                        steps.push(None);
                        reasons.push(None);
                        at.push(None);
                    }
                    NextCheck::GiveUp(decision) => {
                        next_at.push(None);
                        steps.push(Some(decision.step.as_str()));
                        reasons.push(Some(decision.reason.as_str()));
                        at.push(Some(ts(decision.at)));
                    }
                }
            }
            tx.execute(&statement, &[&ids, &next_at, &steps, &reasons, &at])
                .await
                .map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)
    }

    async fn conversations_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<(u64, Option<DateTime<Utc>>), StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT COUNT(DISTINCT phone), MIN(dispatched_at) FROM messages
                 WHERE sent_as = 'template' AND dispatched_at > $1 AND status IN {}",
                released()
            ))
            .await
            .map_err(pg_error)?;
        let row = client
            .query_one(&statement, &[&ts(since)])
            .await
            .map_err(pg_error)?;
        let count: i64 = get(&row, 0)?;
        Ok((count.max(0) as u64, get(&row, 1)?))
    }

    async fn skip_unsent(
        &self,
        campaign: CampaignId,
        decision: AuditDecision,
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let able = able_to_become(MessageStatus::Skipped);
        let skipped = MessageStatus::Skipped.as_str();
        let statement = client
            .prepare_cached(&format!(
                "WITH locked AS MATERIALIZED (
                     SELECT id FROM messages WHERE campaign_id = $2 AND status IN {able}
                     ORDER BY id
                     FOR UPDATE
                 ), skipped AS (
                     UPDATE messages m SET status = '{skipped}', lease_until = NULL,
                         updated_at = $1
                     FROM locked WHERE m.id = locked.id AND m.status IN {able}
                     RETURNING m.id
                 ), logged AS (
                     INSERT INTO message_log (message_id, at, status, step, reason)
                     SELECT s.id, $1, '{skipped}', l.step, l.reason
                     FROM skipped s
                          CROSS JOIN LATERAL (VALUES (1, NULL, NULL), (2, $3, $4))
                              AS l(n, step, reason)
                     ORDER BY s.id, l.n
                 )
                 SELECT COUNT(*) FROM skipped"
            ))
            .await
            .map_err(pg_error)?;
        let row = client
            .query_one(
                &statement,
                &[
                    &ts(decision.at),
                    &campaign.0,
                    &decision.step,
                    &decision.reason,
                ],
            )
            .await
            .map_err(pg_error)?;
        let count: i64 = get(&row, 0)?;
        Ok(count.max(0) as u64)
    }

    async fn count_unsent(&self, campaign: CampaignId) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT (SELECT COUNT(*) FROM messages WHERE campaign_id = $1
                             AND status IN {})
                      + (SELECT COUNT(*) FROM messages WHERE campaign_id = $1
                             AND status = 'sending' AND provider_sid IS NULL)",
                unsent()
            ))
            .await
            .map_err(pg_error)?;
        let row = client
            .query_one(&statement, &[&campaign.0])
            .await
            .map_err(pg_error)?;
        let count: i64 = get(&row, 0)?;
        Ok(count.max(0) as u64)
    }

    async fn take_sender_lease(
        &self,
        holder: &str,
        label: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<SenderLease, StoreError> {
        let client = self.client().await?;
        // The upsert takes or renews the lease only when it is free, ran out, or is
        // `holder`'s, deciding on the row as it stands once locked. It was taken (not renewed)
        // when the holder before was another: the statement's snapshot says who that was,
        // and a change committed since would have had to leave the lease run out (a release)
        // for the upsert to go ahead, which makes it taken all the same.
        let take = client
            .prepare_cached(
                "WITH before AS (
                     SELECT holder FROM sender_lease WHERE id = 1
                 ), taken AS (
                     INSERT INTO sender_lease (id, holder, label, until) VALUES (1, $1, $2, $4)
                     ON CONFLICT (id) DO UPDATE
                         SET holder = excluded.holder, label = excluded.label,
                             until = excluded.until
                         WHERE sender_lease.holder = excluded.holder
                             OR sender_lease.until <= $3
                     RETURNING holder, label, until
                 )
                 SELECT t.holder, t.label, t.until,
                     NOT EXISTS (SELECT 1 FROM before b WHERE b.holder = $1)
                 FROM taken t",
            )
            .await
            .map_err(pg_error)?;
        let row = client
            .query_opt(&take, &[&holder, &label, &ts(now), &ts(until)])
            .await
            .map_err(pg_error)?;
        if let Some(row) = row {
            let taken: bool = get(&row, 3)?;
            return lease_from_row(&row, taken);
        }
        // Another holder has it: answer it as it stands.
        self.sender_lease()
            .await?
            .ok_or_else(|| StoreError::database("the sending lease vanished while taken"))
    }

    async fn release_sender_lease(&self, holder: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("UPDATE sender_lease SET until = 'epoch' WHERE id = 1 AND holder = $1")
            .await
            .map_err(pg_error)?;
        client
            .execute(&statement, &[&holder])
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    async fn sender_lease(&self) -> Result<Option<SenderLease>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT holder, label, until FROM sender_lease WHERE id = 1")
            .await
            .map_err(pg_error)?;
        let row = client.query_opt(&statement, &[]).await.map_err(pg_error)?;
        row.map(|row| lease_from_row(&row, false)).transpose()
    }

    async fn release_claims(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        look_up_from: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        // Whose claims ended: dispatchers without a live heartbeat (never the caller).
        let stopped = "claimed_by IS DISTINCT FROM $2 AND NOT EXISTS (
                 SELECT 1 FROM process_heartbeats h
                 WHERE h.id = messages.claimed_by AND h.until > $1)";
        let statement = client
            .prepare_cached(&format!(
                "WITH waiting AS (
                     UPDATE messages SET lease_until = NULL
                     WHERE status IN {unsent} AND lease_until > $1 AND {stopped}
                     RETURNING 1
                 ), sending AS (
                     UPDATE messages SET lease_until = $3
                     WHERE status = 'sending' AND lease_until > $3 AND {stopped}
                     RETURNING 1
                 )
                 SELECT (SELECT COUNT(*) FROM waiting) + (SELECT COUNT(*) FROM sending)",
                unsent = unsent()
            ))
            .await
            .map_err(pg_error)?;
        let row = client
            .query_one(&statement, &[&ts(now), &owner, &ts(look_up_from)])
            .await
            .map_err(pg_error)?;
        let count: i64 = get(&row, 0)?;
        Ok(count.max(0) as u64)
    }

    async fn insert_reply(&self, entry: OutboxEntry, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let insert = tx
            .prepare_cached(
                "INSERT INTO messages (id, phone, body, content_sid, content_variables, status,
                     due_at, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7)
                 ON CONFLICT (run_seq, phone) DO NOTHING",
            )
            .await
            .map_err(pg_error)?;
        let written = tx
            .execute(
                &insert,
                &[
                    &entry.id.0,
                    &entry.phone.as_str(),
                    &entry.body,
                    &entry.content_sid,
                    &entry.content_variables.as_ref().map(Json),
                    &entry.status.as_str(),
                    &ts(now),
                ],
            )
            .await
            .map_err(pg_error)?;
        if let (1, Some(decision)) = (written, &entry.decision) {
            // Every message enters as pending; a decision taken at once moves it on, and the
            // log keeps both the move and its reason.
            let mut log = LogRows::default();
            log.change(entry.id.0, decision.at, decision.outcome);
            log.decision(entry.id.0, decision);
            log.write(&tx).await?;
        }
        tx.commit().await.map_err(pg_error)
    }
}
