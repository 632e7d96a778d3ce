//! What the fake has seen: accepted messages with their current status, the status callbacks
//! it tried to deliver, messages users sent in (see [`crate::inbound`]), and counters of every
//! outcome. This is what tests read to check "exactly once": only accepted messages are
//! listed as sent, each with how many times the same content reached the same recipient.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::inbound::InboundMessage;
use crate::list::Listed;

/// Where a message is in its life, with Twilio's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Taken in for a Messaging Service (no `From` given).
    Accepted,
    /// Taken in with a `From` number.
    Queued,
    /// Handed to WhatsApp or the carrier.
    Sent,
    /// On the recipient's phone.
    Delivered,
    /// Seen by the recipient (WhatsApp read receipt).
    Read,
    /// Sent, but could not be delivered.
    Undelivered,
    /// Never left Twilio.
    Failed,
}

impl MessageStatus {
    /// The word Twilio uses (`MessageStatus` in callbacks, `status` in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Undelivered => "undelivered",
            Self::Failed => "failed",
        }
    }
}

/// One message the fake accepted, as `GET /_fake/messages` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcceptedMessage {
    /// `SM` and 32 hex digits.
    pub sid: String,
    /// The account it was sent on.
    pub account_sid: String,
    /// `To` as given.
    pub to: String,
    /// `From` as given; `None` when only a Messaging Service was named.
    pub from: Option<String>,
    /// `MessagingServiceSid` as given.
    pub messaging_service_sid: Option<String>,
    /// `Body` as given (free text).
    pub body: Option<String>,
    /// `ContentSid` as given (approved template).
    pub content_sid: Option<String>,
    /// `ContentVariables` as given (JSON object text).
    pub content_variables: Option<String>,
    /// `StatusCallback` as given.
    pub status_callback: Option<String>,
    /// Current status; moves on as the simulated delivery goes.
    pub status: MessageStatus,
    /// Error code of a failed or undelivered message.
    pub error_code: Option<u32>,
    /// When it was accepted (RFC 2822, as Twilio writes dates).
    pub date_created: String,
    /// When its status last changed (RFC 2822).
    pub date_updated: String,
    /// When it left Twilio (RFC 2822): set once, at its first step past `queued`, except for a
    /// message that failed before leaving; `None` until then.
    pub date_sent: Option<String>,
    /// Segments billed (always 1 on WhatsApp).
    pub num_segments: usize,
    /// Every form field of the request, as received.
    pub form: BTreeMap<String, String>,
    /// How many accepted messages (this one included) went to the same `To` with the same
    /// `Body`, or the same `ContentSid` and `ContentVariables`; above 1 means a duplicate.
    pub times_accepted: u32,
    /// Whether the client never got the answer (the connection was dropped after acceptance).
    pub answer_dropped: bool,
}

/// One status callback the fake delivered or gave up on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallbackRecord {
    /// The message it reported on.
    pub message_sid: String,
    /// The status it reported.
    pub status: MessageStatus,
    /// Where it was posted.
    pub url: String,
    /// How many times it was posted.
    pub attempts: u32,
    /// Whether the last attempt got a 2xx answer.
    pub delivered: bool,
    /// HTTP status of the last answer, if any came.
    pub response_status: Option<u16>,
    /// Why the last attempt failed, if it did.
    pub error: Option<String>,
}

/// How many Messages API requests ended each way since start or the last reset (the
/// outcomes count sends only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Every `POST .../Messages.json`.
    pub requests: u64,
    /// Every list request (`GET .../Messages.json`), including those answered 5xx by
    /// `list_server_error_share`.
    pub lists: u64,
    /// Every fetch of one message (`GET .../Messages/{Sid}.json`).
    pub fetches: u64,
    /// Messages accepted (including those whose answer was then dropped).
    pub accepted: u64,
    /// Answered 401.
    pub unauthorized: u64,
    /// Answered 400 for a missing or invalid field.
    pub invalid: u64,
    /// Answered 400 with a recipient's configured permanent error.
    pub permanent_errors: u64,
    /// Answered 429 by fault injection.
    pub rate_limited: u64,
    /// Answered 500/503 by fault injection.
    pub server_errors: u64,
    /// Connections closed without an answer.
    pub dropped: u64,
    /// Messages users sent in (`POST /_fake/inbound`).
    pub received: u64,
}

/// Which list an entry of the account's history is kept in.
#[derive(Debug, Clone, Copy)]
enum Arrival {
    /// `messages[i]`, accepted from the API.
    Sent(usize),
    /// `inbound[i]`, sent in by a user.
    Received(usize),
}

