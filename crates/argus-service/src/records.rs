//! The API's port implemented by the running service: reads straight from the store, ticket
//! changes through the ticket book and silences into the pipeline as maintenance notices, each
//! answered once durable in the store; acknowledgements into the store.

use std::time::SystemTime;

use argus_api::{Accounts, Acknowledge, ApiError, ChangeTicket, Records, Silence};
use argus_ingest::{Ack, Envelope, Record, Transport};
use argus_model::{
    AlertQuery, AlertView, Credential, Event, EventKind, HourView, ReadingView, SourceId,
    TicketEventView, TicketQuery, TicketView, Timestamp, User,
};
use argus_store::rows::{CredentialRow, TicketEventRow, UserRow};
use argus_store::{Backend, Store, StoreError};
use argus_telemetry::Telemetry;
use tokio::sync::{mpsc, oneshot};

use crate::tickets::{Command, Refused};

/// The service behind the HTTP API.
#[derive(Debug, Clone)]
pub struct LiveRecords {
    store: Backend,
    tickets: mpsc::Sender<Command>,
    pipeline: mpsc::Sender<Envelope>,
    telemetry: Telemetry,
    /// Silences with an idempotency key, one at a time (shared by clones).
    silencing: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl LiveRecords {
    /// Records over `store`, ticket changes to the book behind `tickets`, silences into
    /// `pipeline`.
    pub fn new(
        store: Backend,
        tickets: mpsc::Sender<Command>,
        pipeline: mpsc::Sender<Envelope>,
        telemetry: Telemetry,
    ) -> Self {
        Self {
            store,
            tickets,
            pipeline,
            telemetry,
            silencing: std::sync::Arc::default(),
        }
    }
}

impl LiveRecords {
    /// A line of a ticket's record as the store keeps it (its hash set), or as given when the
    /// store cannot say.
    async fn stored_line(&self, line: TicketEventRow) -> TicketEventRow {
        match self.store.ticket_events(&line.ticket_id).await {
            Ok(record) => record
                .into_iter()
                .find(|l| l.seq == line.seq)
                .unwrap_or(line),
            Err(e) => {
                tracing::warn!(ticket = %line.ticket_id, "cannot read back a stored ticket change: {e}");
                line
            }
        }
    }
}

fn unavailable(e: &StoreError) -> ApiError {
    ApiError::Unavailable(format!("the store cannot answer: {e}"))
}

fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

impl Records for LiveRecords {
    async fn alert(&self, alert_id: &str) -> Result<Option<(AlertView, Vec<AlertView>)>, ApiError> {
        let Some(alert) = self
            .store
            .alert(alert_id)
            .await
            .map_err(|e| unavailable(&e))?
        else {
            return Ok(None);
        };
        let events = self
            .store
            .alert_events(alert_id)
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(Some((
            alert.view(),
            events.iter().map(|e| e.view()).collect(),
        )))
    }

    async fn acknowledge(&self, ack: Acknowledge) -> Result<AlertView, ApiError> {
        let ack = argus_store::Acknowledgement {
            alert_id: ack.alert_id,
            actor: ack.actor,
            note: ack.note,
            at: now(),
            request_key: ack.request.as_ref().map(stored_key).unwrap_or_default(),
        };
        match self.store.acknowledge(&ack).await {
            Ok(alert) => {
                self.telemetry.store.acknowledgements.inc();
                tracing::info!(alert = %alert.alert_id, actor = ?ack.actor, note = ?ack.note, "alert acknowledged");
                Ok(alert.view())
            }
            Err(e @ StoreError::UnknownAlert(_)) => Err(ApiError::NotFound(e.to_string())),
            Err(e @ StoreError::AlreadyAcknowledged { .. }) => {
                Err(ApiError::Conflict(e.to_string()))
            }
            Err(e @ StoreError::RequestKeyReused { .. }) => {
                Err(ApiError::Unprocessable(e.to_string()))
            }
            Err(e) => Err(unavailable(&e)),
        }
    }

    async fn ticket(
        &self,
        ticket_id: &str,
    ) -> Result<Option<(TicketView, Vec<TicketEventView>)>, ApiError> {
        let Some(ticket) = self
            .store
            .ticket(ticket_id)
            .await
            .map_err(|e| unavailable(&e))?
        else {
            return Ok(None);
        };
        let record = self
            .store
            .ticket_events(ticket_id)
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(Some((
            ticket.view(),
            record.iter().map(|e| e.view()).collect(),
        )))
    }

