//! The HJ 212 TCP gateway over real sockets on 127.0.0.1: readings arrive exactly once and are
//! answered only once acknowledged, bad packets become dead letters with their reason, garbage
//! senders, idle peers and connections over the limit are closed without harming others.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use argus_config::Hj212Settings;
use argus_gateway::{Gateway, GatewayError, Limits};
use argus_hj212::{CpBuilder, FieldKind, Framer, Header};
use argus_ingest::{DeadLetter, DecodeOptions, Decoder, Envelope, Reason, Record};
use argus_model::{Reading, Registry, Timestamp};
use argus_telemetry::Telemetry;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::util;

/// Ten factors of a flue gas outlet, HJ 212-2017 codes.
const FACTORS: [&str; 10] = [
    "a21026", "a21002", "a34013", "a19001", "a01012", "a01013", "a01014", "a01011", "a00000",
    "a21005",
];

const HOUR_MS: i64 = 3_600_000;

fn registry() -> Registry {
    let path = util::repo_path("config/registry.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    Registry::from_toml_str(&text, "registry.toml").unwrap_or_else(|e| panic!("{e}"))
}

/// (MN, PW) of the registry's points that have a PW.
fn registered_points(registry: &Registry) -> Vec<(String, String)> {
    let mut points: Vec<_> = registry
        .points()
        .filter_map(|p| Some((p.mn.as_str().to_owned(), p.password.clone()?)))
        .collect();
    points.sort();
    assert!(!points.is_empty(), "the registry has no point with a pw");
    points
}

fn settings(max_connections: usize, idle_timeout: Duration) -> Hj212Settings {
    Hj212Settings {
        enabled: true,
        listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        max_connections,
        max_connections_per_peer: max_connections,
        idle_timeout,
        max_data_bytes: 4096,
    }
}

fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_else(|e| panic!("clock before 1970: {e}"))
        .as_millis();
    Timestamp(i64::try_from(ms).unwrap_or_else(|e| panic!("{e}")))
}

