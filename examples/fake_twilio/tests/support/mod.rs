//! Shared by the integration tests: a plain HTTP client (hyper-util, already a dependency of
//! the crate, so tests compile nothing more), a fake started on a free port, and polling
//! with a deadline instead of sleeps.

#![allow(dead_code)] // Each test file uses its own part of this module.

use std::future::Future;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use fake_twilio::{Behaviour, FakeConfig, FakeTwilio};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use poem::http::{HeaderMap, Method, Request, header};
use serde_json::Value;

/// A WhatsApp recipient with no configured fault.
pub const TO: &str = "whatsapp:+14155552671";
/// Twilio's WhatsApp sandbox sender.
pub const FROM: &str = "whatsapp:+14155238886";

/// An answer, read to the end.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// A minimal HTTP/1 client that opens a new connection for every request, so a connection
/// the fake drops never leaks into the next request.
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Http {
    fn default() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build_http(),
        }
    }
}

impl Http {
    /// Sends one request; `Err` when no answer came (e.g. the connection was closed).
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Reply, String> {
        let mut request = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| error_chain(&e))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| error_chain(&e))?
            .to_bytes();
        Ok(Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }

    /// Posts a form with optional Basic auth.
    pub async fn post_form(
        &self,
        url: &str,
        auth: Option<(&str, &str)>,
        fields: &[(&str, &str)],
    ) -> Result<Reply, String> {
        let mut headers = vec![(
            header::CONTENT_TYPE.as_str(),
            "application/x-www-form-urlencoded".to_owned(),
        )];
        if let Some((user, password)) = auth {
            headers.push((header::AUTHORIZATION.as_str(), basic(user, password)));
        }
        let body = serde_urlencoded::to_string(fields).expect("encodable form");
        self.send(Method::POST, url, &headers, body.into_bytes())
            .await
    }

    /// Sends a message on the fake's account with its own credentials.
    pub async fn send_message(
        &self,
        twilio: &FakeTwilio,
        fields: &[(&str, &str)],
    ) -> Result<Reply, String> {
        let auth = Some((twilio.account_sid(), twilio.auth_token()));
        self.post_form(&twilio.messages_url(), auth, fields).await
    }

    pub async fn get_json(&self, url: &str) -> Value {
        let reply = self.send(Method::GET, url, &[], Vec::new()).await.unwrap();
        assert_eq!(reply.status, 200, "GET {url}");
        reply.json()
    }

    pub async fn post_json(&self, url: &str, value: &Value) -> Reply {
        let headers = [(header::CONTENT_TYPE.as_str(), "application/json".to_owned())];
        let body = serde_json::to_vec(value).unwrap();
        self.send(Method::POST, url, &headers, body).await.unwrap()
    }
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// An error and all its causes on one line (hyper's reasons hide in the sources).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A fake on a free port of 127.0.0.1 with the given behaviour.
pub async fn start_fake(behaviour: Behaviour) -> FakeTwilio {
    FakeTwilio::start(FakeConfig {
        behaviour,
        ..FakeConfig::default()
    })
    .await
    .expect("the fake starts")
}

/// Polls `check` until it answers `Some`, failing the test after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
