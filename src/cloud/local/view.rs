//! Reading the world: what `observe` and the narrow describes return, and
//! the rows of `converge local ls`. Every state here is derived from the
//! stored timestamps and the moment of the read.

use super::ops::Ctx;
use super::world::{
    Balancer, BalancerV2, Instance, ROOT_DEVICE, ROOT_SNAPSHOT_GIB, Snapshot, Subnet, TargetGroup,
    Volume, World,
};
use crate::cloud::{CloudError, answered_id};
use converge_core::desired::Listener;
use converge_core::desired::Tags;
use converge_core::elb::BalancerType;
use converge_core::ids::{ImageId, InstanceId, Kind, ResourceName, SubnetId, VolumeId, tags};
use converge_core::observed::{InstanceState, MemberState, ObservedTargetGroup, StrayTargetGroup};
use converge_core::observed::{
    Member, Observed, ObservedAttachment, ObservedBalancer, ObservedBucket, ObservedDistribution,
    ObservedGateway, ObservedGroup, ObservedImage, ObservedInstance, ObservedKeyPair,
    ObservedRouteTable, ObservedSnapshot, ObservedSubnet, ObservedVolume, ObservedVpc, Owner,
    ProfileAssociation, VolumeModification,
};
use converge_core::observed::{ObjectMetadata, ObservedObject, ObservedOriginAccess};
use std::collections::BTreeMap;

/// The owner of a resource, if its tags say it belongs to `stack`.
fn owned(t: &Tags, stack: &ResourceName) -> Option<Owner> {
    Owner::from_tags(t).filter(|o| o.stack == *stack)
}

/// Everything of `stack` visible from the caller's region. The world
/// stores names as text; one that is malformed (a hand-edited state file)
/// is an error.
pub(crate) fn observe(
    w: &World,
    stack: &ResourceName,
    cx: &Ctx<'_>,
) -> Result<Observed, CloudError> {
    let now = cx.now;
    let mut o = Observed {
        default_vpc: w.default_vpc(cx.region),
        ..Observed::default()
    };
    network(w, stack, cx, &mut o);
    for k in w.key_pairs.values() {
        if k.region != cx.region || !cx.sees(k.created_at) {
            continue;
        }
        if let Some(owner) = owned(&k.tags, stack) {
            o.key_pairs.push(ObservedKeyPair {
                id: k.id.clone(),
                cloud_name: answered_id("DescribeKeyPairs", k.name.as_str())?,
                owner,
                public_key: Some(k.public_key.clone()),
                tags: k.tags.clone(),
            });
        }
    }
    for g in w.groups.values() {
        if g.region != cx.region || !cx.sees(g.created_at) {
            continue;
        }
        // Every group is in a VPC (a default VPC with groups in it cannot
        // be removed).
        if let Some(owner) = owned(&g.tags, stack)
            && let Some(vpc) = w.group_vpc(g)
        {
            o.security_groups.push(ObservedGroup {
                id: g.id.clone(),
                cloud_name: answered_id("DescribeSecurityGroups", g.name.as_str())?,
                owner,
                description: g.description.clone(),
                vpc,
                ingress: g.rules.clone(),
                tags: g.tags.clone(),
            });
        }
    }
    for i in w.instances.values() {
        if visible_instance(i, cx)
            && let Some(owner) = owned(&i.tags, stack)
        {
            o.instances.push(instance(w, i, owner, cx)?);
        }
    }
    for v in w.volumes.values() {
        if visible_volume(v, cx)
            && let Some(owner) = owned(&v.tags, stack)
        {
            o.volumes.push(volume(w, v, owner, cx));
        }
    }
    for s in w.snapshots.values() {
        if s.region != cx.region || !cx.sees(s.started_at) {
            continue;
        }
        if s.tags.get(tags::STACK).map(String::as_str) == Some(stack.as_str())
            && let Some(obs) = snapshot(s, cx)
        {
            o.snapshots.push(obs);
        }
    }
    let mut balancers: Vec<&Balancer> = w
        .balancers
        .iter()
        .filter(|b| b.region == cx.region && cx.sees(b.created_at))
        .collect();
    balancers.sort_by(|a, b| a.name.cmp(&b.name));
    for b in balancers {
        if let Some(owner) = owned(&b.tags, stack) {
            o.balancers.push(classic_balancer(w, b, owner, cx)?);
        }
    }
    for b in w
        .balancers_v2
        .iter()
        .filter(|b| b.region == cx.region && cx.sees(b.created_at))
    {
        if let Some(owner) = owned(&b.tags, stack) {
            o.balancers.push(balancer_v2(w, b, owner, cx)?);
        }
    }
    o.balancers.sort_by(|a, b| a.name.cmp(&b.name));
    o.stray_target_groups = stray_target_groups(w, stack, &o.balancers, cx)?;
    // Buckets and distributions are global, and strongly consistent.
    for b in w.buckets.values() {
        if let Some(owner) = owned(&b.tags, stack) {
            o.buckets.push(ObservedBucket {
                name: answered_id("ListBuckets", b.name.as_str())?,
                owner,
                public_read: b.public_read,
                tags: b.tags.clone(),
                cdn_grants: b
                    .policy
                    .as_deref()
                    .and_then(|p| converge_core::s3::read_grants(p, &b.name).ok())
                    .unwrap_or_default(),
                objects: None,
            });
        }
    }
    o.origin_access = origin_access(w, stack);
    for d in w.distributions.values() {
        if let Some(owner) = owned(&d.tags, stack) {
            o.distributions.push(ObservedDistribution {
                id: d.id.clone(),
                owner,
                domain_name: d.domain_name.clone(),
                status: d.status(now),
                config: d.config.clone(),
                tags: d.tags.clone(),
                arn: super::ops::s3::distribution_arn(&d.id),
            });
        }
    }
    // The stack's certificates in its region and in us-east-1 (a Cdn's).
    let regions = [cx.region, converge_core::acm::CDN_REGION];
    o.certificates = super::ops::acm::certificates(w, cx, &regions)
        .into_iter()
        .filter(|c| c.owner.as_ref().is_some_and(|x| x.stack == *stack))
        .collect();
    Ok(o)
}

