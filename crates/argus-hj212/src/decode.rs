//! Decoding one complete frame (`##dddd` + data segment + CRC + optional CR LF) into a
//! [`Packet`] that borrows its text from the frame.

use std::collections::HashMap;

use argus_model::time::{CivilDateTime, CHINA_OFFSET_SECS};
use argus_model::{Metric, Timestamp};

use crate::crc::crc16;
use crate::error::DecodeError;
use crate::packet::{DecodeOptions, FactorSlot, Field, FieldKind, Packet, Version};

/// Bytes before the data segment: `##` and the 4-digit length.
const HEAD_LEN: usize = 6;

/// From this many factors on, factors are found by a hash map instead of a linear search, so a
/// packet with thousands of tiny factors costs linear, not quadratic, time.
const LINEAR_SEARCH_MAX: usize = 16;

/// Decode one complete packet, with or without its trailing CR LF.
///
/// Checks, in this order: `##`, the 4-digit length, the length against
/// [`DecodeOptions::max_data_len`], the line ending, the length against the data segment, the
/// CRC (hex digits in either case), UTF-8, then the fields: header fields `QN ST CN PW MN Flag
/// PNUM PNO` (each at most once, `CN` and `MN` required and non-empty, unknown keys refused),
/// then `CP=&&...&&` up to the end of the data segment, and a well-formed `DataTime` if present.
/// Values stay text: a non-numeric value is not a decode error (see [`crate::readings`]).
///
/// Error offsets are byte offsets in `frame`.
pub fn decode<'a>(frame: &'a [u8], options: &DecodeOptions) -> Result<Packet<'a>, DecodeError> {
    if !frame.starts_with(b"##") {
        return Err(DecodeError::BadFrame {
            offset: 0,
            reason: "missing ## at the start",
        });
    }
    let Some(length_digits) = frame.get(2..HEAD_LEN) else {
        return Err(DecodeError::BadFrame {
            offset: frame.len(),
            reason: "truncated in the length field",
        });
    };
    let Some(stated) = parse_decimal(length_digits).map(|n| n as usize) else {
        return Err(DecodeError::BadFrame {
            offset: 2,
            reason: "length field is not 4 decimal digits",
        });
    };
    if stated > options.max_data_len {
        return Err(DecodeError::TooLong {
            len: stated,
            max: options.max_data_len,
        });
    }
    let body_end = match frame {
        [.., b'\r', b'\n'] => frame.len() - 2,
        [.., b'\r' | b'\n'] => {
            return Err(DecodeError::BadFrame {
                offset: frame.len() - 1,
                reason: "line ending is not cr lf",
            })
        }
        _ => frame.len(),
    };
    if body_end < HEAD_LEN + 4 {
        return Err(DecodeError::BadFrame {
            offset: body_end,
            reason: "truncated: no room for data segment and crc",
        });
    }
    let data_end = body_end - 4;
    let actual = data_end - HEAD_LEN;
    if actual != stated {
        return Err(DecodeError::BadLength { stated, actual });
    }
    let data_bytes = &frame[HEAD_LEN..data_end];
    let stated_crc = parse_crc(&frame[data_end..body_end]).map_err(|i| DecodeError::BadFrame {
        offset: data_end + i,
        reason: "crc is not 4 hex digits",
    })?;
    let computed = crc16(data_bytes);
    if computed != stated_crc {
        return Err(DecodeError::BadCrc {
            stated: stated_crc,
            computed,
        });
    }
    let data = std::str::from_utf8(data_bytes).map_err(|e| DecodeError::BadFrame {
        offset: HEAD_LEN + e.valid_up_to(),
        reason: "data segment is not utf-8",
    })?;
    parse_data(data, stated_crc)
}

/// Parse 1 to 19 ASCII decimal digits.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

/// Parse 4 hex digits, either case; on error the index of the offending byte.
fn parse_crc(hex: &[u8]) -> Result<u16, usize> {
    let mut value: u16 = 0;
    for (i, &b) in hex.iter().enumerate() {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'A'..=b'F' => b - b'A' + 10,
            b'a'..=b'f' => b - b'a' + 10,
            _ => return Err(i),
        };
        value = (value << 4) | u16::from(digit);
    }
    Ok(value)
}

/// Header fields seen so far.
#[derive(Default)]
struct Header<'a> {
    qn: Option<&'a str>,
    st: Option<&'a str>,
    cn: Option<&'a str>,
    pw: Option<&'a str>,
    mn: Option<&'a str>,
    flag: Option<u16>,
    pnum: Option<u32>,
    pno: Option<u32>,
}

