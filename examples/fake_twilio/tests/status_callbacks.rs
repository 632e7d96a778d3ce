//! Status callbacks, received by a small poem server in the test: the statuses in order,
//! Twilio's field names, and `X-Twilio-Signature` checked by an HMAC-SHA1 written here from
//! RFC 2104 (not the fake's code), retries, and a receiver that is down.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use fake_twilio::{Behaviour, CallbackPlan, FailureStatus, FakeTwilio, MessageStatus};
use poem::http::StatusCode;
use poem::listener::TcpAcceptor;
use poem::web::Data;
use poem::{EndpointExt, Request, Route, Server, handler, post};
use sha1::{Digest, Sha1};
use support::{FROM, Http, TO, eventually, start_fake};

/// One callback as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    /// The URL as a web server rebuilds it: scheme, Host header, path and query.
    url: String,
    signature: String,
    fields: Vec<(String, String)>,
    at: Instant,
}

impl Received {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Inbox {
    received: Mutex<Vec<Received>>,
    /// How many of the next callbacks to answer 500.
    fail_next: AtomicUsize,
}

#[handler]
async fn receive(request: &Request, body: String, Data(inbox): Data<&Arc<Inbox>>) -> StatusCode {
    let host = request.headers()["host"].to_str().unwrap();
    let received = Received {
        url: format!("http://{host}{}", request.uri()),
        signature: request.headers()["x-twilio-signature"]
            .to_str()
            .unwrap()
            .to_owned(),
        fields: serde_urlencoded::from_str(&body).unwrap(),
        at: Instant::now(),
    };
    inbox.received.lock().unwrap().push(received);
    let failing = inbox
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

/// Starts a receiver; answers its status callback URL (with a query, as real apps have).
async fn start_receiver(inbox: Arc<Inbox>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Route::new().at("/twilio/status", post(receive)).data(inbox);
    let acceptor = TcpAcceptor::from_tokio(listener).unwrap();
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    format!("http://{addr}/twilio/status?tenant=7")
}

/// HMAC-SHA1 as RFC 2104 defines it, over SHA-1 alone.
fn hmac_sha1(key: &[u8], message: &[u8]) -> [u8; 20] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha1::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha1::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// What a receiver expects in `X-Twilio-Signature`, per Twilio's security documentation.
fn expected_signature(auth_token: &str, url: &str, fields: &[(String, String)]) -> String {
    let mut sorted = fields.to_vec();
    sorted.sort();
    let data = sorted
        .iter()
        .fold(url.to_owned(), |data, (name, value)| data + name + value);
    base64::engine::general_purpose::STANDARD
        .encode(hmac_sha1(auth_token.as_bytes(), data.as_bytes()))
}

#[test]
fn the_tests_own_check_reproduces_twilios_documented_signature() {
    let fields: Vec<(String, String)> = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675310"),
        ("Digits", "1234"),
        ("From", "+14158675310"),
        ("To", "+18005551212"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    assert_eq!(
        expected_signature("12345", url, &fields),
        "GvWf1cFY/Q7PnoempGyD5oXAezc="
    );
}

async fn send_with_callback(twilio: &FakeTwilio, callback: &str, body: &str) -> String {
    let reply = Http::default()
        .send_message(
            twilio,
            &[
                ("To", TO),
                ("From", FROM),
                ("Body", body),
                ("StatusCallback", callback),
            ],
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 201);
    reply.json()["sid"].as_str().unwrap().to_owned()
}

/// Waits for `count` callbacks about `sid` and answers them in arrival order.
async fn callbacks_for(inbox: &Inbox, sid: &str, count: usize) -> Vec<Received> {
    eventually(Duration::from_secs(10), "status callbacks", || async {
        let received: Vec<Received> = inbox
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.field("MessageSid") == Some(sid))
            .cloned()
            .collect();
        (received.len() >= count).then_some(received)
    })
    .await
}

fn statuses(received: &[Received]) -> Vec<&str> {
    received
        .iter()
        .map(|r| r.field("MessageStatus").unwrap())
        .collect()
}

#[tokio::test]
async fn statuses_are_posted_in_order_with_twilios_fields_and_a_valid_signature() {
    let inbox = Arc::new(Inbox::default());
    let callback = start_receiver(inbox.clone()).await;
    let twilio = start_fake(Behaviour::default()).await;

    let sid = send_with_callback(&twilio, &callback, "Hello").await;
    let received = callbacks_for(&inbox, &sid, 2).await;

    assert_eq!(statuses(&received), ["sent", "delivered"]);
    for callback in &received {
        assert!(
            callback.url.ends_with("/twilio/status?tenant=7"),
            "{}",
            callback.url
        );
        assert_eq!(
            callback.signature,
            expected_signature(twilio.auth_token(), &callback.url, &callback.fields),
            "signature of {callback:?}"
        );
        assert_ne!(
            callback.signature,
            expected_signature("another-token", &callback.url, &callback.fields)
        );
        assert_eq!(callback.field("SmsSid"), Some(sid.as_str()));
        assert_eq!(callback.field("SmsStatus"), callback.field("MessageStatus"));
        assert_eq!(callback.field("AccountSid"), Some(twilio.account_sid()));
        assert_eq!(callback.field("From"), Some(FROM));
        assert_eq!(callback.field("To"), Some(TO));
        assert_eq!(callback.field("ApiVersion"), Some("2010-04-01"));
        assert_eq!(callback.field("ErrorCode"), None);
    }
    let delivered = eventually(Duration::from_secs(5), "records", || async {
        let records = twilio.callbacks();
        (records.len() == 2).then_some(records)
    })
    .await;
    assert!(delivered.iter().all(|r| r.delivered && r.attempts == 1));
    assert_eq!(twilio.messages()[0].status, MessageStatus::Delivered);
}

#[tokio::test]
async fn read_receipts_and_failures_follow_the_callback_plan() {
    let inbox = Arc::new(Inbox::default());
    let callback = start_receiver(inbox.clone()).await;
    let twilio = start_fake(Behaviour::default()).await;
    let plan = |send_read, failed_share, failure_status| CallbackPlan {
        send_read,
        failed_share,
        failure_status,
        ..CallbackPlan::default()
    };

    twilio
        .set_callback_plan(plan(true, 0.0, FailureStatus::Undelivered))
        .unwrap();
    let read = send_with_callback(&twilio, &callback, "read me").await;
    assert_eq!(
        statuses(&callbacks_for(&inbox, &read, 3).await),
        ["sent", "delivered", "read"]
    );

    twilio
        .set_callback_plan(plan(false, 1.0, FailureStatus::Undelivered))
        .unwrap();
    let undelivered = send_with_callback(&twilio, &callback, "lost").await;
    let received = callbacks_for(&inbox, &undelivered, 2).await;
    assert_eq!(statuses(&received), ["sent", "undelivered"]);
    assert_eq!(received[1].field("ErrorCode"), Some("30008"));
    assert_eq!(
        received[1].signature,
        expected_signature(twilio.auth_token(), &received[1].url, &received[1].fields)
    );

    twilio
        .set_callback_plan(plan(false, 1.0, FailureStatus::Failed))
        .unwrap();
    let failed = send_with_callback(&twilio, &callback, "never left").await;
    let received = callbacks_for(&inbox, &failed, 1).await;
    assert_eq!(statuses(&received), ["failed"]);
    assert_eq!(received[0].field("ErrorCode"), Some("30008"));
}

#[tokio::test]
async fn the_callback_delay_spaces_the_steps() {
    let inbox = Arc::new(Inbox::default());
    let callback = start_receiver(inbox.clone()).await;
    let twilio = start_fake(Behaviour {
        callbacks: CallbackPlan {
            delay_ms: 100,
            ..CallbackPlan::default()
        },
        ..Behaviour::default()
    })
    .await;
    let accepted_at = Instant::now();
    let sid = send_with_callback(&twilio, &callback, "later").await;
    let received = callbacks_for(&inbox, &sid, 2).await;
    assert!(received[0].at - accepted_at >= Duration::from_millis(100));
    assert!(received[1].at - received[0].at >= Duration::from_millis(100));
}

#[tokio::test]
async fn a_failing_receiver_is_retried_and_a_dead_one_does_not_stop_the_fake() {
    let inbox = Arc::new(Inbox::default());
    let callback = start_receiver(inbox.clone()).await;
    let twilio = start_fake(Behaviour {
        callbacks: CallbackPlan {
            retries: 2,
            retry_backoff_ms: 10,
            ..CallbackPlan::default()
        },
        ..Behaviour::default()
    })
    .await;

    inbox.fail_next.store(2, Ordering::SeqCst);
    let sid = send_with_callback(&twilio, &callback, "flaky").await;
    let received = callbacks_for(&inbox, &sid, 4).await;
    assert_eq!(statuses(&received), ["sent", "sent", "sent", "delivered"]);
    let records = eventually(Duration::from_secs(5), "records", || async {
        let records = twilio.callbacks();
        (records.len() == 2).then_some(records)
    })
    .await;
    assert_eq!((records[0].attempts, records[0].delivered), (3, true));

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}/twilio/status", closed.local_addr().unwrap());
    drop(closed);
    let lost = send_with_callback(&twilio, &dead, "nobody listens").await;
    let given_up = eventually(Duration::from_secs(5), "given-up callbacks", || async {
        let records: Vec<_> = twilio
            .callbacks()
            .into_iter()
            .filter(|r| r.message_sid == lost)
            .collect();
        (records.len() == 2).then_some(records)
    })
    .await;
    assert!(
        given_up
            .iter()
            .all(|r| !r.delivered && r.attempts == 3 && r.error.is_some())
    );
    // The message still went its way, and the fake still serves.
    send_with_callback(&twilio, &callback, "still here").await;
}

/// The message resource as a fetch answers it, with the fake's own credentials.
async fn fetched(twilio: &FakeTwilio, sid: &str) -> serde_json::Value {
    let url = format!(
        "{}/2010-04-01/Accounts/{}/Messages/{sid}.json",
        twilio.base_url(),
        twilio.account_sid()
    );
    let auth = support::basic(twilio.account_sid(), twilio.auth_token());
    let reply = Http::default()
        .send(
            poem::http::Method::GET,
            &url,
            &[("authorization", auth)],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    reply.json()
}

#[tokio::test]
async fn dropped_callbacks_are_never_posted_but_the_status_moves_on_for_a_fetch() {
    let inbox = Arc::new(Inbox::default());
    let callback = start_receiver(inbox.clone()).await;
    let twilio = start_fake(Behaviour {
        callbacks: CallbackPlan {
            dropped_share: 1.0,
            send_read: true,
            ..CallbackPlan::default()
        },
        ..Behaviour::default()
    })
    .await;
    let sid = send_with_callback(&twilio, &callback, "into the void").await;
    let records = eventually(Duration::from_secs(5), "dropped callbacks", || async {
        let records = twilio.callbacks();
        (records.len() == 3).then_some(records)
    })
    .await;
    assert!(
        records
            .iter()
            .all(|r| !r.delivered && r.attempts == 0 && r.error.is_some())
    );
    assert!(inbox.received.lock().unwrap().is_empty(), "nothing posted");
    assert_eq!(fetched(&twilio, &sid).await["status"], "read");
    assert_eq!(twilio.counters().fetches, 1);
}

#[tokio::test]
async fn messages_stop_at_the_plans_status_and_fail_with_its_error_code() {
    let inbox = Arc::new(Inbox::default());
    let callback = start_receiver(inbox.clone()).await;
    let twilio = start_fake(Behaviour {
        callbacks: CallbackPlan {
            stop_at: Some(MessageStatus::Sent),
            ..CallbackPlan::default()
        },
        ..Behaviour::default()
    })
    .await;
    let phone_off = send_with_callback(&twilio, &callback, "phone off").await;
    assert_eq!(
        statuses(&callbacks_for(&inbox, &phone_off, 1).await),
        ["sent"]
    );
    // Nothing more comes: the last step was `sent`.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        statuses(&callbacks_for(&inbox, &phone_off, 1).await),
        ["sent"]
    );
    assert_eq!(fetched(&twilio, &phone_off).await["status"], "sent");

    twilio
        .set_callback_plan(CallbackPlan {
            failed_share: 1.0,
            failure_status: FailureStatus::Failed,
            failure_error_code: 21610,
            ..CallbackPlan::default()
        })
        .unwrap();
    let unsubscribed = send_with_callback(&twilio, &callback, "unsubscribed").await;
    let received = callbacks_for(&inbox, &unsubscribed, 1).await;
    assert_eq!(received[0].field("ErrorCode"), Some("21610"));
    let resource = fetched(&twilio, &unsubscribed).await;
    assert_eq!(
        (resource["status"].as_str(), resource["error_code"].as_u64()),
        (Some("failed"), Some(21610))
    );
}
