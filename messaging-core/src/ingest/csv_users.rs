//! Users from CSV: a header line, then one user per record. Quoted fields (with commas and
//! newlines inside), a UTF-8 byte order mark, CRLF line ends and any extra columns (which
//! become attributes) are all handled.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufReader, Read};
use std::rc::Rc;

use csv::ByteRecord;

use super::json_stream::skip_bom;
use super::pipeline::Sink;
use super::user_row::{UserField, UserRow};
use super::{IngestError, MAX_FIELDS};
use crate::domain::{FieldError, UserUpsert};

/// Parses a users CSV into `sink`.
pub(crate) fn parse_users_csv<R: Read>(
    input: R,
    sink: &mut Sink<UserUpsert>,
) -> Result<(), IngestError> {
    let mut buffered = BufReader::with_capacity(256 * 1024, input);
    skip_bom(&mut buffered)?;
    let lines = LineTracker::default();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(CountingReader {
            inner: buffered,
            offset: 0,
            tracker: lines.clone(),
        });
    let mut record = ByteRecord::new();
    if !reader.read_byte_record(&mut record).map_err(csv_error)? {
        return Err(IngestError::Empty);
    }
    let fields = header_fields(&record)?;

    let mut seen = HashSet::new();
    // Each record is finished only once the next one has been read, because only then is it
    // certain that its last field was not an unclosed quote swallowing the rest of the file.
    let mut pending = ByteRecord::new();
    let mut pending_line: Option<u64> = None;
    loop {
        let more = reader.read_byte_record(&mut record).map_err(csv_error)?;
        if let Some(line) = pending_line.take() {
            let unclosed = !more && lines.borrow().quotes % 2 == 1 && has_newline(&pending);
            if unclosed {
                sink.invalid(
                    line,
                    vec![FieldError::new(
                        "",
                        "a quoted field is never closed: it runs to the end of the file, \
                         so this row and everything after it were not imported",
                    )],
                );
            } else if !accept(&fields, line, &pending, sink, &mut seen) {
                return Ok(());
            }
        }
        if !more {
            return Ok(());
        }
        let start = record.position().map_or(0, |p| p.byte());
        pending_line = Some(lines.borrow_mut().line_at(start));
        std::mem::swap(&mut record, &mut pending);
    }
}

/// Reads the header into the meaning of each column, refusing headers that cannot be trusted.
fn header_fields(record: &ByteRecord) -> Result<Vec<Option<UserField>>, IngestError> {
    if record.len() > MAX_FIELDS {
        return Err(IngestError::BadHeader {
            reason: format!(
                "line 1 has {} columns; a users file may have at most {MAX_FIELDS}",
                record.len()
            ),
        });
    }
    let headers: Vec<String> = record
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().to_owned())
        .collect();
    let has_phone_column = headers
        .iter()
        .any(|h| matches!(h.to_ascii_lowercase().as_str(), "phone" | "phone_number"));
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(headers.len());
    for (index, header) in headers.iter().enumerate() {
        let key = header.to_lowercase();
        if key.is_empty() {
            continue;
        }
        if let Some(first) = seen.insert(key, index) {
            return Err(IngestError::BadHeader {
                reason: format!(
                    "column {header:?} appears twice (columns {} and {})",
                    first + 1,
                    index + 1
                ),
            });
        }
    }
    // A column without a name (a trailing comma, say) is ignored; rows with a value in it
    // are reported.
    let fields: Vec<Option<UserField>> = headers
        .iter()
        .map(|h| (!h.is_empty()).then(|| UserField::from_name(h, has_phone_column)))
        .collect();
    if !fields.contains(&Some(UserField::Phone)) {
        return Err(IngestError::MissingPhoneColumn {
            found: headers.join(", "),
        });
    }
    Ok(fields)
}

/// Turns one record into a user (or an invalid row); `false` when the writer has stopped.
fn accept(
    fields: &[Option<UserField>],
    line: u64,
    record: &ByteRecord,
    sink: &mut Sink<UserUpsert>,
    seen: &mut HashSet<u64>,
) -> bool {
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
        return true;
    }
    let mut row = UserRow::default();
    for (index, (field, cell)) in fields.iter().zip(record.iter()).enumerate() {
        let Some(field) = field else {
            if !cell.iter().all(u8::is_ascii_whitespace) {
                row.row_error(
                    "",
                    format!("column {} has a value but no name in the header", index + 1),
                );
            }
            continue;
        };
        match std::str::from_utf8(cell) {
            Ok(text) => row.set_text(field, text),
            Err(_) => row.row_error(field.label(), "not valid UTF-8 text"),
        }
    }
    row.deliver(line, sink, seen)
}

fn has_newline(record: &ByteRecord) -> bool {
    record.iter().any(|field| field.contains(&b'\n'))
}