/// The origin access controls named for the stack's distributions whose
/// description says they are converge's (ListOriginAccessControls).
fn origin_access(w: &World, stack: &ResourceName) -> Vec<ObservedOriginAccess> {
    let prefix = format!("converge-{stack}-");
    w.origin_access_controls
        .values()
        .filter(|a| {
            a.name.starts_with(&prefix)
                && a.settings
                    .description
                    .starts_with(converge_core::s3::OAC_DESCRIPTION_PREFIX)
        })
        .map(|a| ObservedOriginAccess {
            id: a.id.clone(),
            name: a.name.clone(),
            settings: a.settings.clone(),
        })
        .collect()
}

/// A bucket's objects under a prefix (ListObjectsV2), with the headers
/// the local cloud keeps.
pub(crate) fn bucket_objects(w: &World, bucket: &str, prefix: &str) -> Option<Vec<ObservedObject>> {
    let b = w.buckets.get(bucket)?;
    Some(
        b.objects
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, o)| ObservedObject {
                key: k.clone(),
                etag: o.md5.clone(),
                size: o.size,
                metadata: Some(ObjectMetadata {
                    content_type: o.content_type.clone(),
                    cache_control: o.cache_control.clone(),
                }),
            })
            .collect(),
    )
}

/// What DescribeImages tells of images: every well-formed image exists in
/// the local cloud, with its root on [`ROOT_DEVICE`] from a
/// [`ROOT_SNAPSHOT_GIB`] GiB snapshot, as Amazon Linux 2023's AMIs.
pub(crate) fn images(ids: &[ImageId]) -> BTreeMap<ImageId, ObservedImage> {
    // Well formed as RunInstances requires (else `InvalidAMIID.Malformed`):
    // `ami-` and 8 or 17 hex digits.
    let well_formed = |id: &&ImageId| {
        id.as_str().strip_prefix("ami-").is_some_and(|h| {
            (h.len() == 8 || h.len() == 17) && h.chars().all(|c| c.is_ascii_hexdigit())
        })
    };
    ids.iter()
        .filter(well_formed)
        .map(|id| {
            (
                id.clone(),
                ObservedImage {
                    root_device_name: ROOT_DEVICE.to_owned(),
                    root_snapshot_gib: Some(ROOT_SNAPSHOT_GIB),
                },
            )
        })
        .collect()
}

