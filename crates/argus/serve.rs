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
use argus_config::StoreBackend;
use argus_store::{Backend, ClickHouseStore, SqliteStore, Store};

/// How often old months of readings are looked for.
const RETENTION_EVERY: Duration = Duration::from_secs(3_600);

/// Drop the readings of months older than the retention, at start and every hour, until
/// shutdown. A failure is logged and tried again at the next round.
async fn retention(
    store: Backend,
    months: u32,
    telemetry: Telemetry,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tokio::pin!(stop);
    let mut every = tokio::time::interval(RETENTION_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            _ = every.tick() => {}
        }
        let now = argus_model::Timestamp::from_system_time(SystemTime::now());
        let first = argus_store::retention::first_month_kept(now, months);
        match store.drop_readings_before(first).await {
            Ok(dropped) if dropped.is_empty() => {
                tracing::debug!(first_month_kept = first, "no readings old enough to drop");
            }
            Ok(dropped) => {
                telemetry
                    .store
                    .retention_dropped_months
                    .inc_by(dropped.len() as u64);
                tracing::info!(
                    ?dropped,
                    first_month_kept = first,
                    months,
                    "old readings dropped"
                );
            }
            Err(e) => tracing::warn!("cannot drop old readings (next try in an hour): {e}"),
        }
    }
}

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
    let store = match &settings.store.backend {
        StoreBackend::ClickHouse => {
            Backend::ClickHouse(Box::new(ClickHouseStore::new(&settings.clickhouse)))
        }
        StoreBackend::Sqlite(path) => {
            Backend::Sqlite(SqliteStore::open(path).context("cannot open the embedded store")?)
        }
    };
    tracing::info!(store = %store.describe(), "store");
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
    let ticket_store = store.clone();
    let api_store = store.clone();
    let retention = settings
        .store
        .retention_months
        .map(|months| retention(store.clone(), months, telemetry.clone(), stopped(&stopping)));
    let sink = argus_store::sink::run(
        store,
        argus_store::Labels::new(&registry),
        sink_rx,
        sink_options,
        telemetry.clone(),
        stopping.clone(),
    );
    let book = argus_tickets::TicketBook::new(policy, &registry);
    let (fired_tx, fired_rx) = mpsc::channel(settings.ingest.pipeline_capacity);
    let (commands_tx, commands_rx) = mpsc::channel(64);
    let tickets = crate::tickets::run(
        book,
        ticket_store,
        fired_rx,
        commands_rx,
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
    if let Some(retention) = retention {
        supervise(&mut tasks, "retention", retention);
    }
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
    let api_tx = tx.clone(); // staff silences; dropped with the HTTP server
    drop(tx); // the pipeline ends once every source and the HTTP server have dropped theirs
    supervise(
        &mut tasks,
        "pipeline",
        crate::pipeline::run(rx, dlq, sink_tx, detection, stopping.clone()),
    );

    tracing::info!(addr = %settings.metrics.listen_addr, "serving /metrics and /healthz");
    let metrics_stopped = stopped(&stopping);
    let metrics = tokio::spawn(async move {
        axum::serve(
            listener,
            app(
                Arc::new(telemetry),
                Some(commands_tx),
                Some((api_tx, Arc::clone(&registry))),
                Some(api_store),
            ),
        )
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

/// What the HTTP handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    telemetry: Arc<Telemetry>,
    tickets: Option<mpsc::Sender<crate::tickets::Command>>,
    /// The pipeline, for staff-set silences (maintenance windows), and the registry.
    pipeline: Option<(mpsc::Sender<argus_ingest::Envelope>, Arc<Registry>)>,
    /// The store, for alerts and their acknowledgement.
    store: Option<Backend>,
}

/// The HTTP routes, without a socket, so tests can call them directly: `/metrics`, `/healthz`,
/// `POST /api/tickets/{id}/state` for the people working tickets, `POST /api/silences`, and
/// `GET /api/alerts/{id}`, `POST /api/alerts/{id}/ack` for the people watching alerts.
pub fn app(
    telemetry: Arc<Telemetry>,
    tickets: Option<mpsc::Sender<crate::tickets::Command>>,
    pipeline: Option<(mpsc::Sender<argus_ingest::Envelope>, Arc<Registry>)>,
    store: Option<Backend>,
) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/api/tickets/{id}/state",
            axum::routing::post(change_ticket),
        )
        .route("/api/silences", axum::routing::post(silence))
        .route("/api/alerts/{id}", get(show_alert))
        .route("/api/alerts/{id}/ack", axum::routing::post(acknowledge))
        .with_state(AppState {
            telemetry,
            tickets,
            pipeline,
            store,
        })
}

