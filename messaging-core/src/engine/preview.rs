//! Campaign previews: whom a campaign would reach and what they would get, without writing
//! anything to the outbox or sending anything. Operators look before they launch.
//!
//! The preview takes the decisions that depend only on the recipient (consent, rendering,
//! the WhatsApp 24-hour window as of now); those that depend on the moment of sending (quiet
//! hours, frequency cap, rates) are the dispatcher's and are not forecast.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::domain::{CampaignId, PhoneNumber, SendAs, Trigger, TriggerEvent, User};
use crate::orchestrate::policy;
use crate::segment::SegmentRule;
use crate::store::PageRequest;
use crate::template::CompiledTemplate;

use super::fanout::prepare_message;
use super::{Engine, EngineError};

/// Events read per page while looking for the latest one an event-triggered campaign
/// listens for.
const EVENT_PAGE: u32 = 200;

/// At most this many recent events are looked through for a matching one; an older match is
/// not worth a scan of the whole history for a preview.
const EVENT_SCAN_LIMIT: u32 = 1_000;

/// What a campaign would send, as of now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignPreview {
    /// How many users a run would write a message for: the subscribers of its topic
    /// narrowed by its segment, or every opted-in user when it has neither. For an
    /// event-triggered campaign this is the standing audience, before an event's own
    /// `segment_rule` or `user` narrows it.
    pub recipients: u64,
    /// Of the recipients, how many have opted in (the others would be skipped).
    pub opted_in: u64,
    /// For an event-triggered campaign, the latest recorded event it listens for (among
    /// recent ones): the sample is rendered with its data. `None` for a manual campaign, or
    /// when no such event was recorded.
    pub event: Option<TriggerEvent>,
    /// The first recipients (by phone) and their messages.
    pub sample: Vec<RecipientPreview>,
}

/// One recipient's message in a preview.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecipientPreview {
    /// The recipient.
    pub user: PhoneNumber,
    /// The message as rendered for them; `None` when it cannot be rendered.
    pub body: Option<String>,
    /// The approved template's variables, rendered, when the template has them.
    pub content_variables: Option<BTreeMap<String, String>>,
    /// How it would go now: free text within the 24-hour window, the approved template
    /// outside it; `None` when it would be skipped.
    pub send_as: Option<SendAs>,
    /// Why it would be skipped (opted out, a missing placeholder, outside the window with no
    /// approved template); `None` when it would be sent.
    pub skip_reason: Option<String>,
}

impl Engine {
    /// Previews a campaign: how many recipients it has and the messages the first
    /// `sample_size` of them would get, without writing or sending anything.
    pub async fn preview_campaign(
        &self,
        id: CampaignId,
        sample_size: u32,
    ) -> Result<CampaignPreview, EngineError> {
        let campaign = self.get_campaign(id).await?;
        let template = self.get_template(campaign.template_id).await?;
        let compiled = CompiledTemplate::new(&template)?;
        // Before any event narrows them: the users a launch would write messages for.
        let rule = self.recipients_rule(&campaign, None).await?;
        let event = match &campaign.trigger {
            Trigger::Manual => None,
            Trigger::Event { event } => self.latest_event(event).await?,
        };
        let now = self.clock.now();
        let recipients = self.store.count_audience(&rule, now).await?;
        let opted_in_rule = SegmentRule::parse(&json!({ "consent": "OPT_IN" }))?;
        let opted_in = self
            .store
            .count_audience(&rule.and(&opted_in_rule), now)
            .await?;
        let users = self
            .store
            .audience(&rule, now, &PageRequest::first(sample_size))
            .await?
            .items;
        // The data a run of this event would render with; none for a launch, as in the fan-out.
        let event_data = Arc::new(event.as_ref().map(|e| e.data.clone()).unwrap_or_default());
        let has_approved_template = template.content_sid.is_some();
        let sample = users
            .into_iter()
            .map(|user| preview_for(user, &compiled, &event_data, has_approved_template, now))
            .collect();
        Ok(CampaignPreview {
            recipients,
            opted_in,
            event,
            sample,
        })
    }

