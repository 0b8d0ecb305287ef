//! Elastic Load Balancing v2: application and network balancers, their
//! target groups, listeners and targets, with the rules and error codes of
//! the elbv2 API reference
//! (<https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/>:
//! CreateLoadBalancer, SetSubnets, SetSecurityGroups, CreateTargetGroup,
//! ModifyTargetGroup, ModifyTargetGroupAttributes, DeleteTargetGroup,
//! CreateListener, ModifyListener, RegisterTargets, DeregisterTargets).
//!
//! Targets go `initial` → `healthy` `healthyThreshold × interval` (scaled
//! by the `health` delay factor) after they are registered and running;
//! a deregistered target, or one whose instance terminates, is `draining`
//! for the group's deregistration delay (scaled the same way), then gone.

use super::acm::check_listener_certificate;
use super::ec2::{find_group, find_instance, find_subnet};
use super::iam::ACCOUNT;
use super::tags::check_tags;
use super::{Ctx, Errs, check_zone, dedup};
use crate::cloud::local::world::{
    BalancerV2, Drain, ListenerV2, Registration, TargetGroup, World, after,
};
use crate::cloud::{CloudError, Op, Outcome, misrouted};
use converge_core::desired::{Listener, ListenerProtocol, Tags};
use converge_core::elb::{
    BalancerType, DEFAULT_DRAIN_SECS, NAME_MAX, Scheme, TargetHealthCheck, canonical_zone_id,
    ranges,
};
use converge_core::ids::{
    BalancerName, GroupId, InstanceId, SubnetId, TargetGroupName, VpcId, Zone,
};
use converge_core::observed::InstanceState;
use std::collections::BTreeMap;
use std::time::Duration;

/// The hosted zones used for a region not in AWS's table (us-east-1's).
const FALLBACK_ZONE_ID: (&str, &str) = ("Z35SXDOTRQ7X7K", "Z26RNL4JYFTOTI");

/// The canonical hosted zone of a balancer's DNS name in `region`.
pub(crate) fn zone_id(region: &str, kind: BalancerType) -> String {
    canonical_zone_id(region, kind)
        .unwrap_or(match kind {
            BalancerType::Network => FALLBACK_ZONE_ID.1,
            _ => FALLBACK_ZONE_ID.0,
        })
        .to_owned()
}

/// Routes an elbv2 operation to its function.
pub(crate) fn act(w: &mut World, op: &Op, cx: &Ctx<'_>, e: &Errs) -> Result<Outcome, CloudError> {
    match op {
        Op::CreateLoadBalancerV2 {
            name,
            kind,
            scheme,
            zones,
            subnets,
            groups,
            tags,
        } => {
            let n = NewBalancerV2 {
                name,
                kind: *kind,
                scheme: *scheme,
                zones,
                subnets,
                groups,
                tags,
            };
            create_load_balancer(w, cx, e, &n)
        }
        Op::SetSecurityGroupsV2 { name, groups } => set_security_groups(w, cx, e, name, groups),
        Op::SetSubnetsV2 {
            name,
            zones,
            subnets,
        } => set_subnets(w, cx, e, name, zones, subnets),
        Op::DeleteLoadBalancerV2 { name } => delete_load_balancer(w, cx, name),
        Op::CreateTargetGroup {
            name,
            balancer,
            protocol,
            port,
            health_check,
            tags,
        } => {
            let n = NewTargetGroup {
                name,
                balancer,
                protocol: *protocol,
                port: *port,
                health_check,
                tags,
            };
            create_target_group(w, cx, e, &n)
        }
        Op::ModifyTargetGroup { name, health_check } => {
            modify_target_group(w, cx, e, name, health_check)
        }
        Op::ModifyTargetGroupAttributes {
            name,
            deregistration_delay_secs,
        } => modify_target_group_attributes(w, cx, e, name, *deregistration_delay_secs),
        Op::DeleteTargetGroup { name } => delete_target_group(w, cx, e, name),
        Op::CreateListenerV2 {
            balancer,
            listener,
            target_group,
        } => create_listener(w, cx, e, balancer, listener, target_group),
        Op::ModifyListenerV2 {
            balancer,
            listener,
            target_group,
        } => modify_listener(w, cx, e, balancer, listener, target_group),
        Op::DeleteListenerV2 { balancer, port } => delete_listener(w, cx, e, balancer, *port),
        Op::RegisterTargets { target_group, ids } => register_targets(w, cx, e, target_group, ids),
        Op::DeregisterTargets { target_group, ids } => {
            deregister_targets(w, cx, e, target_group, ids)
        }
        other => Err(misrouted(other, "ELBv2")),
    }
}

