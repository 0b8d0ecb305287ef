//! EC2 instances: launched pending, running after a boot delay, with an ID,
//! a private address in 10.0.0.0/16 and a launch time; client tokens make
//! a launch idempotent.

use super::instance_options::{check_launch_options, new_association};
use super::{find_group, find_key_pair, find_subnet};
use crate::cloud::local::ops::tags::check_tags;
use crate::cloud::local::ops::{Ctx, Errs, check_zone, dedup};
use crate::cloud::local::world::{Instance, RunToken, Termination, World};
use crate::cloud::{CloudError, Launch, Launched, Outcome};
use converge_core::ids::{GroupId, ImageId, InstanceId};
use converge_core::net::{Ipv4Cidr, reserved_address};
use std::collections::HashSet;
use std::net::Ipv4Addr;

/// The largest user data, in bytes, as in EC2.
const MAX_USER_DATA: usize = 16 * 1024;

pub(crate) fn run_instances(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    l: &Launch<'_>,
) -> Result<Outcome, CloudError> {
    let Launch {
        image,
        instance_type,
        key_name,
        groups,
        user_data,
        zone,
        subnet,
        public_ip,
        private_ip,
        count,
        tags,
        client_token,
        instance_profile,
        metadata,
        root_volume,
    } = *l;
    let mut request = format!(
        "{image}|{instance_type}|{key_name:?}|{groups:?}|{zone}|{count}|{}|{instance_profile:?}|{metadata:?}|{root_volume:?}",
        hex::encode(sha2_digest(user_data.as_bytes()))
    );
    if subnet.is_some() || public_ip.is_some() {
        request.push_str(&format!("|{subnet:?}|{public_ip:?}"));
    }
    if let Some(a) = private_ip {
        request.push_str(&format!("|{a}"));
    }
    let token_key = format!("{}/{client_token}", cx.region);
    if !client_token.is_empty()
        && let Some(t) = w.run_tokens.get(&token_key)
    {
        // The same token answers the same instances, visible or not.
        if t.request != request {
            return Err(e.invalid(
                "IdempotentParameterMismatch",
                format!("The client token '{client_token}' was used with different parameters."),
            ));
        }
        return Ok(Outcome::Instances(launched(w, &t.ids)));
    }
    check_launch(w, cx, e, l)?;
    let block = subnet.and_then(|s| w.subnets.get(s)).map(|s| s.cidr);
    // In a subnet, as in AWS, a terminated instance's address is free
    // again (a small subnet rolls through its instances).
    let mut used: HashSet<Ipv4Addr> = w
        .instances
        .values()
        .filter(|i| block.is_none() || !i.is_gone(cx.now))
        .map(|i| i.private_ip)
        .collect();
    if let Some(a) = private_ip {
        check_private_ip(e, a, count, block, &used)?;
    }
    let room = match block {
        Some(b) => subnet_free(b, &used),
        None => ADDRESSES.saturating_sub(used.len()),
    };
    if count as usize > room {
        let within = block.map_or_else(|| "10.0.0.0/16".to_owned(), |b| b.to_string());
        return Err(e.invalid(
            "InsufficientFreeAddressesInSubnet",
            format!("There are not enough free addresses in {within} to satisfy the request."),
        ));
    }
    // The subnet's setting unless the launch says otherwise; the default
    // subnets of a default VPC give public addresses.
    let public = public_ip.unwrap_or_else(|| {
        subnet
            .and_then(|s| w.subnets.get(s))
            .is_none_or(|s| s.map_public_ip)
    });
    // Checked above, so only a bug in that check could fail here.
    let image_id: ImageId = e.id(image.to_owned())?;
    let unique_groups = dedup(groups);
    let mut ids = Vec::new();
    for _ in 0..count {
        let id: InstanceId = e.id(format!("i-{}", w.next_hex(17)))?;
        let start = w.next_u64();
        let ip = match (private_ip, block) {
            (Some(a), _) => Some(a),
            (None, Some(b)) => subnet_address(b, &used),
            (None, None) => Some(free_address(start, &used)),
        };
        let Some(ip) = ip else {
            return Err(e.invalid(
                "InsufficientFreeAddressesInSubnet",
                "There are not enough free addresses in the subnet to satisfy the request.",
            ));
        };
        used.insert(ip);
        let public_addr = if public {
            let n = w.next_u64();
            Some(Ipv4Addr::new(
                198,
                51,
                (n >> 8) as u8 % 100,
                (n as u8).max(1),
            ))
        } else {
            None
        };
        let profile = match instance_profile {
            Some(p) => Some(new_association(w, e, p)?),
            None => None,
        };
        w.instances.insert(
            id.clone(),
            Instance {
                id: id.clone(),
                zone: zone.clone(),
                image: image_id.clone(),
                instance_type: instance_type.to_owned(),
                key_name: key_name.map(str::to_owned),
                groups: unique_groups.clone(),
                user_data: user_data.to_owned(),
                tags: tags.clone(),
                private_ip: ip,
                subnet: subnet.cloned(),
                public_ip: public_addr,
                launched_at: cx.now,
                running_at: cx.later(cx.delays.boot),
                termination: None,
                profile,
                metadata,
                root_volume: root_volume.map(|r| r.volume),
            },
        );
        ids.push(id);
    }
    if !client_token.is_empty() {
        w.run_tokens.insert(
            token_key,
            RunToken {
                request,
                ids: ids.clone(),
            },
        );
    }
    Ok(Outcome::Instances(launched(w, &ids)))
}

