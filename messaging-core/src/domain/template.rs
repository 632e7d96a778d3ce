//! [`Template`]: the text of a message with `{{placeholders}}`, as stored.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::TemplateId;

/// The channel a template is written for. WhatsApp is the only one today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// WhatsApp through Twilio.
    #[default]
    Whatsapp,
}

/// A message template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// Its id.
    pub id: TemplateId,
    /// A name operators recognise.
    pub name: String,
    /// The text with placeholders, e.g. `Hi {{ name | default("there") }}!`.
    pub content: String,
    /// Always `whatsapp` for now.
    pub channel: Channel,
    /// The language the text is written in.
    pub locale: Option<String>,
    /// Twilio Content SID of an approved WhatsApp template (`HX…`), used outside the 24-hour window.
    pub content_sid: Option<String>,
    /// Variables for the approved template, each value itself a template: `{"1": "{{name}}"}`.
    pub content_variables: Option<BTreeMap<String, String>>,
    /// The placeholders the content uses (`name`, `attributes.city`, `event.discount`).
    pub placeholders: Vec<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What an operator gives to create or replace a template.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TemplateDraft {
    /// A name operators recognise.
    pub name: String,
    /// The text with placeholders.
    pub content: String,
    /// Defaults to `whatsapp`.
    #[serde(default)]
    pub channel: Channel,
    /// The language the text is written in.
    #[serde(default)]
    pub locale: Option<String>,
    /// Twilio Content SID of an approved template.
    #[serde(default)]
    pub content_sid: Option<String>,
    /// Variables for the approved template.
    #[serde(default)]
    pub content_variables: Option<BTreeMap<String, String>>,
}
