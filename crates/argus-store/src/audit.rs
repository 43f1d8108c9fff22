//! The tamper-evident legal record: every line of a ticket's record (`ticket_events`) carries the
//! SHA-256 of its content and of the line before it ([`link`], done by the store as it writes),
//! so a changed byte, a removed line or a line put in between breaks the chain from there on;
//! [`verify`] recomputes a record's chain and names the first line that does not match, and
//! [`audit`] does so for one ticket or every ticket of a store (`argus audit verify`).
//! Staff acknowledgements (`alert_acks`) and silences (`events` by transport `api`) are chained
//! the same way, each kind in one chain numbered from 1 ([`link_acks`], [`link_silences`]).

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::rows::{AlertAckRow, EventRow, TicketEventRow};
use crate::{Store, StoreError};

/// SHA-256 of a line's content and the hash of the line before it, 64 hex digits. The content
/// is every column but `hash`, as a JSON array in a fixed order.
pub fn line_hash(row: &TicketEventRow) -> String {
    sha256_hex(&serde_json::json!([
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
    ]))
}

fn sha256_hex(content: &serde_json::Value) -> String {
    Sha256::digest(content.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// SHA-256 of an acknowledgement's content and `prev_hash` (every column but `hash`).
pub fn ack_hash(row: &AlertAckRow) -> String {
    sha256_hex(&serde_json::json!([
        row.alert_id,
        row.actor,
        row.note,
        row.at,
        row.at_ms,
        row.request_key,
        row.seq,
        row.prev_hash,
    ]))
}

/// SHA-256 of a silence's content and `prev_hash` (every column but `hash`).
pub fn silence_hash(row: &EventRow) -> String {
    sha256_hex(&serde_json::json!([
        row.enterprise_id,
        row.source,
        row.kind,
        row.event_time,
        row.event_ms,
        row.receive_ms,
        row.until_ms,
        row.transport,
        row.body,
        row.request_key,
        row.chain_seq,
        row.prev_hash,
    ]))
}

/// Whether an event row is a staff silence (chained).
pub fn is_silence(row: &EventRow) -> bool {
    row.transport == "api"
}

/// Chain acknowledgements after `last` (the seq and hash of the last one on record).
pub fn link_acks(rows: &mut [AlertAckRow], last: (u64, String)) {
    let (mut seq, mut hash) = last;
    for row in rows {
        seq += 1;
        row.seq = seq;
        row.prev_hash = hash;
        row.hash = ack_hash(row);
        hash = row.hash.clone();
    }
}

/// Chain the staff silences among `rows` after `last` (the chain seq and hash of the last
/// silence on record); other events are left as they are.
pub fn link_silences(rows: &mut [EventRow], last: (u64, String)) {
    let (mut seq, mut hash) = last;
    for row in rows.iter_mut().filter(|r| is_silence(r)) {
        seq += 1;
        row.chain_seq = seq;
        row.prev_hash = hash;
        row.hash = silence_hash(row);
        hash = row.hash.clone();
    }
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
    #[error("{chain}: line {seq} was changed after it was written (its hash does not match its content)")]
    Changed {
        /// The chain (`ticket <id>`, `acknowledgements`, `silences`).
        chain: String,
        /// The line.
        seq: u64,
    },
    /// The line does not follow the one before it: a line was removed, put in between, or
    /// changed before it.
    #[error("{chain}: line {seq} does not follow line {before} (a line was removed, inserted or changed)")]
    Unlinked {
        /// The chain.
        chain: String,
        /// The line.
        seq: u64,
        /// The line before it in the record.
        before: u64,
    },
    /// The lines are not numbered 1, 2, 3 ...
    #[error("{chain}: line {seq} where line {expected} was expected")]
    Gap {
        /// The chain.
        chain: String,
        /// The line found.
        seq: u64,
        /// The line expected.
        expected: u64,
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

/// A line of a chained record.
pub trait Line {
    /// Its place in the chain, from 1.
    fn position(&self) -> u64;
    /// Its stored hash (empty: written before the chain).
    fn hash(&self) -> &str;
    /// Its stored link to the line before it.
    fn prev_hash(&self) -> &str;
    /// The hash of its content as it is now.
    fn content_hash(&self) -> String;
}

impl Line for TicketEventRow {
    fn position(&self) -> u64 {
        u64::from(self.seq)
    }
    fn hash(&self) -> &str {
        &self.hash
    }
    fn prev_hash(&self) -> &str {
        &self.prev_hash
    }
    fn content_hash(&self) -> String {
        line_hash(self)
    }
}

impl Line for AlertAckRow {
    fn position(&self) -> u64 {
        self.seq
    }
    fn hash(&self) -> &str {
        &self.hash
    }
    fn prev_hash(&self) -> &str {
        &self.prev_hash
    }
    fn content_hash(&self) -> String {
        ack_hash(self)
    }
}

impl Line for EventRow {
    fn position(&self) -> u64 {
        self.chain_seq
    }
    fn hash(&self) -> &str {
        &self.hash
    }
    fn prev_hash(&self) -> &str {
        &self.prev_hash
    }
    fn content_hash(&self) -> String {
        silence_hash(self)
    }
}

/// Recompute the chain of one ticket's record (its lines in seq order).
pub fn verify(record: &[TicketEventRow]) -> Result<Chain, ChainBreak> {
    let name = record
        .first()
        .map(|l| format!("ticket {}", l.ticket_id))
        .unwrap_or_default();
    verify_chain(&name, record)
}

/// Recompute a chain named `name` (its lines in order of position, numbered from 1; lines
/// written before the chain, without a hash, only before the chained ones).
pub fn verify_chain<L: Line>(name: &str, record: &[L]) -> Result<Chain, ChainBreak> {
    let mut chain = Chain::default();
    let mut before: Option<&L> = None;
    for (i, row) in record.iter().enumerate() {
        let expected = u64::try_from(i + 1).unwrap_or(u64::MAX);
        let seq = row.position();
        if seq != expected {
            return Err(ChainBreak::Gap {
                chain: name.to_owned(),
                seq,
                expected,
            });
        }
        chain.lines += 1;
        if row.hash().is_empty() {
            chain.unchained += 1;
            if before.is_some_and(|b| !b.hash().is_empty()) {
                // A line without a hash after chained ones: put in, or its hash wiped.
                return Err(ChainBreak::Unlinked {
                    chain: name.to_owned(),
                    seq,
                    before: seq - 1,
                });
            }
            before = Some(row);
            continue;
        }
        let link = before.map_or("", |b| b.hash());
        if row.prev_hash() != link {
            return Err(ChainBreak::Unlinked {
                chain: name.to_owned(),
                seq,
                before: seq.saturating_sub(1),
            });
        }
        if row.content_hash() != row.hash() {
            return Err(ChainBreak::Changed {
                chain: name.to_owned(),
                seq,
            });
        }
        chain.head = row.hash().to_owned();
        before = Some(row);
    }
    Ok(chain)
}

/// Recompute a staff chain (acknowledgements or silences) as stored: rows written before the
/// chain (position 0, no hash) are counted, the others verified in order.
pub fn verify_staff<L: Line>(name: &str, rows: &[L]) -> Result<Chain, ChainBreak> {
    let unchained = rows
        .iter()
        .filter(|r| r.position() == 0 && r.hash().is_empty())
        .count();
    let chained: Vec<&L> = rows
        .iter()
        .filter(|r| r.position() > 0 || !r.hash().is_empty())
        .collect();
    let mut chain = verify_chain(name, &chained)?;
    chain.lines += unchained;
    chain.unchained += unchained;
    Ok(chain)
}

impl<L: Line> Line for &L {
    fn position(&self) -> u64 {
        (*self).position()
    }
    fn hash(&self) -> &str {
        (*self).hash()
    }
    fn prev_hash(&self) -> &str {
        (*self).prev_hash()
    }
    fn content_hash(&self) -> String {
        (*self).content_hash()
    }
}

/// The audit of a store's legal record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audit {
    /// Per ticket checked: its chain, or where it breaks.
    pub tickets: Vec<(String, Result<Chain, ChainBreak>)>,
    /// The staff chains (`acknowledgements`, `silences`) when the whole store is audited.
    pub staff: Vec<(String, Result<Chain, ChainBreak>)>,
}

impl Audit {
    /// The breaks found.
    pub fn breaks(&self) -> impl Iterator<Item = &ChainBreak> {
        self.tickets
            .iter()
            .chain(&self.staff)
            .filter_map(|(_, r)| r.as_ref().err())
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
    if ticket.is_none() {
        let acks = store.acknowledgements().await?;
        let name = "acknowledgements";
        audit
            .staff
            .push((name.to_owned(), verify_staff(name, &acks)));
        let silences = store.silences().await?;
        let name = "silences";
        audit
            .staff
            .push((name.to_owned(), verify_staff(name, &silences)));
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
                chain: "ticket t".into(),
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
