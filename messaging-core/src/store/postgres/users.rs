//! Users and subscriptions in PostgreSQL.
//!
//! `users` is keyed by phone, `subscriptions` by (phone, topic), both compared in byte order
//! (`COLLATE "C"`), so lists come out in the order the SQLite adapter gives and a phone prefix
//! is a range of the primary key. Attributes are `jsonb`, indexed with `jsonb_path_ops` for
//! segment predicates; opted-out users have a partial index of their own.
//!
//! Attributes merge as the SQLite adapter's `jsonb_patch` merges them: RFC 7396 merge patch,
//! done here by [`SCHEMA`]'s `jsonb_merge_patch`, which takes the shortcut of a top-level
//! `||` when no member of the patch is an object or null (nested objects merge key by key).
//!
//! A batch upsert ([`UserStore::upsert_users`]) is one transaction of a few set-based
//! statements, whatever its size: the batch goes over as arrays, one per column, in phone
//! order, and one `INSERT … SELECT FROM unnest(…) ON CONFLICT (phone) DO UPDATE` creates or
//! merges each user; the users it created answer `revision = 0` (merges count revisions
//! up). A statement may change a row once only, so a phone repeated in the batch is written
//! in rounds (its first occurrence in the first, its second in the next…), which merges the
//! repeats in order as the SQLite adapter does; and since a merge keeps the stored consent
//! when none is given while a new user gets `OPT_IN`, rows that give a consent and rows that
//! do not go in separate statements. Topics follow in one more statement.
//!
//! A single create, merge or replace is one statement (a CTE adding the topics beside the
//! write), then the user is read back in the same transaction; the statement itself decides
//! whether the phone is taken (`ON CONFLICT DO NOTHING`) or stored (`UPDATE … WHERE`).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::{Json, ToSql};

use super::{PgStore, corrupt, pg_error, ts};
use crate::domain::{
    Attributes, Consent, PhoneNumber, Subscription, TimeZone, Topic, TopicSummary, UpsertOutcome,
    User, UserUpsert,
};
use crate::store::{Page, PageRequest, StoreError, SubscriptionStore, UserQuery, UserStore};

/// This module's tables, part of the first migration.
pub(super) const SCHEMA: &str = r#"
CREATE TABLE users (
    phone           text COLLATE "C" PRIMARY KEY,
    name            text,
    wa_id           text,
    consent_state   text NOT NULL CHECK (consent_state IN ('OPT_IN', 'OPT_OUT')),
    attributes      jsonb NOT NULL DEFAULT '{}',
    timezone        text,
    locale          text,
    last_inbound_at timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    revision        bigint NOT NULL DEFAULT 0
);
-- Segment predicates on attributes (`attributes @> '{"city": "Colombo"}'`).
CREATE INDEX users_attributes ON users USING gin (attributes jsonb_path_ops);
-- Opted-out users, counted by the dashboard and listed by the consent filter without
-- reading every user.
CREATE INDEX users_opted_out ON users (phone) WHERE consent_state = 'OPT_OUT';

CREATE TABLE subscriptions (
    phone      text COLLATE "C" NOT NULL REFERENCES users (phone) ON DELETE CASCADE,
    topic      text COLLATE "C" NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (phone, topic)
);
CREATE INDEX subscriptions_by_topic ON subscriptions (topic, phone);

-- RFC 7396 merge patch, as SQLite's json_patch: members of the patch replace the target's,
-- objects merge member by member, nulls remove. Most patches hold no object and no null,
-- and are then a plain top-level concatenation.
CREATE FUNCTION jsonb_merge_patch(target jsonb, patch jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF jsonb_typeof(patch) IS DISTINCT FROM 'object' THEN
        RETURN patch;
    END IF;
    IF jsonb_typeof(target) IS DISTINCT FROM 'object' THEN
        target := '{}';
    END IF;
    IF NOT jsonb_path_exists(patch, 'strict $.* ? (@.type() == "object" || @.type() == "null")')
    THEN
        RETURN target || patch;
    END IF;
    RETURN (
        SELECT COALESCE(jsonb_object_agg(merged.key, merged.value), '{}')
        FROM (
            SELECT t.key, t.value FROM jsonb_each(target) t WHERE NOT patch ? t.key
            UNION ALL
            SELECT p.key, jsonb_merge_patch(target -> p.key, p.value)
            FROM jsonb_each(patch) p
            WHERE jsonb_typeof(p.value) <> 'null'
        ) merged
    );
END
$$;
"#;

/// Creates or merges the users given as arrays (phone, name, wa_id, consent, attributes as
/// JSON text, time zone, locale; phones distinct) at `$8`; `$9` says whether the rows give
/// their consent (a merge keeps the stored one otherwise). Answers the phones it created.
const UPSERT_USERS: &str = r#"
    WITH written AS (
        INSERT INTO users AS u (phone, name, wa_id, consent_state, attributes, timezone, locale,
                                created_at, updated_at, revision)
        SELECT i.phone, i.name, i.wa_id, COALESCE(i.consent_state, 'OPT_IN'),
               i.attributes::jsonb, i.timezone, i.locale, $8, $8, 0
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                    $7::text[])
            AS i (phone, name, wa_id, consent_state, attributes, timezone, locale)
        ON CONFLICT (phone) DO UPDATE SET
            name          = COALESCE(excluded.name, u.name),
            wa_id         = COALESCE(excluded.wa_id, u.wa_id),
            consent_state = CASE WHEN $9::boolean THEN excluded.consent_state
                                 ELSE u.consent_state END,
            attributes    = CASE WHEN excluded.attributes = '{}' THEN u.attributes
                                 ELSE jsonb_merge_patch(u.attributes, excluded.attributes) END,
            timezone      = COALESCE(excluded.timezone, u.timezone),
            locale        = COALESCE(excluded.locale, u.locale),
            updated_at    = excluded.updated_at,
            revision      = u.revision + 1
        RETURNING u.phone, u.revision
    )
    SELECT phone FROM written WHERE revision = 0"#;

