//! The filters, tests, functions and methods a template calls, found by a light tokenizer.
//!
//! minijinja looks these names up only while rendering, so a typo such as
//! `{{ name | defualt("there") }}` would pass its parser and then fail for every recipient of a
//! campaign. [`calls`] lists each call with its byte offset so that the save-time check can
//! refuse unknown names with their position. The template has already parsed when this runs,
//! so the tokenizer only needs to tell names apart, not to validate anything.

/// What kind of name a [`Call`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallKind {
    /// `x | NAME`, or `{% filter NAME %}`.
    Filter,
    /// `x is NAME`, `x is not NAME`.
    Test,
    /// `NAME(...)` on its own: a global such as `range`.
    Function,
    /// `receiver.NAME(...)`: a method of a value such as `items`.
    Method,
}

/// One use of a name in a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Call<'a> {
    /// What kind of name it is.
    pub kind: CallKind,
    /// The name as written.
    pub name: &'a str,
    /// For a method called on a variable, the full dotted path (`attributes.items`).
    pub path: Option<String>,
    /// Byte offset of the name in the template.
    pub offset: usize,
}

/// Words of the template language that may stand before `(` without calling anything.
const KEYWORDS: [&str; 14] = [
    "and",
    "or",
    "not",
    "in",
    "is",
    "if",
    "elif",
    "else",
    "for",
    "set",
    "with",
    "recursive",
    "filter",
    "as",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Ident(&'a str, usize),
    Punct(u8),
    Literal,
}

/// Every call in `source`, in order.
pub(super) fn calls(source: &str) -> Vec<Call<'_>> {
    let bytes = source.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(brace) = source[at..].find('{').map(|offset| at + offset) {
        at = match bytes.get(brace + 1) {
            Some(b'#') => source[brace..]
                .find("#}")
                .map_or(source.len(), |end| brace + end + 2),
            Some(b'{') => {
                let (tokens, end) = tokenize(source, brace + 2, b'}');
                collect(&tokens, false, &mut found);
                end
            }
            Some(b'%') => {
                let (tokens, end) = tokenize(source, brace + 2, b'%');
                if matches!(tokens.as_slice(), [Token::Ident("raw", _), ..]) {
                    skip_raw(source, end)
                } else {
                    collect(&tokens, true, &mut found);
                    end
                }
            }
            _ => brace + 1,
        };
    }
    found
}

/// The tokens of the block starting at `from`, up to its `closer` + `}`, and the offset after it.
fn tokenize(source: &str, from: usize, closer: u8) -> (Vec<Token<'_>>, usize) {
    let bytes = source.as_bytes();
    let mut tokens = Vec::new();
    let mut depth = 0usize;
    let mut at = from;
    if matches!(bytes.get(at), Some(b'-' | b'+')) {
        at += 1;
    }
    while let Some(&byte) = bytes.get(at) {
        match byte {
            _ if depth == 0 && byte == closer && bytes.get(at + 1) == Some(&b'}') => {
                return (tokens, at + 2);
            }
            b'\'' | b'"' => {
                at = string_end(bytes, at);
                tokens.push(Token::Literal);
                continue;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let end = word_end(bytes, at);
                tokens.push(Token::Ident(&source[at..end], at));
                at = end;
                continue;
            }
            b'0'..=b'9' => {
                at = number_end(bytes, at);
                tokens.push(Token::Literal);
                continue;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                tokens.push(Token::Punct(byte));
            }
            b')' | b']' | b'}' => {
                depth = depth.saturating_sub(1);
                tokens.push(Token::Punct(byte));
            }
            _ if byte.is_ascii_whitespace() => {}
            _ => tokens.push(Token::Punct(byte)),
        }
        at += 1;
    }
    (tokens, bytes.len())
}

