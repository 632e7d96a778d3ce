//! Users and subscriptions in SQLite.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{
    CachedStatement, Connection, Row, Transaction, params, params_from_iter,
    types::Value as SqlValue,
};

use super::connection::{BULK_ROWS, db_error};
use super::{SqliteStore, corrupt, from_millis, millis};
use crate::domain::{
    Consent, PhoneNumber, Subscription, TimeZone, Topic, TopicSummary, UpsertOutcome, User,
    UserUpsert,
};
use crate::store::{Page, PageRequest, StoreError, SubscriptionStore, UserQuery, UserStore};

/// Creates a user; does nothing (zero rows changed) when the phone is already stored. Trying
/// the insert first keeps the common case of an import, new users, to one cheap statement;
/// its row count is also how a create learns, in the same statement, that the phone is taken.
const INSERT_USER: &str = "
    INSERT INTO users (phone, name, wa_id, consent_state, attributes, timezone, locale,
                       created_at, updated_at, revision)
    VALUES (?1, ?2, ?3, COALESCE(?4, 'OPT_IN'), jsonb(?5), ?6, ?7, ?8, ?8, 0)
    ON CONFLICT (phone) DO NOTHING";

/// Merges into a stored user: given fields replace, attributes merge key by key.
const MERGE_USER: &str = "
    UPDATE users SET
        name          = COALESCE(?2, name),
        wa_id         = COALESCE(?3, wa_id),
        consent_state = COALESCE(?4, consent_state),
        attributes    = CASE WHEN ?5 = '{}' THEN attributes ELSE jsonb_patch(attributes, ?5) END,
        timezone      = COALESCE(?6, timezone),
        locale        = COALESCE(?7, locale),
        updated_at    = ?8,
        revision      = revision + 1
    WHERE phone = ?1";

/// Replaces a stored user whole, except consent: a consent not given keeps the stored one, so
/// a replace never opts someone back in by leaving the field out (a new user is `OPT_IN`
/// through [`INSERT_USER`]).
const REPLACE_USER: &str = "
    UPDATE users SET
        name = ?2, wa_id = ?3, consent_state = COALESCE(?4, consent_state),
        attributes = jsonb(?5), timezone = ?6, locale = ?7, updated_at = ?8,
        revision = revision + 1
    WHERE phone = ?1";

const SUBSCRIBE: &str = "
    INSERT INTO subscriptions (phone, topic, created_at) VALUES (?1, ?2, ?3)
    ON CONFLICT (phone, topic) DO NOTHING";

/// The columns every user query selects, in the order [`user_from_row`] reads them.
pub(super) const USER_COLUMNS: &str = "u.phone, u.name, u.wa_id, u.consent_state, json(u.attributes), \
     u.timezone, u.locale, u.last_inbound_at, u.created_at, u.updated_at";

/// Runs one of the user statements ([`INSERT_USER`], [`MERGE_USER`], [`REPLACE_USER`]), which
/// all bind the same parameters, for `user`; answers how many rows it changed.
fn execute_user(
    statement: &mut CachedStatement<'_>,
    user: &UserUpsert,
    now: i64,
) -> Result<usize, StoreError> {
    let UserUpsert { phone, changes } = user;
    statement
        .execute(params![
            phone.as_str(),
            changes.name,
            changes.wa_id,
            changes.consent_state.map(Consent::as_str),
            changes.attributes.as_json(),
            changes.timezone.map(|tz| tz.name()),
            changes.locale,
            now,
        ])
        .map_err(db_error)
}

/// Subscribes a stored user to each of `topics` they do not follow yet, with `subscribe`
/// (prepared from [`SUBSCRIBE`] once per transaction, not once per user).
fn subscribe_all(
    subscribe: &mut CachedStatement<'_>,
    phone: &PhoneNumber,
    topics: &[Topic],
    now: i64,
) -> Result<(), StoreError> {
    for topic in topics {
        subscribe
            .execute(params![phone.as_str(), topic.as_str(), now])
            .map_err(db_error)?;
    }
    Ok(())
}

