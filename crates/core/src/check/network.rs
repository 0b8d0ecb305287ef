//! The network: instances launch in their zone's subnet of the fleet, and
//! a network's pieces are deleted only once the stack has left them (its
//! instances terminated, its groups and balancers deleted), the VPC last.

use super::{Ctx, Problem};
use crate::desired::{FleetSpec, NetworkVpc};
use crate::ids::Zone;
use crate::plan::{Ref, Step, StepId, SubnetRef};

pub(super) fn check(cx: &mut Ctx<'_>) {
    launches_in_their_subnets(cx);
    deletes_come_last(cx);
}

/// The zones a fleet may launch in: its zones, or its subnets' (declared
/// for a created network, observed for an existing VPC's).
pub(super) fn fleet_zones(cx: &Ctx<'_>, spec: &FleetSpec) -> Vec<Zone> {
    if spec.subnets.is_empty() {
        return spec.zones.clone();
    }
    spec.subnets
        .iter()
        .filter_map(|s| subnet_zone(cx, s))
        .collect()
}

/// The zone of one of the network's subnets.
fn subnet_zone(cx: &Ctx<'_>, subnet: &crate::ids::ResourceName) -> Option<Zone> {
    let net = cx.desired.network.as_ref()?;
    match &net.vpc {
        NetworkVpc::Create { subnets, .. } => subnets.get(subnet).map(|s| s.zone.clone()),
        NetworkVpc::Existing { subnets, .. } => {
            let id = subnets.get(subnet)?;
            cx.observed
                .subnets
                .iter()
                .find(|s| s.id == *id)
                .map(|s| s.zone.clone())
        }
    }
}

/// A launch for a fleet with subnets names one; a subnet that exists is
/// in the launch's zone (EC2 refuses a subnet of another zone), and is
/// one of the fleet's.
fn launches_in_their_subnets(cx: &mut Ctx<'_>) {
    let plan = cx.plan;
    for (i, s) in plan.graph.iter() {
        let Step::Launch {
            fleet, zone, spec, ..
        } = s
        else {
            continue;
        };
        let Some(f) = cx.desired.fleets.get(fleet) else {
            continue;
        };
        match (&spec.subnet, f.subnets.is_empty()) {
            (None, false) => cx.report(Problem::LaunchWithoutSubnet {
                step: cx.name(i),
                fleet: fleet.clone(),
            }),
            (Some(Ref::Known(id)), _) => {
                let observed = cx.observed.subnets.iter().find(|o| o.id == *id);
                let ok = observed.is_some_and(|o| o.zone == *zone)
                    && fleet_has(cx, f, spec.subnet.as_ref());
                if !ok {
                    cx.report(Problem::LaunchInWrongSubnet {
                        step: cx.name(i),
                        subnet: id.clone(),
                        zone: zone.clone(),
                    });
                }
            }
            _ => {}
        }
    }
}

/// Whether a known subnet is one the fleet names.
fn fleet_has(cx: &Ctx<'_>, f: &FleetSpec, subnet: Option<&SubnetRef>) -> bool {
    let Some(Ref::Known(id)) = subnet else {
        return true;
    };
    let Some(net) = cx.desired.network.as_ref() else {
        return false;
    };
    f.subnets.iter().any(|name| match &net.vpc {
        NetworkVpc::Existing { subnets, .. } => subnets.get(name) == Some(id),
        NetworkVpc::Create { .. } => cx
            .observed
            .subnets
            .iter()
            .any(|o| o.id == *id && o.name.as_ref() == Some(name)),
    })
}

/// Network deletes wait for every step that takes something of the
/// stack out of the network, and the VPC goes after its other pieces.
fn deletes_come_last(cx: &mut Ctx<'_>) {
    let plan = cx.plan;
    let mut leaving: Vec<StepId> = Vec::new();
    let mut pieces: Vec<StepId> = Vec::new();
    let mut vpcs: Vec<StepId> = Vec::new();
    for (i, s) in plan.graph.iter() {
        match s {
            Step::Terminate { .. }
            | Step::DeleteGroup { .. }
            | Step::DeleteBalancer { .. }
            | Step::DeleteTargetGroups { .. }
            | Step::SetBalancerSubnets { .. } => leaving.push(i),
            Step::DeleteSubnet { .. }
            | Step::DeleteRouteTable { .. }
            | Step::DeleteGateway { .. } => pieces.push(i),
            Step::DeleteVpc { .. } => vpcs.push(i),
            _ => {}
        }
    }
    for &d in pieces.iter().chain(&vpcs) {
        for &u in &leaving {
            if !cx.order.before(u, d) {
                cx.report(Problem::NetworkDeletedBeforeLeft {
                    step: cx.name(d),
                    first: cx.name(u),
                });
            }
        }
    }
    for &v in &vpcs {
        for &p in &pieces {
            if !cx.order.before(p, v) {
                cx.report(Problem::NetworkDeletedBeforeLeft {
                    step: cx.name(v),
                    first: cx.name(p),
                });
            }
        }
    }
}
