//! The simulated region's rules: how each [`Op`] changes the world, and
//! the AWS-like errors it answers when a rule forbids it.
//!
//! Every operation checks first and changes the world only once every
//! check has passed, so a failed call leaves nothing behind. Errors carry
//! the codes the real services use (`InvalidVolume.ZoneMismatch`,
//! `DependencyViolation`, `DistributionNotDisabled`, …) and the
//! [`ErrorKind`] that tells the executor whether a retry can help.

use super::config::Delays;
use super::world::{
    Attachment, Balancer, Bucket, Distribution, Group, Instance, KeyPair, Registration, RunToken,
    Snapshot, Termination, Volume, VolumeToken, World, after,
};
use crate::cloud::{CloudError, ErrorKind, Op, Outcome};
use converge_core::desired::{HealthCheck, Listener, Protocol, Tags, VolumeType};
use converge_core::ids::{
    DistributionId, GroupId, ImageId, InstanceId, KeyPairId, SnapshotId, VolumeId, Zone,
};
use converge_core::observed::{
    CloudRule, CloudSource, DistributionConfig, DistributionStatus, InstanceState, VolumeState,
};
use converge_core::plan::TagTarget;
use jiff::Timestamp;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::Ipv4Addr;
use std::time::Duration;

/// The most tags a resource may carry, as in AWS.
const MAX_TAGS: usize = 50;
/// The most inbound rules a security group may hold, as in AWS.
const MAX_RULES: usize = 60;
/// The largest user data, in bytes, as in EC2.
const MAX_USER_DATA: usize = 16 * 1024;

/// What one call sees: the moment, the region and the faults that shape
/// visibility.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ctx<'a> {
    /// Now, from the injected clock.
    pub now: Timestamp,
    /// The caller's region.
    pub region: &'a str,
    /// This process's delays.
    pub delays: &'a Delays,
    /// EC2 and ELB resources younger than this are invisible.
    pub lag: Duration,
}

impl Ctx<'_> {
    /// Whether an EC2 or ELB resource created at `created` is visible yet.
    pub fn sees(&self, created: Timestamp) -> bool {
        self.lag.is_zero() || after(created, self.lag) <= self.now
    }

    fn later(&self, d: Duration) -> Timestamp {
        after(self.now, d)
    }
}

