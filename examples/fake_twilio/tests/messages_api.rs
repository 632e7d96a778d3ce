//! The Messages API over real HTTP: the success shape, authentication, validation errors,
//! permanent-error recipients, duplicates, and the control API.

mod support;

use fake_twilio::{Behaviour, MessageStatus};
use serde_json::json;
use support::{FROM, Http, TO, start_fake};

/// Form fields of a send request.
type Form<'a> = &'a [(&'a str, &'a str)];

#[tokio::test]
async fn a_valid_send_answers_201_with_twilios_message_resource() {
    let twilio = start_fake(Behaviour::default()).await;
    let http = Http::default();

    let reply = http
        .send_message(
            &twilio,
            &[("To", TO), ("From", FROM), ("Body", "Hello Ada")],
        )
        .await
        .unwrap();

    assert_eq!(reply.status, 201);
    let message = reply.json();
    let sid = message["sid"].as_str().unwrap();
    assert!(sid.starts_with("SM") && sid.len() == 34, "sid {sid}");
    assert!(sid[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(message["account_sid"], twilio.account_sid());
    assert_eq!(message["to"], TO);
    assert_eq!(message["from"], FROM);
    assert_eq!(message["body"], "Hello Ada");
    assert_eq!(message["status"], "queued");
    assert_eq!(message["direction"], "outbound-api");
    assert_eq!(message["api_version"], "2010-04-01");
    assert_eq!(message["num_segments"], "1");
    assert_eq!(message["num_media"], "0");
    assert!(message["error_code"].is_null() && message["error_message"].is_null());
    assert!(message["price"].is_null() && message["date_sent"].is_null());
    let created = message["date_created"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc2822(created).is_ok(),
        "{created}"
    );
    assert_eq!(
        message["uri"],
        format!(
            "/2010-04-01/Accounts/{}/Messages/{sid}.json",
            twilio.account_sid()
        )
    );

    let listed = twilio.messages();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].sid, sid);
    assert_eq!(listed[0].form["Body"], "Hello Ada");
    assert_eq!(listed[0].times_accepted, 1);
}

#[tokio::test]
async fn a_sent_message_can_be_fetched_with_its_progressing_status() {
    let twilio = start_fake(Behaviour::default()).await;
    let http = Http::default();
    let created = http
        .send_message(&twilio, &[("To", TO), ("From", FROM), ("Body", "hi")])
        .await
        .unwrap()
        .json();
    let url = format!("{}{}", twilio.base_url(), created["uri"].as_str().unwrap());
    let auth = support::basic(twilio.account_sid(), twilio.auth_token());

    let status = support::eventually(std::time::Duration::from_secs(5), "delivered", || {
        let (http, url, auth) = (&http, &url, &auth);
        async move {
            let headers = [("authorization", auth.clone())];
            let reply = http
                .send(poem::http::Method::GET, url, &headers, Vec::new())
                .await
                .unwrap();
            assert_eq!(reply.status, 200);
            let status = reply.json()["status"].as_str().unwrap().to_owned();
            (status == "delivered").then_some(status)
        }
    })
    .await;
    assert_eq!(status, "delivered");

    let missing = format!(
        "{}/2010-04-01/Accounts/{}/Messages/SM00.json",
        twilio.base_url(),
        twilio.account_sid()
    );
    let reply = http
        .send(
            poem::http::Method::GET,
            &missing,
            &[("authorization", auth)],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["code"], 20404);
}

