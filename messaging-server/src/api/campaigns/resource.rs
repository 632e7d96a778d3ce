//! The campaign resource as the API shows and takes it: states, triggers, schedules, quiet
//! hours, previews, and the parsing of a definition into the engine's draft with every
//! problem named.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveTime, Utc};
use messaging_core::domain::{
    Campaign, CampaignDraft, CampaignStatus, FieldError, QuietHours, Schedule, Topic, Trigger,
};
use messaging_core::engine::{CampaignPreview, RecipientPreview};
use poem_openapi::types::Example;
use poem_openapi::{Enum, Object};

use crate::api::activity::EventBody;
use crate::api::error::ApiError;
use crate::api::timestamp::Timestamp;

/// Where a campaign is in its life: `draft` (sends nothing), `scheduled` (waits for
/// `schedule.start_at`, or listens for its events), `running`, `paused`, `completed`,
/// `cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum CampaignState {
    Draft,
    Scheduled,
    Running,
    Paused,
    Completed,
    Cancelled,
}

impl From<CampaignStatus> for CampaignState {
    fn from(status: CampaignStatus) -> Self {
        match status {
            CampaignStatus::Draft => Self::Draft,
            CampaignStatus::Scheduled => Self::Scheduled,
            CampaignStatus::Running => Self::Running,
            CampaignStatus::Paused => Self::Paused,
            CampaignStatus::Completed => Self::Completed,
            CampaignStatus::Cancelled => Self::Cancelled,
        }
    }
}

impl From<CampaignState> for CampaignStatus {
    fn from(state: CampaignState) -> Self {
        match state {
            CampaignState::Draft => Self::Draft,
            CampaignState::Scheduled => Self::Scheduled,
            CampaignState::Running => Self::Running,
            CampaignState::Paused => Self::Paused,
            CampaignState::Completed => Self::Completed,
            CampaignState::Cancelled => Self::Cancelled,
        }
    }
}

/// What starts a campaign: `manual` (a launch, or its `schedule.start_at`) or `event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum TriggerKind {
    Manual,
    Event,
}

/// What starts a campaign: `{"type": "manual"}` or `{"type": "event", "event": "<name>"}`.
#[derive(Debug, Clone, Object)]
pub struct TriggerBody {
    /// `manual` or `event`.
    #[oai(rename = "type")]
    pub kind: TriggerKind,
    /// For `event`: the `alert_name` or event name that starts one run of the campaign
    /// (compared without regard to case).
    #[oai(skip_serializing_if_is_none)]
    #[oai(validator(max_length = 200))]
    pub event: Option<String>,
}

/// When a campaign may send.
#[derive(Debug, Clone, Object)]
pub struct ScheduleBody {
    /// Not before this instant (RFC 3339); a scheduled manual campaign starts then.
    pub start_at: Option<Timestamp>,
    /// Not after this instant (RFC 3339); the campaign completes then and what it had not
    /// sent is skipped.
    pub end_at: Option<Timestamp>,
}

/// When a campaign may send, as given: times are RFC 3339 with an offset
/// (`2026-03-01T09:00:00+05:30` or `…Z`).
#[derive(Debug, Clone, Object)]
pub struct ScheduleInput {
    /// Not before this instant; a scheduled manual campaign starts then.
    #[oai(validator(max_length = 64))]
    pub start_at: Option<String>,
    /// Not after this instant; the campaign completes then and what it had not sent is
    /// skipped.
    #[oai(validator(max_length = 64))]
    pub end_at: Option<String>,
}

/// A daily period in which nothing is sent, in each recipient's own time zone; it may wrap
/// midnight.
#[derive(Debug, Clone, Object)]
pub struct QuietHoursBody {
    /// Local time it begins, `HH:MM`.
    #[oai(validator(max_length = 16))]
    pub start: String,
    /// Local time it ends, `HH:MM`.
    #[oai(validator(max_length = 16))]
    pub end: String,
}

