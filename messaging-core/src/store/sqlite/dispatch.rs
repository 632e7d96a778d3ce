//! The dispatcher's storage in SQLite: claims under a lease, decisions, sends and their
//! outcomes, each in one transaction on the single writer connection.
//!
//! A lease is `lease_until` on the message row: a claim takes only rows whose lease has run
//! out, so two dispatchers (or one restarted after a crash) never hold the same message.
//!
//! Which statuses a query may take a message from is the domain's rule, not this file's: the
//! `IN` lists are built from [`MessageStatus`] ([`statuses_that_can_become`], [`UNSENT`],
//! [`is_released`]), so the state machine is written once and a second store cannot drift.
//!
//! [`statuses_that_can_become`]: MessageStatus::statuses_that_can_become
//! [`UNSENT`]: MessageStatus::UNSENT
//! [`is_released`]: MessageStatus::is_released

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::connection::db_error;
use super::outbox::{MessageWriter, RunKey, id_from_key, key};
use super::receipts::{accept, opt_out};
use super::{SqliteStore, corrupt, from_millis, millis, to_json_text};
use crate::domain::{
    AuditDecision, CampaignId, CampaignStatus, Consent, MessageId, MessageStatus, PhoneNumber,
    SendAs, TimeZone, unsubscribes_recipient,
};
use crate::store::sql_names;
use crate::store::{
    AwaitedStatus, ClaimRequest, DispatchStore, Disposition, DueMessage, NextCheck, OutboxEntry,
    RecipientFacts, SendOutcome, SenderLease, StoreError, UnresolvedSend,
};

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

/// The campaigns whose messages are sent, as the keys messages hold (see `outbox::key`), with
/// the states taken from [`CampaignStatus::sends_messages`].
fn sending_campaigns() -> String {
    let states = CampaignStatus::ALL
        .into_iter()
        .filter(|status| status.sends_messages())
        .map(CampaignStatus::as_str);
    format!(
        "(SELECT unhex(replace(id, '-', '')) FROM campaigns WHERE status IN {})",
        sql_names(states)
    )
}

fn due_message_sql() -> String {
    format!(
        "SELECT m.id, m.campaign_id, m.phone, m.body, m.content_sid, m.content_variables,
             m.status, m.attempts, m.sent_as, m.dispatched_at,
             u.consent_state, u.timezone, u.last_inbound_at,
             (SELECT COUNT(*) FROM messages x WHERE x.phone = m.phone AND x.id != m.id
                 AND x.dispatched_at > ?2 AND x.status IN {released}),
             (SELECT COUNT(*) FROM messages x WHERE x.phone = m.phone AND x.id != m.id
                 AND x.dispatched_at > ?2 AND x.sent_as = 'template' AND x.status IN {released})
         FROM messages m LEFT JOIN users u ON u.phone = m.phone
         WHERE m.id = ?1",
        released = released()
    )
}

fn due_message_from_row(row: &Row<'_>) -> rusqlite::Result<Result<DueMessage, StoreError>> {
    let id: Vec<u8> = row.get(0)?;
    let campaign_id: Option<Vec<u8>> = row.get(1)?;
    let phone: String = row.get(2)?;
    let variables: Option<String> = row.get(5)?;
    let status: String = row.get(6)?;
    let sent_as: Option<String> = row.get(8)?;
    let dispatched_at: Option<i64> = row.get(9)?;
    let consent: Option<String> = row.get(10)?;
    let timezone: Option<String> = row.get(11)?;
    let last_inbound_at: Option<i64> = row.get(12)?;
    let (recent, templates): (i64, i64) = (row.get(13)?, row.get(14)?);
    let (body, content_sid, attempts) = (row.get(3)?, row.get(4)?, row.get::<_, i64>(7)?);
    Ok((|| {
        let recipient = match consent {
            None => None,
            Some(consent) => Some(RecipientFacts {
                consent: consent.parse::<Consent>().map_err(corrupt)?,
                timezone: timezone
                    .map(|t| TimeZone::parse(&t))
                    .transpose()
                    .map_err(corrupt)?,
                last_inbound_at: last_inbound_at.map(from_millis),
                sent_last_24_hours: recent as u64,
                conversation_open: templates > 0,
            }),
        };
        Ok(DueMessage {
            id: MessageId(id_from_key(&id)?),
            campaign_id: campaign_id
                .map(|c| id_from_key(&c).map(CampaignId))
                .transpose()?,
            phone: PhoneNumber::parse(&phone).map_err(corrupt)?,
            body,
            content_sid,
            content_variables: variables
                .map(|v| serde_json::from_str::<BTreeMap<String, String>>(&v))
                .transpose()
                .map_err(corrupt)?,
            status: MessageStatus::parse(&status)
                .ok_or_else(|| corrupt(format!("unknown message status {status:?}")))?,
            attempts: attempts as u32,
            sent_as: sent_as.as_deref().and_then(SendAs::parse),
            dispatched_at: dispatched_at.map(from_millis),
            recipient,
        })
    })())
}

