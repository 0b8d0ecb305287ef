//! Holding back the work of resources that back off: the reconcile loop
//! says which work failed and until when ([`PlanInput::held`]); the plan
//! leaves out those steps and every step that waits for them, lists them
//! in [`Plan::held`], and notes it on each resource concerned. So the plan
//! the loop runs is the plan it prints, changes and steps agreeing. A hold
//! names the steps it holds by content ([`HeldSteps`]): a step re-planned
//! for the same resource but aimed elsewhere is not held.

use super::{
    HeldStep, HoldBack, Note, PlanInput, ResourceChange, Step, StepGraph, StepId, WorkKey,
};
use std::collections::{BTreeMap, BTreeSet};

/// The graph without the held steps, and the steps held; notes added to
/// `changes`.
pub(super) fn hold_back(
    graph: StepGraph,
    changes: &mut [ResourceChange],
    input: &PlanInput<'_>,
) -> (StepGraph, Vec<HeldStep>) {
    let held: &BTreeMap<WorkKey, HoldBack> = input.held;
    if held.is_empty() {
        return (graph, Vec::new());
    }
    // Each step left out is attributed to the first held work (in key
    // order) it belongs to or waits for.
    let mut because: BTreeMap<StepId, &WorkKey> = BTreeMap::new();
    for (key, hold) in held {
        for id in graph.with_dependents(|_, s| s.work_key() == *key && hold.steps.holds(s)) {
            because.entry(id).or_insert(key);
        }
    }
    let mut out = Vec::with_capacity(because.len());
    let mut noted: BTreeSet<(WorkKey, WorkKey)> = BTreeSet::new();
    for (&id, &cause) in &because {
        let Some(step) = graph.step(id) else { continue };
        let Some(hold) = held.get(cause) else {
            continue;
        };
        let key = step.work_key();
        if noted.insert((key.clone(), cause.clone())) {
            note(changes, step, &key, cause, hold);
        }
        out.push(HeldStep {
            step: step.describe(),
            key,
            because: cause.clone(),
            until: hold.until,
            error: hold.error.clone(),
        });
    }
    let removed: BTreeSet<StepId> = because.into_keys().collect();
    (graph.without(&removed), out)
}

/// Notes on the step's resource why its work waits.
fn note(
    changes: &mut [ResourceChange],
    step: &Step,
    key: &WorkKey,
    cause: &WorkKey,
    hold: &HoldBack,
) {
    let resource = step.resource();
    let Some(c) = changes.iter_mut().find(|c| c.key == resource) else {
        return;
    };
    c.notes.push(if key == cause {
        Note::BackingOff {
            key: cause.clone(),
            until: hold.until,
            error: hold.error.clone(),
        }
    } else {
        Note::Waiting {
            reason: format!("for {cause}, which backs off until {}", hold.until),
        }
    });
}
