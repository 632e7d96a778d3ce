//! Templates and segments: what operators keep to build campaigns from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::domain::{
    Attributes, PhoneNumber, Segment, SegmentDraft, SegmentId, Template, TemplateDraft, TemplateId,
    User,
};
use crate::segment::SegmentRule;
use crate::store::{Page, PageRequest, StoreError};
use crate::template::{self, CompiledTemplate, RenderContext};

use super::{Engine, EngineError};

/// Whom to render a template preview for: a stored user, or given attributes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PreviewInput {
    /// A stored user to render for.
    #[serde(default)]
    pub user: Option<PhoneNumber>,
    /// A name to render with when no user is given.
    #[serde(default)]
    pub name: Option<String>,
    /// Attributes to render with when no user is given.
    #[serde(default)]
    pub attributes: Option<Attributes>,
    /// Event data, available as `{{event.KEY}}`.
    #[serde(default)]
    pub event: Option<Map<String, Value>>,
    /// Text to render instead of the stored content: an edit not saved yet, checked and
    /// rendered exactly as it would be once saved.
    #[serde(default)]
    pub content: Option<String>,
    /// Variables to render instead of the stored ones, with `content`.
    #[serde(default)]
    pub content_variables: Option<BTreeMap<String, String>>,
}

/// A rendered template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplatePreview {
    /// The message text.
    pub body: String,
    /// The approved template's variables, rendered, when the template has them.
    pub content_variables: Option<BTreeMap<String, String>>,
}

/// How many users a rule selects, and a few of them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentPreview {
    /// How many users match.
    pub count: u64,
    /// The first matching users, by phone.
    pub sample: Vec<User>,
}

