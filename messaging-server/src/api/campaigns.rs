//! `campaigns`: their definitions, their lifecycle (launch, pause, resume, cancel), and what
//! they send: a preview before, their messages and statistics after.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveTime, Utc};
use messaging_core::Engine;
use messaging_core::domain::{
    Campaign, CampaignCommand, CampaignDraft, CampaignId, CampaignStatus, FieldError, QuietHours,
    Schedule, Topic, Trigger,
};
use messaging_core::engine::{CampaignPreview, RecipientPreview};
use messaging_core::store::CampaignQuery;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::activity::{EventBody, StatsBody};
use super::error::ApiError;
use super::messages::{MessagePage, MessageState, message_query};
use super::{ApiTags, page};

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
    pub event: Option<String>,
}

/// When a campaign may send.
#[derive(Debug, Clone, Object)]
pub struct ScheduleBody {
    /// Not before this instant (RFC 3339); a scheduled manual campaign starts then.
    pub start_at: Option<DateTime<Utc>>,
    /// Not after this instant (RFC 3339); the campaign completes then and what it had not
    /// sent is skipped.
    pub end_at: Option<DateTime<Utc>>,
}

/// When a campaign may send, as given: times are RFC 3339 with an offset
/// (`2026-03-01T09:00:00+05:30` or `…Z`).
#[derive(Debug, Clone, Object)]
pub struct ScheduleInput {
    /// Not before this instant; a scheduled manual campaign starts then.
    pub start_at: Option<String>,
    /// Not after this instant; the campaign completes then and what it had not sent is
    /// skipped.
    pub end_at: Option<String>,
}

/// A daily period in which nothing is sent, in each recipient's own time zone; it may wrap
/// midnight.
#[derive(Debug, Clone, Object)]
pub struct QuietHoursBody {
    /// Local time it begins, `HH:MM`.
    pub start: String,
    /// Local time it ends, `HH:MM`.
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
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
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
                start_at: c.schedule.start_at,
                end_at: c.schedule.end_at,
            },
            rate_limit_per_second: c.rate_limit_per_second,
            quiet_hours: c.quiet_hours.map(|q| QuietHoursBody {
                start: hhmm(q.start),
                end: hhmm(q.end),
            }),
            status: c.status.into(),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A campaign to create, or a campaign's new definition.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct CampaignInput {
    /// A name for operators.
    pub name: String,
    /// Only this topic's subscribers are recipients (case-insensitive).
    pub topic: Option<String>,
    /// The template to send.
    pub template_id: String,
    /// Narrows the recipients to this segment. With neither topic nor segment, every
    /// opted-in user is a recipient.
    pub segment_id: Option<String>,
    /// What starts it; `{"type": "manual"}` when not given.
    pub trigger: Option<TriggerBody>,
    /// When it may send.
    pub schedule: Option<ScheduleInput>,
    /// At most this many sends per second for this campaign (at least 1).
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

#[derive(ApiResponse)]
enum CampaignCreated {
    /// Created.
    #[oai(status = 201)]
    Created(Json<CampaignBody>),
}

#[derive(ApiResponse)]
enum Deleted {
    /// Deleted.
    #[oai(status = 204)]
    Deleted,
}

fn campaign_id(id: &str) -> Result<CampaignId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found("campaign", id))
}

/// Campaigns.
pub struct CampaignsApi {
    engine: Engine,
}

impl CampaignsApi {
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }

    async fn command(&self, id: &str, command: CampaignCommand) -> Result<CampaignBody, ApiError> {
        let campaign = self
            .engine
            .command_campaign(campaign_id(id)?, command)
            .await?;
        Ok(campaign.into())
    }
}

#[OpenApi(tag = "ApiTags::Campaigns")]
impl CampaignsApi {
    /// Create a campaign
    ///
    /// Created as a `draft`, or `scheduled` when the body says so. The template and segment
    /// must exist; every invalid field is named in the 422 answer.
    #[oai(path = "/campaigns", method = "post", operation_id = "create_campaign")]
    async fn create(&self, input: Json<CampaignInput>) -> Result<CampaignCreated, ApiError> {
        let campaign = self.engine.create_campaign(input.0.try_into()?).await?;
        Ok(CampaignCreated::Created(Json(campaign.into())))
    }

    /// List campaigns
    #[oai(path = "/campaigns", method = "get", operation_id = "list_campaigns")]
    async fn list(
        &self,
        /// At most this many (1–1000, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// The previous page's `next_cursor`.
        cursor: Query<Option<String>>,
        /// Skip this many (when no cursor is given).
        offset: Query<Option<u64>>,
        /// Free text matched against the name.
        q: Query<Option<String>>,
        /// Only campaigns in this state.
        status: Query<Option<CampaignState>>,
    ) -> Result<Json<CampaignPage>, ApiError> {
        let query = CampaignQuery {
            q: q.0.filter(|q| !q.trim().is_empty()),
            status: status.0.map(Into::into),
        };
        let found = self
            .engine
            .list_campaigns(&query, &page::request(limit.0, cursor.0, offset.0))
            .await?;
        Ok(Json(CampaignPage {
            items: found.items.into_iter().map(Into::into).collect(),
            next_cursor: found.next_cursor,
        }))
    }

    /// Get a campaign
    #[oai(path = "/campaigns/:id", method = "get", operation_id = "get_campaign")]
    async fn get(&self, id: Path<String>) -> Result<Json<CampaignBody>, ApiError> {
        let campaign = self.engine.get_campaign(campaign_id(&id)?).await?;
        Ok(Json(campaign.into()))
    }

