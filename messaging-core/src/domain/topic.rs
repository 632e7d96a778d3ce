//! [`Topic`]: what a user subscribes to (`SUBSCRIBE DANCE`). Case-insensitive, stored upper-case.

use std::fmt;

/// A subscription topic such as `DANCE`: 1–64 letters, digits, `_` or `-`, upper-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(String);

/// Why a text is not a topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Empty after trimming.
    #[error("topic is empty")]
    Empty,
    /// Longer than 64 characters.
    #[error("topic is {0} characters long; at most 64 are allowed")]
    TooLong(usize),
    /// A character outside letters, digits, `_` and `-`.
    #[error("topic contains {0:?}; only letters, digits, '_' and '-' are allowed")]
    InvalidCharacter(char),
}

impl Topic {
    /// Parses a topic, trimming whitespace and upper-casing it.
    pub fn parse(input: &str) -> Result<Self, TopicError> {
        let text = input.trim();
        if text.is_empty() {
            return Err(TopicError::Empty);
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(TopicError::InvalidCharacter(bad));
        }
        // Upper-casing can lengthen a name (ß becomes SS), so the limit applies after it.
        let upper = text.to_uppercase();
        let length = upper.chars().count();
        if length > 64 {
            return Err(TopicError::TooLong(length));
        }
        Ok(Self(upper))
    }

    /// The topic's canonical (upper-case) name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Topic {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

super::text_serde!(Topic, as_str);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_case_insensitive_and_stored_upper_case() {
        assert_eq!(Topic::parse(" dance ").unwrap().as_str(), "DANCE");
        assert_eq!(
            Topic::parse("Dance").unwrap(),
            Topic::parse("DANCE").unwrap()
        );
        assert_eq!(
            Topic::parse("new-releases_2").unwrap().as_str(),
            "NEW-RELEASES_2"
        );
    }

    #[test]
    fn refuses_bad_topics() {
        assert_eq!(Topic::parse("  "), Err(TopicError::Empty));
        assert_eq!(Topic::parse("a b"), Err(TopicError::InvalidCharacter(' ')));
        assert_eq!(Topic::parse(&"x".repeat(65)), Err(TopicError::TooLong(65)));
        assert_eq!(Topic::parse(&"ß".repeat(40)), Err(TopicError::TooLong(80)));
    }
}
