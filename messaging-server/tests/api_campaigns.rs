//! Campaigns over HTTP: create (201), read, list, replace, delete, the lifecycle moves and
//! the ones refused (409), previews, and the whole way from a launch (or an event) through
//! the dispatcher to the fake Twilio and back into the campaign's messages and statistics.

mod common;

use std::time::Duration;

use common::{TestApp, spawn_app};
use messaging_core::ingest::{IngestSource, UserFileFormat};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// An approved template's Content SID, as Twilio would issue it.
const CONTENT_SID: &str = "HX0123456789abcdef0123456789abcdef";

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

/// Creates a template over HTTP and answers its id.
async fn template(app: &TestApp, body: Value) -> String {
    let (status, created) = app.post("/api/v1/templates", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

/// Creates a campaign over HTTP and answers it.
async fn campaign(app: &TestApp, body: Value) -> Value {
    let (status, created) = app.post("/api/v1/campaigns", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
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

fn count(stats: &Value, statuses: &[&str]) -> u64 {
    statuses
        .iter()
        .map(|s| stats["by_status"][s].as_u64().unwrap())
        .sum()
}

#[tokio::test]
async fn a_launched_campaign_is_sent_through_twilio_and_reported() {
    let app = spawn_app().await;
    users(
        &app,
        "phone,name,consent_state,topics\n\
         +94771234501,Amaya,OPT_IN,DANCE\n\
         +94771234502,Kasun,OPT_IN,DANCE\n\
         +94771234503,Nimal,OPT_OUT,DANCE\n\
         +94771234504,Dilini,OPT_IN,\n",
    )
    .await;
    let template_id = template(
        &app,
        json!({ "name": "Hello", "content": "Hi {{ name }}!", "content_sid": CONTENT_SID }),
    )
    .await;
    let created = campaign(
        &app,
        json!({ "name": "Dance news", "topic": "dance", "template_id": template_id }),
    )
    .await;
    assert_eq!(created["status"], "draft");
    assert_eq!(created["topic"], "DANCE");
    assert_eq!(created["trigger"], json!({ "type": "manual" }));
    assert_eq!(
        created["schedule"],
        json!({ "start_at": null, "end_at": null })
    );
    let id = created["id"].as_str().unwrap();

    let (status, preview) = app.get(&format!("/api/v1/campaigns/{id}/preview")).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["recipients"], 3, "{preview}");
    assert_eq!(preview["opted_in"], 2);
    let sample = preview["sample"].as_array().unwrap();
    assert_eq!(sample.len(), 3);
    assert_eq!(sample[0]["user"], "+94771234501");
    assert_eq!(sample[0]["body"], "Hi Amaya!");
    assert_eq!(sample[0]["send_as"], "template");
    assert!(
        sample[2]["skip_reason"]
            .as_str()
            .unwrap()
            .contains("opted out"),
        "{preview}"
    );
    assert!(app.twilio.messages().is_empty(), "a preview sends nothing");

    let (status, launched) = app
        .post(&format!("/api/v1/campaigns/{id}/launch"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{launched}");
    assert_eq!(launched["status"], "running");
    assert_eq!(launched["fanned_out"], 3);

    app.until("two sends to Twilio", Duration::from_secs(10), async || {
        app.twilio.messages().len() >= 2
    })
    .await;
    app.until(
        "the campaign's sends recorded",
        Duration::from_secs(10),
        async || {
            let (_, stats) = app.get(&format!("/api/v1/campaigns/{id}/stats")).await;
            count(&stats, &["sent", "delivered", "read"]) == 2 && count(&stats, &["skipped"]) == 1
        },
    )
    .await;
    let accepted = app.twilio.messages();
    assert_eq!(accepted.len(), 2, "the opted-out subscriber got nothing");
    assert!(
        accepted
            .iter()
            .all(|m| m.content_sid.as_deref() == Some(CONTENT_SID))
    );

    let (status, stats) = app.get(&format!("/api/v1/campaigns/{id}/stats")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["messages"], 3, "{stats}");
    assert_eq!(stats["opted_out_users"], json!(null));

    let (status, skipped) = app
        .get(&format!("/api/v1/campaigns/{id}/messages?status=skipped"))
        .await;
    assert_eq!(status, StatusCode::OK, "{skipped}");
    let skipped = skipped["items"].as_array().unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["user"], "+94771234503");
    assert!(
        skipped[0].get("decisions").is_none(),
        "lists leave them out"
    );
    let (_, nimal) = app
        .get(&format!(
            "/api/v1/messages/{}",
            skipped[0]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(nimal["decisions"][0]["step"], "consent", "{nimal}");
    assert_eq!(nimal["decisions"][0]["outcome"], "skipped");
    assert!(
        nimal["decisions"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("opted out")
    );

    let (_, amaya) = app
        .get(&format!(
            "/api/v1/campaigns/{id}/messages?user=%2B94771234501"
        ))
        .await;
    let amaya = &amaya["items"].as_array().unwrap()[0];
    assert_eq!(amaya["campaign_id"], id);
    let (status, message) = app
        .get(&format!(
            "/api/v1/messages/{}",
            amaya["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{message}");
    let sent_to_amaya = accepted
        .iter()
        .find(|m| m.to.ends_with("+94771234501"))
        .unwrap();
    assert_eq!(message["provider_sid"], sent_to_amaya.sid.as_str());
    assert_eq!(message["body"], "Hi Amaya!");
    assert_eq!(message["attempts"], 1);
    let history: Vec<&str> = message["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        history[..4],
        ["pending", "queued", "sending", "sent"],
        "{message}"
    );
    assert!(message["history"][3]["at"].is_string());
    assert_eq!(
        message["decisions"][0]["step"], "whatsapp_window",
        "{message}"
    );
    assert_eq!(message["decisions"][0]["outcome"], "queued");
    assert!(
        message["decisions"][0]["reason"]
            .as_str()
            .unwrap()
            .contains(CONTENT_SID)
    );

    app.until(
        "the campaign's completion",
        Duration::from_secs(10),
        async || {
            let (_, campaign) = app.get(&format!("/api/v1/campaigns/{id}")).await;
            campaign["status"] == "completed"
        },
    )
    .await;
    let (status, error) = app
        .post(&format!("/api/v1/campaigns/{id}/launch"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert_eq!(error["error"]["code"], "conflict");
    app.stop().await;
}

#[tokio::test]
async fn an_event_campaign_created_scheduled_sends_once_per_event() {
    let app = spawn_app().await;
    users(
        &app,
        "phone,name,topics\n+94771234501,Amaya,DANCE\n+94771234502,Kasun,\n",
    )
    .await;
    let template_id = template(
        &app,
        json!({
            "name": "Festival",
            "content": "Hi {{ name }}, see you at {{ event.venue }}!",
            "content_sid": CONTENT_SID,
            "content_variables": { "1": "{{ name }}", "2": "{{ event.venue }}" },
        }),
    )
    .await;
    let created = campaign(
        &app,
        json!({
            "name": "Festival alert",
            "template_id": template_id,
            "trigger": { "type": "event", "event": "Dance Festival" },
            "status": "scheduled",
        }),
    )
    .await;
    assert_eq!(created["status"], "scheduled");
    assert_eq!(
        created["trigger"],
        json!({ "type": "event", "event": "Dance Festival" })
    );
    let id = created["id"].as_str().unwrap();

    let (_, preview) = app.get(&format!("/api/v1/campaigns/{id}/preview")).await;
    assert_eq!(preview["event"], json!(null));
    assert!(
        preview["sample"][0]["skip_reason"]
            .as_str()
            .unwrap()
            .contains("event.venue"),
        "{preview}"
    );

    let event = json!({
        "id": "fest-1",
        "alert_name": "Dance Festival",
        "segment_rule": { "topic": "DANCE" },
        "trigger_data": { "venue": "Galle Face" },
    });
    let (status, recorded) = app.post("/api/v1/events", &event).await;
    assert_eq!(status, StatusCode::CREATED, "{recorded}");
    assert_eq!(recorded["external_id"], "fest-1");
    app.until(
        "the event's message at Twilio",
        Duration::from_secs(10),
        async || !app.twilio.messages().is_empty(),
    )
    .await;
    let accepted = app.twilio.messages();
    assert_eq!(accepted.len(), 1, "only the DANCE subscriber: {accepted:?}");
    assert!(accepted[0].to.ends_with("+94771234501"));
    let variables: Value =
        serde_json::from_str(accepted[0].content_variables.as_deref().unwrap()).unwrap();
    assert_eq!(variables, json!({ "1": "Amaya", "2": "Galle Face" }));

    let (status, repeated) = app.post("/api/v1/events", &event).await;
    assert_eq!(status, StatusCode::OK, "a repeat is not a second event");
    assert_eq!(repeated["id"], recorded["id"]);
    let (_, messages) = app.get(&format!("/api/v1/campaigns/{id}/messages")).await;
    let messages = messages["items"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "the repeat triggered nothing");
    assert_eq!(messages[0]["body"], "Hi Amaya, see you at Galle Face!");

    let (_, preview) = app.get(&format!("/api/v1/campaigns/{id}/preview")).await;
    assert_eq!(preview["event"]["external_id"], "fest-1");
    assert_eq!(
        preview["sample"][0]["body"],
        "Hi Amaya, see you at Galle Face!"
    );
    app.stop().await;
}

#[tokio::test]
async fn campaigns_move_through_their_lifecycle_and_refuse_illegal_moves() {
    let app = spawn_app().await;
    let template_id = template(&app, json!({ "name": "t", "content": "Hello" })).await;
    let created = campaign(
        &app,
        json!({
            "name": "Carts",
            "template_id": template_id,
            "trigger": { "type": "event", "event": "cart_abandoned" },
        }),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let path = |action: &str| format!("/api/v1/campaigns/{id}/{action}");

    for refused in ["pause", "resume"] {
        let (status, error) = app.post(&path(refused), &json!({})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{refused} a draft: {error}");
    }
    let (status, launched) = app.post(&path("launch"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{launched}");
    assert_eq!(launched["status"], "running");
    assert_eq!(
        launched["fanned_out"],
        json!(null),
        "an event campaign only listens"
    );
    let (status, _) = app.post(&path("launch"), &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = app.delete(&format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(status, StatusCode::CONFLICT, "a running campaign stays");
    let edit = json!({ "name": "Abandoned carts", "template_id": template_id,
                       "trigger": { "type": "event", "event": "cart_abandoned" } });
    let (status, _) = app.put(&format!("/api/v1/campaigns/{id}"), &edit).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a running campaign is not edited"
    );

    let (status, paused) = app.post(&path("pause"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["status"], "paused");
    let (status, edited) = app.put(&format!("/api/v1/campaigns/{id}"), &edit).await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["name"], "Abandoned carts");
    assert_eq!(edited["status"], "paused");
    let (status, resumed) = app.post(&path("resume"), &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resumed["status"], "running");
    let (status, cancelled) = app.post(&path("cancel"), &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cancelled["status"], "cancelled");
    for refused in ["launch", "pause", "resume", "cancel"] {
        let (status, _) = app.post(&path(refused), &json!({})).await;
        assert_eq!(
            status,
            StatusCode::CONFLICT,
            "{refused} a cancelled campaign"
        );
    }

    let (status, _) = app.delete(&format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, gone) = app.get(&format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(gone["error"]["code"], "not_found");
    app.stop().await;
}

#[tokio::test]
async fn campaigns_are_listed_filtered_and_paged() {
    let app = spawn_app().await;
    let template_id = template(&app, json!({ "name": "t", "content": "Hello" })).await;
    for name in ["Spring sale", "Summer sale", "Welcome"] {
        campaign(&app, json!({ "name": name, "template_id": template_id })).await;
    }
    let scheduled = campaign(
        &app,
        json!({ "name": "Later", "template_id": template_id, "status": "scheduled",
                "schedule": { "start_at": "2099-01-01T09:00:00+01:00" },
                "quiet_hours": { "start": "22:00", "end": "7:30" } }),
    )
    .await;
    assert_eq!(
        scheduled["schedule"]["start_at"],
        "2099-01-01T08:00:00.000Z"
    );
    assert_eq!(
        scheduled["quiet_hours"],
        json!({ "start": "22:00", "end": "07:30" })
    );

    let (status, page) = app.get("/api/v1/campaigns?q=sale").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let names: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Spring sale", "Summer sale"]);
    let (_, page) = app.get("/api/v1/campaigns?status=scheduled").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["name"], "Later");

    let (_, first) = app.get("/api/v1/campaigns?limit=3").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 3);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let (_, second) = app
        .get(&format!("/api/v1/campaigns?limit=3&cursor={cursor}"))
        .await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["next_cursor"], json!(null));
    app.stop().await;
}

#[tokio::test]
async fn bad_campaigns_and_unknown_ids_answer_the_error_shape() {
    let app = spawn_app().await;
    let template_id = template(&app, json!({ "name": "t", "content": "Hello" })).await;
    let (status, error) = app
        .post(
            "/api/v1/campaigns",
            &json!({
                "name": "x",
                "template_id": "not-an-id",
                "topic": "no spaces allowed",
                "trigger": { "type": "event" },
                "quiet_hours": { "start": "25:00", "end": "07:00" },
            }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(
        fields(&error),
        ["topic", "template_id", "trigger.event", "quiet_hours.start"]
    );

    let unknown = "0190f1c2-7a4b-7c3d-9e8f-0123456789ab";
    let (status, error) = app
        .post(
            "/api/v1/campaigns",
            &json!({ "name": " ", "template_id": unknown,
                     "schedule": { "start_at": "2030-01-02T00:00:00Z",
                                   "end_at": "2030-01-01T00:00:00Z" } }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(fields(&error), ["name", "template_id", "schedule.end_at"]);
    let (status, error) = app
        .post(
            "/api/v1/campaigns",
            &json!({ "name": "x", "template_id": template_id, "status": "running" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(fields(&error), ["status"]);
    let (status, error) = app
        .post(
            "/api/v1/campaigns",
            &json!({ "name": "x", "template_id": template_id,
                     "schedule": { "start_at": "soon", "end_at": "2030-01-01" } }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(fields(&error), ["schedule.start_at", "schedule.end_at"]);

    for (malformed, field) in [
        (json!({ "template_id": template_id }), "name"),
        (
            json!({ "name": "x", "template_id": template_id, "status": "someday" }),
            "status",
        ),
    ] {
        let (status, error) = app.post("/api/v1/campaigns", &malformed).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{malformed}: {error}"
        );
        assert_eq!(fields(&error), [field], "{malformed}: {error}");
    }
    let (status, _) = app.get("/api/v1/campaigns?status=someday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    for path in ["", "/preview", "/messages", "/stats"] {
        for id in ["nope", unknown] {
            let (status, error) = app.get(&format!("/api/v1/campaigns/{id}{path}")).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{id}{path}: {error}");
            assert_eq!(error["error"]["code"], "not_found");
        }
    }
    for action in ["launch", "pause", "resume", "cancel"] {
        let (status, _) = app
            .post(&format!("/api/v1/campaigns/{unknown}/{action}"), &json!({}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{action}");
    }
    let (status, _) = app.delete(&format!("/api/v1/campaigns/{unknown}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .put(
            &format!("/api/v1/campaigns/{unknown}"),
            &json!({ "name": "x", "template_id": template_id }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn a_campaign_whose_recipients_are_outside_the_window_says_why_and_what_to_do() {
    let app = spawn_app().await;
    users(
        &app,
        "phone,name,consent_state\n+94771234501,Amaya,OPT_IN\n+94771234502,Kasun,OPT_IN\n",
    )
    .await;
    let template = template(&app, json!({"name": "t", "content": "Hi {{ name }}"})).await;
    let created = campaign(&app, json!({"name": "c", "template_id": template})).await;
    let id = created["id"].as_str().unwrap();

    let (_, preview) = app.get(&format!("/api/v1/campaigns/{id}/preview")).await;
    let reason = preview["sample"][0]["skip_reason"].as_str().unwrap();
    assert!(reason.contains("content_sid"), "{preview}");
    let (status, _) = app
        .post(&format!("/api/v1/campaigns/{id}/launch"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let path = format!("/api/v1/campaigns/{id}/stats");
    app.until("both skipped", Duration::from_secs(10), async || {
        count(&app.get(&path).await.1, &["skipped"]) == 2
    })
    .await;
    let (_, stats) = app.get(&path).await;
    let by = &stats["skipped_by_step"][0];
    assert_eq!(
        (by["step"].as_str(), by["count"].as_u64()),
        (Some("whatsapp_window"), Some(2))
    );
    let reason = by["reason"].as_str().unwrap();
    assert!(
        reason.contains("wait for them to write in") && reason.contains("content_sid"),
        "{reason}"
    );
}

#[tokio::test]
async fn an_event_for_a_draft_campaign_says_no_campaign_listens_until_it_is_launched() {
    let app = spawn_app().await;
    users(
        &app,
        "phone,name,consent_state\n+94771234501,Amaya,OPT_IN\n",
    )
    .await;
    let template_id = template(&app, json!({"name": "t", "content": "Hi {{ name }}"})).await;
    let draft = campaign(
        &app,
        json!({"name": "Cart reminder", "template_id": template_id,
               "trigger": {"type": "event", "event": "cart_abandoned"}}),
    )
    .await;
    assert_eq!(draft["status"], "draft");
    let id = draft["id"].as_str().unwrap();

    let (status, answer) = app
        .post(
            "/api/v1/events",
            &json!({"id": "c1", "name": "cart_abandoned"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(
        answer["external_id"], "c1",
        "the event is answered: {answer}"
    );
    assert_eq!(answer["runs"], json!([]));
    let note = answer["note"].as_str().unwrap();
    assert!(
        note.contains("no campaign listens for `cart_abandoned`"),
        "{note}"
    );
    assert!(note.contains("Cart reminder"), "{note}");
    let idle = &answer["idle_listeners"][0];
    assert_eq!(idle["campaign_id"], id, "{answer}");
    assert_eq!(idle["campaign_name"], "Cart reminder");
    assert_eq!(idle["status"], "draft");
    assert_eq!(idle["action"], "launch");
    assert_eq!(
        idle["request"],
        format!("POST /api/v1/campaigns/{id}/launch")
    );

    let (status, launched) = app
        .post(&format!("/api/v1/campaigns/{id}/launch"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{launched}");
    let (status, answer) = app
        .post(
            "/api/v1/events",
            &json!({"id": "c2", "name": "cart_abandoned"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let run = &answer["runs"][0];
    assert_eq!(run["campaign_id"], id, "{answer}");
    assert_eq!(run["campaign_name"], "Cart reminder");
    assert!(run["run_id"].is_string());
    assert_eq!(run["messages"], 1, "{answer}");
    assert_eq!(answer["note"], Value::Null);

    let (status, again) = app
        .post(
            "/api/v1/events",
            &json!({"id": "c2", "name": "cart_abandoned"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], answer["id"]);
    assert_eq!(again["runs"], json!([]));
    assert!(
        again["note"].as_str().unwrap().contains("nothing again"),
        "{again}"
    );
    app.stop().await;
}
