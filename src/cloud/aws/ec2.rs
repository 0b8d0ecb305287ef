//! EC2: instances, volumes, snapshots, security groups and key pairs.
//! Observation is one tag-filtered, paginated describe per kind (the
//! largest page size each call allows), run concurrently.

use super::error::{refuse, sdk_error};
use super::{AwsCloud, Reads, tags_from, timestamp};
use crate::cloud::{CloudError, ErrorKind, Launch, Launched, NewVolume, Outcome, answered_id};
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, HttpTokensState, IamInstanceProfileSpecification,
    InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, IpPermission, IpRange,
    Placement, ResourceType, Tag, TagSpecification, UserIdGroupPair,
};
use aws_smithy_types::Blob;
use converge_core::desired::{HttpTokens, MetadataOptions, Protocol, Tags, VolumeType};
use converge_core::ids::{
    AssociationId, GroupId, GroupName, ImageId, InstanceId, InstanceProfile, KeyName, Kind,
    ResourceName, SnapshotId, VolumeId, VpcId, Zone, tags,
};
use converge_core::observed::{
    CloudRule, CloudSource, InstanceState, ModificationState, ObservedAttachment, ObservedGroup,
    ObservedImage, ObservedInstance, ObservedKeyPair, ObservedSnapshot, ObservedVolume, Owner,
    ProfileAssociation, SnapshotState, VolumeModification, VolumeState,
};
use converge_core::plan::{PlannedRootVolume, TagTarget};
use std::collections::BTreeMap;

/// The EC2 part of a stack.
pub(super) struct Ec2Observed {
    pub(super) key_pairs: Vec<ObservedKeyPair>,
    pub(super) security_groups: Vec<ObservedGroup>,
    pub(super) instances: Vec<ObservedInstance>,
    pub(super) volumes: Vec<ObservedVolume>,
    pub(super) snapshots: Vec<ObservedSnapshot>,
}

/// The most values one EC2 filter takes.
const FILTER_VALUES: usize = 200;

pub(super) fn stack_filter(stack: &ResourceName) -> Filter {
    Filter::builder()
        .name(format!("tag:{}", tags::STACK))
        .values(stack.as_str())
        .build()
}

pub(super) fn filter(name: &str, values: impl IntoIterator<Item = String>) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().collect()))
        .build()
}

fn ec2_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

pub(super) fn tag_spec(kind: ResourceType, tags: &Tags) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(ec2_tags(tags)))
        .build()
}

pub(super) fn read_tags(t: &[Tag]) -> Tags {
    tags_from(t.iter().map(|t| (t.key(), t.value())))
}

/// The owner of a resource of `kind` in `stack`, or `None` when its tags
/// say it is not one.
pub(super) fn owned(t: &Tags, stack: &ResourceName, kind: Kind) -> Option<Owner> {
    Owner::from_tags(t).filter(|o| o.stack == *stack && o.kind == kind)
}

pub(super) fn instance_state(s: Option<&aws_sdk_ec2::types::InstanceStateName>) -> InstanceState {
    use aws_sdk_ec2::types::InstanceStateName as S;
    match s {
        Some(S::Pending) => InstanceState::Pending,
        Some(S::Running) => InstanceState::Running,
        Some(S::ShuttingDown) => InstanceState::ShuttingDown,
        Some(S::Terminated) => InstanceState::Terminated,
        // Stopping, stopped, and anything new: not serving.
        _ => InstanceState::Stopped,
    }
}

/// Reads an instance; `None` if it is not the stack's or has no ID, an
/// error if an ID in it is malformed.
fn instance(
    i: &aws_sdk_ec2::types::Instance,
    stack: Option<&ResourceName>,
) -> Result<Option<ObservedInstance>, CloudError> {
    const OP: &str = "DescribeInstances";
    let t = read_tags(i.tags());
    let owner = Owner::from_tags(&t)
        .filter(|o| o.kind == Kind::Fleet && stack.is_none_or(|s| o.stack == *s));
    let (Some(owner), Some(id)) = (owner, i.instance_id()) else {
        return Ok(None);
    };
    let zone = i.placement().and_then(|p| p.availability_zone());
    let state = instance_state(i.state().and_then(|s| s.name()));
    Ok(Some(ObservedInstance {
        id: answered_id(OP, id)?,
        owner,
        zone: answered_id(OP, zone.unwrap_or_default())?,
        state,
        // A terminated instance holds no address: EC2 lists it without
        // one (moto keeps the old one; the local cloud drops it too).
        private_ip: i
            .private_ip_address()
            .and_then(|a| a.parse().ok())
            .filter(|_| state != InstanceState::Terminated),
        subnet: i.subnet_id().map(|s| answered_id(OP, s)).transpose()?,
        vpc: i.vpc_id().map(|v| answered_id(OP, v)).transpose()?,
        public_ip: i.public_ip_address().and_then(|a| a.parse().ok()),
        launched_at: timestamp(i.launch_time()),
        image: answered_id(OP, i.image_id().unwrap_or_default())?,
        instance_type: i
            .instance_type()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        key_name: i.key_name().map(|k| answered_id(OP, k)).transpose()?,
        groups: i
            .security_groups()
            .iter()
            .filter_map(|g| g.group_id().map(|id| answered_id(OP, id)))
            .collect::<Result<_, _>>()?,
        spec_hash: t.get(tags::SPEC_HASH).cloned(),
        // Reading user data is one call per instance: left out.
        user_data: None,
        tags: t,
        // Filled from DescribeIamInstanceProfileAssociations, which holds
        // the association's ID (`describe_instances`).
        profile: None,
        metadata: metadata_options(i.metadata_options()),
    }))
}

/// An instance's metadata options as EC2 reports them; what it leaves out
/// reads as EC2's own defaults (tokens optional, one hop).
fn metadata_options(
    m: Option<&aws_sdk_ec2::types::InstanceMetadataOptionsResponse>,
) -> MetadataOptions {
    let tokens = match m.and_then(|m| m.http_tokens()) {
        Some(HttpTokensState::Required) => HttpTokens::Required,
        _ => HttpTokens::Optional,
    };
    let hop_limit = m
        .and_then(|m| m.http_put_response_hop_limit())
        .and_then(|n| u8::try_from(n).ok())
        .unwrap_or(1);
    MetadataOptions { tokens, hop_limit }
}

