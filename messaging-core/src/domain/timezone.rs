//! [`TimeZone`]: an IANA time zone name such as `Asia/Colombo`.

use std::fmt;

use chrono_tz::Tz;

/// A recipient's IANA time zone; quiet hours are counted in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeZone(Tz);

/// The text is not an IANA time zone name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {0:?}; expected an IANA name such as Europe/London")]
pub struct TimeZoneError(pub String);

impl TimeZone {
    /// Parses an IANA name (`Europe/London`, `UTC`).
    pub fn parse(input: &str) -> Result<Self, TimeZoneError> {
        Tz::from_str_insensitive(input.trim())
            .map(Self)
            .map_err(|_| TimeZoneError(input.to_owned()))
    }

    /// The IANA name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// The `chrono-tz` zone, for date arithmetic.
    pub fn tz(&self) -> Tz {
        self.0
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

super::text_serde!(TimeZone, name);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_iana_names_only() {
        assert_eq!(
            TimeZone::parse("Asia/Colombo").unwrap().name(),
            "Asia/Colombo"
        );
        assert!(TimeZone::parse("Mars/Olympus").is_err());
        assert_eq!(
            TimeZone::parse("asia/colombo").unwrap().name(),
            "Asia/Colombo"
        );
        assert_eq!(TimeZone::parse("utc").unwrap().name(), "UTC");
    }
}
