//! The shared HJ 212 conformance packets: every valid one decodes (and converts, re-encodes and
//! gets replies), every bad-CRC one is refused.

use argus_hj212::{
    decode, decode_line, readings, reply_9011, reply_9012, reply_9014, to_json, DecodeError,
    DecodeOptions, FieldKind, Packet, Version,
};
use argus_model::{DataFlag, Metric, MetricCode, Timestamp};

const CONFORMANCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/conformance/hj212/"
);

/// The lines of a conformance file, each with CR LF as on the wire.
fn packets(file: &str) -> Vec<Vec<u8>> {
    let path = format!("{CONFORMANCE}{file}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| format!("{line}\r\n").into_bytes())
        .collect()
}

fn decoded(frame: &[u8]) -> Packet<'_> {
    decode(frame, &DecodeOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(frame)))
}

fn valid() -> Vec<Vec<u8>> {
    let lines = packets("valid.txt");
    assert_eq!(lines.len(), 6, "valid.txt changed");
    lines
}

/// 2019-10-12 13:37:10 China Standard Time.
const T_20191012133710: Timestamp = Timestamp(1_570_858_630_000);
const RECEIVED: Timestamp = Timestamp(1_570_858_640_000);

#[test]
fn every_valid_packet_decodes_with_and_without_crlf() {
    for frame in valid() {
        let packet = decoded(&frame);
        assert!(!packet.mn().is_empty());
        let bare = &frame[..frame.len() - 2];
        assert_eq!(decoded(bare), packet);
        // The line forms the CLI accepts.
        let json = decode_line(bare, &DecodeOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(json, to_json(&packet));
        let mut lf = bare.to_vec();
        lf.push(b'\n');
        assert_eq!(decode_line(&lf, &DecodeOptions::default()), Ok(json));
    }
}

#[test]
fn every_bad_crc_packet_is_refused_with_a_crc_error() {
    let lines = packets("bad-crc.txt");
    assert!(!lines.is_empty());
    for frame in lines {
        match decode(&frame, &DecodeOptions::default()) {
            Err(DecodeError::BadCrc { stated, computed }) => assert_ne!(stated, computed),
            other => panic!("expected a crc error, got {other:?}"),
        }
    }
    let frame = &packets("bad-crc.txt")[0];
    let err = decode(frame, &DecodeOptions::default()).err();
    assert_eq!(
        err.map(|e| (e.to_string(), e.reason_code())),
        Some((
            "bad crc: stated 0x4981, computed 0x4980".to_owned(),
            "bad_crc"
        ))
    );
}

#[test]
fn hourly_2017_packet() {
    let frames = valid();
    let p = decoded(&frames[0]);
    assert_eq!(p.qn(), Some("20190925181031464"));
    assert_eq!(p.st(), Some("22"));
    assert_eq!(p.cn(), "2061");
    assert_eq!(p.pw(), Some("BF470F88957588DE902D1A52"));
    assert_eq!(p.mn(), "Z13401000010301");
    assert_eq!(p.flag(), Some(5));
    assert_eq!(p.version(), Version::V2017);
    assert!(p.needs_reply());
    assert!(!p.is_split());
    assert_eq!((p.pnum(), p.pno()), (None, None));
    assert_eq!(p.crc(), 0xC181);
    let codes: Vec<&str> = p.factors().map(|f| f.code()).collect();
    assert_eq!(codes, ["a34006", "a34007", "a34048", "a34047", "a34049"]);
    let f = p.factor("a34049").unwrap_or_else(|| panic!("a34049"));
    assert_eq!(f.field(FieldKind::Avg), Some("10.66300"));
    assert_eq!(f.field(FieldKind::Flag), Some("N"));
    assert_eq!(f.field(FieldKind::Rtd), None);
    // a34006 etc. are not in the catalogue: kept as unknown.
    assert_eq!(f.known_metric(), None);
    assert_eq!(f.metric(), MetricCode::parse("a34049"));
    // 2019-09-24 22:00:00 +08:00.
    assert_eq!(
        p.data_time().map(|t| t.to_rfc3339()),
        Some("2019-09-24T14:00:00.000Z".to_owned())
    );

    let r = readings(&p, RECEIVED).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.len(), 5);
    assert_eq!(r[0].value, 2.697);
    assert_eq!(r[4].value, 10.663);
    assert!(r
        .iter()
        .all(|r| r.flag == DataFlag::N && r.source.as_str() == "Z13401000010301"));
}

