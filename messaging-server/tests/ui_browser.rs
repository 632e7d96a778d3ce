//! The web UI in a real browser: headless Chromium driven over WebDriver (`fantoccini`, a
//! local `chromedriver`), against the real server on the sandbox provider. One browser session
//! serves every scenario of this binary, in order, so the binary starts Chromium once.
//!
//! Without `chromedriver` on the PATH the test says it was skipped and passes, unless `CI` is
//! set (then it fails: CI installs Chromium). `UI_SCREENSHOTS=docs/images` saves a PNG of
//! each page visited into that folder.

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use browser::Browser;
use common::{Options, TestApp, spawn_app_with};
use fantoccini::{Client, Locator, elements::Element};
use serde_json::{Value, json};

async fn start_browser() -> Option<Browser> {
    let browser = browser::start_browser().await;
    if browser.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromedriver is not installed (apt-get install chromium chromium-driver); CI needs it"
        );
        eprintln!(
            "skipped: chromedriver is not installed, so the web UI's browser tests did not run"
        );
    }
    browser
}

const WAIT: Duration = Duration::from_secs(15);

async fn find(client: &Client, css: &str) -> Element {
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css} appeared: {e}"))
}

/// Waits until the text of `css` satisfies `done`; answers it.
async fn text_until(client: &Client, css: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT * 2;
    let mut last = String::new();
    loop {
        if let Ok(element) = client.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
        {
            if done(&text) {
                return text;
            }
            last = text;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the text of {css} never did; last seen {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn screenshot(client: &Client, name: &str) {
    let Some(folder) = std::env::var_os("UI_SCREENSHOTS") else {
        return;
    };
    let png = client.screenshot().await.unwrap();
    std::fs::write(PathBuf::from(folder).join(format!("{name}.png")), png).unwrap();
}

async fn type_into(client: &Client, css: &str, text: &str) {
    let element = find(client, css).await;
    element.clear().await.unwrap();
    element.send_keys(text).await.unwrap();
}

fn sample(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
        .canonicalize()
        .unwrap()
        .display()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_works_in_a_real_browser() {
    let Some(browser) = start_browser().await else {
        return;
    };
    let client = &browser.client;
    let app = spawn_app_with(Options {
        sandbox: true,
        ..Options::default()
    })
    .await;
    an_upload_shows_its_report_with_the_broken_rows_lines(client, &app).await;
    a_user_named_like_markup_shows_as_text_and_runs_no_script(client, &app).await;
    a_template_preview_follows_what_is_typed(client, &app).await;
    a_segment_shows_how_many_users_match(client, &app).await;
    a_launched_campaign_is_watched_to_completion(client, &app).await;
    a_paused_campaign_sends_nothing_until_resumed_and_then_each_recipient_once(client, &app).await;
    a_reply_goes_out_from_the_inbound_page_and_the_window_is_explained(client, &app).await;
    the_settings_show_the_webhook_urls(client, &app).await;
    app.stop().await;
    the_ui_asks_for_the_api_token_and_then_works(client).await;
    client.clone().close().await.unwrap();
}

async fn an_upload_shows_its_report_with_the_broken_rows_lines(client: &Client, app: &TestApp) {
    client
        .goto(&format!("{}/ui/users", app.base))
        .await
        .unwrap();
    let input = find(client, "input[type=file]").await;
    input.send_keys(&sample("samples/users.csv")).await.unwrap();
    let report = text_until(
        client,
        ".upload-result table",
        "the report lists invalid rows",
        |t| {
            // Headings are upper-cased by the style sheet, and WebDriver reads rendered text.
            t.to_lowercase().contains("line")
        },
    )
    .await;
    let (_, history) = app.get("/api/v1/ingestions").await;
    let id = history["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, record) = app.get(&format!("/api/v1/ingestions/{id}")).await;
    let errors = record["report"]["errors"].as_array().unwrap();
    assert!(!errors.is_empty(), "the sample has broken rows");
    for error in errors {
        let line = error["line"].as_u64().unwrap().to_string();
        let field = error["field"].as_str().unwrap();
        assert!(
            report
                .lines()
                .any(|row| row.starts_with(&line) && row.contains(field)),
            "line {line} ({field}) is in the report: {report}"
        );
    }
    // The list shows the imported users, and the history the import.
    text_until(client, "main", "the users are listed", |t| {
        t.contains("Amaya Perera")
    })
    .await;
    text_until(client, "main", "the import is in the history", |t| {
        t.contains("users.csv")
    })
    .await;
    screenshot(client, "users").await;
    client
        .goto(&format!("{}/ui/users/%2B94771234501", app.base))
        .await
        .unwrap();
    text_until(client, "h1", "the user's page opens", |t| {
        t.contains("Amaya Perera")
    })
    .await;
    screenshot(client, "user").await;
}

async fn a_user_named_like_markup_shows_as_text_and_runs_no_script(client: &Client, app: &TestApp) {
    let name = "<img src=x onerror=alert(1)>";
    let (status, _) = app
        .post(
            "/api/v1/users",
            &json!({"phone": "+94770000666", "name": name}),
        )
        .await;
    assert_eq!(status, 201);
    client
        .goto(&format!("{}/ui/users?q=94770000666", app.base))
        .await
        .unwrap();
    text_until(
        client,
        "main table",
        "the user is listed with the name as text",
        |t| t.contains(name),
    )
    .await;
    client
        .goto(&format!("{}/ui/users/%2B94770000666", app.base))
        .await
        .unwrap();
    text_until(
        client,
        "h1",
        "the user's page shows the name as text",
        |t| t == name,
    )
    .await;
    let images = client
        .execute(
            "return document.querySelectorAll('main img').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(images, json!(0), "no img element was made from the name");
    assert!(
        client.get_alert_text().await.is_err(),
        "no script ran: there is no alert"
    );
}

async fn a_template_preview_follows_what_is_typed(client: &Client, app: &TestApp) {
    client
        .goto(&format!("{}/ui/templates/new", app.base))
        .await
        .unwrap();
    type_into(client, "input[name=name]", "greeting").await;
    type_into(client, "textarea[name=content]", "Hi {{ name }}!").await;
    find(client, "form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    text_until(
        client,
        "#template-preview",
        "the saved template is previewed",
        |t| t.contains("Hi Amaya!"),
    )
    .await;
    type_into(
        client,
        "textarea[name=content]",
        "Hello {{ name }} from {{ attributes.city }}",
    )
    .await;
    text_until(
        client,
        "#template-preview",
        "the preview follows the typing",
        |t| t.contains("Hello Amaya from Colombo"),
    )
    .await;
    type_into(client, "textarea[name=content]", "Hello {{ name ").await;
    text_until(
        client,
        "#template-preview",
        "an error names its line",
        |t| t.contains("line 1"),
    )
    .await;
    type_into(
        client,
        "textarea[name=content]",
        "Hi {{ name | default(\"there\") }}, see you in {{ attributes.city }}!",
    )
    .await;
    type_into(
        client,
        "input[name=content_sid]",
        "HX0123456789abcdef0123456789abcdef",
    )
    .await;
    find(client, "form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    text_until(client, "#template-preview", "the edit is previewed", |t| {
        t.contains("see you in Colombo")
    })
    .await;
    screenshot(client, "templates").await;
}

async fn a_segment_shows_how_many_users_match(client: &Client, app: &TestApp) {
    let (_, expected) = app
        .post(
            "/api/v1/segments/preview",
            &json!({"rule": {"topic": "DANCE"}}),
        )
        .await;
    let expected = expected["count"].as_u64().unwrap();
    assert!(expected > 0);
    client
        .goto(&format!("{}/ui/segments/new", app.base))
        .await
        .unwrap();
    type_into(client, "input[name=name]", "dancers").await;
    type_into(client, "textarea[name=rule]", r#"{"topic": "DANCE"}"#).await;
    text_until(
        client,
        "#segment-count .segment-count",
        "the count is shown",
        |t| t == expected.to_string(),
    )
    .await;
    find(client, "form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    text_until(client, "main", "the segment is saved", |t| {
        t.contains("Edit dancers")
    })
    .await;
    // The saved rule is read back into the builder.
    let kind = find(client, ".condition select[name=kind]").await;
    assert_eq!(kind.prop("value").await.unwrap().as_deref(), Some("topic"));
    let topic = find(client, ".condition input[name=a]").await;
    assert_eq!(topic.prop("value").await.unwrap().as_deref(), Some("DANCE"));
    text_until(
        client,
        "#segment-count .segment-count",
        "the saved segment's count",
        |t| t == expected.to_string(),
    )
    .await;
    screenshot(client, "segments").await;

    // So is the seed's shorthand, as an attribute comparison.
    let (status, colombo) = app
        .post(
            "/api/v1/segments",
            &json!({"name": "Colombo", "rule": {"attributes.city": "Colombo"}}),
        )
        .await;
    assert_eq!(status, 201, "{colombo}");
    client
        .goto(&format!(
            "{}/ui/segments/{}",
            app.base,
            colombo["id"].as_str().unwrap()
        ))
        .await
        .unwrap();
    text_until(client, "main", "the segment opens", |t| {
        t.contains("Edit Colombo")
    })
    .await;
    let values = client
        .execute(
            "return [...document.querySelectorAll('.condition select, .condition input')]\
             .map((e) => e.value);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(values, json!(["attribute", "city", "eq", "Colombo"]));
}

async fn a_launched_campaign_is_watched_to_completion(client: &Client, app: &TestApp) {
    let (_, templates) = app.get("/api/v1/templates").await;
    let template = templates["items"][0]["id"].as_str().unwrap().to_owned();
    client
        .goto(&format!("{}/ui/campaigns/new", app.base))
        .await
        .unwrap();
    type_into(client, "input[name=name]", "hello dancers").await;
    find(client, "select[name=template_id]")
        .await
        .select_by_value(&template)
        .await
        .unwrap();
    type_into(client, "input[name=topic]", "DANCE").await;
    find(client, "form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    text_until(client, "h1", "the campaign's page opens", |t| {
        t == "hello dancers"
    })
    .await;
    client
        .find(Locator::XPath(
            "//button[contains(., 'Preview recipients')]",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    text_until(client, "main", "the preview shows recipients", |t| {
        t.contains("recipients") && t.to_lowercase().contains("sent as")
    })
    .await;
    act_on_campaign(client, "launch").await;
    let monitor = text_until(client, "#monitor", "the monitor reaches completion", |t| {
        t.contains("completed")
    })
    .await;
    let (_, stats) = app
        .get(&format!(
            "/api/v1/campaigns/{}/stats",
            client
                .current_url()
                .await
                .unwrap()
                .path()
                .rsplit('/')
                .next()
                .unwrap()
        ))
        .await;
    let messages = stats["messages"].as_u64().unwrap();
    assert!(
        monitor.contains(&format!("{messages} of {messages} messages finished")),
        "{monitor}"
    );
    screenshot(client, "campaign").await;
    find(client, "#monitor").await;
    client
        .find(Locator::XPath("//main//td//button[.='Timeline']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    text_until(client, "#timeline", "the message's timeline shows", |t| {
        t.contains("Timeline of the message")
    })
    .await;
    client
        .goto(&format!("{}/ui/campaigns", app.base))
        .await
        .unwrap();
    text_until(client, "main table", "the campaign is listed", |t| {
        t.contains("hello dancers")
    })
    .await;
    screenshot(client, "campaigns").await;
    client
        .goto(&format!("{}/ui/?window=hour", app.base))
        .await
        .unwrap();
    text_until(client, ".tiles", "the dashboard counts the messages", |t| {
        t.contains(&messages.to_string())
    })
    .await;
    find(client, "svg.chart polyline").await;
    screenshot(client, "dashboard").await;
    // Back goes to the campaigns list, as in any site.
    client.back().await.unwrap();
    text_until(client, "h1", "back returns to the previous page", |t| {
        t == "Campaigns"
    })
    .await;
}

/// Clicks the campaign page's `action` button and confirms it in the dialog.
async fn act_on_campaign(client: &Client, action: &str) {
    find(client, &format!("button[data-action={action}]"))
        .await
        .click()
        .await
        .unwrap();
    find(client, "dialog[open] button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
}

async fn a_paused_campaign_sends_nothing_until_resumed_and_then_each_recipient_once(
    client: &Client,
    app: &TestApp,
) {
    let (_, templates) = app.get("/api/v1/templates").await;
    let template = templates["items"][0]["id"].as_str().unwrap().to_owned();
    // One message a second, so there is time to pause half-way.
    let (status, campaign) = app
        .post(
            "/api/v1/campaigns",
            &json!({"name": "slow dancers", "template_id": template, "topic": "DANCE",
                    "rate_limit_per_second": 1}),
        )
        .await;
    assert_eq!(status, 201, "{campaign}");
    let id = campaign["id"].as_str().unwrap().to_owned();
    let stats_path = format!("/api/v1/campaigns/{id}/stats");
    let finished = |stats: &Value| {
        [
            "sent",
            "delivered",
            "read",
            "failed",
            "undelivered",
            "skipped",
        ]
        .iter()
        .map(|s| stats["by_status"][*s].as_u64().unwrap_or(0))
        .sum::<u64>()
    };
    client
        .goto(&format!("{}/ui/campaigns/{id}", app.base))
        .await
        .unwrap();
    act_on_campaign(client, "launch").await;
    text_until(client, "#monitor", "the first message goes out", |t| {
        t.contains("1 of") || t.contains("2 of")
    })
    .await;
    act_on_campaign(client, "pause").await;
    text_until(client, "main .badge", "the campaign shows as paused", |t| {
        t.to_lowercase().contains("paused")
    })
    .await;
    let (_, stats) = app.get(&stats_path).await;
    let total = stats["messages"].as_u64().unwrap();
    let at_pause = finished(&stats);
    assert!(at_pause < total, "paused before the end: {stats}");
    // Nothing more goes out while paused: at one a second, three seconds would send three.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, stats) = app.get(&stats_path).await;
    assert!(
        finished(&stats) <= at_pause + 1,
        "at most the send in flight at the pause finished: {stats}"
    );
    act_on_campaign(client, "resume").await;
    text_until(client, "#monitor", "the resumed campaign completes", |t| {
        t.contains(&format!("{total} of {total} messages finished")) && t.contains("completed")
    })
    .await;
    let (_, messages) = app
        .get(&format!("/api/v1/messages?campaign_id={id}&limit=1000"))
        .await;
    let mut recipients: Vec<&str> = messages["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user"].as_str().unwrap())
        .collect();
    let sent = recipients.len();
    recipients.sort_unstable();
    recipients.dedup();
    assert_eq!(sent as u64, total, "{messages}");
    assert_eq!(
        recipients.len(),
        sent,
        "one message per recipient: {messages}"
    );
}

async fn a_reply_goes_out_from_the_inbound_page_and_the_window_is_explained(
    client: &Client,
    app: &TestApp,
) {
    // Amaya (from the sample upload) writes in over the webhook: her window opens.
    let (status, _, _) = app
        .post_form(
            "/twilio/inbound",
            &[
                ("MessageSid", "SMui000000000000000000000000000001"),
                ("From", "whatsapp:+94771234501"),
                ("To", "whatsapp:+14155550100"),
                ("Body", "where is my order?"),
            ],
            &[],
        )
        .await;
    assert!(status.is_success(), "{status}");
    let (status, _, _) = app
        .post_form(
            "/twilio/inbound",
            &[
                ("MessageSid", "SMui000000000000000000000000000002"),
                ("From", "whatsapp:+94771234501"),
                ("To", "whatsapp:+14155550100"),
                ("Body", "and the tracking number?"),
            ],
            &[],
        )
        .await;
    assert!(status.is_success(), "{status}");
    client
        .goto(&format!("{}/ui/inbound", app.base))
        .await
        .unwrap();
    // One row per user, with their latest message.
    text_until(client, "main table", "the conversations", |t| {
        t.contains("and the tracking number?")
    })
    .await;
    let rows = client
        .find_all(Locator::Css("main table a[href*='94771234501']"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "one conversation per user");
    find(client, "main table a[href*='94771234501']")
        .await
        .click()
        .await
        .unwrap();
    type_into(client, "textarea[name=body]", "On its way!").await;
    find(client, "main form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    text_until(client, ".conversation", "the reply in the thread", |t| {
        t.contains("On its way!")
            && t.contains("where is my order?")
            && t.contains("and the tracking number?")
    })
    .await;
    screenshot(client, "conversation").await;

    // Kasun never wrote: free text is refused, and the page says what to do instead.
    client
        .goto(&format!("{}/ui/inbound/%2B94771234502", app.base))
        .await
        .unwrap();
    type_into(client, "textarea[name=body]", "Hello?").await;
    find(client, "main form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let said = text_until(client, "main form", "the window explained", |t| {
        t.contains("24 hours") && t.contains("approved template")
    })
    .await;
    assert!(
        said.contains("24-hour window"),
        "the API's own words: {said}"
    );
}

async fn the_settings_show_the_webhook_urls(client: &Client, app: &TestApp) {
    client
        .goto(&format!("{}/ui/settings", app.base))
        .await
        .unwrap();
    let inbound = format!("{}/twilio/inbound", app.base);
    let value = client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("main input[readonly]"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(value.as_deref(), Some(inbound.as_str()));
    screenshot(client, "settings").await;
    for page in ["events", "inbound"] {
        client
            .goto(&format!("{}/ui/{page}", app.base))
            .await
            .unwrap();
        find(client, "main .card").await;
        screenshot(client, page).await;
    }
}

async fn the_ui_asks_for_the_api_token_and_then_works(client: &Client) {
    let app = spawn_app_with(Options {
        sandbox: true,
        api_token: Some("open-sesame".into()),
        ..Options::default()
    })
    .await;
    client
        .goto(&format!("{}/ui/settings", app.base))
        .await
        .unwrap();
    type_into(client, "#token-dialog[open] #token-input", "wrong").await;
    find(client, "#token-form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    text_until(client, "#token-error", "a refused token is said so", |t| {
        t.contains("refused")
    })
    .await;
    type_into(client, "#token-dialog[open] #token-input", "open-sesame").await;
    find(client, "#token-form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    text_until(client, "main", "the page works with the token", |t| {
        t.contains("required") && t.contains("Status callback URL")
    })
    .await;
    let stored: Value = client
        .execute(
            "return sessionStorage.getItem('messaging.api_token')",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(stored, json!("open-sesame"));
    app.stop().await;
}
