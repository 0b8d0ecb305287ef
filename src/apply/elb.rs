//! The load balancing steps, for classic balancers (one API call per
//! change) and elbv2 ones (target groups and listeners): creating,
//! changing and deleting balancers, registering and deregistering
//! members, and the two waits of a drained, health-gated rollout: until
//! new instances are healthy on every balancer of their fleet, and until
//! leaving members have drained.

use super::StepError;
use super::ctx::{Ctx, Output, answered};
use crate::cloud::{ErrorKind, Op, Outcome};
use converge_core::desired::{BalancerHealth, Listener};
use converge_core::elb::{
    BalancerHandle, TargetHealthCheck, listener_target_group, listener_target_groups,
};
use converge_core::ids::{InstanceId, TargetGroupName};
use converge_core::observed::Member;
use converge_core::plan::{InstanceRef, Step, StepId};
use std::time::Duration;
use tokio::time::Instant;

/// Carries out one balancer step (and the fleet's wait for health, which
/// reads only balancer membership).
pub(super) async fn run_balancer_step(
    ctx: &Ctx,
    id: StepId,
    step: &Step,
) -> Result<Output, StepError> {
    match step {
        Step::CreateBalancer { .. } => create_balancer(ctx, step).await,
        Step::SetListeners {
            balancer,
            add,
            modify,
            remove,
            health_check,
            drain_secs,
            retire,
            ..
        } => {
            let change = ListenerChange {
                add,
                modify,
                remove,
                retire,
            };
            set_listeners(ctx, balancer, &change, health_check, *drain_secs).await
        }
        Step::ConfigureHealthCheck {
            balancer,
            health_check,
        } => configure_health_check(ctx, balancer, health_check).await,
        Step::SetBalancerAttributes {
            balancer,
            drain_secs,
            cross_zone,
        } => set_attributes(ctx, balancer, *drain_secs, *cross_zone).await,
        Step::SetBalancerGroups { balancer, groups } => {
            let groups = ctx.groups(groups)?;
            let op = if balancer.kind.has_target_groups() {
                Op::SetSecurityGroupsV2 {
                    name: balancer.cloud_name.clone(),
                    groups,
                }
            } else {
                Op::ApplyBalancerGroups {
                    name: balancer.cloud_name.clone(),
                    groups,
                }
            };
            ctx.perform(&op, true).await
        }
        Step::SetBalancerZones {
            balancer,
            enable,
            disable,
            all,
        } => set_zones(ctx, balancer, enable, disable, all).await,
        Step::SetBalancerSubnets {
            balancer,
            attach,
            detach,
            all,
        } => set_subnets(ctx, balancer, attach, detach, all).await,
        Step::Register {
            balancer,
            instances,
        } => register(ctx, balancer, instances).await,
        Step::Deregister {
            balancer,
            instances,
        } => deregister(ctx, balancer, instances).await,
        Step::WaitDrained {
            balancer,
            instances,
            bound_secs,
        } => wait_drained(ctx, id, balancer, instances, *bound_secs).await,
        Step::WaitHealthy {
            instances,
            balancers,
            ..
        } => wait_healthy(ctx, id, instances, balancers).await,
        Step::DeleteBalancer { balancer } => delete_balancer(ctx, balancer).await,
        Step::DeleteTargetGroups { names, .. } => {
            for name in names {
                // In use is retried as the cloud catching up with a
                // listener's deletion.
                let op = Op::DeleteTargetGroup { name: name.clone() };
                ctx.call(&op, true).await?;
            }
            Ok(Output::None)
        }
        other => Err(StepError::Unexpected(format!(
            "{} is not a balancer step",
            other.describe()
        ))),
    }
}