/// A campaign.
#[derive(Debug, Clone, Object)]
pub struct CampaignBody {
    /// Its id.
    pub id: String,
    /// A name for operators.
    pub name: String,
    /// When set, only this topic's subscribers are recipients.
    pub topic: Option<String>,
    /// The template it sends.
    pub template_id: String,
    /// When set, recipients are narrowed to this segment.
    pub segment_id: Option<String>,
    /// What starts it.
    pub trigger: TriggerBody,
    /// When it may send.
    pub schedule: ScheduleBody,
    /// At most this many sends per second for this campaign (null: only the sender's limit).
    pub rate_limit_per_second: Option<u32>,
    /// No sends in this daily period, in each recipient's time zone.
    pub quiet_hours: Option<QuietHoursBody>,
    /// Where it is in its life.
    pub status: CampaignState,
    /// Why it paused by itself, when it did: a run could not be fanned out (its template
    /// renders too long a message or takes too much work, its segment is gone…). Fix that,
    /// then resume it; null otherwise.
    pub problem: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl From<Campaign> for CampaignBody {
    fn from(c: Campaign) -> Self {
        let trigger = match c.trigger {
            Trigger::Manual => TriggerBody {
                kind: TriggerKind::Manual,
                event: None,
            },
            Trigger::Event { event } => TriggerBody {
                kind: TriggerKind::Event,
                event: Some(event),
            },
        };
        let hhmm = |t: NaiveTime| t.format("%H:%M").to_string();
        Self {
            id: c.id.to_string(),
            name: c.name,
            topic: c.topic.map(|t| t.as_str().to_owned()),
            template_id: c.template_id.to_string(),
            segment_id: c.segment_id.map(|id| id.to_string()),
            trigger,
            schedule: ScheduleBody {
                start_at: c.schedule.start_at.map(Into::into),
                end_at: c.schedule.end_at.map(Into::into),
            },
            rate_limit_per_second: c.rate_limit_per_second,
            quiet_hours: c.quiet_hours.map(|q| QuietHoursBody {
                start: hhmm(q.start),
                end: hhmm(q.end),
            }),
            status: c.status.into(),
            problem: c.problem,
            created_at: c.created_at.into(),
            updated_at: c.updated_at.into(),
        }
    }
}

/// A campaign to create, or a campaign's new definition.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct CampaignInput {
    /// A name for operators.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: String,
    /// Only this topic's subscribers are recipients (case-insensitive).
    #[oai(validator(max_length = 64))]
    pub topic: Option<String>,
    /// The template to send.
    #[oai(validator(max_length = 64))]
    pub template_id: String,
    /// Narrows the recipients to this segment. With neither topic nor segment, every
    /// opted-in user is a recipient.
    #[oai(validator(max_length = 64))]
    pub segment_id: Option<String>,
    /// What starts it; `{"type": "manual"}` when not given.
    pub trigger: Option<TriggerBody>,
    /// When it may send.
    pub schedule: Option<ScheduleInput>,
    /// At most this many sends per second for this campaign (at least 1).
    #[oai(validator(minimum(value = "1")))]
    pub rate_limit_per_second: Option<u32>,
    /// No sends in this daily period, in each recipient's time zone.
    pub quiet_hours: Option<QuietHoursBody>,
    /// At creation, `scheduled` creates it ready: a manual campaign starts at
    /// `schedule.start_at`, an event-triggered one listens for its events at once. Otherwise
    /// it is a `draft`. Ignored when replacing a campaign (use launch, pause, resume,
    /// cancel).
    pub status: Option<CampaignState>,
}

impl Example for CampaignInput {
    fn example() -> Self {
        CampaignInput {
            name: "Dance Festival alert".into(),
            topic: Some("DANCE".into()),
            template_id: "0190f1c2-7a4b-7c3d-9e8f-0123456789ab".into(),
            segment_id: None,
            trigger: Some(TriggerBody {
                kind: TriggerKind::Event,
                event: Some("Dance Festival".into()),
            }),
            schedule: Some(ScheduleInput {
                start_at: None,
                end_at: Some("2026-12-31T23:59:59Z".into()),
            }),
            rate_limit_per_second: Some(10),
            quiet_hours: Some(QuietHoursBody {
                start: "22:00".into(),
                end: "07:00".into(),
            }),
            status: Some(CampaignState::Scheduled),
        }
    }
}

impl TryFrom<CampaignInput> for CampaignDraft {
    type Error = ApiError;

