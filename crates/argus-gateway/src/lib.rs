//! The HJ 212 TCP gateway: data loggers connect, stream packets, and get their replies once what
//! they sent is safe downstream.
//!
//! A [`Gateway`] owns its listener. [`Gateway::run`] accepts connections until the shutdown future
//! completes; each connection runs in its own task (see `connection`), cuts its byte stream into
//! frames with the codec's [`argus_hj212::Framer`], decodes them with the shared
//! [`argus_ingest::Decoder`] and hands one [`Envelope`] per read to the pipeline. The replies a
//! packet asks for (9014 for data uploads) travel with the envelope's [`argus_ingest::Ack`] and are
//! written to the logger only when the pipeline acknowledges the envelope.
//!
//! Limits: a semaphore bounds the connections served at once (more are accepted and closed at
//! once), a silent connection or a frame that does not complete is closed after the idle timeout,
//! and a peer that sends only garbage is cut off. Shutdown follows mini-redis: a broadcast tells
//! every connection to stop reading, each finishes its batch, and [`Gateway::run`] returns once
//! the last connection task has dropped its completion sender.

mod connection;
mod stream;

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argus_config::Hj212Settings;
use argus_ingest::{Decoder, Envelope};
use argus_telemetry::{RateLimited, Telemetry, LOG_EVERY};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, Semaphore};
use tracing::{debug, info, warn};

use crate::connection::{Cause, Connection};

/// At most one warning per this interval when connections are refused at the limit.
const LIMIT_WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Longest pause between attempts when accepting fails (out of file descriptors, say).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Why the gateway could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The listen address could not be bound.
    #[error("cannot listen for hj 212 data loggers on {addr}: {source}")]
    Bind {
        /// The address from the settings.
        addr: SocketAddr,
        /// The operating system's error.
        source: io::Error,
    },
    /// The bound listener does not tell its address.
    #[error("cannot read the local address of the hj 212 listener: {source}")]
    LocalAddr {
        /// The operating system's error.
        source: io::Error,
    },
    /// The pipeline's receiver was dropped: nothing received could be delivered any more.
    #[error("the pipeline receiving hj 212 envelopes is closed; stopped accepting data loggers")]
    PipelineClosed,
}

/// Limits that protect the gateway from misbehaving peers, beyond those of [`Hj212Settings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A connection is cut off when more than this many frames in a row are garbage (framing
    /// broken, bad length, bad CRC, too long) without one well-formed packet in between.
    pub max_bad_frames: usize,
    /// A connection is cut off when more than this many bytes were discarded as garbage since its
    /// last well-formed packet.
    pub max_garbage_bytes: usize,
    /// After end of stream or shutdown, how long a connection waits for the acknowledgements of
    /// envelopes already handed over, so their replies still reach the logger.
    pub reply_grace: Duration,
    /// Bytes read from a socket at once; what one read produced goes into one envelope.
    pub read_buffer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bad_frames: 16,
            max_garbage_bytes: 64 * 1024,
            reply_grace: Duration::from_secs(5),
            read_buffer_bytes: 16 * 1024,
        }
    }
}

/// What every connection needs, shared by the accept loop.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub(crate) decoder: Arc<Decoder>,
    pub(crate) telemetry: Telemetry,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_data_bytes: usize,
    pub(crate) limits: Limits,
    /// Garbage senders cut off, logged at most once per interval over all connections.
    pub(crate) cut_log: Arc<Mutex<RateLimited>>,
}

/// The HJ 212 TCP gateway, bound and ready to [`run`](Gateway::run).
#[derive(Debug)]
pub struct Gateway {
    listener: TcpListener,
    local_addr: SocketAddr,
    max_connections: usize,
    max_per_peer: usize,
    shared: Shared,
}

