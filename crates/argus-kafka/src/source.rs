//! The Kafka source: one member of the Argus consumer group, reading the readings, HJ 212 and
//! events topics, decoding messages in batches into [`Envelope`]s and committing offsets only
//! once the pipeline acknowledged them.
//!
//! # Delivery
//!
//! At-least-once. Each envelope carries an [`Ack`] covering its messages; acknowledging marks
//! their offsets done in the [`OffsetTracker`], and the committable offsets (one past the
//! acknowledged prefix of each partition) are committed every [`SourceOptions::commit_interval`],
//! when partitions are revoked, and at shutdown (after waiting up to
//! [`SourceOptions::shutdown_grace`] for the envelopes in flight). An envelope dropped without
//! acknowledgement holds back its partitions' commits, so its messages are read again after a
//! restart or a rebalance.
//!
//! Every commit is a synchronous `commit(.., CommitMode::Sync)`; the periodic one runs on
//! tokio's blocking pool, one at a time, so consumption never waits for it. Asynchronous
//! commits would report nothing: rdkafka receives librdkafka's results through the event API,
//! where a manual asynchronous commit posts no result (only the `offset_commit_cb`, which
//! rdkafka does not set, would see it), so `argus_kafka_commits_total{result}` and the
//! "already committed" bookkeeping could not be kept. Commits are serialised by a lock, so a
//! later commit never lands before an earlier one with lower offsets.
//!
//! # Rebalances
//!
//! `partition.assignment.strategy` is `roundrobin`: the partitions of all subscribed topics
//! are dealt out to the members in turn, so every member gets its share of every topic and the
//! readings scale out with the processes. (`cooperative-sticky`, which revokes only what moves,
//! balances the total count only: with the readings, HJ 212 and events topics and two members,
//! one member got every readings partition, issue 12.) A rebalance revokes every partition and
//! assigns the new share (eager). On revoke, the source first waits (up to
//! [`SourceOptions::shutdown_grace`]) for the envelopes it sent to be acknowledged, so that
//! what this member stored is committed and not read again by the partitions' next owner (two
//! members writing the same readings at once would both find them new); then what is
//! acknowledged is committed synchronously and the trackers are dropped. Acknowledgements
//! arriving later are ignored (each assignment has its own epoch), and a batch still being
//! gathered across a rebalance is discarded: the new owner reads from the committed offset.
//! On assign, the partitions get fresh trackers and the hook of
//! [`KafkaSource::on_assign`] runs (the store forgets which series only it writes).
//!
//! # Backpressure
//!
//! A batch is sent with `Sender::send`: while the pipeline's channel is full, nothing more is
//! read (librdkafka's prefetch queue is bounded by its own settings). A pipeline stalled for
//! longer than `max.poll.interval.ms` (5 minutes) makes the member leave the group; it rejoins
//! when consumption resumes.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use argus_ingest::{
    count_by_reason, Ack, DeadLetter, Decoder, Envelope, PayloadKind, Reason, Transport,
};
use argus_model::Timestamp;
use argus_telemetry::Telemetry;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError as RdKafkaError, KafkaResult};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::{mpsc, Notify};
use tokio::time::{Instant, MissedTickBehavior};

use crate::offsets::{CommitOffset, OffsetTracker};
use crate::KafkaError;

/// The transport label of every metric this source emits.
const TRANSPORT: &str = "kafka";

/// How a source cuts batches, how often it commits, and how long it waits at shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceOptions {
    /// Most messages in one envelope.
    pub max_messages: usize,
    /// Most payload bytes in one envelope (a batch is closed once it reaches this).
    pub max_bytes: usize,
    /// Longest wait, from a batch's first message, for more messages before sending it.
    pub max_wait: Duration,
    /// Interval of the periodic commits of acknowledged offsets.
    pub commit_interval: Duration,
    /// At shutdown, and when partitions are revoked, how long to wait for the envelopes
    /// already sent to be acknowledged (or dropped) before the commit, so that what was stored
    /// is not read again (by this member after a restart, or by the partitions' next owner).
    pub shutdown_grace: Duration,
}

