//! The tamper-evident legal record: every line of a ticket's record (`ticket_events`) carries the
//! SHA-256 of its content and of the line before it ([`link`], done by the store as it writes),
//! so a changed byte, a removed line or a line put in between breaks the chain from there on;
//! [`verify`] recomputes a record's chain and names the first line that does not match, and
//! [`audit`] does so for one ticket or every ticket of a store (`argus audit verify`).

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::rows::TicketEventRow;
use crate::{Store, StoreError};

/// SHA-256 of a line's content and the hash of the line before it, 64 hex digits. The content
/// is every column but `hash`, as a JSON array in a fixed order.
pub fn line_hash(row: &TicketEventRow) -> String {
    let content = serde_json::json!([
        row.ticket_id,
        row.seq,
        row.at,
        row.at_ms,
        row.actor,
        row.role,
        row.event,
        row.from_state,
        row.to_state,
        row.note,
        row.alert_ids,
        row.outcome,
        row.request_key,
        row.prev_hash,
    ]);
    Sha256::digest(content.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Chain the lines of a batch: each gets `prev_hash` (the hash of the line of its ticket with
/// the seq before it: earlier in the batch, or `stored`, the last line on record per ticket as
/// (seq, hash)) and its own `hash`. Lines already on record (a seq at or below the stored one)
/// are dropped: the record keeps the line it has.
pub fn link(rows: &mut Vec<TicketEventRow>, stored: &HashMap<String, (u32, String)>) {
    rows.retain(|r| stored.get(&r.ticket_id).is_none_or(|(seq, _)| r.seq > *seq));
    rows.sort_by(|a, b| (&a.ticket_id, a.seq).cmp(&(&b.ticket_id, b.seq)));
    let mut last: HashMap<String, (u32, String)> = HashMap::new();
    for row in rows.iter_mut() {
        let before = last
            .get(&row.ticket_id)
            .or_else(|| stored.get(&row.ticket_id));
        row.prev_hash = before
            .filter(|(seq, _)| seq + 1 == row.seq)
            .map(|(_, hash)| hash.clone())
            .unwrap_or_default();
        row.hash = line_hash(row);
        last.insert(row.ticket_id.clone(), (row.seq, row.hash.clone()));
    }
}

/// Why a record's chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// The line's content is not what its hash was made of.
    #[error("ticket {ticket}: line {seq} was changed after it was written (its hash does not match its content)")]
    Changed {
        /// The ticket.
        ticket: String,
        /// The line.
        seq: u32,
    },
    /// The line does not follow the one before it: a line was removed, put in between, or
    /// changed before it.
    #[error("ticket {ticket}: line {seq} does not follow line {before} (a line was removed, inserted or changed)")]
    Unlinked {
        /// The ticket.
        ticket: String,
        /// The line.
        seq: u32,
        /// The line before it in the record.
        before: u32,
    },
    /// The lines are not numbered 1, 2, 3 ...
    #[error("ticket {ticket}: line {seq} where line {expected} was expected")]
    Gap {
        /// The ticket.
        ticket: String,
        /// The line found.
        seq: u32,
        /// The line expected.
        expected: u32,
    },
}

/// What one record's chain holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    /// Lines checked.
    pub lines: usize,
    /// Lines written before the chain existed (no hash): kept, not verifiable.
    pub unchained: usize,
    /// The last line's hash: the record's chain head (empty when no line is chained).
    pub head: String,
}

/// Recompute the chain of one ticket's record (its lines in seq order).
pub fn verify(record: &[TicketEventRow]) -> Result<Chain, ChainBreak> {
    let mut chain = Chain::default();
    let mut before: Option<&TicketEventRow> = None;
    for (i, row) in record.iter().enumerate() {
        let expected = u32::try_from(i + 1).unwrap_or(u32::MAX);
        if row.seq != expected {
            return Err(ChainBreak::Gap {
                ticket: row.ticket_id.clone(),
                seq: row.seq,
                expected,
            });
        }
        chain.lines += 1;
        if row.hash.is_empty() {
            chain.unchained += 1;
            if before.is_some_and(|b| !b.hash.is_empty()) {
                // A line without a hash after chained ones: put in, or its hash wiped.
                return Err(ChainBreak::Unlinked {
                    ticket: row.ticket_id.clone(),
                    seq: row.seq,
                    before: row.seq - 1,
                });
            }
            before = Some(row);
            continue;
        }
        let link = before.map_or("", |b| b.hash.as_str());
        if row.prev_hash != link {
            return Err(ChainBreak::Unlinked {
                ticket: row.ticket_id.clone(),
                seq: row.seq,
                before: row.seq.saturating_sub(1),
            });
        }
        if line_hash(row) != row.hash {
            return Err(ChainBreak::Changed {
                ticket: row.ticket_id.clone(),
                seq: row.seq,
            });
        }
        chain.head.clone_from(&row.hash);
        before = Some(row);
    }
    Ok(chain)
}

/// The audit of a store's legal record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audit {
    /// Per ticket checked: its chain, or where it breaks.
    pub tickets: Vec<(String, Result<Chain, ChainBreak>)>,
}

