//! Compiles a [`SegmentRule`] into a parameterised SQL predicate.
//!
//! The predicate is a `WHERE` fragment over the users table under the alias `u`; every value,
//! key and JSON path travels as a parameter ([`SqlParam`]), never in the SQL text. What differs
//! between databases (placeholders, JSON functions, time columns) sits behind [`SqlDialect`], so
//! each database brings its own dialect ([`Sqlite`], [`Postgres`]) while callers keep calling
//! [`compile`].
//!
//! Semantics every dialect keeps:
//!
//! - A comparison holds only when the attribute is present *and* has the operand's JSON type
//!   (`{"gt": 5}` never matches the string `"abc"`); booleans compare as 1/0.
//! - Every leaf is true or false, never SQL `NULL`, so `not` is an exact complement: `ne` and
//!   `not eq` both match users who lack the attribute.
//! - `contains` finds a substring of a string or an element of an array; `starts_with` and
//!   `contains` are case-sensitive and treat `%` and `_` literally.
//! - Event history counts the user's events by [`event_name_key`], at or after
//!   `now − within_days`.
//! - An `in` list is one parameter (the list as JSON text) whatever its length, and groups
//!   are written as balanced trees of `AND`/`OR`, so the SQL's parameter count and expression
//!   depth grow with the number of conditions only (and its depth only with their logarithm),
//!   never past what the parser's limits allow.
//! - Nodes that [`SegmentRule::parse`](super::SegmentRule::parse) would refuse (say `gt` with
//!   an array) compile to comparisons that never hold, never to an error or a panic.

use chrono::{DateTime, Datelike as _, SecondsFormat, TimeDelta, Utc};
use serde_json::Value;

use super::{Comparison, RuleNode, SegmentRule, UserField};

/// A parameter of a compiled predicate, in the order of its placeholder numbers.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlParam {
    /// SQL `NULL`.
    Null,
    /// An integer (booleans are bound as 1 and 0).
    Integer(i64),
    /// A floating-point number.
    Real(f64),
    /// Text, including JSON paths.
    Text(String),
}

/// A `WHERE` fragment over `users u` and the parameters it refers to.
///
/// `sql` is self-contained (it can be joined with `AND` without extra parentheses). Its
/// placeholders are numbered `1..=params.len()`; bind `params` in order, then number any
/// parameters of your own after them.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledPredicate {
    /// The SQL text; holds placeholders only, no values.
    pub sql: String,
    /// The parameters, first placeholder first.
    pub params: Vec<SqlParam>,
}

/// The JSON type an operand is compared as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScalarKind {
    /// A JSON string.
    Text,
    /// A JSON number (integer or real).
    Number,
    /// `true` or `false`, compared as 1 and 0.
    Bool,
}

/// The parameters of a predicate being written; dialects bind through it as they write SQL.
pub struct Bindings<'d> {
    dialect: &'d dyn SqlDialect,
    params: Vec<SqlParam>,
}

impl Bindings<'_> {
    /// Adds a parameter and returns the placeholder that refers to it. The placeholder may be
    /// written several times, and in any order relative to other placeholders.
    pub fn bind(&mut self, param: SqlParam) -> String {
        let placeholder = self
            .dialect
            .bound_placeholder(self.params.len() + 1, &param);
        self.params.push(param);
        placeholder
    }
}

/// What differs between SQL databases when compiling a rule.
///
/// Methods that take `&mut Bindings` bind what they need and return SQL text. Expressions they
/// return may evaluate to `NULL` where a condition is false: the compiler wraps every leaf in
/// `(…) IS TRUE`. Attribute expressions read the `attributes` JSON column of `u`.
pub trait SqlDialect {
    /// The placeholder for the `index`-th parameter (1-based): `?1` in SQLite, `$1` in
    /// PostgreSQL. Numbered placeholders let one parameter be used twice.
    fn placeholder(&self, index: usize) -> String;

