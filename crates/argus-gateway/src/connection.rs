//! One data-logger connection: read, decode, hand each read's envelope to the pipeline, and write
//! the replies of an envelope once the pipeline acknowledges it.
//!
//! The task selects over shutdown, acknowledgements, the idle deadline and the socket. Reading
//! stops while an envelope waits for room in the pipeline (backpressure reaches the logger
//! through TCP). Acknowledgements arrive on an unbounded channel: [`argus_ingest::Ack`] runs
//! synchronously in the pipeline, and at most one message per envelope in flight is queued.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use argus_ingest::{count_by_reason, Ack, Envelope, Transport};
use argus_model::Timestamp;
use argus_telemetry::{RateLimited, Telemetry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tracing::{debug, info};

use crate::stream::{Batch, StreamDecoder};
use crate::{Limits, Shared};

/// Why a connection was closed; the `cause` label of `gateway.closed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The peer closed its side.
    Eof,
    /// Nothing received, or a frame not completed, within the idle timeout.
    Idle,
    /// A socket error, or the pipeline went away.
    Error,
    /// The peer sent only garbage.
    Garbage,
    /// Refused at the connection limit.
    Limit,
    /// Refused at the limit of connections from one peer address.
    PeerLimit,
    /// The gateway shut down.
    Shutdown,
}

impl Cause {
    /// The label value.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Cause::Eof => "eof",
            Cause::Idle => "idle",
            Cause::Error => "error",
            Cause::Garbage => "garbage",
            Cause::Limit => "limit",
            Cause::PeerLimit => "peer_limit",
            Cause::Shutdown => "shutdown",
        }
    }
}

/// What became of an envelope that carried replies.
#[derive(Debug)]
enum AckEvent {
    /// Acknowledged: send these replies.
    Acked(Vec<Vec<u8>>),
    /// Dropped without acknowledgement: the logger gets no reply and will send again.
    Dropped,
}

/// Sends the replies of an envelope to its connection when acknowledged, or reports the drop.
struct ReplyOnAck {
    replies: Vec<Vec<u8>>,
    acked: bool,
    to: mpsc::UnboundedSender<AckEvent>,
}

impl Drop for ReplyOnAck {
    fn drop(&mut self) {
        let event = if self.acked {
            AckEvent::Acked(std::mem::take(&mut self.replies))
        } else {
            AckEvent::Dropped
        };
        // The connection may be gone already: then nobody is left to reply to.
        let _ = self.to.send(event);
    }
}

/// Why serving stopped early.
#[derive(Debug)]
enum Stop {
    /// The pipeline's receiver is gone.
    PipelineClosed,
    /// Writing replies failed or timed out.
    Write(io::Error),
}

/// The state of one connection.
#[derive(Debug)]
pub(crate) struct Connection {
    peer: SocketAddr,
    stream: StreamDecoder,
    tx: mpsc::Sender<Envelope>,
    telemetry: Telemetry,
    shutdown: broadcast::Receiver<()>,
    idle_timeout: Duration,
    limits: Limits,
    acks_tx: mpsc::UnboundedSender<AckEvent>,
    acks_rx: mpsc::UnboundedReceiver<AckEvent>,
    /// Envelopes with replies handed over and not yet acknowledged or dropped.
    outstanding: usize,
    cut_log: Arc<Mutex<RateLimited>>,
}

impl Connection {
    /// A connection from `peer`; `shutdown` closes when the gateway stops.
    pub(crate) fn new(
        peer: SocketAddr,
        shared: &Shared,
        tx: mpsc::Sender<Envelope>,
        shutdown: broadcast::Receiver<()>,
    ) -> Self {
        let (acks_tx, acks_rx) = mpsc::unbounded_channel();
        Self {
            peer,
            stream: StreamDecoder::new(
                shared.decoder.clone(),
                format!("tcp:{peer}"),
                shared.max_data_bytes,
            ),
            tx,
            telemetry: shared.telemetry.clone(),
            shutdown,
            idle_timeout: shared.idle_timeout,
            limits: shared.limits,
            cut_log: Arc::clone(&shared.cut_log),
            acks_tx,
            acks_rx,
            outstanding: 0,
        }
    }

