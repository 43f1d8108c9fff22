//! Replies to a received packet: 9014 (data reply), 9011 (request answer), 9012 (execution
//! result), in the layout of the request's protocol version.
//!
//! Which packet gets which reply:
//!
//! - A data upload with the A bit of `Flag` set ([`Packet::needs_reply`]) gets a **9014** data
//!   reply: real-time data 2011, minute data 2051, hourly data 2061, daily data 2031, facility
//!   state and run time 2021/2041, and the other uploads of the 2xxx and 3xxx series.
//! - A command request (the 1xxx parameter commands such as 1011/1012 time, 1061/1062 intervals,
//!   and the extraction requests of the 2xxx series that carry `BeginTime`/`EndTime`) gets a
//!   **9011** request answer (`QnRtn=1`: ready to execute) as soon as it is received, then a
//!   **9012** execution result (`ExeRtn=1`: success) once executed.
//! - Replies themselves (9011, 9012, 9013, 9014) get no reply.
//!
//! Layouts (HJ 212-2017 §6.6 and its examples; HJ 212-2025 keeps them):
//!
//! ```text
//! 2017/2025: QN=<request QN>;ST=91;CN=9014;PW=<PW>;MN=<MN>;Flag=<version bits, A=0>;CP=&&&&
//!            QN=<request QN>;ST=91;CN=9011;PW=<PW>;MN=<MN>;Flag=4;CP=&&QnRtn=1&&
//!            QN=<request QN>;ST=91;CN=9012;PW=<PW>;MN=<MN>;Flag=4;CP=&&ExeRtn=1&&
//! 2005:      ST=91;CN=9014;PW=<PW>;MN=<MN>;CP=&&QN=<request QN>&&
//!            ST=91;CN=9011;PW=<PW>;MN=<MN>;Flag=0;CP=&&QN=<request QN>;QnRtn=1&&
//!            ST=91;CN=9012;PW=<PW>;MN=<MN>;CP=&&QN=<request QN>;ExeRtn=1&&
//! ```
//!
//! A request without `QN` gets a reply without one. `PW` and `MN` are the request's.

use crate::encode::{encode, CpBuilder, Header};
use crate::error::EncodeError;
use crate::packet::{Packet, Version};

/// `QnRtn` of a 9011: ready to execute.
pub const QN_RTN_READY: u8 = 1;
/// `QnRtn` of a 9011: request refused.
pub const QN_RTN_REFUSED: u8 = 2;
/// `QnRtn` of a 9011: wrong PW.
pub const QN_RTN_BAD_PW: u8 = 3;
/// `ExeRtn` of a 9012: executed successfully.
pub const EXE_RTN_SUCCESS: u8 = 1;
/// `ExeRtn` of a 9012: execution failed.
pub const EXE_RTN_FAILED: u8 = 2;
/// `ExeRtn` of a 9012: no data.
pub const EXE_RTN_NO_DATA: u8 = 100;

/// The 9014 data reply to a data upload. See the module docs for the layout.
pub fn reply_9014(request: &Packet<'_>) -> Result<Vec<u8>, EncodeError> {
    reply(request, "9014", None)
}

/// The 9011 request answer to a command request, with `QnRtn` (1 ready to execute, 2 refused,
/// 3 wrong PW, ...).
pub fn reply_9011(request: &Packet<'_>, qn_rtn: u8) -> Result<Vec<u8>, EncodeError> {
    reply(request, "9011", Some(("QnRtn", qn_rtn)))
}

/// The 9012 execution result of a command request, with `ExeRtn` (1 success, 2 failed,
/// 100 no data, ...).
pub fn reply_9012(request: &Packet<'_>, exe_rtn: u8) -> Result<Vec<u8>, EncodeError> {
    reply(request, "9012", Some(("ExeRtn", exe_rtn)))
}

fn reply(
    request: &Packet<'_>,
    cn: &'static str,
    result: Option<(&str, u8)>,
) -> Result<Vec<u8>, EncodeError> {
    let version = request.version();
    let code = result.map(|(key, code)| (key, code.to_string()));
    let mut cp = CpBuilder::new();
    let header = if version == Version::V2005 {
        // The request's QN goes into the CP, so it must be a valid CP value.
        if let Some(qn) = request.qn() {
            cp = cp.param("QN", qn);
        }
        Header {
            st: Some("91"),
            cn,
            pw: request.pw(),
            mn: request.mn(),
            flag: (cn == "9011").then_some(0),
            ..Header::default()
        }
    } else {
        Header {
            qn: request.qn(),
            st: Some("91"),
            cn,
            pw: request.pw(),
            mn: request.mn(),
            flag: Some(version.bits() << 2),
            ..Header::default()
        }
    };
    if let Some((key, code)) = &code {
        cp = cp.param(key, code);
    }
    encode(&header, &cp.finish()?)
}
