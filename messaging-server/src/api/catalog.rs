//! `templates` and `segments`: what campaigns are built from, with their previews.

use std::collections::BTreeMap;

use messaging_core::Engine;
use messaging_core::domain::{
    Channel, PhoneNumber, Segment, SegmentDraft, SegmentId, Template, TemplateDraft, TemplateId,
};
use messaging_core::engine::PreviewInput;
use messaging_core::segment::SegmentRule;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::timestamp::Timestamp;
use super::users::UserBody;
use super::{ApiTags, page};

/// A message template.
#[derive(Debug, Clone, Object)]
pub struct TemplateBody {
    /// Its id.
    pub id: String,
    /// A name for operators.
    pub name: String,
    /// The text, with placeholders such as `{{ name }}`, `{{ attributes.city }}`,
    /// `{{ event.venue }}`.
    pub content: String,
    /// Always `whatsapp`.
    pub channel: String,
    /// The language, e.g. `en`.
    pub locale: Option<String>,
    /// The approved template's Twilio Content SID (`HX` and 32 hex digits), used outside
    /// WhatsApp's 24-hour window.
    pub content_sid: Option<String>,
    /// The approved template's variables, e.g. `{"1": "{{ name }}"}`.
    pub content_variables: Option<BTreeMap<String, String>>,
    /// The placeholders the template uses (read-only).
    pub placeholders: Vec<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl From<Template> for TemplateBody {
    fn from(t: Template) -> Self {
        Self {
            id: t.id.to_string(),
            name: t.name,
            content: t.content,
            channel: "whatsapp".into(),
            locale: t.locale,
            content_sid: t.content_sid,
            content_variables: t.content_variables,
            placeholders: t.placeholders,
            created_at: t.created_at.into(),
            updated_at: t.updated_at.into(),
        }
    }
}

/// A template to create, or a template's new definition.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct TemplateInput {
    /// A name for operators.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: String,
    /// The text, with placeholders.
    #[oai(validator(max_length = 10000))]
    pub content: String,
    /// `whatsapp` (the default and only channel).
    #[oai(validator(max_length = 32))]
    pub channel: Option<String>,
    /// The language.
    #[oai(validator(max_length = 35))]
    pub locale: Option<String>,
    /// The approved template's Twilio Content SID.
    #[oai(validator(max_length = 64))]
    pub content_sid: Option<String>,
    /// The approved template's variables.
    #[oai(validator(max_length = 1000, max_properties = 100))]
    pub content_variables: Option<BTreeMap<String, String>>,
}

impl Example for TemplateInput {
    fn example() -> Self {
        TemplateInput {
            name: "Cart reminder".into(),
            content: "Hi {{ name }}, you left {{ event.item }} in your cart.".into(),
            channel: Some("whatsapp".into()),
            locale: Some("en".into()),
            content_sid: None,
            content_variables: None,
        }
    }
}

impl TryFrom<TemplateInput> for TemplateDraft {
    type Error = ApiError;

    fn try_from(input: TemplateInput) -> Result<Self, ApiError> {
        match input.channel.as_deref() {
            None | Some("whatsapp") => {}
            Some(other) => {
                return Err(ApiError::invalid(
                    "channel",
                    format!("{other:?} is not a channel; the only one is \"whatsapp\""),
                ));
            }
        }
        Ok(TemplateDraft {
            name: input.name,
            content: input.content,
            channel: Channel::Whatsapp,
            locale: input.locale,
            content_sid: input.content_sid,
            content_variables: input.content_variables,
        })
    }
}

