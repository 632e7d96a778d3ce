//! The Twilio adapter against `examples/fake_twilio`, an independent fake of Twilio's
//! Messages API, over real HTTP: every recipient is accepted exactly once even with injected
//! 429s and 5xx (transient errors are retried), permanent errors carry Twilio's code, and the
//! fake's signed status callbacks verify with the platform's signature check.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_twilio::{FakeConfig, FakeTwilio, Faults};
use messaging_core::domain::{MessageId, PhoneNumber};
use messaging_core::provider::{
    OutboundMessage, Provider, SendError, Sender, TwilioConfig, TwilioProvider,
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
