//! Typed errors of decoding, encoding, framing and conversion to readings, each with a bounded
//! reason code for metric labels and dead letters.

use thiserror::Error;

/// Longest piece of input text copied into an error (field names, values), in characters.
const MAX_QUOTED_CHARS: usize = 64;

/// Copy at most [`MAX_QUOTED_CHARS`] characters of input text into an error.
pub(crate) fn quote(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

/// Why a packet could not be decoded. Offsets are byte offsets from the start of the frame
/// (the first `#`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The frame itself is malformed: no `##`, a length field that is not 4 digits, a CRC that is
    /// not 4 hex digits, a line ending other than CR LF, too short, or a data segment that is not
    /// UTF-8.
    #[error("bad frame at byte {offset}: {reason}")]
    BadFrame {
        /// Where the problem is.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The length field does not match the length of the data segment.
    #[error("bad length: stated {stated}, actual {actual}")]
    BadLength {
        /// The length field.
        stated: usize,
        /// The length of the data segment received.
        actual: usize,
    },
    /// The stated length of the data segment exceeds [`crate::DecodeOptions::max_data_len`].
    #[error("data segment too long: {len} bytes, max {max}")]
    TooLong {
        /// The stated length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The CRC sent does not match the CRC of the data segment.
    #[error("bad crc: stated 0x{stated:04X}, computed 0x{computed:04X}")]
    BadCrc {
        /// The CRC in the packet.
        stated: u16,
        /// The CRC of the data segment received.
        computed: u16,
    },
    /// A field of the data segment is missing, duplicated or malformed.
    #[error("bad field {field} at byte {offset}: {reason}")]
    BadField {
        /// Where the field starts, or for a missing field where the header ends.
        offset: usize,
        /// The field (`MN`, `Flag`, `DataTime`, `CP`, or an unknown header key as sent).
        field: String,
        /// What is wrong.
        reason: &'static str,
    },
}

impl DecodeError {
    /// A bounded label for metrics and dead letters: `bad_frame`, `bad_length`, `too_long`,
    /// `bad_crc` or `bad_field`.
    pub fn reason_code(&self) -> &'static str {
        match self {
            DecodeError::BadFrame { .. } => "bad_frame",
            DecodeError::BadLength { .. } => "bad_length",
            DecodeError::TooLong { .. } => "too_long",
            DecodeError::BadCrc { .. } => "bad_crc",
            DecodeError::BadField { .. } => "bad_field",
        }
    }

    pub(crate) fn field(offset: usize, field: &str, reason: &'static str) -> Self {
        DecodeError::BadField {
            offset,
            field: quote(field),
            reason,
        }
    }
}

/// Why a packet could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The data segment does not fit the 4-digit length field.
    #[error("data segment too long: {len} bytes, max 9999")]
    TooLong {
        /// Length of the data segment that would have been sent.
        len: usize,
    },
    /// A value cannot be written without changing the meaning of the packet.
    #[error("cannot encode {field}: {reason}")]
    BadValue {
        /// The field (`MN`, a CP key, a factor code).
        field: String,
        /// What is wrong.
        reason: &'static str,
    },
}

impl EncodeError {
    pub(crate) fn value(field: &str, reason: &'static str) -> Self {
        EncodeError::BadValue {
            field: quote(field),
            reason,
        }
    }
}

/// Why a decoded packet could not be turned into readings.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReadingError {
    /// A data packet (or a packet with values) has no `DataTime` in its CP.
    #[error("packet cn={cn} from mn {mn} has no DataTime")]
    MissingDataTime {
        /// The packet's MN.
        mn: String,
        /// The packet's CN.
        cn: String,
    },
    /// A value is not a finite number.
    #[error("factor {code}: {field} value {value:?} is not a finite number")]
    BadValue {
        /// The factor code as sent.
        code: String,
        /// The field suffix (`Rtd`, `Avg`).
        field: &'static str,
        /// The value as sent.
        value: String,
    },
    /// A factor gives the same field twice (`a21026-Rtd=1;a21026-Rtd=2`): which one the logger
    /// meant would be a guess.
    #[error("factor {code}: field {field} given twice")]
    RepeatedField {
        /// The factor code as sent.
        code: String,
        /// The field suffix as sent.
        field: String,
    },
    /// A `-Flag` value is not one of the HJ 212 data flags.
    #[error("factor {code}: unknown data flag {flag:?}")]
    BadFlag {
        /// The factor code as sent.
        code: String,
        /// The flag as sent.
        flag: String,
    },
}

