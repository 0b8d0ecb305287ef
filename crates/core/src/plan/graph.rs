//! The plan's steps and the order between them, as one graph type.
//!
//! A [`StepGraph`] owns the steps and their dependency edges and answers
//! every question the executor, the loop and the checker ask of them
//! (what a step waits for, what waits for it, an order to run them in, the
//! graph without some steps), so no caller rebuilds adjacency from an
//! edge list. A step's [`StepId`] is its position; steps refer to earlier
//! steps by it ([`Step::step_refs`]).
//!
//! It serializes as two keys, `steps` and `edges` (`[before, after]`
//! pairs, sorted), the shape `docs/plan-json.md` documents; reading one
//! back rebuilds the adjacency.
//!
//! The graph is small and kept in plain vectors: petgraph's graphs
//! renumber on removal and iterate neighbours in reverse insertion order,
//! while a plan needs stable, sorted, byte-identical output.

use super::types::{Step, StepId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The steps of a plan and the dependencies between them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "Parts", into = "Parts")]
pub struct StepGraph {
    steps: Vec<Step>,
    /// `(before, after)`, sorted and without repeats.
    edges: Vec<(StepId, StepId)>,
    /// For each step, the steps it waits for (sorted).
    before: Vec<Vec<StepId>>,
    /// For each step, the steps that wait for it (sorted).
    after: Vec<Vec<StepId>>,
}

/// The serialized form: steps and edges.
#[derive(Clone, Serialize, Deserialize)]
struct Parts {
    steps: Vec<Step>,
    edges: Vec<(StepId, StepId)>,
}

impl From<Parts> for StepGraph {
    fn from(p: Parts) -> Self {
        StepGraph::from_parts(p.steps, p.edges)
    }
}

impl From<StepGraph> for Parts {
    fn from(g: StepGraph) -> Self {
        Parts {
            steps: g.steps,
            edges: g.edges,
        }
    }
}

/// The graph has a cycle, so no order can run it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the step graph has a cycle through step {step}")]
pub struct Cycle {
    /// A step on the cycle.
    pub step: StepId,
}

impl StepGraph {
    /// An empty graph.
    pub fn new() -> Self {
        StepGraph::default()
    }

    /// A graph of these steps and `(before, after)` edges. Edges are
    /// sorted and deduplicated; an edge naming a step that does not exist
    /// is kept in [`edges`](Self::edges) (so the checker can report it)
    /// but takes no part in the adjacency.
    pub fn from_parts(steps: Vec<Step>, edges: impl IntoIterator<Item = (StepId, StepId)>) -> Self {
        let edges: Vec<(StepId, StepId)> = edges
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let n = steps.len();
        let mut before = vec![Vec::new(); n];
        let mut after = vec![Vec::new(); n];
        for &(a, b) in &edges {
            if a < n && b < n {
                before[b].push(a);
                after[a].push(b);
            }
        }
        StepGraph {
            steps,
            edges,
            before,
            after,
        }
    }

    /// The steps and the edges, for a caller that rebuilds the graph (a
    /// test breaking a plan on purpose).
    pub fn into_parts(self) -> (Vec<Step>, Vec<(StepId, StepId)>) {
        (self.steps, self.edges)
    }

    /// Adds a step that runs after `deps`; returns its ID.
    pub fn add(&mut self, step: Step, deps: impl IntoIterator<Item = StepId>) -> StepId {
        let id = self.steps.len();
        self.steps.push(step);
        self.before.push(Vec::new());
        self.after.push(Vec::new());
        for d in deps {
            self.add_edge(d, id);
        }
        id
    }

    /// Makes `after` wait for `before`. Adding an edge twice is a no-op.
    pub fn add_edge(&mut self, before: StepId, after: StepId) {
        if let Err(at) = self.edges.binary_search(&(before, after)) {
            self.edges.insert(at, (before, after));
            if before < self.steps.len() && after < self.steps.len() {
                insert_sorted(&mut self.before[after], before);
                insert_sorted(&mut self.after[before], after);
            }
        }
    }

    /// The number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether there are no steps.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The steps, in ID order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The step with this ID.
    pub fn step(&self, id: StepId) -> Option<&Step> {
        self.steps.get(id)
    }

