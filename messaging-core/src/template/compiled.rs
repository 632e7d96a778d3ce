//! [`CompiledTemplate`]: a template parsed once and rendered for many recipients.
//!
//! The content and each content variable are loaded into one minijinja environment, under the
//! names `content` and `content_variables.KEY` (so errors say which text failed). Rendering
//! looks a parsed template up by name and runs it; nothing is parsed again. The environment is
//! strict about output (printing an undefined value is an error, never an empty string) but
//! lets a condition test one (`{% if attributes.vip %}` is false when there is no `vip`),
//! does not escape (WhatsApp
//! messages are plain text, `<` and `&` stay as written) and keeps a trailing newline. A text
//! that is nothing but substitutions (`Hi {{ name }}`) is written without running minijinja
//! when every value it names is there (see `simple`), with the same result.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};

use super::calls::{CallKind, calls};
use super::simple::Substitutions;
use super::{RenderContext, RenderError, TemplateError};
use crate::domain::{MAX_BODY_CHARS, Template};

/// The name and error field of a template's main text.
const CONTENT: &str = "content";

/// The work one render of one text may take, in minijinja instructions. A campaign text
/// takes tens to a few hundred; a loop that would run for ever stops here, in milliseconds.
pub const RENDER_FUEL: u64 = 20_000;

/// The longest a rendered text may be, in characters: WhatsApp's limit for a message body
/// (content variables are held to the same). Rendering stops as soon as it is passed.
pub const MAX_RENDERED_CHARS: usize = MAX_BODY_CHARS;

/// A template ready to render: its content and content variables, parsed and checked.
///
/// It is `Send + Sync` and cheap to share (`Arc<CompiledTemplate>`) between the workers of a
/// campaign run.
#[derive(Debug, Clone)]
pub struct CompiledTemplate {
    env: Environment<'static>,
    /// The content first, then one part per content variable in key order.
    parts: Vec<Part>,
    has_variables: bool,
    placeholders: Vec<String>,
}

/// One recipient's message, as rendered by [`CompiledTemplate::render`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The message text.
    pub body: String,
    /// The approved template's variables, when the template has a variables map.
    pub content_variables: Option<BTreeMap<String, String>>,
}

/// One text of the template, as loaded into the environment.
#[derive(Debug, Clone)]
struct Part {
    /// Its name in the environment and in errors: `content` or `content_variables.KEY`.
    name: String,
    /// The variable's key; `None` for the content.
    key: Option<String>,
    /// Its source, to find the expression an error points at.
    source: String,
    placeholders: Vec<String>,
    /// How to render it without minijinja, when it is only text and substitutions.
    substitutions: Option<Substitutions>,
}

impl CompiledTemplate {
    /// Compiles a stored template (its `placeholders` field is not trusted: it is recomputed).
    pub fn new(template: &Template) -> Result<Self, TemplateError> {
        Self::from_parts(&template.content, template.content_variables.as_ref())
    }

    /// Compiles a content text and optional content variables (each value is itself a
    /// template). Fails on the first syntax error or unknown filter, test or function.
    pub fn from_parts(
        content: &str,
        content_variables: Option<&BTreeMap<String, String>>,
    ) -> Result<Self, TemplateError> {
        let mut env = environment();
        let mut parts = vec![Part::compile(&mut env, CONTENT.to_owned(), None, content)?];
        for (key, source) in content_variables.into_iter().flatten() {
            let name = format!("content_variables.{key}");
            parts.push(Part::compile(&mut env, name, Some(key.clone()), source)?);
        }
        let placeholders: BTreeSet<&String> =
            parts.iter().flat_map(|part| &part.placeholders).collect();
        Ok(Self {
            placeholders: placeholders.into_iter().cloned().collect(),
            parts,
            has_variables: content_variables.is_some(),
            env,
        })
    }

    /// The message for one recipient: its body and, for an approved WhatsApp template, its
    /// content variables. Every caller that shows or sends a message renders it through this
    /// one method, so a preview is what a send would be.
    pub fn render(&self, ctx: &RenderContext) -> Result<Rendered, RenderError> {
        Ok(Rendered {
            body: self.render_body(ctx)?,
            content_variables: self.render_content_variables(ctx)?,
        })
    }