#[test]
fn real_time_2017_packet_and_its_readings() {
    let frames = valid();
    let p = decoded(&frames[1]);
    assert_eq!(p.cn(), "2011");
    assert_eq!(p.flag(), Some(4));
    assert!(!p.needs_reply());
    assert_eq!(p.cp_params(), [("DataTime", "20191012133710")]);
    assert_eq!(p.data_time(), Some(T_20191012133710));
    assert_eq!(p.factors().len(), 7);
    let so2 = p.factor("a21002").unwrap_or_else(|| panic!("a21002"));
    assert_eq!(so2.known_metric(), Some(Metric::Nox));
    assert_eq!(
        p.factor("a21005").and_then(|f| f.known_metric()),
        Some(Metric::FlueCo)
    );

    let r = readings(&p, RECEIVED).unwrap_or_else(|e| panic!("{e}"));
    let values: Vec<(String, f64)> = r.iter().map(|r| (r.metric.to_string(), r.value)).collect();
    assert_eq!(
        values,
        [
            ("a21005".to_owned(), 0.0),
            ("a21004".to_owned(), 0.0),
            ("a21007".to_owned(), 0.033),
            ("a21006".to_owned(), 0.036),
            ("a21001".to_owned(), 25.4),
            ("a21003".to_owned(), 101.94),
            ("a21002".to_owned(), 49.2),
        ]
    );
    for reading in &r {
        assert_eq!(reading.event_time.to_rfc3339(), "2019-10-12T05:37:10.000Z");
        assert_eq!(reading.receive_time, RECEIVED);
        assert_eq!(reading.flag, DataFlag::N);
        assert_eq!(reading.source.as_str(), "Y80110010000010");
    }
    assert_eq!(r[6].metric, MetricCode::Known(Metric::Nox));
}

#[test]
fn real_time_packet_with_sample_time_and_a_flag_5() {
    let frames = valid();
    let p = decoded(&frames[2]);
    assert_eq!(p.mn(), "010000A8900016F000169DC0");
    assert!(p.needs_reply());
    let f = p.factor("w01008").unwrap_or_else(|| panic!("w01008"));
    assert_eq!(
        f.fields().iter().map(|f| f.kind).collect::<Vec<_>>(),
        [FieldKind::SampleTime, FieldKind::Rtd]
    );
    assert_eq!(f.field(FieldKind::SampleTime), Some("20231008123340"));
    let r = readings(&p, RECEIVED).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].value, 123.456);
    assert_eq!(r[0].flag, DataFlag::N); // no -Flag: N
}

#[test]
fn request_answer_packet_has_params_and_no_readings() {
    let frames = valid();
    let p = decoded(&frames[3]);
    assert_eq!(p.cn(), "9011");
    assert_eq!(p.cp_param("QnRtn"), Some("1"));
    assert_eq!(p.factors().len(), 0);
    assert_eq!(p.data_time(), None);
    assert_eq!(readings(&p, RECEIVED), Ok(Vec::new()));
}

#[test]
fn hj212_2005_packet_maps_legacy_codes() {
    let frames = valid();
    let p = decoded(&frames[4]);
    assert_eq!(p.version(), Version::V2005);
    assert_eq!((p.qn(), p.flag()), (None, None));
    assert!(!p.needs_reply());
    assert_eq!(p.st(), Some("32"));
    let metrics: Vec<(&str, Option<Metric>)> =
        p.factors().map(|f| (f.code(), f.known_metric())).collect();
    assert_eq!(
        metrics,
        [
            ("B01", Some(Metric::WastewaterFlow)),
            ("011", Some(Metric::Cod)),
            ("060", Some(Metric::AmmoniaNitrogen)),
        ]
    );
    // 2016-08-24 00:38:17.000 +08:00, the 17-digit form.
    assert_eq!(
        p.data_time().map(|t| t.to_rfc3339()),
        Some("2016-08-23T16:38:17.000Z".to_owned())
    );
    let r = readings(&p, RECEIVED).unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<(String, f64)> = r.iter().map(|r| (r.metric.to_string(), r.value)).collect();
    assert_eq!(
        got,
        [
            ("w00000".to_owned(), 36.91),
            ("w01018".to_owned(), 231.0),
            ("w21003".to_owned(), 1.803),
        ]
    );
    let json = to_json(&p);
    assert_eq!(json["factors"][1]["code"], "011");
    assert_eq!(json["factors"][1]["metric"], "w01018");
    assert_eq!(json["version"], "2005");
}

#[test]
fn vendor_codes_stay_unknown_but_kept() {
    let frames = valid();
    let p = decoded(&frames[5]);
    let codes: Vec<&str> = p.factors().map(|f| f.code()).collect();
    assert_eq!(
        codes,
        ["a214", "a215", "a216", "a217", "a211", "a212", "a213"]
    );
    assert!(p.factors().all(|f| f.known_metric().is_none()));
    let r = readings(&p, RECEIVED).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.len(), 7);
    assert_eq!(r[0].metric, MetricCode::parse("a214"));
    assert_eq!(r[0].metric.known(), None);
    assert_eq!(r[6].value, 101.94);
}

#[test]
fn re_encoding_gives_back_the_frame_modulo_crc_case() {
    for frame in valid() {
        let packet = decoded(&frame);
        let encoded = packet.encode().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            encoded,
            frame.to_ascii_uppercase_crc(),
            "{}",
            String::from_utf8_lossy(&frame)
        );
    }
}

trait UpperCrc {
    fn to_ascii_uppercase_crc(&self) -> Vec<u8>;
}