/// A balancer's request, as `Op::CreateLoadBalancerV2` carries it.
pub(crate) struct NewBalancerV2<'a> {
    pub name: &'a BalancerName,
    pub kind: BalancerType,
    pub scheme: Scheme,
    pub zones: &'a [Zone],
    pub subnets: &'a [SubnetId],
    pub groups: &'a [GroupId],
    pub tags: &'a Tags,
}

/// CreateLoadBalancer. The same name with the same settings answers the
/// existing balancer; other settings are `DuplicateLoadBalancerName`.
pub(crate) fn create_load_balancer(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    n: &NewBalancerV2<'_>,
) -> Result<Outcome, CloudError> {
    // "This name must be unique per region per account, can have a maximum
    // of 32 characters, must contain only alphanumeric characters or
    // hyphens, must not begin or end with a hyphen, and must not begin with
    // 'internal-'." (CreateLoadBalancer, Name)
    check_name(n.name.as_str(), "Load balancer").map_err(|m| e.invalid("ValidationError", m))?;
    if n.name.as_str().starts_with("internal-") {
        return Err(e.invalid(
            "ValidationError",
            format!(
                "Load balancer name '{}' cannot begin with 'internal-'.",
                n.name
            ),
        ));
    }
    if n.kind == BalancerType::Classic {
        return Err(e.invalid(
            "ValidationError",
            "elbv2 makes application and network balancers; a classic one is made with the ELB API.",
        ));
    }
    let (vpc, zones, subnets) = placement(w, cx, e, n.kind, n.zones, n.subnets)?;
    let groups = dedup(n.groups);
    check_groups(w, cx, e, n.kind, &vpc, &groups)?;
    check_tags(e, n.tags)?;
    if let Some(b) = w.balancer_v2(cx.region, n.name.as_str()) {
        let same = b.kind == n.kind
            && b.scheme == n.scheme
            && sorted(b.zones.clone()) == sorted(zones.clone())
            && sorted(b.subnets.clone()) == sorted(subnets.clone())
            && sorted(b.groups.clone()) == sorted(groups.clone());
        if same {
            return Ok(Outcome::Balancer {
                dns_name: b.dns_name.clone(),
                zone_id: zone_id(cx.region, b.kind),
            });
        }
        return Err(e.exists(
            "DuplicateLoadBalancerName",
            format!(
                "A load balancer with the name '{}' already exists, with other settings.",
                n.name
            ),
        ));
    }
    let id = w.next_hex(16);
    let lower = n.name.as_str().to_ascii_lowercase();
    let internal = if n.scheme == Scheme::Internal {
        "internal-"
    } else {
        ""
    };
    let (dns_name, short) = match n.kind {
        BalancerType::Network => (
            format!("{internal}{lower}-{id}.elb.{}.amazonaws.com", cx.region),
            "net",
        ),
        _ => {
            let digits = w.next_chars(1, b"123456789") + &w.next_chars(9, b"0123456789");
            (
                format!("{internal}{lower}-{digits}.{}.elb.amazonaws.com", cx.region),
                "app",
            )
        }
    };
    let arn = format!(
        "arn:aws:elasticloadbalancing:{}:{ACCOUNT}:loadbalancer/{short}/{}/{id}",
        cx.region, n.name
    );
    w.balancers_v2.push(BalancerV2 {
        name: n.name.to_string(),
        region: cx.region.to_owned(),
        arn,
        kind: n.kind,
        scheme: n.scheme,
        dns_name: dns_name.clone(),
        vpc,
        zones,
        subnets,
        groups,
        listeners: Vec::new(),
        tags: n.tags.clone(),
        created_at: cx.now,
    });
    Ok(Outcome::Balancer {
        dns_name,
        zone_id: zone_id(cx.region, n.kind),
    })
}

