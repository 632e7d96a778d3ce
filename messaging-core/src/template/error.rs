//! The two ways a template goes wrong: [`TemplateError`] when it is saved (bad syntax, an
//! unknown filter, no text at all), with the field, line and column an operator needs to fix it;
//! and [`RenderError`] when it meets one recipient, naming the placeholders the recipient has no
//! value for so the campaign engine can write "skipped: missing placeholder attributes.city".

use serde::Serialize;

/// A template refused at save time, pointing at the spot to fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}, line {line}, column {column}: {message}")]
pub struct TemplateError {
    /// Which text is wrong: `content`, or `content_variables.KEY` for one variable.
    pub field: String,
    /// 1-based line in that text.
    pub line: usize,
    /// 1-based column (in characters) in that line.
    pub column: usize,
    /// What is wrong (`unexpected end of input, expected end of variable block`).
    pub message: String,
}

impl TemplateError {
    /// An error at the byte `offset` of `source`, the text of `field`.
    pub(super) fn at(field: &str, source: &str, offset: usize, message: impl Into<String>) -> Self {
        let (line, column) = position(source, offset);
        Self {
            field: field.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }

    /// Translates minijinja's complaint about the text of `field`.
    pub(super) fn from_minijinja(field: &str, source: &str, err: &minijinja::Error) -> Self {
        let message = err
            .detail()
            .map_or_else(|| err.kind().to_string(), str::to_owned);
        match err.range() {
            Some(range) => Self::at(field, source, range.start, message),
            None => Self {
                field: field.to_owned(),
                line: err.line().unwrap_or(1),
                column: 1,
                message,
            },
        }
    }
}

/// Why a template could not be rendered for one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RenderError {
    /// The recipient has no value for these placeholders and the template gives no default.
    #[error("missing placeholder {}", placeholders.join(", "))]
    MissingPlaceholder {
        /// Dotted paths, e.g. `attributes.city`.
        placeholders: Vec<String>,
    },
    /// The rendered text would be longer than WhatsApp allows.
    #[error("{field} would be longer than {limit} characters, WhatsApp's limit for a message")]
    TooLong {
        /// `content`, or `content_variables.KEY`.
        field: String,
        /// The limit, in characters.
        limit: usize,
    },
    /// Rendering took more work than one message may (a loop too long, or without end).
    #[error(
        "{field} takes more work to render than a message may ({limit} steps): shorten its \
         loops"
    )]
    TooMuchWork {
        /// `content`, or `content_variables.KEY`.
        field: String,
        /// The limit, in minijinja instructions.
        limit: u64,
    },
    /// Anything else (adding a number to a text, calling a filter with the wrong arguments…).
    #[error("template could not be rendered: {message}")]
    Failed {
        /// minijinja's description, with the field and line (`… (in content:2)`).
        message: String,
    },
}

impl RenderError {
    /// Whether the template itself is at fault, whoever it is rendered for: it renders too
    /// long a text or takes too much work. (A missing placeholder depends on the recipient.)
    pub fn is_over_budget(&self) -> bool {
        matches!(self, Self::TooLong { .. } | Self::TooMuchWork { .. })
    }
}

/// 1-based line and character column of the byte `offset` in `source`.
fn position(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_counts_lines_and_characters_from_one() {
        assert_eq!(position("abc", 0), (1, 1));
        assert_eq!(position("abc\ndef", 5), (2, 2));
        assert_eq!(position("héllo {{", 7), (1, 7));
        assert_eq!(position("ab", 99), (1, 3));
    }

    #[test]
    fn template_error_displays_field_line_and_column() {
        let err = TemplateError::at("content", "Hello {{ name", 11, "unexpected end of input");
        assert_eq!(
            err.to_string(),
            "content, line 1, column 12: unexpected end of input"
        );
    }

    #[test]
    fn missing_placeholder_names_each_path() {
        let err = RenderError::MissingPlaceholder {
            placeholders: vec!["attributes.city".into(), "name".into()],
        };
        assert_eq!(err.to_string(), "missing placeholder attributes.city, name");
    }
}
