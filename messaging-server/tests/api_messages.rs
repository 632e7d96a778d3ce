//! Messages, replies, inbound messages, events and statistics over HTTP: replies reach the
//! fake Twilio and show their history, bad requests name what is wrong, inbound messages
//! list newest first, an event is recorded once however often it is posted.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{TestApp, spawn_app};
use messaging_core::ingest::{IngestSource, UserFileFormat};
use reqwest::StatusCode;
use serde_json::{Value, json};

const AMAYA: &str = "+94771234501";
const KASUN: &str = "+94771234502";

/// Stages users from CSV, as an import would.
async fn users(app: &TestApp, csv: &str) {
    app.engine
        .ingest_users(
            std::io::Cursor::new(csv.as_bytes().to_vec()),
            UserFileFormat::Csv,
            IngestSource::Api,
        )
        .await
        .unwrap();
}

/// A WhatsApp message from `from`, as Twilio's inbound webhook delivers it.
async fn inbound(app: &TestApp, sid: &str, from: &str, body: &str) {
    let fields = BTreeMap::from([
        ("MessageSid".to_owned(), sid.to_owned()),
        ("From".to_owned(), format!("whatsapp:{from}")),
        ("Body".to_owned(), body.to_owned()),
        ("WaId".to_owned(), from.trim_start_matches('+').to_owned()),
    ]);
    app.engine.receive_inbound(fields).await.unwrap();
}

/// `POST /api/v1/events` with an `Idempotency-Key` header.
async fn post_event_with_key(app: &TestApp, key: &str, event: &Value) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/events", app.base))
        .header("Idempotency-Key", key)
        .json(event)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

/// The named field errors of a 422 answer.
fn fields(error: &Value) -> Vec<String> {
    error["error"]["details"]["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("no fields in {error}"))
        .iter()
        .map(|f| f["field"].as_str().unwrap().to_owned())
        .collect()
}

fn items(page: &Value) -> &Vec<Value> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {page}"))
}