/// Subscribes the phones of `$1` to the topics of `$2` (pairwise) at `$3`; pairs already
/// stored (or repeated) are left as they are.
const SUBSCRIBE_ALL: &str = "
    INSERT INTO subscriptions (phone, topic, created_at)
    SELECT s.phone, s.topic, $3 FROM unnest($1::text[], $2::text[]) AS s (phone, topic)
    ON CONFLICT (phone, topic) DO NOTHING";

/// Adds the topics `$9` to the user the CTE `written` wrote, at `$8`; follows a write
/// statement's `WITH written AS (…)` that binds the same parameters.
const SUBSCRIBE_WRITTEN: &str = "
    subscribed AS (
        INSERT INTO subscriptions (phone, topic, created_at)
        SELECT w.phone, t.topic, $8 FROM written w CROSS JOIN unnest($9::text[]) AS t (topic)
        ON CONFLICT (phone, topic) DO NOTHING
    )";

/// Creates a user with their topics; answers nothing when the phone is already stored (and
/// then writes nothing).
const INSERT_USER: &str = "
    INSERT INTO users (phone, name, wa_id, consent_state, attributes, timezone, locale,
                       created_at, updated_at, revision)
    VALUES ($1, $2, $3, COALESCE($4::text, 'OPT_IN'), $5::text::jsonb, $6, $7, $8, $8, 0)
    ON CONFLICT (phone) DO NOTHING
    RETURNING phone, revision";

/// Merges into a stored user (given fields replace, attributes merge key by key); answers
/// nothing when no user has the phone.
const MERGE_USER: &str = "
    UPDATE users SET
        name          = COALESCE($2, name),
        wa_id         = COALESCE($3, wa_id),
        consent_state = COALESCE($4::text, consent_state),
        attributes    = CASE WHEN $5::text = '{}' THEN attributes
                             ELSE jsonb_merge_patch(attributes, $5::text::jsonb) END,
        timezone      = COALESCE($6, timezone),
        locale        = COALESCE($7, locale),
        updated_at    = $8,
        revision      = revision + 1
    WHERE phone = $1
    RETURNING phone, revision";

/// Creates a user, or replaces a stored one whole except consent: a consent not given keeps
/// the stored one, so a replace never opts someone back in by leaving the field out.
const REPLACE_USER: &str = "
    INSERT INTO users AS u (phone, name, wa_id, consent_state, attributes, timezone, locale,
                            created_at, updated_at, revision)
    VALUES ($1, $2, $3, COALESCE($4::text, 'OPT_IN'), $5::text::jsonb, $6, $7, $8, $8, 0)
    ON CONFLICT (phone) DO UPDATE SET
        name = excluded.name, wa_id = excluded.wa_id,
        consent_state = COALESCE($4::text, u.consent_state),
        attributes = excluded.attributes, timezone = excluded.timezone,
        locale = excluded.locale, updated_at = excluded.updated_at,
        revision = u.revision + 1
    RETURNING u.phone, u.revision";

/// The columns every user query selects from `users u`, in the order [`user_from_row`]
/// reads them, the user's topics (in byte order) last.
pub(super) const USER_COLUMNS: &str = "u.phone, u.name, u.wa_id, u.consent_state, u.attributes, \
     u.timezone, u.locale, u.last_inbound_at, u.created_at, u.updated_at, \
     ARRAY(SELECT s.topic FROM subscriptions s WHERE s.phone = u.phone ORDER BY s.topic)";

