//! Parses segment definitions (both forms) into [`RuleNode`]s.
//!
//! An object is read in the full form when it has one of the keys `all`, `any`, `not`,
//! `attribute`, `field` or `event`; such a node accepts only its own keys. Any other object is
//! the prototype's shorthand: each key is a condition (`topic`, `consent`/`consent_state`,
//! `attributes.<key>`, or a user field such as `name`) and all of them must hold. `topic` and
//! `consent` mean the same in both forms, so `{"topic": "DANCE"}` is valid either way.
//!
//! Every error carries a JSON pointer (RFC 6901) to the offending node or key, so an operator
//! can find the mistake in a large definition.
//!
//! A definition's size is bounded here, not in a store adapter, so that every accepted rule
//! compiles to SQL any supported database evaluates: see [`MAX_DEPTH`],
//! [`MAX_GROUP_CONDITIONS`], [`MAX_CONDITIONS`] and [`MAX_IN_VALUES`].

use serde_json::{Map, Value};

use super::{Comparison, RuleNode, SegmentError, UserField};
use crate::domain::{Consent, Topic, json_kind};

/// How deeply `all`/`any`/`not` may nest. Real audiences need a handful of levels; the cap keeps
/// a hostile definition from exhausting the stack.
pub const MAX_DEPTH: usize = 32;

/// The most conditions one `all` or `any` may list. Many values of one attribute belong in a
/// single `in`, which takes far more.
pub const MAX_GROUP_CONDITIONS: usize = 500;

/// The most nodes (groups, `not`s and conditions together) one definition may hold. With at
/// most a few parameters per condition, every accepted rule stays far below the bound
/// parameters and expression depth databases allow (SQLite: 32,766 and 1,000).
pub const MAX_CONDITIONS: usize = 1_000;

/// The most values all the `in` lists of one definition may hold together. Each `in` is one
/// bound parameter whatever its length, so this bounds memory, not the SQL.
pub const MAX_IN_VALUES: usize = 100_000;

const OPERATORS: &str = "eq, ne, gt, gte, lt, lte, in, contains, starts_with, exists";
const OPERATOR_NAMES: [(&str, Comparison); 10] = [
    ("eq", Comparison::Eq),
    ("ne", Comparison::Ne),
    ("gt", Comparison::Gt),
    ("gte", Comparison::Gte),
    ("lt", Comparison::Lt),
    ("lte", Comparison::Lte),
    ("in", Comparison::In),
    ("contains", Comparison::Contains),
    ("starts_with", Comparison::StartsWith),
    ("exists", Comparison::Exists),
];
const FIELDS: &str = "phone, name, wa_id, timezone, locale";
const NODE_KEYS: &str = "all, any, not, attribute, field, topic, consent, event, or shorthand \
     conditions (attributes.<key>, consent_state, phone, name, wa_id, timezone, locale)";

/// Parses the node at JSON pointer `path` (`""` is the whole definition). `sized` applies the
/// size limits; the nesting limit always holds.
pub(super) fn parse_node(value: &Value, path: &str, sized: bool) -> Result<RuleNode, SegmentError> {
    let mut budget = Budget {
        sized,
        conditions: 0,
        in_values: 0,
    };
    node(value, path, 0, &mut budget)
}

/// What a definition has used of its limits so far.
struct Budget {
    sized: bool,
    conditions: usize,
    in_values: usize,
}

impl Budget {
    /// Counts one more node, at `path`.
    fn node(&mut self, path: &str) -> Result<(), SegmentError> {
        self.conditions += 1;
        if self.sized && self.conditions > MAX_CONDITIONS {
            return Err(error(
                path,
                format!(
                    "a definition holds at most {MAX_CONDITIONS} conditions (groups, \"not\"s \
                     and comparisons together); this one has more"
                ),
            ));
        }
        Ok(())
    }

    /// Counts the values of an `in` list, at `path`.
    fn in_values(&mut self, count: usize, path: &str) -> Result<(), SegmentError> {
        self.in_values += count;
        if self.sized && self.in_values > MAX_IN_VALUES {
            return Err(error(
                path,
                format!(
                    "the \"in\" lists of a definition hold at most {MAX_IN_VALUES} values \
                     together; this one has more"
                ),
            ));
        }
        Ok(())
    }
}