/// Parse the data segment (valid UTF-8, CRC checked). Offsets in errors are frame offsets.
fn parse_data(data: &str, crc: u16) -> Result<Packet<'_>, DecodeError> {
    let bytes = data.as_bytes();
    let mut structurals = Structurals::new(bytes);
    let mut header = Header::default();
    let mut pos = 0;
    // Header fields up to `CP=`.
    let cp_field = loop {
        if bytes[pos..].starts_with(b"CP=") {
            break pos;
        }
        let mut eq = None;
        let end = loop {
            match structurals.next() {
                None => break bytes.len(),
                Some(i) => match bytes[i] {
                    b';' => break i,
                    b'=' if eq.is_none() => eq = Some(i),
                    _ => {}
                },
            }
        };
        if end > pos {
            // Empty fields (`;;`, a trailing `;`) are skipped.
            header.set(data, pos, eq, end)?;
        }
        if end == bytes.len() {
            return Err(DecodeError::field(HEAD_LEN + end, "CP", "missing"));
        }
        pos = end + 1;
    };
    let header_end = HEAD_LEN + cp_field;
    let cn = header
        .cn
        .ok_or_else(|| DecodeError::field(header_end, "CN", "missing"))?;
    let mn = header
        .mn
        .ok_or_else(|| DecodeError::field(header_end, "MN", "missing"))?;
    // `CP=&&` ... `&&` up to the end of the data segment.
    let cp_start = cp_field + 5;
    if !bytes[cp_field..].starts_with(b"CP=&&") {
        return Err(DecodeError::field(
            header_end,
            "CP",
            "does not start with &&",
        ));
    }
    if bytes.len() < cp_start + 2 || !bytes.ends_with(b"&&") {
        return Err(DecodeError::field(
            header_end,
            "CP",
            "not closed by && at the end",
        ));
    }
    let cp_end = bytes.len() - 2;
    structurals.skip_to(cp_start);
    let version = Version::from_flag(header.flag);
    let mut content = Content::new(data, cp_end - cp_start, version);
    content.parse(&mut structurals, cp_start, cp_end)?;
    let Content {
        params,
        factors,
        fields,
        data_time,
        ..
    } = content.finish();
    Ok(Packet {
        data,
        crc,
        qn: header.qn,
        st: header.st,
        cn,
        pw: header.pw,
        mn,
        flag: header.flag,
        pnum: header.pnum,
        pno: header.pno,
        cp: &data[cp_start..cp_end],
        data_time,
        params,
        factors,
        fields,
    })
}

/// The positions of the structural bytes `;` `,` `=` `-` of a byte string, in increasing order.
/// Found 64 bytes at a time with word-parallel (SWAR) compares into a bit mask, so that the
/// parser jumps from one structural byte to the next instead of branching on every byte.
struct Structurals<'a> {
    bytes: &'a [u8],
    /// Start of the 64-byte block `mask` describes.
    block: usize,
    /// Structural bytes of the block not returned yet: bit `i` is position `block + i`.
    mask: u64,
}