    /// The placeholder for the `index`-th parameter as written where `param` is bound, for a
    /// database that wants each parameter's type spelled out (`$1::text` in PostgreSQL, whose
    /// statements must know every parameter's type). By default, [`placeholder`](Self::placeholder).
    fn bound_placeholder(&self, index: usize, param: &SqlParam) -> String {
        let _ = param;
        self.placeholder(index)
    }

    /// A form of "the attribute at `path` equals the scalar `value`" that an index can serve
    /// (PostgreSQL's `attributes @> '{"city": "Colombo"}'`), with the same meaning as
    /// comparing [`attribute_value`](Self::attribute_value) with the operand; it must be true
    /// or false, never `NULL`. `None` (the default) compiles the comparison.
    fn attribute_equals(
        &self,
        b: &mut Bindings<'_>,
        path: &[String],
        value: &Value,
    ) -> Option<String> {
        let _ = (b, path, value);
        None
    }

    /// The attribute at `path` as an SQL value, or `NULL` when it is missing or its JSON type is
    /// not `kind`. Text is text, numbers are numeric, booleans are the integers 1 and 0.
    fn attribute_value(&self, b: &mut Bindings<'_>, path: &[String], kind: ScalarKind) -> String;

    /// True when the attribute at `path` is present and not JSON `null`.
    fn attribute_exists(&self, b: &mut Bindings<'_>, path: &[String]) -> String;

    /// True when the attribute at `path` is a JSON array with an element of `kind` equal to
    /// the parameter `element` (a placeholder already bound).
    fn attribute_array_contains(
        &self,
        b: &mut Bindings<'_>,
        path: &[String],
        kind: ScalarKind,
        element: &str,
    ) -> String;

    /// True when the SQL value `value` (as written by [`attribute_value`](Self::attribute_value)
    /// for `kind`, or a text column) equals one of the elements of type `kind` of the JSON
    /// array in parameter `list` (a placeholder already bound, holding the array as text).
    fn value_in_list(&self, value: &str, kind: ScalarKind, list: &str) -> String;

    /// True when the text expression `text` contains `needle` (a placeholder), literally.
    fn text_contains(&self, text: &str, needle: &str) -> String;

    /// True when the text expression `text` starts with `prefix` (a placeholder), literally.
    fn text_starts_with(&self, text: &str, prefix: &str) -> String;

    /// A point in time, comparable with the `events.occurred_at` column.
    fn timestamp(&self, b: &mut Bindings<'_>, at: DateTime<Utc>) -> String;
}

/// SQLite with its built-in JSON functions; times are unix milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sqlite;

impl Sqlite {
    /// The JSON path of an attribute (`$."address"."city"`). Every key is quoted, so dots,
    /// spaces and brackets are literal; `"`, `\` and control characters are written as JSON
    /// escapes (`\u0022`), which SQLite decodes when it compares keys.
    pub fn json_path(path: &[String]) -> String {
        let mut text = String::from("$");
        for key in path {
            text.push_str(".\"");
            for c in key.chars() {
                // SQLite reads the path as a C string and ends a key at `"`: escape those.
                match c {
                    '"' | '\\' | '\0'..='\u{1f}' => {
                        text.push_str(&format!("\\u{:04x}", u32::from(c)))
                    }
                    c => text.push(c),
                }
            }
            text.push('"');
        }
        text
    }

    fn path_param(b: &mut Bindings<'_>, path: &[String]) -> String {
        b.bind(SqlParam::Text(Self::json_path(path)))
    }
}

/// SQLite's `json_type` names for a kind.
fn sqlite_types(kind: ScalarKind) -> &'static str {
    match kind {
        ScalarKind::Text => "'text'",
        ScalarKind::Number => "'integer', 'real'",
        ScalarKind::Bool => "'true', 'false'",
    }
}

impl SqlDialect for Sqlite {
    fn placeholder(&self, index: usize) -> String {
        format!("?{index}")
    }

    fn attribute_value(&self, b: &mut Bindings<'_>, path: &[String], kind: ScalarKind) -> String {
        let p = Self::path_param(b, path);
        let types = sqlite_types(kind);
        format!(
            "CASE WHEN json_type(u.attributes, {p}) IN ({types}) \
             THEN json_extract(u.attributes, {p}) END"
        )
    }

    fn attribute_exists(&self, b: &mut Bindings<'_>, path: &[String]) -> String {
        let p = Self::path_param(b, path);
        format!("COALESCE(json_type(u.attributes, {p}), 'null') <> 'null'")
    }

    fn attribute_array_contains(
        &self,
        b: &mut Bindings<'_>,
        path: &[String],
        kind: ScalarKind,
        element: &str,
    ) -> String {
        let p = Self::path_param(b, path);
        let types = sqlite_types(kind);
        // json_each over a scalar yields the scalar itself, hence the array check.
        format!(
            "(json_type(u.attributes, {p}) = 'array' AND EXISTS (SELECT 1 FROM \
             json_each(u.attributes, {p}) AS item WHERE item.type IN ({types}) \
             AND item.value = {element}))"
        )
    }

    fn value_in_list(&self, value: &str, kind: ScalarKind, list: &str) -> String {
        // An uncorrelated subquery: SQLite reads the list once per statement, not per user.
        let types = sqlite_types(kind);
        format!(
            "{value} IN (SELECT item.value FROM json_each({list}) AS item \
             WHERE item.type IN ({types}))"
        )
    }

    fn text_contains(&self, text: &str, needle: &str) -> String {
        format!("instr({text}, {needle}) > 0")
    }

    fn text_starts_with(&self, text: &str, prefix: &str) -> String {
        // Not LIKE (its wildcards), nor substr/length (length stops at a NUL character).
        format!("instr({text}, {prefix}) = 1")
    }

    fn timestamp(&self, b: &mut Bindings<'_>, at: DateTime<Utc>) -> String {
        b.bind(SqlParam::Integer(at.timestamp_millis()))
    }
}

/// PostgreSQL, with `attributes` as `jsonb` and times as `timestamptz`.
///
/// - Every placeholder carries its parameter's type (`$1::text`, `$2::int8`, `$3::float8`),
///   so a statement prepares without guessing; an attribute is read key by key
///   (`u.attributes -> $1 -> $2`, each key a parameter; a path longer than
///   [`CHAINED_KEYS`](Self::CHAINED_KEYS) as the text of an array of keys read with `#>`), an
///   `in` list travels as JSON text, a time as ISO 8601 text.
/// - Equality on an attribute is containment, `u.attributes @> '{"address": {"city": "Kandy"}}'`,
///   which a GIN index on `attributes` (`jsonb_path_ops`) serves; jsonb containment compares
///   scalars with their types (the string `"30"` is not the number `30`) and numbers by value
///   (`30` is `30.0`). Other comparisons read the value with `#>` and check its
///   `jsonb_typeof` first: text compares in byte order (`COLLATE "C"`, as SQLite compares
///   it), numbers as `numeric` (against a real operand, as `float8`), booleans as 1 and 0.
/// - `->` with a text key reads object members only, as SQLite's quoted path does; `#>` would
///   read a key such as `0` as an index into an array, so a long path with such a key also
///   checks that each value on the way is an object.
/// - PostgreSQL text cannot hold the NUL character, so no stored key or value has one: a key
///   with NUL reads as missing, and an operand with NUL is bound as `NULL` (see the store's
///   `segment_params`), so it equals, contains and starts nothing; an `in` list skips its
///   values with NUL.
#[derive(Debug, Clone, Copy, Default)]
pub struct Postgres;

impl Postgres {
    /// Paths of at most this many keys are read member by member (`->`), each key a
    /// parameter; longer ones (rare) as one array parameter (`#>`), so that a rule's
    /// parameters stay bounded by its number of conditions.
    pub const CHAINED_KEYS: usize = 8;

    /// The text of a PostgreSQL array of the keys of `path` (`{"address","city"}`), read as
    /// `text[]`: every key is quoted, with `"` and `\` escaped by a backslash, so commas,
    /// braces, spaces and quotes are literal.
    pub fn key_array(path: &[String]) -> String {
        let keys: Vec<String> = path
            .iter()
            .map(|key| {
                let mut quoted = String::with_capacity(key.len() + 2);
                quoted.push('"');
                for c in key.chars() {
                    if matches!(c, '"' | '\\') {
                        quoted.push('\\');
                    }
                    quoted.push(c);
                }
                quoted.push('"');
                quoted
            })
            .collect();
        format!("{{{}}}", keys.join(","))
    }

    /// The attribute at `path` as `jsonb` (SQL `NULL` when missing).
    fn extract(b: &mut Bindings<'_>, path: &[String]) -> String {
        if path.iter().any(|key| key.contains('\0')) {
            return "NULL::jsonb".to_owned();
        }
        if path.len() <= Self::CHAINED_KEYS {
            // `jsonb -> text` reads object members only (never an array index).
            let mut value = String::from("u.attributes");
            for key in path {
                let p = b.bind(SqlParam::Text(key.clone()));
                value = format!("({value} -> {p})");
            }
            return value;
        }
        let p = b.bind(SqlParam::Text(Self::key_array(path)));
        let value = format!("(u.attributes #> {p}::text[])");
        // `#>` reads a key such as `0` or `-1` as an index into an array: such a key must be
        // read from an object.
        let guards: Vec<String> = (1..path.len())
            .filter(|&i| path[i].chars().any(|c| c.is_ascii_digit()))
            .map(|i| {
                let parent = b.bind(SqlParam::Text(Self::key_array(&path[..i])));
                format!("jsonb_typeof(u.attributes #> {parent}::text[]) = 'object'")
            })
            .collect();
        if guards.is_empty() {
            value
        } else {
            format!("(CASE WHEN {} THEN {value} END)", guards.join(" AND "))
        }
    }

    /// The `jsonb` expression `value` as an SQL value of `kind`, `NULL` when it has another
    /// JSON type.
    fn typed(value: &str, kind: ScalarKind) -> String {
        match kind {
            ScalarKind::Text => format!(
                "(CASE WHEN jsonb_typeof({value}) = 'string' THEN {value} #>> '{{}}' END) \
                 COLLATE \"C\""
            ),
            ScalarKind::Number => {
                format!("(CASE WHEN jsonb_typeof({value}) = 'number' THEN ({value})::numeric END)")
            }
            ScalarKind::Bool => format!(
                "(CASE WHEN jsonb_typeof({value}) = 'boolean' THEN ({value})::boolean::int4 END)"
            ),
        }
    }

    /// `{"k1": {"k2": value}}`: what attributes holding `value` at `path` contain.
    fn containing(path: &[String], value: &Value) -> Value {
        path.iter().rev().fold(value.clone(), |inner, key| {
            Value::Object([(key.clone(), inner)].into_iter().collect())
        })
    }
}

/// PostgreSQL's `json_typeof` name for a kind.
fn json_type(kind: ScalarKind) -> &'static str {
    match kind {
        ScalarKind::Text => "string",
        ScalarKind::Number => "number",
        ScalarKind::Bool => "boolean",
    }
}

/// Matches the JSON text of a string holding an escaped NUL (`\u0000` after an even number
/// of backslashes), which `jsonb` refuses.
const JSON_NUL: &str = r"(^|[^\\])(\\\\)*\\u0000";

impl SqlDialect for Postgres {
    fn placeholder(&self, index: usize) -> String {
        format!("${index}")
    }