/// Where a balancer serves: the VPC, zones and subnets. Subnets must
/// exist, share one VPC and be at most one per zone; zones without
/// subnets mean the default VPC's default subnet of each zone; an
/// application balancer needs two zones at least (CreateLoadBalancer,
/// Subnets: "you must specify subnets from at least two Availability
/// Zones"; "You can specify only one subnet per Availability Zone").
fn placement(
    w: &World,
    cx: &Ctx<'_>,
    e: &Errs,
    kind: BalancerType,
    zones: &[Zone],
    subnets: &[SubnetId],
) -> Result<(VpcId, Vec<Zone>, Vec<SubnetId>), CloudError> {
    if !zones.is_empty() && !subnets.is_empty() {
        return Err(e.invalid(
            "ValidationError",
            "Specify either zones (their default subnets) or subnets, not both.",
        ));
    }
    let subnets = dedup(subnets);
    let (vpc, zones) = if subnets.is_empty() {
        for z in zones {
            check_zone(cx, e, z)?;
        }
        let vpc = w.default_vpc(cx.region).ok_or_else(|| {
            e.not_found(
                "SubnetNotFound",
                format!(
                    "{} has no default VPC, so zones name no default subnets: give subnets.",
                    cx.region
                ),
            )
        })?;
        (vpc, dedup(zones))
    } else {
        let mut vpc: Option<VpcId> = None;
        let mut out: Vec<Zone> = Vec::new();
        for id in &subnets {
            let s = find_subnet(w, cx, e, id).map_err(|_| {
                e.not_found(
                    "SubnetNotFound",
                    format!("The subnet ID '{id}' is not valid"),
                )
            })?;
            if vpc.as_ref().is_some_and(|v| *v != s.vpc) {
                return Err(e.invalid(
                    "InvalidConfigurationRequest",
                    format!("Subnet {id} is in another VPC than the balancer's other subnets."),
                ));
            }
            vpc = Some(s.vpc.clone());
            if out.contains(&s.zone) {
                return Err(e.invalid(
                    "InvalidConfigurationRequest",
                    format!(
                        "A load balancer cannot be attached to multiple subnets in the same Availability Zone ({}).",
                        s.zone
                    ),
                ));
            }
            out.push(s.zone.clone());
        }
        // Not empty: subnets is not.
        let vpc = vpc.ok_or_else(|| e.invalid("ValidationError", "No subnets."))?;
        (vpc, out)
    };
    if zones.is_empty() {
        return Err(e.invalid(
            "ValidationError",
            "A load balancer needs at least one subnet or zone.",
        ));
    }
    if kind == BalancerType::Application && zones.len() < 2 {
        return Err(e.invalid(
            "ValidationError",
            format!(
                "An application load balancer needs subnets in at least two Availability Zones ({} given).",
                zones.len()
            ),
        ));
    }
    Ok((vpc, zones, subnets))
}

/// A balancer's security groups: each must exist in its VPC; a network
/// balancer takes none (converge's rule, stricter than AWS, which allows
/// them on network balancers made with groups).
fn check_groups(
    w: &World,
    cx: &Ctx<'_>,
    e: &Errs,
    kind: BalancerType,
    vpc: &VpcId,
    groups: &[GroupId],
) -> Result<(), CloudError> {
    if kind == BalancerType::Network && !groups.is_empty() {
        return Err(e.invalid(
            "InvalidConfigurationRequest",
            "A network load balancer takes no security groups here.",
        ));
    }
    for g in groups {
        let found = find_group(w, cx, e, g).map_err(|_| {
            e.not_found(
                "InvalidSecurityGroup",
                format!("Security group '{g}' does not exist"),
            )
        })?;
        if w.group_vpc(found).as_ref() != Some(vpc) {
            return Err(e.invalid(
                "InvalidSecurityGroup",
                format!("Security group '{g}' is not in the balancer's VPC {vpc}"),
            ));
        }
    }
    Ok(())
}

/// SetSecurityGroups.
pub(crate) fn set_security_groups(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    name: &BalancerName,
    groups: &[GroupId],
) -> Result<Outcome, CloudError> {
    let b = find_balancer_v2(w, cx, e, name.as_str())?;
    let groups = dedup(groups);
    check_groups(w, cx, e, b.kind, &b.vpc, &groups)?;
    if let Some(b) = w.balancer_v2_mut(cx.region, name.as_str()) {
        b.groups = groups;
    }
    Ok(Outcome::Done)
}

/// SetSubnets: the whole list; the VPC cannot change.
pub(crate) fn set_subnets(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    name: &BalancerName,
    zones: &[Zone],
    subnets: &[SubnetId],
) -> Result<Outcome, CloudError> {
    let b = find_balancer_v2(w, cx, e, name.as_str())?;
    let (vpc, zones, subnets) = placement(w, cx, e, b.kind, zones, subnets)?;
    if vpc != b.vpc {
        return Err(e.invalid(
            "InvalidConfigurationRequest",
            format!(
                "The subnets are in {vpc}, the load balancer '{name}' is in {}.",
                b.vpc
            ),
        ));
    }
    if let Some(b) = w.balancer_v2_mut(cx.region, name.as_str()) {
        b.zones = zones;
        b.subnets = subnets;
    }
    Ok(Outcome::Done)
}

