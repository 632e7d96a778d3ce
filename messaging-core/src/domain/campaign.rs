//! [`Campaign`] and its lifecycle: draft → scheduled → running ⇄ paused → completed, and
//! cancelled from any state that has not ended.

use chrono::{DateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use super::{CampaignId, SegmentId, TemplateId, Topic};

/// Where a campaign is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaignStatus {
    /// Being written; sends nothing.
    Draft,
    /// Waiting for its start time (manual) or listening for events (event-triggered).
    Scheduled,
    /// Sending, or listening and sending for events.
    Running,
    /// Stopped by an operator; resumes where it stopped.
    Paused,
    /// Finished; nothing more will be sent.
    Completed,
    /// Abandoned; nothing more will be sent.
    Cancelled,
}

/// An operator's or the scheduler's request to move a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaignCommand {
    /// Wait for the start time (draft → scheduled).
    Schedule,
    /// Start now (draft or scheduled → running).
    Launch,
    /// Stop sending for now (scheduled or running → paused).
    Pause,
    /// Go on (paused → running).
    Resume,
    /// Everything was sent, or the end time passed (scheduled or running → completed).
    Complete,
    /// Give up (any state that has not ended → cancelled).
    Cancel,
}

/// A command that the campaign's state does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {command:?} a campaign that is {from:?}")]
pub struct CampaignTransitionError {
    /// The state the campaign was in.
    pub from: CampaignStatus,
    /// What was asked.
    pub command: CampaignCommand,
}

impl CampaignStatus {
    /// The state after `command`, or why it is not allowed.
    pub fn apply(self, command: CampaignCommand) -> Result<Self, CampaignTransitionError> {
        use CampaignCommand as C;
        use CampaignStatus as S;
        let next = match (self, command) {
            (S::Draft, C::Schedule) => S::Scheduled,
            (S::Draft | S::Scheduled, C::Launch) => S::Running,
            (S::Scheduled | S::Running, C::Pause) => S::Paused,
            (S::Paused, C::Resume) => S::Running,
            (S::Scheduled | S::Running, C::Complete) => S::Completed,
            (from, C::Cancel) if !from.is_terminal() => S::Cancelled,
            (from, command) => return Err(CampaignTransitionError { from, command }),
        };
        Ok(next)
    }

    /// Completed and cancelled campaigns never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled)
    }

    /// Every state, in the order of the lifecycle.
    pub const ALL: [CampaignStatus; 6] = [
        Self::Draft,
        Self::Scheduled,
        Self::Running,
        Self::Paused,
        Self::Completed,
        Self::Cancelled,
    ];

    /// The state's name, as the API and the store write it (`draft`, `scheduled`…).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Scheduled => "scheduled",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether an event-triggered campaign in this state listens for its events, opening a
    /// run for each: while `scheduled` or `running`. A draft listens once launched (armed), a
    /// paused one once resumed. This is the one rule; the store's queries are built from it.
    pub fn listens_for_events(self) -> bool {
        matches!(self, Self::Scheduled | Self::Running)
    }

    /// Whether the messages of a campaign in this state are sent: while `scheduled` or
    /// `running`, since an event-triggered campaign sends while it listens. A paused
    /// campaign's messages wait in the outbox; a completed or cancelled one's are never sent.
    /// This is the one rule: the dispatcher's choice of campaigns and the store's claims are
    /// built from it.
    pub fn sends_messages(self) -> bool {
        matches!(self, Self::Scheduled | Self::Running)
    }

    /// The command that makes an event-triggered campaign in this state listen for its events
    /// (launch a draft, resume a paused one); `None` when it listens already or has ended.
    pub fn command_to_listen(self) -> Option<CampaignCommand> {
        if self.listens_for_events() {
            return None;
        }
        [CampaignCommand::Launch, CampaignCommand::Resume]
            .into_iter()
            .find(|command| self.apply(*command).is_ok_and(Self::listens_for_events))
    }
}

impl CampaignCommand {
    /// The command's name, as the API's paths write it (`launch`, `resume`…).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schedule => "schedule",
            Self::Launch => "launch",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Complete => "complete",
            Self::Cancel => "cancel",
        }
    }
}

