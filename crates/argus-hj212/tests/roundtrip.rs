//! Property tests of the codec's public API: what is encoded decodes to the same fields, and
//! frames survive any cut of the byte stream.

use argus_hj212::{
    decode, encode, readings, CpBuilder, DecodeOptions, FieldKind, Framer, Header, Version,
};
use argus_model::{Metric, Timestamp};
use proptest::prelude::*;

/// One generated factor: code and fields with numeric values.
#[derive(Debug, Clone)]
struct GenFactor {
    code: String,
    fields: Vec<(FieldKind<'static>, String)>,
}

#[derive(Debug, Clone)]
struct GenPacket {
    qn: Option<String>,
    st: Option<String>,
    cn: String,
    pw: Option<String>,
    mn: String,
    flag: Option<u16>,
    split: Option<(u32, u32)>,
    /// `yyyyMMddHHmmss[SSS]` and the instant it stands for.
    data_time: Option<(String, Timestamp)>,
    factors: Vec<GenFactor>,
}

fn text(re: &'static str) -> impl Strategy<Value = String> {
    proptest::string::string_regex(re).unwrap_or_else(|e| panic!("{e}"))
}

fn civil_time() -> impl Strategy<Value = (String, Timestamp)> {
    // Any instant from 2000 to 2099, with or without milliseconds.
    (946_656_000_000i64..4_102_444_800_000, any::<bool>()).prop_map(|(ms, with_ms)| {
        let t = Timestamp(if with_ms {
            ms
        } else {
            ms - ms.rem_euclid(1000)
        });
        let c = t.to_civil(argus_model::time::CHINA_OFFSET_SECS);
        let mut s = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        );
        if with_ms {
            s.push_str(&format!("{:03}", c.millisecond));
        }
        (s, t)
    })
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        (-1e9f64..1e9).prop_map(|v| v.to_string()),
        (-100_000i64..100_000, 0u32..4).prop_map(|(v, d)| {
            let scale = 10f64.powi(d as i32);
            format!("{:.*}", d as usize, v as f64 / scale)
        }),
    ]
}

fn field_kind() -> impl Strategy<Value = FieldKind<'static>> {
    prop_oneof![
        proptest::sample::select(FieldKind::KNOWN.to_vec()),
        Just(FieldKind::Other("Ala")),
        Just(FieldKind::Other("RS")),
    ]
}

fn factor() -> impl Strategy<Value = GenFactor> {
    let code = prop_oneof![
        proptest::sample::select(
            Metric::ALL
                .iter()
                .map(|m| m.code().to_owned())
                .collect::<Vec<_>>()
        ),
        text("[a-z][0-9]{2,5}"),
    ];
    let fields = proptest::collection::vec(
        (
            field_kind(),
            number(),
            proptest::sample::select(vec!["N", "F", "M", "D"]),
        ),
        1..5,
    )
    .prop_map(|fields| {
        fields
            .into_iter()
            .map(|(kind, value, flag)| {
                let value = if kind == FieldKind::Flag {
                    flag.to_owned()
                } else {
                    value
                };
                (kind, value)
            })
            .collect::<Vec<_>>()
    });
    (code, fields).prop_map(|(code, fields)| GenFactor { code, fields })
}

fn packet() -> impl Strategy<Value = GenPacket> {
    (
        proptest::option::of(text("[0-9]{17,20}")),
        proptest::option::of(text("[0-9]{2}")),
        text("[0-9]{4}"),
        proptest::option::of(text("[A-Za-z0-9]{0,24}")),
        text("[A-Za-z0-9_-]{1,24}"),
        proptest::option::of(0u16..16),
        proptest::option::of((1u32..100, 1u32..100)),
        proptest::option::of(civil_time()),
        proptest::collection::vec(factor(), 0..12),
    )
        .prop_map(|(qn, st, cn, pw, mn, flag, split, data_time, factors)| {
            // Distinct codes, so that the expected merge is the identity.
            let mut seen = std::collections::HashSet::new();
            let factors = factors
                .into_iter()
                .filter(|f| seen.insert(f.code.clone()))
                .collect();
            GenPacket {
                qn,
                st,
                cn,
                pw,
                mn,
                flag,
                split,
                data_time,
                factors,
            }
        })
}

