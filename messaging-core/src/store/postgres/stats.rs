//! Statistics over the outbox, users and inbound messages in PostgreSQL. This module owns no
//! table: it counts rows of `messages`, `message_log`, `inbound` and `users`, each with one
//! grouped statement, never reading rows into the process to count them.
//!
//! The three counts of [`StatsStore::message_counts`] go out together on one connection
//! (pipelined), so they cost one round trip. Names come out in byte order (`COLLATE "C"`),
//! as SQLite compares text; the statuses and consent that count are the domain's words,
//! spelled into the statements (so that the partial index of opted-out users serves
//! [`StatsStore::count_opted_out`]). Status changes are bucketed by whole milliseconds
//! since `since`, as the SQLite adapter counts them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{PgStore, corrupt, pg_error, ts};
use crate::domain::{CampaignId, Consent, MessageStatus};
use crate::store::{MessageCounts, SkippedBy, StatsStore, StatusChanges, StoreError, sql_names};

/// The statuses whose messages are counted per provider error code.
fn failed_statuses() -> String {
    sql_names([
        MessageStatus::Failed.as_str(),
        MessageStatus::Undelivered.as_str(),
    ])
}

/// The statement counting messages per status, for one campaign (`$1`) or all.
fn by_status_sql(one_campaign: bool) -> String {
    let filter = if one_campaign {
        " WHERE campaign_id = $1"
    } else {
        ""
    };
    format!("SELECT status, COUNT(*) FROM messages{filter} GROUP BY status")
}

/// The statement counting failed messages per error code (`unknown` without one), for one
/// campaign (`$1`) or all.
fn by_error_code_sql(one_campaign: bool) -> String {
    let filter = if one_campaign {
        "campaign_id = $1 AND "
    } else {
        ""
    };
    format!(
        "SELECT COALESCE(error_code, 'unknown'), COUNT(*) FROM messages
         WHERE {filter}status IN {} GROUP BY 1",
        failed_statuses()
    )
}

/// The statement counting a campaign's (`$1`) skipped messages per policy step, most first,
/// with the first of the step's reasons in byte order.
fn skipped_by_step_sql() -> String {
    let skipped = MessageStatus::Skipped.as_str();
    format!(
        "SELECT l.step, COUNT(DISTINCT m.id), MIN(l.reason COLLATE \"C\")
         FROM messages m JOIN message_log l ON l.message_id = m.id
         WHERE m.campaign_id = $1 AND m.status = '{skipped}'
           AND l.status = '{skipped}' AND l.step IS NOT NULL
         GROUP BY l.step ORDER BY 2 DESC, l.step COLLATE \"C\""
    )
}

/// Reads a (name, count) row.
fn named_count(row: &Row) -> Result<(String, u64), StoreError> {
    let name: String = row.try_get(0).map_err(corrupt)?;
    let count: i64 = row.try_get(1).map_err(corrupt)?;
    Ok((name, count.max(0) as u64))
}

/// A status as stored.
fn status(name: &str) -> Result<MessageStatus, StoreError> {
    MessageStatus::parse(name).ok_or_else(|| corrupt(format!("unknown message status {name:?}")))
}

