//! Campaigns in SQLite. State changes are compare-and-set (`WHERE status = ?`), so two
//! processes sharing the database cannot both launch, or both pause, the same campaign.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Row, params_from_iter, types::Value as SqlValue};

use super::catalog::list_by_id;
use super::connection::db_error;
use super::{SqliteStore, corrupt, from_millis, millis, query_one, to_json_text};
use crate::domain::{Campaign, CampaignId, CampaignStatus, Topic, Trigger};
use crate::segment::sql::event_name_key;
use crate::store::{CampaignQuery, CampaignStore, Page, PageRequest, StoreError};

pub(super) const SELECT_CAMPAIGNS: &str = "SELECT id, name, topic, template_id, segment_id, trigger, \
     start_at, end_at, rate_limit_per_second, quiet_hours, status, created_at, updated_at, \
     problem FROM campaigns";

pub(super) fn status_text(status: CampaignStatus) -> SqlValue {
    SqlValue::Text(
        serde_json::to_value(status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
    )
}

pub(super) fn campaign_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Campaign, StoreError>> {
    let id: String = row.get(0)?;
    let name: String = row.get(1)?;
    let topic: Option<String> = row.get(2)?;
    let template_id: String = row.get(3)?;
    let segment_id: Option<String> = row.get(4)?;
    let trigger: String = row.get(5)?;
    let (start_at, end_at): (Option<i64>, Option<i64>) = (row.get(6)?, row.get(7)?);
    let rate: Option<i64> = row.get(8)?;
    let quiet_hours: Option<String> = row.get(9)?;
    let status: String = row.get(10)?;
    let (created_at, updated_at): (i64, i64) = (row.get(11)?, row.get(12)?);
    let problem: Option<String> = row.get(13)?;
    Ok((|| {
        Ok(Campaign {
            id: id.parse().map_err(corrupt)?,
            name,
            topic: topic
                .as_deref()
                .map(Topic::parse)
                .transpose()
                .map_err(corrupt)?,
            template_id: template_id.parse().map_err(corrupt)?,
            segment_id: segment_id.map(|s| s.parse()).transpose().map_err(corrupt)?,
            trigger: serde_json::from_str(&trigger).map_err(corrupt)?,
            schedule: crate::domain::Schedule {
                start_at: start_at.map(from_millis),
                end_at: end_at.map(from_millis),
            },
            rate_limit_per_second: rate.map(|r| r as u32),
            quiet_hours: quiet_hours
                .map(|q| serde_json::from_str(&q))
                .transpose()
                .map_err(corrupt)?,
            status: serde_json::from_value(status.into()).map_err(corrupt)?,
            problem,
            created_at: from_millis(created_at),
            updated_at: from_millis(updated_at),
        })
    })())
}

/// The row's values, in `SELECT_CAMPAIGNS` order plus the trigger's event key last.
fn campaign_values(c: &Campaign) -> Result<Vec<SqlValue>, StoreError> {
    let text = |s: Option<String>| s.map_or(SqlValue::Null, SqlValue::Text);
    let int = |n: Option<i64>| n.map_or(SqlValue::Null, SqlValue::Integer);
    let event_key = match &c.trigger {
        Trigger::Event { event } => Some(event_name_key(event)),
        Trigger::Manual => None,
    };
    Ok(vec![
        SqlValue::Text(c.id.to_string()),
        SqlValue::Text(c.name.clone()),
        text(c.topic.as_ref().map(Topic::to_string)),
        SqlValue::Text(c.template_id.to_string()),
        text(c.segment_id.map(|s| s.to_string())),
        SqlValue::Text(to_json_text(&c.trigger)?),
        int(c.schedule.start_at.map(millis)),
        int(c.schedule.end_at.map(millis)),
        int(c.rate_limit_per_second.map(i64::from)),
        text(c.quiet_hours.as_ref().map(to_json_text).transpose()?),
        status_text(c.status),
        SqlValue::Integer(millis(c.created_at)),
        SqlValue::Integer(millis(c.updated_at)),
        text(event_key),
    ])
}

#[async_trait]
impl CampaignStore for SqliteStore {
    async fn insert_campaign(&self, campaign: &Campaign) -> Result<(), StoreError> {
        let values = campaign_values(campaign)?;
        self.db
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO campaigns (id, name, topic, template_id, segment_id, trigger,
                         start_at, end_at, rate_limit_per_second, quiet_hours, status,
                         created_at, updated_at, trigger_event_key)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    params_from_iter(values),
                )
                .map_err(db_error)?;
                Ok(())
            })
            .await
    }

    async fn update_campaign(
        &self,
        campaign: &Campaign,
        expected: CampaignStatus,
        read_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut values = campaign_values(campaign)?;
        // Reorder for the UPDATE: every column but id and created_at, then the keys.
        let id = values.remove(0);
        values.remove(10); // created_at (index 11 before the id was removed)
        values.push(id);
        values.push(status_text(expected));
        values.push(SqlValue::Integer(millis(read_at)));
        self.db
            .write(move |conn| {
                conn.execute(
                    "UPDATE campaigns SET name = ?, topic = ?, template_id = ?, segment_id = ?,
                         trigger = ?, start_at = ?, end_at = ?, rate_limit_per_second = ?,
                         quiet_hours = ?, status = ?, updated_at = ?, trigger_event_key = ?
                     WHERE id = ? AND status = ? AND updated_at = ?",
                    params_from_iter(values),
                )
                .map(|n| n > 0)
                .map_err(db_error)
            })
            .await
    }

    async fn set_campaign_status(
        &self,
        id: CampaignId,
        from: CampaignStatus,
        to: CampaignStatus,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let values = [
            status_text(to),
            SqlValue::Integer(millis(now)),
            SqlValue::Text(id.to_string()),
            status_text(from),
        ];
        self.db
            .write(move |conn| {
                conn.execute(
                    "UPDATE campaigns SET status = ?, updated_at = ? WHERE id = ? AND status = ?",
                    params_from_iter(values),
                )
                .map(|n| n > 0)
                .map_err(db_error)
            })
            .await
    }

    async fn set_campaign_problem(
        &self,
        id: CampaignId,
        problem: Option<String>,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |conn| {
                conn.execute(
                    "UPDATE campaigns SET problem = ? WHERE id = ?",
                    rusqlite::params![problem, id.to_string()],
                )
                .map(|_| ())
                .map_err(db_error)
            })
            .await
    }

    async fn get_campaign(&self, id: CampaignId) -> Result<Option<Campaign>, StoreError> {
        self.db
            .read(move |conn| {
                let sql = format!("{SELECT_CAMPAIGNS} WHERE id = ?");
                query_one(conn, &sql, id.to_string(), campaign_from_row)
            })
            .await
    }

    async fn list_campaigns(
        &self,
        query: &CampaignQuery,
        page: &PageRequest,
    ) -> Result<Page<Campaign>, StoreError> {
        let (query, page) = (query.clone(), page.clone());
        self.db
            .read(move |conn| {
                let filters = query
                    .status
                    .map(|status| ("status = ?", status_text(status)))
                    .into_iter()
                    .collect();
                list_by_id(
                    conn,
                    SELECT_CAMPAIGNS,
                    &["name"],
                    query.q.as_deref(),
                    filters,
                    &page,
                    campaign_from_row,
                    |c| c.id.to_string(),
                )
            })
            .await
    }

    async fn delete_campaign(
        &self,
        id: CampaignId,
        expected: CampaignStatus,
    ) -> Result<bool, StoreError> {
        let values = [SqlValue::Text(id.to_string()), status_text(expected)];
        self.db
            .write(move |conn| {
                conn.execute(
                    "DELETE FROM campaigns WHERE id = ? AND status = ?",
                    params_from_iter(values),
                )
                .map(|n| n > 0)
                .map_err(db_error)
            })
            .await
    }
}
