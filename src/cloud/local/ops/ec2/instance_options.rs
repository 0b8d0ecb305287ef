//! EC2 instance options: what a launch sets besides the image (instance
//! profile, metadata options, root volume) with EC2's checks, and the
//! calls that change the profile and metadata options on a running
//! instance.

use super::instances::find_instance;
use crate::cloud::local::ops::iam::find_profile;
use crate::cloud::local::ops::{Ctx, Errs};
use crate::cloud::local::world::{Association, ROOT_DEVICE, ROOT_SNAPSHOT_GIB, World};
use crate::cloud::{CloudError, Outcome};
use converge_core::desired::MetadataOptions;
use converge_core::ids::{AssociationId, InstanceId, InstanceProfile};
use converge_core::plan::PlannedRootVolume;

/// Checks a launch's options as RunInstances does: the profile exists,
/// the hop limit is in range, the root volume maps the image's root
/// device, fits its type and is no smaller than the root snapshot.
pub(crate) fn check_launch_options(
    w: &World,
    e: &Errs,
    profile: Option<&InstanceProfile>,
    metadata: MetadataOptions,
    root: Option<&PlannedRootVolume>,
) -> Result<(), CloudError> {
    if let Some(p) = profile {
        find_profile(w, e, p)?;
    }
    check_hop_limit(e, metadata)?;
    if let Some(r) = root {
        check_root_volume(e, r)?;
    }
    Ok(())
}

/// `HttpPutResponseHopLimit`: "Possible values: Integers from 1 to 64"
/// (<https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_InstanceMetadataOptionsRequest.html>).
fn check_hop_limit(e: &Errs, m: MetadataOptions) -> Result<(), CloudError> {
    if MetadataOptions::HOP_LIMITS.contains(&m.hop_limit) {
        Ok(())
    } else {
        Err(e.invalid(
            "InvalidParameterValue",
            format!(
                "The HttpPutResponseHopLimit value {} is not valid. Specify a value from 1 to 64.",
                m.hop_limit
            ),
        ))
    }
}

/// A root volume mapping: on the image's root device (every image here has
/// its root on [`ROOT_DEVICE`], from an [`ROOT_SNAPSHOT_GIB`] GiB
/// snapshot), within its type's sizes, no smaller than the snapshot
/// (EC2: `InvalidBlockDeviceMapping`, "Volume of size 4GB is smaller than
/// snapshot …, expect size >= 8GB").
fn check_root_volume(e: &Errs, r: &PlannedRootVolume) -> Result<(), CloudError> {
    if r.device != ROOT_DEVICE {
        // On AWS a mapping on another device adds an empty data volume;
        // converge only ever maps the root device, so the local cloud
        // refuses anything else rather than model it.
        return Err(e.invalid(
            "InvalidBlockDeviceMapping",
            format!(
                "The device {} is not the image's root device {ROOT_DEVICE}; the local cloud maps only root volumes.",
                r.device
            ),
        ));
    }
    let v = r.volume;
    let range = v.volume_type.size_range_gib();
    if !range.contains(&v.size_gib) {
        return Err(e.invalid(
            "InvalidParameterValue",
            format!(
                "Volume of {}GiB is not valid for {}: sizes are {} to {} GiB.",
                v.size_gib,
                v.volume_type.as_str(),
                range.start(),
                range.end()
            ),
        ));
    }
    if v.size_gib < ROOT_SNAPSHOT_GIB {
        return Err(e.invalid(
            "InvalidBlockDeviceMapping",
            format!(
                "Volume of size {}GB is smaller than snapshot 'snap-root', expect size >= {ROOT_SNAPSHOT_GIB}GB",
                v.size_gib
            ),
        ));
    }
    Ok(())
}

/// A new association of `profile` (checked to exist).
pub(crate) fn new_association(
    w: &mut World,
    e: &Errs,
    profile: &InstanceProfile,
) -> Result<Association, CloudError> {
    let arn = find_profile(w, e, profile)?.arn.clone();
    let id = e.id(format!("iip-assoc-{}", w.next_hex(17)))?;
    Ok(Association { id, arn })
}

/// An instance that can still be changed: not shutting down or gone.
fn changeable<'w>(
    w: &'w World,
    cx: &Ctx<'_>,
    e: &Errs,
    id: &InstanceId,
    what: &str,
) -> Result<&'w crate::cloud::local::world::Instance, CloudError> {
    let i = find_instance(w, cx, e, id)?;
    if i.termination.is_some() {
        return Err(e.stale(
            "IncorrectInstanceState",
            format!(
                "The instance '{id}' is not in a state from which its {what} can be changed ({}).",
                i.state(cx.now).as_str()
            ),
        ));
    }
    Ok(i)
}

/// ModifyInstanceMetadataOptions.
pub(crate) fn modify_instance_metadata_options(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    instance: &InstanceId,
    metadata: MetadataOptions,
) -> Result<Outcome, CloudError> {
    changeable(w, cx, e, instance, "metadata options")?;
    check_hop_limit(e, metadata)?;
    if let Some(i) = w.instances.get_mut(instance) {
        i.metadata = metadata;
    }
    Ok(Outcome::Done)
}

/// AssociateIamInstanceProfile: only on an instance without one
/// (`IncorrectState`, "There is an existing association for instance …").
pub(crate) fn associate_iam_instance_profile(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    instance: &InstanceId,
    profile: &InstanceProfile,
) -> Result<Outcome, CloudError> {
    let i = changeable(w, cx, e, instance, "instance profile")?;
    if i.profile.is_some() {
        return Err(e.state(
            "IncorrectState",
            format!("There is an existing association for instance {instance}"),
        ));
    }
    let a = new_association(w, e, profile)?;
    if let Some(i) = w.instances.get_mut(instance) {
        i.profile = Some(a);
    }
    Ok(Outcome::Done)
}

/// The running instance holding an association.
fn holder(
    w: &World,
    cx: &Ctx<'_>,
    e: &Errs,
    association: &AssociationId,
) -> Result<InstanceId, CloudError> {
    w.instances
        .values()
        .find(|i| {
            i.region() == cx.region
                && !i.is_gone(cx.now)
                && i.profile.as_ref().is_some_and(|a| a.id == *association)
        })
        .map(|i| i.id.clone())
        .ok_or_else(|| {
            e.not_found(
                "InvalidAssociationID.NotFound",
                format!("An association with ID {association} does not exist."),
            )
        })
}

/// ReplaceIamInstanceProfileAssociation: a new association replaces the
/// old one.
pub(crate) fn replace_iam_instance_profile_association(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    association: &AssociationId,
    profile: &InstanceProfile,
) -> Result<Outcome, CloudError> {
    let instance = holder(w, cx, e, association)?;
    let a = new_association(w, e, profile)?;
    if let Some(i) = w.instances.get_mut(&instance) {
        i.profile = Some(a);
    }
    Ok(Outcome::Done)
}

/// DisassociateIamInstanceProfile.
pub(crate) fn disassociate_iam_instance_profile(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    association: &AssociationId,
) -> Result<Outcome, CloudError> {
    let instance = holder(w, cx, e, association)?;
    if let Some(i) = w.instances.get_mut(&instance) {
        i.profile = None;
    }
    Ok(Outcome::Done)
}
