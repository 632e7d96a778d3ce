//! The form of `POST .../Messages.json`, parsed the way Twilio checks it: the first problem
//! found is answered with its Twilio error code.

use crate::twilio_error::TwilioError;

/// Twilio refuses bodies longer than this many characters.
const MAX_BODY_CHARS: usize = 1600;

/// A request to send one message, every field known to be well-formed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OutboundRequest {
    /// `To` as given (`whatsapp:+E164` or `+E164`).
    pub to: String,
    pub sender: Sender,
    pub content: Content,
    pub status_callback: Option<String>,
}

/// Who sends: a number, or a Messaging Service that picks one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Sender {
    From {
        from: String,
        messaging_service_sid: Option<String>,
    },
    Service(String),
}

/// What is sent: free text or an approved content template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Content {
    Body(String),
    Template {
        content_sid: String,
        variables: Option<String>,
    },
}

impl OutboundRequest {
    /// Checks the form fields in Twilio's order and keeps what a message needs.
    pub fn parse(fields: &[(String, String)]) -> Result<Self, TwilioError> {
        let field = |name: &str| {
            fields
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.trim())
                .filter(|value| !value.is_empty())
        };

        let to = field("To")
            .ok_or_else(|| TwilioError::bad_request(21604, "A 'To' phone number is required."))?;
        if !is_address(to) {
            return Err(TwilioError::bad_request(
                21211,
                format!("The 'To' number {to} is not a valid phone number."),
            ));
        }

        let service = field("MessagingServiceSid");
        if let Some(sid) = service
            && !is_sid(sid, "MG")
        {
            return Err(TwilioError::bad_request(
                21701,
                format!("The Messaging Service Sid {sid} is invalid."),
            ));
        }
        let sender = match (field("From"), service) {
            (Some(from), _) if !is_address(from) => {
                return Err(TwilioError::bad_request(
                    21212,
                    format!(
                        "The 'From' number {from} is not a valid phone number, shortcode, or alphanumeric sender ID."
                    ),
                ));
            }
            (Some(from), _) if is_whatsapp(from) != is_whatsapp(to) => {
                return Err(TwilioError::bad_request(
                    21910,
                    "Invalid From and To pair. From and To should be of the same channel",
                ));
            }
            (Some(from), service) => Sender::From {
                from: from.to_owned(),
                messaging_service_sid: service.map(str::to_owned),
            },
            (None, Some(service)) => Sender::Service(service.to_owned()),
            (None, None) => {
                return Err(TwilioError::bad_request(
                    21603,
                    "A 'From' phone number is required.",
                ));
            }
        };

        let content = match (field("Body"), field("ContentSid")) {
            (_, Some(sid)) => {
                if !is_sid(sid, "HX") {
                    return Err(TwilioError::bad_request(
                        21655,
                        "The ContentSid is Invalid.",
                    ));
                }
                let variables = field("ContentVariables");
                if let Some(text) = variables
                    && !is_string_map(text)
                {
                    return Err(TwilioError::bad_request(
                        21656,
                        "The ContentVariables Parameter is invalid.",
                    ));
                }
                Content::Template {
                    content_sid: sid.to_owned(),
                    variables: variables.map(str::to_owned),
                }
            }
            (Some(body), None) => {
                if body.chars().count() > MAX_BODY_CHARS {
                    return Err(TwilioError::bad_request(
                        21617,
                        "The concatenated message body exceeds the 1600 character limit.",
                    ));
                }
                Content::Body(body.to_owned())
            }
            (None, None) => {
                return Err(TwilioError::bad_request(21602, "Message body is required."));
            }
        };

        let status_callback = field("StatusCallback");
        if let Some(url) = status_callback
            && !is_http_url(url)
        {
            return Err(TwilioError::bad_request(
                21609,
                format!("The StatusCallback URL {url} is not a valid URL."),
            ));
        }

        Ok(Self {
            to: to.to_owned(),
            sender,
            content,
            status_callback: status_callback.map(str::to_owned),
        })
    }

    /// The recipient's E.164 number, without the channel prefix.
    pub fn to_number(&self) -> &str {
        self.to.strip_prefix("whatsapp:").unwrap_or(&self.to)
    }
}

fn is_whatsapp(address: &str) -> bool {
    address.starts_with("whatsapp:")
}