impl UpperCrc for Vec<u8> {
    /// The frame with its CRC digits (the 4 bytes before CR LF) in upper case.
    fn to_ascii_uppercase_crc(&self) -> Vec<u8> {
        let mut out = self.clone();
        let n = out.len();
        out[n - 6..n - 2].make_ascii_uppercase();
        out
    }
}

#[test]
fn json_form_is_stable() {
    let frames = valid();
    let json = to_json(&decoded(&frames[1]));
    let text = serde_json::to_string(&json).unwrap_or_else(|e| panic!("{e}"));
    let expected = concat!(
        r#"{"cn":"2011","data_time":"2019-10-12T05:37:10.000Z","factors":["#,
        r#"{"code":"a21005","fields":{"Flag":"N","Rtd":"0.00"},"metric":"a21005"},"#,
        r#"{"code":"a21004","fields":{"Flag":"N","Rtd":"0.00"},"metric":"a21004"},"#,
        r#"{"code":"a21007","fields":{"Flag":"N","Rtd":"0.033"},"metric":"a21007"},"#,
        r#"{"code":"a21006","fields":{"Flag":"N","Rtd":"0.036"},"metric":"a21006"},"#,
        r#"{"code":"a21001","fields":{"Flag":"N","Rtd":"25.40"},"metric":"a21001"},"#,
        r#"{"code":"a21003","fields":{"Flag":"N","Rtd":"101.94"},"metric":"a21003"},"#,
        r#"{"code":"a21002","fields":{"Flag":"N","Rtd":"49.20"},"metric":"a21002"}],"#,
        r#""flag":4,"mn":"Y80110010000010","params":{"DataTime":"20191012133710"},"#,
        r#""pno":null,"pnum":null,"pw":"123456","qn":"20191012133710130","st":"22","version":"2017"}"#
    );
    assert_eq!(text, expected);
}

/// Decode a reply and check it is the reply it should be.
fn check_reply<'a>(reply: &'a [u8], cn: &str) -> Packet<'a> {
    assert!(reply.ends_with(b"\r\n"));
    let p = decoded(reply);
    assert_eq!(p.st(), Some("91"));
    assert_eq!(p.cn(), cn);
    assert!(!p.needs_reply());
    p
}

#[test]
fn replies_to_2017_packets_decode() {
    let frames = valid();
    let request = decoded(&frames[0]); // CN 2061, Flag=5: wants a 9014
    let reply = reply_9014(&request).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        String::from_utf8_lossy(&reply[6..reply.len() - 6]),
        "QN=20190925181031464;ST=91;CN=9014;PW=BF470F88957588DE902D1A52;MN=Z13401000010301;Flag=4;CP=&&&&"
    );
    let p = check_reply(&reply, "9014");
    assert_eq!(p.qn(), request.qn());
    assert_eq!(p.mn(), request.mn());
    assert_eq!(p.pw(), request.pw());
    assert_eq!(p.version(), Version::V2017);
    assert_eq!(p.cp(), "");

    let reply = reply_9011(&request, 1).unwrap_or_else(|e| panic!("{e}"));
    let p = check_reply(&reply, "9011");
    assert_eq!((p.qn(), p.flag()), (request.qn(), Some(4)));
    assert_eq!(p.cp_param("QnRtn"), Some("1"));

    let reply = reply_9012(&request, 1).unwrap_or_else(|e| panic!("{e}"));
    let p = check_reply(&reply, "9012");
    assert_eq!(p.qn(), request.qn());
    assert_eq!(p.cp(), "ExeRtn=1");
}

#[test]
fn replies_to_2005_packets_put_the_qn_in_the_cp() {
    let frame = argus_hj212::encode(
        &argus_hj212::Header {
            qn: Some("20040516010101001"),
            st: Some("32"),
            cn: "1062",
            pw: Some("123456"),
            mn: "88888880000001",
            flag: Some(3),
            ..Default::default()
        },
        "RtdInterval=30",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let request = decoded(&frame);
    assert_eq!(request.version(), Version::V2005);
    assert!(request.needs_reply() && request.is_split());

    let reply = reply_9011(&request, 1).unwrap_or_else(|e| panic!("{e}"));
    let p = check_reply(&reply, "9011");
    assert_eq!(
        p.data(),
        "ST=91;CN=9011;PW=123456;MN=88888880000001;Flag=0;CP=&&QN=20040516010101001;QnRtn=1&&"
    );
    let reply = reply_9012(&request, 1).unwrap_or_else(|e| panic!("{e}"));
    let p = check_reply(&reply, "9012");
    assert_eq!(
        p.data(),
        "ST=91;CN=9012;PW=123456;MN=88888880000001;CP=&&QN=20040516010101001;ExeRtn=1&&"
    );
    let reply = reply_9014(&request).unwrap_or_else(|e| panic!("{e}"));
    let p = check_reply(&reply, "9014");
    assert_eq!(p.cp_param("QN"), Some("20040516010101001"));
}
