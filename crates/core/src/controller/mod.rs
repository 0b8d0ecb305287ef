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
use std::collections::BTreeSet;

/// A plan without some of its steps, and without every step that depends
/// on them (directly or not), since those could not run. Step indices are
/// renumbered and edges kept between the steps that remain; the
/// description of changes is kept as it was. Returns the smaller plan and
/// the indices (in `plan`) of the steps held back.
pub fn without_steps(plan: &Plan, hold: impl Fn(StepId, &Step) -> bool) -> (Plan, Vec<StepId>) {
    let n = plan.steps.len();
    let mut dependents: Vec<Vec<StepId>> = vec![Vec::new(); n];
    for &(before, after) in &plan.edges {
        if before < n && after < n {
            dependents[before].push(after);
        }
    }
    let mut held: BTreeSet<StepId> = BTreeSet::new();
    let mut stack: Vec<StepId> = (0..n).filter(|i| hold(*i, &plan.steps[*i])).collect();
    while let Some(i) = stack.pop() {
        if held.insert(i) {
            stack.extend(dependents[i].iter().copied());
        }
    }
    if held.is_empty() {
        return (plan.clone(), Vec::new());
    }
    let mut new_index: Vec<Option<StepId>> = vec![None; n];
    let mut steps = Vec::with_capacity(n - held.len());
    for (i, s) in plan.steps.iter().enumerate() {
        if !held.contains(&i) {
            new_index[i] = Some(steps.len());
            steps.push(renumber(s, &new_index));
        }
    }
    let edges = plan
        .edges
        .iter()
        .filter_map(|&(a, b)| Some((new_index.get(a).copied()??, new_index.get(b).copied()??)))
        .collect();
    let out = Plan {
        format_version: plan.format_version,
        stack: plan.stack.clone(),
        region: plan.region.clone(),
        at: plan.at,
        changes: plan.changes.clone(),
        steps,
        edges,
    };
    (out, held.into_iter().collect())
}

/// Adds independent steps (no dependencies either way) at the end of a
/// plan, such as the scheduled snapshots of a pass.
pub fn append_steps(plan: &mut Plan, steps: impl IntoIterator<Item = Step>) {
    plan.steps.extend(steps);
}

/// A step with the step references it holds mapped to new indices. Every
/// referenced step runs before the step that refers to it, so it is kept
/// whenever the step is, and has a new index already.
fn renumber(step: &Step, new_index: &[Option<StepId>]) -> Step {
    use crate::plan::{GroupRef, InstanceRef, UserDataPart, VolumeRef};
    let map = |s: &StepId| new_index.get(*s).copied().flatten().unwrap_or(*s);
    let group = |g: &GroupRef| match g {
        GroupRef::Created(s) => GroupRef::Created(map(s)),
        other => other.clone(),
    };
    let inst = |r: &InstanceRef| match r {
        InstanceRef::Launched(s) => InstanceRef::Launched(map(s)),
        other => other.clone(),
    };
    let mut step = step.clone();
    match &mut step {
        Step::AuthorizeIngress {
            group: g, rules, ..
        } => {
            *g = group(g);
            for r in rules {
                if let Some(sg) = &r.source_group {
                    r.source_group = Some(group(sg));
                }
            }
        }
        Step::Launch { spec, .. } => {
            spec.groups = spec.groups.iter().map(group).collect();
            for p in &mut spec.user_data {
                match p {
                    UserDataPart::StepOutput { step, .. } => *step = map(step),
                    UserDataPart::FleetIps { launches, .. } => {
                        *launches = launches.iter().map(map).collect();
                    }
                    UserDataPart::Text(_) | UserDataPart::Secret(_) => {}
                }
            }
        }
        Step::SetInstanceGroups { groups, .. } => {
            *groups = groups.iter().map(group).collect();
        }
        Step::WaitHealthy { instances, .. } | Step::Register { instances, .. } => {
            *instances = instances.iter().map(inst).collect();
        }
        Step::AttachVolume {
            volume, instance, ..
        } => {
            if let VolumeRef::Created(s) = volume {
                *volume = VolumeRef::Created(map(s));
            }
            *instance = inst(instance);
        }
        _ => {}
    }
    step
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
            steps,
            edges,
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
        assert_eq!(held.steps.len(), 3);
        assert_eq!(held.edges, vec![(0, 1), (1, 2)]);
        assert!(matches!(
            &held.steps[1],
            Step::Register { instances, .. } if instances == &vec![InstanceRef::Launched(0)]
        ));

        let (held, gone) = without_steps(&p, |i, _| i == 1);
        assert_eq!(gone, vec![1, 2, 3]);
        assert_eq!(held.steps.len(), 1);
        assert!(held.edges.is_empty());
    }

    #[test]
    fn holding_nothing_keeps_the_plan() {
        let p = plan(vec![launch("db")], Vec::new());
        let (same, gone) = without_steps(&p, |_, _| false);
        assert_eq!(same, p);
        assert!(gone.is_empty());
    }
}
