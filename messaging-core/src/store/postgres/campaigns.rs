//! Campaigns in PostgreSQL. State changes are compare-and-set in one statement (`UPDATE …
//! WHERE id = $1 AND status = $2`), so of any number of processes launching, or pausing, the
//! same campaign at once exactly one changes it; an edit also names the `updated_at` it read,
//! so of two concurrent edits one wins.
//!
//! The trigger and quiet hours are `jsonb` in their API shapes; an event trigger's name is
//! also kept as its key (`trigger_event_key`, [`event_name_key`]), indexed, which is how
//! recording an event finds the campaigns listening for it. Campaigns are listed oldest first
//! by their time-ordered `uuid`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use tokio_postgres::types::Json;

use super::catalog::{Conditions, execute, get, list_by_id, query_one};
use super::{PgStore, corrupt, ts};
use crate::domain::{Campaign, CampaignId, CampaignStatus, Schedule, Topic, Trigger};
use crate::segment::sql::event_name_key;
use crate::store::{CampaignQuery, CampaignStore, Page, PageRequest, StoreError};

/// This module's tables, part of the first migration.
pub(super) const SCHEMA: &str = r#"
CREATE TABLE campaigns (
    id                    uuid PRIMARY KEY,
    name                  text NOT NULL,
    topic                 text,
    template_id           uuid NOT NULL REFERENCES templates (id),
    segment_id            uuid REFERENCES segments (id),
    trigger               jsonb NOT NULL,
    trigger_event_key     text COLLATE "C",
    start_at              timestamptz,
    end_at                timestamptz,
    rate_limit_per_second bigint,
    quiet_hours           jsonb,
    status                text NOT NULL,
    problem               text,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL
);
CREATE INDEX campaigns_by_status ON campaigns (status);
CREATE INDEX campaigns_by_trigger ON campaigns (trigger_event_key)
    WHERE trigger_event_key IS NOT NULL;
"#;

/// Every column of a campaign, in the order [`campaign_from_row`] reads them.
pub(super) const SELECT_CAMPAIGNS: &str = "SELECT id, name, topic, template_id, segment_id, \
     trigger, start_at, end_at, rate_limit_per_second, quiet_hours, status, created_at, \
     updated_at, problem FROM campaigns";

