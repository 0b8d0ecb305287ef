//! EC2 security groups and their inbound rules. A group cannot be deleted
//! while an instance or another group's rule uses it.

use crate::cloud::local::ops::tags::check_tags;
use crate::cloud::local::ops::{Ctx, Errs};
use crate::cloud::local::world::{Group, World};
use crate::cloud::{CloudError, Outcome};
use converge_core::desired::{Protocol, Tags};
use converge_core::ids::{GroupId, VpcId};
use converge_core::observed::{CloudRule, CloudSource};
use std::net::Ipv4Addr;

/// The most inbound rules a security group may hold, as in AWS.
const MAX_RULES: usize = 60;

pub(crate) fn create_group(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    name: &str,
    vpc: &VpcId,
    description: &str,
    tags: &Tags,
) -> Result<Outcome, CloudError> {
    if !w.vpc_exists(cx.region, vpc) {
        return Err(e.not_found(
            "InvalidVpcID.NotFound",
            format!("The vpc ID '{vpc}' does not exist"),
        ));
    }
    if name.is_empty() || name.len() > 255 || !name.is_ascii() {
        return Err(e.invalid(
            "InvalidParameterValue",
            format!("Invalid security group name '{name}': 1 to 255 ASCII characters."),
        ));
    }
    if name.starts_with("sg-") {
        return Err(e.invalid(
            "InvalidParameterValue",
            format!("Invalid security group name '{name}': names cannot start with sg-."),
        ));
    }
    if description.is_empty() {
        return Err(e.invalid(
            "MissingParameter",
            "The request must contain the parameter groupDescription.",
        ));
    }
    if description.len() > 255 || !description.is_ascii() {
        return Err(e.invalid(
            "InvalidParameterValue",
            "Invalid security group description: up to 255 ASCII characters.",
        ));
    }
    check_tags(e, tags)?;
    // Group names are unique within a VPC.
    if w.groups
        .values()
        .any(|g| g.region == cx.region && g.name == *name && w.group_vpc(g).as_ref() == Some(vpc))
    {
        return Err(e.exists(
            "InvalidGroup.Duplicate",
            format!("The security group '{name}' already exists."),
        ));
    }
    let id: GroupId = e.id(format!("sg-{}", w.next_hex(17)))?;
    w.groups.insert(
        id.clone(),
        Group {
            id: id.clone(),
            region: cx.region.to_owned(),
            vpc: Some(vpc.clone()),
            name: name.to_owned(),
            description: description.to_owned(),
            rules: Vec::new(),
            tags: tags.clone(),
            created_at: cx.now,
        },
    );
    Ok(Outcome::Group(id))
}

pub(crate) fn authorize_ingress(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    group: &GroupId,
    rules: &[CloudRule],
) -> Result<Outcome, CloudError> {
    let g = find_group(w, cx, e, group)?;
    let mut new: Vec<CloudRule> = Vec::new();
    for r in rules {
        check_rule(w, cx, e, r)?;
        // A rule's source group must be in the group's own VPC.
        if let CloudSource::Group(src) = &r.source
            && let Ok(sg) = find_group(w, cx, e, src)
            && w.group_vpc(sg) != w.group_vpc(g)
        {
            return Err(e.invalid(
                "InvalidGroup.NotFound",
                format!("You have specified two resources that belong to different networks: {src} and {group}."),
            ));
        }
        if g.rules.contains(r) {
            return Err(e.exists(
                "InvalidPermission.Duplicate",
                format!(
                    "the specified rule \"{}\" already exists in {group}",
                    show_rule(r)
                ),
            ));
        }
        if !new.contains(r) {
            new.push(r.clone());
        }
    }
    if g.rules.len() + new.len() > MAX_RULES {
        return Err(e.invalid(
            "RulesPerSecurityGroupLimitExceeded",
            format!(
                "The maximum number of rules per security group ({MAX_RULES}) has been reached."
            ),
        ));
    }
    if let Some(g) = w.groups.get_mut(group) {
        g.rules.extend(new);
    }
    Ok(Outcome::Done)
}