impl<'a> Structurals<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            block: 0,
            mask: block_mask(bytes, 0),
        }
    }

    /// The position of the next structural byte, if any.
    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.mask == 0 {
            if self.block + 64 >= self.bytes.len() {
                return None;
            }
            self.block += 64;
            self.mask = block_mask(self.bytes, self.block);
        }
        let bit = self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        Some(self.block + bit)
    }

    /// Forget the structural bytes before `pos` (at or after the last one returned).
    fn skip_to(&mut self, pos: usize) {
        let block = pos & !63;
        if block != self.block {
            self.block = block;
            self.mask = block_mask(self.bytes, block);
        }
        self.mask &= !0u64 << (pos - block);
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;

/// High bit set in each byte of `v` that is zero (exact, no false positives).
#[inline(always)]
fn zero_bytes(v: u64) -> u64 {
    !(((v & LOW7) + LOW7) | v | LOW7)
}

/// Bit `i` set where byte `i` of the little-endian word `w` is `;` `,` `=` or `-`.
#[inline(always)]
fn word_mask(w: u64) -> u64 {
    // `,` (0x2C) and `-` (0x2D) differ only in the low bit.
    let m = zero_bytes((w | ONES) ^ (ONES * 0x2D))
        | zero_bytes(w ^ (ONES * u64::from(b';')))
        | zero_bytes(w ^ (ONES * u64::from(b'=')));
    // Gather the 8 high bits into the low byte, byte 0 -> bit 0.
    ((m >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

/// The structural mask of the 64 bytes from `start` (zero bytes past the end).
#[inline]
fn block_mask(bytes: &[u8], start: usize) -> u64 {
    let rest = bytes.get(start..).unwrap_or_default();
    match rest.first_chunk::<64>() {
        Some(block) => mask_64(block),
        None => {
            let mut padded = [0u8; 64];
            padded[..rest.len()].copy_from_slice(rest);
            mask_64(&padded)
        }
    }
}

/// The structural mask of one 64-byte block: bit `i` set where byte `i` is structural.
#[inline(always)]
fn mask_64(block: &[u8; 64]) -> u64 {
    let (words, _) = block.as_chunks::<8>();
    let mut mask = 0u64;
    for (i, word) in words.iter().enumerate() {
        mask |= word_mask(u64::from_le_bytes(*word)) << (8 * i);
    }
    mask
}

impl<'a> Header<'a> {
    /// Record the header field `data[start..end]`, whose first `=` (if any) is at `eq`.
    fn set(
        &mut self,
        data: &'a str,
        start: usize,
        eq: Option<usize>,
        end: usize,
    ) -> Result<(), DecodeError> {
        let offset = HEAD_LEN + start;
        let Some(eq) = eq else {
            return Err(DecodeError::field(
                offset,
                &data[start..end],
                "header field without '='",
            ));
        };
        let key = &data[start..eq];
        let value = &data[eq + 1..end];
        let value_offset = HEAD_LEN + eq + 1;
        match key {
            "QN" => set_once(&mut self.qn, value, key, offset),
            "ST" => set_once(&mut self.st, value, key, offset),
            "PW" => set_once(&mut self.pw, value, key, offset),
            "CN" => {
                if value.is_empty() {
                    return Err(DecodeError::field(value_offset, key, "empty"));
                }
                set_once(&mut self.cn, value, key, offset)
            }
            "MN" => {
                if value.is_empty() {
                    return Err(DecodeError::field(value_offset, key, "empty"));
                }
                set_once(&mut self.mn, value, key, offset)
            }
            "Flag" => {
                let flag = parse_decimal(value.as_bytes())
                    .and_then(|v| u16::try_from(v).ok())
                    .ok_or_else(|| {
                        DecodeError::field(value_offset, key, "not a decimal number 0-65535")
                    })?;
                set_once(&mut self.flag, flag, key, offset)
            }
            "PNUM" | "PNO" => {
                let number = parse_decimal(value.as_bytes())
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(|| {
                        DecodeError::field(value_offset, key, "not a decimal number 0-4294967295")
                    })?;
                let slot = if key == "PNUM" {
                    &mut self.pnum
                } else {
                    &mut self.pno
                };
                set_once(slot, number, key, offset)
            }
            _ => Err(DecodeError::field(offset, key, "unknown header field")),
        }
    }
}

fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    key: &str,
    offset: usize,
) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::field(offset, key, "duplicate header field"));
    }
    *slot = Some(value);
    Ok(())
}

/// The CP content being parsed. Positions are offsets in the data segment.
struct Content<'a> {
    data: &'a str,
    version: Version,
    params: Vec<(&'a str, &'a str)>,
    factors: Vec<FactorSlot<'a>>,
    fields: Vec<Field<'a>>,
    /// Factor index of every field, kept only once a factor's fields stopped being contiguous
    /// (a factor continued after another one started); then `finish` sorts.
    keys: Option<Vec<u32>>,
    /// Factor index by code, once there are many factors.
    index: Option<HashMap<&'a str, u32>>,
    data_time: Option<Timestamp>,
}

impl<'a> Content<'a> {
    fn new(data: &'a str, cp_len: usize, version: Version) -> Self {
        // A capacity hint: a typical field (`a21026-Rtd=35.21,`) takes 12 to 20 bytes.
        let fields = cp_len / 12 + 2;
        Self {
            data,
            version,
            params: Vec::new(),
            factors: Vec::with_capacity(fields / 2 + 1),
            fields: Vec::with_capacity(fields),
            keys: None,
            index: None,
            data_time: None,
        }
    }

    /// Parse the items of `data[start..end]`, the structurals positioned at `start`.
    fn parse(
        &mut self,
        structurals: &mut Structurals<'_>,
        mut start: usize,
        end: usize,
    ) -> Result<(), DecodeError> {
        let bytes = self.data.as_bytes();
        let mut eq: Option<usize> = None;
        let mut dash: Option<usize> = None;
        loop {
            let i = match structurals.next() {
                Some(i) if i < end => i,
                _ => return self.item(start, end, eq, dash),
            };
            match bytes[i] {
                b';' | b',' => {
                    self.item(start, i, eq, dash)?;
                    start = i + 1;
                    eq = None;
                    dash = None;
                }
                b'=' => {
                    if eq.is_none() {
                        eq = Some(i);
                    }
                }
                _ => {
                    // `-`: the last one before `=` splits a factor code from its field suffix.
                    if eq.is_none() {
                        dash = Some(i);
                    }
                }
            }
        }
    }

