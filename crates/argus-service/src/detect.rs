//! Detection in the running service: the pipeline's records fanned out to the local timely
//! workers (each source always to the same worker, so its watermark is kept in one place), and
//! the workers' reports turned into logs, metrics, stored transitions and tickets. The dataflow
//! is not where inputs are acknowledged: the store's sink is. Its state is checkpointed (when a
//! checkpoint folder is configured): each worker starts from its checkpoint and the stored
//! inputs from the checkpoint's event time on, and a checkpoint is saved only once the
//! transitions and tickets before it are durable.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use argus_config::Settings;
use argus_dataflow::live::{run_live, Feed, LiveOptions, Observer, Progress};
use argus_dataflow::{AlertTransition, Checkpoint, Input, WatermarkParams};
use argus_ingest::Ack;
use argus_ingest::Record;
use argus_rules::{RuleSet, Transition};
use argus_store::sink::Item;
use argus_telemetry::Telemetry;
use argus_tickets::FiredAlert;
use tokio::sync::mpsc;

use crate::checkpoints::{CheckpointDir, CheckpointWriter};
use crate::tickets::ToBook;
use crate::ServiceError;
use argus_telemetry::{RateLimited, LOG_EVERY};

/// Set once a timely thread has said a process of the cluster is gone.
static PEER_GONE: AtomicBool = AtomicBool::new(false);

/// Route panics through the log (install once, in the binary): those of timely's threads when a
/// process of the detection cluster is gone are an expected end, said once as one error line
/// with what to do (and detection's end then names the cause); any other panic goes to the
/// default hook (a bug).
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if argus_dataflow::peer_gone(&message) {
            if !PEER_GONE.swap(true, Ordering::SeqCst) {
                tracing::error!(
                    cause = %message,
                    "a process of the detection cluster is gone: detection stops, and Argus with \
                     it; start every process of the cluster again (a supervisor does: \
                     deploy/systemd/argus@.service), each resumes from its checkpoint"
                );
            }
            return;
        }
        default(info);
    }));
}

/// Parts waiting for a worker, per worker: small, so a slow dataflow slows the sources down.
const WORKER_QUEUE: usize = 64;

/// How the dataflow runs in this process: timely workers and, for a cluster, the processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// Worker threads in this process.
    pub workers: usize,
    /// Processes in the cluster (1: this one alone).
    pub processes: usize,
    /// This process's index in the cluster.
    pub process: usize,
    /// The cluster's host file (one `host:port` a line, process 0 first).
    pub hostfile: Option<std::path::PathBuf>,
}

impl Cluster {
    fn timely_config(&self) -> Result<timely::Config, ServiceError> {
        let mut args = vec![
            "argus".to_owned(),
            "-w".to_owned(),
            self.workers.to_string(),
        ];
        if self.processes > 1 {
            let hostfile = self.hostfile.as_ref().ok_or_else(|| {
                ServiceError::Cluster("a cluster of processes needs --hostfile".to_owned())
            })?;
            args.extend([
                "-n".to_owned(),
                self.processes.to_string(),
                "-p".to_owned(),
                self.process.to_string(),
                "-h".to_owned(),
                hostfile.display().to_string(),
            ]);
        }
        timely::Config::from_args(args.into_iter().skip(1)).map_err(ServiceError::Cluster)
    }

    /// The global index of local worker `local`.
    fn global(&self, local: usize) -> usize {
        self.process * self.workers + local
    }
}

/// Where this process's workers start: each one's checkpoint, and the stored inputs to judge
/// again (from the oldest checkpoint's event time on).
#[derive(Debug, Default)]
pub struct Resume {
    /// Per local worker.
    pub checkpoints: Vec<Option<Checkpoint>>,
    /// Stored readings and events at or after [`Resume::since`], in event-time order.
    pub inputs: Vec<Input>,
}

impl Resume {
    /// The checkpoints of this process's workers, from the configured folder (none without
    /// one, or for a worker whose checkpoint is missing or another layout's or rules').
    pub fn load(settings: &Settings, rules: &RuleSet, cluster: &Cluster) -> Self {
        let Some(dir) = &settings.rules.checkpoint_dir else {
            return Self::default();
        };
        let dir = CheckpointDir::new(dir.clone());
        let peers = cluster.workers * cluster.processes;
        let checkpoints = (0..cluster.workers)
            .map(|local| dir.load(cluster.global(local), peers, rules))
            .collect();
        Self {
            checkpoints,
            inputs: Vec::new(),
        }
    }