/// The stack's VPCs, subnets, gateways and route tables.
fn network(w: &World, stack: &ResourceName, cx: &Ctx<'_>, o: &mut Observed) {
    for v in w.vpcs.values() {
        if v.region == cx.region
            && cx.sees(v.created_at)
            && let Some(owner) = owned(&v.tags, stack)
        {
            o.vpcs.push(ObservedVpc {
                id: v.id.clone(),
                owner,
                cidr: v.cidr,
                tags: v.tags.clone(),
            });
        }
    }
    for s in w.subnets.values() {
        if s.region() == cx.region
            && cx.sees(s.created_at)
            && let Some(owner) = owned(&s.tags, stack)
        {
            o.subnets.push(subnet(s, Some(owner)));
        }
    }
    for g in w.gateways.values() {
        if g.region == cx.region
            && cx.sees(g.created_at)
            && let Some(owner) = owned(&g.tags, stack)
        {
            o.gateways.push(ObservedGateway {
                id: g.id.clone(),
                owner,
                attached_to: g.attached_to.clone(),
                tags: g.tags.clone(),
            });
        }
    }
    for r in w.route_tables.values() {
        if r.region == cx.region
            && cx.sees(r.created_at)
            && let Some(owner) = owned(&r.tags, stack)
        {
            let default_route = r
                .routes
                .iter()
                .find(|(d, _)| d.prefix() == 0)
                .map(|(_, g)| g.clone());
            o.route_tables.push(ObservedRouteTable {
                id: r.id.clone(),
                owner,
                vpc: r.vpc.clone(),
                default_route,
                associations: r
                    .associations
                    .iter()
                    .map(|(a, s)| (a.clone(), s.clone()))
                    .collect(),
                tags: r.tags.clone(),
            });
        }
    }
}

fn subnet(s: &Subnet, owner: Option<Owner>) -> ObservedSubnet {
    ObservedSubnet {
        id: s.id.clone(),
        vpc: s.vpc.clone(),
        zone: s.zone.clone(),
        cidr: s.cidr,
        map_public_ip: s.map_public_ip,
        name: s.tags.get(tags::SUBNET).and_then(|n| n.parse().ok()),
        owner,
        tags: s.tags.clone(),
    }
}

/// The given subnets that are visible, in the order asked, each once
/// (DescribeSubnets by ID: an existing VPC's subnets carry no tags of
/// converge's).
pub(crate) fn subnets(w: &World, ids: &[SubnetId], cx: &Ctx<'_>) -> Vec<ObservedSubnet> {
    let mut out: Vec<ObservedSubnet> = Vec::new();
    for id in ids {
        if out.iter().any(|o| o.id == *id) {
            continue;
        }
        if let Some(s) = w
            .subnets
            .get(id)
            .filter(|s| s.region() == cx.region && cx.sees(s.created_at))
        {
            out.push(subnet(s, Owner::from_tags(&s.tags)));
        }
    }
    out
}

fn visible_instance(i: &Instance, cx: &Ctx<'_>) -> bool {
    !i.purged(cx.now) && i.region() == cx.region && cx.sees(i.launched_at)
}

fn visible_volume(v: &Volume, cx: &Ctx<'_>) -> bool {
    v.region() == cx.region && cx.sees(v.created_at)
}

