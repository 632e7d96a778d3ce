//! Web UI page benchmark: how long each page of `/ui/` takes to become interactive in headless
//! Chromium, with 1,000,000 users in the database, against the same pages over a database with
//! only the sample users (the baseline) in the same run; and how many bytes of assets each
//! page loads.
//!
//! ```text
//! cargo bench -p messaging-server --bench ui_pages                 # 1,000,000 users
//! BENCH_USERS=100000 cargo bench -p messaging-server --bench ui_pages
//! ```
//!
//! Each page is loaded whole (a fresh navigation, assets from the browser's cache after the
//! first load) `BENCH_ROUNDS` times (default 5), then once in a new browser with an empty
//! cache, which also counts the bytes of assets the page fetched. The router marks `ui-ready`
//! when the page is drawn with its controls and main content, and `ui-loaded` when every API
//! call the page made has answered; both are read from the browser's Performance timeline,
//! counted from the start of the navigation. Needs `chromedriver` and Chromium (`apt-get install chromium
//! chromium-driver`); without them it says so and exits.

#[path = "../tests/common/browser.rs"]
mod browser;

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fantoccini::Client;
use serde_json::{Value, json};

const CITIES: [&str; 8] = [
    "Colombo",
    "Kandy",
    "Galle",
    "Jaffna",
    "Negombo",
    "Matara",
    "Kurunegala",
    "Badulla",
];

/// A server process on its own database; stopped on drop.
struct Server {
    base: String,
    process: Child,
    http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Server {
    fn start(database: &Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let process = Command::new(env!("CARGO_BIN_EXE_messaging-server"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATABASE_URL", format!("sqlite://{}", database.display()))
            .env("BIND", format!("127.0.0.1:{port}"))
            .env("SEND_RATE_PER_SECOND", "5000")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start messaging-server")?;
        Ok(Self {
            base: format!("http://127.0.0.1:{port}"),
            process,
            http: reqwest::Client::new(),
        })
    }

    async fn wait_until_up(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(response) = self.http.get(format!("{}/healthz", self.base)).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the server did not answer /healthz within 60 s")
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}/api/v1{path}", self.base);
        let request = match method {
            "POST" => self.http.post(url).json(&body.unwrap_or(json!({}))),
            _ => self.http.get(url),
        };
        let response = request.send().await?;
        let status = response.status();
        let answer: Value = response.json().await?;
        if !status.is_success() {
            bail!("{method} {path} answered {status}: {answer}");
        }
        Ok(answer)
    }

    async fn inbound(&self, from: &str, sid: &str, body: &str) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("{}/twilio/inbound", self.base))
            .form(&[
                ("MessageSid", sid),
                ("From", &format!("whatsapp:{from}")),
                ("To", "whatsapp:+14155238886"),
                ("Body", body),
            ])
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("inbound webhook answered {}", response.status());
        }
        Ok(())
    }
}

/// Writes `n` users as CSV, phones in a shuffled order: a city, an age, a VIP flag, every
/// fourth user subscribed to DANCE and every third to MUSIC.
fn write_users(path: &Path, n: u64) -> anyhow::Result<()> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "phone,name,consent_state,city,age,vip,timezone,topics")?;
    let mut order: Vec<u64> = (0..n).collect();
    fastrand::Rng::with_seed(7).shuffle(&mut order);
    for i in order {
        let consent = if i % 10 == 9 { "OPT_OUT" } else { "OPT_IN" };
        let topics = match (i % 4 == 0, i % 3 == 0) {
            (true, true) => "DANCE;MUSIC",
            (true, false) => "DANCE",
            (false, true) => "MUSIC",
            (false, false) => "",
        };
        writeln!(
            out,
            "+9477{i:07},User {i},{consent},{},{},{},Asia/Colombo,{topics}",
            CITIES[(i % 8) as usize],
            18 + i % 60,
            i % 10 == 0
        )?;
    }
    out.flush()?;
    Ok(())
}