/// Reads a user row selected with [`USER_COLUMNS`].
pub(super) fn user_from_row(row: &Row) -> Result<User, StoreError> {
    let phone: &str = row.try_get(0).map_err(corrupt)?;
    let consent: &str = row.try_get(3).map_err(corrupt)?;
    let Json(attributes): Json<Attributes> = row.try_get(4).map_err(corrupt)?;
    let timezone: Option<&str> = row.try_get(5).map_err(corrupt)?;
    let topics: Vec<&str> = row.try_get(10).map_err(corrupt)?;
    Ok(User {
        phone: PhoneNumber::parse(phone).map_err(corrupt)?,
        name: row.try_get(1).map_err(corrupt)?,
        wa_id: row.try_get(2).map_err(corrupt)?,
        consent_state: Consent::parse(consent).map_err(corrupt)?,
        attributes,
        timezone: timezone.map(TimeZone::parse).transpose().map_err(corrupt)?,
        locale: row.try_get(6).map_err(corrupt)?,
        topics: topics
            .into_iter()
            .map(Topic::parse)
            .collect::<Result<_, _>>()
            .map_err(corrupt)?,
        last_inbound_at: row.try_get(7).map_err(corrupt)?,
        created_at: row.try_get(8).map_err(corrupt)?,
        updated_at: row.try_get(9).map_err(corrupt)?,
    })
}

/// One stored user with their topics, read on `client` (inside a write's transaction, the
/// user as that transaction left them).
async fn read_user(
    client: &impl GenericClient,
    phone: &PhoneNumber,
) -> Result<Option<User>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.phone = $1");
    let statement = client.prepare_cached(&sql).await.map_err(pg_error)?;
    let row = client
        .query_opt(&statement, &[&phone.as_str()])
        .await
        .map_err(pg_error)?;
    row.as_ref().map(user_from_row).transpose()
}

/// Reads back the user a write just changed, in its transaction: they exist, so their absence
/// means the database is not as written.
async fn written_user(
    client: &impl GenericClient,
    phone: &PhoneNumber,
) -> Result<User, StoreError> {
    read_user(client, phone)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("user {phone} is missing right after a write")))
}

/// Runs one of the single-user writes ([`INSERT_USER`], [`MERGE_USER`], [`REPLACE_USER`]),
/// with the user's topics added in the same statement, in a transaction that then reads the
/// user back. Answers the user as written and whether the write created them, or `None`
/// when the statement wrote nothing (the phone taken, or no such user).
async fn write_one(
    store: &PgStore,
    write: &str,
    user: &UserUpsert,
    now: DateTime<Utc>,
) -> Result<Option<(User, UpsertOutcome)>, StoreError> {
    let UserUpsert { phone, changes } = user;
    let topics: Vec<&str> = changes.topics.iter().map(Topic::as_str).collect();
    let now = ts(now);
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(pg_error)?;
    let sql = format!(
        "WITH written AS ({write}), {SUBSCRIBE_WRITTEN} SELECT phone, revision FROM written"
    );
    let statement = tx.prepare_cached(&sql).await.map_err(pg_error)?;
    let params: [&(dyn ToSql + Sync); 9] = [
        &phone.as_str(),
        &changes.name,
        &changes.wa_id,
        &changes.consent_state.map(Consent::as_str),
        &changes.attributes.as_json(),
        &changes.timezone.map(|tz| tz.name()),
        &changes.locale,
        &now,
        &topics,
    ];
    let Some(row) = tx.query_opt(&statement, &params).await.map_err(pg_error)? else {
        return Ok(None);
    };
    let revision: i64 = row.try_get(1).map_err(corrupt)?;
    let outcome = if revision == 0 {
        UpsertOutcome::Inserted
    } else {
        UpsertOutcome::Updated
    };
    let written = written_user(&tx, phone).await?;
    tx.commit().await.map_err(pg_error)?;
    Ok(Some((written, outcome)))
}

/// The batch's rows in the rounds they are written in: each round holds distinct phones, in
/// phone order, and a phone's `n`-th occurrence in the batch is in round `n`, so the rounds
/// in turn merge repeats in the order they came.
fn rounds(batch: &[UserUpsert]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..batch.len()).collect();
    // Stable: the occurrences of one phone keep their order.
    order.sort_by(|&a, &b| batch[a].phone.cmp(&batch[b].phone));
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    let mut occurrence = 0;
    for (position, &index) in order.iter().enumerate() {
        let repeat = position > 0 && batch[order[position - 1]].phone == batch[index].phone;
        occurrence = if repeat { occurrence + 1 } else { 0 };
        if rounds.len() <= occurrence {
            rounds.push(Vec::new());
        }
        rounds[occurrence].push(index);
    }
    rounds
}

