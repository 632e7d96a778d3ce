//! Compiles a [`SegmentRule`] into a parameterised SQL predicate.
//!
//! The predicate is a `WHERE` fragment over the users table under the alias `u`; every value,
//! key and JSON path travels as a parameter ([`SqlParam`]), never in the SQL text. What differs
//! between databases (placeholders, JSON functions, time columns) sits behind [`SqlDialect`], so
//! a PostgreSQL adapter can bring its own dialect while callers keep calling [`compile`].
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

use chrono::{DateTime, TimeDelta, Utc};
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
        self.params.push(param);
        self.dialect.placeholder(self.params.len())
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
