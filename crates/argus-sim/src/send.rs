//! Sending a generated stream to a running Argus: HJ 212 over TCP (one connection per data
//! logger, each packet that asks for a reply waits for its 9014 data reply, with a timeout,
//! reconnection and resending), MQTT (rumqttc, QoS 1, bounded in-flight window, PUBACKs
//! counted) and Kafka (rdkafka's `FutureProducer`, bounded in-flight deliveries). Groups are
//! sent at their simulated time scaled by the [`Pacing`]; the truth is written as the data
//! that commits to each entry is handed to its transport, with clock marks for detection
//! delays; a shutdown future stops the run cleanly (what was handed over is delivered, the
//! end-of-feed truth and an `end` record are written). The library prints nothing: progress
//! goes to the caller's callback.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use argus_hj212::{DecodeOptions, Framer};
use argus_model::Timestamp;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::{
    ClockMark, Generator, Message, Route, SimError, Transport, Transports, TruthRecord, TruthWriter,
};

/// The start of the MQTT topics Argus subscribes to by default.
pub const DEFAULT_TOPIC_PREFIX: &str = "argus/v1";

/// An MQTT broker to publish to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttTarget {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User name and password, if the broker wants them.
    pub credentials: Option<(String, String)>,
    /// Client id (at most 23 characters).
    pub client_id: String,
    /// QoS 1 messages in flight at once.
    pub max_inflight: u16,
    /// What topics start with instead of `argus/v1` (Argus's `[mqtt]` topic filters must
    /// match): tests sharing a broker keep apart this way.
    pub topic_prefix: String,
}

impl MqttTarget {
    /// A broker at `host:port`, no credentials, client id `argus-sim`, 100 in flight.
    pub fn new(host: &str, port: u16) -> Self {
        Self {
            host: host.to_owned(),
            port,
            credentials: None,
            client_id: "argus-sim".to_owned(),
            max_inflight: 100,
            topic_prefix: DEFAULT_TOPIC_PREFIX.to_owned(),
        }
    }
}

/// Kafka brokers and the topics of the three payloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaTarget {
    /// Comma-separated `host:port` list.
    pub bootstrap_servers: String,
    /// Canonical JSON readings.
    pub readings_topic: String,
    /// Raw HJ 212 packets.
    pub hj212_topic: String,
    /// Enterprise events.
    pub events_topic: String,
}

impl KafkaTarget {
    /// Brokers `bootstrap_servers` with the default topics `argus.readings`, `argus.hj212`,
    /// `argus.events`.
    pub fn new(bootstrap_servers: &str) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.to_owned(),
            readings_topic: "argus.readings".to_owned(),
            hj212_topic: "argus.hj212".to_owned(),
            events_topic: "argus.events".to_owned(),
        }
    }
}

/// Where to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    /// The HJ 212 gateway, `host:port`.
    pub hj212: Option<String>,
    /// The MQTT broker.
    pub mqtt: Option<MqttTarget>,
    /// Kafka.
    pub kafka: Option<KafkaTarget>,
}

impl Targets {
    /// The transports these targets offer: give them to [`crate::Scenario::transports`].
    pub fn transports(&self) -> Transports {
        Transports {
            hj212_tcp: self.hj212.is_some(),
            mqtt: self.mqtt.is_some(),
            kafka: self.kafka.is_some(),
        }
    }
}

/// How simulated time maps to the wall clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// As fast as the receivers take it.
    AsFast,
    /// `speed` simulated seconds per wall second (1: real time; 60: an hour a minute).
    Speed(f64),
    /// `speed` until the simulated clock reaches the wall clock, then real time; nothing is
    /// ever sent ahead of the wall clock (the demo: from now - 24 h at speed 60).
    CatchUp {
        /// Speed while behind the wall clock.
        speed: f64,
    },
}

/// Timeouts and cadences of the senders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendOptions {
    /// How long an HJ 212 logger waits for a 9014 reply before reconnecting and resending.
    pub reply_timeout: Duration,
    /// Attempts per packet (connect, send, reply) before it counts as failed.
    pub attempts: u32,
    /// How often the progress callback is called.
    pub progress_every: Duration,
    /// How long a stop waits for what was handed over to be delivered.
    pub drain_timeout: Duration,
}

