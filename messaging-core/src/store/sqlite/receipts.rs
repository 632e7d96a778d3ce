//! Delivery receipts in SQLite. Each is stored once per (SID, status) and applied to its
//! message in the same transaction, only when it moves the message forward; a receipt for a
//! SID not known yet is parked and applied when the SID is recorded. Whether a report opts its
//! recipient out is the domain's rule ([`unsubscribes_recipient`]); this file applies it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::connection::db_error;
use super::outbox::key;
use super::{SqliteStore, corrupt, millis, to_json_text};
use crate::domain::{Consent, DeliveryReceipt, MessageId, MessageStatus, unsubscribes_recipient};
use crate::store::{ReceiptOutcome, ReceiptStore, StoreError};

fn outcome_text(outcome: ReceiptOutcome) -> &'static str {
    match outcome {
        ReceiptOutcome::Applied(_) => "applied",
        ReceiptOutcome::Ignored(_) => "ignored",
        ReceiptOutcome::Parked => "parked",
        ReceiptOutcome::Duplicate => "duplicate",
    }
}

/// Turns the user to `OPT_OUT`: the provider said they unsubscribed at the carrier (the
/// domain decides that, [`unsubscribes_recipient`]); called in the transaction that records
/// the failure.
pub(super) fn opt_out(conn: &Connection, phone: &str, at: i64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE users SET consent_state = ?, updated_at = ? WHERE phone = ?",
        params![Consent::OptOut.as_str(), at, phone],
    )
    .map_err(db_error)?;
    Ok(())
}

