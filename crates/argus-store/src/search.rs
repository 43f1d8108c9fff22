//! Searches of alerts and tickets ([`AlertQuery`], [`TicketQuery`]) as SQL both stores run:
//! the same conditions and keyset order, with `?` parameters, differing only in how a table
//! is read as it stands (`FINAL` on ClickHouse) and how a ticket's alert ids are unnested.
//!
//! Conditions on what never changes in a row (town, enterprise, point, kind, start, id) are
//! applied while reading the table; conditions on what changes (status, end, severity, muted,
//! acknowledgement, state, deadline) only to the rows as they stand, outside the subquery, so
//! ClickHouse can never judge an old version of a row before `FINAL` replaces it.

use argus_model::{AlertQuery, TicketOrder, TicketQuery};

/// A parameter of a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
}

/// Which store the SQL is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// ClickHouse: replacing tables are read `FINAL`; arrays unnest with `arrayJoin`.
    ClickHouse,
    /// SQLite: tables hold one row per key; JSON arrays unnest with `json_each`.
    Sqlite,
}

impl Dialect {
    fn table(self, name: &str) -> String {
        match self {
            Dialect::ClickHouse => format!("{name} FINAL"),
            Dialect::Sqlite => name.to_owned(),
        }
    }

    /// The ids of the alerts behind the tickets of a department (in one town, or all).
    fn alerts_of_tickets(self) -> &'static str {
        match self {
            Dialect::ClickHouse => {
                "alert_id IN (SELECT arrayJoin(alert_ids) FROM tickets FINAL \
                 WHERE department = ? AND (? = '' OR town = ?))"
            }
            // Walked newest first, each alert looked up in `ticket_alerts`: a page costs its
            // own rows, however many tickets the department has.
            Dialect::Sqlite => {
                "EXISTS (SELECT 1 FROM ticket_alerts AS ta WHERE ta.alert_id = alerts.alert_id \
                 AND ta.department = ? AND (? = '' OR ta.town = ?))"
            }
        }
    }
}

/// Conditions joined with AND, and their parameters in order.
#[derive(Debug, Default)]
struct Conditions {
    sql: Vec<String>,
    params: Vec<Param>,
}

impl Conditions {
    fn push(&mut self, sql: &str, params: impl IntoIterator<Item = Param>) {
        self.sql.push(sql.to_owned());
        self.params.extend(params);
    }

    fn text(&mut self, column: &str, value: Option<&String>) {
        if let Some(value) = value {
            self.push(&format!("{column} = ?"), [Param::Text(value.clone())]);
        }
    }

    fn clause(&self) -> String {
        if self.sql.is_empty() {
            "1 = 1".to_owned()
        } else {
            self.sql.join(" AND ")
        }
    }
}

/// A search as SQL: `select` is the column list (`?fields` on ClickHouse); the parameters come
/// in order, the page size last.
pub fn alerts(dialect: Dialect, select: &str, q: &AlertQuery) -> (String, Vec<Param>) {
    let mut inner = Conditions::default();
    inner.text("town", q.town.as_ref());
    inner.text("enterprise_id", q.enterprise.as_ref());
    inner.text("source", q.point.as_ref());
    inner.text("kind", q.kind.as_ref());
    if let Some(department) = &q.ticket_department {
        let town = q.ticket_town.clone().unwrap_or_default();
        inner.push(
            dialect.alerts_of_tickets(),
            [
                Param::Text(department.clone()),
                Param::Text(town.clone()),
                Param::Text(town),
            ],
        );
    }
    if let Some(to) = q.to_ms {
        inner.push("started_ms < ?", [Param::Int(to)]);
    }
    if let Some(after) = &q.after {
        inner.push(
            "(started_ms < ? OR (started_ms = ? AND alert_id > ?))",
            [
                Param::Int(after.started_ms),
                Param::Int(after.started_ms),
                Param::Text(after.alert_id.clone()),
            ],
        );
    }
    let mut outer = Conditions::default();
    if let Some(from) = q.from_ms {
        outer.push("(ended_ms = 0 OR ended_ms >= ?)", [Param::Int(from)]);
    }
    outer.text("severity", q.severity.as_ref());
    outer.text("status", q.status.as_ref());
    if let Some(muted) = q.muted {
        outer.push(if muted { "muted = 1" } else { "muted = 0" }, []);
    }
    if let Some(acknowledged) = q.acknowledged {
        let sql = if acknowledged {
            "acknowledged_ms > 0"
        } else {
            "acknowledged_ms = 0"
        };
        outer.push(sql, []);
    }
    let sql = format!(
        "SELECT {select} FROM (SELECT * FROM {} WHERE {}) WHERE {} \
         ORDER BY started_ms DESC, alert_id LIMIT ?",
        dialect.table("alerts"),
        inner.clause(),
        outer.clause()
    );
    let mut params = inner.params;
    params.extend(outer.params);
    params.push(Param::Int(i64::from(q.limit)));
    (sql, params)
}

