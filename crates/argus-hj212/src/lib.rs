//! HJ 212 packet codec (versions 2005, 2017 and 2025): framing, CRC, fields, replies, readings.
//!
//! Pure: no I/O, no threads, no async runtime. The TCP gateway feeds bytes to a [`Framer`],
//! [`decode`]s each frame into a zero-copy [`Packet`], answers with [`reply_9014`] (or
//! [`reply_9011`]/[`reply_9012`]) when asked to, and turns data packets into canonical readings
//! with [`readings`]. The CLI prints [`to_json`] / [`decode_line`] (a stable format, see
//! [`json`]).
//!
//! # Wire format
//!
//! ```text
//! ##0094QN=20231008125115215;ST=22;CN=9011;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&QnRtn=1&&CC01<CR><LF>
//! `##`, the data segment's length (4 decimal digits), the data segment, its CRC-16 (4 hex digits), CR LF
//! ```
//!
//! The data segment is `;`-separated header fields `QN ST CN PW MN Flag PNUM PNO`, then
//! `CP=&&...&&`. CP content is `;`-separated groups of `,`-separated `key=value` items; a key
//! `CODE-Suffix` is a field of a factor (`a21026-Rtd`), any other key a parameter (`DataTime`).
//! `Flag` is `V5 V4 V3 V2 V1 V0 D A`: version bits (0 = 2005, 1 = 2017, 2 = 2025), D = split
//! packet (`PNUM`/`PNO`), A = reply requested. No `Flag` means 2005 without reply.
//!
//! ```
//! use argus_hj212::{decode, DecodeOptions, FieldKind, Version};
//! let frame = b"##0094QN=20231008125115215;ST=22;CN=9011;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&QnRtn=1&&CC01\r\n";
//! let packet = decode(frame, &DecodeOptions::default()).unwrap_or_else(|e| panic!("{e}"));
//! assert_eq!(packet.version(), Version::V2017);
//! assert_eq!(packet.cp_param("QnRtn"), Some("1"));
//! ```

pub mod crc;
mod decode;
mod encode;
mod error;
mod framer;
pub mod json;
mod packet;
mod readings;
pub mod reply;

pub use decode::decode;
pub use encode::{encode, CpBuilder, Header, MAX_DATA_LEN};
pub use error::{DecodeError, EncodeError, FrameError, ReadingError};
pub use framer::Framer;
pub use json::{decode_line, to_json};
pub use packet::{DecodeOptions, Factor, Field, FieldKind, Packet, Version};
pub use readings::readings;
pub use reply::{reply_9011, reply_9012, reply_9014};
