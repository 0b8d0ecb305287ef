//! The last phase of planning a fleet: the change entry the plan shows
//! (what forces the replacement of its instances, its replica count, and
//! its action).

use super::placement::Placement;
use super::wanted::ROOT_VOLUME_TAG;
use super::wanted::Wanted;
use super::{Running, SENSITIVE_TAG};
use crate::desired::FleetSpec;
use crate::desired::RootVolume;
use crate::ids::{KeyName, Kind, ResourceKey, ResourceName, Zone};
use crate::observed::ObservedInstance;
use crate::plan::{ChangeAction, FieldDiff, InstanceChange, Note, Planner, TerminateReason, Value};
use std::collections::BTreeSet;

/// The fields a fleet's change entry shows, and what they say about it.
pub(super) struct Shown {
    /// The fields, in the order shown.
    fields: Vec<FieldDiff>,
    /// The fields that force the replacement of instances (or "launch
    /// spec" when only the hash says so).
    because: Vec<String>,
    /// Whether the fleet is new: nothing of it runs and it wants some.
    created: bool,
    /// Notes on what forces the replacement (a new image published under
    /// the fleet's SSM parameter).
    notes: Vec<Note>,
    /// Its instances are replaced because `--replace` asked for it.
    requested: bool,
}

impl Shown {
    /// Adds the fields that change in place on the instances that stay.
    pub(super) fn in_place(&mut self, fields: Vec<FieldDiff>) {
        self.fields.extend(fields);
    }
}

impl<'a> Planner<'a> {
    /// Records a fleet's change entry.
    pub(super) fn fleet_change(
        &mut self,
        name: &ResourceName,
        shown: Shown,
        instances: Vec<InstanceChange>,
        notes: Vec<Note>,
    ) {
        let action = if shown.created {
            ChangeAction::Create
        } else if !shown.because.is_empty() || shown.requested {
            ChangeAction::Replace {
                because: shown.because,
            }
        } else if !instances.is_empty() {
            ChangeAction::Update
        } else {
            ChangeAction::NoChange
        };
        let c = self.change(ResourceKey::new(Kind::Fleet, name.clone()), action);
        c.fields = shown.fields;
        c.instances = instances;
        c.notes = shown.notes;
        c.notes.extend(notes);
    }
}

/// What a fleet's change entry shows: the zones when instances move out
/// of a zone, the launch spec's fields that changed when outdated
/// instances are replaced, everything when it is new, and its replica
/// count when it changes.
pub(super) fn shown(
    spec: &FleetSpec,
    wanted: &Wanted<'_>,
    running: &Running<'_>,
    placement: &Placement<'_>,
) -> Shown {
    let mut fields = Vec::new();
    let mut because = Vec::new();
    let mut notes = Vec::new();
    // Instances in a zone the fleet left are replaced for that, not for
    // their launch spec: only outdated ones say what changed in it.
    let going = || {
        placement
            .replaced
            .iter()
            .map(|(_, r)| r)
            .chain(placement.retire_now.iter())
    };
    let outdated: Vec<&ObservedInstance> = going()
        .filter(|r| r.reason == TerminateReason::Outdated)
        .map(|r| r.instance)
        .collect();
    if going().any(|r| r.reason == TerminateReason::WrongZone) {
        let have: BTreeSet<&Zone> = running.live.iter().map(|i| &i.zone).collect();
        because.push("spec.zones".to_owned());
        fields.push(FieldDiff {
            field: "spec.zones".into(),
            before: Some(Value::List(have.iter().map(|z| z.to_string()).collect())),
            after: Some(Value::List(
                wanted.zones.iter().map(|z| z.to_string()).collect(),
            )),
            forces_replacement: true,
        });
    }
    if going().any(|r| r.reason == TerminateReason::WrongAddress) {
        because.push("spec.privateIps".to_owned());
        let have: BTreeSet<String> = running
            .live
            .iter()
            .filter_map(|i| i.private_ip.map(|a| a.to_string()))
            .collect();
        fields.push(FieldDiff {
            field: "spec.privateIps".into(),
            before: Some(Value::List(have.into_iter().collect())),
            after: Some(Value::List(
                spec.private_ips.iter().map(|a| a.to_string()).collect(),
            )),
            forces_replacement: true,
        });
    }
    if going().any(|r| r.reason == TerminateReason::WrongSubnet) {
        because.push("spec.subnets".to_owned());
        let have: BTreeSet<String> = running
            .live
            .iter()
            .map(|i| match &i.subnet {
                Some(s) => wanted
                    .subnet_names
                    .get(s)
                    .map_or_else(|| s.to_string(), |n| n.to_string()),
                None => "(default subnet)".to_owned(),
            })
            .collect();
        fields.push(FieldDiff {
            field: "spec.subnets".into(),
            before: Some(Value::List(have.into_iter().collect())),
            after: Some(Value::List(
                spec.subnets.iter().map(|s| s.to_string()).collect(),
            )),
            forces_replacement: true,
        });
    }
    if let Some(sample) = outdated.first() {
        launch_spec_diff(spec, wanted, sample, &mut fields, &mut because);
        if let Some(p) = &wanted.image.parameter
            && sample.image != wanted.image.id
        {
            notes.push(Note::ImagePublished {
                parameter: p.clone(),
                image: wanted.image.id.clone(),
            });
        }
    }
    let live_n = running.live.len() as u32;
    let target = wanted.target;
    let created = running.all.is_empty() && target > 0;
    if created {
        created_fields(spec, wanted, &mut fields);
        if !spec.user_data.is_empty() {
            fields.push(FieldDiff {
                field: "spec.userData".into(),
                before: None,
                after: Some(wanted.user_data.display.clone()),
                forces_replacement: false,
            });
        }
    }
    if live_n != target || created {
        fields.push(FieldDiff {
            field: "replicas".into(),
            before: (!created).then(|| Value::Text(live_n.to_string())),
            after: Some(Value::Text(target.to_string())),
            forces_replacement: false,
        });
    }
    let requested = going().any(|r| r.reason == TerminateReason::Requested);
    Shown {
        fields,
        because,
        created,
        notes,
        requested,
    }
}

