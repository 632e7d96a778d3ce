//! Templates and segments in PostgreSQL, and audience queries over users.
//!
//! Templates and segments are rows keyed by their time-ordered `uuid`, listed oldest first by
//! it (a `uuid` compares as its bytes, so the order is the SQLite adapter's order of the id
//! text); a page's cursor is the last id seen. A segment's rule is `jsonb`, read back through
//! [`SegmentRule::parse_stored`]. A template or segment a campaign still refers to is kept: the
//! foreign key refuses the delete, answered as [`StoreError::InUse`].
//!
//! Free-text search matches the way the SQLite adapter's does: the text anywhere in the
//! column, ASCII letters without regard to case (`lower` under `COLLATE "C"` folds ASCII
//! only, as SQLite's `lower` does), `%` and `_` literal (`strpos`, not `LIKE`).
//!
//! An audience is the rule compiled with the [`Postgres`] dialect (see
//! [`crate::segment::sql`]) as the `WHERE` of a query over `users u`, counted, or read a page
//! at a time in phone order (`COLLATE "C"`, byte order, the order of the users' primary key,
//! so a page after a cursor is a range of it), each user read as the users part reads them
//! ([`USER_COLUMNS`], topics gathered by a subquery). Audience statements are prepared
//! unnamed (not cached): each rule is its own text, and PostgreSQL plans it with the rule's
//! values at hand, which lets it judge whether the attributes' GIN index (`users_attributes`,
//! `jsonb_path_ops`, the users part's) is worth reading: for a value a few users have it
//! is, for one a twentieth of them have a scan is cheaper, and a page walks the primary key
//! in phone order, stopping at the page's end.
//!
//! The helpers for lists (a query's conditions and parameters, `LIMIT`/`OFFSET` with the one
//! extra row that tells whether another page follows, id cursors) are shared with the other
//! modules of this part (campaigns, events, inbound).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{Json, ToSql};
use uuid::Uuid;

use super::users::{USER_COLUMNS, into_page, user_from_row};
use super::{PgStore, corrupt, pg_error, ts};
use crate::domain::{Segment, SegmentId, Template, TemplateId, User};
use crate::segment::SegmentRule;
use crate::segment::sql::Postgres;
use crate::store::{Page, PageRequest, SegmentStore, StoreError, TemplateStore};

/// This module's tables, part of the first migration.
pub(super) const SCHEMA: &str = r#"
CREATE TABLE templates (
    id                uuid PRIMARY KEY,
    name              text NOT NULL,
    content           text NOT NULL,
    channel           text NOT NULL,
    locale            text,
    content_sid       text,
    content_variables jsonb,
    placeholders      jsonb NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);

CREATE TABLE segments (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    rule       jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
"#;

const TEMPLATE_COLUMNS: &str = "id, name, content, channel, locale, content_sid, \
     content_variables, placeholders, created_at, updated_at";

const SELECT_SEGMENTS: &str = "SELECT id, name, rule, created_at, updated_at FROM segments";

/// A parameter of a statement built at run time.
pub(super) type Param = Box<dyn ToSql + Sync + Send>;

/// The conditions of a list query and their parameters, numbered as they are added.
#[derive(Default)]
pub(super) struct Conditions {
    conditions: Vec<String>,
    params: Vec<Param>,
}

impl Conditions {
    /// Conditions whose placeholders follow `params` (those of a compiled predicate).
    fn after(params: Vec<Param>) -> Self {
        Self {
            conditions: Vec::new(),
            params,
        }
    }

    /// Binds a value and answers its placeholder (`$3`).
    pub(super) fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    /// Adds a condition (its placeholders bound with [`bind`](Self::bind)).
    pub(super) fn and(&mut self, condition: impl Into<String>) {
        self.conditions.push(condition.into());
    }

    /// `WHERE …` of every condition, or nothing.
    fn where_clause(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conditions.join(" AND "))
        }
    }

    /// Adds the condition that one of `columns` contains `q` (ASCII letters compared without
    /// regard to case), as the SQLite adapter's search does; `false` when no stored text can
    /// hold `q` (it has a NUL character), so the list is empty.
    pub(super) fn search(&mut self, columns: &[&str], q: Option<&str>) -> bool {
        let Some(q) = q.map(str::trim).filter(|q| !q.is_empty()) else {
            return true;
        };
        if q.contains('\0') {
            return false;
        }
        let p = self.bind(q.to_ascii_lowercase());
        let any: Vec<String> = columns
            .iter()
            .map(|column| format!("strpos(lower({column} COLLATE \"C\"), {p}) > 0"))
            .collect();
        self.and(format!("({})", any.join(" OR ")));
        true
    }

    /// The parameters, as a statement takes them.
    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// A cursor that is an id (a `uuid`), or why it is not one.
