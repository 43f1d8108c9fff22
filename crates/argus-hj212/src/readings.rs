//! Turning a decoded data packet into canonical [`Reading`]s.

use argus_model::{DataFlag, Interval, Reading, SourceId, Timestamp};

use crate::error::{quote, ReadingError};
use crate::packet::{Factor, FieldKind, Packet};

/// The data uploads whose CP must carry a `DataTime`: real-time (2011), minute (2051), hourly
/// (2061) and daily (2031) data.
const DATA_CNS: [&str; 4] = ["2011", "2051", "2061", "2031"];

/// The readings of a data packet: one per factor that has a value field.
///
/// - The value is the `Rtd` field for real-time data (CN 2011), the `Avg` field for minute,
///   hourly and daily data (2051, 2061, 2031), and for any other CN the first `Rtd` or `Avg`
///   field sent. A factor without that field gives no reading (O2-corrected `ZsRtd`/`ZsAvg`
///   values are not readings; read them with [`Factor::field`]).
/// - The value must parse as a finite `f64`: NaN, infinities and text are errors naming the
///   factor.
/// - The flag is the factor's `Flag` field ([`DataFlag::from_char`], either case), `N` if absent;
///   anything else is an error.
/// - The event time is the CP's `DataTime` (UTC; for minute, hourly and daily data the start
///   of the interval); the source is `MN`; unknown codes are kept
///   ([`argus_model::MetricCode::Unknown`]).
/// - The interval is [`Interval::Minute`], [`Interval::Hour`] or [`Interval::Day`] for CN
///   2051, 2061 and 2031, real time otherwise; their `ZsAvg` field, if sent, is the reading's
///   `corrected` value (a finite number, like the value).
///
/// A data packet (CN 2011/2051/2061/2031) without `DataTime` is an error, and so is any packet
/// with values but no `DataTime`, and a factor that gives one field twice. A packet without values (a reply, a command) gives no readings.
pub fn readings(
    packet: &Packet<'_>,
    receive_time: Timestamp,
) -> Result<Vec<Reading>, ReadingError> {
    let cn = packet.cn();
    let (select, interval) = match cn {
        "2011" => (Select::Rtd, Interval::RealTime),
        "2051" => (Select::Avg, Interval::Minute),
        "2061" => (Select::Avg, Interval::Hour),
        "2031" => (Select::Avg, Interval::Day),
        _ => (Select::First, Interval::RealTime),
    };
    let missing_time = || ReadingError::MissingDataTime {
        mn: quote(packet.mn()),
        cn: quote(cn),
    };
    let data_time = packet.data_time();
    if data_time.is_none() && DATA_CNS.contains(&cn) {
        return Err(missing_time());
    }
    let mut out = Vec::with_capacity(packet.factors.len());
    let mut source: Option<SourceId> = None;
    for factor in packet.factors() {
        let fields = factor.fields();
        if let Some(i) =
            (1..fields.len()).find(|&i| fields[..i].iter().any(|f| f.kind == fields[i].kind))
        {
            return Err(ReadingError::RepeatedField {
                code: quote(factor.code()),
                field: quote(fields[i].kind.as_str()),
            });
        }
        let Some((kind, text)) = select.value(&factor) else {
            continue;
        };
        let event_time = data_time.ok_or_else(missing_time)?;
        let value = parse_value(text).ok_or_else(|| ReadingError::BadValue {
            code: quote(factor.code()),
            field: kind.as_str(),
            value: quote(text),
        })?;
        let flag = match factor.field(FieldKind::Flag) {
            None => DataFlag::N,
            Some(text) => parse_flag(text).ok_or_else(|| ReadingError::BadFlag {
                code: quote(factor.code()),
                flag: quote(text),
            })?,
        };
        let corrected = match (interval, factor.field(FieldKind::ZsAvg)) {
            (Interval::RealTime, _) | (_, None) => None,
            (_, Some(text)) => Some(parse_value(text).ok_or_else(|| ReadingError::BadValue {
                code: quote(factor.code()),
                field: FieldKind::ZsAvg.as_str(),
                value: quote(text),
            })?),
        };
        let source = source.get_or_insert_with(|| SourceId::new(packet.mn()));
        out.push(Reading {
            source: source.clone(),
            metric: factor.metric(),
            value,
            flag,
            event_time,
            receive_time,
            interval,
            corrected,
        });
    }
    Ok(out)
}

