//! Short flow ids for an export: each flow (a wake and the poll it caused) gets the smallest id
//! that no other flow holds over its time, so that ids stay one- or two-byte varints however long
//! the trace.
//!
//! The trace processor matches flows in time order and forgets an id once a
//! `terminating_flow_ids_old` has ended its flow, so an id may serve again for a flow that
//! begins strictly after the last one that used it ended. A flow that begins and ends at the same
//! instant could be matched in either order: its id is not used again.

use crate::ids::IdMap;

/// Ids given to flows, begun and ended in any order. A flow takes an id only after the id's last
/// flow ended, and a flow that ends before it begins keeps its id, so each id's flows end in
/// time order and its leaf need only hold the last end.
///
/// An export begins a wake's flow and ends it one after the other, when the poll it caused
/// begins: the flow begun last waits aside (`last`), its id not yet marked held, and when it
/// ends next the id's leaf changes once, from free to free again later.
#[derive(Debug, Default)]
pub(crate) struct FlowIds {
    /// The flow begun last, while no other flow began or ended since: its number, id and
    /// beginning. Its leaf still says free.
    last: Option<(u64, u64, u64)>,
    /// The other flows begun and not yet ended, by the caller's flow number: their id and when
    /// they began.
    open: IdMap<(u64, u64)>,
    /// A tree of minimums over the ids (id `n` at leaf `n - 1`, the leaves from `leaves`), each
    /// leaf the earliest time from which a flow may take its id: 0 for an id never given, the
    /// last flow's end + 1 for an id free again, `u64::MAX` for one held.
    tree: Vec<u64>,
    leaves: usize,
}

impl FlowIds {
    /// The id of flow `flow`, which begins at `time`.
    pub(crate) fn begin(&mut self, flow: u64, time: u64) -> u64 {
        self.hold_last();
        let time = time.min(u64::MAX - 1);
        if self.tree.get(1).is_none_or(|&earliest| earliest > time) {
            self.grow();
        }
        let mut node = 1;
        while node < self.leaves {
            node = if self.tree[2 * node] <= time {
                2 * node
            } else {
                2 * node + 1
            };
        }
        let id = (node - self.leaves) as u64 + 1;
        self.last = Some((flow, id, time));
        id
    }

    /// The id of flow `flow`, which ends at `time` (`None` if it never began).
    pub(crate) fn end(&mut self, flow: u64, time: u64) -> Option<u64> {
        let (id, begun) = match self.last {
            Some((last, id, begun)) if last == flow => {
                self.last = None;
                (id, begun)
            }
            _ => {
                self.hold_last();
                self.open.remove(&flow)?
            }
        };
        let free_from = if begun < time {
            time.saturating_add(1)
        } else {
            u64::MAX
        };
        self.set(id as usize - 1, free_from);
        Some(id)
    }

    /// Marks the id of the flow begun last held, and puts the flow with the other open ones.
    fn hold_last(&mut self) {
        if let Some((flow, id, begun)) = self.last.take() {
            self.set(id as usize - 1, u64::MAX);
            self.open.insert(flow, (id, begun));
        }
    }

    /// Doubles the ids (one at first): the new ones never given.
    #[cold]
    fn grow(&mut self) {
        let leaves = (self.leaves * 2).max(1);
        let mut tree = vec![0; 2 * leaves];
        tree[leaves..leaves + self.leaves].copy_from_slice(&self.tree[self.leaves..]);
        for node in (1..leaves).rev() {
            tree[node] = tree[2 * node].min(tree[2 * node + 1]);
        }
        self.tree = tree;
        self.leaves = leaves;
    }