impl Default for SourceOptions {
    /// 500 messages, 4 MiB, 50 ms; commits every second; 5 s of grace at shutdown.
    fn default() -> Self {
        Self {
            max_messages: 500,
            max_bytes: 4 << 20,
            max_wait: Duration::from_millis(50),
            commit_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// State shared by the consume loop, the consumer context (rebalance callbacks, run by librdkafka
/// inside `recv`; commits, run on the blocking pool) and the acknowledgements (run by the
/// pipeline). Lock order: `commits` before `tracker`.
#[derive(Debug, Default)]
struct Shared {
    tracker: Mutex<OffsetTracker>,
    /// Bumped by every rebalance: a batch gathered across one is discarded.
    generation: AtomicU64,
    /// Held for the whole of a commit, from reading the offsets to recording the result.
    commits: Mutex<()>,
    /// Envelopes sent whose acknowledgement was neither done nor dropped yet.
    outstanding: AtomicUsize,
    /// Notified when `outstanding` drops to zero.
    settled: Notify,
    /// How long a revoke waits for the envelopes in flight, in ms.
    revoke_grace_ms: AtomicU64,
    /// Set once the source is closing: a revoke then waits for nothing more.
    closing: AtomicBool,
    /// Run when partitions are assigned.
    on_assign: AssignHook,
}

/// What to run when partitions are assigned (see [`KafkaSource::on_assign`]).
#[derive(Default)]
struct AssignHook(std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>);

impl fmt::Debug for AssignHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "AssignHook(set)"
        } else {
            "AssignHook(none)"
        })
    }
}

impl Shared {
    fn tracker(&self) -> MutexGuard<'_, OffsetTracker> {
        // The tracker stays consistent between its method calls: a panic elsewhere while the
        // lock was held leaves nothing half-done worth refusing to read.
        self.tracker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn commit_lock(&self) -> MutexGuard<'_, ()> {
        self.commits.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wait until every envelope sent is acknowledged or dropped.
    async fn settled(&self) {
        loop {
            let notified = self.settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.outstanding.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Block until every envelope sent is acknowledged or dropped ([`Shared::settled`]), for at
    /// most `grace`; false if some are still out. Called by librdkafka's rebalance callback
    /// inside `recv`: on a multi-thread runtime the worker hands its other tasks over meanwhile;
    /// elsewhere (a current-thread runtime, no runtime) the pipeline could not run while this
    /// thread waits, so nothing is waited for.
    fn settled_within(&self, grace: Duration) -> bool {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| {
                    handle
                        .block_on(tokio::time::timeout(grace, self.settled()))
                        .is_ok()
                })
            }
            _ => self.outstanding.load(Ordering::Acquire) == 0,
        }
    }
}

/// Counts an envelope as outstanding from its creation until its acknowledgement is done or
/// dropped (the guard lives in the acknowledgement's closure).
struct Outstanding(Arc<Shared>);

impl Outstanding {
    fn new(shared: Arc<Shared>) -> Self {
        shared.outstanding.fetch_add(1, Ordering::AcqRel);
        Self(shared)
    }
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        if self.0.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.settled.notify_waiters();
        }
    }
}

/// The consumer context: rebalance bookkeeping, commit accounting, librdkafka logs.
struct SourceContext {
    shared: Arc<Shared>,
    telemetry: Telemetry,
    group: String,
}

