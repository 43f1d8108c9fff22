//! The bytes of one connection turned into records, dead letters and replies, one read at a time.
//!
//! Pure (no I/O): the connection task feeds what it read and delivers the [`Batch`].
//!
//! Bytes the framer discards (garbage before `##`, a header whose frame is too long or does not
//! end where its length field says) are kept together with the garbage that follows them up to
//! the next `##`, so one broken packet becomes one dead letter holding all of its bytes.

use std::sync::Arc;

use argus_hj212::{FrameError, Framer, Packet};
use argus_ingest::{DeadLetter, Decoder, Reason, Record, Transport, MAX_RAW_BYTES};
use argus_model::Timestamp;
use tracing::debug;

use crate::Limits;

/// Bytes of a frame around its data segment: `##`, 4-digit length, CRC, CR LF.
pub(crate) const FRAMING_BYTES: usize = 12;

/// What one read produced.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Readings of the good packets.
    pub(crate) records: Vec<Record>,
    /// Bad packets and discarded bytes.
    pub(crate) dead_letters: Vec<DeadLetter>,
    /// Replies the good packets asked for, to send once the batch is acknowledged.
    pub(crate) replies: Vec<Vec<u8>>,
    /// Complete frames (good or bad).
    pub(crate) frames: u64,
    /// Bytes read.
    pub(crate) bytes: u64,
    /// Whether the framer returned anything (a frame or discarded bytes).
    pub(crate) progressed: bool,
}

impl Batch {
    /// Nothing to hand to the pipeline.
    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty() && self.dead_letters.is_empty()
    }
}

/// Discarded bytes waiting for the rest of their run (up to the next `##`).
#[derive(Debug)]
struct Discarded {
    reason: Reason,
    detail: String,
    raw: Vec<u8>,
    len: usize,
    received_at: Timestamp,
}

impl Discarded {
    fn new(reason: Reason, detail: String, bytes: &[u8], received_at: Timestamp) -> Self {
        let mut discarded = Self {
            reason,
            detail,
            raw: Vec::new(),
            len: 0,
            received_at,
        };
        discarded.extend(bytes);
        discarded
    }

    fn extend(&mut self, bytes: &[u8]) {
        let room = MAX_RAW_BYTES.saturating_sub(self.raw.len());
        self.raw.extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.len += bytes.len();
    }

    fn into_dead_letter(self, origin: &str) -> DeadLetter {
        let detail = format!("{}; {} bytes discarded", self.detail, self.len);
        DeadLetter::gathered(
            Transport::Hj212Tcp,
            origin,
            self.reason,
            &detail,
            self.received_at,
            self.raw,
            self.len,
        )
    }
}

/// Frames, decodes and judges the byte stream of one connection.
#[derive(Debug)]
pub(crate) struct StreamDecoder {
    framer: Framer,
    state: State,
}

/// Everything but the framer, so frames borrowed from it can be handled.
#[derive(Debug)]
struct State {
    decoder: Arc<Decoder>,
    origin: String,
    discarded: Option<Discarded>,
    /// Garbage frames since the last well-formed packet.
    bad_frames: usize,
    /// Garbage bytes since the last well-formed packet.
    garbage_bytes: usize,
}

impl StreamDecoder {
    /// A decoder for the stream from `origin` (`tcp:<peer>`), accepting data segments of up to
    /// `max_data_bytes`.
    pub(crate) fn new(decoder: Arc<Decoder>, origin: String, max_data_bytes: usize) -> Self {
        Self {
            framer: Framer::new(max_data_bytes.saturating_add(FRAMING_BYTES)),
            state: State {
                decoder,
                origin,
                discarded: None,
                bad_frames: 0,
                garbage_bytes: 0,
            },
        }
    }

    /// Bytes held: a frame not yet complete.
    pub(crate) fn buffered(&self) -> usize {
        self.framer.buffered()
    }

    /// Whether the peer sent garbage beyond `limits` since its last well-formed packet.
    pub(crate) fn is_garbage_sender(&self, limits: &Limits) -> bool {
        self.state.bad_frames > limits.max_bad_frames
            || self.state.garbage_bytes > limits.max_garbage_bytes
    }

    /// Feed the bytes of one read, received at `now`.
    pub(crate) fn feed(&mut self, mut data: &[u8], now: Timestamp) -> Batch {
        let mut batch = Batch {
            bytes: data.len() as u64,
            ..Batch::default()
        };
        while !data.is_empty() {
            let taken = self.framer.push(data);
            data = &data[taken..];
            let mut drained = false;
            while let Some(item) = self.framer.next_frame() {
                drained = true;
                self.state.item(item, now, &mut batch);
            }
            batch.progressed |= drained;
            if taken == 0 && !drained {
                // The framer promises to make room once full; should it not, the bytes are
                // dead-lettered rather than looping or vanishing.
                self.state.discard(
                    Reason::BadFrame,
                    "framer took no bytes".to_owned(),
                    data,
                    now,
                    &mut batch,
                );
                break;
            }
        }
        if self.framer.buffered() >= 2 {
            // The framer waits for the rest of a frame that starts with `##`: the run of
            // discarded bytes before it is over.
            self.state.flush(&mut batch);
        }
        batch
    }

