//! Embedding the messaging engine in your own program.
//!
//! ```text
//! cargo run -p embedding                 # uses a temporary database
//! cargo run -p embedding -- my.db        # or a file of your choice
//! ```
//!
//! It imports the sample users and events, defines an audience and a template, and renders
//! the message each member of the audience would receive, all through `messaging_core::Engine`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use messaging_core::Engine;
use messaging_core::domain::{SegmentDraft, TemplateDraft};
use messaging_core::engine::PreviewInput;
use messaging_core::ingest::{IngestSource, UserFileFormat};
use messaging_core::segment::SegmentRule;
use messaging_core::store::PageRequest;
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples");
    let scratch = std::env::temp_dir().join(format!("embedding-{}.db", std::process::id()));
    let chosen = std::env::args().nth(1).map(PathBuf::from);
    let database = chosen.clone().unwrap_or_else(|| scratch.clone());
    let engine = Engine::open(&format!("sqlite://{}", database.display())).await?;

    let file = std::fs::File::open(samples.join("users.csv")).context("samples/users.csv")?;
    let report = engine
        .ingest_users(
            file,
            UserFileFormat::Csv,
            IngestSource::File("users.csv".into()),
        )
        .await?
        .report;
    println!(
        "users: {} read, {} inserted, {} updated, {} invalid",
        report.total, report.inserted, report.updated, report.invalid
    );
    let events =
        std::fs::File::open(samples.join("events.jsonl")).context("samples/events.jsonl")?;
    let report = engine
        .ingest_events(events, IngestSource::File("events.jsonl".into()))
        .await?
        .ingestion
        .report;
    println!(
        "events: {} recorded, {} duplicates",
        report.inserted, report.duplicates
    );

    let dancers = engine
        .create_segment(SegmentDraft {
            name: "Dancers in Sri Lanka".into(),
            rule: SegmentRule::parse(&json!({
                "all": [{"topic": "DANCE"}, {"field": "timezone", "op": "eq", "value": "Asia/Colombo"}]
            }))?,
        })
        .await?;
    let template = engine
        .create_template(TemplateDraft {
            name: "Festival invite".into(),
            content:
                "Hi {{ name | default(\"there\") }}! The Dance Festival is at {{ event.venue }}."
                    .into(),
            ..TemplateDraft::default()
        })
        .await?;

    let members = engine
        .segment_members(dancers.id, &PageRequest::first(10))
        .await?;
    println!("\n{} member(s) of {:?}:", members.items.len(), dancers.name);
    for user in members.items {
        let preview = engine
            .preview_template(
                template.id,
                PreviewInput {
                    user: Some(user.phone.clone()),
                    event: json!({"venue": "Galle Face Green"}).as_object().cloned(),
                    ..PreviewInput::default()
                },
            )
            .await?;
        println!("  {} <- {}", user.phone, preview.body);
    }
    if chosen.is_none() {
        drop(engine);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", scratch.display()));
        }
    }
    Ok(())
}