pub(super) fn id_cursor(page: &PageRequest) -> Result<Option<Uuid>, StoreError> {
    page.cursor
        .as_deref()
        .map(|cursor| {
            Uuid::parse_str(cursor.trim()).map_err(|_| StoreError::InvalidCursor(cursor.to_owned()))
        })
        .transpose()
}

/// Appends `LIMIT`/`OFFSET` for a page: one extra row, to tell whether another page follows;
/// an offset only without a cursor.
fn page_clause(page: &PageRequest, conditions: &mut Conditions) -> String {
    let limit = conditions.bind(i64::from(page.clamped_limit()) + 1);
    match (page.cursor.is_none(), page.offset) {
        (true, Some(offset)) => {
            let offset = conditions.bind(offset.min(i64::MAX as u64) as i64);
            format!(" LIMIT {limit} OFFSET {offset}")
        }
        _ => format!(" LIMIT {limit}"),
    }
}

/// Reads one page of `select` under `conditions`, ordered by `order`.
pub(super) async fn query_page<T>(
    store: &PgStore,
    select: &str,
    mut conditions: Conditions,
    order: &str,
    page: &PageRequest,
    from_row: fn(&Row) -> Result<T, StoreError>,
    cursor_of: fn(&T) -> String,
) -> Result<Page<T>, StoreError> {
    let mut sql = format!("{select}{} ORDER BY {order}", conditions.where_clause());
    sql.push_str(&page_clause(page, &mut conditions));
    let client = store.client().await?;
    let statement = client.prepare_cached(&sql).await.map_err(pg_error)?;
    let rows = client
        .query(&statement, &conditions.params())
        .await
        .map_err(pg_error)?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(into_page(items, page.clamped_limit(), cursor_of))
}

/// Lists rows oldest first by their time-ordered `id`, after the page's cursor, optionally
/// those whose `search_columns` contain `q`, under `conditions` already given.
#[allow(clippy::too_many_arguments)]
pub(super) async fn list_by_id<T>(
    store: &PgStore,
    select: &str,
    search_columns: &[&str],
    q: Option<&str>,
    mut conditions: Conditions,
    page: &PageRequest,
    from_row: fn(&Row) -> Result<T, StoreError>,
    id_of: fn(&T) -> String,
) -> Result<Page<T>, StoreError> {
    if let Some(cursor) = id_cursor(page)? {
        let p = conditions.bind(cursor);
        conditions.and(format!("id > {p}"));
    }
    if !conditions.search(search_columns, q) {
        return Ok(Page {
            items: Vec::new(),
            next_cursor: None,
        });
    }
    query_page(store, select, conditions, "id", page, from_row, id_of).await
}

/// Reads one row by its key with a cached statement.
pub(super) async fn query_one<T>(
    store: &PgStore,
    sql: &str,
    key: &(dyn ToSql + Sync),
    from_row: fn(&Row) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let client = store.client().await?;
    let statement = client.prepare_cached(sql).await.map_err(pg_error)?;
    let row = client
        .query_opt(&statement, &[key])
        .await
        .map_err(pg_error)?;
    row.as_ref().map(from_row).transpose()
}

