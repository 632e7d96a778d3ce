//! What happens around the campaigns: `inbound` (what users wrote to us), `events` (trigger
//! events, one at a time; files go through `ingestions/events`) and `stats` (delivery
//! statistics in total; a campaign's are under `campaigns/{id}/stats`).

use std::collections::BTreeMap;

use messaging_core::domain::{Command, EventId, InboundMessage, TriggerEvent};
use messaging_core::engine::{EventOutcome, IdleListener, Stats};
use messaging_core::store::Page;
use messaging_core::{Engine, EngineError};
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::messages::phone;
use super::timestamp::Timestamp;
use super::{ApiTags, page};

/// A keyword command an inbound message carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "UPPERCASE")]
pub enum InboundCommand {
    Start,
    Stop,
    Subscribe,
    Unsubscribe,
    Help,
}

impl From<Command> for InboundCommand {
    fn from(command: Command) -> Self {
        match command {
            Command::Start => Self::Start,
            Command::Stop => Self::Stop,
            Command::Subscribe => Self::Subscribe,
            Command::Unsubscribe => Self::Unsubscribe,
            Command::Help => Self::Help,
        }
    }
}

/// A WhatsApp message a user sent us.
#[derive(Debug, Clone, Object)]
pub struct InboundBody {
    /// Its id.
    pub id: String,
    /// Twilio's `MessageSid`.
    pub message_sid: String,
    /// The sender's phone (E.164).
    pub from: String,
    /// The sender's WhatsApp id (`WaId`).
    pub wa_id: Option<String>,
    /// What they wrote.
    pub body: String,
    /// The command it carried (`START STOP SUBSCRIBE UNSUBSCRIBE HELP`); null for
    /// conversation.
    pub command: Option<InboundCommand>,
    /// The topic of a `SUBSCRIBE`/`UNSUBSCRIBE` command.
    pub topic: Option<String>,
    /// When it arrived.
    pub received_at: Timestamp,
    /// The webhook's form fields exactly as received.
    pub raw: BTreeMap<String, String>,
}

impl From<InboundMessage> for InboundBody {
    fn from(m: InboundMessage) -> Self {
        Self {
            id: m.id.to_string(),
            message_sid: m.message_sid,
            from: m.from.to_string(),
            wa_id: m.wa_id,
            body: m.body,
            command: m.command.map(Into::into),
            topic: m.topic.map(|t| t.as_str().to_owned()),
            received_at: m.received_at.into(),
            raw: m.raw,
        }
    }
}

/// A page of inbound messages.
#[derive(Debug, Object)]
pub struct InboundPage {
    /// The messages, newest first.
    pub items: Vec<InboundBody>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A recorded trigger event.
#[derive(Debug, Clone, Object)]
pub struct EventBody {
    /// Our id.
    pub id: String,
    /// The sender's own id for the event (its `id`, or the `Idempotency-Key`); an event with
    /// an id recorded before is not recorded again.
    pub external_id: Option<String>,
    /// What happened: its `alert_name`, `event_type` or `name`. Campaigns whose trigger
    /// names it run once for it.
    pub name: String,
    /// The user it is about (user events).
    pub user: Option<String>,
    /// Narrows the recipients of the campaigns it triggers (a segment definition).
    pub segment_rule: Option<Value>,
    /// Its data (`trigger_data` or `data`), available to templates as `{{ event.KEY }}`.
    pub data: Value,
    /// When it happened.
    pub occurred_at: Timestamp,
    /// When it was received.
    pub received_at: Timestamp,
}

impl From<TriggerEvent> for EventBody {
    fn from(e: TriggerEvent) -> Self {
        Self {
            id: e.id.to_string(),
            external_id: e.external_id,
            name: e.name,
            user: e.user.map(|u| u.to_string()),
            segment_rule: e.segment_rule.map(|r| r.as_json().clone()),
            data: Value::Object(e.data),
            occurred_at: e.occurred_at.into(),
            received_at: e.received_at.into(),
        }
    }
}

/// One trigger event, as a line of an events file: an alert
/// (`{"alert_name", "segment_rule", "trigger_data"}`) or a user event
/// (`{"user", "name", "data"}`). It needs a name: `alert_name`, `event_type` or `name`.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct EventInput {
    /// Your id for the event: an id recorded before is not recorded or triggered again.
    #[oai(validator(max_length = 200))]
    pub id: Option<String>,
    /// The alert's name (the prototype's shape).
    #[oai(validator(max_length = 200))]
    pub alert_name: Option<String>,
    /// The event's type, as a name.
    #[oai(validator(max_length = 200))]
    pub event_type: Option<String>,
    /// The event's name (user events).
    #[oai(validator(max_length = 200))]
    pub name: Option<String>,
    /// The user it is about (E.164): campaigns it triggers go to this user only.
    #[oai(validator(max_length = 32))]
    pub user: Option<String>,
    /// Another name for `user`.
    #[oai(validator(max_length = 32))]
    pub phone: Option<String>,
    /// A segment definition narrowing the recipients of the campaigns it triggers.
    pub segment_rule: Option<Value>,
    /// Its data, available to templates as `{{ event.KEY }}` (a JSON object).
    pub trigger_data: Option<Value>,
    /// Another name for `trigger_data`.
    pub data: Option<Value>,
    /// When it happened (RFC 3339); when it was received if not given.
    #[oai(validator(max_length = 64))]
    pub occurred_at: Option<String>,
    /// Another name for `occurred_at`.
    #[oai(validator(max_length = 64))]
    pub timestamp: Option<String>,
}