/// What the pages show: a template, a segment, a campaign sent to a few thousand users on the
/// sandbox provider, an event campaign, and some inbound messages. Answers the paths to visit.
async fn stage(server: &Server, first_user: &str) -> anyhow::Result<Vec<(String, String)>> {
    let template = server
        .call(
            "POST",
            "/templates",
            Some(json!({"name": "welcome", "content":
                "Hi {{ name | default(\"there\") }}, see you in {{ attributes.city }}!"})),
        )
        .await?;
    let template_id = template["id"].as_str().context("template id")?.to_owned();
    let segment = server
        .call(
            "POST",
            "/segments",
            Some(json!({"name": "Colombo, 30", "rule":
                {"attributes.city": "Colombo", "attributes.age": 30}})),
        )
        .await?;
    let segment_id = segment["id"].as_str().context("segment id")?.to_owned();
    let campaign = server
        .call(
            "POST",
            "/campaigns",
            Some(
                json!({"name": "Colombo thirties", "template_id": template_id,
                        "segment_id": segment_id}),
            ),
        )
        .await?;
    let campaign_id = campaign["id"].as_str().context("campaign id")?.to_owned();
    server
        .call("POST", &format!("/campaigns/{campaign_id}/launch"), None)
        .await?;
    server
        .call(
            "POST",
            "/campaigns",
            Some(
                json!({"name": "Festival", "template_id": template_id, "topic": "DANCE",
                        "trigger": {"type": "event", "event": "Dance Festival"}}),
            ),
        )
        .await?;
    for i in 0..50 {
        let from = format!("+9477{:07}", i * 7);
        let body = if i % 5 == 0 {
            "STOP"
        } else {
            "when is the show?"
        };
        server
            .inbound(&from, &format!("SMbench{i:026}"), body)
            .await?;
    }
    // The campaign sends at the sandbox's pace; wait until nothing is in flight.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let stats = server
            .call("GET", &format!("/campaigns/{campaign_id}/stats"), None)
            .await?;
        let by = &stats["by_status"];
        let waiting: u64 = ["pending", "queued", "sending"]
            .iter()
            .map(|s| by[*s].as_u64().unwrap_or(0))
            .sum();
        let campaign = server
            .call("GET", &format!("/campaigns/{campaign_id}"), None)
            .await?;
        if waiting == 0
            && (stats["messages"].as_u64().unwrap_or(0) > 0 || campaign["status"] != "running")
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("the staged campaign did not finish sending within 300 s: {stats}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let user = first_user.replace('+', "%2B");
    Ok(vec![
        ("dashboard".into(), "/ui/".into()),
        ("users".into(), "/ui/users".into()),
        (
            "users, phone search".into(),
            "/ui/users?q=%2B9477004".into(),
        ),
        (
            "users, text search".into(),
            "/ui/users?q=User%204242".into(),
        ),
        ("users, topic filter".into(), "/ui/users?topic=DANCE".into()),
        ("one user".into(), format!("/ui/users/{user}")),
        ("templates".into(), "/ui/templates".into()),
        (
            "one template".into(),
            format!("/ui/templates/{template_id}"),
        ),
        ("segments".into(), "/ui/segments".into()),
        ("one segment".into(), format!("/ui/segments/{segment_id}")),
        ("campaigns".into(), "/ui/campaigns".into()),
        (
            "one campaign".into(),
            format!("/ui/campaigns/{campaign_id}"),
        ),
        ("events".into(), "/ui/events".into()),
        ("inbound".into(), "/ui/inbound".into()),
        ("settings".into(), "/ui/settings".into()),
    ])
}

/// One page load's figures, in milliseconds from the start of the navigation, and the bytes
/// of assets (the document, scripts, styles and icons: not API answers) it loaded.
struct Load {
    ready: f64,
    loaded: f64,
    asset_bytes: u64,
}

const MEASURE: &str = r#"
const done = arguments[arguments.length - 1];
const started = performance.now();
(function poll() {
  const loaded = performance.getEntriesByName('ui-loaded');
  if (loaded.length) {
    const ready = performance.getEntriesByName('ui-ready')[0].startTime;
    let bytes = 0;
    for (const entry of performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))) {
      if (!new URL(entry.name).pathname.startsWith('/api/')) bytes += entry.decodedBodySize;
    }
    done({ ready, loaded: loaded[0].startTime, bytes });
  } else if (performance.now() - started > 30000) {
    done(null);
  } else {
    setTimeout(poll, 5);
  }
})();
"#;

