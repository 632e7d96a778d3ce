//! Users from CSV: a header line, then one user per record. Quoted fields (with commas and
//! newlines inside), a UTF-8 byte order mark and any extra columns (which become attributes)
//! are all handled.

use std::collections::HashSet;
use std::io::{BufReader, Read};

use csv::ByteRecord;

use super::IngestError;
use super::json_stream::skip_bom;
use super::pipeline::Sink;
use super::user_row::{UserField, UserRow};
use crate::domain::{FieldError, UserUpsert};

/// Parses a users CSV into `sink`.
pub(crate) fn parse_users_csv<R: Read>(
    input: R,
    sink: &mut Sink<UserUpsert>,
) -> Result<(), IngestError> {
    let mut buffered = BufReader::with_capacity(256 * 1024, input);
    skip_bom(&mut buffered)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(buffered);
    let mut record = ByteRecord::new();
    if !reader.read_byte_record(&mut record).map_err(csv_error)? {
        return Err(IngestError::Empty);
    }
    let headers: Vec<String> = record
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().to_owned())
        .collect();
    let has_phone_column = headers
        .iter()
        .any(|h| matches!(h.to_ascii_lowercase().as_str(), "phone" | "phone_number"));
    let fields: Vec<UserField> = headers
        .iter()
        .map(|h| UserField::from_name(h, has_phone_column))
        .collect();
    if !fields.contains(&UserField::Phone) {
        return Err(IngestError::MissingPhoneColumn {
            found: headers.join(", "),
        });
    }

    let mut seen = HashSet::new();
    // The CSV reader counts records' lines without the newlines quoted inside fields; add
    // those back so that reported lines are the ones an editor shows.
    let mut quoted_newlines = embedded_newlines(&record);
    while reader.read_byte_record(&mut record).map_err(csv_error)? {
        let line = record.position().map_or(0, |p| p.line()) + quoted_newlines;
        quoted_newlines += embedded_newlines(&record);
        if record.len() != fields.len() {
            sink.invalid(
                line,
                vec![FieldError::new(
                    "",
                    format!(
                        "the row has {} fields but the header has {}; quote values that contain commas",
                        record.len(),
                        fields.len()
                    ),
                )],
            );
            continue;
        }
        let mut row = UserRow::default();
        for (field, cell) in fields.iter().zip(record.iter()) {
            match std::str::from_utf8(cell) {
                Ok(text) => row.set_text(field, text),
                Err(_) => row.row_error(field.label(), "not valid UTF-8 text"),
            }
        }
        match row.finish() {
            Ok(user) => {
                let repeat = !seen.insert(user.phone.as_u64());
                if sink.valid(user, repeat).is_err() {
                    return Ok(());
                }
            }
            Err(errors) => sink.invalid(line, errors),
        }
    }
    Ok(())
}

fn embedded_newlines(record: &ByteRecord) -> u64 {
    record
        .iter()
        .map(|field| field.iter().filter(|b| **b == b'\n').count() as u64)
        .sum()
}

fn csv_error(error: csv::Error) -> IngestError {
    let line = error.position().map_or(0, |p| p.line());
    match error.into_kind() {
        csv::ErrorKind::Io(io) => IngestError::Read(io),
        other => IngestError::Malformed {
            line,
            reason: format!("{other:?}"),
        },
    }
}