impl Example for EventInput {
    fn example() -> Self {
        EventInput {
            id: Some("dance-2026-03".into()),
            alert_name: Some("Dance Festival".into()),
            event_type: None,
            name: None,
            user: None,
            phone: None,
            segment_rule: Some(json!({ "topic": "DANCE" })),
            trigger_data: Some(json!({ "venue": "Galle Face Green" })),
            data: None,
            occurred_at: None,
            timestamp: None,
        }
    }
}

impl EventInput {
    /// The event as the JSON object the data format describes, for the one parser of events.
    fn into_json(self) -> Value {
        let text = |s: Option<String>| s.map(Value::String);
        let fields = [
            ("id", text(self.id)),
            ("alert_name", text(self.alert_name)),
            ("event_type", text(self.event_type)),
            ("name", text(self.name)),
            ("user", text(self.user)),
            ("phone", text(self.phone)),
            ("segment_rule", self.segment_rule),
            ("trigger_data", self.trigger_data),
            ("data", self.data),
            ("occurred_at", text(self.occurred_at)),
            ("timestamp", text(self.timestamp)),
        ];
        let object: Map<String, Value> = fields
            .into_iter()
            .filter_map(|(key, value)| Some((key.to_owned(), value?)))
            .collect();
        Value::Object(object)
    }
}

