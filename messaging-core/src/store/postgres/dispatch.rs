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
//! dispatchers, in one process or in two, never claim the same message. The status-check
//! claim takes its candidates from two ordered index ranges (asked before, never asked)
//! merged by time due, and locks them the same way in the statement that holds them.
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
//!   receipts only ever move a status forward (see `receipts.rs`). An outcome names no
//!   dispatcher (the port gives none): a send's own answer and a lookup of the same send
//!   are kept apart by time, since a send left by a dispatcher that stopped is only looked
//!   up from `release_claims`' `look_up_from`, when none of its sends can still be in flight.
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
             u.consent_state, u.timezone, u.last_inbound_at, k.recent, k.templates
         FROM claimed c LEFT JOIN users u ON u.phone = c.phone
         -- One pass over the recipient's messages (the unique (phone, run_seq) index) for
         -- both counts.
         CROSS JOIN LATERAL (
             SELECT COUNT(*) AS recent,
                    COUNT(*) FILTER (WHERE x.sent_as = 'template') AS templates
             FROM messages x WHERE x.phone = c.phone AND x.id <> c.id
                 AND x.dispatched_at > {since} AND x.status IN {released}) k",
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
/// `limit` (placeholders): one ordered range of the partial index `messages_due` (of
/// `messages_due_replies` for the replies).
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use tokio_postgres::types::Type;

    use super::super::outbox::tests::{at, campaign_in, entries, store_with_run};
    use super::*;
    use crate::domain::DeliveryReceipt;
    use crate::store::{CampaignRun, OutboxStore as _, ReceiptStore as _};

    /// `count` pending messages, none decided yet.
    fn pending(count: usize) -> Vec<OutboxEntry> {
        entries(count)
            .into_iter()
            .map(|entry| OutboxEntry {
                status: MessageStatus::Pending,
                decision: None,
                ..entry
            })
            .collect()
    }

    fn decision(step: &str, outcome: MessageStatus, second: i64) -> AuditDecision {
        AuditDecision {
            step: step.into(),
            outcome,
            reason: format!("{step} said so"),
            at: at(second),
        }
    }

    fn queue(second: i64) -> Disposition {
        Disposition::Queue {
            sent_as: SendAs::ApprovedTemplate,
            decision: decision("test", MessageStatus::Queued, second),
        }
    }

    fn request(run: &CampaignRun, limit: u32) -> [ClaimRequest; 1] {
        [ClaimRequest {
            campaign_id: Some(run.campaign_id),
            limit,
        }]
    }

    async fn status_of_message(store: &PgStore, id: MessageId) -> MessageStatus {
        store.get_message(id).await.unwrap().unwrap().status
    }

    #[tokio::test]
    async fn claims_read_their_partial_indexes_in_order_without_sorting() {
        let (store, _database) = super::super::scratch().await;
        let client = store.client().await.unwrap();
        // Whether the index can give the order, whatever the planner makes of an empty table.
        client
            .batch_execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
            .await
            .unwrap();
        let (campaign, now) = (Uuid::now_v7(), ts(at(0)));
        let plans = [
            (
                due_candidates_sql(&whose(Some("$1")), "$2", "$3"),
                "messages_due",
                vec![Type::UUID, Type::TIMESTAMPTZ, Type::INT8],
            ),
            (
                due_candidates_sql(&whose(None), "$1", "$2"),
                "messages_due_replies",
                vec![Type::TIMESTAMPTZ, Type::INT8],
            ),
            (
                again_sql("$1", "$2"),
                "messages_awaiting_status",
                vec![Type::TIMESTAMPTZ, Type::INT8],
            ),
            (
                first_sql("$1", "$2", "$3"),
                "messages_awaiting_first_check",
                vec![Type::TIMESTAMPTZ, Type::TIMESTAMPTZ, Type::INT8],
            ),
        ];
        for (sql, index, types) in plans {
            let statement = client
                .prepare_typed(&format!("EXPLAIN (COSTS OFF) {sql}"), &types)
                .await
                .unwrap();
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = match types.len() {
                3 if types[0] == Type::UUID => vec![&campaign, &now, &100i64],
                3 => vec![&now, &now, &100i64],
                _ => vec![&now, &100i64],
            };
            let plan: Vec<String> = client
                .query(&statement, &params)
                .await
                .unwrap()
                .iter()
                .map(|row| row.get(0))
                .collect();
            let plan = plan.join("\n");
            assert!(
                plan.contains(&format!("Index Scan using {index} on")),
                "{plan}"
            );
            assert!(!plan.contains("Sort"), "{plan}");
        }
    }

    /// Two processes claiming from one database: every message is claimed, none twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_claims_from_two_processes_never_take_one_message_twice() {
        let (store, run, database) = store_with_run().await;
        store.enqueue(&run, pending(600), at(1)).await.unwrap();
        let other = PgStore::connect(database.url()).await.unwrap();
        let claimers =
            [(store.clone(), "a"), (other, "b"), (store.clone(), "c")].map(|(store, owner)| {
                let request = request(&run, 25);
                tokio::spawn(async move {
                    let mut claimed = Vec::new();
                    loop {
                        let now = at(2);
                        let got = store
                            .claim_due(&request, owner, now, now + Duration::minutes(2))
                            .await
                            .unwrap();
                        if got.is_empty() {
                            return claimed;
                        }
                        claimed.extend(got.into_iter().map(|m| (m.id, owner)));
                    }
                })
            });
        let mut all = Vec::new();
        for claimer in claimers {
            all.extend(claimer.await.unwrap());
        }
        let distinct: HashSet<_> = all.iter().map(|(id, _)| *id).collect();
        assert_eq!(distinct.len(), all.len(), "a message was claimed twice");
        assert_eq!(all.len(), 600);
        let client = store.client().await.unwrap();
        for (id, owner) in all.iter().step_by(37) {
            let by: String = client
                .query_one("SELECT claimed_by FROM messages WHERE id = $1", &[&id.0])
                .await
                .unwrap()
                .get(0);
            assert_eq!(by, *owner);
        }
    }

    #[tokio::test]
    async fn claims_take_due_unleased_messages_of_sending_campaigns_earliest_first() {
        let (store, run, _database) = store_with_run().await;
        let batch = pending(5);
        store.enqueue(&run, batch.clone(), at(0)).await.unwrap();
        let paused = campaign_in(&store, "paused").await;
        let paused_run = store.open_run(paused, "launch", None, at(0)).await.unwrap();
        store.enqueue(&paused_run, pending(3), at(0)).await.unwrap();
        let reply = OutboxEntry {
            phone: PhoneNumber::parse("+94771111111").unwrap(),
            ..pending(1).remove(0)
        };
        store.insert_reply(reply.clone(), at(0)).await.unwrap();

        let now = at(10);
        let lease = now + Duration::minutes(2);
        let first = store
            .claim_due(&request(&run, 2), "a", now, lease)
            .await
            .unwrap();
        assert_eq!(
            first.iter().map(|m| m.id).collect::<Vec<_>>(),
            [batch[0].id, batch[1].id]
        );
        assert!(
            first
                .iter()
                .all(|m| m.recipient.is_none() && m.attempts == 0)
        );
        // Deferred until later: not due before then.
        store
            .record_decisions(
                vec![(
                    first[0].id,
                    Disposition::Defer {
                        until: at(100),
                        decision: decision("quiet_hours", MessageStatus::Deferred, 10),
                    },
                )],
                "a",
                now,
            )
            .await
            .unwrap();
        let rest = store
            .claim_due(&request(&run, 10), "b", now, lease)
            .await
            .unwrap();
        assert_eq!(rest.len(), 3, "leased and deferred messages are not due");
        let later = store
            .claim_due(&request(&run, 10), "b", at(100), at(200))
            .await
            .unwrap();
        assert_eq!(later.len(), 1);
        assert_eq!(
            (later[0].id, later[0].status),
            (batch[0].id, MessageStatus::Deferred)
        );
        let paused = [ClaimRequest {
            campaign_id: Some(paused),
            limit: 10,
        }];
        assert!(
            store
                .claim_due(&paused, "a", now, lease)
                .await
                .unwrap()
                .is_empty()
        );
        let replies = [ClaimRequest {
            campaign_id: None,
            limit: 10,
        }];
        let claimed = store.claim_due(&replies, "a", now, lease).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!((claimed[0].id, claimed[0].campaign_id), (reply.id, None));
    }

    #[tokio::test]
    async fn what_the_policies_need_about_a_recipient_is_read_with_the_claim() {
        let (store, run, _database) = store_with_run().await;
        let batch = pending(3);
        let phone = batch[0].phone.as_str().to_owned();
        let client = store.client().await.unwrap();
        client
            .execute(
                "INSERT INTO users (phone, consent_state, timezone, last_inbound_at, created_at,
                     updated_at) VALUES ($1, 'OPT_IN', 'Asia/Colombo', $2, 'epoch', 'epoch')",
                &[&phone, &at(-60)],
            )
            .await
            .unwrap();
        store.enqueue(&run, batch.clone(), at(0)).await.unwrap();
        // Two messages already released to the same user today, one as a template.
        for (second, sent_as) in [(-3600, "template"), (-1800, "text")] {
            client
                .execute(
                    "INSERT INTO messages (id, phone, body, status, due_at, created_at,
                         updated_at, sent_as, dispatched_at)
                     VALUES ($1, $2, 'x', 'delivered', $3, $3, $3, $4, $3)",
                    &[&Uuid::now_v7(), &phone, &at(second), &sent_as],
                )
                .await
                .unwrap();
        }
        let claimed = store
            .claim_due(&request(&run, 1), "a", at(1), at(100))
            .await
            .unwrap();
        let recipient = claimed[0].recipient.clone().unwrap();
        assert_eq!(recipient.consent, Consent::OptIn);
        assert_eq!(recipient.timezone.unwrap().to_string(), "Asia/Colombo");
        assert_eq!(recipient.last_inbound_at, Some(at(-60)));
        assert_eq!(recipient.sent_last_24_hours, 2);
        assert!(recipient.conversation_open);
        assert_eq!(
            store.conversations_since(at(-7200)).await.unwrap(),
            (1, Some(at(-3600)))
        );
    }

    /// A dispatcher that lost its claims (they were ended and another claimed the messages)
    /// and one whose send was resolved otherwise change nothing when they wake up.
    #[tokio::test]
    async fn late_steps_change_nothing_they_no_longer_hold() {
        let (store, run, _database) = store_with_run().await;
        let batch = pending(3);
        store.enqueue(&run, batch.clone(), at(0)).await.unwrap();
        let ids: Vec<MessageId> = batch.iter().map(|e| e.id).collect();
        let lease = Duration::minutes(2);
        store
            .claim_due(&request(&run, 10), "a", at(1), at(1) + lease)
            .await
            .unwrap();
        store
            .record_decisions(ids.iter().map(|id| (*id, queue(2))).collect(), "a", at(2))
            .await
            .unwrap();
        // "a" is taken for dead: its claims end and "b" takes the messages.
        assert_eq!(store.release_claims("b", at(3), at(20)).await.unwrap(), 3);
        let taken = store
            .claim_due(&request(&run, 10), "b", at(3), at(3) + lease)
            .await
            .unwrap();
        assert_eq!(taken.len(), 3);
        assert!(
            store
                .mark_sending(ids.clone(), "a", at(4), at(4) + lease)
                .await
                .unwrap()
                .is_empty(),
            "not a's to send any more"
        );
        store
            .record_decisions(
                vec![(
                    ids[0],
                    Disposition::Skip(decision("late", MessageStatus::Skipped, 4)),
                )],
                "a",
                at(4),
            )
            .await
            .unwrap();
        assert_eq!(
            status_of_message(&store, ids[0]).await,
            MessageStatus::Queued
        );

        let marked = store
            .mark_sending(ids.clone(), "b", at(5), at(5) + lease)
            .await
            .unwrap();
        assert_eq!(marked, ids, "in the order given");
        store
            .record_send_outcomes(
                vec![(
                    ids[0],
                    SendOutcome::Accepted {
                        provider_sid: "SM1".into(),
                        status: MessageStatus::Sent,
                    },
                )],
                at(6),
            )
            .await
            .unwrap();
        // A late answer for the same message (a lookup that overtook the send's own answer).
        store
            .record_send_outcomes(
                vec![(
                    ids[0],
                    SendOutcome::Retry {
                        at: at(60),
                        decision: decision("send", MessageStatus::Queued, 7),
                    },
                )],
                at(7),
            )
            .await
            .unwrap();
        let message = store.get_message(ids[0]).await.unwrap().unwrap();
        assert_eq!(
            (
                message.status,
                message.provider_sid.as_deref(),
                message.attempts
            ),
            (MessageStatus::Sent, Some("SM1"), 1)
        );
        // A message that was skipped by a cancel meanwhile is not queued by a decision.
        let cancelled = store
            .skip_unsent(
                run.campaign_id,
                decision("cancel", MessageStatus::Skipped, 8),
            )
            .await
            .unwrap();
        assert_eq!(cancelled, 0, "nothing unsent is left");
        assert_eq!(
            store.count_unsent(run.campaign_id).await.unwrap(),
            2,
            "two sends still without an answer"
        );
    }

    #[tokio::test]
    async fn outcomes_move_sends_on_and_21610_opts_the_user_out() {
        let (store, run, _database) = store_with_run().await;
        let batch = pending(4);
        let client = store.client().await.unwrap();
        client
            .execute(
                "INSERT INTO users (phone, consent_state, created_at, updated_at)
                 VALUES ($1, 'OPT_IN', 'epoch', 'epoch')",
                &[&batch[2].phone.as_str()],
            )
            .await
            .unwrap();
        store.enqueue(&run, batch.clone(), at(0)).await.unwrap();
        let ids: Vec<MessageId> = batch.iter().map(|e| e.id).collect();
        let lease = Duration::minutes(2);
        store
            .claim_due(&request(&run, 10), "a", at(1), at(1) + lease)
            .await
            .unwrap();
        store
            .record_decisions(ids.iter().map(|id| (*id, queue(1))).collect(), "a", at(1))
            .await
            .unwrap();
        store
            .mark_sending(ids.clone(), "a", at(2), at(2) + lease)
            .await
            .unwrap();
        // A status that overtook the provider's answer waits for the SID.
        store
            .record_receipt(&DeliveryReceipt {
                message_sid: "SM0".into(),
                provider_status: "delivered".into(),
                status: Some(MessageStatus::Delivered),
                error_code: None,
                received_at: at(3),
                raw: Default::default(),
            })
            .await
            .unwrap();
        store
            .record_send_outcomes(
                vec![
                    (
                        ids[0],
                        SendOutcome::Accepted {
                            provider_sid: "SM0".into(),
                            status: MessageStatus::Sending,
                        },
                    ),
                    (
                        ids[1],
                        SendOutcome::Retry {
                            at: at(30),
                            decision: decision("send", MessageStatus::Queued, 4),
                        },
                    ),
                    (
                        ids[2],
                        SendOutcome::Failed {
                            error_code: Some("21610".into()),
                            decision: decision("send", MessageStatus::Failed, 4),
                        },
                    ),
                    (
                        ids[3],
                        SendOutcome::Unresolved {
                            check_at: at(50),
                            decision: decision("send", MessageStatus::Sending, 4),
                        },
                    ),
                ],
                at(4),
            )
            .await
            .unwrap();
        let delivered = store.get_message(ids[0]).await.unwrap().unwrap();
        assert_eq!(delivered.status, MessageStatus::Delivered);
        let statuses: Vec<_> = delivered.history.iter().map(|h| h.status).collect();
        assert_eq!(
            statuses,
            [
                MessageStatus::Pending,
                MessageStatus::Queued,
                MessageStatus::Sending,
                MessageStatus::Delivered
            ]
        );
        let retried = store.get_message(ids[1]).await.unwrap().unwrap();
        assert_eq!(retried.status, MessageStatus::Queued);
        let failed = store.get_message(ids[2]).await.unwrap().unwrap();
        assert_eq!(
            (failed.status, failed.error_code.as_deref()),
            (MessageStatus::Failed, Some("21610"))
        );
        let consent: String = client
            .query_one(
                "SELECT consent_state FROM users WHERE phone = $1",
                &[&batch[2].phone.as_str()],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(consent, Consent::OptOut.as_str());
        assert_eq!(
            store.count_unsent(run.campaign_id).await.unwrap(),
            2,
            "the retry, and the send whose fate is unknown"
        );

        // The unresolved send is looked up once its lease (the check time) ends.
        assert!(
            store
                .claim_unresolved("b", at(49), at(100), 10)
                .await
                .unwrap()
                .is_empty()
        );
        let unresolved = store
            .claim_unresolved("b", at(50), at(100), 10)
            .await
            .unwrap();
        assert_eq!(unresolved.len(), 1);
        assert_eq!(unresolved[0].message.id, ids[3]);
        assert_eq!(unresolved[0].sending_since, at(2));
        assert_eq!(unresolved[0].message.attempts, 1);
        assert!(
            store
                .claim_unresolved("c", at(50), at(100), 10)
                .await
                .unwrap()
                .is_empty(),
            "claimed until the lookup is done"
        );
    }

    #[tokio::test]
    async fn the_claims_of_dispatchers_that_stopped_end_and_the_living_keep_theirs() {
        let (store, run, _database) = store_with_run().await;
        let batch = pending(6);
        store.enqueue(&run, batch.clone(), at(0)).await.unwrap();
        let ids: Vec<MessageId> = batch.iter().map(|e| e.id).collect();
        let lease = at(1) + Duration::minutes(2);
        store
            .claim_due(&request(&run, 3), "alive", at(1), lease)
            .await
            .unwrap();
        store
            .claim_due(&request(&run, 3), "dead", at(1), lease)
            .await
            .unwrap();
        // "dead" had two of its messages on their way to the provider.
        store
            .record_decisions(
                ids[3..5].iter().map(|id| (*id, queue(1))).collect(),
                "dead",
                at(1),
            )
            .await
            .unwrap();
        store
            .mark_sending(ids[3..5].to_vec(), "dead", at(1), lease)
            .await
            .unwrap();
        crate::store::CoordinationStore::heartbeat(&store, "alive", "alive", at(30))
            .await
            .unwrap();
        crate::store::CoordinationStore::heartbeat(&store, "leader", "leader", at(30))
            .await
            .unwrap();
        let released = store
            .release_claims("leader", at(20), at(35))
            .await
            .unwrap();
        assert_eq!(released, 3);
        let retaken = store
            .claim_due(&request(&run, 10), "leader", at(20), at(60))
            .await
            .unwrap();
        assert_eq!(retaken.len(), 1, "the waiting one, at once");
        assert_eq!(retaken[0].id, ids[5]);
        assert!(
            store
                .claim_unresolved("leader", at(34), at(60), 10)
                .await
                .unwrap()
                .is_empty(),
            "the sends, only once none can still be in flight"
        );
        let looked_up = store
            .claim_unresolved("leader", at(35), at(60), 10)
            .await
            .unwrap();
        assert_eq!(looked_up.len(), 2);
    }

    #[tokio::test]
    async fn status_checks_are_claimed_by_time_due_and_given_up_once() {
        let (store, run, _database) = store_with_run().await;
        let batch = pending(3);
        store.enqueue(&run, batch.clone(), at(0)).await.unwrap();
        let ids: Vec<MessageId> = batch.iter().map(|e| e.id).collect();
        let lease = Duration::minutes(2);
        store
            .claim_due(&request(&run, 10), "a", at(1), at(1) + lease)
            .await
            .unwrap();
        store
            .record_decisions(ids.iter().map(|id| (*id, queue(1))).collect(), "a", at(1))
            .await
            .unwrap();
        store
            .mark_sending(ids.clone(), "a", at(1), at(1) + lease)
            .await
            .unwrap();
        // Accepted one after the other: the oldest change first.
        for (i, id) in ids.iter().enumerate().rev() {
            store
                .record_acceptance(
                    *id,
                    &format!("SM{i}"),
                    MessageStatus::Sent,
                    at(10 - i as i64),
                )
                .await
                .unwrap();
        }
        let quiet = Duration::minutes(10);
        assert!(
            store
                .claim_status_checks(at(100), at(100) - quiet, at(200), 10)
                .await
                .unwrap()
                .is_empty(),
            "not quiet for long enough yet"
        );
        let now = at(1000);
        let claimed = store
            .claim_status_checks(now, now - quiet, now + Duration::seconds(30), 2)
            .await
            .unwrap();
        assert_eq!(
            claimed.iter().map(|c| c.id).collect::<Vec<_>>(),
            [ids[2], ids[1]],
            "oldest change first"
        );
        assert_eq!(claimed[0].provider_sid, "SM2");
        assert_eq!(claimed[0].status, MessageStatus::Sent);
        assert_eq!(claimed[0].sent_at, at(1));
        let more = store
            .claim_status_checks(now, now - quiet, now + Duration::seconds(30), 10)
            .await
            .unwrap();
        assert_eq!(
            more.iter().map(|c| c.id).collect::<Vec<_>>(),
            [ids[0]],
            "those held are not asked about again meanwhile"
        );
        store
            .record_status_checks(vec![
                (ids[2], NextCheck::At(now + Duration::minutes(5))),
                (
                    ids[1],
                    NextCheck::GiveUp(decision("status_check", MessageStatus::Sent, 1000)),
                ),
            ])
            .await
            .unwrap();
        let later = now + Duration::days(30);
        let again = store
            .claim_status_checks(later, later - quiet, later + Duration::seconds(30), 10)
            .await
            .unwrap();
        assert_eq!(
            again.iter().map(|c| (c.id, c.checks)).collect::<Vec<_>>(),
            [(ids[0], 0), (ids[2], 1)],
            "asked again when due; given up, never"
        );
        let given_up = store.get_message(ids[1]).await.unwrap().unwrap();
        assert_eq!(given_up.decisions.last().unwrap().step, "status_check");
        // A status that arrived meanwhile: no longer awaited, left as it is.
        store
            .record_receipt(&DeliveryReceipt {
                message_sid: "SM0".into(),
                provider_status: "read".into(),
                status: Some(MessageStatus::Read),
                error_code: None,
                received_at: later,
                raw: Default::default(),
            })
            .await
            .unwrap();
        store
            .record_status_checks(vec![(ids[0], NextCheck::At(later))])
            .await
            .unwrap();
        let client = store.client().await.unwrap();
        let checks: i32 = client
            .query_one(
                "SELECT status_checks FROM messages WHERE id = $1",
                &[&ids[0].0],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(checks, 0);
    }

    /// Two passes asking the provider at once, from two processes, never hold one message.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_status_check_passes_never_hold_one_message_twice() {
        let (store, database) = super::super::scratch().await;
        let other = PgStore::connect(database.url()).await.unwrap();
        let client = store.client().await.unwrap();
        client
            .execute(
                "INSERT INTO messages (id, phone, body, status, provider_sid, due_at, created_at,
                     updated_at)
                 SELECT gen_random_uuid(), '+9477' || lpad(i::text, 7, '0'), 'x', 'sent',
                     'SM' || i, 'epoch', 'epoch', 'epoch'
                 FROM generate_series(1, 300) i",
                &[],
            )
            .await
            .unwrap();
        let passes = [store.clone(), other, store.clone()].map(|store| {
            tokio::spawn(async move {
                let mut held = Vec::new();
                loop {
                    let now = at(0);
                    let got = store
                        .claim_status_checks(now, now, now + Duration::minutes(1), 20)
                        .await
                        .unwrap();
                    if got.is_empty() {
                        return held;
                    }
                    held.extend(got.into_iter().map(|c| c.id));
                }
            })
        });
        let mut all = Vec::new();
        for pass in passes {
            all.extend(pass.await.unwrap());
        }
        let distinct: HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), all.len());
        assert_eq!(all.len(), 300);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_processes_taking_a_free_lease_at_once_one_takes_it() {
        let (store, database) = super::super::scratch().await;
        let other = PgStore::connect(database.url()).await.unwrap();
        let takers = (0..8).map(|i| {
            let store = if i % 2 == 0 {
                store.clone()
            } else {
                other.clone()
            };
            tokio::spawn(async move {
                store
                    .take_sender_lease(&format!("p{i}"), "x", at(0), at(15))
                    .await
                    .unwrap()
            })
        });
        let mut leases = Vec::new();
        for taker in takers {
            leases.push(taker.await.unwrap());
        }
        let holders: HashSet<_> = leases.iter().map(|l| l.holder.clone()).collect();
        assert_eq!(holders.len(), 1, "{leases:?}");
        assert_eq!(leases.iter().filter(|l| l.taken).count(), 1, "{leases:?}");
    }

    #[tokio::test]
    async fn a_reply_is_written_with_the_decision_taken_at_once() {
        let (store, _database) = super::super::scratch().await;
        let mut reply = pending(1).remove(0);
        let skipped = decision("consent", MessageStatus::Skipped, 5);
        reply.status = MessageStatus::Skipped;
        reply.decision = Some(skipped.clone());
        reply.content_variables = Some([("1".to_owned(), "Asha".to_owned())].into());
        store.insert_reply(reply.clone(), at(5)).await.unwrap();
        let message = store.get_message(reply.id).await.unwrap().unwrap();
        assert_eq!(
            (message.status, message.campaign_id, message.run_id),
            (MessageStatus::Skipped, None, None)
        );
        assert_eq!(message.decisions, [skipped]);
        assert_eq!(message.history.len(), 2);
    }

    #[test]
    fn rounds_keep_order_and_never_repeat_a_message() {
        let (a, b) = (MessageId::new(), MessageId::new());
        let split = rounds(vec![(a, 1), (b, 2), (a, 3), (a, 4), (b, 5)]);
        assert_eq!(
            split,
            [vec![(a, 1), (b, 2)], vec![(a, 3), (b, 5)], vec![(a, 4)]]
        );
    }
}