/// DeleteLoadBalancer: its listeners go with it; its target groups stay
/// (their targets become `unused`). Deleting one that does not exist
/// succeeds, as in elbv2.
pub(crate) fn delete_load_balancer(
    w: &mut World,
    cx: &Ctx<'_>,
    name: &BalancerName,
) -> Result<Outcome, CloudError> {
    w.balancers_v2
        .retain(|b| !(b.region == cx.region && b.name == *name));
    Ok(Outcome::Done)
}

/// A target group's request, as `Op::CreateTargetGroup` carries it.
pub(crate) struct NewTargetGroup<'a> {
    pub name: &'a TargetGroupName,
    pub balancer: &'a BalancerName,
    pub protocol: ListenerProtocol,
    pub port: u16,
    pub health_check: &'a TargetHealthCheck,
    pub tags: &'a Tags,
}

/// CreateTargetGroup of instances, in the balancer's VPC. The same name
/// with the same settings answers the existing group; other settings are
/// `DuplicateTargetGroupName`.
pub(crate) fn create_target_group(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    n: &NewTargetGroup<'_>,
) -> Result<Outcome, CloudError> {
    check_name(n.name.as_str(), "Target group").map_err(|m| e.invalid("ValidationError", m))?;
    let vpc = find_balancer_v2(w, cx, e, n.balancer.as_str())?.vpc.clone();
    if !target_protocols().contains(&n.protocol) {
        return Err(e.invalid(
            "ValidationError",
            format!(
                "Target group protocol {} is not one of HTTP, HTTPS, TCP, TLS, UDP, TCP_UDP.",
                n.protocol.as_str()
            ),
        ));
    }
    if n.port == 0 {
        return Err(e.invalid(
            "ValidationError",
            "A target group's port must be within 1 to 65535.",
        ));
    }
    check_health_check(n.protocol, n.health_check).map_err(|m| e.invalid("ValidationError", m))?;
    check_tags(e, n.tags)?;
    if let Some(g) = w.target_group(cx.region, n.name.as_str()) {
        let same = g.protocol == n.protocol
            && g.port == n.port
            && g.vpc == vpc
            && g.health_check == *n.health_check;
        if same {
            return Ok(Outcome::Done);
        }
        return Err(e.exists(
            "DuplicateTargetGroupName",
            format!(
                "A target group with the name '{}' already exists, with other settings.",
                n.name
            ),
        ));
    }
    let arn = format!(
        "arn:aws:elasticloadbalancing:{}:{ACCOUNT}:targetgroup/{}/{}",
        cx.region,
        n.name,
        w.next_hex(16)
    );
    w.target_groups.push(TargetGroup {
        name: n.name.to_string(),
        region: cx.region.to_owned(),
        arn,
        protocol: n.protocol,
        port: n.port,
        vpc,
        health_check: n.health_check.clone(),
        deregistration_delay_secs: DEFAULT_DRAIN_SECS,
        drain_ms: scaled_ms(cx, DEFAULT_DRAIN_SECS),
        targets: BTreeMap::new(),
        draining: BTreeMap::new(),
        tags: n.tags.clone(),
        created_at: cx.now,
    });
    Ok(Outcome::Done)
}

/// ModifyTargetGroup: its health check.
pub(crate) fn modify_target_group(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    name: &TargetGroupName,
    health_check: &TargetHealthCheck,
) -> Result<Outcome, CloudError> {
    let g = find_target_group(w, cx, e, name.as_str())?;
    check_health_check(g.protocol, health_check).map_err(|m| e.invalid("ValidationError", m))?;
    if let Some(g) = w.target_group_mut(cx.region, name.as_str()) {
        g.health_check = health_check.clone();
    }
    Ok(Outcome::Done)
}

