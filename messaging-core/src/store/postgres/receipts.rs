//! Delivery receipts in PostgreSQL. Each is stored once per (SID, status) and applied to its
//! message in the same transaction, only when it moves the message forward; a receipt for a
//! SID not known yet is parked and applied when the SID is recorded. Whether a report opts its
//! recipient out is the domain's rule ([`unsubscribes_recipient`]); this file applies it.
//!
//! Applying statuses is a fold (each receipt applies only if the status it finds can become
//! the receipt's, so the order matters), which this file does in Rust with the domain's
//! rules, over rows it has locked: a call reads the messages it will change `FOR UPDATE`
//! (in id order, so two calls never wait for each other in a cycle), works out their new
//! state ([`Changes`]), and writes it back with a few set-based statements (arrays passed as
//! parameters), each update still conditional on the status it read.
//!
//! A receipt for a SID and the recording of that SID must not miss each other: a receipt
//! that finds no message parks, and a recorded SID applies the receipts parked for it, but
//! in two concurrent transactions each could see the other's work as not there yet. So both
//! first take a transaction-scoped advisory lock on the SID (its hash, in a key space of its
//! own): whichever comes second sees the other committed.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::{Json, ToSql, Type};
use uuid::Uuid;

use super::catalog::get;
use super::outbox::{LogRows, status_of};
use super::{PgStore, pg_error, ts};
use crate::domain::{Consent, DeliveryReceipt, MessageId, MessageStatus, unsubscribes_recipient};
use crate::store::{ReceiptOutcome, ReceiptStore, StoreError};

/// This module's tables, part of the first migration.
pub(super) const SCHEMA: &str = r#"
CREATE TABLE receipts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_sid     text NOT NULL,
    provider_status text NOT NULL,
    status          text,
    error_code      text,
    received_at     timestamptz NOT NULL,
    raw             jsonb NOT NULL,
    outcome         text NOT NULL,
    UNIQUE (message_sid, provider_status)
);
-- Receipts waiting for their SID, in arrival order.
CREATE INDEX receipts_parked ON receipts (message_sid, id) WHERE outcome = 'parked';
"#;

/// Takes the advisory locks of the SIDs `$1` (see the module docs; the first key is "sid"
/// in ASCII, the second the SID's hash), in one order for every transaction.
const LOCK_SIDS: &str = "SELECT pg_advisory_xact_lock(7563620, key)
     FROM (SELECT DISTINCT hashtext(sid) AS key FROM unnest($1::text[]) AS sid ORDER BY 1) AS keys";

fn outcome_text(outcome: ReceiptOutcome) -> &'static str {
    match outcome {
        ReceiptOutcome::Applied(_) => "applied",
        ReceiptOutcome::Ignored(_) => "ignored",
        ReceiptOutcome::Parked => "parked",
        ReceiptOutcome::Duplicate => "duplicate",
    }
}

/// Takes the advisory locks of `sids` (see the module docs), in one order for every
/// transaction, until the transaction ends.
pub(super) async fn lock_sids(
    tx: &deadpool_postgres::Transaction<'_>,
    sids: &[&str],
) -> Result<(), StoreError> {
    if sids.is_empty() {
        return Ok(());
    }
    let statement = tx.prepare_cached(LOCK_SIDS).await.map_err(pg_error)?;
    tx.query(&statement, &[&sids]).await.map_err(pg_error)?;
    Ok(())
}

/// A message as a transaction read it under lock, and what the transaction makes of it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Tracked {
    /// Its id.
    pub id: Uuid,
    /// Its status as read (the write-back is conditional on it).
    pub before: MessageStatus,
    /// Its status now.
    pub status: MessageStatus,
    /// The recipient.
    pub phone: String,
    /// The provider's id of it.
    pub provider_sid: Option<String>,
    /// The provider's error code.
    pub error_code: Option<String>,
    /// When it is due.
    pub due_at: DateTime<Utc>,
    /// Until when it is claimed.
    pub lease_until: Option<DateTime<Utc>>,
    /// Which dispatcher claimed it last.
    pub claimed_by: Option<String>,
    /// How it goes (`text`, `template`).
    pub sent_as: Option<String>,
    /// When it was first released to the provider.
    pub dispatched_at: Option<DateTime<Utc>>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Whether the transaction changed it.
    pub changed: bool,
}