/// A page of templates.
#[derive(Debug, Object)]
pub struct TemplatePage {
    /// The templates.
    pub items: Vec<TemplateBody>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Whom to render a preview for: a stored user, or given attributes and event data.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct PreviewRequest {
    /// A stored user's phone (E.164).
    #[oai(validator(max_length = 32))]
    pub user: Option<String>,
    /// A name, when no user is given.
    #[oai(validator(max_length = 200))]
    pub name: Option<String>,
    /// Attributes, when no user is given.
    pub attributes: Option<BTreeMap<String, Value>>,
    /// Event data, available as `{{ event.KEY }}`.
    pub event: Option<BTreeMap<String, Value>>,
    /// Text to render instead of the saved content (an edit not saved yet); errors answer
    /// 422 with their line and column, as saving it would.
    #[oai(validator(max_length = 10000))]
    pub content: Option<String>,
    /// Variables to render instead of the saved ones (with `content`).
    pub content_variables: Option<BTreeMap<String, String>>,
}

impl Example for PreviewRequest {
    fn example() -> Self {
        PreviewRequest {
            user: None,
            name: Some("Amaya".into()),
            attributes: Some(BTreeMap::from([("city".into(), json!("Colombo"))])),
            event: Some(BTreeMap::from([("item".into(), json!("running shoes"))])),
            content: None,
            content_variables: None,
        }
    }
}

/// A rendered template.
#[derive(Debug, Object)]
pub struct PreviewBody {
    /// The message text.
    pub body: String,
    /// The approved template's variables, rendered.
    pub content_variables: Option<BTreeMap<String, String>>,
}

/// A segment.
#[derive(Debug, Clone, Object)]
pub struct SegmentBody {
    /// Its id.
    pub id: String,
    /// A name for operators.
    pub name: String,
    /// The definition (see the data formats: shorthand `{"attributes.city": "Colombo"}` or
    /// the full form with `all`/`any`/`not`, `attribute`/`op`/`value` for attributes,
    /// `field`/`op`/`value` for the user's own fields, `topic`, `consent`, `event`).
    pub rule: Value,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl From<Segment> for SegmentBody {
    fn from(s: Segment) -> Self {
        Self {
            id: s.id.to_string(),
            name: s.name,
            rule: s.rule.as_json().clone(),
            created_at: s.created_at.into(),
            updated_at: s.updated_at.into(),
        }
    }
}

/// A segment to create, or a segment's new definition.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct SegmentInput {
    /// A name for operators.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: String,
    /// The definition.
    pub rule: Value,
}

impl Example for SegmentInput {
    fn example() -> Self {
        SegmentInput {
            name: "Colombo VIPs".into(),
            rule: json!({ "all": [
                { "attribute": "city", "op": "eq", "value": "Colombo" },
                { "attribute": "vip", "op": "eq", "value": true },
            ]}),
        }
    }
}

/// A page of segments.
#[derive(Debug, Object)]
pub struct SegmentPage {
    /// The segments.
    pub items: Vec<SegmentBody>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A rule to preview.
#[derive(Debug, Clone, Object)]
pub struct SegmentPreviewRequest {
    /// The definition.
    pub rule: Value,
}

/// How many users a definition selects, and the first of them.
#[derive(Debug, Object)]
pub struct SegmentPreviewBody {
    /// How many users match.
    pub count: u64,
    /// The first matching users (at most 20).
    pub sample: Vec<UserBody>,
}

/// A page of a segment's members.
#[derive(Debug, Object)]
pub struct MemberPage {
    /// The users.
    pub items: Vec<UserBody>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(ApiResponse)]
enum TemplateCreated {
    /// Created.
    #[oai(status = 201)]
    Created(Json<TemplateBody>),
}

#[derive(ApiResponse)]
enum SegmentCreated {
    /// Created.
    #[oai(status = 201)]
    Created(Json<SegmentBody>),
}

#[derive(ApiResponse)]
enum Deleted {
    /// Deleted.
    #[oai(status = 204)]
    Deleted,
}

fn template_id(id: &str) -> Result<TemplateId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found("template", id))
}

fn segment_id(id: &str) -> Result<SegmentId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found("segment", id))
}

fn rule(value: &Value) -> Result<SegmentRule, ApiError> {
    SegmentRule::parse(value).map_err(|e| ApiError::from(messaging_core::EngineError::from(e)))
}

/// Templates.
pub struct TemplatesApi {
    engine: Engine,
}