fn node(
    value: &Value,
    path: &str,
    depth: usize,
    budget: &mut Budget,
) -> Result<RuleNode, SegmentError> {
    if depth > MAX_DEPTH {
        return Err(error(
            path,
            format!("rules are nested more than {MAX_DEPTH} levels deep"),
        ));
    }
    let Value::Object(object) = value else {
        return Err(error(
            path,
            format!("a rule must be a JSON object, found {}", json_kind(value)),
        ));
    };
    for group in ["all", "any"] {
        if let Some(children) = object.get(group) {
            only_keys(object, path, &[group], &format!("an \"{group}\" rule"))?;
            let children_path = child(path, group);
            let Value::Array(children) = children else {
                return Err(error(
                    &children_path,
                    format!("\"{group}\" must be an array of rules"),
                ));
            };
            if budget.sized && children.len() > MAX_GROUP_CONDITIONS {
                return Err(error(
                    &children_path,
                    format!(
                        "at most {MAX_GROUP_CONDITIONS} conditions in one \"{group}\", found {}; \
                         match many values of one attribute with a single \"in\"",
                        children.len()
                    ),
                ));
            }
            budget.node(path)?;
            let nodes = children
                .iter()
                .enumerate()
                .map(|(i, c)| node(c, &child(&children_path, &i.to_string()), depth + 1, budget))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(if group == "all" {
                RuleNode::All(nodes)
            } else {
                RuleNode::Any(nodes)
            });
        }
    }
    if let Some(inner) = object.get("not") {
        only_keys(object, path, &["not"], "a \"not\" rule")?;
        budget.node(path)?;
        let inner = node(inner, &child(path, "not"), depth + 1, budget)?;
        return Ok(RuleNode::Not(Box::new(inner)));
    }
    if object.contains_key("attribute") {
        return attribute_condition(object, path, budget);
    }
    if object.contains_key("field") {
        return field_condition(object, path, budget);
    }
    if object.contains_key("event") {
        budget.node(path)?;
        return event_condition(object, path);
    }
    shorthand(object, path, budget)
}

