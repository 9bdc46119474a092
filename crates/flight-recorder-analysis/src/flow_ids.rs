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
#[derive(Debug, Default)]
pub(crate) struct FlowIds {
    /// The flows begun and not yet ended, by the caller's flow number: their id and when they
    /// began.
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
        let leaf = node - self.leaves;
        self.set(leaf, u64::MAX);
        let id = leaf as u64 + 1;
        self.open.insert(flow, (id, time));
        id
    }

    /// The id of flow `flow`, which ends at `time` (`None` if it never began).
    pub(crate) fn end(&mut self, flow: u64, time: u64) -> Option<u64> {
        let (id, begun) = self.open.remove(&flow)?;
        if begun < time {
            self.set(id as usize - 1, time.saturating_add(1));
        }
        Some(id)
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