/// Metadata options as RunInstances and ModifyInstanceMetadataOptions take
/// them: the endpoint always enabled.
fn http_tokens(m: MetadataOptions) -> HttpTokensState {
    match m.tokens {
        HttpTokens::Required => HttpTokensState::Required,
        HttpTokens::Optional => HttpTokensState::Optional,
    }
}

/// A root volume as a block device mapping on the image's root device,
/// deleted with its instance.
fn root_mapping(r: &PlannedRootVolume) -> BlockDeviceMapping {
    let v = r.volume;
    BlockDeviceMapping::builder()
        .device_name(&r.device)
        .ebs(
            EbsBlockDevice::builder()
                .volume_size(i32::try_from(v.size_gib).unwrap_or(i32::MAX))
                .volume_type(aws_sdk_ec2::types::VolumeType::from(v.volume_type.as_str()))
                .encrypted(v.encrypted)
                .delete_on_termination(true)
                .build(),
        )
        .build()
}

/// A profile as EC2 takes it: by ARN or by name.
fn profile_spec(p: &InstanceProfile) -> IamInstanceProfileSpecification {
    let b = IamInstanceProfileSpecification::builder();
    if p.is_arn() {
        b.arn(p.as_str()).build()
    } else {
        b.name(p.as_str()).build()
    }
}

fn volume_state(s: Option<&aws_sdk_ec2::types::VolumeState>) -> Option<VolumeState> {
    use aws_sdk_ec2::types::VolumeState as S;
    Some(match s? {
        S::Creating => VolumeState::Creating,
        S::Available => VolumeState::Available,
        S::InUse => VolumeState::InUse,
        S::Deleting => VolumeState::Deleting,
        // Gone: not listed.
        S::Deleted => return None,
        _ => VolumeState::Error,
    })
}

/// Reads a volume; `None` if it is not the stack's, has no ID or is gone,
/// an error if an ID in it is malformed.
fn volume(
    v: &aws_sdk_ec2::types::Volume,
    stack: Option<&ResourceName>,
) -> Result<Option<ObservedVolume>, CloudError> {
    use aws_sdk_ec2::types::VolumeAttachmentState as A;
    const OP: &str = "DescribeVolumes";
    let t = read_tags(v.tags());
    let owner = Owner::from_tags(&t)
        .filter(|o| o.kind == Kind::Volume && stack.is_none_or(|s| o.stack == *s));
    let (Some(owner), Some(id), Some(state)) = (owner, v.volume_id(), volume_state(v.state()))
    else {
        return Ok(None);
    };
    let attachment = v
        .attachments()
        .iter()
        .find(|a| matches!(a.state(), Some(A::Attaching | A::Attached | A::Busy)))
        .and_then(|a| Some((a.instance_id()?, a.device().unwrap_or_default())))
        .map(|(instance, device)| -> Result<_, CloudError> {
            Ok(ObservedAttachment {
                instance: answered_id(OP, instance)?,
                device: device.to_owned(),
            })
        })
        .transpose()?;
    Ok(Some(ObservedVolume {
        id: answered_id(OP, id)?,
        owner,
        zone: answered_id(OP, v.availability_zone().unwrap_or_default())?,
        size_gib: v.size().unwrap_or(0).max(0) as u32,
        volume_type: v
            .volume_type()
            .and_then(|t| VolumeType::parse(t.as_str()))
            .unwrap_or(VolumeType::Gp3),
        state,
        encrypted: v.encrypted().unwrap_or(false),
        kms_key: v.kms_key_id().map(str::to_owned),
        iops: v.iops().and_then(|n| u32::try_from(n).ok()),
        throughput: v.throughput().and_then(|n| u32::try_from(n).ok()),
        // Filled in from DescribeVolumesModifications.
        modification: None,
        attachment,
        created_at: timestamp(v.create_time()),
        tags: t,
    }))
}

/// Reads a modification's volume and state; `None` without either.
fn modification(
    m: &aws_sdk_ec2::types::VolumeModification,
) -> Option<(String, VolumeModification)> {
    use aws_sdk_ec2::types::VolumeModificationState as S;
    let state = match m.modification_state()? {
        S::Modifying => ModificationState::Modifying,
        S::Optimizing => ModificationState::Optimizing,
        S::Completed => ModificationState::Completed,
        // Failed, and states newer than this SDK: over, the volume as it
        // was.
        _ => ModificationState::Failed,
    };
    Some((
        m.volume_id()?.to_owned(),
        VolumeModification {
            state,
            started_at: timestamp(m.start_time()),
        },
    ))
}

/// Reads a snapshot; `None` if it has no ID or no valid volume tag (not
/// one converge took), an error if an ID in it is malformed.
fn snapshot(s: &aws_sdk_ec2::types::Snapshot) -> Result<Option<ObservedSnapshot>, CloudError> {
    use aws_sdk_ec2::types::SnapshotState as S;
    const OP: &str = "DescribeSnapshots";
    let t = read_tags(s.tags());
    let volume = t.get(tags::VOLUME).and_then(|v| v.parse().ok());
    let (Some(id), Some(volume)) = (s.snapshot_id(), volume) else {
        return Ok(None);
    };
    Ok(Some(ObservedSnapshot {
        id: answered_id(OP, id)?,
        volume,
        volume_id: answered_id(OP, s.volume_id().unwrap_or_default())?,
        state: match s.state() {
            Some(S::Completed) => SnapshotState::Completed,
            Some(S::Error) => SnapshotState::Error,
            _ => SnapshotState::Pending,
        },
        encrypted: s.encrypted().unwrap_or(false),
        started_at: timestamp(s.start_time()),
        tags: t,
    }))
}

/// A protocol as the EC2 API names it (`-1` for all).
fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Icmp => "icmp",
        Protocol::All => "-1",
    }
}

fn parse_protocol(s: &str) -> Option<Protocol> {
    match s {
        "tcp" | "6" => Some(Protocol::Tcp),
        "udp" | "17" => Some(Protocol::Udp),
        "icmp" | "1" => Some(Protocol::Icmp),
        "-1" | "all" => Some(Protocol::All),
        _ => None,
    }
}

