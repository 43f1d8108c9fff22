//! Per-partition tracking of delivered and acknowledged offsets: pure bookkeeping that decides
//! which offset may be committed, so that nothing unacknowledged is ever committed.
//!
//! A source registers each batch's offsets of a partition as one *range* (`first..=last`, in
//! delivery order; offsets the broker never delivered, such as transaction markers or compacted
//! records, simply fall between ranges). Acknowledgements may arrive in any order. The
//! *committable* offset of a partition is one past the last offset of the longest prefix of
//! acknowledged ranges: Kafka's committed offset is the next offset to read.
//!
//! Every assignment of a partition gets a fresh *epoch*. Ranges and acknowledgements carry the
//! epoch they were delivered in, and are ignored once the partition was revoked (or revoked and
//! assigned again): the new owner reads again from the committed offset.

use std::collections::{BTreeMap, HashMap};

/// The offsets of one assigned partition.
#[derive(Debug, Clone)]
struct PartitionOffsets {
    /// The assignment this tracker belongs to.
    epoch: u64,
    /// Delivered ranges not yet committable, by first offset: (last offset, acknowledged).
    ranges: BTreeMap<i64, (i64, bool)>,
    /// One past the last offset of the acknowledged prefix: what may be committed.
    committable: Option<i64>,
    /// The offset last committed successfully (as far as this tracker knows).
    committed: Option<i64>,
}

impl PartitionOffsets {
    fn new(epoch: u64) -> Self {
        Self {
            epoch,
            ranges: BTreeMap::new(),
            committable: None,
            committed: None,
        }
    }

    /// Drop the acknowledged ranges at the front, advancing the committable offset.
    fn advance(&mut self) {
        while let Some(entry) = self.ranges.first_entry() {
            let (last, acked) = *entry.get();
            if !acked {
                break;
            }
            entry.remove();
            self.committable = Some(last.saturating_add(1));
        }
    }

    /// The committable offset, if it differs from what was committed.
    fn pending_commit(&self) -> Option<i64> {
        match (self.committable, self.committed) {
            (Some(next), Some(done)) if next <= done => None,
            (next, _) => next,
        }
    }
}

/// One offset to commit: topic, partition and the next offset to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Next offset to read: one past the last acknowledged offset of the prefix.
    pub offset: i64,
}

/// Delivered and acknowledged offsets of every assigned partition.
#[derive(Debug, Clone, Default)]
pub struct OffsetTracker {
    topics: HashMap<String, HashMap<i32, PartitionOffsets>>,
    next_epoch: u64,
}

impl OffsetTracker {
    /// An empty tracker: no partition assigned.
    pub fn new() -> Self {
        Self::default()
    }

    /// Start a fresh tracker for an assigned partition, replacing any earlier one, and return
    /// its epoch.
    pub fn assign(&mut self, topic: &str, partition: i32) -> u64 {
        self.next_epoch += 1;
        let epoch = self.next_epoch;
        self.topics
            .entry(topic.to_owned())
            .or_default()
            .insert(partition, PartitionOffsets::new(epoch));
        epoch
    }

    /// Drop the tracker of a revoked partition, returning the offset still to commit for it
    /// (acknowledged but not yet committed), if any. Later acknowledgements of its ranges are
    /// ignored.
    pub fn revoke(&mut self, topic: &str, partition: i32) -> Option<i64> {
        let partitions = self.topics.get_mut(topic)?;
        let removed = partitions.remove(&partition);
        if partitions.is_empty() {
            self.topics.remove(topic);
        }
        removed.and_then(|p| p.pending_commit())
    }

    /// The epoch of the partition's current assignment, or `None` when it is not assigned.
    pub fn epoch(&self, topic: &str, partition: i32) -> Option<u64> {
        self.get(topic, partition).map(|p| p.epoch)
    }

