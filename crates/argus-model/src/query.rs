//! What a search of alerts or tickets asks for: filters, a keyset cursor and a bounded page.
//! The API builds these from a query string; each store turns them into its own SQL.
//!
//! Pages are keyset-paginated: a cursor is the sort key of the last item of a page, so a page
//! is never shifted by rows written meanwhile, and asking for the next page costs the same
//! however deep it is.

use std::fmt;

/// Which alerts: every field narrows the search; none set, every alert.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertQuery {
    /// Alerts active at some time at or after this (ms): firing, or ended at or after it.
    pub from_ms: Option<i64>,
    /// Alerts that started before this (ms).
    pub to_ms: Option<i64>,
    /// The enterprise's town.
    pub town: Option<String>,
    /// Alerts behind a ticket of this department (with `ticket_town`, of that town's team).
    pub ticket_department: Option<String>,
    /// With `ticket_department`: the ticket's town.
    pub ticket_town: Option<String>,
    /// The enterprise.
    pub enterprise: Option<String>,
    /// The point (MN or device id).
    pub point: Option<String>,
    /// The alert kind.
    pub kind: Option<String>,
    /// The severity.
    pub severity: Option<String>,
    /// `firing` or `resolved`.
    pub status: Option<String>,
    /// Muted (or not) by a notice or silence.
    pub muted: Option<bool>,
    /// Acknowledged (or not).
    pub acknowledged: Option<bool>,
    /// Continue after this item (newest start first, then by id).
    pub after: Option<AlertCursor>,
    /// At most this many.
    pub limit: u32,
}

/// Where a page of alerts ended: the start and id of its last alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertCursor {
    /// Its start, ms.
    pub started_ms: i64,
    /// Its id.
    pub alert_id: String,
}

/// Which tickets: every field narrows the search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketQuery {
    /// The department responsible.
    pub department: Option<String>,
    /// The town (with `department`: one team).
    pub town: Option<String>,
    /// The enterprise.
    pub enterprise: Option<String>,
    /// In one of these states (empty: any).
    pub states: Vec<String>,
    /// With a deadline before this (ms).
    pub due_before_ms: Option<i64>,
    /// The order of the list.
    pub order: TicketOrder,
    /// Continue after this item.
    pub after: Option<TicketCursor>,
    /// At most this many.
    pub limit: u32,
}

/// How tickets are listed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TicketOrder {
    /// Newest first.
    #[default]
    Created,
    /// Soonest deadline first; only tickets whose state has a deadline.
    Deadline,
}

/// Where a page of tickets ended: its last ticket's sort key (creation or deadline, ms) and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketCursor {
    /// Created or deadline, ms, as the order says.
    pub key_ms: i64,
    /// Its id.
    pub ticket_id: String,
}

/// A cursor as clients carry it: `<ms>.<id>`.
fn render(ms: i64, id: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{ms}.{id}")
}

/// A cursor's parts, if it is one: `<ms>.<16 hex digits>`.
fn parse(text: &str) -> Option<(i64, String)> {
    let (ms, id) = text.split_once('.')?;
    let ms = ms.parse().ok()?;
    (id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| (ms, id.to_owned()))
}

impl fmt::Display for AlertCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        render(self.started_ms, &self.alert_id, f)
    }
}

impl AlertCursor {
    /// A cursor from its text, if it is one.
    pub fn parse(text: &str) -> Option<Self> {
        parse(text).map(|(started_ms, alert_id)| Self {
            started_ms,
            alert_id,
        })
    }
}

impl fmt::Display for TicketCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        render(self.key_ms, &self.ticket_id, f)
    }
}

impl TicketCursor {
    /// A cursor from its text, if it is one.
    pub fn parse(text: &str) -> Option<Self> {
        parse(text).map(|(key_ms, ticket_id)| Self { key_ms, ticket_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_what_is_not_one() {
        let c = AlertCursor {
            started_ms: 1_764_000_000_000,
            alert_id: "00ff00ff00ff00ff".to_owned(),
        };
        assert_eq!(AlertCursor::parse(&c.to_string()), Some(c));
        let t = TicketCursor::parse("-5.0123456789abcdef").unwrap_or_else(|| panic!("a cursor"));
        assert_eq!((t.key_ms, t.ticket_id.as_str()), (-5, "0123456789abcdef"));
        for bad in [
            "",
            "12",
            "12.",
            "x.0123456789abcdef",
            "1.0123",
            "1.0123456789abcdeg",
        ] {
            assert_eq!(AlertCursor::parse(bad), None, "{bad:?}");
        }
    }
}