/// Runs a statement with a cached plan; answers how many rows it changed.
pub(super) async fn execute(
    store: &PgStore,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, StoreError> {
    let client = store.client().await?;
    let statement = client.prepare_cached(sql).await.map_err(pg_error)?;
    client.execute(&statement, params).await.map_err(pg_error)
}

/// Runs `DELETE … WHERE id = $1`; whether a row went. A row still referred to is kept and
/// answered as [`StoreError::InUse`].
async fn delete_by_id(store: &PgStore, sql: &str, id: Uuid) -> Result<bool, StoreError> {
    match execute(store, sql, &[&id]).await {
        Ok(deleted) => Ok(deleted > 0),
        Err(StoreError::Database {
            cause: Some(cause), ..
        }) if cause
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(tokio_postgres::Error::code)
            == Some(&SqlState::FOREIGN_KEY_VIOLATION) =>
        {
            Err(StoreError::InUse(id.to_string()))
        }
        Err(error) => Err(error),
    }
}

/// Reads a column, a value that does not fit its type being corrupt data.
pub(super) fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    column: usize,
) -> Result<T, StoreError> {
    row.try_get(column).map_err(corrupt)
}

fn template_from_row(row: &Row) -> Result<Template, StoreError> {
    let channel: String = get(row, 3)?;
    let variables: Option<Json<_>> = get(row, 6)?;
    let Json(placeholders) = get(row, 7)?;
    Ok(Template {
        id: TemplateId(get(row, 0)?),
        name: get(row, 1)?,
        content: get(row, 2)?,
        channel: serde_json::from_value(channel.into()).map_err(corrupt)?,
        locale: get(row, 4)?,
        content_sid: get(row, 5)?,
        content_variables: variables.map(|Json(v)| v),
        placeholders,
        created_at: get(row, 8)?,
        updated_at: get(row, 9)?,
    })
}

fn segment_from_row(row: &Row) -> Result<Segment, StoreError> {
    let rule: serde_json::Value = get(row, 2)?;
    Ok(Segment {
        id: SegmentId(get(row, 0)?),
        name: get(row, 1)?,
        rule: SegmentRule::parse_stored(&rule).map_err(corrupt)?,
        created_at: get(row, 3)?,
        updated_at: get(row, 4)?,
    })
}

/// The rule as a predicate over `users u` and its parameters; the caller's own parameters
/// are numbered after them.
fn audience_predicate(rule: &SegmentRule, now: DateTime<Utc>) -> (String, Conditions) {
    let predicate = rule.to_sql(&Postgres, now);
    let params = predicate
        .params
        .into_iter()
        .map(|param| Box::new(param) as Param)
        .collect();
    (predicate.sql, Conditions::after(params))
}