pub(crate) fn revoke_ingress(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    group: &GroupId,
    rules: &[CloudRule],
) -> Result<Outcome, CloudError> {
    find_group(w, cx, e, group)?;
    // Rules that are not there are ignored (EC2 lists them as
    // unknown permissions rather than failing).
    if let Some(g) = w.groups.get_mut(group) {
        g.rules.retain(|r| !rules.contains(r));
    }
    Ok(Outcome::Done)
}

pub(crate) fn delete_group(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    group: &GroupId,
) -> Result<Outcome, CloudError> {
    find_group(w, cx, e, group)?;
    if let Some(i) = w
        .instances
        .values()
        .find(|i| !i.is_gone(cx.now) && !i.purged(cx.now) && i.groups.contains(group))
    {
        return Err(e.state(
            "DependencyViolation",
            format!("resource {group} has a dependent object: instance {}", i.id),
        ));
    }
    let balancer = w
        .balancers
        .iter()
        .filter(|b| b.groups.contains(group))
        .map(|b| b.name.as_str())
        .chain(
            w.balancers_v2
                .iter()
                .filter(|b| b.groups.contains(group))
                .map(|b| b.name.as_str()),
        )
        .next();
    if let Some(b) = balancer {
        return Err(e.state(
            "DependencyViolation",
            format!("resource {group} has a dependent object: load balancer {b}"),
        ));
    }
    if let Some(other) = w.groups.values().find(|o| {
        o.id != *group
            && o.rules
                .iter()
                .any(|r| r.source == CloudSource::Group(group.clone()))
    }) {
        return Err(e.state(
            "DependencyViolation",
            format!(
                "resource {group} has a dependent object: a rule of {} ({})",
                other.id, other.name
            ),
        ));
    }
    w.groups.remove(group);
    Ok(Outcome::Done)
}

pub(crate) fn find_group<'w>(
    w: &'w World,
    cx: &Ctx<'_>,
    e: &Errs,
    id: &GroupId,
) -> Result<&'w Group, CloudError> {
    w.groups
        .get(id)
        .filter(|g| g.region == cx.region && cx.sees(g.created_at))
        .ok_or_else(|| {
            e.not_found(
                "InvalidGroup.NotFound",
                format!("The security group '{id}' does not exist"),
            )
        })
}

fn check_rule(w: &World, cx: &Ctx<'_>, e: &Errs, r: &CloudRule) -> Result<(), CloudError> {
    match (r.protocol, r.ports) {
        (Protocol::Tcp | Protocol::Udp, None) => {
            return Err(e.invalid(
                "InvalidParameterValue",
                "Invalid value for portRange. Must specify both from and to ports with TCP/UDP.",
            ));
        }
        (_, Some((from, to))) if from > to => {
            return Err(e.invalid(
                "InvalidParameterValue",
                format!("Invalid port range {from}-{to}: the first port is above the last."),
            ));
        }
        _ => {}
    }
    match &r.source {
        CloudSource::Cidr(c) => {
            if !valid_cidr(c) {
                return Err(e.invalid(
                    "InvalidParameterValue",
                    format!("CIDR block {c} is malformed"),
                ));
            }
        }
        CloudSource::Group(g) => {
            find_group(w, cx, e, g)?;
        }
    }
    Ok(())
}

fn valid_cidr(c: &str) -> bool {
    let Some((ip, len)) = c.split_once('/') else {
        return false;
    };
    ip.parse::<Ipv4Addr>().is_ok()
        && len.parse::<u8>().is_ok_and(|l| l <= 32)
        && !len.starts_with('+')
}

fn show_rule(r: &CloudRule) -> String {
    let ports = match r.ports {
        Some((a, b)) if a == b => format!(" {a}"),
        Some((a, b)) => format!(" {a}-{b}"),
        None => String::new(),
    };
    let src = match &r.source {
        CloudSource::Cidr(c) => c.clone(),
        CloudSource::Group(g) => g.to_string(),
    };
    format!("{}{ports} from {src}", r.protocol.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        assert!(valid_cidr("203.0.113.7/32"));
        assert!(valid_cidr("0.0.0.0/0"));
        assert!(!valid_cidr("203.0.113.7"));
        assert!(!valid_cidr("203.0.113.7/33"));
        assert!(!valid_cidr("203.0.113/24"));
    }
}