/// A page of events.
#[derive(Debug, Object)]
pub struct EventPage {
    /// The events, newest first.
    pub items: Vec<EventBody>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A campaign run an event opened.
#[derive(Debug, Clone, Object)]
pub struct OpenedRunBody {
    /// The campaign.
    pub campaign_id: String,
    /// Its name.
    pub campaign_name: String,
    /// The run.
    pub run_id: String,
    /// Messages the run's fan-out wrote into the outbox.
    pub messages: u64,
}

/// A draft or paused campaign triggered by an event's name, which does not listen until an
/// operator launches or resumes it.
#[derive(Debug, Clone, Object)]
pub struct IdleListenerBody {
    /// The campaign.
    pub campaign_id: String,
    /// Its name.
    pub campaign_name: String,
    /// Its state (`draft` or `paused`).
    pub status: String,
    /// What makes it listen: `launch` (arms a draft event campaign, sending nothing by
    /// itself) or `resume`.
    pub action: String,
    /// The request that does it, e.g. `POST /api/v1/campaigns/{id}/launch`.
    pub request: String,
}

/// The idle listeners as the API shows them.
pub(super) fn idle_listener_bodies(idle: &[IdleListener]) -> Vec<IdleListenerBody> {
    idle.iter()
        .map(|listener| IdleListenerBody {
            campaign_id: listener.campaign.id.to_string(),
            campaign_name: listener.campaign.name.clone(),
            status: listener.campaign.status.as_str().to_owned(),
            action: listener.command.as_str().to_owned(),
            request: format!(
                "POST /api/v1/campaigns/{}/{}",
                listener.campaign.id,
                listener.command.as_str()
            ),
        })
        .collect()
}

/// A recorded event and what it triggered.
#[derive(Debug, Clone, Object)]
pub struct EventRecordedBody {
    /// The event.
    #[oai(flatten)]
    pub event: EventBody,
    /// The campaign runs it opened (none for an event recorded before).
    pub runs: Vec<OpenedRunBody>,
    /// When it opened no run, why: `no campaign listens for …` (naming the campaigns that
    /// would, once launched or resumed), or that it was recorded before; null otherwise.
    pub note: Option<String>,
    /// Draft or paused campaigns triggered by its name, which do not listen until launched
    /// or resumed.
    pub idle_listeners: Vec<IdleListenerBody>,
}

impl From<EventOutcome> for EventRecordedBody {
    fn from(outcome: EventOutcome) -> Self {
        Self {
            note: outcome.explanation(),
            idle_listeners: idle_listener_bodies(&outcome.idle_listeners),
            runs: outcome
                .runs
                .into_iter()
                .map(|run| OpenedRunBody {
                    campaign_id: run.campaign.id.to_string(),
                    campaign_name: run.campaign.name,
                    run_id: run.run_id.to_string(),
                    messages: run.messages,
                })
                .collect(),
            event: outcome.event.into(),
        }
    }
}

#[derive(ApiResponse)]
enum EventRecorded {
    /// Recorded; the campaigns listening for it have fanned out their messages, and the
    /// answer names their runs (or says why there were none).
    #[oai(status = 201)]
    Created(Json<EventRecordedBody>),
    /// An event with this id (or `Idempotency-Key`) was recorded before: this is it, and
    /// nothing was recorded or triggered again.
    #[oai(status = 200)]
    Existing(Json<EventRecordedBody>),
}

/// Delivery statistics.
#[derive(Debug, Clone, Object)]
pub struct StatsBody {
    /// Messages in all.
    pub messages: u64,
    /// Messages per status; every status is listed, with 0 when it has none.
    pub by_status: BTreeMap<String, u64>,
    /// Delivered or read messages as a percentage of those Twilio finished with (sent,
    /// delivered, read, failed, undelivered); null before any finished.
    pub delivery_percent: Option<f64>,
    /// Failed and undelivered messages per Twilio error code (`unknown` without one).
    pub failures_by_error_code: BTreeMap<String, u64>,
    /// Why messages were skipped, per policy step, most first: how many, and one of the
    /// reasons given, which says what to do (empty in the totals).
    pub skipped_by_step: Vec<SkippedByBody>,
    /// Users who have opted out (null in a campaign's statistics).
    pub opted_out_users: Option<u64>,
    /// Inbound messages received (null in a campaign's statistics).
    pub inbound_messages: Option<u64>,
    /// Inbound messages that were commands (null in a campaign's statistics).
    pub inbound_commands: Option<u64>,
}

/// Messages one policy step skipped.
#[derive(Debug, Clone, Object)]
pub struct SkippedByBody {
    /// The step: `consent`, `template`, `whatsapp_window`, `frequency_cap`, `schedule`…
    pub step: String,
    /// How many messages it skipped.
    pub count: u64,
    /// One of its reasons (e.g. "outside WhatsApp's 24-hour window and the template has no
    /// approved content_sid: …, set the template's content_sid …").
    pub reason: String,
}

impl From<Stats> for StatsBody {
    fn from(s: Stats) -> Self {
        Self {
            messages: s.messages,
            by_status: s
                .by_status
                .into_iter()
                .map(|(status, n)| (status.as_str().to_owned(), n))
                .collect(),
            delivery_percent: s.delivery_percent,
            failures_by_error_code: s.failures_by_error_code,
            skipped_by_step: s
                .skipped_by_step
                .into_iter()
                .map(|by| SkippedByBody {
                    step: by.step,
                    count: by.count,
                    reason: by.reason,
                })
                .collect(),
            opted_out_users: s.opted_out_users,
            inbound_messages: s.inbound_messages,
            inbound_commands: s.inbound_commands,
        }
    }
}

fn event_page(page: Page<TriggerEvent>) -> EventPage {
    EventPage {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }
}

/// Inbound WhatsApp messages.
pub struct InboundApi {
    engine: Engine,
}

impl InboundApi {
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

#[OpenApi(tag = "ApiTags::Inbound")]
impl InboundApi {
    /// List inbound messages
    ///
    /// What users wrote to us, newest first, with the commands they carried and the
    /// webhook's fields as received.
    #[oai(path = "/inbound", method = "get", operation_id = "list_inbound")]
    async fn list(
        &self,
        /// At most this many (1–1000, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// The previous page's `next_cursor`.
        cursor: Query<Option<String>>,
        /// Skip this many (when no cursor is given).
        offset: Query<Option<u64>>,
        /// Only messages from this phone (E.164).
        #[oai(validator(max_length = 32))]
        user: Query<Option<String>>,
    ) -> Result<Json<InboundPage>, ApiError> {
        let from = user.0.as_deref().map(|u| phone("user", u)).transpose()?;
        let found = self
            .engine
            .list_inbound(from, &page::request(limit.0, cursor.0, offset.0))
            .await?;
        Ok(Json(InboundPage {
            items: found.items.into_iter().map(Into::into).collect(),
            next_cursor: found.next_cursor,
        }))
    }
}

/// Trigger events.
pub struct EventsApi {
    engine: Engine,
}

impl EventsApi {
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

#[OpenApi(tag = "ApiTags::Events")]
impl EventsApi {
    /// Record an event
    ///
    /// Records one trigger event and runs the campaigns listening for it (event-triggered
    /// campaigns that are `scheduled` or `running`): their messages are in the outbox when
    /// this answers, which names the runs opened. When none listens, `note` says so and
    /// `idle_listeners` names the draft or paused campaigns that would, once launched or
    /// resumed. An event whose `id` (or `Idempotency-Key` header) was recorded before
    /// answers 200 with the first one and triggers nothing again. Invalid fields answer 422,
    /// each named.
    #[oai(path = "/events", method = "post", operation_id = "record_event")]
    async fn record(
        &self,
        input: Json<EventInput>,
        /// Makes a retried request safe: a key seen before answers the first event. It is the
        /// event's id, so it must agree with the body's `id` when both are given.
        #[oai(name = "Idempotency-Key", validator(max_length = 200))]
        idempotency_key: Header<Option<String>>,
    ) -> Result<EventRecorded, ApiError> {
        let mut event = TriggerEvent::from_json(input.0.into_json(), self.engine.clock().now())
            .map_err(|fields| ApiError::from(EngineError::Invalid(fields)))?;
        if let Some(key) = idempotency_key.0.map(|k| k.trim().to_owned())
            && !key.is_empty()
        {
            match &event.external_id {
                Some(id) if *id != key => {
                    return Err(ApiError::invalid(
                        "id",
                        format!("{id:?} differs from the Idempotency-Key header {key:?}"),
                    ));
                }
                _ => event.external_id = Some(key),
            }
        }
        let outcome = self.engine.record_event(event).await?;
        Ok(if outcome.duplicate {
            EventRecorded::Existing(Json(outcome.into()))
        } else {
            EventRecorded::Created(Json(outcome.into()))
        })
    }