/// What starts a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Trigger {
    /// An operator launches it (or its schedule does).
    Manual,
    /// Each matching event starts one run.
    Event {
        /// Matched against an event's `alert_name`, `event_type` or `name`.
        event: String,
    },
}

/// When a campaign may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Schedule {
    /// Not before this instant.
    #[serde(default)]
    pub start_at: Option<DateTime<Utc>>,
    /// Not after this instant.
    #[serde(default)]
    pub end_at: Option<DateTime<Utc>>,
}

/// A daily period, in each recipient's own time zone, in which nothing is sent. It may wrap
/// midnight (`22:00`–`07:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuietHours {
    /// Local time the quiet period begins.
    #[serde(with = "hhmm")]
    pub start: NaiveTime,
    /// Local time the quiet period ends.
    #[serde(with = "hhmm")]
    pub end: NaiveTime,
}

impl QuietHours {
    /// Whether a local time of day falls in the quiet period.
    pub fn contains(&self, local: NaiveTime) -> bool {
        if self.start <= self.end {
            self.start <= local && local < self.end
        } else {
            local >= self.start || local < self.end
        }
    }
}

mod hhmm {
    use chrono::NaiveTime;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &NaiveTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&time.format("%H:%M").to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
        let text = String::deserialize(d)?;
        NaiveTime::parse_from_str(text.trim(), "%H:%M")
            .map_err(|_| serde::de::Error::custom(format!("expected HH:MM, got {text:?}")))
    }
}

/// A campaign: which template goes to whom, when, and how fast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    /// Its id.
    pub id: CampaignId,
    /// A name operators recognise.
    pub name: String,
    /// When set, only subscribers of this topic are recipients.
    pub topic: Option<Topic>,
    /// The message to send.
    pub template_id: TemplateId,
    /// When set, recipients are narrowed to this segment.
    pub segment_id: Option<SegmentId>,
    /// What starts it.
    pub trigger: Trigger,
    /// When it may send.
    pub schedule: Schedule,
    /// At most this many sends per second for this campaign.
    pub rate_limit_per_second: Option<u32>,
    /// No sends in this daily period, in each recipient's time zone.
    pub quiet_hours: Option<QuietHours>,
    /// Where it is in its life.
    pub status: CampaignStatus,
    /// Why it stopped by itself, when it did: a run of it could not be fanned out (its
    /// template runs over its budget, its segment is gone…), so it was paused. Cleared when a
    /// run's fan-out completes (after a fix, resume it).
    pub problem: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Campaign {
    /// Whether this campaign opens a run for an event named `event_name` now: it is
    /// triggered by that name and its state listens ([`CampaignStatus::listens_for_events`]).
    pub fn listens_for(&self, event_name: &str) -> bool {
        self.is_triggered_by(event_name) && self.status.listens_for_events()
    }

    /// Whether this campaign is triggered by events named `event_name`, whatever its state
    /// (names compare without regard to case or surrounding spaces).
    pub fn is_triggered_by(&self, event_name: &str) -> bool {
        match &self.trigger {
            Trigger::Event { event } => event.trim().eq_ignore_ascii_case(event_name.trim()),
            Trigger::Manual => false,
        }
    }
}

/// What an operator gives to create or replace a campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignDraft {
    /// A name operators recognise.
    pub name: String,
    /// When set, only subscribers of this topic are recipients.
    #[serde(default)]
    pub topic: Option<Topic>,
    /// The message to send.
    pub template_id: TemplateId,
    /// When set, recipients are narrowed to this segment.
    #[serde(default)]
    pub segment_id: Option<SegmentId>,
    /// What starts it (manual when not given).
    #[serde(default = "manual")]
    pub trigger: Trigger,
    /// When it may send.
    #[serde(default)]
    pub schedule: Schedule,
    /// At most this many sends per second for this campaign.
    #[serde(default)]
    pub rate_limit_per_second: Option<u32>,
    /// No sends in this daily period, in each recipient's time zone.
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
    /// `scheduled` to create it ready to start (or listening, for event triggers); otherwise
    /// it starts as a `draft`. Ignored when replacing a campaign.
    #[serde(default)]
    pub status: Option<CampaignStatus>,
}

