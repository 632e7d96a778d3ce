//! Templates and segments in SQLite, and audience queries over users.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, Row, params, params_from_iter, types::Value as SqlValue};

use super::connection::db_error;
use super::users::{
    USER_COLUMNS, into_page, page_clause, query_page, query_users, search_text, text_search,
};
use super::{SqliteStore, corrupt, from_millis, millis, query_one, to_json_text};
use crate::domain::{Segment, SegmentId, Template, TemplateId, User};
use crate::segment::SegmentRule;
use crate::segment::sql::Sqlite;
use crate::store::{Page, PageRequest, SegmentStore, StoreError, TemplateStore};

const SELECT_SEGMENTS: &str = "SELECT id, name, rule, created_at, updated_at FROM segments";

const TEMPLATE_COLUMNS: &str = "id, name, content, channel, locale, content_sid, \
     content_variables, placeholders, created_at, updated_at";

fn template_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Template, StoreError>> {
    let id: String = row.get(0)?;
    let channel: String = row.get(3)?;
    let variables: Option<String> = row.get(6)?;
    let placeholders: String = row.get(7)?;
    let (name, content, locale, content_sid) = (row.get(1)?, row.get(2)?, row.get(4)?, row.get(5)?);
    let (created_at, updated_at): (i64, i64) = (row.get(8)?, row.get(9)?);
    Ok((|| {
        Ok(Template {
            id: id.parse().map_err(corrupt)?,
            name,
            content,
            channel: serde_json::from_value(channel.into()).map_err(corrupt)?,
            locale,
            content_sid,
            content_variables: variables
                .map(|v| serde_json::from_str(&v))
                .transpose()
                .map_err(corrupt)?,
            placeholders: serde_json::from_str(&placeholders).map_err(corrupt)?,
            created_at: from_millis(created_at),
            updated_at: from_millis(updated_at),
        })
    })())
}

fn segment_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Segment, StoreError>> {
    let id: String = row.get(0)?;
    let name: String = row.get(1)?;
    let rule: String = row.get(2)?;
    let (created_at, updated_at): (i64, i64) = (row.get(3)?, row.get(4)?);
    Ok((|| {
        Ok(Segment {
            id: id.parse().map_err(corrupt)?,
            name,
            rule: SegmentRule::from_stored_json(&rule).map_err(corrupt)?,
            created_at: from_millis(created_at),
            updated_at: from_millis(updated_at),
        })
    })())
}

/// Lists rows by id (time-ordered UUIDs), optionally filtered by `LIKE` on `search_columns`
/// and by `filters` (a condition with one placeholder and its value).
#[allow(clippy::too_many_arguments)]
pub(super) fn list_by_id<T>(
    conn: &Connection,
    select: &str,
    search_columns: &[&str],
    q: Option<&str>,
    filters: Vec<(&str, SqlValue)>,
    page: &PageRequest,
    from_row: fn(&Row<'_>) -> rusqlite::Result<Result<T, StoreError>>,
    id_of: fn(&T) -> String,
) -> Result<Page<T>, StoreError> {
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    for (condition, value) in filters {
        conditions.push(condition.to_owned());
        params.push(value);
    }
    if let Some(cursor) = &page.cursor {
        conditions.push("id > ?".to_owned());
        params.push(SqlValue::Text(cursor.clone()));
    }
    if let Some(q) = q.map(str::trim).filter(|q| !q.is_empty()) {
        let any: Vec<String> = search_columns
            .iter()
            .map(|column| {
                params.push(search_text(q));
                text_search(column)
            })
            .collect();
        conditions.push(format!("({})", any.join(" OR ")));
    }
    query_page(
        conn, select, conditions, params, "id", page, from_row, id_of,
    )
}

/// Runs a `DELETE … WHERE id = ?`; whether a row went.
fn delete_by_id(conn: &Connection, sql: &str, id: String) -> Result<bool, StoreError> {
    match conn.execute(sql, [&id]) {
        Ok(deleted) => Ok(deleted > 0),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(StoreError::InUse(id))
        }
        Err(e) => Err(db_error(e)),
    }
}

fn template_params(t: &Template) -> Result<[SqlValue; 10], StoreError> {
    let text = |s: &Option<String>| s.clone().map_or(SqlValue::Null, SqlValue::Text);
    Ok([
        SqlValue::Text(t.id.to_string()),
        SqlValue::Text(t.name.clone()),
        SqlValue::Text(t.content.clone()),
        SqlValue::Text("whatsapp".into()),
        text(&t.locale),
        text(&t.content_sid),
        match &t.content_variables {
            Some(vars) => SqlValue::Text(to_json_text(vars)?),
            None => SqlValue::Null,
        },
        SqlValue::Text(to_json_text(&t.placeholders)?),
        SqlValue::Integer(millis(t.created_at)),
        SqlValue::Integer(millis(t.updated_at)),
    ])
}

#[async_trait]
impl TemplateStore for SqliteStore {
    async fn insert_template(&self, template: &Template) -> Result<(), StoreError> {
        let values = template_params(template)?;
        self.db
            .write(move |conn| {
                conn.execute(
                    &format!(
                        "INSERT INTO templates ({TEMPLATE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)"
                    ),
                    params_from_iter(values),
                )
                .map_err(db_error)?;
                Ok(())
            })
            .await
    }