fn instance(
    w: &World,
    i: &Instance,
    owner: Owner,
    cx: &Ctx<'_>,
) -> Result<ObservedInstance, CloudError> {
    let state = i.state(cx.now);
    let key_name = i.key_name.as_deref();
    Ok(ObservedInstance {
        id: i.id.clone(),
        owner,
        zone: i.zone.clone(),
        state,
        // EC2 releases a terminated instance's address.
        private_ip: (state != InstanceState::Terminated).then_some(i.private_ip),
        subnet: i.subnet.clone(),
        vpc: w.instance_vpc(i),
        public_ip: i.public_ip.filter(|_| state.is_live()),
        launched_at: i.launched_at,
        image: i.image.clone(),
        instance_type: i.instance_type.clone(),
        key_name: key_name
            .map(|k| answered_id("DescribeInstances", k))
            .transpose()?,
        groups: i.groups.clone(),
        spec_hash: i.tags.get(tags::SPEC_HASH).cloned(),
        user_data: Some(i.user_data.clone()),
        tags: i.tags.clone(),
        profile: i.profile.as_ref().map(|a| ProfileAssociation {
            id: a.id.clone(),
            arn: a.arn.clone(),
        }),
        metadata: i.metadata,
    })
}

fn volume(w: &World, v: &Volume, owner: Owner, cx: &Ctx<'_>) -> ObservedVolume {
    ObservedVolume {
        id: v.id.clone(),
        owner,
        zone: v.zone.clone(),
        size_gib: v.size_gib,
        volume_type: v.volume_type,
        state: w.volume_state(v, cx.now),
        encrypted: v.encrypted,
        kms_key: v.kms_key.clone(),
        iops: v.iops,
        throughput: v.throughput,
        modification: v.modification.map(|m| VolumeModification {
            state: m.state(cx.now),
            started_at: m.started_at,
        }),
        attachment: w.attachment(v, cx.now).map(|a| ObservedAttachment {
            instance: a.instance.clone(),
            device: a.device.clone(),
        }),
        created_at: v.created_at,
        tags: v.tags.clone(),
    }
}

/// A snapshot converge took: it carries the stack and volume tags.
fn snapshot(s: &Snapshot, cx: &Ctx<'_>) -> Option<ObservedSnapshot> {
    let volume = s.tags.get(tags::VOLUME)?;
    s.tags.get(tags::STACK)?;
    Some(ObservedSnapshot {
        id: s.id.clone(),
        volume: volume.parse().ok()?,
        volume_id: s.volume_id.clone(),
        state: s.state(cx.now),
        encrypted: s.encrypted,
        started_at: s.started_at,
        tags: s.tags.clone(),
    })
}

fn members(w: &World, b: &Balancer, cx: &Ctx<'_>) -> Vec<Member> {
    let mut out: Vec<Member> = b
        .members
        .iter()
        .filter_map(|(id, reg)| {
            w.member_state(b, id, reg, cx.now).map(|state| Member {
                instance: id.clone(),
                state,
            })
        })
        .collect();
    // Unlike AWS's DescribeInstanceHealth, the local cloud shows a classic
    // member that still drains as draining (`Cloud::tracks_classic_draining`),
    // so a drain waits as long as the world says rather than the whole
    // unscaled timeout.
    out.extend(
        b.draining
            .iter()
            .filter(|(id, d)| d.active(cx.now) && !b.members.contains_key(*id))
            .map(|(id, _)| Member {
                instance: id.clone(),
                state: MemberState::Draining,
            }),
    );
    out.sort_by(|a, b| a.instance.cmp(&b.instance));
    out
}