    /// The message body for one recipient.
    pub fn render_body(&self, ctx: &RenderContext) -> Result<String, RenderError> {
        self.render_part(&self.parts[0], ctx)
    }

    /// The content variables for one recipient (for an approved WhatsApp template), or `None`
    /// when the template has no variables map.
    pub fn render_content_variables(
        &self,
        ctx: &RenderContext,
    ) -> Result<Option<BTreeMap<String, String>>, RenderError> {
        if !self.has_variables {
            return Ok(None);
        }
        self.parts[1..]
            .iter()
            .map(|part| {
                let key = part.key.clone().unwrap_or_default();
                Ok((key, self.render_part(part, ctx)?))
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// The placeholders the content and variables use, sorted and de-duplicated, as dotted
    /// paths (`attributes.city`). Placeholders with a default are listed too.
    pub fn placeholders(&self) -> &[String] {
        &self.placeholders
    }

    fn render_part(&self, part: &Part, ctx: &RenderContext) -> Result<String, RenderError> {
        if let Some(text) = part
            .substitutions
            .as_ref()
            .and_then(|plan| plan.render(ctx))
        {
            return within_limit(text, part);
        }
        let template = self
            .env
            .get_template(&part.name)
            .map_err(|err| failed(&err))?;
        // Written through a bounded buffer, so a text that would grow without end stops at
        // the limit instead of filling memory.
        let mut out = Bounded::default();
        match template.render_captured_to(ctx.value(), &mut out) {
            Ok(_) => {}
            Err(_) if out.overflowed => return Err(too_long(part)),
            Err(err) if err.kind() == ErrorKind::OutOfFuel => {
                return Err(RenderError::TooMuchWork {
                    field: part.name.clone(),
                    limit: RENDER_FUEL,
                });
            }
            Err(err) => return Err(render_error(&err, part, ctx)),
        }
        let text = String::from_utf8(out.bytes).map_err(|_| RenderError::Failed {
            message: format!("{} did not render as UTF-8 text", part.name),
        })?;
        within_limit(text, part)
    }
}

/// A buffer that refuses to grow past what [`MAX_RENDERED_CHARS`] can take in UTF-8.
#[derive(Default)]
struct Bounded {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_RENDERED_CHARS * 4 {
            self.overflowed = true;
            return Err(io::Error::other("the rendered text is too long"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn within_limit(text: String, part: &Part) -> Result<String, RenderError> {
    if text.chars().count() > MAX_RENDERED_CHARS {
        return Err(too_long(part));
    }
    Ok(text)
}

fn too_long(part: &Part) -> RenderError {
    RenderError::TooLong {
        field: part.name.clone(),
        limit: MAX_RENDERED_CHARS,
    }
}

impl Part {
    fn compile(
        env: &mut Environment<'static>,
        name: String,
        key: Option<String>,
        source: &str,
    ) -> Result<Self, TemplateError> {
        env.add_template_owned(name.clone(), source.to_owned())
            .map_err(|err| TemplateError::from_minijinja(&name, source, &err))?;
        let method_paths = refuse_unknown_calls(env, &name, source)?;
        let template = env
            .get_template(&name)
            .map_err(|err| TemplateError::from_minijinja(&name, source, &err))?;
        let globals: BTreeSet<String> = env.globals().map(|(global, _)| global.into()).collect();
        let placeholders: BTreeSet<String> = template
            .undeclared_variables(true)
            .into_iter()
            // `attributes.items()` reads `attributes`, not an attribute called `items`.
            .map(|path| match path.rsplit_once('.') {
                Some((parent, _)) if method_paths.contains(&path) => parent.to_owned(),
                _ => path,
            })
            .filter(|path| !globals.contains(root(path)))
            .collect();
        Ok(Self {
            name,
            key,
            source: source.to_owned(),
            placeholders: placeholders.into_iter().collect(),
            substitutions: Substitutions::plan(source),
        })
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_keep_trailing_newline(true);
    // Debug mode would copy the context into every error; a campaign may produce many.
    env.set_debug(false);
    env.set_fuel(Some(RENDER_FUEL));
    env
}

/// Refuses a filter, test or function the environment does not have; answers the dotted paths
/// of method calls (`attributes.items`).
fn refuse_unknown_calls(
    env: &Environment<'static>,
    field: &str,
    source: &str,
) -> Result<BTreeSet<String>, TemplateError> {
    let mut method_paths = BTreeSet::new();
    for call in calls(source) {
        let (known, what) = match call.kind {
            CallKind::Filter => (
                probe(env, &format!("{{{{ 1 | {} }}}}", call.name)),
                "filter",
            ),
            CallKind::Test => (probe(env, &format!("{{{{ 1 is {} }}}}", call.name)), "test"),
            // `loop(...)` recurses in a `{% for ... recursive %}` loop.
            CallKind::Function => (
                call.name == "loop" || env.globals().any(|(global, _)| global == call.name),
                "function",
            ),
            CallKind::Method => {
                method_paths.extend(call.path);
                continue;
            }
        };
        if !known {
            let message = format!("unknown {what} `{}`", call.name);
            return Err(TemplateError::at(field, source, call.offset, message));
        }
    }
    Ok(method_paths)
}

/// Whether the filter or test used by `probe` exists (any error but "unknown" means it does).
fn probe(env: &Environment<'static>, probe: &str) -> bool {
    match env.render_str(probe, ()) {
        Ok(_) => true,
        Err(err) => !matches!(
            err.kind(),
            ErrorKind::UnknownFilter | ErrorKind::UnknownTest
        ),
    }
}

/// Names the missing placeholders when rendering hit an undefined value.
fn render_error(err: &minijinja::Error, part: &Part, ctx: &RenderContext) -> RenderError {
    if err.kind() != ErrorKind::UndefinedError {
        return failed(err);
    }
    let absent: Vec<&String> = part
        .placeholders
        .iter()
        .filter(|placeholder| !ctx.contains(placeholder))
        .collect();
    // Prefer the absent placeholders of the failing `{{ }}` or `{% %}` block: others may have a
    // default and would not have stopped the render.
    let block = err
        .range()
        .map(|range| enclosing_block(&part.source, range));
    let in_block: Vec<&String> = absent
        .iter()
        .copied()
        .filter(|placeholder| block.is_some_and(|block| mentions(block, placeholder)))
        .collect();
    let missing = if in_block.is_empty() {
        absent
    } else {
        in_block
    };
    if !missing.is_empty() {
        return RenderError::MissingPlaceholder {
            placeholders: missing.into_iter().cloned().collect(),
        };
    }
    // Not one of the static placeholders (`attributes["city"]`, a loop variable's field):
    // name the failing expression itself when it reads like a path.
    match err.range().and_then(|range| part.source.get(range)) {
        Some(expression) if looks_like_path(expression.trim()) => RenderError::MissingPlaceholder {
            placeholders: vec![expression.trim().to_owned()],
        },
        _ => failed(err),
    }
}

fn looks_like_path(expression: &str) -> bool {
    expression.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && expression
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.[]'\"".contains(c))
}

fn failed(err: &minijinja::Error) -> RenderError {
    RenderError::Failed {
        message: err.to_string(),
    }
}

/// The `{{ … }}` or `{% … %}` block around the byte `range` of `source`.
fn enclosing_block(source: &str, range: std::ops::Range<usize>) -> &str {
    let end = range.end.min(source.len());
    let start = range.start.min(end);
    let (Some(head), Some(tail)) = (source.get(..start), source.get(end..)) else {
        return "";
    };
    let open = [head.rfind("{{"), head.rfind("{%")]
        .into_iter()
        .flatten()
        .max();
    let close = [tail.find("}}"), tail.find("%}")]
        .into_iter()
        .flatten()
        .min();
    &source[open.unwrap_or(start)..close.map_or(source.len(), |close| end + close)]
}

/// Whether `text` names the dotted `path` as a whole (`attributes.city`, not `xattributes.city`
/// or `attributes.cityname`).
fn mentions(text: &str, path: &str) -> bool {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(path).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + path.len()..].chars().next();
        !before.is_some_and(|c| is_name(c) || c == '.') && !after.is_some_and(is_name)
    })
}

fn root(path: &str) -> &str {
    path.split('.').next().unwrap_or(path)
}
