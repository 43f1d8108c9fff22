//! The hand-off from the sources to the streaming layer: one bounded channel of envelopes in
//! (backpressure: a full channel makes the sources wait), dead letters published to the
//! dead-letter topic when Kafka is on, readings, events and dead letters to the store's sink,
//! records handed to the detection dataflow, and each envelope acknowledged once what it carried
//! is durable, so the sources may advance (Kafka offsets, MQTT PUBACKs, HJ 212 replies). The
//! conflicting readings the store's sink finds come back as events for detection.

use std::time::{Duration, Instant};

use argus_ingest::{DeadLetter, Envelope};
use argus_kafka::DeadLetterSink;
use argus_model::Event;
use argus_telemetry::{RateLimited, Telemetry, LOG_EVERY};
use tokio::sync::{mpsc, watch};

use argus_ingest::Record;
use argus_store::rows::EventRow;
use argus_store::sink::Item;

use crate::detect::Detection;
use crate::ServiceError;

/// How often progress is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// Drain `rx` until every source has hung up, then let the dataflow drain. Dead letters are
/// published when Kafka is on (a few attempts, then kept in the store only, see [`publish`]);
/// an envelope whose dead letters were still being retried at shutdown is not acknowledged, so
/// its input is delivered again after a restart. Readings, events and dead letters go to the
/// store's sink with the envelope's acknowledgement (it runs once they are written); records go
/// to the detection dataflow, and so do the conflicts the sink reports (`conflicts`, first).
/// Fails if the sink or the dataflow stops.
pub async fn run(
    mut rx: mpsc::Receiver<Envelope>,
    mut conflicts: mpsc::UnboundedReceiver<Vec<Event>>,
    dlq: Option<DeadLetterSink>,
    telemetry: Telemetry,
    sink: mpsc::Sender<Item>,
    detection: Detection,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ServiceError> {
    let (mut records, mut letters, mut envelopes) = (0_u64, 0_u64, 0_u64);
    let mut last_progress = Instant::now();
    let mut refused_log = RateLimited::new(LOG_EVERY);
    let readiness = telemetry.readiness.clone();
    let mut reporting = true;
    loop {
        let envelope = tokio::select! {
            biased;
            found = conflicts.recv(), if reporting => {
                match found {
                    Some(events) => detection.send(events.into_iter().map(Record::Event).collect()).await?,
                    None => reporting = false,
                }
                continue;
            }
            envelope = rx.recv() => envelope,
        };
        let Some(envelope) = envelope else { break };
        readiness.pipeline_busy();
        if let Some(first) = envelope.dead_letters.first() {
            let n = envelope.dead_letters.len() as u64;
            if let Some(count) = refused_log.note(n, Instant::now()) {
                // User text as Debug: quoted, control characters escaped.
                tracing::warn!(
                    count,
                    reason = first.reason.as_str(),
                    origin = ?first.origin,
                    detail = ?first.detail,
                    "inputs refused since the last line (kept in the store's rejected_inputs table); the first of these"
                );
            }
        }
        let published = match &dlq {
            Some(dlq) if !envelope.dead_letters.is_empty() => {
                publish(dlq, &envelope.dead_letters, &telemetry, &mut shutdown).await
            }
            _ => true,
        };
        if !published {
            readiness.pipeline_idle();
            continue; // not acknowledged: redelivered later
        }
        records += envelope.records.len() as u64;
        letters += envelope.dead_letters.len() as u64;
        envelopes += 1;
        let transport = envelope.transport.as_str();
        let (mut readings, mut events) = (Vec::new(), Vec::new());
        for record in &envelope.records {
            match record {
                Record::Reading(r) => readings.push(r.clone()),
                Record::Event(e) => events.push(EventRow::new(e, transport)),
            }
        }
        let item = Item::Input {
            readings,
            rejected: envelope.dead_letters,
            events,
            ack: envelope.ack,
        };
        sink.send(item)
            .await
            .map_err(|_| ServiceError::Stopped("store sink"))?;
        detection.send(envelope.records).await?;
        readiness.pipeline_idle();
        if last_progress.elapsed() >= PROGRESS_EVERY {
            tracing::info!(
                envelopes,
                records,
                dead_letters = letters,
                "pipeline progress"
            );
            last_progress = Instant::now();
        }
    }
    tracing::info!(
        envelopes,
        records,
        dead_letters = letters,
        "pipeline drained; waiting for detection to drain"
    );
    detection.finish().await?;
    tracing::info!("detection drained");
    Ok(())
}

/// Attempts at publishing one envelope's dead letters before they are kept in the store only.
const PUBLISH_ATTEMPTS: u32 = 5;

/// Publish an envelope's dead letters, retrying with backoff a few times ([`PUBLISH_ATTEMPTS`],
/// about 6 s): then they are given up on for the topic (counted, logged) and kept in the
/// store's `rejected_inputs` table only, so one letter the broker refuses never holds back the inputs
/// behind it. Returns false only when shutdown interrupts the retries (the envelope is then not
/// acknowledged and its input comes again after a restart).
async fn publish(
    dlq: &DeadLetterSink,
    letters: &[DeadLetter],
    telemetry: &Telemetry,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let mut backoff = Duration::from_millis(200);
    for attempt in 1..=PUBLISH_ATTEMPTS {
        let error = match dlq.publish(letters).await {
            Ok(()) => return true,
            Err(e) => e,
        };
        if attempt == PUBLISH_ATTEMPTS {
            telemetry
                .ingest
                .dlq_unpublished
                .inc_by(letters.len() as u64);
            tracing::error!(
                count = letters.len(),
                attempts = PUBLISH_ATTEMPTS,
                "dead letters not published, kept in the store's rejected_inputs table only: {error}"
            );
            return true;
        }
        tracing::warn!(retry_in = ?backoff, count = letters.len(), "cannot publish dead letters: {error}");
        if *shutdown.borrow() {
            tracing::warn!(
                "shutting down: dead letters left unacknowledged, their inputs will be redelivered"
            );
            return false;
        }
        tokio::select! {
            _ = shutdown.changed() => {}
            () = tokio::time::sleep(backoff) => {}
        }
        backoff *= 2;
    }
    true
}