/// One stored user with their topics, read on `conn` (inside a write's transaction, the user
/// as that transaction left them).
fn read_user(conn: &Connection, phone: &PhoneNumber) -> Result<Option<User>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.phone = ?");
    let users = query_users(conn, &sql, vec![SqlValue::Text(phone.as_str().to_owned())])?;
    Ok(users.into_iter().next())
}

/// Reads back the user a write just changed, in its transaction: they exist, so their absence
/// means the database is not as written.
fn written_user(conn: &Connection, phone: &PhoneNumber) -> Result<User, StoreError> {
    read_user(conn, phone)?
        .ok_or_else(|| StoreError::Corrupt(format!("user {phone} is missing right after a write")))
}

/// Runs `statement` ([`INSERT_USER`] or [`MERGE_USER`]) for one user in a transaction of its
/// own and, when it changed a row, adds their topics and answers the user as written. `None`
/// when it changed nothing (an insert found the phone taken, a merge found no such user), and
/// then nothing is written: the statement itself is the check, so no other write can come
/// between a check and the write.
fn write_one(
    conn: &mut Connection,
    statement: &str,
    user: &UserUpsert,
    now: i64,
) -> Result<Option<User>, StoreError> {
    let tx = conn.transaction().map_err(db_error)?;
    {
        let mut write = tx.prepare_cached(statement).map_err(db_error)?;
        if execute_user(&mut write, user, now)? == 0 {
            return Ok(None);
        }
        let mut subscribe = tx.prepare_cached(SUBSCRIBE).map_err(db_error)?;
        subscribe_all(&mut subscribe, &user.phone, &user.changes.topics, now)?;
    }
    let written = written_user(&tx, &user.phone)?;
    tx.commit().map_err(db_error)?;
    Ok(Some(written))
}

/// Writes users (created with [`INSERT_USER`], else changed with `update`, a merge or a
/// replace) and their topics, in the order `order` gives, in the transaction `tx`; answers
/// what happened to each, in the order written.
fn write_users(
    tx: &Transaction<'_>,
    update: &str,
    users: &[UserUpsert],
    order: impl IntoIterator<Item = usize>,
    now: i64,
) -> Result<Vec<UpsertOutcome>, StoreError> {
    let mut outcomes = Vec::with_capacity(users.len());
    let mut insert = tx.prepare_cached(INSERT_USER).map_err(db_error)?;
    let mut change = tx.prepare_cached(update).map_err(db_error)?;
    let mut subscribe = tx.prepare_cached(SUBSCRIBE).map_err(db_error)?;
    for index in order {
        let user = &users[index];
        let inserted = execute_user(&mut insert, user, now)? == 1;
        if !inserted {
            execute_user(&mut change, user, now)?;
        }
        subscribe_all(&mut subscribe, &user.phone, &user.changes.topics, now)?;
        outcomes.push(if inserted {
            UpsertOutcome::Inserted
        } else {
            UpsertOutcome::Updated
        });
    }
    Ok(outcomes)
}

/// Reads a user row selected with [`USER_COLUMNS`] (topics are filled in separately).
pub(super) fn user_from_row(row: &Row<'_>) -> rusqlite::Result<Result<User, StoreError>> {
    let phone: String = row.get(0)?;
    let consent: String = row.get(3)?;
    let attributes: String = row.get(4)?;
    let timezone: Option<String> = row.get(5)?;
    let last_inbound_at: Option<i64> = row.get(7)?;
    let name = row.get(1)?;
    let wa_id = row.get(2)?;
    let locale = row.get(6)?;
    let created_at: i64 = row.get(8)?;
    let updated_at: i64 = row.get(9)?;
    Ok((|| {
        Ok(User {
            phone: PhoneNumber::parse(&phone).map_err(corrupt)?,
            name,
            wa_id,
            consent_state: Consent::parse(&consent).map_err(corrupt)?,
            attributes: serde_json::from_str(&attributes).map_err(corrupt)?,
            timezone: timezone
                .as_deref()
                .map(TimeZone::parse)
                .transpose()
                .map_err(corrupt)?,
            locale,
            topics: Vec::new(),
            last_inbound_at: last_inbound_at.map(from_millis),
            created_at: from_millis(created_at),
            updated_at: from_millis(updated_at),
        })
    })())
}