/// The given instances that are visible and carry converge's tags, in the
/// order asked, each once.
pub(crate) fn instances(
    w: &World,
    ids: &[InstanceId],
    cx: &Ctx<'_>,
) -> Result<Vec<ObservedInstance>, CloudError> {
    let mut out: Vec<ObservedInstance> = Vec::new();
    for id in ids {
        if out.iter().any(|o| o.id == *id) {
            continue;
        }
        if let Some(i) = w.instances.get(id).filter(|i| visible_instance(i, cx))
            && let Some(owner) = Owner::from_tags(&i.tags)
        {
            out.push(instance(w, i, owner, cx)?);
        }
    }
    Ok(out)
}

/// The given volumes that are visible and carry converge's tags.
pub(crate) fn volumes(w: &World, ids: &[VolumeId], cx: &Ctx<'_>) -> Vec<ObservedVolume> {
    let mut out: Vec<ObservedVolume> = Vec::new();
    for id in ids {
        if out.iter().any(|o| o.id == *id) {
            continue;
        }
        if let Some(v) = w.volumes.get(id).filter(|v| visible_volume(v, cx))
            && let Some(owner) = Owner::from_tags(&v.tags)
        {
            out.push(volume(w, v, owner, cx));
        }
    }
    out
}

/// One snapshot, if visible and converge's.
pub(crate) fn snapshot_by_id(
    w: &World,
    id: &converge_core::ids::SnapshotId,
    cx: &Ctx<'_>,
) -> Option<ObservedSnapshot> {
    w.snapshots
        .get(id)
        .filter(|s| s.region == cx.region && cx.sees(s.started_at))
        .and_then(|s| snapshot(s, cx))
}

/// A classic balancer's members (DescribeInstanceHealth), and those still
/// draining (which AWS does not show).
pub(crate) fn balancer_members(w: &World, b: &Balancer, cx: &Ctx<'_>) -> Vec<Member> {
    members(w, b, cx)
}

/// A classic balancer as DescribeLoadBalancers and
/// DescribeLoadBalancerAttributes show it.
fn classic_balancer(
    w: &World,
    b: &Balancer,
    owner: Owner,
    cx: &Ctx<'_>,
) -> Result<ObservedBalancer, CloudError> {
    Ok(ObservedBalancer {
        name: answered_id("DescribeLoadBalancers", b.name.as_str())?,
        owner,
        kind: BalancerType::Classic,
        scheme: b.scheme,
        dns_name: b.dns_name.clone(),
        zone_id: super::ops::elbv2::zone_id(&b.region, BalancerType::Classic),
        security_groups: b.groups.clone(),
        target_groups: Vec::new(),
        drain_secs: Some(b.drain_secs),
        cross_zone: Some(b.cross_zone),
        zones: b.zones.clone(),
        subnets: b.subnets.clone(),
        listeners: b.listeners.clone(),
        health_check: b.health_check.clone(),
        members: members(w, b, cx),
        tags: b.tags.clone(),
    })
}

/// An application or network balancer, with the target groups its
/// listeners forward to.
fn balancer_v2(
    w: &World,
    b: &BalancerV2,
    owner: Owner,
    cx: &Ctx<'_>,
) -> Result<ObservedBalancer, CloudError> {
    let groups = balancer_groups(w, b);
    let listeners: Vec<Listener> = b
        .listeners
        .iter()
        .map(|l| {
            // The target port is the target group's (elbv2 listeners
            // have none of their own).
            let port = groups
                .iter()
                .find(|g| g.name == l.target_group)
                .map_or(l.listener.instance_port, |g| g.port);
            Listener {
                instance_port: port,
                ..l.listener.clone()
            }
        })
        .collect();
    let mut target_groups = Vec::new();
    for g in &groups {
        target_groups.push(ObservedTargetGroup {
            name: answered_id("DescribeTargetGroups", g.name.as_str())?,
            protocol: g.protocol,
            port: g.port,
            health_check: g.health_check.clone(),
            deregistration_delay_secs: g.deregistration_delay_secs,
            members: group_members(w, g, cx),
        });
    }
    Ok(ObservedBalancer {
        name: answered_id("DescribeLoadBalancers", b.name.as_str())?,
        owner,
        kind: b.kind,
        scheme: b.scheme,
        dns_name: b.dns_name.clone(),
        zone_id: super::ops::elbv2::zone_id(&b.region, b.kind),
        security_groups: b.groups.clone(),
        members: worst_members(&target_groups),
        target_groups,
        drain_secs: None,
        cross_zone: None,
        zones: b.zones.clone(),
        subnets: b.subnets.clone(),
        listeners,
        health_check: None,
        tags: b.tags.clone(),
    })
}

