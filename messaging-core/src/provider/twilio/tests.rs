//! Tests of the Twilio adapter against a fake Messages API on 127.0.0.1, one per outcome.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use poem::http::StatusCode;

use super::*;
use crate::domain::MessageId;

const SID: &str = "ACtest0000000000000000000000000000";
const TOKEN: &str = "s3cret";

/// What the fake server saw of one request.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    authorization: Option<String>,
    content_type: Option<String>,
    form: Vec<(String, String)>,
}

/// The canned answer of the fake server.
#[derive(Clone)]
struct Answer {
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
    body: &'static str,
    delay: Duration,
}

impl Answer {
    fn new(status: u16, body: &'static str) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json")],
            body,
            delay: Duration::ZERO,
        }
    }
}

/// A fake Twilio on a random local port that records what it receives.
struct FakeTwilio {
    base: String,
    received: Arc<Mutex<Vec<Received>>>,
    most_in_flight: Arc<AtomicUsize>,
}

impl FakeTwilio {
    async fn start(answer: Answer) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let most_in_flight = Arc::new(AtomicUsize::new(0));
        let endpoint = {
            let (received, in_flight, most_in_flight) =
                (received.clone(), in_flight.clone(), most_in_flight.clone());
            poem::endpoint::make(move |mut request: poem::Request| {
                let (received, in_flight, most_in_flight, answer) = (
                    received.clone(),
                    in_flight.clone(),
                    most_in_flight.clone(),
                    answer.clone(),
                );
                async move {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    most_in_flight.fetch_max(now, Ordering::SeqCst);
                    let header = |name: &str| request.header(name).map(str::to_string);
                    let (authorization, content_type) =
                        (header("authorization"), header("content-type"));
                    let path = request.uri().path().to_string();
                    let body = request.take_body().into_vec().await.unwrap_or_default();
                    received.lock().unwrap().push(Received {
                        path,
                        authorization,
                        content_type,
                        form: decode_form(&body),
                    });
                    tokio::time::sleep(answer.delay).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    let mut response = poem::Response::builder()
                        .status(StatusCode::from_u16(answer.status).unwrap());
                    for (name, value) in &answer.headers {
                        response = response.header(*name, *value);
                    }
                    response.body(answer.body)
                }
            })
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let acceptor = poem::listener::TcpAcceptor::from_std(listener).unwrap();
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(endpoint));
        Self {
            base,
            received,
            most_in_flight,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

fn decode_form(body: &[u8]) -> Vec<(String, String)> {
    let query = String::from_utf8_lossy(body);
    reqwest::Url::parse(&format!("http://form.invalid/?{query}"))
        .unwrap()
        .query_pairs()
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

fn phone(text: &str) -> PhoneNumber {
    PhoneNumber::parse(text).unwrap()
}

fn provider(api_base: &str, adjust: impl FnOnce(&mut TwilioConfig)) -> TwilioProvider {
    let mut config = TwilioConfig::new(SID, TOKEN, Sender::Number(phone("+14155238886")));
    config.api_base = api_base.to_string();
    config.timeout = Duration::from_secs(5);
    adjust(&mut config);
    TwilioProvider::new(config).unwrap()
}

fn text_message(body: &str) -> OutboundMessage {
    OutboundMessage {
        id: MessageId::new(),
        to: phone("+94771234567"),
        body: Some(body.to_string()),
        content_sid: None,
        content_variables: None,
    }
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

const CREATED: &str = r#"{"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued",
    "to": "whatsapp:+94771234567", "error_code": null}"#;

#[tokio::test]
async fn a_created_message_returns_its_sid_and_the_request_is_what_twilio_expects() {
    let twilio = FakeTwilio::start(Answer::new(201, CREATED)).await;
    let provider = provider(&twilio.base, |config| {
        config.status_callback = Some("https://example.com/twilio/status".into());
    });

    let accepted = provider.send(&text_message("Hi Amaya & co")).await.unwrap();

    assert_eq!(accepted.provider_sid, "SM0123456789abcdef0123456789abcdef");
    assert_eq!(accepted.status, MessageStatus::Sending);
    let received = twilio.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(
        request.path,
        format!("/2010-04-01/Accounts/{SID}/Messages.json")
    );
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"));
    assert_eq!(
        request.authorization.as_deref(),
        Some(format!("Basic {credentials}").as_str())
    );
    assert_eq!(
        request.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        request.form,
        pairs(&[
            ("To", "whatsapp:+94771234567"),
            ("From", "whatsapp:+14155238886"),
            ("Body", "Hi Amaya & co"),
            ("StatusCallback", "https://example.com/twilio/status"),
        ])
    );
}

#[tokio::test]
async fn a_template_goes_as_content_sid_and_json_variables_through_a_messaging_service() {
    let twilio = FakeTwilio::start(Answer::new(201, CREATED)).await;
    let provider = provider(&twilio.base, |config| {
        config.sender = Sender::MessagingService("MG0000000000000000000000000000000a".into());
    });
    let message = OutboundMessage {
        body: Some("ignored outside the window".into()),
        content_sid: Some("HX1234".into()),
        content_variables: Some(BTreeMap::from([
            ("1".to_string(), "Amaya".to_string()),
            ("2".to_string(), "\"20%\"".to_string()),
        ])),
        ..text_message("")
    };

    provider.send(&message).await.unwrap();

    assert_eq!(
        twilio.received()[0].form,
        pairs(&[
            ("To", "whatsapp:+94771234567"),
            ("MessagingServiceSid", "MG0000000000000000000000000000000a"),
            ("ContentSid", "HX1234"),
            ("ContentVariables", r#"{"1":"Amaya","2":"\"20%\""}"#),
        ])
    );
}

#[tokio::test]
async fn an_invalid_number_is_permanent_with_twilios_code() {
    let twilio = FakeTwilio::start(Answer::new(
        400,
        r#"{"code": 21211, "message": "The 'To' number is not a valid phone number.",
            "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#,
    ))
    .await;
    let error = provider(&twilio.base, |_| {})
        .send(&text_message("hi"))
        .await
        .unwrap_err();
    match error {
        SendError::Permanent { code, message } => {
            assert_eq!(code.as_deref(), Some("21211"));
            assert!(message.contains("not a valid phone number"), "{message}");
            assert!(message.contains("docs/errors/21211"), "{message}");
        }
        other => panic!("expected Permanent, got {other:?}"),
    }
}

#[tokio::test]
async fn too_many_requests_is_transient_with_the_wait_twilio_asked_for() {
    let mut answer = Answer::new(
        429,
        r#"{"code": 20429, "message": "Too Many Requests", "status": 429}"#,
    );
    answer.headers.push(("retry-after", "7"));
    let twilio = FakeTwilio::start(answer).await;
    let error = provider(&twilio.base, |_| {})
        .send(&text_message("hi"))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        SendError::Transient {
            code: Some("20429".into()),
            message: "Twilio answered 429: Too Many Requests".into(),
            retry_after: Some(Duration::from_secs(7)),
        }
    );
}

#[tokio::test]
async fn a_server_error_is_transient() {
    let twilio = FakeTwilio::start(Answer::new(503, "<html>Service Unavailable</html>")).await;
    let error = provider(&twilio.base, |_| {})
        .send(&text_message("hi"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            SendError::Transient { code: Some(code), retry_after: None, .. } if code == "503"
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_success_without_a_sid_is_unknown() {
    let twilio = FakeTwilio::start(Answer::new(201, "<html>proxy says hi</html>")).await;
    let error = provider(&twilio.base, |_| {})
        .send(&text_message("hi"))
        .await
        .unwrap_err();
    assert!(matches!(error, SendError::Unknown { .. }), "{error:?}");
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let error = provider(&format!("http://127.0.0.1:{port}"), |_| {})
        .send(&text_message("hi"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, SendError::Transient { code: None, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_makes_the_outcome_unknown() {
    // The kernel completes the handshake into the backlog, so the request is written, but
    // nobody ever reads it or answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", silent.local_addr().unwrap());
    let provider = provider(&base, |config| config.timeout = Duration::from_millis(300));

    let started = std::time::Instant::now();
    let error = provider.send(&text_message("hi")).await.unwrap_err();

    assert!(matches!(error, SendError::Unknown { .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(silent);
}

#[tokio::test]
async fn a_connection_dropped_after_the_request_makes_the_outcome_unknown() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buffer = [0u8; 4096];
        let _ = stream.read(&mut buffer);
        // Dropping the stream closes the connection without an answer.
    });

    let error = provider(&base, |_| {})
        .send(&text_message("hi"))
        .await
        .unwrap_err();

    assert!(matches!(error, SendError::Unknown { .. }), "{error:?}");
    server.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_stay_within_the_limit() {
    let mut answer = Answer::new(201, CREATED);
    answer.delay = Duration::from_millis(50);
    let twilio = FakeTwilio::start(answer).await;
    let provider = Arc::new(provider(&twilio.base, |config| {
        config.max_concurrent_requests = 2;
    }));

    let sends: Vec<_> = (0..6)
        .map(|_| {
            let provider = provider.clone();
            tokio::spawn(async move { provider.send(&text_message("hi")).await })
        })
        .collect();
    for send in sends {
        send.await.unwrap().unwrap();
    }

    assert_eq!(twilio.received().len(), 6);
    assert!(twilio.most_in_flight.load(Ordering::SeqCst) <= 2);
}

#[tokio::test]
async fn a_message_with_nothing_to_send_is_refused_without_a_request() {
    let twilio = FakeTwilio::start(Answer::new(201, CREATED)).await;
    let message = OutboundMessage {
        body: None,
        ..text_message("")
    };
    let error = provider(&twilio.base, |_| {})
        .send(&message)
        .await
        .unwrap_err();
    assert!(matches!(error, SendError::Permanent { code: None, .. }));
    assert!(twilio.received().is_empty());
}

#[test]
fn a_bad_configuration_is_refused_with_the_setting_named() {
    let sender = Sender::Number(phone("+14155238886"));
    let mut config = TwilioConfig::new(SID, TOKEN, sender.clone());
    config.api_base = "api.twilio.com".into();
    assert!(matches!(
        TwilioProvider::new(config),
        Err(TwilioSetupError::ApiBase { .. })
    ));
    assert_eq!(
        TwilioProvider::new(TwilioConfig::new(" ", TOKEN, sender.clone())).unwrap_err(),
        TwilioSetupError::Missing {
            field: "account_sid"
        }
    );
    let mut config = TwilioConfig::new(SID, TOKEN, sender.clone());
    config.max_concurrent_requests = 0;
    assert_eq!(
        TwilioProvider::new(config).unwrap_err(),
        TwilioSetupError::NoConcurrency
    );
    let mut config = TwilioConfig::new(SID, TOKEN, sender.clone());
    config.timeout = Duration::ZERO;
    assert_eq!(
        TwilioProvider::new(config).unwrap_err(),
        TwilioSetupError::NoTimeout
    );
    for pages in [0, 1001] {
        let mut config = TwilioConfig::new(SID, TOKEN, sender.clone());
        config.list_page_size = pages;
        assert_eq!(
            TwilioProvider::new(config).unwrap_err(),
            TwilioSetupError::ListPageSize(pages)
        );
    }
}

#[test]
fn the_auth_token_never_shows_in_debug_output() {
    let config = TwilioConfig::new(SID, TOKEN, Sender::MessagingService("MG1".into()));
    assert!(!format!("{config:?}").contains(TOKEN));
}

#[test]
fn the_sandbox_sender_is_recognised() {
    assert!(Sender::Number(phone("whatsapp:+14155238886")).is_twilio_sandbox());
    assert!(!Sender::Number(phone("+14155552671")).is_twilio_sandbox());
    assert!(!Sender::MessagingService("MG1".into()).is_twilio_sandbox());
}

#[test]
fn other_client_errors_are_permanent_and_throttling_codes_are_transient() {
    let permanent = classify_response(
        400,
        None,
        br#"{"code": 63016, "message": "outside the allowed window"}"#,
    );
    assert!(matches!(permanent, Err(SendError::Permanent { code: Some(c), .. }) if c == "63016"));
    let unsubscribed = classify_response(400, None, br#"{"code": "21610", "message": "x"}"#);
    assert!(
        matches!(unsubscribed, Err(SendError::Permanent { code: Some(c), .. }) if c == "21610")
    );
    let unauthorized = classify_response(401, None, b"");
    assert!(matches!(
        unauthorized,
        Err(SendError::Permanent { code: None, .. })
    ));
    let timeout = classify_response(408, None, b"");
    assert!(matches!(timeout, Err(SendError::Transient { .. })));
    let sender_rate = classify_response(400, None, br#"{"code": 63018, "message": "rate"}"#);
    assert!(matches!(sender_rate, Err(SendError::Transient { code: Some(c), .. }) if c == "63018"));
}

#[test]
fn a_twilio_status_in_the_answer_is_kept() {
    let accepted = classify_response(200, None, br#"{"sid": "SM1", "status": "sent"}"#).unwrap();
    assert_eq!(accepted.status, MessageStatus::Sent);
    let accepted =
        classify_response(201, None, br#"{"sid": "SM1", "status": "accepted"}"#).unwrap();
    assert_eq!(accepted.status, MessageStatus::Sending);
    assert!(matches!(
        classify_response(201, None, br#"{"sid": "", "status": "queued"}"#),
        Err(SendError::Unknown { .. })
    ));
}

#[test]
fn retry_after_accepts_seconds_and_http_dates() {
    assert_eq!(parse_retry_after(" 12 "), Some(Duration::from_secs(12)));
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("soon"), None);
}