#[async_trait]
impl TemplateStore for PgStore {
    async fn insert_template(&self, template: &Template) -> Result<(), StoreError> {
        let t = template;
        execute(
            self,
            &format!(
                "INSERT INTO templates ({TEMPLATE_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ),
            &[
                &t.id.0,
                &t.name,
                &t.content,
                &"whatsapp",
                &t.locale,
                &t.content_sid,
                &t.content_variables.as_ref().map(Json),
                &Json(&t.placeholders),
                &ts(t.created_at),
                &ts(t.updated_at),
            ],
        )
        .await?;
        Ok(())
    }

    async fn update_template(&self, template: &Template) -> Result<bool, StoreError> {
        let t = template;
        let changed = execute(
            self,
            "UPDATE templates SET name = $2, content = $3, channel = $4, locale = $5,
                 content_sid = $6, content_variables = $7, placeholders = $8, updated_at = $9
             WHERE id = $1",
            &[
                &t.id.0,
                &t.name,
                &t.content,
                &"whatsapp",
                &t.locale,
                &t.content_sid,
                &t.content_variables.as_ref().map(Json),
                &Json(&t.placeholders),
                &ts(t.updated_at),
            ],
        )
        .await?;
        Ok(changed > 0)
    }

    async fn get_template(&self, id: TemplateId) -> Result<Option<Template>, StoreError> {
        let sql = format!("SELECT {TEMPLATE_COLUMNS} FROM templates WHERE id = $1");
        query_one(self, &sql, &id.0, template_from_row).await
    }

    async fn list_templates(
        &self,
        q: Option<String>,
        page: &PageRequest,
    ) -> Result<Page<Template>, StoreError> {
        list_by_id(
            self,
            &format!("SELECT {TEMPLATE_COLUMNS} FROM templates"),
            &["name", "content"],
            q.as_deref(),
            Conditions::default(),
            page,
            template_from_row,
            |t| t.id.to_string(),
        )
        .await
    }

    async fn delete_template(&self, id: TemplateId) -> Result<bool, StoreError> {
        delete_by_id(self, "DELETE FROM templates WHERE id = $1", id.0).await
    }
}

#[async_trait]
impl SegmentStore for PgStore {
    async fn insert_segment(&self, segment: &Segment) -> Result<(), StoreError> {
        let s = segment;
        execute(
            self,
            "INSERT INTO segments (id, name, rule, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &s.id.0,
                &s.name,
                &Json(&s.rule),
                &ts(s.created_at),
                &ts(s.updated_at),
            ],
        )
        .await?;
        Ok(())
    }

    async fn update_segment(&self, segment: &Segment) -> Result<bool, StoreError> {
        let s = segment;
        let changed = execute(
            self,
            "UPDATE segments SET name = $2, rule = $3, updated_at = $4 WHERE id = $1",
            &[&s.id.0, &s.name, &Json(&s.rule), &ts(s.updated_at)],
        )
        .await?;
        Ok(changed > 0)
    }

    async fn get_segment(&self, id: SegmentId) -> Result<Option<Segment>, StoreError> {
        let sql = format!("{SELECT_SEGMENTS} WHERE id = $1");
        query_one(self, &sql, &id.0, segment_from_row).await
    }

    async fn list_segments(
        &self,
        q: Option<String>,
        page: &PageRequest,
    ) -> Result<Page<Segment>, StoreError> {
        list_by_id(
            self,
            SELECT_SEGMENTS,
            &["name"],
            q.as_deref(),
            Conditions::default(),
            page,
            segment_from_row,
            |s| s.id.to_string(),
        )
        .await
    }

    async fn delete_segment(&self, id: SegmentId) -> Result<bool, StoreError> {
        delete_by_id(self, "DELETE FROM segments WHERE id = $1", id.0).await
    }

    async fn count_audience(
        &self,
        rule: &SegmentRule,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let (predicate, conditions) = audience_predicate(rule, now);
        let sql = format!("SELECT COUNT(*) FROM users u WHERE {predicate}");
        let client = self.client().await?;
        let count: i64 = client
            .query_one(&sql, &conditions.params())
            .await
            .map_err(pg_error)?
            .get(0);
        Ok(count as u64)
    }

