//! [`TriggerEvent`]: something that happened and may start campaigns, in the prototype's shape
//! (`alert_name`, `segment_rule`, `trigger_data`) or as a user event (`user`, `name`, `data`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{EventId, FieldError, PhoneNumber};
use crate::segment::SegmentRule;

/// A trigger event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerEvent {
    /// Our id.
    pub id: EventId,
    /// The sender's own id for the event; an event whose id was already recorded is a
    /// duplicate and triggers nothing again.
    pub external_id: Option<String>,
    /// What happened: the `alert_name`, `event_type` or `name` field.
    pub name: String,
    /// The user it is about, for user events.
    pub user: Option<PhoneNumber>,
    /// Narrows the recipients of the campaigns it triggers.
    pub segment_rule: Option<SegmentRule>,
    /// Its data, available to templates as `{{event.KEY}}` (`trigger_data` or `data`).
    pub data: Map<String, Value>,
    /// When it happened (the event's `occurred_at` or `timestamp`, else when it was received).
    pub occurred_at: DateTime<Utc>,
    /// When we received it.
    pub received_at: DateTime<Utc>,
}

impl TriggerEvent {
    /// Parses an event from a JSON object, collecting every field's problem.
    pub fn from_json(value: Value, received_at: DateTime<Utc>) -> Result<Self, Vec<FieldError>> {
        let Value::Object(mut object) = value else {
            return Err(vec![FieldError::new("", "an event must be a JSON object")]);
        };
        let mut errors = Vec::new();
        let mut text = |object: &mut Map<String, Value>, field: &str| match object.remove(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(s),
            Some(Value::Number(n)) if field == "id" => Some(n.to_string()),
            Some(other) => {
                errors.push(FieldError::new(
                    field,
                    format!("expected a string, found {}", kind(&other)),
                ));
                None
            }
        };
        let external_id = text(&mut object, "id");
        let alert_name = text(&mut object, "alert_name");
        let event_type = text(&mut object, "event_type");
        let plain_name = text(&mut object, "name");
        let user_text = text(&mut object, "user").or_else(|| text(&mut object, "phone"));
        let occurred_text =
            text(&mut object, "occurred_at").or_else(|| text(&mut object, "timestamp"));

        let name = alert_name.or(event_type).or(plain_name);
        if name.is_none() {
            errors.push(FieldError::new(
                "name",
                "an event needs a name: give alert_name, event_type or name",
            ));
        }
        let user = user_text.and_then(|t| match PhoneNumber::parse(&t) {
            Ok(phone) => Some(phone),
            Err(e) => {
                errors.push(FieldError::new("user", e.to_string()));
                None
            }
        });
        let occurred_at =
            occurred_text.and_then(|t| match DateTime::parse_from_rfc3339(t.trim()) {
                Ok(at) => Some(at.with_timezone(&Utc)),
                Err(e) => {
                    errors.push(FieldError::new(
                        "occurred_at",
                        format!("not an RFC 3339 time ({e})"),
                    ));
                    None
                }
            });
        let segment_rule = match object.remove("segment_rule") {
            None | Some(Value::Null) => None,
            Some(rule) => match SegmentRule::parse(&rule) {
                Ok(rule) => Some(rule),
                Err(e) => {
                    errors.push(FieldError::new("segment_rule", e.to_string()));
                    None
                }
            },
        };
        let data = match object
            .remove("trigger_data")
            .or_else(|| object.remove("data"))
        {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map,
            Some(other) => {
                errors.push(FieldError::new(
                    "trigger_data",
                    format!("expected a JSON object, found {}", kind(&other)),
                ));
                Map::new()
            }
        };
        match (name, errors.is_empty()) {
            (Some(name), true) => Ok(Self {
                id: EventId::new(),
                external_id,
                name,
                user,
                segment_rule,
                data,
                occurred_at: occurred_at.unwrap_or(received_at),
                received_at,
            }),
            _ => Err(errors),
        }
    }

    /// Whether this event starts a campaign listening for `trigger_name` (compared without
    /// regard to case or surrounding spaces).
    pub fn matches(&self, trigger_name: &str) -> bool {
        self.name.trim().eq_ignore_ascii_case(trigger_name.trim())
    }

    /// The trigger key of the run this event opens in each campaign listening for it
    /// (`event:<event id>`). A run's key is unique per campaign, so this key is what lets an
    /// event open at most one run per campaign: the store writes it when it records the event
    /// and the fan-out asks for the run by it again, so both must take it from here or one
    /// event would open two runs.
    pub fn run_trigger_key(&self) -> String {
        format!("event:{}", self.id)
    }
}

/// Names a JSON value's type for error messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn reads_the_prototypes_alert_shape() {
        let event = TriggerEvent::from_json(
            json!({"segment_rule": {"topic": "DANCE"}, "alert_name": "Dance Festival",
                   "trigger_data": {"venue": "Galle Face"}}),
            now(),
        )
        .unwrap();
        assert_eq!(event.name, "Dance Festival");
        assert!(event.segment_rule.is_some());
        assert_eq!(event.data["venue"], "Galle Face");
        assert_eq!(event.occurred_at, now());
        assert!(event.matches("dance festival "));
    }

    #[test]
    fn each_event_has_its_own_run_key() {
        let event = |_| TriggerEvent::from_json(json!({"name": "cart_abandoned"}), now()).unwrap();
        let (first, second) = (event(1), event(2));
        assert_eq!(first.run_trigger_key(), format!("event:{}", first.id));
        assert_eq!(first.run_trigger_key(), first.clone().run_trigger_key());
        assert_ne!(first.run_trigger_key(), second.run_trigger_key());
    }

    #[test]
    fn reads_user_events() {
        let event = TriggerEvent::from_json(
            json!({"id": "evt-1", "user": "+14155552671", "name": "cart_abandoned",
                   "data": {"discount": 10}, "occurred_at": "2026-02-28T09:00:00Z"}),
            now(),
        )
        .unwrap();
        assert_eq!(event.external_id.as_deref(), Some("evt-1"));
        assert_eq!(event.user.unwrap().as_str(), "+14155552671");
        assert_eq!(event.occurred_at.to_rfc3339(), "2026-02-28T09:00:00+00:00");
    }

    #[test]
    fn names_every_bad_field() {
        let errors = TriggerEvent::from_json(
            json!({"user": "12", "trigger_data": [1], "occurred_at": "yesterday"}),
            now(),
        )
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "user", "occurred_at", "trigger_data"]);
        assert!(TriggerEvent::from_json(json!([1]), now()).is_err());
    }
}