fn encode_generated(g: &GenPacket) -> Vec<u8> {
    let mut cp = CpBuilder::new();
    if let Some((text, _)) = &g.data_time {
        cp = cp.param("DataTime", text);
    }
    for f in &g.factors {
        let fields: Vec<(FieldKind<'_>, &str)> =
            f.fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        cp = cp.factor(&f.code, &fields);
    }
    let cp = cp.finish().unwrap_or_else(|e| panic!("{e}"));
    let header = Header {
        qn: g.qn.as_deref(),
        st: g.st.as_deref(),
        cn: &g.cn,
        pw: g.pw.as_deref(),
        mn: &g.mn,
        flag: g.flag,
        pnum: g.split.map(|s| s.0),
        pno: g.split.map(|s| s.1),
    };
    encode(&header, &cp).unwrap_or_else(|e| panic!("{e}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_of_encode_gives_back_the_fields(g in packet()) {
        let frame = encode_generated(&g);
        let p = decode(&frame, &DecodeOptions { max_data_len: 9999 })
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&frame)));
        prop_assert_eq!(p.qn(), g.qn.as_deref());
        prop_assert_eq!(p.st(), g.st.as_deref());
        prop_assert_eq!(p.cn(), g.cn.as_str());
        prop_assert_eq!(p.pw(), g.pw.as_deref());
        prop_assert_eq!(p.mn(), g.mn.as_str());
        prop_assert_eq!(p.flag(), g.flag);
        prop_assert_eq!(p.version(), Version::from_flag(g.flag));
        prop_assert_eq!(p.needs_reply(), g.flag.is_some_and(|f| f & 1 == 1));
        prop_assert_eq!(p.pnum(), g.split.map(|s| s.0));
        prop_assert_eq!(p.pno(), g.split.map(|s| s.1));
        prop_assert_eq!(p.data_time(), g.data_time.as_ref().map(|d| d.1));
        prop_assert_eq!(p.factors().len(), g.factors.len());
        for (got, want) in p.factors().zip(&g.factors) {
            prop_assert_eq!(got.code(), want.code.as_str());
            let fields: Vec<(FieldKind<'_>, &str)> =
                got.fields().iter().map(|f| (f.kind, f.value)).collect();
            let wanted: Vec<(FieldKind<'_>, &str)> =
                want.fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            prop_assert_eq!(fields, wanted);
            // Current codes resolve in every version.
            if let Some(metric) = Metric::from_code(&want.code) {
                prop_assert_eq!(got.known_metric(), Some(metric));
            }
        }
        // Re-encoding the decoded packet gives the same bytes.
        prop_assert_eq!(p.encode().unwrap_or_else(|e| panic!("{e}")), frame.clone());
        // Readings never panic.
        let r = readings(&p, Timestamp(0));
        // A field given twice in one factor is refused; otherwise, with a DataTime, they succeed.
        let repeated = g.factors.iter().any(|f| {
            f.fields.iter().enumerate().any(|(i, (k, _))| f.fields[..i].iter().any(|(j, _)| j == k))
        });
        if g.data_time.is_some() && repeated {
            prop_assert_eq!(r.err().map(|e| e.reason_code()), Some("repeated_field"));
        } else if g.data_time.is_some() {
            prop_assert!(r.is_ok(), "{:?}", r);
        }
    }

    #[test]
    fn framer_finds_frames_cut_at_any_boundaries(
        gs in proptest::collection::vec(packet(), 1..5),
        garbage in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 5),
        cuts in proptest::collection::vec(1usize..200, 1..50),
    ) {
        // Garbage without `#`, so it cannot start a frame.
        let garbage: Vec<Vec<u8>> = garbage
            .into_iter()
            .map(|g| g.into_iter().filter(|&b| b != b'#').collect())
            .collect();
        let frames: Vec<Vec<u8>> = gs.iter().map(encode_generated).collect();
        let mut stream = Vec::new();
        let mut expected_garbage = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            stream.extend_from_slice(&garbage[i % garbage.len()]);
            expected_garbage.extend_from_slice(&garbage[i % garbage.len()]);
            stream.extend_from_slice(frame);
        }
        let longest = frames.iter().map(Vec::len).max().unwrap_or(0);
        let mut framer = Framer::new(longest);
        let mut got_frames = Vec::new();
        let mut got_garbage = Vec::new();
        let mut input: &[u8] = &stream;
        let mut cut = cuts.iter().cycle();
        while !input.is_empty() {
            let n = (*cut.next().unwrap_or(&1)).min(input.len());
            let mut chunk = &input[..n];
            input = &input[n..];
            while !chunk.is_empty() {
                let taken = framer.push(chunk);
                chunk = &chunk[taken..];
                while let Some(item) = framer.next_frame() {
                    match item {
                        Ok(frame) => got_frames.push(frame.to_vec()),
                        Err(e) => {
                            prop_assert_eq!(e.reason_code(), "garbage");
                            got_garbage.extend_from_slice(e.skipped());
                        }
                    }
                }
            }
            prop_assert!(framer.buffered() <= longest + 16);
        }
        prop_assert_eq!(framer.finish(), None);
        prop_assert_eq!(got_frames, frames);
        prop_assert_eq!(got_garbage, expected_garbage);
    }
}
