//! The API guide's example session (docs/API.md) runs as written: its shell blocks are run by
//! bash, in order, against the real server on the sandbox provider (as on a fresh machine),
//! with every `curl` failing the script on an error answer. Then the test checks that the
//! session did what the guide says: the campaign's messages went out, the event's did too.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Options, spawn_app_with};
use serde_json::Value;

/// The shell blocks of `guide` after `heading`, in order, joined.
fn session(guide: &str, heading: &str) -> String {
    let (_, after) = guide
        .split_once(heading)
        .expect("the guide has the section");
    let mut blocks = Vec::new();
    let mut rest = after;
    while let Some(start) = rest.find("```bash\n") {
        let body = &rest[start + "```bash\n".len()..];
        let end = body.find("```").expect("a closed code block");
        blocks.push(&body[..end]);
        rest = &body[end + 3..];
    }
    blocks.concat()
}

fn installed(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_guides_example_session_runs_as_written() {
    if !(installed("curl") && installed("jq")) {
        // CI installs both; elsewhere say why nothing ran rather than fail on a missing tool.
        assert!(
            std::env::var_os("CI").is_none(),
            "curl and jq are needed to run the guide"
        );
        eprintln!("skipped: the API guide's session needs curl and jq");
        return;
    }
    let app = spawn_app_with(Options {
        sandbox: true,
        ..Options::default()
    })
    .await;
    let guide = include_str!("../../docs/API.md");
    let commands = session(guide, "## Example session");
    assert!(
        commands.contains("127.0.0.1:5000"),
        "the guide names the default address"
    );
    let address = app.base.trim_start_matches("http://");
    let script = format!(
        "set -euo pipefail\n\
         curl() {{ command curl --fail-with-body --show-error \"$@\"; }}\n{}",
        commands.replace("127.0.0.1:5000", address)
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(root)
            .output()
            .expect("bash runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the guide's session failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    // The upload's report names the broken rows.
    assert!(stdout.contains("\"line\""), "{stdout}");

    let (_, campaigns) = app.get("/api/v1/campaigns").await;
    let id_of = |name: &str| -> String {
        campaigns["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("campaign {name} exists: {campaigns}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (dancers, festival) = (id_of("hello dancers"), id_of("festival"));
    let gone_out = |stats: &Value| -> u64 {
        ["sent", "delivered", "read"]
            .iter()
            .map(|s| stats["by_status"][s].as_u64().unwrap_or(0))
            .sum()
    };
    let (_, stats) = app.get(&format!("/api/v1/campaigns/{dancers}/stats")).await;
    assert!(gone_out(&stats) >= 1, "the campaign sent nothing: {stats}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, messages) = app
            .get(&format!("/api/v1/messages?campaign_id={festival}"))
            .await;
        let items = messages["items"].as_array().unwrap();
        let sent = items.iter().any(|m| {
            m["body"]
                .as_str()
                .is_some_and(|b| b.contains("Galle Face Green"))
                && ["sent", "delivered", "read"].contains(&m["status"].as_str().unwrap_or(""))
        });
        if sent {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the event's message did not go out: {messages}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