/// Where the line ends and quotes of the input are, as far as the CSV reader has read.
#[derive(Default)]
struct LineMarks {
    /// Offsets of `\n` and `\r` bytes not yet passed, with whether each is a `\n`.
    ends: VecDeque<(u64, bool)>,
    /// Lines completed before the first offset in `ends`.
    lines_before: u64,
    /// How many `"` were read in all.
    quotes: u64,
}

type LineTracker = Rc<RefCell<LineMarks>>;

impl LineMarks {
    /// The 1-based line of the first character at or after `offset` that is not a line end:
    /// the line an editor shows a record starting at `offset` on. Offsets must not decrease.
    fn line_at(&mut self, mut offset: u64) -> u64 {
        while let Some(&(at, newline)) = self.ends.front() {
            // Line ends before the record, and blank lines or the `\n` of a `\r\n` at its
            // very start, all come before its first character.
            if at <= offset {
                if at == offset {
                    offset += 1;
                }
                self.lines_before += u64::from(newline);
                self.ends.pop_front();
            } else {
                break;
            }
        }
        self.lines_before + 1
    }
}

/// Passes bytes through to the CSV reader, noting line ends and quotes on the way.
struct CountingReader<R> {
    inner: R,
    offset: u64,
    tracker: LineTracker,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut marks = self.tracker.borrow_mut();
        for (i, byte) in buf[..n].iter().enumerate() {
            match byte {
                b'\n' | b'\r' => marks
                    .ends
                    .push_back((self.offset + i as u64, *byte == b'\n')),
                b'"' => marks.quotes += 1,
                _ => {}
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
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

#[cfg(test)]
mod tests {
    use super::super::tests::{Kind, ingest};

    fn error_lines(csv: &str) -> Vec<u64> {
        let report = ingest(Kind::Csv, csv.as_bytes().to_vec()).unwrap();
        report.errors.iter().map(|e| e.line).collect()
    }

    #[test]
    fn lines_are_the_ones_an_editor_shows() {
        assert_eq!(error_lines("phone,name\r\nbad,x\r\n"), [2]);
        assert_eq!(error_lines("phone,name\nbad,x\n\nbad2,y\n"), [2, 4]);
        assert_eq!(
            error_lines("phone,notes\n+14155552671,\"a\nb\nc\"\nbad,x\n"),
            [5]
        );
        assert_eq!(
            error_lines("phone,notes\r\n+14155552671,\"a\r\nb\"\r\n\r\nbad,x"),
            [5]
        );
        assert_eq!(error_lines("phone\n\n\n\nbad\n"), [5]);
    }

    #[test]
    fn an_unclosed_quote_is_reported_not_imported() {
        let report = ingest(
            Kind::Csv,
            b"phone,name\n+14155552670,ok\n+14155552671,\"unterminated\nbad,x\n".to_vec(),
        )
        .unwrap();
        assert_eq!((report.total, report.inserted, report.invalid), (2, 1, 1));
        assert_eq!(report.errors[0].line, 3);
        assert!(report.errors[0].reason.contains("never closed"));
    }

    #[test]
    fn a_stray_quote_in_a_last_single_line_row_is_not_mistaken_for_one() {
        let report = ingest(Kind::Csv, b"phone,name\n+14155552671,Jo\"hn\n".to_vec()).unwrap();
        assert_eq!(report.inserted, 1);
    }

    #[test]
    fn a_header_with_too_many_columns_stops_the_import_before_any_row() {
        let header: Vec<String> = (0..=crate::ingest::MAX_FIELDS)
            .map(|i| format!("c{i}"))
            .collect();
        let csv = format!("phone,{}\n+14155552671\n", header.join(","));
        let error = ingest(Kind::Csv, csv.into_bytes()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("line 1 has 1002 columns; a users file may have at most 1000"),
            "{error}"
        );
    }

    #[test]
    fn a_repeated_column_is_found_however_far_apart() {
        let mut header: Vec<String> = (0..998).map(|i| format!("c{i}")).collect();
        header.push("C3".into());
        let csv = format!("phone,{}\n", header.join(","));
        let error = ingest(Kind::Csv, csv.into_bytes()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("appears twice (columns 5 and 1000)"),
            "{error}"
        );
    }

    #[test]
    fn headers_must_be_unambiguous() {
        let error = ingest(Kind::Csv, b"phone,city,City\n+14155552671,a,b\n".to_vec()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("appears twice (columns 2 and 3)"),
            "{error}"
        );
        let report = ingest(
            Kind::Csv,
            b"phone,name,\n+14155552671,Ann,\n+14155552672,Bo,x\n".to_vec(),
        )
        .unwrap();
        assert_eq!((report.inserted, report.invalid), (1, 1));
        assert!(
            report.errors[0]
                .reason
                .contains("column 3 has a value but no name")
        );
    }
}