/// What a new fleet's entry shows of its launch spec (user data aside):
/// the image and where it came from, the type, and every launch option,
/// defaults included, so that the plan is explicit.
fn created_fields(spec: &FleetSpec, wanted: &Wanted<'_>, fields: &mut Vec<FieldDiff>) {
    let mut set = |field: &str, value: String| {
        fields.push(FieldDiff {
            field: field.into(),
            before: None,
            after: Some(Value::Text(value)),
            forces_replacement: false,
        })
    };
    set("spec.image", wanted.image.shown());
    set("spec.instanceType", spec.instance_type.clone());
    if let Some(p) = &spec.instance_profile {
        set("spec.instanceProfile", p.to_string());
    }
    set(
        "spec.metadata.tokens",
        spec.metadata.tokens.as_str().to_owned(),
    );
    set(
        "spec.metadata.hopLimit",
        spec.metadata.hop_limit.to_string(),
    );
    if let Some(r) = &spec.root_volume {
        set("spec.rootVolume", r.to_string());
    }
}

/// A root volume as a plan shows it: the one declared, or the image's.
fn root_text(r: Option<RootVolume>) -> String {
    r.map_or_else(|| "the image's own".to_owned(), |r| r.to_string())
}

/// The launch spec's fields that differ between an outdated instance
/// (`sample`) and the fleet, each forcing replacement; "launch spec" when
/// none shows but the hash differs.
fn launch_spec_diff(
    spec: &FleetSpec,
    wanted: &Wanted<'_>,
    sample: &ObservedInstance,
    fields: &mut Vec<FieldDiff>,
    because: &mut Vec<String>,
) {
    let key_name = &wanted.key_name;
    let ud = &wanted.user_data;
    let mut diff = |field: &str, before: Option<Value>, after: Value, changed: bool| {
        if changed {
            because.push(field.to_owned());
            fields.push(FieldDiff {
                field: field.into(),
                before,
                after: Some(after),
                forces_replacement: true,
            });
        }
    };
    let image = &wanted.image.id;
    diff(
        "spec.image",
        Some(Value::Text(sample.image.to_string())),
        Value::Text(wanted.image.shown()),
        sample.image != *image,
    );
    diff(
        "spec.instanceType",
        Some(Value::Text(sample.instance_type.clone())),
        Value::Text(spec.instance_type.clone()),
        sample.instance_type != spec.instance_type,
    );
    diff(
        "spec.keyPair",
        Some(Value::Text(key_text(&sample.key_name))),
        Value::Text(key_text(key_name)),
        sample.key_name != *key_name,
    );
    // Instances launched before root volumes were declared carry no tag:
    // theirs is the image's own.
    let had_root = sample
        .tags
        .get(ROOT_VOLUME_TAG)
        .and_then(|t| RootVolume::from_tag_value(t));
    let root_changed = had_root != spec.root_volume;
    diff(
        "spec.rootVolume",
        Some(Value::Text(root_text(had_root))),
        Value::Text(root_text(spec.root_volume)),
        root_changed,
    );
    let public_changed = spec
        .public_ip
        .is_some_and(|want| want != sample.public_ip.is_some());
    if let Some(want) = spec.public_ip {
        let has = sample.public_ip.is_some();
        diff(
            "spec.publicIp",
            Some(Value::Text(has.to_string())),
            Value::Text(want.to_string()),
            has != want,
        );
    }
    let ud_changed = sample.image == *image
        && sample.instance_type == spec.instance_type
        && sample.key_name == *key_name
        && !root_changed
        && !public_changed
        || ud.text.is_none();
    let before = match (&ud.display, &sample.user_data) {
        (Value::Sensitive, _) => Some(Value::Sensitive),
        // The old user data held values from the environment: it
        // is as secret as the new one would be.
        _ if sample.tags.contains_key(SENSITIVE_TAG) => Some(Value::Sensitive),
        (_, Some(u)) => Some(Value::Multiline(u.clone())),
        (_, None) => None,
    };
    let ud_really = match (&sample.user_data, &ud.text) {
        (Some(before), Some(after)) => before != after,
        _ => ud_changed,
    };
    diff("spec.userData", before, ud.display.clone(), ud_really);
    if because.is_empty() {
        because.push("launch spec".to_owned());
    }
}

/// A key pair's cloud name as a diff shows it; none is empty.
fn key_text(k: &Option<KeyName>) -> String {
    k.as_ref().map(KeyName::to_string).unwrap_or_default()
}
