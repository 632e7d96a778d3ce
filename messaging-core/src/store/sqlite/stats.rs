//! Statistics over the outbox, users and inbound messages in SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::params_from_iter;
use rusqlite::types::Value as SqlValue;

use super::connection::db_error;
use super::outbox::key;
use super::{SqliteStore, corrupt, millis};
use crate::domain::{CampaignId, MessageStatus};
use crate::store::{MessageCounts, SkippedBy, StatsStore, StatusChanges, StoreError};

/// The skipped messages of a campaign per step that skipped them, with one of its reasons.
fn skipped_by_step(
    conn: &rusqlite::Connection,
    campaign: CampaignId,
) -> Result<Vec<SkippedBy>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT l.step, COUNT(DISTINCT m.id), MIN(l.reason)
             FROM messages m JOIN message_log l ON l.message_id = m.id
             WHERE m.campaign_id = ? AND m.status = 'skipped'
               AND l.status = 'skipped' AND l.step IS NOT NULL
             GROUP BY l.step ORDER BY 2 DESC, 1",
        )
        .map_err(db_error)?;
    let rows = stmt
        .query_map([key(campaign.0).to_vec()], |r| {
            Ok(SkippedBy {
                step: r.get(0)?,
                count: r.get::<_, i64>(1)? as u64,
                reason: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            })
        })
        .map_err(db_error)?;
    rows.collect::<Result<_, _>>().map_err(db_error)
}

#[async_trait]
impl StatsStore for SqliteStore {
    async fn message_counts(
        &self,
        campaign: Option<CampaignId>,
    ) -> Result<MessageCounts, StoreError> {
        self.db
            .read(move |conn| {
                let (filter, params) = match campaign {
                    Some(id) => (
                        " WHERE campaign_id = ?",
                        vec![SqlValue::Blob(key(id.0).to_vec())],
                    ),
                    None => ("", Vec::new()),
                };
                let mut counts = MessageCounts::default();
                let sql = format!("SELECT status, COUNT(*) FROM messages{filter} GROUP BY status");
                let mut stmt = conn.prepare_cached(&sql).map_err(db_error)?;
                let rows = stmt
                    .query_map(params_from_iter(params.clone()), |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                    })
                    .map_err(db_error)?;
                for row in rows {
                    let (status, count) = row.map_err(db_error)?;
                    let status = MessageStatus::parse(&status)
                        .ok_or_else(|| corrupt(format!("unknown message status {status:?}")))?;
                    counts.by_status.insert(status, count as u64);
                }
                let joiner = if filter.is_empty() { " WHERE" } else { " AND" };
                let sql = format!(
                    "SELECT COALESCE(error_code, 'unknown'), COUNT(*) FROM messages{filter}{joiner}
                     status IN ('failed', 'undelivered') GROUP BY 1 ORDER BY 1"
                );
                let mut stmt = conn.prepare_cached(&sql).map_err(db_error)?;
                let rows = stmt
                    .query_map(params_from_iter(params), |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                    })
                    .map_err(db_error)?;
                for row in rows {
                    let (code, count) = row.map_err(db_error)?;
                    counts.by_error_code.insert(code, count as u64);
                }
                if let Some(id) = campaign {
                    counts.skipped_by_step = skipped_by_step(conn, id)?;
                }
                Ok(counts)
            })
            .await
    }

    async fn count_opted_out(&self) -> Result<u64, StoreError> {
        self.db
            .read(|conn| {
                conn.query_row(
                    "SELECT COUNT(*) FROM users WHERE consent_state = 'OPT_OUT'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n as u64)
                .map_err(db_error)
            })
            .await
    }

    async fn count_inbound(&self) -> Result<(u64, u64), StoreError> {
        self.db
            .read(|conn| {
                conn.query_row("SELECT COUNT(*), COUNT(command) FROM inbound", [], |r| {
                    Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
                })
                .map_err(db_error)
            })
            .await
    }

    async fn status_changes(
        &self,
        since: DateTime<Utc>,
        bucket: chrono::Duration,
        statuses: &[MessageStatus],
    ) -> Result<Vec<StatusChanges>, StoreError> {
        let since = millis(since);
        let width = bucket.num_milliseconds().max(1);
        let wanted: Vec<String> = statuses.iter().map(|s| s.as_str().to_owned()).collect();
        self.db
            .read(move |conn| {
                // A range scan of `message_log_by_time`, grouped in memory by SQLite: a week
                // of a million messages' changes is a few million index entries at most.
                let marks = vec!["?"; wanted.len()].join(", ");
                let sql = format!(
                    "SELECT (at - ?1) / ?2, status, COUNT(*) FROM message_log
                     WHERE at >= ?1 AND status IN ({marks}) GROUP BY 1, 2 ORDER BY 1, 2"
                );
                let mut params = vec![SqlValue::Integer(since), SqlValue::Integer(width)];
                params.extend(wanted.into_iter().map(SqlValue::Text));
                let mut stmt = conn.prepare_cached(&sql).map_err(db_error)?;
                let rows = stmt
                    .query_map(params_from_iter(params), |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?,
                        ))
                    })
                    .map_err(db_error)?;
                let mut changes = Vec::new();
                for row in rows {
                    let (bucket, status, count) = row.map_err(db_error)?;
                    let status = MessageStatus::parse(&status)
                        .ok_or_else(|| corrupt(format!("unknown message status {status:?}")))?;
                    changes.push(StatusChanges {
                        bucket: bucket.clamp(0, i64::from(u32::MAX)) as u32,
                        status,
                        count: count as u64,
                    });
                }
                Ok(changes)
            })
            .await
    }
}