    async fn change_ticket(&self, change: ChangeTicket) -> Result<TicketEventView, ApiError> {
        use argus_tickets::TicketError;
        let stopped = || ApiError::Unavailable("tickets have stopped".to_owned());
        // A retry of a change already recorded (before a crash, say): its first answer.
        if let Some(request) = &change.request {
            let id = format!("{:016x}", change.ticket_id);
            let earlier = self
                .store
                .ticket_event_by_request(&id, &request.key)
                .await
                .map_err(|e| unavailable(&e))?;
            if let Some(row) = earlier {
                return match same_key(request).matches(&row.request_key) {
                    Some(true) => Ok(row.view()),
                    _ => Err(key_reused(&request.key)),
                };
            }
        }
        let (reply, answer) = oneshot::channel();
        let command = Command {
            id: change.ticket_id,
            change: change.change,
            request: change.request.as_ref().map(stored_key),
            reply,
        };
        self.tickets.send(command).await.map_err(|_| stopped())?;
        let answer = match tokio::time::timeout(DURABLE_WITHIN, answer).await {
            Ok(answer) => answer.map_err(|_| stopped())?,
            Err(_) => return Err(not_yet_durable()),
        };
        match answer {
            // The line as stored (with its place in the record's chain), as a retry gets it.
            Ok(event) => Ok(self.stored_line(TicketEventRow::new(&event)).await.view()),
            Err(Refused::KeyReused(key)) => Err(key_reused(&key)),
            Err(Refused::Ticket(e @ TicketError::UnknownTicket(_))) => {
                Err(ApiError::NotFound(e.to_string()))
            }
            Err(Refused::Ticket(e @ TicketError::NotAllowed { .. })) => {
                Err(ApiError::Forbidden(e.to_string()))
            }
            Err(Refused::Ticket(e)) => Err(ApiError::Conflict(e.to_string())),
        }
    }

    async fn silence(&self, silence: Silence) -> Result<(), ApiError> {
        // Keyed silences one at a time: a retry waits for the first, then finds it stored.
        let _one_at_a_time = match &silence.request {
            Some(_) => Some(self.silencing.lock().await),
            None => None,
        };
        let request = silence.request.as_ref().map(same_key);
        if let Some(request) = &request {
            let earlier = self
                .store
                .silence_by_request(&request.key)
                .await
                .map_err(|e| unavailable(&e))?;
            if let Some(earlier) = earlier {
                return match request.matches(&earlier.request_key) {
                    Some(true) => Ok(()),
                    _ => Err(key_reused(&request.key)),
                };
            }
        }
        let at = now();
        tracing::info!(
            enterprise = %silence.enterprise,
            from = %silence.from.to_rfc3339(),
            to = %silence.to.to_rfc3339(),
            actor = ?silence.actor,
            reason = ?silence.reason,
            "silence set"
        );
        let event = Event {
            enterprise_id: Some(silence.enterprise),
            source: None,
            event_time: at,
            receive_time: at,
            kind: EventKind::MaintenanceNotice {
                from: silence.from,
                to: silence.to,
                points: silence
                    .points
                    .iter()
                    .map(|p| SourceId::from(p.as_str()))
                    .collect(),
                reason: format!("silence by {}: {}", silence.actor, silence.reason),
                request: request.map(|r| r.stored()).unwrap_or_default(),
            },
        };
        let (stored, durable) = oneshot::channel();
        let envelope = Envelope {
            transport: Transport::Api,
            records: vec![Record::Event(event)],
            dead_letters: Vec::new(),
            ack: Ack::new(move || {
                let _ = stored.send(());
            }),
        };
        let stopped = || ApiError::Unavailable("the pipeline has stopped".to_owned());
        self.pipeline.send(envelope).await.map_err(|_| stopped())?;
        // Answered once the silence is in the store: it holds across a crash.
        match tokio::time::timeout(DURABLE_WITHIN, durable).await {
            Ok(stored) => stored.map_err(|_| stopped()),
            Err(_) => Err(not_yet_durable()),
        }
    }

    async fn tickets_with_alert(&self, alert_id: &str) -> Result<Vec<TicketView>, ApiError> {
        let rows = self
            .store
            .tickets_with_alert(alert_id)
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(rows.iter().map(|r| r.view()).collect())
    }

    async fn find_alerts(&self, query: &AlertQuery) -> Result<Vec<AlertView>, ApiError> {
        let rows = self
            .store
            .find_alerts(query)
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(rows.iter().map(|r| r.view()).collect())
    }

    async fn find_tickets(&self, query: &TicketQuery) -> Result<Vec<TicketView>, ApiError> {
        let rows = self
            .store
            .find_tickets(query)
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(rows.iter().map(|r| r.view()).collect())
    }

    async fn ticket_enterprises(
        &self,
        department: &str,
        town: Option<&str>,
    ) -> Result<Vec<String>, ApiError> {
        self.store
            .ticket_enterprises(department, town)
            .await
            .map_err(|e| unavailable(&e))
    }