/// Classifies the names of one block's tokens.
fn collect<'a>(tokens: &[Token<'a>], statement: bool, found: &mut Vec<Call<'a>>) {
    for (index, token) in tokens.iter().enumerate() {
        let Token::Ident(name, offset) = *token else {
            continue;
        };
        let before = |back: usize| index.checked_sub(back).map(|at| tokens[at]);
        let after_dot = before(1) == Some(Token::Punct(b'.'));
        let is_operator_is = |back: usize| {
            matches!(before(back), Some(Token::Ident("is", _)))
                && before(back + 1) != Some(Token::Punct(b'.'))
        };
        let kind = if before(1) == Some(Token::Punct(b'|'))
            || (statement && index == 1 && matches!(tokens[0], Token::Ident("filter", _)))
        {
            CallKind::Filter
        } else if is_operator_is(1) && name == "not" {
            continue;
        } else if is_operator_is(1)
            || (matches!(before(1), Some(Token::Ident("not", _))) && is_operator_is(2))
        {
            CallKind::Test
        } else if tokens.get(index + 1) != Some(&Token::Punct(b'(')) {
            continue;
        } else if after_dot {
            CallKind::Method
        } else if KEYWORDS.contains(&name) {
            continue;
        } else {
            CallKind::Function
        };
        let path = (kind == CallKind::Method)
            .then(|| receiver(&tokens[..index - 1]))
            .flatten()
            .map(|receiver| format!("{receiver}.{name}"));
        found.push(Call {
            kind,
            name,
            path,
            offset,
        });
    }
}

/// The dotted variable path at the end of `tokens` (`attributes.address` before `.items(`),
/// or nothing when the value comes from a call, an index or a literal.
fn receiver(tokens: &[Token<'_>]) -> Option<String> {
    let mut names = Vec::new();
    let mut rest = tokens;
    while let [head @ .., Token::Ident(name, _)] = rest {
        names.push(*name);
        match head {
            [before @ .., Token::Punct(b'.')] => rest = before,
            [.., Token::Punct(b']' | b')')] | [.., Token::Literal] => return None,
            _ => {
                names.reverse();
                return Some(names.join("."));
            }
        }
    }
    None
}

/// The offset after the `{% endraw %}` that closes a raw block ending at `from`.
fn skip_raw(source: &str, from: usize) -> usize {
    let Some(endraw) = source[from..].find("endraw").map(|at| from + at) else {
        return source.len();
    };
    source[endraw..]
        .find("%}")
        .map_or(source.len(), |end| endraw + end + 2)
}

fn string_end(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut at = start + 1;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'\\' => at += 2,
            _ if byte == quote => return at + 1,
            _ => at += 1,
        }
    }
    bytes.len()
}

fn word_end(bytes: &[u8], start: usize) -> usize {
    bytes[start..]
        .iter()
        .position(|byte| !(byte.is_ascii_alphanumeric() || *byte == b'_'))
        .map_or(bytes.len(), |length| start + length)
}

fn number_end(bytes: &[u8], start: usize) -> usize {
    let mut at = word_end(bytes, start);
    // A fraction (`1.5`) belongs to the number; `items.0.name` stays an attribute chain.
    if bytes.get(at) == Some(&b'.') && bytes.get(at + 1).is_some_and(u8::is_ascii_digit) {
        at = word_end(bytes, at + 1);
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(source: &str) -> Vec<(CallKind, &str)> {
        calls(source)
            .into_iter()
            .map(|call| (call.kind, call.name))
            .collect()
    }

    #[test]
    fn finds_filters_with_and_without_arguments() {
        let source =
            r#"Hi {{ name | default("there") | upper }} {% filter trim %}x{% endfilter %}"#;
        assert_eq!(
            kinds(source),
            [
                (CallKind::Filter, "default"),
                (CallKind::Filter, "upper"),
                (CallKind::Filter, "trim"),
            ]
        );
    }

    #[test]
    fn finds_tests_after_is_and_is_not() {
        assert_eq!(
            kinds("{% if a is defined and b is not divisibleby(3) %}{% endif %}"),
            [(CallKind::Test, "defined"), (CallKind::Test, "divisibleby")]
        );
    }

    #[test]
    fn tells_functions_from_methods_and_keywords() {
        let found =
            calls("{% for i in range(3) if (i) %}{{ attributes.tags.join(',') }}{% endfor %}");
        assert_eq!(found[0].kind, CallKind::Function);
        assert_eq!(found[0].name, "range");
        assert_eq!(found[1].kind, CallKind::Method);
        assert_eq!(found[1].path.as_deref(), Some("attributes.tags.join"));
        assert_eq!(found.len(), 2);
    }

    #[test]
    fn reports_byte_offsets() {
        let found = calls("ab\n{{ x | nope }}");
        assert_eq!(found[0].offset, "ab\n{{ x | ".len());
    }

    #[test]
    fn ignores_text_strings_comments_and_raw_blocks() {
        let source = r#"a | b {# {{ x | c }} #}{{ "| d" ~ '}}' }}{% raw %}{{ y | e }}{% endraw %}{{ {'k': {'j': 1}} | f }}"#;
        assert_eq!(kinds(source), [(CallKind::Filter, "f")]);
    }
}
