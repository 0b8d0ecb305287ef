//! ELB: classic load balancers, their listeners (with the certificates of
//! HTTPS and SSL ones), zones, security groups, health check, attributes
//! and members. Members become InService only `interval ×
//! healthyThreshold` after they run; with connection draining on, a
//! deregistered member leaves DescribeInstanceHealth at once but drains
//! for the timeout (scaled by the `health` delay factor), which the world
//! records.

use super::acm::check_listener_certificate;
use super::ec2::{find_group, find_instance};
use super::tags::check_tags;
use super::{Ctx, Errs, check_zone, dedup};
use crate::cloud::local::world::{Balancer, Drain, Registration, World, after};
use crate::cloud::{CloudError, Outcome};
use converge_core::desired::{HealthCheck, Listener, Tags};
use converge_core::elb::{BalancerType, Scheme, ranges};
use converge_core::ids::{BalancerName, GroupId, InstanceId, SubnetId, VpcId, Zone};
use converge_core::observed::InstanceState;
use std::collections::BTreeMap;
use std::time::Duration;

/// A balancer's request, as `Op::CreateBalancer` carries it.
pub(crate) struct NewBalancer<'a> {
    pub name: &'a BalancerName,
    pub scheme: Scheme,
    pub zones: &'a [Zone],
    pub subnets: &'a [SubnetId],
    pub groups: &'a [GroupId],
    pub listeners: &'a [Listener],
    pub tags: &'a Tags,
}

pub(crate) fn create_balancer(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    n: &NewBalancer<'_>,
) -> Result<Outcome, CloudError> {
    let NewBalancer {
        name,
        scheme,
        zones,
        subnets,
        groups,
        listeners,
        tags,
    } = *n;
    check_balancer_name(name.as_str()).map_err(|m| e.invalid("ValidationError", m))?;
    if zones.is_empty() && subnets.is_empty() {
        return Err(e.invalid(
            "ValidationError",
            "A load balancer needs at least one availability zone or subnet.",
        ));
    }
    if !zones.is_empty() && !subnets.is_empty() {
        return Err(e.invalid(
            "ValidationError",
            "Specify either availability zones or subnets, not both.",
        ));
    }
    for z in zones {
        check_zone(cx, e, z)?;
    }
    let subnets = dedup(subnets);
    let zones = if subnets.is_empty() {
        zones.to_vec()
    } else {
        subnet_zones(w, cx, e, &subnets, None)?
    };
    if zones.is_empty() {
        return Err(e.invalid(
            "ValidationError",
            "A load balancer needs at least one availability zone or subnet.",
        ));
    }
    if listeners.is_empty() {
        return Err(e.invalid(
            "ValidationError",
            "A load balancer needs at least one listener.",
        ));
    }
    check_listeners(e, &[], listeners)?;
    for l in listeners {
        check_listener_certificate(w, cx, e, l)?;
    }
    let groups = dedup(groups);
    if !groups.is_empty() {
        if subnets.is_empty() {
            return Err(e.invalid(
                "InvalidConfigurationRequest",
                "Security groups are only supported for a load balancer in a VPC's subnets.",
            ));
        }
        let vpc = w.subnets.get(&subnets[0]).map(|s| s.vpc.clone());
        check_groups(w, cx, e, vpc.as_ref(), &groups)?;
    }
    check_tags(e, tags)?;
    let zones = dedup(&zones);
    if let Some(b) = w.balancer(cx.region, name.as_str()) {
        // CreateLoadBalancer is idempotent for the same settings.
        let same = sorted(b.zones.clone()) == sorted(zones.clone())
            && sorted(b.listeners.clone()) == sorted(listeners.to_vec())
            && b.scheme == scheme
            && sorted(b.groups.clone()) == sorted(groups.clone());
        if same {
            return Ok(Outcome::Balancer {
                dns_name: b.dns_name.clone(),
                zone_id: super::elbv2::zone_id(cx.region, BalancerType::Classic),
            });
        }
        return Err(e.exists(
            "DuplicateLoadBalancerName",
            format!("Load balancer name '{name}' already exists with other settings."),
        ));
    }
    let digits = w.next_chars(1, b"123456789") + &w.next_chars(9, b"0123456789");
    let internal = if scheme == Scheme::Internal {
        "internal-"
    } else {
        ""
    };
    let dns_name = format!(
        "{internal}{}-{digits}.{}.elb.amazonaws.com",
        name.as_str().to_ascii_lowercase(),
        cx.region
    );
    w.balancers.push(Balancer {
        name: name.to_string(),
        region: cx.region.to_owned(),
        dns_name: dns_name.clone(),
        zones,
        subnets,
        listeners: listeners.to_vec(),
        health_check: None,
        members: BTreeMap::new(),
        tags: tags.clone(),
        created_at: cx.now,
        scheme,
        groups,
        drain_secs: 0,
        cross_zone: false,
        draining: BTreeMap::new(),
    });
    Ok(Outcome::Balancer {
        dns_name,
        zone_id: super::elbv2::zone_id(cx.region, BalancerType::Classic),
    })
}