/// The instances as RunInstances answers them: IDs and private addresses.
fn launched(w: &World, ids: &[InstanceId]) -> Vec<Launched> {
    ids.iter()
        .map(|id| Launched {
            id: id.clone(),
            private_ip: w.instances.get(id).map(|i| i.private_ip),
        })
        .collect()
}

/// A launch's own private address, as EC2 checks it: one instance only,
/// in a subnet, inside its block, not one of the five AWS reserves, and
/// held by no instance that is not terminated (a shutting-down one still
/// holds its address):
/// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_RunInstances.html>
/// ("You cannot specify this option if you're launching more than one
/// instance"), `InvalidIPAddress.InUse` ("Address … is in use").
fn check_private_ip(
    e: &Errs,
    a: Ipv4Addr,
    count: u32,
    block: Option<Ipv4Cidr>,
    used: &HashSet<Ipv4Addr>,
) -> Result<(), CloudError> {
    if count != 1 {
        return Err(e.invalid(
            "InvalidParameterCombination",
            "Cannot specify a private IP address when launching more than one instance.",
        ));
    }
    let Some(b) = block else {
        return Err(e.invalid(
            "InvalidParameterCombination",
            "A private IP address needs a subnet (SubnetId).",
        ));
    };
    if !b.contains_addr(a) || reserved_address(b, a) {
        return Err(e.invalid(
            "InvalidParameterValue",
            format!(
                "Address {a} does not fall within the subnet's address range or is reserved ({b})."
            ),
        ));
    }
    if used.contains(&a) {
        // Not ready rather than invalid: the holder may be on its way out
        // (shutting down), and then the same launch succeeds soon.
        return Err(e.state("InvalidIPAddress.InUse", format!("Address {a} is in use.")));
    }
    Ok(())
}

/// The checks of a launch that its client token has not answered already.
fn check_launch(w: &World, cx: &Ctx<'_>, e: &Errs, l: &Launch<'_>) -> Result<(), CloudError> {
    check_image(l.image).map_err(|m| e.invalid("InvalidAMIID.Malformed", m))?;
    check_instance_type(l.instance_type).map_err(|m| e.invalid("InvalidParameterValue", m))?;
    check_zone(cx, e, l.zone)?;
    if l.count == 0 {
        return Err(e.invalid(
            "InvalidParameterValue",
            "Invalid value '0' for MinCount: must be at least 1.",
        ));
    }
    if let Some(k) = l.key_name {
        find_key_pair(w, cx, e, k)?;
    }
    // The VPC the instances go in: the subnet's (in the launch's zone),
    // or the default VPC's default subnet of the zone.
    let vpc = match l.subnet {
        Some(id) => {
            let s = find_subnet(w, cx, e, id)?;
            if s.zone != *l.zone {
                return Err(e.invalid(
                    "InvalidParameterValue",
                    format!(
                        "Value ({}) for parameter availabilityZone is invalid. Subnet '{id}' is in the availability zone {}",
                        l.zone, s.zone
                    ),
                ));
            }
            s.vpc.clone()
        }
        None => w.default_vpc(cx.region).ok_or_else(|| {
            e.invalid(
                "VPCIdNotSpecified",
                "No default VPC for this user. GroupName is only supported for EC2-Classic and default VPC.",
            )
        })?,
    };
    for g in l.groups {
        let found = find_group(w, cx, e, g)?;
        if w.group_vpc(found).as_ref() != Some(&vpc) {
            return Err(e.invalid(
                "InvalidParameter",
                format!("Security group {g} and subnet belong to different networks."),
            ));
        }
    }
    if l.user_data.len() > MAX_USER_DATA {
        return Err(e.invalid(
            "InvalidParameterValue",
            format!("User data is limited to {MAX_USER_DATA} bytes."),
        ));
    }
    check_launch_options(w, e, l.instance_profile, l.metadata, l.root_volume)?;
    check_tags(e, l.tags)
}

pub(crate) fn terminate_instances(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    ids: &[InstanceId],
) -> Result<Outcome, CloudError> {
    // As in EC2, one unknown ID fails the whole call.
    let missing: Vec<&str> = ids
        .iter()
        .filter(|id| find_instance(w, cx, e, id).is_err())
        .map(|id| id.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(e.not_found(
            "InvalidInstanceID.NotFound",
            format!("The instance IDs '{}' do not exist", missing.join(", ")),
        ));
    }
    for id in ids {
        if let Some(i) = w.instances.get_mut(id)
            && i.termination.is_none()
        {
            i.termination = Some(Termination {
                requested_at: cx.now,
                terminated_at: cx.later(cx.delays.shutdown),
            });
        }
    }
    Ok(Outcome::Done)
}

