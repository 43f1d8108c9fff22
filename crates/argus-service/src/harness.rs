//! The HTTP API wired over a store for in-process tests (tower `oneshot`, no socket): the
//! service's real port implementation with a real ticket book and sink, and the pipeline's end
//! for silences. Used by this crate's API tests and by the authorization matrix of the
//! integration tests, on either backend.

use std::sync::Arc;
use std::time::Duration;

use argus_api::accounts::{add_user, NewUser};
use argus_api::{ApiState, AuthSettings};
use argus_ingest::{Envelope, Record};
use argus_model::{Registry, Timestamp, UserRole};
use argus_rules::{AlertTransition, Instance, RuleSet, Transition};
use argus_store::rows::EventRow;
use argus_store::sink::{Item, SinkOptions};
use argus_store::spool::RowBatch;
use argus_store::{Backend, Store, StoreError};
use argus_telemetry::Telemetry;
use argus_tickets::{FiredAlert, Policy, TicketBook};
use tokio::sync::{mpsc, watch};

use crate::delivery::Targets;
use crate::records::{LiveRecords, StoreAccounts};
use crate::tickets::ToBook;

/// The API over a store, with what feeds it.
#[derive(Debug)]
pub struct ApiHarness {
    /// Every route.
    pub app: axum::Router,
    /// The store behind it.
    pub store: Backend,
    /// The registry it checks against.
    pub registry: Arc<Registry>,
    /// The pipeline's receiving end: where silences go.
    pub pipeline: mpsc::Receiver<Envelope>,
    sink: mpsc::Sender<Item>,
    fired: mpsc::Sender<ToBook>,
    _stop: watch::Sender<bool>,
}