/// ModifyTargetGroupAttributes: `deregistration_delay.timeout_seconds`,
/// 0 to 3600.
pub(crate) fn modify_target_group_attributes(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    name: &TargetGroupName,
    delay_secs: u32,
) -> Result<Outcome, CloudError> {
    find_target_group(w, cx, e, name.as_str())?;
    let (lo, hi) = ranges::DEREGISTRATION_DELAY;
    if !(lo..=hi).contains(&delay_secs) {
        return Err(e.invalid(
            "ValidationError",
            format!(
                "deregistration_delay.timeout_seconds {delay_secs} is not within {lo} to {hi}."
            ),
        ));
    }
    let ms = scaled_ms(cx, delay_secs);
    if let Some(g) = w.target_group_mut(cx.region, name.as_str()) {
        g.deregistration_delay_secs = delay_secs;
        g.drain_ms = ms;
    }
    Ok(Outcome::Done)
}

/// DeleteTargetGroup: refused while a listener forwards to it
/// (`ResourceInUse`); one that does not exist is already deleted.
pub(crate) fn delete_target_group(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    name: &TargetGroupName,
) -> Result<Outcome, CloudError> {
    let Some(g) = w.target_group(cx.region, name.as_str()) else {
        return Ok(Outcome::Done);
    };
    if let Some(b) = w.group_balancer(g) {
        return Err(e.state(
            "ResourceInUse",
            format!(
                "Target group '{}' is currently in use by a listener of load balancer '{}'.",
                g.arn, b.name
            ),
        ));
    }
    w.target_groups
        .retain(|g| !(g.region == cx.region && g.name == *name));
    Ok(Outcome::Done)
}

/// CreateListener: one per port (`DuplicateListener` for other settings;
/// the same settings answer the existing one).
pub(crate) fn create_listener(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    balancer: &BalancerName,
    listener: &Listener,
    target_group: &TargetGroupName,
) -> Result<Outcome, CloudError> {
    let b = find_balancer_v2(w, cx, e, balancer.as_str())?;
    check_listener(w, cx, e, b, listener, target_group)?;
    if let Some(existing) = b
        .listeners
        .iter()
        .find(|l| l.listener.port == listener.port)
    {
        if existing.listener == *listener && existing.target_group == *target_group {
            return Ok(Outcome::Done);
        }
        return Err(e.exists(
            "DuplicateListener",
            format!(
                "A listener already exists on port {} of load balancer '{balancer}'.",
                listener.port
            ),
        ));
    }
    if let Some(b) = w.balancer_v2_mut(cx.region, balancer.as_str()) {
        b.listeners.push(ListenerV2 {
            listener: listener.clone(),
            target_group: target_group.to_string(),
        });
        b.listeners.sort_by_key(|l| l.listener.port);
    }
    Ok(Outcome::Done)
}

/// ModifyListener: the listener on the port must exist
/// (`ListenerNotFound`).
pub(crate) fn modify_listener(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    balancer: &BalancerName,
    listener: &Listener,
    target_group: &TargetGroupName,
) -> Result<Outcome, CloudError> {
    let b = find_balancer_v2(w, cx, e, balancer.as_str())?;
    if !b.listeners.iter().any(|l| l.listener.port == listener.port) {
        return Err(e.not_found(
            "ListenerNotFound",
            format!(
                "Load balancer '{balancer}' has no listener on port {}.",
                listener.port
            ),
        ));
    }
    check_listener(w, cx, e, b, listener, target_group)?;
    if let Some(b) = w.balancer_v2_mut(cx.region, balancer.as_str())
        && let Some(l) = b
            .listeners
            .iter_mut()
            .find(|l| l.listener.port == listener.port)
    {
        l.listener = listener.clone();
        l.target_group = target_group.to_string();
    }
    Ok(Outcome::Done)
}

/// DeleteListener of the listener on a port (none there: done).
pub(crate) fn delete_listener(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    balancer: &BalancerName,
    port: u16,
) -> Result<Outcome, CloudError> {
    find_balancer_v2(w, cx, e, balancer.as_str())?;
    if let Some(b) = w.balancer_v2_mut(cx.region, balancer.as_str()) {
        b.listeners.retain(|l| l.listener.port != port);
    }
    Ok(Outcome::Done)
}