/// The stack's target groups no observed balancer forwards to.
fn stray_target_groups(
    w: &World,
    stack: &ResourceName,
    balancers: &[ObservedBalancer],
    cx: &Ctx<'_>,
) -> Result<Vec<StrayTargetGroup>, CloudError> {
    let mut out = Vec::new();
    for g in w
        .target_groups
        .iter()
        .filter(|g| g.region == cx.region && cx.sees(g.created_at))
    {
        let Some(owner) = owned(&g.tags, stack).filter(|o| o.kind == Kind::Balancer) else {
            continue;
        };
        let used = balancers
            .iter()
            .flat_map(|b| &b.target_groups)
            .any(|t| t.name.as_str() == g.name);
        if !used {
            out.push(StrayTargetGroup {
                name: answered_id("DescribeTargetGroups", &g.name)?,
                balancer: owner.name,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The target groups a balancer's listeners forward to, each once, by
/// name.
pub(crate) fn balancer_groups<'w>(w: &'w World, b: &BalancerV2) -> Vec<&'w TargetGroup> {
    let mut out: Vec<&TargetGroup> = Vec::new();
    for l in &b.listeners {
        if let Some(g) = w.target_group(&b.region, &l.target_group)
            && !out.iter().any(|o| o.name == g.name)
        {
            out.push(g);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// A target group's targets (DescribeTargetHealth), draining ones
/// included.
fn group_members(w: &World, g: &TargetGroup, cx: &Ctx<'_>) -> Vec<Member> {
    w.targets(g, cx.now)
        .into_iter()
        .map(|(instance, state)| Member { instance, state })
        .collect()
}

/// Each target once, in the worst state it has in any group.
fn worst_members(groups: &[ObservedTargetGroup]) -> Vec<Member> {
    let mut worst: BTreeMap<InstanceId, MemberState> = BTreeMap::new();
    for g in groups {
        for m in &g.members {
            let e = worst.entry(m.instance.clone()).or_insert(m.state);
            *e = (*e).max(m.state);
        }
    }
    worst
        .into_iter()
        .map(|(instance, state)| Member { instance, state })
        .collect()
}

/// An elbv2 balancer's members: each target once, in its worst state
/// over the balancer's target groups.
pub(crate) fn balancer_v2_members(w: &World, b: &BalancerV2, cx: &Ctx<'_>) -> Vec<Member> {
    let groups: Vec<ObservedTargetGroup> = balancer_groups(w, b)
        .into_iter()
        .filter_map(|g| {
            Some(ObservedTargetGroup {
                name: g.name.parse().ok()?,
                protocol: g.protocol,
                port: g.port,
                health_check: g.health_check.clone(),
                deregistration_delay_secs: g.deregistration_delay_secs,
                members: group_members(w, g, cx),
            })
        })
        .collect();
    worst_members(&groups)
}

/// One distribution, if it is converge's.
pub(crate) fn distribution(
    w: &World,
    id: &converge_core::ids::DistributionId,
    cx: &Ctx<'_>,
) -> Option<ObservedDistribution> {
    let d = w.distributions.get(id)?;
    let owner = Owner::from_tags(&d.tags)?;
    Some(ObservedDistribution {
        id: d.id.clone(),
        owner,
        domain_name: d.domain_name.clone(),
        status: d.status(cx.now),
        config: d.config.clone(),
        tags: d.tags.clone(),
        arn: super::ops::s3::distribution_arn(&d.id),
    })
}
