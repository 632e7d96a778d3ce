//! `messages`: outbound messages with their status history and audit decisions, and
//! replies (`POST messages`: one message to one user, outside any campaign).

use messaging_core::domain::{
    AuditDecision, CampaignId, Message, MessageId, MessageStatus, PhoneNumber, StatusChange,
    TemplateId,
};
use messaging_core::engine::ReplyContent;
use messaging_core::store::MessageQuery;
use messaging_core::{Engine, EngineError};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::error::ApiError;
use super::timestamp::Timestamp;
use super::{ApiTags, page};

/// Where an outbound message is: `pending` (no decision yet), `queued`, `sending`, `sent`
/// (the provider accepted it), `delivered`, `read`, `failed`, `undelivered`, `skipped` (a
/// policy decided not to send it), `deferred` (a policy postponed it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum MessageState {
    Pending,
    Queued,
    Sending,
    Sent,
    Delivered,
    Read,
    Failed,
    Undelivered,
    Skipped,
    Deferred,
}

impl From<MessageStatus> for MessageState {
    fn from(status: MessageStatus) -> Self {
        match status {
            MessageStatus::Pending => Self::Pending,
            MessageStatus::Queued => Self::Queued,
            MessageStatus::Sending => Self::Sending,
            MessageStatus::Sent => Self::Sent,
            MessageStatus::Delivered => Self::Delivered,
            MessageStatus::Read => Self::Read,
            MessageStatus::Failed => Self::Failed,
            MessageStatus::Undelivered => Self::Undelivered,
            MessageStatus::Skipped => Self::Skipped,
            MessageStatus::Deferred => Self::Deferred,
        }
    }
}

impl From<MessageState> for MessageStatus {
    fn from(state: MessageState) -> Self {
        match state {
            MessageState::Pending => Self::Pending,
            MessageState::Queued => Self::Queued,
            MessageState::Sending => Self::Sending,
            MessageState::Sent => Self::Sent,
            MessageState::Delivered => Self::Delivered,
            MessageState::Read => Self::Read,
            MessageState::Failed => Self::Failed,
            MessageState::Undelivered => Self::Undelivered,
            MessageState::Skipped => Self::Skipped,
            MessageState::Deferred => Self::Deferred,
        }
    }
}

/// One change of a message's status.
#[derive(Debug, Clone, Object)]
pub struct StatusChangeBody {
    /// The new status.
    pub status: MessageState,
    /// When it changed.
    pub at: Timestamp,
}

impl From<StatusChange> for StatusChangeBody {
    fn from(change: StatusChange) -> Self {
        Self {
            status: change.status.into(),
            at: change.at.into(),
        }
    }
}

/// One audited decision about a message.
#[derive(Debug, Clone, Object)]
pub struct DecisionBody {
    /// The policy or stage that decided (`consent`, `template`, `whatsapp_window`,
    /// `quiet_hours`, `frequency_cap`, `send`…).
    pub step: String,
    /// The status the decision led to.
    pub outcome: MessageState,
    /// Why.
    pub reason: String,
    /// When.
    pub at: Timestamp,
}

impl From<AuditDecision> for DecisionBody {
    fn from(decision: AuditDecision) -> Self {
        Self {
            step: decision.step,
            outcome: decision.outcome.into(),
            reason: decision.reason,
            at: decision.at.into(),
        }
    }
}

