//! The printable export of a ticket's legal record (`GET /api/tickets/{id}/record.html`): one
//! self-contained HTML page for the case file, labels in Chinese and English, times in the
//! county's time (UTC+8), every line with its hash and the record's chain head, so a printed
//! record can be checked against the store (`argus audit verify`).

use std::fmt::Write;

use argus_model::time::CHINA_OFFSET_SECS;
use argus_model::{TicketEventView, TicketView, Timestamp};

/// Text made safe inside HTML elements and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An RFC 3339 time as `YYYY-MM-DD HH:MM` in UTC+8 (as given when it is not one).
fn county_time(rfc3339: &str) -> String {
    let Some(t) = Timestamp::parse_rfc3339(rfc3339) else {
        return rfc3339.to_owned();
    };
    let c = t.to_civil(CHINA_OFFSET_SECS);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute
    )
}

const STYLE: &str =
    "body{font-family:'Noto Sans CJK SC','Microsoft YaHei',sans-serif;margin:2em;color:#111}\
table{border-collapse:collapse;width:100%;font-size:12px}th,td{border:1px solid #999;padding:4px;\
text-align:left;vertical-align:top}th{background:#eee}code{font-size:10px;word-break:break-all}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px}dt{font-weight:bold}\
@media print{body{margin:0}tr{page-break-inside:avoid}}";

/// The page for `ticket` and its whole `record` (lines in order).
pub fn record_html(ticket: &TicketView, record: &[TicketEventView]) -> String {
    let head = record.last().map_or("", |l| l.hash.as_str());
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <title>执法工单记录 {id}</title><style>{STYLE}</style></head><body>\
         <h1>执法工单记录 Enforcement ticket record</h1><dl>\
         <dt>工单 Ticket</dt><dd>{id}</dd><dt>企业 Enterprise</dt><dd>{enterprise}</dd>\
         <dt>乡镇 Town</dt><dd>{town}</dd><dt>部门 Department</dt><dd>{department}</dd>\
         <dt>执法组 Team</dt><dd>{team}</dd><dt>状态 State</dt><dd>{state}</dd>\
         <dt>创建 Created</dt><dd>{created} (UTC+8)</dd>\
         <dt>链头 Chain head</dt><dd><code>{head}</code></dd></dl>\
         <table><thead><tr><th>#</th><th>时间 Time</th><th>人员 Who</th><th>角色 Role</th>\
         <th>事项 What</th><th>状态 State</th><th>说明 Note</th><th>告警 Alerts</th>\
         <th>结论 Outcome</th><th>哈希 Hash</th></tr></thead><tbody>",
        id = escape(&ticket.ticket_id),
        enterprise = escape(&ticket.enterprise),
        town = escape(&ticket.town),
        department = escape(&ticket.department),
        team = escape(&ticket.team),
        state = escape(&ticket.state),
        created = county_time(&ticket.created_at),
        head = escape(if head.is_empty() { "-" } else { head }),
    );
    for line in record {
        let states = match &line.from {
            Some(from) => format!("{} → {}", escape(from), escape(&line.to)),
            None => escape(&line.to),
        };
        let _ = write!(
            page,
            "<tr><td>{seq}</td><td>{at}</td><td>{actor}</td><td>{role}</td><td>{event}</td>\
             <td>{states}</td><td>{note}</td><td>{alerts}</td><td>{outcome}</td>\
             <td><code>{hash}</code></td></tr>",
            seq = line.seq,
            at = county_time(&line.at),
            actor = escape(&line.actor),
            role = escape(&line.role),
            event = escape(&line.event),
            note = escape(&line.note),
            alerts = escape(&line.alert_ids.join(" ")),
            outcome = escape(line.outcome.as_deref().unwrap_or("")),
            hash = escape(&line.hash),
        );
    }
    let _ = write!(
        page,
        "</tbody></table><p>时间为北京时间 (UTC+8)。核验: <code>argus audit verify --ticket {}</code></p>\
         </body></html>",
        escape(&ticket.ticket_id)
    );
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_times_are_the_countys() {
        assert_eq!(
            escape("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
        assert_eq!(county_time("2026-11-25T16:00:00.000Z"), "2026-11-26 00:00");
        assert_eq!(county_time("not a time"), "not a time");
    }
}