impl Gateway {
    /// Bind `settings.listen_addr`; packets are decoded by `decoder` (which checks PWs against
    /// its registry) and counted in `telemetry`.
    pub async fn bind(
        settings: &Hj212Settings,
        decoder: Arc<Decoder>,
        telemetry: Telemetry,
    ) -> Result<Self, GatewayError> {
        let addr = settings.listen_addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| GatewayError::Bind { addr, source })?;
        Self::from_listener(listener, settings, decoder, telemetry)
    }

    /// A gateway on an already bound listener (tests bind `127.0.0.1:0`); the listen address of
    /// `settings` is ignored.
    pub fn from_listener(
        listener: TcpListener,
        settings: &Hj212Settings,
        decoder: Arc<Decoder>,
        telemetry: Telemetry,
    ) -> Result<Self, GatewayError> {
        let local_addr = listener
            .local_addr()
            .map_err(|source| GatewayError::LocalAddr { source })?;
        Ok(Self {
            listener,
            local_addr,
            max_connections: settings.max_connections.max(1),
            max_per_peer: settings.max_connections_per_peer.max(1),
            shared: Shared {
                decoder,
                telemetry,
                idle_timeout: settings.idle_timeout,
                max_data_bytes: settings.max_data_bytes,
                limits: Limits::default(),
                cut_log: Arc::new(Mutex::new(RateLimited::new(LOG_EVERY))),
            },
        })
    }

    /// Replace the default [`Limits`].
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.shared.limits = limits;
        self
    }

    /// The address the gateway listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Accept data loggers until `shutdown` completes, handing their envelopes to `tx`.
    ///
    /// A full pipeline stops reading from the sockets (backpressure). On shutdown the gateway
    /// stops accepting, every connection finishes its current batch (and waits up to
    /// [`Limits::reply_grace`] for acknowledgements still due), and `run` returns once every
    /// connection task is done. Returns [`GatewayError::PipelineClosed`] if the receiver of
    /// `tx` is dropped, after closing every connection the same way.
    pub async fn run(
        self,
        tx: mpsc::Sender<Envelope>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), GatewayError> {
        let Gateway {
            listener,
            local_addr,
            max_connections,
            max_per_peer,
            shared,
        } = self;
        info!(
            addr = %local_addr,
            max_connections,
            max_connections_per_peer = max_per_peer,
            idle_timeout_secs = shared.idle_timeout.as_secs_f64(),
            max_data_bytes = shared.max_data_bytes,
            "hj 212 gateway listening"
        );
        let (notify_shutdown, _) = broadcast::channel::<()>(1);
        let (complete_tx, mut complete_rx) = mpsc::channel::<()>(1);
        let mut acceptor = Acceptor {
            listener: &listener,
            semaphore: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            peers: Peers::new(max_per_peer),
            shared,
            tx: &tx,
            notify_shutdown: &notify_shutdown,
            complete_tx: &complete_tx,
            refusals: Refusals::default(),
        };
        let result = tokio::select! {
            result = acceptor.accept_loop() => result,
            () = shutdown => {
                info!(addr = %local_addr, "hj 212 gateway shutting down");
                Ok(())
            }
        };
        drop(acceptor);
        drop(listener);
        // Closing the broadcast tells every connection to stop; each holds a clone of
        // `complete_tx`, so `recv` returns `None` once the last one is done.
        drop(notify_shutdown);
        drop(complete_tx);
        drop(tx);
        let _ = complete_rx.recv().await;
        info!(addr = %local_addr, "hj 212 gateway stopped");
        result
    }
}

/// The accept loop's state, borrowed from [`Gateway::run`].
struct Acceptor<'a> {
    listener: &'a TcpListener,
    semaphore: Arc<Semaphore>,
    max_connections: usize,
    peers: Peers,
    shared: Shared,
    tx: &'a mpsc::Sender<Envelope>,
    notify_shutdown: &'a broadcast::Sender<()>,
    complete_tx: &'a mpsc::Sender<()>,
    refusals: Refusals,
}

