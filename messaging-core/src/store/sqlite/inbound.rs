//! Inbound WhatsApp messages in SQLite, stored together with what they change about their
//! sender, in one transaction keyed by `MessageSid`.

use async_trait::async_trait;
use rusqlite::{Row, params, types::Value as SqlValue};

use super::connection::db_error;
use super::users::list_newest_first;
use super::{SqliteStore, corrupt, from_millis, millis, query_one, to_json_text};
use crate::domain::{Consent, InboundMessage, PhoneNumber};
use crate::store::{InboundEffects, InboundStore, Page, PageRequest, RecordOutcome, StoreError};

const INBOUND_COLUMNS: &str =
    "id, message_sid, phone, wa_id, body, command, topic, received_at, raw";

fn inbound_from_row(row: &Row<'_>) -> rusqlite::Result<Result<InboundMessage, StoreError>> {
    let id: String = row.get(0)?;
    let message_sid: String = row.get(1)?;
    let phone: String = row.get(2)?;
    let wa_id: Option<String> = row.get(3)?;
    let body: String = row.get(4)?;
    let command: Option<String> = row.get(5)?;
    let topic: Option<String> = row.get(6)?;
    let received_at: i64 = row.get(7)?;
    let raw: String = row.get(8)?;
    Ok((|| {
        Ok(InboundMessage {
            id: id.parse().map_err(corrupt)?,
            message_sid,
            from: PhoneNumber::parse(&phone).map_err(corrupt)?,
            wa_id,
            body,
            command: command
                .map(|c| serde_json::from_value(c.into()))
                .transpose()
                .map_err(corrupt)?,
            topic: topic
                .as_deref()
                .map(crate::domain::Topic::parse)
                .transpose()
                .map_err(corrupt)?,
            received_at: from_millis(received_at),
            raw: serde_json::from_str(&raw).map_err(corrupt)?,
        })
    })())
}

#[async_trait]
impl InboundStore for SqliteStore {
    async fn receive_inbound(
        &self,
        message: &InboundMessage,
        effects: &InboundEffects,
    ) -> Result<RecordOutcome, StoreError> {
        let (message, effects) = (message.clone(), effects.clone());
        let raw = to_json_text(&message.raw)?;
        let command = message
            .command
            .map(|c| to_json_text(&c).map(|t| t.trim_matches('"').to_owned()))
            .transpose()?;
        self.db
            .write(move |conn| {
                let tx = conn.transaction().map_err(db_error)?;
                let at = millis(message.received_at);
                let phone = message.from.as_str();
                let inserted = tx
                    .execute(
                        "INSERT INTO inbound (id, message_sid, phone, wa_id, body, command, topic,
                             received_at, raw)
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                         ON CONFLICT (message_sid) DO NOTHING",
                        params![
                            message.id.to_string(),
                            message.message_sid,
                            phone,
                            message.wa_id,
                            message.body,
                            command,
                            message.topic.as_ref().map(|t| t.as_str()),
                            at,
                            raw,
                        ],
                    )
                    .map_err(db_error)?;
                if inserted == 0 {
                    return Ok(RecordOutcome::Duplicate);
                }
                // The sender is a user from now on; their 24-hour window opens (never closes
                // earlier because a delayed webhook arrives late).
                tx.execute(
                    "INSERT INTO users (phone, name, wa_id, consent_state, attributes,
                         last_inbound_at, created_at, updated_at, revision)
                     VALUES (?1, ?2, ?3, COALESCE(?4, ?6), jsonb('{}'), ?5, ?5, ?5, 0)
                     ON CONFLICT (phone) DO UPDATE SET
                         name = COALESCE(name, ?2),
                         wa_id = COALESCE(?3, wa_id),
                         consent_state = COALESCE(?4, consent_state),
                         last_inbound_at = MAX(COALESCE(last_inbound_at, 0), ?5),
                         updated_at = ?5,
                         revision = revision + 1",
                    params![
                        phone,
                        effects.profile_name,
                        message.wa_id,
                        effects.consent.map(Consent::as_str),
                        at,
                        effects.new_user_consent.as_str(),
                    ],
                )
                .map_err(db_error)?;
                if let Some(topic) = &effects.subscribe {
                    tx.execute(
                        "INSERT INTO subscriptions (phone, topic, created_at) VALUES (?, ?, ?)
                         ON CONFLICT (phone, topic) DO NOTHING",
                        params![phone, topic.as_str(), at],
                    )
                    .map_err(db_error)?;
                }
                if let Some(topic) = &effects.unsubscribe {
                    tx.execute(
                        "DELETE FROM subscriptions WHERE phone = ? AND topic = ?",
                        params![phone, topic.as_str()],
                    )
                    .map_err(db_error)?;
                }
                tx.commit().map_err(db_error)?;
                Ok(RecordOutcome::Recorded)
            })
            .await
    }

    async fn find_inbound(&self, message_sid: &str) -> Result<Option<InboundMessage>, StoreError> {
        let sid = message_sid.to_owned();
        self.db
            .read(move |conn| {
                let sql = format!("SELECT {INBOUND_COLUMNS} FROM inbound WHERE message_sid = ?");
                query_one(conn, &sql, sid, inbound_from_row)
            })
            .await
    }

    async fn list_inbound(
        &self,
        from: Option<PhoneNumber>,
        page: &PageRequest,
    ) -> Result<Page<InboundMessage>, StoreError> {
        let page = page.clone();
        self.db
            .read(move |conn| {
                let filters = from
                    .map(|phone| ("phone = ?", SqlValue::Text(phone.to_string())))
                    .into_iter()
                    .collect();
                let select = format!("SELECT {INBOUND_COLUMNS} FROM inbound");
                list_newest_first(conn, &select, filters, &page, inbound_from_row, |m| {
                    m.id.to_string()
                })
            })
            .await
    }
}