async fn load(client: &Client, url: &str) -> anyhow::Result<Load> {
    client.goto(url).await?;
    let answer = client.execute_async(MEASURE, vec![]).await?;
    if answer.is_null() {
        bail!("{url} was not loaded within 30 s");
    }
    Ok(Load {
        ready: answer["ready"].as_f64().context("ready")?,
        loaded: answer["loaded"].as_f64().context("loaded")?,
        asset_bytes: answer["bytes"].as_u64().unwrap_or(0),
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// One page's figures: median and slowest ready times and the median loaded time over
/// `rounds` loads with the browser's cache warm; then the first load in a new browser (empty
/// cache): its ready time and the bytes of assets it fetched.
struct Figures {
    ready: f64,
    ready_max: f64,
    loaded: f64,
    cold_ready: f64,
    asset_bytes: u64,
}

async fn measure(client: &Client, url: &str, rounds: usize) -> anyhow::Result<Figures> {
    // A first load fills the browser's cache, as for anyone who has opened the UI before.
    load(client, url).await?;
    let mut ready = Vec::new();
    let mut loaded = Vec::new();
    for _ in 0..rounds {
        let one = load(client, url).await?;
        ready.push(one.ready);
        loaded.push(one.loaded);
    }
    // Resources the browser already holds in memory are not in its timeline: a new browser
    // fetches (and counts) every asset of the page.
    let fresh = browser::start_browser()
        .await
        .context("a second browser session")?;
    let cold = load(&fresh.client, url).await?;
    fresh.client.clone().close().await?;
    Ok(Figures {
        ready_max: ready.iter().copied().fold(0.0, f64::max),
        ready: median(ready),
        loaded: median(loaded),
        cold_ready: cold.ready,
        asset_bytes: cold.asset_bytes,
    })
}

fn ingest(database: &Path, file: &Path) -> anyhow::Result<()> {
    let status = Command::new(env!("CARGO_BIN_EXE_messaging-server"))
        .args(["ingest", "users"])
        .arg(file)
        .env("DATABASE_URL", format!("sqlite://{}", database.display()))
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("ingest users {} failed: {status}", file.display());
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    // `cargo test --benches` runs this binary too: a smoke run stays quick there.
    let users: u64 = std::env::var("BENCH_USERS")
        .ok()
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(5);
    let Some(browser) = browser::start_browser().await else {
        println!(
            "skipped: chromedriver is not installed (apt-get install chromium chromium-driver)"
        );
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/users.csv");

    println!("web UI pages: {users} users against the sample users only, {rounds} loads each");
    let started = Instant::now();
    let big = dir.path().join("big.db");
    let csv = dir.path().join("users.csv");
    write_users(&csv, users)?;
    ingest(&big, &csv)?;
    println!(
        "  staged {users} users in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let small = dir.path().join("small.db");
    ingest(&small, &samples)?;

    let mut results = Vec::new();
    for (database, first_user) in [(&small, "+94771234501"), (&big, "+94770000042")] {
        let server = Server::start(database)?;
        server.wait_until_up().await?;
        let pages = stage(&server, first_user).await?;
        let mut figures = Vec::new();
        for (name, path) in &pages {
            let url = format!("{}{path}", server.base);
            figures.push((name.clone(), measure(&browser.client, &url, rounds).await?));
        }
        results.push(figures);
    }

    println!(
        "\n{:<22} {:>12} {:>12} {:>12} {:>12} {:>12} {:>9}",
        "page", "ready, base", "ready, big", "max, big", "loaded, big", "cold, big", "assets"
    );
    let mut worst: f64 = 0.0;
    let mut heaviest = 0;
    for ((name, base), (_, big)) in results[0].iter().zip(&results[1]) {
        println!(
            "{name:<22} {:>9.1} ms {:>9.1} ms {:>9.1} ms {:>9.1} ms {:>9.1} ms {:>6.1} KB",
            base.ready,
            big.ready,
            big.ready_max,
            big.loaded,
            big.cold_ready,
            big.asset_bytes as f64 / 1024.0
        );
        worst = worst.max(big.ready);
        heaviest = heaviest.max(big.asset_bytes);
    }
    println!(
        "\nslowest page interactive in {worst:.1} ms (median of {rounds}, warm cache; target \
         200 ms); heaviest page {:.1} KB of assets (target 150 KB)",
        heaviest as f64 / 1024.0
    );
    browser.client.clone().close().await?;
    Ok(())
}
