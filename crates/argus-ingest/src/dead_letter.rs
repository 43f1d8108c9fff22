//! Dead letters: inputs that could not be decoded, kept with their raw bytes and the reason, to
//! be published on the dead-letter topic and stored for staff to see bad feeds.

use std::fmt;

use argus_model::Timestamp;

use crate::Transport;

/// At most this many bytes of a bad input are kept; `raw_len` tells the original size.
pub const MAX_RAW_BYTES: usize = 16 * 1024;
/// A dead letter's detail is cut to this many bytes (with a marker saying how much was cut):
/// the decoder's message can quote the input, and the input can be huge.
pub const MAX_DETAIL_BYTES: usize = 1024;
/// A dead letter's origin (a topic, a peer) is cut to this many bytes.
pub const MAX_ORIGIN_BYTES: usize = 512;

/// `text` cut to at most `max` bytes on a character boundary, with a marker naming the bytes
/// cut: what every text taken from input is bounded with before it is stored, published or
/// logged.
pub fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let marker = format!("... ({} bytes cut)", text.len());
    let mut end = max.saturating_sub(marker.len());
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{marker}", &text[..end])
}

/// Why an input was refused. A bounded set: used as a metric label and a stored code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Not JSON, or JSON with a number out of range.
    BadJson,
    /// JSON of the wrong shape or types.
    BadSchema,
    /// A value that is not a finite number.
    NonFinite,
    /// A timestamp that cannot be parsed.
    BadTimestamp,
    /// A timestamp absurdly far from the time of receipt.
    TimestampOutOfRange,
    /// HJ 212 framing broken.
    BadFrame,
    /// HJ 212 length field differs from the data length.
    BadLength,
    /// HJ 212 packet longer than allowed.
    TooLong,
    /// HJ 212 CRC mismatch.
    BadCrc,
    /// HJ 212 header or CP field malformed.
    BadField,
    /// HJ 212 value or flag that cannot be a reading.
    BadValue,
    /// HJ 212 PW does not match the registry.
    BadPassword,
    /// Payload larger than the transport allows.
    Oversize,
    /// The payload names another enterprise or source than the topic it was published on.
    TopicMismatch,
    /// An event names an enterprise or source the registry does not know.
    Unregistered,
    /// A JSON object names a key twice, or an HJ 212 factor gives a field twice: which one
    /// counts would be a guess.
    DuplicateKey,
}

impl Reason {
    /// Every reason, for metrics initialisation and documentation.
    pub const ALL: [Reason; 16] = [
        Reason::BadJson,
        Reason::BadSchema,
        Reason::NonFinite,
        Reason::BadTimestamp,
        Reason::TimestampOutOfRange,
        Reason::BadFrame,
        Reason::BadLength,
        Reason::TooLong,
        Reason::BadCrc,
        Reason::BadField,
        Reason::BadValue,
        Reason::BadPassword,
        Reason::Oversize,
        Reason::TopicMismatch,
        Reason::Unregistered,
        Reason::DuplicateKey,
    ];

    /// snake_case code.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::BadJson => "bad_json",
            Reason::BadSchema => "bad_schema",
            Reason::NonFinite => "non_finite",
            Reason::BadTimestamp => "bad_timestamp",
            Reason::TimestampOutOfRange => "timestamp_out_of_range",
            Reason::BadFrame => "bad_frame",
            Reason::BadLength => "bad_length",
            Reason::TooLong => "too_long",
            Reason::BadCrc => "bad_crc",
            Reason::BadField => "bad_field",
            Reason::BadValue => "bad_value",
            Reason::BadPassword => "bad_password",
            Reason::Oversize => "oversize",
            Reason::TopicMismatch => "topic_mismatch",
            Reason::Unregistered => "unregistered",
            Reason::DuplicateKey => "duplicate_key",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One refused input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Transport it arrived on.
    pub transport: Transport,
    /// Where exactly: `kafka:argus.readings/2@1234`, `mqtt:argus/v1/hj212/MN1`, `tcp:10.0.0.5:4100`.
    pub origin: String,
    /// Why it was refused.
    pub reason: Reason,
    /// The decoder's message, with position and context.
    pub detail: String,
    /// When Argus received it.
    pub received_at: Timestamp,
    /// The input's bytes, at most [`MAX_RAW_BYTES`].
    pub raw: Vec<u8>,
    /// The input's full length.
    pub raw_len: usize,
}

impl DeadLetter {
    /// Build a dead letter, keeping at most [`MAX_RAW_BYTES`] of `raw`, [`MAX_DETAIL_BYTES`] of
    /// the detail and [`MAX_ORIGIN_BYTES`] of the origin: every dead letter fits a Kafka message
    /// of the default size limit, whatever the input.
    pub fn new(
        transport: Transport,
        origin: String,
        reason: Reason,
        detail: String,
        received_at: Timestamp,
        raw: &[u8],
    ) -> Self {
        let kept = &raw[..raw.len().min(MAX_RAW_BYTES)];
        Self {
            transport,
            origin: bounded(&origin, MAX_ORIGIN_BYTES),
            reason,
            detail: bounded(&detail, MAX_DETAIL_BYTES),
            received_at,
            raw: kept.to_vec(),
            raw_len: raw.len(),
        }
    }

