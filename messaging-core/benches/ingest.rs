//! Ingestion and segment benchmark.
//!
//! ```text
//! cargo bench -p messaging-core --bench ingest            # 1,000,000 users
//! BENCH_USERS=200000 cargo bench -p messaging-core --bench ingest
//! ```
//!
//! In one run it:
//! 1. generates a CSV of N users (phone, name, consent, JSON attributes, time zone, city),
//!    with phones in scrambled order as real exports have them;
//! 2. inserts the same rows, already in memory, into a fresh database of the same schema with
//!    a bare rusqlite prepared INSERT with the engine's batching: the ceiling;
//! 3. ingests the CSV through `Engine::ingest_users` into another fresh database, in a child
//!    process so that its peak RSS (VmHWM) is its own;
//! 4. launches a campaign to every opted-in user of the result (fan-out into the outbox);
//! 5. counts a one-attribute segment over the result, beside a bare `COUNT(*)` scan.
//!
//! Figures are printed as rates and as ratios to the ceiling, since absolute numbers move
//! with the machine.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use messaging_core::Engine;
use messaging_core::ingest::{IngestSource, UserFileFormat};
use messaging_core::segment::SegmentRule;
use messaging_core::store::sqlite::SqliteStore;
use users::{Row, row, write_csv};

#[path = "common/users.rs"]
mod users;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The child: ingest the CSV into a fresh database and report time and peak memory.
fn child(csv: &Path, db: &Path) {
    messaging_core::memory::tune_allocator();
    let rt = runtime();
    let (elapsed, report) = rt.block_on(async {
        let engine = Engine::open(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let file = std::fs::File::open(csv).unwrap();
        let start = Instant::now();
        let report = engine
            .ingest_users(file, UserFileFormat::Csv, IngestSource::Api)
            .await
            .unwrap()
            .report;
        (start.elapsed(), report)
    });
    println!(
        "{} {} {} {}",
        elapsed.as_secs_f64(),
        report.inserted,
        report.invalid,
        peak_rss_kib()
    );
}

/// The ceiling: the same rows, pre-built in memory, through a bare prepared INSERT, with the
/// same batching the engine uses (50,000 rows a transaction, written in phone order) and the
/// same pragmas.
fn ceiling(db: &Path, n: u64) -> Duration {
    let rt = runtime();
    // Let the store create the same schema, then write to it with rusqlite alone.
    rt.block_on(async { drop(SqliteStore::open(db).await.unwrap()) });
    let rows: Vec<Row> = (0..n).map(|i| row(i, n)).collect();
    let mut conn = rusqlite::Connection::open(db).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.pragma_update(None, "cache_size", -16_000).unwrap();
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)
        .unwrap();
    let start = Instant::now();
    for chunk in rows.chunks(50_000) {
        let mut sorted: Vec<&Row> = chunk.iter().collect();
        sorted.sort_by(|a, b| a.phone.cmp(&b.phone));
        let tx = conn.transaction().unwrap();
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO users (phone, name, wa_id, consent_state, attributes, timezone,
                                        locale, created_at, updated_at, revision)
                     VALUES (?, ?, NULL, ?, jsonb(?), ?, NULL, ?, ?, 0)",
                )
                .unwrap();
            for r in sorted {
                let consent = if r.consent == "STARTED" {
                    "OPT_IN"
                } else {
                    "OPT_OUT"
                };
                insert
                    .execute(rusqlite::params![
                        r.phone,
                        r.name,
                        consent,
                        r.attributes,
                        r.timezone,
                        0i64,
                        0i64
                    ])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    start.elapsed()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn segment_timings(db: &Path) -> (Duration, Duration, u64) {
    let rt = runtime();
    rt.block_on(async {
        let store = SqliteStore::open(db).await.unwrap();
        let engine = Engine::new(
            std::sync::Arc::new(store),
            std::sync::Arc::new(messaging_core::SystemClock),
        );
        let rule = SegmentRule::parse(&serde_json::json!({"attributes.city": "Colombo"})).unwrap();
        let everyone = SegmentRule::everyone();
        let mut with_rule = Vec::new();
        let mut scan = Vec::new();
        let mut count = 0;
        for _ in 0..5 {
            let start = Instant::now();
            count = engine.count_audience(&rule).await.unwrap();
            with_rule.push(start.elapsed());
            let start = Instant::now();
            engine.count_audience(&everyone).await.unwrap();
            scan.push(start.elapsed());
        }
        (median(with_rule), median(scan), count)
    })
}

/// Fans a campaign to every opted-in user out into the outbox: read, render, write.
fn fan_out_timing(db: &Path) -> (Duration, u64) {
    let rt = runtime();
    rt.block_on(async {
        let engine = Engine::open(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let template = engine
            .create_template(messaging_core::domain::TemplateDraft {
                name: "bench".into(),
                content: "Hi {{ name }}, news from {{ attributes.city }}!".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let draft: messaging_core::domain::CampaignDraft = serde_json::from_value(
            serde_json::json!({"name": "bench", "template_id": template.id}),
        )
        .unwrap();
        let campaign = engine.create_campaign(draft).await.unwrap();
        let start = Instant::now();
        let (_, summary) = engine.launch_campaign(campaign.id).await.unwrap();
        (start.elapsed(), summary.unwrap().messages)
    })
}

fn main() {
    if let (Ok(csv), Ok(db)) = (
        std::env::var("BENCH_CHILD_CSV"),
        std::env::var("BENCH_CHILD_DB"),
    ) {
        return child(Path::new(&csv), Path::new(&db));
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing else. Either way a
    // smaller N keeps test runs of the benches short.
    let n: u64 = std::env::var("BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if std::env::args().any(|a| a == "--bench") {
            1_000_000
        } else {
            20_000
        });
    let dir = tempfile::tempdir().unwrap();
    let csv: PathBuf = dir.path().join("users.csv");

    let start = Instant::now();
    write_csv(&csv, n);
    let size = std::fs::metadata(&csv).unwrap().len();
    println!(
        "generated {n} users, {:.1} MB of CSV, in {:.2} s",
        size as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );

    let ceiling_time = ceiling(&dir.path().join("ceiling.db"), n);
    let ceiling_rate = n as f64 / ceiling_time.as_secs_f64();
    println!(
        "ceiling   bare rusqlite INSERT, rows in memory: {:>8.2} s  {:>10.0} rows/s",
        ceiling_time.as_secs_f64(),
        ceiling_rate
    );

    let db = dir.path().join("engine.db");
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .env("BENCH_CHILD_CSV", &csv)
        .env("BENCH_CHILD_DB", &db)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let fields: Vec<f64> = text
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    let (seconds, inserted, invalid, rss_kib) = (fields[0], fields[1], fields[2], fields[3]);
    assert_eq!(inserted as u64, n, "every generated row must be inserted");
    assert_eq!(invalid as u64, 0);
    let rate = n as f64 / seconds;
    println!(
        "engine    CSV file -> parse -> validate -> upsert: {seconds:>8.2} s  {rate:>10.0} rows/s  \
         ({:.0}% of ceiling)  peak RSS {:.1} MB",
        100.0 * rate / ceiling_rate,
        rss_kib / 1024.0
    );

    let (fan_out, messages) = fan_out_timing(&db);
    let fan_out_rate = messages as f64 / fan_out.as_secs_f64();
    println!(
        "fan-out   launch to all opted-in users ({messages} messages): {:>7.2} s  {:>10.0} msgs/s  \
         ({:.0}% of the ceiling's insert rate)",
        fan_out.as_secs_f64(),
        fan_out_rate,
        100.0 * fan_out_rate / ceiling_rate
    );

    let (segment, scan, count) = segment_timings(&db);
    println!(
        "segment   count attributes.city = Colombo ({count} users): {:>7.1} ms   \
         bare COUNT(*) over users: {:.1} ms  (ratio {:.1})",
        segment.as_secs_f64() * 1e3,
        scan.as_secs_f64() * 1e3,
        segment.as_secs_f64() / scan.as_secs_f64().max(1e-9)
    );
}