/// An inbound permission as converge's rules: one per CIDR and source
/// group. IPv6 ranges and prefix lists are not converge's and are left out.
/// A malformed source group ID is an error.
pub(super) fn rules_of(p: &IpPermission) -> Result<Vec<CloudRule>, CloudError> {
    let Some(protocol) = p.ip_protocol().and_then(parse_protocol) else {
        return Ok(Vec::new());
    };
    let ports = match protocol {
        Protocol::Tcp | Protocol::Udp => match (p.from_port(), p.to_port()) {
            (Some(from), Some(to)) => {
                Some((from.clamp(0, 65535) as u16, to.clamp(0, 65535) as u16))
            }
            _ => None,
        },
        Protocol::Icmp | Protocol::All => None,
    };
    let mut out = Vec::new();
    for r in p.ip_ranges() {
        if let Some(c) = r.cidr_ip() {
            out.push(CloudRule {
                protocol,
                ports,
                source: CloudSource::Cidr(c.to_owned()),
            });
        }
    }
    for g in p.user_id_group_pairs() {
        if let Some(id) = g.group_id() {
            out.push(CloudRule {
                protocol,
                ports,
                source: CloudSource::Group(answered_id("DescribeSecurityGroups", id)?),
            });
        }
    }
    Ok(out)
}

/// A rule as an EC2 permission.
pub(super) fn permission(r: &CloudRule) -> IpPermission {
    let mut b = IpPermission::builder().ip_protocol(protocol_name(r.protocol));
    match (r.protocol, r.ports) {
        (Protocol::Tcp | Protocol::Udp, Some((from, to))) => {
            b = b.from_port(i32::from(from)).to_port(i32::from(to));
        }
        (Protocol::Tcp | Protocol::Udp, None) => b = b.from_port(0).to_port(65535),
        (Protocol::Icmp, _) => b = b.from_port(-1).to_port(-1),
        (Protocol::All, _) => {}
    }
    match &r.source {
        CloudSource::Cidr(c) => b.ip_ranges(IpRange::builder().cidr_ip(c).build()),
        CloudSource::Group(g) => {
            b.user_id_group_pairs(UserIdGroupPair::builder().group_id(g.as_str()).build())
        }
    }
    .build()
}

/// AWS's rule, checked by converge because the emulator does not: a
/// volume attaches only to an instance in its own zone.
pub(super) fn check_same_zone(
    volume: &VolumeId,
    volume_zone: &Zone,
    instance: &InstanceId,
    instance_zone: &Zone,
) -> Result<(), CloudError> {
    if volume_zone == instance_zone {
        Ok(())
    } else {
        Err(refuse(
            "AttachVolume",
            "InvalidVolume.ZoneMismatch",
            format!(
                "volume {volume} is in {volume_zone} and cannot attach to instance {instance} in {instance_zone}"
            ),
        ))
    }
}

impl AwsCloud {
    pub(super) async fn observe_ec2(
        &self,
        stack: &ResourceName,
        reads: Reads<'_>,
    ) -> Result<Ec2Observed, CloudError> {
        let (instances, volumes, snapshots, security_groups, key_pairs) = tokio::try_join!(
            reads.read("observe instances", || self.observe_instances(stack)),
            reads.read("observe volumes", || self.observe_volumes(stack)),
            reads.read("observe snapshots", || self.observe_snapshots(stack)),
            reads.read("observe security groups", || self.observe_groups(stack)),
            reads.read("observe key pairs", || self.observe_key_pairs(stack)),
        )?;
        Ok(Ec2Observed {
            key_pairs,
            security_groups,
            instances,
            volumes,
            snapshots,
        })
    }

    async fn observe_instances(
        &self,
        stack: &ResourceName,
    ) -> Result<Vec<ObservedInstance>, CloudError> {
        // Every state, terminated too: EC2 lists a terminated instance for
        // about an hour, and the local cloud does the same. The planner
        // reads them to tell a fleet whose instances were all lost (a
        // heal: `Fleet/db: 0 → 1 instance`) from a new one (a create with
        // every field), so both clouds plan the same loss alike. They cost
        // no call: only the last hour's terminations, on the same pages.
        self.describe_instances(vec![stack_filter(stack)], Some(stack))
            .await
    }