    fn bound_placeholder(&self, index: usize, param: &SqlParam) -> String {
        match param {
            SqlParam::Integer(_) => format!("${index}::int8"),
            SqlParam::Real(_) => format!("${index}::float8"),
            SqlParam::Text(_) | SqlParam::Null => format!("${index}::text"),
        }
    }

    fn attribute_equals(
        &self,
        b: &mut Bindings<'_>,
        path: &[String],
        value: &Value,
    ) -> Option<String> {
        let text_with_nul = value.as_str().is_some_and(|s| s.contains('\0'));
        if text_with_nul || path.iter().any(|key| key.contains('\0')) {
            return Some(NEVER.to_owned());
        }
        let p = b.bind(SqlParam::Text(Self::containing(path, value).to_string()));
        Some(format!("u.attributes @> {p}::jsonb"))
    }

    fn attribute_value(&self, b: &mut Bindings<'_>, path: &[String], kind: ScalarKind) -> String {
        let value = Self::extract(b, path);
        Self::typed(&value, kind)
    }

    fn attribute_exists(&self, b: &mut Bindings<'_>, path: &[String]) -> String {
        let value = Self::extract(b, path);
        format!("COALESCE(jsonb_typeof({value}), 'null') <> 'null'")
    }

    fn attribute_array_contains(
        &self,
        b: &mut Bindings<'_>,
        path: &[String],
        kind: ScalarKind,
        element: &str,
    ) -> String {
        let value = Self::extract(b, path);
        let item = Self::typed("item.value", kind);
        // jsonb_array_elements refuses a scalar: anything but an array reads as empty.
        format!(
            "EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof({value}) = \
             'array' THEN {value} ELSE '[]'::jsonb END) AS item(value) WHERE {item} = {element})"
        )
    }