#[tokio::test]
async fn missing_or_wrong_credentials_answer_401_with_code_20003() {
    let twilio = start_fake(Behaviour::default()).await;
    let http = Http::default();
    let fields = [("To", TO), ("From", FROM), ("Body", "hi")];
    let sid = twilio.account_sid().to_owned();
    let other_account = twilio
        .messages_url()
        .replace(&sid, "AC11111111111111111111111111111111");

    let attempts = [
        (twilio.messages_url(), None),
        (twilio.messages_url(), Some((sid.as_str(), "wrong-token"))),
        (
            twilio.messages_url(),
            Some(("AC11111111111111111111111111111111", twilio.auth_token())),
        ),
        (other_account, Some((sid.as_str(), twilio.auth_token()))),
    ];
    for (url, auth) in attempts {
        let reply = http.post_form(&url, auth, &fields).await.unwrap();
        assert_eq!(reply.status, 401, "{url} {auth:?}");
        let error = reply.json();
        assert_eq!(error["code"], 20003);
        assert_eq!(error["status"], 401);
        assert_eq!(
            error["more_info"],
            "https://www.twilio.com/docs/errors/20003"
        );
        assert!(reply.headers.contains_key("www-authenticate"));
    }
    assert!(twilio.messages().is_empty());
    assert_eq!(twilio.counters().unauthorized, 4);
}

#[tokio::test]
async fn invalid_fields_answer_400_with_twilios_codes() {
    let twilio = start_fake(Behaviour::default()).await;
    let http = Http::default();
    let cases: [(Form, u32, &str); 6] = [
        (
            &[("From", FROM), ("Body", "hi")],
            21604,
            "A 'To' phone number is required.",
        ),
        (
            &[("To", "whatsapp:555"), ("From", FROM), ("Body", "hi")],
            21211,
            "The 'To' number whatsapp:555 is not a valid phone number.",
        ),
        (
            &[("To", TO), ("Body", "hi")],
            21603,
            "A 'From' phone number is required.",
        ),
        (
            &[("To", TO), ("From", FROM)],
            21602,
            "Message body is required.",
        ),
        (
            &[
                ("To", TO),
                ("From", FROM),
                ("ContentSid", "HX0123456789abcdef0123456789abcdef"),
                ("ContentVariables", "not json"),
            ],
            21656,
            "The ContentVariables Parameter is invalid.",
        ),
        (
            &[
                ("To", TO),
                ("From", FROM),
                ("Body", "hi"),
                ("StatusCallback", "ftp://x"),
            ],
            21609,
            "The StatusCallback URL ftp://x is not a valid URL.",
        ),
    ];
    for (fields, code, message) in cases {
        let reply = http.send_message(&twilio, fields).await.unwrap();
        assert_eq!(reply.status, 400, "{fields:?}");
        assert_eq!(
            reply.json(),
            json!({
                "code": code,
                "message": message,
                "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
                "status": 400
            })
        );
    }
    assert!(twilio.messages().is_empty());
    assert_eq!(twilio.counters().invalid, 6);
}