    /// A dead letter of bytes gathered elsewhere (at most [`MAX_RAW_BYTES`] of them kept) from
    /// an input of `raw_len` bytes, its texts bounded like [`DeadLetter::new`]'s.
    pub fn gathered(
        transport: Transport,
        origin: &str,
        reason: Reason,
        detail: &str,
        received_at: Timestamp,
        mut raw: Vec<u8>,
        raw_len: usize,
    ) -> Self {
        raw.truncate(MAX_RAW_BYTES);
        Self {
            transport,
            origin: bounded(origin, MAX_ORIGIN_BYTES),
            reason,
            detail: bounded(detail, MAX_DETAIL_BYTES),
            received_at,
            raw,
            raw_len,
        }
    }

    /// Metadata as (name, value) pairs, for Kafka headers: the message value is the raw bytes.
    pub fn headers(&self) -> [(&'static str, String); 6] {
        [
            ("argus-transport", self.transport.as_str().to_owned()),
            ("argus-origin", self.origin.clone()),
            ("argus-reason", self.reason.as_str().to_owned()),
            ("argus-detail", self.detail.clone()),
            ("argus-received-at", self.received_at.to_rfc3339()),
            ("argus-raw-len", self.raw_len.to_string()),
        ]
    }
}

/// How many of `letters` there are of each reason, in order of first appearance: what the
/// sources count per batch in `argus_ingest_dead_letters_total{reason}`.
pub fn count_by_reason(letters: &[DeadLetter]) -> Vec<(Reason, u64)> {
    let mut counts: Vec<(Reason, u64)> = Vec::new();
    for letter in letters {
        match counts
            .iter_mut()
            .find(|(reason, _)| *reason == letter.reason)
        {
            Some((_, n)) => *n += 1,
            None => counts.push((letter.reason, 1)),
        }
    }
    counts
}

#[cfg(test)]
mod bounded_tests {
    use super::*;

    /// Regression (issue 11, item 1): a ~990 KB unknown field name made a dead letter whose
    /// detail header Kafka refused, and the pipeline retried it forever.
    #[test]
    fn a_huge_field_name_gives_a_dead_letter_that_fits_a_kafka_message() {
        let name = "\u{1}".repeat(340_000) + &"K".repeat(650_000);
        let detail = format!("unknown field {name:?} (expected source, ts, values)");
        let raw = format!("{{{name:?}: 1}}");
        let letter = DeadLetter::new(
            Transport::Kafka,
            "kafka:".to_owned() + &"t".repeat(100_000),
            Reason::BadSchema,
            detail,
            Timestamp(0),
            raw.as_bytes(),
        );
        assert!(
            letter.detail.len() <= MAX_DETAIL_BYTES,
            "{}",
            letter.detail.len()
        );
        assert!(
            letter.detail.starts_with("unknown field \"\\u{1}"),
            "{}",
            &letter.detail[..40]
        );
        assert!(letter.detail.ends_with("bytes cut)"), "{}", letter.detail);
        assert!(letter.origin.len() <= MAX_ORIGIN_BYTES);
        let headers: usize = letter
            .headers()
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum();
        assert!(headers + letter.raw.len() < 20 * 1024, "{headers}");
        assert_eq!(letter.raw_len, raw.len());
    }

    #[test]
    fn bounded_cuts_on_a_character_boundary_and_keeps_short_text() {
        assert_eq!(bounded("short", 10), "short");
        let cut = bounded(&"排放".repeat(1000), 100);
        assert!(
            cut.len() <= 100 && cut.ends_with("(6000 bytes cut)"),
            "{cut}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_bytes_are_capped_and_codes_are_unique() {
        let big = vec![b'x'; MAX_RAW_BYTES + 10];
        let dl = DeadLetter::new(
            Transport::Mqtt,
            "mqtt:t".into(),
            Reason::Oversize,
            "d".into(),
            Timestamp(0),
            &big,
        );
        assert_eq!(
            (dl.raw.len(), dl.raw_len),
            (MAX_RAW_BYTES, MAX_RAW_BYTES + 10)
        );
        assert_eq!(dl.headers()[2], ("argus-reason", "oversize".to_owned()));
        let letter = |reason| {
            DeadLetter::new(
                Transport::Kafka,
                String::new(),
                reason,
                String::new(),
                Timestamp(0),
                b"",
            )
        };
        let letters = [
            letter(Reason::BadCrc),
            letter(Reason::BadJson),
            letter(Reason::BadCrc),
        ];
        assert_eq!(
            count_by_reason(&letters),
            vec![(Reason::BadCrc, 2), (Reason::BadJson, 1)]
        );
        let mut codes: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Reason::ALL.len());
    }
}