    async fn describe_instances(
        &self,
        filters: Vec<Filter>,
        stack: Option<&ResourceName>,
    ) -> Result<Vec<ObservedInstance>, CloudError> {
        let mut pages = self
            .ec2
            .describe_instances()
            .set_filters(Some(filters))
            .max_results(1000)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        let mut with_profile = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("DescribeInstances", e))?;
            for r in page.reservations() {
                for i in r.instances() {
                    if let Some(o) = instance(i, stack)? {
                        if i.iam_instance_profile().is_some() {
                            with_profile.push(o.id.clone());
                        }
                        out.push(o);
                    }
                }
            }
        }
        let mut associations = self.profile_associations(&with_profile).await?;
        for i in &mut out {
            i.profile = associations.remove(&i.id);
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// The profile associations of these instances, in one paginated
    /// DescribeIamInstanceProfileAssociations per 200 instances (none when
    /// no instance has a profile): DescribeInstances names an instance's
    /// profile but not the association, which replacing or removing it
    /// needs.
    async fn profile_associations(
        &self,
        ids: &[InstanceId],
    ) -> Result<BTreeMap<InstanceId, ProfileAssociation>, CloudError> {
        const OP: &str = "DescribeIamInstanceProfileAssociations";
        let mut out = BTreeMap::new();
        for chunk in ids.chunks(FILTER_VALUES) {
            let mut pages = self
                .ec2
                .describe_iam_instance_profile_associations()
                .filters(filter("instance-id", chunk.iter().map(|i| i.to_string())))
                .filters(filter("state", ["associated".to_owned()]))
                .max_results(1000)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| sdk_error(OP, e))?;
                for a in page.iam_instance_profile_associations() {
                    let (Some(id), Some(instance), Some(arn)) = (
                        a.association_id(),
                        a.instance_id(),
                        a.iam_instance_profile().and_then(|p| p.arn()),
                    ) else {
                        continue;
                    };
                    out.insert(
                        answered_id(OP, instance)?,
                        ProfileAssociation {
                            id: answered_id(OP, id)?,
                            arn: arn.to_owned(),
                        },
                    );
                }
            }
        }
        Ok(out)
    }

    /// The root device of each image, in one DescribeImages call (a filter
    /// rather than ImageIds, so that an unknown image is left out instead
    /// of failing the call with `InvalidAMIID.NotFound`).
    pub(super) async fn describe_images(
        &self,
        ids: &[ImageId],
    ) -> Result<BTreeMap<ImageId, ObservedImage>, CloudError> {
        const OP: &str = "DescribeImages";
        let mut out = BTreeMap::new();
        for chunk in ids.chunks(FILTER_VALUES) {
            let answer = self
                .ec2
                .describe_images()
                .filters(filter("image-id", chunk.iter().map(|i| i.to_string())))
                .send()
                .await
                .map_err(|e| sdk_error(OP, e))?;
            for img in answer.images() {
                let (Some(id), Some(root)) = (img.image_id(), img.root_device_name()) else {
                    continue;
                };
                let snapshot = img
                    .block_device_mappings()
                    .iter()
                    .find(|m| m.device_name() == Some(root))
                    .and_then(|m| m.ebs())
                    .and_then(|e| e.volume_size())
                    .and_then(|n| u32::try_from(n).ok());
                out.insert(
                    answered_id(OP, id)?,
                    ObservedImage {
                        root_device_name: root.to_owned(),
                        root_snapshot_gib: snapshot,
                    },
                );
            }
        }
        Ok(out)
    }

    pub(super) async fn describe_instances_by_id(
        &self,
        ids: &[InstanceId],
    ) -> Result<Vec<ObservedInstance>, CloudError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // A filter rather than InstanceIds: unknown IDs are left out
        // instead of failing the whole call.
        let mut out = Vec::new();
        for chunk in ids.chunks(FILTER_VALUES) {
            let f = filter("instance-id", chunk.iter().map(|i| i.to_string()));
            out.extend(self.describe_instances(vec![f], None).await?);
        }
        Ok(out)
    }

    async fn observe_volumes(
        &self,
        stack: &ResourceName,
    ) -> Result<Vec<ObservedVolume>, CloudError> {
        let mut volumes = self
            .describe_volumes(vec![stack_filter(stack)], Some(stack))
            .await?;
        self.add_modifications(&mut volumes).await?;
        Ok(volumes)
    }

    /// Fills in each volume's latest modification: one
    /// DescribeVolumesModifications for all of them (a `volume-id` filter,
    /// which leaves unknown IDs out instead of failing), nothing when
    /// there are no volumes.
    pub(super) async fn add_modifications(
        &self,
        volumes: &mut [ObservedVolume],
    ) -> Result<(), CloudError> {
        if volumes.is_empty() {
            return Ok(());
        }
        let mut latest: BTreeMap<String, VolumeModification> = BTreeMap::new();
        for chunk in volumes.chunks(FILTER_VALUES) {
            let f = filter("volume-id", chunk.iter().map(|v| v.id.to_string()));
            let mut pages = self
                .ec2
                .describe_volumes_modifications()
                .filters(f)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| sdk_error("DescribeVolumesModifications", e))?;
                for (id, m) in page.volumes_modifications().iter().filter_map(modification) {
                    match latest.get(&id) {
                        Some(seen) if seen.started_at >= m.started_at => {}
                        _ => {
                            latest.insert(id, m);
                        }
                    }
                }
            }
        }
        for v in volumes {
            v.modification = latest.remove(v.id.as_str());
        }
        Ok(())
    }

    async fn describe_volumes(
        &self,
        filters: Vec<Filter>,
        stack: Option<&ResourceName>,
    ) -> Result<Vec<ObservedVolume>, CloudError> {
        let mut pages = self
            .ec2
            .describe_volumes()
            .set_filters(Some(filters))
            .max_results(500)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("DescribeVolumes", e))?;
            for v in page.volumes() {
                out.extend(volume(v, stack)?);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    pub(super) async fn describe_volumes_by_id(
        &self,
        ids: &[VolumeId],
    ) -> Result<Vec<ObservedVolume>, CloudError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for chunk in ids.chunks(FILTER_VALUES) {
            let f = filter("volume-id", chunk.iter().map(|i| i.to_string()));
            out.extend(self.describe_volumes(vec![f], None).await?);
        }
        Ok(out)
    }

    async fn observe_snapshots(
        &self,
        stack: &ResourceName,
    ) -> Result<Vec<ObservedSnapshot>, CloudError> {
        self.describe_snapshots(vec![stack_filter(stack)]).await
    }

    async fn describe_snapshots(
        &self,
        filters: Vec<Filter>,
    ) -> Result<Vec<ObservedSnapshot>, CloudError> {
        let mut pages = self
            .ec2
            .describe_snapshots()
            .owner_ids("self")
            .set_filters(Some(filters))
            .max_results(1000)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("DescribeSnapshots", e))?;
            for s in page.snapshots() {
                out.extend(snapshot(s)?);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    pub(super) async fn describe_snapshot(
        &self,
        id: &SnapshotId,
    ) -> Result<Option<ObservedSnapshot>, CloudError> {
        let f = filter("snapshot-id", [id.to_string()]);
        Ok(self.describe_snapshots(vec![f]).await?.into_iter().next())
    }

    async fn observe_groups(&self, stack: &ResourceName) -> Result<Vec<ObservedGroup>, CloudError> {
        let mut pages = self
            .ec2
            .describe_security_groups()
            .filters(stack_filter(stack))
            .max_results(1000)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("DescribeSecurityGroups", e))?;
            for g in page.security_groups() {
                let t = read_tags(g.tags());
                let Some(owner) = owned(&t, stack, Kind::SecurityGroup) else {
                    continue;
                };
                let Some(id) = g.group_id() else { continue };
                let mut ingress: Vec<CloudRule> = Vec::new();
                for p in g.ip_permissions() {
                    ingress.extend(rules_of(p)?);
                }
                ingress.sort();
                ingress.dedup();
                out.push(ObservedGroup {
                    id: answered_id("DescribeSecurityGroups", id)?,
                    cloud_name: answered_id(
                        "DescribeSecurityGroups",
                        g.group_name().unwrap_or_default(),
                    )?,
                    owner,
                    description: g.description().unwrap_or_default().to_owned(),
                    vpc: answered_id("DescribeSecurityGroups", g.vpc_id().unwrap_or_default())?,
                    ingress,
                    tags: t,
                });
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn observe_key_pairs(
        &self,
        stack: &ResourceName,
    ) -> Result<Vec<ObservedKeyPair>, CloudError> {
        // DescribeKeyPairs is not paginated.
        let out = self
            .ec2
            .describe_key_pairs()
            .filters(stack_filter(stack))
            .include_public_key(true)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeKeyPairs", e))?;
        let mut v: Vec<ObservedKeyPair> = Vec::new();
        for k in out.key_pairs() {
            let t = read_tags(k.tags());
            let owner = owned(&t, stack, Kind::KeyPair);
            let (Some(owner), Some(id), Some(name)) = (owner, k.key_pair_id(), k.key_name()) else {
                continue;
            };
            v.push(ObservedKeyPair {
                id: answered_id("DescribeKeyPairs", id)?,
                cloud_name: answered_id("DescribeKeyPairs", name)?,
                owner,
                public_key: k.public_key().map(|p| p.trim().to_owned()),
                tags: t,
            });
        }
        v.sort_by(|a, b| a.cloud_name.cmp(&b.cloud_name));
        Ok(v)
    }

    /// A key pair by name: its ID and tags, if it exists.
    async fn key_pair(&self, name: &str) -> Result<Option<(String, Tags)>, CloudError> {
        let out = self
            .ec2
            .describe_key_pairs()
            .filters(filter("key-name", [name.to_owned()]))
            .send()
            .await
            .map_err(|e| sdk_error("DescribeKeyPairs", e))?;
        Ok(out
            .key_pairs()
            .first()
            .and_then(|k| Some((k.key_pair_id()?.to_owned(), read_tags(k.tags())))))
    }

    pub(super) async fn import_key_pair(
        &self,
        name: &KeyName,
        public_key: &str,
        tags: &Tags,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "ImportKeyPair";
        let r = self
            .ec2
            .import_key_pair()
            .key_name(name.as_str())
            .public_key_material(Blob::new(public_key.trim().as_bytes()))
            .tag_specifications(tag_spec(ResourceType::KeyPair, tags))
            .send()
            .await;
        match r {
            Ok(_) => Ok(Outcome::Done),
            Err(e) => {
                let e = sdk_error(OP, e);
                if e.kind != ErrorKind::AlreadyExists {
                    return Err(e);
                }
                // A key pair of that name exists: done if it is this one
                // (an interrupted apply), refused if it is not converge's.
                match self.key_pair(name.as_str()).await? {
                    Some((_, t))
                        if Owner::from_tags(&t).is_some()
                            && Owner::from_tags(&t) == Owner::from_tags(tags) =>
                    {
                        Err(e)
                    }
                    _ => Err(refuse(
                        OP,
                        &e.code,
                        format!(
                            "key pair {name} exists and is not this stack's (no matching converge tags)"
                        ),
                    )),
                }
            }
        }
    }

    pub(super) async fn delete_key_pair(&self, name: &KeyName) -> Result<Outcome, CloudError> {
        self.ec2
            .delete_key_pair()
            .key_name(name.as_str())
            .send()
            .await
            .map_err(|e| sdk_error("DeleteKeyPair", e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn create_group(
        &self,
        name: &GroupName,
        vpc: &VpcId,
        description: &str,
        tags: &Tags,
    ) -> Result<Outcome, CloudError> {
        // The VPC is always named: in an account without a default VPC a
        // group without one fails with VPCIdNotSpecified.
        let out = self
            .ec2
            .create_security_group()
            .group_name(name.as_str())
            .vpc_id(vpc.as_str())
            .description(description)
            .tag_specifications(tag_spec(ResourceType::SecurityGroup, tags))
            .send()
            .await
            .map_err(|e| sdk_error("CreateSecurityGroup", e));
        let out = match out {
            Ok(out) => out,
            // An earlier attempt whose answer was lost (the SDK sent it
            // again) made the group: ours if its tags say so.
            Err(e) if e.kind == ErrorKind::AlreadyExists => {
                return match self.owned_group(name, vpc, tags).await? {
                    Some(id) => Ok(Outcome::Group(answered_id("CreateSecurityGroup", &id)?)),
                    None => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        let id = out.group_id().ok_or_else(|| {
            CloudError::new(
                ErrorKind::Unavailable,
                "CreateSecurityGroup",
                "MissingGroupId",
                "the response carried no group ID",
            )
        })?;
        Ok(Outcome::Group(answered_id("CreateSecurityGroup", id)?))
    }

    /// The ID of the group of the name in the VPC, if there is one and
    /// its converge tags are `tags`'.
    async fn owned_group(
        &self,
        name: &GroupName,
        vpc: &VpcId,
        tags: &Tags,
    ) -> Result<Option<String>, CloudError> {
        let out = self
            .ec2
            .describe_security_groups()
            .filters(filter("group-name", [name.to_string()]))
            .filters(filter("vpc-id", [vpc.to_string()]))
            .send()
            .await
            .map_err(|e| sdk_error("DescribeSecurityGroups", e))?;
        let want = Owner::from_tags(tags);
        Ok(out
            .security_groups()
            .iter()
            .find(|g| want.is_some() && Owner::from_tags(&read_tags(g.tags())) == want)
            .and_then(|g| g.group_id().map(str::to_owned)))
    }

    pub(super) async fn authorize(
        &self,
        group: &GroupId,
        rules: &[CloudRule],
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "AuthorizeSecurityGroupIngress";
        let call = |rules: Vec<IpPermission>| {
            self.ec2
                .authorize_security_group_ingress()
                .group_id(group.as_str())
                .set_ip_permissions(Some(rules))
                .send()
        };
        match call(rules.iter().map(permission).collect()).await {
            Ok(_) => Ok(Outcome::Done),
            Err(e) => {
                let e = sdk_error(OP, e);
                if e.kind != ErrorKind::AlreadyExists || rules.len() < 2 {
                    return Err(e);
                }
                // The call is all or nothing: one rule that exists already
                // refuses the others. Add them one by one.
                for r in rules {
                    match call(vec![permission(r)]).await {
                        Ok(_) => {}
                        Err(e) => {
                            let e = sdk_error(OP, e);
                            if e.kind != ErrorKind::AlreadyExists {
                                return Err(e);
                            }
                        }
                    }
                }
                Ok(Outcome::Done)
            }
        }
    }

    pub(super) async fn revoke(
        &self,
        group: &GroupId,
        rules: &[CloudRule],
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "RevokeSecurityGroupIngress";
        let call = |rules: Vec<IpPermission>| {
            self.ec2
                .revoke_security_group_ingress()
                .group_id(group.as_str())
                .set_ip_permissions(Some(rules))
                .send()
        };
        match call(rules.iter().map(permission).collect()).await {
            Ok(_) => Ok(Outcome::Done),
            Err(e) => {
                let e = sdk_error(OP, e);
                if e.code != "InvalidPermission.NotFound" {
                    return Err(e);
                }
                // Some are gone already: revoke the rest one by one.
                for r in rules {
                    if let Err(e) = call(vec![permission(r)]).await {
                        let e = sdk_error(OP, e);
                        if e.code != "InvalidPermission.NotFound" {
                            return Err(e);
                        }
                    }
                }
                Ok(Outcome::Done)
            }
        }
    }

    pub(super) async fn delete_group(&self, group: &GroupId) -> Result<Outcome, CloudError> {
        self.ec2
            .delete_security_group()
            .group_id(group.as_str())
            .send()
            .await
            .map_err(|e| sdk_error("DeleteSecurityGroup", e))?;
        Ok(Outcome::Done)
    }

    /// The EC2 resource ID a tag target names (a key pair by its name
    /// needs one describe).
    async fn ec2_resource(
        &self,
        target: &TagTarget,
        op: &'static str,
    ) -> Result<String, CloudError> {
        Ok(match target {
            TagTarget::Instance(i) => i.to_string(),
            TagTarget::Volume(v) => v.to_string(),
            TagTarget::Group(g) => g.to_string(),
            TagTarget::Vpc(v) => v.to_string(),
            TagTarget::Subnet(s) => s.to_string(),
            TagTarget::KeyPair(name) => match self.key_pair(name.as_str()).await? {
                Some((id, _)) => id,
                None => {
                    return Err(CloudError::new(
                        ErrorKind::NotFound,
                        op,
                        "InvalidKeyPair.NotFound",
                        format!("key pair {name} does not exist"),
                    ));
                }
            },
            other => {
                return Err(refuse(
                    op,
                    "InvalidTarget",
                    format!("{other:?} is not an EC2 resource"),
                ));
            }
        })
    }

    pub(super) async fn ec2_tag(
        &self,
        target: &TagTarget,
        tags: &Tags,
    ) -> Result<Outcome, CloudError> {
        let id = self.ec2_resource(target, "CreateTags").await?;
        self.ec2
            .create_tags()
            .resources(id)
            .set_tags(Some(ec2_tags(tags)))
            .send()
            .await
            .map_err(|e| sdk_error("CreateTags", e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn ec2_untag(
        &self,
        target: &TagTarget,
        keys: &[String],
    ) -> Result<Outcome, CloudError> {
        let id = self.ec2_resource(target, "DeleteTags").await?;
        self.ec2
            .delete_tags()
            .resources(id)
            .set_tags(Some(
                keys.iter().map(|k| Tag::builder().key(k).build()).collect(),
            ))
            .send()
            .await
            .map_err(|e| sdk_error("DeleteTags", e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn run_instances(&self, l: Launch<'_>) -> Result<Outcome, CloudError> {
        let count = i32::try_from(l.count).unwrap_or(i32::MAX);
        let groups: Vec<String> = l.groups.iter().map(|g| g.to_string()).collect();
        let req = self
            .ec2
            .run_instances()
            .image_id(l.image)
            .instance_type(aws_sdk_ec2::types::InstanceType::from(l.instance_type))
            .set_key_name(l.key_name.map(str::to_owned));
        // An explicit public address needs the network interface spec
        // (device 0), and then the subnet and groups go in the interface,
        // not at the top level: EC2 refuses both
        // (<https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_InstanceNetworkInterfaceSpecification.html>:
        // "you cannot specify this option and the network interfaces
        // option in the same request" for SubnetId and SecurityGroupIds).
        // A declared private address goes where the subnet goes: in the
        // interface spec with one, else at the top level (EC2 takes it only
        // for a single instance; the executor sends one per call).
        let private_ip = l.private_ip.map(|a| a.to_string());
        let req = match (l.public_ip, l.subnet) {
            (Some(public), subnet) => req.network_interfaces(
                aws_sdk_ec2::types::InstanceNetworkInterfaceSpecification::builder()
                    .device_index(0)
                    .set_subnet_id(subnet.map(|s| s.to_string()))
                    .set_groups(Some(groups))
                    .associate_public_ip_address(public)
                    .set_private_ip_address(private_ip)
                    .delete_on_termination(true)
                    .build(),
            ),
            (None, subnet) => req
                .set_subnet_id(subnet.map(|s| s.to_string()))
                .set_security_group_ids(Some(groups))
                .set_private_ip_address(private_ip),
        };
        let out = req
            .set_user_data(
                (!l.user_data.is_empty())
                    .then(|| aws_smithy_types::base64::encode(l.user_data.as_bytes())),
            )
            .placement(
                Placement::builder()
                    .availability_zone(l.zone.as_str())
                    .build(),
            )
            .min_count(count)
            .max_count(count)
            .client_token(l.client_token)
            .tag_specifications(tag_spec(ResourceType::Instance, l.tags))
            .set_iam_instance_profile(l.instance_profile.map(profile_spec))
            .metadata_options(
                InstanceMetadataOptionsRequest::builder()
                    .http_tokens(http_tokens(l.metadata))
                    .http_put_response_hop_limit(i32::from(l.metadata.hop_limit))
                    .http_endpoint(InstanceMetadataEndpointState::Enabled)
                    .build(),
            )
            .set_block_device_mappings(l.root_volume.map(|r| vec![root_mapping(r)]))
            .send()
            .await
            .map_err(|e| sdk_error("RunInstances", e))?;
        let mut launched: Vec<Launched> = out
            .instances()
            .iter()
            .filter_map(|i| {
                let id = i.instance_id()?;
                Some(answered_id("RunInstances", id).map(|id| Launched {
                    id,
                    private_ip: i.private_ip_address().and_then(|a| a.parse().ok()),
                }))
            })
            .collect::<Result<_, _>>()?;
        launched.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Outcome::Instances(launched))
    }

    pub(super) async fn terminate(&self, ids: &[InstanceId]) -> Result<Outcome, CloudError> {
        const OP: &str = "TerminateInstances";
        if ids.is_empty() {
            return Ok(Outcome::Done);
        }
        let call = |ids: Vec<String>| {
            self.ec2
                .terminate_instances()
                .set_instance_ids(Some(ids))
                .send()
        };
        match call(ids.iter().map(|i| i.to_string()).collect()).await {
            Ok(_) => Ok(Outcome::Done),
            Err(e) => {
                let e = sdk_error(OP, e);
                if e.kind != ErrorKind::NotFound || ids.len() < 2 {
                    return Err(e);
                }
                // One unknown ID fails the whole call (and the executor
                // takes "not found" on a delete as done): terminate the
                // ones that still exist.
                let left: Vec<String> = self
                    .describe_instances_by_id(ids)
                    .await?
                    .into_iter()
                    .filter(|i| i.state != InstanceState::Terminated)
                    .map(|i| i.id.to_string())
                    .collect();
                if left.is_empty() {
                    return Ok(Outcome::Done);
                }
                call(left).await.map_err(|e| sdk_error(OP, e))?;
                Ok(Outcome::Done)
            }
        }
    }

    pub(super) async fn set_instance_groups(
        &self,
        instance: &InstanceId,
        groups: &[GroupId],
    ) -> Result<Outcome, CloudError> {
        self.ec2
            .modify_instance_attribute()
            .instance_id(instance.as_str())
            .set_groups(Some(groups.iter().map(|g| g.to_string()).collect()))
            .send()
            .await
            .map_err(|e| sdk_error("ModifyInstanceAttribute", e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn modify_metadata_options(
        &self,
        instance: &InstanceId,
        m: MetadataOptions,
    ) -> Result<Outcome, CloudError> {
        // Both values always: an option left out keeps its value on AWS,
        // but moto resets it to EC2's default.
        self.ec2
            .modify_instance_metadata_options()
            .instance_id(instance.as_str())
            .http_tokens(http_tokens(m))
            .http_put_response_hop_limit(i32::from(m.hop_limit))
            .http_endpoint(InstanceMetadataEndpointState::Enabled)
            .send()
            .await
            .map_err(|e| sdk_error("ModifyInstanceMetadataOptions", e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn associate_profile(
        &self,
        instance: &InstanceId,
        profile: &InstanceProfile,
    ) -> Result<Outcome, CloudError> {
        self.ec2
            .associate_iam_instance_profile()
            .instance_id(instance.as_str())
            .iam_instance_profile(profile_spec(profile))
            .send()
            .await
            .map_err(|e| sdk_error("AssociateIamInstanceProfile", e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn replace_profile(
        &self,
        association: &AssociationId,
        profile: &InstanceProfile,
    ) -> Result<Outcome, CloudError> {
        self.ec2
            .replace_iam_instance_profile_association()
            .association_id(association.as_str())
            .iam_instance_profile(profile_spec(profile))
            .send()
            .await
            .map_err(|e| sdk_error("ReplaceIamInstanceProfileAssociation", e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn disassociate_profile(
        &self,
        association: &AssociationId,
    ) -> Result<Outcome, CloudError> {
        self.ec2
            .disassociate_iam_instance_profile()
            .association_id(association.as_str())
            .send()
            .await
            .map_err(|e| sdk_error("DisassociateIamInstanceProfile", e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn create_volume(&self, v: &NewVolume<'_>) -> Result<Outcome, CloudError> {
        let out = self
            .ec2
            .create_volume()
            .availability_zone(v.zone.as_str())
            .size(i32::try_from(v.size_gib).unwrap_or(i32::MAX))
            .volume_type(aws_sdk_ec2::types::VolumeType::from(v.volume_type.as_str()))
            .set_snapshot_id(v.snapshot.map(|s| s.to_string()))
            // Always sent, so that the account's encryption-by-default
            // setting never decides what the manifest says.
            .encrypted(v.encrypted)
            .set_kms_key_id(v.kms_key.map(|k| k.to_string()))
            .set_iops(v.iops.map(|n| i32::try_from(n).unwrap_or(i32::MAX)))
            .set_throughput(v.throughput.map(|n| i32::try_from(n).unwrap_or(i32::MAX)))
            .client_token(v.client_token)
            .tag_specifications(tag_spec(ResourceType::Volume, v.tags))
            .send()
            .await
            .map_err(|e| sdk_error("CreateVolume", e))?;
        let id = out.volume_id().ok_or_else(|| {
            CloudError::new(
                ErrorKind::Unavailable,
                "CreateVolume",
                "MissingVolumeId",
                "the response carried no volume ID",
            )
        })?;
        Ok(Outcome::Volume(answered_id("CreateVolume", id)?))
    }

    /// One ModifyVolume with every field that changes; answers when the
    /// modification started, for the executor's wait.
    pub(super) async fn modify_volume(
        &self,
        volume: &VolumeId,
        size_gib: u32,
        volume_type: VolumeType,
        iops: Option<u32>,
        throughput: Option<u32>,
    ) -> Result<Outcome, CloudError> {
        let out = self
            .ec2
            .modify_volume()
            .volume_id(volume.as_str())
            .size(i32::try_from(size_gib).unwrap_or(i32::MAX))
            .volume_type(aws_sdk_ec2::types::VolumeType::from(volume_type.as_str()))
            .set_iops(iops.map(|n| i32::try_from(n).unwrap_or(i32::MAX)))
            .set_throughput(throughput.map(|n| i32::try_from(n).unwrap_or(i32::MAX)))
            .send()
            .await
            .map_err(|e| sdk_error("ModifyVolume", e))?;
        let started_at = timestamp(out.volume_modification().and_then(|m| m.start_time()));
        Ok(Outcome::Modification { started_at })
    }

    pub(super) async fn attach_volume(
        &self,
        volume: &VolumeId,
        instance: &InstanceId,
        device: &str,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "AttachVolume";
        // Read both (two calls, concurrently): AWS refuses a volume in
        // another zone, moto does not, so converge checks; and an earlier,
        // interrupted apply may have attached it already.
        let (vols, insts) = tokio::try_join!(
            self.describe_volumes_by_id(std::slice::from_ref(volume)),
            self.describe_instances_by_id(std::slice::from_ref(instance)),
        )?;
        let (Some(v), Some(i)) = (vols.first(), insts.first()) else {
            let what = if vols.is_empty() {
                volume.to_string()
            } else {
                instance.to_string()
            };
            return Err(CloudError::new(
                ErrorKind::NotFound,
                OP,
                if vols.is_empty() {
                    "InvalidVolume.NotFound"
                } else {
                    "InvalidInstanceID.NotFound"
                },
                format!("{what} does not exist (or is not visible yet)"),
            ));
        };
        check_same_zone(volume, &v.zone, instance, &i.zone)?;
        if let Some(a) = &v.attachment {
            if a.instance == *instance {
                return Ok(Outcome::Done);
            }
            return Err(CloudError::new(
                ErrorKind::InvalidState,
                OP,
                "VolumeInUse",
                format!("volume {volume} is attached to {}", a.instance),
            ));
        }
        self.ec2
            .attach_volume()
            .volume_id(volume.as_str())
            .instance_id(instance.as_str())
            .device(device)
            .send()
            .await
            .map_err(|e| sdk_error(OP, e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn detach_volume(
        &self,
        volume: &VolumeId,
        instance: &InstanceId,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "DetachVolume";
        match self
            .ec2
            .detach_volume()
            .volume_id(volume.as_str())
            // Always named: never detach it from some other instance.
            .instance_id(instance.as_str())
            .send()
            .await
        {
            Ok(_) => Ok(Outcome::Done),
            Err(e) => {
                let e = sdk_error(OP, e);
                if e.kind != ErrorKind::InvalidState {
                    return Err(e);
                }
                // "IncorrectState": done if it is no longer attached there.
                let v = self
                    .describe_volumes_by_id(std::slice::from_ref(volume))
                    .await?;
                match v.first() {
                    Some(v)
                        if v.attachment
                            .as_ref()
                            .is_some_and(|a| a.instance == *instance) =>
                    {
                        Err(e)
                    }
                    _ => Ok(Outcome::Done),
                }
            }
        }
    }

    pub(super) async fn delete_volume(&self, volume: &VolumeId) -> Result<Outcome, CloudError> {
        self.ec2
            .delete_volume()
            .volume_id(volume.as_str())
            .send()
            .await
            .map_err(|e| sdk_error("DeleteVolume", e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn create_snapshot(
        &self,
        volume: &VolumeId,
        description: &str,
        tags: &Tags,
    ) -> Result<Outcome, CloudError> {
        let out = self
            .ec2
            .create_snapshot()
            .volume_id(volume.as_str())
            .description(description)
            .tag_specifications(tag_spec(ResourceType::Snapshot, tags))
            .send()
            .await
            .map_err(|e| sdk_error("CreateSnapshot", e))?;
        let id = out.snapshot_id().ok_or_else(|| {
            CloudError::new(
                ErrorKind::Unavailable,
                "CreateSnapshot",
                "MissingSnapshotId",
                "the response carried no snapshot ID",
            )
        })?;
        Ok(Outcome::Snapshot(answered_id("CreateSnapshot", id)?))
    }

    pub(super) async fn delete_snapshot(
        &self,
        snapshot: &SnapshotId,
    ) -> Result<Outcome, CloudError> {
        self.ec2
            .delete_snapshot()
            .snapshot_id(snapshot.as_str())
            .send()
            .await
            .map_err(|e| sdk_error("DeleteSnapshot", e))?;
        Ok(Outcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_attaches_only_in_its_zone() {
        let v = VolumeId::from("vol-1");
        let i = InstanceId::from("i-1");
        let a = Zone::from("us-east-1a");
        let b = Zone::from("us-east-1b");
        assert!(check_same_zone(&v, &a, &i, &a).is_ok());
        let e = check_same_zone(&v, &a, &i, &b).expect_err("zone mismatch");
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert_eq!(e.operation, "AttachVolume");
        assert_eq!(e.code, "InvalidVolume.ZoneMismatch");
        assert!(e.message.contains("us-east-1a") && e.message.contains("us-east-1b"));
    }

    #[test]
    fn rules_round_trip_through_permissions() {
        let rules = [
            CloudRule {
                protocol: Protocol::Tcp,
                ports: Some((80, 80)),
                source: CloudSource::Cidr("0.0.0.0/0".into()),
            },
            CloudRule {
                protocol: Protocol::Udp,
                ports: Some((8100, 8101)),
                source: CloudSource::Group(GroupId::from("sg-1")),
            },
            CloudRule {
                protocol: Protocol::Icmp,
                ports: None,
                source: CloudSource::Cidr("10.0.0.0/8".into()),
            },
            CloudRule {
                protocol: Protocol::All,
                ports: None,
                source: CloudSource::Group(GroupId::from("sg-2")),
            },
        ];
        for r in rules {
            assert_eq!(
                rules_of(&permission(&r)).expect("rules"),
                vec![r.clone()],
                "{r:?}"
            );
        }
    }

    #[test]
    fn a_permission_with_many_sources_is_many_rules() {
        let p = IpPermission::builder()
            .ip_protocol("6")
            .from_port(22)
            .to_port(22)
            .ip_ranges(IpRange::builder().cidr_ip("203.0.113.7/32").build())
            .ip_ranges(IpRange::builder().cidr_ip("198.51.100.0/24").build())
            .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-9").build())
            .build();
        let rules = rules_of(&p).expect("rules");
        assert_eq!(rules.len(), 3);
        assert!(
            rules
                .iter()
                .all(|r| r.protocol == Protocol::Tcp && r.ports == Some((22, 22)))
        );
    }

    #[test]
    fn states_map_from_the_api() {
        use aws_sdk_ec2::types::InstanceStateName as S;
        assert_eq!(instance_state(Some(&S::Pending)), InstanceState::Pending);
        assert_eq!(instance_state(Some(&S::Running)), InstanceState::Running);
        assert_eq!(instance_state(Some(&S::Stopping)), InstanceState::Stopped);
        assert_eq!(
            instance_state(Some(&S::Terminated)),
            InstanceState::Terminated
        );
    }
}
