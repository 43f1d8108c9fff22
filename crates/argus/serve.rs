//! The long-running service: the metrics and health endpoint, with graceful shutdown on
//! Ctrl-C or SIGTERM. Ingestion, detection and storage join here as later issues add them.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use argus_config::Settings;
use argus_model::Registry;
use argus_telemetry::Telemetry;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// Run until a shutdown signal.
pub async fn run(settings: Settings, registry: Registry) -> anyhow::Result<()> {
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let telemetry = Telemetry::new(
        env!("CARGO_PKG_VERSION"),
        i64::try_from(started).unwrap_or(0),
    )?;
    let summary = registry.summary();
    telemetry.set_registry_objects(&[
        ("towns", summary.towns),
        ("departments", summary.departments),
        ("teams", summary.teams),
        ("enterprises", summary.enterprises),
        ("points", summary.points),
        ("limits", summary.limits),
    ]);
    tracing::info!(county = registry.county(), %summary, "registry loaded");

    let listener = tokio::net::TcpListener::bind(settings.metrics.listen_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on metrics.listen_addr {}",
                settings.metrics.listen_addr
            )
        })?;
    tracing::info!(addr = %settings.metrics.listen_addr, "serving /metrics and /healthz");
    axum::serve(listener, app(Arc::new(telemetry)))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("metrics server failed")?;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// The HTTP routes, without a socket, so tests can call them directly.
pub fn app(telemetry: Arc<Telemetry>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(telemetry)
}

async fn metrics(State(telemetry): State<Arc<Telemetry>>) -> Response {
    match telemetry.render() {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render metrics: {e}\n"),
        )
            .into_response(),
    }
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for ctrl-c: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
