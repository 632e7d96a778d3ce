//! [`MessageHistory`] for Twilio: the sender's messages since a time, read from Twilio's list
//! of messages (`GET …/Messages.json?DateSent>=…&PageSize=1000`), for a machine Twilio's
//! webhooks cannot reach.
//!
//! - A number sender: two lists, `From=` the number (what it sent, each with its status now)
//!   and `To=` the number (what users wrote to it).
//! - A Messaging Service: Twilio's list cannot be filtered by service, so the account's whole
//!   list is read and the service's messages kept.
//!
//! Each list is followed through `next_page_uri` to its end. `DateSent>=` is sent with the
//! time of day, as Twilio's helper libraries send it; should Twilio read only the day,
//! messages sent before `since` are left out here, and reading stops after a page whose
//! messages were all sent before `since` (the list is newest first). A message still in
//! Twilio's queue has no `date_sent` and is not listed until it leaves. A message listed twice
//! (pages shift while new messages arrive) is reported once.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tracing::Instrument as _;

use super::list::MessageResource;
use super::{Sender, TwilioProvider};
use crate::provider::{Direction, HistoryError, MessageHistory, ReportedMessage};

/// Pages read at most from one list in one poll (a million messages at the largest page
/// size): past it, something is wrong with the paging, and the poll fails rather than
/// never ending.
const MAX_PAGES: usize = 1_000;

/// When Twilio says `resource` was sent, or else created.
fn dated(resource: &MessageResource) -> Option<DateTime<Utc>> {
    resource.sent().or_else(|| resource.created())
}

/// Which way `resource` went, if it is the sender's at all.
fn direction(resource: &MessageResource, sender: &Sender) -> Option<Direction> {
    let (sent, received) = match sender {
        Sender::Number(number) => {
            let address = number.whatsapp_address();
            (
                resource.from.as_deref() == Some(address.as_str()),
                resource.to.as_deref() == Some(address.as_str()),
            )
        }
        Sender::MessagingService(sid) => {
            let ours = resource.messaging_service_sid.as_ref() == Some(sid);
            (ours, ours)
        }
    };
    if resource.is_outbound() && sent {
        Some(Direction::Sent)
    } else if resource.is_inbound() && received {
        Some(Direction::Received)
    } else {
        None
    }
}

/// What `listed` (each list oldest first, one after the other) reports: the sender's
/// messages sent at or after `since`, each SID once, oldest first (undated ones last).
fn report(
    listed: Vec<MessageResource>,
    sender: &Sender,
    since: DateTime<Utc>,
) -> Vec<ReportedMessage> {
    let mut seen = HashSet::new();
    let mut reported = Vec::new();
    for resource in listed {
        let sent_at = dated(&resource);
        if sent_at.is_some_and(|at| at < since) || !seen.insert(resource.sid.clone()) {
            continue;
        }
        let Some(direction) = direction(&resource, sender) else {
            continue;
        };
        let fields = match direction {
            Direction::Sent => resource.status_fields(),
            Direction::Received => resource.inbound_fields(),
        };
        if let Some(fields) = fields {
            reported.push(ReportedMessage {
                direction,
                fields,
                sent_at,
            });
        }
    }
    // Stable: messages of the same second keep the order Twilio listed them in.
    reported.sort_by_key(|message| (message.sent_at.is_none(), message.sent_at));
    reported
}

impl TwilioProvider {
    /// Every page of the list with `filter` (`From` or `To`) sent since `since`, oldest first;
    /// `Err` says why not.
    async fn list_since(
        &self,
        filter: Option<(&'static str, String)>,
        since: DateTime<Utc>,
    ) -> Result<Vec<MessageResource>, String> {
        let mut query: Vec<(&str, String)> = filter.into_iter().collect();
        // `DateSent>=…` in the URL: the parameter `DateSent>` with the date as its value.
        query.push(("DateSent>", since.format("%Y-%m-%dT%H:%M:%SZ").to_string()));
        query.push(("PageSize", self.config.list_page_size.to_string()));
        let mut request = self.first_page(&query);
        let mut listed = Vec::new();
        for _ in 0..MAX_PAGES {
            let page = self.list_page(request).await?;
            let all_before = !page.messages.is_empty()
                && page
                    .messages
                    .iter()
                    .all(|m| dated(m).is_some_and(|at| at < since));
            listed.extend(page.messages);
            match page.next_page_uri {
                Some(next) if !all_before => request = self.next_page(&next)?,
                _ => {
                    listed.reverse();
                    return Ok(listed);
                }
            }
        }
        Err(format!(
            "Twilio's list of messages since {} goes on past {MAX_PAGES} pages of {}",
            since.to_rfc3339(),
            self.config.list_page_size
        ))
    }
}

#[async_trait]
impl MessageHistory for TwilioProvider {
    fn source(&self) -> String {
        let sender = match &self.config.sender {
            Sender::Number(number) => number.whatsapp_address(),
            Sender::MessagingService(sid) => sid.clone(),
        };
        format!("twilio {} {sender}", self.config.account_sid)
    }

