//! Trigger events from JSONL (one event per line; a JSON array works too).

use std::io::Read;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::IngestError;
use super::json_stream::for_each_object;
use super::pipeline::Sink;
use crate::domain::{FieldError, TriggerEvent};

/// Parses an events file into `sink`; every event is stamped as received at `received_at`.
pub(crate) fn parse_events<R: Read>(
    input: R,
    received_at: DateTime<Utc>,
    sink: &mut Sink<TriggerEvent>,
) -> Result<(), IngestError> {
    for_each_object(input, |line, record| {
        match record
            .map_err(|reason| vec![FieldError::new("", reason)])
            .and_then(|object| TriggerEvent::from_json(Value::Object(object), received_at))
        {
            // Repeated ids are recognised by the store, across files as well as within one.
            Ok(event) => sink.valid(event, false).is_ok(),
            Err(errors) => {
                sink.invalid(line, errors);
                true
            }
        }
    })
}
