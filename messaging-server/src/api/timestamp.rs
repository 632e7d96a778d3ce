//! Instants as the API writes them: RFC 3339 in UTC with milliseconds and `Z`
//! (`2026-12-01T23:18:51.123Z`), the same in every answer, whether the value was just
//! created (nanoseconds in memory) or read back from the store (milliseconds). Any RFC 3339
//! time is read, with any offset and precision.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

/// An instant in an answer or a request body (OpenAPI `string`, format `date-time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    /// The instant as the API writes it.
    pub fn to_api_string(&self) -> String {
        format(self.0)
    }
}

/// `at` as the API writes instants: UTC, milliseconds, `Z`.
pub fn format(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(at: DateTime<Utc>) -> Self {
        Self(at)
    }
}

impl From<Timestamp> for DateTime<Utc> {
    fn from(at: Timestamp) -> Self {
        at.0
    }
}

impl Type for Timestamp {
    const IS_REQUIRED: bool = true;

    type RawValueType = Self;

    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "string_date-time".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            example: Some(Value::String("2026-12-01T23:18:51.123Z".into())),
            ..MetaSchema::new_with_format("string", "date-time")
        }))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ToJSON for Timestamp {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.to_api_string()))
    }
}

impl ParseFromJSON for Timestamp {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(text) => DateTime::parse_from_rfc3339(text.trim())
                .map(|at| Self(at.with_timezone(&Utc)))
                .map_err(|e| ParseError::custom(format!("{text:?} is not an RFC 3339 time ({e})"))),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn instants_are_written_in_utc_with_milliseconds_and_z() {
        let at = Utc.timestamp_opt(1_796_167_131, 123_456_789).unwrap();
        assert_eq!(
            Timestamp(at).to_json(),
            Some(Value::String("2026-12-01T23:18:51.123Z".into()))
        );
        let whole = Utc.timestamp_opt(1_796_167_131, 0).unwrap();
        assert_eq!(Timestamp(whole).to_api_string(), "2026-12-01T23:18:51.000Z");
    }

    #[test]
    fn any_rfc3339_time_is_read() {
        let parsed = Timestamp::parse_from_json(Some(Value::String(
            "2026-12-02T04:48:51.123456+05:30".into(),
        )))
        .unwrap();
        assert_eq!(parsed.to_api_string(), "2026-12-01T23:18:51.123Z");
        assert!(Timestamp::parse_from_json(Some(Value::String("soon".into()))).is_err());
        assert!(Timestamp::parse_from_json(Some(Value::from(12))).is_err());
    }
}