/// `{"attribute": "address.city", "op": "eq", "value": "Colombo"}`; the key path may also be
/// an array of keys, for keys that contain dots.
fn attribute_condition(
    object: &Map<String, Value>,
    path: &str,
    budget: &mut Budget,
) -> Result<RuleNode, SegmentError> {
    only_keys(
        object,
        path,
        &["attribute", "op", "value"],
        "an attribute condition",
    )?;
    let key_path = child(path, "attribute");
    let keys = match &object["attribute"] {
        Value::String(dotted) => attribute_keys(dotted, &key_path)?,
        Value::Array(parts) if !parts.is_empty() => parts
            .iter()
            .enumerate()
            .map(|(i, part)| match part {
                Value::String(key) if !key.is_empty() => Ok(key.clone()),
                _ => Err(error(
                    &child(&key_path, &i.to_string()),
                    "each attribute key must be a non-empty string",
                )),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(error(
                &key_path,
                format!(
                    "\"attribute\" must be a key such as \"city\" or \"address.city\", found {}",
                    json_kind(other)
                ),
            ));
        }
    };
    let op = operator_field(object, path)?;
    comparison(
        op,
        object.get("value"),
        path,
        &child(path, "value"),
        budget,
        |op, value| RuleNode::Attribute {
            path: keys.clone(),
            op,
            value,
        },
    )
}

/// `{"field": "locale", "op": "starts_with", "value": "en"}`.
fn field_condition(
    object: &Map<String, Value>,
    path: &str,
    budget: &mut Budget,
) -> Result<RuleNode, SegmentError> {
    only_keys(object, path, &["field", "op", "value"], "a field condition")?;
    let field_path = child(path, "field");
    let field = match &object["field"] {
        Value::String(name) => user_field(name).ok_or_else(|| {
            let hint = match name.as_str() {
                "consent" | "consent_state" => {
                    "; use {\"consent\": \"OPT_IN\"} for consent".to_owned()
                }
                "topic" => "; use {\"topic\": \"...\"} for subscriptions".to_owned(),
                _ => match name.strip_prefix("attributes.") {
                    Some(key) => {
                        format!("; for an attribute write {{\"attribute\": \"{key}\", …}}")
                    }
                    None => "; use \"attribute\" for custom attributes".to_owned(),
                },
            };
            error(
                &field_path,
                format!("unknown field \"{name}\"; expected one of {FIELDS}{hint}"),
            )
        })?,
        other => {
            return Err(error(
                &field_path,
                format!(
                    "\"field\" must be one of {FIELDS}, found {}",
                    json_kind(other)
                ),
            ));
        }
    };
    let op = operator_field(object, path)?;
    let value_path = child(path, "value");
    text_only(op, object.get("value"), &value_path)?;
    comparison(
        op,
        object.get("value"),
        path,
        &value_path,
        budget,
        |op, value| RuleNode::Field { field, op, value },
    )
}

/// `{"event": "cart_abandoned", "min_count": 2, "within_days": 7}`.
fn event_condition(object: &Map<String, Value>, path: &str) -> Result<RuleNode, SegmentError> {
    only_keys(
        object,
        path,
        &["event", "min_count", "within_days"],
        "an event condition",
    )?;
    let name = match &object["event"] {
        Value::String(name) if !name.trim().is_empty() => name.trim().to_owned(),
        other => {
            return Err(error(
                &child(path, "event"),
                format!(
                    "\"event\" must be a non-empty event name, found {}",
                    describe(other)
                ),
            ));
        }
    };
    let min_count = positive_integer(object, path, "min_count")?.unwrap_or(1);
    let within_days = positive_integer(object, path, "within_days")?;
    Ok(RuleNode::EventHistory {
        name,
        min_count,
        within_days,
    })
}

/// The prototype's shorthand: every key is a condition and all of them must hold.
fn shorthand(
    object: &Map<String, Value>,
    path: &str,
    budget: &mut Budget,
) -> Result<RuleNode, SegmentError> {
    if object.len() != 1 {
        // The conditions are grouped under one `all`.
        budget.node(path)?;
    }
    let mut conditions = Vec::new();
    for (key, value) in object {
        let key_path = child(path, key);
        match key.as_str() {
            "topic" => {
                budget.node(&key_path)?;
                conditions.push(RuleNode::Topic(topic(value, &key_path)?));
            }
            "consent" | "consent_state" => {
                budget.node(&key_path)?;
                conditions.push(RuleNode::Consent(consent(value, &key_path)?));
            }
            _ => {
                if let Some(dotted) = key.strip_prefix("attributes.") {
                    let keys = attribute_keys(dotted, &key_path)?;
                    shorthand_comparisons(
                        value,
                        &key_path,
                        false,
                        &mut conditions,
                        budget,
                        |op, value| RuleNode::Attribute {
                            path: keys.clone(),
                            op,
                            value,
                        },
                    )?;
                } else if let Some(field) = user_field(key) {
                    let make = |op, value| RuleNode::Field { field, op, value };
                    shorthand_comparisons(value, &key_path, true, &mut conditions, budget, make)?;
                } else {
                    let hint = if key == "attributes" {
                        "; write attribute conditions as \"attributes.<key>\"".to_owned()
                    } else {
                        format!("; expected {NODE_KEYS}")
                    };
                    return Err(error(&key_path, format!("unknown key \"{key}\"{hint}")));
                }
            }
        }
    }
    Ok(match conditions.len() {
        1 => conditions.remove(0),
        _ => RuleNode::All(conditions),
    })
}

/// A shorthand value: a scalar (equality) or an object of operators, all of which must hold.
/// `text` says the operands must be strings (user fields).
fn shorthand_comparisons(
    value: &Value,
    path: &str,
    text: bool,
    conditions: &mut Vec<RuleNode>,
    budget: &mut Budget,
    make: impl Fn(Comparison, Value) -> RuleNode,
) -> Result<(), SegmentError> {
    match value {
        Value::Object(operators) if operators.is_empty() => Err(error(
            path,
            format!("an operator object needs at least one operator: {OPERATORS}"),
        )),
        Value::Object(operators) => {
            for (name, operand) in operators {
                let op_path = child(path, name);
                let op = operator(name, &op_path)?;
                if text {
                    text_only(op, Some(operand), &op_path)?;
                }
                let condition = comparison(op, Some(operand), path, &op_path, budget, &make)?;
                conditions.push(condition);
            }
            Ok(())
        }
        Value::Null => Err(error(
            path,
            "null is not a value to compare with; use {\"exists\": false}",
        )),
        Value::Array(_) => Err(error(
            path,
            "an array is not a value to compare with; use {\"in\": [...]} to match any of several values",
        )),
        scalar => {
            if text {
                text_only(Comparison::Eq, Some(scalar), path)?;
            }
            budget.node(path)?;
            conditions.push(make(Comparison::Eq, scalar.clone()));
            Ok(())
        }
    }
}

/// Checks an operator's operand and builds its node; `exists: false` becomes `not exists`.
fn comparison(
    op: Comparison,
    operand: Option<&Value>,
    node_path: &str,
    value_path: &str,
    budget: &mut Budget,
    make: impl Fn(Comparison, Value) -> RuleNode,
) -> Result<RuleNode, SegmentError> {
    use Comparison::*;
    budget.node(node_path)?;
    let name = operator_name(op);
    let Some(operand) = operand else {
        return match op {
            Exists => Ok(make(Exists, Value::Bool(true))),
            _ => Err(error(
                node_path,
                format!("missing \"value\" for \"{name}\""),
            )),
        };
    };
    let bad = |expected: &str| {
        Err(error(
            value_path,
            format!("\"{name}\" needs {expected}, found {}", describe(operand)),
        ))
    };
    match (op, operand) {
        (Exists, Value::Bool(true)) => Ok(make(Exists, Value::Bool(true))),
        (Exists, Value::Bool(false)) => {
            Ok(RuleNode::Not(Box::new(make(Exists, Value::Bool(true)))))
        }
        (Exists, _) => bad("true or false"),
        (Eq | Ne, Value::String(_) | Value::Number(_) | Value::Bool(_)) => {
            Ok(make(op, operand.clone()))
        }
        (Eq | Ne, Value::Null) => Err(error(
            value_path,
            format!("\"{name}\" cannot compare with null; use \"exists\""),
        )),
        (Eq | Ne, _) => bad("a string, number or boolean"),
        (Gt | Gte | Lt | Lte, Value::String(_) | Value::Number(_)) => Ok(make(op, operand.clone())),
        (Gt | Gte | Lt | Lte, _) => bad("a number or string"),
        (In, Value::Array(items)) if !items.is_empty() => {
            budget.in_values(items.len(), value_path)?;
            for (i, item) in items.iter().enumerate() {
                if !matches!(item, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                    return Err(error(
                        &child(value_path, &i.to_string()),
                        format!(
                            "\"in\" values must be strings, numbers or booleans, found {}",
                            describe(item)
                        ),
                    ));
                }
            }
            Ok(make(op, operand.clone()))
        }
        (In, _) => bad("a non-empty array of values"),
        (Contains, Value::String(_) | Value::Number(_) | Value::Bool(_)) => {
            Ok(make(op, operand.clone()))
        }
        (Contains, _) => bad("a string (or a number or boolean to find in an array)"),
        (StartsWith, Value::String(_)) => Ok(make(op, operand.clone())),
        (StartsWith, _) => bad("a string"),
    }
}

/// User fields are text: refuse numbers and booleans that could never match.
fn text_only(op: Comparison, operand: Option<&Value>, path: &str) -> Result<(), SegmentError> {
    let fine = |v: &Value| !matches!(v, Value::Number(_) | Value::Bool(_));
    let ok = match (op, operand) {
        (Comparison::Exists, _) | (_, None) => true,
        (Comparison::In, Some(Value::Array(items))) => items.iter().all(fine),
        (_, Some(value)) => fine(value),
    };
    if ok {
        Ok(())
    } else {
        Err(error(
            path,
            "user fields are text; compare them with strings",
        ))
    }
}

fn operator_field(object: &Map<String, Value>, path: &str) -> Result<Comparison, SegmentError> {
    let op_path = child(path, "op");
    match object.get("op") {
        None => Err(error(
            path,
            format!("missing \"op\"; expected one of {OPERATORS}"),
        )),
        Some(Value::String(name)) => operator(name, &op_path),
        Some(other) => Err(error(
            &op_path,
            format!(
                "\"op\" must be one of {OPERATORS}, found {}",
                json_kind(other)
            ),
        )),
    }
}

fn operator(name: &str, path: &str) -> Result<Comparison, SegmentError> {
    OPERATOR_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, op)| *op)
        .ok_or_else(|| {
            error(
                path,
                format!("unknown operator \"{name}\"; expected one of {OPERATORS}"),
            )
        })
}

