//! The list of messages (`GET .../Messages.json`) over real HTTP: Basic auth, `To`/`From`
//! and `DateSent` filters, newest first, pages linked by `next_page_uri`, the
//! accepted-but-unanswered message listed and refused ones not, messages users sent in
//! listed as inbound, and injected 5xx.

mod support;

use std::time::Duration;

use fake_twilio::{
    Behaviour, CallbackPlan, FakeTwilio, Faults, InboundRequest, MessageStatus, ScriptedFault,
};
use poem::http::Method;
use serde_json::Value;
use support::{FROM, Http, Reply, TO, start_fake};

/// GETs `path_and_query` (as in `next_page_uri`) on the fake with its own credentials.
async fn get(http: &Http, twilio: &FakeTwilio, path_and_query: &str) -> Reply {
    let auth = support::basic(twilio.account_sid(), twilio.auth_token());
    let url = format!("{}{path_and_query}", twilio.base_url());
    http.send(Method::GET, &url, &[("authorization", auth)], Vec::new())
        .await
        .unwrap()
}

/// The list path of the fake's account with a query.
fn list_path(twilio: &FakeTwilio, query: &[(&str, &str)]) -> String {
    format!(
        "/2010-04-01/Accounts/{}/Messages.json?{}",
        twilio.account_sid(),
        serde_urlencoded::to_string(query).unwrap()
    )
}

fn bodies(page: &Value) -> Vec<&str> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn the_list_filters_by_to_and_from_newest_first_in_twilios_shapes() {
    let twilio = start_fake(Behaviour::default()).await;
    let http = Http::default();
    let other_from = "whatsapp:+14155550111";
    for (to, from, body) in [
        (TO, FROM, "first"),
        ("whatsapp:+14155550000", FROM, "elsewhere"),
        (TO, other_from, "other sender"),
        (TO, FROM, "second"),
    ] {
        let reply = http
            .send_message(&twilio, &[("To", to), ("From", from), ("Body", body)])
            .await
            .unwrap();
        assert_eq!(reply.status, 201);
    }

    let reply = get(
        &http,
        &twilio,
        &list_path(&twilio, &[("To", TO), ("From", FROM)]),
    )
    .await;
    assert_eq!(reply.status, 200);
    let page = reply.json();
    assert_eq!(bodies(&page), ["second", "first"]);
    assert_eq!(page["page"], 0);
    assert_eq!(page["page_size"], 50);
    assert!(page["next_page_uri"].is_null() && page["previous_page_uri"].is_null());
    assert!(
        page["first_page_uri"]
            .as_str()
            .unwrap()
            .contains("PageSize=50")
    );
    assert!(
        page["uri"]
            .as_str()
            .unwrap()
            .starts_with("/2010-04-01/Accounts/")
    );

    // Each entry is the resource a fetch answers.
    let newest = &page["messages"][0];
    let fetched = get(&http, &twilio, newest["uri"].as_str().unwrap())
        .await
        .json();
    assert_eq!(newest["sid"], fetched["sid"]);
    assert_eq!(newest["to"], TO);
    assert_eq!(newest["from"], FROM);
    let created = newest["date_created"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc2822(created).is_ok(),
        "{created}"
    );

    let to_only = get(&http, &twilio, &list_path(&twilio, &[("To", TO)]))
        .await
        .json();
    assert_eq!(bodies(&to_only), ["second", "other sender", "first"]);
    let everything = get(&http, &twilio, &list_path(&twilio, &[])).await.json();
    assert_eq!(everything["messages"].as_array().unwrap().len(), 4);
    assert_eq!(twilio.counters().lists, 3);
}

#[tokio::test]
async fn pages_follow_next_page_uri_to_the_end_and_page_size_is_capped() {
    let twilio = start_fake(Behaviour::default()).await;
    let http = Http::default();
    for n in 0..5 {
        let body = format!("message {n}");
        http.send_message(&twilio, &[("To", TO), ("From", FROM), ("Body", &body)])
            .await
            .unwrap();
    }

    let mut seen = Vec::new();
    let mut next = Some(list_path(&twilio, &[("To", TO), ("PageSize", "2")]));
    while let Some(path) = next {
        let page = get(&http, &twilio, &path).await.json();
        assert!(page["messages"].as_array().unwrap().len() <= 2);
        seen.extend(bodies(&page).into_iter().map(str::to_owned));
        next = page["next_page_uri"].as_str().map(str::to_owned);
    }
    let expected: Vec<String> = (0..5).rev().map(|n| format!("message {n}")).collect();
    assert_eq!(seen, expected);

    let too_big = get(&http, &twilio, &list_path(&twilio, &[("PageSize", "1001")])).await;
    assert_eq!(too_big.status, 400);
    assert_eq!(too_big.json()["code"], 20007);
}

#[tokio::test]
async fn a_message_whose_answer_was_dropped_is_listed_and_refused_ones_are_not() {
    let twilio = start_fake(Behaviour {
        faults: Faults {
            script: [ScriptedFault::DropAfterAccept, ScriptedFault::ServerError].into(),
            ..Faults::default()
        },
        ..Behaviour::default()
    })
    .await;
    let http = Http::default();
    let lost = [("To", TO), ("From", FROM), ("Body", "answer lost")];
    assert!(http.send_message(&twilio, &lost).await.is_err());
    let refused = [("To", TO), ("From", FROM), ("Body", "refused")];
    assert_eq!(
        http.send_message(&twilio, &refused).await.unwrap().status,
        500
    );
    let permanent = [
        ("To", "whatsapp:+15005550002"),
        ("From", FROM),
        ("Body", "x"),
    ];
    assert_eq!(
        http.send_message(&twilio, &permanent).await.unwrap().status,
        400
    );

    let page = get(&http, &twilio, &list_path(&twilio, &[])).await.json();
    assert_eq!(bodies(&page), ["answer lost"]);
    assert_eq!(page["messages"][0]["sid"], twilio.messages()[0].sid);
}

