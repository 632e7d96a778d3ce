//! Reads JSON objects one at a time from either a JSON array (`[{…}, {…}]`) or one object per
//! line (JSONL), whatever the input's size, remembering the line each object starts on.
//!
//! A malformed object is reported and skipped; reading goes on with the next one.

use std::io::{BufRead, BufReader, Read};

use serde_json::{Map, Value};

use super::IngestError;
use crate::domain::json_kind;

/// The longest single object accepted (a runaway string must not exhaust memory).
const MAX_OBJECT_BYTES: usize = 1 << 20;

/// One object of the input, or why the text at that line is not one.
pub(crate) type JsonRecord = Result<Map<String, Value>, String>;

/// Calls `each(line, record)` for every object in `input`, in order. The input is a sequence
/// of JSON arrays of objects and lines holding one object each, in any mix (a JSON file, a
/// JSONL file, or arrays written one after another). A line that is neither is reported as a
/// bad record and reading goes on. `each` answers `false` to stop early.
pub(crate) fn for_each_object<R: Read>(
    input: R,
    mut each: impl FnMut(u64, JsonRecord) -> bool,
) -> Result<(), IngestError> {
    let mut scanner = Scanner {
        reader: BufReader::with_capacity(64 * 1024, input),
        line: 1,
    };
    skip_bom(&mut scanner.reader)?;
    let mut empty = true;
    while let Some(first) = scanner.skip_whitespace()? {
        empty = false;
        let go_on = if first == b'[' {
            scanner.reader.consume(1);
            scanner.read_array(&mut each)?
        } else {
            let (line, text) = scanner.read_line()?;
            each(line, text.and_then(|text| to_object(&text)))
        };
        if !go_on {
            return Ok(());
        }
    }
    if empty {
        return Err(IngestError::Empty);
    }
    Ok(())
}

/// Skips a UTF-8 byte order mark, which spreadsheet programs like to write, and refuses
/// UTF-16 text ("Unicode text" in some of them), which would otherwise read as garbage.
pub(crate) fn skip_bom<R: BufRead>(reader: &mut R) -> Result<(), IngestError> {
    let start = reader.fill_buf()?;
    if start.starts_with(&[0xEF, 0xBB, 0xBF]) {
        reader.consume(3);
    } else if looks_like_utf16(start) {
        return Err(IngestError::Utf16);
    }
    Ok(())
}

/// A UTF-16 byte order mark, or text whose first character has a NUL byte beside a non-NUL
/// one, as every ASCII character of UTF-16 has (no UTF-8 text starts with a NUL).
fn looks_like_utf16(start: &[u8]) -> bool {
    match start {
        [0xFF, 0xFE, ..] | [0xFE, 0xFF, ..] => true,
        [a, b, ..] => (*a == 0) != (*b == 0),
        _ => false,
    }
}

fn to_object(text: &[u8]) -> JsonRecord {
    match serde_json::from_slice::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(format!(
            "expected a JSON object, found {}",
            json_kind(&other)
        )),
        Err(e) => Err(format!("not valid JSON: {e}")),
    }
}

/// A line's bytes, or why they were not kept.
type Line = Result<Vec<u8>, String>;

/// Reads the input while counting lines.
struct Scanner<R> {
    reader: R,
    /// The line the next unread byte is on.
    line: u64,
}

impl<R: BufRead> Scanner<R> {
    /// Skips whitespace and answers the next byte without consuming it; `None` at the end.
    fn skip_whitespace(&mut self) -> Result<Option<u8>, IngestError> {
        loop {
            let buffer = self.reader.fill_buf()?;
            let Some(&byte) = buffer.first() else {
                return Ok(None);
            };
            if !byte.is_ascii_whitespace() {
                return Ok(Some(byte));
            }
            self.line += u64::from(byte == b'\n');
            self.reader.consume(1);
        }
    }

    /// Reads the rest of the current line (without its newline), with the line's number.
    fn read_line(&mut self) -> Result<(u64, Line), IngestError> {
        let line = self.line;
        let mut text = Vec::new();
        let mut too_long = false;
        loop {
            let buffer = self.reader.fill_buf()?;
            if buffer.is_empty() {
                break;
            }
            let (chunk, used, ended) = match buffer.iter().position(|b| *b == b'\n') {
                Some(i) => (&buffer[..i], i + 1, true),
                None => (buffer, buffer.len(), false),
            };
            if text.len() + chunk.len() > MAX_OBJECT_BYTES {
                too_long = true;
            } else {
                text.extend_from_slice(chunk);
            }
            self.reader.consume(used);
            if ended {
                self.line += 1;
                break;
            }
        }
        let text = if too_long {
            Err(format!("line is longer than {MAX_OBJECT_BYTES} bytes"))
        } else {
            Ok(text)
        };
        Ok((line, text))
    }