/// Moves the message with `sid` to `status` if that is a forward move, logging it; opts its
/// recipient out when `unsubscribed` (the report said they unsubscribed at the carrier).
fn apply(
    conn: &Connection,
    sid: &str,
    status: Option<MessageStatus>,
    error_code: Option<&str>,
    unsubscribed: bool,
    at: i64,
) -> Result<ReceiptOutcome, StoreError> {
    let found: Option<([u8; 16], String, String)> = conn
        .prepare_cached("SELECT id, status, phone FROM messages WHERE provider_sid = ?")
        .and_then(|mut s| {
            s.query_row([sid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .map_err(db_error)?;
    let Some((id, current, phone)) = found else {
        return Ok(ReceiptOutcome::Parked);
    };
    let current = MessageStatus::parse(&current)
        .ok_or_else(|| corrupt(format!("unknown message status {current:?}")))?;
    if unsubscribed {
        opt_out(conn, &phone, at)?;
    }
    match status {
        Some(next) if current.can_become(next) => {
            conn.prepare_cached(
                "UPDATE messages SET status = ?, error_code = COALESCE(?, error_code),
                     updated_at = ?
                 WHERE id = ?",
            )
            .and_then(|mut s| s.execute(params![next.as_str(), error_code, at, id]))
            .map_err(db_error)?;
            conn.prepare_cached(
                "INSERT INTO message_log (message_id, at, status) VALUES (?, ?, ?)",
            )
            .and_then(|mut s| s.execute(params![id, at, next.as_str()]))
            .map_err(db_error)?;
            Ok(ReceiptOutcome::Applied(next))
        }
        _ => Ok(ReceiptOutcome::Ignored(current)),
    }
}

/// Stores `receipt` (its raw fields as JSON text, `raw`) and applies it, in the caller's
/// transaction.
fn record(
    conn: &Connection,
    receipt: &DeliveryReceipt,
    raw: &str,
) -> Result<ReceiptOutcome, StoreError> {
    let at = millis(receipt.received_at);
    let inserted = conn
        .prepare_cached(
            "INSERT INTO receipts (message_sid, provider_status, status, error_code,
                 received_at, raw, outcome)
             VALUES (?, ?, ?, ?, ?, ?, 'new')
             ON CONFLICT (message_sid, provider_status) DO NOTHING",
        )
        .and_then(|mut s| {
            s.execute(params![
                receipt.message_sid,
                receipt.provider_status,
                receipt.status.map(MessageStatus::as_str),
                receipt.error_code,
                at,
                raw,
            ])
        })
        .map_err(db_error)?;
    if inserted == 0 {
        return Ok(ReceiptOutcome::Duplicate);
    }
    let row = conn.last_insert_rowid();
    let outcome = apply(
        conn,
        &receipt.message_sid,
        receipt.status,
        receipt.error_code.as_deref(),
        receipt.unsubscribes_recipient(),
        at,
    )?;
    conn.prepare_cached("UPDATE receipts SET outcome = ? WHERE id = ?")
        .and_then(|mut s| s.execute(params![outcome_text(outcome), row]))
        .map_err(db_error)?;
    Ok(outcome)
}

#[async_trait]
impl ReceiptStore for SqliteStore {
    async fn record_receipts(
        &self,
        receipts: &[DeliveryReceipt],
    ) -> Result<Vec<ReceiptOutcome>, StoreError> {
        let raws = receipts
            .iter()
            .map(|r| to_json_text(&r.raw))
            .collect::<Result<Vec<_>, _>>()?;
        let receipts = receipts.to_vec();
        self.db
            .write(move |conn| {
                let tx = conn.transaction().map_err(db_error)?;
                let outcomes = receipts
                    .iter()
                    .zip(&raws)
                    .map(|(receipt, raw)| record(&tx, receipt, raw))
                    .collect::<Result<Vec<_>, _>>()?;
                tx.commit().map_err(db_error)?;
                Ok(outcomes)
            })
            .await
    }

    async fn record_acceptance(
        &self,
        message: MessageId,
        provider_sid: &str,
        status: MessageStatus,
        now: DateTime<Utc>,
    ) -> Result<MessageStatus, StoreError> {
        let sid = provider_sid.to_owned();
        self.db
            .write(move |conn| {
                let tx = conn.transaction().map_err(db_error)?;
                let current = accept(&tx, message, &sid, status, millis(now))?;
                tx.commit().map_err(db_error)?;
                Ok(current)
            })
            .await
    }
}

/// Records that the provider accepted message `id` under `sid` (moving it to `status`), then
/// applies, in arrival order, the receipts parked for that SID; answers where the message is.
pub(super) fn accept(
    tx: &Connection,
    id: MessageId,
    sid: &str,
    status: MessageStatus,
    now: i64,
) -> Result<MessageStatus, StoreError> {
    let updated = tx
        .execute(
            "UPDATE messages SET provider_sid = ?, lease_until = NULL, updated_at = ? WHERE id = ?",
            params![sid, now, key(id.0)],
        )
        .map_err(db_error)?;
    if updated == 0 {
        return Err(StoreError::database(format!("no message {id}")));
    }
    // The provider's first answer only ever moves a message towards delivery,
    // never back into the queue to be sent again.
    if !status.is_unsent() {
        apply(tx, sid, Some(status), None, false, now)?;
    }
    // Statuses that overtook the provider's answer apply now, in arrival order.
    let parked: Vec<(i64, Option<String>, Option<String>, i64)> = tx
        .prepare_cached(
            "SELECT id, status, error_code, received_at FROM receipts
             WHERE message_sid = ? AND outcome = 'parked' ORDER BY id",
        )
        .and_then(|mut s| {
            s.query_map([sid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect()
        })
        .map_err(db_error)?;
    for (row, status, error_code, at) in parked {
        let status = status.as_deref().and_then(MessageStatus::parse);
        let error_code = error_code.as_deref();
        let unsubscribed = unsubscribes_recipient(error_code);
        let outcome = apply(tx, sid, status, error_code, unsubscribed, at)?;
        tx.execute(
            "UPDATE receipts SET outcome = ? WHERE id = ?",
            params![outcome_text(outcome), row],
        )
        .map_err(db_error)?;
    }
    let current: String = tx
        .query_row(
            "SELECT status FROM messages WHERE id = ?",
            [key(id.0)],
            |r| r.get(0),
        )
        .map_err(db_error)?;
    MessageStatus::parse(&current)
        .ok_or_else(|| corrupt(format!("unknown message status {current:?}")))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;
    use crate::domain::PhoneNumber;
    use crate::store::OutboxStore as _;

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

    /// A store with one user and one message already handed to the provider (`sending`), as
    /// the dispatcher leaves it just before the provider answers.
    async fn store_with_message_in_flight() -> (SqliteStore, MessageId, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("r.db")).await.unwrap();
        let id = MessageId::new();
        let phone = PhoneNumber::parse("+14155552671").unwrap();
        let (id_key, phone_text) = (id.0.simple().to_string(), phone.to_string());
        store
            .db
            .write(move |conn| {
                conn.execute_batch(&format!(
                    "INSERT INTO users (phone, consent_state, created_at, updated_at)
                         VALUES ('{phone_text}', 'OPT_IN', 0, 0);
                     INSERT INTO messages (id, phone, body, status, due_at, created_at, updated_at)
                         VALUES (X'{id_key}', '{phone_text}', 'hi', 'sending', 0, 0, 0);"
                ))
                .map_err(db_error)
            })
            .await
            .unwrap();
        (store, id, dir)
    }

    #[tokio::test]
    async fn statuses_apply_in_order_and_repeats_do_nothing() {
        let (store, id, _dir) = store_with_message_in_flight().await;
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
        let (store, id, _dir) = store_with_message_in_flight().await;
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
        let count: i64 = store
            .db
            .read(|conn| {
                conn.query_row("SELECT COUNT(*) FROM receipts", [], |r| r.get(0))
                    .map_err(db_error)
            })
            .await
            .unwrap();
        assert_eq!(count, 2, "the late receipt is recorded");
    }

    #[tokio::test]
    async fn a_status_for_an_unknown_sid_waits_for_the_sid() {
        let (store, id, _dir) = store_with_message_in_flight().await;
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
    }

    #[tokio::test]
    async fn error_21610_opts_the_user_out() {
        let (store, id, _dir) = store_with_message_in_flight().await;
        store
            .record_acceptance(id, "SM1", MessageStatus::Sending, at(0))
            .await
            .unwrap();
        let outcome = store
            .record_receipt(&receipt("SM1", "failed", Some("21610"), 1))
            .await
            .unwrap();
        assert_eq!(outcome, ReceiptOutcome::Applied(MessageStatus::Failed));
        let phone = PhoneNumber::parse("+14155552671").unwrap();
        let user = crate::store::UserStore::get_user(&store, &phone)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(user.consent_state, crate::domain::Consent::OptOut);
        let message = store.get_message(id).await.unwrap().unwrap();
        assert_eq!(message.error_code.as_deref(), Some("21610"));
        let counts = crate::store::StatsStore::message_counts(&store, None)
            .await
            .unwrap();
        assert_eq!(counts.by_status[&MessageStatus::Failed], 1);
        assert_eq!(counts.by_error_code["21610"], 1);
    }
}