    /// From when stored inputs must be judged again: the oldest checkpoint's frontier.
    pub fn since(&self) -> Option<argus_model::Timestamp> {
        self.checkpoints
            .iter()
            .flatten()
            .map(Checkpoint::until)
            .min()
    }
}

/// Part of an envelope for one worker.
type Part = Vec<Input>;

/// The pipeline's handle on the local workers.
pub struct Detection {
    senders: Vec<mpsc::Sender<Part>>,
    thread: std::thread::JoinHandle<Result<(), String>>,
}

impl Detection {
    /// Start the workers of this process.
    pub fn start(
        settings: &Settings,
        rules: Arc<RuleSet>,
        cluster: &Cluster,
        telemetry: Telemetry,
        sink: mpsc::Sender<Item>,
        fired: mpsc::Sender<ToBook>,
        resume: Resume,
    ) -> Result<Self, ServiceError> {
        let config = cluster.timely_config()?;
        let writer = match &settings.rules.checkpoint_dir {
            Some(dir) => Some(CheckpointDir::new(dir.clone()).writer(telemetry.clone())?),
            None => None,
        };
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let options = LiveOptions {
            watermarks: WatermarkParams {
                allowed_lateness_ms: ms(settings.rules.allowed_lateness),
                idle_after_ms: ms(settings.rules.idle_source_after),
                max_delay_ms: Some(ms(settings.rules.max_delay)),
                max_skew_ms: Some(ms(settings.rules.max_clock_skew)),
            },
            advance_every: settings.rules.advance_every,
            checkpoint_every: writer.as_ref().map(|_| settings.rules.checkpoint_every),
            // Every registered point is expected from now on: a point silent since the start
            // is missing too (a backlog's older readings are not judged against this).
            watch_from: Some(argus_model::Timestamp::from_system_time(
                std::time::SystemTime::now(),
            )),
        };
        let mut senders = Vec::with_capacity(cluster.workers);
        let mut receivers = Vec::with_capacity(cluster.workers);
        let mut first: Vec<Vec<Input>> = (0..cluster.workers).map(|_| Vec::new()).collect();
        telemetry
            .detect
            .restored_inputs
            .inc_by(resume.inputs.len() as u64);
        for input in resume.inputs {
            let key = input.source().map_or("", |s| s.as_str());
            first[worker_of(key, cluster.workers)].push(input);
        }
        let mut checkpoints = resume.checkpoints.into_iter();
        for first in first {
            let (tx, rx) = mpsc::channel(WORKER_QUEUE);
            senders.push(tx);
            receivers.push(Mutex::new(Some(ChannelFeed {
                rx: Some(rx),
                resume: checkpoints.next().flatten(),
                first,
            })));
        }
        let receivers = Arc::new(receivers);
        let local_workers = cluster.workers;
        let observer: Arc<dyn Observer> = Arc::new(Report {
            telemetry,
            late_log: Mutex::new(RateLimited::new(LOG_EVERY)),
            sink,
            fired,
            writer,
            unsaved: AtomicBool::new(false),
        });
        tracing::info!(
            workers = cluster.workers,
            processes = cluster.processes,
            process = cluster.process,
            instances = rules.len(),
            "starting detection"
        );
        let thread = std::thread::Builder::new()
            .name("argus-dataflow".to_owned())
            .spawn(move || {
                let feed = move |index: usize| {
                    // Worker indexes are global across the cluster; this process's run from
                    // process * workers.
                    let local = index % local_workers;
                    receivers[local]
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .take()
                        .unwrap_or(ChannelFeed {
                            rx: None,
                            resume: None,
                            first: Vec::new(),
                        })
                };
                let guards = run_live(config, rules, options, feed, observer)?;
                // Timely's guard of its communication threads panics when they did (a peer is
                // gone): caught here, the cause said once by the panic hook.
                let joined = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    guards
                        .join()
                        .into_iter()
                        .collect::<Result<Vec<()>, String>>()
                }));
                match (joined, PEER_GONE.load(Ordering::SeqCst)) {
                    (Ok(Ok(_)), _) => Ok(()),
                    (_, true) => Err("a process of the detection cluster is gone".to_owned()),
                    (Ok(Err(e)), false) => Err(format!("a detection worker failed ({e})")),
                    (Err(_), false) => Err("the detection workers' threads failed".to_owned()),
                }
            })
            .map_err(|e| ServiceError::build("dataflow thread", e))?;
        Ok(Self { senders, thread })
    }

    /// Hand an envelope's records to the workers (its acknowledgement is the store's: the
    /// dataflow keeps its state in memory). Fails if the dataflow has stopped.
    pub async fn send(&self, records: Vec<Record>) -> Result<(), ServiceError> {
        let workers = self.senders.len();
        let mut parts: Vec<Vec<Input>> = (0..workers).map(|_| Vec::new()).collect();
        for record in records {
            let input = match record {
                Record::Reading(r) => Input::Reading(r),
                Record::Event(e) => Input::Event(Box::new(e)),
            };
            let key = input.source().map_or("", |s| s.as_str());
            parts[worker_of(key, workers)].push(input);
        }
        for (worker, part) in parts.into_iter().enumerate() {
            if part.is_empty() {
                continue;
            }
            self.senders[worker]
                .send(part)
                .await
                .map_err(|_| ServiceError::Stopped("detection dataflow"))?;
        }
        Ok(())
    }

    /// Close the workers' feeds and wait for the dataflow to drain.
    pub async fn finish(self) -> Result<(), ServiceError> {
        drop(self.senders);
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_err(|e| ServiceError::Panicked(format!("the wait for the dataflow thread: {e}")))?
            .map_err(|_| ServiceError::Panicked("the dataflow thread".to_owned()))?
            .map_err(ServiceError::Dataflow)
    }
}

