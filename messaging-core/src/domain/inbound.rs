//! [`InboundMessage`]: what a user wrote to us over WhatsApp, and the [`Command`] it may carry.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{FieldError, InboundId, PhoneNumber, Topic};

/// A keyword command in an inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Command {
    /// Opt in again (`START`, `YES`, `UNSTOP`).
    Start,
    /// Opt out of everything (`STOP`, `STOPALL`, `UNSUBSCRIBE`, `CANCEL`, `END`, `QUIT`).
    Stop,
    /// Follow a topic (`SUBSCRIBE DANCE`).
    Subscribe,
    /// Stop following a topic (`UNSUBSCRIBE DANCE`).
    Unsubscribe,
    /// Ask what the commands are (`HELP`, `INFO`).
    Help,
}

/// A command with its topic, when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCommand {
    /// Which command.
    pub command: Command,
    /// The topic of `SUBSCRIBE`/`UNSUBSCRIBE`.
    pub topic: Option<Topic>,
}

impl Command {
    /// Reads a command from a message body; `None` when the body is conversation. Keywords are
    /// case-insensitive and must be the whole message (`stop` is a command, `please stop` is
    /// conversation), as with Twilio's own opt-out handling.
    pub fn parse(body: &str) -> Option<ParsedCommand> {
        let mut words = body.split_whitespace();
        let keyword = words.next()?.trim_matches(|c: char| !c.is_alphanumeric());
        let keyword = keyword.to_ascii_uppercase();
        // Punctuation around the topic (`SUBSCRIBE dance!`) is not part of it.
        let argument = words.next().map(|word| {
            word.trim_matches(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
        });
        if words.next().is_some() {
            return None;
        }
        let bare = |command| {
            argument.is_none().then_some(ParsedCommand {
                command,
                topic: None,
            })
        };
        match (keyword.as_str(), argument) {
            ("SUBSCRIBE", Some(topic)) => Some(ParsedCommand {
                command: Command::Subscribe,
                topic: Some(Topic::parse(topic).ok()?),
            }),
            ("UNSUBSCRIBE", Some(topic)) => Some(ParsedCommand {
                command: Command::Unsubscribe,
                topic: Some(Topic::parse(topic).ok()?),
            }),
            ("START" | "YES" | "UNSTOP" | "SUBSCRIBE", _) => bare(Command::Start),
            ("STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT", _) => {
                bare(Command::Stop)
            }
            ("HELP" | "INFO", _) => bare(Command::Help),
            _ => None,
        }
    }
}

/// A message a user sent us, as received by the inbound webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// Its id.
    pub id: InboundId,
    /// Twilio's `MessageSid`; the same SID is stored once, whatever Twilio repeats.
    pub message_sid: String,
    /// The sender.
    pub from: PhoneNumber,
    /// The sender's WhatsApp id (`WaId`).
    pub wa_id: Option<String>,
    /// What they wrote.
    pub body: String,
    /// The command the body carries, if any.
    pub command: Option<Command>,
    /// The topic of a `SUBSCRIBE`/`UNSUBSCRIBE` command.
    pub topic: Option<Topic>,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// The webhook's form fields exactly as received.
    pub raw: BTreeMap<String, String>,
}

impl InboundMessage {
    /// Reads Twilio's inbound webhook form fields (`MessageSid`, `From`, `Body`, `WaId`…),
    /// keeping them all as `raw`. `MessageSid` and `From` are required.
    pub fn from_webhook(
        fields: BTreeMap<String, String>,
        received_at: DateTime<Utc>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let message_sid = fields
            .get("MessageSid")
            .or_else(|| fields.get("SmsMessageSid"))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        if message_sid.is_none() {
            errors.push(FieldError::new("MessageSid", "missing"));
        }
        let from = match fields.get("From").map(|f| PhoneNumber::parse(f)) {
            Some(Ok(phone)) => Some(phone),
            Some(Err(e)) => {
                errors.push(FieldError::new("From", e.to_string()));
                None
            }
            None => {
                errors.push(FieldError::new("From", "missing"));
                None
            }
        };
        let (Some(message_sid), Some(from), true) = (message_sid, from, errors.is_empty()) else {
            return Err(errors);
        };
        let body = fields.get("Body").cloned().unwrap_or_default();
        let parsed = Command::parse(&body);
        Ok(Self {
            id: InboundId::new(),
            message_sid,
            from,
            wa_id: fields.get("WaId").filter(|w| !w.trim().is_empty()).cloned(),
            command: parsed.as_ref().map(|p| p.command),
            topic: parsed.and_then(|p| p.topic),
            body,
            received_at,
            raw: fields,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Option<(Command, Option<String>)> {
        Command::parse(body).map(|p| (p.command, p.topic.map(|t| t.to_string())))
    }

    #[test]
    fn reads_commands_case_insensitively() {
        assert_eq!(parse(" stop "), Some((Command::Stop, None)));
        assert_eq!(parse("Start"), Some((Command::Start, None)));
        assert_eq!(parse("help"), Some((Command::Help, None)));
        assert_eq!(
            parse("subscribe dance"),
            Some((Command::Subscribe, Some("DANCE".into())))
        );
        assert_eq!(
            parse("UNSUBSCRIBE Dance"),
            Some((Command::Unsubscribe, Some("DANCE".into())))
        );
        assert_eq!(parse("UNSUBSCRIBE"), Some((Command::Stop, None)));
        assert_eq!(parse("STOP."), Some((Command::Stop, None)));
        assert_eq!(
            parse("SUBSCRIBE dance!"),
            Some((Command::Subscribe, Some("DANCE".into())))
        );
    }

    #[test]
    fn reads_twilios_inbound_fields() {
        let fields: BTreeMap<String, String> = [
            ("MessageSid", "SM123"),
            ("From", "whatsapp:+14155552671"),
            ("Body", "subscribe dance"),
            ("WaId", "14155552671"),
            ("ProfileName", "Ann"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let now = Utc::now();
        let message = InboundMessage::from_webhook(fields.clone(), now).unwrap();
        assert_eq!(message.from.as_str(), "+14155552671");
        assert_eq!(message.command, Some(Command::Subscribe));
        assert_eq!(message.topic.unwrap().as_str(), "DANCE");
        assert_eq!(message.raw, fields);
        let errors = InboundMessage::from_webhook(BTreeMap::new(), now).unwrap_err();
        let names: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(names, ["MessageSid", "From"]);
    }

    #[test]
    fn conversation_is_not_a_command() {
        assert_eq!(parse("please stop sending"), None);
        assert_eq!(parse("stop it"), None);
        assert_eq!(parse("hello"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("subscribe to dance"), None);
    }
}
