//! Delivery of ticket changes to the teams responsible and to government systems: every line
//! of a ticket's record gets an outbox row per target (each webhook of its department, and of
//! its town's team; the Kafka tickets topic when Kafka is on), written by the sink with the
//! line itself (before it, so a delivery never names a change that is not on record twice
//! over, and a change is never on record without its deliveries). [`run`] sends what is due,
//! in order per target, each attempt and its outcome kept in `deliveries`; a failure is tried
//! again after an exponential backoff with jitter until `give_up_after`.
//!
//! A webhook gets `POST <url>` with the JSON body `{"idempotency_key", "ticket": TicketView
//! (as it stands when sent), "change": TicketEventView (the line as stored, hash included)}`
//! and the headers `Idempotency-Key` (`<ticket id>-<seq>`, the same on every attempt and for
//! every target), `X-Argus-Key-Id`, `X-Argus-Timestamp` (Unix seconds) and
//! `X-Argus-Signature: sha256=<hex HMAC-SHA256 over "<timestamp>.<body>">`. Any 2xx is a
//! delivery. A crash after the receiver answered and before the outcome is kept sends the
//! change again, with the same idempotency key: at least once, repeats recognisable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use argus_config::{DeliverySettings, KafkaSettings};
use argus_model::{Registry, Timestamp};
use argus_store::rows::{DeliveryRow, OutboxRow};
use argus_store::{Backend, Store};
use argus_telemetry::Telemetry;
use axum::body::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::Sha256;
use tokio::sync::watch;

use crate::ServiceError;

/// How often the outbox is looked at for what is due.
pub const POLL: Duration = Duration::from_millis(250);
/// Rows read from the outbox at a time.
const BATCH: u32 = 500;
/// A delivery whose change is not on record this long after it was made is given up: the
/// change never landed (a crash between the two writes).
const UNRECORDED_AFTER_MS: i64 = 10 * 60_000;

