//! Ingestions are kept and listed with their reports, and events say what they triggered:
//! the runs they opened, or that no campaign listens and which campaigns would.

mod common;

use common::{TestEngine, engine, open_sample};
use messaging_core::domain::{
    Campaign, CampaignCommand, CampaignDraft, TemplateDraft, TriggerEvent,
};
use messaging_core::ingest::{
    IngestSource, IngestionEnd, IngestionFormat, IngestionKind, UserFileFormat,
};
use messaging_core::store::PageRequest;
use serde_json::{Value, json};

async fn with_users() -> TestEngine {
    let t = engine().await;
    t.import_sample_users("users.csv").await;
    t
}

async fn event_campaign(t: &TestEngine, name: &str, extra: Value) -> Campaign {
    let template = t
        .engine
        .create_template(TemplateDraft {
            name: format!("{name} template"),
            content: "Hi {{ name }}".into(),
            ..TemplateDraft::default()
        })
        .await
        .unwrap();
    let mut draft = json!({"name": name, "template_id": template.id});
    draft
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let draft: CampaignDraft = serde_json::from_value(draft).unwrap();
    t.engine.create_campaign(draft).await.unwrap()
}

#[tokio::test]
async fn an_import_is_kept_with_its_source_counts_and_invalid_rows() {
    let t = engine().await;
    let answered = t
        .engine
        .ingest_users(
            open_sample("users.csv"),
            UserFileFormat::Csv,
            IngestSource::File("users.csv".into()),
        )
        .await
        .unwrap();
    t.import_sample_users("users.json").await;

    let listed = t
        .engine
        .list_ingestions(&PageRequest::first(1))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].source, IngestSource::Api, "newest first");
    let next = PageRequest {
        cursor: listed.next_cursor,
        ..PageRequest::first(10)
    };
    let older = t.engine.list_ingestions(&next).await.unwrap();
    assert_eq!(older.items.len(), 1);
    assert_eq!(older.next_cursor, None);
    let first = &older.items[0];
    assert_eq!(first.id, answered.id);
    assert_eq!(first.kind, IngestionKind::Users);
    assert_eq!(first.source, IngestSource::File("users.csv".into()));
    assert_eq!(first.format, IngestionFormat::Csv);
    assert_eq!(first.end, IngestionEnd::Completed);
    let r = &first.report;
    assert_eq!(
        [r.total, r.inserted, r.updated, r.duplicates, r.invalid],
        [16, 12, 0, 1, 3]
    );
    assert!(r.errors.is_empty(), "lists leave the invalid rows out");
    assert_eq!(first.errors_listed, answered.report.errors.len() as u64);
    assert!(first.errors_listed > 0);

    let whole = t.engine.get_ingestion(answered.id).await.unwrap();
    assert_eq!(whole.report, answered.report);
    assert!(
        whole
            .report
            .errors
            .iter()
            .any(|e| e.line == 15 && e.field == "phone")
    );
    assert!(whole.started_at <= whole.finished_at);
}

#[tokio::test]
async fn a_stopped_import_is_kept_with_its_partial_counts_and_why() {
    let t = engine().await;
    let broken = b"[{\"phone\": \"+94771234501\", \"name\": \"Ann\"}, {\"phone\": ".to_vec();
    let error = t
        .engine
        .ingest_users(
            std::io::Cursor::new(broken),
            UserFileFormat::Json,
            IngestSource::File("broken.json".into()),
        )
        .await
        .unwrap_err();
    let messaging_core::EngineError::Ingest(error) = error else {
        panic!("{error}");
    };
    let id = error
        .ingestion()
        .expect("the stopped import names its record");
    let kept = t.engine.get_ingestion(id).await.unwrap();
    assert_eq!(kept.source, IngestSource::File("broken.json".into()));
    assert_eq!(kept.report.inserted, 1, "{kept:#?}");
    let IngestionEnd::Stopped { reason } = &kept.end else {
        panic!("{kept:#?}");
    };
    assert!(reason.contains("line"), "{reason}");

    // An input that holds nothing is kept too.
    t.engine
        .ingest_users(
            std::io::Cursor::new(Vec::new()),
            UserFileFormat::Csv,
            IngestSource::Api,
        )
        .await
        .unwrap_err();
    let listed = t
        .engine
        .list_ingestions(&PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);
    assert!(matches!(listed.items[0].end, IngestionEnd::Stopped { .. }));
}