/// Runs [`UPSERT_USERS`] for the rows `indices` of `batch` (distinct phones, all giving a
/// consent or none); answers the phones it created.
async fn upsert_rows(
    tx: &deadpool_postgres::Transaction<'_>,
    batch: &[UserUpsert],
    indices: &[usize],
    consent_given: bool,
    now: &DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    let mut phones = Vec::with_capacity(indices.len());
    let mut names = Vec::with_capacity(indices.len());
    let mut wa_ids = Vec::with_capacity(indices.len());
    let mut consents = Vec::with_capacity(indices.len());
    let mut attributes = Vec::with_capacity(indices.len());
    let mut timezones = Vec::with_capacity(indices.len());
    let mut locales = Vec::with_capacity(indices.len());
    for &index in indices {
        let UserUpsert { phone, changes } = &batch[index];
        phones.push(phone.as_str());
        names.push(changes.name.as_deref());
        wa_ids.push(changes.wa_id.as_deref());
        consents.push(changes.consent_state.map(Consent::as_str));
        attributes.push(changes.attributes.as_json());
        timezones.push(changes.timezone.map(|tz| tz.name()));
        locales.push(changes.locale.as_deref());
    }
    let statement = tx.prepare_cached(UPSERT_USERS).await.map_err(pg_error)?;
    let rows = tx
        .query(
            &statement,
            &[
                &phones,
                &names,
                &wa_ids,
                &consents,
                &attributes,
                &timezones,
                &locales,
                now,
                &consent_given,
            ],
        )
        .await
        .map_err(pg_error)?;
    rows.iter()
        .map(|row| row.try_get::<_, String>(0).map_err(corrupt))
        .collect()
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

/// How a search that looks like a phone number is answered.
#[derive(Debug, PartialEq, Eq)]
enum PhoneSearch {
    /// `+94 77…`: phones from the first to before the second (a range of the primary key,
    /// which compares in byte order).
    Prefix(String, String),
    /// `0771234`: phones holding these digits.
    Digits(String),
}

/// A search of four or more digits, with at most a leading `+` and the spaces, dashes, dots
/// and parentheses people write numbers with, is a search of phones only; anything else is
/// a free-text search (as the SQLite adapter decides).
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

/// A query's conditions and their parameters, numbered as they are added.
#[derive(Default)]
struct Conditions {
    sql: Vec<String>,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Conditions {
    /// Adds a parameter; answers its placeholder (`$3`).
    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    fn push(&mut self, condition: String) {
        self.sql.push(condition);
    }

    fn where_clause(&self) -> String {
        if self.sql.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.sql.join(" AND "))
        }
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|param| param.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// Appends `LIMIT`/`OFFSET` for a page (one extra row to detect a following page).
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

#[async_trait]
impl UserStore for PgStore {
    async fn upsert_users(
        &self,
        batch: Vec<UserUpsert>,
        now: DateTime<Utc>,
    ) -> Result<Vec<UpsertOutcome>, StoreError> {
        let now = ts(now);
        let mut outcomes = vec![UpsertOutcome::Updated; batch.len()];
        if batch.is_empty() {
            return Ok(outcomes);
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        for (round, indices) in rounds(&batch).iter().enumerate() {
            for consent_given in [true, false] {
                let rows: Vec<usize> = indices
                    .iter()
                    .copied()
                    .filter(|&i| batch[i].changes.consent_state.is_some() == consent_given)
                    .collect();
                if rows.is_empty() {
                    continue;
                }
                let created = upsert_rows(&tx, &batch, &rows, consent_given, &now).await?;
                if created.is_empty() {
                    continue;
                }
                // Only a phone's first occurrence can create it; later rounds merge.
                debug_assert_eq!(round, 0, "a repeat created its user");
                let index_of: HashMap<&str, usize> =
                    rows.iter().map(|&i| (batch[i].phone.as_str(), i)).collect();
                for phone in &created {
                    let index = index_of.get(phone.as_str()).ok_or_else(|| {
                        StoreError::Corrupt(format!("created user {phone} was not in the batch"))
                    })?;
                    outcomes[*index] = UpsertOutcome::Inserted;
                }
            }
        }
        let (phones, topics): (Vec<&str>, Vec<&str>) = batch
            .iter()
            .flat_map(|user| {
                user.changes
                    .topics
                    .iter()
                    .map(|topic| (user.phone.as_str(), topic.as_str()))
            })
            .unzip();
        if !phones.is_empty() {
            let statement = tx.prepare_cached(SUBSCRIBE_ALL).await.map_err(pg_error)?;
            tx.execute(&statement, &[&phones, &topics, &now])
                .await
                .map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(outcomes)
    }

    async fn insert_user(
        &self,
        user: UserUpsert,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        Ok(write_one(self, INSERT_USER, &user, now)
            .await?
            .map(|(user, _)| user))
    }

    async fn update_user(
        &self,
        user: UserUpsert,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        Ok(write_one(self, MERGE_USER, &user, now)
            .await?
            .map(|(user, _)| user))
    }

    async fn replace_user(
        &self,
        user: UserUpsert,
        now: DateTime<Utc>,
    ) -> Result<(User, UpsertOutcome), StoreError> {
        write_one(self, REPLACE_USER, &user, now)
            .await?
            .ok_or_else(|| {
                StoreError::Corrupt(format!("replacing user {} wrote nothing", user.phone))
            })
    }

    async fn get_user(&self, phone: &PhoneNumber) -> Result<Option<User>, StoreError> {
        let client = self.client().await?;
        read_user(&client, phone).await
    }

    async fn list_users(
        &self,
        query: &UserQuery,
        page: &PageRequest,
    ) -> Result<Page<User>, StoreError> {
        let mut conditions = Conditions::default();
        if let Some(cursor) = &page.cursor {
            let cursor = conditions.bind(cursor.clone());
            conditions.push(format!("u.phone > {cursor}"));
        }
        if let Some(consent) = query.consent {
            // A domain word, not user input, written out so that the partial index of
            // opted-out users serves the filter.
            conditions.push(format!("u.consent_state = '{}'", consent.as_str()));
        }
        if let Some(topic) = &query.topic {
            let topic = conditions.bind(topic.as_str().to_owned());
            conditions.push(format!(
                "EXISTS (SELECT 1 FROM subscriptions s WHERE s.phone = u.phone AND s.topic = {topic})"
            ));
        }
        if let Some(q) = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            match phone_search(q) {
                // A number: a range of the primary key, without reading every user.
                Some(PhoneSearch::Prefix(low, high)) => {
                    let (low, high) = (conditions.bind(low), conditions.bind(high));
                    conditions.push(format!("u.phone >= {low} AND u.phone < {high}"));
                }
                Some(PhoneSearch::Digits(digits)) => {
                    let digits = conditions.bind(digits);
                    conditions.push(format!("strpos(u.phone, {digits}) > 0"));
                }
                // No stored text holds a NUL (PostgreSQL text cannot), so nothing matches.
                None if q.contains('\0') => conditions.push("FALSE".to_owned()),
                None => {
                    // Contains the text, ignoring the case of ASCII letters only, as the
                    // SQLite adapter's `instr(lower(…))` (`lower` of "C" text lowers ASCII
                    // only); `strpos` compares every other character literally. Attributes
                    // are searched as their JSON text.
                    let q = conditions.bind(q.to_ascii_lowercase());
                    conditions.push(format!(
                        "(strpos(lower(u.phone), {q}) > 0 \
                          OR strpos(lower(u.name COLLATE \"C\"), {q}) > 0 \
                          OR strpos(lower(u.attributes::text COLLATE \"C\"), {q}) > 0)"
                    ));
                }
            }
        }
        let mut sql = format!(
            "SELECT {USER_COLUMNS} FROM users u{} ORDER BY u.phone",
            conditions.where_clause()
        );
        sql.push_str(&page_clause(page, &mut conditions));
        let client = self.client().await?;
        let statement = client.prepare_cached(&sql).await.map_err(pg_error)?;
        let rows = client
            .query(&statement, &conditions.params())
            .await
            .map_err(pg_error)?;
        let users = rows
            .iter()
            .map(user_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(into_page(users, page.clamped_limit(), |u| {
            u.phone.to_string()
        }))
    }

    async fn delete_user(&self, phone: &PhoneNumber) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("DELETE FROM users WHERE phone = $1")
            .await
            .map_err(pg_error)?;
        let deleted = client
            .execute(&statement, &[&phone.as_str()])
            .await
            .map_err(pg_error)?;
        Ok(deleted > 0)
    }

    async fn count_users(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT COUNT(*) FROM users")
            .await
            .map_err(pg_error)?;
        let count: i64 = client
            .query_one(&statement, &[])
            .await
            .map_err(pg_error)?
            .get(0);
        Ok(count as u64)
    }
}

#[async_trait]
impl SubscriptionStore for PgStore {
    async fn subscribe(
        &self,
        phone: &PhoneNumber,
        topic: &Topic,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO subscriptions (phone, topic, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (phone, topic) DO NOTHING",
            )
            .await
            .map_err(pg_error)?;
        let added = client
            .execute(&statement, &[&phone.as_str(), &topic.as_str(), &ts(now)])
            .await
            .map_err(pg_error)?;
        Ok(added > 0)
    }

    async fn unsubscribe(&self, phone: &PhoneNumber, topic: &Topic) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("DELETE FROM subscriptions WHERE phone = $1 AND topic = $2")
            .await
            .map_err(pg_error)?;
        let removed = client
            .execute(&statement, &[&phone.as_str(), &topic.as_str()])
            .await
            .map_err(pg_error)?;
        Ok(removed > 0)
    }

    async fn subscriptions(&self, phone: &PhoneNumber) -> Result<Vec<Subscription>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT topic, created_at FROM subscriptions WHERE phone = $1 ORDER BY topic",
            )
            .await
            .map_err(pg_error)?;
        let rows = client
            .query(&statement, &[&phone.as_str()])
            .await
            .map_err(pg_error)?;
        rows.iter()
            .map(|row| {
                Ok(Subscription {
                    phone: phone.clone(),
                    topic: Topic::parse(row.try_get(0).map_err(corrupt)?).map_err(corrupt)?,
                    subscribed_at: row.try_get(1).map_err(corrupt)?,
                })
            })
            .collect()
    }

    async fn topics(&self) -> Result<Vec<TopicSummary>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT topic, COUNT(*) FROM subscriptions GROUP BY topic ORDER BY topic",
            )
            .await
            .map_err(pg_error)?;
        let rows = client.query(&statement, &[]).await.map_err(pg_error)?;
        rows.iter()
            .map(|row| {
                let count: i64 = row.try_get(1).map_err(corrupt)?;
                Ok(TopicSummary {
                    topic: Topic::parse(row.try_get(0).map_err(corrupt)?).map_err(corrupt)?,
                    subscribers: count as u64,
                })
            })
            .collect()
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::domain::UserChanges;
    use crate::store::sqlite::SqliteStore;

    fn phone(text: &str) -> PhoneNumber {
        PhoneNumber::parse(text).unwrap()
    }

    fn topic(text: &str) -> Topic {
        Topic::parse(text).unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn upsert(number: &str, changes: Value) -> UserUpsert {
        let mut user = UserChanges::default();
        let Value::Object(fields) = changes else {
            panic!("changes are an object")
        };
        for (field, value) in fields {
            match (field.as_str(), value) {
                ("name", Value::String(v)) => user.name = Some(v),
                ("wa_id", Value::String(v)) => user.wa_id = Some(v),
                ("consent", Value::String(v)) => {
                    user.consent_state = Some(Consent::parse(&v).unwrap())
                }
                ("attributes", Value::Object(v)) => user.attributes = v.into(),
                ("timezone", Value::String(v)) => {
                    user.timezone = Some(TimeZone::parse(&v).unwrap())
                }
                ("locale", Value::String(v)) => user.locale = Some(v),
                ("topics", Value::Array(v)) => {
                    user.topics = v.iter().map(|t| topic(t.as_str().unwrap())).collect()
                }
                (other, value) => panic!("no field {other} = {value}"),
            }
        }
        UserUpsert {
            phone: phone(number),
            changes: user,
        }
    }

    fn attributes_of(user: &User) -> Value {
        Value::Object(user.attributes.clone())
    }

    /// Runs the same writes and reads on a store, answering everything each answered, so
    /// that the two adapters can be compared answer by answer.
    async fn transcript<S: UserStore + SubscriptionStore>(store: &S) -> Vec<String> {
        let mut said = Vec::new();
        let t0 = at("2026-11-24T10:00:00.123456Z");
        let t1 = at("2026-11-24T11:00:00.987654Z");
        let t2 = at("2026-11-24T12:00:00Z");
        let first = vec![
            upsert(
                "+94771234501",
                json!({"name": "Amaya", "attributes": {"city": "Colombo",
                "address": {"street": "Galle Road", "zip": "00300"}, "tags": ["a", "b"]},
                "topics": ["dance"], "timezone": "Asia/Colombo"}),
            ),
            upsert(
                "+14155550100",
                json!({"name": "Jordan", "consent": "OPT_OUT",
                "attributes": {"plan": "gold", "points": 1.50}, "locale": "en"}),
            ),
            // Repeats of one phone merge in order: the first creates, later ones merge.
            upsert(
                "+94771234502",
                json!({"name": "Kasun", "attributes": {"age": 41},
                "topics": ["MUSIC", "Zoo"]}),
            ),
            upsert(
                "+94771234502",
                json!({"consent": "OPT_OUT", "attributes": {"age": 42,
                "pets": {"cats": 1}}, "topics": ["MUSIC"]}),
            ),
            upsert(
                "+94771234502",
                json!({"wa_id": "94771234502", "attributes":
                {"pets": {"dogs": 2}}, "topics": ["été"]}),
            ),
            upsert("+447700900123", json!({"name": "Émile", "attributes": {}})),
            upsert("+94771234502", json!({"attributes": {"pets": {"cats": 3}}})),
        ];
        said.push(format!(
            "{:?}",
            store.upsert_users(first, t0).await.unwrap()
        ));
        let second = vec![
            // Nested objects merge key by key; a scalar replaces an object and the other way
            // round; arrays replace.
            upsert(
                "+94771234501",
                json!({"attributes": {"address": {"zip": "00400",
                "geo": {"lat": 6.9}}, "tags": ["c"], "city": {"name": "Colombo"}}}),
            ),
            upsert(
                "+14155550100",
                json!({"name": "Jordan Lee", "attributes": {"plan":
                {"tier": "platinum"}, "points": 2}, "topics": ["news"]}),
            ),
            upsert("+94771234502", json!({"attributes": {"pets": "none"}})),
            upsert(
                "+4915112345678",
                json!({"consent": "OPT_IN", "name": "Anna"}),
            ),
            upsert(
                "+94771234501",
                json!({"locale": "si", "consent": "OPT_OUT"}),
            ),
        ];
        said.push(format!(
            "{:?}",
            store.upsert_users(second, t1).await.unwrap()
        ));
        said.push(format!(
            "{:?}",
            store
                .insert_user(upsert("+94771234501", json!({"name": "Someone"})), t2)
                .await
                .unwrap()
        ));
        said.push(format!(
            "{:?}",
            store
                .insert_user(
                    upsert(
                        "+94771234599",
                        json!({"name": "New", "topics": ["DANCE", "NEWS"],
                        "attributes": {"x": {"y": 1}}})
                    ),
                    t2
                )
                .await
                .unwrap()
        ));
        said.push(format!(
            "{:?}",
            store
                .update_user(upsert("+94770000000", json!({"name": "Nobody"})), t2)
                .await
                .unwrap()
        ));
        said.push(format!(
            "{:?}",
            store
                .update_user(
                    upsert(
                        "+94771234599",
                        json!({"attributes": {"x": {"z": 2}},
                        "topics": ["MUSIC"]})
                    ),
                    t2
                )
                .await
                .unwrap()
        ));
        said.push(format!(
            "{:?}",
            store
                .replace_user(upsert("+14155550100", json!({"name": "J"})), t2)
                .await
                .unwrap()
        ));
        said.push(format!(
            "{:?}",
            store
                .replace_user(
                    upsert("+94771111111", json!({"attributes": {"k": "v"}})),
                    t2
                )
                .await
                .unwrap()
        ));
        let queries = [
            UserQuery::default(),
            UserQuery {
                q: Some("AMAYA".into()),
                ..UserQuery::default()
            },
            UserQuery {
                q: Some("colombo".into()),
                ..UserQuery::default()
            },
            UserQuery {
                q: Some("émile".into()),
                ..UserQuery::default()
            },
            UserQuery {
                q: Some("+94 77 1234".into()),
                ..UserQuery::default()
            },
            UserQuery {
                q: Some("1234".into()),
                ..UserQuery::default()
            },
            UserQuery {
                q: Some("a\0b".into()),
                ..UserQuery::default()
            },
            UserQuery {
                consent: Some(Consent::OptOut),
                ..UserQuery::default()
            },
            UserQuery {
                topic: Some(topic("MUSIC")),
                consent: Some(Consent::OptOut),
                ..UserQuery::default()
            },
        ];
        for query in &queries {
            said.push(format!(
                "{query:?}: {:?}",
                store
                    .list_users(query, &PageRequest::first(100))
                    .await
                    .unwrap()
            ));
        }
        let mut page = PageRequest::first(3);
        loop {
            let listed = store
                .list_users(&UserQuery::default(), &page)
                .await
                .unwrap();
            said.push(format!("page: {listed:?}"));
            let Some(cursor) = listed.next_cursor else {
                break;
            };
            page.cursor = Some(cursor);
        }
        let offset = PageRequest {
            offset: Some(2),
            ..PageRequest::first(2)
        };
        said.push(format!(
            "offset: {:?}",
            store
                .list_users(&UserQuery::default(), &offset)
                .await
                .unwrap()
        ));
        let kasun = phone("+94771234502");
        for (topic_name, now) in [("NEWS", t1), ("MUSIC", t2)] {
            said.push(format!(
                "subscribe: {:?}",
                store
                    .subscribe(&kasun, &topic(topic_name), now)
                    .await
                    .unwrap()
            ));
        }
        said.push(format!(
            "unsubscribe: {:?} {:?}",
            store.unsubscribe(&kasun, &topic("ZOO")).await.unwrap(),
            store.unsubscribe(&kasun, &topic("ZOO")).await.unwrap()
        ));
        said.push(format!("{:?}", store.subscriptions(&kasun).await.unwrap()));
        said.push(format!("{:?}", store.topics().await.unwrap()));
        said.push(format!(
            "delete: {:?} {:?}",
            store.delete_user(&kasun).await.unwrap(),
            store.delete_user(&kasun).await.unwrap()
        ));
        said.push(format!("{:?}", store.subscriptions(&kasun).await.unwrap()));
        said.push(format!("{:?}", store.topics().await.unwrap()));
        said.push(format!("count: {}", store.count_users().await.unwrap()));
        said
    }

    /// The SQLite adapter is the reference: every answer of the same calls is the same.
    #[tokio::test]
    async fn answers_as_the_sqlite_adapter_does() {
        let (pg, _database) = super::super::scratch().await;
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(dir.path().join("reference.db"))
            .await
            .unwrap();
        let expected = transcript(&sqlite).await;
        let answered = transcript(&pg).await;
        for (n, (expected, answered)) in expected.iter().zip(&answered).enumerate() {
            assert_eq!(answered, expected, "answer {n}");
        }
        assert_eq!(answered.len(), expected.len());
    }

    #[tokio::test]
    async fn repeats_in_a_batch_merge_in_order_with_an_outcome_each() {
        let (store, _database) = super::super::scratch().await;
        let now = at("2026-11-24T10:00:00Z");
        store
            .upsert_users(vec![upsert("+94771234501", json!({"name": "Stored"}))], now)
            .await
            .unwrap();
        let outcomes = store
            .upsert_users(
                vec![
                    upsert(
                        "+94771234502",
                        json!({"attributes": {"a": 1, "o": {"x": 1}}}),
                    ),
                    upsert("+94771234501", json!({"attributes": {"b": 1}})),
                    upsert(
                        "+94771234502",
                        json!({"consent": "OPT_OUT",
                        "attributes": {"a": 2, "o": {"y": 2}}}),
                    ),
                    upsert("+94771234503", json!({})),
                    upsert(
                        "+94771234502",
                        json!({"name": "Last", "topics": ["A", "B"]}),
                    ),
                ],
                now,
            )
            .await
            .unwrap();
        use UpsertOutcome::{Inserted, Updated};
        assert_eq!(outcomes, [Inserted, Updated, Updated, Inserted, Updated]);
        let user = store
            .get_user(&phone("+94771234502"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(user.name.as_deref(), Some("Last"));
        assert_eq!(user.consent_state, Consent::OptOut);
        assert_eq!(attributes_of(&user), json!({"a": 2, "o": {"x": 1, "y": 2}}));
        assert_eq!(user.topics, [topic("A"), topic("B")]);
        assert_eq!(store.count_users().await.unwrap(), 3);
        assert_eq!(
            store.upsert_users(Vec::new(), now).await.unwrap(),
            [],
            "an empty batch writes nothing"
        );
    }

    #[tokio::test]
    async fn a_merge_without_consent_keeps_it_and_a_new_user_opts_in() {
        let (store, _database) = super::super::scratch().await;
        let now = at("2026-11-24T10:00:00Z");
        store
            .upsert_users(
                vec![upsert("+94771234501", json!({"consent": "OPT_OUT"}))],
                now,
            )
            .await
            .unwrap();
        store
            .upsert_users(
                vec![
                    upsert("+94771234501", json!({"name": "Amaya"})),
                    upsert("+94771234502", json!({"name": "Kasun"})),
                ],
                now,
            )
            .await
            .unwrap();
        let amaya = store
            .get_user(&phone("+94771234501"))
            .await
            .unwrap()
            .unwrap();
        let kasun = store
            .get_user(&phone("+94771234502"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (amaya.consent_state, kasun.consent_state),
            (Consent::OptOut, Consent::OptIn)
        );
    }

    #[tokio::test]
    async fn phones_and_topics_are_listed_in_byte_order() {
        let (store, _database) = super::super::scratch().await;
        let now = at("2026-11-24T10:00:00Z");
        store
            .upsert_users(
                vec![
                    upsert("+94771234501", json!({"topics": ["zoo", "été", "Apple"]})),
                    upsert("+14155550100", json!({"topics": ["été"]})),
                    upsert("+447700900123", json!({})),
                ],
                now,
            )
            .await
            .unwrap();
        let listed = store
            .list_users(&UserQuery::default(), &PageRequest::first(10))
            .await
            .unwrap();
        let phones: Vec<&str> = listed.items.iter().map(|u| u.phone.as_str()).collect();
        assert_eq!(phones, ["+14155550100", "+447700900123", "+94771234501"]);
        assert_eq!(
            listed.items[2].topics,
            [topic("APPLE"), topic("ZOO"), topic("ÉTÉ")]
        );
        let topics: Vec<(String, u64)> = store
            .topics()
            .await
            .unwrap()
            .into_iter()
            .map(|t| (t.topic.to_string(), t.subscribers))
            .collect();
        assert_eq!(
            topics,
            [("APPLE".into(), 1), ("ZOO".into(), 1), ("ÉTÉ".into(), 2)]
        );
    }

    #[tokio::test]
    async fn times_are_kept_to_the_millisecond() {
        let (store, _database) = super::super::scratch().await;
        let now = at("2026-11-24T10:00:00.123456789Z");
        let created = store
            .insert_user(upsert("+94771234501", json!({"topics": ["A"]})), now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(created.created_at, at("2026-11-24T10:00:00.123Z"));
        assert_eq!(created.updated_at, created.created_at);
        let subscriptions = store.subscriptions(&created.phone).await.unwrap();
        assert_eq!(subscriptions[0].subscribed_at, created.created_at);
    }
}