/// Why the harness could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An account could not be made.
    #[error(transparent)]
    Api(#[from] argus_api::ApiError),
    /// The alert or its ticket was not stored in time.
    #[error("alert {0} or its ticket was not stored within 10 s")]
    NotStored(String),
    /// A part of the harness has stopped.
    #[error("the harness's {0} has stopped")]
    Stopped(&'static str),
}

/// The first instance of rule `rule_id` bound to a point of the registry (in MN order).
pub fn first_instance(rules: &RuleSet, registry: &Registry, rule_id: &str) -> Option<Instance> {
    registry.points().find_map(|p| {
        rules
            .for_point(p.mn.as_str())
            .find(|i| &*i.rule_id == rule_id)
            .cloned()
    })
}

impl ApiHarness {
    /// The API over `store` (migrated here), its sink writing at once, its ticket book
    /// routing by `policy`, ticket changes delivered nowhere.
    pub async fn start(
        store: Backend,
        registry: Registry,
        policy: Policy,
        telemetry: Telemetry,
        auth: AuthSettings,
    ) -> Result<Self, HarnessError> {
        Self::start_delivering(store, registry, policy, telemetry, auth, Targets::none()).await
    }

    /// [`ApiHarness::start`], ticket changes delivered to `targets`.
    pub async fn start_delivering(
        store: Backend,
        registry: Registry,
        policy: Policy,
        telemetry: Telemetry,
        auth: AuthSettings,
        targets: Targets,
    ) -> Result<Self, HarnessError> {
        store.prepare().await?;
        let registry = Arc::new(registry);
        let (sink_tx, sink_rx) = mpsc::channel(16);
        let (stop, stopping) = watch::channel(false);
        let stopping_delivery = stopping.clone();
        let targets = Arc::new(targets);
        let options = SinkOptions {
            max_rows: 1,
            max_age: Duration::from_millis(1),
            max_backoff: Duration::from_millis(100),
            spool: None,
        };
        let (stored_tx, stored_rx) = mpsc::unbounded_channel();
        tokio::spawn(argus_store::sink::run(
            store.clone(),
            argus_store::Labels::new(&registry),
            sink_rx,
            options,
            telemetry.clone(),
            argus_store::sink::Outlets {
                conflicts: None,
                stored: Some(stored_tx),
            },
            stopping,
        ));
        let (fired_tx, fired_rx) = mpsc::channel(4);
        let (commands_tx, commands_rx) = mpsc::channel(4);
        let book = TicketBook::new(policy, &registry);
        tokio::spawn(crate::tickets::run(
            book,
            store.clone(),
            fired_rx,
            commands_rx,
            sink_tx.clone(),
            Duration::from_secs(3_600),
            Arc::clone(&targets),
        ));
        tokio::spawn(crate::delivery::run(
            store.clone(),
            targets,
            telemetry.clone(),
            stopping_delivery,
        ));
        let (pipeline_tx, pipeline) = mpsc::channel(4);
        let records = LiveRecords::new(store.clone(), commands_tx, pipeline_tx, telemetry.clone());
        let state = ApiState::new(records, Arc::clone(&registry), telemetry, auth);
        tokio::spawn(crate::stream::publish(
            store.clone(),
            stored_rx,
            Arc::clone(&state.hub),
        ));
        let app = argus_api::router(state);
        Ok(Self {
            app,
            store,
            registry,
            pipeline,
            sink: sink_tx,
            fired: fired_tx,
            _stop: stop,
        })
    }

    /// Fire an alert of `instance` (stored through the sink, ticketed by the book) and wait
    /// until it and a ticket listing it are stored; its id as 16 hex digits.
    pub async fn fire(
        &self,
        instance: &Instance,
        alert_id: u64,
        started_at: Timestamp,
        value: f64,
    ) -> Result<String, HarnessError> {
        self.transition(instance, alert_id, Transition::Fired { started_at, value })
            .await?;
        let fired = FiredAlert {
            alert_id,
            kind: instance.kind,
            severity: instance.severity,
            enterprise_id: instance.enterprise_id.to_string(),
            metric: instance.metric,
            started_at,
            muted: false,
        };
        self.fired
            .send(ToBook::Fired(vec![fired]))
            .await
            .map_err(|_| HarnessError::Stopped("ticket book"))?;
        let id = format!("{alert_id:016x}");
        for _ in 0..1_000 {
            let ticketed = !self.store.tickets_with_alert(&id).await?.is_empty();
            if ticketed && self.store.alert(&id).await?.is_some() {
                return Ok(id);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(HarnessError::NotStored(id))
    }

    /// Resolve an alert fired with [`ApiHarness::fire`] and wait until the store has it
    /// resolved.
    pub async fn resolve(
        &self,
        instance: &Instance,
        alert_id: u64,
        started_at: Timestamp,
        ended_at: Timestamp,
    ) -> Result<(), HarnessError> {
        let resolved = Transition::Resolved {
            started_at,
            ended_at,
            peak: 0.0,
            mean: 0.0,
        };
        self.transition(instance, alert_id, resolved).await?;
        let id = format!("{alert_id:016x}");
        for _ in 0..1_000 {
            if self
                .store
                .alert(&id)
                .await?
                .is_some_and(|a| a.status == "resolved")
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(HarnessError::NotStored(id))
    }

    /// Store a transition of an alert of `instance` through the sink.
    async fn transition(
        &self,
        instance: &Instance,
        alert_id: u64,
        transition: Transition,
    ) -> Result<(), HarnessError> {
        let transition = AlertTransition {
            alert_id,
            kind: instance.kind,
            instance: Arc::new(instance.clone()),
            transition,
            muted: false,
            muted_later: None,
        };
        self.sink
            .send(Item::Transitions(vec![transition]))
            .await
            .map_err(|_| HarnessError::Stopped("sink"))
    }

    /// A user of `role` with this password (12 characters at least).
    pub async fn user(
        &self,
        name: &str,
        role: UserRole,
        town: &str,
        department: &str,
        password: &str,
    ) -> Result<(), HarnessError> {
        let new = NewUser {
            name: name.to_owned(),
            display_name: format!("{name} display"),
            role,
            town: town.to_owned(),
            department: department.to_owned(),
            password: password.to_owned(),
        };
        let accounts = StoreAccounts(self.store.clone());
        add_user(&accounts, &self.registry, new, Timestamp(1_795_622_400_000)).await?;
        Ok(())
    }

    /// Play the pipeline's part for silences from now on: store each envelope's events, then
    /// acknowledge it. Returns a task counting the envelopes it stored, done once the harness
    /// is dropped.
    pub fn store_silences(&mut self) -> tokio::task::JoinHandle<usize> {
        let store = self.store.clone();
        let mut pipeline = std::mem::replace(&mut self.pipeline, mpsc::channel(1).1);
        tokio::spawn(async move {
            let mut envelopes = 0;
            while let Some(envelope) = pipeline.recv().await {
                let events = envelope
                    .records
                    .iter()
                    .filter_map(|r| match r {
                        Record::Event(e) => Some(EventRow::new(e, "api")),
                        Record::Reading(_) => None,
                    })
                    .collect();
                let mut batch = RowBatch {
                    events,
                    ..RowBatch::default()
                };
                if let Err(e) = store.insert_batch(&mut batch).await {
                    tracing::warn!("harness: cannot store a silence: {e}");
                    continue;
                }
                envelope.ack.done();
                envelopes += 1;
            }
            envelopes
        })
    }
}