impl Audit {
    /// The breaks found.
    pub fn breaks(&self) -> impl Iterator<Item = &ChainBreak> {
        self.tickets.iter().filter_map(|(_, r)| r.as_ref().err())
    }
}

/// Most tickets an audit of every ticket reads.
pub const MAX_AUDITED_TICKETS: u32 = 10_000_000;

/// Verify the record of one ticket, or of every ticket in the store.
pub async fn audit<S: Store>(store: &S, ticket: Option<&str>) -> Result<Audit, StoreError> {
    let ids: Vec<String> = match ticket {
        Some(id) => vec![id.to_owned()],
        None => {
            let mut ids: Vec<String> = store
                .recent_tickets(MAX_AUDITED_TICKETS)
                .await?
                .into_iter()
                .map(|t| t.ticket_id)
                .collect();
            ids.sort_unstable();
            ids
        }
    };
    let mut audit = Audit::default();
    for id in ids {
        let record = store.ticket_events(&id).await?;
        audit.tickets.push((id, verify(&record)));
    }
    Ok(audit)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn line(ticket: &str, seq: u32, note: &str) -> TicketEventRow {
        TicketEventRow {
            ticket_id: ticket.to_owned(),
            seq,
            at: 1,
            at_ms: 1_000,
            actor: "argus".to_owned(),
            role: "system".to_owned(),
            event: "created".to_owned(),
            from_state: String::new(),
            to_state: "new".to_owned(),
            note: note.to_owned(),
            alert_ids: vec!["00000000000000aa".to_owned()],
            outcome: String::new(),
            request_key: String::new(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn a_record_linked_in_batches_verifies_and_any_change_breaks_it() {
        let mut first = vec![line("t", 2, "b"), line("t", 1, "a")];
        link(&mut first, &HashMap::new());
        let stored = HashMap::from([("t".to_owned(), (2, first[1].hash.clone()))]);
        let mut second = vec![line("t", 3, "c")];
        link(&mut second, &stored);
        let record: Vec<_> = first.into_iter().chain(second).collect();
        let chain = verify(&record).unwrap();
        assert_eq!((chain.lines, chain.unchained), (3, 0));
        assert_eq!(chain.head, record[2].hash);

        let mut changed = record.clone();
        changed[1].note = "B".to_owned();
        assert_eq!(
            verify(&changed),
            Err(ChainBreak::Changed {
                ticket: "t".into(),
                seq: 2
            })
        );
        // Changed and re-hashed: the next line no longer follows it.
        changed[1].hash = line_hash(&changed[1]);
        assert!(matches!(
            verify(&changed),
            Err(ChainBreak::Unlinked { seq: 3, .. })
        ));
        let removed = [record[0].clone(), record[2].clone()];
        assert!(matches!(
            verify(&removed),
            Err(ChainBreak::Gap { seq: 3, .. })
        ));
    }

    #[test]
    fn lines_from_before_the_chain_are_counted_not_refused() {
        let old = line("t", 1, "a");
        let mut new = vec![line("t", 2, "b")];
        link(
            &mut new,
            &HashMap::from([("t".to_owned(), (1, String::new()))]),
        );
        let chain = verify(&[old, new[0].clone()]).unwrap();
        assert_eq!((chain.lines, chain.unchained), (2, 1));
        assert_eq!(chain.head, new[0].hash);
    }
}