#[tokio::test]
async fn replies_reach_twilio_and_show_their_history() {
    let app = spawn_app().await;
    users(&app, &format!("phone,name\n{AMAYA},Amaya\n{KASUN},Kasun\n")).await;
    inbound(&app, "SMin1", AMAYA, "where is my order?").await;

    let (status, reply) = app
        .post(
            "/api/v1/messages",
            &json!({ "user": AMAYA, "body": "On its way!" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["campaign_id"], json!(null));
    assert_eq!(reply["user"], AMAYA);
    assert_eq!(reply["body"], "On its way!");
    // Queued for the dispatcher, which may already have taken it by the time of the answer.
    let queued = ["pending", "queued", "sending", "sent", "delivered", "read"];
    assert!(
        queued.contains(&reply["status"].as_str().unwrap()),
        "{reply}"
    );
    let id = reply["id"].as_str().unwrap();

    app.until("the reply at Twilio", Duration::from_secs(10), async || {
        !app.twilio.messages().is_empty()
    })
    .await;
    let accepted = app.twilio.messages();
    assert_eq!(accepted[0].body.as_deref(), Some("On its way!"));
    assert_eq!(accepted[0].to, format!("whatsapp:{AMAYA}"));
    app.until(
        "the reply's SID recorded",
        Duration::from_secs(10),
        async || {
            let (_, message) = app.get(&format!("/api/v1/messages/{id}")).await;
            message["provider_sid"].is_string()
        },
    )
    .await;
    let (status, message) = app.get(&format!("/api/v1/messages/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(message["provider_sid"], accepted[0].sid.as_str());
    let history: Vec<_> = message["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(history[..4], ["pending", "queued", "sending", "sent"]);
    assert_eq!(message["decisions"][0]["step"], "whatsapp_window");

    // A template reply, rendered for the user.
    let (_, template) = app
        .post(
            "/api/v1/templates",
            &json!({ "name": "Thanks", "content": "Thank you, {{ name }}." }),
        )
        .await;
    let (status, templated) = app
        .post(
            "/api/v1/messages",
            &json!({ "user": AMAYA, "template_id": template["id"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{templated}");
    assert_eq!(templated["body"], "Thank you, Amaya.");
    app.until(
        "the template reply at Twilio",
        Duration::from_secs(10),
        async || app.twilio.messages().len() == 2,
    )
    .await;
    assert!(
        app.twilio
            .messages()
            .iter()
            .any(|m| m.body.as_deref() == Some("Thank you, Amaya."))
    );

    // Outside the window, free text is refused at once, saying what to send instead.
    let (status, refused) = app
        .post(
            "/api/v1/messages",
            &json!({ "user": KASUN, "body": "Hello?" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let field = &refused["error"]["details"]["fields"][0];
    assert_eq!(field["field"], "body", "{refused}");
    let reason = field["reason"].as_str().unwrap();
    assert!(
        reason.contains("24-hour window") && reason.contains("approved template"),
        "{reason}"
    );

    let (status, page) = app
        .get(&format!("/api/v1/messages?user=%2B{}", &AMAYA[1..]))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(items(&page).len(), 2);
    assert_eq!(items(&page)[0]["id"], templated["id"], "newest first");
    let (_, page) = app
        .get(&format!("/api/v1/messages?user=%2B{}", &KASUN[1..]))
        .await;
    assert_eq!(
        items(&page).len(),
        0,
        "nothing was queued for Kasun: {page}"
    );
    let (_, page) = app
        .get("/api/v1/messages?campaign_id=0190f1c2-7a4b-7c3d-9e8f-0123456789ab")
        .await;
    assert!(items(&page).is_empty());
    let (_, page) = app.get("/api/v1/messages?limit=1").await;
    assert_eq!(items(&page).len(), 1);
    assert!(page["next_cursor"].is_string());

    let (status, stats) = app.get("/api/v1/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["messages"], 2, "{stats}");
    assert_eq!(stats["by_status"]["skipped"], 0);
    assert_eq!(stats["inbound_messages"], 1);
    assert_eq!(stats["inbound_commands"], 0);
    assert_eq!(stats["opted_out_users"], 0);
    app.stop().await;
}

#[tokio::test]
async fn bad_replies_and_unknown_messages_answer_the_error_shape() {
    let app = spawn_app().await;
    users(&app, &format!("phone,name\n{AMAYA},Amaya\n")).await;
    let unknown = "0190f1c2-7a4b-7c3d-9e8f-0123456789ab";
    let refused = [
        (json!({ "user": AMAYA }), "body"),
        (
            json!({ "user": AMAYA, "body": "hi", "template_id": unknown }),
            "body",
        ),
        (json!({ "user": AMAYA, "body": "   " }), "body"),
        (json!({ "user": "12", "body": "hi" }), "user"),
        (json!({ "user": KASUN, "body": "hi" }), "user"),
        (
            json!({ "user": AMAYA, "template_id": "not-an-id" }),
            "template_id",
        ),
        (
            json!({ "user": AMAYA, "template_id": unknown }),
            "template_id",
        ),
    ];
    for (body, field) in refused {
        let (status, error) = app.post("/api/v1/messages", &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {error}");
        assert_eq!(fields(&error), [field], "{body}: {error}");
    }
    let (status, error) = app.post("/api/v1/messages", &json!({ "body": "hi" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(fields(&error), ["user"], "{error}");
    assert!(app.twilio.messages().is_empty());

    for id in ["nope", unknown] {
        let (status, error) = app.get(&format!("/api/v1/messages/{id}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(error["error"]["code"], "not_found");
    }
    let (status, _) = app.get("/api/v1/messages?status=lost").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, error) = app.get("/api/v1/messages?user=12").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&error), ["user"]);
    let (status, error) = app.get("/api/v1/messages?campaign_id=xyz").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&error), ["campaign_id"]);
    app.stop().await;
}

#[tokio::test]
async fn inbound_messages_are_listed_newest_first_and_filtered_by_user() {
    let app = spawn_app().await;
    users(&app, &format!("phone,name\n{AMAYA},Amaya\n")).await;
    inbound(&app, "SMin1", AMAYA, "hello").await;
    inbound(&app, "SMin2", KASUN, "subscribe dance").await;
    inbound(&app, "SMin3", AMAYA, "STOP").await;

    let (status, page) = app.get("/api/v1/inbound").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let sids: Vec<_> = items(&page)
        .iter()
        .map(|m| m["message_sid"].as_str().unwrap())
        .collect();
    assert_eq!(sids, ["SMin3", "SMin2", "SMin1"]);
    let stop = &items(&page)[0];
    assert_eq!(stop["from"], AMAYA);
    assert_eq!(stop["wa_id"], &AMAYA[1..]);
    assert_eq!(stop["body"], "STOP");
    assert_eq!(stop["command"], "STOP");
    assert_eq!(stop["topic"], json!(null));
    assert_eq!(stop["raw"]["From"], format!("whatsapp:{AMAYA}"));
    assert!(stop["received_at"].is_string());
    let subscribe = &items(&page)[1];
    assert_eq!(subscribe["command"], "SUBSCRIBE");
    assert_eq!(subscribe["topic"], "DANCE");
    assert_eq!(items(&page)[2]["command"], json!(null));

    let (_, amaya) = app.get("/api/v1/inbound?user=%2B94771234501").await;
    assert_eq!(items(&amaya).len(), 2);
    let (_, first) = app.get("/api/v1/inbound?limit=2").await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .get(&format!("/api/v1/inbound?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(items(&rest)[0]["message_sid"], "SMin1");
    let (status, _) = app.get("/api/v1/inbound?user=nobody").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (_, stats) = app.get("/api/v1/stats").await;
    assert_eq!(stats["inbound_messages"], 3, "{stats}");
    assert_eq!(stats["inbound_commands"], 2);
    assert_eq!(stats["opted_out_users"], 1, "Amaya sent STOP");
    assert_eq!(stats["messages"], 0);
    assert_eq!(stats["delivery_percent"], json!(null));
    app.stop().await;
}

#[tokio::test]
async fn events_are_recorded_once_listed_and_fetched() {
    let app = spawn_app().await;
    let event = json!({
        "user": AMAYA,
        "name": "cart_abandoned",
        "data": { "item": "a lamp" },
        "occurred_at": "2026-02-28T09:00:00Z",
    });
    let (status, first) = post_event_with_key(&app, "cart-1", &event).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["external_id"], "cart-1");
    assert_eq!(first["name"], "cart_abandoned");
    assert_eq!(first["user"], AMAYA);
    assert_eq!(first["data"], json!({ "item": "a lamp" }));
    assert_eq!(first["occurred_at"], "2026-02-28T09:00:00.000Z");
    let (status, again) = post_event_with_key(&app, "cart-1", &event).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], first["id"]);
    let (status, error) = post_event_with_key(
        &app,
        "cart-2",
        &json!({ "id": "cart-3", "name": "cart_abandoned" }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(fields(&error), ["id"]);

    let (status, alert) = app
        .post(
            "/api/v1/events",
            &json!({ "alert_name": "Dance Festival", "segment_rule": { "topic": "DANCE" },
                     "trigger_data": { "venue": "Galle Face" } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{alert}");
    assert_eq!(alert["segment_rule"], json!({ "topic": "DANCE" }));
    assert_eq!(alert["external_id"], json!(null));

    let (status, error) = app
        .post(
            "/api/v1/events",
            &json!({ "user": "12", "trigger_data": [1], "occurred_at": "yesterday" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(
        fields(&error),
        ["name", "user", "occurred_at", "trigger_data"]
    );
    let (status, _) = app
        .post(
            "/api/v1/events",
            &json!({ "name": "x", "segment_rule": { "all": "nope" } }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, page) = app.get("/api/v1/events").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let names: Vec<_> = items(&page)
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Dance Festival", "cart_abandoned"]);
    let id = first["id"].as_str().unwrap();
    let (status, fetched) = app.get(&format!("/api/v1/events/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched["external_id"], "cart-1");
    for unknown in ["nope", "0190f1c2-7a4b-7c3d-9e8f-0123456789ab"] {
        let (status, _) = app.get(&format!("/api/v1/events/{unknown}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    app.stop().await;
}

#[tokio::test]
async fn the_time_series_lists_every_bucket_of_its_window() {
    let app = spawn_app().await;
    let (status, hour) = app.get("/api/v1/stats/timeseries?window=hour").await;
    assert_eq!(status, StatusCode::OK, "{hour}");
    assert_eq!(hour["bucket_seconds"], 60);
    assert_eq!(hour["points"].as_array().unwrap().len(), 60);
    assert_eq!(hour["points"][59]["sent"], 0);
    let (_, week) = app.get("/api/v1/stats/timeseries?window=week").await;
    assert_eq!(week["points"].as_array().unwrap().len(), 84);
    let (status, _) = app.get("/api/v1/stats/timeseries?window=year").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    app.stop().await;
}

#[tokio::test]
async fn the_settings_give_the_webhook_urls_and_no_secret() {
    let app = common::spawn_app_with(common::Options {
        api_token: Some("token-secret".into()),
        ..common::Options::default()
    })
    .await;
    let (status, settings) = app.get("/api/v1/settings").await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings["provider"], "twilio");
    assert_eq!(
        settings["webhooks"]["inbound"],
        format!("{}/twilio/inbound", app.base)
    );
    assert_eq!(settings["api_token_required"], true);
    let text = settings.to_string();
    assert!(!text.contains("token-secret"), "{text}");
    assert!(!text.contains(&app.auth_token), "{text}");
    app.stop().await;
}
