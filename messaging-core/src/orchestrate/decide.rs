//! The decision for one claimed message: the policy steps of [`policy`] in order, the first
//! that does not pass deciding. Pure: everything it needs comes in as arguments, so every
//! path is tested with plain values.
//!
//! ```text
//! recipient ─► schedule ─► consent ─► whatsapp_window ─► frequency_cap ─► quiet_hours
//!           ─► conversation_limit ─► queued (as free text or approved template)
//! ```
//! Replies (messages outside any campaign) pass only the recipient, consent (not needed
//! while the user's own conversation is open), window and conversation-limit steps.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};

use super::policy::{self, Verdict, WHATSAPP_WINDOW};
use super::zones::recipient_zone;
use crate::domain::{AuditDecision, Campaign, MessageStatus, SendAs};
use crate::store::{Disposition, DueMessage};

/// Limits that hold across campaigns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// At most this many campaign messages per user per rolling 24 hours.
    pub frequency_cap: Option<u32>,
    /// At most this many business-initiated conversations (distinct users sent an approved
    /// template) per rolling 24 hours: Meta's messaging-limit tier of the sender.
    pub daily_conversation_limit: Option<u32>,
}

/// What the decisions of one round have released so far, on top of what the store counted
/// when the messages were claimed.
#[derive(Debug, Clone, Default)]
pub struct Round {
    released: HashMap<u64, u64>,
    conversations: u64,
    earliest_conversation: Option<DateTime<Utc>>,
    opened: HashSet<u64>,
}

impl Round {
    /// A round starting with `conversations` business-initiated conversations open in the
    /// last 24 hours, the earliest opened at `earliest`.
    pub fn new(conversations: u64, earliest: Option<DateTime<Utc>>) -> Self {
        Self {
            conversations,
            earliest_conversation: earliest,
            ..Self::default()
        }
    }
}

fn decision(
    step: &str,
    outcome: MessageStatus,
    reason: String,
    now: DateTime<Utc>,
) -> AuditDecision {
    AuditDecision {
        step: step.to_owned(),
        outcome,
        reason,
        at: now,
    }
}

/// Turns a step's verdict into the disposition, or `None` when it passes.
fn settle(step: &str, verdict: Verdict, now: DateTime<Utc>) -> Option<Disposition> {
    let audit = policy::decision(step, &verdict, now)?;
    Some(match verdict {
        Verdict::Pass => return None,
        Verdict::Skip(_) => Disposition::Skip(audit),
        Verdict::Defer { until, .. } => Disposition::Defer {
            until,
            decision: audit,
        },
    })
}

/// Decides what happens to `message` now. `campaign` is the message's campaign (`None` for a
/// reply). A message cleared for sending is counted in `round`.
pub fn decide(
    message: &DueMessage,
    campaign: Option<&Campaign>,
    limits: &Limits,
    round: &mut Round,
    now: DateTime<Utc>,
) -> Disposition {
    let Some(facts) = &message.recipient else {
        return Disposition::Skip(decision(
            "recipient",
            MessageStatus::Skipped,
            "the user no longer exists".into(),
            now,
        ));
    };
    let window_open = facts
        .last_inbound_at
        .is_some_and(|at| now - at < WHATSAPP_WINDOW);
    if let Some(campaign) = campaign
        && let Some(done) = settle("schedule", policy::schedule(&campaign.schedule, now), now)
    {
        return done;
    }
    if (campaign.is_some() || !window_open)
        && let Some(done) = settle("consent", policy::consent_state(facts.consent), now)
    {
        return done;
    }
    let sent_as =
        match policy::whatsapp_window(facts.last_inbound_at, message.content_sid.is_some(), now) {
            Ok(sent_as) => sent_as,
            Err(verdict) => {
                return settle("whatsapp_window", verdict, now).expect("a refusal is not a pass");
            }
        };
    let key = message.phone.as_u64();
    if let Some(campaign) = campaign {
        let released = facts.sent_last_24_hours + round.released.get(&key).copied().unwrap_or(0);
        if let Some(done) = settle(
            "frequency_cap",
            policy::frequency_cap(released, limits.frequency_cap),
            now,
        ) {
            return done;
        }
        let zone = recipient_zone(facts.timezone, &message.phone);
        if let Some(done) = settle(
            "quiet_hours",
            policy::quiet_hours(campaign.quiet_hours.as_ref(), zone, now),
            now,
        ) {
            return done;
        }
    }
    let opens_conversation = sent_as == SendAs::ApprovedTemplate
        && !facts.conversation_open
        && !round.opened.contains(&key);
    if opens_conversation && let Some(limit) = limits.daily_conversation_limit {
        if round.conversations >= u64::from(limit) {
            // A slot frees when the earliest conversation of the last 24 hours ages out.
            let until = round
                .earliest_conversation
                .map(|earliest| earliest + Duration::hours(24))
                .filter(|until| *until > now)
                .unwrap_or(now + Duration::hours(1));
            return Disposition::Defer {
                until,
                decision: decision(
                    "conversation_limit",
                    MessageStatus::Deferred,
                    format!(
                        "the sender's limit of {limit} business-initiated conversations per \
                         24 hours is reached; trying again at {}",
                        until.to_rfc3339()
                    ),
                    now,
                ),
            };
        }
        round.conversations += 1;
        round.earliest_conversation.get_or_insert(now);
    }
    if opens_conversation {
        round.opened.insert(key);
    }
    *round.released.entry(key).or_default() += 1;
    let reason = match sent_as {
        SendAs::FreeText => "free text: the user wrote within the last 24 hours".to_owned(),
        SendAs::ApprovedTemplate => format!(
            "approved template {}: no message from the user in the last 24 hours",
            message.content_sid.as_deref().unwrap_or_default()
        ),
    };
    Disposition::Queue {
        sent_as,
        decision: decision("whatsapp_window", MessageStatus::Queued, reason, now),
    }
}

#[cfg(test)]
mod tests;
