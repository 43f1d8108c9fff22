//! The MQTT source task: connection, subscriptions, batching into envelopes, manual acks and
//! reconnection with backoff.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use argus_config::MqttSettings;
use argus_ingest::{
    count_by_reason, Ack, DeadLetter, Decoder, Envelope, PayloadKind, TopicNames, Transport,
};
use argus_model::Timestamp;
use argus_telemetry::{RateLimited, Telemetry, LOG_EVERY};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS, TlsConfiguration};
use tokio::sync::mpsc;

use crate::topic::{matches, wildcard_levels};

/// Messages gathered into one envelope at most.
const MAX_BATCH: usize = 500;
/// How long a partial batch may wait for more messages.
const MAX_BATCH_DELAY: Duration = Duration::from_millis(20);
/// Largest packet rumqttc accepts: the top of `[ingest] max_payload_bytes`, so that a payload
/// over the configured limit reaches the decoder and becomes an `oversize` dead letter.
const MAX_INCOMING_PACKET_BYTES: usize = 64 << 20;
/// Longest pause between reconnection attempts: short, because a broker that restarts does not
/// queue the messages of a shared subscription for an offline session (issue 12, item 5), so
/// every second away may lose messages.
const MAX_BACKOFF: Duration = Duration::from_secs(3);

/// The MQTT source could not start or stopped on an error.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// The TLS CA file could not be read.
    #[error("cannot read mqtt.tls_ca_file {path}: {source}")]
    TlsCa {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The pipeline is gone: Argus is shutting down.
    #[error("the pipeline closed while the mqtt source was running")]
    PipelineClosed,
    /// The embedded broker could not start.
    #[error("embedded mqtt broker: {0}")]
    Broker(String),
}

/// One topic filter and what its messages carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Topic filter (`argus/v1/readings/+/+`), without the `$share/<group>/` prefix.
    pub filter: String,
    /// Payload kind of its messages.
    pub kind: PayloadKind,
}

/// The MQTT source. Build with [`MqttSource::new`], then [`MqttSource::run`] it.
#[derive(Debug)]
pub struct MqttSource {
    options: MqttOptions,
    subscriptions: Vec<Subscription>,
    shared_group: Option<String>,
    decoder: Arc<Decoder>,
    telemetry: Telemetry,
    /// Messages on topics no subscription covers are logged at most once per interval.
    stray_log: Mutex<RateLimited>,
}

impl MqttSource {
    /// A source configured by `settings`: readings, HJ 212 and events topics, persistent session,
    /// manual acknowledgements.
    pub fn new(
        settings: &MqttSettings,
        decoder: Arc<Decoder>,
        telemetry: Telemetry,
    ) -> Result<Self, MqttError> {
        let subscriptions = vec![
            Subscription {
                filter: settings.readings_topic.clone(),
                kind: PayloadKind::JsonReadings,
            },
            Subscription {
                filter: settings.hj212_topic.clone(),
                kind: PayloadKind::Hj212,
            },
            Subscription {
                filter: settings.events_topic.clone(),
                kind: PayloadKind::Events,
            },
        ];
        Self::with_subscriptions(settings, subscriptions, decoder, telemetry)
    }

    /// A source with explicit subscriptions (tests use unique topics).
    pub fn with_subscriptions(
        settings: &MqttSettings,
        subscriptions: Vec<Subscription>,
        decoder: Arc<Decoder>,
        telemetry: Telemetry,
    ) -> Result<Self, MqttError> {
        let mut options = MqttOptions::new(
            settings.client_id.clone(),
            settings.host.clone(),
            settings.port,
        );
        options
            .set_keep_alive(settings.keep_alive)
            .set_clean_session(false)
            .set_manual_acks(true)
            .set_inflight(settings.max_inflight)
            .set_max_packet_size(MAX_INCOMING_PACKET_BYTES, 64 * 1024);
        if let Some(credentials) = &settings.credentials {
            options.set_credentials(credentials.username.clone(), credentials.password.clone());
        }
        if let Some(path) = &settings.tls_ca_file {
            let ca = std::fs::read(path).map_err(|source| MqttError::TlsCa {
                path: path.display().to_string(),
                source,
            })?;
            options.set_transport(rumqttc::Transport::tls_with_config(
                TlsConfiguration::Simple {
                    ca,
                    alpn: None,
                    client_auth: None,
                },
            ));
        }
        Ok(Self {
            options,
            subscriptions,
            shared_group: settings.shared_group.clone(),
            decoder,
            telemetry,
            stray_log: Mutex::new(RateLimited::new(LOG_EVERY)),
        })
    }

