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

/// Calls `each(line, record)` for every object in `input`, in order. `each` answers `false` to
/// stop early.
pub(crate) fn for_each_object<R: Read>(
    input: R,
    mut each: impl FnMut(u64, JsonRecord) -> bool,
) -> Result<(), IngestError> {
    let mut reader = BufReader::with_capacity(64 * 1024, input);
    skip_bom(&mut reader)?;
    let mut line = 1u64;
    let first = loop {
        let buffer = reader.fill_buf()?;
        let Some(&byte) = buffer.first() else {
            return Err(IngestError::Empty);
        };
        if byte.is_ascii_whitespace() {
            line += u64::from(byte == b'\n');
            reader.consume(1);
        } else {
            break byte;
        }
    };
    match first {
        b'[' => {
            reader.consume(1);
            read_array(reader, line, each)
        }
        b'{' => {
            let mut lines = LineReader {
                reader,
                line: line - 1,
            };
            while let Some((at, text)) = lines.next_line()? {
                let record = match text {
                    Ok(text) if text.iter().all(u8::is_ascii_whitespace) => continue,
                    Ok(text) => to_object(&text),
                    Err(reason) => Err(reason),
                };
                if !each(at, record) {
                    break;
                }
            }
            Ok(())
        }
        other => Err(IngestError::Malformed {
            line,
            reason: format!(
                "expected a JSON array or one JSON object per line, found {:?}",
                char::from(other)
            ),
        }),
    }
}

/// Skips a UTF-8 byte order mark, which spreadsheet programs like to write.
pub(crate) fn skip_bom<R: BufRead>(reader: &mut R) -> std::io::Result<()> {
    if reader.fill_buf()?.starts_with(&[0xEF, 0xBB, 0xBF]) {
        reader.consume(3);
    }
    Ok(())
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

/// A line's bytes, or why it was not kept.
type Line = Result<Vec<u8>, String>;

struct LineReader<R> {
    reader: R,
    line: u64,
}

impl<R: BufRead> LineReader<R> {
    /// The next line (without its newline), or a complaint if it is too long; `None` at the end.
    fn next_line(&mut self) -> Result<Option<(u64, Line)>, IngestError> {
        let mut text = Vec::new();
        let mut too_long = false;
        let mut read_any = false;
        loop {
            let buffer = self.reader.fill_buf()?;
            if buffer.is_empty() {
                break;
            }
            read_any = true;
            let (chunk, done) = match memchr_newline(buffer) {
                Some(i) => (&buffer[..i], i + 1),
                None => (buffer, buffer.len()),
            };
            let ends_line = done > chunk.len();
            if text.len() + chunk.len() > MAX_OBJECT_BYTES {
                too_long = true;
            } else {
                text.extend_from_slice(chunk);
            }
            self.reader.consume(done);
            if ends_line {
                break;
            }
        }
        if !read_any {
            return Ok(None);
        }
        self.line += 1;
        let result = if too_long {
            Err(format!("line is longer than {MAX_OBJECT_BYTES} bytes"))
        } else {
            Ok(text)
        };
        Ok(Some((self.line, result)))
    }
}

fn memchr_newline(buffer: &[u8]) -> Option<usize> {
    buffer.iter().position(|b| *b == b'\n')
}

/// Reads the elements of a JSON array whose `[` was just consumed.
fn read_array<R: BufRead>(
    mut reader: R,
    mut line: u64,
    mut each: impl FnMut(u64, JsonRecord) -> bool,
) -> Result<(), IngestError> {
    let mut element = Vec::new();
    let mut start_line = line;
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut oversized = false;
    loop {
        let buffer = reader.fill_buf()?;
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
                line += 1;
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
                    let record = if oversized {
                        Err(format!("element is longer than {MAX_OBJECT_BYTES} bytes"))
                    } else if element.iter().all(u8::is_ascii_whitespace) {
                        if byte == b']' && element.is_empty() {
                            reader.consume(used);
                            return Ok(());
                        }
                        Err("empty array element".into())
                    } else {
                        to_object(&element)
                    };
                    if !each(start_line, record) || byte == b']' {
                        reader.consume(used);
                        return Ok(());
                    }
                    element.clear();
                    oversized = false;
                    start_line = line;
                    continue;
                }
                _ => {}
            }
            if element.is_empty() && byte.is_ascii_whitespace() {
                // Leading whitespace: the element starts on a later line.
                start_line = line;
                continue;
            }
            push(&mut element, byte, &mut oversized);
        }
        reader.consume(used);
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
        assert!(matches!(
            collect("\n\nhello"),
            Err(IngestError::Malformed { line: 3, .. })
        ));
        assert!(matches!(
            collect("[{\"a\": 1},\n{\"b\""),
            Err(IngestError::Malformed { line: 2, .. })
        ));
        assert_eq!(collect("[]").unwrap(), vec![]);
        assert_eq!(collect("\u{feff}[{}]").unwrap().len(), 1);
    }

    #[test]
    fn backslashes_before_quotes_are_counted() {
        let records = collect(r#"[{"a": "x\\"}, {"b": "\\\""}]"#).unwrap();
        assert_eq!(records.len(), 2);
        assert!(records.iter().all(|r| r.1.is_ok()), "{records:?}");
    }
}