#[tokio::test]
async fn the_list_needs_credentials_and_can_be_made_to_fail() {
    let twilio = start_fake(Behaviour::default()).await;
    let http = Http::default();
    let url = format!("{}{}", twilio.base_url(), list_path(&twilio, &[]));
    let anonymous = http.send(Method::GET, &url, &[], Vec::new()).await.unwrap();
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.json()["code"], 20003);

    twilio
        .set_faults(Faults {
            list_server_error_share: 1.0,
            ..Faults::default()
        })
        .unwrap();
    let failed = get(&http, &twilio, &list_path(&twilio, &[])).await;
    assert!(matches!(failed.status, 500 | 503), "{}", failed.status);
    // Sends are untouched by the list's faults.
    let sent = http
        .send_message(&twilio, &[("To", TO), ("From", FROM), ("Body", "hi")])
        .await
        .unwrap();
    assert_eq!(sent.status, 201);
}

#[tokio::test]
async fn messages_users_send_in_are_listed_as_inbound_beside_the_sent_ones() {
    let twilio = start_fake(Behaviour::default()).await;
    let http = Http::default();
    http.send_message(&twilio, &[("To", TO), ("From", FROM), ("Body", "hello")])
        .await
        .unwrap();
    // Through the control API, and through the library.
    let posted = http
        .post_json(
            &format!("{}/_fake/inbound", twilio.base_url()),
            &serde_json::json!({ "from": TO, "to": FROM, "body": "STOP" }),
        )
        .await;
    assert_eq!(posted.status, 201);
    let stop = posted.json();
    assert_eq!(stop["direction"], "inbound");
    assert_eq!(stop["status"], "received");
    let start = twilio
        .receive_inbound(InboundRequest {
            from: TO.into(),
            body: "START".into(),
            ..InboundRequest::default()
        })
        .unwrap();
    assert_eq!(start.to, FROM, "the fake's own sender unless named");

    let to_sender = get(&http, &twilio, &list_path(&twilio, &[("To", FROM)]))
        .await
        .json();
    assert_eq!(bodies(&to_sender), ["START", "STOP"]);
    let newest = &to_sender["messages"][0];
    assert_eq!(newest["sid"], start.sid);
    assert_eq!(newest["from"], TO);
    assert!(chrono::DateTime::parse_from_rfc2822(newest["date_sent"].as_str().unwrap()).is_ok());
    let everything = get(&http, &twilio, &list_path(&twilio, &[])).await.json();
    assert_eq!(bodies(&everything), ["START", "STOP", "hello"]);
    let fetched = get(&http, &twilio, stop["uri"].as_str().unwrap()).await;
    assert_eq!(fetched.json()["body"], "STOP");

    let listed = http
        .get_json(&format!("{}/_fake/inbound", twilio.base_url()))
        .await;
    assert_eq!(listed["inbound"].as_array().unwrap().len(), 2);
    assert_eq!(twilio.counters().received, 2);
    assert_eq!(twilio.messages().len(), 1, "inbound messages are not sends");

    let without_sender = http
        .post_json(
            &format!("{}/_fake/inbound", twilio.base_url()),
            &serde_json::json!({ "body": "hi" }),
        )
        .await;
    assert_eq!(without_sender.status, 400);
    twilio.reset();
    assert!(twilio.inbound().is_empty());
}

#[tokio::test]
async fn date_sent_keeps_messages_sent_since_and_leaves_out_unsent_ones() {
    let twilio = start_fake(Behaviour {
        callbacks: CallbackPlan {
            stop_at: Some(MessageStatus::Queued),
            ..CallbackPlan::default()
        },
        ..Behaviour::default()
    })
    .await;
    let http = Http::default();
    http.send_message(
        &twilio,
        &[("To", TO), ("From", FROM), ("Body", "still queued")],
    )
    .await
    .unwrap();
    twilio.set_callback_plan(CallbackPlan::default()).unwrap();
    http.send_message(
        &twilio,
        &[("To", TO), ("From", FROM), ("Body", "delivered")],
    )
    .await
    .unwrap();
    support::eventually(Duration::from_secs(5), "the delivery", || async {
        let messages = twilio.messages();
        (messages[1].status == MessageStatus::Delivered).then_some(())
    })
    .await;
    let two_days_ago = chrono::Utc::now() - chrono::TimeDelta::days(2);
    let earlier = InboundRequest {
        from: TO.into(),
        to: Some(FROM.into()),
        body: "two days ago".into(),
        date_sent: Some(two_days_ago.to_rfc2822()),
        ..InboundRequest::default()
    };
    twilio.receive_inbound(earlier).unwrap();

    let an_hour_ago = chrono::Utc::now() - chrono::TimeDelta::hours(1);
    let since = an_hour_ago.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let page = get(
        &http,
        &twilio,
        &list_path(&twilio, &[("DateSent>", &since)]),
    )
    .await
    .json();
    assert_eq!(bodies(&page), ["delivered"]);
    let sent = &page["messages"][0];
    assert_eq!(sent["status"], "delivered");
    assert!(sent["date_sent"].is_string());
    let until = get(
        &http,
        &twilio,
        &list_path(
            &twilio,
            &[("DateSent<", &two_days_ago.format("%Y-%m-%d").to_string())],
        ),
    )
    .await
    .json();
    assert_eq!(bodies(&until), ["two days ago"]);
    let unreadable = get(
        &http,
        &twilio,
        &list_path(&twilio, &[("DateSent>", "soon")]),
    )
    .await;
    assert_eq!(unreadable.status, 400);
}
