//! The reconcile loop's decisions, as pure functions: which instances are
//! unhealthy and get replaced ([`health`]), how an autoscaled fleet's
//! count moves on a metric reading ([`autoscale`]), which snapshots are
//! due or pruned ([`snapshots`]), and the plan surgery the loop needs
//! (holding back the steps of a resource in backoff, adding steps).
//!
//! Everything the loop learns by I/O (probe results, metric readings, the
//! time) and everything it remembers between passes (since when an
//! instance fails, when a fleet last scaled) is an input here; the loop
//! keeps the memory and does the I/O. The planner is then told the
//! outcome through [`PlanInput`](crate::plan::PlanInput)'s `scale`,
//! `replace` and `retire`.

pub mod autoscale;
pub mod health;
pub mod snapshots;

use crate::plan::{Plan, Step, StepId};

/// A plan without some of its steps, and without every step that depends
/// on them (directly or not), since those could not run. Step indices are
/// renumbered and edges kept between the steps that remain; the
/// description of changes is kept as it was. Returns the smaller plan and
/// the indices (in `plan`) of the steps held back.
pub fn without_steps(plan: &Plan, hold: impl Fn(StepId, &Step) -> bool) -> (Plan, Vec<StepId>) {
    let held = plan.graph.with_dependents(hold);
    let out = Plan {
        graph: plan.graph.without(&held),
        ..plan.clone()
    };
    (out, held.into_iter().collect())
}

/// Adds independent steps (no dependencies either way) at the end of a
/// plan, such as the scheduled snapshots of a pass.
pub fn append_steps(plan: &mut Plan, steps: impl IntoIterator<Item = Step>) {
    for s in steps {
        plan.graph.add(s, []);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;
    use crate::ids::{InstanceId, ResourceName, Zone};
    use crate::plan::{InstanceRef, LaunchSpec, PLAN_FORMAT_VERSION, TerminateReason};

    fn launch(fleet: &str) -> Step {
        Step::Launch {
            fleet: fleet.into(),
            zone: Zone::from("us-east-1a"),
            count: 1,
            spec: LaunchSpec {
                image: "ami-1".into(),
                instance_type: "m1.small".into(),
                key_name: None,
                groups: Vec::new(),
                user_data: Vec::new(),
                tags: Default::default(),
            },
            token: "t".into(),
        }
    }

    fn plan(steps: Vec<Step>, edges: Vec<(StepId, StepId)>) -> Plan {
        Plan {
            format_version: PLAN_FORMAT_VERSION,
            stack: ResourceName::from("s"),
            region: "us-east-1".into(),
            at: "2026-03-09T14:00:00Z".parse().unwrap(),
            changes: Vec::new(),
            graph: crate::plan::StepGraph::from_parts(steps, edges),
        }
    }

    #[test]
    fn held_steps_take_their_dependents_and_references_are_renumbered() {
        // 0: launch db, 1: launch app, 2: register app (refers to 1),
        // 3: terminate old app after 2.
        let p = plan(
            vec![
                launch("db"),
                launch("app"),
                Step::Register {
                    balancer: "web".into(),
                    instances: vec![InstanceRef::Launched(1)],
                },
                Step::Terminate {
                    fleet: "app".into(),
                    instances: vec![InstanceId::from("i-old")],
                    reason: TerminateReason::Outdated,
                },
            ],
            vec![(1, 2), (2, 3)],
        );
        let (held, gone) = without_steps(&p, |_, s| s.resource().name.as_str() == "db");
        assert_eq!(gone, vec![0]);
        assert_eq!(held.graph.len(), 3);
        assert_eq!(held.graph.edges(), &[(0, 1), (1, 2)]);
        assert!(matches!(
            &held.graph.steps()[1],
            Step::Register { instances, .. } if instances == &vec![InstanceRef::Launched(0)]
        ));

        let (held, gone) = without_steps(&p, |i, _| i == 1);
        assert_eq!(gone, vec![1, 2, 3]);
        assert_eq!(held.graph.len(), 1);
        assert!(held.graph.edges().is_empty());
    }

    #[test]
    fn holding_nothing_keeps_the_plan() {
        let p = plan(vec![launch("db")], Vec::new());
        let (same, gone) = without_steps(&p, |_, _| false);
        assert_eq!(same, p);
        assert!(gone.is_empty());
    }
}