/// `+` and 7 to 15 digits, the first not 0, optionally behind `whatsapp:`.
fn is_address(address: &str) -> bool {
    let number = address.strip_prefix("whatsapp:").unwrap_or(address);
    let Some(digits) = number.strip_prefix('+') else {
        return false;
    };
    (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// A Twilio SID: a two-letter prefix and 32 hex digits.
fn is_sid(sid: &str, prefix: &str) -> bool {
    sid.strip_prefix(prefix)
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A JSON object whose values are all strings, as Twilio wants `ContentVariables`.
fn is_string_map(text: &str) -> bool {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
        .is_ok_and(|map| map.values().all(serde_json::Value::is_string))
}

fn is_http_url(url: &str) -> bool {
    url.parse::<poem::http::Uri>()
        .is_ok_and(|uri| matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some())
}

/// Segments Twilio bills: always 1 on WhatsApp; for SMS, 160/153 characters per segment
/// for plain ASCII text (close enough to GSM-7 for a fake), or 70/67 UTF-16 units otherwise.
pub(crate) fn num_segments(to: &str, content: &Content) -> usize {
    let Content::Body(body) = content else {
        return 1;
    };
    if is_whatsapp(to) {
        return 1;
    }
    let gsm = body
        .chars()
        .all(|c| c.is_ascii() && (c == '\n' || c == '\r' || !c.is_control()));
    let (units, single, multi) = if gsm {
        (body.chars().count(), 160, 153)
    } else {
        (body.encode_utf16().count(), 70, 67)
    };
    if units <= single {
        1
    } else {
        units.div_ceil(multi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn code(pairs: &[(&str, &str)]) -> u32 {
        OutboundRequest::parse(&form(pairs)).unwrap_err().code
    }

    const TO: (&str, &str) = ("To", "whatsapp:+14155552671");
    const FROM: (&str, &str) = ("From", "whatsapp:+14155238886");

    #[test]
    fn each_missing_or_invalid_field_has_its_twilio_code() {
        assert_eq!(code(&[FROM, ("Body", "hi")]), 21604);
        assert_eq!(
            code(&[("To", "whatsapp:12345"), FROM, ("Body", "hi")]),
            21211
        );
        assert_eq!(code(&[TO, ("Body", "hi")]), 21603);
        assert_eq!(code(&[TO, ("From", "nobody"), ("Body", "hi")]), 21212);
        assert_eq!(code(&[TO, ("From", "+14155238886"), ("Body", "hi")]), 21910);
        assert_eq!(
            code(&[TO, ("MessagingServiceSid", "MG1"), ("Body", "hi")]),
            21701
        );
        assert_eq!(code(&[TO, FROM]), 21602);
        assert_eq!(code(&[TO, FROM, ("Body", &"x".repeat(1601))]), 21617);
        assert_eq!(code(&[TO, FROM, ("ContentSid", "HX12")]), 21655);
        let sid = ("ContentSid", "HX0123456789abcdef0123456789abcdef");
        assert_eq!(
            code(&[TO, FROM, sid, ("ContentVariables", "{\"1\": 5}")]),
            21656
        );
        assert_eq!(
            code(&[TO, FROM, ("Body", "hi"), ("StatusCallback", "nope")]),
            21609
        );
    }

    #[test]
    fn a_template_through_a_messaging_service_parses() {
        let request = OutboundRequest::parse(&form(&[
            TO,
            ("MessagingServiceSid", "MG0123456789abcdef0123456789abcdef"),
            ("ContentSid", "HX0123456789abcdef0123456789abcdef"),
            ("ContentVariables", "{\"1\": \"Ada\"}"),
            ("StatusCallback", "http://127.0.0.1:5000/twilio/status"),
        ]))
        .unwrap();
        assert_eq!(request.to_number(), "+14155552671");
        assert!(matches!(request.sender, Sender::Service(_)));
        assert!(matches!(
            request.content,
            Content::Template {
                variables: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn segments_follow_sms_rules_and_whatsapp_is_one() {
        let long = Content::Body("a".repeat(161));
        assert_eq!(num_segments("whatsapp:+14155552671", &long), 1);
        assert_eq!(num_segments("+14155552671", &long), 2);
        assert_eq!(
            num_segments("+14155552671", &Content::Body("é".repeat(71))),
            2
        );
        assert_eq!(
            num_segments("+14155552671", &Content::Body("hello".into())),
            1
        );
    }
}
