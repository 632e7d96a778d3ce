//! Replies: one message to one user outside any campaign (`POST messages`). A reply goes
//! through the outbox and the dispatcher like any other message, so the WhatsApp window,
//! the rates and the retries hold for it too.

use serde::{Deserialize, Serialize};

use crate::domain::{Message, MessageId, MessageStatus, PhoneNumber, TemplateId};
use crate::orchestrate::policy;
use crate::store::OutboxEntry;
use crate::template::{CompiledTemplate, RenderContext};

use super::{Engine, EngineError};

pub use crate::domain::MAX_BODY_CHARS;

/// What a reply says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyContent {
    /// Free text, which WhatsApp allows within 24 hours of the user's last message.
    Text(String),
    /// A template rendered for the user; its approved Content SID is used outside the
    /// 24-hour window.
    Template(TemplateId),
}

impl Engine {
    /// Queues a reply to `user` and answers the message (`pending` until the dispatcher takes
    /// its decision). The user must exist; a template must render for them; free text is
    /// refused at once when WhatsApp's 24-hour window is closed now (it could only be
    /// skipped), with what to send instead.
    pub async fn send_reply(
        &self,
        user: &PhoneNumber,
        content: ReplyContent,
    ) -> Result<Message, EngineError> {
        let recipient = self.get_user(user).await?;
        let mut entry = OutboxEntry {
            id: MessageId::new(),
            phone: recipient.phone.clone(),
            body: String::new(),
            content_sid: None,
            content_variables: None,
            status: MessageStatus::Pending,
            decision: None,
        };
        match content {
            ReplyContent::Text(text) => {
                let text = text.trim();
                if text.is_empty() {
                    return Err(EngineError::invalid("body", "must not be empty"));
                }
                if text.chars().count() > MAX_BODY_CHARS {
                    return Err(EngineError::invalid(
                        "body",
                        format!("must be at most {MAX_BODY_CHARS} characters"),
                    ));
                }
                let now = self.clock.now();
                if policy::whatsapp_window(recipient.last_inbound_at, false, now).is_err() {
                    let last = recipient.last_inbound_at.map_or_else(
                        || "has never written in".to_owned(),
                        |at| format!("last wrote at {}", at.to_rfc3339()),
                    );
                    return Err(EngineError::invalid(
                        "body",
                        format!(
                            "outside WhatsApp's 24-hour window: {user} {last}, and free text \
                             may be sent only within 24 hours of the user's last message; send \
                             an approved template instead (template_id)"
                        ),
                    ));
                }
                entry.body = text.to_owned();
            }
            ReplyContent::Template(id) => {
                let template = self.get_template(id).await?;
                let compiled = CompiledTemplate::new(&template)?;
                let context = RenderContext::for_user(&recipient);
                let rendered = compiled
                    .render(&context)
                    .map_err(|e| EngineError::invalid("template_id", e.to_string()))?;
                entry.body = rendered.body;
                entry.content_sid = template.content_sid;
                entry.content_variables = rendered.content_variables;
            }
        }
        let id = entry.id;
        self.store.insert_reply(entry, self.clock.now()).await?;
        tracing::info!(message = %id, user = %user, "reply queued");
        self.get_message(id).await
    }
}
