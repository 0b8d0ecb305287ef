//! A partial plan (`--target Kind/NAME`): only the steps of the targeted
//! resources and the steps they depend on, as Terraform's `-target`
//! reads. What the other resources would need waits for a full plan; the
//! plan says so (`Plan::targets`).

use super::{Plan, StepId};
use crate::ids::ResourceKey;
use std::collections::BTreeSet;

/// Narrows `plan` to the steps acting for `targets` and everything they
/// wait for (dependencies, transitively), and its change entries to the
/// resources those steps act for plus the targets. An empty `targets`
/// leaves the plan whole.
pub fn targeted(mut plan: Plan, targets: &BTreeSet<ResourceKey>) -> Plan {
    if targets.is_empty() {
        return plan;
    }
    let mut keep: BTreeSet<StepId> = BTreeSet::new();
    let mut todo: Vec<StepId> = plan
        .graph
        .iter()
        .filter(|(_, s)| targets.contains(&s.resource()))
        .map(|(i, _)| i)
        .collect();
    while let Some(i) = todo.pop() {
        if keep.insert(i) {
            todo.extend(plan.graph.dependencies(i).iter().copied());
        }
    }
    let removed: BTreeSet<StepId> = (0..plan.graph.len())
        .filter(|i| !keep.contains(i))
        .collect();
    let acting: BTreeSet<ResourceKey> = keep
        .iter()
        .filter_map(|&i| plan.graph.step(i).map(|s| s.resource()))
        .collect();
    plan.graph = plan.graph.without(&removed);
    plan.changes
        .retain(|c| targets.contains(&c.key) || acting.contains(&c.key));
    plan.held.retain(|h| targets.contains(&h.key.resource()));
    plan.targets = targets.iter().cloned().collect();
    plan
}