/// The unleased messages of one campaign (`campaign`: the condition that picks it) due at `?1`,
/// earliest first, at most `?4`. The index on (campaign, status, due time) holds them in one
/// range per unsent status ([`MessageStatus::UNSENT`]), each in due order: the ranges are
/// merged rather than the query naming all the statuses at once, which would sort every due
/// message to take a few.
fn due_sql(campaign: &str) -> String {
    let ranges: Vec<String> = MessageStatus::UNSENT
        .into_iter()
        .map(|status| {
            format!(
                "SELECT id, due_at FROM messages
             WHERE {campaign} AND status = '{status}' AND due_at <= ?1
                 AND (lease_until IS NULL OR lease_until <= ?1)"
            )
        })
        .collect();
    format!("{} ORDER BY due_at LIMIT ?4", ranges.join(" UNION ALL "))
}

/// Reads claimed messages with what the policies need about their recipients.
fn read_due(
    conn: &Connection,
    ids: &[MessageId],
    now: DateTime<Utc>,
) -> Result<Vec<DueMessage>, StoreError> {
    let mut stmt = conn.prepare_cached(&due_message_sql()).map_err(db_error)?;
    let since = millis(now - Duration::hours(24));
    ids.iter()
        .map(|id| {
            stmt.query_row(params![key(id.0), since], due_message_from_row)
                .map_err(db_error)?
        })
        .collect()
}

/// Appends to a message's log: a status change (`decision` `None`) or a decision.
pub(super) fn log(
    conn: &Connection,
    id: MessageId,
    at: i64,
    status: MessageStatus,
    decision: Option<&AuditDecision>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO message_log (message_id, at, status, step, reason) VALUES (?, ?, ?, ?, ?)",
    )
    .and_then(|mut s| {
        s.execute(params![
            key(id.0),
            at,
            status.as_str(),
            decision.map(|d| d.step.as_str()),
            decision.map(|d| d.reason.as_str()),
        ])
    })
    .map_err(db_error)?;
    Ok(())
}

/// Logs a decision, and the status change it made when the status changed.
fn log_decision(
    conn: &Connection,
    id: MessageId,
    before: MessageStatus,
    after: MessageStatus,
    decision: &AuditDecision,
) -> Result<(), StoreError> {
    let at = millis(decision.at);
    if before != after {
        log(conn, id, at, after, None)?;
    }
    log(conn, id, at, decision.outcome, Some(decision))
}

/// A message as the steps after its claim find it.
struct Current {
    status: MessageStatus,
    phone: String,
    /// The dispatcher whose claim it is (or was last).
    claimed_by: Option<String>,
}