    async fn update_template(&self, template: &Template) -> Result<bool, StoreError> {
        let [
            id,
            name,
            content,
            channel,
            locale,
            content_sid,
            variables,
            placeholders,
            _,
            updated,
        ] = template_params(template)?;
        self.db
            .write(move |conn| {
                conn.execute(
                    "UPDATE templates SET name = ?, content = ?, channel = ?, locale = ?,
                         content_sid = ?, content_variables = ?, placeholders = ?, updated_at = ?
                     WHERE id = ?",
                    params![
                        name,
                        content,
                        channel,
                        locale,
                        content_sid,
                        variables,
                        placeholders,
                        updated,
                        id
                    ],
                )
                .map(|changed| changed > 0)
                .map_err(db_error)
            })
            .await
    }

    async fn get_template(&self, id: TemplateId) -> Result<Option<Template>, StoreError> {
        self.db
            .read(move |conn| {
                let sql = format!("SELECT {TEMPLATE_COLUMNS} FROM templates WHERE id = ?");
                query_one(conn, &sql, id.to_string(), template_from_row)
            })
            .await
    }

    async fn list_templates(
        &self,
        q: Option<String>,
        page: &PageRequest,
    ) -> Result<Page<Template>, StoreError> {
        let page = page.clone();
        self.db
            .read(move |conn| {
                list_by_id(
                    conn,
                    &format!("SELECT {TEMPLATE_COLUMNS} FROM templates"),
                    &["name", "content"],
                    q.as_deref(),
                    Vec::new(),
                    &page,
                    template_from_row,
                    |t| t.id.to_string(),
                )
            })
            .await
    }

    async fn delete_template(&self, id: TemplateId) -> Result<bool, StoreError> {
        self.db
            .write(move |conn| {
                delete_by_id(conn, "DELETE FROM templates WHERE id = ?", id.to_string())
            })
            .await
    }
}

#[async_trait]
impl SegmentStore for SqliteStore {
    async fn insert_segment(&self, segment: &Segment) -> Result<(), StoreError> {
        let rule = to_json_text(&segment.rule)?;
        let s = segment.clone();
        self.db
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO segments (id, name, rule, created_at, updated_at) VALUES (?,?,?,?,?)",
                    params![s.id.to_string(), s.name, rule, millis(s.created_at), millis(s.updated_at)],
                )
                .map_err(db_error)?;
                Ok(())
            })
            .await
    }

    async fn update_segment(&self, segment: &Segment) -> Result<bool, StoreError> {
        let rule = to_json_text(&segment.rule)?;
        let s = segment.clone();
        self.db
            .write(move |conn| {
                conn.execute(
                    "UPDATE segments SET name = ?, rule = ?, updated_at = ? WHERE id = ?",
                    params![s.name, rule, millis(s.updated_at), s.id.to_string()],
                )
                .map(|n| n > 0)
                .map_err(db_error)
            })
            .await
    }

    async fn get_segment(&self, id: SegmentId) -> Result<Option<Segment>, StoreError> {
        self.db
            .read(move |conn| {
                let sql = format!("{SELECT_SEGMENTS} WHERE id = ?");
                query_one(conn, &sql, id.to_string(), segment_from_row)
            })
            .await
    }

    async fn list_segments(
        &self,
        q: Option<String>,
        page: &PageRequest,
    ) -> Result<Page<Segment>, StoreError> {
        let page = page.clone();
        self.db
            .read(move |conn| {
                list_by_id(
                    conn,
                    SELECT_SEGMENTS,
                    &["name"],
                    q.as_deref(),
                    Vec::new(),
                    &page,
                    segment_from_row,
                    |s| s.id.to_string(),
                )
            })
            .await
    }

    async fn delete_segment(&self, id: SegmentId) -> Result<bool, StoreError> {
        self.db
            .write(move |conn| {
                delete_by_id(conn, "DELETE FROM segments WHERE id = ?", id.to_string())
            })
            .await
    }

    async fn count_audience(
        &self,
        rule: &SegmentRule,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let (predicate, predicate_params) = audience_predicate(rule, now)?;
        self.db
            .read(move |conn| {
                let sql = format!("SELECT COUNT(*) FROM users u WHERE {predicate}");
                conn.prepare(&sql)
                    .and_then(|mut s| {
                        s.query_row(params_from_iter(predicate_params), |r| r.get::<_, i64>(0))
                    })
                    .map(|n| n as u64)
                    .map_err(db_error)
            })
            .await
    }

    async fn audience(
        &self,
        rule: &SegmentRule,
        now: DateTime<Utc>,
        page: &PageRequest,
    ) -> Result<Page<User>, StoreError> {
        let (predicate, mut params) = audience_predicate(rule, now)?;
        let page = page.clone();
        self.db
            .read(move |conn| {
                // The predicate's parameters come first; cursor and paging follow it.
                let mut sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE ({predicate})");
                if let Some(cursor) = &page.cursor {
                    sql.push_str(" AND u.phone > ?");
                    params.push(SqlValue::Text(cursor.clone()));
                }
                sql.push_str(" ORDER BY u.phone");
                sql.push_str(&page_clause(&page, &mut params));
                let users = query_users(conn, &sql, params)?;
                Ok(into_page(users, page.clamped_limit(), |u| {
                    u.phone.to_string()
                }))
            })
            .await
    }
}

/// The SQL predicate (over users `u`) and its parameters for a rule.
fn audience_predicate(
    rule: &SegmentRule,
    now: DateTime<Utc>,
) -> Result<(String, Vec<SqlValue>), StoreError> {
    let predicate = rule.to_sql(&Sqlite, now);
    Ok((
        predicate.sql,
        predicate.params.into_iter().map(SqlValue::from).collect(),
    ))
}