    fn set(&mut self, leaf: usize, value: u64) {
        let mut node = leaf + self.leaves;
        self.tree[node] = value;
        while node > 1 {
            node /= 2;
            self.tree[node] = self.tree[2 * node].min(self.tree[2 * node + 1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Gives ids to flows `(begin, end)` in the order of their ends, and checks what the trace
    /// processor needs: two flows with one id never meet (the later begins strictly after the
    /// earlier ended; a flow that begins and ends at once keeps its id to itself). Returns the
    /// largest id.
    fn run(flows: &[(u64, u64)]) -> u64 {
        let mut ids = FlowIds::default();
        let mut by_id: HashMap<u64, Vec<(u64, u64)>> = HashMap::new();
        for (n, &(begin, end)) in flows.iter().enumerate() {
            let id = ids.begin(n as u64 + 1, begin);
            assert_eq!(ids.end(n as u64 + 1, end), Some(id));
            by_id.entry(id).or_default().push((begin, end));
        }
        for (id, uses) in &by_id {
            for pair in uses.windows(2) {
                let ((b0, e0), (b1, _)) = (pair[0], pair[1]);
                assert!(
                    b0 < e0 && e0 < b1,
                    "id {id} used by {:?} then {:?}",
                    pair[0],
                    pair[1]
                );
            }
        }
        by_id.keys().copied().max().unwrap_or(0)
    }

    #[test]
    fn an_id_is_given_again_only_after_its_flow_ended() {
        // Flows one after the other share id 1.
        assert_eq!(run(&[(0, 10), (11, 20), (21, 30)]), 1);
        // A flow that begins at the instant the last one ended needs another id.
        assert_eq!(run(&[(0, 10), (10, 20)]), 2);
        // Overlapping flows each hold one.
        assert_eq!(run(&[(0, 10), (5, 12), (6, 13)]), 3);
        // A flow that begins and ends at once keeps its id: the next takes another.
        assert_eq!(run(&[(5, 5), (6, 7)]), 2);
    }

    #[test]
    fn a_flow_that_began_long_ago_takes_an_id_free_since_then() {
        // Flow 3 began before flow 2 ended but after flow 1 ended: it takes flow 1's id.
        let mut ids = FlowIds::default();
        assert_eq!(ids.begin(1, 0), 1);
        assert_eq!(ids.end(1, 10), Some(1));
        assert_eq!(ids.begin(2, 11), 1);
        assert_eq!(ids.begin(3, 5), 2);
        assert_eq!(ids.end(2, 20), Some(1));
        assert_eq!(ids.end(3, 21), Some(2));
        assert_eq!(ids.begin(4, 15), 3, "1 ended at 20, 2 at 21, both after 15");
        assert_eq!(ids.begin(5, 22), 1);
        assert_eq!(ids.end(9, 30), None, "a flow never begun has no id");
    }

    #[test]
    fn flows_begun_and_ended_in_any_order_keep_their_ids_apart() {
        let mut ids = FlowIds::default();
        assert_eq!(ids.begin(1, 0), 1);
        assert_eq!(ids.begin(2, 1), 2);
        // Flow 1 ends late (its id is free only from 1001), before flow 2 ends at 10.
        assert_eq!(ids.end(1, 1_000), Some(1));
        assert_eq!(ids.end(2, 10), Some(2));
        assert_eq!(ids.begin(3, 20), 2, "id 1 is not free yet: id 2 is");
        assert_eq!(ids.end(3, 30), Some(2));
        assert_eq!(ids.begin(4, 40), 2);
        assert_eq!(ids.begin(5, 50), 3, "no id is free at 50");
        assert_eq!(ids.begin(6, 1_001), 1);
        // A flow ending at the last instant there is keeps its id, as does one that ends
        // before it begins.
        assert_eq!(ids.end(6, u64::MAX), Some(1));
        assert_eq!(ids.begin(7, u64::MAX), 4);
        assert_eq!(ids.end(7, 5), Some(4));
        assert_eq!(ids.end(7, 6), None, "a flow ends once");
        assert_eq!(ids.begin(8, 2_000), 5, "ids 1 to 4 are held");
        assert_eq!(ids.end(4, 60), Some(2));
        assert_eq!(ids.end(5, 70), Some(3));
        assert_eq!(ids.end(8, 2_010), Some(5));
        assert_eq!(
            ids.begin(9, 80),
            2,
            "ids 2 and 3 are free (from 61 and 71): the smaller"
        );
    }

    #[test]
    fn ids_stay_as_few_as_the_flows_open_at_once() {
        // Ten thousand wakes, each polled between 1 and 400 ns later, one poll every 10 ns: at
        // most 41 flows are open at any instant; ids stay few however long the run.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut flows = Vec::new();
        for n in 0..10_000u64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let end = 1_000 + n * 10;
            flows.push((end - 1 - state % 400, end));
        }
        let most = run(&flows);
        assert!(most <= 64, "{most} ids for at most 41 flows open at once");
    }
}
