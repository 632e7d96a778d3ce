//! Twilio's list of messages, `GET .../Messages.json`: the query it understands (`To`,
//! `From` and `DateSent` filters, `PageSize`, `Page`, `PageToken`) and the page document it
//! answers, newest message first, each in the same resource shape as a create or a fetch.
//! Messages users sent in (see [`crate::inbound`]) are listed beside the accepted ones, as
//! Twilio lists both directions of an account.
//!
//! `DateSent>=` (on or after), `DateSent<=` (on or before) and `DateSent=` take a day
//! (`2026-11-24`, the whole day in UTC) or an instant (`2026-11-24T21:17:41Z`); a message not
//! sent yet (`queued`, or failed before leaving) has no `date_sent` and is left out by any of
//! them.
//!
//! Paging follows Twilio: `next_page_uri` carries a `PageToken` (`PA` + the last SID listed),
//! so a client that follows it never skips a message even while new ones arrive at the top;
//! it is `null` on the last page.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::inbound::InboundMessage;
use crate::ledger::AcceptedMessage;
use crate::resource::{API_VERSION, inbound_json, message_json};
use crate::twilio_error::TwilioError;

/// The page size when the client names none.
const DEFAULT_PAGE_SIZE: usize = 50;
/// The largest page Twilio serves (error 20007 beyond it).
const MAX_PAGE_SIZE: usize = 1000;

/// One message of the account's history, as the list sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Listed<'a> {
    /// Accepted from the API.
    Outbound(&'a AcceptedMessage),
    /// Sent in by a user.
    Inbound(&'a InboundMessage),
}

impl Listed<'_> {
    fn sid(&self) -> &str {
        match self {
            Self::Outbound(m) => &m.sid,
            Self::Inbound(m) => &m.sid,
        }
    }

    fn to(&self) -> &str {
        match self {
            Self::Outbound(m) => &m.to,
            Self::Inbound(m) => &m.to,
        }
    }

    fn from(&self) -> Option<&str> {
        match self {
            Self::Outbound(m) => m.from.as_deref(),
            Self::Inbound(m) => Some(&m.from),
        }
    }

    fn date_sent(&self) -> Option<DateTime<Utc>> {
        let text = match self {
            Self::Outbound(m) => m.date_sent.as_deref()?,
            Self::Inbound(m) => &m.date_sent,
        };
        DateTime::parse_from_rfc2822(text)
            .ok()
            .map(|at| at.with_timezone(&Utc))
    }

    fn json(&self) -> Value {
        match self {
            Self::Outbound(m) => message_json(m),
            Self::Inbound(m) => inbound_json(m),
        }
    }
}

/// A parsed list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListQuery {
    /// Only messages sent to this address (`whatsapp:+…` as sent).
    pub to: Option<String>,
    /// Only messages sent from this address.
    pub from: Option<String>,
    /// `DateSent` filters, each with its parameter name and value as given.
    date_sent: Vec<DateFilter>,
    pub page_size: usize,
    pub page: usize,
    token: Option<PageToken>,
}

/// How a `DateSent` filter compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    OnOrAfter,
    OnOrBefore,
    On,
}

/// A day (all of it, in UTC) or an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SentBound {
    Day(NaiveDate),
    Instant(DateTime<Utc>),
}

impl SentBound {
    fn parse(text: &str) -> Option<Self> {
        if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return Some(Self::Day(day));
        }
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|at| Self::Instant(at.with_timezone(&Utc)))
    }

    /// The first instant it covers and the first one after it.
    fn span(self) -> (DateTime<Utc>, DateTime<Utc>) {
        match self {
            Self::Day(day) => {
                let start = day.and_time(chrono::NaiveTime::MIN).and_utc();
                (start, start + TimeDelta::days(1))
            }
            // Twilio's dates have whole seconds.
            Self::Instant(at) => (at, at + TimeDelta::seconds(1)),
        }
    }
}

/// One `DateSent` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DateFilter {
    name: String,
    value: String,
    comparison: Comparison,
    bound: SentBound,
}

impl DateFilter {
    fn keeps(&self, sent: Option<DateTime<Utc>>) -> bool {
        let Some(sent) = sent else {
            return false;
        };
        let (start, end) = self.bound.span();
        match self.comparison {
            Comparison::OnOrAfter => sent >= start,
            Comparison::OnOrBefore => sent < end,
            Comparison::On => start <= sent && sent < end,
        }
    }
}

/// Where a page starts, relative to a message the client saw on the page next to it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PageToken {
    /// `PA{sid}`: the page after that message.
    After(String),
    /// `PB{sid}`: the page before that message.
    Before(String),
}

