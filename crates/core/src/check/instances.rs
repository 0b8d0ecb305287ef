//! Instances: each observed one terminated at most once; launches of at
//! least one instance, for a declared fleet, in one of its zones; nothing
//! changes or registers an instance that goes; registrations wait for
//! their balancer; members are deregistered before they go, and before
//! their balancer is deleted.

use super::{Ctx, Problem, listed, push};
use crate::elb::BalancerHandle;
use crate::ids::{InstanceId, ResourceName, Zone};
use crate::observed::ObservedBalancer;
use crate::plan::{InstanceRef, Step, StepId};
use std::collections::{BTreeMap, BTreeSet};

pub(super) fn check(cx: &mut Ctx<'_>) {
    terminations(cx);
    let balancers = Balancers::new(cx);
    let volume_zone = attached_volume_zones(cx);
    let plan = cx.plan;
    for (i, s) in plan.graph.iter() {
        match s {
            Step::Launch {
                fleet, zone, count, ..
            } => launch(cx, i, fleet, zone, *count, &volume_zone),
            Step::SetInstanceGroups { instance, .. }
            | Step::SetMetadataOptions { instance, .. }
            | Step::AssociateInstanceProfile { instance, .. }
            | Step::ReplaceInstanceProfile { instance, .. }
            | Step::DisassociateInstanceProfile { instance, .. }
                if !cx.index.terminates(instance).is_empty() =>
            {
                cx.report(Problem::ChangesTerminated {
                    step: cx.name(i),
                    instance: instance.clone(),
                });
            }
            Step::Register {
                balancer,
                instances,
            } => register(cx, &balancers, i, balancer, instances),
            Step::Deregister { balancer, .. } => {
                for &delete in listed(&balancers.deletes, &balancer.cloud_name.as_str()) {
                    if !cx.order.before(i, delete) {
                        cx.report(Problem::DeregisterAfterBalancerDelete {
                            step: cx.name(i),
                            delete: cx.name(delete),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    deregistered_first(cx, &balancers);
}

/// Terminate steps name observed instances, at least one each, and no
/// instance twice.
fn terminations(cx: &mut Ctx<'_>) {
    let plan = cx.plan;
    for (i, s) in plan.graph.iter() {
        if let Step::Terminate { instances, .. } = s {
            if instances.is_empty() {
                cx.report(Problem::TerminatesNothing { step: cx.name(i) });
            }
            for id in instances {
                if !cx.index.instances.contains_key(id) {
                    cx.report(Problem::TerminatesUnobserved {
                        step: cx.name(i),
                        instance: id.clone(),
                    });
                }
            }
        }
    }
    let index = cx.index;
    for (&id, steps) in &index.terminates {
        for pair in steps.windows(2) {
            cx.report(Problem::TerminatedTwice {
                instance: id.clone(),
                first: cx.name(pair[0]),
                second: cx.name(pair[1]),
            });
        }
    }
}

/// For each fleet a declared volume attaches to, the volume's zone (the
/// first such volume by name).
fn attached_volume_zones<'a>(cx: &Ctx<'a>) -> BTreeMap<&'a ResourceName, &'a Zone> {
    let mut zones = BTreeMap::new();
    for v in cx.desired.volumes.values() {
        if let Some(a) = &v.attach {
            zones.entry(&a.fleet).or_insert(&v.zone);
        }
    }
    zones
}

fn launch(
    cx: &mut Ctx<'_>,
    i: StepId,
    fleet: &ResourceName,
    zone: &Zone,
    count: u32,
    volume_zone: &BTreeMap<&ResourceName, &Zone>,
) {
    if count == 0 {
        cx.report(Problem::LaunchesNothing { step: cx.name(i) });
    }
    let Some(spec) = cx.desired.fleets.get(fleet) else {
        cx.report(Problem::LaunchUndeclared {
            step: cx.name(i),
            fleet: fleet.clone(),
        });
        return;
    };
    let allowed = match volume_zone.get(fleet) {
        Some(&z) => vec![z.clone()],
        None => super::network::fleet_zones(cx, spec),
    };
    if !allowed.contains(zone) {
        cx.report(Problem::LaunchOutsideZones {
            step: cx.name(i),
            zone: zone.clone(),
            allowed: allowed.to_vec(),
        });
    }
}

/// The balancer steps and memberships the instance checks look up.
struct Balancers<'a> {
    /// Create steps by balancer (cloud name).
    creates: BTreeMap<&'a str, Vec<StepId>>,
    /// Delete steps by balancer (cloud name).
    deletes: BTreeMap<&'a str, Vec<StepId>>,
    /// Deregister steps by balancer name and instance.
    deregisters: BTreeMap<(&'a str, &'a InstanceId), Vec<StepId>>,
    /// Drain waits by balancer name and instance.
    drains: BTreeMap<(&'a str, &'a InstanceId), Vec<StepId>>,
    /// The observed balancers each terminated instance is a member of,
    /// once each.
    memberships: BTreeMap<&'a InstanceId, Vec<&'a ObservedBalancer>>,
}

impl<'a> Balancers<'a> {
    fn new(cx: &Ctx<'a>) -> Self {
        let mut b = Balancers {
            creates: BTreeMap::new(),
            deletes: BTreeMap::new(),
            deregisters: BTreeMap::new(),
            drains: BTreeMap::new(),
            memberships: BTreeMap::new(),
        };
        for (i, s) in cx.plan.graph.iter() {
            match s {
                Step::CreateBalancer { balancer, .. } => {
                    push(&mut b.creates, balancer.cloud_name.as_str(), i)
                }
                Step::DeleteBalancer { balancer } => {
                    push(&mut b.deletes, balancer.cloud_name.as_str(), i)
                }
                Step::Deregister {
                    balancer,
                    instances,
                } => {
                    for id in instances {
                        push(&mut b.deregisters, (balancer.cloud_name.as_str(), id), i);
                    }
                }
                Step::WaitDrained {
                    balancer,
                    instances,
                    ..
                } => {
                    for id in instances {
                        push(&mut b.drains, (balancer.cloud_name.as_str(), id), i);
                    }
                }
                _ => {}
            }
        }
        // Only the memberships of instances the plan terminates matter.
        let terminated = &cx.index.terminates;
        for balancer in cx
            .observed
            .balancers
            .iter()
            .filter(|_| !terminated.is_empty())
        {
            // A member already draining was deregistered before.
            let members: BTreeSet<&InstanceId> = balancer
                .members
                .iter()
                .filter(|m| !m.state.draining())
                .map(|m| &m.instance)
                .filter(|id| terminated.contains_key(id))
                .collect();
            for m in members {
                b.memberships.entry(m).or_default().push(balancer);
            }
        }
        b
    }
}

/// A registration names live instances the plan keeps, and waits for the
/// balancer's creation.
fn register(
    cx: &mut Ctx<'_>,
    balancers: &Balancers<'_>,
    i: StepId,
    balancer: &BalancerHandle,
    instances: &[InstanceRef],
) {
    for r in instances {
        if let InstanceRef::Known(id) = r {
            if !cx.index.terminates(id).is_empty() {
                cx.report(Problem::RegistersTerminated {
                    step: cx.name(i),
                    instance: id.clone(),
                });
            }
            let live = cx
                .index
                .instances
                .get(id)
                .is_some_and(|i| i.state.is_live());
            if !live {
                cx.report(Problem::RegistersNotLive {
                    step: cx.name(i),
                    instance: id.clone(),
                });
            }
        }
    }
    for &create in listed(&balancers.creates, &balancer.cloud_name.as_str()) {
        if !cx.order.before(create, i) {
            cx.report(Problem::RegisterBeforeBalancer {
                step: cx.name(i),
                create: cx.name(create),
            });
        }
    }
}

/// A terminated member is deregistered from each balancer it is in before
/// it goes.
fn deregistered_first(cx: &mut Ctx<'_>, balancers: &Balancers<'_>) {
    let index = cx.index;
    for (&id, terminates) in &index.terminates {
        for b in listed_balancers(balancers, id) {
            let deregisters = listed(&balancers.deregisters, &(b.name.as_str(), id));
            let drains = listed(&balancers.drains, &(b.name.as_str(), id));
            // A balancer that drains: elbv2 target groups with a delay, a
            // classic balancer with draining on.
            let drains_members = b.drain_secs.unwrap_or(0) > 0
                || b.target_groups.iter().any(|t| {
                    t.deregistration_delay_secs > 0 && t.members.iter().any(|m| &m.instance == id)
                });
            for &t in terminates {
                if !cx.order.any_before(deregisters, t) {
                    cx.report(Problem::DeregisterAfterTerminate {
                        step: cx.name(t),
                        instance: id.clone(),
                        balancer: b.name.clone(),
                    });
                } else if drains_members && !cx.order.any_before(drains, t) {
                    cx.report(Problem::TerminatedBeforeDrained {
                        step: cx.name(t),
                        instance: id.clone(),
                        balancer: b.name.clone(),
                    });
                }
            }
        }
    }
}

fn listed_balancers<'b, 'a>(
    balancers: &'b Balancers<'a>,
    id: &InstanceId,
) -> &'b [&'a ObservedBalancer] {
    balancers.memberships.get(id).map_or(&[], Vec::as_slice)
}
