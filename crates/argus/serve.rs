//! The long-running service: sources (MQTT, Kafka, HJ 212 gateway) feeding the pipeline, the
//! metrics and health endpoint, and graceful shutdown on Ctrl-C or SIGTERM: sources stop and
//! flush, the pipeline drains and acknowledges, then the process exits.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use argus_config::Settings;
use argus_ingest::{DecodeOptions, Decoder, TimeWindow};
use argus_model::Registry;
use argus_rules::RuleSet;
use argus_telemetry::Telemetry;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::detect::{Cluster, Detection};

/// Run until a shutdown signal.
pub async fn run(
    settings: Settings,
    registry: Registry,
    rules: RuleSet,
    policy: argus_tickets::Policy,
    cluster: Cluster,
) -> anyhow::Result<()> {
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

    let registry = Arc::new(registry);
    let decoder = Arc::new(Decoder::new(
        Arc::clone(&registry),
        decode_options(&settings),
    ));
    let (stop, stopping) = watch::channel(false);
    let (tx, rx) = mpsc::channel(settings.ingest.pipeline_capacity);

    // Build everything that can fail before anything runs.
    let listener = tokio::net::TcpListener::bind(settings.metrics.listen_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on metrics.listen_addr {}",
                settings.metrics.listen_addr
            )
        })?;
    let dlq = argus_kafka::DeadLetterSink::new(&settings.kafka, telemetry.clone())
        .context("cannot create the dead-letter producer")?;
    let kafka =
        argus_kafka::KafkaSource::new(&settings.kafka, Arc::clone(&decoder), telemetry.clone())
            .context("cannot create the kafka source")?;
    let mqtt = argus_mqtt::MqttSource::new(&settings.mqtt, Arc::clone(&decoder), telemetry.clone())
        .context("cannot create the mqtt source")?;
    let gateway =
        argus_gateway::Gateway::bind(&settings.hj212, Arc::clone(&decoder), telemetry.clone())
            .await
            .with_context(|| {
                format!(
                    "cannot start the hj212 gateway on {}",
                    settings.hj212.listen_addr
                )
            })?;

    tracing::info!(rules = rules.len(), "rules bound to the registry");
    let store = argus_store::ClickHouseStore::new(&settings.clickhouse, &registry);
    let (sink_tx, sink_rx) = mpsc::channel(settings.ingest.pipeline_capacity);
    let sink_options =
        argus_store::sink::SinkOptions {
            max_rows: settings.clickhouse.batch_max_rows,
            max_age: settings.clickhouse.batch_max_age,
            max_backoff: settings.clickhouse.retry_max_backoff,
            spool: settings.clickhouse.spool_dir.clone().map(|dir| {
                argus_store::sink::SpoolOptions {
                    dir,
                    max_bytes: settings.clickhouse.spool_max_bytes,
                }
            }),
        };
    let sink = argus_store::sink::run(
        store,
        sink_rx,
        sink_options,
        telemetry.clone(),
        stopping.clone(),
    );
    let book = argus_tickets::TicketBook::new(policy, &registry);
    let (fired_tx, fired_rx) = mpsc::channel(settings.ingest.pipeline_capacity);
    let tickets = crate::tickets::run(
        book,
        fired_rx,
        sink_tx.clone(),
        settings.tickets.check_every,
    );
    let detection = Detection::start(
        &settings,
        Arc::new(rules),
        &cluster,
        telemetry.clone(),
        sink_tx.clone(),
        fired_tx,
    )?;

    let mut tasks = JoinSet::new();
    supervise(&mut tasks, "store sink", sink);
    supervise(&mut tasks, "tickets", tickets);
    supervise(
        &mut tasks,
        "kafka source",
        kafka.run(tx.clone(), stopped(&stopping)),
    );
    supervise(
        &mut tasks,
        "mqtt source",
        mqtt.run(tx.clone(), stopped(&stopping)),
    );
    supervise(
        &mut tasks,
        "hj212 gateway",
        gateway.run(tx.clone(), stopped(&stopping)),
    );
    drop(tx); // the pipeline ends once every source has dropped its sender
    supervise(
        &mut tasks,
        "pipeline",
        crate::pipeline::run(rx, dlq, sink_tx, detection, stopping.clone()),
    );

    tracing::info!(addr = %settings.metrics.listen_addr, "serving /metrics and /healthz");
    let metrics_stopped = stopped(&stopping);
    let metrics = tokio::spawn(async move {
        axum::serve(listener, app(Arc::new(telemetry)))
            .with_graceful_shutdown(metrics_stopped)
            .await
    });

    // Run until a signal, or until a source fails.
    let mut failure = None;
    tokio::select! {
        () = shutdown_signal() => {}
        Some(joined) = tasks.join_next() => failure = Some(joined),
    }
    let _ = stop.send(true);
    let mut errors = Vec::new();
    if let Some(joined) = failure {
        collect(joined, &mut errors);
    }
    let drain = async {
        while let Some(joined) = tasks.join_next().await {
            collect(joined, &mut errors);
        }
        let _ = metrics.await;
    };
    if tokio::time::timeout(Duration::from_secs(60), drain)
        .await
        .is_err()
    {
        anyhow::bail!(
            "shutdown took longer than 60 s; some inputs may be redelivered after restart"
        );
    }
    if let Some(first) = errors.into_iter().next() {
        return Err(first);
    }
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Run a source as a named task of `tasks`.
fn supervise<E>(
    tasks: &mut JoinSet<(&'static str, anyhow::Result<()>)>,
    name: &'static str,
    run: impl Future<Output = Result<(), E>> + Send + 'static,
) where
    E: Into<anyhow::Error>,
{
    tasks.spawn(async move { (name, run.await.map_err(Into::into)) });
}

fn collect(
    joined: Result<(&'static str, anyhow::Result<()>), tokio::task::JoinError>,
    errors: &mut Vec<anyhow::Error>,
) {
    match joined {
        Ok((_, Ok(()))) => {}
        Ok((name, Err(e))) => {
            tracing::error!("{name} failed: {e:#}");
            errors.push(e.context(format!("{name} failed")));
        }
        Err(e) => errors.push(anyhow::anyhow!("a source task panicked: {e}")),
    }
}

fn decode_options(settings: &Settings) -> DecodeOptions {
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    DecodeOptions {
        window: TimeWindow {
            max_future_ms: ms(settings.ingest.max_future),
            max_age_ms: ms(settings.ingest.max_age),
        },
        max_payload_bytes: settings.ingest.max_payload_bytes,
        max_hj212_data_bytes: settings.hj212.max_data_bytes,
    }
}

/// Resolves once shutdown has been requested.
fn stopped(rx: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
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