/// The columns [`tracked_from_row`] reads.
const TRACKED_COLUMNS: &str = "id, status, phone, provider_sid, error_code, due_at, \
     lease_until, claimed_by, sent_as, dispatched_at, updated_at";

fn tracked_from_row(row: &Row) -> Result<Tracked, StoreError> {
    let status = status_of(&get::<String>(row, 1)?)?;
    Ok(Tracked {
        id: get(row, 0)?,
        before: status,
        status,
        phone: get(row, 2)?,
        provider_sid: get(row, 3)?,
        error_code: get(row, 4)?,
        due_at: get(row, 5)?,
        lease_until: get(row, 6)?,
        claimed_by: get(row, 7)?,
        sent_as: get(row, 8)?,
        dispatched_at: get(row, 9)?,
        updated_at: get(row, 10)?,
        changed: false,
    })
}

/// A receipt waiting for its SID.
#[derive(Debug, Clone)]
pub(super) struct Parked {
    id: i64,
    sid: String,
    status: Option<MessageStatus>,
    error_code: Option<String>,
    received_at: DateTime<Utc>,
}

/// The receipts parked for `sids`, in arrival order.
pub(super) async fn parked_for(
    tx: &deadpool_postgres::Transaction<'_>,
    sids: &[&str],
) -> Result<Vec<Parked>, StoreError> {
    if sids.is_empty() {
        return Ok(Vec::new());
    }
    let statement = tx
        .prepare_cached(
            "SELECT id, message_sid, status, error_code, received_at FROM receipts
             WHERE message_sid = ANY($1) AND outcome = 'parked' ORDER BY id",
        )
        .await
        .map_err(pg_error)?;
    let rows = tx.query(&statement, &[&sids]).await.map_err(pg_error)?;
    rows.iter()
        .map(|row| {
            let status: Option<String> = get(row, 2)?;
            Ok(Parked {
                id: get(row, 0)?,
                sid: get(row, 1)?,
                status: status.as_deref().and_then(MessageStatus::parse),
                error_code: get(row, 3)?,
                received_at: get(row, 4)?,
            })
        })
        .collect()
}

/// What one transaction does to messages, their log, their recipients' consent and parked
/// receipts, worked out in order and written at the end ([`Changes::write`]).
#[derive(Debug, Default)]
pub(super) struct Changes {
    messages: HashMap<Uuid, Tracked>,
    /// Rows for the messages' log, in the order they happened.
    pub log: LogRows,
    /// Phones to turn `OPT_OUT`, with when.
    opt_outs: BTreeMap<String, DateTime<Utc>>,
    /// Parked receipts applied, with what they did.
    receipts: Vec<(i64, &'static str)>,
}

impl Changes {
    /// Locks the messages `ids` (`FOR UPDATE`, in id order) and tracks those that exist.
    pub(super) async fn lock(
        &mut self,
        tx: &deadpool_postgres::Transaction<'_>,
        ids: &[Uuid],
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let statement = tx
            .prepare_cached(&format!(
                "SELECT {TRACKED_COLUMNS} FROM messages WHERE id = ANY($1) ORDER BY id
                 FOR UPDATE"
            ))
            .await
            .map_err(pg_error)?;
        for row in tx.query(&statement, &[&ids]).await.map_err(pg_error)? {
            let message = tracked_from_row(&row)?;
            self.messages.entry(message.id).or_insert(message);
        }
        Ok(())
    }

    /// A tracked message.
    pub(super) fn get(&self, id: Uuid) -> Option<&Tracked> {
        self.messages.get(&id)
    }

    /// A tracked message, to change (marked changed).
    pub(super) fn change(&mut self, id: Uuid) -> Option<&mut Tracked> {
        let message = self.messages.get_mut(&id)?;
        message.changed = true;
        Some(message)
    }

    /// Turns a recipient `OPT_OUT` at `at` (the provider said they unsubscribed at the
    /// carrier; see [`unsubscribes_recipient`]).
    pub(super) fn opt_out(&mut self, phone: &str, at: DateTime<Utc>) {
        self.opt_outs.insert(phone.to_owned(), at);
    }