    /// Replace a campaign
    ///
    /// Only a campaign that is not sending (`draft`, `scheduled`, `paused`) can change
    /// (409 otherwise); its state stays as it is.
    #[oai(
        path = "/campaigns/:id",
        method = "put",
        operation_id = "replace_campaign"
    )]
    async fn replace(
        &self,
        id: Path<String>,
        input: Json<CampaignInput>,
    ) -> Result<Json<CampaignBody>, ApiError> {
        let campaign = self
            .engine
            .update_campaign(campaign_id(&id)?, input.0.try_into()?)
            .await?;
        Ok(Json(campaign.into()))
    }

    /// Delete a campaign
    ///
    /// A running campaign cannot be deleted (409): pause or cancel it first.
    #[oai(
        path = "/campaigns/:id",
        method = "delete",
        operation_id = "delete_campaign"
    )]
    async fn delete(&self, id: Path<String>) -> Result<Deleted, ApiError> {
        self.engine.delete_campaign(campaign_id(&id)?).await?;
        Ok(Deleted::Deleted)
    }

    /// Launch a campaign
    ///
    /// From `draft` or `scheduled` to `running`. A manual campaign's recipients are written
    /// to the outbox at once (`fanned_out` says how many) and the dispatcher sends them; an
    /// event-triggered campaign starts listening for its events and sends nothing by
    /// itself. Any other state answers 409.
    #[oai(
        path = "/campaigns/:id/launch",
        method = "post",
        operation_id = "launch_campaign"
    )]
    async fn launch(&self, id: Path<String>) -> Result<Json<LaunchedCampaign>, ApiError> {
        let (campaign, run) = self.engine.launch_campaign(campaign_id(&id)?).await?;
        Ok(Json(LaunchedCampaign {
            campaign: campaign.into(),
            fanned_out: run.map(|run| run.messages),
        }))
    }

    /// Pause a campaign
    ///
    /// From `scheduled` or `running` to `paused`: it stops sending and listening; nothing
    /// is lost. Any other state answers 409.
    #[oai(
        path = "/campaigns/:id/pause",
        method = "post",
        operation_id = "pause_campaign"
    )]
    async fn pause(&self, id: Path<String>) -> Result<Json<CampaignBody>, ApiError> {
        Ok(Json(self.command(&id, CampaignCommand::Pause).await?))
    }

    /// Resume a campaign
    ///
    /// From `paused` to `running`: it goes on where it stopped. Any other state answers 409.
    #[oai(
        path = "/campaigns/:id/resume",
        method = "post",
        operation_id = "resume_campaign"
    )]
    async fn resume(&self, id: Path<String>) -> Result<Json<CampaignBody>, ApiError> {
        Ok(Json(self.command(&id, CampaignCommand::Resume).await?))
    }

    /// Cancel a campaign
    ///
    /// From any state that has not ended to `cancelled`: what it had not sent is skipped,
    /// with the reason. A completed or cancelled campaign answers 409.
    #[oai(
        path = "/campaigns/:id/cancel",
        method = "post",
        operation_id = "cancel_campaign"
    )]
    async fn cancel(&self, id: Path<String>) -> Result<Json<CampaignBody>, ApiError> {
        Ok(Json(self.command(&id, CampaignCommand::Cancel).await?))
    }

    /// Preview a campaign
    ///
    /// How many recipients it has, and the messages the first of them would get, rendered
    /// as the campaign would and with the decisions known now (opted out, a missing
    /// placeholder, outside the WhatsApp window with no approved template), without writing
    /// or sending anything. An event-triggered campaign's sample is rendered with the data of
    /// the latest event it listens for, when one was recorded.
    #[oai(
        path = "/campaigns/:id/preview",
        method = "get",
        operation_id = "preview_campaign"
    )]
    async fn preview(
        &self,
        id: Path<String>,
        /// How many recipients' messages to render (1–100, default 10).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        sample: Query<Option<u32>>,
    ) -> Result<Json<CampaignPreviewBody>, ApiError> {
        let preview = self
            .engine
            .preview_campaign(campaign_id(&id)?, sample.0.unwrap_or(10))
            .await?;
        Ok(Json(preview.into()))
    }

    /// List a campaign's messages
    ///
    /// Newest first; each message's history and decisions are in `GET messages/{id}`.
    #[oai(
        path = "/campaigns/:id/messages",
        method = "get",
        operation_id = "campaign_messages"
    )]
    async fn messages(
        &self,
        id: Path<String>,
        /// At most this many (1–1000, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// The previous page's `next_cursor`.
        cursor: Query<Option<String>>,
        /// Skip this many (when no cursor is given).
        offset: Query<Option<u64>>,
        /// Only messages in this status.
        status: Query<Option<MessageState>>,
        /// Only messages to this phone (E.164).
        user: Query<Option<String>>,
    ) -> Result<Json<MessagePage>, ApiError> {
        let campaign = self.engine.get_campaign(campaign_id(&id)?).await?;
        let query = message_query(Some(campaign.id), user.0.as_deref(), status.0)?;
        let found = self
            .engine
            .list_messages(&query, &page::request(limit.0, cursor.0, offset.0))
            .await?;
        Ok(Json(found.into()))
    }

    /// A campaign's statistics
    ///
    /// Its messages per status, the delivered share and failures by Twilio error code.
    #[oai(
        path = "/campaigns/:id/stats",
        method = "get",
        operation_id = "campaign_stats"
    )]
    async fn stats(&self, id: Path<String>) -> Result<Json<StatsBody>, ApiError> {
        let stats = self.engine.stats(Some(campaign_id(&id)?)).await?;
        Ok(Json(stats.into()))
    }
}