/// Runs a user query and fills in each user's topics.
pub(super) fn query_users(
    conn: &Connection,
    sql: &str,
    params: Vec<SqlValue>,
) -> Result<Vec<User>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(db_error)?;
    let mut users = stmt
        .query_map(params_from_iter(params), user_from_row)
        .map_err(db_error)?
        .map(|row| row.map_err(db_error).and_then(|user| user))
        .collect::<Result<Vec<_>, _>>()?;
    attach_topics(conn, &mut users)?;
    Ok(users)
}

fn attach_topics(conn: &Connection, users: &mut [User]) -> Result<(), StoreError> {
    if users.is_empty() {
        return Ok(());
    }
    let marks = vec!["?"; users.len()].join(",");
    let sql = format!(
        "SELECT phone, topic FROM subscriptions WHERE phone IN ({marks}) ORDER BY phone, topic"
    );
    let mut stmt = conn.prepare(&sql).map_err(db_error)?;
    let phones = users.iter().map(|u| u.phone.as_str());
    let mut topics: HashMap<String, Vec<Topic>> = HashMap::new();
    let rows = stmt
        .query_map(params_from_iter(phones), |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(db_error)?;
    for row in rows {
        let (phone, topic) = row.map_err(db_error)?;
        topics
            .entry(phone)
            .or_default()
            .push(Topic::parse(&topic).map_err(corrupt)?);
    }
    for user in users {
        user.topics = topics.remove(user.phone.as_str()).unwrap_or_default();
    }
    Ok(())
}

/// Turns a page of items ordered by a key into a [`Page`], using the one extra row fetched
/// to know whether another page follows.
pub(super) fn into_page<T>(
    mut items: Vec<T>,
    limit: u32,
    cursor_of: impl Fn(&T) -> String,
) -> Page<T> {
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(cursor_of)
    } else {
        None
    };
    Page { items, next_cursor }
}

