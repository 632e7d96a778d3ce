//! A shortcut for the commonest campaign text: plain text with `{{ name }}` and
//! `{{ attributes.city }}` substitutions and nothing else.
//!
//! A fan-out renders one template for a million recipients, and for such a text most of
//! minijinja's work per recipient is setting up a render. A [`Substitutions`] plan looks the
//! named values up in the [`RenderContext`] the way minijinja does and writes them as it
//! would (unescaped, with `Display`). Whenever a value is missing the shortcut gives up and
//! the caller renders with minijinja, which reports the error; any other syntax (a filter, a
//! block, a comment, an index, whitespace control) is never planned at all.

use std::fmt::Write as _;

use super::RenderContext;

/// A text split into literal pieces and the dotted paths between them.
#[derive(Debug, Clone)]
pub(super) struct Substitutions(Vec<Piece>);

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    /// `attributes.city` as `["attributes", "city"]`.
    Path(Vec<String>),
}

impl Substitutions {
    /// The plan of `source`, if it is nothing but text and `{{ dotted.path }}` expressions.
    pub(super) fn plan(source: &str) -> Option<Self> {
        if source.contains("{%") || source.contains("{#") {
            return None;
        }
        let mut pieces = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}")?;
            pieces.push(Piece::Path(path(after[..close].trim())?));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Some(Self(pieces))
    }

    /// The text for one recipient, or `None` when a value is missing (render it with
    /// minijinja then, for the error).
    pub(super) fn render(&self, ctx: &RenderContext) -> Option<String> {
        let context = ctx.value();
        let mut out = String::with_capacity(64);
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Path(path) => {
                    let mut value = context.clone();
                    for segment in path {
                        value = value.get_attr(segment).ok()?;
                    }
                    // Undefined is an error in strict mode, and `none` may be one too.
                    if value.is_undefined() || value.is_none() {
                        return None;
                    }
                    write!(out, "{value}").ok()?;
                }
            }
        }
        Some(out)
    }
}

/// `a.b.c` as its names, if it is exactly that: names of ASCII letters, digits and `_` that
/// do not start with a digit and are not one of the template language's constants.
fn path(expression: &str) -> Option<Vec<String>> {
    let names: Vec<String> = expression.split('.').map(str::to_owned).collect();
    let is_name = |name: &String| {
        name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let constant = ["true", "false", "none", "True", "False", "None"].contains(&names[0].as_str());
    (names.iter().all(is_name) && !constant).then_some(names)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::CompiledTemplate;
    use super::super::context::fixtures::{object, user};
    use super::*;

    fn pieces(source: &str) -> Option<usize> {
        Substitutions::plan(source).map(|plan| plan.0.len())
    }

    #[test]
    fn only_text_and_dotted_paths_are_planned() {
        assert_eq!(
            pieces("Hi {{ name }}, news from {{attributes.city}}!"),
            Some(5)
        );
        assert_eq!(pieces("no placeholders"), Some(1));
        assert_eq!(pieces(""), Some(0));
        for other in [
            "{{ name | upper }}",
            "{{ name }",
            "{{- name }}",
            "{{ topics[0] }}",
            "{{ topics.0 }}",
            "{{ attributes.items() }}",
            "{{ 'text' }}",
            "{{ none }}",
            "{% if name %}x{% endif %}",
            "{# note #}{{ name }}",
        ] {
            assert_eq!(pieces(other), None, "{other}");
        }
    }

    #[test]
    fn writes_what_minijinja_writes_or_gives_up_on_a_missing_value() {
        let ctx = RenderContext::for_user(&user(
            Some("Ana <&>"),
            json!({"city": "Colombo", "points": 1200, "ratio": 2.5, "vip": true,
                   "debt": -3, "none": null, "list": [1, null], "address": {"zip": null}}),
        ))
        .with_event(object(json!({"discount": 20.0})));
        for source in [
            "Hi {{ name }} ({{ phone }}, {{ consent_state }}, {{ timezone }})\n",
            "{{ attributes.points }} {{ attributes.ratio }} {{ attributes.vip }}",
            "{{ attributes.debt }} {{ event.discount }}% {{ topics }} {{ attributes.list }}",
            "{{ attributes.address }} {{ attributes }} }} { x",
        ] {
            let minijinja = CompiledTemplate::from_parts(
                &format!("{{% if true %}}{source}{{% endif %}}"),
                None,
            )
            .unwrap()
            .render_body(&ctx)
            .unwrap();
            let planned = Substitutions::plan(source).unwrap().render(&ctx);
            assert_eq!(planned.as_deref(), Some(minijinja.as_str()), "{source}");
        }
        for missing in [
            "{{ wa_id }}",
            "{{ attributes.none }}",
            "{{ phone.x }}",
            "{{ x }}",
        ] {
            let plan = Substitutions::plan(missing).unwrap();
            assert_eq!(plan.render(&ctx), None, "{missing}");
        }
    }
}