    /// List events
    ///
    /// Newest first.
    #[oai(path = "/events", method = "get", operation_id = "list_events")]
    async fn list(
        &self,
        /// At most this many (1–1000, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// The previous page's `next_cursor`.
        cursor: Query<Option<String>>,
        /// Skip this many (when no cursor is given).
        offset: Query<Option<u64>>,
    ) -> Result<Json<EventPage>, ApiError> {
        let found = self
            .engine
            .list_events(&page::request(limit.0, cursor.0, offset.0))
            .await?;
        Ok(Json(event_page(found)))
    }

    /// Get an event
    #[oai(path = "/events/:id", method = "get", operation_id = "get_event")]
    async fn get(
        &self,
        #[oai(validator(max_length = 64))] id: Path<String>,
    ) -> Result<Json<EventBody>, ApiError> {
        let event_id: EventId = id.parse().map_err(|_| ApiError::not_found("event", &*id))?;
        Ok(Json(self.engine.get_event(event_id).await?.into()))
    }
}

/// Delivery statistics.
pub struct StatsApi {
    engine: Engine,
}

impl StatsApi {
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

#[OpenApi(tag = "ApiTags::Stats")]
impl StatsApi {
    /// Delivery statistics
    ///
    /// Messages per status, the delivered share, failures by Twilio error code, opted-out
    /// users and inbound traffic, over every campaign and reply.
    #[oai(path = "/stats", method = "get", operation_id = "stats")]
    async fn stats(&self) -> Result<Json<StatsBody>, ApiError> {
        Ok(Json(self.engine.stats(None).await?.into()))
    }
}
