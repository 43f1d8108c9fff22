//! The long-running service: the parts built from validated settings (sources chosen by
//! config feeding the pipeline, detection, the store's sink, the ticket book, retention), the
//! HTTP API with `/metrics` and `/healthz`, and graceful shutdown when the caller's shutdown
//! future completes: sources stop and flush, the pipeline drains and acknowledges, then
//! detection and the sink drain.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argus_config::Settings;
use argus_ingest::{DecodeOptions, Decoder, TimeWindow};
use argus_model::Registry;
use argus_rules::RuleSet;
use argus_store::{Backend, Store};
use argus_telemetry::Telemetry;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::detect::{Cluster, Detection, Resume};
use crate::records::LiveRecords;
use crate::ServiceError;

/// How long the parts may take to drain at shutdown.
const DRAIN_FOR: Duration = Duration::from_secs(60);

/// How often old months of readings are looked for.
const RETENTION_EVERY: Duration = Duration::from_secs(3_600);

/// Drop the readings of months older than the retention, at start and every hour, until
/// shutdown. A failure is logged and tried again at the next round.
async fn retention(
    store: Backend,
    months: u32,
    telemetry: Telemetry,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServiceError> {
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

/// How long the service tries to read the maintenance calendar of an earlier run before it
/// starts without it (the store unreachable).
const RESTORE_FOR: Duration = Duration::from_secs(30);

/// Milliseconds of a duration, saturating.
fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Read what an earlier run left in the store (`what`), trying again for [`RESTORE_FOR`] while
/// the store is unreachable; `None` (logged with `without`, what starting without it means)
/// once it stays so, or on another error.
async fn read_back<T, F, Fut>(what: &str, without: &str, read: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, argus_store::StoreError>>,
{
    let deadline = tokio::time::Instant::now() + RESTORE_FOR;
    loop {
        match read().await {
            Ok(value) => return Some(value),
            Err(e) if e.is_transient() && tokio::time::Instant::now() < deadline => {
                tracing::warn!("cannot read {what} yet: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                tracing::error!("starting without {what} ({e}): {without}");
                return None;
            }
        }
    }
}

/// The maintenance notices and silences stored by earlier runs whose window ends after
/// `since`, as records for detection, stamped as received now (they are not late: their
/// windows, not their arrival, decide what they mute). Prepares the schema first.
async fn restore_notices(
    store: &Backend,
    since: argus_model::Timestamp,
) -> Vec<argus_ingest::Record> {
    let read = || async {
        store.prepare().await?;
        store.notices_until_after(since).await
    };
    let without = "alerts in their windows are not muted";
    let Some(rows) = read_back("the maintenance calendar of the earlier run", without, read).await
    else {
        return Vec::new();
    };
    let now = argus_model::Timestamp::from_system_time(SystemTime::now());
    let mut unreadable = 0;
    let notices = rows
        .iter()
        .filter_map(|row| {
            let event = row.to_event();
            unreadable += usize::from(event.is_none());
            event
        })
        .map(|mut event| {
            event.event_time = now;
            event.receive_time = now;
            argus_ingest::Record::Event(event)
        })
        .collect();
    if unreadable > 0 {
        tracing::error!(
            unreadable,
            "stored notices Argus cannot read were not taken back"
        );
    }
    notices
}

/// The stored readings and events from `since` on, in event-time order, as inputs for detection
/// (the store's schema is prepared already). Detection resumed from a checkpoint judges them
/// again: they are what the checkpoint does not cover.
async fn restore_inputs(
    store: &Backend,
    since: argus_model::Timestamp,
) -> Vec<argus_dataflow::Input> {
    let without = "alerts of the span since the checkpoint may be missing";
    let read = || store.inputs_since(since);
    let Some((readings, events)) =
        read_back("the stored inputs since the checkpoint", without, read).await
    else {
        return Vec::new();
    };
    let (stored_readings, stored_events) = (readings.len(), events.len());
    let mut inputs: Vec<argus_dataflow::Input> = readings
        .iter()
        .filter_map(|row| row.to_reading())
        .map(argus_dataflow::Input::Reading)
        .chain(
            events
                .iter()
                .filter_map(|row| row.to_event())
                .map(|e| argus_dataflow::Input::Event(Box::new(e))),
        )
        .collect();
    let unreadable = stored_readings + stored_events - inputs.len();
    if unreadable > 0 {
        tracing::error!(
            unreadable,
            "stored inputs Argus cannot read are not judged again"
        );
    }
    // One order for both: the watermark follows them as it followed the live input.
    inputs.sort_by_key(argus_dataflow::Input::event_time);
    tracing::info!(
        since = %since.to_rfc3339(),
        readings = stored_readings,
        events = stored_events,
        "stored inputs since the checkpoint judged again"
    );
    inputs
}

/// What the service is built from, all validated before anything starts.
#[derive(Debug)]
pub struct Parts {
    /// The configuration.
    pub settings: Settings,
    /// The county registry.
    pub registry: Registry,
    /// The rules bound to the registry.
    pub rules: RuleSet,
    /// The ticket policy.
    pub policy: argus_tickets::Policy,
    /// Detection workers and, for a cluster, the processes.
    pub cluster: Cluster,
}

/// The sockets the service serves on, bound by the caller (tests bind `127.0.0.1:0`).
#[derive(Debug)]
pub struct Listeners {
    /// The HTTP API, `/metrics` and `/healthz`.
    pub http: TcpListener,
    /// The HJ 212 gateway, when it is on.
    pub hj212: Option<TcpListener>,
}

impl Listeners {
    /// Bind the addresses of the settings: `metrics.listen_addr`, and `hj212.listen_addr` when
    /// the gateway is on.
    pub async fn bind(settings: &Settings) -> Result<Self, ServiceError> {
        let bind = |what, addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServiceError::Bind { what, addr, source })
        };
        let http = bind("metrics.listen_addr", settings.metrics.listen_addr).await?;
        let hj212 = match settings.hj212.enabled {
            true => Some(bind("hj212.listen_addr", settings.hj212.listen_addr).await?),
            false => None,
        };
        Ok(Self { http, hj212 })
    }
}

/// Run the service on `listeners` until `shutdown` completes or a part fails, then drain.
pub async fn run(
    parts: Parts,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServiceError> {
    let Parts {
        settings,
        registry,
        rules,
        policy,
        cluster,
    } = parts;
    // The API's certificate and key, checked before anything starts.
    let tls = settings
        .api
        .tls
        .as_ref()
        .map(crate::tls::acceptor)
        .transpose()?;
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
    let kafka_on = settings.kafka.enabled;
    let dlq = match kafka_on {
        true => Some(
            argus_kafka::DeadLetterSink::new(&settings.kafka, telemetry.clone())
                .map_err(|e| ServiceError::build("dead-letter producer", e))?,
        ),
        false => None,
    };
    let kafka = match kafka_on {
        true => Some(
            argus_kafka::KafkaSource::new(&settings.kafka, Arc::clone(&decoder), telemetry.clone())
                .map_err(|e| ServiceError::build("kafka source", e))?,
        ),
        false => None,
    };
    if settings.mqtt.enabled && settings.mqtt.embedded {
        let mqtt = settings.mqtt.clone();
        let max_payload = settings.ingest.max_payload_bytes.saturating_mul(2);
        tokio::task::spawn_blocking(move || argus_mqtt::start_embedded(&mqtt, max_payload))
            .await
            .map_err(|e| ServiceError::Panicked(format!("the embedded broker's start ({e})")))?
            .map_err(|e| ServiceError::build("embedded mqtt broker", e))?;
    }
    let mqtt = match settings.mqtt.enabled {
        true => Some(
            argus_mqtt::MqttSource::new(&settings.mqtt, Arc::clone(&decoder), telemetry.clone())
                .map_err(|e| ServiceError::build("mqtt source", e))?,
        ),
        false => None,
    };
    let gateway = match listeners.hj212 {
        Some(listener) => Some(
            argus_gateway::Gateway::from_listener(
                listener,
                &settings.hj212,
                Arc::clone(&decoder),
                telemetry.clone(),
            )
            .map_err(|e| ServiceError::build("hj212 gateway", e))?,
        ),
        None => None,
    };
    tracing::info!(
        kafka = kafka_on,
        mqtt = settings.mqtt.enabled,
        hj212 = gateway.is_some(),
        "sources"
    );

    tracing::info!(rules = rules.len(), "rules bound to the registry");
    let store =
        Backend::from_settings(&settings).map_err(|e| ServiceError::build("embedded store", e))?;
    tracing::info!(store = %store.describe(), "store");
    // Partitions moved: the series they carry may have been written by another member since.
    let kafka = kafka.map(|source| {
        let store = store.clone();
        source.on_assign(move || store.forget_written_series())
    });
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
    // Conflicting readings the sink finds, as events to detection (unbounded: the sink never
    // waits for detection, which waits for the sink).
    let (conflicts_tx, conflicts_rx) = mpsc::unbounded_channel();
    // What the sink stored, to the API's live stream (unbounded: the sink never waits for it).
    let (stored_tx, stored_rx) = mpsc::unbounded_channel();
    let stream_store = store.clone();
    let sink = argus_store::sink::run(
        store,
        argus_store::Labels::new(&registry),
        sink_rx,
        sink_options,
        telemetry.clone(),
        argus_store::sink::Outlets {
            conflicts: Some(conflicts_tx),
            stored: Some(stored_tx),
        },
        stopping.clone(),
    );
    let book = argus_tickets::TicketBook::new(policy, &registry);
    let (fired_tx, fired_rx) = mpsc::channel(settings.ingest.pipeline_capacity);
    let (commands_tx, commands_rx) = mpsc::channel(64);
    let targets = crate::delivery::Targets::load(
        &settings.delivery,
        kafka_on.then_some(&settings.kafka),
        &registry,
    )
    .map(Arc::new)
    .map_err(|e| ServiceError::build("ticket delivery", e))?;
    // Without targets there is nothing to deliver, and no task (a task that ends stops Argus).
    let delivery = (!targets.is_empty()).then(|| {
        crate::delivery::run(
            ticket_store.clone(),
            Arc::clone(&targets),
            telemetry.clone(),
            stopping.clone(),
        )
    });
    let tickets = crate::tickets::run(
        book,
        ticket_store,
        fired_rx,
        commands_rx,
        sink_tx.clone(),
        settings.tickets.check_every,
        targets,
    );

    // The maintenance calendar of the earlier run (notices and staff silences), before any
    // new input: detection mutes by window, whenever the notice arrived.
    let now = argus_model::Timestamp::from_system_time(SystemTime::now());
    let lookback = ms(settings.rules.max_delay).saturating_add(ms(settings.rules.allowed_lateness));
    let since = argus_model::Timestamp(now.as_millis().saturating_sub(lookback));
    let notices = restore_notices(&api_store, since).await;
    // Detection's checkpoints, and the stored inputs they do not cover.
    let mut resume = Resume::load(&settings, &rules, &cluster);
    if let Some(since) = resume.since() {
        resume.inputs = restore_inputs(&api_store, since).await;
    }
    let detection = Detection::start(
        &settings,
        Arc::new(rules),
        &cluster,
        telemetry.clone(),
        sink_tx.clone(),
        fired_tx,
        resume,
    )?;
    if !notices.is_empty() {
        tracing::info!(
            notices = notices.len(),
            "maintenance calendar taken back from the store"
        );
        detection.send(notices).await?;
    }

    let mut tasks = JoinSet::new();
    supervise(&mut tasks, "store sink", sink);
    supervise(&mut tasks, "tickets", tickets);
    if let Some(delivery) = delivery {
        supervise(&mut tasks, "ticket delivery", delivery);
    }
    if let Some(retention) = retention {
        supervise(&mut tasks, "retention", retention);
    }
    if let Some(kafka) = kafka {
        supervise(
            &mut tasks,
            "kafka source",
            kafka.run(tx.clone(), stopped(&stopping)),
        );
    }
    if let Some(mqtt) = mqtt {
        supervise(
            &mut tasks,
            "mqtt source",
            mqtt.run(tx.clone(), stopped(&stopping)),
        );
    }
    if let Some(gateway) = gateway {
        supervise(
            &mut tasks,
            "hj212 gateway",
            gateway.run(tx.clone(), stopped(&stopping)),
        );
    }
    let api_tx = tx.clone(); // staff silences; dropped with the HTTP server
    drop(tx); // the pipeline ends once every source and the HTTP server have dropped theirs
    supervise(
        &mut tasks,
        "pipeline",
        crate::pipeline::run(
            rx,
            conflicts_rx,
            dlq,
            telemetry.clone(),
            sink_tx,
            detection,
            stopping.clone(),
        ),
    );

    let http_addr = listeners
        .http
        .local_addr()
        .map_err(|source| ServiceError::Bind {
            what: "metrics.listen_addr",
            addr: settings.metrics.listen_addr,
            source,
        })?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(addr = %http_addr, scheme, "serving the api, /metrics and /healthz");
    if tls.is_none() && !http_addr.ip().is_loopback() {
        tracing::warn!(addr = %http_addr, "the api is served over plain http beyond loopback: sessions and tokens cross the network readable; set [api] tls_cert_path and tls_key_path");
    }
    let api = argus_api::ApiState::new(
        LiveRecords::new(api_store, commands_tx, api_tx, telemetry.clone()),
        Arc::clone(&registry),
        telemetry,
        auth_settings(&settings.api),
    );
    tokio::spawn(crate::stream::publish(
        stream_store,
        stored_rx,
        Arc::clone(&api.hub),
    ));
    // The API and the console's pages on one listener (same origin: the session cookie).
    let api = argus_api::router(api).merge(argus_console::router());
    let http_stopped = stopped(&stopping);
    let http = tokio::spawn(async move {
        match tls {
            Some(acceptor) => crate::tls::serve(listeners.http, acceptor, api, http_stopped).await,
            None => {
                let api = api.into_make_service_with_connect_info::<std::net::SocketAddr>();
                axum::serve(listeners.http, api)
                    .with_graceful_shutdown(http_stopped)
                    .await
            }
        }
    });

    // Run until asked to stop, or until a part fails.
    let mut failure = None;
    tokio::select! {
        () = shutdown => tracing::info!("shutting down"),
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
        let _ = http.await;
    };
    if tokio::time::timeout(DRAIN_FOR, drain).await.is_err() {
        return Err(ServiceError::ShutdownTimeout(DRAIN_FOR.as_secs()));
    }
    if let Some(first) = errors.into_iter().next() {
        return Err(first);
    }
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Run a source as a named task of `tasks`.
fn supervise<E>(
    tasks: &mut JoinSet<(&'static str, Result<(), ServiceError>)>,
    name: &'static str,
    run: impl Future<Output = Result<(), E>> + Send + 'static,
) where
    E: Into<TaskError>,
{
    tasks.spawn(async move { (name, run.await.map_err(|e| e.into().0)) });
}

/// A task's error as the service reports it: its own, or an adapter's wrapped with the task.
pub(crate) struct TaskError(ServiceError);

impl From<ServiceError> for TaskError {
    fn from(e: ServiceError) -> Self {
        Self(e)
    }
}

macro_rules! task_errors {
    ($($error:ty => $name:literal),* $(,)?) => {
        $(impl From<$error> for TaskError {
            fn from(e: $error) -> Self {
                Self(ServiceError::task($name, e))
            }
        })*
    };
}

task_errors! {
    argus_store::StoreError => "store",
    argus_kafka::KafkaError => "kafka source",
    argus_mqtt::MqttError => "mqtt source",
    argus_gateway::GatewayError => "hj212 gateway",
}

fn collect(
    joined: Result<(&'static str, Result<(), ServiceError>), tokio::task::JoinError>,
    errors: &mut Vec<ServiceError>,
) {
    match joined {
        Ok((_, Ok(()))) => {}
        Ok((name, Err(e))) => {
            tracing::error!("{name} failed: {e}");
            errors.push(e);
        }
        Err(e) => errors.push(ServiceError::Panicked(format!("a task ({e})"))),
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

/// The API's session and lockout settings from the validated config.
pub fn auth_settings(api: &argus_config::ApiSettings) -> argus_api::AuthSettings {
    argus_api::AuthSettings {
        session_idle: api.session_idle,
        session_max: api.session_max,
        secure_cookie: api.tls.is_some(),
        lockout_failures: api.login_lockout_failures,
        lockout: api.login_lockout,
    }
}
