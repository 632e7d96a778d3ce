//! [`RenderContext`]: what a template can see about one recipient — the user's fields, their
//! attributes and, for event-triggered campaigns, the event's data.
//!
//! A value the recipient does not have is left out rather than set to null, so that
//! `{{ name | default("there") }}` falls back and a bare `{{ name }}` is reported as a missing
//! placeholder instead of printing `none` into a customer's message. JSON nulls inside
//! attributes and event data are dropped for the same reason.

use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::domain::{Attributes, User};

/// The top-level names a [`RenderContext`] can hold, in the order of the user resource.
/// Templates may name others (they are then always missing); editors can offer these.
pub const PLACEHOLDER_ROOTS: [&str; 9] = [
    "phone",
    "name",
    "wa_id",
    "consent_state",
    "attributes",
    "timezone",
    "locale",
    "topics",
    "event",
];

/// The values one recipient's message is rendered with. Build it once per recipient and
/// render any number of templates with it.
#[derive(Debug, Clone)]
pub struct RenderContext {
    /// The context as JSON, to answer which placeholders have a value.
    fields: Map<String, Value>,
    /// The same, converted for minijinja on first use (after every field is in), so that
    /// each render only clones a handle.
    value: OnceLock<minijinja::Value>,
}

impl RenderContext {
    /// Everything a stored user offers: `phone`, `name`, `wa_id`, `consent_state`
    /// (`OPT_IN`/`OPT_OUT`), `attributes`, `timezone`, `locale` and `topics`.
    pub fn for_user(user: &User) -> Self {
        let mut fields = Map::new();
        fields.insert("phone".into(), user.phone.as_str().into());
        insert_some(&mut fields, "name", user.name.clone());
        insert_some(&mut fields, "wa_id", user.wa_id.clone());
        fields.insert("consent_state".into(), user.consent_state.as_str().into());
        fields.insert("attributes".into(), without_nulls(&user.attributes).into());
        insert_some(
            &mut fields,
            "timezone",
            user.timezone.map(|tz| tz.name().to_owned()),
        );
        insert_some(&mut fields, "locale", user.locale.clone());
        let topics = user.topics.iter().map(|topic| topic.as_str().into());
        fields.insert("topics".into(), Value::Array(topics.collect()));
        Self::from_fields(fields)
    }

    /// A context without a stored user, for previews from given attributes: only `name` (when
    /// given) and `attributes` are set.
    pub fn from_attributes(name: Option<String>, attributes: Attributes) -> Self {
        let mut fields = Map::new();
        insert_some(&mut fields, "name", name);
        fields.insert("attributes".into(), without_nulls(&attributes).into());
        Self::from_fields(fields)
    }

    /// Adds the data of the triggering event as `event` (`{{ event.discount }}`).
    pub fn with_event(mut self, event: Map<String, Value>) -> Self {
        self.fields
            .insert("event".into(), without_nulls(&event).into());
        Self::from_fields(self.fields)
    }

    /// Whether the dotted `placeholder` (`attributes.city`) has a value in this context.
    pub fn contains(&self, placeholder: &str) -> bool {
        let mut segments = placeholder.split('.');
        let Some(root) = segments.next() else {
            return false;
        };
        let mut current = self.fields.get(root);
        for segment in segments {
            current = match current {
                Some(Value::Object(object)) => object.get(segment),
                _ => None,
            };
        }
        current.is_some()
    }

    /// The context as minijinja sees it; cloning it is cheap.
    pub(super) fn value(&self) -> &minijinja::Value {
        self.value
            .get_or_init(|| minijinja::Value::from_serialize(&self.fields))
    }

    fn from_fields(fields: Map<String, Value>) -> Self {
        Self {
            fields,
            value: OnceLock::new(),
        }
    }
}

fn insert_some(fields: &mut Map<String, Value>, key: &str, value: Option<String>) {
    if let Some(value) = value {
        fields.insert(key.to_owned(), value.into());
    }
}

/// A copy of `object` without null members, at any depth.
fn without_nulls(object: &Map<String, Value>) -> Map<String, Value> {
    object
        .iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, value)| (key.clone(), strip_nested_nulls(value)))
        .collect()
}

fn strip_nested_nulls(value: &Value) -> Value {
    match value {
        Value::Object(object) => Value::Object(without_nulls(object)),
        // Array positions mean something, so nulls stay in lists; objects inside are cleaned.
        Value::Array(items) => Value::Array(items.iter().map(strip_nested_nulls).collect()),
        other => other.clone(),
    }
}

/// Test fixtures shared by the template module's tests.
#[cfg(test)]
pub(super) mod fixtures {
    use chrono::Utc;
    use serde_json::{Map, Value};

    use crate::domain::{Consent, PhoneNumber, TimeZone, Topic, User};

    /// The JSON object `value` (a `json!({...})`).
    pub fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(object) => object,
            other => panic!("not an object: {other}"),
        }
    }

    /// An opted-in user `+14155552671` in Colombo, subscribed to DANCE.
    pub fn user(name: Option<&str>, attributes: Value) -> User {
        User {
            phone: PhoneNumber::parse("+14155552671").unwrap(),
            name: name.map(str::to_owned),
            wa_id: None,
            consent_state: Consent::OptIn,
            attributes: object(attributes),
            timezone: Some(TimeZone::parse("Asia/Colombo").unwrap()),
            locale: None,
            topics: vec![Topic::parse("dance").unwrap()],
            last_inbound_at: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::fixtures::{object, user};
    use super::*;

    #[test]
    fn user_fields_without_a_value_are_absent() {
        let ctx = RenderContext::for_user(&user(None, json!({"city": "Colombo"})));
        assert!(ctx.contains("phone"));
        assert!(ctx.contains("timezone"));
        assert!(ctx.contains("attributes.city"));
        assert!(!ctx.contains("name"));
        assert!(!ctx.contains("wa_id"));
        assert!(!ctx.contains("locale"));
        assert!(!ctx.contains("event"));
    }

    #[test]
    fn null_attributes_count_as_missing() {
        let attributes = object(json!({"city": null, "address": {"zip": null, "street": "Main"}}));
        let ctx = RenderContext::from_attributes(None, attributes);
        assert!(!ctx.contains("attributes.city"));
        assert!(!ctx.contains("attributes.address.zip"));
        assert!(ctx.contains("attributes.address.street"));
    }

    #[test]
    fn event_data_is_added_under_event() {
        let ctx = RenderContext::from_attributes(Some("Ana".into()), Map::new())
            .with_event(object(json!({"discount": 20, "code": null})));
        assert!(ctx.contains("name"));
        assert!(ctx.contains("event.discount"));
        assert!(!ctx.contains("event.code"));
        assert!(!ctx.contains("event.discount.value"));
    }

    #[test]
    fn context_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RenderContext>();
    }
}
