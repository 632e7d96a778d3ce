//! The HTTP server, with the dispatcher beside it. Today it answers health checks; the REST
//! API, webhooks and UI mount here.

use anyhow::Context;
use messaging_core::Engine;
use poem::listener::TcpListener;
use poem::web::{Data, Json};
use poem::{EndpointExt, Route, Server, get, handler, http::StatusCode};
use serde_json::{Value, json};

use tokio::sync::watch;

use crate::config::Config;
use crate::sending;

/// Serves, and sends the outbox, until Ctrl-C or SIGTERM; then stops taking requests and
/// claiming messages, and lets the sends in flight finish.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    tracing::info!("configuration:\n{config}");
    if !config.twilio_configured() {
        tracing::warn!("no Twilio credentials set: messages go to the built-in sandbox provider");
    }
    let engine = Engine::open(&config.database_url)
        .await
        .with_context(|| format!("cannot open the database {}", config.database_url))?;
    // Fan-outs a previous run of the server did not finish (a crash, a kill) go on now.
    match engine.complete_runs().await {
        Ok(resumed) if !resumed.is_empty() => {
            tracing::info!(runs = resumed.len(), "completed unfinished campaign runs");
        }
        Ok(_) => {}
        Err(error) => tracing::error!(%error, "could not look for unfinished campaign runs"),
    }
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let provider = sending::provider(&config, &engine)?;
    let dispatcher = engine.dispatcher(provider, sending::dispatch_config(&config));
    let dispatching = tokio::spawn(dispatcher.run(wait_for(stopped.clone())));
    let app = Route::new().at("/healthz", get(healthz)).data(engine);
    tracing::info!("listening on http://{}", config.bind);
    let served = Server::new(TcpListener::bind(config.bind.clone()))
        .run_with_graceful_shutdown(app, wait_for(stopped), None)
        .await
        .with_context(|| format!("cannot serve on {}", config.bind));
    if served.is_err() {
        // The dispatcher must not outlive a server that could not start.
        dispatching.abort();
    } else {
        let _ = dispatching.await;
    }
    served
}

/// Completes when `stopped` turns true (or its sender is gone).
async fn wait_for(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
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
