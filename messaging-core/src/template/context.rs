//! [`RenderContext`]: what a template can see about one recipient — the user's fields, their
//! attributes and, for event-triggered campaigns, the event's data.
//!
//! A value the recipient does not have is left out rather than set to null, so that
//! `{{ name | default("there") }}` falls back and a bare `{{ name }}` is reported as a missing
//! placeholder instead of printing `none` into a customer's message. JSON nulls inside
//! attributes and event data are dropped for the same reason.
//!
//! `attributes` and `event` are always there, empty when the recipient has no attributes or
//! the message has no triggering event (a manual launch, a reply, a preview without event
//! data): `{{ event.venue | default("our next event") }}` then falls back the same way
//! everywhere, instead of failing on an `event` that is not there at all.
//!
//! The context hands minijinja an object that looks values up when the template reads them:
//! a fan-out renders a million recipients, and converting every field of every user into
//! minijinja values up front (most of which a template never reads) cost more than rendering.

use std::sync::Arc;

use minijinja::value::{DynObject, Enumerator, Object, ObjectRepr};
use serde_json::{Map, Value};

use crate::domain::{Attributes, Consent, PhoneNumber, TimeZone, Topic, User};

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
/// render any number of templates with it; cloning it is cheap.
#[derive(Debug, Clone)]
pub struct RenderContext {
    fields: Arc<Fields>,
}

/// What a context holds; `None` is a value the recipient does not have.
#[derive(Debug, Clone, Default)]
struct Fields {
    phone: Option<PhoneNumber>,
    name: Option<String>,
    wa_id: Option<String>,
    consent_state: Option<Consent>,
    attributes: JsonObject,
    timezone: Option<TimeZone>,
    locale: Option<String>,
    topics: Option<Vec<Topic>>,
    /// The triggering event's data; empty without one.
    event: JsonObject,
}

/// A JSON object as templates see it: its null members are absent. Shared, not copied, by
/// every value that refers to it (one event's data serves all recipients of its run).
#[derive(Debug, Clone, Default)]
struct JsonObject(Arc<Map<String, Value>>);

impl RenderContext {
    /// Everything a stored user offers: `phone`, `name`, `wa_id`, `consent_state`
    /// (`OPT_IN`/`OPT_OUT`), `attributes`, `timezone`, `locale` and `topics`.
    pub fn for_user(user: &User) -> Self {
        Self::from_user(user.clone())
    }

    /// [`RenderContext::for_user`] for a user the caller no longer needs: nothing is copied.
    pub fn from_user(user: User) -> Self {
        Self::from_fields(Fields {
            phone: Some(user.phone),
            name: user.name,
            wa_id: user.wa_id,
            consent_state: Some(user.consent_state),
            attributes: JsonObject(Arc::new(user.attributes)),
            timezone: user.timezone,
            locale: user.locale,
            topics: Some(user.topics),
            event: JsonObject::default(),
        })
    }

    /// A context without a stored user, for previews from given attributes: only `name` (when
    /// given) and `attributes` are set.
    pub fn from_attributes(name: Option<String>, attributes: Attributes) -> Self {
        Self::from_fields(Fields {
            name,
            attributes: JsonObject(Arc::new(attributes)),
            ..Fields::default()
        })
    }

    /// Adds the data of the triggering event as `event` (`{{ event.discount }}`). Pass an
    /// `Arc` to share one event's data between the contexts of all its recipients.
    pub fn with_event(mut self, event: impl Into<Arc<Map<String, Value>>>) -> Self {
        Arc::make_mut(&mut self.fields).event = JsonObject(event.into());
        self
    }

    /// Whether the dotted `placeholder` (`attributes.city`) has a value in this context.
    pub fn contains(&self, placeholder: &str) -> bool {
        let mut segments = placeholder.split('.');
        let Some(root) = segments.next() else {
            return false;
        };
        let fields = &self.fields;
        let object = match root {
            "attributes" => &fields.attributes,
            "event" => &fields.event,
            // Scalars and the topic list have nothing below them.
            _ => return segments.next().is_none() && fields.get(root).is_some(),
        };
        let Some(first) = segments.next() else {
            return true;
        };
        let mut current = object.get(first);
        for segment in segments {
            current = match current {
                Some(Value::Object(object)) => object.get(segment).filter(|v| !v.is_null()),
                _ => None,
            };
        }
        current.is_some()
    }

