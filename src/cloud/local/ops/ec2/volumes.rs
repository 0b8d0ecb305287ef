//! EBS volumes and snapshots. Volumes go creating → available → in-use,
//! attach only in their own zone, to a running instance, one at a time;
//! they are encrypted with a KMS key (the account's `alias/aws/ebs` when
//! none is given), take IOPS and throughput by AWS's rules for their type
//! ([`converge_core::ebs`]), and are modified at most once every six hours,
//! each modification going modifying → optimizing → completed; snapshots
//! go pending → completed, encrypted as their volume was.

use super::find_instance;
use crate::cloud::local::ops::tags::check_tags;
use crate::cloud::local::ops::{Ctx, Errs, check_zone};
use crate::cloud::local::world::{
    Attachment, Modification, Snapshot, Volume, VolumeToken, World, after,
};
use crate::cloud::{CloudError, NewVolume, Outcome};
use converge_core::desired::{Tags, VolumeType};
use converge_core::ebs::{self, KmsKey, KmsKeyForm};
use converge_core::ids::{InstanceId, SnapshotId, VolumeId};
use converge_core::observed::{InstanceState, ModificationState, SnapshotState, VolumeState};
use converge_core::spec_hash::short_digest;

/// The account every local-cloud ARN names (AWS's documentation account).
pub(crate) const ACCOUNT: &str = "123456789012";
/// The alias of the account's default EBS key.
const DEFAULT_EBS_KEY: &str = "alias/aws/ebs";