    /// Moves message `id` to `status` at `at` if that is a forward move, logging it; opts
    /// its recipient out when `unsubscribed`.
    fn apply(
        &mut self,
        id: Uuid,
        status: Option<MessageStatus>,
        error_code: Option<&str>,
        unsubscribed: bool,
        at: DateTime<Utc>,
    ) -> ReceiptOutcome {
        let Some(current) = self.get(id).map(|m| (m.status, m.phone.clone())) else {
            return ReceiptOutcome::Parked;
        };
        let (current, phone) = current;
        if unsubscribed {
            self.opt_out(&phone, at);
        }
        match status {
            Some(next) if current.can_become(next) => {
                if let Some(message) = self.change(id) {
                    message.status = next;
                    if let Some(code) = error_code {
                        message.error_code = Some(code.to_owned());
                    }
                    message.updated_at = at;
                }
                self.log.change(id, at, next);
                ReceiptOutcome::Applied(next)
            }
            _ => ReceiptOutcome::Ignored(current),
        }
    }

    /// Records that the provider accepted message `id` (tracked) under `sid`, moving it to
    /// `status`, then applies, in arrival order, the receipts in `parked` for that SID.
    pub(super) fn accept(
        &mut self,
        id: Uuid,
        sid: &str,
        status: MessageStatus,
        now: DateTime<Utc>,
        parked: &[Parked],
    ) {
        let Some(message) = self.change(id) else {
            return;
        };
        message.provider_sid = Some(sid.to_owned());
        message.lease_until = None;
        message.updated_at = now;
        // The provider's first answer only ever moves a message towards delivery, never back
        // into the queue to be sent again.
        if !status.is_unsent() {
            self.apply(id, Some(status), None, false, now);
        }
        // Statuses that overtook the provider's answer apply now, in arrival order.
        for receipt in parked.iter().filter(|r| r.sid == sid) {
            if self.receipts.iter().any(|(done, _)| *done == receipt.id) {
                continue;
            }
            let error_code = receipt.error_code.as_deref();
            let unsubscribed = unsubscribes_recipient(error_code);
            let outcome = self.apply(
                id,
                receipt.status,
                error_code,
                unsubscribed,
                receipt.received_at,
            );
            self.receipts.push((receipt.id, outcome_text(outcome)));
        }
    }

