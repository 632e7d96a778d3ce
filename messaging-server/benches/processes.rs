//! Sending with 1, 2 and 4 server processes on one PostgreSQL database, beside one process on
//! SQLite: how the dispatch scales out, and what each message costs the database.
//!
//! ```text
//! cargo bench -p messaging-server --bench processes                      # 50,000 messages
//! BENCH_MESSAGES=10000 cargo bench -p messaging-server --bench processes
//! ```
//!
//! Each configuration gets a fresh database with N users and a launched campaign (fanned out,
//! nothing sent), then that many real `messaging-server` processes are started on it against
//! `examples/fake_twilio` (in this process, answering at once and sending no status
//! callbacks, with no ceiling that matters: `SEND_RATE_PER_SECOND` 100,000), and the time is taken from their start until the fake has
//! accepted every message. The CPU time of the servers and of the database's processes
//! (every process named `postgres`, read from `/proc` before and after) is printed per 1,000
//! messages: with one database core, the database's figure says how many messages a second
//! it can carry at most, whatever the number of senders.
//!
//! Needs a PostgreSQL server (the local one, user `postgres`, or `TEST_DATABASE_URL`); its
//! databases are scratch ones, dropped at the end. SQLite's figure is the baseline of the same
//! run, since absolute rates move with the machine.

#[path = "../tests/common/processes.rs"]
mod processes;

use std::process::Child;
use std::time::{Duration, Instant};

use fake_twilio::{FakeConfig, FakeTwilio};
use messaging_core::store::postgres::ScratchDatabase;
use processes::{prepare, serve, sqlite_url};

/// Server processes, killed when dropped (a failed run leaves none behind).
struct Servers(Vec<Child>);

impl Drop for Servers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Clock ticks a second, as `/proc/<pid>/stat` counts CPU time.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// CPU time (user and system) process `pid` has used, in ticks, and its name.
fn cpu_of(pid: u32) -> Option<(String, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name is in parentheses and may hold spaces; the fields after it are plain.
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let name = stat[open + 1..close].to_owned();
    let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let used = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((name, used))
}

/// CPU ticks used so far by every process named `postgres` (the server and its backends;
/// those that ended meanwhile are not counted, so short-lived connections count less).
fn database_ticks() -> u64 {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(cpu_of)
        .filter(|(name, _)| name == "postgres")
        .map(|(_, used)| used)
        .sum()
}

struct Measured {
    label: String,
    seconds: f64,
    server_ms_per_1000: f64,
    database_ms_per_1000: Option<f64>,
}

/// One configuration: `processes` servers on the database at `url`, prepared with `messages`
/// recipients, sending until the fake has accepted them all.
async fn measure(
    label: &str,
    url: &str,
    processes: usize,
    messages: usize,
    postgres: bool,
) -> Measured {
    prepare(url, messages).await;
    let twilio = FakeTwilio::start(FakeConfig::default()).await.unwrap();
    // No status callbacks: the servers listen on ports nobody is told about, and the fake
    // would spend the machine on connections refused; webhooks have a benchmark of their own.
    let mut callbacks = twilio.behaviour().callbacks;
    callbacks.dropped_share = 1.0;
    twilio.set_callback_plan(callbacks).unwrap();
    let ticks = ticks_per_second();
    let database_before = database_ticks();
    let started = Instant::now();
    let servers = Servers(
        (0..processes)
            .map(|_| serve(url, &twilio, 100_000))
            .collect(),
    );
    let pids: Vec<u32> = servers.0.iter().map(Child::id).collect();
    let deadline = Duration::from_secs(120 + messages as u64 / 100);
    let mut last_server_ticks = 0;
    loop {
        let accepted = twilio.counters().accepted as usize;
        // Read while they run: a process's CPU time is gone once it is reaped.
        last_server_ticks = pids
            .iter()
            .filter_map(|pid| cpu_of(*pid))
            .map(|(_, used)| used)
            .sum::<u64>()
            .max(last_server_ticks);
        if accepted >= messages {
            break;
        }
        assert!(
            started.elapsed() < deadline,
            "{label}: {accepted} of {messages} messages accepted after {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let database_after = database_ticks();
    drop(servers);
    twilio.shutdown().await;
    let per_1000 = |used: u64| used as f64 / ticks * 1000.0 / (messages as f64 / 1000.0);
    Measured {
        label: label.to_owned(),
        seconds,
        server_ms_per_1000: per_1000(last_server_ticks),
        database_ms_per_1000: postgres
            .then(|| per_1000(database_after.saturating_sub(database_before))),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let messages: usize = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50_000);
    println!("dispatch of {messages} messages to the fake Twilio by real server processes");
    let mut results = Vec::new();
    {
        let dir = tempfile::tempdir().unwrap();
        let url = sqlite_url(&dir.path().join("bench.db"));
        results.push(measure("SQLite, 1 process", &url, 1, messages, false).await);
    }
    for processes in [1, 2, 4] {
        let database = ScratchDatabase::create()
            .await
            .expect("a PostgreSQL server (see TEST_DATABASE_URL)");
        let label = format!(
            "PostgreSQL, {processes} process{}",
            if processes == 1 { "" } else { "es" }
        );
        results.push(measure(&label, database.url(), processes, messages, true).await);
    }
    let baseline = messages as f64 / results[0].seconds;
    println!(
        "{:<26} {:>9} {:>11} {:>9} {:>22} {:>24}",
        "", "time", "msgs/s", "vs SQLite", "servers CPU-ms/1,000", "database CPU-ms/1,000"
    );
    for r in &results {
        let rate = messages as f64 / r.seconds;
        println!(
            "{:<26} {:>8.2}s {:>11.0} {:>8.0} % {:>22.0} {:>24}",
            r.label,
            r.seconds,
            rate,
            rate / baseline * 100.0,
            r.server_ms_per_1000,
            r.database_ms_per_1000
                .map_or("-".to_owned(), |ms| format!("{ms:.0}")),
        );
    }
    println!(
        "(time from the servers' start, start-up included, until every message was accepted; \
         the fake Twilio runs in this process)"
    );
}
