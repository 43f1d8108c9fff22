//! The decoded packet: header fields, CP parameters and factors, borrowed from the input bytes.

use std::fmt;

use argus_model::{Metric, MetricCode, Timestamp};

/// The protocol version, from the version bits of `Flag` (`Flag >> 2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// HJ/T 212-2005: version bits 0, or no `Flag` at all. Factor codes are the 2005 ones
    /// (`B02`, `011`), mapped to the 2017 codes where the catalogue knows them.
    V2005,
    /// HJ 212-2017: version bits 1.
    V2017,
    /// HJ 212-2025: version bits 2.
    V2025,
    /// Version bits this crate does not know, kept as sent (`Flag >> 2`).
    Unknown(u16),
}

impl Version {
    /// The version a `Flag` value announces (`None`: no `Flag`, a 2005 packet).
    pub const fn from_flag(flag: Option<u16>) -> Self {
        match flag {
            None => Version::V2005,
            Some(flag) => match flag >> 2 {
                0 => Version::V2005,
                1 => Version::V2017,
                2 => Version::V2025,
                other => Version::Unknown(other),
            },
        }
    }

    /// The version bits (`Flag >> 2`).
    pub const fn bits(self) -> u16 {
        match self {
            Version::V2005 => 0,
            Version::V2017 => 1,
            Version::V2025 => 2,
            Version::Unknown(bits) => bits,
        }
    }
}

impl fmt::Display for Version {
    /// `2005`, `2017`, `2025`, or `unknown(N)` with the version bits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::V2005 => f.write_str("2005"),
            Version::V2017 => f.write_str("2017"),
            Version::V2025 => f.write_str("2025"),
            Version::Unknown(bits) => write!(f, "unknown({bits})"),
        }
    }
}

/// The suffix of a factor field (`a21026-Rtd`: `Rtd`). Unknown suffixes are kept as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldKind<'a> {
    /// Real-time value.
    Rtd,
    /// Average over the period (minute, hour, day).
    Avg,
    /// Minimum over the period.
    Min,
    /// Maximum over the period.
    Max,
    /// Cumulative amount over the period (emissions).
    Cou,
    /// Real-time value converted to the reference oxygen content (折算).
    ZsRtd,
    /// Average converted to the reference oxygen content.
    ZsAvg,
    /// Minimum converted to the reference oxygen content.
    ZsMin,
    /// Maximum converted to the reference oxygen content.
    ZsMax,
    /// Data flag of the values (N, F, M, S, D, C, T, B).
    Flag,
    /// Equipment flag (HJ 212-2017).
    EFlag,
    /// Sampling time.
    SampleTime,
    /// A suffix this crate does not know, as sent.
    Other(&'a str),
}

impl<'a> FieldKind<'a> {
    /// Classify a suffix as sent.
    pub fn parse(suffix: &'a str) -> Self {
        match suffix {
            "Rtd" => FieldKind::Rtd,
            "Avg" => FieldKind::Avg,
            "Min" => FieldKind::Min,
            "Max" => FieldKind::Max,
            "Cou" => FieldKind::Cou,
            "Flag" => FieldKind::Flag,
            "ZsRtd" => FieldKind::ZsRtd,
            "ZsAvg" => FieldKind::ZsAvg,
            "ZsMin" => FieldKind::ZsMin,
            "ZsMax" => FieldKind::ZsMax,
            "EFlag" => FieldKind::EFlag,
            "SampleTime" => FieldKind::SampleTime,
            other => FieldKind::Other(other),
        }
    }