/// Lists rows newest first by their time-ordered `id`, with `filters` (conditions with one
/// placeholder each, and their values); the cursor is the id of the last row seen.
pub(super) fn list_newest_first<T>(
    conn: &Connection,
    select: &str,
    mut filters: Vec<(&str, SqlValue)>,
    page: &PageRequest,
    from_row: fn(&Row<'_>) -> rusqlite::Result<Result<T, StoreError>>,
    id_of: fn(&T) -> String,
) -> Result<Page<T>, StoreError> {
    if let Some(cursor) = &page.cursor {
        filters.push(("id < ?", SqlValue::Text(cursor.clone())));
    }
    let (conditions, params): (Vec<&str>, Vec<SqlValue>) = filters.into_iter().unzip();
    let conditions = conditions.into_iter().map(str::to_owned).collect();
    query_page(
        conn, select, conditions, params, "id DESC", page, from_row, id_of,
    )
}

/// Runs `select` with `conditions` (and their `params`, in order), sorted by `order`, for one
/// page; the cursor condition is the caller's.
#[allow(clippy::too_many_arguments)]
pub(super) fn query_page<T>(
    conn: &Connection,
    select: &str,
    conditions: Vec<String>,
    mut params: Vec<SqlValue>,
    order: &str,
    page: &PageRequest,
    from_row: fn(&Row<'_>) -> rusqlite::Result<Result<T, StoreError>>,
    id_of: fn(&T) -> String,
) -> Result<Page<T>, StoreError> {
    let mut sql = select.to_owned();
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(" ORDER BY ");
    sql.push_str(order);
    sql.push_str(&page_clause(page, &mut params));
    let mut stmt = conn.prepare_cached(&sql).map_err(db_error)?;
    let items = stmt
        .query_map(params_from_iter(params), from_row)
        .map_err(db_error)?
        .map(|row| row.map_err(db_error).and_then(|item| item))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(into_page(items, page.clamped_limit(), id_of))
}

/// Appends `LIMIT`/`OFFSET` for a page (one extra row to detect a following page).
pub(super) fn page_clause(page: &PageRequest, params: &mut Vec<SqlValue>) -> String {
    params.push(SqlValue::Integer(i64::from(page.clamped_limit()) + 1));
    match (page.cursor.is_none(), page.offset) {
        (true, Some(offset)) => {
            params.push(SqlValue::Integer(offset.min(i64::MAX as u64) as i64));
            " LIMIT ? OFFSET ?".into()
        }
        _ => " LIMIT ?".into(),
    }
}

/// A condition that `column` contains the text bound to the next `?`, ignoring the case of
/// ASCII letters (as LIKE does), with [`search_text`] bound to it. Not LIKE itself: SQLite
/// ends a LIKE pattern at a NUL character, so `%\0%` would match every row, and `%` and `_`
/// would need escaping; `instr` compares every character literally.
pub(super) fn text_search(column: &str) -> String {
    format!("instr(lower({column}), ?) > 0")
}

/// How a search that looks like a phone number is answered.
#[derive(Debug, PartialEq, Eq)]
enum PhoneSearch {
    /// `+94 77…`: phones from the first to before the second (a range of the phone index).
    Prefix(String, String),
    /// `0771234`: phones holding these digits.
    Digits(String),
}

/// A search of four or more digits, with at most a leading `+` and the spaces, dashes, dots
/// and parentheses people write numbers with, is a search of phones only; anything else is
/// a free-text search.
fn phone_search(q: &str) -> Option<PhoneSearch> {
    let (plus, rest) = match q.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, q),
    };
    if !rest
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')'))
    {
        return None;
    }
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 4 {
        return None;
    }
    if !plus {
        return Some(PhoneSearch::Digits(digits));
    }
    let low = format!("+{digits}");
    // Every phone that starts with `low` sorts below `low` with its last digit one higher
    // (`9` becomes `:`, the character after it).
    let mut high = low.clone();
    let last = high.pop().map_or('0', |c| char::from(c as u8 + 1));
    high.push(last);
    Some(PhoneSearch::Prefix(low, high))
}