/// What CreateListener and ModifyListener check: the port, the protocol
/// for the balancer's type (`UnsupportedProtocol`), the certificate
/// (`CertificateNotFound`), the target group (`TargetGroupNotFound`), in
/// the balancer's VPC, of a protocol the listener can forward to
/// (`IncompatibleProtocols`), and not used by another balancer
/// (`TargetGroupAssociationLimit`).
fn check_listener(
    w: &World,
    cx: &Ctx<'_>,
    e: &Errs,
    b: &BalancerV2,
    l: &Listener,
    target_group: &TargetGroupName,
) -> Result<(), CloudError> {
    if l.port == 0 {
        return Err(e.invalid(
            "ValidationError",
            "A listener's port must be within 1 to 65535.",
        ));
    }
    if !b.kind.listener_protocols().contains(&l.protocol) {
        let allowed: Vec<&str> = b
            .kind
            .listener_protocols()
            .iter()
            .map(|p| p.as_str())
            .collect();
        return Err(e.invalid(
            "UnsupportedProtocol",
            format!(
                "Protocol {} is not supported by {} load balancers (use {}).",
                l.protocol.as_str(),
                b.kind,
                allowed.join(", ")
            ),
        ));
    }
    check_listener_certificate(w, cx, e, l)?;
    let g = find_target_group(w, cx, e, target_group.as_str())?;
    if g.vpc != b.vpc {
        return Err(e.invalid(
            "ValidationError",
            format!(
                "Target group '{target_group}' is in {}, load balancer '{}' in {}.",
                g.vpc, b.name, b.vpc
            ),
        ));
    }
    if !forwards_to(b.kind, l.protocol, g.protocol) {
        return Err(e.invalid(
            "IncompatibleProtocols",
            format!(
                "A {} listener of a {} load balancer cannot forward to a {} target group.",
                l.protocol.as_str(),
                b.kind,
                g.protocol.as_str()
            ),
        ));
    }
    if let Some(other) = w.group_balancer(g).filter(|o| o.name != b.name) {
        return Err(e.invalid(
            "TargetGroupAssociationLimit",
            format!(
                "Target group '{target_group}' is already used by load balancer '{}'.",
                other.name
            ),
        ));
    }
    Ok(())
}

/// Whether a listener of a balancer of `kind` speaking `listener` can
/// forward to a target group speaking `group`: an application balancer
/// to HTTP and HTTPS groups; a network balancer's TCP and TLS listeners to
/// TCP (or TLS, TCP_UDP) groups, UDP to UDP or TCP_UDP, TCP_UDP to
/// TCP_UDP.
fn forwards_to(kind: BalancerType, listener: ListenerProtocol, group: ListenerProtocol) -> bool {
    use ListenerProtocol::*;
    match kind {
        BalancerType::Application => matches!(group, Http | Https),
        BalancerType::Network => match listener {
            Tcp => matches!(group, Tcp | TcpUdp),
            Tls => matches!(group, Tcp | Tls),
            Udp => matches!(group, Udp | TcpUdp),
            TcpUdp => group == TcpUdp,
            _ => false,
        },
        BalancerType::Classic => false,
    }
}

/// RegisterTargets: each instance must exist, run and be in the group's
/// VPC (`InvalidTarget`). A draining target registered again starts
/// over; one registered already stays as it is.
pub(crate) fn register_targets(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    target_group: &TargetGroupName,
    ids: &[InstanceId],
) -> Result<Outcome, CloudError> {
    let g = find_target_group(w, cx, e, target_group.as_str())?;
    for id in ids {
        let i = find_instance(w, cx, e, id).map_err(|_| {
            e.invalid(
                "InvalidTarget",
                format!("The following targets are not valid: {id} (no such instance)"),
            )
        })?;
        if w.instance_vpc(i).as_ref() != Some(&g.vpc) {
            return Err(e.invalid(
                "InvalidTarget",
                format!(
                    "The following targets are not in the target group's VPC '{}': {id}",
                    g.vpc
                ),
            ));
        }
        let state = i.state(cx.now);
        // An instance that ended since it was observed: the world moved
        // (stale, re-planned at once); one not yet running is refused.
        let gone = matches!(
            state,
            InstanceState::Terminated | InstanceState::ShuttingDown | InstanceState::Stopped
        );
        if state != InstanceState::Running {
            let make = if gone { Errs::stale } else { Errs::invalid };
            return Err(make(
                *e,
                "InvalidTarget",
                format!(
                    "The following targets are not in a running state and cannot be registered: {id} ({})",
                    state.as_str()
                ),
            ));
        }
    }
    let hc = &g.health_check;
    let healthy_after_ms = scaled_ms(cx, hc.interval_secs.saturating_mul(hc.healthy_threshold));
    if let Some(g) = w.target_group_mut(cx.region, target_group.as_str()) {
        for id in ids {
            g.draining.remove(id);
            g.targets.entry(id.clone()).or_insert(Registration {
                registered_at: cx.now,
                healthy_after_ms,
            });
        }
    }
    Ok(Outcome::Done)
}