/// ModifyLoadBalancerAttributes: connection draining (a timeout of 1 to
/// 3600 s; 0 here turns it off) and cross-zone balancing.
pub(crate) fn modify_attributes(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    name: &BalancerName,
    drain_secs: u32,
    cross_zone: bool,
) -> Result<Outcome, CloudError> {
    find_balancer(w, cx, e, name.as_str())?;
    let (lo, hi) = ranges::CONNECTION_DRAINING;
    if drain_secs != 0 && !(lo..=hi).contains(&drain_secs) {
        return Err(e.invalid(
            "ValidationError",
            format!("Connection draining timeout {drain_secs}s is not within {lo} to {hi}s."),
        ));
    }
    if let Some(b) = w.balancer_mut(cx.region, name.as_str()) {
        b.drain_secs = drain_secs;
        b.cross_zone = cross_zone;
    }
    Ok(Outcome::Done)
}

/// ApplySecurityGroupsToLoadBalancer: only for a balancer in a VPC's
/// subnets; each group must exist there (`InvalidSecurityGroup`).
pub(crate) fn apply_groups(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    name: &BalancerName,
    groups: &[GroupId],
) -> Result<Outcome, CloudError> {
    let b = find_balancer(w, cx, e, name.as_str())?;
    if b.subnets.is_empty() {
        return Err(e.invalid(
            "InvalidConfigurationRequest",
            format!(
                "Load balancer '{name}' is not in a VPC's subnets: it takes no security groups."
            ),
        ));
    }
    if groups.is_empty() {
        return Err(e.invalid(
            "ValidationError",
            "ApplySecurityGroupsToLoadBalancer needs at least one security group.",
        ));
    }
    let groups = dedup(groups);
    check_groups(w, cx, e, balancer_vpc(w, b).as_ref(), &groups)?;
    if let Some(b) = w.balancer_mut(cx.region, name.as_str()) {
        b.groups = groups;
    }
    Ok(Outcome::Done)
}

/// Each group exists, in the balancer's VPC.
fn check_groups(
    w: &World,
    cx: &Ctx<'_>,
    e: &Errs,
    vpc: Option<&VpcId>,
    groups: &[GroupId],
) -> Result<(), CloudError> {
    for g in groups {
        let found = find_group(w, cx, e, g).map_err(|_| {
            e.not_found(
                "InvalidSecurityGroup",
                format!("Security group '{g}' does not exist"),
            )
        })?;
        if w.group_vpc(found).as_ref() != vpc {
            return Err(e.invalid(
                "InvalidSecurityGroup",
                format!("Security group '{g}' is not in the load balancer's VPC"),
            ));
        }
    }
    Ok(())
}

pub(crate) fn configure_health_check(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    name: &BalancerName,
    health_check: &HealthCheck,
) -> Result<Outcome, CloudError> {
    find_balancer(w, cx, e, name.as_str())?;
    check_health_check(health_check).map_err(|m| e.invalid("ValidationError", m))?;
    if let Some(b) = w.balancer_mut(cx.region, name.as_str()) {
        b.health_check = Some(health_check.clone());
    }
    Ok(Outcome::Done)
}

