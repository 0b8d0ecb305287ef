//! The EC2 steps: key pairs, security groups and their rules, launching,
//! regrouping and terminating instances, volumes and snapshots. One
//! handler per step kind, each one idempotent attempt followed by the
//! wait the step promises (instances running, volume attached or
//! available, final snapshot completed).

use super::StepError;
use super::ctx::{Ctx, Output, answered};
use crate::cloud::{ErrorKind, Launched, Op, Outcome};
use converge_core::desired::{Encryption, Tags, VolumeType};
use converge_core::ids::{
    GroupId, GroupName, InstanceId, KeyName, ResourceName, SnapshotId, VolumeId, Zone, tags,
};
use converge_core::observed::{
    CloudRule, CloudSource, InstanceState, ModificationState, SnapshotState, VolumeState,
};
use converge_core::plan::{
    GroupRef, InstanceRef, PlannedRule, SnapshotPurpose, Step, StepId, VolumeRef, VpcRef,
    rule_ports,
};
use converge_core::spec_hash::launch_spec_hash;

// Key pairs.

/// Imports a key pair; one imported by an interrupted apply counts as done.
pub(super) async fn create_key_pair(
    ctx: &Ctx,
    cloud_name: &KeyName,
    public_key: &str,
    tags: &Tags,
) -> Result<Output, StepError> {
    let op = Op::CreateKeyPair {
        name: cloud_name.clone(),
        public_key: public_key.to_owned(),
        tags: tags.clone(),
    };
    match ctx.call(&op, false).await {
        Ok(_) => Ok(Output::None),
        // A previous, interrupted apply imported it already.
        Err(e) if e.kind == ErrorKind::AlreadyExists => Ok(Output::None),
        Err(e) => Err(e.into()),
    }
}

/// Deletes a key pair.
pub(super) async fn delete_key_pair(ctx: &Ctx, cloud_name: &KeyName) -> Result<Output, StepError> {
    let op = Op::DeleteKeyPair {
        name: cloud_name.clone(),
    };
    ctx.perform(&op, false).await
}

// Security groups.

