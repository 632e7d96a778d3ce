//! The list of messages (`GET .../Messages.json`) over real HTTP: Basic auth, `To`/`From`
//! filters, newest first, pages linked by `next_page_uri`, the accepted-but-unanswered
//! message listed and refused ones not, and injected 5xx.

mod support;

use fake_twilio::{Behaviour, FakeTwilio, Faults, ScriptedFault};
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
