//! Turns one input row (CSV cells or a JSON object) into a [`UserUpsert`], collecting every
//! field's problem rather than stopping at the first.

use std::collections::HashSet;

use serde_json::{Number, Value};

use super::pipeline::Sink;

use crate::domain::{
    AttributePatch, Attributes, Consent, FieldError, PhoneNumber, TimeZone, Topic, UserChanges,
    UserUpsert, check_short_text, json_kind,
};

/// What a column or key of an input row means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UserField {
    Phone,
    Name,
    WaId,
    Consent,
    Attributes,
    Timezone,
    Locale,
    Topics,
    /// Any other column: becomes an attribute of this name.
    Attribute(String),
}

impl UserField {
    /// Maps a CSV header or JSON key to its meaning. `has_phone_column` decides whether an
    /// `id` column is the phone (the prototype's files) or just an attribute.
    pub(crate) fn from_name(name: &str, has_phone_column: bool) -> Self {
        match name.trim().to_ascii_lowercase().as_str() {
            "phone" | "phone_number" => Self::Phone,
            "id" if !has_phone_column => Self::Phone,
            "name" => Self::Name,
            "wa_id" => Self::WaId,
            "consent_state" | "consent" => Self::Consent,
            "attributes" => Self::Attributes,
            "timezone" | "time_zone" | "tz" => Self::Timezone,
            "locale" => Self::Locale,
            "topics" | "topic" => Self::Topics,
            _ => Self::Attribute(name.trim().to_owned()),
        }
    }

    pub(crate) fn label(&self) -> &str {
        match self {
            Self::Phone => "phone",
            Self::Name => "name",
            Self::WaId => "wa_id",
            Self::Consent => "consent_state",
            Self::Attributes => "attributes",
            Self::Timezone => "timezone",
            Self::Locale => "locale",
            Self::Topics => "topics",
            Self::Attribute(name) => name,
        }
    }
}

/// Accumulates one row's fields.
#[derive(Default)]
pub(crate) struct UserRow {
    phone: Option<PhoneNumber>,
    changes: UserChanges,
    /// The `attributes` field.
    attributes: Attributes,
    /// Extra columns, applied over the `attributes` field whatever the column order.
    extra: Attributes,
    errors: Vec<FieldError>,
}

impl UserRow {
    /// Sets a field from CSV text. Empty cells mean "no value".
    pub(crate) fn set_text(&mut self, field: &UserField, text: &str) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        match field {
            UserField::Attributes => match serde_json::from_str::<Value>(text) {
                Ok(value) => self.set_attributes(value),
                Err(e) => self.error(field, format!("not valid JSON ({e})")),
            },
            UserField::Topics => self.set_topics(text.split(is_topic_separator)),
            UserField::Attribute(name) => {
                self.extra.insert(name.clone(), infer_scalar(text));
            }
            _ => self.set_string(field, text),
        }
    }

    /// Sets a field from a JSON value. `null` means "no value".
    pub(crate) fn set_json(&mut self, field: &UserField, value: Value) {
        match (field, value) {
            (_, Value::Null) => {}
            (UserField::Attributes, Value::String(text)) => self.set_text(field, &text),
            (UserField::Attributes, value) => self.set_attributes(value),
            (UserField::Topics, Value::String(text)) => {
                self.set_topics(text.split(is_topic_separator))
            }
            (UserField::Topics, Value::Array(items)) => {
                let mut names = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::String(name) => names.push(name),
                        other => {
                            return self.error(
                                field,
                                format!("expected topic names, found {}", json_kind(&other)),
                            );
                        }
                    }
                }
                self.set_topics(names.iter().map(String::as_str));
            }
            (UserField::Attribute(name), value) => {
                self.extra.insert(name.clone(), value);
            }
            (UserField::WaId, Value::Number(n)) => self.set_string(field, &n.to_string()),
            (_, Value::String(text)) => {
                if !text.trim().is_empty() {
                    self.set_string(field, text.trim())
                }
            }
            (_, other) => self.error(
                field,
                format!("expected a string, found {}", json_kind(&other)),
            ),
        }
    }

    fn set_string(&mut self, field: &UserField, text: &str) {
        match field {
            UserField::Phone => match PhoneNumber::parse(text) {
                Ok(phone) => self.phone = Some(phone),
                Err(e) => self.error(field, format!("{e} (got {text:?})")),
            },
            UserField::Name | UserField::WaId | UserField::Locale => {
                if let Err(problem) = check_short_text(field.label(), text) {
                    return self.errors.push(problem);
                }
                let slot = match field {
                    UserField::Name => &mut self.changes.name,
                    UserField::WaId => &mut self.changes.wa_id,
                    _ => &mut self.changes.locale,
                };
                *slot = Some(text.to_owned());
            }
            UserField::Consent => match Consent::parse(text) {
                Ok(consent) => self.changes.consent_state = Some(consent),
                Err(e) => self.error(field, e.to_string()),
            },
            UserField::Timezone => match TimeZone::parse(text) {
                Ok(tz) => self.changes.timezone = Some(tz),
                Err(e) => self.error(field, e.to_string()),
            },
            UserField::Attributes | UserField::Topics | UserField::Attribute(_) => {
                unreachable!("handled by set_text/set_json")
            }
        }
    }

    fn set_attributes(&mut self, value: Value) {
        match value {
            Value::Object(map) => self.attributes.extend(map),
            other => self.error(
                &UserField::Attributes,
                format!("expected a JSON object, found {}", json_kind(&other)),
            ),
        }
    }

    fn set_topics<'a>(&mut self, names: impl Iterator<Item = &'a str>) {
        for name in names.map(str::trim).filter(|n| !n.is_empty()) {
            match Topic::parse(name) {
                Ok(topic) if !self.changes.topics.contains(&topic) => {
                    self.changes.topics.push(topic)
                }
                Ok(_) => {}
                Err(e) => return self.error(&UserField::Topics, e.to_string()),
            }
        }
    }

    fn error(&mut self, field: &UserField, reason: impl Into<String>) {
        self.errors.push(FieldError::new(field.label(), reason));
    }

    /// Notes a problem that concerns the whole row.
    pub(crate) fn row_error(&mut self, field: &str, reason: impl Into<String>) {
        self.errors.push(FieldError::new(field, reason));
    }

    /// Hands the finished row to `sink`, as a user (a repeat when its phone is in `seen`) or
    /// as an invalid row; `false` when the writer has stopped.
    pub(crate) fn deliver(
        self,
        line: u64,
        sink: &mut Sink<UserUpsert>,
        seen: &mut HashSet<u64>,
    ) -> bool {
        match self.finish() {
            Ok(user) => {
                let repeat = !seen.insert(user.phone.as_u64());
                sink.valid(user, repeat).is_ok()
            }
            Err(errors) => {
                sink.invalid(line, errors);
                true
            }
        }
    }

    /// The finished row, or every problem found in it.
    pub(crate) fn finish(mut self) -> Result<UserUpsert, Vec<FieldError>> {
        if self.phone.is_none() && !self.errors.iter().any(|e| e.field == "phone") {
            self.errors.insert(
                0,
                FieldError::new("phone", "missing; every user needs a phone number (E.164)"),
            );
        }
        match self.phone {
            Some(phone) if self.errors.is_empty() => {
                self.attributes.extend(self.extra);
                self.changes.attributes = AttributePatch::new(self.attributes);
                Ok(UserUpsert {
                    phone,
                    changes: self.changes,
                })
            }
            _ => Err(self.errors),
        }
    }
}