/// `DataTime` of `ts`: its wall-clock time in China (UTC+8), computed without the codec's or
/// the model's offset handling.
fn data_time(ts: Timestamp) -> String {
    let c = ts.plus_millis(8 * HOUR_MS).to_civil(0);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// A 2017 data packet (`Flag=5`: version 2017, reply requested, unless `flag` says otherwise)
/// with hourly averages (CN 2061) of `values` (code, value as text).
fn data_packet(
    qn: &str,
    pw: &str,
    mn: &str,
    flag: u16,
    time: Timestamp,
    values: &[(&str, String)],
) -> Vec<u8> {
    let mut cp = CpBuilder::new().param("DataTime", &data_time(time));
    for (code, value) in values {
        cp = cp.factor(code, &[(FieldKind::Avg, value), (FieldKind::Flag, "N")]);
    }
    let cp = cp.finish().unwrap_or_else(|e| panic!("{e}"));
    let header = Header {
        qn: Some(qn),
        st: Some("31"),
        cn: "2061",
        pw: Some(pw),
        mn,
        flag: Some(flag),
        ..Header::default()
    };
    argus_hj212::encode(&header, &cp).unwrap_or_else(|e| panic!("{e}"))
}

/// What the pipeline received.
#[derive(Debug, Default)]
struct Collected {
    readings: Vec<Reading>,
    dead_letters: Vec<DeadLetter>,
    envelopes: usize,
}

/// A running gateway with a pipeline task that acknowledges every envelope.
struct Harness {
    addr: SocketAddr,
    telemetry: Telemetry,
    shutdown: oneshot::Sender<()>,
    run: JoinHandle<Result<(), GatewayError>>,
    pipeline: JoinHandle<Collected>,
}

impl Harness {
    async fn start(settings: &Hj212Settings, limits: Limits) -> Self {
        let telemetry = Telemetry::new("test", 0).unwrap_or_else(|e| panic!("{e}"));
        let decoder = Arc::new(Decoder::new(Arc::new(registry()), DecodeOptions::default()));
        let gateway = Gateway::bind(settings, decoder, telemetry.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .with_limits(limits);
        let (tx, mut rx) = mpsc::channel::<Envelope>(16);
        let pipeline = tokio::spawn(async move {
            let mut collected = Collected::default();
            while let Some(envelope) = rx.recv().await {
                collected.envelopes += 1;
                for record in envelope.records {
                    match record {
                        Record::Reading(r) => collected.readings.push(r),
                        Record::Event(e) => panic!("unexpected event {e:?}"),
                    }
                }
                collected.dead_letters.extend(envelope.dead_letters);
                envelope.ack.done();
            }
            collected
        });
        Self::spawn(gateway, tx, pipeline, telemetry)
    }

    fn spawn(
        gateway: Gateway,
        tx: mpsc::Sender<Envelope>,
        pipeline: JoinHandle<Collected>,
        telemetry: Telemetry,
    ) -> Self {
        let addr = gateway.local_addr();
        let (shutdown, signal) = oneshot::channel::<()>();
        let run = tokio::spawn(gateway.run(tx, async {
            let _ = signal.await;
        }));
        Self {
            addr,
            telemetry,
            shutdown,
            run,
            pipeline,
        }
    }

    fn closed(&self, cause: &str) -> u64 {
        self.telemetry
            .gateway
            .closed
            .with_label_values(&[cause])
            .get()
    }

    /// The count of closes for `cause` once it reaches `expected` (or after 2 s): a peer sees
    /// its connection closed a moment before the gateway counts it.
    async fn closed_eventually(&self, cause: &str, expected: u64) -> u64 {
        let started = Instant::now();
        while self.closed(cause) < expected && started.elapsed() < Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.closed(cause)
    }

    /// Shut down, wait for `run` to return, and collect what the pipeline received.
    async fn stop(self) -> (Collected, Telemetry) {
        let _ = self.shutdown.send(());
        within(Duration::from_secs(15), "gateway shutdown", self.run)
            .await
            .unwrap_or_else(|e| panic!("gateway task: {e}"))
            .unwrap_or_else(|e| panic!("gateway: {e}"));
        let collected = within(Duration::from_secs(5), "pipeline end", self.pipeline)
            .await
            .unwrap_or_else(|e| panic!("pipeline task: {e}"));
        (collected, self.telemetry)
    }
}

async fn within<T>(limit: Duration, what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within {limit:?}"))
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"))
}

/// Read HJ 212 frames (replies) until `n` arrived; returns them decoded as (CN, QN).
async fn read_replies<R: AsyncRead + Unpin>(rd: &mut R, n: usize) -> Vec<(String, String)> {
    let mut framer = Framer::new(1024);
    let mut replies = Vec::new();
    let mut buf = [0u8; 4096];
    while replies.len() < n {
        let got = rd
            .read(&mut buf)
            .await
            .unwrap_or_else(|e| panic!("reading replies: {e}"));
        assert!(
            got > 0,
            "connection closed after {} of {n} replies",
            replies.len()
        );
        let mut input = &buf[..got];
        while !input.is_empty() {
            let taken = framer.push(input);
            input = &input[taken..];
            while let Some(item) = framer.next_frame() {
                let frame = item.unwrap_or_else(|e| panic!("reply framing: {e}"));
                let packet = argus_hj212::decode(frame, &argus_hj212::DecodeOptions::default())
                    .unwrap_or_else(|e| panic!("reply decoding: {e}"));
                let qn = packet.qn().unwrap_or_else(|| panic!("reply without QN"));
                replies.push((packet.cn().to_owned(), qn.to_owned()));
            }
        }
    }
    replies
}

/// Read until the peer closes the connection (end of stream or reset); returns the bytes read.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[test]
fn hundred_thousand_readings_arrive_exactly_once() {
    const CONNECTIONS: usize = 100;
    const PACKETS: usize = 100;
    util::runtime().block_on(async {
        let started = Instant::now();
        let harness = Harness::start(&settings(2000, Duration::from_secs(30)), Limits::default()).await;
        let points = registered_points(&registry());
        let base = now().china_hour_start();
        // Connection c sends as MN c: a registered point with its PW, or an unregistered MN.
        let mn_of = |c: usize| match points.get(c) {
            Some((mn, pw)) => (mn.clone(), pw.clone()),
            None => (format!("GW{c:04}"), "123456".to_owned()),
        };
        let value_of = |c: usize, p: usize, f: usize| format!("{}.{f}", c * 1000 + p);
        let time_of = |p: usize| base.plus_millis(-HOUR_MS * (p as i64 + 1));
        let mut clients = Vec::new();
        for c in 0..CONNECTIONS {
            let (mn, pw) = mn_of(c);
            let packets: Vec<(String, Vec<u8>)> = (0..PACKETS)
                .map(|p| {
                    let qn = format!("{:017}", c * 1_000_000 + p);
                    let values: Vec<_> =
                        FACTORS.iter().enumerate().map(|(f, code)| (*code, value_of(c, p, f))).collect();
                    let packet = data_packet(&qn, &pw, &mn, 5, time_of(p), &values);
                    (qn, packet)
                })
                .collect();
            let addr = harness.addr;
            clients.push(tokio::spawn(async move {
                let stream = connect(addr).await;
                let (mut rd, mut wr) = stream.into_split();
                let sent: Vec<String> = packets.iter().map(|(qn, _)| qn.clone()).collect();
                let writer = tokio::spawn(async move {
                    // Several packets per write, cut at odd places, so frames straddle reads.
                    let stream: Vec<u8> = packets.into_iter().flat_map(|(_, p)| p).collect();
                    for chunk in stream.chunks(1000 + c * 37) {
                        wr.write_all(chunk).await.unwrap_or_else(|e| panic!("writing: {e}"));
                    }
                    wr
                });
                let replies = read_replies(&mut rd, PACKETS).await;
                let wr = writer.await.unwrap_or_else(|e| panic!("{e}"));
                drop((rd, wr));
                (sent, replies)
            }));
        }
        for (c, client) in clients.into_iter().enumerate() {
            let (sent, replies) = within(Duration::from_secs(40), "client", client)
                .await
                .unwrap_or_else(|e| panic!("client {c}: {e}"));
            assert!(replies.iter().all(|(cn, _)| cn == "9014"), "client {c}: {replies:?}");
            let mut replied: Vec<String> = replies.into_iter().map(|(_, qn)| qn).collect();
            replied.sort();
            assert_eq!(replied, sent, "client {c}: one 9014 per packet, with the packet's QN");
        }
        let exchanged = started.elapsed();
        let (collected, telemetry) = harness.stop().await;
        assert!(collected.dead_letters.is_empty(), "{:?}", collected.dead_letters.first());
        assert_eq!(collected.readings.len(), CONNECTIONS * PACKETS * FACTORS.len());
        let mut expected = HashMap::new();
        for c in 0..CONNECTIONS {
            let mn = mn_of(c).0;
            for p in 0..PACKETS {
                for (f, code) in FACTORS.iter().enumerate() {
                    let value: f64 = value_of(c, p, f).parse().unwrap_or_else(|e| panic!("{e}"));
                    expected.insert((mn.clone(), code.to_string(), time_of(p)), value);
                }
            }
        }
        let mut seen = HashSet::new();
        for r in &collected.readings {
            let key = (r.source.as_str().to_owned(), r.metric.as_str().to_owned(), r.event_time);
            let value = expected.get(&key).unwrap_or_else(|| panic!("unexpected reading {r:?}"));
            assert_eq!(r.value, *value, "{r:?}");
            assert!(seen.insert(key), "duplicate reading {r:?}");
        }
        assert_eq!(seen.len(), expected.len());
        assert_eq!(telemetry.gateway.replies.get(), (CONNECTIONS * PACKETS) as u64);
        assert_eq!(telemetry.gateway.connections.get(), 0);
        let text = telemetry.render().unwrap_or_else(|e| panic!("{e}"));
        let records = format!("argus_ingest_records_total{{transport=\"hj212_tcp\"}} {}", collected.readings.len());
        assert!(text.contains(&records), "{text}");
        eprintln!(
            "{} readings over {CONNECTIONS} connections in {} envelopes: exchanged in {exchanged:?}, total {:?}",
            collected.readings.len(),
            collected.envelopes,
            started.elapsed()
        );
    });
}

#[test]
fn bad_packets_become_dead_letters_with_reasons() {
    util::runtime().block_on(async {
        let harness =
            Harness::start(&settings(10, Duration::from_secs(30)), Limits::default()).await;
        let (mn, pw) = registered_points(&registry())
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no registered point"));
        let time = now().china_hour_start().plus_millis(-HOUR_MS);
        let values = |v: &str| vec![("a21026", v.to_owned()), ("a34013", "3.5".to_owned())];
        let good = |qn: &str, v: &str| data_packet(qn, &pw, &mn, 5, time, &values(v));

        let good1 = good("20260101000000001", "10.5");
        let mut bad_crc = good("20260101000000002", "11.5");
        let crc_at = bad_crc.len() - 3;
        bad_crc[crc_at] = if bad_crc[crc_at] == b'0' { b'1' } else { b'0' };
        let garbage = b"\x00\x01hello, not hj 212!\r\n".to_vec();
        let good2 = good("20260101000000003", "12.5");
        // Length field one less than the data segment.
        let mut bad_length = good("20260101000000004", "13.5");
        let stated: usize = std::str::from_utf8(&bad_length[2..6])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("length field"));
        bad_length[2..6].copy_from_slice(format!("{:04}", stated - 1).as_bytes());
        // Unregistered MN: accepted with any PW; Flag=4 asks for no reply.
        let unregistered = data_packet(
            "20260101000000005",
            "x",
            "GWUNREG01",
            4,
            time,
            &values("14.5"),
        );
        let wrong_pw = data_packet("20260101000000006", "000000", &mn, 5, time, &values("15.5"));
        let many: Vec<(String, String)> = (0..300)
            .map(|i| (format!("x{i:04}"), "1.25".to_owned()))
            .collect();
        let many: Vec<(&str, String)> = many.iter().map(|(c, v)| (c.as_str(), v.clone())).collect();
        let oversize = data_packet("20260101000000007", &pw, &mn, 5, time, &many);
        assert!(
            oversize.len() > 4096 + 12,
            "oversize packet is only {} bytes",
            oversize.len()
        );
        let good3 = good("20260101000000008", "16.5");

        let mut client = connect(harness.addr).await;
        let origin = format!(
            "tcp:{}",
            client.local_addr().unwrap_or_else(|e| panic!("{e}"))
        );
        // In small pieces: frames and garbage straddle reads.
        let bytes: Vec<u8> = [
            &good1,
            &bad_crc,
            &garbage,
            &good2,
            &bad_length,
            &unregistered,
            &wrong_pw,
            &oversize,
            &good3,
        ]
        .iter()
        .flat_map(|part| part.iter().copied())
        .collect();
        for chunk in bytes.chunks(97) {
            client
                .write_all(chunk)
                .await
                .unwrap_or_else(|e| panic!("writing: {e}"));
        }
        let replies = within(
            Duration::from_secs(10),
            "replies",
            read_replies(&mut client, 3),
        )
        .await;
        client.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
        let rest = within(Duration::from_secs(10), "close", read_to_close(&mut client)).await;
        assert!(
            rest.is_empty(),
            "unexpected replies: {}",
            String::from_utf8_lossy(&rest)
        );
        let replied: Vec<&str> = replies.iter().map(|(_, qn)| qn.as_str()).collect();
        assert_eq!(
            replied,
            [
                "20260101000000001",
                "20260101000000003",
                "20260101000000008"
            ]
        );
        assert!(replies.iter().all(|(cn, _)| cn == "9014"));

        let (collected, telemetry) = harness.stop().await;
        let got: Vec<(Reason, &[u8])> = collected
            .dead_letters
            .iter()
            .map(|d| (d.reason, d.raw.as_slice()))
            .collect();
        let want: Vec<(Reason, &[u8])> = vec![
            (Reason::BadCrc, bad_crc.as_slice()),
            (Reason::BadFrame, garbage.as_slice()),
            (Reason::BadLength, bad_length.as_slice()),
            (Reason::BadPassword, wrong_pw.as_slice()),
            (Reason::TooLong, oversize.as_slice()),
        ];
        assert_eq!(got.len(), want.len(), "{:#?}", collected.dead_letters);
        for (i, ((reason, raw), (want_reason, want_raw))) in got.iter().zip(&want).enumerate() {
            let d = &collected.dead_letters[i];
            assert_eq!(reason, want_reason, "dead letter {i}: {d:?}");
            assert!(
                raw == want_raw,
                "dead letter {i} ({reason}) raw: {:?}",
                String::from_utf8_lossy(raw)
            );
            assert_eq!(d.raw_len, want_raw.len());
            assert_eq!(d.origin, origin);
            assert_eq!(d.transport, argus_ingest::Transport::Hj212Tcp);
            assert!(!d.detail.is_empty());
        }
        let mut values: Vec<(String, f64)> = collected
            .readings
            .iter()
            .map(|r| (r.source.as_str().to_owned(), r.value))
            .filter(|(_, v)| *v != 3.5)
            .collect();
        values.sort_by(|a, b| a.1.total_cmp(&b.1));
        let want_values = vec![
            (mn.clone(), 10.5),
            (mn.clone(), 12.5),
            ("GWUNREG01".to_owned(), 14.5),
            (mn.clone(), 16.5),
        ];
        assert_eq!(values, want_values);
        assert_eq!(collected.readings.len(), 8);
        assert!(collected.readings.iter().all(|r| r.event_time == time));
        assert_eq!(telemetry.gateway.replies.get(), 3);
        let text = telemetry.render().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            text.contains(
                "argus_ingest_dead_letters_total{reason=\"bad_crc\",transport=\"hj212_tcp\"} 1"
            ),
            "{text}"
        );
    });
}

