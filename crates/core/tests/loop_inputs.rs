//! The reconcile loop's decisions reach the plan as inputs, never as
//! edits after it: scheduled snapshots due and pruned, and work held back
//! because it backs off. The plan a pass runs is then the plan that can
//! be printed, its changes and steps agreeing, and it passes the checker.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use common::*;
use converge_core::controller::snapshots::SnapshotWork;
use converge_core::ids::{Kind, ResourceKey};
use converge_core::plan::{
    ChangeAction, HeldSteps, HoldBack, Note, Plan, PlanInput, Step, WorkKey,
};
use insta::assert_snapshot;
use std::collections::{BTreeMap, BTreeSet};

fn plan_with(input: &PlanInput<'_>) -> Plan {
    let plan = converge_core::plan(input).unwrap();
    common::invariants::assert_ok(&plan, input);
    plan
}

#[test]
fn snapshots_due_and_pruned_are_planned_on_their_volume() {
    let d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    let work = SnapshotWork {
        take: vec![(name("pgdata"), "vol-pgdata".into())],
        prune: vec![(name("pgdata"), "snap-old".into())],
    };
    let plan = plan_with(&PlanInput {
        snapshots: &work,
        ..PlanInput::new(&d, &o, ts(SATURDAY_NOON))
    });
    assert_snapshot!("snapshots_due.txt", text(&plan));
    let volume = plan
        .changes
        .iter()
        .find(|c| c.key == ResourceKey::new(Kind::Volume, "pgdata"))
        .unwrap();
    assert_eq!(volume.action, ChangeAction::Update);
    assert!(volume.notes.contains(&Note::SnapshotDue));
    assert_eq!(plan.graph.len(), 2);
    assert!(plan.graph.edges().is_empty(), "snapshots wait for nothing");
    assert!(plan.has_changes());
}

#[test]
fn work_held_back_leaves_out_its_steps_and_those_waiting_for_it() {
    let mut d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    fleet_mut(&mut d, "app").image = "ami-2b3c4d5e".into();
    let free = plan_with(&PlanInput::new(&d, &o, ts(SATURDAY_NOON)));
    let app = WorkKey::Resource {
        key: ResourceKey::new(Kind::Fleet, "app"),
    };
    let held = BTreeMap::from([(
        app.clone(),
        HoldBack {
            until: ts("2026-03-07T17:05:00Z"),
            error: "InsufficientInstanceCapacity".into(),
            steps: HeldSteps::All,
        },
    )]);
    let plan = plan_with(&PlanInput {
        held: &held,
        ..PlanInput::new(&d, &o, ts(SATURDAY_NOON))
    });
    assert_snapshot!("held_back.txt", text(&plan));
    // Every step of the rolling replacement waits for a launch of the
    // held fleet: all of them are held, and listed.
    assert!(plan.graph.is_empty(), "{:#?}", plan.graph.steps());
    assert_eq!(plan.held.len(), free.graph.len());
    assert!(plan.held.iter().all(|h| h.because == app));
    assert!(
        plan.held
            .iter()
            .any(|h| h.key != app && h.step.contains("Balancer/web")),
        "the balancer's steps wait for the fleet's: {:#?}",
        plan.held
    );
    let fleet = plan
        .changes
        .iter()
        .find(|c| c.key == ResourceKey::new(Kind::Fleet, "app"))
        .unwrap();
    assert!(
        fleet
            .notes
            .iter()
            .any(|n| matches!(n, Note::BackingOff { key, .. } if *key == app))
    );
    // Holding what has no steps changes nothing.
    let db = WorkKey::Resource {
        key: ResourceKey::new(Kind::Fleet, "db"),
    };
    let idle = BTreeMap::from([(db, held[&app].clone())]);
    let same = plan_with(&PlanInput {
        held: &idle,
        ..PlanInput::new(&d, &o, ts(SATURDAY_NOON))
    });
    assert_eq!(same, free);
    assert!(
        free.graph
            .steps()
            .iter()
            .any(|s| matches!(s, Step::Launch { .. }))
    );
}

/// Issue 12, item 3: a hold names the steps that failed by content, so a
/// step re-planned for the same resource but aimed elsewhere (another
/// instance, another count) is not held, while the same step is.
#[test]
fn a_hold_by_content_holds_only_the_step_that_failed() {
    let mut d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    fleet_mut(&mut d, "app").image = "ami-2b3c4d5e".into();
    let free = plan_with(&PlanInput::new(&d, &o, ts(SATURDAY_NOON)));
    let app = WorkKey::Resource {
        key: ResourceKey::new(Kind::Fleet, "app"),
    };
    let launch = free
        .graph
        .steps()
        .iter()
        .find(|s| matches!(s, Step::Launch { .. }) && s.work_key() == app)
        .unwrap()
        .clone();
    // The same plan twice gives the same contents: the digest is stable.
    let again = plan_with(&PlanInput::new(&d, &o, ts(SATURDAY_NOON)));
    assert_eq!(
        free.graph
            .steps()
            .iter()
            .map(Step::content)
            .collect::<Vec<_>>(),
        again
            .graph
            .steps()
            .iter()
            .map(Step::content)
            .collect::<Vec<_>>()
    );
    let hold = |steps| {
        BTreeMap::from([(
            app.clone(),
            HoldBack {
                until: ts("2026-03-07T17:05:00Z"),
                error: "IncorrectState".into(),
                steps,
            },
        )])
    };
    // A content of another step: what an old failure aimed elsewhere left.
    let other = free
        .graph
        .steps()
        .iter()
        .find(|s| s.work_key() != app)
        .unwrap()
        .content();
    let stale = hold(HeldSteps::Only(BTreeSet::from([other])));
    let replanned = plan_with(&PlanInput {
        held: &stale,
        ..PlanInput::new(&d, &o, ts(SATURDAY_NOON))
    });
    assert_eq!(replanned, free, "an old failure held a re-planned step");
    let same = hold(HeldSteps::Only(BTreeSet::from([launch.content()])));
    let held = plan_with(&PlanInput {
        held: &same,
        ..PlanInput::new(&d, &o, ts(SATURDAY_NOON))
    });
    assert!(
        held.held.iter().any(|h| h.step == launch.describe()),
        "{:#?}",
        held.held
    );
    assert!(held.graph.len() < free.graph.len());
}