/// A ticket search as SQL, like [`alerts`].
pub fn tickets(dialect: Dialect, select: &str, q: &TicketQuery) -> (String, Vec<Param>) {
    let mut inner = Conditions::default();
    inner.text("department", q.department.as_ref());
    inner.text("town", q.town.as_ref());
    inner.text("enterprise_id", q.enterprise.as_ref());
    let mut outer = Conditions::default();
    if !q.states.is_empty() {
        let marks = vec!["?"; q.states.len()].join(", ");
        outer.push(
            &format!("state IN ({marks})"),
            q.states.iter().cloned().map(Param::Text),
        );
    }
    if let Some(due) = q.due_before_ms {
        outer.push("deadline_ms > 0 AND deadline_ms < ?", [Param::Int(due)]);
    }
    let after = |cursor: &argus_model::TicketCursor| {
        [
            Param::Int(cursor.key_ms),
            Param::Int(cursor.key_ms),
            Param::Text(cursor.ticket_id.clone()),
        ]
    };
    // Creation never changes (judged while reading), a deadline does (judged after).
    let order = match q.order {
        TicketOrder::Created => {
            if let Some(cursor) = &q.after {
                let sql = "(created_ms < ? OR (created_ms = ? AND ticket_id > ?))";
                inner.push(sql, after(cursor));
            }
            "created_ms DESC, ticket_id"
        }
        TicketOrder::Deadline => {
            outer.push("deadline_ms > 0", []);
            if let Some(cursor) = &q.after {
                let sql = "(deadline_ms > ? OR (deadline_ms = ? AND ticket_id > ?))";
                outer.push(sql, after(cursor));
            }
            "deadline_ms, ticket_id"
        }
    };
    let sql = format!(
        "SELECT {select} FROM (SELECT * FROM {} WHERE {}) WHERE {} ORDER BY {order} LIMIT ?",
        dialect.table("tickets"),
        inner.clause(),
        outer.clause()
    );
    let mut params = inner.params;
    params.extend(outer.params);
    params.push(Param::Int(i64::from(q.limit)));
    (sql, params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argus_model::AlertCursor;

    #[test]
    fn mutable_columns_are_judged_outside_the_final_read() {
        let q = AlertQuery {
            town: Some("T1".to_owned()),
            status: Some("firing".to_owned()),
            acknowledged: Some(false),
            after: Some(AlertCursor {
                started_ms: 7,
                alert_id: "0000000000000001".to_owned(),
            }),
            limit: 10,
            ..AlertQuery::default()
        };
        let (sql, params) = alerts(Dialect::ClickHouse, "?fields", &q);
        let (inner, outer) = sql
            .split_once(") WHERE ")
            .unwrap_or_else(|| panic!("no subquery: {sql}"));
        assert!(inner.contains("FROM alerts FINAL WHERE town = ?"), "{sql}");
        assert!(inner.contains("started_ms < ?"), "{sql}");
        assert!(
            outer.starts_with("status = ? AND acknowledged_ms = 0"),
            "{sql}"
        );
        assert_eq!(
            params,
            [
                Param::Text("T1".to_owned()),
                Param::Int(7),
                Param::Int(7),
                Param::Text("0000000000000001".to_owned()),
                Param::Text("firing".to_owned()),
                Param::Int(10),
            ]
        );
        assert_eq!(sql.matches('?').count(), params.len() + 1, "{sql}");
    }
}
