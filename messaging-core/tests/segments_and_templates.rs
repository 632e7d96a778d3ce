//! Segments and templates through the engine, over the sample data in a real SQLite file.

mod common;

use common::{TestEngine, engine, open_sample};
use messaging_core::EngineError;
use messaging_core::domain::{SegmentDraft, TemplateDraft};
use messaging_core::engine::PreviewInput;
use messaging_core::ingest::IngestSource;
use messaging_core::segment::SegmentRule;
use messaging_core::store::PageRequest;
use serde_json::{Value, json};

async fn with_samples() -> TestEngine {
    let t = engine().await;
    t.import_sample_users("users.csv").await;
    t.import_sample_users("users.json").await;
    t.engine
        .ingest_events(open_sample("events.jsonl"), IngestSource::Api)
        .await
        .unwrap();
    t
}

async fn members(t: &TestEngine, rule: Value) -> Vec<String> {
    let rule = SegmentRule::parse(&rule).unwrap();
    let preview = t.engine.preview_segment(&rule, 100).await.unwrap();
    let phones: Vec<String> = preview.sample.iter().map(|u| u.phone.to_string()).collect();
    assert_eq!(preview.count as usize, phones.len());
    assert_eq!(t.engine.count_audience(&rule).await.unwrap(), preview.count);
    phones
}

#[tokio::test]
async fn segments_select_exactly_the_expected_users() {
    let t = with_samples().await;
    assert_eq!(
        members(&t, json!({"topic": "dance"})).await,
        [
            "+447700900105",
            "+5511912345108",
            "+919876543106",
            "+94771234501",
            "+94771234503",
            "+94771234510",
            "+94771234516"
        ]
    );
    assert_eq!(
        members(&t, json!({"attributes.city": "Colombo"})).await,
        [
            "+94771234501",
            "+94771234502",
            "+94771234503",
            "+94771234511",
            "+94771234516"
        ]
    );
    assert_eq!(
        members(
            &t,
            json!({"attributes.city": "Colombo", "consent_state": "STARTED"})
        )
        .await,
        [
            "+94771234501",
            "+94771234502",
            "+94771234511",
            "+94771234516"
        ]
    );
    // The prototype's event rule from the sample file.
    assert_eq!(
        members(
            &t,
            json!({"all": [{"topic": "MUSIC"}, {"attribute": "age", "op": "lt", "value": 40}]})
        )
        .await,
        ["+919876543106", "+94771234501"]
    );
    assert_eq!(
        members(
            &t,
            json!({"event": "Cart_Abandoned", "min_count": 2, "within_days": 7})
        )
        .await,
        ["+94771234501"]
    );
    assert_eq!(
        members(&t, json!({"not": {"consent": "OPT_OUT"}}))
            .await
            .len(),
        13
    );
    assert_eq!(
        members(
            &t,
            json!({"all": [
                {"attribute": "plan", "op": "in", "value": ["gold", "silver"]},
                {"attributes.age": {"gte": 35}}
            ]})
        )
        .await,
        [
            "+14155550104",
            "+4915112345107",
            "+61412345109",
            "+8613812345112",
            "+94771234502",
            "+94771234503"
        ]
    );
    assert_eq!(
        members(&t, json!({"attribute": "vip", "op": "exists"})).await,
        ["+14155550118"]
    );
    assert_eq!(members(&t, json!({})).await.len(), 16);
}

#[tokio::test]
async fn event_history_windows_follow_the_clock() {
    let t = with_samples().await;
    let rule = json!({"event": "cart_abandoned", "min_count": 1, "within_days": 3});
    assert_eq!(members(&t, rule.clone()).await, ["+94771234501"]);
    t.clock.advance(chrono::Duration::days(4));
    assert!(members(&t, rule).await.is_empty());
}