/// The parameter of a [`text_search`] condition.
pub(super) fn search_text(q: &str) -> SqlValue {
    SqlValue::Text(q.to_ascii_lowercase())
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn upsert_users(
        &self,
        batch: Vec<UserUpsert>,
        now: DateTime<Utc>,
    ) -> Result<Vec<UpsertOutcome>, StoreError> {
        let now = millis(now);
        // Writing in phone order touches each index page once per batch instead of at
        // random; the sort is stable, so repeats of one phone keep their order (later wins).
        // The sorted batch is written in bulk transactions of a few thousand rows, so other
        // writes (webhooks) never wait long behind an import.
        let mut order: Vec<usize> = (0..batch.len()).collect();
        order.sort_by(|&a, &b| batch[a].phone.cmp(&batch[b].phone));
        let batch = Arc::new(batch);
        let mut outcomes = vec![UpsertOutcome::Inserted; batch.len()];
        for chunk in order.chunks(BULK_ROWS) {
            let (users, indices) = (Arc::clone(&batch), chunk.to_vec());
            let written = self
                .db
                .write_bulk(move |conn| {
                    let tx = conn.transaction().map_err(db_error)?;
                    let outcomes =
                        write_users(&tx, MERGE_USER, &users, indices.iter().copied(), now)?;
                    tx.commit().map_err(db_error)?;
                    Ok(outcomes)
                })
                .await?;
            for (outcome, &index) in written.into_iter().zip(chunk) {
                outcomes[index] = outcome;
            }
        }
        Ok(outcomes)
    }

    async fn insert_user(
        &self,
        user: UserUpsert,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        let now = millis(now);
        self.db
            .write(move |conn| write_one(conn, INSERT_USER, &user, now))
            .await
    }

    async fn update_user(
        &self,
        user: UserUpsert,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        let now = millis(now);
        self.db
            .write(move |conn| write_one(conn, MERGE_USER, &user, now))
            .await
    }

    async fn replace_user(
        &self,
        user: UserUpsert,
        now: DateTime<Utc>,
    ) -> Result<(User, UpsertOutcome), StoreError> {
        let now = millis(now);
        self.db
            .write(move |conn| {
                let tx = conn.transaction().map_err(db_error)?;
                let outcomes =
                    write_users(&tx, REPLACE_USER, std::slice::from_ref(&user), [0], now)?;
                let replaced = written_user(&tx, &user.phone)?;
                tx.commit().map_err(db_error)?;
                Ok((replaced, outcomes[0]))
            })
            .await
    }

    async fn get_user(&self, phone: &PhoneNumber) -> Result<Option<User>, StoreError> {
        let phone = phone.clone();
        self.db.read(move |conn| read_user(conn, &phone)).await
    }

    async fn list_users(
        &self,
        query: &UserQuery,
        page: &PageRequest,
    ) -> Result<Page<User>, StoreError> {
        let query = query.clone();
        let page = page.clone();
        self.db
            .read(move |conn| {
                let mut conditions: Vec<String> = Vec::new();
                let mut params = Vec::new();
                if let Some(cursor) = &page.cursor {
                    conditions.push("u.phone > ?".into());
                    params.push(SqlValue::Text(cursor.clone()));
                }
                if let Some(consent) = query.consent {
                    conditions.push("u.consent_state = ?".into());
                    params.push(SqlValue::Text(consent.as_str().into()));
                }
                if let Some(topic) = &query.topic {
                    conditions.push(
                        "EXISTS (SELECT 1 FROM subscriptions s WHERE s.phone = u.phone AND s.topic = ?)"
                            .into(),
                    );
                    params.push(SqlValue::Text(topic.as_str().into()));
                }
                if let Some(q) = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
                    match phone_search(q) {
                        // A number: the phone index answers, without reading every user.
                        Some(PhoneSearch::Prefix(low, high)) => {
                            conditions.push("u.phone >= ? AND u.phone < ?".into());
                            params.extend([SqlValue::Text(low), SqlValue::Text(high)]);
                        }
                        Some(PhoneSearch::Digits(digits)) => {
                            conditions.push("instr(u.phone, ?) > 0".into());
                            params.push(SqlValue::Text(digits));
                        }
                        None => {
                            // Attributes are searched as stored (SQLite's binary JSON keeps
                            // keys and values as plain text), not rendered to JSON text
                            // for every user first: the same matches at a fraction of
                            // the cost over a million users.
                            let any: Vec<String> =
                                ["u.phone", "u.name", "CAST(u.attributes AS TEXT)"]
                                .iter()
                                .map(|column| text_search(column))
                                .collect();
                            conditions.push(format!("({})", any.join(" OR ")));
                            params.extend((0..any.len()).map(|_| search_text(q)));
                        }
                    }
                }
                let mut sql = format!("SELECT {USER_COLUMNS} FROM users u");
                if !conditions.is_empty() {
                    sql.push_str(" WHERE ");
                    sql.push_str(&conditions.join(" AND "));
                }
                sql.push_str(" ORDER BY u.phone");
                let limit = page.clamped_limit();
                sql.push_str(&page_clause(&page, &mut params));
                let users = query_users(conn, &sql, params)?;
                Ok(into_page(users, limit, |u| u.phone.to_string()))
            })
            .await
    }

    async fn delete_user(&self, phone: &PhoneNumber) -> Result<bool, StoreError> {
        let phone = phone.as_str().to_owned();
        self.db
            .write(move |conn| {
                let deleted = conn
                    .execute("DELETE FROM users WHERE phone = ?", [phone])
                    .map_err(db_error)?;
                Ok(deleted > 0)
            })
            .await
    }

    async fn count_users(&self) -> Result<u64, StoreError> {
        self.db
            .read(|conn| {
                conn.query_row("SELECT COUNT(*) FROM users", [], |r| r.get::<_, i64>(0))
                    .map(|n| n as u64)
                    .map_err(db_error)
            })
            .await
    }
}

