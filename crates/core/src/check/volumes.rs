//! Volumes: deleted only if observed, if their deletion policy allows it,
//! after the final snapshot it asks for and once detached; attached to
//! one instance in their own zone, once detached from any other; detached
//! only from where they are, once, and before the instance goes; created
//! and modified only as AWS's EBS rules allow (sizes, IOPS, throughput, an
//! encrypted snapshot's restore encrypted, modifications grow only and
//! come six hours apart).

use super::{Ctx, Problem, User, listed, push};
use crate::desired::{DeletionPolicy, VolumeType};
use crate::ids::{InstanceId, VolumeId, Zone};
use crate::plan::{InstanceRef, Step, StepId, VolumeRef};
use std::collections::BTreeMap;

/// The volume steps the checks look up.
#[derive(Default)]
struct VolumeSteps<'a> {
    /// Snapshot steps by volume.
    snapshots: BTreeMap<&'a VolumeId, Vec<StepId>>,
    /// Detach steps by volume (from any instance).
    detaches: BTreeMap<&'a VolumeId, Vec<StepId>>,
    /// Detach steps by volume and instance.
    detaches_from: BTreeMap<(&'a VolumeId, &'a InstanceId), Vec<StepId>>,
}

pub(super) fn check(cx: &mut Ctx<'_>) {
    let plan = cx.plan;
    let mut v = VolumeSteps::default();
    for (i, s) in plan.graph.iter() {
        match s {
            Step::Snapshot { volume, .. } => push(&mut v.snapshots, volume, i),
            Step::DetachVolume {
                volume, instance, ..
            } => {
                push(&mut v.detaches, volume, i);
                push(&mut v.detaches_from, (volume, instance), i);
            }
            _ => {}
        }
    }
    for (i, s) in plan.graph.iter() {
        match s {
            Step::DeleteVolume { volume, .. } => delete(cx, &v, i, volume),
            Step::AttachVolume {
                volume, instance, ..
            } => attach(cx, &v, i, volume, instance),
            Step::DetachVolume {
                volume, instance, ..
            } => detach(cx, i, volume, instance),
            Step::CreateVolume {
                size_gib,
                volume_type,
                from_snapshot,
                encryption,
                iops,
                throughput,
                ..
            } => {
                ebs_rules(cx, i, *volume_type, *size_gib, *iops, *throughput);
                if let Some(snap) = from_snapshot
                    && !encryption.is_encrypted()
                    && cx
                        .observed
                        .snapshots
                        .iter()
                        .any(|o| o.id == *snap && o.encrypted)
                {
                    cx.report(Problem::UnencryptedRestore {
                        step: cx.name(i),
                        snapshot: snap.clone(),
                    });
                }
            }
            Step::ModifyVolume {
                volume,
                size_gib,
                volume_type,
                iops,
                throughput,
                ..
            } => {
                ebs_rules(cx, i, *volume_type, *size_gib, *iops, *throughput);
                modify(cx, i, volume, *size_gib);
            }
            _ => {}
        }
    }
    for ((volume, instance), steps) in &v.detaches_from {
        if steps.len() > 1 {
            cx.report(Problem::DetachedTwice {
                volume: (*volume).clone(),
                instance: (*instance).clone(),
                steps: steps.iter().map(|&s| cx.name(s)).collect(),
            });
        }
    }
}

fn delete(cx: &mut Ctx<'_>, v: &VolumeSteps<'_>, i: StepId, volume: &VolumeId) {
    let Some(&observed) = cx.index.volumes.get(volume) else {
        cx.report(Problem::DeletesUnobservedVolume {
            step: cx.name(i),
            volume: volume.clone(),
        });
        return;
    };
    let policy = match cx.desired.volumes.get(&observed.owner.name) {
        Some(spec) => spec.deletion_policy,
        None => DeletionPolicy::from_tags(&observed.tags),
    };
    if policy == DeletionPolicy::Retain {
        cx.report(Problem::RetainedDeleted {
            step: cx.name(i),
            policy,
        });
    }
    if policy == DeletionPolicy::Snapshot && !cx.order.any_before(listed(&v.snapshots, &volume), i)
    {
        cx.report(Problem::NoFinalSnapshot {
            step: cx.name(i),
            volume: volume.clone(),
        });
    }
    if let Some(a) = &observed.attachment {
        let mut freed = listed(&v.detaches, &volume).to_vec();
        freed.extend_from_slice(cx.index.terminates(&a.instance));
        freed.sort_unstable();
        if !cx.order.any_before(&freed, i) {
            cx.report(Problem::DeletedWhileInUse {
                step: cx.name(i),
                user: User::Attached(a.instance.clone()),
            });
        }
    }
}

