//! [`PhoneNumber`]: an E.164 number, the key of every user.
//!
//! Parsing accepts what people and Twilio actually send (`whatsapp:+1 (415) 555-2671`) and
//! refuses everything else with a reason a person can act on.

use std::fmt;

/// A phone number in E.164 form (`+14155552671`): a `+`, a country calling code assigned by the
/// ITU, and at most 15 digits in all.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

/// Why a text is not a phone number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// Nothing but whitespace (or a bare `whatsapp:` prefix).
    #[error("phone number is empty")]
    Empty,
    /// The number does not start with `+` and a country code.
    #[error("phone number must start with '+' and the country code (E.164, e.g. +14155552671)")]
    MissingPlus,
    /// A character other than digits, spaces, dashes and brackets.
    #[error(
        "phone number contains {found:?} at position {position}; only digits, spaces, dashes and brackets are allowed after '+'"
    )]
    InvalidCharacter {
        /// The offending character.
        found: char,
        /// Its 1-based position in the text after any `whatsapp:` prefix.
        position: usize,
    },
    /// The country code starts with 0, which E.164 never allows.
    #[error("phone number cannot start with 0 after '+'")]
    LeadingZero,
    /// Fewer digits than any real number has.
    #[error("phone number has {digits} digits; E.164 numbers have at least 7")]
    TooShort {
        /// How many digits were found.
        digits: usize,
    },
    /// More than E.164's 15 digits.
    #[error("phone number has {digits} digits; E.164 allows at most 15")]
    TooLong {
        /// How many digits were found.
        digits: usize,
    },
    /// The leading digits are not an assigned country calling code.
    #[error("phone number does not start with a known country calling code")]
    UnknownCountryCode,
}

const MIN_DIGITS: usize = 7;
const MAX_DIGITS: usize = 15;

impl PhoneNumber {
    /// Parses a phone number, accepting an optional `whatsapp:` prefix and spaces, dashes and
    /// brackets between the digits.
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        let mut text = input.trim();
        if let Some(prefix) = text.get(..9)
            && prefix.eq_ignore_ascii_case("whatsapp:")
        {
            text = text[9..].trim_start();
        }
        if text.is_empty() {
            return Err(PhoneError::Empty);
        }
        let rest = text.strip_prefix('+').ok_or(PhoneError::MissingPlus)?;
        let mut e164 = String::with_capacity(16);
        e164.push('+');
        for (index, ch) in rest.chars().enumerate() {
            match ch {
                '0'..='9' => {
                    if e164.len() > MAX_DIGITS + 1 {
                        // Keep counting without growing the buffer.
                        continue;
                    }
                    e164.push(ch);
                }
                ' ' | '-' | '(' | ')' => {}
                other => {
                    return Err(PhoneError::InvalidCharacter {
                        found: other,
                        position: index + 2,
                    });
                }
            }
        }
        let digits = rest.bytes().filter(u8::is_ascii_digit).count();
        if digits > MAX_DIGITS {
            return Err(PhoneError::TooLong { digits });
        }
        if e164.as_bytes().get(1) == Some(&b'0') {
            return Err(PhoneError::LeadingZero);
        }
        if digits < MIN_DIGITS {
            return Err(PhoneError::TooShort { digits });
        }
        if calling_code_of(&e164[1..]).is_none() {
            return Err(PhoneError::UnknownCountryCode);
        }
        Ok(Self(e164))
    }

    /// The number as E.164 text, e.g. `+14155552671`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address Twilio uses for WhatsApp, e.g. `whatsapp:+14155552671`.
    pub fn whatsapp_address(&self) -> String {
        format!("whatsapp:{}", self.0)
    }

    /// The country calling code (1 for the US and Canada, 94 for Sri Lanka…).
    pub fn calling_code(&self) -> u16 {
        calling_code_of(&self.0[1..]).unwrap_or(0)
    }

    /// The digits as one integer: a compact key for de-duplicating millions of numbers.
    pub fn as_u64(&self) -> u64 {
        self.0[1..]
            .bytes()
            .fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0'))
    }
}

/// Country calling codes of two digits (one-digit codes are 1 and 7; all others have three).
const TWO_DIGIT_CODES: &[u16] = &[
    20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54, 55, 56,
    57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98,
];

