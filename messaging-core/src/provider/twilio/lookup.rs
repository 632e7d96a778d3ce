//! [`Provider::lookup`](super::Provider::lookup) for Twilio: after a send whose answer was
//! lost, read Twilio's list of messages (`GET …/Messages.json?To=…&From=…&PageSize=50`, newest
//! first) and decide whether the message is there.
//!
//! A listed message is ours when it went to our recipient from our sender, was created no
//! earlier than `since` minus [`CLOCK_SKEW`], and:
//!
//! - for free text, its body equals ours, and no other listed message's does;
//! - for a template (whose body Twilio fills with the rendered template, which we cannot
//!   predict), it is the only message in that window.
//!
//! [`Lookup::NotFound`], which lets the caller send again, is only answered when Twilio listed
//! the whole window (a page older than the window, or the last page) and nothing matched.
//! Every doubt (HTTP error, timeout, an unreadable page or date, several candidates, more
//! pages than [`MAX_PAGES`]) is [`Lookup::Unknown`].
//!
//! The list cannot show a create Twilio is still working on: a request that timed out on our
//! side may still be in Twilio's hands for a moment, so callers look up a little after the
//! failed send rather than straight away.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};

use super::list::MessageResource;
use super::{Sender, TwilioProvider};
use crate::domain::MessageStatus;
use crate::provider::{Accepted, Lookup, OutboundMessage};

/// How far Twilio's clock may run behind ours: a message Twilio dates up to this long before
/// `since` may still be the one we sent.
const CLOCK_SKEW: TimeDelta = TimeDelta::seconds(60);
/// Messages per page asked for: one recipient rarely gets more from one sender in minutes.
const PAGE_SIZE: &str = "50";
/// Pages read at most; a window that needs more is too busy to tell ours apart.
const MAX_PAGES: usize = 4;

/// What the message looked for is, in the terms of Twilio's list.
#[derive(Debug, Clone)]
pub(super) struct Wanted<'a> {
    /// `whatsapp:+…`
    pub to: String,
    pub sender: &'a Sender,
    /// The free-text body; `None` for a template.
    pub body: Option<&'a str>,
    /// The oldest creation date that can be ours.
    pub window_start: DateTime<Utc>,
}

impl<'a> Wanted<'a> {
    /// `None` when the message has neither a body nor a template: `send` refuses it before any
    /// request, so Twilio cannot have it.
    pub fn of(
        message: &'a OutboundMessage,
        sender: &'a Sender,
        since: DateTime<Utc>,
    ) -> Option<Self> {
        // The same precedence as the send: a template wins over a body.
        let body = match (&message.content_sid, &message.body) {
            (Some(_), _) => None,
            (None, Some(body)) => Some(body.as_str()),
            (None, None) => return None,
        };
        Some(Self {
            to: message.to.whatsapp_address(),
            sender,
            body,
            window_start: since - CLOCK_SKEW,
        })
    }

    /// Whether `listed` went to our recipient from our sender (Twilio filtered on `To` and
    /// `From`, but a Messaging Service can only be told apart here).
    fn addressed_like_ours(&self, listed: &MessageResource) -> bool {
        let sender = match self.sender {
            Sender::Number(number) => listed.from == Some(number.whatsapp_address()),
            Sender::MessagingService(sid) => listed.messaging_service_sid.as_ref() == Some(sid),
        };
        listed.to.as_deref() == Some(self.to.as_str()) && sender
    }
}

/// Whether the pages read so far reach back past the window, so later pages (older, the list
/// being newest first) cannot hold ours.
pub(super) fn covers_window(listed: &[MessageResource], window_start: DateTime<Utc>) -> bool {
    listed
        .iter()
        .filter_map(MessageResource::created)
        .any(|created| created < window_start)
}

/// Decides from every message listed over the whole window.
pub(super) fn decide(wanted: &Wanted<'_>, listed: &[MessageResource]) -> Lookup {
    let mut seen = HashSet::new();
    let mut candidates = Vec::new();
    for entry in listed {
        // Pages read while new messages arrive can list one message twice.
        if !seen.insert(entry.sid.as_str()) || !wanted.addressed_like_ours(entry) {
            continue;
        }
        if wanted
            .body
            .is_some_and(|body| entry.body.as_deref() != Some(body))
        {
            continue;
        }
        match entry.created() {
            Some(created) if created < wanted.window_start => {}
            Some(_) => candidates.push(entry),
            None => {
                return Lookup::Unknown(format!(
                    "Twilio's message {} could be ours but its date_created {:?} does not read",
                    entry.sid, entry.date_created
                ));
            }
        }
    }
    match candidates.as_slice() {
        [] => Lookup::NotFound,
        [ours] => Lookup::Found(Accepted {
            provider_sid: ours.sid.clone(),
            // Any status means Twilio has the message; one we cannot read is still `sending`.
            status: ours
                .status
                .as_deref()
                .and_then(MessageStatus::from_twilio)
                .unwrap_or(MessageStatus::Sending),
        }),
        several => {
            let sids: Vec<&str> = several.iter().map(|m| m.sid.as_str()).collect();
            let what = if wanted.body.is_some() {
                "with our body"
            } else {
                "in the window of our template"
            };
            Lookup::Unknown(format!(
                "{} messages to {} {what} since {} ({}); cannot tell which is ours",
                sids.len(),
                wanted.to,
                wanted.window_start.to_rfc3339(),
                sids.join(", ")
            ))
        }
    }
}