    /// Writes everything worked out: the messages changed (each only if still in the status
    /// it was read in), their log, opt-outs and the outcomes of parked receipts.
    pub(super) async fn write(&self, tx: &impl GenericClient) -> Result<(), StoreError> {
        let mut changed: Vec<&Tracked> = self.messages.values().filter(|m| m.changed).collect();
        changed.sort_by_key(|m| m.id);
        tokio::try_join!(
            write_messages(tx, &changed),
            self.log.write(tx),
            write_opt_outs(tx, &self.opt_outs),
            write_receipt_outcomes(tx, &self.receipts),
        )?;
        Ok(())
    }
}

async fn write_messages(tx: &impl GenericClient, messages: &[&Tracked]) -> Result<(), StoreError> {
    if messages.is_empty() {
        return Ok(());
    }
    let statement = tx
        .prepare_cached(
            "UPDATE messages m SET status = u.status, provider_sid = u.provider_sid,
                 error_code = u.error_code, due_at = u.due_at, lease_until = u.lease_until,
                 sent_as = u.sent_as, dispatched_at = u.dispatched_at, updated_at = u.updated_at
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::timestamptz[], $7::timestamptz[], $8::text[], $9::timestamptz[],
                         $10::timestamptz[])
                  AS u(id, before, status, provider_sid, error_code, due_at, lease_until,
                       sent_as, dispatched_at, updated_at)
             WHERE m.id = u.id AND m.status = u.before",
        )
        .await
        .map_err(pg_error)?;
    let ids: Vec<Uuid> = messages.iter().map(|m| m.id).collect();
    let before: Vec<&str> = messages.iter().map(|m| m.before.as_str()).collect();
    let status: Vec<&str> = messages.iter().map(|m| m.status.as_str()).collect();
    let sids: Vec<Option<&str>> = messages.iter().map(|m| m.provider_sid.as_deref()).collect();
    let codes: Vec<Option<&str>> = messages.iter().map(|m| m.error_code.as_deref()).collect();
    let due: Vec<DateTime<Utc>> = messages.iter().map(|m| ts(m.due_at)).collect();
    let leases: Vec<Option<DateTime<Utc>>> =
        messages.iter().map(|m| m.lease_until.map(ts)).collect();
    let sent_as: Vec<Option<&str>> = messages.iter().map(|m| m.sent_as.as_deref()).collect();
    let dispatched: Vec<Option<DateTime<Utc>>> =
        messages.iter().map(|m| m.dispatched_at.map(ts)).collect();
    let updated: Vec<DateTime<Utc>> = messages.iter().map(|m| ts(m.updated_at)).collect();
    tx.execute(
        &statement,
        &[
            &ids,
            &before,
            &status,
            &sids,
            &codes,
            &due,
            &leases,
            &sent_as,
            &dispatched,
            &updated,
        ],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

async fn write_opt_outs(
    tx: &impl GenericClient,
    opt_outs: &BTreeMap<String, DateTime<Utc>>,
) -> Result<(), StoreError> {
    if opt_outs.is_empty() {
        return Ok(());
    }
    let statement = tx
        .prepare_cached(&format!(
            "UPDATE users u SET consent_state = '{}', updated_at = o.at
             FROM unnest($1::text[], $2::timestamptz[]) AS o(phone, at)
             WHERE u.phone = o.phone",
            Consent::OptOut.as_str()
        ))
        .await
        .map_err(pg_error)?;
    let phones: Vec<&str> = opt_outs.keys().map(String::as_str).collect();
    let at: Vec<DateTime<Utc>> = opt_outs.values().map(|at| ts(*at)).collect();
    tx.execute(&statement, &[&phones, &at])
        .await
        .map_err(pg_error)?;
    Ok(())
}

async fn write_receipt_outcomes(
    tx: &impl GenericClient,
    outcomes: &[(i64, &'static str)],
) -> Result<(), StoreError> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let statement = tx
        .prepare_cached(
            "UPDATE receipts r SET outcome = o.outcome
             FROM unnest($1::int8[], $2::text[]) AS o(id, outcome) WHERE r.id = o.id",
        )
        .await
        .map_err(pg_error)?;
    let (ids, texts): (Vec<i64>, Vec<&str>) = outcomes.iter().copied().unzip();
    tx.execute(&statement, &[&ids, &texts])
        .await
        .map_err(pg_error)?;
    Ok(())
}

/// Stores new receipts, each with its outcome, in the order given (their ids follow it, and
/// parked ones are applied in id order later).
async fn insert_receipts(
    tx: &impl GenericClient,
    receipts: &[(&DeliveryReceipt, ReceiptOutcome)],
) -> Result<(), StoreError> {
    if receipts.is_empty() {
        return Ok(());
    }
    let statement = tx
        .prepare_cached(
            "INSERT INTO receipts (message_sid, provider_status, status, error_code,
                 received_at, raw, outcome)
             SELECT sid, provider_status, status, error_code, received_at, raw, outcome
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                         $6::jsonb[], $7::text[]) WITH ORDINALITY
                  AS r(sid, provider_status, status, error_code, received_at, raw, outcome, n)
             ORDER BY n
             ON CONFLICT (message_sid, provider_status) DO NOTHING",
        )
        .await
        .map_err(pg_error)?;
    let sids: Vec<&str> = receipts
        .iter()
        .map(|(r, _)| r.message_sid.as_str())
        .collect();
    let provider: Vec<&str> = receipts
        .iter()
        .map(|(r, _)| r.provider_status.as_str())
        .collect();
    let status: Vec<Option<&str>> = receipts
        .iter()
        .map(|(r, _)| r.status.map(MessageStatus::as_str))
        .collect();
    let codes: Vec<Option<&str>> = receipts
        .iter()
        .map(|(r, _)| r.error_code.as_deref())
        .collect();
    let at: Vec<DateTime<Utc>> = receipts.iter().map(|(r, _)| ts(r.received_at)).collect();
    let raw: Vec<Json<_>> = receipts.iter().map(|(r, _)| Json(&r.raw)).collect();
    let outcomes: Vec<&str> = receipts.iter().map(|(_, o)| outcome_text(*o)).collect();
    tx.execute(
        &statement,
        &[&sids, &provider, &status, &codes, &at, &raw, &outcomes],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

/// A connection in a transaction begun by hand (so that its `BEGIN` travels with the first
/// statements instead of costing a round trip of its own). Dropped before its commit or
/// rollback (a task ended half-way), it closes the connection instead of returning it to the
/// pool in the middle of a transaction; the server then rolls the transaction back.
struct Open(Option<deadpool_postgres::Object>);

impl Open {
    fn client(&self) -> &deadpool_postgres::Object {
        self.0
            .as_ref()
            .expect("an open transaction has its connection")
    }

    async fn commit(mut self) -> Result<(), StoreError> {
        let result = self.client().batch_execute("COMMIT").await;
        if result.is_ok() {
            // Back to the pool, the transaction over.
            drop(self.0.take());
        }
        result.map_err(pg_error)
    }

    async fn roll_back(mut self) {
        if self.client().batch_execute("ROLLBACK").await.is_ok() {
            drop(self.0.take());
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

/// Begins a transaction on `client` and records `receipts` in it (see
/// [`ReceiptStore::record_receipts`]), leaving the commit to the caller.
async fn record_group(
    client: &deadpool_postgres::Object,
    lock: &tokio_postgres::Statement,
    receipts: &[DeliveryReceipt],
) -> Result<Vec<ReceiptOutcome>, StoreError> {
    let sids: Vec<&str> = receipts.iter().map(|r| r.message_sid.as_str()).collect();
    // Read for their values each time (unnamed statements): a plan cached while the tables
    // were empty would scan them for good.
    let messages_sql = format!(
        "SELECT {TRACKED_COLUMNS} FROM messages WHERE provider_sid = ANY($1) ORDER BY id FOR UPDATE"
    );
    let lock_params: [&(dyn ToSql + Sync); 1] = [&sids];
    let typed_params: [(&(dyn ToSql + Sync), Type); 1] = [(&sids, Type::TEXT_ARRAY)];
    let (begun, locked, messages, seen) = tokio::join!(
        client.batch_execute("BEGIN"),
        client.query(lock, &lock_params),
        client.query_typed(&messages_sql, &typed_params),
        client.query_typed(
            "SELECT message_sid, provider_status FROM receipts WHERE message_sid = ANY($1)",
            &typed_params,
        ),
    );
    begun.map_err(pg_error)?;
    locked.map_err(pg_error)?;
    let (messages, seen) = (messages.map_err(pg_error)?, seen.map_err(pg_error)?);
    let mut changes = Changes::default();
    let mut by_sid: HashMap<String, Uuid> = HashMap::new();
    for row in &messages {
        let message = tracked_from_row(row)?;
        if let Some(sid) = &message.provider_sid {
            by_sid.insert(sid.clone(), message.id);
        }
        changes.messages.entry(message.id).or_insert(message);
    }
    let mut seen: HashSet<(String, String)> = seen
        .iter()
        .map(|row| Ok((get(row, 0)?, get(row, 1)?)))
        .collect::<Result<_, StoreError>>()?;
    // In order, as if recorded one after another.
    let mut outcomes = Vec::with_capacity(receipts.len());
    let mut new = Vec::new();
    for receipt in receipts {
        let key = (receipt.message_sid.clone(), receipt.provider_status.clone());
        if !seen.insert(key) {
            outcomes.push(ReceiptOutcome::Duplicate);
            continue;
        }
        let outcome = match by_sid.get(&receipt.message_sid) {
            Some(id) => changes.apply(
                *id,
                receipt.status,
                receipt.error_code.as_deref(),
                receipt.unsubscribes_recipient(),
                ts(receipt.received_at),
            ),
            None => ReceiptOutcome::Parked,
        };
        outcomes.push(outcome);
        new.push((receipt, outcome));
    }
    // Sent together; when the insert fails, the write fails only because the transaction
    // did, so the insert's error is the one to tell.
    let (inserted, written) = tokio::join!(insert_receipts(client, &new), changes.write(client));
    inserted?;
    written?;
    Ok(outcomes)
}

#[async_trait]
impl ReceiptStore for PgStore {
    async fn record_receipts(
        &self,
        receipts: &[DeliveryReceipt],
    ) -> Result<Vec<ReceiptOutcome>, StoreError> {
        if receipts.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let lock = client.prepare_cached(LOCK_SIDS).await.map_err(pg_error)?;
        // Three round trips, as webhooks wait for them: the transaction's start, the SIDs'
        // locks and what the group reads under them go together (the server runs them in
        // the order sent, so both reads wait for the locks); then the writes; then the
        // commit. The transaction is held by `Open`, which gives the connection up rather
        // than back to the pool if this ends half-way.
        let open = Open(Some(client));
        let outcomes = match record_group(open.client(), &lock, receipts).await {
            Ok(outcomes) => outcomes,
            Err(error) => {
                open.roll_back().await;
                return Err(error);
            }
        };
        open.commit().await?;
        Ok(outcomes)
    }

    async fn record_acceptance(
        &self,
        message: MessageId,
        provider_sid: &str,
        status: MessageStatus,
        now: DateTime<Utc>,
    ) -> Result<MessageStatus, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        lock_sids(&tx, &[provider_sid]).await?;
        let mut changes = Changes::default();
        changes.lock(&tx, &[message.0]).await?;
        if changes.get(message.0).is_none() {
            return Err(StoreError::database(format!("no message {message}")));
        }
        let parked = parked_for(&tx, &[provider_sid]).await?;
        changes.accept(message.0, provider_sid, status, ts(now), &parked);
        changes.write(&tx).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(changes.get(message.0).map_or(status, |m| m.status))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;
    use crate::domain::PhoneNumber;
    use crate::store::postgres::ScratchDatabase;
    use crate::store::{OutboxStore as _, StatsStore as _, UserStore as _};

    fn at(second: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + second, 0).unwrap()
    }

    fn receipt(sid: &str, status: &str, error: Option<&str>, second: i64) -> DeliveryReceipt {
        DeliveryReceipt {
            message_sid: sid.into(),
            provider_status: status.into(),
            status: MessageStatus::from_twilio(status),
            error_code: error.map(str::to_owned),
            received_at: at(second),
            raw: [("MessageSid".to_owned(), sid.to_owned())].into(),
        }
    }

    const PHONE: &str = "+14155552671";

    /// A message already handed to the provider (`sending`) to `phone`, as the dispatcher
    /// leaves it just before the provider answers, written with plain SQL.
    async fn message_in_flight(store: &PgStore, phone: &str) -> MessageId {
        let id = MessageId::new();
        let client = store.client().await.unwrap();
        client
            .execute(
                "INSERT INTO users (phone, consent_state, created_at, updated_at)
                 VALUES ($1, 'OPT_IN', 'epoch', 'epoch') ON CONFLICT DO NOTHING",
                &[&phone],
            )
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO messages (id, phone, body, status, due_at, created_at, updated_at)
                 VALUES ($1, $2, 'hi', 'sending', 'epoch', 'epoch', 'epoch')",
                &[&id.0, &phone],
            )
            .await
            .unwrap();
        id
    }

    async fn store_with_message_in_flight() -> (PgStore, MessageId, ScratchDatabase) {
        let (store, database) = super::super::scratch().await;
        let id = message_in_flight(&store, PHONE).await;
        (store, id, database)
    }

    #[tokio::test]
    async fn statuses_apply_in_order_and_repeats_do_nothing() {
        let (store, id, _database) = store_with_message_in_flight().await;
        let accepted = store
            .record_acceptance(id, "SM1", MessageStatus::Sending, at(0))
            .await
            .unwrap();
        assert_eq!(accepted, MessageStatus::Sending);
        let sent = receipt("SM1", "sent", None, 1);
        assert_eq!(
            store.record_receipt(&sent).await.unwrap(),
            ReceiptOutcome::Applied(MessageStatus::Sent)
        );
        assert_eq!(
            store.record_receipt(&sent).await.unwrap(),
            ReceiptOutcome::Duplicate
        );
        let delivered = receipt("SM1", "delivered", None, 2);
        assert_eq!(
            store.record_receipt(&delivered).await.unwrap(),
            ReceiptOutcome::Applied(MessageStatus::Delivered)
        );
    }

    #[tokio::test]
    async fn status_never_moves_backwards() {
        let (store, id, _database) = store_with_message_in_flight().await;
        store
            .record_acceptance(id, "SM1", MessageStatus::Sending, at(0))
            .await
            .unwrap();
        store
            .record_receipt(&receipt("SM1", "read", None, 2))
            .await
            .unwrap();
        // Twilio's `sent` arrives after `read`: kept as a receipt, the message stays read.
        assert_eq!(
            store
                .record_receipt(&receipt("SM1", "sent", None, 3))
                .await
                .unwrap(),
            ReceiptOutcome::Ignored(MessageStatus::Read)
        );
        let message = store.get_message(id).await.unwrap().unwrap();
        assert_eq!(message.status, MessageStatus::Read);
        let client = store.client().await.unwrap();
        let count: i64 = client
            .query_one("SELECT COUNT(*) FROM receipts", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(count, 2, "the late receipt is recorded");
    }

    #[tokio::test]
    async fn a_status_for_an_unknown_sid_waits_for_the_sid() {
        let (store, id, _database) = store_with_message_in_flight().await;
        // The callback overtakes the provider's answer.
        assert_eq!(
            store
                .record_receipt(&receipt("SM9", "sent", None, 1))
                .await
                .unwrap(),
            ReceiptOutcome::Parked
        );
        assert_eq!(
            store
                .record_receipt(&receipt("SM9", "delivered", None, 2))
                .await
                .unwrap(),
            ReceiptOutcome::Parked
        );
        let status = store
            .record_acceptance(id, "SM9", MessageStatus::Sending, at(3))
            .await
            .unwrap();
        assert_eq!(status, MessageStatus::Delivered);
        let history: Vec<_> = store
            .get_message(id)
            .await
            .unwrap()
            .unwrap()
            .history
            .into_iter()
            .map(|h| h.status)
            .collect();
        assert_eq!(
            history,
            [
                MessageStatus::Pending,
                MessageStatus::Sent,
                MessageStatus::Delivered
            ]
        );
        let client = store.client().await.unwrap();
        let outcomes: Vec<String> = client
            .query("SELECT outcome FROM receipts ORDER BY id", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(outcomes, ["applied", "applied"]);
    }

    #[tokio::test]
    async fn error_21610_opts_the_user_out() {
        let (store, id, _database) = store_with_message_in_flight().await;
        store
            .record_acceptance(id, "SM1", MessageStatus::Sending, at(0))
            .await
            .unwrap();
        let outcome = store
            .record_receipt(&receipt("SM1", "failed", Some("21610"), 1))
            .await
            .unwrap();
        assert_eq!(outcome, ReceiptOutcome::Applied(MessageStatus::Failed));
        let phone = PhoneNumber::parse(PHONE).unwrap();
        let user = store.get_user(&phone).await.unwrap().unwrap();
        assert_eq!(user.consent_state, Consent::OptOut);
        let message = store.get_message(id).await.unwrap().unwrap();
        assert_eq!(message.error_code.as_deref(), Some("21610"));
        let counts = store.message_counts(None).await.unwrap();
        assert_eq!(counts.by_status[&MessageStatus::Failed], 1);
        assert_eq!(counts.by_error_code["21610"], 1);
    }

    #[tokio::test]
    async fn an_unknown_message_is_an_error_and_changes_nothing() {
        let (store, _id, _database) = store_with_message_in_flight().await;
        assert!(
            store
                .record_acceptance(MessageId::new(), "SM1", MessageStatus::Sent, at(0))
                .await
                .is_err()
        );
    }

    /// A callback and the provider's answer for the same SID, arriving together in two
    /// processes: whichever commits second sees the other, so the status is never left
    /// parked.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_receipt_racing_the_recording_of_its_sid_is_applied_either_way() {
        let (store, database) = super::super::scratch().await;
        let other = PgStore::connect(database.url()).await.unwrap();
        let mut ids = Vec::new();
        for i in 0..40 {
            ids.push(message_in_flight(&store, &format!("+9477100{i:04}")).await);
        }
        let races = ids.iter().enumerate().map(|(i, id)| {
            let (store, other, id) = (store.clone(), other.clone(), *id);
            let sid = format!("SM{i}");
            tokio::spawn(async move {
                let callback = receipt(&sid, "delivered", None, 2);
                let (acceptance, outcome) = tokio::join!(
                    store.record_acceptance(id, &sid, MessageStatus::Sending, at(1)),
                    other.record_receipt(&callback),
                );
                (acceptance.unwrap(), outcome.unwrap())
            })
        });
        for race in races {
            let (status, outcome) = race.await.unwrap();
            assert!(
                matches!(
                    outcome,
                    ReceiptOutcome::Parked | ReceiptOutcome::Applied(MessageStatus::Delivered)
                ),
                "{outcome:?}"
            );
            assert!(
                outcome == ReceiptOutcome::Parked || status == MessageStatus::Sending,
                "{status:?} {outcome:?}"
            );
        }
        for id in ids {
            let message = store.get_message(id).await.unwrap().unwrap();
            assert_eq!(message.status, MessageStatus::Delivered, "{id}");
        }
        let client = store.client().await.unwrap();
        let parked: i64 = client
            .query_one(
                "SELECT COUNT(*) FROM receipts WHERE outcome = 'parked'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(parked, 0);
    }
}