/// An outbound WhatsApp message.
#[derive(Debug, Clone, Object)]
pub struct MessageBody {
    /// Its id.
    pub id: String,
    /// The campaign it belongs to; null for a reply.
    pub campaign_id: Option<String>,
    /// The campaign run it belongs to (a launch, or one triggering event); null for a reply.
    pub run_id: Option<String>,
    /// The recipient's phone (E.164).
    pub user: String,
    /// The text as rendered for the recipient.
    pub body: String,
    /// Where it is.
    pub status: MessageState,
    /// Twilio's `MessageSid`, once Twilio accepted it.
    pub provider_sid: Option<String>,
    /// Twilio's error code when it failed (`21211`, `63016`…).
    pub error_code: Option<String>,
    /// How many send attempts were made.
    pub attempts: u32,
    /// Every status change, oldest first (in `GET messages/{id}`; lists leave it out).
    #[oai(skip_serializing_if_is_none)]
    pub history: Option<Vec<StatusChangeBody>>,
    /// Every decision taken about it, with its reason, oldest first (in
    /// `GET messages/{id}`; lists leave it out).
    #[oai(skip_serializing_if_is_none)]
    pub decisions: Option<Vec<DecisionBody>>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl From<Message> for MessageBody {
    /// The whole message, with its history and decisions.
    fn from(mut m: Message) -> Self {
        let history = std::mem::take(&mut m.history);
        let decisions = std::mem::take(&mut m.decisions);
        Self {
            history: Some(history.into_iter().map(Into::into).collect()),
            decisions: Some(decisions.into_iter().map(Into::into).collect()),
            ..Self::summary(m)
        }
    }
}

impl MessageBody {
    /// The message as a list shows it: without history and decisions, which lists do not
    /// read.
    fn summary(m: Message) -> Self {
        Self {
            id: m.id.to_string(),
            campaign_id: m.campaign_id.map(|id| id.to_string()),
            run_id: m.run_id.map(|id| id.to_string()),
            user: m.user.to_string(),
            body: m.body,
            status: m.status.into(),
            provider_sid: m.provider_sid,
            error_code: m.error_code,
            attempts: m.attempts,
            history: None,
            decisions: None,
            created_at: m.created_at.into(),
            updated_at: m.updated_at.into(),
        }
    }
}

/// A page of messages.
#[derive(Debug, Object)]
pub struct MessagePage {
    /// The messages, newest first.
    pub items: Vec<MessageBody>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl From<messaging_core::store::Page<Message>> for MessagePage {
    fn from(page: messaging_core::store::Page<Message>) -> Self {
        Self {
            items: page.items.into_iter().map(MessageBody::summary).collect(),
            next_cursor: page.next_cursor,
        }
    }
}

/// A reply: free text (`body`) or a stored template (`template_id`), exactly one of them.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct ReplyInput {
    /// The recipient's phone (E.164); a stored user.
    #[oai(validator(max_length = 32))]
    pub user: String,
    /// Free text (at most 1600 characters). WhatsApp allows it within 24 hours of the user's
    /// last message; outside that window the reply is skipped.
    #[oai(validator(min_length = 1, max_length = 1600))]
    pub body: Option<String>,
    /// A template rendered for the user; its approved `content_sid`, when it has one, is
    /// used outside the 24-hour window.
    #[oai(validator(max_length = 64))]
    pub template_id: Option<String>,
}

impl Example for ReplyInput {
    fn example() -> Self {
        ReplyInput {
            user: "+94771234567".into(),
            body: Some("Your order is on its way.".into()),
            template_id: None,
        }
    }
}

#[derive(ApiResponse)]
enum MessageCreated {
    /// Queued; the dispatcher decides and sends it (watch `status`).
    #[oai(status = 201)]
    Created(Json<MessageBody>),
}

/// Parses a phone given in `field`.
pub(super) fn phone(field: &str, text: &str) -> Result<PhoneNumber, ApiError> {
    PhoneNumber::parse(text).map_err(|e| ApiError::invalid(field, e.to_string()))
}

fn message_id(id: &str) -> Result<MessageId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found("message", id))
}

/// The filters of a message list, parsed.
pub(super) fn message_query(
    campaign_id: Option<CampaignId>,
    user: Option<&str>,
    status: Option<MessageState>,
) -> Result<MessageQuery, ApiError> {
    Ok(MessageQuery {
        campaign_id,
        user: user.map(|u| phone("user", u)).transpose()?,
        status: status.map(Into::into),
    })
}