#[tokio::test]
async fn configured_recipients_get_their_permanent_error_and_nothing_is_recorded() {
    let twilio = start_fake(Behaviour::default()).await;
    let http = Http::default();
    for (to, code) in [
        ("whatsapp:+15005550001", 21211),
        ("whatsapp:+15005550002", 21610),
        ("whatsapp:+15005550003", 63016),
    ] {
        let reply = http
            .send_message(&twilio, &[("To", to), ("From", FROM), ("Body", "hi")])
            .await
            .unwrap();
        assert_eq!(reply.status, 400, "{to}");
        let error = reply.json();
        assert_eq!(error["code"], code, "{to}");
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
    assert!(twilio.messages().is_empty());
    assert_eq!(twilio.counters().permanent_errors, 3);
}

#[tokio::test]
async fn a_template_through_a_messaging_service_is_accepted_without_a_from() {
    let twilio = start_fake(Behaviour::default()).await;
    let reply = Http::default()
        .send_message(
            &twilio,
            &[
                ("To", TO),
                ("MessagingServiceSid", "MG0123456789abcdef0123456789abcdef"),
                ("ContentSid", "HX0123456789abcdef0123456789abcdef"),
                ("ContentVariables", r#"{"1": "Ada"}"#),
            ],
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 201);
    let message = reply.json();
    assert_eq!(message["status"], "accepted");
    assert!(message["from"].is_null());
    assert_eq!(
        message["messaging_service_sid"],
        "MG0123456789abcdef0123456789abcdef"
    );
    let listed = &twilio.messages()[0];
    assert_eq!(
        listed.content_sid.as_deref(),
        Some("HX0123456789abcdef0123456789abcdef")
    );
    assert_eq!(listed.content_variables.as_deref(), Some(r#"{"1": "Ada"}"#));
}

#[tokio::test]
async fn the_same_content_to_the_same_recipient_is_counted_as_a_duplicate() {
    let twilio = start_fake(Behaviour::default()).await;
    let http = Http::default();
    for (to, body) in [
        (TO, "Sale!"),
        (TO, "Sale!"),
        (TO, "Other"),
        ("whatsapp:+14155550000", "Sale!"),
    ] {
        let reply = http
            .send_message(&twilio, &[("To", to), ("From", FROM), ("Body", body)])
            .await
            .unwrap();
        assert_eq!(reply.status, 201);
    }
    let times: Vec<(String, Option<String>, u32)> = twilio
        .messages()
        .into_iter()
        .map(|m| (m.to, m.body, m.times_accepted))
        .collect();
    assert_eq!(
        times,
        vec![
            (TO.to_owned(), Some("Sale!".to_owned()), 2),
            (TO.to_owned(), Some("Sale!".to_owned()), 2),
            (TO.to_owned(), Some("Other".to_owned()), 1),
            (
                "whatsapp:+14155550000".to_owned(),
                Some("Sale!".to_owned()),
                1
            ),
        ]
    );
}

#[tokio::test]
async fn the_control_api_lists_patches_and_resets() {
    let twilio = start_fake(Behaviour::default()).await;
    let http = Http::default();
    let base = twilio.base_url();
    http.send_message(&twilio, &[("To", TO), ("From", FROM), ("Body", "one")])
        .await
        .unwrap();

    let listed = http.get_json(&format!("{base}/_fake/messages")).await;
    assert_eq!(listed["messages"][0]["form"]["Body"], "one");
    assert_eq!(listed["messages"][0]["times_accepted"], 1);
    assert_eq!(
        http.get_json(&format!("{base}/_fake/stats")).await["accepted"],
        1
    );

    let patched = http
        .post_json(
            &format!("{base}/_fake/config"),
            &json!({"faults": {"permanent_errors": {"+14155552671": 21610}}}),
        )
        .await;
    assert_eq!(patched.status, 200);
    assert_eq!(
        patched.json()["faults"]["permanent_errors"]["+14155552671"],
        21610
    );
    let refused = http
        .send_message(&twilio, &[("To", TO), ("From", FROM), ("Body", "two")])
        .await
        .unwrap();
    assert_eq!(refused.json()["code"], 21610);

    let typo = http
        .post_json(
            &format!("{base}/_fake/config"),
            &json!({"faults": {"latency": 5}}),
        )
        .await;
    assert_eq!(typo.status, 400);
    assert!(typo.json()["error"].as_str().unwrap().contains("latency"));

    let reset = http
        .post_json(&format!("{base}/_fake/reset"), &json!({}))
        .await;
    assert_eq!(reset.status, 204);
    assert!(twilio.messages().is_empty());
    assert_eq!(twilio.behaviour(), Behaviour::default());
    let accepted = http
        .send_message(&twilio, &[("To", TO), ("From", FROM), ("Body", "three")])
        .await
        .unwrap();
    assert_eq!(accepted.status, 201);
    let message = &twilio.messages()[0];
    assert!(matches!(
        message.status,
        MessageStatus::Queued | MessageStatus::Sent | MessageStatus::Delivered
    ));
}

#[tokio::test]
async fn shutdown_stops_serving_and_a_taken_address_is_refused() {
    let twilio = start_fake(Behaviour::default()).await;
    let taken = fake_twilio::FakeTwilio::start(fake_twilio::FakeConfig {
        bind: twilio.addr(),
        ..fake_twilio::FakeConfig::default()
    })
    .await;
    assert!(matches!(taken, Err(fake_twilio::StartError::Bind { .. })));

    let url = twilio.messages_url();
    twilio.shutdown().await;
    let refused = Http::default()
        .post_form(&url, None, &[("To", TO)])
        .await
        .unwrap_err();
    assert!(
        refused.contains("refused") || refused.contains("connect"),
        "{refused}"
    );
}
