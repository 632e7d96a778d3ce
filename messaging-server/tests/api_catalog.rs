//! Templates and segments over HTTP: create (201), read, list, replace, preview, delete, and
//! their main errors in the API's error shape.

mod common;

use common::spawn_app;
use messaging_core::ingest::IngestSource;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn templates_are_created_previewed_listed_and_deleted() {
    let app = spawn_app().await;
    let (status, created) = app
        .post(
            "/api/v1/templates",
            &json!({ "name": "Cart", "content": "Hi {{ name }}, {{ event.item }} waits." }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["placeholders"], json!(["event.item", "name"]));
    let id = created["id"].as_str().unwrap();

    let (status, preview) = app
        .post(
            &format!("/api/v1/templates/{id}/preview"),
            &json!({ "name": "Amaya", "event": { "item": "a lamp" } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["body"], "Hi Amaya, a lamp waits.");

    let (status, missing) = app
        .post(
            &format!("/api/v1/templates/{id}/preview"),
            &json!({ "name": "Amaya" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .contains("event.item"),
        "{missing}"
    );

    let (status, page) = app.get("/api/v1/templates?limit=10").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["next_cursor"], json!(null));

    let (status, replaced) = app
        .put(
            &format!("/api/v1/templates/{id}"),
            &json!({ "name": "Cart", "content": "Bye" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["placeholders"], json!([]));

    let (status, _) = app.delete(&format!("/api/v1/templates/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, gone) = app.get(&format!("/api/v1/templates/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(gone["error"]["code"], "not_found");
    app.stop().await;
}

#[tokio::test]
async fn bad_templates_and_bad_requests_answer_the_error_shape() {
    let app = spawn_app().await;
    let (status, error) = app
        .post(
            "/api/v1/templates",
            &json!({ "name": "x", "content": "Hi {{ name }" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["error"]["details"]["line"], 1, "{error}");
    let (status, error) = app
        .post_raw("/api/v1/templates", "application/json", "{not json")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["code"], "bad_request", "{error}");
    let (status, error) = app.get("/api/v1/templates?limit=5000").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    let (status, error) = app.get("/api/v1/no-such-thing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["error"]["code"], "not_found");
    app.stop().await;
}

#[tokio::test]
async fn segments_preview_count_and_list_members() {
    let app = spawn_app().await;
    app.engine
        .ingest_users(
            std::io::Cursor::new(
                b"phone,city\n+94771234501,Colombo\n+94771234502,Kandy\n".to_vec(),
            ),
            messaging_core::ingest::UserFileFormat::Csv,
            IngestSource::Api,
        )
        .await
        .unwrap();
    let rule = json!({ "attributes.city": "Colombo" });
    let (status, preview) = app
        .post("/api/v1/segments/preview", &json!({ "rule": rule }))
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["count"], 1);
    assert_eq!(preview["sample"][0]["phone"], "+94771234501");

    let (status, created) = app
        .post(
            "/api/v1/segments",
            &json!({ "name": "Colombo", "rule": rule }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, members) = app.get(&format!("/api/v1/segments/{id}/members")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(members["items"].as_array().unwrap().len(), 1);

    let bad = json!({ "name": "bad", "rule": { "all": [{ "field": "name", "op": "nope", "value": 1 }] } });
    let (status, error) = app.post("/api/v1/segments", &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["error"]["details"]["path"], "/all/0/op", "{error}");
    app.stop().await;
}

#[tokio::test]
async fn segments_take_long_in_lists_and_refuse_rules_over_the_limits() {
    let app = spawn_app().await;
    app.engine
        .ingest_users(
            std::io::Cursor::new(b"phone,code\n+94771234501,c9999\n+94771234502,other\n".to_vec()),
            messaging_core::ingest::UserFileFormat::Csv,
            messaging_core::ingest::IngestSource::Api,
        )
        .await
        .unwrap();
    let codes: Vec<String> = (0..10_000).map(|i| format!("c{i}")).collect();
    let rule = json!({ "attribute": "code", "op": "in", "value": codes });
    let (status, created) = app
        .post(
            "/api/v1/segments",
            &json!({ "name": "codes", "rule": rule }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, members) = app.get(&format!("/api/v1/segments/{id}/members")).await;
    assert_eq!(status, StatusCode::OK, "{members}");
    assert_eq!(members["items"][0]["phone"], "+94771234501");
    assert_eq!(members["items"].as_array().unwrap().len(), 1);
    let (status, preview) = app
        .post("/api/v1/segments/preview", &json!({ "rule": rule }))
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["count"], 1);

    let many: Vec<_> = (0..2_000)
        .map(|i| json!({ "attribute": "code", "op": "eq", "value": format!("c{i}") }))
        .collect();
    let rule = json!({ "any": many });
    for (path, body) in [
        ("/api/v1/segments", json!({ "name": "many", "rule": rule })),
        ("/api/v1/segments/preview", json!({ "rule": rule })),
    ] {
        let (status, error) = app.post(path, &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {error}");
        assert_eq!(error["error"]["details"]["path"], "/any", "{error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains("at most 500 conditions"), "{message}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_documented_segment_example_is_accepted() {
    let app = spawn_app().await;
    let (status, openapi) = app.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let example = &openapi["components"]["schemas"]["SegmentInput"]["example"];
    assert!(
        example.is_object(),
        "no example in {}",
        openapi["components"]["schemas"]["SegmentInput"]
    );
    let (status, created) = app.post("/api/v1/segments", example).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    app.stop().await;
}

#[tokio::test]
async fn the_api_token_is_required_when_set_and_the_docs_are_open() {
    let app = common::spawn_app_with(common::Options {
        api_token: Some("s3cret".into()),
        ..common::Options::default()
    })
    .await;
    let (status, _) = app.get("/api/v1/templates").await;
    assert_eq!(status, StatusCode::OK);
    let anonymous = reqwest::get(format!("{}/api/v1/templates", app.base))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let spec = reqwest::get(format!("{}/openapi.json", app.base))
        .await
        .unwrap();
    assert_eq!(spec.status(), StatusCode::OK);
    let spec: serde_json::Value = spec.json().await.unwrap();
    assert!(spec["paths"]["/templates"]["post"].is_object());
    assert_eq!(spec["servers"][0]["url"], "/api/v1");
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let ui = reqwest::get(format!("{}/apidocs/", app.base))
        .await
        .unwrap();
    assert!(ui.text().await.unwrap().contains("swagger"));
    app.stop().await;
}

#[tokio::test]
async fn a_cursor_that_no_page_gave_is_a_bad_request() {
    let app = spawn_app().await;
    let (status, error) = app.get("/api/v1/messages?cursor=%2A%F0%91%B3%8D").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cursor"),
        "{error}"
    );
    app.stop().await;
}

#[tokio::test]
async fn templates_that_would_never_finish_are_refused_or_stopped_within_budget() {
    let app = spawn_app().await;
    let endless =
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}";
    let (status, error) = app
        .post(
            "/api/v1/templates",
            &json!({"name": "endless", "content": endless}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["error"]["details"]["field"], "content", "{error}");

    // Harmless without data, endless with it: saved, and its preview stops at the budget.
    let data_driven = "{% for i in range(attributes.n) %}{% for j in range(attributes.n) %}x\
                       {% endfor %}{% endfor %}";
    let (status, created) = app
        .post(
            "/api/v1/templates",
            &json!({"name": "data driven", "content": data_driven}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let started = std::time::Instant::now();
    let (status, error) = app
        .post(
            &format!("/api/v1/templates/{id}/preview"),
            &json!({"attributes": {"n": 100000}}),
        )
        .await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("1600 characters") || message.contains("work"),
        "{message}"
    );
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
}