impl PageToken {
    fn parse(text: &str) -> Result<Self, TwilioError> {
        match (text.get(..2), text.get(2..)) {
            (Some("PA"), Some(sid)) if !sid.is_empty() => Ok(Self::After(sid.to_owned())),
            (Some("PB"), Some(sid)) if !sid.is_empty() => Ok(Self::Before(sid.to_owned())),
            _ => Err(invalid_token()),
        }
    }

    fn encode(&self) -> String {
        match self {
            Self::After(sid) => format!("PA{sid}"),
            Self::Before(sid) => format!("PB{sid}"),
        }
    }
}

impl ListQuery {
    /// Reads the query string; parameters Twilio would ignore (or that the fake does not
    /// implement, like `Status`) are ignored.
    pub fn parse(query: &str) -> Result<Self, TwilioError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|_| TwilioError::bad_request(20001, "Could not parse the query string."))?;
        let field = |name: &str| {
            pairs
                .iter()
                .rev()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let page_size = match field("PageSize") {
            None => DEFAULT_PAGE_SIZE,
            Some(text) => match text.parse::<usize>() {
                Ok(size) if size > MAX_PAGE_SIZE => {
                    return Err(TwilioError::bad_request(20007, "Page size too large"));
                }
                Ok(size) if size > 0 => size,
                _ => {
                    return Err(TwilioError::bad_request(
                        20001,
                        format!("Invalid PageSize {text:?}: expected 1 to {MAX_PAGE_SIZE}."),
                    ));
                }
            },
        };
        let page = match field("Page") {
            None => 0,
            Some(text) => text
                .parse()
                .map_err(|_| TwilioError::bad_request(20001, format!("Invalid Page {text:?}.")))?,
        };
        Ok(Self {
            to: field("To"),
            from: field("From"),
            date_sent: date_filters(&pairs)?,
            page_size,
            page,
            token: field("PageToken")
                .map(|t| PageToken::parse(&t))
                .transpose()?,
        })
    }

    /// Whether the filters keep `message`.
    pub fn keeps(&self, message: &Listed<'_>) -> bool {
        self.to.as_deref().is_none_or(|to| message.to() == to)
            && self
                .from
                .as_deref()
                .is_none_or(|from| message.from() == Some(from))
            && (self.date_sent.is_empty() || {
                let sent = message.date_sent();
                self.date_sent.iter().all(|filter| filter.keeps(sent))
            })
    }

    /// The path and query of one page of the same list.
    fn uri(&self, account_sid: &str, page: usize, token: Option<&PageToken>) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(to) = &self.to {
            pairs.push(("To", to.clone()));
        }
        if let Some(from) = &self.from {
            pairs.push(("From", from.clone()));
        }
        for filter in &self.date_sent {
            pairs.push((&filter.name, filter.value.clone()));
        }
        pairs.push(("PageSize", self.page_size.to_string()));
        pairs.push(("Page", page.to_string()));
        if let Some(token) = token {
            pairs.push(("PageToken", token.encode()));
        }
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        format!("/{API_VERSION}/Accounts/{account_sid}/Messages.json?{query}")
    }
}

/// The `DateSent` parameters of a query. `DateSent>=X` in a query string is the parameter
/// `DateSent>` with the value `X` (and `DateSent<=X` is `DateSent<`), which is how Twilio's
/// helper libraries send them; the names with `=` escaped are taken too.
fn date_filters(pairs: &[(String, String)]) -> Result<Vec<DateFilter>, TwilioError> {
    let mut filters = Vec::new();
    for (name, value) in pairs {
        let comparison = match name.as_str() {
            "DateSent>" | "DateSent>=" => Comparison::OnOrAfter,
            "DateSent<" | "DateSent<=" => Comparison::OnOrBefore,
            "DateSent" => Comparison::On,
            _ => continue,
        };
        let value = value.trim();
        let bound = SentBound::parse(value).ok_or_else(|| {
            TwilioError::bad_request(
                20001,
                format!(
                    "Invalid {name} {value:?}: expected a date (YYYY-MM-DD) or a date and time                      (YYYY-MM-DDThh:mm:ssZ)."
                ),
            )
        })?;
        filters.push(DateFilter {
            name: name.clone(),
            value: value.to_owned(),
            comparison,
            bound,
        });
    }
    Ok(filters)
}