impl Acceptor<'_> {
    /// Accept until the pipeline closes; errors of single accepts are logged and retried.
    async fn accept_loop(&mut self) -> Result<(), GatewayError> {
        let mut backoff = Duration::from_millis(10);
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = self.tx.closed() => {
                    warn!("hj 212 pipeline closed; no longer accepting data loggers");
                    return Err(GatewayError::PipelineClosed);
                }
            };
            match accepted {
                Ok((stream, peer)) => {
                    backoff = Duration::from_millis(10);
                    self.serve(stream, peer);
                }
                Err(e) => {
                    warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "accepting an hj 212 connection failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                }
            }
        }
    }

    /// Serve `stream` in its own task, or close it at once if its peer's limit or the global
    /// one is reached.
    fn serve(&mut self, stream: TcpStream, peer: SocketAddr) {
        let Ok(permit) = Arc::clone(&self.semaphore).try_acquire_owned() else {
            self.shared
                .telemetry
                .gateway
                .closed
                .with_label_values(&[Cause::Limit.as_str()])
                .inc();
            self.refusals.refused(peer, self.max_connections);
            drop(stream);
            return;
        };
        let Some(peer_slot) = self.peers.take(peer.ip()) else {
            self.shared
                .telemetry
                .gateway
                .closed
                .with_label_values(&[Cause::PeerLimit.as_str()])
                .inc();
            self.refusals.refused_peer(peer, self.peers.max_per_peer);
            drop(stream);
            return;
        };
        if let Err(e) = stream.set_nodelay(true) {
            debug!(%peer, error = %e, "cannot set tcp_nodelay");
        }
        let connection = Connection::new(
            peer,
            &self.shared,
            self.tx.clone(),
            self.notify_shutdown.subscribe(),
        );
        let complete = self.complete_tx.clone();
        let telemetry = self.shared.telemetry.clone();
        tokio::spawn(async move {
            let open = OpenGauge::new(&telemetry);
            debug!(%peer, "hj 212 connection opened");
            let cause = connection.serve(stream).await;
            // Release the slot before the gauge drops, so a gauge below the limit means a free slot.
            drop(peer_slot);
            drop(permit);
            drop(open);
            telemetry
                .gateway
                .closed
                .with_label_values(&[cause.as_str()])
                .inc();
            debug!(%peer, cause = cause.as_str(), "hj 212 connection closed");
            drop(complete);
        });
    }
}

/// Keeps `gateway.connections` up while a connection task lives, even if it panics.
struct OpenGauge<'a>(&'a Telemetry);

impl<'a> OpenGauge<'a> {
    fn new(telemetry: &'a Telemetry) -> Self {
        telemetry.gateway.connections.inc();
        Self(telemetry)
    }
}

impl Drop for OpenGauge<'_> {
    fn drop(&mut self) {
        self.0.gateway.connections.dec();
    }
}

/// Connections open per peer address: bounded by the connections open (each holds a slot).
#[derive(Debug, Clone)]
struct Peers {
    open: Arc<std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>>,
    max_per_peer: usize,
}

impl Peers {
    fn new(max_per_peer: usize) -> Self {
        Self {
            open: Arc::default(),
            max_per_peer,
        }
    }

    /// A slot for one more connection from `ip`, if it has fewer than its limit open.
    fn take(&self, ip: IpAddr) -> Option<PeerSlot> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max_per_peer {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            peers: self.clone(),
            ip,
        })
    }
}

/// One connection's place in its peer's count; given back when dropped.
struct PeerSlot {
    peers: Peers,
    ip: IpAddr,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self
            .peers
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Rate-limits the warning about refused connections.
#[derive(Debug, Default)]
struct Refusals {
    last_warning: Option<Instant>,
    suppressed: u64,
}

impl Refusals {
    /// Count a refusal; the refusals not warned about yet, when a warning is due.
    fn due(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last_warning
            .is_none_or(|at| now.duration_since(at) >= LIMIT_WARN_INTERVAL)
        {
            self.last_warning = Some(now);
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }

    fn refused(&mut self, peer: SocketAddr, max_connections: usize) {
        if let Some(suppressed) = self.due() {
            warn!(
                %peer,
                max_connections,
                refused_since_last_warning = suppressed,
                "hj 212 connection limit reached; refusing data logger"
            );
        }
    }

    fn refused_peer(&mut self, peer: SocketAddr, max_per_peer: usize) {
        if let Some(suppressed) = self.due() {
            warn!(
                %peer,
                max_connections_per_peer = max_per_peer,
                refused_since_last_warning = suppressed,
                "hj 212 connection limit of one peer reached; refusing its further connections"
            );
        }
    }
}