impl ClientContext for SourceContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        crate::forward_log(level, fac, log_message);
    }

    fn error(&self, error: RdKafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", group = %self.group, %error, "kafka consumer error: {reason}");
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
        match rebalance {
            Rebalance::Assign(partitions) => {
                let mut tracker = self.shared.tracker();
                for p in partitions.elements() {
                    tracker.assign(p.topic(), p.partition());
                }
            }
            Rebalance::Revoke(partitions) => {
                if partitions.count() > 0 {
                    self.telemetry
                        .kafka
                        .rebalances
                        .with_label_values(&["revoke"])
                        .inc();
                    tracing::info!(group = %self.group, partitions = %describe(partitions), "kafka partitions revoked");
                }
                // Before the partitions go, what was sent is stored and acknowledged, and the
                // acknowledged offsets are committed, or the new owner reads them again.
                if !self.shared.closing.load(Ordering::Acquire) {
                    let grace =
                        Duration::from_millis(self.shared.revoke_grace_ms.load(Ordering::Acquire));
                    if !self.shared.settled_within(grace) {
                        let outstanding = self.shared.outstanding.load(Ordering::Acquire);
                        tracing::warn!(
                            group = %self.group,
                            outstanding,
                            ?grace,
                            "envelopes still unacknowledged when partitions are revoked: \
                             their messages will be read again by the next owner"
                        );
                    }
                }
                let _commit = self.shared.commit_lock();
                let offsets: Vec<CommitOffset> = {
                    let mut tracker = self.shared.tracker();
                    partitions
                        .elements()
                        .iter()
                        .filter_map(|p| {
                            let offset = tracker.revoke(p.topic(), p.partition())?;
                            Some(CommitOffset {
                                topic: p.topic().to_owned(),
                                partition: p.partition(),
                                offset,
                            })
                        })
                        .collect()
                };
                self.commit(consumer, &offsets, "revoke");
            }
            Rebalance::Error(error) => {
                tracing::warn!(group = %self.group, %error, "kafka rebalance error");
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            if partitions.count() > 0 {
                self.telemetry
                    .kafka
                    .rebalances
                    .with_label_values(&["assign"])
                    .inc();
                tracing::info!(group = %self.group, partitions = %describe(partitions), "kafka partitions assigned");
                if let Some(hook) = self.shared.on_assign.0.get() {
                    hook();
                }
            }
        }
    }
}

impl SourceContext {
    /// Commit every acknowledged offset not yet committed.
    fn commit_pending(&self, consumer: &impl Consumer<Self>, why: &str) {
        let _commit = self.shared.commit_lock();
        let offsets = self.shared.tracker().pending_commits();
        self.commit(consumer, &offsets, why);
    }

    /// Commit `offsets` synchronously (the caller holds the commit lock), count the result and
    /// record the offsets as committed.
    fn commit(&self, consumer: &impl Consumer<Self>, offsets: &[CommitOffset], why: &str) {
        if offsets.is_empty() {
            return;
        }
        let mut list = TopicPartitionList::with_capacity(offsets.len());
        for c in offsets {
            if let Err(error) =
                list.add_partition_offset(&c.topic, c.partition, Offset::Offset(c.offset))
            {
                tracing::warn!(topic = %c.topic, partition = c.partition, offset = c.offset, %error, "cannot add offset to a kafka commit");
            }
        }
        match consumer.commit(&list, CommitMode::Sync) {
            Ok(()) => {
                self.telemetry
                    .kafka
                    .commits
                    .with_label_values(&["ok"])
                    .inc();
                let mut tracker = self.shared.tracker();
                for c in offsets {
                    tracker.committed(&c.topic, c.partition, c.offset);
                }
                tracing::debug!(group = %self.group, offsets = %describe(&list), why, "kafka offsets committed");
            }
            Err(error) => {
                self.telemetry
                    .kafka
                    .commits
                    .with_label_values(&["error"])
                    .inc();
                tracing::warn!(
                    group = %self.group,
                    offsets = %describe(&list),
                    why,
                    %error,
                    "kafka offset commit failed: retried at the next commit, or read again by the next owner"
                );
            }
        }
    }
}

/// A consumer-group source of the readings, HJ 212 and events topics.
///
/// Consumer settings: `enable.auto.commit=false` and `enable.auto.offset.store=false` (offsets
/// are committed explicitly, only once acknowledged), `auto.offset.reset=earliest` (a new group
/// reads everything kept), `session.timeout.ms` from the settings, and
/// `partition.assignment.strategy=roundrobin`.
pub struct KafkaSource {
    consumer: Arc<StreamConsumer<SourceContext>>,
    shared: Arc<Shared>,
    topics: Vec<(String, PayloadKind)>,
    group: String,
    decoder: Arc<Decoder>,
    telemetry: Telemetry,
    options: SourceOptions,
}