/// The body of an acknowledgement: `{"actor": "Operator Liu", "note": "called the plant"}`
/// (note optional).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    actor: String,
    #[serde(default)]
    note: String,
}

fn store_unavailable(e: &argus_store::StoreError) -> Response {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("error: the store cannot answer: {e}"),
    )
}

/// An alert as stored: its current row and its transitions.
async fn show_alert(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let Some(store) = state.store else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "error: no store".to_owned(),
        );
    };
    let alert = match store.alert(&id).await {
        Ok(Some(alert)) => alert,
        Ok(None) => {
            return text(
                StatusCode::NOT_FOUND,
                format!("error: no alert {id} is stored"),
            )
        }
        Err(e) => return store_unavailable(&e),
    };
    match store.alert_events(&id).await {
        Ok(events) => {
            let json = serde_json::json!({ "alert": alert, "events": events });
            text(StatusCode::OK, json.to_string())
        }
        Err(e) => store_unavailable(&e),
    }
}

/// A person acknowledges an alert: recorded once, with who and when, on the alert's row.
async fn acknowledge(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Response {
    use argus_store::StoreError;
    let body: AckBody = match staff_request(&body, |b: &AckBody| &b.actor) {
        Ok(b) => b,
        Err(refused) => return text(StatusCode::BAD_REQUEST, refused),
    };
    let Some(store) = state.store else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "error: no store".to_owned(),
        );
    };
    let ack = argus_store::Acknowledgement {
        alert_id: id,
        actor: body.actor,
        note: body.note,
        at: argus_model::Timestamp::from_system_time(SystemTime::now()),
    };
    match store.acknowledge(&ack).await {
        Ok(alert) => {
            state.telemetry.store.acknowledgements.inc();
            tracing::info!(alert = %alert.alert_id, actor = %ack.actor, note = %ack.note, "alert acknowledged");
            let json = serde_json::json!({
                "alert": alert.alert_id,
                "status": alert.status,
                "acknowledged_by": alert.acknowledged_by,
                "acknowledged_at": argus_model::Timestamp(alert.acknowledged_ms).to_rfc3339(),
            });
            text(StatusCode::OK, json.to_string())
        }
        Err(e @ StoreError::UnknownAlert(_)) => text(StatusCode::NOT_FOUND, format!("error: {e}")),
        Err(e @ StoreError::AlreadyAcknowledged { .. }) => {
            text(StatusCode::CONFLICT, format!("error: {e}"))
        }
        Err(e) => store_unavailable(&e),
    }
}

/// A silence staff set: `{"enterprise": "E001", "points": ["MN"], "from":
/// "2026-11-26T08:00:00+08:00", "to": "...", "reason": "...", "actor": "Operator Liu"}` (points
/// optional: all of the enterprise's).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceBody {
    enterprise: String,
    #[serde(default)]
    points: Vec<String>,
    from: String,
    to: String,
    reason: String,
    actor: String,
}