/// Carries out one operation on the world.
pub(crate) fn act(w: &mut World, op: &Op, cx: &Ctx<'_>) -> Result<Outcome, CloudError> {
    let e = Errs(op.name());
    match op {
        Op::CreateKeyPair {
            name,
            public_key,
            tags,
        } => {
            if name.is_empty() || name.len() > 255 || !name.is_ascii() {
                return Err(e.invalid(
                    "InvalidParameterValue",
                    format!("Invalid key pair name '{name}': 1 to 255 ASCII characters."),
                ));
            }
            check_public_key(public_key).map_err(|m| e.invalid("InvalidKey.Format", m))?;
            check_tags(&e, tags)?;
            if w.key_pairs
                .values()
                .any(|k| k.region == cx.region && k.name == *name)
            {
                return Err(e.exists(
                    "InvalidKeyPair.Duplicate",
                    format!("The keypair '{name}' already exists."),
                ));
            }
            let id = KeyPairId(format!("key-{}", w.next_hex(17)));
            w.key_pairs.insert(
                id.clone(),
                KeyPair {
                    id,
                    region: cx.region.to_owned(),
                    name: name.clone(),
                    public_key: public_key.trim().to_owned(),
                    tags: tags.clone(),
                    created_at: cx.now,
                },
            );
            Ok(Outcome::Done)
        }

        Op::DeleteKeyPair { name } => {
            // As in EC2, deleting a key pair that does not exist succeeds.
            w.key_pairs
                .retain(|_, k| !(k.region == cx.region && k.name == *name));
            Ok(Outcome::Done)
        }

        Op::CreateGroup {
            name,
            description,
            tags,
        } => {
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
            check_tags(&e, tags)?;
            if w.groups
                .values()
                .any(|g| g.region == cx.region && g.name == *name)
            {
                return Err(e.exists(
                    "InvalidGroup.Duplicate",
                    format!("The security group '{name}' already exists."),
                ));
            }
            let id = GroupId(format!("sg-{}", w.next_hex(17)));
            w.groups.insert(
                id.clone(),
                Group {
                    id: id.clone(),
                    region: cx.region.to_owned(),
                    name: name.clone(),
                    description: description.clone(),
                    rules: Vec::new(),
                    tags: tags.clone(),
                    created_at: cx.now,
                },
            );
            Ok(Outcome::Group(id))
        }

        Op::AuthorizeIngress { group, rules } => {
            let g = find_group(w, cx, &e, group)?;
            let mut new: Vec<CloudRule> = Vec::new();
            for r in rules {
                check_rule(w, cx, &e, r)?;
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
                    format!("The maximum number of rules per security group ({MAX_RULES}) has been reached."),
                ));
            }
            if let Some(g) = w.groups.get_mut(group) {
                g.rules.extend(new);
            }
            Ok(Outcome::Done)
        }

        Op::RevokeIngress { group, rules } => {
            find_group(w, cx, &e, group)?;
            // Rules that are not there are ignored (EC2 lists them as
            // unknown permissions rather than failing).
            if let Some(g) = w.groups.get_mut(group) {
                g.rules.retain(|r| !rules.contains(r));
            }
            Ok(Outcome::Done)
        }

        Op::DeleteGroup { group } => {
            find_group(w, cx, &e, group)?;
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

        Op::CreateTags { target, tags } => {
            check_tags(&e, tags)?;
            let current = tags_mut(w, cx, &e, target)?;
            let mut merged = current.clone();
            merged.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            if merged.len() > MAX_TAGS {
                return Err(e.invalid(
                    "TagLimitExceeded",
                    format!(
                        "A resource may have at most {MAX_TAGS} tags, {} asked.",
                        merged.len()
                    ),
                ));
            }
            *current = merged;
            Ok(Outcome::Done)
        }

        Op::DeleteTags { target, keys } => {
            let current = tags_mut(w, cx, &e, target)?;
            for k in keys {
                current.remove(k);
            }
            Ok(Outcome::Done)
        }

        Op::RunInstances {
            image,
            instance_type,
            key_name,
            groups,
            user_data,
            zone,
            count,
            tags,
            client_token,
        } => {
            let request = format!(
                "{image}|{instance_type}|{key_name:?}|{groups:?}|{zone}|{count}|{}",
                hex::encode(sha2_digest(user_data.as_bytes()))
            );
            let token_key = format!("{}/{client_token}", cx.region);
            if !client_token.is_empty()
                && let Some(t) = w.run_tokens.get(&token_key)
            {
                // The same token answers the same instances, visible or not.
                if t.request != request {
                    return Err(e.invalid(
                        "IdempotentParameterMismatch",
                        format!(
                            "The client token '{client_token}' was used with different parameters."
                        ),
                    ));
                }
                return Ok(Outcome::Instances(t.ids.clone()));
            }
            check_image(image).map_err(|m| e.invalid("InvalidAMIID.Malformed", m))?;
            check_instance_type(instance_type)
                .map_err(|m| e.invalid("InvalidParameterValue", m))?;
            check_zone(cx, &e, zone)?;
            if *count == 0 {
                return Err(e.invalid(
                    "InvalidParameterValue",
                    "Invalid value '0' for MinCount: must be at least 1.",
                ));
            }
            if let Some(k) = key_name {
                find_key_pair(w, cx, &e, k)?;
            }
            for g in groups {
                find_group(w, cx, &e, g)?;
            }
            if user_data.len() > MAX_USER_DATA {
                return Err(e.invalid(
                    "InvalidParameterValue",
                    format!("User data is limited to {MAX_USER_DATA} bytes."),
                ));
            }
            check_tags(&e, tags)?;
            let mut used: HashSet<Ipv4Addr> = w.instances.values().map(|i| i.private_ip).collect();
            if used.len() + *count as usize > ADDRESSES {
                return Err(e.invalid(
                    "InsufficientFreeAddressesInSubnet",
                    "There are not enough free addresses in 10.0.0.0/16 to satisfy the request.",
                ));
            }
            let mut ids = Vec::new();
            for _ in 0..*count {
                let id = InstanceId(format!("i-{}", w.next_hex(17)));
                let start = w.next_u64();
                let ip = free_address(start, &used);
                used.insert(ip);
                let mut unique_groups: Vec<GroupId> = Vec::new();
                for g in groups {
                    if !unique_groups.contains(g) {
                        unique_groups.push(g.clone());
                    }
                }
                w.instances.insert(
                    id.clone(),
                    Instance {
                        id: id.clone(),
                        zone: zone.clone(),
                        image: ImageId(image.clone()),
                        instance_type: instance_type.clone(),
                        key_name: key_name.clone(),
                        groups: unique_groups,
                        user_data: user_data.clone(),
                        tags: tags.clone(),
                        private_ip: ip,
                        launched_at: cx.now,
                        running_at: cx.later(cx.delays.boot),
                        termination: None,
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
            Ok(Outcome::Instances(ids))
        }

        Op::TerminateInstances { ids } => {
            // As in EC2, one unknown ID fails the whole call.
            let missing: Vec<&str> = ids
                .iter()
                .filter(|id| find_instance(w, cx, &e, id).is_err())
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

        Op::SetInstanceGroups { instance, groups } => {
            let i = find_instance(w, cx, &e, instance)?;
            if i.termination.is_some() {
                return Err(e.invalid(
                    "IncorrectInstanceState",
                    format!(
                        "The instance '{instance}' is not in a state from which its security groups can be changed ({}).",
                        i.state(cx.now).as_str()
                    ),
                ));
            }
            for g in groups {
                let found = find_group(w, cx, &e, g)?;
                if found.region != i.region() {
                    return Err(e.not_found(
                        "InvalidGroup.NotFound",
                        format!("The security group '{g}' does not exist in {}", i.region()),
                    ));
                }
            }
            let mut unique: Vec<GroupId> = Vec::new();
            for g in groups {
                if !unique.contains(g) {
                    unique.push(g.clone());
                }
            }
            if let Some(i) = w.instances.get_mut(instance) {
                i.groups = unique;
            }
            Ok(Outcome::Done)
        }

        Op::CreateVolume {
            zone,
            size_gib,
            volume_type,
            snapshot,
            tags,
            client_token,
        } => {
            let request = format!("{zone}|{size_gib}|{}|{snapshot:?}", volume_type.as_str());
            let token_key = format!("{}/{client_token}", cx.region);
            if !client_token.is_empty()
                && let Some(t) = w.volume_tokens.get(&token_key)
            {
                if t.request != request {
                    return Err(e.invalid(
                        "IdempotentParameterMismatch",
                        format!(
                            "The client token '{client_token}' was used with different parameters."
                        ),
                    ));
                }
                return Ok(Outcome::Volume(t.id.clone()));
            }
            check_zone(cx, &e, zone)?;
            check_size(&e, *size_gib, *volume_type)?;
            if let Some(s) = snapshot {
                let snap = find_snapshot(w, cx, &e, s)?;
                if snap.state(cx.now) != converge_core::observed::SnapshotState::Completed {
                    return Err(e.state(
                        "IncorrectState",
                        format!("Snapshot '{s}' is in invalid state - pending"),
                    ));
                }
                if *size_gib < snap.volume_size {
                    return Err(e.invalid(
                        "InvalidParameterValue",
                        format!(
                            "Volume of size {size_gib}GiB is smaller than snapshot '{s}', expect size >= {}GiB",
                            snap.volume_size
                        ),
                    ));
                }
            }
            check_tags(&e, tags)?;
            let id = VolumeId(format!("vol-{}", w.next_hex(17)));
            w.volumes.insert(
                id.clone(),
                Volume {
                    id: id.clone(),
                    zone: zone.clone(),
                    size_gib: *size_gib,
                    volume_type: *volume_type,
                    snapshot: snapshot.clone(),
                    tags: tags.clone(),
                    created_at: cx.now,
                    available_at: cx.later(cx.delays.volume),
                    attachment: None,
                },
            );
            if !client_token.is_empty() {
                w.volume_tokens.insert(
                    token_key,
                    VolumeToken {
                        request,
                        id: id.clone(),
                    },
                );
            }
            Ok(Outcome::Volume(id))
        }

        Op::ModifyVolume {
            volume,
            size_gib,
            volume_type,
        } => {
            let v = find_volume(w, cx, &e, volume)?;
            if w.volume_state(v, cx.now) == VolumeState::Creating {
                return Err(e.state(
                    "IncorrectState",
                    format!("The volume '{volume}' is in the 'creating' state."),
                ));
            }
            if *size_gib < v.size_gib {
                return Err(e.invalid(
                    "InvalidParameterValue",
                    format!(
                        "New size {size_gib}GiB of volume '{volume}' cannot be smaller than its size {}GiB.",
                        v.size_gib
                    ),
                ));
            }
            check_size(&e, *size_gib, *volume_type)?;
            if let Some(v) = w.volumes.get_mut(volume) {
                v.size_gib = *size_gib;
                v.volume_type = *volume_type;
            }
            Ok(Outcome::Done)
        }

        Op::AttachVolume {
            volume,
            instance,
            device,
        } => {
            let v = find_volume(w, cx, &e, volume)?;
            let i = find_instance(w, cx, &e, instance)?;
            if v.zone != i.zone {
                return Err(e.invalid(
                    "InvalidVolume.ZoneMismatch",
                    format!(
                        "The volume '{volume}' is not in the same availability zone as instance '{instance}' ({} vs {}).",
                        v.zone, i.zone
                    ),
                ));
            }
            match w.volume_state(v, cx.now) {
                VolumeState::Creating => {
                    return Err(e.state(
                        "IncorrectState",
                        format!("The volume '{volume}' is in the 'creating' state."),
                    ));
                }
                VolumeState::InUse => {
                    let to = w
                        .attachment(v, cx.now)
                        .map(|a| a.instance.to_string())
                        .unwrap_or_default();
                    return Err(e.state(
                        "VolumeInUse",
                        format!("{volume} is already attached to an instance ({to})"),
                    ));
                }
                _ => {}
            }
            match i.state(cx.now) {
                InstanceState::Running => {}
                InstanceState::Pending => {
                    return Err(e.state(
                        "IncorrectState",
                        format!("Instance '{instance}' is not 'running'."),
                    ));
                }
                other => {
                    return Err(e.invalid(
                        "IncorrectState",
                        format!(
                            "Instance '{instance}' is not 'running' ({}).",
                            other.as_str()
                        ),
                    ));
                }
            }
            check_device(device).map_err(|m| e.invalid("InvalidParameterValue", m))?;
            let taken = w.volumes.values().any(|o| {
                w.attachment(o, cx.now)
                    .is_some_and(|a| a.instance == *instance && a.device == *device)
            });
            if taken {
                return Err(e.invalid(
                    "InvalidParameterValue",
                    format!("Attachment point {device} is already in use on {instance}"),
                ));
            }
            if let Some(v) = w.volumes.get_mut(volume) {
                v.attachment = Some(Attachment {
                    instance: instance.clone(),
                    device: device.clone(),
                    attached_at: cx.now,
                });
            }
            Ok(Outcome::Done)
        }

        Op::DetachVolume { volume, instance } => {
            let v = find_volume(w, cx, &e, volume)?;
            if w.attachment(v, cx.now)
                .is_none_or(|a| a.instance != *instance)
            {
                return Err(e.not_found(
                    "InvalidAttachment.NotFound",
                    format!(
                        "Attachment point for volume '{volume}' and instance '{instance}' not found"
                    ),
                ));
            }
            if let Some(v) = w.volumes.get_mut(volume) {
                v.attachment = None;
            }
            Ok(Outcome::Done)
        }

        Op::DeleteVolume { volume } => {
            let v = find_volume(w, cx, &e, volume)?;
            match w.volume_state(v, cx.now) {
                VolumeState::Creating => {
                    return Err(e.state(
                        "IncorrectState",
                        format!("The volume '{volume}' is in the 'creating' state."),
                    ));
                }
                VolumeState::InUse => {
                    let to = w
                        .attachment(v, cx.now)
                        .map(|a| a.instance.to_string())
                        .unwrap_or_default();
                    return Err(e.state(
                        "VolumeInUse",
                        format!("Volume {volume} is currently attached to {to}"),
                    ));
                }
                _ => {}
            }
            w.volumes.remove(volume);
            Ok(Outcome::Done)
        }

        Op::CreateSnapshot {
            volume,
            description,
            tags,
        } => {
            let v = find_volume(w, cx, &e, volume)?;
            if w.volume_state(v, cx.now) == VolumeState::Creating {
                return Err(e.state(
                    "IncorrectState",
                    format!("The volume '{volume}' is in the 'creating' state."),
                ));
            }
            if description.len() > 255 {
                return Err(e.invalid(
                    "InvalidParameterValue",
                    "Snapshot descriptions are at most 255 characters.",
                ));
            }
            check_tags(&e, tags)?;
            let (region, size) = (v.region().to_owned(), v.size_gib);
            let id = SnapshotId(format!("snap-{}", w.next_hex(17)));
            w.snapshots.insert(
                id.clone(),
                Snapshot {
                    id: id.clone(),
                    region,
                    volume_id: volume.clone(),
                    volume_size: size,
                    description: description.clone(),
                    tags: tags.clone(),
                    started_at: cx.now,
                    completed_at: cx.later(cx.delays.snapshot),
                },
            );
            Ok(Outcome::Snapshot(id))
        }

        Op::DeleteSnapshot { snapshot } => {
            find_snapshot(w, cx, &e, snapshot)?;
            w.snapshots.remove(snapshot);
            Ok(Outcome::Done)
        }

        Op::CreateBalancer {
            name,
            zones,
            listeners,
            tags,
        } => {
            check_balancer_name(name).map_err(|m| e.invalid("ValidationError", m))?;
            if zones.is_empty() {
                return Err(e.invalid(
                    "ValidationError",
                    "A load balancer needs at least one availability zone.",
                ));
            }
            for z in zones {
                check_zone(cx, &e, z)?;
            }
            if listeners.is_empty() {
                return Err(e.invalid(
                    "ValidationError",
                    "A load balancer needs at least one listener.",
                ));
            }
            check_listeners(&e, &[], listeners)?;
            check_tags(&e, tags)?;
            let zones = dedup(zones);
            if let Some(b) = w.balancer(cx.region, name) {
                // CreateLoadBalancer is idempotent for the same settings.
                let same = sorted(b.zones.clone()) == sorted(zones.clone())
                    && sorted(b.listeners.clone()) == sorted(listeners.clone());
                if same {
                    return Ok(Outcome::Balancer {
                        dns_name: b.dns_name.clone(),
                    });
                }
                return Err(e.exists(
                    "DuplicateLoadBalancerName",
                    format!("Load balancer name '{name}' already exists with other settings."),
                ));
            }
            let digits = w.next_chars(1, b"123456789") + &w.next_chars(9, b"0123456789");
            let dns_name = format!(
                "{}-{digits}.{}.elb.amazonaws.com",
                name.to_ascii_lowercase(),
                cx.region
            );
            w.balancers.push(Balancer {
                name: name.clone(),
                region: cx.region.to_owned(),
                dns_name: dns_name.clone(),
                zones,
                listeners: listeners.clone(),
                health_check: None,
                members: BTreeMap::new(),
                tags: tags.clone(),
                created_at: cx.now,
            });
            Ok(Outcome::Balancer { dns_name })
        }

        Op::ConfigureHealthCheck { name, health_check } => {
            find_balancer(w, cx, &e, name)?;
            check_health_check(health_check).map_err(|m| e.invalid("ValidationError", m))?;
            if let Some(b) = w.balancer_mut(cx.region, name) {
                b.health_check = Some(health_check.clone());
            }
            Ok(Outcome::Done)
        }

        Op::CreateListeners { name, listeners } => {
            let b = find_balancer(w, cx, &e, name)?;
            check_listeners(&e, &b.listeners, listeners)?;
            if let Some(b) = w.balancer_mut(cx.region, name) {
                for l in listeners {
                    if !b.listeners.contains(l) {
                        b.listeners.push(l.clone());
                    }
                }
            }
            Ok(Outcome::Done)
        }

        Op::DeleteListeners { name, ports } => {
            find_balancer(w, cx, &e, name)?;
            if let Some(b) = w.balancer_mut(cx.region, name) {
                b.listeners.retain(|l| !ports.contains(&l.port));
            }
            Ok(Outcome::Done)
        }

        Op::EnableZones { name, zones } => {
            find_balancer(w, cx, &e, name)?;
            for z in zones {
                check_zone(cx, &e, z)?;
            }
            if let Some(b) = w.balancer_mut(cx.region, name) {
                for z in zones {
                    if !b.zones.contains(z) {
                        b.zones.push(z.clone());
                    }
                }
            }
            Ok(Outcome::Done)
        }

        Op::DisableZones { name, zones } => {
            let b = find_balancer(w, cx, &e, name)?;
            if b.zones.iter().all(|z| zones.contains(z)) {
                return Err(e.invalid(
                    "ValidationError",
                    format!("Cannot disable every availability zone of load balancer '{name}'."),
                ));
            }
            if let Some(b) = w.balancer_mut(cx.region, name) {
                b.zones.retain(|z| !zones.contains(z));
            }
            Ok(Outcome::Done)
        }

        Op::RegisterInstances { name, ids } => {
            let b = find_balancer(w, cx, &e, name)?;
            for id in ids {
                let i = find_instance(w, cx, &e, id).map_err(|_| {
                    e.not_found("InvalidInstance", format!("EC2 instance {id} is not found"))
                })?;
                match i.state(cx.now) {
                    InstanceState::Running => {}
                    InstanceState::Pending => {
                        return Err(e.state(
                            "InvalidInstance",
                            format!("EC2 instance {id} is not in a valid state (pending)"),
                        ));
                    }
                    other => {
                        return Err(e.invalid(
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
            let secs = f64::from(hc.interval_secs)
                * f64::from(hc.healthy_threshold)
                * cx.delays.health.max(0.0);
            let healthy_after_ms = (secs * 1000.0).min(u64::MAX as f64) as u64;
            if let Some(b) = w.balancer_mut(cx.region, name) {
                for id in ids {
                    b.members.entry(id.clone()).or_insert(Registration {
                        registered_at: cx.now,
                        healthy_after_ms,
                    });
                }
            }
            Ok(Outcome::Done)
        }

        Op::DeregisterInstances { name, ids } => {
            find_balancer(w, cx, &e, name)?;
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
            if let Some(b) = w.balancer_mut(cx.region, name) {
                for id in ids {
                    b.members.remove(id);
                }
            }
            Ok(Outcome::Done)
        }

        Op::DeleteBalancer { name } => {
            // As in ELB, deleting a balancer that does not exist succeeds.
            w.balancers
                .retain(|b| !(b.region == cx.region && b.name == *name));
            Ok(Outcome::Done)
        }

        Op::CreateBucket { name, tags } => {
            check_bucket_name(name).map_err(|m| e.invalid("InvalidBucketName", m))?;
            check_tags(&e, tags)?;
            if w.buckets.contains_key(name) {
                return Err(e.exists(
                    "BucketAlreadyOwnedByYou",
                    format!("The bucket '{name}' already exists and is owned by you."),
                ));
            }
            w.buckets.insert(
                name.clone(),
                Bucket {
                    name: name.clone(),
                    region: cx.region.to_owned(),
                    public_read: false,
                    tags: tags.clone(),
                    created_at: cx.now,
                },
            );
            Ok(Outcome::Done)
        }

        Op::SetBucketPublicRead { name, public_read } => {
            let b = w
                .buckets
                .get_mut(name)
                .ok_or_else(|| no_such_bucket(&e, name))?;
            b.public_read = *public_read;
            Ok(Outcome::Done)
        }

        Op::DeleteBucket { name } => {
            // The local cloud never holds objects: every bucket is empty.
            if w.buckets.remove(name).is_none() {
                return Err(no_such_bucket(&e, name));
            }
            Ok(Outcome::Done)
        }

        Op::CreateDistribution {
            caller_reference,
            config,
            tags,
        } => {
            if let Some(d) = w
                .distributions
                .values()
                .find(|d| d.caller_reference == *caller_reference)
            {
                if d.original == *config {
                    return Ok(Outcome::Distribution {
                        id: d.id.clone(),
                        domain_name: d.domain_name.clone(),
                    });
                }
                return Err(e.exists(
                    "DistributionAlreadyExists",
                    format!(
                        "The caller reference '{caller_reference}' was used for distribution {} with other settings.",
                        d.id
                    ),
                ));
            }
            if caller_reference.is_empty() {
                return Err(e.invalid("InvalidArgument", "The caller reference is empty."));
            }
            check_distribution(w, &e, None, config)?;
            check_tags(&e, tags)?;
            let id = DistributionId(format!(
                "E{}",
                w.next_chars(13, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
            ));
            let domain_name = format!(
                "d{}.cloudfront.net",
                w.next_chars(13, b"abcdefghijklmnopqrstuvwxyz0123456789")
            );
            w.distributions.insert(
                id.clone(),
                Distribution {
                    id: id.clone(),
                    domain_name: domain_name.clone(),
                    caller_reference: caller_reference.clone(),
                    original: config.clone(),
                    config: config.clone(),
                    tags: tags.clone(),
                    created_at: cx.now,
                    deployed_at: cx.later(cx.delays.deploy),
                },
            );
            Ok(Outcome::Distribution { id, domain_name })
        }

        Op::UpdateDistribution { id, config } => {
            if !w.distributions.contains_key(id) {
                return Err(no_such_distribution(&e, id));
            }
            check_distribution(w, &e, Some(id), config)?;
            if let Some(d) = w.distributions.get_mut(id) {
                d.config = config.clone();
                d.deployed_at = cx.later(cx.delays.deploy);
            }
            Ok(Outcome::Done)
        }

        Op::DeleteDistribution { id } => {
            let d = w
                .distributions
                .get(id)
                .ok_or_else(|| no_such_distribution(&e, id))?;
            if d.config.enabled || d.status(cx.now) != DistributionStatus::Deployed {
                return Err(e.state(
                    "DistributionNotDisabled",
                    format!(
                        "The distribution {id} must be disabled and deployed before it is deleted (enabled: {}, status: {:?}).",
                        d.config.enabled,
                        d.status(cx.now)
                    ),
                ));
            }
            w.distributions.remove(id);
            Ok(Outcome::Done)
        }
    }
}

/// Builds errors that name one operation.
#[derive(Clone, Copy)]
pub(crate) struct Errs(pub &'static str);

impl Errs {
    pub fn make(self, kind: ErrorKind, code: &str, msg: impl Into<String>) -> CloudError {
        CloudError::new(kind, self.0, code, msg)
    }
    pub fn invalid(self, code: &str, msg: impl Into<String>) -> CloudError {
        self.make(ErrorKind::Invalid, code, msg)
    }
    pub fn not_found(self, code: &str, msg: impl Into<String>) -> CloudError {
        self.make(ErrorKind::NotFound, code, msg)
    }
    pub fn exists(self, code: &str, msg: impl Into<String>) -> CloudError {
        self.make(ErrorKind::AlreadyExists, code, msg)
    }
    pub fn state(self, code: &str, msg: impl Into<String>) -> CloudError {
        self.make(ErrorKind::InvalidState, code, msg)
    }
}

// ---- lookups: what exists, in the caller's region, visible yet ----------

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

fn find_volume<'w>(
    w: &'w World,
    cx: &Ctx<'_>,
    e: &Errs,
    id: &VolumeId,
) -> Result<&'w Volume, CloudError> {
    w.volumes
        .get(id)
        .filter(|v| v.region() == cx.region && cx.sees(v.created_at))
        .ok_or_else(|| {
            e.not_found(
                "InvalidVolume.NotFound",
                format!("The volume '{id}' does not exist."),
            )
        })
}

fn find_group<'w>(
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

fn find_snapshot<'w>(
    w: &'w World,
    cx: &Ctx<'_>,
    e: &Errs,
    id: &SnapshotId,
) -> Result<&'w Snapshot, CloudError> {
    w.snapshots
        .get(id)
        .filter(|s| s.region == cx.region && cx.sees(s.started_at))
        .ok_or_else(|| {
            e.not_found(
                "InvalidSnapshot.NotFound",
                format!("The snapshot '{id}' does not exist."),
            )
        })
}

fn find_key_pair<'w>(
    w: &'w World,
    cx: &Ctx<'_>,
    e: &Errs,
    name: &str,
) -> Result<&'w KeyPair, CloudError> {
    w.key_pairs
        .values()
        .find(|k| k.region == cx.region && k.name == name && cx.sees(k.created_at))
        .ok_or_else(|| {
            e.not_found(
                "InvalidKeyPair.NotFound",
                format!("The key pair '{name}' does not exist"),
            )
        })
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

fn no_such_bucket(e: &Errs, name: &str) -> CloudError {
    e.not_found(
        "NoSuchBucket",
        format!("The specified bucket does not exist: {name}"),
    )
}

fn no_such_distribution(e: &Errs, id: &DistributionId) -> CloudError {
    e.not_found(
        "NoSuchDistribution",
        format!("The specified distribution does not exist: {id}"),
    )
}

/// The tags of a resource, to change them.
fn tags_mut<'w>(
    w: &'w mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    target: &TagTarget,
) -> Result<&'w mut Tags, CloudError> {
    let found = match target {
        TagTarget::Instance(id) => {
            find_instance(w, cx, e, id)?;
            w.instances.get_mut(id).map(|i| &mut i.tags)
        }
        TagTarget::Volume(id) => {
            find_volume(w, cx, e, id)?;
            w.volumes.get_mut(id).map(|v| &mut v.tags)
        }
        TagTarget::Group(id) => {
            find_group(w, cx, e, id)?;
            w.groups.get_mut(id).map(|g| &mut g.tags)
        }
        TagTarget::KeyPair(name) => {
            let id = find_key_pair(w, cx, e, name)?.id.clone();
            w.key_pairs.get_mut(&id).map(|k| &mut k.tags)
        }
        TagTarget::Balancer(name) => {
            find_balancer(w, cx, e, name)?;
            w.balancer_mut(cx.region, name).map(|b| &mut b.tags)
        }
        TagTarget::Bucket(name) => Some(
            w.buckets
                .get_mut(name)
                .map(|b| &mut b.tags)
                .ok_or_else(|| no_such_bucket(e, name))?,
        ),
        TagTarget::Distribution(id) => Some(
            w.distributions
                .get_mut(id)
                .map(|d| &mut d.tags)
                .ok_or_else(|| no_such_distribution(e, id))?,
        ),
    };
    // The lookups above have found it; this cannot fail.
    found.ok_or_else(|| e.not_found("NotFound", format!("{target:?} does not exist")))
}

// ---- checks -------------------------------------------------------------

fn check_tags(e: &Errs, tags: &Tags) -> Result<(), CloudError> {
    if tags.len() > MAX_TAGS {
        return Err(e.invalid(
            "TagLimitExceeded",
            format!(
                "A resource may have at most {MAX_TAGS} tags, {} given.",
                tags.len()
            ),
        ));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(e.invalid(
                "InvalidParameterValue",
                format!("Tag key '{k}' must be 1 to 128 characters."),
            ));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(e.invalid(
                "InvalidParameterValue",
                format!("Tag key '{k}': keys starting with 'aws:' are reserved."),
            ));
        }
        if v.chars().count() > 256 {
            return Err(e.invalid(
                "InvalidParameterValue",
                format!("The value of tag '{k}' is longer than 256 characters."),
            ));
        }
    }
    Ok(())
}

fn check_zone(cx: &Ctx<'_>, e: &Errs, zone: &Zone) -> Result<(), CloudError> {
    let z = zone.as_str();
    let ok = z.len() == cx.region.len() + 1
        && z.starts_with(cx.region)
        && z.ends_with(|c: char| ('a'..='f').contains(&c));
    if ok {
        Ok(())
    } else {
        Err(e.invalid(
            "InvalidParameterValue",
            format!(
                "Invalid availability zone: [{z}]; {} has zones {}a to {}f",
                cx.region, cx.region, cx.region
            ),
        ))
    }
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

fn check_public_key(key: &str) -> Result<(), String> {
    let mut words = key.split_whitespace();
    let kind = words.next().unwrap_or("");
    let body = words.next().unwrap_or("");
    let known = matches!(
        kind,
        "ssh-rsa"
            | "ssh-ed25519"
            | "ecdsa-sha2-nistp256"
            | "ecdsa-sha2-nistp384"
            | "ecdsa-sha2-nistp521"
    );
    let base64 = !body.is_empty()
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='));
    if known && base64 {
        Ok(())
    } else {
        Err("Key is not in valid OpenSSH public key format".to_owned())
    }
}

fn check_size(e: &Errs, size: u32, t: VolumeType) -> Result<(), CloudError> {
    let (min, max) = match t {
        VolumeType::Gp2 | VolumeType::Gp3 => (1, 16384),
        VolumeType::Io1 | VolumeType::Io2 => (4, 16384),
        VolumeType::St1 | VolumeType::Sc1 => (125, 16384),
        VolumeType::Standard => (1, 1024),
    };
    if (min..=max).contains(&size) {
        Ok(())
    } else {
        Err(e.invalid(
            "InvalidParameterValue",
            format!(
                "Volume size {size}GiB is out of range for {} volumes: {min} to {max}GiB.",
                t.as_str()
            ),
        ))
    }
}

fn check_device(device: &str) -> Result<(), String> {
    let ok = ["/dev/sd", "/dev/xvd"].iter().any(|p| {
        device.strip_prefix(p).is_some_and(|rest| {
            let letters = rest.chars().take_while(|c| c.is_ascii_lowercase()).count();
            let digits = &rest[letters..];
            (1..=2).contains(&letters)
                && digits.len() <= 2
                && digits.chars().all(|c| c.is_ascii_digit())
        })
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Value ({device}) for parameter device is invalid. {device} is not a valid EBS device name."
        ))
    }
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

fn check_bucket_name(name: &str) -> Result<(), String> {
    let chars_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    let ends_ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let ip_like = name.parse::<Ipv4Addr>().is_ok();
    let ok = (3..=63).contains(&name.len())
        && chars_ok
        && ends_ok
        && !name.contains("..")
        && !ip_like
        && !name.starts_with("xn--")
        && !name.ends_with("-s3alias");
    if ok {
        Ok(())
    } else {
        Err(format!("The specified bucket name '{name}' is not valid."))
    }
}

fn check_distribution(
    w: &World,
    e: &Errs,
    this: Option<&DistributionId>,
    c: &DistributionConfig,
) -> Result<(), CloudError> {
    if c.origin_domain.is_empty() {
        return Err(e.invalid("InvalidOrigin", "The origin domain name is empty."));
    }
    if let Some(bucket) = c.origin_domain.strip_suffix(".s3.amazonaws.com")
        && !w.buckets.contains_key(bucket)
    {
        return Err(e.invalid(
            "InvalidOrigin",
            format!("The specified origin server does not exist or is not valid: bucket '{bucket}' does not exist."),
        ));
    }
    if let Some((domain, _)) = &c.logging {
        let bucket = domain.strip_suffix(".s3.amazonaws.com").unwrap_or(domain);
        if !w.buckets.contains_key(bucket) {
            return Err(e.invalid(
                "InvalidArgument",
                format!(
                    "The S3 bucket that you specified for CloudFront logs does not exist: {bucket}"
                ),
            ));
        }
    }
    if let Some(root) = &c.default_root_object
        && (root.starts_with('/') || root.len() > 255)
    {
        return Err(e.invalid(
            "InvalidDefaultRootObject",
            format!("The default root object '{root}' is not valid: no leading '/', at most 255 characters."),
        ));
    }
    if c.comment.chars().count() > 128 {
        return Err(e.invalid(
            "InvalidArgument",
            "The comment is longer than 128 characters.",
        ));
    }
    let mut seen = BTreeSet::new();
    for a in &c.aliases {
        let host_ok = !a.is_empty()
            && a.len() <= 253
            && a.split('.').count() >= 2
            && a.split('.').enumerate().all(|(i, label)| {
                (!label.is_empty()
                    && label.len() <= 63
                    && label
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '-'))
                    || (i == 0 && label == "*")
            });
        if !host_ok {
            return Err(e.invalid(
                "InvalidArgument",
                format!("The alternate domain name '{a}' is not a valid host name."),
            ));
        }
        if !seen.insert(a.to_ascii_lowercase()) {
            return Err(e.invalid(
                "InvalidArgument",
                format!("The alternate domain name '{a}' is listed twice."),
            ));
        }
        if let Some(other) = w.distributions.values().find(|d| {
            Some(&d.id) != this && d.config.aliases.iter().any(|o| o.eq_ignore_ascii_case(a))
        }) {
            return Err(e.exists(
                "CNAMEAlreadyExists",
                format!(
                    "One or more of the CNAMEs you provided are already associated with a different resource: {a} ({})",
                    other.id
                ),
            ));
        }
    }
    Ok(())
}

// ---- addresses and small helpers ----------------------------------------

/// Host addresses handed out: 10.0.0.0/16 without AWS's reserved first four
/// and the broadcast address, and without `.0`/`.255` hosts for clarity.
const ADDRESSES: usize = 256 * 254;

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

fn dedup<T: PartialEq + Clone>(items: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for i in items {
        if !out.contains(i) {
            out.push(i.clone());
        }
    }
    out
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;
    use crate::cloud::local::view;
    use converge_core::desired::ListenerProtocol;
    use converge_core::ids::{Kind, ResourceName};
    use converge_core::observed::Owner;

    #[test]
    fn device_names() {
        for ok in ["/dev/sdj", "/dev/sdf1", "/dev/xvdj", "/dev/sdba"] {
            assert!(check_device(ok).is_ok(), "{ok}");
        }
        for bad in ["sdj", "/dev/sd", "/dev/hda", "/dev/sdj123", "/dev/SDJ"] {
            assert!(check_device(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bucket_names_follow_s3() {
        for ok in ["smallpayroll-assets", "a.b.c", "abc"] {
            assert!(check_bucket_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "Assets",
            "a..b",
            "-abc",
            "abc-",
            "192.168.1.1",
            "xn--abc",
            "a_b",
        ] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn health_check_targets_and_cidrs() {
        assert!(valid_target("HTTP:80/"));
        assert!(valid_target("HTTPS:443/health"));
        assert!(valid_target("TCP:5432"));
        assert!(!valid_target("TCP:5432/"));
        assert!(!valid_target("HTTP:80"));
        assert!(!valid_target("UDP:53"));
        assert!(!valid_target("HTTP:0/"));
        assert!(valid_cidr("203.0.113.7/32"));
        assert!(valid_cidr("0.0.0.0/0"));
        assert!(!valid_cidr("203.0.113.7"));
        assert!(!valid_cidr("203.0.113.7/33"));
        assert!(!valid_cidr("203.0.113/24"));
    }

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

    /// Settling the world (what a write does first) changes no state a read
    /// derives: terminated instances leave volumes and balancers either way.
    #[test]
    fn settling_changes_nothing_a_read_sees() {
        let t0: Timestamp = "2026-03-09T12:00:00Z".parse().unwrap();
        let delays = Delays {
            health: 0.0,
            ..Delays::default()
        };
        let mut w = World::new(1);
        let tags = |kind, name: &str| {
            Owner {
                stack: ResourceName::from("s"),
                kind,
                name: ResourceName::from(name),
            }
            .to_tags()
        };
        let at = |t: Timestamp| Ctx {
            now: t,
            region: "us-east-1",
            delays: &delays,
            lag: Duration::ZERO,
        };
        let run = |w: &mut World, op: Op, t| act(w, &op, &at(t)).unwrap();
        let Outcome::Instances(ids) = run(
            &mut w,
            Op::RunInstances {
                image: "ami-147f977d".into(),
                instance_type: "m1.small".into(),
                key_name: None,
                groups: vec![],
                user_data: String::new(),
                zone: Zone::from("us-east-1a"),
                count: 2,
                tags: tags(Kind::Fleet, "db"),
                client_token: "t".into(),
            },
            t0,
        ) else {
            panic!()
        };
        let Outcome::Volume(vol) = run(
            &mut w,
            Op::CreateVolume {
                zone: Zone::from("us-east-1a"),
                size_gib: 20,
                volume_type: VolumeType::Gp3,
                snapshot: None,
                tags: tags(Kind::Volume, "pgdata"),
                client_token: "v".into(),
            },
            t0,
        ) else {
            panic!()
        };
        let t1 = after(t0, Duration::from_secs(10));
        run(
            &mut w,
            Op::AttachVolume {
                volume: vol,
                instance: ids[0].clone(),
                device: "/dev/sdj".into(),
            },
            t1,
        );
        run(
            &mut w,
            Op::CreateBalancer {
                name: "web".into(),
                zones: vec![Zone::from("us-east-1a")],
                listeners: vec![Listener {
                    port: 80,
                    instance_port: 80,
                    protocol: ListenerProtocol::Http,
                }],
                tags: tags(Kind::Balancer, "web"),
            },
            t1,
        );
        run(
            &mut w,
            Op::RegisterInstances {
                name: "web".into(),
                ids: ids.clone(),
            },
            t1,
        );
        run(&mut w, Op::TerminateInstances { ids: ids.clone() }, t1);
        let stack = ResourceName::from("s");
        for secs in [0, 1, 2, 3599, 3600, 3602, 7200] {
            let t = after(t1, Duration::from_secs(secs));
            let mut settled = w.clone();
            settled.settle(t);
            assert_eq!(
                view::observe(&w, &stack, &at(t)),
                view::observe(&settled, &stack, &at(t)),
                "{secs}s after termination"
            );
        }
        // An hour after, the instances and their client token are gone.
        let mut settled = w.clone();
        settled.settle(after(t1, Duration::from_secs(3602)));
        assert!(settled.instances.is_empty());
        assert!(settled.run_tokens.is_empty());
        assert!(settled.volumes.values().all(|v| v.attachment.is_none()));
        assert!(settled.balancers[0].members.is_empty());
    }
}