    /// Bytes read after the peer was cut off: not framed, kept in the run of discarded bytes
    /// (dead-lettered by [`Self::finish`]).
    pub(crate) fn refuse(&mut self, bytes: &[u8], now: Timestamp) {
        self.state.garbage_bytes += bytes.len();
        match &mut self.state.discarded {
            Some(discarded) => discarded.extend(bytes),
            None => {
                let detail = "bytes sent after the peer was cut off as a garbage sender".to_owned();
                self.state.discarded = Some(Discarded::new(Reason::BadFrame, detail, bytes, now));
            }
        }
    }

    /// The connection is closing (`why`): everything still held becomes dead letters.
    pub(crate) fn finish(&mut self, why: &str, now: Timestamp) -> Batch {
        let mut batch = Batch::default();
        if let Some(left) = self.framer.finish() {
            let bytes = left.skipped();
            match &mut self.state.discarded {
                // A lone `#` after garbage is more of the same garbage.
                Some(discarded) if !bytes.starts_with(b"##") => discarded.extend(bytes),
                _ => {
                    self.state.flush(&mut batch);
                    let detail = format!("{left} when the connection closed ({why})");
                    self.state.discarded =
                        Some(Discarded::new(Reason::BadFrame, detail, bytes, now));
                }
            }
        }
        self.state.flush(&mut batch);
        batch
    }
}

impl State {
    /// Handle one item of the framer.
    fn item(&mut self, item: Result<&[u8], FrameError>, now: Timestamp, batch: &mut Batch) {
        match item {
            Ok(frame) => {
                self.flush(batch);
                batch.frames += 1;
                self.frame(frame, now, batch);
            }
            Err(FrameError::Garbage { skipped }) => {
                self.garbage_bytes += skipped.len();
                match &mut self.discarded {
                    Some(discarded) => discarded.extend(&skipped),
                    None => {
                        self.bad_frames += 1;
                        let detail = "bytes before ## that are not an hj 212 frame".to_owned();
                        self.discarded =
                            Some(Discarded::new(Reason::BadFrame, detail, &skipped, now));
                    }
                }
            }
            Err(e) => {
                self.flush(batch);
                let (reason, detail) = match &e {
                    FrameError::TooLong { .. } => (Reason::TooLong, e.to_string()),
                    FrameError::MissingCrLf { .. } => (
                        Reason::BadLength,
                        format!("{e}: the length field does not match the packet"),
                    ),
                    _ => (Reason::BadFrame, e.to_string()),
                };
                self.bad_frames += 1;
                self.garbage_bytes += e.skipped().len();
                self.discarded = Some(Discarded::new(reason, detail, e.skipped(), now));
            }
        }
    }

    /// Decode one complete frame.
    fn frame(&mut self, frame: &[u8], now: Timestamp, batch: &mut Batch) {
        let decoded = self.decoder.decode_hj212_packet(frame).and_then(|packet| {
            let readings = self.decoder.hj212_readings(&packet, now)?;
            Ok((readings, reply(&packet)))
        });
        match decoded {
            Ok((readings, reply)) => {
                self.bad_frames = 0;
                self.garbage_bytes = 0;
                batch
                    .records
                    .extend(readings.into_iter().map(Record::Reading));
                batch.replies.extend(reply);
            }
            Err(e) => {
                if matches!(
                    e.reason,
                    Reason::BadFrame | Reason::BadLength | Reason::BadCrc | Reason::TooLong
                ) {
                    self.bad_frames += 1;
                    self.garbage_bytes += frame.len();
                } else {
                    // Well-formed (the CRC matched) but refused: a logger, not a garbage sender.
                    self.bad_frames = 0;
                    self.garbage_bytes = 0;
                }
                debug!(origin = %self.origin, reason = %e.reason, detail = ?e.detail, "hj 212 packet refused");
                batch.dead_letters.push(DeadLetter::new(
                    Transport::Hj212Tcp,
                    self.origin.clone(),
                    e.reason,
                    e.detail,
                    now,
                    frame,
                ));
            }
        }
    }

    /// Start a new run of discarded bytes.
    fn discard(
        &mut self,
        reason: Reason,
        detail: String,
        bytes: &[u8],
        now: Timestamp,
        batch: &mut Batch,
    ) {
        self.flush(batch);
        self.bad_frames += 1;
        self.garbage_bytes += bytes.len();
        self.discarded = Some(Discarded::new(reason, detail, bytes, now));
    }

