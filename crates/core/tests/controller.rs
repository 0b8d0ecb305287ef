//! The planner carries out the reconcile loop's decisions: unhealthy
//! instances replaced create-before-destroy within the update budget, and
//! the instances the autoscaler chose retired without moving the others.
//! Every plan here also passes the invariants checker (in `run_decided`).

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use common::*;
use converge_core::ids::InstanceId;
use converge_core::plan::{InstanceChange, Step, TerminateReason};
use std::collections::{BTreeMap, BTreeSet};

fn ids(v: &[&str]) -> BTreeSet<InstanceId> {
    v.iter().map(|s| InstanceId::new(*s).unwrap()).collect()
}

#[test]
fn an_unhealthy_instance_is_replaced_after_its_successor_is_healthy() {
    let d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    let unchanged = run(&d, &o, SATURDAY_NOON);
    assert!(!unchanged.has_changes(), "{:#?}", describe(&unchanged));

    let p = run_decided(
        &d,
        &o,
        SATURDAY_NOON,
        &BTreeMap::new(),
        &ids(&["i-app-1"]),
        &BTreeSet::new(),
    );
    let launch = step(&p, "launch 1 Fleet/app");
    let wait = step(&p, "wait for new Fleet/app");
    let term = step(&p, "terminate Fleet/app instance(s) i-app-1");
    assert!(precedes(&p, launch, wait));
    assert!(precedes(&p, wait, term), "{:#?}", describe(&p));
    assert!(matches!(
        &p.graph.steps()[term],
        Step::Terminate {
            reason: TerminateReason::Unhealthy,
            ..
        }
    ));
    // The successor goes where its predecessor was.
    let Step::Launch { zone: z, .. } = &p.graph.steps()[launch] else {
        panic!("not a launch");
    };
    assert_eq!(*z, zone("us-east-1a"));
    assert!(text(&p).contains("unhealthy"), "{}", text(&p));
    // Nothing else of the fleet goes.
    assert_eq!(steps(&p, "terminate").len(), 1);
}

#[test]
fn replacements_roll_within_the_update_budget() {
    let d = smallpayroll();
    let o = in_place(&d, ts(WEEKDAY_TEN));
    let p = run_decided(
        &d,
        &o,
        WEEKDAY_TEN,
        &BTreeMap::new(),
        &ids(&["i-app-1", "i-app-2"]),
        &BTreeSet::new(),
    );
    // maxSurge 1, maxUnavailable 0: two waves, each successor healthy
    // before its predecessor goes, the second wave after the first.
    let waits = steps(&p, "wait for new Fleet/app");
    assert_eq!(waits.len(), 2, "{:#?}", describe(&p));
    let t1 = step(&p, "terminate Fleet/app instance(s) i-app-1");
    assert!(precedes(&p, waits[0], t1) || precedes(&p, waits[1], t1));
    let launches = steps(&p, "launch 1 Fleet/app");
    assert_eq!(launches.len(), 2);
    assert!(precedes(&p, waits[0], launches[1]) || precedes(&p, waits[1], launches[0]));
}

#[test]
fn an_instance_that_is_gone_or_unknown_is_not_replaced_twice() {
    let d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    let p = run_decided(
        &d,
        &o,
        SATURDAY_NOON,
        &BTreeMap::new(),
        &ids(&["i-nowhere"]),
        &BTreeSet::new(),
    );
    assert!(!p.has_changes());
}

#[test]
fn the_autoscaler_s_choice_goes_and_the_others_stay_where_they_are() {
    let d = smallpayroll();
    let o = in_place_with(&d, ts(SATURDAY_NOON), &BTreeMap::from([("job", 2)]));
    // i-job-1 runs in us-east-1a, i-job-2 in us-east-1b. Retiring the one
    // in 1a leaves 1b's: no launch in 1a, no second termination.
    let p = run_decided(
        &d,
        &o,
        SATURDAY_NOON,
        &BTreeMap::from([(name("job"), 1)]),
        &BTreeSet::new(),
        &ids(&["i-job-1"]),
    );
    assert_eq!(steps(&p, "terminate").len(), 1, "{:#?}", describe(&p));
    step(&p, "terminate Fleet/job instance(s) i-job-1");
    assert!(steps(&p, "launch").is_empty(), "{:#?}", describe(&p));
    let c = p
        .changes
        .iter()
        .find(|c| c.key.name.as_str() == "job")
        .unwrap();
    assert!(c.instances.iter().all(|i| matches!(
        i,
        InstanceChange::Terminate {
            reason: TerminateReason::Scale,
            ..
        }
    )));

    // Once it is gone, holding the count at 1 leaves the fleet alone
    // rather than moving the survivor back to the first zone.
    let mut after = o.clone();
    after.instances.retain(|i| i.id.as_str() != "i-job-1");
    let p = run_scaled(
        &d,
        &after,
        SATURDAY_NOON,
        &BTreeMap::from([(name("job"), 1)]),
    );
    assert!(!p.has_changes(), "{:#?}", describe(&p));
}
