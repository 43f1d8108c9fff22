//! Encoding packets: header fields and CP content into `##dddd` + data segment + CRC + CR LF.

use std::fmt::Write as _;

use crate::crc::crc16;
use crate::error::EncodeError;
use crate::packet::{FieldKind, Packet};

/// Longest data segment the 4-digit length field can announce.
pub const MAX_DATA_LEN: usize = 9999;

/// The header fields of a packet to encode. Written in the standard's order
/// `QN ST CN PW MN Flag PNUM PNO`, each only if present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Header<'a> {
    /// `QN`, the request id.
    pub qn: Option<&'a str>,
    /// `ST`, the system code.
    pub st: Option<&'a str>,
    /// `CN`, the command; must not be empty.
    pub cn: &'a str,
    /// `PW`, the access password.
    pub pw: Option<&'a str>,
    /// `MN`, the id of the monitoring point; must not be empty.
    pub mn: &'a str,
    /// `Flag`.
    pub flag: Option<u16>,
    /// `PNUM`, the number of parts of a split message.
    pub pnum: Option<u32>,
    /// `PNO`, the number of this part.
    pub pno: Option<u32>,
}

impl<'a> Packet<'a> {
    /// The header fields, for [`encode`].
    pub fn header(&self) -> Header<'a> {
        Header {
            qn: self.qn,
            st: self.st,
            cn: self.cn,
            pw: self.pw,
            mn: self.mn,
            flag: self.flag,
            pnum: self.pnum,
            pno: self.pno,
        }
    }

    /// Encode the packet again: its header fields in the standard's order and its CP content as
    /// sent. Equal to the frame it was decoded from (with CR LF, CRC in upper case) when that
    /// frame had its header fields in the standard's order.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        encode(&self.header(), self.cp)
    }
}

/// Encode a packet: `##`, the 4-digit length, the data segment (header fields, then
/// `CP=&&{cp}&&`), the CRC in upper-case hex, CR LF.
///
/// Header values must not contain `;` and `CN`/`MN` must not be empty (the packet would not
/// decode to the same fields). The CP content is written as given; build it with [`CpBuilder`].
pub fn encode(header: &Header<'_>, cp: &str) -> Result<Vec<u8>, EncodeError> {
    let mut data = String::with_capacity(96 + cp.len());
    let mut text = |key: &str, value: &str| -> Result<(), EncodeError> {
        if value.contains(';') {
            return Err(EncodeError::value(key, "value contains ';'"));
        }
        data.push_str(key);
        data.push('=');
        data.push_str(value);
        data.push(';');
        Ok(())
    };
    if header.cn.is_empty() {
        return Err(EncodeError::value("CN", "empty"));
    }
    if header.mn.is_empty() {
        return Err(EncodeError::value("MN", "empty"));
    }
    if let Some(qn) = header.qn {
        text("QN", qn)?;
    }
    if let Some(st) = header.st {
        text("ST", st)?;
    }
    text("CN", header.cn)?;
    if let Some(pw) = header.pw {
        text("PW", pw)?;
    }
    text("MN", header.mn)?;
    // Writing to a String cannot fail.
    if let Some(flag) = header.flag {
        let _ = write!(data, "Flag={flag};");
    }
    if let Some(pnum) = header.pnum {
        let _ = write!(data, "PNUM={pnum};");
    }
    if let Some(pno) = header.pno {
        let _ = write!(data, "PNO={pno};");
    }
    data.push_str("CP=&&");
    data.push_str(cp);
    data.push_str("&&");
    frame(data.as_bytes())
}

