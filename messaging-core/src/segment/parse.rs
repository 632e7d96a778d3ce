//! Parses segment definitions (both forms) into [`RuleNode`]s.

use serde_json::Value;

use super::{RuleNode, SegmentError};

/// Parses the node at JSON pointer `path`.
pub(super) fn parse_node(value: &Value, path: &str) -> Result<RuleNode, SegmentError> {
    let _ = value;
    Err(SegmentError {
        path: if path.is_empty() {
            "/".into()
        } else {
            path.into()
        },
        message: "segment parsing is not written yet".into(),
    })
}