/// What a reply says, from its input: exactly one of `body` and `template_id`.
fn reply_content(input: &ReplyInput) -> Result<ReplyContent, ApiError> {
    match (&input.body, &input.template_id) {
        (Some(body), None) => Ok(ReplyContent::Text(body.clone())),
        (None, Some(id)) => id
            .parse::<TemplateId>()
            .map(ReplyContent::Template)
            .map_err(|_| ApiError::invalid("template_id", format!("{id:?} is not a template id"))),
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "body",
            "give either body or template_id, not both",
        )),
        (None, None) => Err(ApiError::invalid(
            "body",
            "give the text as body, or a template as template_id",
        )),
    }
}

/// Outbound messages and replies.
pub struct MessagesApi {
    engine: Engine,
}

impl MessagesApi {
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

#[OpenApi(tag = "ApiTags::Messages")]
impl MessagesApi {
    /// List messages
    ///
    /// Newest first; each message's history and decisions are in `GET messages/{id}`.
    #[oai(path = "/messages", method = "get", operation_id = "list_messages")]
    async fn list(
        &self,
        /// At most this many (1–1000, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// The previous page's `next_cursor`.
        cursor: Query<Option<String>>,
        /// Skip this many (when no cursor is given).
        offset: Query<Option<u64>>,
        /// Only this campaign's messages.
        #[oai(validator(max_length = 64))]
        campaign_id: Query<Option<String>>,
        /// Only messages to this phone (E.164).
        #[oai(validator(max_length = 32))]
        user: Query<Option<String>>,
        /// Only messages in this status.
        status: Query<Option<MessageState>>,
    ) -> Result<Json<MessagePage>, ApiError> {
        let campaign_id = campaign_id
            .0
            .map(|id| {
                id.parse::<CampaignId>().map_err(|_| {
                    ApiError::invalid("campaign_id", format!("{id:?} is not a campaign id"))
                })
            })
            .transpose()?;
        let query = message_query(campaign_id, user.0.as_deref(), status.0)?;
        let found = self
            .engine
            .list_messages(&query, &page::request(limit.0, cursor.0, offset.0))
            .await?;
        Ok(Json(found.into()))
    }

    /// Get a message
    ///
    /// With every status change (`history`) and every decision taken about it, with its
    /// reason (`decisions`).
    #[oai(path = "/messages/:id", method = "get", operation_id = "get_message")]
    async fn get(
        &self,
        #[oai(validator(max_length = 64))] id: Path<String>,
    ) -> Result<Json<MessageBody>, ApiError> {
        let message = self.engine.get_message(message_id(&id)?).await?;
        Ok(Json(message.into()))
    }

    /// Send a reply
    ///
    /// One message to one stored user, outside any campaign: `{"user", "body"}` or
    /// `{"user", "template_id"}`. It goes through the outbox like any message, so consent,
    /// the WhatsApp 24-hour window and the rates hold; the answer is the queued message
    /// (`pending`). An unknown user or template answers 422.
    #[oai(path = "/messages", method = "post", operation_id = "send_reply")]
    async fn reply(&self, input: Json<ReplyInput>) -> Result<MessageCreated, ApiError> {
        let input = input.0;
        let user = phone("user", &input.user)?;
        let content = reply_content(&input)?;
        let message =
            self.engine
                .send_reply(&user, content)
                .await
                .map_err(|error| match error {
                    // The path exists; what is missing is what the body refers to.
                    EngineError::NotFound { kind: "user", id } => {
                        ApiError::invalid("user", format!("no user {id}"))
                    }
                    EngineError::NotFound {
                        kind: "template",
                        id,
                    } => ApiError::invalid("template_id", format!("no template {id}")),
                    other => other.into(),
                })?;
        Ok(MessageCreated::Created(Json(message.into())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_both_ways() {
        for status in MessageStatus::ALL {
            assert_eq!(MessageStatus::from(MessageState::from(status)), status);
        }
    }
}
