//! `spawn_app()`: the real server in-process on a free port, with a fresh SQLite file and a
//! fake Twilio (`examples/fake_twilio`) as its provider, and a small JSON client for it.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use fake_twilio::{FakeConfig, FakeTwilio};
use messaging_core::Engine;
use messaging_core::provider::Sender;
use messaging_server::config::{Config, TwilioSettings};
use messaging_server::http::{Running, start};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::oneshot;

/// The WhatsApp number the test server sends from.
pub const SENDER: &str = "+14155550100";

/// A running server and what a test needs around it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`, also the server's `PUBLIC_URL`.
    pub base: String,
    /// The engine behind the server (to stage what HTTP cannot, and to look).
    pub engine: Engine,
    /// The fake Twilio the server sends to.
    pub twilio: FakeTwilio,
    /// The auth token the fake and the server share.
    pub auth_token: String,
    client: reqwest::Client,
    token: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    running: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

/// Options for [`spawn_app_with`].
#[derive(Default)]
pub struct Options {
    /// The server's `API_TOKEN`.
    pub api_token: Option<String>,
    /// The server's `MAX_BODY_BYTES` (64 MiB when unset).
    pub max_body_bytes: Option<u64>,
    /// The server's `MAX_JSON_BODY_BYTES` (1 MiB, the default, when unset).
    pub max_json_body_bytes: Option<u64>,
    /// Send through the built-in sandbox provider (no Twilio credentials, as on a fresh
    /// machine) instead of the fake Twilio.
    pub sandbox: bool,
    /// The server's `TWILIO_POLL_SECONDS` (unset: webhooks only).
    pub twilio_poll_seconds: Option<u64>,
}

/// A server with default options.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

/// A server on a free port with a fresh database and a fake Twilio.
pub async fn spawn_app_with(options: Options) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let twilio = FakeTwilio::start(FakeConfig::default()).await.unwrap();
    // The server's own URL must be known before it starts (it is its PUBLIC_URL, for
    // signatures and status callbacks): take a free port and hand it over.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let config = Config {
        database_url: format!("sqlite://{}", dir.path().join("app.db").display()),
        bind: format!("127.0.0.1:{port}"),
        public_url: base.clone(),
        twilio: (!options.sandbox).then(|| TwilioSettings {
            account_sid: twilio.account_sid().to_owned(),
            auth_token: twilio.auth_token().to_owned(),
            sender: Sender::Number(messaging_core::domain::PhoneNumber::parse(SENDER).unwrap()),
            api_base: twilio.base_url(),
        }),
        validate_signature: !options.sandbox,
        api_token: options.api_token.clone(),
        send_rate_per_second: 1_000.0,
        daily_conversation_limit: None,
        frequency_cap: None,
        send_lease_seconds: 120,
        max_body_bytes: options.max_body_bytes.unwrap_or(64 * 1024 * 1024),
        max_json_body_bytes: options.max_json_body_bytes.unwrap_or(1024 * 1024),
        twilio_poll_seconds: options.twilio_poll_seconds,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let Running {
        engine, finished, ..
    } = start(config, async {
        let _ = stopped.await;
    })
    .await
    .unwrap();
    TestApp {
        base,
        engine,
        auth_token: twilio.auth_token().to_owned(),
        twilio,
        client: reqwest::Client::new(),
        token: options.api_token,
        stop: Some(stop),
        running: Some(finished),
        _dir: dir,
    }
}

impl TestApp {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
        let status = response.status();
        let text = response.text().await.unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    /// `GET path` → status and JSON body.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        Self::answer(
            self.request(reqwest::Method::GET, path)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        Self::answer(
            self.request(reqwest::Method::DELETE, path)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// `method path` with a JSON body.
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> (StatusCode, Value) {
        let response = self
            .request(method, path)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        Self::answer(response).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send_json(reqwest::Method::POST, path, body).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send_json(reqwest::Method::PUT, path, body).await
    }

    /// `PATCH path` with a JSON body.
    pub async fn patch(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send_json(reqwest::Method::PATCH, path, body).await
    }

    /// `POST path` with a raw body of `content_type`.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let response = self
            .request(reqwest::Method::POST, path)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        Self::answer(response).await
    }

    /// `POST path` with form fields and headers, answering the status and the raw text.
    pub async fn post_form(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> (StatusCode, String, Option<String>) {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded_pairs(fields));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (status, response.text().await.unwrap(), content_type)
    }

    /// Waits, up to `within`, until `done` holds.
    pub async fn until(&self, what: &str, within: Duration, mut done: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + within;
        while !done().await {
            assert!(
                Instant::now() < deadline,
                "{what} did not happen in {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(running) = self.running.take() {
            running.await.unwrap().unwrap();
        }
    }
}

fn serde_urlencoded_pairs(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