pub(crate) fn set_instance_groups(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    instance: &InstanceId,
    groups: &[GroupId],
) -> Result<Outcome, CloudError> {
    let i = find_instance(w, cx, e, instance)?;
    if i.termination.is_some() {
        return Err(e.stale(
            "IncorrectInstanceState",
            format!(
                "The instance '{instance}' is not in a state from which its security groups can be changed ({}).",
                i.state(cx.now).as_str()
            ),
        ));
    }
    let vpc = w.instance_vpc(i);
    for g in groups {
        let found = find_group(w, cx, e, g)?;
        if found.region != i.region() {
            return Err(e.not_found(
                "InvalidGroup.NotFound",
                format!("The security group '{g}' does not exist in {}", i.region()),
            ));
        }
        if w.group_vpc(found) != vpc {
            return Err(e.invalid(
                "InvalidGroup.NotFound",
                format!("You have specified two resources that belong to different networks: {g} is not in the instance's VPC."),
            ));
        }
    }
    if let Some(i) = w.instances.get_mut(instance) {
        i.groups = dedup(groups);
    }
    Ok(Outcome::Done)
}

pub(crate) fn find_instance<'w>(
    w: &'w World,
    cx: &Ctx<'_>,
    e: &Errs,
    id: &InstanceId,
) -> Result<&'w Instance, CloudError> {
    w.instance(id, cx.now)
        .filter(|i| i.region() == cx.region && cx.sees(i.launched_at))
        .ok_or_else(|| {
            e.not_found(
                "InvalidInstanceID.NotFound",
                format!("The instance ID '{id}' does not exist"),
            )
        })
}

fn check_image(image: &str) -> Result<(), String> {
    let ok = image.strip_prefix("ami-").is_some_and(|h| {
        (h.len() == 8 || h.len() == 17) && h.chars().all(|c| c.is_ascii_hexdigit())
    });
    if ok {
        Ok(())
    } else {
        Err(format!("Invalid id: \"{image}\" (expecting \"ami-...\")"))
    }
}

fn check_instance_type(t: &str) -> Result<(), String> {
    let ok = t.split_once('.').is_some_and(|(family, size)| {
        !family.is_empty()
            && !size.is_empty()
            && family
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && size
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(format!("Invalid value '{t}' for InstanceType."))
    }
}

// ---- addresses ----------------------------------------------------------

/// Host addresses handed out: 10.0.0.0/16 without AWS's reserved first four
/// and the broadcast address, and without `.0`/`.255` hosts for clarity.
const ADDRESSES: usize = 256 * 254;

/// How many addresses of a subnet are free. AWS reserves five in every
/// subnet: the first four and the last
/// (<https://docs.aws.amazon.com/vpc/latest/userguide/subnet-sizing.html>).
fn subnet_free(block: Ipv4Cidr, used: &HashSet<Ipv4Addr>) -> usize {
    let usable = block.size().saturating_sub(5) as usize;
    let taken = used.iter().filter(|a| block.contains_addr(**a)).count();
    usable.saturating_sub(taken)
}

/// The lowest free address of a subnet that AWS does not reserve.
fn subnet_address(block: Ipv4Cidr, used: &HashSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    (0..block.size())
        .filter_map(|n| block.nth(n))
        .find(|a| !reserved_address(block, *a) && !used.contains(a))
}

/// The first free address at or after a pseudo-random starting point.
fn free_address(start: u64, used: &HashSet<Ipv4Addr>) -> Ipv4Addr {
    let n = ADDRESSES as u64;
    for k in 0..n {
        let slot = (start.wrapping_add(k)) % n;
        let (third, fourth) = ((slot / 254) as u8, (slot % 254) as u8 + 1);
        let ip = Ipv4Addr::new(10, 0, third, fourth);
        if third == 0 && fourth < 4 {
            continue;
        }
        if !used.contains(&ip) {
            return ip;
        }
    }
    // Unreachable: the caller checked there is room.
    Ipv4Addr::new(10, 0, 255, 254)
}

fn sha2_digest(data: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_and_instance_types() {
        assert!(check_image("ami-147f977d").is_ok());
        assert!(check_image("ami-0123456789abcdef0").is_ok());
        assert!(check_image("ami-147f977").is_err());
        assert!(check_image("img-147f977d").is_err());
        assert!(check_instance_type("m1.small").is_ok());
        assert!(check_instance_type("t3a.2xlarge").is_ok());
        assert!(check_instance_type("small").is_err());
        assert!(check_instance_type("M1.small").is_err());
    }

    #[test]
    fn addresses_skip_reserved_and_used_ones() {
        let mut used = HashSet::new();
        // Slot 0 would be 10.0.0.1, which AWS reserves.
        let first = free_address(0, &used);
        assert_eq!(first, Ipv4Addr::new(10, 0, 0, 4));
        used.insert(first);
        assert_eq!(free_address(0, &used), Ipv4Addr::new(10, 0, 0, 5));
        // Wraps around from the last slot.
        let last = free_address(ADDRESSES as u64 - 1, &used);
        assert_eq!(last, Ipv4Addr::new(10, 0, 255, 254));
    }
}