pub(crate) fn create_volume(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    new: &NewVolume<'_>,
) -> Result<Outcome, CloudError> {
    let NewVolume {
        zone,
        size_gib,
        volume_type,
        snapshot,
        encrypted,
        kms_key,
        iops,
        throughput,
        tags,
        client_token,
    } = *new;
    let request = format!(
        "{zone}|{size_gib}|{}|{snapshot:?}|{encrypted}|{kms_key:?}|{iops:?}|{throughput:?}",
        volume_type.as_str()
    );
    let token_key = format!("{}/{client_token}", cx.region);
    if !client_token.is_empty()
        && let Some(t) = w.volume_tokens.get(&token_key)
    {
        if t.request != request {
            return Err(e.invalid(
                "IdempotentParameterMismatch",
                format!("The client token '{client_token}' was used with different parameters."),
            ));
        }
        return Ok(Outcome::Volume(t.id.clone()));
    }
    check_zone(cx, e, zone)?;
    check_performance(e, volume_type, size_gib, iops, throughput)?;
    if kms_key.is_some() && !encrypted {
        return Err(e.invalid(
            "InvalidParameterDependency",
            "The parameter KmsKeyId requires the parameter Encrypted to be set.",
        ));
    }
    let mut key_arn = kms_key.map(|k| key_arn(cx.region, k));
    if let Some(s) = snapshot {
        let snap = find_snapshot(w, cx, e, s)?;
        if snap.state(cx.now) != SnapshotState::Completed {
            return Err(e.state(
                "IncorrectState",
                format!("Snapshot '{s}' is in invalid state - pending"),
            ));
        }
        if size_gib < snap.volume_size {
            return Err(e.invalid(
                "InvalidParameterValue",
                format!(
                    "Volume of size {size_gib}GiB is smaller than snapshot '{s}', expect size >= {}GiB",
                    snap.volume_size
                ),
            ));
        }
        // A volume restored from an encrypted snapshot is encrypted, by
        // the snapshot's key unless another is given. AWS encrypts it
        // whatever is asked; the local cloud refuses to be asked for an
        // unencrypted one, so that a manifest saying so is caught.
        if snap.encrypted && !encrypted {
            return Err(e.invalid(
                "InvalidParameterCombination",
                format!(
                    "Snapshot '{s}' is encrypted: a volume restored from it is encrypted, Encrypted cannot be false."
                ),
            ));
        }
        if snap.encrypted && key_arn.is_none() {
            key_arn = snap.kms_key.clone();
        }
    }
    if encrypted && key_arn.is_none() {
        key_arn = Some(alias_key_arn(cx.region, DEFAULT_EBS_KEY));
    }
    check_tags(e, tags)?;
    let id: VolumeId = e.id(format!("vol-{}", w.next_hex(17)))?;
    w.volumes.insert(
        id.clone(),
        Volume {
            id: id.clone(),
            zone: zone.clone(),
            size_gib,
            volume_type,
            snapshot: snapshot.cloned(),
            encrypted,
            kms_key: key_arn,
            iops: reported_iops(volume_type, size_gib, iops),
            throughput: ebs::effective_throughput(volume_type, throughput),
            modification: None,
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

/// The IOPS EC2 reports for a volume: provisioned ones (gp3's baseline
/// when none are asked for), gp2's baseline of 3 per GiB (100 to 16,000),
/// none for the HDD and magnetic types.
fn reported_iops(t: VolumeType, size_gib: u32, iops: Option<u32>) -> Option<u32> {
    match t {
        VolumeType::Gp2 => Some(size_gib.saturating_mul(3).clamp(100, 16_000)),
        _ => ebs::effective_iops(t, iops),
    }
}

/// The ARN of the key a `KmsKeyId` names: key ARNs as given, key IDs in
/// this region and account, aliases resolved to a key of their own (the
/// same key for the same alias, as an alias names one key).
fn key_arn(region: &str, k: &KmsKey) -> String {
    match k.form() {
        KmsKeyForm::KeyArn => k.as_str().to_owned(),
        KmsKeyForm::KeyId => format!("arn:aws:kms:{region}:{ACCOUNT}:key/{k}"),
        KmsKeyForm::AliasName => alias_key_arn(region, k.as_str()),
        KmsKeyForm::AliasArn => {
            let alias = k.as_str().rsplit_once(':').map_or(k.as_str(), |(_, a)| a);
            alias_key_arn(region, alias)
        }
    }
}

/// The key an alias names in the local cloud: a key ID made from the alias.
fn alias_key_arn(region: &str, alias: &str) -> String {
    let h = format!(
        "{}{}",
        short_digest(&[region, alias]),
        short_digest(&[alias, region])
    );
    format!(
        "arn:aws:kms:{region}:{ACCOUNT}:key/{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// AWS's size, IOPS and throughput rules for the type
/// ([`converge_core::ebs`]), answered with EC2's error codes.
fn check_performance(
    e: &Errs,
    t: VolumeType,
    size: u32,
    iops: Option<u32>,
    throughput: Option<u32>,
) -> Result<(), CloudError> {
    let Some(p) = ebs::check(t, size, iops, throughput).into_iter().next() else {
        return Ok(());
    };
    let code = match p {
        ebs::Problem::IopsRequired { .. } => "MissingParameter",
        ebs::Problem::IopsNotSupported { .. } | ebs::Problem::ThroughputNotSupported { .. } => {
            "InvalidParameterCombination"
        }
        _ => "InvalidParameterValue",
    };
    Err(e.invalid(code, format!("{p}.")))
}

/// What a ModifyVolume asks for (the fields of `Op::ModifyVolume`).
pub(crate) struct VolumeChange {
    pub size_gib: u32,
    pub volume_type: VolumeType,
    pub iops: Option<u32>,
    pub throughput: Option<u32>,
}

pub(crate) fn modify_volume(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    volume: &VolumeId,
    change: &VolumeChange,
) -> Result<Outcome, CloudError> {
    let v = find_volume(w, cx, e, volume)?;
    if w.volume_state(v, cx.now) == VolumeState::Creating {
        return Err(e.state(
            "IncorrectState",
            format!("The volume '{volume}' is in the 'creating' state."),
        ));
    }
    // "Requirements for EBS volume modifications": six hours after the
    // last modification started, and once it is complete.
    if let Some(m) = &v.modification {
        // Not a state that passes within a run: retrying cannot help, the
        // next plan holds the change back until the time has come.
        if cx.now < after(m.started_at, ebs::MODIFICATION_COOLDOWN) {
            return Err(e.invalid(
                "VolumeModificationRateExceeded",
                "You've reached the maximum modification rate per volume limit. Wait at least 6 hours between modifications per EBS volume.",
            ));
        }
        let state = m.state(cx.now);
        if state != ModificationState::Completed {
            return Err(e.state(
                "IncorrectModificationState",
                format!(
                    "Cannot modify volume {volume} as it is currently being modified (state: {}).",
                    state.as_str()
                ),
            ));
        }
    }
    let VolumeChange {
        size_gib,
        volume_type,
        iops,
        throughput,
    } = *change;
    if size_gib < v.size_gib {
        return Err(e.invalid(
            "InvalidParameterValue",
            format!(
                "New size {size_gib}GiB of volume '{volume}' cannot be smaller than its size {}GiB.",
                v.size_gib
            ),
        ));
    }
    // ModifyVolume's defaults: IOPS and throughput are kept within a type,
    // 3,000 IOPS and 125 MiB/s on a change to gp3 (io1 and io2: 3,000).
    let same_type = volume_type == v.volume_type;
    let iops = iops.or(match volume_type {
        VolumeType::Gp3 | VolumeType::Io1 | VolumeType::Io2 if same_type => v.iops,
        VolumeType::Gp3 | VolumeType::Io1 | VolumeType::Io2 => Some(ebs::GP3_BASELINE_IOPS),
        _ => None,
    });
    let throughput = throughput.or(match volume_type {
        VolumeType::Gp3 if same_type => v.throughput,
        VolumeType::Gp3 => Some(ebs::GP3_BASELINE_THROUGHPUT),
        _ => None,
    });
    check_performance(e, volume_type, size_gib, iops, throughput)?;
    let modification = Modification {
        started_at: cx.now,
        optimizing_at: cx.later(cx.delays.volume),
        completed_at: cx.later(cx.delays.volume.saturating_mul(2)),
    };
    if let Some(v) = w.volumes.get_mut(volume) {
        v.size_gib = size_gib;
        v.volume_type = volume_type;
        v.iops = reported_iops(volume_type, size_gib, iops);
        v.throughput = ebs::effective_throughput(volume_type, throughput);
        v.modification = Some(modification);
    }
    Ok(Outcome::Modification { started_at: cx.now })
}

pub(crate) fn attach_volume(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    volume: &VolumeId,
    instance: &InstanceId,
    device: &str,
) -> Result<Outcome, CloudError> {
    let v = find_volume(w, cx, e, volume)?;
    let i = find_instance(w, cx, e, instance)?;
    if v.zone != i.zone {
        return Err(e.invalid(
            "InvalidVolume.ZoneMismatch",
            format!(
                "The volume '{volume}' is not in the same availability zone as instance '{instance}' ({} vs {}).",
                v.zone, i.zone
            ),
        ));
    }
    refuse_busy(w, v, cx, e, |to| {
        format!("{volume} is already attached to an instance ({to})")
    })?;
    match i.state(cx.now) {
        InstanceState::Running => {}
        InstanceState::Pending => {
            return Err(e.state(
                "IncorrectState",
                format!("Instance '{instance}' is not 'running'."),
            ));
        }
        other => {
            return Err(e.stale(
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
            device: device.to_owned(),
            attached_at: cx.now,
        });
    }
    Ok(Outcome::Done)
}

pub(crate) fn detach_volume(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    volume: &VolumeId,
    instance: &InstanceId,
) -> Result<Outcome, CloudError> {
    let v = find_volume(w, cx, e, volume)?;
    if w.attachment(v, cx.now)
        .is_none_or(|a| a.instance != *instance)
    {
        return Err(e.not_found(
            "InvalidAttachment.NotFound",
            format!("Attachment point for volume '{volume}' and instance '{instance}' not found"),
        ));
    }
    if let Some(v) = w.volumes.get_mut(volume) {
        v.attachment = None;
    }
    Ok(Outcome::Done)
}

pub(crate) fn delete_volume(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    volume: &VolumeId,
) -> Result<Outcome, CloudError> {
    let v = find_volume(w, cx, e, volume)?;
    refuse_busy(w, v, cx, e, |to| {
        format!("Volume {volume} is currently attached to {to}")
    })?;
    w.volumes.remove(volume);
    Ok(Outcome::Done)
}

/// Refuses a volume still being created (`IncorrectState`) or attached
/// (`VolumeInUse`, with the message EC2 gives for the call in hand,
/// made from the instance it is attached to).
fn refuse_busy(
    w: &World,
    v: &Volume,
    cx: &Ctx<'_>,
    e: &Errs,
    in_use: impl FnOnce(&str) -> String,
) -> Result<(), CloudError> {
    match w.volume_state(v, cx.now) {
        VolumeState::Creating => Err(e.state(
            "IncorrectState",
            format!("The volume '{}' is in the 'creating' state.", v.id),
        )),
        VolumeState::InUse => {
            let to = w
                .attachment(v, cx.now)
                .map(|a| a.instance.to_string())
                .unwrap_or_default();
            Err(e.state("VolumeInUse", in_use(&to)))
        }
        _ => Ok(()),
    }
}

pub(crate) fn create_snapshot(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    volume: &VolumeId,
    description: &str,
    tags: &Tags,
) -> Result<Outcome, CloudError> {
    let v = find_volume(w, cx, e, volume)?;
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
    check_tags(e, tags)?;
    let (region, size) = (v.region().to_owned(), v.size_gib);
    let (encrypted, kms_key) = (v.encrypted, v.kms_key.clone());
    let id: SnapshotId = e.id(format!("snap-{}", w.next_hex(17)))?;
    w.snapshots.insert(
        id.clone(),
        Snapshot {
            id: id.clone(),
            region,
            volume_id: volume.clone(),
            volume_size: size,
            encrypted,
            kms_key,
            description: description.to_owned(),
            tags: tags.clone(),
            started_at: cx.now,
            completed_at: cx.later(cx.delays.snapshot),
        },
    );
    Ok(Outcome::Snapshot(id))
}

pub(crate) fn delete_snapshot(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    snapshot: &SnapshotId,
) -> Result<Outcome, CloudError> {
    find_snapshot(w, cx, e, snapshot)?;
    w.snapshots.remove(snapshot);
    Ok(Outcome::Done)
}

pub(crate) fn find_volume<'w>(
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

pub(crate) fn find_snapshot<'w>(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names() {
        for ok in ["/dev/sdj", "/dev/sdf1", "/dev/xvdj", "/dev/sdba"] {
            assert!(check_device(ok).is_ok(), "{ok}");
        }
        for bad in ["sdj", "/dev/sd", "/dev/hda", "/dev/sdj123", "/dev/SDJ"] {
            assert!(check_device(bad).is_err(), "{bad}");
        }
    }
}