/// The local worker of a source: FNV-1a of its id.
fn worker_of(source: &str, workers: usize) -> usize {
    let hash = source.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    usize::try_from(hash % workers.max(1) as u64).unwrap_or(0)
}

/// A worker's feed: its checkpoint, the stored inputs it judges again, then the parts the
/// pipeline sent it.
struct ChannelFeed {
    rx: Option<mpsc::Receiver<Part>>,
    resume: Option<Checkpoint>,
    first: Vec<Input>,
}

impl Feed for ChannelFeed {
    fn resume(&mut self) -> Option<Checkpoint> {
        self.resume.take()
    }

    fn restored(&mut self) -> Vec<Input> {
        std::mem::take(&mut self.first)
    }

    fn poll(&mut self, into: &mut Vec<Input>) -> bool {
        let Some(rx) = &mut self.rx else {
            // A worker of another process's share, or one started twice: nothing to feed.
            return false;
        };
        loop {
            match rx.try_recv() {
                Ok(part) => into.extend(part),
                Err(mpsc::error::TryRecvError::Empty) => return true,
                Err(mpsc::error::TryRecvError::Disconnected) => return false,
            }
        }
    }
}

/// Logs and metrics of the workers' reports; transitions go to the store's sink.
struct Report {
    telemetry: Telemetry,
    /// Late inputs, logged at most once per interval.
    late_log: Mutex<RateLimited>,
    sink: mpsc::Sender<Item>,
    fired: mpsc::Sender<ToBook>,
    writer: Option<CheckpointWriter>,
    /// Whether a checkpoint could not be handed on (said once).
    unsaved: AtomicBool,
}

impl Observer for Report {
    fn checkpoint(&self, worker: usize, checkpoint: Checkpoint) {
        let Some(writer) = self.writer.clone() else {
            return;
        };
        // Saved once the transitions before it (sent to the sink already) and the tickets of
        // its fired alerts (the book sends them before this) are durable.
        let ack = Ack::new(move || writer.save(&checkpoint));
        if self.fired.blocking_send(ToBook::After(ack)).is_err()
            && !self.unsaved.swap(true, Ordering::SeqCst)
        {
            // Shutting down (in a cluster, until every process stops): nothing is saved now.
            tracing::info!(
                worker,
                "the ticket book has stopped: no more checkpoints saved"
            );
        }
    }