/// Assigned three-digit country calling codes (ITU-T E.164 list, including global services).
const THREE_DIGIT_CODES: &[u16] = &[
    211, 212, 213, 216, 218, 220, 221, 222, 223, 224, 225, 226, 227, 228, 229, 230, 231, 232, 233,
    234, 235, 236, 237, 238, 239, 240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252,
    253, 254, 255, 256, 257, 258, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269, 290, 291, 297,
    298, 299, 350, 351, 352, 353, 354, 355, 356, 357, 358, 359, 370, 371, 372, 373, 374, 375, 376,
    377, 378, 379, 380, 381, 382, 383, 385, 386, 387, 389, 420, 421, 423, 500, 501, 502, 503, 504,
    505, 506, 507, 508, 509, 590, 591, 592, 593, 594, 595, 596, 597, 598, 599, 670, 672, 673, 674,
    675, 676, 677, 678, 679, 680, 681, 682, 683, 685, 686, 687, 688, 689, 690, 691, 692, 800, 808,
    850, 852, 853, 855, 856, 870, 878, 880, 881, 882, 883, 886, 888, 960, 961, 962, 963, 964, 965,
    966, 967, 968, 970, 971, 972, 973, 974, 975, 976, 977, 979, 992, 993, 994, 995, 996, 998,
];

fn calling_code_of(digits: &str) -> Option<u16> {
    let prefix = |n: usize| digits.get(..n).and_then(|p| p.parse::<u16>().ok());
    match prefix(1)? {
        code @ (1 | 7) => Some(code),
        _ => {
            let two = prefix(2)?;
            if TWO_DIGIT_CODES.binary_search(&two).is_ok() {
                return Some(two);
            }
            let three = prefix(3)?;
            THREE_DIGIT_CODES.binary_search(&three).ok().map(|_| three)
        }
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for PhoneNumber {
    type Err = PhoneError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for PhoneNumber {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

super::text_serde!(PhoneNumber, as_str);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_e164_and_common_decorations() {
        for input in [
            "+14155552671",
            "whatsapp:+14155552671",
            "WhatsApp: +1 (415) 555-2671",
            "  +1-415-555-2671  ",
        ] {
            assert_eq!(
                PhoneNumber::parse(input).unwrap().as_str(),
                "+14155552671",
                "{input}"
            );
        }
        assert_eq!(
            PhoneNumber::parse("+94 77 123 4567").unwrap().as_str(),
            "+94771234567"
        );
    }

    #[test]
    fn refuses_with_a_reason() {
        assert_eq!(PhoneNumber::parse(""), Err(PhoneError::Empty));
        assert_eq!(PhoneNumber::parse("whatsapp:"), Err(PhoneError::Empty));
        assert_eq!(
            PhoneNumber::parse("14155552671"),
            Err(PhoneError::MissingPlus)
        );
        assert_eq!(
            PhoneNumber::parse("+1415555267a"),
            Err(PhoneError::InvalidCharacter {
                found: 'a',
                position: 12
            })
        );
        assert_eq!(
            PhoneNumber::parse("+0123456789"),
            Err(PhoneError::LeadingZero)
        );
        assert_eq!(
            PhoneNumber::parse("+1415"),
            Err(PhoneError::TooShort { digits: 4 })
        );
        assert_eq!(
            PhoneNumber::parse("+1415555267112345"),
            Err(PhoneError::TooLong { digits: 16 })
        );
        assert_eq!(
            PhoneNumber::parse("+999123456789"),
            Err(PhoneError::UnknownCountryCode)
        );
    }

    #[test]
    fn knows_the_country_calling_code() {
        assert_eq!(
            PhoneNumber::parse("+14155552671").unwrap().calling_code(),
            1
        );
        assert_eq!(
            PhoneNumber::parse("+94771234567").unwrap().calling_code(),
            94
        );
        assert_eq!(
            PhoneNumber::parse("+353861234567").unwrap().calling_code(),
            353
        );
        assert_eq!(
            PhoneNumber::parse("+74951234567").unwrap().calling_code(),
            7
        );
    }

    #[test]
    fn code_tables_are_sorted_for_binary_search() {
        assert!(TWO_DIGIT_CODES.windows(2).all(|w| w[0] < w[1]));
        assert!(THREE_DIGIT_CODES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn u64_key_matches_digits() {
        assert_eq!(
            PhoneNumber::parse("+14155552671").unwrap().as_u64(),
            14155552671
        );
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(input in ".{0,40}") {
            let _ = PhoneNumber::parse(&input);
        }

        #[test]
        fn parsed_numbers_are_canonical(input in "(whatsapp:)?\\+[0-9 ()-]{0,24}") {
            if let Ok(phone) = PhoneNumber::parse(&input) {
                let text = phone.as_str();
                prop_assert!(text.starts_with('+'));
                prop_assert!(text[1..].bytes().all(|b| b.is_ascii_digit()));
                prop_assert!((MIN_DIGITS..=MAX_DIGITS).contains(&(text.len() - 1)));
                prop_assert_eq!(PhoneNumber::parse(text).unwrap(), phone.clone());
            }
        }
    }
}