    /// One `key=value` item, `data[start..end]`, with its first `=` and the last `-` before it.
    #[inline(always)]
    fn item(
        &mut self,
        start: usize,
        end: usize,
        eq: Option<usize>,
        dash: Option<usize>,
    ) -> Result<(), DecodeError> {
        if start == end {
            // Empty item: `;;`, a trailing `;`, or an empty CP.
            return Ok(());
        }
        let data = self.data;
        let Some(eq) = eq else {
            return Err(DecodeError::field(
                HEAD_LEN + start,
                "CP",
                "item without '='",
            ));
        };
        if eq == start {
            return Err(DecodeError::field(
                HEAD_LEN + start,
                "CP",
                "item with an empty key",
            ));
        }
        let value = &data[eq + 1..end];
        match dash {
            None => {
                let key = &data[start..eq];
                if key == "DataTime" {
                    let time = parse_data_time(value)
                        .map_err(|reason| DecodeError::field(HEAD_LEN + start, key, reason))?;
                    self.data_time.get_or_insert(time);
                }
                self.params.push((key, value));
            }
            Some(dash) => {
                if dash == start {
                    return Err(DecodeError::field(
                        HEAD_LEN + start,
                        "CP",
                        "factor field without a code",
                    ));
                }
                let kind = FieldKind::parse(&data[dash + 1..eq]);
                self.field(start, dash, Field { kind, value });
            }
        }
        Ok(())
    }

    /// Add a field to the factor whose code is `data[start..end]`, creating the factor on its
    /// first field.
    #[inline]
    fn field(&mut self, start: usize, end: usize, field: Field<'a>) {
        let code = &self.data[start..end];
        let key = prefix_key(self.data.as_bytes(), start, end);
        let count = self.factors.len();
        let found = match self.factors.last() {
            Some(last) if same_code(last, key, code) => Some(count - 1),
            _ => self.find(key, code),
        };
        let idx = match found {
            Some(idx) => {
                if idx + 1 != count && self.keys.is_none() {
                    // The factor continues after another one started: remember every field's
                    // factor from now on, and sort in `finish`.
                    let mut keys = Vec::with_capacity(self.fields.capacity());
                    for (i, slot) in self.factors.iter().enumerate() {
                        keys.extend(std::iter::repeat_n(i as u32, slot.len as usize));
                    }
                    self.keys = Some(keys);
                }
                idx
            }
            None => {
                let idx = count;
                self.factors.push(FactorSlot {
                    code,
                    key,
                    metric: resolve(code, self.version),
                    start: self.fields.len() as u32,
                    len: 0,
                });
                if let Some(index) = &mut self.index {
                    index.insert(code, idx as u32);
                }
                idx
            }
        };
        if let Some(slot) = self.factors.get_mut(idx) {
            slot.len += 1;
        }
        if let Some(keys) = &mut self.keys {
            keys.push(idx as u32);
        }
        self.fields.push(field);
    }

    /// Index of the factor `code`, if already seen.
    fn find(&mut self, key: u64, code: &str) -> Option<usize> {
        if self.index.is_none() && self.factors.len() > LINEAR_SEARCH_MAX {
            let index = self
                .factors
                .iter()
                .enumerate()
                .map(|(i, slot)| (slot.code, i as u32))
                .collect();
            self.index = Some(index);
        }
        match &self.index {
            Some(index) => index.get(code).map(|&i| i as usize),
            None => self
                .factors
                .iter()
                .position(|slot| same_code(slot, key, code)),
        }
    }