    fn transitions(&self, _worker: usize, transitions: &[AlertTransition]) {
        // On a worker thread, outside the runtime: a full sink makes the worker wait.
        if self
            .sink
            .blocking_send(Item::Transitions(transitions.to_vec()))
            .is_err()
        {
            tracing::error!(
                count = transitions.len(),
                "the store sink has stopped: alert transitions not stored"
            );
        }
        let fired: Vec<FiredAlert> = transitions
            .iter()
            .filter(|t| t.muted_later.is_none())
            .filter_map(|t| match t.transition {
                Transition::Fired { started_at, .. } => Some(FiredAlert {
                    alert_id: t.alert_id,
                    kind: t.kind,
                    severity: t.instance.severity,
                    enterprise_id: t.instance.enterprise_id.to_string(),
                    metric: t.instance.metric,
                    started_at,
                    muted: t.muted,
                }),
                _ => None,
            })
            .collect();
        if !fired.is_empty() && self.fired.blocking_send(ToBook::Fired(fired)).is_err() {
            tracing::error!("the ticket book has stopped: fired alerts make no tickets");
        }
        let muted: Vec<(u64, Arc<str>)> = transitions
            .iter()
            .filter_map(|t| Some((t.alert_id, Arc::clone(t.muted_later.as_ref()?))))
            .collect();
        if !muted.is_empty() && self.fired.blocking_send(ToBook::Muted(muted)).is_err() {
            tracing::error!("the ticket book has stopped: later mutes are not on their tickets");
        }
        let metrics = &self.telemetry.detect.transitions;
        for t in transitions {
            let i = &t.instance;
            let metric = i.metric.map_or("*", |m| m.code());
            if let Some(reason) = &t.muted_later {
                metrics.with_label_values(&[t.kind.as_str(), "muted"]).inc();
                tracing::info!(
                    alert_id = %format!("{:016x}", t.alert_id),
                    rule = &*i.rule_id,
                    kind = t.kind.as_str(),
                    point = i.point.as_str(),
                    metric,
                    reason = &**reason,
                    "alert muted by a notice or silence that arrived after it fired"
                );
                continue;
            }
            match &t.transition {
                Transition::Fired { started_at, value } => {
                    metrics.with_label_values(&[t.kind.as_str(), "fired"]).inc();
                    tracing::info!(
                        alert_id = %format!("{:016x}", t.alert_id),
                        rule = &*i.rule_id,
                        kind = t.kind.as_str(),
                        severity = i.severity.as_str(),
                        enterprise = &*i.enterprise_id,
                        point = i.point.as_str(),
                        metric,
                        started_at = %started_at.to_rfc3339(),
                        value,
                        muted = t.muted,
                        "alert fired"
                    );
                }
                Transition::Updated { started_at, value } => {
                    metrics
                        .with_label_values(&[t.kind.as_str(), "updated"])
                        .inc();
                    tracing::info!(
                        alert_id = %format!("{:016x}", t.alert_id),
                        rule = &*i.rule_id,
                        kind = t.kind.as_str(),
                        point = i.point.as_str(),
                        metric,
                        started_at = %started_at.to_rfc3339(),
                        value,
                        muted = t.muted,
                        "alert updated"
                    );
                }
                Transition::Resolved {
                    started_at,
                    ended_at,
                    peak,
                    mean,
                } => {
                    metrics
                        .with_label_values(&[t.kind.as_str(), "resolved"])
                        .inc();
                    tracing::info!(
                        alert_id = %format!("{:016x}", t.alert_id),
                        rule = &*i.rule_id,
                        kind = t.kind.as_str(),
                        point = i.point.as_str(),
                        metric,
                        started_at = %started_at.to_rfc3339(),
                        ended_at = %ended_at.to_rfc3339(),
                        peak,
                        mean,
                        muted = t.muted,
                        "alert resolved"
                    );
                }
            }
        }
    }

    fn late(&self, worker: usize, inputs: Vec<Input>) {
        self.telemetry.detect.late.inc_by(inputs.len() as u64);
        // Stored as received (readings are); the log says so once per interval, with a count.
        let due = self
            .late_log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .note(inputs.len() as u64, std::time::Instant::now());
        if let (Some(count), Some(example)) = (due, inputs.first()) {
            tracing::warn!(
                worker,
                count,
                example_source = example.source().map_or("", |s| s.as_str()),
                example_event_time = %example.event_time().to_rfc3339(),
                "inputs later than the allowed lateness since the last such line: stored, not judged"
            );
        }
    }

    fn progress(&self, worker: usize, progress: Progress) {
        let d = &self.telemetry.detect;
        let label = worker.to_string();
        d.inputs
            .with_label_values(&["reading"])
            .inc_by(progress.readings);
        d.inputs
            .with_label_values(&["event"])
            .inc_by(progress.events);
        d.ahead.inc_by(progress.ahead);
        d.untracked.inc_by(progress.untracked);
        self.telemetry.readiness.detection_progressed();
        let lag_ms = progress
            .now
            .as_millis()
            .saturating_sub(progress.watermark.as_millis());
        let lag_secs = if progress.watermark.as_millis() == i64::MIN {
            0
        } else {
            lag_ms / 1_000
        };
        d.watermark_lag_seconds
            .with_label_values(&[label.as_str()])
            .set(lag_secs);
        d.active_sources
            .with_label_values(&[label.as_str()])
            .set(i64::try_from(progress.active_sources).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_always_goes_to_the_same_worker_and_all_workers_get_some() {
        let mut seen = [0_usize; 3];
        for n in 0..300 {
            let source = format!("MN{n:04}");
            let worker = worker_of(&source, 3);
            assert_eq!(worker, worker_of(&source, 3));
            seen[worker] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
        assert_eq!(worker_of("anything", 1), 0);
    }
}
