//! Segments: the JSON rule language that says who belongs to an audience.
//!
//! A definition is parsed once into a [`RuleNode`] tree ([`SegmentRule::parse`]); errors point
//! at the offending node with a JSON-pointer path (`/all/1/op`). The tree is then compiled to a
//! parameterised SQL predicate ([`sql::compile`]) in which no value or key is ever spliced into
//! the SQL text.
//!
//! Two forms are accepted:
//!
//! - the prototype's shorthand, an object of conditions that must all hold:
//!   `{"topic": "DANCE"}`, `{"attributes.city": "Colombo"}`,
//!   `{"attributes.age": {"gte": 18}}`, `{"consent_state": "OPT_IN"}`;
//! - the full form, with `all`/`any`/`not` and explicit conditions:
//!   `{"attribute": "city", "op": "eq", "value": "Colombo"}`,
//!   `{"field": "locale", "op": "starts_with", "value": "en"}`, `{"topic": "DANCE"}`,
//!   `{"consent": "OPT_OUT"}`, `{"event": "cart_abandoned", "min_count": 2, "within_days": 7}`.
//!
//! A definition's size is bounded when it is parsed ([`MAX_DEPTH`], [`MAX_GROUP_CONDITIONS`],
//! [`MAX_CONDITIONS`], [`MAX_IN_VALUES`]), so every rule that parses is one every store can
//! evaluate.

mod parse;
pub mod sql;

pub use parse::{MAX_CONDITIONS, MAX_DEPTH, MAX_GROUP_CONDITIONS, MAX_IN_VALUES};
#[cfg(test)]
mod tests;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::domain::{Consent, Topic};

/// A parsed audience definition. It keeps the JSON it was parsed from, which is what it
/// serialises back to.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentRule {
    source: Value,
    root: RuleNode,
}

/// A node of the rule tree.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleNode {
    /// Every child holds (an empty list matches everyone).
    All(Vec<RuleNode>),
    /// At least one child holds (an empty list matches no one).
    Any(Vec<RuleNode>),
    /// The child does not hold.
    Not(Box<RuleNode>),
    /// A comparison on a user attribute (`attributes.city`); `path` has one element per level
    /// of nesting (`attributes.address.city` is `["address", "city"]`).
    Attribute {
        /// The attribute's key path.
        path: Vec<String>,
        /// The comparison.
        op: Comparison,
        /// The operand (unused by `exists`; an array for `in`).
        value: Value,
    },
    /// A comparison on one of the user's own fields.
    Field {
        /// Which field.
        field: UserField,
        /// The comparison.
        op: Comparison,
        /// The operand.
        value: Value,
    },
    /// The user is subscribed to the topic.
    Topic(Topic),
    /// The user's consent state is this.
    Consent(Consent),
    /// The user had event `name` at least `min_count` times, within the last `within_days`
    /// days when given.
    EventHistory {
        /// The event's name (compared without regard to case).
        name: String,
        /// How many times at least (default 1).
        min_count: u32,
        /// Only events this many days old or newer count.
        within_days: Option<u32>,
    },
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// Equal.
    Eq,
    /// Not equal (also true when the attribute is missing).
    Ne,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// Equal to one of the values of an array.
    In,
    /// A string containing the value, or an array containing it as an element.
    Contains,
    /// A string starting with the value.
    StartsWith,
    /// The attribute is present (and not null).
    Exists,
}

/// A user field a rule can compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserField {
    /// The E.164 phone number.
    Phone,
    /// The display name.
    Name,
    /// The WhatsApp id.
    WaId,
    /// The IANA time zone.
    Timezone,
    /// The locale.
    Locale,
}

/// Why a segment definition was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{message} (at {path})")]
pub struct SegmentError {
    /// JSON pointer to the offending node (`/all/1/op`); `/` is the whole definition.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl SegmentRule {
    /// Parses a definition in either form, refusing one over the size limits.
    pub fn parse(definition: &Value) -> Result<Self, SegmentError> {
        let root = parse::parse_node(definition, "", true)?;
        Ok(Self {
            source: definition.clone(),
            root,
        })
    }

    /// Parses a definition a store kept, written before the size limits were: only its
    /// nesting is bounded, so a segment saved then can still be read (and edited), and it
    /// evaluates wherever the database allows its size.
    pub fn parse_stored(definition: &Value) -> Result<Self, SegmentError> {
        let root = parse::parse_node(definition, "", false)?;
        Ok(Self {
            source: definition.clone(),
            root,
        })
    }

    /// [`parse_stored`](Self::parse_stored) from JSON text.
    pub fn from_stored_json(text: &str) -> Result<Self, SegmentError> {
        let value: Value = serde_json::from_str(text).map_err(|e| SegmentError {
            path: "/".into(),
            message: format!("not valid JSON ({e})"),
        })?;
        Self::parse_stored(&value)
    }

    /// A rule every user matches (`{}`).
    pub fn everyone() -> Self {
        Self {
            source: Value::Object(Default::default()),
            root: RuleNode::All(Vec::new()),
        }
    }

    /// The parsed tree.
    pub fn root(&self) -> &RuleNode {
        &self.root
    }

    /// The definition as it was given.
    pub fn as_json(&self) -> &Value {
        &self.source
    }

    /// Both rules must hold (a campaign's segment narrowed by an event's rule).
    pub fn and(&self, other: &SegmentRule) -> SegmentRule {
        SegmentRule {
            source: serde_json::json!({"all": [self.source, other.source]}),
            root: RuleNode::All(vec![self.root.clone(), other.root.clone()]),
        }
    }
}

impl Serialize for SegmentRule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.source.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SegmentRule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::parse(&value).map_err(serde::de::Error::custom)
    }
}