    /// Group the fields by factor if they arrived interleaved.
    fn finish(mut self) -> Self {
        if let Some(keys) = self.keys.take() {
            let mut keyed: Vec<(u32, Field<'a>)> =
                keys.into_iter().zip(self.fields.drain(..)).collect();
            keyed.sort_by_key(|(key, _)| *key);
            self.fields
                .extend(keyed.into_iter().map(|(_, field)| field));
            let mut start = 0;
            for slot in &mut self.factors {
                slot.start = start;
                start += slot.len;
            }
        }
        self
    }
}

/// The first 8 bytes of `bytes[start..end]` as a little-endian word, zero-padded: a cheap
/// pre-check of code equality (codes up to 8 bytes are equal iff their keys and lengths are).
#[inline]
fn prefix_key(bytes: &[u8], start: usize, end: usize) -> u64 {
    let n = (end - start).min(8);
    let keep = if n == 8 { !0 } else { (1u64 << (8 * n)) - 1 };
    match bytes.get(start..).and_then(<[u8]>::first_chunk::<8>) {
        Some(word) => u64::from_le_bytes(*word) & keep,
        None => {
            let mut word = [0u8; 8];
            word[..n].copy_from_slice(&bytes[start..start + n]);
            u64::from_le_bytes(word)
        }
    }
}

#[inline]
fn same_code(slot: &FactorSlot<'_>, key: u64, code: &str) -> bool {
    slot.key == key && slot.code.len() == code.len() && (code.len() <= 8 || slot.code == code)
}

/// The catalogue metric of a factor code: 2005 codes first for version-2005 packets, then the
/// current codes.
fn resolve(code: &str, version: Version) -> Option<Metric> {
    if version == Version::V2005 {
        if let Some(metric) = Metric::from_legacy_code(code) {
            return Some(metric);
        }
    }
    Metric::from_code(code)
}

/// Parse an HJ 212 time, `yyyyMMddHHmmss` or `yyyyMMddHHmmssSSS` in China Standard Time.
pub(crate) fn parse_data_time(text: &str) -> Result<Timestamp, &'static str> {
    let b = text.as_bytes();
    if !(b.len() == 14 || b.len() == 17) || !b.iter().all(u8::is_ascii_digit) {
        return Err("expected yyyyMMddHHmmss or yyyyMMddHHmmssSSS");
    }
    let num = |from: usize, to: usize| {
        b[from..to]
            .iter()
            .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'))
    };
    let civil = CivilDateTime {
        year: num(0, 4) as i32,
        month: num(4, 6) as u8,
        day: num(6, 8) as u8,
        hour: num(8, 10) as u8,
        minute: num(10, 12) as u8,
        second: num(12, 14) as u8,
        millisecond: if b.len() == 17 { num(14, 17) as u16 } else { 0 },
    };
    Timestamp::from_civil(civil, CHINA_OFFSET_SECS).ok_or("impossible date or time")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::frame;