    async fn audience(
        &self,
        rule: &SegmentRule,
        now: DateTime<Utc>,
        page: &PageRequest,
    ) -> Result<Page<User>, StoreError> {
        let (predicate, mut conditions) = audience_predicate(rule, now);
        conditions.and(format!("({predicate})"));
        if let Some(cursor) = &page.cursor {
            let p = conditions.bind(cursor.clone());
            conditions.and(format!("u.phone COLLATE \"C\" > {p}"));
        }
        let mut sql = format!(
            "SELECT {USER_COLUMNS} FROM users u{} ORDER BY u.phone COLLATE \"C\"",
            conditions.where_clause()
        );
        sql.push_str(&page_clause(page, &mut conditions));
        let client = self.client().await?;
        let rows = client
            .query(&sql, &conditions.params())
            .await
            .map_err(pg_error)?;
        let users = rows.iter().map(user_from_row).collect::<Result<_, _>>()?;
        Ok(into_page(users, page.clamped_limit(), |u| {
            u.phone.to_string()
        }))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use chrono::TimeDelta;
    use serde_json::json;

    use super::*;
    use crate::domain::{Campaign, CampaignStatus, Channel, Schedule, Topic, Trigger};
    use crate::store::CampaignStore;

    pub(in super::super) fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    pub(in super::super) fn template(name: &str, content: &str) -> Template {
        let now = at("2026-11-24T10:00:00.123456Z");
        Template {
            id: TemplateId::new(),
            name: name.into(),
            content: content.into(),
            channel: Channel::Whatsapp,
            locale: Some("en".into()),
            content_sid: None,
            content_variables: Some([("1".to_owned(), "{{name}}".to_owned())].into()),
            placeholders: vec!["name".into()],
            created_at: now,
            updated_at: now,
        }
    }

    pub(in super::super) fn campaign(template: TemplateId, segment: Option<SegmentId>) -> Campaign {
        let now = at("2026-11-24T10:00:00Z");
        Campaign {
            id: CampaignId::new(),
            name: "Festival".into(),
            topic: None,
            template_id: template,
            segment_id: segment,
            trigger: Trigger::Manual,
            schedule: Schedule::default(),
            rate_limit_per_second: None,
            quiet_hours: None,
            status: CampaignStatus::Draft,
            problem: None,
            created_at: now,
            updated_at: now,
        }
    }

    use crate::domain::CampaignId;

    #[tokio::test]
    async fn templates_read_back_as_written_to_the_millisecond() {
        let (store, _database) = super::super::scratch().await;
        let mut written = template("Hello", "Hi {{ name }}");
        store.insert_template(&written).await.unwrap();
        let stored = store.get_template(written.id).await.unwrap().unwrap();
        written.created_at = ts(written.created_at);
        written.updated_at = ts(written.updated_at);
        assert_eq!(stored, written);

        written.content = "Bye {{ name }}".into();
        written.content_variables = None;
        written.updated_at = ts(written.updated_at + TimeDelta::seconds(5));
        assert!(store.update_template(&written).await.unwrap());
        assert_eq!(
            store.get_template(written.id).await.unwrap().unwrap(),
            written
        );
        assert!(!store.update_template(&template("x", "y")).await.unwrap());
        assert_eq!(store.get_template(TemplateId::new()).await.unwrap(), None);
    }

    #[tokio::test]
    async fn lists_search_like_sqlite_and_page_by_id() {
        let (store, _database) = super::super::scratch().await;
        let names = [
            "Summer SALE",
            "50% off",
            "50 percent",
            "Été",
            "été",
            "plain",
        ];
        let mut ids = Vec::new();
        for name in names {
            let t = template(name, "body");
            ids.push(t.id);
            store.insert_template(&t).await.unwrap();
        }
        let found = |q: &'static str| {
            let store = store.clone();
            async move {
                store
                    .list_templates(Some(q.into()), &PageRequest::default())
                    .await
                    .unwrap()
                    .items
                    .into_iter()
                    .map(|t| t.name)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(found("sale").await, ["Summer SALE"]);
        assert_eq!(found("%").await, ["50% off"]);
        assert_eq!(found("0_").await, Vec::<String>::new());
        // ASCII letters only compare without regard to case, as in SQLite.
        assert_eq!(found("été").await, ["été"]);
        assert_eq!(found("ÉTÉ").await, Vec::<String>::new());
        assert_eq!(found("a\0b").await, Vec::<String>::new());
        assert_eq!(found("BODY").await.len(), names.len());

        let mut page = PageRequest::first(4);
        let mut seen = Vec::new();
        loop {
            let listed = store.list_templates(None, &page).await.unwrap();
            seen.extend(listed.items.iter().map(|t| t.id));
            match listed.next_cursor {
                Some(cursor) => page.cursor = Some(cursor),
                None => break,
            }
        }
        assert_eq!(seen, ids, "oldest first, each once");
        let skipped = PageRequest {
            offset: Some(5),
            ..PageRequest::first(4)
        };
        let last = store.list_templates(None, &skipped).await.unwrap();
        assert_eq!(last.items.len(), 1);
        let bad = PageRequest {
            cursor: Some("not an id".into()),
            ..PageRequest::default()
        };
        assert!(matches!(
            store.list_templates(None, &bad).await,
            Err(StoreError::InvalidCursor(_))
        ));
    }

    #[tokio::test]
    async fn what_a_campaign_uses_is_kept() {
        let (store, _database) = super::super::scratch().await;
        let t = template("Hello", "Hi");
        store.insert_template(&t).await.unwrap();
        let now = at("2026-11-24T10:00:00Z");
        let segment = Segment {
            id: SegmentId::new(),
            name: "Colombo".into(),
            rule: SegmentRule::parse(
                &json!({"attributes.city": "Colombo", "attributes.age": 30.0}),
            )
            .unwrap(),
            created_at: now,
            updated_at: now,
        };
        store.insert_segment(&segment).await.unwrap();
        assert_eq!(
            store.get_segment(segment.id).await.unwrap().unwrap(),
            segment
        );
        store
            .insert_campaign(&campaign(t.id, Some(segment.id)))
            .await
            .unwrap();
        assert!(matches!(
            store.delete_template(t.id).await,
            Err(StoreError::InUse(id)) if id == t.id.to_string()
        ));
        assert!(matches!(
            store.delete_segment(segment.id).await,
            Err(StoreError::InUse(_))
        ));
        assert!(!store.delete_segment(SegmentId::new()).await.unwrap());
        let listed = store
            .list_segments(Some("colo".into()), &PageRequest::default())
            .await
            .unwrap();
        assert_eq!(listed.items, [segment]);
    }

    #[tokio::test]
    async fn an_audience_pages_in_phone_order_with_each_users_topics() {
        let (store, _database) = super::super::scratch().await;
        let client = store.client().await.unwrap();
        for (phone, city) in [
            ("+94770000003", "Colombo"),
            ("+14155550100", "Colombo"),
            ("+94770000001", "Kandy"),
            ("+4915112345107", "Colombo"),
        ] {
            client
                .execute(
                    "INSERT INTO users (phone, consent_state, attributes, created_at, updated_at)
                     VALUES ($1, 'OPT_IN', $2, now(), now())",
                    &[&phone, &Json(json!({"city": city}))],
                )
                .await
                .unwrap();
        }
        for (phone, topic) in [
            ("+14155550100", "B_1"),
            ("+14155550100", "BA"),
            ("+14155550100", "B-2"),
        ] {
            client
                .execute(
                    "INSERT INTO subscriptions (phone, topic, created_at) VALUES ($1, $2, now())",
                    &[&phone, &topic],
                )
                .await
                .unwrap();
        }
        let rule = SegmentRule::parse(&json!({"attributes.city": "Colombo"})).unwrap();
        let now = at("2026-11-24T10:00:00Z");
        assert_eq!(store.count_audience(&rule, now).await.unwrap(), 3);
        let first = store
            .audience(&rule, now, &PageRequest::first(2))
            .await
            .unwrap();
        let phones: Vec<_> = first.items.iter().map(|u| u.phone.to_string()).collect();
        assert_eq!(phones, ["+14155550100", "+4915112345107"]);
        let topics: Vec<_> = first.items[0].topics.iter().map(Topic::as_str).collect();
        assert_eq!(topics, ["B-2", "BA", "B_1"], "in byte order");
        let next = PageRequest {
            cursor: first.next_cursor.clone(),
            ..PageRequest::first(2)
        };
        let second = store.audience(&rule, now, &next).await.unwrap();
        let phones: Vec<_> = second.items.iter().map(|u| u.phone.to_string()).collect();
        assert_eq!(phones, ["+94770000003"]);
        assert_eq!(second.next_cursor, None);
        let everyone = SegmentRule::everyone();
        assert_eq!(store.count_audience(&everyone, now).await.unwrap(), 4);
    }
}