/// Creates a security group; one this stack created in an interrupted
/// apply is found by its name and handed on.
pub(super) async fn create_group(
    ctx: &Ctx,
    name: &ResourceName,
    cloud_name: &GroupName,
    vpc: &VpcRef,
    description: &str,
    tags: &Tags,
) -> Result<Output, StepError> {
    let vpc = ctx.vpc(vpc)?;
    let op = Op::CreateGroup {
        name: cloud_name.clone(),
        vpc: vpc.clone(),
        description: description.to_owned(),
        tags: tags.clone(),
    };
    match ctx.call(&op, false).await {
        Ok(Outcome::Group(g)) => Ok(Output::Group(g)),
        Ok(other) => Err(answered("CreateSecurityGroup", &other)),
        Err(e) if e.kind == ErrorKind::AlreadyExists => {
            // Created by an interrupted apply: find it by its name.
            // Without a valid stack tag the group cannot be the stack's.
            let stack: Option<ResourceName> = tags.get(tags::STACK).and_then(|s| s.parse().ok());
            let found = match &stack {
                Some(stack) => {
                    ctx.find_after(|| async {
                        let o = ctx.cloud.observe(stack).await?;
                        Ok(o.security_groups
                            .into_iter()
                            .find(|g| g.cloud_name == *cloud_name && g.vpc == vpc)
                            .map(|g| g.id))
                    })
                    .await?
                }
                None => None,
            };
            found.map(Output::Group).ok_or_else(|| {
                StepError::Unexpected(format!(
                    "SecurityGroup/{name}: {cloud_name} exists but is not this stack's"
                ))
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Adds inbound rules, their group sources resolved to IDs; rules the
/// group has already count as added.
pub(super) async fn authorize_ingress(
    ctx: &Ctx,
    group: &GroupRef,
    rules: &[PlannedRule],
) -> Result<Output, StepError> {
    let group = ctx.group(group)?;
    let mut cloud_rules = Vec::new();
    for r in rules {
        let source = match (&r.rule.source, &r.source_group) {
            (_, Some(g)) => CloudSource::Group(ctx.group(g)?),
            (converge_core::desired::Source::Cidr(c), None) => CloudSource::Cidr(c.clone()),
            (converge_core::desired::Source::Group(g), None) => {
                return Err(StepError::Unexpected(format!(
                    "rule source SecurityGroup/{g} was not resolved"
                )));
            }
        };
        cloud_rules.push(CloudRule {
            protocol: r.rule.protocol,
            ports: rule_ports(&r.rule),
            source,
        });
    }
    let op = Op::AuthorizeIngress {
        group,
        rules: cloud_rules,
    };
    match ctx.call(&op, true).await {
        Ok(_) => Ok(Output::None),
        Err(e) if e.kind == ErrorKind::AlreadyExists => Ok(Output::None),
        Err(e) => Err(e.into()),
    }
}

/// Removes inbound rules, as the cloud holds them.
pub(super) async fn revoke_ingress(
    ctx: &Ctx,
    group: &GroupId,
    rules: &[CloudRule],
) -> Result<Output, StepError> {
    let op = Op::RevokeIngress {
        group: group.clone(),
        rules: rules.to_vec(),
    };
    ctx.perform(&op, false).await
}

/// Deletes a security group.
pub(super) async fn delete_group(ctx: &Ctx, group: &GroupId) -> Result<Output, StepError> {
    let op = Op::DeleteGroup {
        group: group.clone(),
    };
    ctx.perform(&op, false).await
}

// Instances.

/// Launches `count` instances in `zone` with the step's token, tagged
/// with the hash of what was launched (user data assembled now),
/// publishes their addresses as soon as RunInstances answers (for the
/// launches that need only those), and waits until they run; hands them
/// on. With declared addresses, one RunInstances per address (EC2 takes
/// `PrivateIpAddress` only for a single instance), each with the step's
/// token and the address as its client token.
pub(super) async fn launch(ctx: &Ctx, id: StepId, step: &Step) -> Result<Output, StepError> {
    let Step::Launch {
        zone,
        count,
        spec,
        token,
        private_ips,
        ..
    } = step
    else {
        return Err(StepError::Unexpected(format!(
            "{} is not a launch",
            step.describe()
        )));
    };
    let count = *count;
    let user_data = ctx.user_data(&spec.user_data)?;
    let groups = ctx.groups(&spec.groups)?;
    let mut tags = spec.tags.clone();
    tags.insert(
        tags::SPEC_HASH.to_owned(),
        launch_spec_hash(
            spec.image.as_str(),
            &spec.instance_type,
            spec.key_name.as_ref().map(KeyName::as_str),
            &user_data,
            spec.root_volume
                .as_ref()
                .map(|r| r.volume.tag_value())
                .as_deref(),
        ),
    );
    let op = Op::RunInstances {
        image: spec.image.to_string(),
        instance_type: spec.instance_type.clone(),
        key_name: spec.key_name.clone(),
        groups,
        user_data,
        zone: zone.clone(),
        subnet: spec.subnet.as_ref().map(|s| ctx.subnet(s)).transpose()?,
        public_ip: spec.public_ip,
        private_ip: None,
        count,
        tags,
        client_token: token.to_owned(),
        instance_profile: spec.instance_profile.clone(),
        metadata: spec.metadata,
        root_volume: spec.root_volume.clone(),
    };
    let launched = if private_ips.is_empty() {
        run_instances(ctx, &op, count).await?
    } else {
        let mut all = Vec::new();
        for ip in private_ips {
            let mut one = op.clone();
            if let Op::RunInstances {
                private_ip,
                count,
                client_token,
                ..
            } = &mut one
            {
                *private_ip = Some(*ip);
                *count = 1;
                *client_token = format!("{token}-{ip}");
            }
            all.extend(run_instances(ctx, &one, 1).await?);
        }
        all
    };
    let ids: Vec<InstanceId> = launched.iter().map(|l| l.id.clone()).collect();
    // The addresses are known now: launches that only need them (a
    // template's `${Fleet/db.privateIp}`) start while these boot.
    ctx.publish_early(id, Output::Launched(launched));
    Ok(Output::Instances(ctx.wait_running(id, &ids).await?))
}

/// One RunInstances call of `count` instances, with what it answered.
async fn run_instances(ctx: &Ctx, op: &Op, count: u32) -> Result<Vec<Launched>, StepError> {
    let launched = match ctx.call(op, true).await? {
        Outcome::Instances(launched) => launched,
        other => return Err(answered("RunInstances", &other)),
    };
    if launched.len() != count as usize {
        return Err(StepError::Unexpected(format!(
            "RunInstances started {} instance(s), {count} asked",
            launched.len()
        )));
    }
    Ok(launched)
}

/// Changes a running instance's security groups.
pub(super) async fn set_instance_groups(
    ctx: &Ctx,
    instance: &InstanceId,
    groups: &[GroupRef],
) -> Result<Output, StepError> {
    let op = Op::SetInstanceGroups {
        instance: instance.clone(),
        groups: ctx.groups(groups)?,
    };
    // Lagging: a group may be this run's, not visible yet.
    ctx.perform(&op, true).await
}

/// Changes a running instance's metadata options or instance profile in
/// place: one call each (ModifyInstanceMetadataOptions,
/// AssociateIamInstanceProfile, ReplaceIamInstanceProfileAssociation,
/// DisassociateIamInstanceProfile).
pub(super) async fn change_in_place(ctx: &Ctx, step: &Step) -> Result<Output, StepError> {
    let op = match step {
        Step::SetMetadataOptions {
            instance, metadata, ..
        } => Op::ModifyInstanceMetadataOptions {
            instance: instance.clone(),
            metadata: *metadata,
        },
        Step::AssociateInstanceProfile {
            instance, profile, ..
        } => Op::AssociateIamInstanceProfile {
            instance: instance.clone(),
            profile: profile.clone(),
        },
        Step::ReplaceInstanceProfile {
            association,
            profile,
            ..
        } => Op::ReplaceIamInstanceProfileAssociation {
            association: association.clone(),
            profile: profile.clone(),
        },
        Step::DisassociateInstanceProfile { association, .. } => {
            Op::DisassociateIamInstanceProfile {
                association: association.clone(),
            }
        }
        other => {
            return Err(StepError::Unexpected(format!(
                "{} is not an in-place change of an instance",
                other.describe()
            )));
        }
    };
    ctx.perform(&op, false).await
}

/// Terminates instances and waits until they are terminated.
pub(super) async fn terminate(
    ctx: &Ctx,
    id: StepId,
    instances: &[InstanceId],
) -> Result<Output, StepError> {
    // AWS fails a whole TerminateInstances when one ID is unknown,
    // and the executor takes NotFound on a delete as done: so only
    // the IDs the cloud still shows are sent (one batched read).
    let visible: Vec<InstanceId> = ctx
        .read(|| ctx.cloud.instances(instances))
        .await?
        .into_iter()
        .filter(|i| i.state != InstanceState::Terminated)
        .map(|i| i.id)
        .collect();
    if !visible.is_empty() {
        ctx.call(&Op::TerminateInstances { ids: visible }, false)
            .await?;
    }
    ctx.wait_until(id, "instances to terminate", || async {
        let seen = ctx.read(|| ctx.cloud.instances(instances)).await?;
        Ok(seen.iter().all(|i| i.state == InstanceState::Terminated))
    })
    .await?;
    Ok(Output::None)
}

// Volumes.

/// The fields of a `Step::CreateVolume`.
pub(super) struct NewVolume<'a> {
    pub zone: &'a Zone,
    pub size_gib: u32,
    pub volume_type: VolumeType,
    pub from_snapshot: Option<&'a SnapshotId>,
    pub encryption: &'a Encryption,
    pub iops: Option<u32>,
    pub throughput: Option<u32>,
    pub tags: &'a Tags,
    pub token: &'a str,
}

/// Creates a volume with the step's token, waits until it is available
/// and hands it on.
pub(super) async fn create_volume(
    ctx: &Ctx,
    id: StepId,
    v: &NewVolume<'_>,
) -> Result<Output, StepError> {
    let op = Op::CreateVolume {
        zone: v.zone.clone(),
        size_gib: v.size_gib,
        volume_type: v.volume_type,
        snapshot: v.from_snapshot.cloned(),
        encrypted: v.encryption.is_encrypted(),
        kms_key: v.encryption.key().cloned(),
        iops: v.iops,
        throughput: v.throughput,
        tags: v.tags.clone(),
        client_token: v.token.to_owned(),
    };
    let vol = match ctx.call(&op, false).await? {
        Outcome::Volume(v) => v,
        other => return Err(answered("CreateVolume", &other)),
    };
    ctx.wait_volume(id, &vol, VolumeState::Available, false)
        .await?;
    Ok(Output::Volume(vol))
}

/// Grows a volume, changes its type, IOPS or throughput in one
/// ModifyVolume, and waits until the modification is `optimizing` (the
/// volume is usable with its new configuration; AWS: "Monitor the
/// progress of volume modifications") or `completed`.
pub(super) async fn modify_volume(
    ctx: &Ctx,
    id: StepId,
    volume: &VolumeId,
    size_gib: u32,
    volume_type: VolumeType,
    iops: Option<u32>,
    throughput: Option<u32>,
) -> Result<Output, StepError> {
    let op = Op::ModifyVolume {
        volume: volume.clone(),
        size_gib,
        volume_type,
        iops,
        throughput,
    };
    let started_at = match ctx.call(&op, false).await? {
        Outcome::Modification { started_at } => started_at,
        other => return Err(answered("ModifyVolume", &other)),
    };
    ctx.wait_until(
        id,
        &format!("the modification of volume {volume} to be optimizing or completed"),
        || async {
            let seen = ctx
                .read(|| ctx.cloud.volumes(std::slice::from_ref(volume)))
                .await?;
            let m = seen.first().and_then(|v| v.modification.as_ref());
            match m {
                Some(m) if m.started_at >= started_at => match m.state {
                    ModificationState::Failed => Err(StepError::Unexpected(format!(
                        "the modification of volume {volume} failed"
                    ))),
                    ModificationState::Modifying => Ok(false),
                    ModificationState::Optimizing | ModificationState::Completed => Ok(true),
                },
                // Not listed yet (describes lag behind).
                _ => Ok(false),
            }
        },
    )
    .await?;
    Ok(Output::None)
}

/// Attaches a volume to exactly one instance and waits until it is in use.
pub(super) async fn attach_volume(
    ctx: &Ctx,
    id: StepId,
    volume: &VolumeRef,
    instance: &InstanceRef,
    device: &str,
) -> Result<Output, StepError> {
    let vol = ctx.volume(volume)?;
    let ids = ctx.instances(std::slice::from_ref(instance))?;
    let [inst] = ids.as_slice() else {
        return Err(StepError::Unexpected(format!(
            "a volume attaches to exactly one instance, {} given",
            ids.len()
        )));
    };
    let op = Op::AttachVolume {
        volume: vol.clone(),
        instance: inst.clone(),
        device: device.to_owned(),
    };
    ctx.call(&op, true).await?;
    ctx.wait_volume(id, &vol, VolumeState::InUse, false).await?;
    Ok(Output::None)
}

/// Detaches a volume (already detached counts as done) and waits until
/// it is available or gone.
pub(super) async fn detach_volume(
    ctx: &Ctx,
    id: StepId,
    volume: &VolumeId,
    instance: &InstanceId,
) -> Result<Output, StepError> {
    let op = Op::DetachVolume {
        volume: volume.clone(),
        instance: instance.clone(),
    };
    match ctx.call(&op, false).await {
        Ok(_) => {}
        // Already detached (the instance went, or an earlier run).
        Err(e) if matches!(e.kind, ErrorKind::NotFound) => {}
        Err(e) => return Err(e.into()),
    }
    ctx.wait_volume(id, volume, VolumeState::Available, true)
        .await?;
    Ok(Output::None)
}

/// Deletes a volume once nothing holds it any more.
pub(super) async fn delete_volume(
    ctx: &Ctx,
    id: StepId,
    volume: &VolumeId,
) -> Result<Output, StepError> {
    // An instance that was just terminated may still hold it.
    ctx.wait_volume(id, volume, VolumeState::Available, true)
        .await?;
    let op = Op::DeleteVolume {
        volume: volume.clone(),
    };
    ctx.perform(&op, false).await
}

// Snapshots.

/// Takes a snapshot of a volume; a final one is waited for until it
/// completes, a scheduled one is not.
pub(super) async fn snapshot(
    ctx: &Ctx,
    id: StepId,
    name: &ResourceName,
    volume: &VolumeId,
    purpose: SnapshotPurpose,
    tags: &Tags,
) -> Result<Output, StepError> {
    let op = Op::CreateSnapshot {
        volume: volume.clone(),
        description: format!("converge {} snapshot of Volume/{name}", purpose.as_str()),
        tags: tags.clone(),
    };
    let snap = match ctx.call(&op, false).await? {
        Outcome::Snapshot(s) => s,
        other => return Err(answered("CreateSnapshot", &other)),
    };
    // A scheduled snapshot is not waited for: a pending one
    // counts as taken, and one can take hours. A final snapshot
    // must complete before its volume is deleted.
    if purpose == SnapshotPurpose::Scheduled {
        return Ok(Output::None);
    }
    ctx.wait_until(id, &format!("snapshot {snap} to complete"), || async {
        match ctx.read(|| ctx.cloud.snapshot(&snap)).await? {
            Some(s) if s.state == SnapshotState::Error => {
                Err(StepError::Unexpected(format!("snapshot {snap} failed")))
            }
            Some(s) => Ok(s.state == SnapshotState::Completed),
            None => Ok(false),
        }
    })
    .await?;
    Ok(Output::None)
}

/// Deletes a snapshot.
pub(super) async fn delete_snapshot(ctx: &Ctx, snapshot: &SnapshotId) -> Result<Output, StepError> {
    let op = Op::DeleteSnapshot {
        snapshot: snapshot.clone(),
    };
    ctx.perform(&op, false).await
}
