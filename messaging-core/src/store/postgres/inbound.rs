//! Inbound WhatsApp messages in PostgreSQL, stored together with what they change about their
//! sender, keyed by `MessageSid`.
//!
//! Receiving a message is one statement (so one round trip, and atomic by itself): a chain of
//! data-modifying `WITH` parts stores the message (`ON CONFLICT (message_sid) DO NOTHING`),
//! and only when it was new creates or updates its sender in `users` (the users part's
//! table), subscribes them and unsubscribes them; the statement answers whether the message
//! was stored. A repeated webhook therefore changes nothing, even when the repeats arrive at
//! once (the second waits for the first's row, then finds it). Foreign keys are checked at
//! the end of the statement, so a new sender's subscription is written beside their row.
//!
//! Messages are listed newest first by their time-ordered id, optionally one sender's (by
//! `(phone, id)`, indexed); `raw` is the webhook's fields as a `jsonb` object.

use std::collections::BTreeMap;

use async_trait::async_trait;
use tokio_postgres::Row;
use tokio_postgres::types::Json;

use super::catalog::{Conditions, get, id_cursor, query_one, query_page};
use super::{PgStore, corrupt, pg_error, ts};
use crate::domain::{Command, Consent, InboundId, InboundMessage, PhoneNumber, Topic};
use crate::store::{InboundEffects, InboundStore, Page, PageRequest, RecordOutcome, StoreError};

/// This module's tables, part of the first migration.
pub(super) const SCHEMA: &str = r#"
CREATE TABLE inbound (
    id          uuid PRIMARY KEY,
    message_sid text NOT NULL UNIQUE,
    phone       text COLLATE "C" NOT NULL,
    wa_id       text,
    body        text NOT NULL,
    command     text,
    topic       text,
    received_at timestamptz NOT NULL,
    raw         jsonb NOT NULL
);
CREATE INDEX inbound_by_phone ON inbound (phone, id);
"#;

const INBOUND_COLUMNS: &str =
    "id, message_sid, phone, wa_id, body, command, topic, received_at, raw";

/// Stores a message and applies its effects (see the module docs); answers 1 when the
/// message was new, 0 when its SID was stored already. The sender's 24-hour window opens at
/// the message's time and never closes earlier because a delayed webhook arrives late; a
/// stored name is kept, a new WhatsApp id replaces the stored one.
const RECEIVE: &str = "
WITH message AS (
    INSERT INTO inbound (id, message_sid, phone, wa_id, body, command, topic, received_at, raw)
    VALUES ($1, $2, $3, $4::text, $5, $6, $7, $8, $9)
    ON CONFLICT (message_sid) DO NOTHING
    RETURNING phone
), sender AS (
    INSERT INTO users (phone, name, wa_id, consent_state, attributes, last_inbound_at,
                       created_at, updated_at, revision)
    SELECT phone, $10::text, $4::text, COALESCE($11::text, $12::text), '{}'::jsonb, $8, $8,
           $8, 0
    FROM message
    ON CONFLICT (phone) DO UPDATE SET
        name            = COALESCE(users.name, excluded.name),
        wa_id           = COALESCE(excluded.wa_id, users.wa_id),
        consent_state   = COALESCE($11::text, users.consent_state),
        last_inbound_at = GREATEST(users.last_inbound_at, excluded.last_inbound_at),
        updated_at      = excluded.updated_at,
        revision        = users.revision + 1
    RETURNING phone
), subscribed AS (
    INSERT INTO subscriptions (phone, topic, created_at)
    SELECT phone, $13::text, $8 FROM sender WHERE $13::text IS NOT NULL
    ON CONFLICT (phone, topic) DO NOTHING
), unsubscribed AS (
    DELETE FROM subscriptions
    WHERE topic = $14::text AND phone IN (SELECT phone FROM sender)
)
SELECT COUNT(*) FROM message";

fn inbound_from_row(row: &Row) -> Result<InboundMessage, StoreError> {
    let phone: String = get(row, 2)?;
    let command: Option<String> = get(row, 5)?;
    let topic: Option<String> = get(row, 6)?;
    let Json(raw) = get(row, 8)?;
    Ok(InboundMessage {
        id: InboundId(get(row, 0)?),
        message_sid: get(row, 1)?,
        from: PhoneNumber::parse(&phone).map_err(corrupt)?,
        wa_id: get(row, 3)?,
        body: get(row, 4)?,
        command: command
            .map(|c| serde_json::from_value::<Command>(c.into()))
            .transpose()
            .map_err(corrupt)?,
        topic: topic
            .as_deref()
            .map(Topic::parse)
            .transpose()
            .map_err(corrupt)?,
        received_at: get(row, 7)?,
        raw,
    })
}

/// A command as stored: its name as the API writes it (`STOP`).
fn command_text(command: Command) -> Result<String, StoreError> {
    match serde_json::to_value(command).map_err(corrupt)? {
        serde_json::Value::String(name) => Ok(name),
        other => Err(StoreError::Corrupt(format!(
            "a command names itself as {other}"
        ))),
    }
}