/// A receiver of one team's or department's ticket changes.
pub struct Webhook {
    name: String,
    url: axum::http::Uri,
    department: String,
    town: Option<String>,
    key_id: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("department", &self.department)
            .field("town", &self.town)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Where ticket changes go, and how hard Argus tries.
#[derive(Debug)]
pub struct Targets {
    webhooks: Vec<Webhook>,
    kafka: Option<argus_kafka::Publisher>,
    retry_initial: Duration,
    retry_max: Duration,
    give_up_after: Duration,
    timeout: Duration,
}

/// Why a target could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// A webhook names what the registry does not hold.
    #[error("webhook {webhook}: {reason}")]
    Invalid {
        /// The webhook.
        webhook: String,
        /// What is wrong.
        reason: String,
    },
    /// A webhook's key could not be read.
    #[error("webhook {webhook}: cannot read its key {path}: {source}")]
    Key {
        /// The webhook.
        webhook: String,
        /// The key file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The Kafka producer could not be made.
    #[error(transparent)]
    Kafka(#[from] argus_kafka::KafkaError),
}

impl Targets {
    /// No targets: changes are recorded, never delivered.
    pub fn none() -> Self {
        Self {
            webhooks: Vec::new(),
            kafka: None,
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            give_up_after: Duration::from_secs(72 * 3_600),
            timeout: Duration::from_secs(10),
        }
    }

    /// The targets of `settings`, checked against the registry, their keys read; the tickets
    /// topic when `kafka` is given (Kafka on).
    pub fn load(
        settings: &DeliverySettings,
        kafka: Option<&KafkaSettings>,
        registry: &Registry,
    ) -> Result<Self, TargetError> {
        let mut webhooks = Vec::new();
        for w in &settings.webhooks {
            let invalid = |reason: String| TargetError::Invalid {
                webhook: w.name.clone(),
                reason,
            };
            if registry.department(&w.department).is_none() {
                return Err(invalid(format!("unknown department {:?}", w.department)));
            }
            if let Some(town) = &w.town {
                if registry.team(town, &w.department).is_none() {
                    return Err(invalid(format!(
                        "no team of department {:?} in town {town:?}",
                        w.department
                    )));
                }
            }
            let url: axum::http::Uri = w
                .url
                .parse()
                .map_err(|e| invalid(format!("bad url {:?}: {e}", w.url)))?;
            let secret = std::fs::read(&w.secret_file).map_err(|source| TargetError::Key {
                webhook: w.name.clone(),
                path: w.secret_file.clone(),
                source,
            })?;
            let secret = secret.trim_ascii().to_vec();
            if secret.len() < 16 {
                return Err(invalid(format!(
                    "its key {} holds {} bytes; at least 16 are needed",
                    w.secret_file.display(),
                    secret.len()
                )));
            }
            webhooks.push(Webhook {
                name: w.name.clone(),
                url,
                department: w.department.clone(),
                town: w.town.clone(),
                key_id: w.key_id.clone(),
                secret,
            });
        }
        let kafka = kafka
            .map(|k| argus_kafka::Publisher::new(k, &k.topics.tickets, settings.timeout))
            .transpose()?;
        Ok(Self {
            webhooks,
            kafka,
            retry_initial: settings.retry_initial,
            retry_max: settings.retry_max,
            give_up_after: settings.give_up_after,
            timeout: settings.timeout,
        })
    }

    /// Whether there is anywhere to deliver to.
    pub fn is_empty(&self) -> bool {
        self.webhooks.is_empty() && self.kafka.is_none()
    }

    /// The outbox rows of line `seq` of ticket `ticket_id` (of `town` and `department`), made
    /// at `at_ms`: one per target that gets it.
    pub fn outbox(
        &self,
        town: &str,
        department: &str,
        ticket_id: &str,
        seq: u32,
        at_ms: i64,
    ) -> Vec<OutboxRow> {
        let mut rows: Vec<OutboxRow> = self
            .webhooks
            .iter()
            .filter(|w| w.department == department && w.town.as_deref().is_none_or(|t| t == town))
            .map(|w| OutboxRow::pending(&w.name, ticket_id, seq, at_ms))
            .collect();
        if let Some(kafka) = &self.kafka {
            rows.push(OutboxRow::pending(
                &kafka_target(kafka.topic()),
                ticket_id,
                seq,
                at_ms,
            ));
        }
        rows
    }

    /// The wait before attempt `attempts + 1`: the initial wait doubled per failure, capped,
    /// then a random point between half of it and all of it.
    fn backoff(&self, attempts: u32) -> Duration {
        let doubled = self
            .retry_initial
            .saturating_mul(1_u32 << attempts.saturating_sub(1).min(20));
        let full = doubled.min(self.retry_max);
        let mut random = [0_u8; 8];
        // Without randomness, no jitter: the full wait.
        let fraction = getrandom::getrandom(&mut random)
            .map(|()| (u64::from_le_bytes(random) >> 11) as f64 / (1_u64 << 53) as f64)
            .unwrap_or(1.0);
        full.mul_f64(0.5 + 0.5 * fraction)
    }
}

/// The target name of the tickets topic.
fn kafka_target(topic: &str) -> String {
    format!("kafka:{topic}")
}

/// `sha256=<hex>` of HMAC-SHA256 with `secret` over `<timestamp>.<body>`.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC takes a key of any length.
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

fn http_client() -> HttpClient {
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match builder.with_native_roots() {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("no system CA certificates ({e}): https webhooks will fail");
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                tokio_rustls::rustls::ClientConfig::builder()
                    .with_root_certificates(tokio_rustls::rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            )
        }
    };
    let https = builder.https_or_http().enable_http1().build();
    Client::builder(TokioExecutor::new()).build(https)
}

fn now_ms() -> i64 {
    Timestamp::from_system_time(SystemTime::now()).as_millis()
}

/// What one attempt came to.
struct Outcome {
    status: u16,
    error: Option<String>,
}

/// Send what is due, until `shutdown` turns true; at once done when there are no targets.
pub async fn run(
    store: Backend,
    targets: Arc<Targets>,
    telemetry: Telemetry,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ServiceError> {
    if targets.is_empty() {
        return Ok(());
    }
    let client = http_client();
    tracing::info!(
        webhooks = targets.webhooks.len(),
        kafka = targets.kafka.as_ref().map(|k| k.topic()),
        "delivering ticket changes"
    );
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        match store.due_deliveries(now_ms(), BATCH).await {
            Ok(due) if !due.is_empty() => {
                let mut by_target: BTreeMap<String, Vec<OutboxRow>> = BTreeMap::new();
                for row in due {
                    by_target.entry(row.target.clone()).or_default().push(row);
                }
                let rounds = by_target
                    .into_values()
                    .map(|rows| deliver_in_order(&store, &targets, &client, &telemetry, rows));
                futures_util::future::join_all(rounds).await;
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("cannot read the delivery outbox: {e}"),
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            changed = shutdown.changed() => {
                // The service is gone: nothing more to deliver here.
                if changed.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

/// One target's due rows, in order, stopping at the first that fails (the next round takes
/// it up again when it is due: a team gets its changes in the order they were made).
async fn deliver_in_order(
    store: &Backend,
    targets: &Targets,
    client: &HttpClient,
    telemetry: &Telemetry,
    rows: Vec<OutboxRow>,
) {
    for row in rows {
        if !deliver(store, targets, client, telemetry, row).await {
            return;
        }
    }
}

/// Attempt one delivery and keep its outcome; whether it was delivered.
async fn deliver(
    store: &Backend,
    targets: &Targets,
    client: &HttpClient,
    telemetry: &Telemetry,
    mut row: OutboxRow,
) -> bool {
    let started = Instant::now();
    let at = now_ms();
    let kind = if row.target.starts_with("kafka:") {
        "kafka"
    } else {
        "webhook"
    };
    // A change not on record long after it was made never landed: nothing to deliver, ever.
    let mut unrecorded = false;
    let outcome = match body(store, &row).await {
        Ok(Some(body)) => send(targets, client, &row, body).await,
        Ok(None) => {
            unrecorded = at - row.created_ms > UNRECORDED_AFTER_MS;
            Outcome {
                status: 0,
                error: Some("the change is not on record (yet)".to_owned()),
            }
        }
        Err(e) => Outcome {
            status: 0,
            error: Some(format!("cannot read the change: {e}")),
        },
    };
    row.attempts += 1;
    let verdict = match &outcome.error {
        None => {
            row.state = "delivered".to_owned();
            row.last_error.clear();
            row.version = 2 * row.attempts + 1;
            "delivered"
        }
        Some(error) => {
            row.last_error.clone_from(error);
            let expired = u128::try_from(at.saturating_sub(row.created_ms)).unwrap_or(0)
                >= targets.give_up_after.as_millis();
            if expired || unrecorded {
                row.state = "failed".to_owned();
                row.version = 2 * row.attempts + 1;
                "failed"
            } else {
                let wait = targets.backoff(row.attempts);
                row.next_ms = at + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
                row.version = 2 * row.attempts;
                "retry"
            }
        }
    };
    let attempt = DeliveryRow {
        delivery_id: row.delivery_id.clone(),
        target: row.target.clone(),
        ticket_id: row.ticket_id.clone(),
        seq: row.seq,
        attempt: row.attempts,
        at_ms: at,
        outcome: verdict.to_owned(),
        status: outcome.status,
        error: outcome.error.clone().unwrap_or_default(),
        duration_ms: u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX),
    };
    telemetry
        .api
        .deliveries
        .with_label_values(&[kind, verdict])
        .inc();
    // A failing receiver is told of once, then when Argus gives up: not once per retry.
    if verdict == "failed" || (verdict == "retry" && row.attempts == 1) {
        tracing::warn!(
            delivery = %row.delivery_id,
            attempt = row.attempts,
            outcome = verdict,
            error = %attempt.error,
            "ticket change not delivered"
        );
    } else {
        tracing::debug!(delivery = %row.delivery_id, attempt = row.attempts, outcome = verdict, "delivery attempt");
    }
    if let Err(e) = store.record_attempt(&row, &attempt).await {
        // Kept pending: sent again later, with the same idempotency key.
        tracing::warn!(delivery = %row.delivery_id, "cannot record a delivery attempt: {e}");
        return false;
    }
    verdict == "delivered"
}

/// The JSON a target gets for an outbox row, if its change is on record.
async fn body(
    store: &Backend,
    row: &OutboxRow,
) -> Result<Option<Vec<u8>>, argus_store::StoreError> {
    let line = store
        .ticket_events(&row.ticket_id)
        .await?
        .into_iter()
        .find(|l| l.seq == row.seq);
    let (Some(line), Some(ticket)) = (line, store.ticket(&row.ticket_id).await?) else {
        return Ok(None);
    };
    let body = serde_json::json!({
        "idempotency_key": row.idempotency_key,
        "ticket": ticket.view(),
        "change": line.view(),
    });
    Ok(Some(body.to_string().into_bytes()))
}

/// Send a body to a row's target.
async fn send(targets: &Targets, client: &HttpClient, row: &OutboxRow, body: Vec<u8>) -> Outcome {
    if let Some(kafka) = targets
        .kafka
        .as_ref()
        .filter(|k| kafka_target(k.topic()) == row.target)
    {
        return match kafka.send(&row.ticket_id, &body).await {
            Ok(()) => Outcome {
                status: 0,
                error: None,
            },
            Err(e) => Outcome {
                status: 0,
                error: Some(e.to_string()),
            },
        };
    }
    let Some(hook) = targets.webhooks.iter().find(|w| w.name == row.target) else {
        return Outcome {
            status: 0,
            error: Some(format!("no target {:?} is configured", row.target)),
        };
    };
    let timestamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let request = axum::http::Request::post(hook.url.clone())
        .header("content-type", "application/json")
        .header("idempotency-key", &row.idempotency_key)
        .header("x-argus-key-id", &hook.key_id)
        .header("x-argus-timestamp", timestamp.to_string())
        .header(
            "x-argus-signature",
            signature(&hook.secret, timestamp, &body),
        )
        .body(Full::new(Bytes::from(body)));
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            return Outcome {
                status: 0,
                error: Some(format!("cannot build the request: {e}")),
            }
        }
    };
    match tokio::time::timeout(targets.timeout, client.request(request)).await {
        Err(_) => Outcome {
            status: 0,
            error: Some(format!("no answer within {} s", targets.timeout.as_secs())),
        },
        Ok(Err(e)) => Outcome {
            status: 0,
            error: Some(format!("cannot reach {}: {e}", hook.url)),
        },
        Ok(Ok(response)) => {
            let status = response.status();
            Outcome {
                status: status.as_u16(),
                error: (!status.is_success()).then(|| format!("answered {status}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_and_body() {
        // Computed independently: Python's hmac.new(b"Jefe", b'1765000000.{"a":1}', sha256).
        assert_eq!(
            signature(b"Jefe", 1_765_000_000, br#"{"a":1}"#),
            "sha256=6bb3cb1699279da80009a27df666cb60e96ff2b17ba0bd46bf75653d2f22889a"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let targets = Targets {
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(1),
            ..Targets::none()
        };
        for (attempts, full_ms) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1_000),
            (40, 1_000),
        ] {
            for _ in 0..50 {
                let wait = targets.backoff(attempts).as_millis();
                assert!(
                    (full_ms / 2..=full_ms).contains(&wait),
                    "attempt {attempts}: {wait} ms"
                );
            }
        }
    }
}