    /// The suffix on the wire.
    pub fn as_str(&self) -> &'a str {
        match *self {
            FieldKind::Rtd => "Rtd",
            FieldKind::Avg => "Avg",
            FieldKind::Min => "Min",
            FieldKind::Max => "Max",
            FieldKind::Cou => "Cou",
            FieldKind::ZsRtd => "ZsRtd",
            FieldKind::ZsAvg => "ZsAvg",
            FieldKind::ZsMin => "ZsMin",
            FieldKind::ZsMax => "ZsMax",
            FieldKind::Flag => "Flag",
            FieldKind::EFlag => "EFlag",
            FieldKind::SampleTime => "SampleTime",
            FieldKind::Other(suffix) => suffix,
        }
    }

    /// Every known suffix (not [`FieldKind::Other`]).
    pub const KNOWN: [FieldKind<'static>; 12] = [
        FieldKind::Rtd,
        FieldKind::Avg,
        FieldKind::Min,
        FieldKind::Max,
        FieldKind::Cou,
        FieldKind::ZsRtd,
        FieldKind::ZsAvg,
        FieldKind::ZsMin,
        FieldKind::ZsMax,
        FieldKind::Flag,
        FieldKind::EFlag,
        FieldKind::SampleTime,
    ];
}

/// One field of a factor: `a21026-Rtd=12.5` is `(Rtd, "12.5")`. Values stay text as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The suffix.
    pub kind: FieldKind<'a>,
    /// The value as sent.
    pub value: &'a str,
}

/// Where a factor's fields are in [`Packet`]'s field list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FactorSlot<'a> {
    pub(crate) code: &'a str,
    /// The first 8 bytes of the code, for fast comparison while decoding.
    pub(crate) key: u64,
    pub(crate) metric: Option<Metric>,
    pub(crate) start: u32,
    pub(crate) len: u32,
}

/// A factor (pollutant or parameter) of a packet: its code as sent, the metric it resolves to,
/// and its fields in the order sent, merged across CP groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Factor<'p> {
    code: &'p str,
    metric: Option<Metric>,
    fields: &'p [Field<'p>],
}

impl<'p> Factor<'p> {
    /// The code as sent (`a21026`, or a 2005 code such as `011`).
    pub fn code(&self) -> &'p str {
        self.code
    }

    /// The catalogue metric the code resolves to, if any. 2005 codes resolve through
    /// [`Metric::from_legacy_code`] (in version-2005 packets only).
    pub fn known_metric(&self) -> Option<Metric> {
        self.metric
    }

    /// The metric: known, or [`MetricCode::Unknown`] with the code as sent. Allocates for an
    /// unknown code.
    pub fn metric(&self) -> MetricCode {
        match self.metric {
            Some(metric) => MetricCode::Known(metric),
            None => MetricCode::parse(self.code),
        }
    }

    /// The fields in the order sent.
    pub fn fields(&self) -> &'p [Field<'p>] {
        self.fields
    }

    /// The value of the first field of this kind (`ZsRtd`, say), if sent.
    pub fn field(&self, kind: FieldKind<'_>) -> Option<&'p str> {
        self.fields.iter().find(|f| f.kind == kind).map(|f| f.value)
    }
}

/// Limits applied by [`crate::decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Longest data segment accepted, in bytes. The standard says 1024; longer packets occur in
    /// the wild. The 4-digit length field caps it at 9999 anyway. Default 4096.
    pub max_data_len: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self { max_data_len: 4096 }
    }
}

/// A decoded packet. It borrows every text from the frame it was decoded from; decoding
/// allocates only its lists of parameters, factors and fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    pub(crate) data: &'a str,
    pub(crate) crc: u16,
    pub(crate) qn: Option<&'a str>,
    pub(crate) st: Option<&'a str>,
    pub(crate) cn: &'a str,
    pub(crate) pw: Option<&'a str>,
    pub(crate) mn: &'a str,
    pub(crate) flag: Option<u16>,
    pub(crate) pnum: Option<u32>,
    pub(crate) pno: Option<u32>,
    pub(crate) cp: &'a str,
    pub(crate) data_time: Option<Timestamp>,
    pub(crate) params: Vec<(&'a str, &'a str)>,
    pub(crate) factors: Vec<FactorSlot<'a>>,
    pub(crate) fields: Vec<Field<'a>>,
}

