//! The demo: the sample files plus a template, a segment and three campaigns, so that a
//! first-time user sees the product work end to end on the sandbox provider — a manual
//! campaign sending to a segment, and event-triggered campaigns answering the sample events.
//! Loading it twice adds nothing: imports merge, events are unique by id, and the catalog is
//! created only when the demo campaign does not exist yet.

use std::fs::File;
use std::path::Path;

use serde::Serialize;
use serde_json::json;

use crate::domain::{CampaignDraft, CampaignStatus, SegmentDraft, TemplateDraft, Trigger};
use crate::ingest::{IngestReport, IngestSource, UserFileFormat};
use crate::segment::SegmentRule;
use crate::store::{CampaignQuery, PageRequest};

use super::{Engine, EngineError};

/// The name of the demo's manual campaign, by which a second load recognises the first.
pub const DEMO_CAMPAIGN: &str = "Demo: Colombo welcome";

/// A Content SID of the right shape for the demo's templates. It is no real approved
/// template: with real Twilio credentials, Twilio refuses it (21655).
const DEMO_CONTENT_SID: &str = "HX00000000000000000000000000000000";

/// The sample files the demo loads from its folder.
const SAMPLE_FILES: [&str; 3] = ["users.csv", "users.json", "events.jsonl"];

/// Checks that `samples` holds the demo's sample files (`users.csv`, `users.json`,
/// `events.jsonl`), so a front end can refuse before it creates a database or anything in
/// one. [`Engine::load_demo`] checks the same first.
pub fn check_demo_samples(samples: &Path) -> Result<(), EngineError> {
    let missing: Vec<String> = SAMPLE_FILES
        .iter()
        .map(|name| samples.join(name))
        .filter(|path| !path.is_file())
        .map(|path| path.display().to_string())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(EngineError::invalid(
        "samples",
        format!(
            "the demo's sample files are not there: {} (run the demo from the project folder, \
             or pass --samples DIR)",
            missing.join(", ")
        ),
    ))
}

/// What loading the demo did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DemoSummary {
    /// The reports of `users.csv`, `users.json` and `events.jsonl`, by file name.
    pub imports: Vec<(String, IngestReport)>,
    /// Whether the catalog (templates, segment, campaigns) was created now (false when it
    /// existed from an earlier load).
    pub created: bool,
    /// Messages the manual campaign's launch wrote into the outbox.
    pub launched_messages: u64,
}

impl Engine {
    /// Loads the demo from the sample files in `samples` (`users.csv`, `users.json`,
    /// `events.jsonl`) and launches its manual campaign (see the module docs).
    pub async fn load_demo(&self, samples: &Path) -> Result<DemoSummary, EngineError> {
        check_demo_samples(samples)?;
        let open = |name: &str| {
            File::open(samples.join(name)).map_err(|e| {
                EngineError::invalid(
                    "samples",
                    format!("cannot open {}: {e}", samples.join(name).display()),
                )
            })
        };
        let mut imports = Vec::new();
        for (name, format) in [
            ("users.csv", UserFileFormat::Csv),
            ("users.json", UserFileFormat::Json),
        ] {
            imports.push((
                name.to_owned(),
                self.ingest_users(open(name)?, format, IngestSource::File(name.to_owned()))
                    .await?
                    .report,
            ));
        }
        let existing = self
            .list_campaigns(
                &CampaignQuery {
                    q: Some(DEMO_CAMPAIGN.to_owned()),
                    status: None,
                },
                &PageRequest::first(10),
            )
            .await?;
        let created = existing.items.iter().all(|c| c.name != DEMO_CAMPAIGN);
        let mut launched_messages = 0;
        if created {
            // The event campaigns listen before the events arrive, so the sample events
            // trigger them.
            self.create_event_campaigns().await?;
            let campaign = self.create_welcome_campaign().await?;
            if let (_, Some(run)) = self.launch_campaign(campaign).await? {
                launched_messages = run.messages;
            }
        }
        imports.push((
            "events.jsonl".to_owned(),
            self.ingest_events(
                open("events.jsonl")?,
                IngestSource::File("events.jsonl".to_owned()),
            )
            .await?
            .ingestion
            .report,
        ));
        Ok(DemoSummary {
            imports,
            created,
            launched_messages,
        })
    }

    async fn create_welcome_campaign(&self) -> Result<crate::domain::CampaignId, EngineError> {
        let template = self
            .create_template(TemplateDraft {
                name: "Demo: welcome".into(),
                content: "Hi {{ name }}! Welcome to the {{ attributes.city }} community. \
                          Reply STOP to opt out."
                    .into(),
                channel: Default::default(),
                locale: Some("en".into()),
                content_sid: Some(DEMO_CONTENT_SID.into()),
                content_variables: Some([("1".to_owned(), "{{ name }}".to_owned())].into()),
            })
            .await?;
        let segment = self
            .create_segment(SegmentDraft {
                name: "Demo: Colombo".into(),
                rule: SegmentRule::parse(&json!({ "attributes.city": "Colombo" }))?,
            })
            .await?;
        let campaign = self
            .create_campaign(CampaignDraft {
                name: DEMO_CAMPAIGN.into(),
                topic: None,
                template_id: template.id,
                segment_id: Some(segment.id),
                trigger: Trigger::Manual,
                schedule: Default::default(),
                rate_limit_per_second: Some(5),
                quiet_hours: None,
                status: None,
            })
            .await?;
        Ok(campaign.id)
    }

    async fn create_event_campaigns(&self) -> Result<(), EngineError> {
        let events = [
            (
                "Demo: dance festival",
                "Dance Festival",
                "{{ event.venue }} on {{ event.date }}: tickets at {{ event.ticket_url }}",
            ),
            (
                "Demo: cart reminder",
                "cart_abandoned",
                "Hi {{ name }}, your {{ event.item }} is still in your cart: {{ event.discount }}% \
                 off today.",
            ),
        ];
        for (name, event, content) in events {
            let template = self
                .create_template(TemplateDraft {
                    name: name.into(),
                    content: content.into(),
                    channel: Default::default(),
                    locale: Some("en".into()),
                    content_sid: Some(DEMO_CONTENT_SID.into()),
                    content_variables: None,
                })
                .await?;
            self.create_campaign(CampaignDraft {
                name: name.into(),
                topic: None,
                template_id: template.id,
                segment_id: None,
                trigger: Trigger::Event {
                    event: event.into(),
                },
                schedule: Default::default(),
                rate_limit_per_second: None,
                quiet_hours: None,
                status: Some(CampaignStatus::Scheduled),
            })
            .await?;
        }
        Ok(())
    }
}
