//! Message templates: `{{name}}`, `{{attributes.city}}`, `{{event.discount}}` and
//! `{{ name | default("there") }}`, rendered with minijinja in strict mode (a placeholder with
//! no value and no default is an error, never an empty string in a customer's message; a
//! condition may test a value that is not there, `{% if attributes.vip %}`).
//!
//! - At save time, [`check`] refuses a draft whose content or content variables do not parse
//!   (or call an unknown filter, test or function), with the field, line and column, and
//!   answers the placeholders it uses.
//! - For a campaign run, [`CompiledTemplate`] parses a template once; a [`RenderContext`] per
//!   recipient (user fields, attributes, event data) renders the body and the content
//!   variables. A missing value comes back as [`RenderError::MissingPlaceholder`] naming the
//!   placeholders, for the recipient's audit entry.
//!
//! ```
//! use messaging_core::template::{CompiledTemplate, RenderContext, RenderError};
//! use serde_json::{Map, json};
//!
//! let template = CompiledTemplate::from_parts(
//!     r#"Hi {{ name | default("there") }}, {{ event.discount }}% off in {{ attributes.city }}!"#,
//!     None,
//! )?;
//! let mut attributes = Map::new();
//! attributes.insert("city".into(), json!("Colombo"));
//! let mut event = Map::new();
//! event.insert("discount".into(), json!(20));
//!
//! let ctx = RenderContext::from_attributes(None, attributes).with_event(event);
//! assert_eq!(template.render_body(&ctx)?, "Hi there, 20% off in Colombo!");
//!
//! let without_event = RenderContext::from_attributes(Some("Ana".into()), Map::new());
//! let err = template.render_body(&without_event).unwrap_err();
//! assert!(matches!(err, RenderError::MissingPlaceholder { .. }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod calls;
mod compiled;
mod context;
mod error;
mod simple;
#[cfg(test)]
mod tests;

pub use compiled::{CompiledTemplate, MAX_RENDERED_CHARS, RENDER_FUEL, Rendered};
pub use context::{PLACEHOLDER_ROOTS, RenderContext};
pub use error::{RenderError, TemplateError};

use crate::domain::TemplateDraft;

/// The longest template text accepted, in characters (a message is at most 1,600).
pub const MAX_TEMPLATE_CHARS: usize = 10_000;

/// The longest content variable accepted, in characters.
pub const MAX_VARIABLE_CHARS: usize = 1_000;

/// The most content variables a template may have.
pub const MAX_VARIABLES: usize = 100;

/// Validates a draft before it is saved and answers the placeholders it uses (sorted,
/// de-duplicated dotted paths such as `attributes.city`), for the template's `placeholders`.
///
/// Refuses a syntax error or an unknown filter, test or function in the content or in any
/// content variable (`field` is `content` or `content_variables.KEY`), and an empty content
/// unless the draft names an approved template by `content_sid`. Placeholders outside
/// [`PLACEHOLDER_ROOTS`] are allowed; they simply never have a value.
pub fn check(draft: &TemplateDraft) -> Result<Vec<String>, TemplateError> {
    let has_content_sid = draft
        .content_sid
        .as_deref()
        .is_some_and(|sid| !sid.trim().is_empty());
    if draft.content.trim().is_empty() && !has_content_sid {
        return Err(TemplateError {
            field: "content".into(),
            line: 1,
            column: 1,
            message: "the message text is empty; write it, or set content_sid to send an \
                      approved template"
                .into(),
        });
    }
    let too_long = |field: String, limit: usize| TemplateError {
        field,
        line: 1,
        column: limit + 1,
        message: format!("longer than {limit} characters"),
    };
    if draft.content.chars().count() > MAX_TEMPLATE_CHARS {
        return Err(too_long("content".into(), MAX_TEMPLATE_CHARS));
    }
    let variables = draft.content_variables.iter().flatten();
    if variables.clone().count() > MAX_VARIABLES {
        return Err(TemplateError {
            field: "content_variables".into(),
            line: 1,
            column: 1,
            message: format!("more than {MAX_VARIABLES} variables"),
        });
    }
    for (key, value) in variables {
        if value.chars().count() > MAX_VARIABLE_CHARS {
            return Err(too_long(
                format!("content_variables.{key}"),
                MAX_VARIABLE_CHARS,
            ));
        }
    }
    let compiled = CompiledTemplate::from_parts(&draft.content, draft.content_variables.as_ref())?;
    // Rendered once with no data: a text that is too long or too much work without any data
    // is so for every recipient, and is refused now rather than at every send.
    let no_data = RenderContext::from_attributes(None, serde_json::Map::new());
    if let Err(error) = compiled.render(&no_data)
        && let RenderError::TooLong { field, .. } | RenderError::TooMuchWork { field, .. } = &error
    {
        return Err(TemplateError {
            field: field.clone(),
            line: 1,
            column: 1,
            message: error.to_string(),
        });
    }
    Ok(compiled.placeholders().to_vec())
}