fn attach(
    cx: &mut Ctx<'_>,
    v: &VolumeSteps<'_>,
    i: StepId,
    volume: &VolumeRef,
    instance: &InstanceRef,
) {
    let plan = cx.plan;
    let index = cx.index;
    let instance_zone: Option<&Zone> = match instance {
        InstanceRef::Known(id) => index.instances.get(id).map(|x| &x.zone),
        InstanceRef::Launched(s) => match plan.graph.step(*s) {
            Some(Step::Launch { zone, count, .. }) => {
                if *count != 1 {
                    cx.report(Problem::AttachToMany {
                        step: cx.name(i),
                        launch: cx.name(*s),
                        count: *count,
                    });
                }
                Some(zone)
            }
            _ => None,
        },
    };
    let volume_zone: Option<&Zone> = match volume {
        VolumeRef::Known(id) => index.volumes.get(id).map(|v| &v.zone),
        VolumeRef::Created(s) => match plan.graph.step(*s) {
            Some(Step::CreateVolume { zone, .. }) => Some(zone),
            _ => None,
        },
    };
    if instance_zone.is_none() || instance_zone != volume_zone {
        cx.report(Problem::AttachAcrossZones {
            step: cx.name(i),
            instance_zone: instance_zone.cloned(),
            volume_zone: volume_zone.cloned(),
        });
    }
    if let VolumeRef::Known(id) = volume
        && let Some(a) = index.volumes.get(id).and_then(|v| v.attachment.as_ref())
        && !cx
            .order
            .any_before(listed(&v.detaches_from, &(id, &a.instance)), i)
    {
        cx.report(Problem::AttachedElsewhere {
            step: cx.name(i),
            instance: a.instance.clone(),
        });
    }
}

/// The size, IOPS and throughput a create or modify step asks for keep
/// AWS's rules for the type.
fn ebs_rules(
    cx: &mut Ctx<'_>,
    i: StepId,
    t: VolumeType,
    size: u32,
    iops: Option<u32>,
    throughput: Option<u32>,
) {
    for problem in crate::ebs::check(t, size, iops, throughput) {
        cx.report(Problem::EbsRuleBroken {
            step: cx.name(i),
            problem,
        });
    }
}

/// A modification never shrinks the volume, and comes six hours after the
/// last one started, once that one is over.
fn modify(cx: &mut Ctx<'_>, i: StepId, volume: &VolumeId, size_gib: u32) {
    let Some(&observed) = cx.index.volumes.get(volume) else {
        return;
    };
    if size_gib < observed.size_gib {
        cx.report(Problem::VolumeShrunk {
            step: cx.name(i),
            volume: volume.clone(),
            from_gib: observed.size_gib,
            to_gib: size_gib,
        });
    }
    if let Some(m) = &observed.modification {
        let allowed = m
            .started_at
            .checked_add(crate::ebs::MODIFICATION_COOLDOWN)
            .is_ok_and(|t| t <= cx.plan.at);
        if !allowed || !m.state.is_over() {
            cx.report(Problem::ModifiedTooSoon {
                step: cx.name(i),
                volume: volume.clone(),
                last_started: m.started_at,
                state: m.state.as_str(),
            });
        }
    }
}

fn detach(cx: &mut Ctx<'_>, i: StepId, volume: &VolumeId, instance: &InstanceId) {
    let attached = cx
        .index
        .volumes
        .get(volume)
        .and_then(|v| v.attachment.as_ref())
        .is_some_and(|a| a.instance == *instance);
    if !attached {
        cx.report(Problem::DetachNotAttached {
            step: cx.name(i),
            volume: volume.clone(),
            instance: instance.clone(),
        });
    }
    let index = cx.index;
    for &t in index.terminates(instance) {
        if !cx.order.before(i, t) {
            cx.report(Problem::DetachAfterTerminate {
                step: cx.name(i),
                terminate: cx.name(t),
            });
        }
    }
}
