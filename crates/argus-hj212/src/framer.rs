//! Cutting a byte stream (a TCP connection of a data logger) into frames, with bounded memory.

use crate::error::FrameError;

/// Bytes the framer may hold beyond the longest frame.
const SLACK: usize = 16;

/// Smallest possible frame: `##dddd`, CRC, CR LF around an empty data segment.
const MIN_FRAME_LEN: usize = 12;

/// An incremental framer: push bytes as they arrive, take frames out.
///
/// It looks for `##`, reads the 4-digit length, waits for the rest of the frame and checks that
/// it ends with CR LF. Bytes before `##` are returned as [`FrameError::Garbage`]; a bad length
/// field, a frame longer than the maximum or a frame not ending with CR LF is an error that skips
/// the header and resumes the search after it. Each error carries the bytes it discarded, so the
/// caller can dead-letter them. The CRC and the fields are not checked: that is
/// [`crate::decode`]'s job.
///
/// Memory is bounded: the framer never holds more than `max_frame_len + 16` bytes, and
/// [`Framer::push`] takes only what fits. Feed it like this:
///
/// ```
/// use argus_hj212::Framer;
/// let mut framer = Framer::new(1024);
/// let mut frames = Vec::new();
/// let mut input: &[u8] = b"junk##0007CP=&&&&ABCD\r\n";
/// while !input.is_empty() {
///     let taken = framer.push(input);
///     input = &input[taken..];
///     while let Some(item) = framer.next_frame() {
///         match item {
///             Ok(frame) => frames.push(frame.to_vec()),
///             Err(e) => assert_eq!(e.skipped(), b"junk"),
///         }
///     }
/// }
/// assert_eq!(frames, [b"##0007CP=&&&&ABCD\r\n".to_vec()]);
/// ```
#[derive(Debug, Clone)]
pub struct Framer {
    buf: Vec<u8>,
    /// Start of the bytes not yet returned.
    pos: usize,
    max_frame_len: usize,
    capacity: usize,
}

impl Framer {
    /// A framer for frames of at most `max_frame_len` bytes, `##` to CR LF included (a data
    /// segment of `max_frame_len - 12` bytes).
    pub fn new(max_frame_len: usize) -> Self {
        let capacity = max_frame_len.max(MIN_FRAME_LEN) + SLACK;
        Self {
            buf: Vec::with_capacity(capacity),
            pos: 0,
            max_frame_len,
            capacity,
        }
    }

    /// The longest frame accepted.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Bytes held and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Take as many bytes of `data` as fit; returns how many. Call [`Framer::next_frame`] until
    /// it returns `None`, then push the rest: once the buffer is full, `next_frame` always makes
    /// room.
    #[must_use = "push takes only what fits; push the rest after draining next_frame"]
    pub fn push(&mut self, data: &[u8]) -> usize {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 0 && self.buf.len() + data.len() > self.capacity {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let taken = data.len().min(self.capacity - self.buf.len());
        self.buf.extend_from_slice(&data[..taken]);
        taken
    }

    /// The next frame (`##` to CR LF, borrowed until the next call) or error, or `None` if more
    /// bytes are needed.
    pub fn next_frame(&mut self) -> Option<Result<&[u8], FrameError>> {
        let rest = &self.buf[self.pos..];
        if rest.is_empty() {
            return None;
        }
        // Skip to the next `##`; within a run of `#`, to its last two (`###0100` is `#`, then a
        // frame); keep a final `#` that may start one.
        let start = match rest.windows(2).position(|w| w == b"##") {
            Some(mut at) => {
                while rest.get(at + 2) == Some(&b'#') {
                    at += 1;
                }
                at
            }
            None if rest.ends_with(b"#") => rest.len() - 1,
            None => rest.len(),
        };
        if start > 0 {
            return Some(Err(FrameError::Garbage {
                skipped: self.take(start),
            }));
        }
        let digits = rest.get(2..6)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return Some(Err(FrameError::BadLength {
                skipped: self.take(2),
            }));
        }
        let data_len = digits
            .iter()
            .fold(0usize, |acc, &d| acc * 10 + usize::from(d - b'0'));
        let len = data_len + MIN_FRAME_LEN;
        if len > self.max_frame_len {
            return Some(Err(FrameError::TooLong {
                len,
                max: self.max_frame_len,
                skipped: self.take(6),
            }));
        }
        let frame = rest.get(..len)?;
        if !frame.ends_with(b"\r\n") {
            return Some(Err(FrameError::MissingCrLf {
                len,
                skipped: self.take(6),
            }));
        }
        let start = self.pos;
        self.pos += len;
        self.buf.get(start..start + len).map(Ok)
    }