#[test]
fn replies_wait_for_the_acknowledgement() {
    util::runtime().block_on(async {
        let telemetry = Telemetry::new("test", 0).unwrap_or_else(|e| panic!("{e}"));
        let decoder = Arc::new(Decoder::new(Arc::new(registry()), DecodeOptions::default()));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let gateway = Gateway::from_listener(
            listener,
            &settings(10, Duration::from_secs(30)),
            decoder,
            telemetry.clone(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (tx, mut rx) = mpsc::channel::<Envelope>(4);
        let (held_tx, mut held_rx) = mpsc::unbounded_channel::<Envelope>();
        // The pipeline hands envelopes to the test instead of acknowledging them.
        let pipeline = tokio::spawn(async move {
            while let Some(envelope) = rx.recv().await {
                let _ = held_tx.send(envelope);
            }
            Collected::default()
        });
        let harness = Harness::spawn(gateway, tx, pipeline, telemetry);
        let time = now().china_hour_start();
        let packet =
            |qn: &str| data_packet(qn, "1", "GWACK01", 5, time, &[("a21026", "1.5".to_owned())]);
        let mut client = connect(harness.addr).await;

        client
            .write_all(&packet("20260101000000001"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let envelope = within(Duration::from_secs(5), "envelope", held_rx.recv())
            .await
            .unwrap_or_else(|| panic!("pipeline closed"));
        assert_eq!(envelope.records.len(), 1);
        let mut buf = [0u8; 256];
        let early = tokio::time::timeout(Duration::from_millis(300), client.read(&mut buf)).await;
        assert!(
            early.is_err(),
            "reply before the acknowledgement: {early:?}"
        );
        envelope.ack.done();
        let replies = within(
            Duration::from_secs(5),
            "reply",
            read_replies(&mut client, 1),
        )
        .await;
        assert_eq!(
            replies,
            [("9014".to_owned(), "20260101000000001".to_owned())]
        );

        // An envelope dropped without acknowledgement gets no reply: the logger sends again.
        client
            .write_all(&packet("20260101000000002"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let envelope = within(Duration::from_secs(5), "envelope", held_rx.recv())
            .await
            .unwrap_or_else(|| panic!("pipeline closed"));
        drop(envelope);
        let late = tokio::time::timeout(Duration::from_millis(300), client.read(&mut buf)).await;
        assert!(late.is_err(), "reply to a dropped envelope: {late:?}");
        drop(client);
        let (_, telemetry) = harness.stop().await;
        assert_eq!(telemetry.gateway.replies.get(), 1);
    });
}

#[test]
fn garbage_sender_is_cut_off_and_others_unharmed() {
    const PACKETS: usize = 50;
    util::runtime().block_on(async {
        let harness = Harness::start(&settings(10, Duration::from_secs(30)), Limits::default()).await;
        let addr = harness.addr;
        let garbage_client = tokio::spawn(async move {
            let mut stream = connect(addr).await;
            let origin = format!("tcp:{}", stream.local_addr().unwrap_or_else(|e| panic!("{e}")));
            let mut state: u32 = 12345;
            let mut written = 0usize;
            let started = Instant::now();
            let mut chunk = [0u8; 4096];
            loop {
                for b in chunk.iter_mut() {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    let byte = (state >> 16) as u8;
                    *b = if byte == b'#' { b'.' } else { byte };
                }
                if stream.write_all(&chunk).await.is_err() {
                    break;
                }
                written += chunk.len();
                assert!(written < 64 << 20, "garbage sender not cut off after {written} bytes");
            }
            (origin, written, started.elapsed())
        });
        let good_client = tokio::spawn(async move {
            let time = now().china_hour_start();
            let mut stream = connect(addr).await;
            let mut sent = Vec::new();
            for p in 0..PACKETS {
                let qn = format!("{:017}", p);
                let values: Vec<_> = FACTORS.iter().map(|code| (*code, format!("{p}.5"))).collect();
                stream
                    .write_all(&data_packet(&qn, "1", "GWGOOD01", 5, time.plus_millis(-HOUR_MS * p as i64), &values))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                sent.push(qn);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let replies = read_replies(&mut stream, PACKETS).await;
            let mut replied: Vec<String> = replies.into_iter().map(|(_, qn)| qn).collect();
            replied.sort();
            assert_eq!(replied, sent);
        });
        let (origin, written, took) = within(Duration::from_secs(20), "garbage sender", garbage_client)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        within(Duration::from_secs(20), "good client", good_client)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(harness.closed_eventually("garbage", 1).await, 1);
        let (collected, _) = harness.stop().await;
        assert_eq!(collected.readings.len(), PACKETS * FACTORS.len());
        assert!(collected.readings.iter().all(|r| r.source.as_str() == "GWGOOD01"));
        assert!(!collected.dead_letters.is_empty());
        let mut discarded = 0;
        for d in &collected.dead_letters {
            assert_eq!((d.origin.as_str(), d.reason), (origin.as_str(), Reason::BadFrame), "{d:?}");
            discarded += d.raw_len;
        }
        assert!(discarded > Limits::default().max_garbage_bytes && discarded <= written + 4096, "{discarded} of {written}");
        eprintln!("garbage sender cut off after {discarded} bytes discarded ({written} written) in {took:?}");
    });
}

/// Regression (issue 11, item 8): a garbage sender was cut at 64 KiB and what it had already
/// sent past that was never read: 81,920 of 118,992 bytes reached the dead letters.
#[test]
fn every_byte_of_a_garbage_sender_is_in_its_dead_letters() {
    const SENT: usize = 118_992;
    util::runtime().block_on(async {
        let harness =
            Harness::start(&settings(10, Duration::from_secs(30)), Limits::default()).await;
        let mut stream = connect(harness.addr).await;
        let origin = format!(
            "tcp:{}",
            stream.local_addr().unwrap_or_else(|e| panic!("{e}"))
        );
        let garbage: Vec<u8> = (0..SENT).map(|i| b"AT+CSQ\r\nOK\r\n"[i % 12]).collect();
        stream
            .write_all(&garbage)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        within(
            Duration::from_secs(10),
            "the cut-off",
            read_to_close(&mut stream),
        )
        .await;
        assert_eq!(harness.closed_eventually("garbage", 1).await, 1);
        let (collected, _) = harness.stop().await;
        let mine: Vec<_> = collected
            .dead_letters
            .iter()
            .filter(|d| d.origin == origin)
            .collect();
        assert!(
            mine.iter().all(|d| d.reason == Reason::BadFrame),
            "{mine:?}"
        );
        assert_eq!(
            mine.iter().map(|d| d.raw_len).sum::<usize>(),
            SENT,
            "{} dead letters",
            mine.len()
        );
    });
}

#[test]
fn idle_connection_is_closed() {
    util::runtime().block_on(async {
        let harness =
            Harness::start(&settings(10, Duration::from_secs(1)), Limits::default()).await;
        let addr = harness.addr;
        let silent = tokio::spawn(async move {
            let mut stream = connect(addr).await;
            let started = Instant::now();
            read_to_close(&mut stream).await;
            started.elapsed()
        });
        // A slowloris: a frame that never completes, one byte at a time.
        let slow = tokio::spawn(async move {
            let mut stream = connect(addr).await;
            stream
                .write_all(b"##0200QN=")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let started = Instant::now();
            let (mut rd, mut wr) = stream.into_split();
            let trickle = tokio::spawn(async move {
                while wr.write_all(b"1").await.is_ok()
                    && started.elapsed() < Duration::from_secs(10)
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
            let mut buf = [0u8; 64];
            while let Ok(n) = rd.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
            let took = started.elapsed();
            trickle.abort();
            took
        });
        let silent = within(Duration::from_secs(5), "silent", silent)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let slow = within(Duration::from_secs(5), "slowloris", slow)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for took in [silent, slow] {
            assert!(
                took >= Duration::from_millis(900) && took < Duration::from_secs(3),
                "closed after {took:?}"
            );
        }
        assert_eq!(harness.closed_eventually("idle", 2).await, 2);
        let (collected, _) = harness.stop().await;
        let [partial] = collected.dead_letters.as_slice() else {
            panic!("{:#?}", collected.dead_letters);
        };
        assert_eq!(partial.reason, Reason::BadFrame);
        assert!(partial.raw.starts_with(b"##0200QN=1"), "{partial:?}");
        assert!(partial.detail.contains("idle"), "{partial:?}");
    });
}

#[test]
fn connections_over_the_limit_are_refused() {
    util::runtime().block_on(async {
        let harness =
            Harness::start(&settings(2, Duration::from_secs(30)), Limits::default()).await;
        let time = now().china_hour_start();
        let packet = |mn: &str| {
            data_packet(
                "20260101000000001",
                "1",
                mn,
                5,
                time,
                &[("a21026", "1.5".to_owned())],
            )
        };
        // Served: each gets its reply.
        let mut first = connect(harness.addr).await;
        let mut second = connect(harness.addr).await;
        for (stream, mn) in [(&mut first, "GWLIM01"), (&mut second, "GWLIM02")] {
            stream
                .write_all(&packet(mn))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            within(Duration::from_secs(5), "reply", read_replies(stream, 1)).await;
        }
        // Over the limit: closed at once, whatever it sends.
        let mut third = connect(harness.addr).await;
        let _ = third.write_all(&packet("GWLIM03")).await;
        let rest = within(Duration::from_secs(5), "refusal", read_to_close(&mut third)).await;
        assert!(rest.is_empty());
        assert_eq!(harness.closed_eventually("limit", 1).await, 1);
        assert_eq!(harness.telemetry.gateway.connections.get(), 2);

        // A slot freed is a slot served.
        drop(first);
        within(Duration::from_secs(5), "slot freed", async {
            while harness.telemetry.gateway.connections.get() > 1 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        let mut fourth = connect(harness.addr).await;
        fourth
            .write_all(&packet("GWLIM04"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        within(
            Duration::from_secs(5),
            "reply",
            read_replies(&mut fourth, 1),
        )
        .await;

        // Shutdown closes the connections still open.
        let (collected, telemetry) = harness.stop().await;
        for stream in [&mut second, &mut fourth] {
            assert!(
                within(Duration::from_secs(5), "close", read_to_close(stream))
                    .await
                    .is_empty()
            );
        }
        let closed = |cause: &str| telemetry.gateway.closed.with_label_values(&[cause]).get();
        assert_eq!(
            (closed("eof"), closed("shutdown"), closed("limit")),
            (1, 2, 1)
        );
        let mut sources: Vec<&str> = collected
            .readings
            .iter()
            .map(|r| r.source.as_str())
            .collect();
        sources.sort_unstable();
        assert_eq!(sources, ["GWLIM01", "GWLIM02", "GWLIM04"]);
    });
}

/// Issue 11, item 3: 2,000 idle sockets from one address locked every data logger out. Now one
/// peer holding its limit of idle sockets does not keep a second peer out.
#[test]
fn one_peer_at_its_limit_does_not_keep_another_peer_out() {
    util::runtime().block_on(async {
        let mut s = settings(10, Duration::from_secs(30));
        s.max_connections_per_peer = 3;
        let harness = Harness::start(&s, Limits::default()).await;
        // The first peer (127.0.0.1) holds three idle sockets; its fourth is closed at once.
        let mut idle = Vec::new();
        for _ in 0..3 {
            idle.push(connect(harness.addr).await);
        }
        within(Duration::from_secs(5), "three open", async {
            while harness.telemetry.gateway.connections.get() < 3 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        let mut fourth = connect(harness.addr).await;
        let rest = within(
            Duration::from_secs(5),
            "refusal",
            read_to_close(&mut fourth),
        )
        .await;
        assert!(rest.is_empty());
        assert_eq!(harness.closed_eventually("peer_limit", 1).await, 1);

        // A second peer (127.0.0.2, loopback too) is served.
        let socket = tokio::net::TcpSocket::new_v4().unwrap_or_else(|e| panic!("{e}"));
        socket
            .bind(SocketAddr::from(([127, 0, 0, 2], 0)))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut other = socket
            .connect(harness.addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let time = now().china_hour_start();
        let packet = data_packet(
            "20260101000000001",
            "1",
            "GWPEER01",
            5,
            time,
            &[("a21026", "1.5".to_owned())],
        );
        other
            .write_all(&packet)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        within(Duration::from_secs(5), "reply", read_replies(&mut other, 1)).await;

        // A socket of the first peer closed is a slot for it again.
        drop(idle.pop());
        within(Duration::from_secs(5), "slot freed", async {
            while harness.telemetry.gateway.connections.get() > 3 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        let mut again = connect(harness.addr).await;
        let packet = data_packet(
            "20260101000000002",
            "1",
            "GWPEER02",
            5,
            time,
            &[("a21026", "1.5".to_owned())],
        );
        again
            .write_all(&packet)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        within(Duration::from_secs(5), "reply", read_replies(&mut again, 1)).await;
        let (collected, _) = harness.stop().await;
        assert_eq!(collected.readings.len(), 2);
    });
}