    /// The steps with their IDs.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (StepId, &Step)> + '_ {
        self.steps.iter().enumerate()
    }

    /// Every edge, `(before, after)`, sorted.
    pub fn edges(&self) -> &[(StepId, StepId)] {
        &self.edges
    }

    /// The steps that must finish before `id` may start (sorted).
    pub fn dependencies(&self, id: StepId) -> &[StepId] {
        self.before.get(id).map_or(&[], Vec::as_slice)
    }

    /// The steps that wait for `id` (sorted).
    pub fn dependents(&self, id: StepId) -> &[StepId] {
        self.after.get(id).map_or(&[], Vec::as_slice)
    }

    /// An order in which every step comes after all it depends on; among
    /// the steps ready at once, the lowest ID first (so the order is
    /// deterministic).
    pub fn topological_order(&self) -> Result<Vec<StepId>, Cycle> {
        let n = self.steps.len();
        let mut waiting: Vec<usize> = self.before.iter().map(Vec::len).collect();
        let mut ready: BTreeSet<StepId> = (0..n).filter(|&i| waiting[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop_first() {
            order.push(i);
            for &j in &self.after[i] {
                waiting[j] -= 1;
                if waiting[j] == 0 {
                    ready.insert(j);
                }
            }
        }
        match (0..n).find(|&i| waiting[i] > 0) {
            Some(step) => Err(Cycle { step }),
            None => Ok(order),
        }
    }

    /// For each step, every step it depends on directly or not. `None`
    /// when the graph has a cycle.
    pub fn ancestors(&self) -> Option<Vec<BTreeSet<StepId>>> {
        let order = self.topological_order().ok()?;
        let mut anc: Vec<BTreeSet<StepId>> = vec![BTreeSet::new(); self.steps.len()];
        for i in order {
            let mut set = BTreeSet::new();
            for &p in &self.before[i] {
                set.insert(p);
                set.extend(anc[p].iter().copied());
            }
            anc[i] = set;
        }
        Some(anc)
    }

    /// The steps selected by `hold` and every step that depends on them,
    /// directly or not (those could not run without them), sorted.
    pub fn with_dependents(&self, hold: impl Fn(StepId, &Step) -> bool) -> BTreeSet<StepId> {
        let mut held = BTreeSet::new();
        let mut stack: Vec<StepId> = self
            .iter()
            .filter(|(i, s)| hold(*i, s))
            .map(|(i, _)| i)
            .collect();
        while let Some(i) = stack.pop() {
            if held.insert(i) {
                stack.extend(self.dependents(i).iter().copied());
            }
        }
        held
    }

    /// The graph without these steps. The steps that remain keep their
    /// order and are renumbered, with the step references they hold
    /// mapped to the new IDs, and the edges between them are kept.
    /// `removed` must be closed under dependents (as
    /// [`with_dependents`](Self::with_dependents) returns it), so no step
    /// that remains refers to one that goes.
    pub fn without(&self, removed: &BTreeSet<StepId>) -> StepGraph {
        if removed.is_empty() {
            return self.clone();
        }
        let mut new_id: Vec<Option<StepId>> = vec![None; self.steps.len()];
        let mut steps = Vec::with_capacity(self.steps.len().saturating_sub(removed.len()));
        for (i, s) in self.iter() {
            if !removed.contains(&i) {
                new_id[i] = Some(steps.len());
                let map = |r: StepId| new_id.get(r).copied().flatten().unwrap_or(r);
                steps.push(s.map_step_refs(map));
            }
        }
        let edges = self
            .edges
            .iter()
            .filter_map(|&(a, b)| Some((new_id.get(a).copied()??, new_id.get(b).copied()??)));
        StepGraph::from_parts(steps, edges)
    }
}

fn insert_sorted(v: &mut Vec<StepId>, x: StepId) {
    if let Err(at) = v.binary_search(&x) {
        v.insert(at, x);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;
    use crate::ids::ResourceName;
    use crate::plan::{InstanceRef, TerminateReason};

    fn wait(n: usize) -> Step {
        Step::WaitHealthy {
            fleet: ResourceName::from("app"),
            instances: vec![InstanceRef::Launched(n)],
            balancers: Vec::new(),
        }
    }

    fn terminate() -> Step {
        Step::Terminate {
            fleet: ResourceName::from("app"),
            instances: Vec::new(),
            reason: TerminateReason::Scale,
        }
    }

    #[test]
    fn adjacency_follows_the_edges_both_ways() {
        let mut g = StepGraph::new();
        let a = g.add(terminate(), []);
        let b = g.add(terminate(), [a]);
        let c = g.add(terminate(), [a, b]);
        g.add_edge(a, c); // a repeat changes nothing
        assert_eq!(g.edges(), &[(0, 1), (0, 2), (1, 2)]);
        assert_eq!(g.dependencies(c), &[a, b]);
        assert_eq!(g.dependents(a), &[b, c]);
        assert_eq!(g.dependencies(99), &[] as &[StepId]);
        assert_eq!(g.topological_order().unwrap(), vec![0, 1, 2]);
    }

    #[test]
    fn a_cycle_has_no_order() {
        let mut g = StepGraph::from_parts(vec![terminate(), terminate(), terminate()], [(0, 1)]);
        g.add_edge(2, 1);
        g.add_edge(1, 2);
        assert_eq!(g.topological_order(), Err(Cycle { step: 1 }));
        assert!(g.ancestors().is_none());
    }

    #[test]
    fn removing_takes_dependents_and_renumbers_references() {
        // 0 ← 1 (waits for 0's launch); 2 independent; 3 refers to 2.
        let g = StepGraph::from_parts(
            vec![terminate(), wait(0), terminate(), wait(2)],
            [(0, 1), (2, 3)],
        );
        let held = g.with_dependents(|i, _| i == 0);
        assert_eq!(held.into_iter().collect::<Vec<_>>(), vec![0, 1]);
        let smaller = g.without(&g.with_dependents(|i, _| i == 0));
        assert_eq!(smaller.len(), 2);
        assert_eq!(smaller.edges(), &[(0, 1)]);
        assert_eq!(smaller.steps()[1], wait(0));
    }

    #[test]
    fn serializes_as_steps_and_edges() {
        let g = StepGraph::from_parts(vec![terminate(), wait(0)], [(0, 1)]);
        let json = serde_json::to_value(&g).unwrap();
        assert_eq!(json["edges"], serde_json::json!([[0, 1]]));
        let back: StepGraph = serde_json::from_value(json).unwrap();
        assert_eq!(back, g);
        assert_eq!(back.dependents(0), &[1]);
    }
}