fn operator_name(op: Comparison) -> &'static str {
    OPERATOR_NAMES
        .iter()
        .find(|(_, o)| *o == op)
        .map_or("?", |(n, _)| n)
}

fn user_field(name: &str) -> Option<UserField> {
    Some(match name {
        "phone" => UserField::Phone,
        "name" => UserField::Name,
        "wa_id" => UserField::WaId,
        "timezone" => UserField::Timezone,
        "locale" => UserField::Locale,
        _ => return None,
    })
}

/// Splits `address.city` into its keys, refusing empty ones (`a..b`, `.a`, ``).
fn attribute_keys(dotted: &str, path: &str) -> Result<Vec<String>, SegmentError> {
    let keys: Vec<String> = dotted.split('.').map(str::to_owned).collect();
    if keys.iter().any(String::is_empty) {
        return Err(error(
            path,
            format!(
                "attribute key \"{dotted}\" has an empty part; write keys like \"address.city\""
            ),
        ));
    }
    Ok(keys)
}

fn topic(value: &Value, path: &str) -> Result<Topic, SegmentError> {
    match value {
        Value::String(text) => Topic::parse(text).map_err(|e| error(path, e.to_string())),
        other => Err(error(
            path,
            format!(
                "a topic must be a string such as \"DANCE\", found {}",
                describe(other)
            ),
        )),
    }
}