impl CampaignDraft {
    /// The campaign this draft defines, with the identity and state given.
    pub fn into_campaign(
        self,
        id: CampaignId,
        status: CampaignStatus,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> Campaign {
        Campaign {
            id,
            name: self.name.trim().to_owned(),
            topic: self.topic,
            template_id: self.template_id,
            segment_id: self.segment_id,
            trigger: self.trigger,
            schedule: self.schedule,
            rate_limit_per_second: self.rate_limit_per_second,
            quiet_hours: self.quiet_hours,
            status,
            problem: None,
            created_at,
            updated_at,
        }
    }
}

fn manual() -> Trigger {
    Trigger::Manual
}

#[cfg(test)]
mod tests {
    use super::*;
    use CampaignCommand as C;
    use CampaignStatus as S;

    #[test]
    fn follows_the_lifecycle() {
        let running = S::Draft.apply(C::Launch).unwrap();
        assert_eq!(running, S::Running);
        let paused = running.apply(C::Pause).unwrap();
        assert_eq!(paused.apply(C::Resume), Ok(S::Running));
        assert_eq!(S::Draft.apply(C::Schedule), Ok(S::Scheduled));
        assert_eq!(S::Scheduled.apply(C::Launch), Ok(S::Running));
        assert_eq!(S::Running.apply(C::Complete), Ok(S::Completed));
    }

    #[test]
    fn only_scheduled_and_running_campaigns_send() {
        let sending: Vec<_> = S::ALL.into_iter().filter(|s| s.sends_messages()).collect();
        assert_eq!(sending, [S::Scheduled, S::Running]);
        // An event-triggered campaign sends whatever its events fan out while it listens.
        for status in S::ALL.into_iter().filter(|s| s.listens_for_events()) {
            assert!(status.sends_messages(), "{status:?}");
        }
    }

    #[test]
    fn event_campaigns_listen_while_scheduled_or_running() {
        let listening: Vec<_> = S::ALL
            .into_iter()
            .filter(|s| s.listens_for_events())
            .collect();
        assert_eq!(listening, [S::Scheduled, S::Running]);
        assert_eq!(S::Draft.command_to_listen(), Some(C::Launch));
        assert_eq!(S::Paused.command_to_listen(), Some(C::Resume));
        for status in [S::Scheduled, S::Running, S::Completed, S::Cancelled] {
            assert_eq!(status.command_to_listen(), None, "{status:?}");
        }
        for status in S::ALL {
            let text = serde_json::to_value(status).unwrap();
            assert_eq!(text, status.as_str());
        }
    }

    #[test]
    fn refuses_illegal_moves_and_terminal_states_stay() {
        assert!(S::Draft.apply(C::Resume).is_err());
        assert!(S::Running.apply(C::Launch).is_err());
        for command in [
            C::Launch,
            C::Pause,
            C::Resume,
            C::Complete,
            C::Cancel,
            C::Schedule,
        ] {
            assert!(S::Completed.apply(command).is_err());
            assert!(S::Cancelled.apply(command).is_err());
        }
        assert_eq!(S::Paused.apply(C::Cancel), Ok(S::Cancelled));
    }

    #[test]
    fn quiet_hours_may_wrap_midnight() {
        let quiet: QuietHours =
            serde_json::from_str(r#"{"start": "22:00", "end": "07:00"}"#).unwrap();
        let at = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        assert!(quiet.contains(at(23, 30)));
        assert!(quiet.contains(at(6, 59)));
        assert!(!quiet.contains(at(7, 0)));
        assert!(!quiet.contains(at(12, 0)));
        let day: QuietHours =
            serde_json::from_str(r#"{"start": "12:00", "end": "13:00"}"#).unwrap();
        assert!(day.contains(at(12, 30)));
        assert!(!day.contains(at(13, 0)));
    }

    #[test]
    fn trigger_shapes_match_the_spec() {
        let event: Trigger =
            serde_json::from_str(r#"{"type": "event", "event": "Dance Festival"}"#).unwrap();
        assert_eq!(
            event,
            Trigger::Event {
                event: "Dance Festival".into()
            }
        );
        let manual: Trigger = serde_json::from_str(r#"{"type": "manual"}"#).unwrap();
        assert_eq!(manual, Trigger::Manual);
    }
}