    /// The context as minijinja sees it; cloning it is cheap.
    pub(super) fn value(&self) -> minijinja::Value {
        minijinja::Value::from_dyn_object(DynObject::new(Arc::clone(&self.fields)))
    }

    fn from_fields(fields: Fields) -> Self {
        Self {
            fields: Arc::new(fields),
        }
    }
}

impl Fields {
    /// The value of the top-level name `key`, converted only now that a template reads it.
    fn get(&self, key: &str) -> Option<minijinja::Value> {
        use minijinja::Value as V;
        match key {
            "phone" => self.phone.as_ref().map(|phone| V::from(phone.as_str())),
            "name" => self.name.as_deref().map(V::from),
            "wa_id" => self.wa_id.as_deref().map(V::from),
            "consent_state" => self.consent_state.map(|consent| V::from(consent.as_str())),
            "attributes" => Some(V::from_object(self.attributes.clone())),
            "timezone" => self.timezone.map(|zone| V::from(zone.name())),
            "locale" => self.locale.as_deref().map(V::from),
            "topics" => self.topics.as_ref().map(|topics| {
                V::from(
                    topics
                        .iter()
                        .map(|topic| V::from(topic.as_str()))
                        .collect::<Vec<_>>(),
                )
            }),
            "event" => Some(V::from_object(self.event.clone())),
            _ => None,
        }
    }
}

impl Object for Fields {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        self.get(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<minijinja::Value> {
        self.get(key)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        // Sorted, as a map built from the same fields would list them.
        let mut names: Vec<&'static str> = PLACEHOLDER_ROOTS
            .into_iter()
            .filter(|name| self.get(name).is_some())
            .collect();
        names.sort_unstable();
        Enumerator::Values(names.into_iter().map(minijinja::Value::from).collect())
    }
}

impl JsonObject {
    /// The member `key`, unless it is absent or null.
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|value| !value.is_null())
    }
}

impl Object for JsonObject {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        self.get_value_by_str(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<minijinja::Value> {
        self.get(key).map(to_template_value)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        // Sorted whatever order the map keeps, as minijinja's own maps are.
        let mut keys: Vec<&String> = self
            .0
            .iter()
            .filter(|(_, value)| !value.is_null())
            .map(|(key, _)| key)
            .collect();
        keys.sort_unstable();
        Enumerator::Values(
            keys.into_iter()
                .map(|key| minijinja::Value::from(key.as_str()))
                .collect(),
        )
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.0.values().filter(|value| !value.is_null()).count())
    }
}

/// A JSON value as a template value; objects lose their null members (at any depth), arrays
/// keep theirs, since positions mean something.
///
/// Written out rather than through minijinja's serde conversion: numbers are kept exactly as
/// written (serde_json's `arbitrary_precision`), which that conversion would see as a map.
fn to_template_value(value: &Value) -> minijinja::Value {
    match value {
        Value::Null => minijinja::Value::from(()),
        Value::String(text) => minijinja::Value::from(text.as_str()),
        Value::Bool(flag) => minijinja::Value::from(*flag),
        Value::Number(number) => number_value(number),
        Value::Array(items) => {
            minijinja::Value::from(items.iter().map(to_template_value).collect::<Vec<_>>())
        }
        Value::Object(object) => object
            .iter()
            .filter(|(_, value)| !value.is_null())
            .map(|(key, value)| (key.as_str(), to_template_value(value)))
            .collect(),
    }
}

/// A number as the integer it is when it is one (up to 128 bits, so a 22-digit id prints
/// whole), else as a float.
fn number_value(number: &serde_json::Number) -> minijinja::Value {
    if let Some(unsigned) = number.as_u64() {
        return minijinja::Value::from(unsigned);
    }
    if let Some(signed) = number.as_i64() {
        return minijinja::Value::from(signed);
    }
    if let Ok(wide) = number.to_string().parse::<i128>() {
        return minijinja::Value::from(wide);
    }
    minijinja::Value::from(number.as_f64().unwrap_or(f64::NAN))
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
        // No event: `event` is there, with nothing in it.
        assert!(ctx.contains("event"));
        assert!(!ctx.contains("event.venue"));
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