/// Which field holds a factor's value.
#[derive(Clone, Copy)]
enum Select {
    Rtd,
    Avg,
    First,
}

impl Select {
    fn value<'p>(self, factor: &Factor<'p>) -> Option<(FieldKind<'static>, &'p str)> {
        let wanted = |kind: FieldKind<'static>| factor.field(kind).map(|value| (kind, value));
        match self {
            Select::Rtd => wanted(FieldKind::Rtd),
            Select::Avg => wanted(FieldKind::Avg),
            Select::First => factor.fields().iter().find_map(|f| match f.kind {
                FieldKind::Rtd => Some((FieldKind::Rtd, f.value)),
                FieldKind::Avg => Some((FieldKind::Avg, f.value)),
                _ => None,
            }),
        }
    }
}

/// A finite number, as sent.
fn parse_value(text: &str) -> Option<f64> {
    match parse_plain_decimal(text.as_bytes()) {
        Some(value) => Some(value),
        None => text.parse::<f64>().ok().filter(|v| v.is_finite()),
    }
}

/// Powers of ten exactly representable as `f64`.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// The fast path for the values loggers send (`35.21`, `-0.5`): a sign, at most 15 significant
/// digits, one optional point and at most 15 digits after it. The digits form an integer below 2^53 and the scale an exact power of ten,
/// so one division gives the correctly rounded result, the same as `str::parse` (Clinger's fast
/// path). `None` for anything else, which then goes to `str::parse`.
fn parse_plain_decimal(text: &[u8]) -> Option<f64> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, text),
    };
    let mut mantissa: u64 = 0;
    let mut digits_seen = false;
    let mut significant = 0usize;
    let mut scale: Option<usize> = None;
    for &c in digits {
        match c {
            b'0'..=b'9' => {
                digits_seen = true;
                mantissa = mantissa * 10 + u64::from(c - b'0');
                if mantissa != 0 {
                    significant += 1;
                }
                if let Some(scale) = &mut scale {
                    *scale += 1;
                }
                if significant > 15 || scale.is_some_and(|s| s > 15) {
                    return None;
                }
            }
            b'.' if scale.is_none() => scale = Some(0),
            _ => return None,
        }
    }
    if !digits_seen {
        return None;
    }
    let value = mantissa as f64 / POW10[scale.unwrap_or(0)];
    Some(if negative { -value } else { value })
}