/// DeregisterTargets: each target drains for the group's deregistration
/// delay (at once when no listener forwards to the group). An instance
/// that does not exist is `InvalidTarget`; one not registered (or
/// draining already) is left as it is.
pub(crate) fn deregister_targets(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    target_group: &TargetGroupName,
    ids: &[InstanceId],
) -> Result<Outcome, CloudError> {
    let g = find_target_group(w, cx, e, target_group.as_str())?;
    let unknown: Vec<&str> = ids
        .iter()
        .filter(|id| w.instance(id, cx.now).is_none())
        .map(|id| id.as_str())
        .collect();
    if !unknown.is_empty() {
        return Err(e.invalid(
            "InvalidTarget",
            format!(
                "The following targets are not valid: {}",
                unknown.join(", ")
            ),
        ));
    }
    let drain_ms = if w.group_balancer(g).is_some() {
        g.drain_ms
    } else {
        0
    };
    let until = after(cx.now, Duration::from_millis(drain_ms));
    if let Some(g) = w.target_group_mut(cx.region, target_group.as_str()) {
        for id in ids {
            if g.targets.remove(id).is_some() {
                g.draining.insert(
                    id.clone(),
                    Drain {
                        since: cx.now,
                        until,
                        by_termination: false,
                    },
                );
            }
        }
    }
    Ok(Outcome::Done)
}

/// An elbv2 balancer the caller can see, or `LoadBalancerNotFound`.
pub(crate) fn find_balancer_v2<'w>(
    w: &'w World,
    cx: &Ctx<'_>,
    e: &Errs,
    name: &str,
) -> Result<&'w BalancerV2, CloudError> {
    w.balancer_v2(cx.region, name)
        .filter(|b| cx.sees(b.created_at))
        .ok_or_else(|| {
            e.not_found(
                "LoadBalancerNotFound",
                format!("Load balancers '[{name}]' not found"),
            )
        })
}

/// A target group the caller can see, or `TargetGroupNotFound`.
pub(crate) fn find_target_group<'w>(
    w: &'w World,
    cx: &Ctx<'_>,
    e: &Errs,
    name: &str,
) -> Result<&'w TargetGroup, CloudError> {
    w.target_group(cx.region, name)
        .filter(|g| cx.sees(g.created_at))
        .ok_or_else(|| {
            e.not_found(
                "TargetGroupNotFound",
                format!("Target groups '[{name}]' not found"),
            )
        })
}

/// `secs` of the real region in the local cloud's time: scaled by the
/// `health` delay factor, in milliseconds.
fn scaled_ms(cx: &Ctx<'_>, secs: u32) -> u64 {
    let ms = f64::from(secs) * cx.delays.health.max(0.0) * 1000.0;
    ms.min(u64::MAX as f64) as u64
}

/// The protocols a target group may speak.
fn target_protocols() -> [ListenerProtocol; 6] {
    use ListenerProtocol::*;
    [Http, Https, Tcp, Tls, Udp, TcpUdp]
}

/// An elbv2 balancer's or target group's name: 1 to 32 letters, digits
/// and hyphens, not starting or ending with a hyphen.
fn check_name(name: &str, what: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= NAME_MAX
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} name '{name}' must be 1 to {NAME_MAX} letters, digits and hyphens, not starting or ending with a hyphen."
        ))
    }
}

