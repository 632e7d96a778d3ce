//! The HTTP server, with the dispatcher beside it: `/healthz`, the JSON API under `/api/v1`,
//! its OpenAPI document and Swagger UI, and the web UI at `/ui/`.

use anyhow::Context;
use messaging_core::Engine;
use std::net::SocketAddr;
use std::sync::Arc;

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Json};
use poem::{Endpoint, EndpointExt, Route, Server, get, handler, http::StatusCode, post};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::api;
use crate::config::Config;
use crate::metrics::{MeteredProvider, Metrics};
use crate::sending;
use crate::webhooks::{self, WebhookSettings};

/// Serves, and sends the outbox, until Ctrl-C or SIGTERM; then stops taking requests and
/// claiming messages, and lets the sends in flight finish.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    tracing::info!("configuration:\n{config}");
    if !config.twilio_configured() {
        tracing::warn!("no Twilio credentials set: messages go to the built-in sandbox provider");
    }
    if config.api_token.is_none() {
        tracing::warn!("API_TOKEN is not set: /api/v1 is open to anyone who can reach it");
    }
    let running = start(config, shutdown_signal()).await?;
    running.finished.await?
}

/// A started server.
pub struct Running {
    /// The address it listens on (the real port when `BIND` asked for port 0).
    pub address: SocketAddr,
    /// The engine it serves.
    pub engine: Engine,
    /// Completes when the server and its dispatcher have stopped.
    pub finished: JoinHandle<anyhow::Result<()>>,
}

/// Binds `config.bind`, starts the engine the core's way ([`messaging_core::startup`]), and
/// serves until `shutdown` completes. Tests start the real server this way on port 0.
pub async fn start(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    // Listening first: a taken port is said before anything else starts.
    let acceptor = TcpListener::bind(config.bind.clone())
        .into_acceptor()
        .await
        .with_context(|| format!("cannot listen on {}", config.bind))?;
    let address = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .context("the listener has no address")?;
    let metrics = Arc::new(Metrics::default());
    let counted = metrics.clone();
    let running = sending::startup(&config)
        .provider_layer(move |provider| Arc::new(MeteredProvider::new(provider, counted)))
        .start(shutdown)
        .await?;
    let engine = running.engine().clone();
    let app = routes(&engine, &config, metrics);
    tracing::info!("listening on http://{address}");
    let stopping = running.stopping();
    let finished = tokio::spawn(async move {
        let served = Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(app, stopping, None)
            .await
            .context("the server failed");
        // A server that failed stops the sending too.
        running.stop();
        running.finished().await;
        served
    });
    Ok(Running {
        address,
        engine,
        finished,
    })
}

/// Every route of the server.
fn routes(engine: &Engine, config: &Config, metrics: Arc<Metrics>) -> impl Endpoint + 'static {
    let webhooks = WebhookSettings {
        public_url: config.public_url.clone(),
        signing_token: config
            .validate_signature
            .then(|| config.twilio.as_ref().map(|t| t.auth_token.clone()))
            .flatten(),
    };
    let api = api::service(engine, config);
    let (spec, swagger) = (api::spec(&api), api::swagger_ui(&api));
    let bodies = Arc::new(api::validate::BodySchemas::from_spec(
        &serde_json::from_str(&spec).unwrap_or_default(),
    ));
    let limits = api::limits::BodyLimits {
        upload: config.max_body_bytes,
        json: config.max_json_body_bytes,
    };
    let api = api::validate::check_bodies(
        api.around(api::error::envelope),
        bodies.clone(),
        limits.json,
    );
    let api = api::limits::limit_bodies(api, bodies, limits);
    let api = api::require_token(api, config.api_token.clone());
    Route::new()
        .at("/healthz", get(healthz))
        .nest("/api/v1", api)
        .at("/openapi.json", get(text(spec, "application/json")))
        .at(
            "/apidocs",
            get(poem::endpoint::make_sync(|_| {
                poem::web::Redirect::permanent("/apidocs/")
            })),
        )
        .at("/apidocs/", get(text(swagger, "text/html; charset=utf-8")))
        .at("/metrics", get(crate::metrics::scrape))
        .nest("/ui", crate::ui::routes())
        .at("/twilio/inbound", post(webhooks::inbound_webhook))
        .at("/twilio/status", post(webhooks::status_webhook))
        .data(engine.clone())
        .data(webhooks)
        .data(metrics)
        // A span per request (method, path, status, duration), around every log line the
        // request causes; its own events show with RUST_LOG=poem=info.
        .with(poem::middleware::Tracing)
}

/// An endpoint answering a fixed text.
fn text(body: String, content_type: &'static str) -> impl poem::Endpoint<Output = poem::Response> {
    poem::endpoint::make_sync(move |_| {
        poem::Response::builder()
            .content_type(content_type)
            .body(body.clone())
    })
}

#[handler]
async fn healthz(engine: Data<&Engine>) -> (StatusCode, Json<Value>) {
    match engine.count_users().await {
        Ok(users) => (
            StatusCode::OK,
            Json(json!({"status": "ok", "users": users})),
        ),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "error": error.to_string()})),
        ),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