/// Mute the alerts of an enterprise (or some of its points) that start in a window: a
/// maintenance window set by staff, taken by detection like an enterprise's notice. Muted
/// alerts are still recorded; they make no ticket.
async fn silence(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    use argus_model::{Event, EventKind, SourceId, Timestamp};
    let Some((pipeline, registry)) = state.pipeline else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "error: the pipeline is not running".to_owned(),
        );
    };
    let body: SilenceBody = match staff_request(&body, |b: &SilenceBody| &b.actor) {
        Ok(b) => b,
        Err(refused) => return text(StatusCode::BAD_REQUEST, refused),
    };
    let Some(enterprise) = registry.enterprise(&body.enterprise) else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("error: unknown enterprise {:?}", body.enterprise),
        );
    };
    if let Some(p) = body
        .points
        .iter()
        .find(|p| !enterprise.points.iter().any(|m| m.as_str() == p.as_str()))
    {
        return text(
            StatusCode::BAD_REQUEST,
            format!("error: {p:?} is not a point of {}", enterprise.id),
        );
    }
    let (Some(from), Some(to)) = (
        Timestamp::parse_rfc3339(&body.from),
        Timestamp::parse_rfc3339(&body.to),
    ) else {
        return text(
            StatusCode::BAD_REQUEST,
            "error: from and to must be RFC 3339 times".to_owned(),
        );
    };
    if to <= from {
        return text(
            StatusCode::BAD_REQUEST,
            "error: to must be after from".to_owned(),
        );
    }
    let now = Timestamp::from_system_time(SystemTime::now());
    let event = Event {
        enterprise_id: Some(enterprise.id.clone()),
        source: None,
        event_time: now,
        receive_time: now,
        kind: EventKind::MaintenanceNotice {
            from,
            to,
            points: body
                .points
                .iter()
                .map(|p| SourceId::from(p.as_str()))
                .collect(),
            reason: format!("silence by {}: {}", body.actor, body.reason),
        },
    };
    tracing::info!(enterprise = %enterprise.id, from = %body.from, to = %body.to, actor = %body.actor, reason = %body.reason, "silence set");
    let envelope = argus_ingest::Envelope {
        transport: argus_ingest::Transport::Api,
        records: vec![argus_ingest::Record::Event(event)],
        dead_letters: Vec::new(),
        ack: argus_ingest::Ack::none(),
    };
    if pipeline.send(envelope).await.is_err() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "error: the pipeline has stopped".to_owned(),
        );
    }
    text(StatusCode::OK, "silence set".to_owned())
}

/// The body of a ticket change: `{"to": "accepted", "actor": "Inspector Sun", "role": "team",
/// "note": "...", "outcome": "violation_confirmed"}` (note and outcome optional).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    to: argus_model::TicketState,
    actor: String,
    role: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    outcome: Option<argus_model::TicketOutcome>,
}

/// A request of staff: a JSON body of `T` that names the person acting (`actor`); otherwise the
/// reason it is refused (a 400).
fn staff_request<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    actor: fn(&T) -> &str,
) -> Result<T, String> {
    let body: T =
        serde_json::from_slice(bytes).map_err(|e| format!("error: bad request body: {e}"))?;
    if actor(&body).trim().is_empty() {
        return Err("error: actor must name a person".to_owned());
    }
    Ok(body)
}

fn text(status: StatusCode, body: String) -> Response {
    (status, format!("{body}\n")).into_response()
}

async fn change_ticket(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Response {
    use argus_tickets::{Change, Role, TicketError};
    let Ok(id) = u64::from_str_radix(&id, 16) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("error: no ticket {id:?} (16 hex digits)"),
        );
    };
    let body: ChangeBody = match staff_request(&body, |b: &ChangeBody| &b.actor) {
        Ok(b) => b,
        Err(refused) => return text(StatusCode::BAD_REQUEST, refused),
    };
    let role = match body.role.as_str() {
        "dispatcher" => Role::Dispatcher,
        "team" => Role::Team,
        "head" => Role::Head,
        other => {
            let reason = format!("error: unknown role {other:?} (dispatcher, team, head)");
            return text(StatusCode::BAD_REQUEST, reason);
        }
    };
    let Some(tickets) = state.tickets else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "error: tickets are not running".to_owned(),
        );
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    let change = Change {
        to: body.to,
        actor: body.actor,
        role,
        note: body.note,
        outcome: body.outcome,
    };
    let command = crate::tickets::Command { id, change, reply };
    if tickets.send(command).await.is_err() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "error: tickets have stopped".to_owned(),
        );
    }
    match answer.await {
        Ok(Ok(event)) => {
            let json = serde_json::json!({
                "ticket": format!("{:016x}", event.ticket_id),
                "seq": event.seq,
                "from": event.from.map(|s| s.as_str()),
                "to": event.to.as_str(),
                "at": event.at.to_rfc3339(),
                "actor": event.actor,
                "role": event.role.as_str(),
            });
            text(StatusCode::OK, json.to_string())
        }
        Ok(Err(e @ TicketError::UnknownTicket(_))) => {
            text(StatusCode::NOT_FOUND, format!("error: {e}"))
        }
        Ok(Err(e)) => text(StatusCode::CONFLICT, format!("error: {e}")),
        Err(_) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "error: tickets have stopped".to_owned(),
        ),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    match state.telemetry.render() {
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