/// A target group's health check, by CreateTargetGroup's ranges and
/// combinations: interval 5–300 s, timeout 2–120 s and below the
/// interval, thresholds 2–10; the protocol HTTP or HTTPS for HTTP(S)
/// groups (an application balancer's), TCP, HTTP or HTTPS for the others;
/// a path (starting with `/`, at most 1024 characters) and a matcher
/// (codes 200–499 for HTTP(S) groups, 200–599 for the others) only with
/// HTTP and HTTPS checks; the port 1–65535 or the traffic port.
pub(crate) fn check_health_check(
    group: ListenerProtocol,
    h: &TargetHealthCheck,
) -> Result<(), String> {
    use ListenerProtocol::*;
    let kind = if matches!(group, Http | Https) {
        BalancerType::Application
    } else {
        BalancerType::Network
    };
    if !kind.health_protocols().contains(&h.protocol) {
        return Err(format!(
            "Health check protocol {} is not supported for {} target groups.",
            h.protocol.as_str(),
            group.as_str()
        ));
    }
    let within = |(lo, hi): (u32, u32), v: u32| (lo..=hi).contains(&v);
    if !within(ranges::INTERVAL, h.interval_secs) {
        return Err(format!(
            "Health check interval {}s is not within {} to {}s.",
            h.interval_secs,
            ranges::INTERVAL.0,
            ranges::INTERVAL.1
        ));
    }
    if !within(ranges::TIMEOUT, h.timeout_secs) || h.timeout_secs >= h.interval_secs {
        return Err(format!(
            "Health check timeout {}s must be within {} to {}s and smaller than the interval ({}s).",
            h.timeout_secs,
            ranges::TIMEOUT.0,
            ranges::TIMEOUT.1,
            h.interval_secs
        ));
    }
    for (what, n) in [
        ("healthy", h.healthy_threshold),
        ("unhealthy", h.unhealthy_threshold),
    ] {
        if !within(ranges::THRESHOLD, n) {
            return Err(format!(
                "The {what} threshold count {n} is not within {} to {}.",
                ranges::THRESHOLD.0,
                ranges::THRESHOLD.1
            ));
        }
    }
    if h.port == Some(0) {
        return Err("Health check port 0 is not within 1 to 65535.".to_owned());
    }
    let http = matches!(h.protocol, Http | Https);
    if let Some(p) = &h.path {
        if !http {
            return Err(format!(
                "A {} health check takes no path.",
                h.protocol.as_str()
            ));
        }
        if !p.starts_with('/') || p.len() > ranges::PATH_LEN {
            return Err(format!(
                "Health check path '{p}' must start with '/' and be at most {} characters.",
                ranges::PATH_LEN
            ));
        }
    }
    if let Some(m) = &h.matcher {
        if !http {
            return Err(format!(
                "Custom health check matchers are not supported for health checks with the {} protocol.",
                h.protocol.as_str()
            ));
        }
        check_matcher(m, kind.matcher_range())?;
    }
    Ok(())
}

/// A matcher: codes (`200`), lists (`200,202`) or ranges (`200-299`),
/// all within `range`.
fn check_matcher(m: &str, (lo, hi): (u16, u16)) -> Result<(), String> {
    let code = |s: &str| s.parse::<u16>().ok().filter(|c| (lo..=hi).contains(c));
    let ok = !m.is_empty()
        && m.split(',').all(|part| match part.split_once('-') {
            Some((a, b)) => matches!((code(a), code(b)), (Some(a), Some(b)) if a <= b),
            None => code(part).is_some(),
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Health check matcher '{m}' must be HTTP codes within {lo} to {hi} (200, 200,202 or 200-299)."
        ))
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(protocol: ListenerProtocol) -> TargetHealthCheck {
        TargetHealthCheck {
            protocol,
            port: None,
            path: Some("/".to_owned()),
            matcher: Some("200-399".to_owned()),
            interval_secs: 30,
            timeout_secs: 5,
            healthy_threshold: 3,
            unhealthy_threshold: 3,
        }
    }

    #[test]
    fn health_checks() {
        use ListenerProtocol::*;
        assert!(check_health_check(Http, &hc(Http)).is_ok());
        assert!(check_health_check(Http, &hc(Tcp)).is_err());
        let tcp = TargetHealthCheck {
            path: None,
            matcher: None,
            ..hc(Tcp)
        };
        assert!(check_health_check(Tcp, &tcp).is_ok());
        assert!(check_health_check(Tcp, &hc(Tcp)).is_err(), "no path on TCP");
        let slow = TargetHealthCheck {
            timeout_secs: 30,
            ..hc(Http)
        };
        assert!(check_health_check(Http, &slow).is_err());
        let m = |s: &str| TargetHealthCheck {
            matcher: Some(s.to_owned()),
            ..hc(Http)
        };
        assert!(check_health_check(Http, &m("200,202")).is_ok());
        assert!(check_health_check(Http, &m("500")).is_err());
        assert!(check_health_check(Udp, &m("500")).is_ok());
        assert!(check_health_check(Http, &m("300-200")).is_err());
    }

    #[test]
    fn listener_protocols_forward() {
        use ListenerProtocol::*;
        assert!(forwards_to(BalancerType::Application, Https, Http));
        assert!(!forwards_to(BalancerType::Application, Http, Tcp));
        assert!(forwards_to(BalancerType::Network, Tls, Tcp));
        assert!(!forwards_to(BalancerType::Network, Udp, Tcp));
    }
}