/// Creates a balancer: a classic one with its listeners, health check and
/// attributes; an elbv2 one, then its target groups and the listeners
/// forwarding to them. Hands on its DNS name and hosted zone. In a VPC a
/// classic balancer is created with Subnets rather than AvailabilityZones
/// (<https://docs.aws.amazon.com/elasticloadbalancing/2012-06-01/APIReference/API_CreateLoadBalancer.html>).
async fn create_balancer(ctx: &Ctx, step: &Step) -> Result<Output, StepError> {
    let Step::CreateBalancer {
        balancer,
        scheme,
        zones,
        subnets,
        security_groups,
        listeners,
        health_check,
        drain_secs,
        cross_zone,
        tags,
        ..
    } = step
    else {
        return Err(StepError::Unexpected("not a create-balancer step".into()));
    };
    let subnets = subnets
        .iter()
        .map(|s| ctx.subnet(s))
        .collect::<Result<Vec<_>, _>>()?;
    let groups = ctx.groups(security_groups)?;
    let name = balancer.cloud_name.clone();
    let op = if balancer.kind.has_target_groups() {
        Op::CreateLoadBalancerV2 {
            name: name.clone(),
            kind: balancer.kind,
            scheme: *scheme,
            zones: zones.clone(),
            subnets,
            groups,
            tags: tags.clone(),
        }
    } else {
        Op::CreateBalancer {
            name: name.clone(),
            scheme: *scheme,
            zones: zones.clone(),
            subnets,
            groups,
            listeners: listeners.clone(),
            tags: tags.clone(),
        }
    };
    // Lagging: its groups and subnets may be this run's, and EC2 and ELB
    // answer a resource created moments ago as not found (eventual
    // consistency; `InvalidSecurityGroup`, `SubnetNotFound`) until it
    // shows, as RunInstances does for its groups.
    let (dns_name, zone_id) = match ctx.call(&op, true).await? {
        Outcome::Balancer { dns_name, zone_id } => (dns_name, zone_id),
        other => return Err(answered(op.name(), &other)),
    };
    if balancer.kind.has_target_groups() {
        let health = targets_check(health_check)?;
        ensure_target_groups(ctx, balancer, listeners, health, *drain_secs, tags).await?;
        for l in listeners {
            let op = Op::CreateListenerV2 {
                balancer: name.clone(),
                listener: l.clone(),
                target_group: listener_target_group(balancer.kind, &name, l),
            };
            ctx.call(&op, true).await?;
        }
    } else {
        configure_health_check(ctx, balancer, health_check).await?;
        set_attributes(ctx, balancer, *drain_secs, *cross_zone).await?;
    }
    Ok(Output::Balancer { dns_name, zone_id })
}

fn targets_check(h: &BalancerHealth) -> Result<&TargetHealthCheck, StepError> {
    match h {
        BalancerHealth::Targets(t) => Ok(t),
        BalancerHealth::Classic(_) => Err(StepError::Unexpected(
            "an elbv2 balancer step carries a classic health check".into(),
        )),
    }
}

/// Makes the target groups these listeners forward to, with their
/// health check and deregistration delay (a group that exists with the
/// same settings is answered as it is).
async fn ensure_target_groups(
    ctx: &Ctx,
    balancer: &BalancerHandle,
    listeners: &[Listener],
    health: &TargetHealthCheck,
    drain_secs: u32,
    tags: &converge_core::desired::Tags,
) -> Result<(), StepError> {
    for (name, protocol, port) in
        listener_target_groups(balancer.kind, &balancer.cloud_name, listeners)
    {
        let op = Op::CreateTargetGroup {
            name: name.clone(),
            balancer: balancer.cloud_name.clone(),
            protocol,
            port,
            health_check: health.clone(),
            tags: tags.clone(),
        };
        ctx.call(&op, true).await?;
        let op = Op::ModifyTargetGroupAttributes {
            name,
            deregistration_delay_secs: drain_secs,
        };
        ctx.call(&op, true).await?;
    }
    Ok(())
}

/// What a listener step changes.
struct ListenerChange<'a> {
    add: &'a [Listener],
    modify: &'a [Listener],
    remove: &'a [u16],
    retire: &'a [TargetGroupName],
}

/// Removes listeners, changes others in place (elbv2) and adds new ones;
/// an elbv2 balancer's new target groups are made first and those no
/// listener uses are deleted last.
async fn set_listeners(
    ctx: &Ctx,
    balancer: &BalancerHandle,
    change: &ListenerChange<'_>,
    health: &BalancerHealth,
    drain_secs: u32,
) -> Result<Output, StepError> {
    let name = &balancer.cloud_name;
    if !balancer.kind.has_target_groups() {
        if !change.remove.is_empty() {
            let op = Op::DeleteListeners {
                name: name.clone(),
                ports: change.remove.to_vec(),
            };
            ctx.call(&op, false).await?;
        }
        if !change.add.is_empty() {
            let op = Op::CreateListeners {
                name: name.clone(),
                listeners: change.add.to_vec(),
            };
            ctx.call(&op, false).await?;
        }
        return Ok(Output::None);
    }
    let new: Vec<Listener> = change.add.iter().chain(change.modify).cloned().collect();
    if !new.is_empty() {
        let tags = converge_core::desired::Tags::new();
        ensure_target_groups(
            ctx,
            balancer,
            &new,
            targets_check(health)?,
            drain_secs,
            &tags,
        )
        .await?;
    }
    for port in change.remove {
        let op = Op::DeleteListenerV2 {
            balancer: name.clone(),
            port: *port,
        };
        ctx.call(&op, false).await?;
    }
    for (l, create) in change
        .modify
        .iter()
        .map(|l| (l, false))
        .chain(change.add.iter().map(|l| (l, true)))
    {
        let target_group = listener_target_group(balancer.kind, name, l);
        let op = if create {
            Op::CreateListenerV2 {
                balancer: name.clone(),
                listener: l.clone(),
                target_group,
            }
        } else {
            Op::ModifyListenerV2 {
                balancer: name.clone(),
                listener: l.clone(),
                target_group,
            }
        };
        ctx.call(&op, true).await?;
    }
    for tg in change.retire {
        let op = Op::DeleteTargetGroup { name: tg.clone() };
        ctx.call(&op, true).await?;
    }
    Ok(Output::None)
}

