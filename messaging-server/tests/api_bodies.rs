//! What a first-time user of the API trips over, answered plainly: a request body that does
//! not fit its schema answers 422 naming every offending field (missing, mistyped, out of
//! range, unknown) at once, by its path; a body that is not JSON says where it breaks; every
//! instant in an answer is written the same way.

mod common;

use common::{TestApp, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The fields named in an error answer, with their reasons.
fn fields(error: &Value) -> Vec<(String, String)> {
    let mut named: Vec<(String, String)> = error["error"]["details"]["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("no fields in {error}"))
        .iter()
        .map(|f| {
            let text = |key: &str| f[key].as_str().unwrap_or_default().to_owned();
            (text("field"), text("reason"))
        })
        .collect();
    named.sort();
    named
}

fn names(error: &Value) -> Vec<String> {
    fields(error).into_iter().map(|(field, _)| field).collect()
}

async fn template(app: &TestApp) -> String {
    let (status, template) = app
        .post(
            "/api/v1/templates",
            &json!({ "name": "Hello", "content": "Hi {{ name }}" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{template}");
    template["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_missing_required_field_answers_422_naming_it() {
    let app = spawn_app().await;
    let (status, error) = app
        .post("/api/v1/templates", &json!({ "name": "Hello" }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["error"]["code"], "invalid");
    assert_eq!(names(&error), ["content"], "{error}");
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_field_is_refused_by_name_and_nothing_is_created() {
    let app = spawn_app().await;
    let (status, error) = app
        .post(
            "/api/v1/templates",
            &json!({ "name": "Hello", "content": "Hi", "contnet_sid": "HX0123" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    let named = fields(&error);
    assert_eq!(named.len(), 1, "{error}");
    assert_eq!(named[0].0, "contnet_sid");
    assert!(named[0].1.contains("unknown"), "{error}");
    assert!(named[0].1.contains("content_sid"), "a suggestion: {error}");
    let (_, templates) = app.get("/api/v1/templates").await;
    assert_eq!(templates["items"], json!([]), "{templates}");
    app.stop().await;
}

#[tokio::test]
async fn every_problem_of_a_body_is_named_in_one_answer() {
    let app = spawn_app().await;
    let (status, error) = app
        .post(
            "/api/v1/campaigns",
            &json!({ "template_id": 42, "rate_limit_per_second": 0 }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(
        names(&error),
        ["name", "rate_limit_per_second", "template_id"],
        "{error}"
    );
    app.stop().await;
}

#[tokio::test]
async fn nested_fields_are_named_by_their_path() {
    let app = spawn_app().await;
    let template_id = template(&app).await;
    let (status, error) = app
        .post(
            "/api/v1/campaigns",
            &json!({
                "name": "Nested",
                "template_id": template_id,
                "trigger": { "type": "sometimes" },
                "quiet_hours": { "end": "07:00" },
                "schedule": { "start_at": null, "ends_at": "2030-01-01T00:00:00Z" },
            }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(
        names(&error),
        ["quiet_hours.start", "schedule.ends_at", "trigger.type"],
        "{error}"
    );
    let (status, error) = app
        .post(
            "/api/v1/templates",
            &json!({ "name": "Vars", "content": "Hi", "content_variables": { "1": 7 } }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(names(&error), ["content_variables.1"], "{error}");
    app.stop().await;
}

#[tokio::test]
async fn a_body_that_is_not_json_answers_400_with_its_position() {
    let app = spawn_app().await;
    let (status, error) = app
        .post_raw(
            "/api/v1/templates",
            "application/json",
            "{\n  \"name\": \"x\",\n  content: \"y\"\n}",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["error"]["code"], "bad_request");
    assert_eq!(error["error"]["details"]["line"], 3, "{error}");
    assert_eq!(error["error"]["details"]["column"], 3, "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("line 3 column 3"), "{message}");
    app.stop().await;
}

/// Whether `text` is an RFC 3339 UTC instant with exactly three fractional digits and `Z`.
fn is_api_instant(text: &str) -> bool {
    let Some((seconds, fraction)) = text.strip_suffix('Z').and_then(|t| t.split_once('.')) else {
        return false;
    };
    fraction.len() == 3
        && fraction.bytes().all(|b| b.is_ascii_digit())
        && chrono::NaiveDateTime::parse_from_str(seconds, "%Y-%m-%dT%H:%M:%S").is_ok()
}

#[tokio::test]
async fn a_create_and_a_read_write_the_same_instants_in_utc_with_milliseconds() {
    let app = spawn_app().await;
    let (status, created) = app
        .post(
            "/api/v1/templates",
            &json!({ "name": "Hello", "content": "Hi {{ name }}" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let (_, read) = app.get(&format!("/api/v1/templates/{id}")).await;
    for field in ["created_at", "updated_at"] {
        let text = created[field].as_str().unwrap();
        assert!(is_api_instant(text), "{field}: {text}");
        assert_eq!(created[field], read[field], "{field}");
    }

    let (status, user) = app
        .post("/api/v1/users", &json!({ "phone": "+94771234567" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let (_, read) = app.get("/api/v1/users/%2B94771234567").await;
    assert_eq!(user["created_at"], read["created_at"]);
    assert!(
        is_api_instant(user["created_at"].as_str().unwrap()),
        "{user}"
    );

    // An instant given with an offset is answered in UTC.
    let (status, campaign) = app
        .post(
            "/api/v1/campaigns",
            &json!({ "name": "Later", "template_id": id,
                     "schedule": { "start_at": "2030-01-01T05:30:00+05:30" } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{campaign}");
    assert_eq!(campaign["schedule"]["start_at"], "2030-01-01T00:00:00.000Z");
    assert!(is_api_instant(campaign["created_at"].as_str().unwrap()));

    // A segment's sample shows users as the user resource does.
    let (_, preview) = app
        .post(
            "/api/v1/segments/preview",
            &json!({ "rule": { "consent": "OPT_IN" } }),
        )
        .await;
    assert_eq!(
        preview["sample"][0]["created_at"], read["created_at"],
        "{preview}"
    );
    app.stop().await;
}

#[tokio::test]
async fn events_have_their_own_group_in_the_api_docs() {
    let app = spawn_app().await;
    let (_, spec) = app.get("/openapi.json").await;
    for (path, method) in [
        ("/events", "post"),
        ("/events", "get"),
        ("/events/{id}", "get"),
    ] {
        assert_eq!(
            spec["paths"][path][method]["tags"],
            json!(["Events"]),
            "{path}"
        );
    }
    assert_eq!(spec["paths"]["/inbound"]["get"]["tags"], json!(["Inbound"]));
    app.stop().await;
}