    /// The newest recorded event named `trigger_name`, among the latest
    /// [`EVENT_SCAN_LIMIT`] events.
    async fn latest_event(&self, trigger_name: &str) -> Result<Option<TriggerEvent>, EngineError> {
        let mut page = PageRequest::first(EVENT_PAGE);
        let mut scanned = 0;
        while scanned < EVENT_SCAN_LIMIT {
            let events = self.store.list_events(&page).await?;
            scanned += EVENT_PAGE;
            if let Some(found) = events.items.into_iter().find(|e| e.matches(trigger_name)) {
                return Ok(Some(found));
            }
            match events.next_cursor {
                Some(cursor) => page.cursor = Some(cursor),
                None => break,
            }
        }
        Ok(None)
    }
}

/// One recipient's message, prepared as the fan-out prepares it, and how the dispatcher's
/// WhatsApp window step would take it now.
fn preview_for(
    user: User,
    template: &CompiledTemplate,
    event: &Arc<Map<String, Value>>,
    has_approved_template: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> RecipientPreview {
    let (phone, last_inbound_at) = (user.phone.clone(), user.last_inbound_at);
    let prepared = prepare_message(user, template, event, now);
    let (send_as, skip_reason) = match prepared.decision {
        Some(decision) => (None, Some(decision.reason)),
        None => match policy::whatsapp_window(last_inbound_at, has_approved_template, now) {
            Ok(send_as) => (Some(send_as), None),
            Err(verdict) => (
                None,
                policy::decision("whatsapp_window", &verdict, now).map(|d| d.reason),
            ),
        },
    };
    RecipientPreview {
        user: phone,
        body: prepared.body,
        content_variables: prepared.content_variables,
        send_as,
        skip_reason,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};

    use super::*;
    use crate::domain::{Consent, PhoneNumber};

    fn user(consent: Consent, last_inbound_at: Option<chrono::DateTime<Utc>>) -> User {
        User {
            phone: PhoneNumber::parse("+94771234501").unwrap(),
            name: Some("Amaya".into()),
            wa_id: None,
            consent_state: consent,
            attributes: Map::new(),
            timezone: None,
            locale: None,
            topics: Vec::new(),
            last_inbound_at,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn preview(template: &str, user: &User, approved: bool) -> RecipientPreview {
        let compiled = CompiledTemplate::from_parts(template, None).unwrap();
        preview_for(
            user.clone(),
            &compiled,
            &Arc::default(),
            approved,
            Utc::now(),
        )
    }

    #[test]
    fn the_window_decides_how_a_rendered_message_would_go() {
        let recent = user(Consent::OptIn, Some(Utc::now() - Duration::hours(1)));
        let open = preview("Hi {{ name }}", &recent, false);
        assert_eq!(open.body.as_deref(), Some("Hi Amaya"));
        assert_eq!(
            (open.send_as, open.skip_reason),
            (Some(SendAs::FreeText), None)
        );
        let silent = user(Consent::OptIn, None);
        let approved = preview("Hi {{ name }}", &silent, true);
        assert_eq!(approved.send_as, Some(SendAs::ApprovedTemplate));
        let closed = preview("Hi {{ name }}", &silent, false);
        assert_eq!(closed.send_as, None);
        assert!(closed.skip_reason.unwrap().contains("24-hour window"));
    }

    #[test]
    fn a_message_that_cannot_render_or_an_opted_out_user_is_skipped_with_the_reason() {
        let missing = preview("{{ event.venue }}", &user(Consent::OptIn, None), true);
        assert_eq!(missing.body, None);
        assert!(missing.skip_reason.unwrap().contains("event.venue"));
        let opted_out = preview("Hi", &user(Consent::OptOut, None), true);
        assert_eq!(opted_out.body.as_deref(), Some("Hi"));
        assert_eq!(opted_out.send_as, None);
        assert!(opted_out.skip_reason.unwrap().contains("opted out"));
    }
}