pub(crate) fn create_listeners(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    name: &BalancerName,
    listeners: &[Listener],
) -> Result<Outcome, CloudError> {
    let b = find_balancer(w, cx, e, name.as_str())?;
    check_listeners(e, &b.listeners, listeners)?;
    for l in listeners {
        check_listener_certificate(w, cx, e, l)?;
    }
    if let Some(b) = w.balancer_mut(cx.region, name.as_str()) {
        for l in listeners {
            if !b.listeners.contains(l) {
                b.listeners.push(l.clone());
            }
        }
    }
    Ok(Outcome::Done)
}

pub(crate) fn delete_listeners(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    name: &BalancerName,
    ports: &[u16],
) -> Result<Outcome, CloudError> {
    find_balancer(w, cx, e, name.as_str())?;
    if let Some(b) = w.balancer_mut(cx.region, name.as_str()) {
        b.listeners.retain(|l| !ports.contains(&l.port));
    }
    Ok(Outcome::Done)
}

pub(crate) fn enable_zones(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    name: &BalancerName,
    zones: &[Zone],
) -> Result<Outcome, CloudError> {
    let b = find_balancer(w, cx, e, name.as_str())?;
    if !b.subnets.is_empty() {
        return Err(e.invalid(
            "InvalidConfigurationRequest",
            format!("Load balancer '{name}' is in a VPC: attach it to subnets instead of enabling zones."),
        ));
    }
    for z in zones {
        check_zone(cx, e, z)?;
    }
    if let Some(b) = w.balancer_mut(cx.region, name.as_str()) {
        for z in zones {
            if !b.zones.contains(z) {
                b.zones.push(z.clone());
            }
        }
    }
    Ok(Outcome::Done)
}

pub(crate) fn disable_zones(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    name: &BalancerName,
    zones: &[Zone],
) -> Result<Outcome, CloudError> {
    let b = find_balancer(w, cx, e, name.as_str())?;
    if b.zones.iter().all(|z| zones.contains(z)) {
        return Err(e.invalid(
            "ValidationError",
            format!("Cannot disable every availability zone of load balancer '{name}'."),
        ));
    }
    if let Some(b) = w.balancer_mut(cx.region, name.as_str()) {
        b.zones.retain(|z| !zones.contains(z));
    }
    Ok(Outcome::Done)
}

/// The VPC a balancer is in: its subnets', or the default VPC.
fn balancer_vpc(w: &World, b: &Balancer) -> Option<VpcId> {
    match b.subnets.first() {
        Some(s) => w.subnets.get(s).map(|s| s.vpc.clone()),
        None => w.default_vpc(&b.region),
    }
}

/// The zones of a balancer's subnets: each must exist, all in one VPC
/// (`vpc`, when the balancer has one already), at most one per zone.
fn subnet_zones(
    w: &World,
    cx: &Ctx<'_>,
    e: &Errs,
    subnets: &[SubnetId],
    vpc: Option<VpcId>,
) -> Result<Vec<Zone>, CloudError> {
    let mut vpc = vpc;
    let mut zones: Vec<Zone> = Vec::new();
    for id in subnets {
        let s = super::ec2::find_subnet(w, cx, e, id)?;
        if vpc.as_ref().is_some_and(|v| *v != s.vpc) {
            return Err(e.invalid(
                "InvalidConfigurationRequest",
                format!("Subnet {id} is in another VPC than the load balancer's other subnets."),
            ));
        }
        vpc = Some(s.vpc.clone());
        if zones.contains(&s.zone) {
            return Err(e.invalid(
                "InvalidConfigurationRequest",
                format!(
                    "A load balancer can have only one subnet per availability zone ({}).",
                    s.zone
                ),
            ));
        }
        zones.push(s.zone.clone());
    }
    Ok(zones)
}

/// AttachLoadBalancerToSubnets: the balancer serves in these subnets too.
pub(crate) fn attach_subnets(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    name: &BalancerName,
    subnets: &[SubnetId],
) -> Result<Outcome, CloudError> {
    let b = find_balancer(w, cx, e, name.as_str())?;
    if b.subnets.is_empty() {
        return Err(e.invalid(
            "InvalidConfigurationRequest",
            format!("Load balancer '{name}' is not in a VPC's subnets: enable zones instead."),
        ));
    }
    let mut all = b.subnets.clone();
    for s in subnets {
        if !all.contains(s) {
            all.push(s.clone());
        }
    }
    let vpc = balancer_vpc(w, b);
    let zones = subnet_zones(w, cx, e, &all, vpc)?;
    if let Some(b) = w.balancer_mut(cx.region, name.as_str()) {
        b.subnets = all;
        b.zones = zones;
    }
    Ok(Outcome::Done)
}

