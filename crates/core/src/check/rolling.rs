//! Rolling replacements: replaced instances go only after a successor is
//! launched (and healthy, when the fleet is behind balancers), except the
//! `update.maxUnavailable` of each wave that may go first; a fleet that
//! allows none out waits for health.

use super::{Ctx, Problem};
use crate::desired::FleetSpec;
use crate::ids::{Kind, ResourceKey, ResourceName};
use crate::plan::{InstanceChange, LaunchReason, Step, StepId, TerminateReason};
use std::collections::{BTreeMap, BTreeSet};

/// A fleet's steps, by what they do.
#[derive(Default)]
struct FleetSteps {
    launches: Vec<StepId>,
    waits: Vec<StepId>,
    /// Terminations of instances that a successor replaces, with how many
    /// instances each takes.
    replaced: Vec<(StepId, u32)>,
}

pub(super) fn check(cx: &mut Ctx<'_>) {
    let (plan, desired) = (cx.plan, cx.desired);
    let mut by_fleet: BTreeMap<&ResourceName, FleetSteps> = BTreeMap::new();
    for (i, s) in plan.graph.iter() {
        match s {
            Step::Launch { fleet, .. } => by_fleet.entry(fleet).or_default().launches.push(i),
            Step::WaitHealthy { fleet, .. } => by_fleet.entry(fleet).or_default().waits.push(i),
            Step::Terminate {
                fleet,
                instances,
                reason:
                    TerminateReason::Outdated
                    | TerminateReason::WrongZone
                    | TerminateReason::WrongSubnet
                    | TerminateReason::WrongAddress
                    | TerminateReason::Unhealthy
                    | TerminateReason::Requested,
            } => by_fleet
                .entry(fleet)
                .or_default()
                .replaced
                .push((i, instances.len() as u32)),
            _ => {}
        }
    }
    let behind: BTreeSet<&ResourceName> =
        desired.balancers.values().flat_map(|b| &b.fleets).collect();
    let none = FleetSteps::default();
    for (name, spec) in &desired.fleets {
        let steps = by_fleet.get(name).unwrap_or(&none);
        fleet(cx, name, spec, steps, behind.contains(name));
    }
}

fn fleet(
    cx: &mut Ctx<'_>,
    name: &ResourceName,
    spec: &FleetSpec,
    steps: &FleetSteps,
    behind_balancer: bool,
) {
    let key = ResourceKey::new(Kind::Fleet, name.clone());
    if cx.plan.held.iter().any(|h| h.key.resource() == key) {
        // Held back this pass: its rollout is not in the plan.
        return;
    }
    let Some(change) = cx.index.changes.get(&key) else {
        // A partial plan (`--target`) leaves the other fleets out.
        if cx.plan.targets.is_empty() {
            cx.report(Problem::FleetWithoutChange {
                fleet: name.clone(),
            });
        }
        return;
    };
    let replacements: u32 = change
        .instances
        .iter()
        .map(|x| match x {
            InstanceChange::Launch {
                count,
                reason: LaunchReason::Replace,
                ..
            } => *count,
            _ => 0,
        })
        .sum();
    let required = must_wait(replacements, spec);
    let mut found = 0;
    let handed = handed_over(cx, steps);
    for &(t, count) in &steps.replaced {
        if handed.contains(&t) {
            // Its successor takes its declared address: it goes first.
            found += count;
            continue;
        }
        let after_launch = cx.order.any_before(&steps.launches, t);
        if after_launch && (!behind_balancer || cx.order.any_before(&steps.waits, t)) {
            found += count;
        }
    }
    if found < required {
        cx.report(Problem::OverBudget {
            fleet: name.clone(),
            replacements,
            required,
            found,
            healthy: behind_balancer,
        });
    }
    if spec.update.max_unavailable == 0
        && replacements > 0
        && steps.waits.is_empty()
        && behind_balancer
    {
        cx.report(Problem::TerminateBeforeHealthy {
            fleet: name.clone(),
        });
    }
}

/// The replaced instances' terminations whose every instance holds a
/// declared address one of the fleet's launches takes: a successor can
/// have it only once its predecessor is gone (the addresses check makes
/// sure it waits).
fn handed_over(cx: &Ctx<'_>, steps: &FleetSteps) -> Vec<StepId> {
    let taken: BTreeSet<std::net::Ipv4Addr> = steps
        .launches
        .iter()
        .filter_map(|&l| match cx.plan.graph.step(l) {
            Some(Step::Launch { private_ips, .. }) => Some(private_ips.iter().copied()),
            _ => None,
        })
        .flatten()
        .collect();
    if taken.is_empty() {
        return Vec::new();
    }
    steps
        .replaced
        .iter()
        .filter(|(t, _)| match cx.plan.graph.step(*t) {
            Some(Step::Terminate { instances, .. }) => instances.iter().all(|id| {
                cx.index
                    .instances
                    .get(id)
                    .and_then(|o| o.private_ip)
                    .is_some_and(|ip| taken.contains(&ip))
            }),
            _ => false,
        })
        .map(|(t, _)| *t)
        .collect()
}

/// How many of `replacements` predecessors must wait for a successor: all
/// but `maxUnavailable` of each wave of `maxSurge + maxUnavailable`.
fn must_wait(replacements: u32, spec: &FleetSpec) -> u32 {
    let u = spec.update;
    let per_wave = (u.max_surge + u.max_unavailable).max(1);
    let full_waves = replacements / per_wave;
    let last = replacements % per_wave;
    full_waves * (per_wave - u.max_unavailable.min(per_wave)) + last - u.max_unavailable.min(last)
}
