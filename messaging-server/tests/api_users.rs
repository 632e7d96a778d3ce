//! Users, subscriptions and topics over HTTP: create (201), read, list with filters and
//! cursors, replace, merge, delete, subscribe, and their main errors in the API's error shape.

mod common;

use common::{TestApp, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

const AMAYA: &str = "+94771234567";

/// The path of a user, with the `+` URL-encoded as clients must send it.
fn user_path(phone: &str) -> String {
    format!("/api/v1/users/{}", phone.replace('+', "%2B"))
}

async fn create(app: &TestApp, user: Value) -> Value {
    let (status, created) = app.post("/api/v1/users", &user).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

async fn subscribe(app: &TestApp, phone: &str, topic: &str) -> (StatusCode, Value) {
    app.put(
        &format!("{}/subscriptions/{topic}", user_path(phone)),
        &json!(null),
    )
    .await
}

fn phones(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["phone"].as_str().unwrap())
        .collect()
}

fn invalid_fields(error: &Value) -> Vec<&str> {
    error["error"]["details"]["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("no invalid fields in {error}"))
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_created_user_is_answered_whole_and_found_by_any_spelling_of_the_phone() {
    let app = spawn_app().await;
    let created = create(
        &app,
        json!({
            "phone": "whatsapp:+94 77 123 4567",
            "name": "Amaya",
            "attributes": { "city": "Colombo", "vip": true },
            "timezone": "asia/colombo",
            "locale": "si-LK",
        }),
    )
    .await;
    assert_eq!(created["phone"], AMAYA);
    assert_eq!(created["id"], AMAYA);
    assert_eq!(created["consent_state"], "OPT_IN");
    assert_eq!(created["timezone"], "Asia/Colombo");
    assert_eq!(
        created["attributes"],
        json!({ "city": "Colombo", "vip": true })
    );
    assert_eq!(created["topics"], json!([]));
    assert_eq!(created["last_inbound_at"], json!(null));
    assert!(created["created_at"].is_string() && created["updated_at"].is_string());

    for path in [
        "/api/v1/users/%2B94771234567",
        "/api/v1/users/+94771234567",
        "/api/v1/users/94771234567",
        "/api/v1/users/whatsapp:%2B94771234567",
    ] {
        let (status, user) = app.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {user}");
        assert_eq!(user, created, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn creating_a_phone_that_exists_is_a_conflict_and_changes_nothing() {
    let app = spawn_app().await;
    let created = create(&app, json!({ "phone": AMAYA, "name": "Amaya" })).await;
    let (status, error) = app
        .post(
            "/api/v1/users",
            &json!({ "phone": "+94 77 123 4567", "name": "Someone else" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert_eq!(error["error"]["code"], "conflict");
    let (_, stored) = app.get(&user_path(AMAYA)).await;
    assert_eq!(stored, created);
    app.stop().await;
}

#[tokio::test]
async fn patch_merges_attributes_key_by_key_and_keeps_what_is_not_given() {
    let app = spawn_app().await;
    create(
        &app,
        json!({
            "phone": AMAYA,
            "name": "Amaya",
            "locale": "en",
            "attributes": { "city": "Colombo", "tier": "gold" },
        }),
    )
    .await;
    let (status, patched) = app
        .patch(
            &user_path(AMAYA),
            &json!({
                "attributes": { "tier": "platinum", "pets": 2 },
                "consent_state": "OPT_OUT",
                "name": null,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(
        patched["attributes"],
        json!({ "city": "Colombo", "tier": "platinum", "pets": 2 })
    );
    assert_eq!(patched["consent_state"], "OPT_OUT");
    assert_eq!(patched["name"], "Amaya");
    assert_eq!(patched["locale"], "en");
    let (_, stored) = app.get(&user_path(AMAYA)).await;
    assert_eq!(stored, patched);

    let (status, error) = app
        .patch(&user_path("+94770000000"), &json!({ "name": "Nobody" }))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    let (status, _) = app.get(&user_path("+94770000000")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a PATCH must not create");
    app.stop().await;
}

#[tokio::test]
async fn put_replaces_the_whole_user_but_keeps_consent_and_subscriptions_unless_given() {
    let app = spawn_app().await;
    create(
        &app,
        json!({
            "phone": AMAYA,
            "name": "Amaya",
            "consent_state": "OPT_OUT",
            "attributes": { "city": "Colombo", "tier": "gold" },
            "locale": "en",
        }),
    )
    .await;
    let (status, _) = subscribe(&app, AMAYA, "dance").await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, replaced) = app
        .put(
            &user_path(AMAYA),
            &json!({ "name": "Amaya Perera", "attributes": { "city": "Kandy" } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["name"], "Amaya Perera");
    assert_eq!(replaced["attributes"], json!({ "city": "Kandy" }));
    assert_eq!(replaced["locale"], json!(null));
    assert_eq!(replaced["consent_state"], "OPT_OUT", "never re-opted in");
    assert_eq!(replaced["topics"], json!(["DANCE"]));

    let (status, replaced) = app
        .put(&user_path(AMAYA), &json!({ "consent_state": "opt_in" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["consent_state"], "OPT_IN");
    assert_eq!(replaced["attributes"], json!({}));
    app.stop().await;
}

#[tokio::test]
async fn put_creates_an_absent_user_with_201() {
    let app = spawn_app().await;
    let (status, created) = app
        .put(
            "/api/v1/users/94771234567",
            &json!({ "phone": AMAYA, "name": "Amaya" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["phone"], AMAYA);
    assert_eq!(created["consent_state"], "OPT_IN");
    let (status, _) = app.get(&user_path(AMAYA)).await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn a_deleted_user_is_gone_with_their_subscriptions() {
    let app = spawn_app().await;
    create(&app, json!({ "phone": AMAYA })).await;
    subscribe(&app, AMAYA, "DANCE").await;
    let (status, body) = app.delete(&user_path(AMAYA)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, json!(null));
    let (status, gone) = app.get(&user_path(AMAYA)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(gone["error"]["code"], "not_found");
    let (status, _) = app.delete(&user_path(AMAYA)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, topics) = app.get("/api/v1/topics").await;
    assert_eq!(topics["items"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn unparsable_phones_and_values_answer_422_naming_the_field() {
    let app = spawn_app().await;
    let (status, error) = app
        .post("/api/v1/users", &json!({ "phone": "0771234567" }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["error"]["code"], "invalid");
    assert_eq!(invalid_fields(&error), ["phone"]);
    let reason = error["error"]["details"]["fields"][0]["reason"]
        .as_str()
        .unwrap();
    assert!(reason.contains("must start with '+'"), "{reason}");

    for path in ["/api/v1/users/not-a-phone", "/api/v1/users/%2B1415"] {
        let (status, error) = app.get(path).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {error}");
        assert_eq!(invalid_fields(&error), ["phone"], "{path}");
    }
    let (status, error) = app.get("/api/v1/users/9477123456a").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("position 11"),
        "the position counts in the text as sent: {error}"
    );

    let (status, error) = app
        .post(
            "/api/v1/users",
            &json!({ "phone": AMAYA, "consent_state": "maybe", "timezone": "Mars/Olympus" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(invalid_fields(&error), ["consent_state", "timezone"]);
    let (status, _) = app.get(&user_path(AMAYA)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was stored");

    create(&app, json!({ "phone": AMAYA })).await;
    let (status, error) = app
        .put(&user_path(AMAYA), &json!({ "phone": "+14155552671" }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(invalid_fields(&error), ["phone"]);
    let (status, error) = app
        .patch(&user_path(AMAYA), &json!({ "phone": "+14155552671" }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    app.stop().await;
}

#[tokio::test]
async fn malformed_bodies_answer_in_the_error_shape() {
    let app = spawn_app().await;
    let (status, error) = app
        .post_raw("/api/v1/users", "application/json", "{not json")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["code"], "bad_request", "{error}");
    let (status, error) = app.post("/api/v1/users", &json!({ "name": "x" })).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a missing phone: {error}"
    );
    assert_eq!(error["error"]["details"]["fields"][0]["field"], "phone");
    let (status, error) = app
        .post(
            "/api/v1/users",
            &json!({ "phone": AMAYA, "attributes": [1] }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(
        error["error"]["details"]["fields"][0]["field"],
        "attributes"
    );
    let (status, _) = app.get("/api/v1/users?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    app.stop().await;
}

#[tokio::test]
async fn lists_filter_by_consent_topic_and_free_text() {
    let app = spawn_app().await;
    create(
        &app,
        json!({ "phone": "+94771234501", "name": "Amaya", "attributes": { "city": "Colombo" } }),
    )
    .await;
    create(
        &app,
        json!({ "phone": "+94771234502", "name": "Bimal", "consent_state": "OPT_OUT" }),
    )
    .await;
    create(
        &app,
        json!({ "phone": "+94771234503", "name": "Chamari", "attributes": { "city": "Kandy" } }),
    )
    .await;
    subscribe(&app, "+94771234502", "dance").await;
    subscribe(&app, "+94771234503", "DANCE").await;

    let (status, page) = app.get("/api/v1/users").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    assert_eq!(page["next_cursor"], json!(null));
    let (_, page) = app.get("/api/v1/users?consent=OPT_OUT").await;
    assert_eq!(phones(&page), ["+94771234502"]);
    let (_, page) = app.get("/api/v1/users?consent=OPT_IN").await;
    assert_eq!(phones(&page), ["+94771234501", "+94771234503"]);
    let (_, page) = app.get("/api/v1/users?topic=Dance").await;
    assert_eq!(phones(&page), ["+94771234502", "+94771234503"]);
    let (_, page) = app.get("/api/v1/users?topic=dance&consent=OPT_IN").await;
    assert_eq!(phones(&page), ["+94771234503"]);
    let (_, page) = app.get("/api/v1/users?q=chama").await;
    assert_eq!(phones(&page), ["+94771234503"]);
    let (_, page) = app.get("/api/v1/users?q=Colombo").await;
    assert_eq!(
        phones(&page),
        ["+94771234501"],
        "attribute values are searched"
    );

    let (status, error) = app.get("/api/v1/users?consent=maybe").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(invalid_fields(&error), ["consent"]);
    let (status, error) = app.get("/api/v1/users?topic=a%20b").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(invalid_fields(&error), ["topic"]);
    app.stop().await;
}

#[tokio::test]
async fn free_text_search_takes_every_character_literally() {
    let app = spawn_app().await;
    create(
        &app,
        json!({ "phone": "+94771234501", "name": "Half 50% off_now" }),
    )
    .await;
    create(
        &app,
        json!({ "phone": "+94771234502", "name": "Plain 50 percent offXnow" }),
    )
    .await;
    for (q, expected) in [
        ("%00", vec![]),
        ("50%25", vec!["+94771234501"]),
        ("off_", vec!["+94771234501"]),
        ("%25", vec!["+94771234501"]),
        ("_", vec!["+94771234501"]),
        ("OFF", vec!["+94771234501", "+94771234502"]),
        ("a%5Cb", vec![]),
    ] {
        let (status, page) = app.get(&format!("/api/v1/users?q={q}")).await;
        assert_eq!(status, StatusCode::OK, "{q}: {page}");
        assert_eq!(phones(&page), expected, "q={q}");
    }
    app.stop().await;
}

#[tokio::test]
async fn control_characters_in_text_fields_answer_422_naming_each_field() {
    let app = spawn_app().await;
    let (status, error) = app
        .post(
            "/api/v1/users",
            &json!({ "phone": "+94771234501", "name": "Ann\u{0}", "locale": "en\n",
                     "timezone": "Mars/Olympus" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(invalid_fields(&error), ["timezone", "name", "locale"]);
    let (status, _) = app.get(&user_path("+94771234501")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    create(&app, json!({ "phone": "+94771234501", "name": "Ann" })).await;
    let (status, error) = app
        .patch(&user_path("+94771234501"), &json!({ "name": "A\u{1b}[2J" }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(invalid_fields(&error), ["name"]);

    let csv = "phone,name\n+94771234502,\"Bo\u{0}b\"\n+94771234503,Cat\n";
    let (status, body) = app
        .post_raw("/api/v1/ingestions/users", "text/csv", csv)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report = &body["report"];
    assert_eq!(
        (report["inserted"].as_u64(), report["invalid"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(report["errors"][0]["line"], 2);
    assert_eq!(report["errors"][0]["field"], "name");
    app.stop().await;
}

#[tokio::test]
async fn numbers_in_attributes_keep_every_digit() {
    let app = spawn_app().await;
    let body: Value = serde_json::from_str(
        r#"{"phone": "+94771234501", "attributes": {"n": 1180591620717411303424, "x": 0.1}}"#,
    )
    .unwrap();
    let (status, created) = app.post("/api/v1/users", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, user) = app.get(&user_path("+94771234501")).await;
    assert_eq!(
        user["attributes"]["n"].to_string(),
        "1180591620717411303424"
    );
    assert_eq!(user["attributes"]["x"].to_string(), "0.1");
    app.stop().await;
}

#[tokio::test]
async fn following_next_cursor_visits_every_user_once() {
    let app = spawn_app().await;
    let all: Vec<String> = (1..=5).map(|i| format!("+9477123450{i}")).collect();
    for phone in all.iter().rev() {
        create(&app, json!({ "phone": phone })).await;
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/users?limit=2".to_owned();
    loop {
        let (status, page) = app.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(phones(&page).into_iter().map(str::to_owned));
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!(
                    "/api/v1/users?limit=2&cursor={}",
                    cursor.replace('+', "%2B")
                )
            }
            None => break,
        }
        assert!(seen.len() <= all.len(), "the pages do not end: {seen:?}");
    }
    assert_eq!(seen, all);

    // A `+` left unencoded in the query arrives as a space: the list still goes on.
    let (_, page) = app.get("/api/v1/users?limit=2&cursor=+94771234502").await;
    assert_eq!(phones(&page), ["+94771234503", "+94771234504"]);
    let (_, page) = app.get("/api/v1/users?limit=2&offset=4").await;
    assert_eq!(phones(&page), ["+94771234505"]);
    assert_eq!(page["next_cursor"], json!(null));
    app.stop().await;
}

#[tokio::test]
async fn subscribing_is_idempotent_and_topics_are_upper_case() {
    let app = spawn_app().await;
    create(&app, json!({ "phone": AMAYA })).await;
    let (status, subscription) = subscribe(&app, AMAYA, "dance").await;
    assert_eq!(status, StatusCode::CREATED, "{subscription}");
    assert_eq!(subscription["topic"], "DANCE");
    assert_eq!(subscription["phone"], AMAYA);
    let (status, again) = subscribe(&app, AMAYA, "Dance").await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, subscription, "subscribing again changes nothing");
    subscribe(&app, AMAYA, "music").await;

    let subscriptions = format!("{}/subscriptions", user_path(AMAYA));
    let (status, page) = app.get(&subscriptions).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"][0], subscription);
    assert_eq!(page["items"][1]["topic"], "MUSIC");
    assert_eq!(page["next_cursor"], json!(null));
    let (_, page) = app.get(&format!("{subscriptions}?limit=1")).await;
    assert_eq!(page["next_cursor"], "DANCE");
    let (_, page) = app.get(&format!("{subscriptions}?cursor=DANCE")).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["topic"], "MUSIC");
    let (_, user) = app.get(&user_path(AMAYA)).await;
    assert_eq!(user["topics"], json!(["DANCE", "MUSIC"]));

    let (status, _) = app.delete(&format!("{subscriptions}/dance")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, error) = app.delete(&format!("{subscriptions}/dance")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    let (_, user) = app.get(&user_path(AMAYA)).await;
    assert_eq!(user["topics"], json!(["MUSIC"]));

    let (status, error) = subscribe(&app, AMAYA, "a%20b").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(invalid_fields(&error), ["topic"]);
    app.stop().await;
}

#[tokio::test]
async fn subscriptions_of_an_unknown_user_answer_404() {
    let app = spawn_app().await;
    let unknown = user_path("+14155552671");
    let (status, error) = subscribe(&app, "+14155552671", "DANCE").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["error"]["message"], "user +14155552671 not found");
    let (status, _) = app.get(&format!("{unknown}/subscriptions")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, error) = app.delete(&format!("{unknown}/subscriptions/DANCE")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["error"]["message"], "user +14155552671 not found");
    let (status, _) = app.get("/api/v1/users/%2B999123456789").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    app.stop().await;
}

#[tokio::test]
async fn topics_are_listed_with_their_subscriber_counts() {
    let app = spawn_app().await;
    for phone in ["+94771234501", "+94771234502", "+94771234503"] {
        create(&app, json!({ "phone": phone })).await;
        subscribe(&app, phone, "dance").await;
    }
    subscribe(&app, "+94771234501", "music").await;
    let (status, topics) = app.get("/api/v1/topics").await;
    assert_eq!(status, StatusCode::OK, "{topics}");
    assert_eq!(
        topics,
        json!({
            "items": [
                { "topic": "DANCE", "subscribers": 3 },
                { "topic": "MUSIC", "subscribers": 1 },
            ],
            "next_cursor": null,
        })
    );
    let (_, first) = app.get("/api/v1/topics?limit=1").await;
    assert_eq!(first["items"][0]["topic"], "DANCE");
    assert_eq!(first["next_cursor"], "DANCE");
    let (_, rest) = app.get("/api/v1/topics?limit=1&cursor=DANCE").await;
    assert_eq!(rest["items"][0]["topic"], "MUSIC");
    assert_eq!(rest["next_cursor"], json!(null));
    let (_, found) = app.get("/api/v1/topics?q=mus").await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1);

    app.delete(&format!(
        "{}/subscriptions/DANCE",
        user_path("+94771234502")
    ))
    .await;
    let (_, topics) = app.get("/api/v1/topics").await;
    assert_eq!(topics["items"][0]["subscribers"], 2);
    app.stop().await;
}

#[tokio::test]
async fn the_users_api_is_in_the_openapi_document() {
    let app = spawn_app().await;
    let spec: Value = reqwest::get(format!("{}/openapi.json", app.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (path, verbs) in [
        ("/users", &["get", "post"][..]),
        ("/users/{phone}", &["get", "put", "patch", "delete"][..]),
        ("/users/{phone}/subscriptions", &["get"][..]),
        (
            "/users/{phone}/subscriptions/{topic}",
            &["put", "delete"][..],
        ),
        ("/topics", &["get"][..]),
    ] {
        for verb in verbs {
            let operation = &spec["paths"][path][verb];
            assert!(operation.is_object(), "{verb} {path} is not documented");
            assert_eq!(operation["tags"], json!(["Users"]), "{verb} {path}");
        }
    }
    assert!(spec["paths"]["/users"]["post"]["responses"]["201"].is_object());
    assert_eq!(
        spec["components"]["schemas"]["ConsentState"]["enum"],
        json!(["OPT_IN", "OPT_OUT"])
    );
    app.stop().await;
}