fn consent(value: &Value, path: &str) -> Result<Consent, SegmentError> {
    match value {
        Value::String(text) => Consent::parse(text).map_err(|e| error(path, e.to_string())),
        other => Err(error(
            path,
            format!(
                "a consent state must be \"OPT_IN\" or \"OPT_OUT\", found {}",
                describe(other)
            ),
        )),
    }
}

/// An optional positive integer field; `null` counts as absent.
fn positive_integer(
    object: &Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<Option<u32>, SegmentError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => match value.as_u64() {
            Some(n @ 1..) => u32::try_from(n).map(Some).map_err(|_| {
                error(
                    &child(path, key),
                    format!("\"{key}\" is too large (at most {})", u32::MAX),
                )
            }),
            _ => Err(error(
                &child(path, key),
                format!(
                    "\"{key}\" must be a positive integer, found {}",
                    describe(value)
                ),
            )),
        },
    }
}

/// Refuses keys a full-form node does not take, naming the first stray one.
fn only_keys(
    object: &Map<String, Value>,
    path: &str,
    allowed: &[&str],
    what: &str,
) -> Result<(), SegmentError> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some(stray) => Err(error(
            &child(path, stray),
            format!(
                "unknown key \"{stray}\"; {what} takes only {}",
                allowed.join(", ")
            ),
        )),
    }
}

/// A value for an error message: its JSON for scalars, its kind otherwise.
fn describe(value: &Value) -> String {
    match value {
        Value::Array(_) | Value::Object(_) => json_kind(value).to_owned(),
        scalar => scalar.to_string(),
    }
}

/// Appends one reference token to a JSON pointer, escaping `~` and `/` (RFC 6901).
fn child(path: &str, token: &str) -> String {
    format!("{path}/{}", token.replace('~', "~0").replace('/', "~1"))
}

fn error(path: &str, message: impl Into<String>) -> SegmentError {
    SegmentError {
        path: if path.is_empty() {
            "/".into()
        } else {
            path.into()
        },
        message: message.into(),
    }
}