impl<'a> Packet<'a> {
    /// The whole data segment, from the first header field to the closing `&&`.
    pub fn data(&self) -> &'a str {
        self.data
    }

    /// The CRC as sent (it matched the data segment).
    pub fn crc(&self) -> u16 {
        self.crc
    }

    /// `QN`, the request id (`yyyyMMddHHmmssSSS`); 2005 uploads may lack it.
    pub fn qn(&self) -> Option<&'a str> {
        self.qn
    }

    /// `ST`, the system code (22 air quality, 31 flue gas, 32 surface water, 91 system).
    pub fn st(&self) -> Option<&'a str> {
        self.st
    }

    /// `CN`, the command (2011 real-time data, 2061 hourly data, 9014 data reply, ...).
    pub fn cn(&self) -> &'a str {
        self.cn
    }

    /// `PW`, the access password.
    pub fn pw(&self) -> Option<&'a str> {
        self.pw
    }

    /// `MN`, the id of the monitoring point (its data logger).
    pub fn mn(&self) -> &'a str {
        self.mn
    }

    /// `Flag`, if sent: bits `V5..V0 D A`.
    pub fn flag(&self) -> Option<u16> {
        self.flag
    }

    /// The protocol version, from the version bits of `Flag` (no `Flag`: 2005).
    pub fn version(&self) -> Version {
        Version::from_flag(self.flag)
    }

    /// The A bit of `Flag`: the sender expects a reply (see [`crate::reply`]).
    pub fn needs_reply(&self) -> bool {
        self.flag.is_some_and(|flag| flag & 1 == 1)
    }

    /// The D bit of `Flag`: the packet is one part of a split message (`PNUM`, `PNO`). Not
    /// checked against the presence of `PNUM`/`PNO`.
    pub fn is_split(&self) -> bool {
        self.flag.is_some_and(|flag| flag & 2 == 2)
    }

    /// `PNUM`, the number of parts of a split message.
    pub fn pnum(&self) -> Option<u32> {
        self.pnum
    }

    /// `PNO`, the number of this part of a split message.
    pub fn pno(&self) -> Option<u32> {
        self.pno
    }

    /// The CP content as sent, between `CP=&&` and the closing `&&`.
    pub fn cp(&self) -> &'a str {
        self.cp
    }

    /// The CP's `DataTime` (China Standard Time on the wire) as a UTC instant, parsed and
    /// checked during decoding (a malformed `DataTime` fails the decode). The first one if the CP
    /// has several.
    pub fn data_time(&self) -> Option<Timestamp> {
        self.data_time
    }

    /// The CP keys without `-` (`DataTime`, `QnRtn`, `ExeRtn`, `PolId`, `BeginTime`, ...) with
    /// their values, in the order sent, duplicates kept.
    pub fn cp_params(&self) -> &[(&'a str, &'a str)] {
        &self.params
    }

    /// The value of the first CP parameter `key`, if sent.
    pub fn cp_param(&self, key: &str) -> Option<&'a str> {
        self.params.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// The factors in the order of their first field, each with its fields merged across CP
    /// groups.
    pub fn factors(&self) -> impl ExactSizeIterator<Item = Factor<'_>> + '_ {
        self.factors.iter().map(|slot| self.view(slot))
    }

    /// The factor with this code as sent, if any.
    pub fn factor(&self, code: &str) -> Option<Factor<'_>> {
        self.factors
            .iter()
            .find(|slot| slot.code == code)
            .map(|slot| self.view(slot))
    }

    fn view(&self, slot: &FactorSlot<'a>) -> Factor<'_> {
        let start = slot.start as usize;
        let end = start + slot.len as usize;
        Factor {
            code: slot.code,
            metric: slot.metric,
            fields: self.fields.get(start..end).unwrap_or_default(),
        }
    }
}