impl Default for SendOptions {
    fn default() -> Self {
        Self {
            reply_timeout: Duration::from_secs(10),
            attempts: 3,
            progress_every: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    delivered: [AtomicU64; 3],
    failed: AtomicU64,
    replies: AtomicU64,
    reconnects: AtomicU64,
}

fn slot(t: Transport) -> usize {
    match t {
        Transport::Hj212Tcp => 0,
        Transport::Mqtt => 1,
        Transport::Kafka => 2,
    }
}

/// Where a run stands, for the caller to print.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Wall time since the start.
    pub elapsed: Duration,
    /// Simulated time reached.
    pub sim_time: Timestamp,
    /// Messages handed to each transport: HJ 212 TCP, MQTT, Kafka.
    pub sent: [u64; 3],
    /// Messages delivered (replied, PUBACKed, acknowledged by Kafka; TCP without reply:
    /// written).
    pub delivered: [u64; 3],
    /// Messages given up on.
    pub failed: u64,
    /// Messages handed over per second since the previous report.
    pub rate: f64,
    /// Truth entries written.
    pub truth_entries: u64,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sim {} | elapsed {:.0} s | sent hj212 {} mqtt {} kafka {} ({:.0}/s) | delivered {} {} {} | failed {} | truth {}",
            self.sim_time,
            self.elapsed.as_secs_f64(),
            self.sent[0],
            self.sent[1],
            self.sent[2],
            self.rate,
            self.delivered[0],
            self.delivered[1],
            self.delivered[2],
            self.failed,
            self.truth_entries
        )
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// The last progress.
    pub progress: Progress,
    /// 9014 replies received.
    pub replies: u64,
    /// HJ 212 reconnections.
    pub reconnects: u64,
    /// Data was sent up to this simulated time.
    pub feed_end: Option<Timestamp>,
    /// Whether the shutdown future stopped it (else the scenario ended).
    pub stopped: bool,
}

fn wall_ms() -> i64 {
    Timestamp::from_system_time(SystemTime::now()).as_millis()
}

fn transport_error(transport: &'static str, reason: impl fmt::Display) -> SimError {
    SimError::Transport {
        transport,
        reason: reason.to_string(),
    }
}

// ------------------------------------------------------------------------------- HJ 212 TCP

struct Job {
    payload: Vec<u8>,
    reply: bool,
}

struct TcpSenders {
    addr: String,
    loggers: HashMap<String, mpsc::Sender<Job>>,
    tasks: JoinSet<()>,
}