impl TemplatesApi {
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

#[OpenApi(tag = "ApiTags::Templates")]
impl TemplatesApi {
    /// Create a template
    ///
    /// Checks that the text compiles (a syntax error answers 422 with its line and column)
    /// and lists its placeholders.
    #[oai(path = "/templates", method = "post", operation_id = "create_template")]
    async fn create(&self, input: Json<TemplateInput>) -> Result<TemplateCreated, ApiError> {
        let template = self.engine.create_template(input.0.try_into()?).await?;
        Ok(TemplateCreated::Created(Json(template.into())))
    }

    /// List templates
    #[oai(path = "/templates", method = "get", operation_id = "list_templates")]
    async fn list(
        &self,
        /// At most this many (1–1000, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// The previous page's `next_cursor`.
        cursor: Query<Option<String>>,
        /// Skip this many (when no cursor is given).
        offset: Query<Option<u64>>,
        /// Free text matched against the name.
        #[oai(validator(max_length = 200))]
        q: Query<Option<String>>,
    ) -> Result<Json<TemplatePage>, ApiError> {
        let found = self
            .engine
            .list_templates(q.0.as_deref(), &page::request(limit.0, cursor.0, offset.0))
            .await?;
        Ok(Json(TemplatePage {
            items: found.items.into_iter().map(Into::into).collect(),
            next_cursor: found.next_cursor,
        }))
    }

    /// Get a template
    #[oai(path = "/templates/:id", method = "get", operation_id = "get_template")]
    async fn get(
        &self,
        #[oai(validator(max_length = 64))] id: Path<String>,
    ) -> Result<Json<TemplateBody>, ApiError> {
        let template = self.engine.get_template(template_id(&id)?).await?;
        Ok(Json(template.into()))
    }

    /// Replace a template
    #[oai(
        path = "/templates/:id",
        method = "put",
        operation_id = "replace_template"
    )]
    async fn replace(
        &self,
        #[oai(validator(max_length = 64))] id: Path<String>,
        input: Json<TemplateInput>,
    ) -> Result<Json<TemplateBody>, ApiError> {
        let template = self
            .engine
            .update_template(template_id(&id)?, input.0.try_into()?)
            .await?;
        Ok(Json(template.into()))
    }

    /// Delete a template
    ///
    /// A template a campaign uses cannot be deleted (409).
    #[oai(
        path = "/templates/:id",
        method = "delete",
        operation_id = "delete_template"
    )]
    async fn delete(
        &self,
        #[oai(validator(max_length = 64))] id: Path<String>,
    ) -> Result<Deleted, ApiError> {
        self.engine.delete_template(template_id(&id)?).await?;
        Ok(Deleted::Deleted)
    }

    /// Preview a template
    ///
    /// Renders it for a stored user (`{"user": "+94771234567"}`) or for given attributes and
    /// event data, exactly as a campaign would; a missing placeholder answers 422 naming it.
    #[oai(
        path = "/templates/:id/preview",
        method = "post",
        operation_id = "preview_template"
    )]
    async fn preview(
        &self,
        #[oai(validator(max_length = 64))] id: Path<String>,
        input: Json<PreviewRequest>,
    ) -> Result<Json<PreviewBody>, ApiError> {
        let input = input.0;
        let user = input
            .user
            .as_deref()
            .map(PhoneNumber::parse)
            .transpose()
            .map_err(|e| ApiError::invalid("user", e.to_string()))?;
        let attributes = input
            .attributes
            .map(|a| serde_json::from_value(Value::Object(a.into_iter().collect())))
            .transpose()
            .map_err(|e| ApiError::invalid("attributes", e.to_string()))?;
        let preview = self
            .engine
            .preview_template(
                template_id(&id)?,
                PreviewInput {
                    user,
                    name: input.name,
                    attributes,
                    event: input.event.map(|e| e.into_iter().collect::<Map<_, _>>()),
                    content: input.content,
                    content_variables: input.content_variables,
                },
            )
            .await?;
        Ok(Json(PreviewBody {
            body: preview.body,
            content_variables: preview.content_variables,
        }))
    }
}

/// Segments.
pub struct SegmentsApi {
    engine: Engine,
}