    /// Parses every field, naming each one that is wrong; whether the template and segment
    /// exist is the engine's to check.
    fn try_from(input: CampaignInput) -> Result<Self, ApiError> {
        let mut problems = Vec::new();
        let mut parsed = Parsed(&mut problems);
        let topic = match input.topic.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(topic) => parsed.field("topic", Topic::parse(topic).map_err(|e| e.to_string())),
        };
        let template_id = parsed.field(
            "template_id",
            input
                .template_id
                .parse()
                .map_err(|_| format!("{:?} is not a template id", input.template_id)),
        );
        let segment_id = match input.segment_id.as_deref().map(str::trim) {
            None | Some("") => Some(None),
            Some(id) => parsed.field(
                "segment_id",
                id.parse()
                    .map(Some)
                    .map_err(|_| format!("{id:?} is not a segment id")),
            ),
        };
        let trigger = match input.trigger {
            None => Some(Trigger::Manual),
            Some(TriggerBody {
                kind: TriggerKind::Manual,
                event: None,
            }) => Some(Trigger::Manual),
            Some(TriggerBody {
                kind: TriggerKind::Manual,
                event: Some(_),
            }) => parsed.field(
                "trigger.event",
                Err("a manual campaign has no event; use {\"type\": \"event\"}".into()),
            ),
            Some(TriggerBody {
                kind: TriggerKind::Event,
                event,
            }) => parsed.field(
                "trigger.event",
                event
                    .map(|event| Trigger::Event { event })
                    .ok_or_else(|| "name the event that starts the campaign".to_owned()),
            ),
        };
        let quiet_hours = match input.quiet_hours {
            None => Some(None),
            Some(q) => {
                let start = parsed.field("quiet_hours.start", time_of_day(&q.start));
                let end = parsed.field("quiet_hours.end", time_of_day(&q.end));
                start
                    .zip(end)
                    .map(|(start, end)| Some(QuietHours { start, end }))
            }
        };
        let schedule = input.schedule.unwrap_or(ScheduleInput {
            start_at: None,
            end_at: None,
        });
        let mut schedule_field = |field: &str, text: Option<String>| match text {
            None => Some(None),
            Some(text) if text.trim().is_empty() => Some(None),
            Some(text) => parsed.field(field, instant(&text).map(Some)),
        };
        let start_at = schedule_field("schedule.start_at", schedule.start_at);
        let end_at = schedule_field("schedule.end_at", schedule.end_at);
        let schedule = start_at
            .zip(end_at)
            .map(|(start_at, end_at)| Schedule { start_at, end_at });
        match (template_id, segment_id, trigger, quiet_hours, schedule) {
            (
                Some(template_id),
                Some(segment_id),
                Some(trigger),
                Some(quiet_hours),
                Some(schedule),
            ) if problems.is_empty() => Ok(CampaignDraft {
                name: input.name,
                topic,
                template_id,
                segment_id,
                trigger,
                schedule,
                rate_limit_per_second: input.rate_limit_per_second,
                quiet_hours,
                status: input.status.map(Into::into),
            }),
            _ => Err(messaging_core::EngineError::Invalid(problems).into()),
        }
    }
}

/// Collects the problems of the fields parsed through it.
struct Parsed<'a>(&'a mut Vec<FieldError>);

impl Parsed<'_> {
    /// The value, or `None` with the problem recorded against `field`.
    fn field<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        result
            .map_err(|reason| self.0.push(FieldError::new(field, reason)))
            .ok()
    }
}

fn instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| format!("{text:?} is not an RFC 3339 time with an offset ({e})"))
}

fn time_of_day(text: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(text.trim(), "%H:%M")
        .map_err(|_| format!("{text:?} is not a time of day as HH:MM"))
}

/// A page of campaigns.
#[derive(Debug, Object)]
pub struct CampaignPage {
    /// The campaigns, oldest first.
    pub items: Vec<CampaignBody>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A launched campaign.
#[derive(Debug, Object)]
pub struct LaunchedCampaign {
    /// The campaign, now `running`.
    #[oai(flatten)]
    pub campaign: CampaignBody,
    /// For a manual campaign, how many messages the launch wrote to the outbox (one per
    /// recipient; the dispatcher sends them). Null for an event-triggered campaign, which
    /// only starts listening for its events.
    pub fanned_out: Option<u64>,
}

/// One recipient's message in a preview.
#[derive(Debug, Object)]
pub struct RecipientPreviewBody {
    /// The recipient's phone.
    pub user: String,
    /// The message as rendered for them; null when it cannot be rendered.
    pub body: Option<String>,
    /// The approved template's variables, rendered.
    pub content_variables: Option<BTreeMap<String, String>>,
    /// How it would go now: `text` (within the 24-hour window) or `template` (the approved
    /// `content_sid`); null when it would be skipped.
    pub send_as: Option<String>,
    /// Why it would be skipped; null when it would be sent.
    pub skip_reason: Option<String>,
}

impl From<RecipientPreview> for RecipientPreviewBody {
    fn from(p: RecipientPreview) -> Self {
        Self {
            user: p.user.to_string(),
            body: p.body,
            content_variables: p.content_variables,
            send_as: p.send_as.map(|s| s.as_str().to_owned()),
            skip_reason: p.skip_reason,
        }
    }
}

/// What a campaign would send, as of now.
#[derive(Debug, Object)]
pub struct CampaignPreviewBody {
    /// How many users a run writes a message for (for an event-triggered campaign, before an
    /// event's own `segment_rule` or `user` narrows them).
    pub recipients: u64,
    /// Of those, how many have opted in; the others would be skipped.
    pub opted_in: u64,
    /// For an event-triggered campaign, the latest recorded event it listens for, whose data
    /// the sample is rendered with; null when there is none.
    pub event: Option<EventBody>,
    /// The first recipients (by phone) and their messages.
    pub sample: Vec<RecipientPreviewBody>,
}

impl From<CampaignPreview> for CampaignPreviewBody {
    fn from(p: CampaignPreview) -> Self {
        Self {
            recipients: p.recipients,
            opted_in: p.opted_in,
            event: p.event.map(Into::into),
            sample: p.sample.into_iter().map(Into::into).collect(),
        }
    }
}
