//! Messages awaiting their status in SQLite: `sending` with a provider SID, or `sent`. The
//! partial index `messages_awaiting_status` on `(status_check_at, updated_at)` holds only
//! them; `status_check_at` is NULL until the first question, then the time of the next one,
//! and [`NEVER`] once the engine gave up.

use rusqlite::{Connection, params};

use super::connection::db_error;
use super::dispatch::log;
use super::outbox::{id_from_key, key};
use super::{corrupt, from_millis, millis};
use crate::domain::{MessageId, MessageStatus};
use crate::store::{AwaitedStatus, NextCheck, StoreError};

/// `status_check_at` of a message never to be asked about again: past any time a pass uses.
const NEVER: i64 = i64::MAX;

/// The conditions of the partial index, word for word, so that SQLite can use it.
const AWAITING: &str = "status IN ('sending', 'sent') AND provider_sid IS NOT NULL";

/// Messages asked before and due again by `?1`, by time due.
fn again_sql() -> String {
    format!(
        "SELECT id, status_check_at FROM messages
         WHERE {AWAITING} AND status_check_at <= ?1
         ORDER BY status_check_at LIMIT ?2"
    )
}

/// Messages never asked whose status has not changed since `?1`, oldest change first.
fn first_sql() -> String {
    format!(
        "SELECT id, updated_at FROM messages
         WHERE {AWAITING} AND status_check_at IS NULL AND updated_at <= ?1
         ORDER BY updated_at LIMIT ?2"
    )
}

/// Ids of messages due a question, each with the time it became due: asked before and due
/// by `now`, or never asked and unchanged since `quiet_since`; oldest due first, at most
/// `limit`. Two index ranges, each read in order and merged.
fn due(
    conn: &Connection,
    now: i64,
    quiet_since: i64,
    quiet_for: i64,
    limit: u32,
) -> Result<Vec<([u8; 16], i64)>, StoreError> {
    let (again, first) = (again_sql(), first_sql());
    let mut found = Vec::new();
    for (sql, bound, shift) in [(again, now, 0), (first, quiet_since, quiet_for)] {
        let rows = conn
            .prepare_cached(&sql)
            .and_then(|mut s| {
                s.query_map(params![bound, limit], |r| {
                    Ok((r.get::<_, [u8; 16]>(0)?, r.get::<_, i64>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(db_error)?;
        found.extend(
            rows.into_iter()
                .map(|(id, at)| (id, at.saturating_add(shift))),
        );
    }
    found.sort_by_key(|(_, due_at)| *due_at);
    found.truncate(limit as usize);
    Ok(found)
}

/// Claims the messages due a question (see [`due`]) and holds them until `hold_until`.
pub(super) fn claim(
    conn: &Connection,
    now: i64,
    quiet_since: i64,
    hold_until: i64,
    limit: u32,
) -> Result<Vec<AwaitedStatus>, StoreError> {
    let ids = due(conn, now, quiet_since, now - quiet_since, limit)?;
    let mut hold = conn
        .prepare_cached(
            "UPDATE messages SET status_check_at = ?1 WHERE id = ?2
             RETURNING provider_sid, status, COALESCE(dispatched_at, updated_at), status_checks",
        )
        .map_err(db_error)?;
    let mut claimed = Vec::with_capacity(ids.len());
    for (id, _) in ids {
        let (sid, status, sent_at, checks): (String, String, i64, i64) = hold
            .query_row(params![hold_until, id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .map_err(db_error)?;
        claimed.push(AwaitedStatus {
            id: MessageId(id_from_key(&id)?),
            provider_sid: sid,
            status: MessageStatus::parse(&status)
                .ok_or_else(|| corrupt(format!("unknown message status {status:?}")))?,
            sent_at: from_millis(sent_at),
            checks: checks.max(0) as u32,
        });
    }
    Ok(claimed)
}

/// Records what follows one question (see `DispatchStore::record_status_checks`).
pub(super) fn record(conn: &Connection, id: MessageId, next: &NextCheck) -> Result<(), StoreError> {
    let at = match next {
        NextCheck::At(at) => millis(*at),
        NextCheck::GiveUp(_) => NEVER,
    };
    let status: Option<String> = conn
        .prepare_cached(&format!(
            "UPDATE messages SET status_check_at = ?1, status_checks = status_checks + 1
             WHERE id = ?2 AND {AWAITING}
             RETURNING status"
        ))
        .and_then(|mut s| {
            use rusqlite::OptionalExtension as _;
            s.query_row(params![at, key(id.0)], |r| r.get(0)).optional()
        })
        .map_err(db_error)?;
    if let (Some(status), NextCheck::GiveUp(decision)) = (status, next) {
        let status = MessageStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("unknown message status {status:?}")))?;
        log(conn, id, millis(decision.at), status, Some(decision))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    #[tokio::test]
    async fn both_questions_read_the_partial_index_in_order_without_sorting() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("plan.db")).await.unwrap();
        let plans = store
            .db
            .read(|conn| {
                [again_sql(), first_sql()]
                    .iter()
                    .map(|sql| {
                        let mut plan = conn
                            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                            .map_err(db_error)?;
                        plan.query_map(params![0, 100], |r| r.get::<_, String>(3))
                            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                            .map(|rows| rows.join("; "))
                            .map_err(db_error)
                    })
                    .collect::<Result<Vec<_>, StoreError>>()
            })
            .await
            .unwrap();
        for plan in plans {
            assert!(
                plan.contains("USING INDEX messages_awaiting_status"),
                "{plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }
}