fn is_topic_separator(c: char) -> bool {
    matches!(c, ';' | ',' | '|') || c.is_whitespace()
}

/// A CSV cell of an extra column becomes a number or boolean when it plainly is one, so that
/// segments can compare it (`age gte 18`); anything else (including `007` or `+44…`) stays text.
fn infer_scalar(text: &str) -> Value {
    match text {
        "true" | "TRUE" | "True" => return Value::Bool(true),
        "false" | "FALSE" | "False" => return Value::Bool(false),
        _ => {}
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    let plain_number = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().filter(|b| *b == b'.').count() <= 1
        && !digits.starts_with('.')
        && !digits.ends_with('.')
        && !(digits.len() > 1 && digits.starts_with('0') && !digits.starts_with("0."));
    if plain_number {
        if let Ok(n) = text.parse::<i64>() {
            return Value::Number(n.into());
        }
        // Decimals only while a double holds them exactly enough; a 20-digit id stays text
        // rather than turning into 1.2345678901234567e19.
        let significant = digits.bytes().filter(u8::is_ascii_digit).count();
        if digits.contains('.') && significant <= 15 {
            if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
                return Value::Number(n);
            }
        }
    }
    Value::String(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn infers_plain_numbers_and_booleans_only() {
        assert_eq!(infer_scalar("42"), json!(42));
        assert_eq!(infer_scalar("-3.5"), json!(-3.5));
        assert_eq!(infer_scalar("true"), json!(true));
        assert_eq!(infer_scalar("007"), json!("007"));
        assert_eq!(infer_scalar("+4412"), json!("+4412"));
        assert_eq!(infer_scalar("1e5"), json!("1e5"));
        assert_eq!(infer_scalar("0.5"), json!(0.5));
        assert_eq!(
            infer_scalar("12345678901234567890"),
            json!("12345678901234567890")
        );
        assert_eq!(
            infer_scalar("3.14159265358979323846"),
            json!("3.14159265358979323846")
        );
        assert_eq!(infer_scalar("Colombo"), json!("Colombo"));
    }

    #[test]
    fn collects_every_field_error() {
        let mut row = UserRow::default();
        row.set_text(&UserField::Phone, "12345");
        row.set_text(&UserField::Consent, "maybe");
        row.set_text(&UserField::Attributes, "{oops");
        let errors = row.finish().unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["phone", "consent_state", "attributes"]);
    }

    #[test]
    fn control_characters_in_names_make_the_row_invalid() {
        let mut row = UserRow::default();
        row.set_text(&UserField::Phone, "+94771234567");
        row.set_text(&UserField::Name, "Ann\u{0}");
        row.set_json(&UserField::Locale, json!("en\u{1b}"));
        let errors = row.finish().unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "locale"]);
        assert!(errors[0].reason.contains("control character U+0000"));
    }

    #[test]
    fn extra_columns_override_the_attributes_field() {
        let mut row = UserRow::default();
        row.set_text(&UserField::Attribute("city".into()), "Kandy");
        row.set_text(
            &UserField::Attributes,
            r#"{"city": "Colombo", "tier": "gold", "x": null}"#,
        );
        row.set_text(&UserField::Phone, "+94771234567");
        let user = row.finish().unwrap();
        assert_eq!(
            Value::Object(user.changes.attributes.to_attributes()),
            json!({"city": "Kandy", "tier": "gold"})
        );
    }

    #[test]
    fn id_is_the_phone_only_without_a_phone_column() {
        assert_eq!(UserField::from_name("id", false), UserField::Phone);
        assert_eq!(
            UserField::from_name("ID", true),
            UserField::Attribute("ID".into())
        );
        assert_eq!(
            UserField::from_name(" Consent_State ", true),
            UserField::Consent
        );
    }
}