impl TwilioProvider {
    /// Reads Twilio's list over the window of `message` and decides (see the module docs).
    pub(super) async fn find_sent(
        &self,
        message: &OutboundMessage,
        since: DateTime<Utc>,
    ) -> Lookup {
        let Some(wanted) = Wanted::of(message, &self.config.sender, since) else {
            return Lookup::NotFound;
        };
        let mut query = vec![("To", wanted.to.clone())];
        if let Sender::Number(number) = &self.config.sender {
            query.push(("From", number.whatsapp_address()));
        }
        query.push(("PageSize", PAGE_SIZE.to_string()));

        let mut request = self.first_page(&query);
        let mut listed = Vec::new();
        for _ in 0..MAX_PAGES {
            let page = match self.list_page(request).await {
                Ok(page) => page,
                Err(reason) => return Lookup::Unknown(reason),
            };
            listed.extend(page.messages);
            let next = match page.next_page_uri {
                Some(next) if !covers_window(&listed, wanted.window_start) => next,
                _ => return decide(&wanted, &listed),
            };
            request = match self.next_page(&next) {
                Ok(request) => request,
                Err(reason) => return Lookup::Unknown(reason),
            };
        }
        Lookup::Unknown(format!(
            "more than {} messages to {} since {}: too many to tell whether ours is there",
            listed.len(),
            wanted.to,
            wanted.window_start.to_rfc3339()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PhoneNumber;

    const TO: &str = "whatsapp:+14155552671";
    const FROM: &str = "whatsapp:+14155238886";

    fn since() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-24T21:17:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    /// A listed message created `seconds` after `since` (negative: before).
    fn listed(sid: &str, body: &str, seconds: i64) -> MessageResource {
        let created = since() + TimeDelta::seconds(seconds);
        MessageResource {
            sid: sid.into(),
            to: Some(TO.into()),
            from: Some(FROM.into()),
            messaging_service_sid: None,
            body: Some(body.into()),
            status: Some("queued".into()),
            date_created: Some(created.format("%a, %d %b %Y %H:%M:%S +0000").to_string()),
            ..MessageResource::default()
        }
    }

    fn number() -> Sender {
        Sender::Number(PhoneNumber::parse(FROM).unwrap())
    }

    fn wanted<'a>(sender: &'a Sender, body: Option<&'a str>) -> Wanted<'a> {
        Wanted {
            to: TO.into(),
            sender,
            body,
            window_start: since() - CLOCK_SKEW,
        }
    }

    fn found(sid: &str, status: MessageStatus) -> Lookup {
        Lookup::Found(Accepted {
            provider_sid: sid.into(),
            status,
        })
    }

    #[test]
    fn the_one_message_with_our_body_in_the_window_is_ours_with_its_status() {
        let sender = number();
        let mut delivered = listed("SM2", "Hello Ada", 3);
        delivered.status = Some("delivered".into());
        let page = [listed("SM3", "Something else", 5), delivered];
        assert_eq!(
            decide(&wanted(&sender, Some("Hello Ada")), &page),
            found("SM2", MessageStatus::Delivered)
        );
        // Twilio's first statuses are our `sending`, and so is one we cannot read.
        let mut odd = listed("SM4", "Hello Ada", 1);
        odd.status = Some("teleported".into());
        for entry in [listed("SM4", "Hello Ada", 1), odd] {
            assert_eq!(
                decide(&wanted(&sender, Some("Hello Ada")), &[entry]),
                found("SM4", MessageStatus::Sending)
            );
        }
    }

    #[test]
    fn a_body_match_within_the_clock_skew_counts_and_one_before_it_does_not() {
        let sender = number();
        let ours = wanted(&sender, Some("Hello Ada"));
        assert_eq!(
            decide(&ours, &[listed("SM1", "Hello Ada", -59)]),
            found("SM1", MessageStatus::Sending)
        );
        assert_eq!(
            decide(&ours, &[listed("SM1", "Hello Ada", -61)]),
            Lookup::NotFound
        );
    }

    #[test]
    fn only_other_bodies_or_nothing_in_the_window_is_not_found() {
        let sender = number();
        let ours = wanted(&sender, Some("Hello Ada"));
        assert_eq!(decide(&ours, &[]), Lookup::NotFound);
        assert_eq!(
            decide(&ours, &[listed("SM1", "Hello Bob", 2)]),
            Lookup::NotFound
        );
    }

    #[test]
    fn two_messages_with_our_body_are_unknown() {
        let sender = number();
        let page = [listed("SM2", "Hello Ada", 4), listed("SM1", "Hello Ada", 2)];
        match decide(&wanted(&sender, Some("Hello Ada")), &page) {
            Lookup::Unknown(reason) => assert!(reason.contains("SM1") && reason.contains("SM2")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_message_listed_on_two_pages_counts_once() {
        let sender = number();
        let page = [listed("SM1", "Hello Ada", 2), listed("SM1", "Hello Ada", 2)];
        assert_eq!(
            decide(&wanted(&sender, Some("Hello Ada")), &page),
            found("SM1", MessageStatus::Sending)
        );
    }

    #[test]
    fn a_template_matches_the_only_message_in_the_window_and_no_more() {
        let sender = number();
        let template = wanted(&sender, None);
        let older = listed("SM0", "Your order shipped", -120);
        let one = [listed("SM1", "Your code is 1234", 2), older.clone()];
        assert_eq!(
            decide(&template, &one),
            found("SM1", MessageStatus::Sending)
        );
        assert_eq!(
            decide(&template, std::slice::from_ref(&older)),
            Lookup::NotFound
        );
        let two = [
            listed("SM2", "Hi", 3),
            listed("SM1", "Your code is 1234", 2),
            older,
        ];
        assert!(matches!(decide(&template, &two), Lookup::Unknown(_)));
    }

    #[test]
    fn messages_to_someone_else_or_from_another_sender_are_ignored() {
        let sender = number();
        let mut elsewhere = listed("SM1", "Hello Ada", 2);
        elsewhere.to = Some("whatsapp:+14155550000".into());
        let mut other_sender = listed("SM2", "Hello Ada", 2);
        other_sender.from = Some("whatsapp:+14155550111".into());
        assert_eq!(
            decide(&wanted(&sender, None), &[elsewhere, other_sender]),
            Lookup::NotFound
        );
    }

    #[test]
    fn through_a_messaging_service_only_its_messages_count() {
        let service = Sender::MessagingService("MG1".into());
        let mut ours = listed("SM1", "Hi", 2);
        ours.messaging_service_sid = Some("MG1".into());
        let mut other = listed("SM2", "Hi", 3);
        other.messaging_service_sid = Some("MG2".into());
        assert_eq!(
            decide(&wanted(&service, None), &[other, ours]),
            found("SM1", MessageStatus::Sending)
        );
    }

    #[test]
    fn a_possible_match_with_an_unreadable_date_is_unknown() {
        let sender = number();
        let mut entry = listed("SM1", "Hello Ada", 2);
        entry.date_created = Some("yesterday".into());
        assert!(matches!(
            decide(
                &wanted(&sender, Some("Hello Ada")),
                std::slice::from_ref(&entry)
            ),
            Lookup::Unknown(_)
        ));
        // One that cannot be ours anyway does not matter.
        assert_eq!(
            decide(&wanted(&sender, Some("Hello Bob")), &[entry]),
            Lookup::NotFound
        );
    }

    #[test]
    fn pages_cover_the_window_once_one_message_is_older_than_it() {
        let start = since() - CLOCK_SKEW;
        let recent = [listed("SM2", "a", 10), listed("SM1", "b", -30)];
        assert!(!covers_window(&recent, start));
        let reaching_back = [listed("SM2", "a", 10), listed("SM0", "c", -90)];
        assert!(covers_window(&reaching_back, start));
    }

    #[test]
    fn what_is_looked_for_follows_the_send_template_first() {
        let sender = number();
        let mut message = OutboundMessage {
            id: crate::domain::MessageId::new(),
            to: PhoneNumber::parse(TO).unwrap(),
            body: Some("Hello".into()),
            content_sid: Some("HX1".into()),
            content_variables: None,
        };
        let looked_for = Wanted::of(&message, &sender, since()).unwrap();
        assert_eq!((looked_for.to.as_str(), looked_for.body), (TO, None));
        assert_eq!(looked_for.window_start, since() - CLOCK_SKEW);
        message.content_sid = None;
        assert_eq!(
            Wanted::of(&message, &sender, since()).unwrap().body,
            Some("Hello")
        );
        message.body = None;
        assert!(Wanted::of(&message, &sender, since()).is_none());
    }
}