#[async_trait]
impl InboundStore for PgStore {
    async fn receive_inbound(
        &self,
        message: &InboundMessage,
        effects: &InboundEffects,
    ) -> Result<RecordOutcome, StoreError> {
        let command = message.command.map(command_text).transpose()?;
        let raw: Json<&BTreeMap<String, String>> = Json(&message.raw);
        let client = self.client().await?;
        let statement = client.prepare_cached(RECEIVE).await.map_err(pg_error)?;
        let stored: i64 = client
            .query_one(
                &statement,
                &[
                    &message.id.0,
                    &message.message_sid,
                    &message.from.as_str(),
                    &message.wa_id,
                    &message.body,
                    &command,
                    &message.topic.as_ref().map(Topic::as_str),
                    &ts(message.received_at),
                    &raw,
                    &effects.profile_name,
                    &effects.consent.map(Consent::as_str),
                    &effects.new_user_consent.as_str(),
                    &effects.subscribe.as_ref().map(Topic::as_str),
                    &effects.unsubscribe.as_ref().map(Topic::as_str),
                ],
            )
            .await
            .map_err(pg_error)?
            .get(0);
        Ok(if stored > 0 {
            RecordOutcome::Recorded
        } else {
            RecordOutcome::Duplicate
        })
    }

    async fn find_inbound(&self, message_sid: &str) -> Result<Option<InboundMessage>, StoreError> {
        if message_sid.contains('\0') {
            // No stored text holds a NUL character.
            return Ok(None);
        }
        let sql = format!("SELECT {INBOUND_COLUMNS} FROM inbound WHERE message_sid = $1");
        query_one(self, &sql, &message_sid, inbound_from_row).await
    }

    async fn list_inbound(
        &self,
        from: Option<PhoneNumber>,
        page: &PageRequest,
    ) -> Result<Page<InboundMessage>, StoreError> {
        let mut conditions = Conditions::default();
        if let Some(phone) = from {
            let p = conditions.bind(phone.as_str().to_owned());
            conditions.and(format!("phone = {p}"));
        }
        if let Some(cursor) = id_cursor(page)? {
            let p = conditions.bind(cursor);
            conditions.and(format!("id < {p}"));
        }
        query_page(
            self,
            &format!("SELECT {INBOUND_COLUMNS} FROM inbound"),
            conditions,
            "id DESC",
            page,
            inbound_from_row,
            |m| m.id.to_string(),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeDelta, Utc};

    use super::*;
    use crate::store::postgres::catalog::tests::at;

    fn message(sid: &str, body: &str, received_at: DateTime<Utc>) -> InboundMessage {
        let fields = [
            ("MessageSid", sid),
            ("From", "whatsapp:+14155552671"),
            ("Body", body),
            ("WaId", "14155552671"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        InboundMessage::from_webhook(fields, received_at).unwrap()
    }

    #[tokio::test]
    async fn a_message_acts_once_on_its_sender() {
        let (store, _database) = super::super::scratch().await;
        let start = at("2026-11-24T10:00:00.123456Z");
        let subscribe = message("SM1", "SUBSCRIBE dance", start);
        let effects = InboundEffects {
            profile_name: Some("Ann".into()),
            consent: Some(Consent::OptIn),
            new_user_consent: Consent::OptOut,
            subscribe: subscribe.topic.clone(),
            unsubscribe: None,
        };
        let received = store.receive_inbound(&subscribe, &effects).await.unwrap();
        assert_eq!(received, RecordOutcome::Recorded);
        let again = store.receive_inbound(&subscribe, &effects).await.unwrap();
        assert_eq!(again, RecordOutcome::Duplicate);

        // An earlier message arriving late neither renames the sender nor closes the window.
        let late = message("SM0", "STOP", start - TimeDelta::hours(1));
        let stop = InboundEffects {
            profile_name: Some("Someone else".into()),
            consent: Some(Consent::OptOut),
            unsubscribe: Topic::parse("DANCE").ok(),
            ..InboundEffects::default()
        };
        store.receive_inbound(&late, &stop).await.unwrap();
        let client = store.client().await.unwrap();
        let row = client
            .query_one(
                "SELECT name, consent_state, last_inbound_at, revision,
                        (SELECT COUNT(*) FROM subscriptions s WHERE s.phone = u.phone)
                 FROM users u WHERE phone = '+14155552671'",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("Ann"));
        assert_eq!(row.get::<_, String>(1), "OPT_OUT");
        assert_eq!(row.get::<_, DateTime<Utc>>(2), ts(start));
        assert_eq!(row.get::<_, i64>(3), 1);
        assert_eq!(row.get::<_, i64>(4), 0, "unsubscribed");

        let mut stored = subscribe.clone();
        stored.received_at = ts(stored.received_at);
        assert_eq!(store.find_inbound("SM1").await.unwrap(), Some(stored));
        assert_eq!(store.find_inbound("SM9").await.unwrap(), None);
        let sender = PhoneNumber::parse("+14155552671").ok();
        let listed = store
            .list_inbound(sender, &PageRequest::first(1))
            .await
            .unwrap();
        assert_eq!(listed.items[0].message_sid, "SM0", "newest first by id");
        let rest = PageRequest {
            cursor: listed.next_cursor,
            ..PageRequest::first(1)
        };
        let listed = store.list_inbound(None, &rest).await.unwrap();
        assert_eq!(listed.items[0].message_sid, "SM1");
        assert_eq!(listed.next_cursor, None);
    }
}