/// Sets a classic balancer's health check, or that of each of the
/// handle's target groups.
async fn configure_health_check(
    ctx: &Ctx,
    balancer: &BalancerHandle,
    health: &BalancerHealth,
) -> Result<Output, StepError> {
    match health {
        BalancerHealth::Classic(h) => {
            let op = Op::ConfigureHealthCheck {
                name: balancer.cloud_name.clone(),
                health_check: h.clone(),
            };
            ctx.call(&op, true).await?;
        }
        BalancerHealth::Targets(h) => {
            for tg in &balancer.target_groups {
                let op = Op::ModifyTargetGroup {
                    name: tg.clone(),
                    health_check: h.clone(),
                };
                ctx.call(&op, true).await?;
            }
        }
    }
    Ok(Output::None)
}

/// Sets a classic balancer's draining and cross-zone balancing, or the
/// deregistration delay of each of the handle's target groups.
async fn set_attributes(
    ctx: &Ctx,
    balancer: &BalancerHandle,
    drain_secs: u32,
    cross_zone: bool,
) -> Result<Output, StepError> {
    if balancer.kind.has_target_groups() {
        for tg in &balancer.target_groups {
            let op = Op::ModifyTargetGroupAttributes {
                name: tg.clone(),
                deregistration_delay_secs: drain_secs,
            };
            ctx.call(&op, true).await?;
        }
    } else {
        let op = Op::ModifyBalancerAttributes {
            name: balancer.cloud_name.clone(),
            drain_secs,
            cross_zone,
        };
        ctx.call(&op, true).await?;
    }
    Ok(Output::None)
}

/// Enables zones on a classic balancer, then disables others; sets an
/// elbv2 balancer's whole list.
async fn set_zones(
    ctx: &Ctx,
    balancer: &BalancerHandle,
    enable: &[converge_core::ids::Zone],
    disable: &[converge_core::ids::Zone],
    all: &[converge_core::ids::Zone],
) -> Result<Output, StepError> {
    let name = &balancer.cloud_name;
    if balancer.kind.has_target_groups() {
        let op = Op::SetSubnetsV2 {
            name: name.clone(),
            zones: all.to_vec(),
            subnets: Vec::new(),
        };
        return ctx.perform(&op, true).await;
    }
    if !enable.is_empty() {
        let op = Op::EnableZones {
            name: name.clone(),
            zones: enable.to_vec(),
        };
        ctx.call(&op, false).await?;
    }
    if !disable.is_empty() {
        let op = Op::DisableZones {
            name: name.clone(),
            zones: disable.to_vec(),
        };
        ctx.call(&op, false).await?;
    }
    Ok(Output::None)
}

/// Attaches a classic balancer to new subnets, then detaches the old ones
/// (AttachLoadBalancerToSubnets, DetachLoadBalancerFromSubnets); sets an
/// elbv2 balancer's whole list (SetSubnets).
async fn set_subnets(
    ctx: &Ctx,
    balancer: &BalancerHandle,
    attach: &[converge_core::plan::SubnetRef],
    detach: &[converge_core::ids::SubnetId],
    all: &[converge_core::plan::SubnetRef],
) -> Result<Output, StepError> {
    let name = &balancer.cloud_name;
    let ids = |refs: &[converge_core::plan::SubnetRef]| {
        refs.iter()
            .map(|s| ctx.subnet(s))
            .collect::<Result<Vec<_>, _>>()
    };
    if balancer.kind.has_target_groups() {
        let op = Op::SetSubnetsV2 {
            name: name.clone(),
            zones: Vec::new(),
            subnets: ids(all)?,
        };
        return ctx.perform(&op, true).await;
    }
    if !attach.is_empty() {
        let op = Op::AttachBalancerToSubnets {
            name: name.clone(),
            subnets: ids(attach)?,
        };
        ctx.call(&op, true).await?;
    }
    if !detach.is_empty() {
        let op = Op::DetachBalancerFromSubnets {
            name: name.clone(),
            subnets: detach.to_vec(),
        };
        ctx.call(&op, false).await?;
    }
    Ok(Output::None)
}

