//! The invariants checker catches what it claims to: valid plans are
//! corrupted on purpose, one way at a time, and each corruption must be
//! reported. (A checker that never fails proves nothing.)

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use common::invariants::check;
use common::*;
use converge_core::plan::{PlanInput, Step, StepGraph, StepId};
use converge_core::{Desired, Observed, Plan};
use std::collections::{BTreeMap, BTreeSet};

fn rolling() -> (Desired, Observed) {
    let mut d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    fleet_mut(&mut d, "app").image = "ami-2b3c4d5e".into();
    (d, o)
}

fn problems(d: &Desired, o: &Observed, corrupt: impl FnOnce(&mut Plan)) -> Vec<String> {
    let scale = BTreeMap::new();
    let input = PlanInput {
        desired: d,
        observed: o,
        at: ts(SATURDAY_NOON),
        scale: &scale,
        replace: &BTreeSet::new(),
        retire: &BTreeSet::new(),
        ..PlanInput::new(d, o, ts(SATURDAY_NOON))
    };
    let mut plan = converge_core::plan(&input).unwrap();
    assert!(
        check(&plan, &input).is_empty(),
        "the plan is valid before it is corrupted"
    );
    corrupt(&mut plan);
    check(&plan, &input)
}

/// Rebuilds the plan's graph after `f` changed its steps or edges.
fn edit_graph(p: &mut Plan, f: impl FnOnce(&mut Vec<Step>, &mut Vec<(StepId, StepId)>)) {
    let (mut steps, mut edges) = std::mem::take(&mut p.graph).into_parts();
    f(&mut steps, &mut edges);
    p.graph = StepGraph::from_parts(steps, edges);
}

fn assert_caught(found: Vec<String>, needle: &str) {
    assert!(
        found.iter().any(|p| p.contains(needle)),
        "expected a problem mentioning {needle:?}, got {found:#?}"
    );
}

#[test]
fn a_cycle_is_caught() {
    let (d, o) = rolling();
    let found = problems(&d, &o, |p| {
        edit_graph(p, |_, edges| {
            let (a, b) = edges[0];
            edges.push((b, a));
        })
    });
    assert_caught(found, "cycle");
}

#[test]
fn an_edge_out_of_range_is_caught() {
    let (d, o) = rolling();
    let found = problems(&d, &o, |p| edit_graph(p, |_, edges| edges.push((0, 999))));
    assert_caught(found, "out of range");
}

#[test]
fn a_predecessor_going_before_its_successor_is_healthy_is_caught() {
    let (d, o) = rolling();
    let found = problems(&d, &o, |p| {
        edit_graph(p, |steps, edges| {
            // Cut every edge into the terminations.
            edges.retain(|(_, b)| !matches!(steps[*b], Step::Terminate { .. }));
        })
    });
    assert_caught(found, "need 2 predecessor(s)");
    let found = problems(&d, &o, |p| {
        edit_graph(p, |steps, edges| {
            edges.retain(|(_, b)| !matches!(steps[*b], Step::Terminate { .. }));
        })
    });
    assert_caught(found, "deregistering i-app-1");
}

#[test]
fn a_reference_to_a_later_step_is_caught() {
    let (d, o) = rolling();
    let found = problems(&d, &o, |p| {
        edit_graph(p, |steps, edges| {
            // Registering a launch no longer waits for it.
            edges.retain(|(a, b)| {
                !(matches!(steps[*a], Step::Launch { .. })
                    && matches!(steps[*b], Step::Register { .. }))
            });
        })
    });
    assert_caught(found, "which does not run before it");
}

#[test]
fn an_instance_terminated_twice_is_caught() {
    let (d, o) = rolling();
    let found = problems(&d, &o, |p| {
        edit_graph(p, |steps, _| {
            let t = steps
                .iter()
                .find(|s| matches!(s, Step::Terminate { .. }))
                .cloned()
                .unwrap();
            steps.push(t);
        })
    });
    assert_caught(found, "terminated twice");
}

#[test]
fn summary_disagreeing_with_the_steps_is_caught() {
    let (d, o) = rolling();
    let found = problems(&d, &o, |p| {
        for c in &mut p.changes {
            c.action = converge_core::plan::ChangeAction::NoChange;
        }
    });
    assert_caught(found, "has_changes()");
}

#[test]
fn a_group_deleted_while_in_use_is_caught() {
    let mut d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    d.security_groups.get_mut(&name("web")).unwrap().description = "new".into();
    let found = problems(&d, &o, |p| {
        edit_graph(p, |steps, edges| {
            edges.retain(|(_, b)| !matches!(steps[*b], Step::DeleteGroup { .. }));
        })
    });
    assert_caught(found, "still uses it");
}

#[test]
fn a_volume_deleted_without_its_final_snapshot_is_caught() {
    let d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    let empty = Desired::empty(d.stack.clone(), d.region.clone());
    let found = problems(&empty, &o, |p| {
        edit_graph(p, |steps, edges| {
            edges.retain(|(_, b)| !matches!(steps[*b], Step::DeleteVolume { .. }));
        })
    });
    assert_caught(found, "final snapshot");
}
