//! Campaign definitions and lifecycle through the engine, on a real SQLite file.

mod common;

use common::{TestEngine, engine};
use messaging_core::EngineError;
use messaging_core::domain::{
    CampaignCommand, CampaignDraft, CampaignStatus, SegmentDraft, TemplateDraft, TemplateId,
    Trigger,
};
use messaging_core::segment::SegmentRule;
use messaging_core::store::{CampaignQuery, PageRequest};
use serde_json::json;

async fn template(t: &TestEngine) -> TemplateId {
    t.engine
        .create_template(TemplateDraft {
            name: "Hello".into(),
            content: "Hi {{ name | default(\"there\") }}".into(),
            ..TemplateDraft::default()
        })
        .await
        .unwrap()
        .id
}

fn draft(template_id: TemplateId) -> CampaignDraft {
    serde_json::from_value(json!({
        "name": "Festival",
        "template_id": template_id,
        "topic": "dance",
        "quiet_hours": {"start": "22:00", "end": "07:00"},
        "rate_limit_per_second": 10
    }))
    .unwrap()
}

#[tokio::test]
async fn campaigns_are_created_as_drafts_or_scheduled() {
    let t = engine().await;
    let template_id = template(&t).await;
    let campaign = t.engine.create_campaign(draft(template_id)).await.unwrap();
    assert_eq!(campaign.status, CampaignStatus::Draft);
    assert_eq!(campaign.topic.as_ref().unwrap().as_str(), "DANCE");
    assert_eq!(t.engine.get_campaign(campaign.id).await.unwrap(), campaign);

    let mut listening = draft(template_id);
    listening.trigger = Trigger::Event {
        event: "Dance Festival".into(),
    };
    listening.status = Some(CampaignStatus::Scheduled);
    let listening = t.engine.create_campaign(listening).await.unwrap();
    assert_eq!(listening.status, CampaignStatus::Scheduled);

    let mut running = draft(template_id);
    running.status = Some(CampaignStatus::Running);
    assert!(matches!(
        t.engine.create_campaign(running).await,
        Err(EngineError::Invalid(_))
    ));

    let scheduled = t
        .engine
        .list_campaigns(
            &CampaignQuery {
                status: Some(CampaignStatus::Scheduled),
                ..CampaignQuery::default()
            },
            &PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(scheduled.items, vec![listening]);
}

#[tokio::test]
async fn definitions_must_refer_to_things_that_exist() {
    let t = engine().await;
    let mut bad = draft(TemplateId::new());
    bad.name = " ".into();
    bad.segment_id = Some(messaging_core::domain::SegmentId::new());
    bad.rate_limit_per_second = Some(0);
    bad.schedule.start_at = Some(common::start_time());
    bad.schedule.end_at = Some(common::start_time());
    let Err(EngineError::Invalid(problems)) = t.engine.create_campaign(bad).await else {
        panic!("expected field problems")
    };
    let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "name",
            "template_id",
            "segment_id",
            "schedule.end_at",
            "rate_limit_per_second"
        ]
    );
}

#[tokio::test]
async fn the_lifecycle_allows_only_legal_moves() {
    let t = engine().await;
    let template_id = template(&t).await;
    let id = t
        .engine
        .create_campaign(draft(template_id))
        .await
        .unwrap()
        .id;
    let step = |command| t.engine.command_campaign(id, command);
    assert!(matches!(
        step(CampaignCommand::Resume).await,
        Err(EngineError::Conflict(_))
    ));
    assert_eq!(
        step(CampaignCommand::Launch).await.unwrap().status,
        CampaignStatus::Running
    );
    assert!(matches!(
        step(CampaignCommand::Launch).await,
        Err(EngineError::Conflict(_))
    ));
    assert_eq!(
        step(CampaignCommand::Pause).await.unwrap().status,
        CampaignStatus::Paused
    );
    assert_eq!(
        step(CampaignCommand::Resume).await.unwrap().status,
        CampaignStatus::Running
    );
    assert_eq!(
        step(CampaignCommand::Cancel).await.unwrap().status,
        CampaignStatus::Cancelled
    );
    assert!(matches!(
        step(CampaignCommand::Resume).await,
        Err(EngineError::Conflict(_))
    ));
    assert_eq!(
        t.engine.get_campaign(id).await.unwrap().status,
        CampaignStatus::Cancelled
    );
}

#[tokio::test]
async fn only_one_of_two_simultaneous_launches_wins() {
    let t = engine().await;
    let template_id = template(&t).await;
    for _ in 0..10 {
        let id = t
            .engine
            .create_campaign(draft(template_id))
            .await
            .unwrap()
            .id;
        let (a, b) = tokio::join!(
            t.engine.command_campaign(id, CampaignCommand::Launch),
            t.engine.command_campaign(id, CampaignCommand::Launch)
        );
        assert_eq!(u8::from(a.is_ok()) + u8::from(b.is_ok()), 1, "{a:?} {b:?}");
    }
}

#[tokio::test]
async fn running_campaigns_cannot_be_edited_or_deleted() {
    let t = engine().await;
    let template_id = template(&t).await;
    let segment = t
        .engine
        .create_segment(SegmentDraft {
            name: "Colombo".into(),
            rule: SegmentRule::parse(&json!({"attributes.city": "Colombo"})).unwrap(),
        })
        .await
        .unwrap();
    let id = t
        .engine
        .create_campaign(draft(template_id))
        .await
        .unwrap()
        .id;

    let mut edit = draft(template_id);
    edit.name = "Festival (Colombo)".into();
    edit.segment_id = Some(segment.id);
    let edited = t.engine.update_campaign(id, edit.clone()).await.unwrap();
    assert_eq!(
        t.engine.get_campaign(id).await.unwrap(),
        edited,
        "stored as answered"
    );
    assert_eq!(
        (edited.name.as_str(), edited.segment_id),
        ("Festival (Colombo)", Some(segment.id))
    );

    assert!(matches!(
        t.engine.delete_template(template_id).await,
        Err(EngineError::Conflict(_))
    ));
    assert!(matches!(
        t.engine.delete_segment(segment.id).await,
        Err(EngineError::Conflict(_))
    ));

    t.engine
        .command_campaign(id, CampaignCommand::Launch)
        .await
        .unwrap();
    assert!(matches!(
        t.engine.update_campaign(id, edit.clone()).await,
        Err(EngineError::Conflict(_))
    ));
    assert!(matches!(
        t.engine.delete_campaign(id).await,
        Err(EngineError::Conflict(_))
    ));

    t.engine
        .command_campaign(id, CampaignCommand::Pause)
        .await
        .unwrap();
    t.engine.update_campaign(id, edit).await.unwrap();
    t.engine.delete_campaign(id).await.unwrap();
    assert!(matches!(
        t.engine.get_campaign(id).await,
        Err(EngineError::NotFound { .. })
    ));
    t.engine.delete_segment(segment.id).await.unwrap();
    t.engine.delete_template(template_id).await.unwrap();
}
