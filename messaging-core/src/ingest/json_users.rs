//! Users from JSON: an array of objects or one object per line, in the same field names as the
//! CSV header (unknown keys become attributes).

use std::collections::HashSet;
use std::io::Read;

use super::IngestError;
use super::json_stream::for_each_object;
use super::pipeline::Sink;
use super::user_row::{UserField, UserRow};
use crate::domain::{FieldError, UserUpsert};

/// Parses a users JSON file into `sink`.
pub(crate) fn parse_users_json<R: Read>(
    input: R,
    sink: &mut Sink<UserUpsert>,
) -> Result<(), IngestError> {
    let mut seen = HashSet::new();
    for_each_object(input, |line, record| match record {
        Err(reason) => {
            sink.invalid(line, vec![FieldError::new("", reason)]);
            true
        }
        Ok(object) => {
            let has_phone_key = object
                .keys()
                .any(|k| matches!(k.to_ascii_lowercase().as_str(), "phone" | "phone_number"));
            let mut row = UserRow::default();
            for (key, value) in object {
                row.set_json(&UserField::from_name(&key, has_phone_key), value);
            }
            row.deliver(line, &mut *sink, &mut seen)
        }
    })
}
