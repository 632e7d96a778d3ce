//! The Twilio adapter against `examples/fake_twilio`, an independent fake of Twilio's
//! Messages API, over real HTTP: every recipient is accepted exactly once even with injected
//! 429s and 5xx (transient errors are retried), permanent errors carry Twilio's code, the
//! fake's signed status callbacks verify with the platform's signature check, and a send whose
//! answer was lost is found again through Twilio's list of messages (or, when the list cannot
//! be read, said to be unknown).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use fake_twilio::{FakeConfig, FakeTwilio, Faults, ScriptedFault};
use messaging_core::domain::{MessageId, MessageStatus, PhoneNumber};
use messaging_core::provider::{
    Accepted, Lookup, OutboundMessage, Provider, SendError, Sender, TwilioConfig, TwilioProvider,
    is_valid_twilio_signature,
};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Form};
use poem::{EndpointExt, Request, Route, Server, handler, post};

type Seen = Arc<Mutex<Vec<(bool, String)>>>;

#[derive(Clone)]
struct Callbacks {
    seen: Seen,
    url: String,
    token: String,
}

#[handler]
fn status(request: &Request, Form(fields): Form<Vec<(String, String)>>, state: Data<&Callbacks>) {
    let signature = request
        .header("X-Twilio-Signature")
        .unwrap_or_default()
        .to_owned();
    let valid = is_valid_twilio_signature(&state.token, &state.url, &fields, &signature);
    let status = fields
        .iter()
        .find(|(k, _)| k == "MessageStatus")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    state.seen.lock().unwrap().push((valid, status));
}

/// A server standing in for the platform's `/twilio/status` webhook.
async fn callback_server(token: &str) -> (String, Seen) {
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let address = acceptor.local_addr()[0].as_socket_addr().cloned().unwrap();
    let url = format!("http://{address}/twilio/status");
    let seen = Seen::default();
    let state = Callbacks {
        seen: seen.clone(),
        url: url.clone(),
        token: token.to_owned(),
    };
    let app = Route::new().at("/twilio/status", post(status)).data(state);
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    (url, seen)
}

fn message(to: &str) -> OutboundMessage {
    OutboundMessage {
        id: MessageId::new(),
        to: PhoneNumber::parse(to).unwrap(),
        body: Some(format!("Hello {to}")),
        content_sid: None,
        content_variables: None,
    }
}