    /// Serve the connection until it closes; returns why.
    pub(crate) async fn serve(mut self, mut socket: TcpStream) -> Cause {
        let (mut rd, mut wr) = socket.split();
        let mut buf = vec![0u8; self.limits.read_buffer_bytes.max(64)];
        // When the oldest incomplete frame started, if one is held.
        let mut partial_since: Option<Instant> = None;
        let mut deadline = Instant::now() + self.idle_timeout;
        let cause = loop {
            tokio::select! {
                biased;
                _ = self.shutdown.recv() => break Cause::Shutdown,
                Some(event) = self.acks_rx.recv() => {
                    if let Err(stop) = self.on_ack(event, &mut wr).await {
                        break self.stopped(stop);
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    debug!(peer = %self.peer, buffered = self.stream.buffered(), "hj 212 connection idle");
                    break Cause::Idle;
                }
                read = rd.read(&mut buf) => match read {
                    Ok(0) => break Cause::Eof,
                    Ok(n) => {
                        let batch = self.stream.feed(&buf[..n], now());
                        let progressed = batch.progressed;
                        if let Err(stop) = self.deliver(batch, &mut wr).await {
                            break self.stopped(stop);
                        }
                        // Idle time counts from when reading resumes, not from before a wait
                        // for the pipeline; a frame must complete within the idle timeout of
                        // its first bytes (slowloris).
                        let at = Instant::now();
                        if progressed || partial_since.is_none() {
                            partial_since = (self.stream.buffered() > 0).then_some(at);
                        }
                        deadline = partial_since.unwrap_or(at) + self.idle_timeout;
                        if self.stream.is_garbage_sender(&self.limits) {
                            let due = self.cut_log.lock().unwrap_or_else(PoisonError::into_inner).note(1, std::time::Instant::now());
                            if let Some(count) = due {
                                info!(peer = %self.peer, count, "hj 212 peers sending only garbage cut off since the last line (the last of them)");
                            }
                            let drained = drain(&mut rd, &mut buf, &mut self.stream).await;
                            debug!(peer = %self.peer, drained, "hj 212 bytes read after the cut-off, dead-lettered");
                            break Cause::Garbage;
                        }
                    }
                    Err(e) => {
                        debug!(peer = %self.peer, error = %e, "hj 212 connection read failed");
                        break Cause::Error;
                    }
                },
            }
        };
        self.close(cause, &mut wr).await;
        cause
    }

    /// Deliver what is left, then wait a little for replies still due.
    async fn close(&mut self, cause: Cause, wr: &mut WriteHalf<'_>) {
        let batch = self.stream.finish(cause.as_str(), now());
        if let Err(stop) = self.deliver(batch, wr).await {
            self.stopped(stop);
            return;
        }
        if !matches!(cause, Cause::Eof | Cause::Shutdown) || self.outstanding == 0 {
            return;
        }
        let until = Instant::now() + self.limits.reply_grace;
        while self.outstanding > 0 {
            tokio::select! {
                event = self.acks_rx.recv() => {
                    let Some(event) = event else { break };
                    if let Err(stop) = self.on_ack(event, wr).await {
                        self.stopped(stop);
                        return;
                    }
                }
                () = tokio::time::sleep_until(until) => {
                    debug!(peer = %self.peer, outstanding = self.outstanding, "hj 212 connection closed with replies still due");
                    return;
                }
            }
        }
    }

    /// Count the batch and hand it to the pipeline, its replies riding on the acknowledgement.
    async fn deliver(&mut self, batch: Batch, wr: &mut WriteHalf<'_>) -> Result<(), Stop> {
        let transport = Transport::Hj212Tcp.as_str();
        let ingest = &self.telemetry.ingest;
        let records = batch.records.len() as u64;
        ingest.batch(transport, batch.frames, batch.bytes, records);
        for (reason, n) in count_by_reason(&batch.dead_letters) {
            ingest.dead_letters(transport, reason.as_str(), n);
        }
        if batch.is_empty() {
            // Nothing to make safe downstream (packets without readings): reply at once.
            return self.write_replies(&batch.replies, wr).await;
        }
        let ack = if batch.replies.is_empty() {
            Ack::none()
        } else {
            let guard = ReplyOnAck {
                replies: batch.replies,
                acked: false,
                to: self.acks_tx.clone(),
            };
            self.outstanding += 1;
            Ack::new(move || {
                let mut guard = guard;
                guard.acked = true;
            })
        };
        let envelope = Envelope {
            transport: Transport::Hj212Tcp,
            records: batch.records,
            dead_letters: batch.dead_letters,
            ack,
        };
        self.tx
            .send(envelope)
            .await
            .map_err(|_| Stop::PipelineClosed)
    }

    /// An envelope was acknowledged or dropped.
    async fn on_ack(&mut self, event: AckEvent, wr: &mut WriteHalf<'_>) -> Result<(), Stop> {
        self.outstanding = self.outstanding.saturating_sub(1);
        match event {
            AckEvent::Acked(replies) => self.write_replies(&replies, wr).await,
            AckEvent::Dropped => {
                debug!(peer = %self.peer, "hj 212 envelope dropped unacknowledged; its replies are not sent");
                Ok(())
            }
        }
    }

    /// Write replies in one go; a peer that does not read them within the idle timeout is
    /// given up.
    async fn write_replies(&self, replies: &[Vec<u8>], wr: &mut WriteHalf<'_>) -> Result<(), Stop> {
        if replies.is_empty() {
            return Ok(());
        }
        let bytes = replies.concat();
        match tokio::time::timeout(self.idle_timeout, wr.write_all(&bytes)).await {
            Ok(Ok(())) => {
                self.telemetry.gateway.replies.inc_by(replies.len() as u64);
                Ok(())
            }
            Ok(Err(e)) => Err(Stop::Write(e)),
            Err(_) => Err(Stop::Write(io::Error::new(
                io::ErrorKind::TimedOut,
                "peer does not read its replies",
            ))),
        }
    }

    /// Log why serving stopped; the cause is always `error`.
    fn stopped(&self, stop: Stop) -> Cause {
        match stop {
            Stop::PipelineClosed => {
                info!(peer = %self.peer, "hj 212 pipeline closed; closing connection");
            }
            Stop::Write(e) => {
                debug!(peer = %self.peer, error = %e, "hj 212 reply write failed");
            }
        }
        Cause::Error
    }
}

/// The time of receipt, as UTC milliseconds.
/// The time of receipt.
fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

/// What a garbage sender already sent when it is cut off, at most this many bytes, is read and
/// dead-lettered rather than left unread: every byte Argus receives is accounted for.
const MAX_DRAIN_BYTES: usize = 1 << 20;
/// How long the drain waits for more bytes once the socket has none.
const DRAIN_PAUSE: Duration = Duration::from_millis(50);

/// Read what the peer has sent (waiting at most [`DRAIN_PAUSE`] for more, up to
/// [`MAX_DRAIN_BYTES`]) into the stream's discarded bytes; returns how many.
async fn drain(rd: &mut ReadHalf<'_>, buf: &mut [u8], stream: &mut StreamDecoder) -> usize {
    let mut drained = 0;
    while drained < MAX_DRAIN_BYTES {
        match tokio::time::timeout(DRAIN_PAUSE, rd.read(buf)).await {
            Ok(Ok(n)) if n > 0 => {
                stream.refuse(&buf[..n], now());
                drained += n;
            }
            _ => break,
        }
    }
    drained
}