/// The current status, phone and claimer of a message.
fn current(conn: &Connection, id: MessageId) -> Result<Option<Current>, StoreError> {
    let row: Option<(String, String, Option<String>)> = conn
        .prepare_cached("SELECT status, phone, claimed_by FROM messages WHERE id = ?")
        .and_then(|mut s| {
            s.query_row([key(id.0)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .map_err(db_error)?;
    row.map(|(status, phone, claimed_by)| {
        MessageStatus::parse(&status)
            .map(|status| Current {
                status,
                phone,
                claimed_by,
            })
            .ok_or_else(|| corrupt(format!("unknown message status {status:?}")))
    })
    .transpose()
}

fn record_decision(
    conn: &Connection,
    id: MessageId,
    owner: &str,
    disposition: &Disposition,
    now: i64,
) -> Result<(), StoreError> {
    let Some(Current {
        status: before,
        claimed_by,
        ..
    }) = current(conn, id)?
    else {
        return Ok(());
    };
    // Claimed by another dispatcher since: theirs to decide.
    if claimed_by.as_deref().is_some_and(|by| by != owner) {
        return Ok(());
    }
    let (after, decision) = match disposition {
        Disposition::Skip(decision) => (MessageStatus::Skipped, decision),
        Disposition::Defer { decision, .. } => (MessageStatus::Deferred, decision),
        Disposition::Queue { decision, .. } => (MessageStatus::Queued, decision),
    };
    // Only a message still waiting for its decision takes one; anything else (skipped by a
    // cancel meanwhile) stays as it is.
    if !before.is_unsent() || (before != after && !before.can_become(after)) {
        return Ok(());
    }
    match disposition {
        Disposition::Skip(_) => conn.execute(
            "UPDATE messages SET status = 'skipped', lease_until = NULL, updated_at = ?
             WHERE id = ?",
            params![now, key(id.0)],
        ),
        Disposition::Defer { until, .. } => conn.execute(
            "UPDATE messages SET status = 'deferred', due_at = ?, lease_until = NULL,
                 updated_at = ?
             WHERE id = ?",
            params![millis(*until), now, key(id.0)],
        ),
        Disposition::Queue { sent_as, .. } => conn.execute(
            "UPDATE messages SET status = 'queued', sent_as = ?,
                 dispatched_at = COALESCE(dispatched_at, ?), updated_at = ?
             WHERE id = ?",
            params![sent_as.as_str(), now, now, key(id.0)],
        ),
    }
    .map_err(db_error)?;
    log_decision(conn, id, before, after, decision)
}

fn record_outcome(
    conn: &Connection,
    id: MessageId,
    outcome: &SendOutcome,
    now: i64,
) -> Result<(), StoreError> {
    // An outcome only ever applies to a message that is still being sent: a late answer for
    // a message resolved otherwise meanwhile changes nothing.
    let Some(Current {
        status: MessageStatus::Sending,
        phone,
        ..
    }) = current(conn, id)?
    else {
        return Ok(());
    };
    match outcome {
        SendOutcome::Accepted {
            provider_sid,
            status,
        } => {
            accept(conn, id, provider_sid, *status, now)?;
        }
        SendOutcome::Retry { at, decision } => {
            conn.execute(
                "UPDATE messages SET status = 'queued', due_at = ?, lease_until = NULL,
                     updated_at = ?
                 WHERE id = ?",
                params![millis(*at), now, key(id.0)],
            )
            .map_err(db_error)?;
            log_decision(
                conn,
                id,
                MessageStatus::Sending,
                MessageStatus::Queued,
                decision,
            )?;
        }
        SendOutcome::Failed {
            error_code,
            decision,
        } => {
            conn.execute(
                "UPDATE messages SET status = 'failed', error_code = ?, lease_until = NULL,
                     updated_at = ?
                 WHERE id = ?",
                params![error_code, now, key(id.0)],
            )
            .map_err(db_error)?;
            if unsubscribes_recipient(error_code.as_deref()) {
                opt_out(conn, &phone, now)?;
            }
            log_decision(
                conn,
                id,
                MessageStatus::Sending,
                MessageStatus::Failed,
                decision,
            )?;
        }
        SendOutcome::Unresolved { check_at, decision } => {
            conn.execute(
                "UPDATE messages SET lease_until = ?, updated_at = ? WHERE id = ?",
                params![millis(*check_at), now, key(id.0)],
            )
            .map_err(db_error)?;
            log(
                conn,
                id,
                millis(decision.at),
                decision.outcome,
                Some(decision),
            )?;
        }
    }
    Ok(())
}

#[async_trait]
impl DispatchStore for SqliteStore {
    async fn claim_due(
        &self,
        requests: &[ClaimRequest],
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<DueMessage>, StoreError> {
        let requests = requests.to_vec();
        let owner = owner.to_owned();
        self.db
            .write(move |conn| {
                let tx = conn.transaction().map_err(db_error)?;
                let (at, lease) = (millis(now), millis(lease_until));
                let mut ids = Vec::new();
                for request in requests {
                    let sql = match request.campaign_id {
                        Some(_) => format!(
                            "UPDATE messages SET lease_until = ?2, claimed_by = ?5 WHERE id IN (
                                 SELECT id FROM ({}) WHERE ?3 IN {})
                             RETURNING id",
                            due_sql("campaign_id = ?3"),
                            sending_campaigns()
                        ),
                        None => format!(
                            "UPDATE messages SET lease_until = ?2, claimed_by = ?5 WHERE id IN (
                                 SELECT id FROM ({}))
                             RETURNING id",
                            due_sql("campaign_id IS NULL AND ?3 IS NULL")
                        ),
                    };
                    let mut stmt = tx.prepare_cached(&sql).map_err(db_error)?;
                    let claimed = stmt
                        .query_map(
                            params![
                                at,
                                lease,
                                request.campaign_id.map(|c| key(c.0)),
                                request.limit,
                                owner
                            ],
                            |r| r.get::<_, [u8; 16]>(0),
                        )
                        .map_err(db_error)?;
                    for id in claimed {
                        ids.push(MessageId(Uuid::from_bytes(id.map_err(db_error)?)));
                    }
                }
                let messages = read_due(&tx, &ids, now)?;
                tx.commit().map_err(db_error)?;
                Ok(messages)
            })
            .await
    }

    async fn record_decisions(
        &self,
        decisions: Vec<(MessageId, Disposition)>,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let owner = owner.to_owned();
        self.db
            .write(move |conn| {
                let tx = conn.transaction().map_err(db_error)?;
                for (id, disposition) in &decisions {
                    record_decision(&tx, *id, &owner, disposition, millis(now))?;
                }
                tx.commit().map_err(db_error)
            })
            .await
    }

    async fn mark_sending(
        &self,
        ids: Vec<MessageId>,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<MessageId>, StoreError> {
        let owner = owner.to_owned();
        self.db
            .write(move |conn| {
                let tx = conn.transaction().map_err(db_error)?;
                let (at, lease) = (millis(now), millis(lease_until));
                let mut marked = Vec::with_capacity(ids.len());
                {
                    let mut mark = tx
                        .prepare_cached(&format!(
                            "UPDATE messages SET status = 'sending', attempts = attempts + 1,
                                 lease_until = ?, updated_at = ?
                             WHERE id = ? AND status IN {}
                                 AND (campaign_id IS NULL OR campaign_id IN {})
                                 AND claimed_by IS ?",
                            able_to_become(MessageStatus::Sending),
                            sending_campaigns()
                        ))
                        .map_err(db_error)?;
                    // A message that could not be marked keeps its status and loses its claim.
                    let mut release = tx
                        .prepare_cached(&format!(
                            "UPDATE messages SET lease_until = NULL
                             WHERE id = ? AND status IN {} AND claimed_by IS ?",
                            able_to_become(MessageStatus::Sending)
                        ))
                        .map_err(db_error)?;
                    for id in ids {
                        if mark
                            .execute(params![lease, at, key(id.0), owner])
                            .map_err(db_error)?
                            == 1
                        {
                            log(&tx, id, at, MessageStatus::Sending, None)?;
                            marked.push(id);
                        } else {
                            release
                                .execute(params![key(id.0), owner])
                                .map_err(db_error)?;
                        }
                    }
                }
                tx.commit().map_err(db_error)?;
                Ok(marked)
            })
            .await
    }

    async fn record_send_outcomes(
        &self,
        outcomes: Vec<(MessageId, SendOutcome)>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |conn| {
                let tx = conn.transaction().map_err(db_error)?;
                for (id, outcome) in &outcomes {
                    record_outcome(&tx, *id, outcome, millis(now))?;
                }
                tx.commit().map_err(db_error)
            })
            .await
    }

    async fn take_sender_lease(
        &self,
        holder: &str,
        label: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<SenderLease, StoreError> {
        let (holder, label) = (holder.to_owned(), label.to_owned());
        self.db
            .write(move |conn| {
                let tx = conn.transaction().map_err(db_error)?;
                let before: Option<(String, i64)> = tx
                    .query_row(
                        "SELECT holder, until FROM sender_lease WHERE id = 1",
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(db_error)?;
                let ours = before.as_ref().is_some_and(|(h, _)| *h == holder);
                let free = before.as_ref().is_none_or(|(_, u)| *u <= millis(now));
                if ours || free {
                    tx.execute(
                        "INSERT INTO sender_lease (id, holder, label, until) VALUES (1, ?1, ?2, ?3)
                         ON CONFLICT (id) DO UPDATE SET holder = ?1, label = ?2, until = ?3",
                        params![holder, label, millis(until)],
                    )
                    .map_err(db_error)?;
                }
                let lease = tx
                    .query_row(
                        "SELECT holder, label, until FROM sender_lease WHERE id = 1",
                        [],
                        |r| {
                            Ok(SenderLease {
                                holder: r.get(0)?,
                                label: r.get(1)?,
                                until: from_millis(r.get(2)?),
                                taken: !ours && free,
                            })
                        },
                    )
                    .map_err(db_error)?;
                tx.commit().map_err(db_error)?;
                Ok(lease)
            })
            .await
    }

    async fn release_sender_lease(&self, holder: &str) -> Result<(), StoreError> {
        let holder = holder.to_owned();
        self.db
            .write(move |conn| {
                conn.execute(
                    "UPDATE sender_lease SET until = 0 WHERE id = 1 AND holder = ?",
                    [holder],
                )
                .map_err(db_error)?;
                Ok(())
            })
            .await
    }

    async fn sender_lease(&self) -> Result<Option<SenderLease>, StoreError> {
        self.db
            .read(|conn| {
                conn.query_row(
                    "SELECT holder, label, until FROM sender_lease WHERE id = 1",
                    [],
                    |r| {
                        Ok(SenderLease {
                            holder: r.get(0)?,
                            label: r.get(1)?,
                            until: from_millis(r.get(2)?),
                            taken: false,
                        })
                    },
                )
                .optional()
                .map_err(db_error)
            })
            .await
    }

    async fn release_claims(
        &self,
        _owner: &str,
        now: DateTime<Utc>,
        look_up_from: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.db
            .write(move |conn| {
                let tx = conn.transaction().map_err(db_error)?;
                let waiting = tx
                    .execute(
                        &format!(
                            "UPDATE messages SET lease_until = NULL
                             WHERE status IN {} AND lease_until > ?",
                            unsent()
                        ),
                        [millis(now)],
                    )
                    .map_err(db_error)?;
                let sending = tx
                    .execute(
                        "UPDATE messages SET lease_until = ?1
                         WHERE status = 'sending' AND lease_until > ?1",
                        [millis(look_up_from)],
                    )
                    .map_err(db_error)?;
                tx.commit().map_err(db_error)?;
                Ok((waiting + sending) as u64)
            })
            .await
    }

    async fn claim_unresolved(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<UnresolvedSend>, StoreError> {
        let owner = owner.to_owned();
        self.db
            .write(move |conn| {
                let tx = conn.transaction().map_err(db_error)?;
                let ids = tx
                    .prepare_cached(
                        "UPDATE messages SET lease_until = ?1, claimed_by = ?4 WHERE id IN (
                             SELECT id FROM messages
                             WHERE status = 'sending' AND lease_until <= ?2
                                 AND provider_sid IS NULL
                             LIMIT ?3)
                         RETURNING id",
                    )
                    .and_then(|mut s| {
                        s.query_map(
                            params![millis(lease_until), millis(now), limit, owner],
                            |r| {
                                r.get::<_, [u8; 16]>(0)
                                    .map(|id| MessageId(Uuid::from_bytes(id)))
                            },
                        )?
                        .collect::<rusqlite::Result<Vec<_>>>()
                    })
                    .map_err(db_error)?;
                let messages = read_due(&tx, &ids, now)?;
                let mut unresolved = Vec::with_capacity(messages.len());
                for message in messages {
                    let since: Option<i64> = tx
                        .prepare_cached(
                            "SELECT MAX(at) FROM message_log
                             WHERE message_id = ? AND status = 'sending' AND step IS NULL",
                        )
                        .and_then(|mut s| s.query_row([key(message.id.0)], |r| r.get(0)))
                        .map_err(db_error)?;
                    unresolved.push(UnresolvedSend {
                        sending_since: since.map_or(now, from_millis),
                        message,
                    });
                }
                tx.commit().map_err(db_error)?;
                Ok(unresolved)
            })
            .await
    }

    async fn claim_status_checks(
        &self,
        now: DateTime<Utc>,
        quiet_since: DateTime<Utc>,
        hold_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<AwaitedStatus>, StoreError> {
        self.db
            .write(move |conn| {
                let tx = conn.transaction().map_err(db_error)?;
                let claimed = super::status_checks::claim(
                    &tx,
                    millis(now),
                    millis(quiet_since),
                    millis(hold_until),
                    limit,
                )?;
                tx.commit().map_err(db_error)?;
                Ok(claimed)
            })
            .await
    }

    async fn record_status_checks(
        &self,
        checks: Vec<(MessageId, NextCheck)>,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |conn| {
                let tx = conn.transaction().map_err(db_error)?;
                for (id, next) in &checks {
                    super::status_checks::record(&tx, *id, next)?;
                }
                tx.commit().map_err(db_error)
            })
            .await
    }

    async fn conversations_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<(u64, Option<DateTime<Utc>>), StoreError> {
        self.db
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT COUNT(DISTINCT phone), MIN(dispatched_at) FROM messages
                     WHERE sent_as = 'template' AND dispatched_at > ? AND status IN {}",
                    released()
                ))
                .and_then(|mut s| {
                    s.query_row([millis(since)], |r| {
                        Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Option<i64>>(1)?))
                    })
                })
                .map(|(count, earliest)| (count, earliest.map(from_millis)))
                .map_err(db_error)
            })
            .await
    }

    async fn skip_unsent(
        &self,
        campaign: CampaignId,
        decision: AuditDecision,
    ) -> Result<u64, StoreError> {
        self.db
            .write(move |conn| {
                let tx = conn.transaction().map_err(db_error)?;
                let at = millis(decision.at);
                let ids = tx
                    .prepare_cached(&format!(
                        "UPDATE messages SET status = 'skipped', lease_until = NULL,
                             updated_at = ?1
                         WHERE campaign_id = ?2 AND status IN {}
                         RETURNING id",
                        able_to_become(MessageStatus::Skipped)
                    ))
                    .and_then(|mut s| {
                        s.query_map(params![at, key(campaign.0)], |r| {
                            r.get::<_, [u8; 16]>(0)
                                .map(|id| MessageId(Uuid::from_bytes(id)))
                        })?
                        .collect::<rusqlite::Result<Vec<_>>>()
                    })
                    .map_err(db_error)?;
                for &id in &ids {
                    log(&tx, id, at, MessageStatus::Skipped, None)?;
                    log(&tx, id, at, MessageStatus::Skipped, Some(&decision))?;
                }
                tx.commit().map_err(db_error)?;
                Ok(ids.len() as u64)
            })
            .await
    }

    async fn count_unsent(&self, campaign: CampaignId) -> Result<u64, StoreError> {
        self.db
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT COUNT(*) FROM messages WHERE campaign_id = ?1
                         AND status IN {}
                     UNION ALL
                     SELECT COUNT(*) FROM messages WHERE campaign_id = ?1
                         AND status = 'sending' AND provider_sid IS NULL",
                    unsent()
                ))
                .and_then(|mut s| {
                    s.query_map([key(campaign.0)], |r| r.get::<_, i64>(0))?
                        .sum::<rusqlite::Result<i64>>()
                })
                .map(|n| n as u64)
                .map_err(db_error)
            })
            .await
    }

    async fn insert_reply(&self, entry: OutboxEntry, now: DateTime<Utc>) -> Result<(), StoreError> {
        let variables = entry
            .content_variables
            .as_ref()
            .map(to_json_text)
            .transpose()?;
        self.db
            .write(move |conn| {
                let tx = conn.transaction().map_err(db_error)?;
                MessageWriter::new(&tx)?.write(
                    &entry,
                    variables.as_deref(),
                    RunKey::default(),
                    millis(now),
                )?;
                tx.commit().map_err(db_error)
            })
            .await
    }
}