    fn value_in_list(&self, value: &str, kind: ScalarKind, list: &str) -> String {
        // An uncorrelated subquery, read once per statement (hashed), not once per user. The
        // list is read as `json`, which takes an escaped NUL that `jsonb` refuses; values
        // holding one are skipped (no stored value has one).
        let element = match kind {
            ScalarKind::Text => "item.value #>> '{}'",
            ScalarKind::Number => "(item.value::text)::numeric",
            ScalarKind::Bool => "(item.value::text)::boolean::int4",
        };
        let json_type = json_type(kind);
        format!(
            "{value} IN (SELECT {element} FROM json_array_elements(({list})::json) AS item(value) \
             WHERE json_typeof(item.value) = '{json_type}' AND item.value::text !~ '{JSON_NUL}')"
        )
    }

    fn text_contains(&self, text: &str, needle: &str) -> String {
        format!("strpos({text}, {needle}) > 0")
    }

    fn text_starts_with(&self, text: &str, prefix: &str) -> String {
        // Not LIKE, whose `%` and `_` are wildcards.
        format!("left({text}, length({prefix})) = {prefix}")
    }

    fn timestamp(&self, b: &mut Bindings<'_>, at: DateTime<Utc>) -> String {
        // A window reaching before the year 1 (`within_days` in the millions) holds every
        // event; PostgreSQL's ISO input has no year 0 and no negative years.
        let text = if at.year() < 1 {
            "-infinity".to_owned()
        } else {
            at.to_rfc3339_opts(SecondsFormat::Millis, true)
        };
        let p = b.bind(SqlParam::Text(text));
        format!("({p})::timestamptz")
    }
}

/// Compiles a rule tree into a predicate over `users u`; `now` anchors event-history windows.
pub fn compile(rule: &RuleNode, dialect: &dyn SqlDialect, now: DateTime<Utc>) -> CompiledPredicate {
    let mut b = Bindings {
        dialect,
        params: Vec::new(),
    };
    let sql = node(&mut b, rule, now);
    CompiledPredicate {
        sql,
        params: b.params,
    }
}

impl SegmentRule {
    /// Compiles the rule into a predicate over `users u` (see [`compile`]).
    pub fn to_sql(&self, dialect: &dyn SqlDialect, now: DateTime<Utc>) -> CompiledPredicate {
        compile(self.root(), dialect, now)
    }
}

/// The key an event name is stored and looked up by (`events.name_key`): trimmed and
/// ASCII-lower-cased, the same comparison as [`TriggerEvent::matches`](crate::domain::TriggerEvent::matches).
pub fn event_name_key(name: &str) -> String {
    name.trim().to_ascii_lowercase()
}

const NEVER: &str = "1=0";
const ALWAYS: &str = "1=1";

fn node(b: &mut Bindings<'_>, rule: &RuleNode, now: DateTime<Utc>) -> String {
    match rule {
        RuleNode::All(children) => group(b, children, " AND ", ALWAYS, now),
        RuleNode::Any(children) => group(b, children, " OR ", NEVER, now),
        RuleNode::Not(inner) => format!("(NOT {})", node(b, inner, now)),
        RuleNode::Attribute { path, op, value } => attribute(b, path, *op, value),
        RuleNode::Field { field, op, value } => user_field(b, *field, *op, value),
        RuleNode::Topic(topic) => {
            let t = b.bind(SqlParam::Text(topic.as_str().to_owned()));
            format!(
                "EXISTS (SELECT 1 FROM subscriptions s WHERE s.phone = u.phone AND s.topic = {t})"
            )
        }
        RuleNode::Consent(consent) => {
            let c = b.bind(SqlParam::Text(consent.as_str().to_owned()));
            format!("(u.consent_state = {c})")
        }
        RuleNode::EventHistory {
            name,
            min_count,
            within_days,
        } => event_history(b, name, *min_count, *within_days, now),
    }
}

fn group(
    b: &mut Bindings<'_>,
    children: &[RuleNode],
    joiner: &str,
    empty: &str,
    now: DateTime<Utc>,
) -> String {
    match children {
        [] => empty.to_owned(),
        [only] => node(b, only, now),
        _ => {
            // Halves, not a chain: `a OR b OR c …` nests one level per condition in the
            // database's parser, a balanced tree only one per doubling.
            let (left, right) = children.split_at(children.len() / 2);
            let left = group(b, left, joiner, empty, now);
            let right = group(b, right, joiner, empty, now);
            format!("({left}{joiner}{right})")
        }
    }
}

fn event_history(
    b: &mut Bindings<'_>,
    name: &str,
    min_count: u32,
    within_days: Option<u32>,
    now: DateTime<Utc>,
) -> String {
    if min_count == 0 {
        return ALWAYS.to_owned();
    }
    let key = b.bind(SqlParam::Text(event_name_key(name)));
    let mut filter = format!("e.user_phone = u.phone AND e.name_key = {key}");
    if let Some(days) = within_days {
        let since = now
            .checked_sub_signed(TimeDelta::days(i64::from(days)))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let since = b.dialect.timestamp(b, since);
        filter.push_str(&format!(" AND e.occurred_at >= {since}"));
    }
    if min_count == 1 {
        format!("EXISTS (SELECT 1 FROM events e WHERE {filter})")
    } else {
        let count = b.bind(SqlParam::Integer(i64::from(min_count)));
        format!("((SELECT COUNT(*) FROM events e WHERE {filter}) >= {count})")
    }
}

/// A comparison operand, with the JSON type it is compared as.
fn operand(value: &Value) -> Option<(ScalarKind, SqlParam)> {
    Some(match value {
        Value::String(s) => (ScalarKind::Text, SqlParam::Text(s.clone())),
        Value::Bool(v) => (ScalarKind::Bool, SqlParam::Integer(i64::from(*v))),
        Value::Number(n) => match n.as_i64() {
            Some(i) => (ScalarKind::Number, SqlParam::Integer(i)),
            None => (ScalarKind::Number, SqlParam::Real(n.as_f64()?)),
        },
        _ => return None,
    })
}

/// The kinds of the values of an `in` list, in order of first appearance, so that each is
/// compared against attributes of its own JSON type.
fn kinds_in_list(value: &Value) -> Vec<ScalarKind> {
    let mut kinds = Vec::new();
    for (kind, _) in value.as_array().into_iter().flatten().filter_map(operand) {
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    kinds
}

fn leaf(condition: String) -> String {
    format!("(({condition}) IS TRUE)")
}

fn symbol(op: Comparison) -> &'static str {
    match op {
        Comparison::Gt => ">",
        Comparison::Gte => ">=",
        Comparison::Lt => "<",
        Comparison::Lte => "<=",
        _ => "=",
    }
}

fn attribute(b: &mut Bindings<'_>, path: &[String], op: Comparison, value: &Value) -> String {
    let dialect = b.dialect;
    match op {
        Comparison::Exists if value == &Value::Bool(false) => {
            format!("(NOT {})", leaf(dialect.attribute_exists(b, path)))
        }
        Comparison::Exists => leaf(dialect.attribute_exists(b, path)),
        Comparison::Ne => format!("(NOT {})", attribute(b, path, Comparison::Eq, value)),
        Comparison::Eq if operand(value).is_some() => {
            if let Some(equals) = dialect.attribute_equals(b, path, value) {
                return format!("({equals})");
            }
            let (kind, param) = operand(value).expect("checked above");
            let current = dialect.attribute_value(b, path, kind);
            let p = b.bind(param);
            leaf(format!("{current} = {p}"))
        }
        Comparison::Eq | Comparison::Gt | Comparison::Gte | Comparison::Lt | Comparison::Lte => {
            let Some((kind, param)) = operand(value) else {
                return NEVER.to_owned();
            };
            let current = dialect.attribute_value(b, path, kind);
            let p = b.bind(param);
            leaf(format!("{current} {} {p}", symbol(op)))
        }
        Comparison::In => {
            let kinds = kinds_in_list(value);
            if kinds.is_empty() {
                return NEVER.to_owned();
            }
            let list = b.bind(SqlParam::Text(value.to_string()));
            let parts: Vec<String> = kinds
                .into_iter()
                .map(|kind| {
                    let current = dialect.attribute_value(b, path, kind);
                    leaf(dialect.value_in_list(&current, kind, &list))
                })
                .collect();
            format!("({})", parts.join(" OR "))
        }
        Comparison::Contains => {
            let Some((kind, param)) = operand(value) else {
                return NEVER.to_owned();
            };
            let p = b.bind(param);
            let in_array = dialect.attribute_array_contains(b, path, kind, &p);
            if kind == ScalarKind::Text {
                let text = dialect.attribute_value(b, path, ScalarKind::Text);
                let substring = dialect.text_contains(&text, &p);
                leaf(format!("({substring}) OR {in_array}"))
            } else {
                leaf(in_array)
            }
        }
        Comparison::StartsWith => match value {
            Value::String(prefix) => {
                let p = b.bind(SqlParam::Text(prefix.clone()));
                let text = dialect.attribute_value(b, path, ScalarKind::Text);
                leaf(dialect.text_starts_with(&text, &p))
            }
            _ => NEVER.to_owned(),
        },
    }
}

fn column(field: UserField) -> &'static str {
    match field {
        UserField::Phone => "u.phone",
        UserField::Name => "u.name",
        UserField::WaId => "u.wa_id",
        UserField::Timezone => "u.timezone",
        UserField::Locale => "u.locale",
    }
}

/// User fields are text columns: only string operands can match.
fn user_field(b: &mut Bindings<'_>, field: UserField, op: Comparison, value: &Value) -> String {
    let col = column(field);
    let text = |v: &Value| v.as_str().map(|s| SqlParam::Text(s.to_owned()));
    match op {
        Comparison::Exists if value == &Value::Bool(false) => format!("(COALESCE({col}, '') = '')"),
        Comparison::Exists => format!("(COALESCE({col}, '') <> '')"),
        Comparison::Ne => format!("(NOT {})", user_field(b, field, Comparison::Eq, value)),
        Comparison::In => {
            if !kinds_in_list(value).contains(&ScalarKind::Text) {
                return NEVER.to_owned();
            }
            let list = b.bind(SqlParam::Text(value.to_string()));
            leaf(b.dialect.value_in_list(col, ScalarKind::Text, &list))
        }
        _ => {
            let Some(param) = text(value) else {
                return NEVER.to_owned();
            };
            let p = b.bind(param);
            leaf(match op {
                Comparison::Contains => b.dialect.text_contains(col, &p),
                Comparison::StartsWith => b.dialect.text_starts_with(col, &p),
                _ => format!("{col} {} {p}", symbol(op)),
            })
        }
    }
}
