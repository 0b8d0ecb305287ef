//! The classic Elastic Load Balancing steps: creating, changing and
//! deleting balancers, registering and deregistering instances, and
//! waiting until a fleet's instances are InService on its balancers.

use super::StepError;
use super::ctx::{Ctx, Output, answered};
use crate::cloud::{ErrorKind, Op, Outcome};
use converge_core::desired::{HealthCheck, Listener, Tags};
use converge_core::ids::{BalancerName, InstanceId, ResourceName, SubnetId, Zone};
use converge_core::observed::MemberState;
use converge_core::plan::{InstanceRef, StepId, SubnetRef};

/// Where a balancer serves: zones (default VPC) or subnets.
pub(super) struct Placement<'a> {
    pub(super) zones: &'a [Zone],
    pub(super) subnets: &'a [SubnetRef],
}

/// Creates a balancer with its listeners, sets its health check and
/// hands on its DNS name. In a VPC it is created with Subnets rather than
/// AvailabilityZones (at most one subnet per zone)
/// (<https://docs.aws.amazon.com/elasticloadbalancing/2012-06-01/APIReference/API_CreateLoadBalancer.html>).
pub(super) async fn create_balancer(
    ctx: &Ctx,
    name: &ResourceName,
    placed: &Placement<'_>,
    listeners: &[Listener],
    health_check: &HealthCheck,
    tags: &Tags,
) -> Result<Output, StepError> {
    let subnets = placed
        .subnets
        .iter()
        .map(|s| ctx.subnet(s))
        .collect::<Result<Vec<_>, _>>()?;
    let op = Op::CreateBalancer {
        name: name.into(),
        zones: placed.zones.to_vec(),
        subnets,
        listeners: listeners.to_vec(),
        tags: tags.clone(),
    };
    let dns = match ctx.call(&op, false).await? {
        Outcome::Balancer { dns_name } => dns_name,
        other => return Err(answered("CreateLoadBalancer", &other)),
    };
    let op = Op::ConfigureHealthCheck {
        name: name.into(),
        health_check: health_check.clone(),
    };
    ctx.call(&op, true).await?;
    Ok(Output::Balancer(dns))
}

/// Attaches the balancer to new subnets, then detaches the old ones
/// (AttachLoadBalancerToSubnets, DetachLoadBalancerFromSubnets).
pub(super) async fn set_balancer_subnets(
    ctx: &Ctx,
    name: &ResourceName,
    attach: &[SubnetRef],
    detach: &[SubnetId],
) -> Result<Output, StepError> {
    if !attach.is_empty() {
        let subnets = attach
            .iter()
            .map(|s| ctx.subnet(s))
            .collect::<Result<Vec<_>, _>>()?;
        let op = Op::AttachBalancerToSubnets {
            name: name.into(),
            subnets,
        };
        ctx.call(&op, true).await?;
    }
    if !detach.is_empty() {
        let op = Op::DetachBalancerFromSubnets {
            name: name.into(),
            subnets: detach.to_vec(),
        };
        ctx.call(&op, false).await?;
    }
    Ok(Output::None)
}

/// Removes the listeners on the `remove` ports, then adds `add`.
pub(super) async fn set_listeners(
    ctx: &Ctx,
    name: &ResourceName,
    add: &[Listener],
    remove: &[u16],
) -> Result<Output, StepError> {
    if !remove.is_empty() {
        let op = Op::DeleteListeners {
            name: name.into(),
            ports: remove.to_vec(),
        };
        ctx.call(&op, false).await?;
    }
    if !add.is_empty() {
        let op = Op::CreateListeners {
            name: name.into(),
            listeners: add.to_vec(),
        };
        ctx.call(&op, false).await?;
    }
    Ok(Output::None)
}

/// Sets a balancer's health check.
pub(super) async fn configure_health_check(
    ctx: &Ctx,
    name: &ResourceName,
    health_check: &HealthCheck,
) -> Result<Output, StepError> {
    let op = Op::ConfigureHealthCheck {
        name: name.into(),
        health_check: health_check.clone(),
    };
    ctx.perform(&op, false).await
}

/// Enables zones on a balancer, then disables others.
pub(super) async fn set_balancer_zones(
    ctx: &Ctx,
    name: &ResourceName,
    enable: &[Zone],
    disable: &[Zone],
) -> Result<Output, StepError> {
    if !enable.is_empty() {
        let op = Op::EnableZones {
            name: name.into(),
            zones: enable.to_vec(),
        };
        ctx.call(&op, false).await?;
    }
    if !disable.is_empty() {
        let op = Op::DisableZones {
            name: name.into(),
            zones: disable.to_vec(),
        };
        ctx.call(&op, false).await?;
    }
    Ok(Output::None)
}

/// Registers instances, known or just launched, with a balancer.
pub(super) async fn register(
    ctx: &Ctx,
    balancer: &ResourceName,
    instances: &[InstanceRef],
) -> Result<Output, StepError> {
    let op = Op::RegisterInstances {
        name: balancer.into(),
        ids: ctx.instances(instances)?,
    };
    ctx.perform(&op, true).await
}

/// Deregisters instances from a balancer; instances already gone count
/// as deregistered.
pub(super) async fn deregister(
    ctx: &Ctx,
    balancer: &ResourceName,
    instances: &[InstanceId],
) -> Result<Output, StepError> {
    let op = Op::DeregisterInstances {
        name: balancer.into(),
        ids: instances.to_vec(),
    };
    match ctx.call(&op, false).await {
        Ok(_) => {}
        // The instance is already gone: nothing to deregister.
        Err(e) if e.kind == ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Output::None)
}

/// Deletes a balancer.
pub(super) async fn delete_balancer(ctx: &Ctx, name: &ResourceName) -> Result<Output, StepError> {
    let op = Op::DeleteBalancer { name: name.into() };
    ctx.perform(&op, false).await
}

/// Waits until a fleet's instances are InService on each of its
/// balancers, one balancer after the other. It is a fleet step, but all
/// it reads is balancer membership, so it lives with the balancers.
pub(super) async fn wait_healthy(
    ctx: &Ctx,
    id: StepId,
    instances: &[InstanceRef],
    balancers: &[ResourceName],
) -> Result<Output, StepError> {
    let ids = ctx.instances(instances)?;
    for b in balancers {
        let name = BalancerName::from(b);
        ctx.wait_until(
            id,
            &format!("instances to be InService on Balancer/{b}"),
            || async {
                let members = ctx.read(|| ctx.cloud.balancer_members(&name)).await?;
                Ok(ids.iter().all(|i| {
                    members
                        .iter()
                        .any(|m| m.instance == *i && m.state == MemberState::InService)
                }))
            },
        )
        .await?;
    }
    Ok(Output::None)
}