/// The fake's memory. A reset starts a new generation so that callbacks still running for
/// older messages cannot write into the fresh ledger.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    generation: u64,
    messages: Vec<AcceptedMessage>,
    index: HashMap<String, usize>,
    times_by_content: HashMap<(String, String), u32>,
    callbacks: Vec<CallbackRecord>,
    inbound: Vec<InboundMessage>,
    /// Every message of the account, sent or received, in the order it arrived.
    arrivals: Vec<Arrival>,
    pub counters: Counters,
}

impl Ledger {
    /// Records an accepted message and answers the generation it belongs to.
    pub fn accept(&mut self, message: AcceptedMessage) -> u64 {
        let key = content_key(&message);
        *self.times_by_content.entry(key).or_default() += 1;
        self.counters.accepted += 1;
        self.index.insert(message.sid.clone(), self.messages.len());
        self.arrivals.push(Arrival::Sent(self.messages.len()));
        self.messages.push(message);
        self.generation
    }

    /// Records a message a user sent in.
    pub fn receive(&mut self, message: InboundMessage) {
        self.counters.received += 1;
        self.arrivals.push(Arrival::Received(self.inbound.len()));
        self.inbound.push(message);
    }

    pub fn mark_answer_dropped(&mut self, sid: &str) {
        if let Some(&i) = self.index.get(sid) {
            self.messages[i].answer_dropped = true;
        }
    }

    pub fn set_status(
        &mut self,
        generation: u64,
        sid: &str,
        status: MessageStatus,
        error_code: Option<u32>,
    ) {
        if generation != self.generation {
            return;
        }
        if let Some(&i) = self.index.get(sid) {
            let message = &mut self.messages[i];
            let now = crate::resource::rfc2822_now();
            let left = !matches!(
                status,
                MessageStatus::Accepted | MessageStatus::Queued | MessageStatus::Failed
            );
            if left && message.date_sent.is_none() {
                message.date_sent = Some(now.clone());
            }
            message.status = status;
            message.error_code = error_code;
            message.date_updated = now;
        }
    }

    pub fn record_callback(&mut self, generation: u64, record: CallbackRecord) {
        if generation == self.generation {
            self.callbacks.push(record);
        }
    }

    pub fn messages(&self) -> Vec<AcceptedMessage> {
        self.messages.iter().map(|m| self.with_times(m)).collect()
    }

    /// Every message users sent in, oldest first.
    pub fn inbound(&self) -> Vec<InboundMessage> {
        self.inbound.clone()
    }

    /// The messages of the account, sent and received, that `keep` keeps, newest first (the
    /// order of Twilio's list); borrowed, so a list copies only the page it shows.
    pub fn newest_first(&self, keep: impl Fn(&Listed<'_>) -> bool) -> Vec<Listed<'_>> {
        self.arrivals
            .iter()
            .rev()
            .map(|arrival| match *arrival {
                Arrival::Sent(i) => Listed::Outbound(&self.messages[i]),
                Arrival::Received(i) => Listed::Inbound(&self.inbound[i]),
            })
            .filter(|listed| keep(listed))
            .collect()
    }

    pub fn message(&self, sid: &str) -> Option<AcceptedMessage> {
        self.index
            .get(sid)
            .map(|&i| self.with_times(&self.messages[i]))
    }

    /// The message a user sent in with this SID.
    pub fn find_inbound(&self, sid: &str) -> Option<&InboundMessage> {
        self.inbound.iter().find(|m| m.sid == sid)
    }

    pub fn callbacks(&self) -> Vec<CallbackRecord> {
        self.callbacks.clone()
    }

    pub fn reset(&mut self) {
        *self = Self {
            generation: self.generation + 1,
            ..Self::default()
        };
    }

    fn with_times(&self, message: &AcceptedMessage) -> AcceptedMessage {
        let times = self.times_by_content.get(&content_key(message)).copied();
        AcceptedMessage {
            times_accepted: times.unwrap_or(1),
            ..message.clone()
        }
    }
}

/// (To, content): the body for free text, the template and its variables otherwise.
fn content_key(message: &AcceptedMessage) -> (String, String) {
    let content = match (&message.body, &message.content_sid) {
        (Some(body), None) => format!("body:{body}"),
        (_, sid) => format!(
            "content:{}:{}",
            sid.as_deref().unwrap_or_default(),
            message.content_variables.as_deref().unwrap_or_default()
        ),
    };
    (message.to.clone(), content)
}