impl fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSource")
            .field("group", &self.group)
            .field("topics", &self.topics)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl KafkaSource {
    /// A source of `settings.topics`: readings as [`PayloadKind::JsonReadings`], hj212 as
    /// [`PayloadKind::Hj212`], events as [`PayloadKind::Events`].
    pub fn new(
        settings: &argus_config::KafkaSettings,
        decoder: Arc<Decoder>,
        telemetry: Telemetry,
    ) -> Result<Self, KafkaError> {
        let t = &settings.topics;
        let topics = [
            (t.readings.as_str(), PayloadKind::JsonReadings),
            (t.hj212.as_str(), PayloadKind::Hj212),
            (t.events.as_str(), PayloadKind::Events),
        ];
        Self::with_topics(settings, &topics, decoder, telemetry)
    }

    /// A source of the given topics, each with the kind of payload it carries, in the group and
    /// cluster of `settings`. The consumer is created here (so a bad setting fails now), the
    /// subscription starts in [`KafkaSource::run`].
    pub fn with_topics(
        settings: &argus_config::KafkaSettings,
        topics: &[(&str, PayloadKind)],
        decoder: Arc<Decoder>,
        telemetry: Telemetry,
    ) -> Result<Self, KafkaError> {
        let group = settings.group_id.clone();
        let topic_error = |reason: String| KafkaError::Topics {
            group: group.clone(),
            reason,
        };
        if topics.is_empty() {
            return Err(topic_error("no topics to subscribe to".to_owned()));
        }
        for (i, (topic, _)) in topics.iter().enumerate() {
            if topics[..i].iter().any(|(t, _)| t == topic) {
                return Err(topic_error(format!("topic {topic} listed twice")));
            }
        }
        let shared = Arc::new(Shared::default());
        let context = SourceContext {
            shared: Arc::clone(&shared),
            telemetry: telemetry.clone(),
            group: group.clone(),
        };
        let consumer = ClientConfig::new()
            .set("bootstrap.servers", &settings.bootstrap_servers)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set(
                "session.timeout.ms",
                settings.session_timeout.as_millis().to_string(),
            )
            .set("partition.assignment.strategy", "roundrobin")
            .create_with_context(context)
            .map_err(|source| KafkaError::Client {
                role: "consumer",
                brokers: settings.bootstrap_servers.clone(),
                source: Box::new(source),
            })?;
        let options = SourceOptions::default();
        shared
            .revoke_grace_ms
            .store(millis(options.shutdown_grace), Ordering::Release);
        Ok(Self {
            consumer: Arc::new(consumer),
            shared,
            topics: topics.iter().map(|(t, k)| ((*t).to_owned(), *k)).collect(),
            group,
            decoder,
            telemetry,
            options,
        })
    }

    /// Replace the batching, commit and shutdown options (zero counts, sizes and intervals are
    /// raised to the smallest usable value).
    pub fn with_options(mut self, options: SourceOptions) -> Self {
        self.options = SourceOptions {
            max_messages: options.max_messages.max(1),
            max_bytes: options.max_bytes.max(1),
            max_wait: options.max_wait,
            commit_interval: options.commit_interval.max(Duration::from_millis(1)),
            shutdown_grace: options.shutdown_grace,
        };
        self.shared
            .revoke_grace_ms
            .store(millis(options.shutdown_grace), Ordering::Release);
        self
    }

    /// Run `hook` whenever partitions are assigned to this member (from librdkafka's
    /// rebalance callback: keep it short). The service makes the store forget which series it
    /// alone writes: another member may have written them meanwhile. Set once; a second hook
    /// is ignored.
    pub fn on_assign(self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        if self.shared.on_assign.0.set(Box::new(hook)).is_err() {
            tracing::warn!(group = %self.group, "a kafka assign hook was set already");
        }
        self
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Subscribe and send envelopes to `tx` until `shutdown` completes, a fatal consumer error
    /// occurs, or `tx`'s receiver is gone. Then drop `tx`, wait up to
    /// [`SourceOptions::shutdown_grace`] for the envelopes already sent to be acknowledged,
    /// commit what was acknowledged (synchronously) and leave the group. A batch still being
    /// gathered or waiting for room in the channel at shutdown is dropped unacknowledged: it is
    /// read again by whoever reads next.
    pub async fn run(
        self,
        tx: mpsc::Sender<Envelope>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), KafkaError> {
        let names: Vec<&str> = self.topics.iter().map(|(t, _)| t.as_str()).collect();
        self.consumer
            .subscribe(&names)
            .map_err(|source| KafkaError::Subscribe {
                group: self.group.clone(),
                topics: names.join(","),
                source: Box::new(source),
            })?;
        tracing::info!(group = %self.group, topics = %names.join(","), "kafka source started");

        let mut periodic = PeriodicCommit::default();
        let result = self.consume(&tx, shutdown, &mut periodic).await;
        drop(tx);
        periodic.finish().await;
        let grace = self.options.shutdown_grace;
        if tokio::time::timeout(grace, self.shared.settled())
            .await
            .is_err()
        {
            let outstanding = self.shared.outstanding.load(Ordering::Acquire);
            tracing::info!(
                group = %self.group,
                outstanding,
                ?grace,
                "envelopes still unacknowledged at shutdown: their messages will be read again"
            );
        }

        let Self {
            consumer, group, ..
        } = self;
        self.shared.closing.store(true, Ordering::Release);
        // Blocking calls: a last synchronous commit, then closing the consumer, which revokes
        // its partitions (the revoke callback commits anything acknowledged meanwhile) and
        // waits for the group to let it go.
        let closed = tokio::task::spawn_blocking(move || {
            consumer.context().commit_pending(&*consumer, "shutdown");
            drop(consumer);
        })
        .await;
        if let Err(error) = closed {
            tracing::warn!(group = %group, %error, "closing the kafka consumer failed");
        }
        match &result {
            Ok(()) => tracing::info!(group = %group, "kafka source stopped"),
            Err(error) => tracing::error!(group = %group, %error, "kafka source stopped on error"),
        }
        result
    }

    async fn consume(
        &self,
        tx: &mpsc::Sender<Envelope>,
        shutdown: impl Future<Output = ()>,
        periodic: &mut PeriodicCommit,
    ) -> Result<(), KafkaError> {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(self.options.commit_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let mut batch = Batch::new(self.shared.generation.load(Ordering::Acquire));
            // Wait for a first message, committing while idle.
            tokio::select! {
                biased;
                () = &mut shutdown => return Ok(()),
                _ = tick.tick() => {
                    periodic.start(&self.consumer);
                    continue;
                }
                message = self.consumer.recv() => self.take(&mut batch, message)?,
            }
            if batch.is_empty() {
                continue; // A consumer error, logged.
            }
            // Fill the batch until it is full or its time is up.
            let deadline = tokio::time::sleep_until(Instant::now() + self.options.max_wait);
            tokio::pin!(deadline);
            while !batch.is_full(&self.options) {
                tokio::select! {
                    biased;
                    () = &mut shutdown => return Ok(()),
                    () = &mut deadline => break,
                    message = self.consumer.recv() => self.take(&mut batch, message)?,
                }
            }
            let generation = self.shared.generation.load(Ordering::Acquire);
            if generation != batch.generation {
                self.discard(&mut batch, generation);
                continue;
            }
            // Hand it over, waiting for room in the channel (backpressure) and committing meanwhile.
            let envelope = self.seal(batch);
            let send = tx.send(envelope);
            tokio::pin!(send);
            loop {
                tokio::select! {
                    biased;
                    () = &mut shutdown => return Ok(()),
                    sent = &mut send => {
                        if sent.is_err() {
                            tracing::info!(group = %self.group, "pipeline closed: kafka source stopping");
                            return Ok(());
                        }
                        break;
                    }
                    _ = tick.tick() => periodic.start(&self.consumer),
                }
            }
        }
    }

    /// Decode one received message into the batch (or log a consumer error).
    fn take(
        &self,
        batch: &mut Batch,
        message: KafkaResult<BorrowedMessage<'_>>,
    ) -> Result<(), KafkaError> {
        let message = match message {
            Ok(message) => message,
            Err(source @ RdKafkaError::MessageConsumptionFatal(_)) => {
                return Err(KafkaError::Consume {
                    group: self.group.clone(),
                    source: Box::new(source),
                });
            }
            Err(error) => {
                tracing::warn!(group = %self.group, %error, "kafka consumer error");
                return Ok(());
            }
        };
        let generation = self.shared.generation.load(Ordering::Acquire);
        if generation != batch.generation {
            self.discard(batch, generation);
        }
        let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
        batch.track(topic, partition, offset, || {
            self.shared.tracker().epoch(topic, partition)
        });

        let receive_time = now();
        let origin = || format!("kafka:{topic}/{partition}@{offset}");
        let payload = message.payload().unwrap_or_default();
        batch.payloads += 1;
        batch.bytes += payload.len();
        let kind = self
            .topics
            .iter()
            .find(|(t, _)| t == topic)
            .map(|(_, k)| *k);
        match kind {
            _ if payload.is_empty() => batch.dead_letters.push(DeadLetter::new(
                Transport::Kafka,
                origin(),
                Reason::BadSchema,
                "empty message".to_owned(),
                receive_time,
                payload,
            )),
            Some(kind) => self.decoder.decode_into(
                Transport::Kafka,
                origin,
                kind,
                payload,
                receive_time,
                &mut batch.records,
                &mut batch.dead_letters,
            ),
            None => batch.dead_letters.push(DeadLetter::new(
                Transport::Kafka,
                origin(),
                Reason::BadSchema,
                format!("topic {topic} has no payload kind"),
                receive_time,
                payload,
            )),
        }
        Ok(())
    }

    /// A rebalance happened while `batch` was gathered: its messages are read again from the
    /// committed offsets (by this member or the partitions' new owner), so they are dropped
    /// here, unacknowledged, and the batch starts over in `generation`.
    fn discard(&self, batch: &mut Batch, generation: u64) {
        if !batch.is_empty() {
            tracing::debug!(
                group = %self.group,
                messages = batch.payloads,
                "batch gathered across a kafka rebalance dropped: its messages are read again"
            );
        }
        *batch = Batch::new(generation);
    }

    /// Count the batch, register its offsets and wrap it into an envelope whose ack marks them.
    fn seal(&self, batch: Batch) -> Envelope {
        let Batch {
            records,
            dead_letters,
            payloads,
            bytes,
            spans,
            ..
        } = batch;
        let ingest = &self.telemetry.ingest;
        ingest.batch(
            TRANSPORT,
            payloads,
            saturating_u64(bytes),
            saturating_u64(records.len()),
        );
        for (reason, n) in count_by_reason(&dead_letters) {
            ingest.dead_letters(TRANSPORT, reason.as_str(), n);
        }

        let mut acks = Vec::with_capacity(spans.len());
        {
            let mut tracker = self.shared.tracker();
            for span in spans {
                let Some(epoch) = span.epoch else { continue };
                if tracker.deliver(&span.topic, span.partition, epoch, span.first, span.last) {
                    acks.push((span.topic, span.partition, epoch, span.first));
                }
            }
        }
        let ack = if acks.is_empty() {
            Ack::none()
        } else {
            let shared = Arc::clone(&self.shared);
            let outstanding = Outstanding::new(Arc::clone(&shared));
            Ack::new(move || {
                let _outstanding = outstanding;
                let mut tracker = shared.tracker();
                for (topic, partition, epoch, first) in &acks {
                    // False when the partition was revoked meanwhile: the new owner reads it again.
                    tracker.ack(topic, *partition, *epoch, *first);
                }
            })
        };
        Envelope {
            transport: Transport::Kafka,
            records,
            dead_letters,
            ack,
        }
    }
}

/// Offsets of one partition received in one batch, within one assignment.
#[derive(Debug)]
struct Span {
    topic: String,
    partition: i32,
    /// Epoch of the partition's assignment when the span began; `None` if it was not assigned.
    epoch: Option<u64>,
    first: i64,
    last: i64,
}

/// A batch being gathered.
#[derive(Debug)]
struct Batch {
    generation: u64,
    records: Vec<argus_ingest::Record>,
    dead_letters: Vec<DeadLetter>,
    payloads: u64,
    bytes: usize,
    spans: Vec<Span>,
}

impl Batch {
    fn new(generation: u64) -> Self {
        Self {
            generation,
            records: Vec::new(),
            dead_letters: Vec::new(),
            payloads: 0,
            bytes: 0,
            spans: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.payloads == 0
    }

    fn is_full(&self, options: &SourceOptions) -> bool {
        self.payloads >= saturating_u64(options.max_messages) || self.bytes >= options.max_bytes
    }

    /// Record a received offset; `epoch` looks up the partition's assignment for a new span.
    fn track(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        epoch: impl FnOnce() -> Option<u64>,
    ) {
        if let Some(span) = self
            .spans
            .iter_mut()
            .find(|s| s.partition == partition && s.topic == topic)
        {
            span.last = offset;
            return;
        }
        let epoch = epoch();
        if epoch.is_none() {
            tracing::debug!(
                topic,
                partition,
                offset,
                "kafka message of a partition not assigned: its offset is not tracked"
            );
        }
        self.spans.push(Span {
            topic: topic.to_owned(),
            partition,
            epoch,
            first: offset,
            last: offset,
        });
    }
}

/// The periodic commit: a synchronous commit on tokio's blocking pool, at most one at a time.
#[derive(Debug, Default)]
struct PeriodicCommit {
    running: Option<tokio::task::JoinHandle<()>>,
}

impl PeriodicCommit {
    /// Start a commit of everything acknowledged, unless the previous one is still running.
    fn start(&mut self, consumer: &Arc<StreamConsumer<SourceContext>>) {
        if self.running.as_ref().is_some_and(|c| !c.is_finished()) {
            return;
        }
        let consumer = Arc::clone(consumer);
        self.running = Some(tokio::task::spawn_blocking(move || {
            consumer.context().commit_pending(&*consumer, "periodic");
        }));
    }

    /// Wait for the running commit, if any.
    async fn finish(&mut self) {
        if let Some(running) = self.running.take() {
            if let Err(error) = running.await {
                tracing::warn!(%error, "periodic kafka commit task failed");
            }
        }
    }
}

/// `topic/partition@offset, ...` for logs.
fn describe(list: &TopicPartitionList) -> String {
    let parts: Vec<String> = list
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => format!("{}/{}@{o}", e.topic(), e.partition()),
            _ => format!("{}/{}", e.topic(), e.partition()),
        })
        .collect();
    parts.join(", ")
}