/// The page `query` asks for, out of `listed`: the messages its filters kept, newest first.
pub(crate) fn page_json(
    account_sid: &str,
    query: &ListQuery,
    listed: &[Listed<'_>],
) -> Result<Value, TwilioError> {
    let size = query.page_size;
    let position = |sid: &str| {
        listed
            .iter()
            .position(|m| m.sid() == sid)
            .ok_or_else(invalid_token)
    };
    let (start, end) = match &query.token {
        None => {
            let start = query.page.saturating_mul(size).min(listed.len());
            (start, start.saturating_add(size).min(listed.len()))
        }
        Some(PageToken::After(sid)) => {
            let start = position(sid)? + 1;
            (start, start.saturating_add(size).min(listed.len()))
        }
        Some(PageToken::Before(sid)) => {
            let end = position(sid)?;
            (end.saturating_sub(size), end)
        }
    };
    let messages: Vec<Value> = listed[start..end].iter().map(Listed::json).collect();

    let next = (end < listed.len()).then(|| {
        let token = end
            .checked_sub(1)
            .map(|last| PageToken::After(listed[last].sid().to_owned()));
        query.uri(account_sid, query.page + 1, token.as_ref())
    });
    let previous = (start > 0).then(|| {
        let token = listed
            .get(start)
            .map(|first| PageToken::Before(first.sid().to_owned()));
        query.uri(account_sid, query.page.saturating_sub(1), token.as_ref())
    });
    Ok(json!({
        "end": end.saturating_sub(1).max(start),
        "first_page_uri": query.uri(account_sid, 0, None),
        "messages": messages,
        "next_page_uri": next,
        "page": query.page,
        "page_size": size,
        "previous_page_uri": previous,
        "start": start,
        "uri": query.uri(account_sid, query.page, query.token.as_ref()),
    }))
}

/// Twilio's answer to a `PageToken` it did not hand out (or whose message is gone).
fn invalid_token() -> TwilioError {
    TwilioError::bad_request(21481, "Invalid PageToken")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ledger::MessageStatus;

    const ACCOUNT: &str = "AC00000000000000000000000000000000";

    fn message(n: usize, to: &str) -> AcceptedMessage {
        AcceptedMessage {
            sid: format!("SM{n:032x}"),
            account_sid: ACCOUNT.to_owned(),
            to: to.to_owned(),
            from: Some("whatsapp:+14155238886".to_owned()),
            messaging_service_sid: None,
            body: Some(format!("message {n}")),
            content_sid: None,
            content_variables: None,
            status_callback: None,
            status: MessageStatus::Queued,
            error_code: None,
            date_created: "Tue, 24 Nov 2026 21:17:41 +0000".to_owned(),
            date_updated: "Tue, 24 Nov 2026 21:17:41 +0000".to_owned(),
            date_sent: None,
            num_segments: 1,
            form: BTreeMap::new(),
            times_accepted: 1,
            answer_dropped: false,
        }
    }

    /// Follows `next_page_uri` from the first page, collecting bodies.
    fn walk(listed: &[AcceptedMessage], page_size: usize) -> Vec<String> {
        let listed: Vec<Listed<'_>> = listed.iter().map(Listed::Outbound).collect();
        let listed = listed.as_slice();
        let mut bodies = Vec::new();
        let mut query = format!("PageSize={page_size}");
        loop {
            let parsed = ListQuery::parse(&query).unwrap();
            let page = page_json(ACCOUNT, &parsed, listed).unwrap();
            for message in page["messages"].as_array().unwrap() {
                bodies.push(message["body"].as_str().unwrap().to_owned());
            }
            match page["next_page_uri"].as_str() {
                Some(uri) => query = uri.split_once('?').unwrap().1.to_owned(),
                None => return bodies,
            }
        }
    }

    #[test]
    fn the_query_has_twilios_defaults_and_limits() {
        let query = ListQuery::parse("To=whatsapp%3A%2B14155552671").unwrap();
        assert_eq!(query.to.as_deref(), Some("whatsapp:+14155552671"));
        assert_eq!((query.page_size, query.page, query.from), (50, 0, None));
        assert_eq!(ListQuery::parse("PageSize=1000").unwrap().page_size, 1000);
        assert_eq!(ListQuery::parse("PageSize=1001").unwrap_err().code, 20007);
        assert_eq!(ListQuery::parse("PageSize=0").unwrap_err().code, 20001);
        assert_eq!(ListQuery::parse("PageToken=XX1").unwrap_err().code, 21481);
    }

    #[test]
    fn following_next_page_uri_lists_every_message_once() {
        let listed: Vec<_> = (0..7).rev().map(|n| message(n, "whatsapp:+1")).collect();
        let bodies = walk(&listed, 3);
        let expected: Vec<String> = (0..7).rev().map(|n| format!("message {n}")).collect();
        assert_eq!(bodies, expected);
        assert_eq!(walk(&listed, 7), expected);
        assert_eq!(walk(&[], 3), Vec::<String>::new());
    }

    #[test]
    fn the_last_page_has_no_next_and_a_previous_that_leads_back() {
        let messages: Vec<_> = (0..5).rev().map(|n| message(n, "whatsapp:+1")).collect();
        let listed: Vec<Listed<'_>> = messages.iter().map(Listed::Outbound).collect();
        let first = page_json(ACCOUNT, &ListQuery::parse("PageSize=3").unwrap(), &listed).unwrap();
        assert!(first["previous_page_uri"].is_null());
        let next = first["next_page_uri"].as_str().unwrap();
        let second_query = ListQuery::parse(next.split_once('?').unwrap().1).unwrap();
        let second = page_json(ACCOUNT, &second_query, &listed).unwrap();
        assert!(second["next_page_uri"].is_null());
        assert_eq!(
            (second["page"].as_u64(), second["start"].as_u64()),
            (Some(1), Some(3))
        );
        let back = second["previous_page_uri"].as_str().unwrap();
        let back = page_json(
            ACCOUNT,
            &ListQuery::parse(back.split_once('?').unwrap().1).unwrap(),
            &listed,
        )
        .unwrap();
        assert_eq!(back["messages"], first["messages"]);
    }

    #[test]
    fn filters_keep_only_the_named_to_and_from() {
        let query = ListQuery::parse("To=whatsapp%3A%2B1&From=whatsapp%3A%2B14155238886").unwrap();
        assert!(query.keeps(&Listed::Outbound(&message(1, "whatsapp:+1"))));
        assert!(!query.keeps(&Listed::Outbound(&message(1, "whatsapp:+2"))));
        let through_service = AcceptedMessage {
            from: None,
            ..message(1, "whatsapp:+1")
        };
        assert!(!query.keeps(&Listed::Outbound(&through_service)));
    }

    /// A message sent at `date` (RFC 2822), or not yet sent.
    fn sent_at(date: Option<&str>) -> AcceptedMessage {
        AcceptedMessage {
            date_sent: date.map(str::to_owned),
            ..message(1, "whatsapp:+1")
        }
    }

    #[test]
    fn date_sent_filters_take_a_day_or_an_instant_and_leave_out_unsent_messages() {
        let keeps = |query: &str, message: &AcceptedMessage| {
            ListQuery::parse(query)
                .unwrap()
                .keeps(&Listed::Outbound(message))
        };
        let evening = sent_at(Some("Tue, 24 Nov 2026 21:17:41 +0000"));
        let unsent = sent_at(None);
        // `DateSent>=X` reads as the parameter `DateSent>` with the value `X`.
        assert!(keeps("DateSent>=2026-11-24", &evening));
        assert!(keeps("DateSent>=2026-11-24T21:17:41Z", &evening));
        assert!(!keeps("DateSent>=2026-11-24T21:17:42Z", &evening));
        assert!(!keeps("DateSent>=2026-11-25", &evening));
        assert!(keeps("DateSent<=2026-11-24", &evening));
        assert!(!keeps("DateSent<=2026-11-24T21:00:00Z", &evening));
        assert!(keeps("DateSent=2026-11-24", &evening));
        assert!(!keeps("DateSent=2026-11-23", &evening));
        assert!(keeps(
            "DateSent%3E%3D=2026-11-24T20:00:00%2B00:00",
            &evening
        ));
        assert!(!keeps("DateSent>=2026-11-01", &unsent));
        assert!(keeps("To=whatsapp%3A%2B1", &unsent));
        assert_eq!(
            ListQuery::parse("DateSent>=yesterday").unwrap_err().code,
            20001
        );
    }

    #[test]
    fn pages_of_a_date_filtered_list_keep_the_filter() {
        let page = page_json(
            ACCOUNT,
            &ListQuery::parse("DateSent>=2026-11-24T00:00:00Z&PageSize=1").unwrap(),
            &[
                Listed::Outbound(&sent_at(Some("Tue, 24 Nov 2026 21:17:41 +0000"))),
                Listed::Outbound(&sent_at(Some("Tue, 24 Nov 2026 21:17:40 +0000"))),
            ],
        )
        .unwrap();
        let next = page["next_page_uri"].as_str().unwrap();
        let query = ListQuery::parse(next.split_once('?').unwrap().1).unwrap();
        assert!(!query.keeps(&Listed::Outbound(&sent_at(Some(
            "Mon, 23 Nov 2026 23:59:59 +0000"
        )))));
    }
}