    /// The stream ended: the bytes still held, if any, as [`FrameError::Truncated`]. The framer is
    /// empty afterwards.
    pub fn finish(&mut self) -> Option<FrameError> {
        let left = self.buffered();
        (left > 0).then(|| FrameError::Truncated {
            skipped: self.take(left),
        })
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let skipped = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &[u8] = b"##0007CP=&&&&ABCD\r\n";
    const B: &[u8] = b"##0012CN=1;CP=&&&&1234\r\n";

    /// Push everything (in chunks of `chunk` bytes), collect frames and errors.
    fn run(framer: &mut Framer, input: &[u8], chunk: usize) -> Vec<Result<Vec<u8>, FrameError>> {
        let mut out = Vec::new();
        for mut piece in input.chunks(chunk.max(1)) {
            while !piece.is_empty() {
                let taken = framer.push(piece);
                piece = &piece[taken..];
                while let Some(item) = framer.next_frame() {
                    out.push(item.map(<[u8]>::to_vec));
                }
            }
        }
        out
    }

    #[test]
    fn frames_back_to_back_and_split_anywhere() {
        let input = [A, B, A].concat();
        for chunk in 1..=input.len() {
            let mut framer = Framer::new(64);
            let got = run(&mut framer, &input, chunk);
            assert_eq!(
                got,
                [Ok(A.to_vec()), Ok(B.to_vec()), Ok(A.to_vec())],
                "chunk {chunk}"
            );
            assert_eq!(framer.finish(), None);
        }
    }

    #[test]
    fn garbage_before_and_between_frames_is_reported() {
        let input = [b"\x00junk#".as_slice(), A, b"\r\n", B].concat();
        let mut framer = Framer::new(64);
        let got = run(&mut framer, &input, input.len());
        assert_eq!(
            got,
            [
                Err(FrameError::Garbage {
                    skipped: b"\x00junk#".to_vec()
                }),
                Ok(A.to_vec()),
                Err(FrameError::Garbage {
                    skipped: b"\r\n".to_vec()
                }),
                Ok(B.to_vec()),
            ]
        );
        assert_eq!(
            got[0].as_ref().err().map(FrameError::reason_code),
            Some("garbage")
        );
    }

    #[test]
    fn a_final_hash_waits_for_the_next_byte() {
        let mut framer = Framer::new(64);
        assert_eq!(
            run(&mut framer, b"xy#", 3),
            [Err(FrameError::Garbage {
                skipped: b"xy".to_vec()
            })]
        );
        assert_eq!(framer.buffered(), 1);
        assert_eq!(run(&mut framer, &A[1..], 100), [Ok(A.to_vec())]);
    }

    #[test]
    fn oversize_frame_is_refused_and_the_stream_resyncs() {
        // A frame of 12 + 100 bytes with a max of 64: the header is skipped, its body is
        // garbage, the next frame is found.
        let body = vec![b'x'; 104];
        let input = [b"##0100".as_slice(), &body, b"\r\n", A].concat();
        let mut framer = Framer::new(64);
        let got = run(&mut framer, &input, 7);
        assert_eq!(
            got[0],
            Err(FrameError::TooLong {
                len: 112,
                max: 64,
                skipped: b"##0100".to_vec()
            })
        );
        assert_eq!(got.last(), Some(&Ok(A.to_vec())));
        let garbage: usize = got[1..got.len() - 1]
            .iter()
            .map(|item| match item {
                Err(FrameError::Garbage { skipped }) => skipped.len(),
                other => panic!("expected garbage, got {other:?}"),
            })
            .sum();
        assert_eq!(garbage, 106);
        assert!(framer.buffered() == 0);
    }

    #[test]
    fn bad_length_and_missing_crlf_skip_the_header() {
        let mut framer = Framer::new(64);
        let got = run(&mut framer, &[b"##00x7".as_slice(), A].concat(), 100);
        assert_eq!(
            got,
            [
                Err(FrameError::BadLength {
                    skipped: b"##".to_vec()
                }),
                Err(FrameError::Garbage {
                    skipped: b"00x7".to_vec()
                }),
                Ok(A.to_vec()),
            ]
        );
        // Length one too short: the frame does not end with CR LF where the length says.
        let wrong = b"##0006CP=&&&&ABCD\r\n";
        let got = run(&mut framer, &[wrong.as_slice(), A].concat(), 100);
        assert_eq!(
            got,
            [
                Err(FrameError::MissingCrLf {
                    len: 18,
                    skipped: b"##0006".to_vec()
                }),
                Err(FrameError::Garbage {
                    skipped: b"CP=&&&&ABCD\r\n".to_vec()
                }),
                Ok(A.to_vec()),
            ]
        );
        assert_eq!(
            got[0].as_ref().err().map(FrameError::reason_code),
            Some("missing_crlf")
        );
    }

    #[test]
    fn a_truncated_frame_is_returned_by_finish() {
        let mut framer = Framer::new(64);
        assert_eq!(run(&mut framer, &A[..10], 3), []);
        assert_eq!(
            framer.finish(),
            Some(FrameError::Truncated {
                skipped: A[..10].to_vec()
            })
        );
        assert_eq!(framer.finish(), None);
        assert_eq!(run(&mut framer, A, 3), [Ok(A.to_vec())]);
    }

    #[test]
    fn memory_stays_bounded_under_a_flood() {
        let mut framer = Framer::new(64);
        let flood = vec![b'#'; 10_000];
        let mut input = flood.as_slice();
        let mut skipped = 0;
        while !input.is_empty() {
            let taken = framer.push(input);
            assert!(taken > 0 || framer.buffered() > 0);
            input = &input[taken..];
            assert!(framer.buffered() <= 64 + SLACK);
            while let Some(item) = framer.next_frame() {
                skipped += item.err().map_or(0, |e| e.skipped().len());
            }
        }
        skipped += framer.finish().map_or(0, |e| e.skipped().len());
        assert_eq!(skipped, 10_000);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any bytes in any chunks: every byte comes out exactly once, as a frame or in an
        /// error, and the buffer stays bounded.
        #[test]
        fn every_byte_is_accounted_for(
            parts in proptest::collection::vec(
                prop_oneof![Just(A.to_vec()), Just(B.to_vec()), proptest::collection::vec(any::<u8>(), 0..30)],
                0..10,
            ),
            chunk in 1usize..40,
            max in 0usize..80,
        ) {
            let input = parts.concat();
            let mut framer = Framer::new(max);
            let mut out = Vec::new();
            for item in run(&mut framer, &input, chunk) {
                match item {
                    Ok(frame) => {
                        prop_assert!(frame.starts_with(b"##") && frame.ends_with(b"\r\n"));
                        prop_assert!(frame.len() <= max);
                        out.extend_from_slice(&frame);
                    }
                    Err(e) => out.extend_from_slice(e.skipped()),
                }
                prop_assert!(framer.buffered() <= max.max(MIN_FRAME_LEN) + SLACK);
            }
            if let Some(e) = framer.finish() {
                out.extend_from_slice(e.skipped());
            }
            prop_assert_eq!(out, input);
        }
    }
}