/// DetachLoadBalancerFromSubnets: never its last subnet.
pub(crate) fn detach_subnets(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    name: &BalancerName,
    subnets: &[SubnetId],
) -> Result<Outcome, CloudError> {
    let b = find_balancer(w, cx, e, name.as_str())?;
    let left: Vec<SubnetId> = b
        .subnets
        .iter()
        .filter(|s| !subnets.contains(s))
        .cloned()
        .collect();
    if left.is_empty() {
        return Err(e.invalid(
            "InvalidConfigurationRequest",
            format!("Cannot detach every subnet of load balancer '{name}'."),
        ));
    }
    let zones: Vec<Zone> = left
        .iter()
        .filter_map(|s| w.subnets.get(s).map(|s| s.zone.clone()))
        .collect();
    if let Some(b) = w.balancer_mut(cx.region, name.as_str()) {
        b.subnets = left;
        b.zones = zones;
    }
    Ok(Outcome::Done)
}

pub(crate) fn register_instances(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    name: &BalancerName,
    ids: &[InstanceId],
) -> Result<Outcome, CloudError> {
    let b = find_balancer(w, cx, e, name.as_str())?;
    let vpc = balancer_vpc(w, b);
    for id in ids {
        let i = find_instance(w, cx, e, id).map_err(|_| {
            e.not_found("InvalidInstance", format!("EC2 instance {id} is not found"))
        })?;
        if w.instance_vpc(i) != vpc {
            return Err(e.invalid(
                "InvalidInstance",
                format!("EC2 instance {id} is not in the same VPC as load balancer '{name}'"),
            ));
        }
        match i.state(cx.now) {
            InstanceState::Running => {}
            InstanceState::Pending => {
                return Err(e.state(
                    "InvalidInstance",
                    format!("EC2 instance {id} is not in a valid state (pending)"),
                ));
            }
            other => {
                return Err(e.stale(
                    "InvalidInstance",
                    format!(
                        "EC2 instance {id} is not in a valid state ({})",
                        other.as_str()
                    ),
                ));
            }
        }
    }
    let hc = b.health_check.clone().unwrap_or_else(default_health_check);
    let secs =
        f64::from(hc.interval_secs) * f64::from(hc.healthy_threshold) * cx.delays.health.max(0.0);
    let healthy_after_ms = (secs * 1000.0).min(u64::MAX as f64) as u64;
    if let Some(b) = w.balancer_mut(cx.region, name.as_str()) {
        for id in ids {
            b.draining.remove(id);
            b.members.entry(id.clone()).or_insert(Registration {
                registered_at: cx.now,
                healthy_after_ms,
            });
        }
    }
    Ok(Outcome::Done)
}

pub(crate) fn deregister_instances(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    name: &BalancerName,
    ids: &[InstanceId],
) -> Result<Outcome, CloudError> {
    find_balancer(w, cx, e, name.as_str())?;
    let unknown: Vec<&str> = ids
        .iter()
        .filter(|id| w.instance(id, cx.now).is_none())
        .map(|id| id.as_str())
        .collect();
    if !unknown.is_empty() {
        return Err(e.not_found(
            "InvalidInstance",
            format!("EC2 instance(s) {} not found", unknown.join(", ")),
        ));
    }
    let drain_ms = f64::from(b_drain_secs(w, cx, name)) * cx.delays.health.max(0.0) * 1000.0;
    let until = after(
        cx.now,
        Duration::from_millis(drain_ms.min(u64::MAX as f64) as u64),
    );
    if let Some(b) = w.balancer_mut(cx.region, name.as_str()) {
        for id in ids {
            // With connection draining on, the instance leaves the members
            // at once but finishes its requests until `until`.
            if b.members.remove(id).is_some() && b.drain_secs > 0 {
                b.draining.insert(
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

/// A classic balancer's draining timeout (0: off, or no such balancer).
fn b_drain_secs(w: &World, cx: &Ctx<'_>, name: &BalancerName) -> u32 {
    w.balancer(cx.region, name.as_str())
        .map_or(0, |b| b.drain_secs)
}

pub(crate) fn delete_balancer(
    w: &mut World,
    cx: &Ctx<'_>,
    name: &BalancerName,
) -> Result<Outcome, CloudError> {
    // As in ELB, deleting a balancer that does not exist succeeds.
    w.balancers
        .retain(|b| !(b.region == cx.region && b.name == *name));
    Ok(Outcome::Done)
}

pub(crate) fn find_balancer<'w>(
    w: &'w World,
    cx: &Ctx<'_>,
    e: &Errs,
    name: &str,
) -> Result<&'w Balancer, CloudError> {
    w.balancer(cx.region, name)
        .filter(|b| cx.sees(b.created_at))
        .ok_or_else(|| {
            e.not_found(
                "LoadBalancerNotFound",
                format!("There is no ACTIVE Load Balancer named '{name}'"),
            )
        })
}

fn check_balancer_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Load balancer name '{name}' must be 1 to 32 letters, digits and hyphens, not starting or ending with a hyphen."
        ))
    }
}