impl SegmentsApi {
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

#[OpenApi(tag = "ApiTags::Segments")]
impl SegmentsApi {
    /// Create a segment
    ///
    /// An invalid definition answers 422 with a JSON pointer to the offending part.
    #[oai(path = "/segments", method = "post", operation_id = "create_segment")]
    async fn create(&self, input: Json<SegmentInput>) -> Result<SegmentCreated, ApiError> {
        let draft = SegmentDraft {
            name: input.0.name,
            rule: rule(&input.0.rule)?,
        };
        let segment = self.engine.create_segment(draft).await?;
        Ok(SegmentCreated::Created(Json(segment.into())))
    }

    /// List segments
    #[oai(path = "/segments", method = "get", operation_id = "list_segments")]
    async fn list(
        &self,
        /// At most this many (1–1000, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// The previous page's `next_cursor`.
        cursor: Query<Option<String>>,
        /// Skip this many (when no cursor is given).
        offset: Query<Option<u64>>,
        /// Free text matched against the name.
        #[oai(validator(max_length = 200))]
        q: Query<Option<String>>,
    ) -> Result<Json<SegmentPage>, ApiError> {
        let found = self
            .engine
            .list_segments(q.0.as_deref(), &page::request(limit.0, cursor.0, offset.0))
            .await?;
        Ok(Json(SegmentPage {
            items: found.items.into_iter().map(Into::into).collect(),
            next_cursor: found.next_cursor,
        }))
    }

    /// Preview a definition
    ///
    /// How many users a definition selects, and the first 20 of them, without saving it.
    #[oai(
        path = "/segments/preview",
        method = "post",
        operation_id = "preview_segment"
    )]
    async fn preview(
        &self,
        input: Json<SegmentPreviewRequest>,
    ) -> Result<Json<SegmentPreviewBody>, ApiError> {
        let preview = self
            .engine
            .preview_segment(&rule(&input.0.rule)?, 20)
            .await?;
        Ok(Json(SegmentPreviewBody {
            count: preview.count,
            sample: preview.sample.into_iter().map(Into::into).collect(),
        }))
    }

    /// Get a segment
    #[oai(path = "/segments/:id", method = "get", operation_id = "get_segment")]
    async fn get(
        &self,
        #[oai(validator(max_length = 64))] id: Path<String>,
    ) -> Result<Json<SegmentBody>, ApiError> {
        let segment = self.engine.get_segment(segment_id(&id)?).await?;
        Ok(Json(segment.into()))
    }

    /// Replace a segment
    #[oai(
        path = "/segments/:id",
        method = "put",
        operation_id = "replace_segment"
    )]
    async fn replace(
        &self,
        #[oai(validator(max_length = 64))] id: Path<String>,
        input: Json<SegmentInput>,
    ) -> Result<Json<SegmentBody>, ApiError> {
        let draft = SegmentDraft {
            name: input.0.name,
            rule: rule(&input.0.rule)?,
        };
        let segment = self.engine.update_segment(segment_id(&id)?, draft).await?;
        Ok(Json(segment.into()))
    }

    /// Delete a segment
    ///
    /// A segment a campaign uses cannot be deleted (409).
    #[oai(
        path = "/segments/:id",
        method = "delete",
        operation_id = "delete_segment"
    )]
    async fn delete(
        &self,
        #[oai(validator(max_length = 64))] id: Path<String>,
    ) -> Result<Deleted, ApiError> {
        self.engine.delete_segment(segment_id(&id)?).await?;
        Ok(Deleted::Deleted)
    }

    /// List a segment's members
    #[oai(
        path = "/segments/:id/members",
        method = "get",
        operation_id = "segment_members"
    )]
    async fn members(
        &self,
        #[oai(validator(max_length = 64))] id: Path<String>,
        /// At most this many (1–1000, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// The previous page's `next_cursor`.
        cursor: Query<Option<String>>,
    ) -> Result<Json<MemberPage>, ApiError> {
        let found = self
            .engine
            .segment_members(segment_id(&id)?, &page::request(limit.0, cursor.0, None))
            .await?;
        Ok(Json(MemberPage {
            items: found.items.into_iter().map(Into::into).collect(),
            next_cursor: found.next_cursor,
        }))
    }
}