/// Registers instances, known or just launched, with a classic balancer
/// or each of the handle's target groups.
async fn register(
    ctx: &Ctx,
    balancer: &BalancerHandle,
    instances: &[InstanceRef],
) -> Result<Output, StepError> {
    let ids = ctx.instances(instances)?;
    if !balancer.kind.has_target_groups() {
        let op = Op::RegisterInstances {
            name: balancer.cloud_name.clone(),
            ids,
        };
        return ctx.perform(&op, true).await;
    }
    for tg in &balancer.target_groups {
        let op = Op::RegisterTargets {
            target_group: tg.clone(),
            ids: ids.clone(),
        };
        ctx.call(&op, true).await?;
    }
    Ok(Output::None)
}

/// Deregisters instances (they start draining); instances already gone
/// count as deregistered.
async fn deregister(
    ctx: &Ctx,
    balancer: &BalancerHandle,
    instances: &[InstanceId],
) -> Result<Output, StepError> {
    let ops: Vec<Op> = if balancer.kind.has_target_groups() {
        balancer
            .target_groups
            .iter()
            .map(|tg| Op::DeregisterTargets {
                target_group: tg.clone(),
                ids: instances.to_vec(),
            })
            .collect()
    } else {
        vec![Op::DeregisterInstances {
            name: balancer.cloud_name.clone(),
            ids: instances.to_vec(),
        }]
    };
    for op in ops {
        match ctx.call(&op, false).await {
            Ok(_) => {}
            // The instance (or its balancer) is already gone: nothing to
            // deregister.
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Output::None)
}

/// Deletes a balancer; an elbv2 one's target groups after it.
async fn delete_balancer(ctx: &Ctx, balancer: &BalancerHandle) -> Result<Output, StepError> {
    if !balancer.kind.has_target_groups() {
        let op = Op::DeleteBalancer {
            name: balancer.cloud_name.clone(),
        };
        return ctx.perform(&op, false).await;
    }
    let op = Op::DeleteLoadBalancerV2 {
        name: balancer.cloud_name.clone(),
    };
    ctx.call(&op, false).await?;
    for tg in &balancer.target_groups {
        // Its listeners go with the balancer, a moment later: in use is
        // retried as the cloud catching up.
        let op = Op::DeleteTargetGroup { name: tg.clone() };
        ctx.call(&op, true).await?;
    }
    Ok(Output::None)
}

/// Waits until new instances are healthy (InService, target state
/// `healthy`) on each balancer of their fleet, one balancer after the
/// other. It is a fleet step, but all it reads is balancer membership.
async fn wait_healthy(
    ctx: &Ctx,
    id: StepId,
    instances: &[InstanceRef],
    balancers: &[BalancerHandle],
) -> Result<Output, StepError> {
    let ids = ctx.instances(instances)?;
    for b in balancers {
        ctx.wait_until(id, &format!("instances to be healthy on {b}"), || async {
            let members = members(ctx, b).await?;
            Ok(ids.iter().all(|i| {
                members
                    .iter()
                    .any(|m| m.instance == *i && m.state.healthy())
            }))
        })
        .await?;
    }
    Ok(Output::None)
}

/// Waits until deregistered members have drained: an elbv2 target is gone
/// from its groups (its delay passed, or its connections ended), a
/// classic member is no longer draining and, since AWS's
/// DescribeInstanceHealth does not show classic draining, the draining
/// time has passed where the cloud does not track it.
async fn wait_drained(
    ctx: &Ctx,
    id: StepId,
    balancer: &BalancerHandle,
    instances: &[InstanceId],
    bound_secs: u32,
) -> Result<Output, StepError> {
    let start = Instant::now();
    let bound = Duration::from_secs(bound_secs.into());
    let timed = !balancer.kind.has_target_groups() && !ctx.cloud.tracks_classic_draining();
    let what = format!(
        "{} to drain from {balancer} (up to {})",
        instances
            .iter()
            .map(|i| i.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        converge_core::duration::show(bound)
    );
    ctx.wait_until(id, &what, || async {
        if timed {
            return Ok(start.elapsed() >= bound);
        }
        let members = members(ctx, balancer).await?;
        Ok(!members.iter().any(|m| instances.contains(&m.instance)))
    })
    .await?;
    Ok(Output::None)
}

/// A balancer's members as the cloud reports them now.
async fn members(ctx: &Ctx, b: &BalancerHandle) -> Result<Vec<Member>, StepError> {
    Ok(ctx
        .read(|| ctx.cloud.balancer_members(&b.cloud_name, b.kind))
        .await?)
}