impl Engine {
    /// Creates a template after checking that it compiles.
    pub async fn create_template(&self, draft: TemplateDraft) -> Result<Template, EngineError> {
        let placeholders = template::check(&draft)?;
        let now = self.clock.now();
        let template = Template {
            id: TemplateId::new(),
            name: required_name(&draft.name)?,
            content: draft.content,
            channel: draft.channel,
            locale: draft.locale,
            content_sid: content_sid(draft.content_sid)?,
            content_variables: draft.content_variables,
            placeholders,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_template(&template).await?;
        Ok(template)
    }

    /// Replaces a template's content after checking that it compiles.
    pub async fn update_template(
        &self,
        id: TemplateId,
        draft: TemplateDraft,
    ) -> Result<Template, EngineError> {
        let placeholders = template::check(&draft)?;
        let stored = self.get_template(id).await?;
        let template = Template {
            name: required_name(&draft.name)?,
            content: draft.content,
            channel: draft.channel,
            locale: draft.locale,
            content_sid: content_sid(draft.content_sid)?,
            content_variables: draft.content_variables,
            placeholders,
            updated_at: self.clock.now(),
            ..stored
        };
        self.store.update_template(&template).await?;
        Ok(template)
    }

    /// One template.
    pub async fn get_template(&self, id: TemplateId) -> Result<Template, EngineError> {
        self.store
            .get_template(id)
            .await?
            .ok_or_else(|| EngineError::not_found("template", id))
    }

    /// Templates, oldest first; `q` filters by name or content.
    pub async fn list_templates(
        &self,
        q: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<Template>, EngineError> {
        Ok(self
            .store
            .list_templates(q.map(str::to_owned), page)
            .await?)
    }

    /// Deletes a template no campaign uses.
    pub async fn delete_template(&self, id: TemplateId) -> Result<(), EngineError> {
        if self
            .store
            .delete_template(id)
            .await
            .map_err(in_use("template"))?
        {
            Ok(())
        } else {
            Err(EngineError::not_found("template", id))
        }
    }

    /// Renders a stored template for a user or for given attributes, exactly as a campaign
    /// would (a missing placeholder is an error naming it).
    pub async fn preview_template(
        &self,
        id: TemplateId,
        input: PreviewInput,
    ) -> Result<TemplatePreview, EngineError> {
        let mut template = self.get_template(id).await?;
        if let Some(content) = input.content {
            template.content = content;
        }
        if let Some(variables) = input.content_variables {
            template.content_variables = Some(variables).filter(|v| !v.is_empty());
        }
        let compiled = CompiledTemplate::new(&template)?;
        let context = match &input.user {
            Some(phone) => RenderContext::for_user(&self.get_user(phone).await?),
            None => {
                RenderContext::from_attributes(input.name, input.attributes.unwrap_or_default())
            }
        };
        let context = context.with_event(input.event.unwrap_or_default());
        let rendered = compiled
            .render(&context)
            .map_err(|e| EngineError::invalid("template", e.to_string()))?;
        Ok(TemplatePreview {
            body: rendered.body,
            content_variables: rendered.content_variables,
        })
    }

    /// Creates a segment.
    pub async fn create_segment(&self, draft: SegmentDraft) -> Result<Segment, EngineError> {
        let now = self.clock.now();
        let segment = Segment {
            id: SegmentId::new(),
            name: required_name(&draft.name)?,
            rule: draft.rule,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_segment(&segment).await?;
        Ok(segment)
    }

    /// Replaces a segment's name and rule.
    pub async fn update_segment(
        &self,
        id: SegmentId,
        draft: SegmentDraft,
    ) -> Result<Segment, EngineError> {
        let stored = self.get_segment(id).await?;
        let segment = Segment {
            name: required_name(&draft.name)?,
            rule: draft.rule,
            updated_at: self.clock.now(),
            ..stored
        };
        self.store.update_segment(&segment).await?;
        Ok(segment)
    }

    /// One segment.
    pub async fn get_segment(&self, id: SegmentId) -> Result<Segment, EngineError> {
        self.store
            .get_segment(id)
            .await?
            .ok_or_else(|| EngineError::not_found("segment", id))
    }

    /// Segments, oldest first; `q` filters by name.
    pub async fn list_segments(
        &self,
        q: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<Segment>, EngineError> {
        Ok(self.store.list_segments(q.map(str::to_owned), page).await?)
    }

    /// Deletes a segment no campaign uses.
    pub async fn delete_segment(&self, id: SegmentId) -> Result<(), EngineError> {
        if self
            .store
            .delete_segment(id)
            .await
            .map_err(in_use("segment"))?
        {
            Ok(())
        } else {
            Err(EngineError::not_found("segment", id))
        }
    }

    /// The users a stored segment selects, by phone.
    pub async fn segment_members(
        &self,
        id: SegmentId,
        page: &PageRequest,
    ) -> Result<Page<User>, EngineError> {
        let segment = self.get_segment(id).await?;
        Ok(self
            .store
            .audience(&segment.rule, self.clock.now(), page)
            .await?)
    }

    /// How many users a rule selects.
    pub async fn count_audience(&self, rule: &SegmentRule) -> Result<u64, EngineError> {
        Ok(self.store.count_audience(rule, self.clock.now()).await?)
    }

    /// How many users a rule selects and the first `sample_size` of them.
    pub async fn preview_segment(
        &self,
        rule: &SegmentRule,
        sample_size: u32,
    ) -> Result<SegmentPreview, EngineError> {
        let now = self.clock.now();
        let count = self.store.count_audience(rule, now).await?;
        let sample = self
            .store
            .audience(rule, now, &PageRequest::first(sample_size))
            .await?
            .items;
        Ok(SegmentPreview { count, sample })
    }
}

/// Turns "still in use" into a conflict an operator understands.
fn in_use(kind: &'static str) -> impl Fn(StoreError) -> EngineError {
    move |error| match error {
        StoreError::InUse(id) => EngineError::Conflict(format!(
            "{kind} {id} is used by a campaign; change or delete the campaign first"
        )),
        other => other.into(),
    }
}

/// An approved template's Content SID is `HX` and 32 hexadecimal digits; Twilio refuses any
/// other (error 21655) for every recipient, so it is refused here, once. Blank means none.
fn content_sid(sid: Option<String>) -> Result<Option<String>, EngineError> {
    let Some(sid) = sid.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let digits = sid.strip_prefix("HX").unwrap_or_default();
    if digits.len() == 32 && digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(Some(sid))
    } else {
        Err(EngineError::invalid(
            "content_sid",
            format!("{sid:?} is not a Twilio Content SID (HX and 32 hexadecimal digits)"),
        ))
    }
}

fn required_name(name: &str) -> Result<String, EngineError> {
    let name = name.trim();
    if name.is_empty() {
        Err(EngineError::invalid("name", "must not be empty"))
    } else {
        Ok(name.to_owned())
    }
}
