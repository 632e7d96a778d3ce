//! [`Consent`]: whether a user may receive business-initiated messages.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A user's consent to receive messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Consent {
    /// The user agreed (or sent START); campaigns may reach them.
    #[default]
    OptIn,
    /// The user declined (or sent STOP); campaigns skip them.
    OptOut,
}

/// The text is not a consent state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown consent state {0:?}; expected OPT_IN or OPT_OUT (STARTED and STOPPED are accepted too)"
)]
pub struct ConsentError(pub String);

impl Consent {
    /// Parses a consent state, case-insensitively. Besides `OPT_IN`/`OPT_OUT` it accepts the
    /// prototype's `STARTED`/`STOPPED` and the usual spellings `OPTIN`, `OPT-IN`, `OPTED_IN`….
    pub fn parse(input: &str) -> Result<Self, ConsentError> {
        let normal: String = input
            .trim()
            .chars()
            .filter(|c| !matches!(c, '_' | '-' | ' '))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        match normal.as_str() {
            "OPTIN" | "OPTEDIN" | "STARTED" | "START" | "SUBSCRIBED" => Ok(Self::OptIn),
            "OPTOUT" | "OPTEDOUT" | "STOPPED" | "STOP" | "UNSUBSCRIBED" => Ok(Self::OptOut),
            _ => Err(ConsentError(input.to_owned())),
        }
    }

    /// The canonical name, `OPT_IN` or `OPT_OUT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OptIn => "OPT_IN",
            Self::OptOut => "OPT_OUT",
        }
    }
}

impl fmt::Display for Consent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Consent {
    type Err = ConsentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_prototypes_started_and_stopped() {
        assert_eq!(Consent::parse("STARTED"), Ok(Consent::OptIn));
        assert_eq!(Consent::parse("stopped"), Ok(Consent::OptOut));
        assert_eq!(Consent::parse("OPT_IN"), Ok(Consent::OptIn));
        assert_eq!(Consent::parse("opt-out"), Ok(Consent::OptOut));
        assert!(Consent::parse("maybe").is_err());
    }

    #[test]
    fn serialises_as_screaming_snake_case() {
        assert_eq!(
            serde_json::to_string(&Consent::OptOut).unwrap(),
            "\"OPT_OUT\""
        );
    }
}
