//! Fuzz target: arbitrary bytes through `decode`, `decode_line` and the `Framer`; every decoded
//! packet through `readings`, `to_json`, the replies and re-encoding. Nothing may panic.

#![no_main]

use argus_hj212::crc::crc16;
use argus_hj212::{
    decode, decode_line, readings, reply_9011, reply_9012, reply_9014, to_json, DecodeOptions,
    Framer, Packet,
};
use argus_model::Timestamp;
use libfuzzer_sys::fuzz_target;

fn exercise(packet: &Packet<'_>) {
    let _ = readings(packet, Timestamp(0));
    let _ = to_json(packet);
    for factor in packet.factors() {
        let _ = factor.metric();
    }
    let options = DecodeOptions { max_data_len: 9999 };
    // A decoded packet re-encodes, and the result decodes to the same header.
    if let Ok(frame) = packet.encode() {
        let again = decode(&frame, &options);
        assert!(again.is_ok(), "re-encoded packet does not decode: {again:?}");
        if let Ok(again) = again {
            assert_eq!(again.header(), packet.header());
            assert_eq!(again.cp(), packet.cp());
        }
    }
    for reply in [reply_9014(packet), reply_9011(packet, 1), reply_9012(packet, 1)] {
        if let Ok(frame) = reply {
            assert!(decode(&frame, &options).is_ok(), "reply does not decode");
        }
    }
}

/// `data` as a data segment, framed with the right length and CRC, so that the fuzzer reaches
/// the field parser without having to guess CRCs.
fn framed(data: &[u8]) -> Vec<u8> {
    let mut frame = format!("##{:04}", data.len()).into_bytes();
    frame.extend_from_slice(data);
    frame.extend_from_slice(format!("{:04X}\r\n", crc16(data)).as_bytes());
    frame
}

fuzz_target!(|data: &[u8]| {
    let options = DecodeOptions::default();
    if let Ok(packet) = decode(data, &options) {
        exercise(&packet);
    }
    let _ = decode_line(data, &options);
    if data.len() <= 4096 {
        let frame = framed(data);
        match decode(&frame, &options) {
            Ok(packet) => exercise(&packet),
            Err(e) if std::str::from_utf8(data).is_err() => {
                assert_eq!(e.reason_code(), "bad_frame", "{e}")
            }
            Err(e) => assert_eq!(e.reason_code(), "bad_field", "{e}"),
        }
    }

    // The framer, fed in chunks whose sizes come from the data itself; every byte must come
    // out exactly once, as a frame or in an error.
    let max = 64 + usize::from(data.first().copied().unwrap_or(0)) * 4;
    let mut framer = Framer::new(max);
    let mut out = 0usize;
    let mut input = data;
    let mut step = 1usize;
    while !input.is_empty() {
        step = (step * 7 + 3) % 97 + 1;
        let n = step.min(input.len());
        let mut chunk = &input[..n];
        input = &input[n..];
        while !chunk.is_empty() {
            let taken = framer.push(chunk);
            chunk = &chunk[taken..];
            while let Some(item) = framer.next_frame() {
                match item {
                    Ok(frame) => {
                        assert!(frame.len() <= max);
                        out += frame.len();
                        if let Ok(packet) = decode(frame, &options) {
                            exercise(&packet);
                        }
                    }
                    Err(e) => {
                        assert!(!e.skipped().is_empty());
                        out += e.skipped().len();
                    }
                }
            }
            assert!(framer.buffered() <= max.max(12) + 16);
        }
    }
    if let Some(e) = framer.finish() {
        out += e.skipped().len();
    }
    assert_eq!(out, data.len());
});