fn check_listeners(e: &Errs, existing: &[Listener], new: &[Listener]) -> Result<(), CloudError> {
    let mut seen: BTreeMap<u16, &Listener> = existing.iter().map(|l| (l.port, l)).collect();
    for l in new {
        let port_ok = matches!(l.port, 25 | 80 | 443 | 465 | 587 | 1024..=65535);
        if !port_ok {
            return Err(e.invalid(
                "ValidationError",
                format!(
                    "Invalid load balancer port {}: use 25, 80, 443, 465, 587 or 1024 to 65535.",
                    l.port
                ),
            ));
        }
        if l.instance_port == 0 {
            return Err(e.invalid("ValidationError", "Invalid instance port 0."));
        }
        match seen.get(&l.port) {
            Some(other) if *other != l => {
                return Err(e.exists(
                    "DuplicateListener",
                    format!(
                        "A listener already exists on port {} with other settings.",
                        l.port
                    ),
                ));
            }
            _ => {
                seen.insert(l.port, l);
            }
        }
    }
    Ok(())
}

fn check_health_check(h: &HealthCheck) -> Result<(), String> {
    if !valid_target(&h.target) {
        return Err(format!(
            "Invalid health check target '{}': expected PROTOCOL:PORT, with a path for HTTP and HTTPS (HTTP:80/).",
            h.target
        ));
    }
    if !(5..=300).contains(&h.interval_secs) {
        return Err(format!(
            "Interval {}s is not within 5 to 300s.",
            h.interval_secs
        ));
    }
    if !(2..=60).contains(&h.timeout_secs) || h.timeout_secs >= h.interval_secs {
        return Err(format!(
            "Timeout {}s must be within 2 to 60s and below the interval ({}s).",
            h.timeout_secs, h.interval_secs
        ));
    }
    for (what, n) in [
        ("healthy", h.healthy_threshold),
        ("unhealthy", h.unhealthy_threshold),
    ] {
        if !(2..=10).contains(&n) {
            return Err(format!("The {what} threshold {n} is not within 2 to 10."));
        }
    }
    Ok(())
}

fn valid_target(t: &str) -> bool {
    let Some((proto, rest)) = t.split_once(':') else {
        return false;
    };
    let (port, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0);
    port_ok
        && match proto {
            "HTTP" | "HTTPS" => path.is_some(),
            "TCP" | "SSL" => path.is_none(),
            _ => false,
        }
}

/// ELB's health check when none is configured.
fn default_health_check() -> HealthCheck {
    HealthCheck {
        target: "TCP:80".to_owned(),
        interval_secs: 30,
        timeout_secs: 5,
        healthy_threshold: 10,
        unhealthy_threshold: 2,
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_check_targets() {
        assert!(valid_target("HTTP:80/"));
        assert!(valid_target("HTTPS:443/health"));
        assert!(valid_target("TCP:5432"));
        assert!(!valid_target("TCP:5432/"));
        assert!(!valid_target("HTTP:80"));
        assert!(!valid_target("UDP:53"));
        assert!(!valid_target("HTTP:0/"));
    }
}