impl ReadingError {
    /// A bounded label for metrics and dead letters: `missing_data_time`, `bad_value`,
    /// `repeated_field` or `bad_flag`.
    pub fn reason_code(&self) -> &'static str {
        match self {
            ReadingError::MissingDataTime { .. } => "missing_data_time",
            ReadingError::BadValue { .. } => "bad_value",
            ReadingError::RepeatedField { .. } => "repeated_field",
            ReadingError::BadFlag { .. } => "bad_flag",
        }
    }
}

/// Why bytes of a stream were not returned as a frame by [`crate::Framer`]. Every variant carries
/// the bytes it discarded, so the caller can dead-letter them; every input byte ends up in exactly
/// one frame or one error.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// Bytes before the next `##` (or, at the end of the buffered input, bytes that cannot start
    /// one).
    #[error("skipped {} bytes of garbage before ##", skipped.len())]
    Garbage {
        /// The bytes skipped.
        skipped: Vec<u8>,
    },
    /// `##` not followed by 4 decimal digits; the `##` is skipped and the search resumes after it.
    #[error("## not followed by a 4-digit length")]
    BadLength {
        /// The `##` skipped.
        skipped: Vec<u8>,
    },
    /// The frame the length field announces is longer than the framer's maximum; the header
    /// (`##` and the length) is skipped and the search resumes after it.
    #[error("frame too long: {len} bytes, max {max}")]
    TooLong {
        /// Length of the whole frame announced, `##` to CR LF.
        len: usize,
        /// The framer's maximum.
        max: usize,
        /// The header skipped.
        skipped: Vec<u8>,
    },
    /// The bytes where the length field puts the end of the frame are not CR LF (a wrong length
    /// field, or a packet without its line ending); the header is skipped and the search resumes
    /// after it.
    #[error("frame of {len} bytes does not end with cr lf")]
    MissingCrLf {
        /// Length of the whole frame announced, `##` to CR LF.
        len: usize,
        /// The header skipped.
        skipped: Vec<u8>,
    },
    /// Bytes left over when the stream ended ([`crate::Framer::finish`]): a truncated frame.
    #[error("stream ended inside a frame: {} bytes left over", skipped.len())]
    Truncated {
        /// The bytes left over.
        skipped: Vec<u8>,
    },
}

impl FrameError {
    /// A bounded label for metrics and dead letters: `garbage`, `bad_length`, `too_long`,
    /// `missing_crlf` or `truncated`.
    pub fn reason_code(&self) -> &'static str {
        match self {
            FrameError::Garbage { .. } => "garbage",
            FrameError::BadLength { .. } => "bad_length",
            FrameError::TooLong { .. } => "too_long",
            FrameError::MissingCrLf { .. } => "missing_crlf",
            FrameError::Truncated { .. } => "truncated",
        }
    }

    /// The bytes this error discarded.
    pub fn skipped(&self) -> &[u8] {
        match self {
            FrameError::Garbage { skipped }
            | FrameError::BadLength { skipped }
            | FrameError::TooLong { skipped, .. }
            | FrameError::MissingCrLf { skipped, .. }
            | FrameError::Truncated { skipped } => skipped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_with_context() {
        let e = DecodeError::BadCrc {
            stated: 0x4981,
            computed: 0x4980,
        };
        assert_eq!(e.to_string(), "bad crc: stated 0x4981, computed 0x4980");
        assert_eq!(e.reason_code(), "bad_crc");
        let e = DecodeError::field(12, "MN", "missing");
        assert_eq!(e.to_string(), "bad field MN at byte 12: missing");
    }

    #[test]
    fn quoted_input_is_bounded() {
        let long = "é".repeat(100);
        let q = quote(&long);
        assert_eq!(q.chars().count(), MAX_QUOTED_CHARS + 3);
        assert_eq!(quote("MN"), "MN");
    }
}