    /// A frame around `data` with the right length and CRC.
    fn wrap(data: &str) -> Vec<u8> {
        frame(data.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn decode_default(frame: &[u8]) -> Result<Packet<'_>, DecodeError> {
        decode(frame, &DecodeOptions::default())
    }

    /// Frame offset of the first `needle` in `data` (6 bytes of `##dddd` before it).
    fn at(data: &str, needle: &str) -> usize {
        HEAD_LEN
            + data
                .find(needle)
                .unwrap_or_else(|| panic!("{needle} not in {data}"))
    }

    fn bad_frame(offset: usize, reason: &'static str) -> DecodeError {
        DecodeError::BadFrame { offset, reason }
    }

    fn bad_field(offset: usize, field: &str, reason: &'static str) -> DecodeError {
        DecodeError::field(offset, field, reason)
    }

    const OK: &str = "QN=20191012133710130;ST=22;CN=2011;PW=123456;MN=Y80110010000010;Flag=4;CP=&&DataTime=20191012133710;a21005-Rtd=0.00,a21005-Flag=N&&";

    #[test]
    fn frame_errors_with_offsets() {
        let good = wrap(OK);
        let n = good.len();
        let mut lone_lf = good[..n - 2].to_vec();
        lone_lf.push(b'\n');
        let mut short = good.clone();
        short.remove(20);
        let mut bad_hex = good.clone();
        bad_hex[n - 4] = b'G';
        let mut bad_crc = good.clone();
        bad_crc[n - 3] = if bad_crc[n - 3] == b'0' { b'1' } else { b'0' };
        let mut not_utf8 = OK.as_bytes().to_vec();
        not_utf8[40] = 0xFF;
        let not_utf8 = frame(&not_utf8).unwrap_or_else(|e| panic!("{e}"));
        let stated = OK.len();
        let cases: Vec<(&str, Vec<u8>, DecodeError)> = vec![
            (
                "empty",
                b"".to_vec(),
                bad_frame(0, "missing ## at the start"),
            ),
            (
                "one #",
                good[1..].to_vec(),
                bad_frame(0, "missing ## at the start"),
            ),
            (
                "short length",
                b"##01".to_vec(),
                bad_frame(4, "truncated in the length field"),
            ),
            (
                "length not digits",
                b"##01a4QN=1".to_vec(),
                bad_frame(2, "length field is not 4 decimal digits"),
            ),
            (
                "length with sign",
                b"##+123QN=1".to_vec(),
                bad_frame(2, "length field is not 4 decimal digits"),
            ),
            (
                "too long",
                b"##5000QN=1".to_vec(),
                DecodeError::TooLong {
                    len: 5000,
                    max: 4096,
                },
            ),
            (
                "lone lf",
                lone_lf,
                bad_frame(n - 2, "line ending is not cr lf"),
            ),
            (
                "no crc",
                b"##0000AB\r\n".to_vec(),
                bad_frame(8, "truncated: no room for data segment and crc"),
            ),
            (
                "length mismatch",
                short,
                DecodeError::BadLength {
                    stated,
                    actual: stated - 1,
                },
            ),
            (
                "crc not hex",
                bad_hex,
                bad_frame(n - 4, "crc is not 4 hex digits"),
            ),
            (
                "not utf-8",
                not_utf8,
                bad_frame(46, "data segment is not utf-8"),
            ),
        ];
        for (name, frame, expected) in cases {
            assert_eq!(decode_default(&frame).err(), Some(expected), "{name}");
        }
        assert!(matches!(
            decode_default(&bad_crc),
            Err(DecodeError::BadCrc { .. })
        ));
        assert!(decode_default(&good).is_ok());
    }

    #[test]
    fn field_errors_with_offsets() {
        /// Data segment, test name, expected error given the data segment.
        type Case = (&'static str, &'static str, fn(&str) -> DecodeError);
        let cases: Vec<Case> = vec![
            ("ST=22;CN=2011;PW=1;CP=&&&&", "missing mn", |d| {
                bad_field(at(d, "CP="), "MN", "missing")
            }),
            ("ST=22;MN=A;CP=&&&&", "missing cn", |d| {
                bad_field(at(d, "CP="), "CN", "missing")
            }),
            ("ST=22;CN=2011;MN=;CP=&&&&", "empty mn", |d| {
                bad_field(at(d, "MN=") + 3, "MN", "empty")
            }),
            ("ST=22;CN=;MN=A;CP=&&&&", "empty cn", |d| {
                bad_field(at(d, "CN=") + 3, "CN", "empty")
            }),
            ("ST=22;CN=2011;MN=A;MN=B;CP=&&&&", "duplicate mn", |d| {
                bad_field(at(d, "MN=B"), "MN", "duplicate header field")
            }),
            ("QN=1;QN=1;CN=2011;MN=A;CP=&&&&", "duplicate qn", |d| {
                bad_field(at(d, ";QN") + 1, "QN", "duplicate header field")
            }),
            ("CN=2011;MN=A;Flag=x;CP=&&&&", "flag not a number", |d| {
                bad_field(at(d, "Flag=") + 5, "Flag", "not a decimal number 0-65535")
            }),
            ("CN=2011;MN=A;Flag=70000;CP=&&&&", "flag too big", |d| {
                bad_field(at(d, "Flag=") + 5, "Flag", "not a decimal number 0-65535")
            }),
            ("CN=2011;MN=A;Flag=;CP=&&&&", "flag empty", |d| {
                bad_field(at(d, "Flag=") + 5, "Flag", "not a decimal number 0-65535")
            }),
            (
                "CN=2011;MN=A;Flag=7;PNUM=two;PNO=1;CP=&&&&",
                "pnum not a number",
                |d| {
                    bad_field(
                        at(d, "PNUM=") + 5,
                        "PNUM",
                        "not a decimal number 0-4294967295",
                    )
                },
            ),
            ("CN=2011;MN=A;XX=1;CP=&&&&", "unknown header", |d| {
                bad_field(at(d, "XX"), "XX", "unknown header field")
            }),
            ("CN=2011;MN=A;junk;CP=&&&&", "header without =", |d| {
                bad_field(at(d, "junk"), "junk", "header field without '='")
            }),
            ("CN=2011;MN=A", "no cp", |d| {
                bad_field(HEAD_LEN + d.len(), "CP", "missing")
            }),
            ("CN=2011;MN=A;", "no cp after ;", |d| {
                bad_field(HEAD_LEN + d.len(), "CP", "missing")
            }),
            ("CN=2011;MN=A;CP=DataTime=1", "cp without &&", |d| {
                bad_field(at(d, "CP="), "CP", "does not start with &&")
            }),
            (
                "CN=2011;MN=A;CP=&&DataTime=20191012133710",
                "cp not closed",
                |d| bad_field(at(d, "CP="), "CP", "not closed by && at the end"),
            ),
            ("CN=2011;MN=A;CP=&&&", "cp of 3 &", |d| {
                bad_field(at(d, "CP="), "CP", "not closed by && at the end")
            }),
            (
                "CN=2011;MN=A;CP=&&DataTime=20191012133710;a21026&&",
                "item without =",
                |d| bad_field(at(d, "a21026"), "CP", "item without '='"),
            ),
            ("CN=2011;MN=A;CP=&&=1&&", "empty key", |d| {
                bad_field(at(d, "=1"), "CP", "item with an empty key")
            }),
            ("CN=2011;MN=A;CP=&&-Rtd=1&&", "no code", |d| {
                bad_field(at(d, "-Rtd"), "CP", "factor field without a code")
            }),
            (
                "CN=2011;MN=A;CP=&&DataTime=2019101213371&&",
                "13-digit time",
                |d| {
                    bad_field(
                        at(d, "DataTime"),
                        "DataTime",
                        "expected yyyyMMddHHmmss or yyyyMMddHHmmssSSS",
                    )
                },
            ),
            (
                "CN=2011;MN=A;CP=&&DataTime=2019-10-12 13:37&&",
                "formatted time",
                |d| {
                    bad_field(
                        at(d, "DataTime"),
                        "DataTime",
                        "expected yyyyMMddHHmmss or yyyyMMddHHmmssSSS",
                    )
                },
            ),
            (
                "CN=2011;MN=A;CP=&&DataTime=20190230120000&&",
                "30 february",
                |d| bad_field(at(d, "DataTime"), "DataTime", "impossible date or time"),
            ),
            (
                "CN=2011;MN=A;CP=&&a-Rtd=1;DataTime=20191012246000&&",
                "hour 24",
                |d| bad_field(at(d, "DataTime"), "DataTime", "impossible date or time"),
            ),
        ];
        for (data, name, expected) in cases {
            let got = decode_default(&wrap(data)).err();
            assert_eq!(got, Some(expected(data)), "{name}");
            assert_eq!(got.map(|e| e.reason_code()), Some("bad_field"), "{name}");
        }
    }

    #[test]
    fn max_data_len_is_inclusive_and_crc_case_is_free() {
        let frame = wrap(OK);
        let exact = DecodeOptions {
            max_data_len: OK.len(),
        };
        assert!(decode(&frame, &exact).is_ok());
        let below = DecodeOptions {
            max_data_len: OK.len() - 1,
        };
        assert_eq!(
            decode(&frame, &below).err(),
            Some(DecodeError::TooLong {
                len: OK.len(),
                max: OK.len() - 1
            })
        );
        let lower = frame.to_ascii_lowercase();
        let lower = [&frame[..frame.len() - 6], &lower[frame.len() - 6..]].concat();
        assert!(decode_default(&lower).is_ok());
    }

    #[test]
    fn versions_and_flag_bits() {
        let cases = [
            (None, Version::V2005, false, false),
            (Some(0), Version::V2005, false, false),
            (Some(1), Version::V2005, true, false),
            (Some(3), Version::V2005, true, true),
            (Some(4), Version::V2017, false, false),
            (Some(5), Version::V2017, true, false),
            (Some(7), Version::V2017, true, true),
            (Some(8), Version::V2025, false, false),
            (Some(9), Version::V2025, true, false),
            (Some(12), Version::Unknown(3), false, false),
            (Some(255), Version::Unknown(63), true, true),
        ];
        for (flag, version, reply, split) in cases {
            let data = match flag {
                Some(flag) => format!("CN=2011;MN=A;Flag={flag};CP=&&&&"),
                None => "CN=2011;MN=A;CP=&&&&".to_owned(),
            };
            let frame = wrap(&data);
            let p = decode_default(&frame).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                (p.flag(), p.version(), p.needs_reply(), p.is_split()),
                (flag, version, reply, split)
            );
        }
        assert_eq!(Version::Unknown(3).to_string(), "unknown(3)");
    }