#[tokio::test]
async fn an_event_for_a_draft_campaign_names_it_and_after_launch_answers_its_run() {
    let t = with_users().await;
    let draft = event_campaign(
        &t,
        "Concert night",
        json!({"topic": "MUSIC", "trigger": {"type": "event", "event": "concert"}}),
    )
    .await;
    let event = |id: &str| {
        TriggerEvent::from_json(json!({"id": id, "name": "Concert"}), common::start_time()).unwrap()
    };

    let outcome = t.engine.record_event(event("e1")).await.unwrap();
    assert!(!outcome.duplicate);
    assert!(outcome.runs.is_empty());
    assert_eq!(outcome.idle_listeners.len(), 1);
    assert_eq!(outcome.idle_listeners[0].campaign.id, draft.id);
    assert_eq!(outcome.idle_listeners[0].command, CampaignCommand::Launch);
    let why = outcome.explanation().unwrap();
    assert!(why.contains("no campaign listens for `Concert`"), "{why}");
    assert!(
        why.contains("Concert night") && why.contains("launch"),
        "{why}"
    );

    t.engine.launch_campaign(draft.id).await.unwrap();
    let outcome = t.engine.record_event(event("e2")).await.unwrap();
    assert_eq!(outcome.runs.len(), 1, "{outcome:#?}");
    assert_eq!(outcome.runs[0].campaign.id, draft.id);
    assert_eq!(outcome.runs[0].campaign.name, "Concert night");
    // MUSIC subscribers in users.csv.
    assert!(outcome.runs[0].messages > 0, "{outcome:#?}");
    assert_eq!(outcome.explanation(), None);

    // The same id again triggers nothing, and says so.
    let again = t.engine.record_event(event("e2")).await.unwrap();
    assert!(again.duplicate && again.runs.is_empty());
    assert!(again.explanation().unwrap().contains("nothing again"));

    // Paused, it no longer listens: resuming is what it needs.
    t.engine
        .command_campaign(draft.id, CampaignCommand::Pause)
        .await
        .unwrap();
    let paused = t.engine.record_event(event("e3")).await.unwrap();
    assert!(paused.runs.is_empty());
    assert_eq!(paused.idle_listeners[0].command, CampaignCommand::Resume);
}

#[tokio::test]
async fn an_events_ingestion_answers_per_event_name() {
    let t = with_users().await;
    let dance = event_campaign(
        &t,
        "Dance",
        json!({"trigger": {"type": "event", "event": "dance festival"}, "status": "scheduled"}),
    )
    .await;
    let cart = event_campaign(
        &t,
        "Cart reminder",
        json!({"trigger": {"type": "event", "event": "cart_abandoned"}}),
    )
    .await;
    let answer = t
        .engine
        .ingest_events(
            open_sample("events.jsonl"),
            IngestSource::File("events.jsonl".into()),
        )
        .await
        .unwrap();
    let names: Vec<&str> = answer.by_name.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Dance Festival",
            "Colombo Weather Alert",
            "cart_abandoned",
            "Concert Presale",
            "order_shipped"
        ]
    );
    let festival = &answer.by_name[0];
    assert_eq!((festival.recorded, festival.duplicates), (1, 1));
    assert_eq!(festival.triggered.len(), 1);
    assert_eq!(festival.triggered[0].campaign.id, dance.id);
    assert_eq!(festival.triggered[0].runs, 1);
    assert!(festival.triggered[0].messages > 0);
    assert_eq!(festival.explanation(), None);

    let carts = &answer.by_name[2];
    assert_eq!(carts.recorded, 2);
    assert!(carts.triggered.is_empty());
    assert_eq!(carts.idle_listeners[0].campaign.id, cart.id);
    let why = carts.explanation().unwrap();
    assert!(
        why.contains("no campaign listens for `cart_abandoned`"),
        "{why}"
    );
    assert!(why.contains("Cart reminder"), "{why}");
    assert!(
        answer.by_name[3]
            .explanation()
            .unwrap()
            .contains("Concert Presale")
    );

    let kept = t.engine.get_ingestion(answer.ingestion.id).await.unwrap();
    assert_eq!(kept.kind, IngestionKind::Events);
    assert_eq!(kept.source, IngestSource::File("events.jsonl".into()));
    assert_eq!(kept.format, IngestionFormat::Jsonl);
    assert_eq!(kept.report.invalid, 1);
}