#[async_trait]
impl StatsStore for PgStore {
    async fn message_counts(
        &self,
        campaign: Option<CampaignId>,
    ) -> Result<MessageCounts, StoreError> {
        let client = self.client().await?;
        let one_campaign = campaign.is_some();
        let (by_status_sql, by_error_code_sql) =
            (by_status_sql(one_campaign), by_error_code_sql(one_campaign));
        let (by_status, by_error_code) = tokio::try_join!(
            client.prepare_cached(&by_status_sql),
            client.prepare_cached(&by_error_code_sql),
        )
        .map_err(pg_error)?;
        let mut counts = MessageCounts::default();
        let (status_rows, error_rows, skipped_rows) = match campaign {
            None => {
                let (status_rows, error_rows) = tokio::try_join!(
                    client.query(&by_status, &[]),
                    client.query(&by_error_code, &[])
                )
                .map_err(pg_error)?;
                (status_rows, error_rows, Vec::new())
            }
            Some(id) => {
                let skipped = client
                    .prepare_cached(&skipped_by_step_sql())
                    .await
                    .map_err(pg_error)?;
                let params: [&(dyn ToSql + Sync); 1] = [&id.0];
                tokio::try_join!(
                    client.query(&by_status, &params),
                    client.query(&by_error_code, &params),
                    client.query(&skipped, &params),
                )
                .map_err(pg_error)?
            }
        };
        for row in &status_rows {
            let (name, count) = named_count(row)?;
            counts.by_status.insert(status(&name)?, count);
        }
        for row in &error_rows {
            let (code, count) = named_count(row)?;
            counts.by_error_code.insert(code, count);
        }
        counts.skipped_by_step = skipped_rows
            .iter()
            .map(|row| {
                let (step, count) = named_count(row)?;
                let reason: Option<String> = row.try_get(2).map_err(corrupt)?;
                Ok(SkippedBy {
                    step,
                    count,
                    reason: reason.unwrap_or_default(),
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(counts)
    }

    async fn count_opted_out(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT COUNT(*) FROM users WHERE consent_state = '{}'",
            Consent::OptOut.as_str()
        );
        let statement = client.prepare_cached(&sql).await.map_err(pg_error)?;
        let count: i64 = client
            .query_one(&statement, &[])
            .await
            .map_err(pg_error)?
            .try_get(0)
            .map_err(corrupt)?;
        Ok(count as u64)
    }

    async fn count_inbound(&self) -> Result<(u64, u64), StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT COUNT(*), COUNT(command) FROM inbound")
            .await
            .map_err(pg_error)?;
        let row = client.query_one(&statement, &[]).await.map_err(pg_error)?;
        let all: i64 = row.try_get(0).map_err(corrupt)?;
        let commands: i64 = row.try_get(1).map_err(corrupt)?;
        Ok((all as u64, commands as u64))
    }

    async fn status_changes(
        &self,
        since: DateTime<Utc>,
        bucket: chrono::Duration,
        statuses: &[MessageStatus],
    ) -> Result<Vec<StatusChanges>, StoreError> {
        let since = ts(since);
        let since_ms = since.timestamp_millis();
        let width = bucket.num_milliseconds().max(1);
        let wanted: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        let client = self.client().await?;
        // A range scan of the log by time; whole milliseconds since `since`, divided by the
        // bucket's width (both non-negative, so the division rounds down as SQLite's does).
        let statement = client
            .prepare_cached(
                "SELECT (floor(EXTRACT(EPOCH FROM at) * 1000)::bigint - $2) / $3, status,
                        COUNT(*)
                 FROM message_log
                 WHERE at >= $1 AND status = ANY($4::text[])
                 GROUP BY 1, 2 ORDER BY 1, status COLLATE \"C\"",
            )
            .await
            .map_err(pg_error)?;
        let rows = client
            .query(&statement, &[&since, &since_ms, &width, &wanted])
            .await
            .map_err(pg_error)?;
        rows.iter()
            .map(|row| {
                let bucket: i64 = row.try_get(0).map_err(corrupt)?;
                let name: &str = row.try_get(1).map_err(corrupt)?;
                let count: i64 = row.try_get(2).map_err(corrupt)?;
                Ok(StatusChanges {
                    bucket: bucket.clamp(0, i64::from(u32::MAX)) as u32,
                    status: status(name)?,
                    count: count.max(0) as u64,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
    use tokio_postgres::NoTls;
    use uuid::Uuid;

    use super::*;
    use crate::domain::{PhoneNumber, UserChanges, UserUpsert};
    use crate::store::UserStore;
    use crate::store::postgres::ScratchDatabase;

    /// The columns of other parts' tables that the statistics read, and nothing else: the
    /// contract this module assumes of them.
    const READ_COLUMNS: &str = "
        CREATE TEMPORARY TABLE messages (
            id          uuid PRIMARY KEY,
            campaign_id uuid,
            status      text NOT NULL,
            error_code  text
        );
        CREATE TEMPORARY TABLE message_log (
            message_id uuid NOT NULL,
            at         timestamptz NOT NULL,
            status     text NOT NULL,
            step       text,
            reason     text
        );
        CREATE TEMPORARY TABLE inbound (command text);";

    /// A store on a scratch database whose one connection sees [`READ_COLUMNS`] in place of
    /// the real tables (temporary tables come first in every lookup), so these tests pin
    /// down what the statements read, whichever parts of the schema are there.
    async fn store() -> (PgStore, ScratchDatabase) {
        let (migrated, database) = super::super::scratch().await;
        drop(migrated);
        let manager = Manager::from_config(
            super::super::parse_url(database.url()).unwrap(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(1)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .unwrap();
        let store = PgStore { pool };
        store
            .client()
            .await
            .unwrap()
            .batch_execute(READ_COLUMNS)
            .await
            .unwrap();
        (store, database)
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// A logged change: when, into which status, by which step, why.
    type Logged = (
        DateTime<Utc>,
        MessageStatus,
        Option<&'static str>,
        Option<&'static str>,
    );

    async fn message(
        store: &PgStore,
        campaign: Option<CampaignId>,
        status: MessageStatus,
        error_code: Option<&str>,
        log: &[Logged],
    ) {
        let client = store.client().await.unwrap();
        let id = Uuid::now_v7();
        client
            .execute(
                "INSERT INTO messages (id, campaign_id, status, error_code) VALUES ($1, $2, $3, $4)",
                &[&id, &campaign.map(|c| c.0), &status.as_str(), &error_code],
            )
            .await
            .unwrap();
        for (at, status, step, reason) in log {
            client
                .execute(
                    "INSERT INTO message_log (message_id, at, status, step, reason)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&id, &ts(*at), &status.as_str(), step, reason],
                )
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn messages_are_counted_per_status_error_code_and_skipping_step() {
        use MessageStatus::*;
        let (store, _database) = store().await;
        let campaign = CampaignId::new();
        let t = at("2026-11-24T10:00:00Z");
        let skipped_by =
            |step: &'static str, reason: &'static str| [(t, Skipped, Some(step), Some(reason))];
        message(&store, Some(campaign), Pending, None, &[]).await;
        message(&store, Some(campaign), Failed, Some("63016"), &[]).await;
        message(&store, Some(campaign), Undelivered, None, &[]).await;
        message(
            &store,
            Some(campaign),
            Skipped,
            None,
            &skipped_by("consent", "opted out"),
        )
        .await;
        message(
            &store,
            Some(campaign),
            Skipped,
            None,
            &skipped_by("window", "b: outside"),
        )
        .await;
        message(
            &store,
            Some(campaign),
            Skipped,
            None,
            &skipped_by("window", "a: outside"),
        )
        .await;
        message(
            &store,
            Some(campaign),
            Skipped,
            None,
            &skipped_by("Zone", "quiet"),
        )
        .await;
        message(
            &store,
            Some(campaign),
            Skipped,
            None,
            &skipped_by("apple", "quiet"),
        )
        .await;
        // A status change (no step) and another campaign's messages are not skipping steps.
        message(
            &store,
            Some(campaign),
            Skipped,
            None,
            &[(t, Skipped, None, None)],
        )
        .await;
        message(
            &store,
            Some(CampaignId::new()),
            Skipped,
            None,
            &skipped_by("consent", "x"),
        )
        .await;
        message(&store, None, Failed, Some("63016"), &[]).await;

        let counts = store.message_counts(Some(campaign)).await.unwrap();
        assert_eq!(
            counts.by_status.into_iter().collect::<Vec<_>>(),
            [(Pending, 1), (Failed, 1), (Undelivered, 1), (Skipped, 6)]
        );
        assert_eq!(
            counts.by_error_code.into_iter().collect::<Vec<_>>(),
            [("63016".to_owned(), 1), ("unknown".to_owned(), 1)]
        );
        let steps: Vec<(&str, u64, &str)> = counts
            .skipped_by_step
            .iter()
            .map(|s| (s.step.as_str(), s.count, s.reason.as_str()))
            .collect();
        assert_eq!(
            steps,
            [
                ("window", 2, "a: outside"),
                ("Zone", 1, "quiet"),
                ("apple", 1, "quiet"),
                ("consent", 1, "opted out"),
            ],
            "most first, then in byte order"
        );

        let all = store.message_counts(None).await.unwrap();
        assert_eq!(all.by_status[&Skipped], 7);
        assert_eq!(all.by_status[&Failed], 2);
        assert_eq!(all.by_error_code["63016"], 2);
        assert!(all.skipped_by_step.is_empty(), "only for one campaign");
    }

    #[tokio::test]
    async fn status_changes_are_counted_per_bucket_from_since() {
        use MessageStatus::*;
        let (store, _database) = store().await;
        let since = at("2026-11-24T10:00:00.000500Z");
        let minute = TimeDelta::minutes(1);
        let ms = TimeDelta::milliseconds(1);
        message(
            &store,
            None,
            Read,
            None,
            &[
                (since - ms, Sent, None, None),
                (since, Sent, None, None),
                (since + minute - ms, Delivered, None, None),
                (since + minute, Delivered, None, None),
                (since + minute * 3 + ms, Read, None, None),
                (since + minute * 3 + ms * 2, Failed, None, None),
            ],
        )
        .await;
        let changes: Vec<(u32, MessageStatus, u64)> = store
            .status_changes(since, minute, &[Sent, Delivered, Read])
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.bucket, c.status, c.count))
            .collect();
        assert_eq!(
            changes,
            [
                (0, Delivered, 1),
                (0, Sent, 1),
                (1, Delivered, 1),
                (3, Read, 1)
            ],
            "by bucket, then by status name"
        );
        assert!(
            store
                .status_changes(since, minute, &[])
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn opted_out_users_and_inbound_commands_are_counted() {
        let (store, _database) = store().await;
        let user = |phone: &str, consent: Consent| UserUpsert {
            phone: PhoneNumber::parse(phone).unwrap(),
            changes: UserChanges {
                consent_state: Some(consent),
                ..UserChanges::default()
            },
        };
        store
            .upsert_users(
                vec![
                    user("+94771234501", Consent::OptOut),
                    user("+94771234502", Consent::OptIn),
                    user("+94771234503", Consent::OptOut),
                ],
                at("2026-11-24T10:00:00Z"),
            )
            .await
            .unwrap();
        assert_eq!(store.count_opted_out().await.unwrap(), 2);
        assert_eq!(store.count_inbound().await.unwrap(), (0, 0));
        store
            .client()
            .await
            .unwrap()
            .batch_execute("INSERT INTO inbound (command) VALUES ('STOP'), (NULL), (NULL)")
            .await
            .unwrap();
        assert_eq!(store.count_inbound().await.unwrap(), (3, 1));
    }
}