    /// Whether any partition is assigned.
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }

    /// Register the delivered range `first..=last` of a partition in `epoch`. Ranges of one
    /// partition are registered in delivery order. Returns `false` (and registers nothing) when
    /// the partition is no longer assigned in that epoch.
    pub fn deliver(
        &mut self,
        topic: &str,
        partition: i32,
        epoch: u64,
        first: i64,
        last: i64,
    ) -> bool {
        match self.get_mut(topic, partition) {
            Some(p) if p.epoch == epoch && first <= last => {
                p.ranges.insert(first, (last, false));
                true
            }
            _ => false,
        }
    }

    /// Acknowledge the range starting at `first` delivered in `epoch`. Returns `false` when it is
    /// unknown: the partition was revoked since, or the range was never registered.
    pub fn ack(&mut self, topic: &str, partition: i32, epoch: u64, first: i64) -> bool {
        let Some(p) = self.get_mut(topic, partition) else {
            return false;
        };
        if p.epoch != epoch {
            return false;
        }
        let Some(range) = p.ranges.get_mut(&first) else {
            return false;
        };
        range.1 = true;
        p.advance();
        true
    }

    /// The committable offset of a partition (one past the acknowledged prefix), if any.
    pub fn committable(&self, topic: &str, partition: i32) -> Option<i64> {
        self.get(topic, partition).and_then(|p| p.committable)
    }

    /// Offsets that may be committed and differ from what was last committed, sorted by topic
    /// and partition.
    pub fn pending_commits(&self) -> Vec<CommitOffset> {
        let mut out: Vec<CommitOffset> = self
            .topics
            .iter()
            .flat_map(|(topic, partitions)| {
                partitions.iter().filter_map(|(&partition, p)| {
                    p.pending_commit().map(|offset| CommitOffset {
                        topic: topic.clone(),
                        partition,
                        offset,
                    })
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        out
    }

    /// Record that `offset` was committed for a partition, so it is not committed again. A
    /// commit result for a partition no longer assigned is ignored.
    pub fn committed(&mut self, topic: &str, partition: i32, offset: i64) {
        if let Some(p) = self.get_mut(topic, partition) {
            p.committed = Some(p.committed.map_or(offset, |c| c.max(offset)));
        }
    }

    fn get(&self, topic: &str, partition: i32) -> Option<&PartitionOffsets> {
        self.topics.get(topic).and_then(|t| t.get(&partition))
    }

    fn get_mut(&mut self, topic: &str, partition: i32) -> Option<&mut PartitionOffsets> {
        self.topics
            .get_mut(topic)
            .and_then(|t| t.get_mut(&partition))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "argus.readings";

    fn commit(offset: i64) -> Vec<CommitOffset> {
        vec![CommitOffset {
            topic: T.to_owned(),
            partition: 0,
            offset,
        }]
    }

    #[test]
    fn nothing_is_committable_before_an_ack() {
        let mut t = OffsetTracker::new();
        let e = t.assign(T, 0);
        assert!(t.deliver(T, 0, e, 0, 9));
        assert_eq!(t.committable(T, 0), None);
        assert!(t.pending_commits().is_empty());
    }

    #[test]
    fn in_order_acks_advance_to_one_past_the_last_offset() {
        let mut t = OffsetTracker::new();
        let e = t.assign(T, 0);
        t.deliver(T, 0, e, 0, 9);
        t.deliver(T, 0, e, 10, 19);
        assert!(t.ack(T, 0, e, 0));
        assert_eq!(t.committable(T, 0), Some(10));
        assert!(t.ack(T, 0, e, 10));
        assert_eq!(t.pending_commits(), commit(20));
    }

    #[test]
    fn out_of_order_acks_wait_for_the_earliest_range() {
        let mut t = OffsetTracker::new();
        let e = t.assign(T, 0);
        for first in [0, 5, 10, 15] {
            t.deliver(T, 0, e, first, first + 4);
        }
        assert!(t.ack(T, 0, e, 10));
        assert!(t.ack(T, 0, e, 5));
        assert_eq!(t.committable(T, 0), None, "range 0..=4 is not acknowledged");
        assert!(t.ack(T, 0, e, 0));
        assert_eq!(t.committable(T, 0), Some(15));
        assert!(t.ack(T, 0, e, 15));
        assert_eq!(t.committable(T, 0), Some(20));
    }

    #[test]
    fn an_unacknowledged_range_holds_back_everything_after_it() {
        let mut t = OffsetTracker::new();
        let e = t.assign(T, 0);
        t.deliver(T, 0, e, 0, 4);
        t.deliver(T, 0, e, 5, 9);
        t.deliver(T, 0, e, 10, 14);
        t.ack(T, 0, e, 0);
        t.ack(T, 0, e, 10);
        // 5..=9 was dropped without an ack: only 0..=4 may be committed, forever.
        assert_eq!(t.committable(T, 0), Some(5));
    }

    #[test]
    fn gaps_between_delivered_offsets_do_not_block() {
        // Transaction markers and compacted records are never delivered: offsets 5-7 and 12 are
        // missing, yet everything delivered is acknowledged.
        let mut t = OffsetTracker::new();
        let e = t.assign(T, 0);
        t.deliver(T, 0, e, 3, 4);
        t.deliver(T, 0, e, 8, 11);
        t.deliver(T, 0, e, 13, 13);
        t.ack(T, 0, e, 13);
        t.ack(T, 0, e, 8);
        assert_eq!(t.committable(T, 0), None);
        t.ack(T, 0, e, 3);
        assert_eq!(t.committable(T, 0), Some(14));
    }

    #[test]
    fn committed_offsets_are_not_committed_again() {
        let mut t = OffsetTracker::new();
        let e = t.assign(T, 0);
        t.deliver(T, 0, e, 0, 9);
        t.ack(T, 0, e, 0);
        assert_eq!(t.pending_commits(), commit(10));
        t.committed(T, 0, 10);
        assert!(t.pending_commits().is_empty());
        // A late result of an older commit does not move the mark back.
        t.committed(T, 0, 4);
        assert!(t.pending_commits().is_empty());
        t.deliver(T, 0, e, 10, 10);
        t.ack(T, 0, e, 10);
        assert_eq!(t.pending_commits(), commit(11));
    }

    #[test]
    fn acks_of_a_revoked_partition_are_ignored_even_after_reassignment() {
        let mut t = OffsetTracker::new();
        let old = t.assign(T, 0);
        t.deliver(T, 0, old, 0, 9);
        t.deliver(T, 0, old, 10, 19);
        t.ack(T, 0, old, 0);
        assert_eq!(
            t.revoke(T, 0),
            Some(10),
            "acknowledged offsets are committed on revoke"
        );
        assert!(!t.ack(T, 0, old, 10), "partition not assigned");
        assert!(!t.deliver(T, 0, old, 20, 29));

        let new = t.assign(T, 0);
        assert_ne!(old, new);
        assert!(!t.ack(T, 0, old, 10), "ack of the previous assignment");
        assert_eq!(t.committable(T, 0), None);
        // The new owner reads again from the committed offset.
        assert!(t.deliver(T, 0, new, 10, 19));
        assert!(t.ack(T, 0, new, 10));
        assert_eq!(t.committable(T, 0), Some(20));
    }

    #[test]
    fn revoking_without_acks_commits_nothing() {
        let mut t = OffsetTracker::new();
        let e = t.assign(T, 1);
        t.deliver(T, 1, e, 0, 9);
        assert_eq!(t.revoke(T, 1), None);
        assert_eq!(t.revoke(T, 1), None, "unknown partition");
        assert!(t.is_empty());
    }

    #[test]
    fn partitions_and_topics_are_independent() {
        let mut t = OffsetTracker::new();
        let a = t.assign(T, 0);
        let b = t.assign(T, 1);
        let c = t.assign("argus.events", 0);
        t.deliver(T, 0, a, 0, 0);
        t.deliver(T, 1, b, 0, 4);
        t.deliver("argus.events", 0, c, 7, 8);
        t.ack(T, 1, b, 0);
        t.ack("argus.events", 0, c, 7);
        assert!(!t.ack(T, 0, b, 0), "epoch of another partition");
        let pending = t.pending_commits();
        assert_eq!(
            pending,
            vec![
                CommitOffset {
                    topic: "argus.events".to_owned(),
                    partition: 0,
                    offset: 9
                },
                CommitOffset {
                    topic: T.to_owned(),
                    partition: 1,
                    offset: 5
                },
            ]
        );
        assert_eq!(t.epoch(T, 2), None);
    }

    #[test]
    fn unknown_ranges_are_refused() {
        let mut t = OffsetTracker::new();
        let e = t.assign(T, 0);
        assert!(!t.ack(T, 0, e, 0), "never delivered");
        assert!(!t.deliver(T, 0, e, 5, 4), "empty range");
        assert!(!t.deliver(T, 0, e + 1, 0, 4), "future epoch");
    }
}