/// One flag letter.
fn parse_flag(text: &str) -> Option<DataFlag> {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => DataFlag::from_char(c),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode;
    use crate::encode::frame;
    use crate::packet::DecodeOptions;
    use argus_model::{Metric, MetricCode};

    const RECEIVED: Timestamp = Timestamp(1_600_000_000_000);

    fn read(data: &str) -> Result<Vec<Reading>, ReadingError> {
        let frame = frame(data.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let packet = decode(&frame, &DecodeOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        readings(&packet, RECEIVED)
    }

    fn values(data: &str) -> Vec<(String, f64, DataFlag)> {
        read(data)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|r| (r.metric.to_string(), r.value, r.flag))
            .collect()
    }

    const CP: &str = "DataTime=20191012133710;a21026-Min=1,a21026-Avg=2,a21026-Rtd=3,a21026-Flag=D;a21002-Rtd=4;a99999-Cou=5";

    #[test]
    fn the_value_field_depends_on_the_command() {
        let n = DataFlag::N;
        let d = DataFlag::D;
        let so2 = "a21026".to_owned();
        let nox = "a21002".to_owned();
        let real_time = values(&format!("CN=2011;MN=A;Flag=4;CP=&&{CP}&&"));
        assert_eq!(real_time, [(so2.clone(), 3.0, d), (nox.clone(), 4.0, n)]);
        for cn in ["2051", "2061", "2031"] {
            let avg = values(&format!("CN={cn};MN=A;Flag=4;CP=&&{CP}&&"));
            assert_eq!(avg, [(so2.clone(), 2.0, d)], "{cn}");
        }
        // Any other command: the first of Rtd/Avg.
        let other = values(&format!("CN=2071;MN=A;Flag=4;CP=&&{CP}&&"));
        assert_eq!(other, [(so2, 2.0, d), (nox, 4.0, n)]);
    }

    #[test]
    fn averages_keep_their_interval_and_the_loggers_corrected_value() {
        let cp =
            "DataTime=20191012130000;a21026-Avg=30.5,a21026-ZsAvg=36.6,a21026-Flag=N;a19001-Avg=9";
        for (cn, interval) in [
            ("2011", Interval::RealTime),
            ("2051", Interval::Minute),
            ("2061", Interval::Hour),
            ("2031", Interval::Day),
        ] {
            let cp = if cn == "2011" {
                cp.replace("Avg", "Rtd")
            } else {
                cp.to_owned()
            };
            let r = read(&format!("CN={cn};MN=A;Flag=4;CP=&&{cp}&&"))
                .unwrap_or_else(|e| panic!("{cn}: {e}"));
            assert_eq!(r.len(), 2, "{cn}");
            assert!(r.iter().all(|r| r.interval == interval), "{cn}: {r:?}");
            // ZsRtd of a real-time value is not kept: only an average's ZsAvg is.
            let corrected = (cn != "2011").then_some(36.6);
            assert_eq!(r[0].corrected, corrected, "{cn}");
            assert_eq!(r[1].corrected, None, "{cn}");
        }
        // An hourly value is complete at the end of its hour.
        let r = read(&format!("CN=2061;MN=A;Flag=4;CP=&&{cp}&&")).unwrap_or_default();
        assert_eq!(
            r[0].available_at().as_millis() - r[0].event_time.as_millis(),
            3_599_999
        );
        let bad =
            read("CN=2061;MN=A;Flag=4;CP=&&DataTime=20191012130000;a21026-Avg=1,a21026-ZsAvg=x&&");
        assert!(
            matches!(bad, Err(ReadingError::BadValue { field: "ZsAvg", .. })),
            "{bad:?}"
        );
    }

    #[test]
    fn readings_carry_source_times_and_unknown_codes() {
        let r =
            read("CN=2011;MN=MN-7;Flag=4;CP=&&DataTime=20191012133710;x1-Rtd=-1.5e2,x1-Flag=c&&")
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].source.as_str(), "MN-7");
        assert_eq!(r[0].metric, MetricCode::parse("x1"));
        assert_eq!(r[0].value, -150.0);
        assert_eq!(r[0].flag, DataFlag::C);
        assert_eq!(r[0].event_time.to_rfc3339(), "2019-10-12T05:37:10.000Z");
        assert_eq!(r[0].receive_time, RECEIVED);
        let legacy = values("ST=32;CN=2011;MN=A;CP=&&DataTime=20191012133710;02-Rtd=1&&");
        assert_eq!(legacy, [(Metric::So2.code().to_owned(), 1.0, DataFlag::N)]);
    }

    #[test]
    fn errors_name_the_factor() {
        let cases = [
            (
                "a21026-Rtd=abc",
                "factor a21026: Rtd value \"abc\" is not a finite number",
                "bad_value",
            ),
            (
                "a21026-Rtd=NaN",
                "factor a21026: Rtd value \"NaN\" is not a finite number",
                "bad_value",
            ),
            (
                "a21026-Rtd=inf",
                "factor a21026: Rtd value \"inf\" is not a finite number",
                "bad_value",
            ),
            (
                "a21026-Rtd=1e999",
                "factor a21026: Rtd value \"1e999\" is not a finite number",
                "bad_value",
            ),
            (
                "a21026-Rtd=",
                "factor a21026: Rtd value \"\" is not a finite number",
                "bad_value",
            ),
            (
                "a21026-Rtd=1,a21026-Flag=X",
                "factor a21026: unknown data flag \"X\"",
                "bad_flag",
            ),
            (
                "a21026-Rtd=1,a21026-Flag=NN",
                "factor a21026: unknown data flag \"NN\"",
                "bad_flag",
            ),
            (
                "a21026-Rtd=1,a21026-Flag=",
                "factor a21026: unknown data flag \"\"",
                "bad_flag",
            ),
            // Regression (issue 11, item 8): the first of a repeated field won silently.
            (
                "a21026-Rtd=1;a21002-Rtd=4;a21026-Rtd=1000",
                "factor a21026: field Rtd given twice",
                "repeated_field",
            ),
            (
                "a21026-Rtd=1,a21026-Flag=N,a21026-Flag=D",
                "factor a21026: field Flag given twice",
                "repeated_field",
            ),
        ];
        for (cp, message, code) in cases {
            let err = read(&format!(
                "CN=2011;MN=A;Flag=4;CP=&&DataTime=20191012133710;{cp}&&"
            ))
            .err();
            assert_eq!(
                err.as_ref().map(ToString::to_string),
                Some(message.to_owned()),
                "{cp}"
            );
            assert_eq!(err.map(|e| e.reason_code()), Some(code), "{cp}");
        }
    }

    #[test]
    fn plain_decimals_parse_like_the_standard_library() {
        for text in [
            "0",
            "-0",
            "0.00",
            "35.21",
            "+1.5",
            "1.",
            ".5",
            "101.942",
            "999999999999999",
            "0.000000000000001",
            "-123456.789012345",
        ] {
            let std = text.parse::<f64>().ok();
            assert_eq!(
                parse_plain_decimal(text.as_bytes()).map(f64::to_bits),
                std.map(f64::to_bits),
                "{text}"
            );
        }
        for text in [
            "",
            ".",
            "-",
            "1.2.3",
            "1e5",
            "0x10",
            "1,5",
            " 1",
            "1234567890123456",
        ] {
            assert_eq!(parse_plain_decimal(text.as_bytes()), None, "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn fast_value_parsing_equals_str_parse(text in "[-+]?[0-9]{0,16}(\\.[0-9]{0,16})?") {
            let fast = parse_plain_decimal(text.as_bytes());
            if let Some(fast) = fast {
                proptest::prop_assert_eq!(Some(fast.to_bits()), text.parse::<f64>().ok().map(f64::to_bits));
            }
            proptest::prop_assert_eq!(
                parse_value(&text).map(f64::to_bits),
                text.parse::<f64>().ok().filter(|v| v.is_finite()).map(f64::to_bits)
            );
        }
    }

    #[test]
    fn data_time_is_required_for_data() {
        let missing = Some(ReadingError::MissingDataTime {
            mn: "A".into(),
            cn: "2061".into(),
        });
        assert_eq!(read("CN=2061;MN=A;Flag=4;CP=&&&&").err(), missing);
        let missing = Some(ReadingError::MissingDataTime {
            mn: "A".into(),
            cn: "3020".into(),
        });
        assert_eq!(
            read("CN=3020;MN=A;Flag=4;CP=&&a21026-Rtd=1&&").err(),
            missing
        );
        assert_eq!(
            missing.map(|e| e.to_string()),
            Some("packet cn=3020 from mn A has no DataTime".to_owned())
        );
        // No values, no DataTime needed.
        assert_eq!(read("CN=9014;MN=A;Flag=4;CP=&&&&"), Ok(Vec::new()));
        assert_eq!(
            read("CN=3020;MN=A;Flag=4;CP=&&a21026-Info=x&&"),
            Ok(Vec::new())
        );
    }
}
