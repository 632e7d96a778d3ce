//! Statistics through the engine, over the sample data.

mod common;

use std::collections::BTreeMap;

use common::{engine, open_sample};
use messaging_core::domain::{CampaignDraft, MessageStatus, TemplateDraft};
use messaging_core::ingest::{IngestSource, UserFileFormat};
use serde_json::json;

#[tokio::test]
async fn stats_count_per_campaign_and_in_total() {
    let t = engine().await;
    for (file, format) in [
        ("users.csv", UserFileFormat::Csv),
        ("users.json", UserFileFormat::Json),
    ] {
        t.engine
            .ingest_users(open_sample(file), format, IngestSource::Api)
            .await
            .unwrap();
    }
    let template = t
        .engine
        .create_template(TemplateDraft {
            name: "t".into(),
            content: "Hi {{ name }} ({{ attributes.plan }})".into(),
            ..TemplateDraft::default()
        })
        .await
        .unwrap();
    let draft: CampaignDraft =
        serde_json::from_value(json!({"name": "c", "template_id": template.id, "topic": "DANCE"}))
            .unwrap();
    let campaign = t.engine.create_campaign(draft).await.unwrap();
    t.engine.launch_campaign(campaign.id).await.unwrap();

    let stats = t.engine.stats(Some(campaign.id)).await.unwrap();
    assert_eq!(stats.messages, 7);
    assert_eq!(stats.by_status[&MessageStatus::Pending], 5);
    assert_eq!(stats.by_status[&MessageStatus::Skipped], 2);
    assert_eq!(
        stats.by_status[&MessageStatus::Delivered],
        0,
        "every status is listed"
    );
    assert_eq!(stats.delivery_percent, None);
    assert_eq!(
        stats.opted_out_users, None,
        "opt-outs are a total, not per campaign"
    );

    let inbound: BTreeMap<String, String> = [
        ("MessageSid", "SM1"),
        ("From", "whatsapp:+94771234501"),
        ("Body", "STOP"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    t.engine.receive_inbound(inbound).await.unwrap();
    let total = t.engine.stats(None).await.unwrap();
    assert_eq!(total.messages, 7);
    assert_eq!(total.opted_out_users, Some(4));
    assert_eq!(
        (total.inbound_messages, total.inbound_commands),
        (Some(1), Some(1))
    );
    let text = serde_json::to_value(&total).unwrap();
    assert_eq!(text["by_status"]["pending"], 5);
}