#[async_trait]
impl SubscriptionStore for SqliteStore {
    async fn subscribe(
        &self,
        phone: &PhoneNumber,
        topic: &Topic,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (phone, topic, now) = (phone.to_string(), topic.to_string(), millis(now));
        self.db
            .write(move |conn| {
                let added = conn
                    .prepare_cached(SUBSCRIBE)
                    .and_then(|mut s| s.execute(params![phone, topic, now]))
                    .map_err(db_error)?;
                Ok(added > 0)
            })
            .await
    }

    async fn unsubscribe(&self, phone: &PhoneNumber, topic: &Topic) -> Result<bool, StoreError> {
        let (phone, topic) = (phone.to_string(), topic.to_string());
        self.db
            .write(move |conn| {
                let removed = conn
                    .execute(
                        "DELETE FROM subscriptions WHERE phone = ? AND topic = ?",
                        params![phone, topic],
                    )
                    .map_err(db_error)?;
                Ok(removed > 0)
            })
            .await
    }

    async fn subscriptions(&self, phone: &PhoneNumber) -> Result<Vec<Subscription>, StoreError> {
        let phone = phone.clone();
        self.db
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT topic, created_at FROM subscriptions WHERE phone = ? ORDER BY topic",
                    )
                    .map_err(db_error)?;
                let rows = stmt
                    .query_map([phone.as_str()], |row| {
                        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                    })
                    .map_err(db_error)?;
                rows.map(|row| {
                    let (topic, at) = row.map_err(db_error)?;
                    Ok(Subscription {
                        phone: phone.clone(),
                        topic: Topic::parse(&topic).map_err(corrupt)?,
                        subscribed_at: from_millis(at),
                    })
                })
                .collect()
            })
            .await
    }

    async fn topics(&self) -> Result<Vec<TopicSummary>, StoreError> {
        self.db
            .read(|conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT topic, COUNT(*) FROM subscriptions GROUP BY topic ORDER BY topic",
                    )
                    .map_err(db_error)?;
                let rows = stmt
                    .query_map([], |row| {
                        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                    })
                    .map_err(db_error)?;
                rows.map(|row| {
                    let (topic, count) = row.map_err(db_error)?;
                    Ok(TopicSummary {
                        topic: Topic::parse(&topic).map_err(corrupt)?,
                        subscribers: count as u64,
                    })
                })
                .collect()
            })
            .await
    }
}

#[cfg(test)]
mod phone_search_tests {
    use super::{PhoneSearch, phone_search};

    #[test]
    fn numbers_search_phones_and_words_search_everything() {
        assert_eq!(
            phone_search("+94 77-1234"),
            Some(PhoneSearch::Prefix("+94771234".into(), "+94771235".into()))
        );
        assert_eq!(
            phone_search("+9479"),
            Some(PhoneSearch::Prefix("+9479".into(), "+947:".into()))
        );
        assert_eq!(
            phone_search("(077) 123"),
            Some(PhoneSearch::Digits("077123".into()))
        );
        assert_eq!(phone_search("50"), None, "too short to be a number");
        assert_eq!(phone_search("User 4242"), None);
        assert_eq!(phone_search("+"), None);
    }
}