    /// Reads the elements of a JSON array whose `[` was just consumed, up to its `]`.
    /// Answers `false` when `each` asked to stop.
    fn read_array(
        &mut self,
        each: &mut impl FnMut(u64, JsonRecord) -> bool,
    ) -> Result<bool, IngestError> {
        let mut element = Vec::new();
        let mut start_line = self.line;
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        let mut oversized = false;
        loop {
            let buffer = self.reader.fill_buf()?;
            if buffer.is_empty() {
                return Err(IngestError::Malformed {
                    line: start_line,
                    reason: "the JSON array is not closed: the input ended inside it".into(),
                });
            }
            let mut used = 0;
            for &byte in buffer {
                used += 1;
                if byte == b'\n' {
                    self.line += 1;
                }
                if in_string {
                    if escaped {
                        escaped = false;
                    } else if byte == b'\\' {
                        escaped = true;
                    } else if byte == b'"' {
                        in_string = false;
                    }
                    push(&mut element, byte, &mut oversized);
                    continue;
                }
                match byte {
                    b'"' => {
                        in_string = true;
                        escaped = false;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' if depth > 0 => depth -= 1,
                    b',' | b']' if depth == 0 => {
                        let closing = byte == b']';
                        let blank = element.iter().all(u8::is_ascii_whitespace);
                        let go_on = if closing && blank && element.is_empty() {
                            true
                        } else {
                            let record = if oversized {
                                Err(format!("element is longer than {MAX_OBJECT_BYTES} bytes"))
                            } else if blank {
                                Err("empty array element".into())
                            } else {
                                to_object(&element)
                            };
                            each(start_line, record)
                        };
                        if !go_on || closing {
                            self.reader.consume(used);
                            return Ok(go_on);
                        }
                        element.clear();
                        oversized = false;
                        start_line = self.line;
                        continue;
                    }
                    _ => {}
                }
                if element.is_empty() && byte.is_ascii_whitespace() {
                    // Leading whitespace: the element starts on a later line.
                    start_line = self.line;
                    continue;
                }
                push(&mut element, byte, &mut oversized);
            }
            self.reader.consume(used);
        }
    }
}

fn push(element: &mut Vec<u8>, byte: u8, oversized: &mut bool) {
    if element.len() < MAX_OBJECT_BYTES {
        element.push(byte);
    } else {
        *oversized = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Collected = Vec<(u64, Result<String, String>)>;

    fn collect(input: &str) -> Result<Collected, IngestError> {
        let mut out = Vec::new();
        for_each_object(input.as_bytes(), |line, record| {
            out.push((line, record.map(|m| Value::Object(m).to_string())));
            true
        })?;
        Ok(out)
    }

    #[test]
    fn utf16_is_refused_with_what_to_do() {
        let text = "[{\"phone\": \"+14155552671\"}]";
        let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        for input in [
            [&[0xFF, 0xFE][..], &le].concat(),
            [&[0xFE, 0xFF][..], &be].concat(),
            le,
            be,
        ] {
            let error = for_each_object(&input[..], |_, _| true).unwrap_err();
            assert!(matches!(error, IngestError::Utf16), "{error}");
            assert!(error.to_string().contains("save the file as UTF-8"));
        }
        assert!(collect("\u{feff}{\"a\": 1}").is_ok());
    }

    #[test]
    fn reads_an_array_with_line_numbers() {
        let records = collect("[\n {\"a\": 1},\n {\"b\": \"x,]}\\\"\"}\n]").unwrap();
        assert_eq!(records[0], (2, Ok(r#"{"a":1}"#.into())));
        assert_eq!(records[1], (3, Ok(r#"{"b":"x,]}\""}"#.into())));
        assert_eq!(records.len(), 2);
    }

    #[test]
    fn reads_jsonl_and_skips_blank_lines() {
        let records = collect("{\"a\":1}\n\n{\"b\":2}\r\n").unwrap();
        assert_eq!(records.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 3]);
        assert!(records.iter().all(|r| r.1.is_ok()));
    }

    #[test]
    fn a_bad_element_does_not_stop_the_rest() {
        let records = collect("[{\"a\": }, 7, {\"c\": 3}]").unwrap();
        assert!(
            records[0]
                .1
                .as_ref()
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert!(
            records[1]
                .1
                .as_ref()
                .unwrap_err()
                .contains("found a number")
        );
        assert!(records[2].1.is_ok());
        let lines = collect("{\"a\":1}\nnope\n{\"c\":3}").unwrap();
        assert_eq!(lines[1].0, 2);
        assert!(lines[1].1.is_err());
        assert!(lines[2].1.is_ok());
    }

    #[test]
    fn structural_damage_is_reported_with_its_line() {
        assert!(matches!(collect("   "), Err(IngestError::Empty)));
        let stray = collect("\n\nhello").unwrap();
        assert_eq!(stray[0].0, 3);
        assert!(stray[0].1.as_ref().unwrap_err().contains("not valid JSON"));
        assert!(matches!(
            collect("[{\"a\": 1},\n{\"b\""),
            Err(IngestError::Malformed { line: 2, .. })
        ));
        assert_eq!(collect("[]").unwrap(), vec![]);
        assert_eq!(collect("\u{feff}[{}]").unwrap().len(), 1);
    }

    #[test]
    fn nothing_after_the_closing_bracket_is_lost() {
        let two_arrays = collect("[{\"a\": 1}]\n[{\"b\": 2}]").unwrap();
        assert_eq!(two_arrays.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2]);
        assert!(two_arrays.iter().all(|r| r.1.is_ok()));
        let garbage = collect("[{\"a\": 1}] garbage").unwrap();
        assert_eq!(garbage.len(), 2);
        assert!(garbage[1].1.is_err());
        // A JSONL file whose first line happens to be an array goes on line by line.
        let events = collect("[\"oops\"]\n{\"name\":\"a\"}\n{\"name\":\"b\"}").unwrap();
        assert_eq!(events.len(), 3);
        assert!(events[0].1.is_err() && events[1].1.is_ok() && events[2].1.is_ok());
    }

    #[test]
    fn backslashes_before_quotes_are_counted() {
        let records = collect(r#"[{"a": "x\\"}, {"b": "\\\""}]"#).unwrap();
        assert_eq!(records.len(), 2);
        assert!(records.iter().all(|r| r.1.is_ok()), "{records:?}");
    }
}