#[tokio::test]
async fn stored_segments_page_through_their_members() {
    let t = with_samples().await;
    let segment = t
        .engine
        .create_segment(SegmentDraft {
            name: "Dancers".into(),
            rule: SegmentRule::parse(&json!({"topic": "DANCE"})).unwrap(),
        })
        .await
        .unwrap();
    let mut page = PageRequest::first(3);
    let mut seen = Vec::new();
    loop {
        let members = t.engine.segment_members(segment.id, &page).await.unwrap();
        assert!(members.items.len() <= 3);
        seen.extend(members.items.into_iter().map(|u| u.phone.to_string()));
        match members.next_cursor {
            Some(cursor) => page.cursor = Some(cursor),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "pages neither repeat nor skip anyone");

    // The stored rule reads back as it was written.
    let stored = t.engine.get_segment(segment.id).await.unwrap();
    assert_eq!(stored.rule.as_json(), &json!({"topic": "DANCE"}));
    t.engine.delete_segment(segment.id).await.unwrap();
    assert!(matches!(
        t.engine.get_segment(segment.id).await,
        Err(EngineError::NotFound { .. })
    ));
}

#[tokio::test]
async fn bad_segment_rules_point_at_the_offending_node() {
    let error = SegmentRule::parse(
        &json!({"all": [{"topic": "DANCE"}, {"attribute": "age", "op": "bigger", "value": 3}]}),
    )
    .unwrap_err();
    assert_eq!(error.path, "/all/1/op");
}

#[tokio::test]
async fn templates_are_checked_at_save_time_and_render_for_users() {
    let t = with_samples().await;
    let error = t
        .engine
        .create_template(TemplateDraft {
            name: "broken".into(),
            content: "Hi {{ name }\nsee you".into(),
            ..TemplateDraft::default()
        })
        .await
        .unwrap_err();
    let EngineError::Template(error) = error else {
        panic!("expected a template error, got {error:?}")
    };
    assert_eq!((error.field.as_str(), error.line), ("content", 1));

    let template = t
        .engine
        .create_template(TemplateDraft {
            name: "Festival".into(),
            content:
                "Hi {{ name | default(\"there\") }}! {{ event.venue }} in {{ attributes.city }}."
                    .into(),
            ..TemplateDraft::default()
        })
        .await
        .unwrap();
    assert_eq!(
        template.placeholders,
        ["attributes.city", "event.venue", "name"]
    );

    let preview = t
        .engine
        .preview_template(
            template.id,
            PreviewInput {
                user: Some("+94771234501".parse().unwrap()),
                event: Some(json!({"venue": "Galle Face"}).as_object().unwrap().clone()),
                ..PreviewInput::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(preview.body, "Hi Amaya Perera! Galle Face in Colombo.");

    let missing = t
        .engine
        .preview_template(template.id, PreviewInput::default())
        .await
        .unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("missing placeholder event.venue"),
        "{missing}"
    );

    let listed = t
        .engine
        .list_templates(Some("festival"), &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
}

#[tokio::test]
async fn a_content_sid_twilio_would_refuse_is_refused_when_saved() {
    let t = engine().await;
    let draft = |sid: &str| -> TemplateDraft {
        serde_json::from_value(json!({ "name": "offer", "content": "Hi", "content_sid": sid }))
            .unwrap()
    };
    for bad in [
        "HX123",
        "MG0123456789abcdef0123456789abcdef",
        "HX0123456789abcdef0123456789abcdeg",
    ] {
        match t.engine.create_template(draft(bad)).await {
            Err(EngineError::Invalid(fields)) => {
                assert_eq!(fields[0].field, "content_sid");
                assert!(fields[0].reason.contains("HX and 32 hexadecimal digits"));
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    let good = t
        .engine
        .create_template(draft("HX0123456789abcdef0123456789ABCDEF"))
        .await
        .unwrap();
    assert!(good.content_sid.is_some());
    let blank = t.engine.create_template(draft("  ")).await.unwrap();
    assert_eq!(blank.content_sid, None);
}