    async fn messages_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<ReportedMessage>, HistoryError> {
        let span = tracing::debug_span!("twilio_history", since = %since.to_rfc3339());
        async {
            let lists = match &self.config.sender {
                Sender::Number(number) => vec![
                    Some(("From", number.whatsapp_address())),
                    Some(("To", number.whatsapp_address())),
                ],
                Sender::MessagingService(_) => vec![None],
            };
            let mut listed = Vec::new();
            for filter in lists {
                listed.extend(self.list_since(filter, since).await.map_err(HistoryError)?);
            }
            let reported = report(listed, &self.config.sender, since);
            tracing::debug!(reported = reported.len(), "read the history");
            Ok(reported)
        }
        .instrument(span)
        .await
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::domain::PhoneNumber;

    const SENDER: &str = "whatsapp:+14155238886";
    const USER: &str = "whatsapp:+14155552671";

    fn since() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-24T21:17:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn rfc2822(at: DateTime<Utc>) -> String {
        at.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
    }

    /// A message the sender sent `seconds` after `since`, now `status`.
    fn sent(sid: &str, status: &str, seconds: i64) -> MessageResource {
        MessageResource {
            sid: sid.into(),
            status: Some(status.into()),
            direction: Some("outbound-api".into()),
            from: Some(SENDER.into()),
            to: Some(USER.into()),
            date_sent: Some(rfc2822(since() + TimeDelta::seconds(seconds))),
            ..MessageResource::default()
        }
    }

    /// A message a user wrote to the sender `seconds` after `since`.
    fn received(sid: &str, body: &str, seconds: i64) -> MessageResource {
        MessageResource {
            sid: sid.into(),
            status: Some("received".into()),
            direction: Some("inbound".into()),
            from: Some(USER.into()),
            to: Some(SENDER.into()),
            body: Some(body.into()),
            date_sent: Some(rfc2822(since() + TimeDelta::seconds(seconds))),
            ..MessageResource::default()
        }
    }

    fn number() -> Sender {
        Sender::Number(PhoneNumber::parse(SENDER).unwrap())
    }

    fn sids(reported: &[ReportedMessage]) -> Vec<(&str, Direction)> {
        reported
            .iter()
            .map(|m| (m.fields["MessageSid"].as_str(), m.direction))
            .collect()
    }

    #[test]
    fn both_lists_make_one_report_oldest_first_each_message_once() {
        // Each list oldest first, one after the other, as `list_since` answers them.
        let listed = vec![
            sent("SM1", "delivered", 5),
            sent("SM3", "read", 20),
            received("SM2", "STOP", 10),
            received("SM4", "hello", 30),
            received("SM2", "STOP", 10),
        ];
        let reported = report(listed, &number(), since());
        assert_eq!(
            sids(&reported),
            [
                ("SM1", Direction::Sent),
                ("SM2", Direction::Received),
                ("SM3", Direction::Sent),
                ("SM4", Direction::Received),
            ]
        );
        assert_eq!(reported[0].fields["MessageStatus"], "delivered");
        assert_eq!(reported[1].fields["Body"], "STOP");
        assert_eq!(reported[1].sent_at, Some(since() + TimeDelta::seconds(10)));
    }

    #[test]
    fn messages_before_since_or_of_another_sender_are_left_out() {
        let mut elsewhere = sent("SM2", "delivered", 5);
        elsewhere.from = Some("whatsapp:+14155550111".into());
        let mut to_another = received("SM3", "hi", 5);
        to_another.to = Some("whatsapp:+14155550111".into());
        let listed = vec![
            sent("SM1", "delivered", -1),
            elsewhere,
            to_another,
            received("SM4", "hi", 0),
        ];
        assert_eq!(
            sids(&report(listed, &number(), since())),
            [("SM4", Direction::Received)]
        );
    }

    #[test]
    fn through_a_messaging_service_its_messages_count_both_ways() {
        let service = Sender::MessagingService("MG1".into());
        let mut ours_sent = sent("SM1", "sent", 1);
        ours_sent.messaging_service_sid = Some("MG1".into());
        let mut ours_received = received("SM2", "hi", 2);
        ours_received.messaging_service_sid = Some("MG1".into());
        let mut other = sent("SM3", "sent", 3);
        other.messaging_service_sid = Some("MG2".into());
        assert_eq!(
            sids(&report(
                vec![ours_sent, ours_received, other, sent("SM4", "sent", 4)],
                &service,
                since()
            )),
            [("SM1", Direction::Sent), ("SM2", Direction::Received)]
        );
    }
}