/// A state as stored (its `as_str` name).
pub(super) fn status_from_text(text: &str) -> Result<CampaignStatus, StoreError> {
    CampaignStatus::ALL
        .into_iter()
        .find(|status| status.as_str() == text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown campaign status {text:?}")))
}

/// Reads a campaign selected with [`SELECT_CAMPAIGNS`].
pub(super) fn campaign_from_row(row: &Row) -> Result<Campaign, StoreError> {
    let topic: Option<String> = get(row, 2)?;
    let segment_id: Option<uuid::Uuid> = get(row, 4)?;
    let Json(trigger) = get(row, 5)?;
    let rate: Option<i64> = get(row, 8)?;
    let quiet_hours: Option<Json<_>> = get(row, 9)?;
    let status: String = get(row, 10)?;
    Ok(Campaign {
        id: CampaignId(get(row, 0)?),
        name: get(row, 1)?,
        topic: topic
            .as_deref()
            .map(Topic::parse)
            .transpose()
            .map_err(corrupt)?,
        template_id: crate::domain::TemplateId(get(row, 3)?),
        segment_id: segment_id.map(crate::domain::SegmentId),
        trigger,
        schedule: Schedule {
            start_at: get(row, 6)?,
            end_at: get(row, 7)?,
        },
        rate_limit_per_second: rate.map(u32::try_from).transpose().map_err(corrupt)?,
        quiet_hours: quiet_hours.map(|Json(q)| q),
        status: status_from_text(&status)?,
        problem: get(row, 13)?,
        created_at: get(row, 11)?,
        updated_at: get(row, 12)?,
    })
}

/// The key an event-triggered campaign is found by.
fn trigger_event_key(campaign: &Campaign) -> Option<String> {
    match &campaign.trigger {
        Trigger::Event { event } => Some(event_name_key(event)),
        Trigger::Manual => None,
    }
}

#[async_trait]
impl CampaignStore for PgStore {
    async fn insert_campaign(&self, campaign: &Campaign) -> Result<(), StoreError> {
        let c = campaign;
        execute(
            self,
            "INSERT INTO campaigns (id, name, topic, template_id, segment_id, trigger,
                 trigger_event_key, start_at, end_at, rate_limit_per_second, quiet_hours, status,
                 problem, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            &[
                &c.id.0,
                &c.name,
                &c.topic.as_ref().map(Topic::as_str),
                &c.template_id.0,
                &c.segment_id.map(|s| s.0),
                &Json(&c.trigger),
                &trigger_event_key(c),
                &c.schedule.start_at.map(ts),
                &c.schedule.end_at.map(ts),
                &c.rate_limit_per_second.map(i64::from),
                &c.quiet_hours.as_ref().map(Json),
                &c.status.as_str(),
                &c.problem,
                &ts(c.created_at),
                &ts(c.updated_at),
            ],
        )
        .await?;
        Ok(())
    }

    async fn update_campaign(
        &self,
        campaign: &Campaign,
        expected: CampaignStatus,
        read_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let c = campaign;
        let changed = execute(
            self,
            "UPDATE campaigns SET name = $2, topic = $3, template_id = $4, segment_id = $5,
                 trigger = $6, trigger_event_key = $7, start_at = $8, end_at = $9,
                 rate_limit_per_second = $10, quiet_hours = $11, status = $12, updated_at = $13
             WHERE id = $1 AND status = $14 AND updated_at = $15",
            &[
                &c.id.0,
                &c.name,
                &c.topic.as_ref().map(Topic::as_str),
                &c.template_id.0,
                &c.segment_id.map(|s| s.0),
                &Json(&c.trigger),
                &trigger_event_key(c),
                &c.schedule.start_at.map(ts),
                &c.schedule.end_at.map(ts),
                &c.rate_limit_per_second.map(i64::from),
                &c.quiet_hours.as_ref().map(Json),
                &c.status.as_str(),
                &ts(c.updated_at),
                &expected.as_str(),
                &ts(read_at),
            ],
        )
        .await?;
        Ok(changed > 0)
    }

    async fn set_campaign_status(
        &self,
        id: CampaignId,
        from: CampaignStatus,
        to: CampaignStatus,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let changed = execute(
            self,
            "UPDATE campaigns SET status = $3, updated_at = $4 WHERE id = $1 AND status = $2",
            &[&id.0, &from.as_str(), &to.as_str(), &ts(now)],
        )
        .await?;
        Ok(changed > 0)
    }

    async fn set_campaign_problem(
        &self,
        id: CampaignId,
        problem: Option<String>,
    ) -> Result<(), StoreError> {
        execute(
            self,
            "UPDATE campaigns SET problem = $2 WHERE id = $1",
            &[&id.0, &problem],
        )
        .await?;
        Ok(())
    }

    async fn get_campaign(&self, id: CampaignId) -> Result<Option<Campaign>, StoreError> {
        let sql = format!("{SELECT_CAMPAIGNS} WHERE id = $1");
        query_one(self, &sql, &id.0, campaign_from_row).await
    }

    async fn list_campaigns(
        &self,
        query: &CampaignQuery,
        page: &PageRequest,
    ) -> Result<Page<Campaign>, StoreError> {
        let mut conditions = Conditions::default();
        if let Some(status) = query.status {
            let p = conditions.bind(status.as_str());
            conditions.and(format!("status = {p}"));
        }
        list_by_id(
            self,
            SELECT_CAMPAIGNS,
            &["name"],
            query.q.as_deref(),
            conditions,
            page,
            campaign_from_row,
            |c| c.id.to_string(),
        )
        .await
    }

    async fn delete_campaign(
        &self,
        id: CampaignId,
        expected: CampaignStatus,
    ) -> Result<bool, StoreError> {
        let deleted = execute(
            self,
            "DELETE FROM campaigns WHERE id = $1 AND status = $2",
            &[&id.0, &expected.as_str()],
        )
        .await?;
        Ok(deleted > 0)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveTime, TimeDelta};

    use super::*;
    use crate::domain::QuietHours;
    use crate::store::TemplateStore;
    use crate::store::postgres::catalog::tests::{at, campaign, template};

    #[tokio::test]
    async fn campaigns_read_back_whole_and_change_only_from_the_state_read() {
        let (store, _database) = super::super::scratch().await;
        let t = template("Hello", "Hi");
        store.insert_template(&t).await.unwrap();
        let mut c = campaign(t.id, None);
        c.topic = Some(Topic::parse("dance").unwrap());
        c.trigger = Trigger::Event {
            event: "Dance Festival".into(),
        };
        c.schedule.start_at = Some(at("2026-11-25T08:00:00.5555Z"));
        c.rate_limit_per_second = Some(10);
        c.quiet_hours = Some(QuietHours {
            start: NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(7, 0, 0).unwrap(),
        });
        store.insert_campaign(&c).await.unwrap();
        c.schedule.start_at = c.schedule.start_at.map(ts);
        assert_eq!(store.get_campaign(c.id).await.unwrap(), Some(c.clone()));

        // An edit names the state and the time it read.
        let read_at = c.updated_at;
        let mut edit = c.clone();
        edit.name = "Festival (Colombo)".into();
        edit.updated_at = read_at + TimeDelta::minutes(1);
        assert!(
            !store
                .update_campaign(&edit, CampaignStatus::Running, read_at)
                .await
                .unwrap()
        );
        let stale = read_at - TimeDelta::seconds(1);
        assert!(
            !store
                .update_campaign(&edit, CampaignStatus::Draft, stale)
                .await
                .unwrap()
        );
        assert!(
            store
                .update_campaign(&edit, CampaignStatus::Draft, read_at)
                .await
                .unwrap()
        );
        assert_eq!(store.get_campaign(c.id).await.unwrap(), Some(edit.clone()));

        let (draft, running) = (CampaignStatus::Draft, CampaignStatus::Running);
        let now = edit.updated_at + TimeDelta::minutes(1);
        assert!(
            store
                .set_campaign_status(c.id, draft, running, now)
                .await
                .unwrap()
        );
        assert!(
            !store
                .set_campaign_status(c.id, draft, running, now)
                .await
                .unwrap()
        );
        store
            .set_campaign_problem(c.id, Some("its segment is gone".into()))
            .await
            .unwrap();
        let stored = store.get_campaign(c.id).await.unwrap().unwrap();
        assert_eq!(
            (stored.status, stored.problem.as_deref(), stored.updated_at),
            (running, Some("its segment is gone"), now)
        );

        let query = CampaignQuery {
            status: Some(running),
            q: Some("COLOMBO".into()),
        };
        let listed = store
            .list_campaigns(&query, &PageRequest::default())
            .await
            .unwrap();
        assert_eq!(listed.items, [stored]);
        assert!(!store.delete_campaign(c.id, draft).await.unwrap());
        assert!(store.delete_campaign(c.id, running).await.unwrap());
        assert_eq!(store.get_campaign(c.id).await.unwrap(), None);
    }
}