impl TcpSenders {
    async fn send(
        &mut self,
        logger: &str,
        job: Job,
        counters: &Arc<Counters>,
        options: SendOptions,
    ) {
        if !self.loggers.contains_key(logger) {
            let (tx, rx) = mpsc::channel(64);
            let addr = self.addr.clone();
            let counters = Arc::clone(counters);
            let name = logger.to_owned();
            self.tasks
                .spawn(logger_task(addr, name, rx, counters, options));
            self.loggers.insert(logger.to_owned(), tx);
        }
        if let Some(tx) = self.loggers.get(logger) {
            if tx.send(job).await.is_err() {
                counters.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    async fn drain(mut self, timeout: Duration) {
        self.loggers.clear();
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(timeout, all).await.is_err() {
            tracing::warn!("hj212 loggers still sending after {timeout:?}; abandoned");
            self.tasks.abort_all();
        }
    }
}

/// One data logger: its connection, its packets in order, each reply awaited when asked for.
async fn logger_task(
    addr: String,
    mn: String,
    mut rx: mpsc::Receiver<Job>,
    counters: Arc<Counters>,
    options: SendOptions,
) {
    let mut conn: Option<(TcpStream, Framer)> = None;
    while let Some(job) = rx.recv().await {
        let mut attempt = 0;
        let qn = argus_hj212::decode(&job.payload, &DecodeOptions::default())
            .ok()
            .and_then(|p| p.qn().map(str::to_owned));
        loop {
            attempt += 1;
            if attempt > options.attempts.max(1) {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(logger = %mn, "hj212 packet given up after {} attempts", options.attempts);
                break;
            }
            if attempt > 1 {
                counters.reconnects.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            if conn.is_none() {
                match tokio::time::timeout(options.reply_timeout, TcpStream::connect(&addr)).await {
                    Ok(Ok(stream)) => conn = Some((stream, Framer::new(4096 + 12))),
                    Ok(Err(e)) => {
                        tracing::warn!(logger = %mn, %addr, "cannot connect: {e}");
                        continue;
                    }
                    Err(_) => {
                        tracing::warn!(logger = %mn, %addr, "connect timed out");
                        continue;
                    }
                }
            }
            let Some((stream, framer)) = conn.as_mut() else {
                continue;
            };
            if let Err(e) = stream.write_all(&job.payload).await {
                tracing::warn!(logger = %mn, "send failed, reconnecting: {e}");
                conn = None;
                continue;
            }
            if !job.reply {
                counters.delivered[0].fetch_add(1, Ordering::Relaxed);
                break;
            }
            match tokio::time::timeout(
                options.reply_timeout,
                read_reply(stream, framer, qn.as_deref()),
            )
            .await
            {
                Ok(Ok(())) => {
                    counters.replies.fetch_add(1, Ordering::Relaxed);
                    counters.delivered[0].fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(Err(e)) => tracing::warn!(logger = %mn, "no reply, reconnecting: {e}"),
                Err(_) => {
                    tracing::warn!(logger = %mn, "no 9014 reply within {:?}, reconnecting", options.reply_timeout)
                }
            }
            conn = None;
        }
    }
    if let Some((mut stream, _)) = conn {
        let _ = stream.shutdown().await;
    }
}

/// Whether `frame` is the 9014 data reply to the packet with `qn`.
fn is_reply(frame: &[u8], qn: Option<&str>) -> bool {
    argus_hj212::decode(frame, &DecodeOptions::default())
        .is_ok_and(|p| p.cn() == "9014" && (qn.is_none() || p.qn() == qn || p.cp_param("QN") == qn))
}

/// Read until the 9014 data reply to the packet with `qn` (other frames are skipped).
async fn read_reply(
    stream: &mut TcpStream,
    framer: &mut Framer,
    qn: Option<&str>,
) -> std::io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed by the gateway",
            ));
        }
        let mut data = &buf[..n];
        loop {
            let taken = framer.push(data);
            data = &data[taken..];
            while let Some(frame) = framer.next_frame() {
                if frame.is_ok_and(|f| is_reply(f, qn)) {
                    return Ok(());
                }
            }
            if data.is_empty() {
                break;
            }
        }
    }
}

// ------------------------------------------------------------------------------------ MQTT

struct MqttSender {
    client: AsyncClient,
    prefix: String,
    published: Arc<AtomicU64>,
    acked: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl MqttSender {
    fn start(target: &MqttTarget, counters: &Arc<Counters>) -> Self {
        let mut options =
            MqttOptions::new(target.client_id.clone(), target.host.clone(), target.port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_inflight(target.max_inflight.max(1))
            .set_clean_session(true)
            .set_max_packet_size(1 << 20, 1 << 20);
        if let Some((user, password)) = &target.credentials {
            options.set_credentials(user.clone(), password.clone());
        }
        let (client, mut eventloop) = AsyncClient::new(options, 1024);
        let acked = Arc::new(AtomicU64::new(0));
        let acks = Arc::clone(&acked);
        let counters = Arc::clone(counters);
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        acks.fetch_add(1, Ordering::Relaxed);
                        counters.delivered[1].fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Event::Incoming(Packet::ConnAck(_))) => tracing::info!("mqtt connected"),
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!("mqtt connection error, retrying: {e}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Self {
            client,
            prefix: target.topic_prefix.clone(),
            published: Arc::new(AtomicU64::new(0)),
            acked,
            task,
        }
    }

    async fn send(&self, topic: &str, payload: Vec<u8>, counters: &Counters) {
        let topic = match topic.strip_prefix(DEFAULT_TOPIC_PREFIX) {
            Some(rest) if self.prefix != DEFAULT_TOPIC_PREFIX => format!("{}{rest}", self.prefix),
            _ => topic.to_owned(),
        };
        let topic = topic.as_str();
        match self
            .client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
        {
            Ok(()) => {
                self.published.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(topic, "mqtt publish failed: {e}");
            }
        }
    }

    async fn drain(self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.acked.load(Ordering::Relaxed) < self.published.load(Ordering::Relaxed)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.client.disconnect().await;
        if tokio::time::timeout(Duration::from_secs(2), self.task)
            .await
            .is_err()
        {
            tracing::warn!("mqtt event loop did not stop");
        }
    }
}

// ----------------------------------------------------------------------------------- Kafka

const KAFKA_IN_FLIGHT: u32 = 10_000;

struct KafkaSender {
    producer: FutureProducer,
    target: KafkaTarget,
    permits: Arc<Semaphore>,
}

impl KafkaSender {
    fn start(target: &KafkaTarget) -> Result<Self, SimError> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &target.bootstrap_servers)
            .set("message.timeout.ms", "30000")
            .set("linger.ms", "5")
            .create()
            .map_err(|e| {
                transport_error(
                    "kafka",
                    format!(
                        "cannot create a producer for {}: {e}",
                        target.bootstrap_servers
                    ),
                )
            })?;
        Ok(Self {
            producer,
            target: target.clone(),
            permits: Arc::new(Semaphore::new(KAFKA_IN_FLIGHT as usize)),
        })
    }

    async fn send(&self, route: &Route, payload: Vec<u8>, counters: &Arc<Counters>) {
        let (topic, key) = match route {
            Route::KafkaReadings { key } => (self.target.readings_topic.clone(), key.clone()),
            Route::KafkaHj212 { key } => (self.target.hj212_topic.clone(), key.clone()),
            Route::KafkaEvents { key } => (self.target.events_topic.clone(), key.clone()),
            _ => return,
        };
        let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
            return;
        };
        let producer = self.producer.clone();
        let counters = Arc::clone(counters);
        tokio::spawn(async move {
            let record = FutureRecord::to(&topic).key(&key).payload(&payload);
            match producer.send(record, Duration::from_secs(30)).await {
                Ok(_) => {
                    counters.delivered[2].fetch_add(1, Ordering::Relaxed);
                }
                Err((e, _)) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(topic, "kafka delivery failed: {e}");
                }
            }
            drop(permit);
        });
    }

    async fn drain(self, timeout: Duration) {
        let all = self.permits.acquire_many(KAFKA_IN_FLIGHT);
        if tokio::time::timeout(timeout, all).await.is_err() {
            tracing::warn!("kafka deliveries still pending after {timeout:?}");
        }
    }
}