    /// Run until `shutdown` resolves: receive, decode, batch, hand over, ack on acknowledgement.
    /// Connection errors are retried with backoff; only a closed pipeline ends the source early.
    /// At shutdown a batch not yet handed over is dropped unacknowledged: the broker keeps those
    /// messages for this session and delivers them again.
    pub async fn run(
        self,
        tx: mpsc::Sender<Envelope>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), MqttError> {
        let (client, mut eventloop) = AsyncClient::new(self.options.clone(), 64);
        let filters: Vec<String> = self
            .subscriptions
            .iter()
            .map(|s| match &self.shared_group {
                Some(group) => format!("$share/{group}/{}", s.filter),
                None => s.filter.clone(),
            })
            .collect();
        let (host, port) = self.options.broker_address();
        tracing::info!(broker = %format!("{host}:{port}"), client_id = self.options.client_id(), ?filters, "mqtt source starting");
        tokio::pin!(shutdown);
        let mut batch = Batch::default();
        let mut backoff = Duration::from_millis(100);
        // Acknowledged packet ids come back here from whichever task ran the envelope's Ack; this
        // task queues the PUBACKs (the client's request queue is bounded and drained by `poll`).
        let (acks, mut acked) = mpsc::unbounded_channel::<Vec<u16>>();
        let mut pending_acks = VecDeque::new();
        loop {
            send_acks(&client, &mut pending_acks);
            let flush_now = tokio::select! {
                () = &mut shutdown => break,
                () = sleep_until(batch.deadline()) => true,
                Some(pkids) = acked.recv() => {
                    pending_acks.extend(pkids);
                    false
                }
                event = eventloop.poll() => match event {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        backoff = Duration::from_millis(100);
                        self.telemetry.mqtt.connections.with_label_values(&["connected"]).inc();
                        tracing::info!(session_present = ack.session_present, "mqtt connected");
                        for filter in &filters {
                            // Queued in the client; sent by the event loop we are polling.
                            if let Err(e) = client.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                                tracing::warn!(filter, "cannot queue subscription: {e}");
                            }
                        }
                        false
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        self.decode(&mut batch, publish);
                        batch.len() >= MAX_BATCH
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        self.telemetry.mqtt.connections.with_label_values(&["subscribed"]).inc();
                        false
                    }
                    Ok(_) => false,
                    Err(e) => {
                        self.telemetry.mqtt.connections.with_label_values(&["error"]).inc();
                        tracing::warn!(retry_in = ?backoff, "mqtt connection error: {e}");
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        true
                    }
                },
            };
            if flush_now && batch.payloads > 0 {
                let envelope = self.envelope(std::mem::take(&mut batch), &acks);
                tokio::select! {
                    () = &mut shutdown => break,
                    sent = tx.send(envelope) => sent.map_err(|_| MqttError::PipelineClosed)?,
                }
            }
        }
        // Shutdown: PUBACK what was acknowledged, then disconnect.
        while let Ok(pkids) = acked.try_recv() {
            pending_acks.extend(pkids);
        }
        send_acks(&client, &mut pending_acks);
        let _ = client.try_disconnect();
        // Let the PUBACKs and the DISCONNECT go out.
        let _ = tokio::time::timeout(Duration::from_secs(2), drain(&mut eventloop)).await;
        tracing::info!(
            dropped_unacknowledged = batch.payloads,
            "mqtt source stopped"
        );
        Ok(())
    }

    fn decode(&self, batch: &mut Batch, publish: Publish) {
        let receive_time = now();
        if batch.started.is_none() {
            batch.started = Some(Instant::now());
        }
        batch.payloads += 1;
        batch.bytes += publish.payload.len() as u64;
        let topic = publish.topic.as_str();
        let subscription = self
            .subscriptions
            .iter()
            .find(|s| matches(&s.filter, topic));
        match subscription {
            Some(s) => {
                // The names the topic gives (its `+` levels) must be the payload's.
                let names = wildcard_levels(&s.filter, topic);
                let (enterprise, source) = match (s.kind, names.as_slice()) {
                    (PayloadKind::JsonReadings, [.., e, m]) => (Some(*e), Some(*m)),
                    (PayloadKind::JsonReadings | PayloadKind::Hj212, [.., m]) => (None, Some(*m)),
                    (PayloadKind::Events, [.., e]) => (Some(*e), None),
                    _ => (None, None),
                };
                let names = TopicNames { enterprise, source };
                let decoded =
                    self.decoder
                        .decode_on_topic(s.kind, &publish.payload, receive_time, names);
                match decoded {
                    Ok(records) => batch.records.extend(records),
                    Err(e) => batch.dead_letters.push(DeadLetter::new(
                        Transport::Mqtt,
                        format!("mqtt:{topic}"),
                        e.reason,
                        e.detail,
                        receive_time,
                        &publish.payload,
                    )),
                }
            }
            None => {
                let mut log = self
                    .stray_log
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if let Some(count) = log.note(1, Instant::now()) {
                    tracing::warn!(count, topic = ?topic, "messages on a topic no subscription covers, acknowledged and ignored (the last of these)");
                }
            }
        }
        if publish.qos != QoS::AtMostOnce {
            batch.pkids.push(publish.pkid);
        }
    }

    /// Turn a batch into an envelope whose ack releases the broker's copies, and count it.
    fn envelope(&self, batch: Batch, acks: &mpsc::UnboundedSender<Vec<u16>>) -> Envelope {
        let metrics = &self.telemetry.ingest;
        metrics.batch(
            "mqtt",
            batch.payloads,
            batch.bytes,
            batch.records.len() as u64,
        );
        for (reason, n) in count_by_reason(&batch.dead_letters) {
            metrics.dead_letters("mqtt", reason.as_str(), n);
        }
        let acks = acks.clone();
        let pkids = batch.pkids;
        let ack = Ack::new(move || {
            // If the source has stopped, the broker redelivers these to the next session.
            let _ = acks.send(pkids);
        });
        Envelope {
            transport: Transport::Mqtt,
            records: batch.records,
            dead_letters: batch.dead_letters,
            ack,
        }
    }
}

#[derive(Debug, Default)]
struct Batch {
    records: Vec<argus_ingest::Record>,
    dead_letters: Vec<argus_ingest::DeadLetter>,
    pkids: Vec<u16>,
    payloads: u64,
    bytes: u64,
    started: Option<Instant>,
}

impl Batch {
    fn len(&self) -> usize {
        self.pkids.len().max(self.payloads as usize)
    }

    fn deadline(&self) -> Option<Instant> {
        self.started.map(|t| t + MAX_BATCH_DELAY)
    }
}

/// Queue PUBACKs for acknowledged packet ids while the client's request queue has room; the rest
/// wait for the next turn of the loop.
fn send_acks(client: &AsyncClient, pending: &mut VecDeque<u16>) {
    while let Some(&pkid) = pending.front() {
        let mut publish = Publish::new("", QoS::AtLeastOnce, Vec::new());
        publish.pkid = pkid;
        if client.try_ack(&publish).is_err() {
            return;
        }
        pending.pop_front();
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

async fn drain(eventloop: &mut EventLoop) {
    while eventloop.poll().await.is_ok() {}
}

/// The time of receipt.
fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}