/// The time of receipt.
fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn saturating_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_follow_partitions() {
        let mut batch = Batch::new(0);
        batch.track("r", 0, 10, || Some(1));
        batch.track("r", 1, 3, || Some(2));
        batch.track("r", 0, 11, || panic!("span of r/0 is open"));
        batch.track("e", 0, 7, || None);
        let spans: Vec<_> = batch
            .spans
            .iter()
            .map(|s| (s.topic.as_str(), s.partition, s.epoch, s.first, s.last))
            .collect();
        assert_eq!(
            spans,
            vec![
                ("r", 0, Some(1), 10, 11),
                ("r", 1, Some(2), 3, 3),
                ("e", 0, None, 7, 7),
            ]
        );
    }

    #[test]
    fn batches_are_full_by_count_or_bytes() {
        let options = SourceOptions {
            max_messages: 2,
            max_bytes: 100,
            ..SourceOptions::default()
        };
        let mut batch = Batch::new(0);
        assert!(batch.is_empty() && !batch.is_full(&options));
        batch.payloads = 1;
        batch.bytes = 100;
        assert!(batch.is_full(&options));
        batch.bytes = 10;
        batch.payloads = 2;
        assert!(batch.is_full(&options));
    }

    #[tokio::test]
    async fn envelopes_settle_once_acknowledged_or_dropped() {
        let shared = Arc::new(Shared::default());
        let acked = Outstanding::new(Arc::clone(&shared));
        let dropped = Outstanding::new(Arc::clone(&shared));
        let acked = Ack::new(move || drop(acked));
        let dropped = Ack::new(move || drop(dropped));
        assert_eq!(shared.outstanding.load(Ordering::Acquire), 2);
        let waiter = tokio::spawn({
            let shared = Arc::clone(&shared);
            async move { shared.settled().await }
        });
        acked.done();
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "one envelope is still out");
        drop(dropped);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap_or_else(|_| panic!("not settled"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(shared.outstanding.load(Ordering::Acquire), 0);
    }
}
