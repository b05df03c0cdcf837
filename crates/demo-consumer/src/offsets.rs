//! Which offset of each partition may be committed while several messages are worked on at
//! once: the first one still in flight, or, when none is, the one after the last started.
//! Messages finish in any order, but an offset is stored only once every message before it on
//! its partition is done (at-least-once: a crash redoes work, it never skips any).
//!
//! A partition that is revoked or assigned anew is forgotten: its fetch position restarts from
//! the committed offset, and the messages of its old assignment still in flight finish without
//! moving its offset (their tickets are stale), since their partition may now be another
//! member's.

use std::collections::{BTreeSet, HashMap};

/// A message being worked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub partition: i32,
    pub offset: i64,
    /// The assignment the message was read in; a later one makes the ticket stale.
    epoch: u64,
}

/// Where one partition stands.
#[derive(Debug)]
struct Partition {
    /// The assignment this state belongs to.
    epoch: u64,
    /// Offsets started and not finished.
    in_flight: BTreeSet<i64>,
    /// The offset after the last started.
    next: i64,
    /// The offset to read from as last returned to be stored; at first, where reading began.
    stored: i64,
}

/// The offsets of every partition this member reads.
#[derive(Debug, Default)]
pub struct Offsets {
    partitions: HashMap<i32, Partition>,
    /// Bumped whenever a partition is forgotten, so that no ticket outlives its assignment.
    epoch: u64,
}

impl Offsets {
    /// Records that the message at `offset` of `partition` is being worked on.
    pub fn start(&mut self, partition: i32, offset: i64) -> Ticket {
        let epoch = self.epoch;
        let state = self.partitions.entry(partition).or_insert(Partition {
            epoch,
            in_flight: BTreeSet::new(),
            next: offset,
            stored: offset,
        });
        state.in_flight.insert(offset);
        state.next = state.next.max(offset.saturating_add(1));
        Ticket {
            partition,
            offset,
            epoch: state.epoch,
        }
    }

    /// Records that a message's work is done; `Some(next)` when the partition's offset to
    /// store (the next to read) moved to `next`.
    pub fn finish(&mut self, ticket: Ticket) -> Option<i64> {
        let state = self.partitions.get_mut(&ticket.partition)?;
        if state.epoch != ticket.epoch || !state.in_flight.remove(&ticket.offset) {
            return None;
        }
        let done_to = state.in_flight.first().copied().unwrap_or(state.next);
        if done_to <= state.stored {
            return None;
        }
        state.stored = done_to;
        Some(done_to)
    }

    /// Forgets `partition` (revoked, or assigned anew): its tickets in flight become stale.
    pub fn forget(&mut self, partition: i32) {
        self.epoch += 1;
        self.partitions.remove(&partition);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_offset_moves_only_past_a_finished_prefix() {
        let mut offsets = Offsets::default();
        let a = offsets.start(0, 10);
        let b = offsets.start(0, 11);
        let c = offsets.start(1, 5);
        assert_eq!(offsets.finish(b), None, "10 is still in flight");
        assert_eq!(offsets.finish(c), Some(6), "partitions are independent");
        assert_eq!(offsets.finish(a), Some(12), "10 and 11 done: read from 12");
        assert_eq!(offsets.finish(a), None, "a ticket counts once");
    }

    #[test]
    fn a_forgotten_partitions_tickets_are_stale() {
        let mut offsets = Offsets::default();
        let old = offsets.start(3, 40);
        offsets.forget(3);
        // Assigned again, it restarts from the committed offset, which may be earlier.
        let new = offsets.start(3, 38);
        assert_eq!(
            offsets.finish(old),
            None,
            "its partition may be another's now"
        );
        assert_eq!(offsets.finish(new), Some(39));
    }

    proptest! {
        /// Whatever order messages finish in, the offset stored is never past a message not
        /// yet done, only grows, and ends after the last message.
        #[test]
        fn never_past_unfinished_work(
            count in 1_usize..40,
            gaps in proptest::collection::vec(1_i64..3, 40),
            order in proptest::collection::vec(any::<u64>(), 40),
        ) {
            let mut offsets = Offsets::default();
            let mut offset = 100;
            let mut tickets = Vec::new();
            for gap in gaps.iter().take(count) {
                tickets.push(offsets.start(0, offset));
                offset += gap;
            }
            let last = tickets[tickets.len() - 1].offset;
            let mut finish_order: Vec<usize> = (0..tickets.len()).collect();
            finish_order.sort_by_key(|i| order[*i]);
            let mut done = BTreeSet::new();
            let mut stored = i64::MIN;
            for i in finish_order {
                done.insert(tickets[i].offset);
                if let Some(next) = offsets.finish(tickets[i]) {
                    prop_assert!(next > stored);
                    stored = next;
                    let undone = tickets.iter().find(|t| !done.contains(&t.offset));
                    if let Some(t) = undone {
                        prop_assert!(next <= t.offset, "stored {} past {} in flight", next, t.offset);
                    }
                }
            }
            prop_assert_eq!(stored, last + 1);
        }
    }
}
