//! The hand-off from the sources to the streaming layer: one bounded channel of envelopes in
//! (backpressure: a full channel makes the sources wait), dead letters published to the
//! dead-letter topic, records handed on, and each envelope acknowledged once what it carried is
//! safe, so the sources may advance (Kafka offsets, MQTT PUBACKs, HJ 212 replies).

use std::time::{Duration, Instant};

use argus_ingest::{DeadLetter, Envelope};
use argus_kafka::DeadLetterSink;
use tokio::sync::{mpsc, watch};

/// How often progress is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// Drain `rx` until every source has hung up. Dead letters are published (retried with backoff
/// while the broker is unreachable); an envelope whose dead letters could not be published by
/// shutdown is not acknowledged, so its input is delivered again after a restart.
pub async fn run(
    mut rx: mpsc::Receiver<Envelope>,
    dlq: DeadLetterSink,
    mut shutdown: watch::Receiver<bool>,
) {
    let (mut records, mut letters, mut envelopes) = (0_u64, 0_u64, 0_u64);
    let mut last_progress = Instant::now();
    while let Some(envelope) = rx.recv().await {
        if !envelope.dead_letters.is_empty()
            && !publish(&dlq, &envelope.dead_letters, &mut shutdown).await
        {
            continue; // not acknowledged: redelivered later
        }
        // The streaming layer (detection) takes the records here. Until it exists, handing them
        // over ends at this point, and the acknowledgement says so.
        records += envelope.records.len() as u64;
        letters += envelope.dead_letters.len() as u64;
        envelopes += 1;
        envelope.ack.done();
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
        "pipeline drained"
    );
}

async fn publish(
    dlq: &DeadLetterSink,
    letters: &[DeadLetter],
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let mut backoff = Duration::from_millis(200);
    loop {
        match dlq.publish(letters).await {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(retry_in = ?backoff, count = letters.len(), "cannot publish dead letters: {e}");
                if *shutdown.borrow() {
                    tracing::warn!("shutting down: dead letters left unacknowledged, their inputs will be redelivered");
                    return false;
                }
                tokio::select! {
                    _ = shutdown.changed() => {}
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}