#[tokio::test]
async fn every_recipient_is_accepted_exactly_once_despite_transient_errors() {
    let fake = FakeTwilio::start(FakeConfig::default()).await.unwrap();
    fake.set_faults(Faults {
        rate_limited_share: 0.2,
        server_error_share: 0.1,
        ..Faults::default()
    })
    .unwrap();
    let (callback_url, seen) = callback_server(fake.auth_token()).await;
    let mut config = TwilioConfig::new(
        fake.account_sid(),
        fake.auth_token(),
        Sender::Number(PhoneNumber::parse("+14155238886").unwrap()),
    );
    config.api_base = fake.base_url();
    config.status_callback = Some(callback_url);
    let twilio = TwilioProvider::new(config).unwrap();

    let recipients: Vec<String> = (0..200).map(|i| format!("+1415555{i:04}")).collect();
    let mut transient = 0;
    for to in &recipients {
        let outbound = message(to);
        loop {
            match twilio.send(&outbound).await {
                Ok(accepted) => {
                    assert!(accepted.provider_sid.starts_with("SM"));
                    break;
                }
                Err(SendError::Transient { .. }) => transient += 1,
                Err(other) => panic!("{to}: {other}"),
            }
        }
    }
    assert!(
        transient > 20,
        "faults were injected ({transient} transient errors)"
    );

    let accepted = fake.messages();
    assert_eq!(accepted.len(), recipients.len());
    assert!(accepted.iter().all(|m| m.times_accepted == 1));

    // Each accepted message reports `sent` then `delivered`, signed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().len() < 2 * recipients.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2 * recipients.len());
    assert!(
        seen.iter().all(|(valid, _)| *valid),
        "every callback signature verifies"
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn permanent_errors_carry_twilios_code() {
    let fake = FakeTwilio::start(FakeConfig::default()).await.unwrap();
    let mut config = TwilioConfig::new(
        fake.account_sid(),
        fake.auth_token(),
        Sender::Number(PhoneNumber::parse("+14155238886").unwrap()),
    );
    config.api_base = fake.base_url();
    let twilio = TwilioProvider::new(config).unwrap();
    for (to, code) in [
        ("+15005550001", "21211"),
        ("+15005550002", "21610"),
        ("+15005550003", "63016"),
    ] {
        match twilio.send(&message(to)).await {
            Err(SendError::Permanent {
                code: Some(got), ..
            }) => assert_eq!(got, code),
            other => panic!("{to}: expected a permanent error, got {other:?}"),
        }
    }
    assert!(fake.messages().is_empty());

    let mut wrong = TwilioConfig::new(
        fake.account_sid(),
        "not-the-token",
        Sender::MessagingService("MG1".into()),
    );
    wrong.api_base = fake.base_url();
    let refused = TwilioProvider::new(wrong)
        .unwrap()
        .send(&message("+14155550100"))
        .await;
    assert!(
        matches!(refused, Err(SendError::Permanent { .. })),
        "{refused:?}"
    );
    fake.shutdown().await;
}

/// The sender of the lookup tests: Twilio's WhatsApp sandbox number.
const FROM: &str = "+14155238886";

/// A provider pointed at `api_base` with the fake's credentials.
fn provider_at(fake: &FakeTwilio, api_base: String, sender: Sender) -> TwilioProvider {
    let mut config = TwilioConfig::new(fake.account_sid(), fake.auth_token(), sender);
    config.api_base = api_base;
    TwilioProvider::new(config).unwrap()
}

fn from_number() -> Sender {
    Sender::Number(PhoneNumber::parse(FROM).unwrap())
}

/// Sends `outbound` while the fake accepts it and then drops the connection; answers the SID
/// the fake recorded.
async fn send_and_lose_the_answer(
    fake: &FakeTwilio,
    twilio: &TwilioProvider,
    outbound: &OutboundMessage,
) -> String {
    fake.set_faults(Faults {
        script: [ScriptedFault::DropAfterAccept].into(),
        ..Faults::default()
    })
    .unwrap();
    let sent = twilio.send(outbound).await;
    assert!(matches!(sent, Err(SendError::Unknown { .. })), "{sent:?}");
    let recorded = fake
        .messages()
        .pop()
        .expect("the fake accepted the message");
    assert!(recorded.answer_dropped);
    recorded.sid
}

#[tokio::test]
async fn a_send_whose_answer_was_dropped_is_found_under_the_fakes_sid() {
    let fake = FakeTwilio::start(FakeConfig::default()).await.unwrap();
    let twilio = provider_at(&fake, fake.base_url(), from_number());
    let since = Utc::now();
    // Other messages to the same recipient, before and after, must not confuse the lookup.
    let ours = message("+14155550100");
    let other = OutboundMessage {
        body: Some("Something else".into()),
        ..message("+14155550100")
    };
    twilio.send(&other).await.unwrap();
    let sid = send_and_lose_the_answer(&fake, &twilio, &ours).await;
    twilio.send(&message("+14155550101")).await.unwrap();

    // The fake moves it to `delivered` at once; the lookup reports Twilio's current status.
    let deadline = Instant::now() + Duration::from_secs(5);
    while fake
        .messages()
        .iter()
        .any(|m| m.status != fake_twilio::MessageStatus::Delivered)
    {
        assert!(Instant::now() < deadline, "the fake never delivered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        twilio.lookup(&ours, since).await,
        Lookup::Found(Accepted {
            provider_sid: sid,
            status: MessageStatus::Delivered,
        })
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn a_template_through_a_messaging_service_whose_answer_was_dropped_is_found() {
    let fake = FakeTwilio::start(FakeConfig::default()).await.unwrap();
    let service = Sender::MessagingService("MG0123456789abcdef0123456789abcdef".into());
    let twilio = provider_at(&fake, fake.base_url(), service);
    let template = OutboundMessage {
        body: None,
        content_sid: Some("HX0123456789abcdef0123456789abcdef".into()),
        content_variables: Some([("1".to_string(), "Ada".to_string())].into()),
        ..message("+14155550100")
    };
    let since = Utc::now();
    let sid = send_and_lose_the_answer(&fake, &twilio, &template).await;
    match twilio.lookup(&template, since).await {
        Lookup::Found(accepted) => assert_eq!(accepted.provider_sid, sid),
        other => panic!("expected the dropped template to be found, got {other:?}"),
    }
    fake.shutdown().await;
}

#[tokio::test]
async fn a_message_never_sent_is_not_found() {
    let fake = FakeTwilio::start(FakeConfig::default()).await.unwrap();
    let twilio = provider_at(&fake, fake.base_url(), from_number());
    let since = Utc::now();
    // The recipient got other text, and someone else got this text: neither is ours.
    let other_text = OutboundMessage {
        body: Some("Another text".into()),
        ..message("+14155550100")
    };
    twilio.send(&other_text).await.unwrap();
    twilio
        .send(&OutboundMessage {
            to: PhoneNumber::parse("+14155550101").unwrap(),
            ..message("+14155550100")
        })
        .await
        .unwrap();
    assert_eq!(
        twilio.lookup(&message("+14155550100"), since).await,
        Lookup::NotFound
    );
    assert_eq!(fake.counters().lists, 1);
    fake.shutdown().await;
}

#[tokio::test]
async fn the_lookup_reads_past_the_first_page_of_a_busy_recipient() {
    let fake = FakeTwilio::start(FakeConfig::default()).await.unwrap();
    let twilio = provider_at(&fake, fake.base_url(), from_number());
    let since = Utc::now();
    let ours = message("+14155550100");
    let sid = send_and_lose_the_answer(&fake, &twilio, &ours).await;
    // 60 newer messages push ours onto the second page of 50.
    for n in 0..60 {
        let newer = OutboundMessage {
            body: Some(format!("Update {n}")),
            ..message("+14155550100")
        };
        twilio.send(&newer).await.unwrap();
    }
    match twilio.lookup(&ours, since).await {
        Lookup::Found(accepted) => assert_eq!(accepted.provider_sid, sid),
        other => panic!("expected ours on the second page, got {other:?}"),
    }
    assert_eq!(fake.counters().lists, 2);

    let never_sent = OutboundMessage {
        body: Some("Never sent".into()),
        ..message("+14155550100")
    };
    assert_eq!(twilio.lookup(&never_sent, since).await, Lookup::NotFound);
    fake.shutdown().await;
}

#[tokio::test]
async fn a_list_that_cannot_be_read_makes_the_lookup_unknown() {
    let fake = FakeTwilio::start(FakeConfig::default()).await.unwrap();
    let twilio = provider_at(&fake, fake.base_url(), from_number());
    let since = Utc::now();
    fake.set_faults(Faults {
        list_server_error_share: 1.0,
        ..Faults::default()
    })
    .unwrap();
    match twilio.lookup(&message("+14155550100"), since).await {
        Lookup::Unknown(reason) => assert!(reason.contains("50"), "{reason}"),
        other => panic!("expected unknown on a 5xx, got {other:?}"),
    }

    let wrong_token = TwilioProvider::new(TwilioConfig {
        api_base: fake.base_url(),
        ..TwilioConfig::new(fake.account_sid(), "not-the-token", from_number())
    })
    .unwrap();
    assert!(matches!(
        wrong_token.lookup(&message("+14155550100"), since).await,
        Lookup::Unknown(_)
    ));

    // Nothing listens on a port just released: the list is never read.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let nowhere = provider_at(&fake, closed_base, from_number());
    assert!(matches!(
        nowhere.lookup(&message("+14155550100"), since).await,
        Lookup::Unknown(_)
    ));
    fake.shutdown().await;
}
