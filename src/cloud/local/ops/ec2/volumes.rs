//! EBS volumes and snapshots. Volumes go creating → available → in-use,
//! attach only in their own zone, to a running instance, one at a time;
//! snapshots go pending → completed.

use super::find_instance;
use crate::cloud::local::ops::tags::check_tags;
use crate::cloud::local::ops::{Ctx, Errs, check_zone};
use crate::cloud::local::world::{Attachment, Snapshot, Volume, VolumeToken, World};
use crate::cloud::{CloudError, Outcome};
use converge_core::desired::{Tags, VolumeType};
use converge_core::ids::{InstanceId, SnapshotId, VolumeId, Zone};
use converge_core::observed::{InstanceState, SnapshotState, VolumeState};

/// What a new volume needs (the fields of `Op::CreateVolume`).
pub(crate) struct NewVolume<'a> {
    pub zone: &'a Zone,
    pub size_gib: u32,
    pub volume_type: VolumeType,
    pub snapshot: Option<&'a SnapshotId>,
    pub tags: &'a Tags,
    pub client_token: &'a str,
}

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
        tags,
        client_token,
    } = *new;
    let request = format!("{zone}|{size_gib}|{}|{snapshot:?}", volume_type.as_str());
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
    check_size(e, size_gib, volume_type)?;
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

pub(crate) fn modify_volume(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    volume: &VolumeId,
    size_gib: u32,
    volume_type: VolumeType,
) -> Result<Outcome, CloudError> {
    let v = find_volume(w, cx, e, volume)?;
    if w.volume_state(v, cx.now) == VolumeState::Creating {
        return Err(e.state(
            "IncorrectState",
            format!("The volume '{volume}' is in the 'creating' state."),
        ));
    }
    if size_gib < v.size_gib {
        return Err(e.invalid(
            "InvalidParameterValue",
            format!(
                "New size {size_gib}GiB of volume '{volume}' cannot be smaller than its size {}GiB.",
                v.size_gib
            ),
        ));
    }
    check_size(e, size_gib, volume_type)?;
    if let Some(v) = w.volumes.get_mut(volume) {
        v.size_gib = size_gib;
        v.volume_type = volume_type;
    }
    Ok(Outcome::Done)
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
    let id: SnapshotId = e.id(format!("snap-{}", w.next_hex(17)))?;
    w.snapshots.insert(
        id.clone(),
        Snapshot {
            id: id.clone(),
            region,
            volume_id: volume.clone(),
            volume_size: size,
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
