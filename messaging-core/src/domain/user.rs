//! [`User`], the person messages go to, and [`UserChanges`], what an import or an API call
//! wants to change about one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Consent, FieldError, PhoneNumber, TimeZone, Topic};

/// Free-form user attributes (`{"city": "Colombo", "tier": "gold"}`).
pub type Attributes = Map<String, Value>;

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// E.164 phone number; the user's key.
    pub phone: PhoneNumber,
    /// Display name, used as `{{name}}` in templates.
    pub name: Option<String>,
    /// WhatsApp id as Twilio reports it (`WaId`), usually the number without `+`.
    pub wa_id: Option<String>,
    /// Whether campaigns may reach the user.
    pub consent_state: Consent,
    /// Free-form attributes, available as `{{attributes.KEY}}`.
    pub attributes: Attributes,
    /// IANA time zone; quiet hours are counted in it.
    pub timezone: Option<TimeZone>,
    /// Preferred locale (`en`, `si-LK`…).
    pub locale: Option<String>,
    /// Topics the user is subscribed to (read-only here; change them through subscriptions).
    pub topics: Vec<Topic>,
    /// When the user last wrote to us: opens WhatsApp's 24-hour window.
    pub last_inbound_at: Option<DateTime<Utc>>,
    /// When the user was first stored.
    pub created_at: DateTime<Utc>,
    /// When the user last changed.
    pub updated_at: DateTime<Utc>,
}

/// Changes to one user, keyed by phone. `None` means "leave as it is"; attributes are merged
/// key by key into the stored ones (later values win); topics are added as subscriptions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserChanges {
    /// New display name.
    pub name: Option<String>,
    /// New WhatsApp id.
    pub wa_id: Option<String>,
    /// New consent state (new users default to `OPT_IN`).
    pub consent_state: Option<Consent>,
    /// Attributes to merge in.
    pub attributes: AttributePatch,
    /// New time zone.
    pub timezone: Option<TimeZone>,
    /// New locale.
    pub locale: Option<String>,
    /// Topics to subscribe the user to.
    pub topics: Vec<Topic>,
}

impl UserChanges {
    /// Every problem of the text fields (name, WhatsApp id, locale), named by field; empty
    /// when there is none. See [`check_short_text`].
    pub fn problems(&self) -> Vec<FieldError> {
        [
            ("name", &self.name),
            ("wa_id", &self.wa_id),
            ("locale", &self.locale),
        ]
        .into_iter()
        .filter_map(|(field, text)| check_short_text(field, text.as_deref()?).err())
        .collect()
    }
}

/// Checks a one-line text field of a user (a name, a WhatsApp id, a locale): control
/// characters (NUL, tab, line breaks, escape…) are refused, since they only ever arrive by
/// mistake (a UTF-16 file read as UTF-8, a copied terminal line) and would end up in messages.
pub fn check_short_text(field: &str, text: &str) -> Result<(), FieldError> {
    match text.chars().enumerate().find(|(_, c)| c.is_control()) {
        None => Ok(()),
        Some((position, c)) => Err(FieldError::new(
            field,
            format!(
                "contains the control character U+{:04X} at character {}; {field} must be \
                 plain text on one line",
                u32::from(c),
                position + 1
            ),
        )),
    }
}

/// Attributes to merge into a user's, held as compact JSON object text: an import keeps tens of
/// thousands of these in flight, and text is a fraction of the size of a parsed map. Nulls are
/// dropped on the way in ("no value" everywhere in this product), so merging never deletes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AttributePatch(Option<String>);

impl AttributePatch {
    /// A patch of these attributes.
    pub fn new(attributes: Attributes) -> Self {
        let Value::Object(attributes) = without_nulls(Value::Object(attributes)) else {
            unreachable!("an object stays an object")
        };
        if attributes.is_empty() {
            return Self(None);
        }
        Self(Some(Value::Object(attributes).to_string()))
    }

    /// Whether there is nothing to merge.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The patch as JSON object text (`{}` when empty).
    pub fn as_json(&self) -> &str {
        self.0.as_deref().unwrap_or("{}")
    }

    /// The patch as a map.
    pub fn to_attributes(&self) -> Attributes {
        self.0
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default()
    }
}

impl From<Attributes> for AttributePatch {
    fn from(attributes: Attributes) -> Self {
        Self::new(attributes)
    }
}

/// Drops `null` members of objects, at every depth.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        other => other,
    }
}

/// A [`UserChanges`] whose phone is known: what the store writes.
#[derive(Debug, Clone, PartialEq)]
pub struct UserUpsert {
    /// Which user.
    pub phone: PhoneNumber,
    /// Everything else that changes.
    pub changes: UserChanges,
}

/// What writing one [`UserUpsert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertOutcome {
    /// The user did not exist and was created.
    Inserted,
    /// The user existed and was merged into.
    Updated,
}

/// A user's subscription to a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// The subscriber.
    pub phone: PhoneNumber,
    /// The topic.
    pub topic: Topic,
    /// Since when.
    pub subscribed_at: DateTime<Utc>,
}

/// A topic with how many users follow it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSummary {
    /// The topic.
    pub topic: Topic,
    /// How many users are subscribed.
    pub subscribers: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_text_fields_refuse_control_characters() {
        assert!(check_short_text("name", "Amaya Perera-Silva, Jr. 😀").is_ok());
        let error = check_short_text("name", "Ann\u{0}ie").unwrap_err();
        assert_eq!(error.field, "name");
        assert!(
            error.reason.contains("U+0000 at character 4"),
            "{}",
            error.reason
        );
        for text in ["a\tb", "a\nb", "\u{1b}[31m", "x\u{7f}", "\u{85}"] {
            assert!(check_short_text("name", text).is_err(), "{text:?}");
        }
        let changes = UserChanges {
            name: Some("A\u{0}".into()),
            wa_id: Some("123".into()),
            locale: Some("en\r".into()),
            ..UserChanges::default()
        };
        let fields: Vec<String> = changes.problems().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["name", "locale"]);
    }

    #[test]
    fn attribute_patches_drop_nulls_at_every_depth() {
        let Value::Object(map) = json!({"a": 1, "b": null, "c": {"d": null, "e": 2}}) else {
            unreachable!()
        };
        let patch = AttributePatch::new(map);
        assert_eq!(
            Value::Object(patch.to_attributes()),
            json!({"a": 1, "c": {"e": 2}})
        );
        assert!(AttributePatch::new(Attributes::new()).is_empty());
        assert_eq!(AttributePatch::default().as_json(), "{}");
    }
}