// ------------------------------------------------------------------------------------- run

struct Senders {
    tcp: Option<TcpSenders>,
    mqtt: Option<MqttSender>,
    kafka: Option<KafkaSender>,
}

/// Send `generator`'s stream to `targets` at `pacing`, writing the truth to `truth`, calling
/// `progress` every [`SendOptions::progress_every`], until the scenario ends or `shutdown`
/// resolves. The scenario's transports must be among the targets'.
pub async fn run<W: Write>(
    mut generator: Generator,
    targets: &Targets,
    pacing: Pacing,
    options: SendOptions,
    truth: &mut TruthWriter<W>,
    mut progress: impl FnMut(&Progress),
    shutdown: impl Future<Output = ()>,
) -> Result<Stats, SimError> {
    let wanted = generator.scenario().transports;
    let offered = targets.transports();
    for (want, have, name) in [
        (wanted.hj212_tcp, offered.hj212_tcp, "hj212_tcp"),
        (wanted.mqtt, offered.mqtt, "mqtt"),
        (wanted.kafka, offered.kafka, "kafka"),
    ] {
        if want && !have {
            return Err(transport_error(
                name,
                "the scenario routes feeds over it but no target is given",
            ));
        }
    }
    if let Pacing::Speed(s) | Pacing::CatchUp { speed: s } = pacing {
        if !(s.is_finite() && s > 0.0) {
            return Err(SimError::Scenario(format!(
                "speed must be a positive number, got {s}"
            )));
        }
    }
    let counters = Arc::new(Counters::default());
    let mut senders = Senders {
        tcp: targets.hj212.as_ref().map(|addr| TcpSenders {
            addr: addr.clone(),
            loggers: HashMap::new(),
            tasks: JoinSet::new(),
        }),
        mqtt: targets
            .mqtt
            .as_ref()
            .map(|t| MqttSender::start(t, &counters)),
        kafka: targets.kafka.as_ref().map(KafkaSender::start).transpose()?,
    };
    truth.write(&TruthRecord::Header(generator.header()))?;
    truth.flush()?;
    tokio::pin!(shutdown);
    let started = Instant::now();
    let mut sent = [0u64; 3];
    let mut last_report = (Instant::now(), 0u64);
    let mut last_mark: Option<(i64, i64)> = None;
    let mut sim0: Option<i64> = None;
    let mut feed_end = None;
    let mut stopped = false;
    let snapshot = |sent: [u64; 3], sim: i64, rate: f64, truth_entries: u64| Progress {
        elapsed: started.elapsed(),
        sim_time: Timestamp(sim),
        sent,
        delivered: [0, 1, 2].map(|i| counters.delivered[i].load(Ordering::Relaxed)),
        failed: counters.failed.load(Ordering::Relaxed),
        rate,
        truth_entries,
    };
    while let Some(at) = generator.peek_time() {
        let s = at.as_millis();
        let s0 = *sim0.get_or_insert(s);
        let deadline = match pacing {
            Pacing::AsFast => None,
            Pacing::Speed(speed) => {
                Some(started + Duration::from_secs_f64(((s - s0) as f64 / 1000.0 / speed).max(0.0)))
            }
            Pacing::CatchUp { speed } => {
                let paced =
                    started + Duration::from_secs_f64(((s - s0) as f64 / 1000.0 / speed).max(0.0));
                let ahead = Duration::from_millis(u64::try_from(s - wall_ms()).unwrap_or(0));
                Some(paced.max(Instant::now() + ahead))
            }
        };
        let stop = match deadline {
            Some(deadline) => tokio::select! {
                biased;
                () = &mut shutdown => true,
                () = tokio::time::sleep_until(deadline.into()) => false,
            },
            None => tokio::select! {
                biased;
                () = &mut shutdown => true,
                () = std::future::ready(()) => false,
            },
        };
        if stop {
            stopped = true;
            break;
        }
        let Some(group) = generator.next_group()? else {
            break;
        };
        for Message { route, payload, .. } in group.messages {
            let transport = route.transport();
            match (&route, &mut senders) {
                (Route::Hj212Tcp { logger, reply }, Senders { tcp: Some(tcp), .. }) => {
                    let job = Job {
                        payload,
                        reply: *reply,
                    };
                    tcp.send(logger, job, &counters, options).await;
                }
                (
                    Route::MqttReadings { topic }
                    | Route::MqttHj212 { topic }
                    | Route::MqttEvents { topic },
                    Senders {
                        mqtt: Some(mqtt), ..
                    },
                ) => {
                    mqtt.send(topic, payload, &counters).await;
                }
                (
                    _,
                    Senders {
                        kafka: Some(kafka), ..
                    },
                ) if transport == Transport::Kafka => {
                    kafka.send(&route, payload, &counters).await;
                }
                _ => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            sent[slot(transport)] += 1;
        }
        for e in &group.truth {
            truth.alert(e)?;
        }
        feed_end = Some(group.at);
        let now = wall_ms();
        let mark_due =
            last_mark.is_none_or(|(ls, lw)| s - ls >= 60_000 || (now - lw >= 10_000 && s > ls));
        if mark_due {
            truth.write(&TruthRecord::Clock(ClockMark {
                sim_ms: s,
                wall_ms: now,
            }))?;
            last_mark = Some((s, now));
        }
        if !group.truth.is_empty() || mark_due {
            truth.flush()?;
        }
        if last_report.0.elapsed() >= options.progress_every {
            let total: u64 = sent.iter().sum();
            let rate =
                (total - last_report.1) as f64 / last_report.0.elapsed().as_secs_f64().max(1e-3);
            progress(&snapshot(sent, s, rate, truth.alerts()));
            last_report = (Instant::now(), total);
        }
    }
    // Deliver what was handed over, then write what the end of the feed commits Argus to.
    let Senders { tcp, mqtt, kafka } = senders;
    if let Some(tcp) = tcp {
        tcp.drain(options.drain_timeout).await;
    }
    if let Some(mqtt) = mqtt {
        mqtt.drain(options.drain_timeout).await;
    }
    if let Some(kafka) = kafka {
        kafka.drain(options.drain_timeout).await;
    }
    for e in generator.finish() {
        truth.alert(&e)?;
    }
    let end_ms = feed_end.map_or(generator.scenario().start.as_millis(), Timestamp::as_millis);
    let now = wall_ms();
    truth.write(&TruthRecord::Clock(ClockMark {
        sim_ms: end_ms,
        wall_ms: now,
    }))?;
    truth.write(&TruthRecord::End {
        feed_end_ms: end_ms,
        wall_ms: now,
    })?;
    truth.flush()?;
    let last = snapshot(sent, end_ms, 0.0, truth.alerts());
    progress(&last);
    Ok(Stats {
        progress: last,
        replies: counters.replies.load(Ordering::Relaxed),
        reconnects: counters.reconnects.load(Ordering::Relaxed),
        feed_end,
        stopped,
    })
}
