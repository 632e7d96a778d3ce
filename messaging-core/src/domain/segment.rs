//! [`Segment`]: a named audience definition, as stored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::SegmentId;
use crate::segment::SegmentRule;

/// A named audience.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Its id.
    pub id: SegmentId,
    /// A name operators recognise.
    pub name: String,
    /// Who belongs to it.
    pub rule: SegmentRule,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What an operator gives to create or replace a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentDraft {
    /// A name operators recognise.
    pub name: String,
    /// Who belongs to it.
    pub rule: SegmentRule,
}
