//! PostgreSQL beside SQLite: ingestion, re-import, fan-out and a segment count.
//!
//! ```text
//! cargo bench -p messaging-core --bench postgres                       # 1,000,000 users
//! BENCH_USERS=200000 cargo bench -p messaging-core --bench postgres
//! ```
//!
//! Needs a PostgreSQL server: scratch databases are made on the one `TEST_DATABASE_URL` names
//! (the local server, user `postgres`, by default) and dropped afterwards. In one run it:
//! 1. generates a CSV of N users (the same rows as the `ingest` benchmark);
//! 2. loads the same rows, already in memory, into the engine's users table with a bare binary
//!    `COPY`: the ceiling;
//! 3. ingests the CSV through `Engine::ingest_users` into a fresh PostgreSQL database, then
//!    again (a re-import merges every row into the stored one: no duplicates), and into a
//!    SQLite file for comparison;
//! 4. launches a campaign to every opted-in user (the fan-out into the outbox) on both;
//! 5. counts a one-attribute segment on both.
//!
//! Figures are printed as rates and as ratios to the ceiling, since absolute numbers move
//! with the machine.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::pin_mut;
use messaging_core::Engine;
use messaging_core::ingest::{IngestSource, UserFileFormat};
use messaging_core::segment::SegmentRule;
use messaging_core::store::postgres::{PgStore, ScratchDatabase};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use users::{row, write_csv};

#[path = "common/users.rs"]
mod users;

/// The ceiling: the rows, built in memory, in one binary `COPY` into the users table the
/// engine made (its indexes included).
async fn ceiling(n: u64) -> Duration {
    let database = ScratchDatabase::create().await.unwrap();
    drop(PgStore::connect(database.url()).await.unwrap());
    let (client, connection) = tokio_postgres::connect(database.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let rows: Vec<_> = (0..n).map(|i| row(i, n)).collect();
    let attributes: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| serde_json::from_str(&r.attributes).unwrap())
        .collect();
    let now = Utc::now();
    let start = Instant::now();
    let sink = client
        .copy_in(
            "COPY users (phone, name, consent_state, attributes, timezone, created_at, \
             updated_at) FROM STDIN (FORMAT binary)",
        )
        .await
        .unwrap();
    let writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::JSONB,
            Type::TEXT,
            Type::TIMESTAMPTZ,
            Type::TIMESTAMPTZ,
        ],
    );
    pin_mut!(writer);
    for (r, attributes) in rows.iter().zip(&attributes) {
        let consent = if r.consent == "STARTED" {
            "OPT_IN"
        } else {
            "OPT_OUT"
        };
        writer
            .as_mut()
            .write(&[
                &r.phone,
                &r.name,
                &consent,
                attributes,
                &r.timezone,
                &now,
                &now,
            ])
            .await
            .unwrap();
    }
    writer.finish().await.unwrap();
    start.elapsed()
}

async fn ingest(engine: &Engine, csv: &Path) -> (Duration, u64, u64) {
    let start = Instant::now();
    let report = engine
        .ingest_users(
            std::fs::File::open(csv).unwrap(),
            UserFileFormat::Csv,
            IngestSource::Api,
        )
        .await
        .unwrap()
        .report;
    assert_eq!(report.invalid, 0);
    (start.elapsed(), report.inserted, report.updated)
}

/// Fans a campaign to every opted-in user out into the outbox: read, render, write.
async fn fan_out(engine: &Engine) -> (Duration, u64) {
    let template = engine
        .create_template(messaging_core::domain::TemplateDraft {
            name: "bench".into(),
            content: "Hi {{ name }}, news from {{ attributes.city }}!".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let draft: messaging_core::domain::CampaignDraft =
        serde_json::from_value(serde_json::json!({"name": "bench", "template_id": template.id}))
            .unwrap();
    let campaign = engine.create_campaign(draft).await.unwrap();
    let start = Instant::now();
    let (_, summary) = engine.launch_campaign(campaign.id).await.unwrap();
    (start.elapsed(), summary.unwrap().messages)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn segment(engine: &Engine) -> (Duration, u64) {
    let rule = SegmentRule::parse(&serde_json::json!({"attributes.city": "Colombo"})).unwrap();
    let mut samples = Vec::new();
    let mut count = 0;
    for _ in 0..5 {
        let start = Instant::now();
        count = engine.count_audience(&rule).await.unwrap();
        samples.push(start.elapsed());
    }
    (median(samples), count)
}

fn rate(n: u64, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

fn main() {
    let n: u64 = std::env::var("BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if std::env::args().any(|a| a == "--bench") {
            1_000_000
        } else {
            20_000
        });
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("users.csv");
    write_csv(&csv, n);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let ceiling = ceiling(n).await;
        let ceiling_rate = rate(n, ceiling);
        println!(
            "postgres ceiling  bare binary COPY, rows in memory: {:>7.2} s  {ceiling_rate:>9.0} rows/s",
            ceiling.as_secs_f64()
        );

        let database = ScratchDatabase::create().await.unwrap();
        let pg = Engine::open(database.url()).await.unwrap();
        let (took, inserted, _) = ingest(&pg, &csv).await;
        assert_eq!(inserted, n, "every generated row is inserted");
        println!(
            "postgres ingest   CSV -> parse -> validate -> upsert: {:>7.2} s  {:>9.0} rows/s  ({:.0}% of the ceiling)",
            took.as_secs_f64(),
            rate(n, took),
            100.0 * rate(n, took) / ceiling_rate
        );
        let (took, inserted, updated) = ingest(&pg, &csv).await;
        assert_eq!((inserted, updated), (0, n), "a re-import merges, never duplicates");
        assert_eq!(pg.count_users().await.unwrap(), n);
        println!(
            "postgres re-import the same file (every row merged): {:>7.2} s  {:>9.0} rows/s  ({:.0}% of the ceiling)",
            took.as_secs_f64(),
            rate(n, took),
            100.0 * rate(n, took) / ceiling_rate
        );

        let sqlite = Engine::open(&format!("sqlite://{}", dir.path().join("bench.db").display()))
            .await
            .unwrap();
        let (took, inserted, _) = ingest(&sqlite, &csv).await;
        assert_eq!(inserted, n);
        println!(
            "sqlite   ingest   CSV -> parse -> validate -> upsert: {:>7.2} s  {:>9.0} rows/s  ({:.0}% of the PostgreSQL ceiling)",
            took.as_secs_f64(),
            rate(n, took),
            100.0 * rate(n, took) / ceiling_rate
        );

        for (name, engine) in [("postgres", &pg), ("sqlite  ", &sqlite)] {
            let (took, messages) = fan_out(engine).await;
            println!(
                "{name} fan-out  launch to all opted-in users ({messages} messages): {:>7.2} s  {:>9.0} msgs/s",
                took.as_secs_f64(),
                rate(messages, took)
            );
        }
        for (name, engine) in [("postgres", &pg), ("sqlite  ", &sqlite)] {
            let (took, count) = segment(engine).await;
            println!(
                "{name} segment  count attributes.city = Colombo ({count} users): {:>7.1} ms",
                took.as_secs_f64() * 1e3
            );
        }
        drop(pg);
        drop(database);
    });
}