    #[test]
    fn fields_merge_across_groups_in_order_of_first_appearance() {
        let data = "CN=2061;MN=A;Flag=4;CP=&&DataTime=20191012133710;a-Avg=1,b-Avg=2;c-Avg=3;a-Flag=N;b-Flag=D,a-Max=9&&";
        let frame = wrap(data);
        let p = decode_default(&frame).unwrap_or_else(|e| panic!("{e}"));
        let got: Vec<(&str, Vec<(&str, &str)>)> = p
            .factors()
            .map(|f| {
                let fields = f
                    .fields()
                    .iter()
                    .map(|x| (x.kind.as_str(), x.value))
                    .collect();
                (f.code(), fields)
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a", vec![("Avg", "1"), ("Flag", "N"), ("Max", "9")]),
                ("b", vec![("Avg", "2"), ("Flag", "D")]),
                ("c", vec![("Avg", "3")]),
            ]
        );
    }

    #[test]
    fn many_interleaved_factors_merge_too() {
        // 40 factors, each sent as two groups far apart: exercises the hash index and the sort.
        let mut cp = String::from("DataTime=20191012133710");
        for i in 0..40 {
            cp.push_str(&format!(";f{i}-Rtd={i}"));
        }
        for i in (0..40).rev() {
            cp.push_str(&format!(";f{i}-Flag=N"));
        }
        let data = format!("CN=2011;MN=A;Flag=4;CP=&&{cp}&&");
        let frame = wrap(&data);
        let p = decode_default(&frame).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.factors().len(), 40);
        for (i, f) in p.factors().enumerate() {
            assert_eq!(f.code(), format!("f{i}"));
            let value = i.to_string();
            assert_eq!(
                f.fields(),
                [
                    Field {
                        kind: FieldKind::Rtd,
                        value: &value
                    },
                    Field {
                        kind: FieldKind::Flag,
                        value: "N"
                    }
                ]
            );
        }
    }

    #[test]
    fn keys_values_and_codes_as_sent() {
        let data = "QN=1;ST=32;CN=3020;PW=;MN=A;CP=&&PolId=w01018;x-y-Info=a=b;w01018-Foo=1;;a21026-ZsRtd=-3.5,a21026-EFlag=A;&&";
        let frame = wrap(data);
        let p = decode_default(&frame).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.pw(), Some(""));
        assert_eq!(p.cp_params(), [("PolId", "w01018")]);
        let f = p.factor("x-y").unwrap_or_else(|| panic!("x-y"));
        assert_eq!(f.field(FieldKind::Other("Info")), Some("a=b"));
        assert_eq!(
            p.factor("w01018")
                .and_then(|f| f.field(FieldKind::Other("Foo"))),
            Some("1")
        );
        let so2 = p.factor("a21026").unwrap_or_else(|| panic!("a21026"));
        assert_eq!(so2.field(FieldKind::ZsRtd), Some("-3.5"));
        assert_eq!(so2.field(FieldKind::EFlag), Some("A"));
        // Version 2005 (no Flag): current codes still resolve.
        assert_eq!(so2.known_metric(), Some(Metric::So2));
        assert_eq!(p.data_time(), None);
    }

    #[test]
    fn legacy_codes_resolve_only_in_2005_packets() {
        let cp = "CP=&&DataTime=20160824003817;011-Rtd=231.0;B02-Rtd=1&&";
        for (flag, expected) in [
            ("", [Some(Metric::Cod), Some(Metric::FlueGasFlow)]),
            ("Flag=1;", [Some(Metric::Cod), Some(Metric::FlueGasFlow)]),
            ("Flag=4;", [None, None]),
            ("Flag=8;", [None, None]),
        ] {
            let data = format!("ST=32;CN=2011;MN=A;{flag}{cp}");
            let frame = wrap(&data);
            let p = decode_default(&frame).unwrap_or_else(|e| panic!("{e}"));
            let got: Vec<Option<Metric>> = p.factors().map(|f| f.known_metric()).collect();
            assert_eq!(got, expected, "{flag}");
        }
    }

    proptest::proptest! {
        #[test]
        fn structurals_are_exactly_the_separator_bytes(
            bytes in proptest::collection::vec(
                proptest::sample::select(b";,=-&aZ0\x00\x80\xFF\x2C\x2D\x3B\x3D\x7F".to_vec()),
                0..300,
            ),
            skip in 0usize..300,
        ) {
            let expected: Vec<usize> = (0..bytes.len())
                .filter(|&i| matches!(bytes[i], b';' | b',' | b'=' | b'-'))
                .collect();
            let mut got = Vec::new();
            let mut s = Structurals::new(&bytes);
            while let Some(i) = s.next() {
                got.push(i);
            }
            proptest::prop_assert_eq!(&got, &expected);
            let skip = skip.min(bytes.len());
            let mut s = Structurals::new(&bytes);
            s.skip_to(skip);
            let mut got = Vec::new();
            while let Some(i) = s.next() {
                got.push(i);
            }
            let after: Vec<usize> = expected.into_iter().filter(|&i| i >= skip).collect();
            proptest::prop_assert_eq!(got, after);
        }
    }

    #[test]
    fn data_time_forms() {
        let t = |s: &str| parse_data_time(s).map(|t| t.to_rfc3339());
        assert_eq!(
            t("20191012133710"),
            Ok("2019-10-12T05:37:10.000Z".to_owned())
        );
        assert_eq!(
            t("20191012133710123"),
            Ok("2019-10-12T05:37:10.123Z".to_owned())
        );
        assert_eq!(
            t("20200101000000"),
            Ok("2019-12-31T16:00:00.000Z".to_owned())
        );
        assert_eq!(
            t("20240229235959"),
            Ok("2024-02-29T15:59:59.000Z".to_owned())
        );
        assert!(t("20230229000000").is_err());
        assert!(t("201910121337101").is_err());
        assert!(t("2019101213371a").is_err());
        assert!(t("").is_err());
    }
}
