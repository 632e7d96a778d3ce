//! Users from JSON: an array of objects or one object per line, in the same field names as the
//! CSV header (unknown keys become attributes).

use std::collections::HashSet;
use std::io::Read;

use super::json_stream::for_each_object;
use super::pipeline::Sink;
use super::user_row::{UserField, UserRow};
use super::{IngestError, MAX_FIELDS};
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
        Ok(object) if object.len() > MAX_FIELDS => {
            let reason = format!(
                "the object has {} keys; a user may have at most {MAX_FIELDS} fields",
                object.len()
            );
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

#[cfg(test)]
mod tests {
    use super::super::MAX_FIELDS;
    use super::super::tests::{Kind, ingest};

    #[test]
    fn an_object_with_too_many_keys_is_an_invalid_row() {
        let keys: Vec<String> = (0..MAX_FIELDS).map(|i| format!("\"k{i}\": {i}")).collect();
        let input = format!(
            "{{\"phone\": \"+14155552671\", {}}}\n{{\"phone\": \"+14155552672\"}}\n",
            keys.join(", ")
        );
        let report = ingest(Kind::Json, input.into_bytes()).unwrap();
        assert_eq!((report.inserted, report.invalid), (1, 1));
        assert_eq!(report.errors[0].line, 1);
        assert!(
            report.errors[0]
                .reason
                .contains("1001 keys; a user may have at most 1000 fields"),
            "{:?}",
            report.errors
        );
    }
}