/// Wrap a data segment: `##` + length + data + CRC (upper case) + CR LF.
pub(crate) fn frame(data: &[u8]) -> Result<Vec<u8>, EncodeError> {
    if data.len() > MAX_DATA_LEN {
        return Err(EncodeError::TooLong { len: data.len() });
    }
    let mut out = Vec::with_capacity(data.len() + 12);
    out.extend_from_slice(format!("##{:04}", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(format!("{:04X}\r\n", crc16(data)).as_bytes());
    Ok(out)
}

/// Builds CP content: parameters (`DataTime=...`) and factors (`a21026-Rtd=1.2,a21026-Flag=N`),
/// one `;`-separated group each, in the order added. Errors are reported by [`CpBuilder::finish`].
///
/// ```
/// use argus_hj212::{CpBuilder, FieldKind};
/// let cp = CpBuilder::new()
///     .param("DataTime", "20191012133710")
///     .factor("a21026", &[(FieldKind::Rtd, "12.5"), (FieldKind::Flag, "N")])
///     .finish()
///     .unwrap_or_default();
/// assert_eq!(cp, "DataTime=20191012133710;a21026-Rtd=12.5,a21026-Flag=N");
/// ```
#[derive(Debug, Clone, Default)]
pub struct CpBuilder {
    content: String,
    error: Option<EncodeError>,
}

impl CpBuilder {
    /// An empty CP.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a parameter group `key=value`. The key must be non-empty and free of `-`, `=`, `;`
    /// and `,`; the value free of `;` and `,`.
    pub fn param(mut self, key: &str, value: &str) -> Self {
        if self.error.is_none() {
            self.error = check_name(key, "-=;,")
                .or_else(|| check_value(value))
                .map(|reason| EncodeError::value(key, reason));
        }
        if self.error.is_none() {
            self.separate();
            self.content.push_str(key);
            self.content.push('=');
            self.content.push_str(value);
        }
        self
    }

    /// Add a factor group `code-Kind=value,...`. The code must be non-empty and free of `-`,
    /// `=`, `;` and `,`; values free of `;` and `,`. A factor without fields adds nothing.
    pub fn factor(mut self, code: &str, fields: &[(FieldKind<'_>, &str)]) -> Self {
        if self.error.is_some() || fields.is_empty() {
            return self;
        }
        self.error = check_name(code, "-=;,").map(|reason| EncodeError::value(code, reason));
        for (kind, value) in fields {
            if self.error.is_some() {
                return self;
            }
            let suffix = kind.as_str();
            self.error = suffix
                .contains(['-', '=', ';', ','])
                .then_some("field suffix contains '-', '=', ';' or ','")
                .or_else(|| check_value(value))
                .map(|reason| EncodeError::value(code, reason));
        }
        if self.error.is_some() {
            return self;
        }
        self.separate();
        for (i, (kind, value)) in fields.iter().enumerate() {
            if i > 0 {
                self.content.push(',');
            }
            self.content.push_str(code);
            self.content.push('-');
            self.content.push_str(kind.as_str());
            self.content.push('=');
            self.content.push_str(value);
        }
        self
    }

    fn separate(&mut self) {
        if !self.content.is_empty() {
            self.content.push(';');
        }
    }

    /// The CP content, or the first error.
    pub fn finish(self) -> Result<String, EncodeError> {
        match self.error {
            Some(error) => Err(error),
            None => Ok(self.content),
        }
    }
}

fn check_name(name: &str, forbidden: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("empty key or code")
    } else if name.contains(|c| forbidden.contains(c)) {
        Some("key or code contains '-', '=', ';' or ','")
    } else {
        None
    }
}

fn check_value(value: &str) -> Option<&'static str> {
    value
        .contains([';', ','])
        .then_some("value contains ';' or ','")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(cn: &'a str, mn: &'a str) -> Header<'a> {
        Header {
            cn,
            mn,
            ..Header::default()
        }
    }

    #[test]
    fn encodes_the_standard_layout() {
        let h = Header {
            qn: Some("20231008125115215"),
            st: Some("22"),
            pw: Some("123456"),
            flag: Some(4),
            ..header("9011", "010000A8900016F000169DC0")
        };
        let frame = encode(&h, "QnRtn=1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            frame,
            b"##0094QN=20231008125115215;ST=22;CN=9011;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&QnRtn=1&&CC01\r\n"
        );
        let split = Header {
            flag: Some(7),
            pnum: Some(3),
            pno: Some(1),
            ..header("2011", "A")
        };
        let frame = encode(&split, "").unwrap_or_else(|e| panic!("{e}"));
        assert!(frame.starts_with(b"##0040CN=2011;MN=A;Flag=7;PNUM=3;PNO=1;CP=&&&&"));
    }

    #[test]
    fn refuses_what_would_not_decode_the_same() {
        let err = |h: Header<'_>, cp: &str| encode(&h, cp).err().map(|e| e.to_string());
        assert_eq!(
            err(header("", "A"), ""),
            Some("cannot encode CN: empty".to_owned())
        );
        assert_eq!(
            err(header("2011", ""), ""),
            Some("cannot encode MN: empty".to_owned())
        );
        let pw = Header {
            pw: Some("a;b"),
            ..header("2011", "A")
        };
        assert_eq!(
            err(pw, ""),
            Some("cannot encode PW: value contains ';'".to_owned())
        );
        let long = "x=1;".repeat(2500);
        assert_eq!(
            encode(&header("2011", "A"), &long).err(),
            Some(EncodeError::TooLong { len: 10_020 })
        );
    }

    #[test]
    fn cp_builder_checks_keys_codes_and_values() {
        let fails = [
            CpBuilder::new().param("", "1"),
            CpBuilder::new().param("a-b", "1"),
            CpBuilder::new().param("a", "1;2"),
            CpBuilder::new().factor("a21026", &[(FieldKind::Rtd, "1,2")]),
            CpBuilder::new().factor("a-1", &[(FieldKind::Rtd, "1")]),
            CpBuilder::new().factor("a", &[(FieldKind::Other("x-y"), "1")]),
            CpBuilder::new().param("a", "1;").param("b", "2"),
        ];
        for builder in fails {
            assert!(builder.clone().finish().is_err(), "{builder:?}");
        }
        let cp = CpBuilder::new()
            .factor("a", &[])
            .param("DataTime", "20191012133710")
            .factor(
                "a",
                &[(FieldKind::Rtd, "1"), (FieldKind::Other("Ala"), "2")],
            )
            .finish();
        assert_eq!(cp, Ok("DataTime=20191012133710;a-Rtd=1,a-Ala=2".to_owned()));
    }
}