    async fn readings(
        &self,
        point: &str,
        metric: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<ReadingView>, ApiError> {
        let rows = self
            .store
            .readings(point, from, to)
            .await
            .map_err(|e| unavailable(&e))?;
        let mut readings: Vec<(i64, ReadingView)> = rows
            .into_iter()
            .filter(|r| r.metric == metric && r.is_real_time())
            .map(|r| {
                let view = ReadingView {
                    at: Timestamp(r.event_ms).to_rfc3339(),
                    value: r.value,
                    flag: r.flag,
                };
                (r.event_ms, view)
            })
            .collect();
        readings.sort_by_key(|(ms, _)| *ms);
        Ok(readings.into_iter().map(|(_, v)| v).collect())
    }

    async fn hourly(
        &self,
        point: &str,
        metric: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<HourView>, ApiError> {
        let rows = self
            .store
            .hourly(point, metric, from, to)
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(rows
            .into_iter()
            .map(|h| HourView {
                hour: Timestamp(h.hour_ms).to_rfc3339(),
                avg: h.avg,
                min: h.min,
                max: h.max,
                samples: h.samples,
            })
            .collect())
    }
}

impl Accounts for LiveRecords {
    async fn user(&self, name: &str) -> Result<Option<User>, ApiError> {
        StoreAccounts(self.store.clone()).user(name).await
    }
    async fn users(&self) -> Result<Vec<User>, ApiError> {
        StoreAccounts(self.store.clone()).users().await
    }
    async fn put_user(&self, user: &User) -> Result<(), ApiError> {
        StoreAccounts(self.store.clone()).put_user(user).await
    }
    async fn credential(&self, secret_hash: &str) -> Result<Option<Credential>, ApiError> {
        StoreAccounts(self.store.clone())
            .credential(secret_hash)
            .await
    }
    async fn credentials_of(&self, user: &str) -> Result<Vec<Credential>, ApiError> {
        StoreAccounts(self.store.clone()).credentials_of(user).await
    }
    async fn put_credential(&self, credential: &Credential) -> Result<(), ApiError> {
        StoreAccounts(self.store.clone())
            .put_credential(credential)
            .await
    }
}

/// Users and credentials kept in the store: the API's accounts, and `argus user`'s.
#[derive(Debug, Clone)]
pub struct StoreAccounts(pub Backend);

impl Accounts for StoreAccounts {
    async fn user(&self, name: &str) -> Result<Option<User>, ApiError> {
        let row = self.0.user(name).await.map_err(|e| unavailable(&e))?;
        Ok(row.and_then(|r| r.to_user()))
    }

    async fn users(&self) -> Result<Vec<User>, ApiError> {
        let rows = self.0.users().await.map_err(|e| unavailable(&e))?;
        Ok(rows.iter().filter_map(UserRow::to_user).collect())
    }

    async fn put_user(&self, user: &User) -> Result<(), ApiError> {
        self.0
            .put_user(&UserRow::new(user))
            .await
            .map_err(|e| unavailable(&e))
    }

    async fn credential(&self, secret_hash: &str) -> Result<Option<Credential>, ApiError> {
        let row = self
            .0
            .credential(secret_hash)
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(row.and_then(|r| r.to_credential()))
    }

    async fn credentials_of(&self, user: &str) -> Result<Vec<Credential>, ApiError> {
        let rows = self
            .0
            .credentials_of(user)
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(rows
            .iter()
            .filter_map(CredentialRow::to_credential)
            .collect())
    }

    async fn put_credential(&self, credential: &Credential) -> Result<(), ApiError> {
        self.0
            .put_credential(&CredentialRow::new(credential))
            .await
            .map_err(|e| unavailable(&e))
    }
}

/// The store's form of a request's idempotency key.
fn same_key(request: &argus_api::IdempotencyKey) -> argus_store::RequestKey {
    argus_store::RequestKey {
        key: request.key.clone(),
        fingerprint: request.fingerprint,
    }
}

/// As stored on the row of the change.
fn stored_key(request: &argus_api::IdempotencyKey) -> String {
    same_key(request).stored()
}

fn key_reused(key: &str) -> ApiError {
    ApiError::Unprocessable(format!(
        "idempotency key {key:?} was used for another request"
    ))
}

/// How long a change a person made may take to become durable before the answer says so: the
/// store unreachable without a spool.
const DURABLE_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

fn not_yet_durable() -> ApiError {
    ApiError::Unavailable(format!(
        "the change is made but not yet stored after {} s (the store is unreachable); check its record before trying again",
        DURABLE_WITHIN.as_secs()
    ))
}
