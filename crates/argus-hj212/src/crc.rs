//! The HJ 212 CRC-16 of a data segment: the bitwise definition and a fast table-driven form.
//!
//! HJ 212 defines its check as: register `0xFFFF`; for each byte, `reg = (reg >> 8) ^ byte`, then
//! eight times: if the low bit is set `reg = (reg >> 1) ^ 0xA001`, else `reg >>= 1`. It covers the
//! data segment only (from `QN=`/`ST=` to the closing `&&`).
//!
//! Writing `S` for the eight shift steps, `S` is linear over GF(2) and maps `h << 8` to `h`, so
//! `S(x) = (x >> 8) ^ T[x & 0xFF]` with `T[i] = S(i)`. Because `(reg >> 8) ^ byte` is always below
//! 256, one byte step is a single lookup: `reg = T[(reg >> 8) ^ byte]`. Only the high byte `h` of the
//! register carries over, and `h' = G(h ^ byte)` with `G[i] = T[i] >> 8`, again linear. So sixteen
//! bytes can be folded at once (`G16[h ^ b0] ^ G15[b1] ^ ... ^ G1[b15]`, `Gk` = `G` applied `k`
//! times): fifteen of the sixteen lookups do not depend on the register, which breaks the serial
//! dependency of the byte-at-a-time loop ("slicing by 16").

/// `T[i]`: the eight shift steps applied to `i`.
const T: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut reg = i as u16;
        let mut bit = 0;
        while bit < 8 {
            reg = if reg & 1 == 1 {
                (reg >> 1) ^ 0xA001
            } else {
                reg >> 1
            };
            bit += 1;
        }
        table[i] = reg;
        i += 1;
    }
    table
};

/// Bytes folded per step of [`crc16`].
const SLICE: usize = 16;

/// `G[k][i]`: the high-byte transition `i -> T[i] >> 8` applied `k + 1` times.
const G: [[u8; 256]; SLICE] = {
    let mut tables = [[0u8; 256]; SLICE];
    let mut i = 0;
    while i < 256 {
        let mut h = i;
        let mut k = 0;
        while k < SLICE {
            h = (T[h] >> 8) as usize;
            tables[k][i] = h as u8;
            k += 1;
        }
        i += 1;
    }
    tables
};

/// The HJ 212 CRC-16 of `data` (the data segment of a packet), table-driven.
pub fn crc16(data: &[u8]) -> u16 {
    let Some((&last, body)) = data.split_last() else {
        return 0xFFFF;
    };
    // `h` is the high byte of the register before each byte; the register after the last byte
    // is one full lookup.
    let mut h: usize = 0xFF;
    let (chunks, remainder) = body.as_chunks::<SLICE>();
    for chunk in chunks {
        // Two word loads and shifts instead of sixteen byte loads: the loop is bound by loads.
        let (lo, hi) = chunk.split_at(8);
        let mut words = [0u64; 2];
        for (word, bytes) in words.iter_mut().zip([lo, hi]) {
            let mut b = [0u8; 8];
            b.copy_from_slice(bytes);
            *word = u64::from_le_bytes(b);
        }
        let byte = |k: usize| ((words[k / 8] >> (8 * (k % 8))) & 0xFF) as usize;
        // Fold the 15 lookups that do not depend on `h` first, so that the loop-carried chain
        // is one lookup and one XOR per 16 bytes.
        let mut rest = 0u8;
        for k in 1..SLICE {
            rest ^= G[SLICE - 1 - k][byte(k)];
        }
        h = usize::from(G[SLICE - 1][h ^ byte(0)] ^ rest);
    }
    for &byte in remainder {
        h = usize::from(G[0][h ^ usize::from(byte)]);
    }
    T[h ^ usize::from(last)]
}

/// The HJ 212 CRC-16 of `data`, computed bit by bit exactly as the standard describes it.
/// Slow; the reference [`crc16`] is checked against.
pub fn crc16_bitwise(data: &[u8]) -> u16 {
    let mut reg: u16 = 0xFFFF;
    for &byte in data {
        reg = (reg >> 8) ^ u16::from(byte);
        for _ in 0..8 {
            reg = if reg & 1 == 1 {
                (reg >> 1) ^ 0xA001
            } else {
                reg >> 1
            };
        }
    }
    reg
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_packets() {
        let data = b"QN=20231008125115215;ST=22;CN=9011;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&QnRtn=1&&";
        assert_eq!(crc16(data), 0xCC01);
        assert_eq!(crc16_bitwise(data), 0xCC01);
        assert_eq!(crc16(b""), 0xFFFF);
        assert_eq!(crc16_bitwise(b""), 0xFFFF);
    }

    #[test]
    fn every_length_up_to_40_matches_the_definition() {
        let data: Vec<u8> = (0u8..40)
            .map(|i| i.wrapping_mul(37).wrapping_add(11))
            .collect();
        for len in 0..=data.len() {
            assert_eq!(
                crc16(&data[..len]),
                crc16_bitwise(&data[..len]),
                "len {len}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn table_driven_equals_bitwise(data in proptest::collection::vec(any::<u8>(), 0..700)) {
            prop_assert_eq!(crc16(&data), crc16_bitwise(&data));
        }
    }
}
