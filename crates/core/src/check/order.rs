//! "Does step A run before step B?", answered without an ancestor set per
//! step (quadratic on the long chains of a rolling replacement).
//!
//! One pass puts the steps in a topological order (or finds a step on a
//! cycle). A question is then a backward walk from B over what it waits
//! for, pruned to the steps placed at or after the earliest candidate A:
//! nothing placed before A can have A as an ancestor. The walk is
//! breadth-first, so on a valid plan it stops at the nearest candidate,
//! usually one or two edges away; only a question whose answer is "no"
//! (a problem) walks all of B's ancestors after A.

use crate::plan::{StepGraph, StepId};
use std::collections::VecDeque;

/// The steps in a topological order, and a reusable walk over them.
pub(super) struct Order<'g> {
    graph: &'g StepGraph,
    /// Each step's place in a topological order.
    place: Vec<usize>,
    /// The walk that last visited each step (see `walk`).
    seen: Vec<u32>,
    walk: u32,
    queue: VecDeque<StepId>,
}

impl<'g> Order<'g> {
    /// The order of `graph`'s steps, or `Err` with a step on a cycle.
    pub(super) fn new(graph: &'g StepGraph) -> Result<Self, StepId> {
        let n = graph.len();
        let mut waiting: Vec<usize> = (0..n).map(|i| graph.dependencies(i).len()).collect();
        let mut ready: Vec<StepId> = (0..n).filter(|&i| waiting[i] == 0).collect();
        let mut place = vec![usize::MAX; n];
        let mut next = 0;
        while let Some(i) = ready.pop() {
            place[i] = next;
            next += 1;
            for &j in graph.dependents(i) {
                waiting[j] -= 1;
                if waiting[j] == 0 {
                    ready.push(j);
                }
            }
        }
        if next < n {
            return Err(on_cycle(graph, &place));
        }
        Ok(Order {
            graph,
            place,
            seen: vec![0; n],
            walk: 0,
            queue: VecDeque::new(),
        })
    }

    /// Whether `a` must finish before `b` starts (a path of edges from `a`
    /// to `b`). A step does not run before itself.
    pub(super) fn before(&mut self, a: StepId, b: StepId) -> bool {
        match self.place.get(a) {
            Some(&earliest) => self.walk(b, earliest, |s| s == a),
            None => false,
        }
    }

    /// Whether one of `candidates` (sorted by ID) must finish before `b`
    /// starts.
    pub(super) fn any_before(&mut self, candidates: &[StepId], b: StepId) -> bool {
        debug_assert!(candidates.is_sorted(), "candidates must be sorted");
        let earliest = candidates
            .iter()
            .filter_map(|&c| self.place.get(c))
            .min()
            .copied();
        match earliest {
            Some(earliest) => self.walk(b, earliest, |s| candidates.binary_search(&s).is_ok()),
            None => false,
        }
    }

    /// Walks back from `b` over the steps placed at or after `earliest`
    /// until one is `wanted`.
    fn walk(&mut self, b: StepId, earliest: usize, wanted: impl Fn(StepId) -> bool) -> bool {
        let graph = self.graph;
        let deps = graph.dependencies(b);
        if deps.iter().any(|&d| wanted(d)) {
            return true;
        }
        self.walk = match self.walk.checked_add(1) {
            Some(w) => w,
            None => {
                self.seen.fill(0);
                1
            }
        };
        self.queue.clear();
        self.queue.extend(deps.iter().copied());
        while let Some(s) = self.queue.pop_front() {
            if self.place[s] < earliest || self.seen[s] == self.walk {
                continue;
            }
            self.seen[s] = self.walk;
            if wanted(s) {
                return true;
            }
            self.queue.extend(graph.dependencies(s).iter().copied());
        }
        false
    }
}

/// A step on a cycle, given the places of the steps a topological sort
/// could order (`usize::MAX` for the others). Every unordered step waits
/// for another unordered one, so walking back over those from any of them
/// must come round to a step seen already, which is on a cycle.
fn on_cycle(graph: &StepGraph, place: &[usize]) -> StepId {
    let unordered = |i: StepId| place[i] == usize::MAX;
    let mut seen = vec![false; place.len()];
    let mut at = (0..place.len()).find(|&i| unordered(i)).unwrap_or(0);
    while !seen[at] {
        seen[at] = true;
        match graph.dependencies(at).iter().find(|&&d| unordered(d)) {
            Some(&d) => at = d,
            None => break,
        }
    }
    at
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;
    use crate::ids::ResourceName;
    use crate::plan::{Step, TerminateReason};

    fn graph(n: usize, edges: &[(StepId, StepId)]) -> StepGraph {
        let step = Step::Terminate {
            fleet: ResourceName::from("app"),
            instances: Vec::new(),
            reason: TerminateReason::Scale,
        };
        StepGraph::from_parts(vec![step; n], edges.iter().copied())
    }

    #[test]
    fn answers_follow_paths_of_edges() {
        // 0 → 1 → 2 → 3, and 4 alone.
        let g = graph(5, &[(0, 1), (1, 2), (2, 3)]);
        let mut o = Order::new(&g).unwrap();
        assert!(o.before(0, 1));
        assert!(o.before(0, 3));
        assert!(!o.before(3, 0));
        assert!(!o.before(2, 2));
        assert!(!o.before(4, 3));
        assert!(!o.before(99, 3));
        assert!(o.any_before(&[1, 4], 3));
        assert!(!o.any_before(&[3, 4], 2));
        assert!(!o.any_before(&[], 2));
    }

    #[test]
    fn a_cycle_is_found_on_it() {
        // 0 → 1 → 2 → 1, and 3 after the cycle.
        let g = graph(4, &[(0, 1), (1, 2), (2, 1), (2, 3)]);
        let at = Order::new(&g).err().unwrap();
        assert!([1, 2].contains(&at), "{at} is not on the cycle");
    }
}