    /// The run of discarded bytes is over: dead-letter it.
    fn flush(&mut self, batch: &mut Batch) {
        if let Some(discarded) = self.discarded.take() {
            debug!(origin = %self.origin, reason = %discarded.reason, bytes = discarded.len, "hj 212 bytes discarded");
            batch
                .dead_letters
                .push(discarded.into_dead_letter(&self.origin));
        }
    }
}

/// The reply `packet` asks for, if any: a 9014 data reply to a data upload (CN 2xxx or 3xxx) with
/// the A bit of `Flag` set. Replies (9xxx) get none; the gateway executes no commands, so command
/// requests (1xxx) get none either.
fn reply(packet: &Packet<'_>) -> Option<Vec<u8>> {
    if !packet.needs_reply() || !packet.cn().starts_with(['2', '3']) {
        return None;
    }
    match argus_hj212::reply_9014(packet) {
        Ok(reply) => Some(reply),
        Err(e) => {
            debug!(mn = packet.mn(), error = %e, "cannot encode the 9014 reply");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use argus_hj212::{CpBuilder, Header};
    use argus_ingest::decode::TimeWindow;
    use argus_ingest::DecodeOptions;
    use argus_model::Registry;

    use super::*;

    const REGISTRY: &str = r#"
[county]
name = "t"
[[standards]]
id = "s"
name = "s"
[[towns]]
id = "t"
name = "t"
[[departments]]
id = "d"
name = "d"
head = "h"
[[teams]]
town = "t"
department = "d"
name = "n"
[[enterprises]]
id = "E"
name = "e"
industry = "boiler"
town = "t"
departments = ["d"]
[[enterprises.points]]
mn = "MN01"
name = "stack"
kind = "flue_gas_outlet"
pw = "654321"
o2_reference_pct = 9.0
"#;

    /// 2026-11-26T06:00:00Z, the `DataTime` 20261126140000 of the packets below.
    const NOW: Timestamp = Timestamp(1_795_672_800_000);

    fn new_stream() -> StreamDecoder {
        let registry =
            Registry::from_toml_str(REGISTRY, "t.toml").unwrap_or_else(|e| panic!("{e}"));
        let options = DecodeOptions {
            window: TimeWindow::default(),
            max_hj212_data_bytes: 1024,
            ..DecodeOptions::default()
        };
        let decoder = Arc::new(Decoder::new(Arc::new(registry), options));
        StreamDecoder::new(decoder, "tcp:127.0.0.1:9".to_owned(), 1024)
    }

    fn packet(qn: &str, pw: &str, flag: u16, factors: usize) -> Vec<u8> {
        let mut cp = CpBuilder::new().param("DataTime", "20261126140000");
        for i in 0..factors {
            cp = cp.factor(
                &format!("a2100{i}"),
                &[(argus_hj212::FieldKind::Rtd, "1.5")],
            );
        }
        let cp = cp.finish().unwrap_or_else(|e| panic!("{e}"));
        let header = Header {
            qn: Some(qn),
            st: Some("31"),
            cn: "2011",
            pw: Some(pw),
            mn: "MN01",
            flag: Some(flag),
            ..Header::default()
        };
        argus_hj212::encode(&header, &cp).unwrap_or_else(|e| panic!("{e}"))
    }

    fn feed_all(stream: &mut StreamDecoder, bytes: &[u8], chunk: usize) -> Batch {
        let mut all = Batch::default();
        for piece in bytes.chunks(chunk) {
            let batch = stream.feed(piece, NOW);
            all.records.extend(batch.records);
            all.dead_letters.extend(batch.dead_letters);
            all.replies.extend(batch.replies);
            all.frames += batch.frames;
            all.bytes += batch.bytes;
        }
        all
    }

    #[test]
    fn packets_fed_in_any_pieces_give_readings_and_replies() {
        let one = packet("20261126140000001", "654321", 5, 3);
        let two = packet("20261126140000002", "654321", 4, 2);
        let bytes = [one.as_slice(), two.as_slice()].concat();
        for chunk in [1, 7, bytes.len()] {
            let mut stream = new_stream();
            let batch = feed_all(&mut stream, &bytes, chunk);
            assert_eq!((batch.records.len(), batch.frames), (5, 2), "chunk {chunk}");
            assert!(batch.dead_letters.is_empty());
            assert_eq!(batch.bytes, bytes.len() as u64);
            // Only the packet with the A bit asks for a reply.
            let [reply] = batch.replies.as_slice() else {
                panic!("{:?}", batch.replies)
            };
            let reply = argus_hj212::decode(reply, &argus_hj212::DecodeOptions::default())
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                (reply.cn(), reply.qn()),
                ("9014", Some("20261126140000001"))
            );
            assert_eq!(stream.buffered(), 0);
        }
    }

    #[test]
    fn each_broken_packet_is_one_dead_letter_with_all_its_bytes() {
        let good = packet("20261126140000001", "654321", 5, 1);
        let garbage = b"AT+CSQ\r\nOK\r\n".to_vec();
        let mut bad_length = packet("20261126140000002", "654321", 5, 1);
        bad_length[5] += 1;
        let too_long = packet("20261126140000003", "654321", 5, 60);
        assert!(too_long.len() > 1024 + FRAMING_BYTES);
        let mut bad_crc = packet("20261126140000004", "654321", 5, 1);
        let at = bad_crc.len() - 3;
        bad_crc[at] = if bad_crc[at] == b'0' { b'1' } else { b'0' };
        let wrong_pw = packet("20261126140000005", "000000", 5, 1);
        let parts: [&[u8]; 7] = [
            &garbage,
            &good,
            &bad_length,
            &too_long,
            &bad_crc,
            &wrong_pw,
            &good,
        ];
        let bytes = parts.concat();
        for chunk in [3, 64, bytes.len()] {
            let mut stream = new_stream();
            let batch = feed_all(&mut stream, &bytes, chunk);
            let got: Vec<(Reason, &[u8])> = batch
                .dead_letters
                .iter()
                .map(|d| (d.reason, d.raw.as_slice()))
                .collect();
            let want: Vec<(Reason, &[u8])> = vec![
                (Reason::BadFrame, &garbage),
                (Reason::BadLength, &bad_length),
                (Reason::TooLong, &too_long),
                (Reason::BadCrc, &bad_crc),
                (Reason::BadPassword, &wrong_pw),
            ];
            assert_eq!(got, want, "chunk {chunk}");
            assert!(batch
                .dead_letters
                .iter()
                .all(|d| d.origin == "tcp:127.0.0.1:9"));
            assert_eq!((batch.records.len(), batch.replies.len()), (2, 2));
            assert!(!stream.is_garbage_sender(&Limits::default()));
        }
    }

    #[test]
    fn a_garbage_run_is_one_dead_letter_and_trips_the_limit() {
        let limits = Limits {
            max_garbage_bytes: 1000,
            ..Limits::default()
        };
        let mut stream = new_stream();
        let mut dead_letters = Vec::new();
        for _ in 0..10 {
            let batch = stream.feed(&[b'x'; 150], NOW);
            assert!(batch.progressed);
            dead_letters.extend(batch.dead_letters);
        }
        assert!(dead_letters.is_empty(), "the run is not over yet");
        assert!(stream.is_garbage_sender(&limits));
        let batch = stream.finish("garbage", NOW);
        let [d] = batch.dead_letters.as_slice() else {
            panic!("{:?}", batch.dead_letters)
        };
        assert_eq!(
            (d.reason, d.raw_len, d.raw.len()),
            (Reason::BadFrame, 1500, 1500)
        );
        assert!(d.detail.contains("1500 bytes discarded"), "{}", d.detail);

        // Too many bad frames in a row trip it too; one well-formed packet resets the count.
        let mut stream = new_stream();
        let mut bad_crc = packet("20261126140000004", "654321", 5, 1);
        let at = bad_crc.len() - 3;
        bad_crc[at] = if bad_crc[at] == b'0' { b'1' } else { b'0' };
        let limits = Limits::default();
        for _ in 0..limits.max_bad_frames {
            let _ = stream.feed(&bad_crc, NOW);
        }
        assert!(!stream.is_garbage_sender(&limits));
        let _ = stream.feed(&packet("20261126140000005", "000000", 5, 1), NOW);
        for _ in 0..limits.max_bad_frames {
            let _ = stream.feed(&bad_crc, NOW);
        }
        assert!(!stream.is_garbage_sender(&limits));
        let _ = stream.feed(&bad_crc, NOW);
        assert!(stream.is_garbage_sender(&limits));
    }

    #[test]
    fn a_partial_frame_is_dead_lettered_when_the_connection_closes() {
        let good = packet("20261126140000001", "654321", 5, 1);
        let mut stream = new_stream();
        let batch = stream.feed(&good[..20], NOW);
        assert!(!batch.progressed && batch.is_empty());
        assert_eq!(stream.buffered(), 20);
        let batch = stream.finish("idle", NOW);
        let [d] = batch.dead_letters.as_slice() else {
            panic!("{:?}", batch.dead_letters)
        };
        assert_eq!(
            (d.reason, d.raw.as_slice()),
            (Reason::BadFrame, &good[..20])
        );
        assert!(d.detail.contains("(idle)"), "{}", d.detail);
        assert!(stream.finish("eof", NOW).dead_letters.is_empty());
    }
}
