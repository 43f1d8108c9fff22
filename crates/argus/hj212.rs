//! `argus hj212 decode`: packets in, one JSON object (or `error: <reason>`) per packet out.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use argus_hj212::DecodeOptions;

/// Decode every packet of `file` (or standard input), one per line; CR LF ends a packet on the
/// wire, LF alone is accepted too. Returns exit code 1 if any packet was bad.
pub fn decode(file: Option<&Path>, max_data_len: usize) -> anyhow::Result<ExitCode> {
    let input: Box<dyn Read> = match file {
        None => Box::new(std::io::stdin().lock()),
        Some(path) if path == Path::new("-") => Box::new(std::io::stdin().lock()),
        Some(path) => Box::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        ),
    };
    let options = DecodeOptions { max_data_len };
    let mut reader = BufReader::new(input);
    let mut line = Vec::new();
    let mut bad = 0_usize;
    loop {
        line.clear();
        if reader
            .read_until(b'\n', &mut line)
            .context("cannot read input")?
            == 0
        {
            break;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match argus_hj212::decode_line(&line, &options) {
            Ok(json) => crate::say(&json.to_string())?,
            Err(e) => {
                bad += 1;
                crate::say(&format!("error: {e}"))?;
            }
        }
    }
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
