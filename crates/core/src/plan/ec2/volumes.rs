//! Planning EBS volumes: created in their declared zone (a zone change
//! creates a new one), grown and retyped in place, detached when no fleet
//! claims them; copies that go are deleted after a final snapshot or kept,
//! as their deletion policy says. Attaching a volume to its fleet's
//! instance is planned with the fleet.

use crate::desired::{DeletionPolicy, Desired, Tags, VolumeSpec};
use crate::ids::{InstanceId, Kind, ResourceKey, ResourceName, VolumeId, tags};
use crate::observed::{ObservedAttachment, ObservedVolume};
use crate::plan::{
    ChangeAction, FieldDiff, Note, Planner, SnapshotPurpose, Step, StepId, TagTarget, Value,
    VolumeRef, update_if,
};
use crate::spec_hash::short_digest;

/// What the planner knows about a declared volume while planning fleets.
#[derive(Clone, Debug)]
pub(crate) struct VolumeState {
    /// The volume.
    pub volume: VolumeRef,
    /// The step creating it, if it is new.
    pub create_step: Option<StepId>,
    /// Where it is attached now.
    pub attached_to: Option<ObservedAttachment>,
}

impl<'a> Planner<'a> {
    /// Plans every declared volume, and marks the copies that go and the
    /// volumes the manifests no longer declare.
    pub(crate) fn volumes(&mut self) {
        let d = self.desired();
        for (name, spec) in &d.volumes {
            self.volume(name, spec);
        }
        for v in self
            .observed()
            .volumes
            .iter()
            .filter(|v| !d.volumes.contains_key(&v.owner.name))
        {
            let policy = DeletionPolicy::from_tags(&v.tags);
            self.doomed_volumes.push((v.clone(), policy, Vec::new()));
        }
    }

    /// One declared volume: its current copy (in the declared zone,
    /// attached ones first) is created or updated, the others go.
    fn volume(&mut self, name: &ResourceName, spec: &VolumeSpec) {
        let mut tags = self.tags_for(Kind::Volume, name, &spec.tags);
        tags.insert(
            tags::DELETION_POLICY.to_owned(),
            spec.deletion_policy.as_str().to_owned(),
        );
        let mine: Vec<&ObservedVolume> = self
            .observed()
            .volumes
            .iter()
            .filter(|v| v.owner.name == *name)
            .collect();
        let current = mine
            .iter()
            .filter(|v| v.zone == spec.zone)
            .min_by_key(|v| (v.attachment.is_none(), v.created_at, v.id.clone()))
            .copied();
        for extra in mine.iter().filter(|v| Some(**v) != current) {
            self.doomed_volumes
                .push(((*extra).clone(), spec.deletion_policy, Vec::new()));
        }
        match current {
            None => self.new_volume(name, spec, &mine, tags),
            Some(v) => self.current_volume(name, spec, v, tags),
        }
        // An attachment on a volume that no fleet claims any more is
        // undone; the fleet pass handles declared attachments.
        if spec.attach.is_none()
            && let Some(v) = current
            && let Some(a) = &v.attachment
        {
            let step = self.detach(name, &v.id, &a.instance, []);
            self.detaching.insert(v.id.clone(), step);
            if let Some(c) = self.changes.last_mut() {
                if c.action == ChangeAction::NoChange {
                    c.action = ChangeAction::Update;
                }
                c.fields.push(FieldDiff {
                    field: "spec.attach".into(),
                    before: Some(Value::Text(format!("{} at {}", a.instance, a.device))),
                    after: None,
                    forces_replacement: false,
                });
            }
        }
    }

    /// A volume with no copy in its declared zone: created there (a
    /// replacement when copies exist elsewhere).
    fn new_volume(
        &mut self,
        name: &ResourceName,
        spec: &VolumeSpec,
        mine: &[&ObservedVolume],
        tags: Tags,
    ) {
        let key = ResourceKey::new(Kind::Volume, name.clone());
        let token = short_digest(&[
            self.desired().stack.as_str(),
            name.as_str(),
            spec.zone.as_str(),
            &spec.size_gib.to_string(),
            spec.volume_type.as_str(),
            spec.from_snapshot
                .as_ref()
                .map(|s| s.as_str())
                .unwrap_or(""),
        ]);
        let step = self.add(
            Step::CreateVolume {
                name: name.clone(),
                zone: spec.zone.clone(),
                size_gib: spec.size_gib,
                volume_type: spec.volume_type,
                from_snapshot: spec.from_snapshot.clone(),
                tags,
                token,
            },
            [],
        );
        self.volumes.insert(
            name.clone(),
            VolumeState {
                volume: VolumeRef::Created(step),
                create_step: Some(step),
                attached_to: None,
            },
        );
        let replaced = !mine.is_empty();
        let action = if replaced {
            ChangeAction::Replace {
                because: vec!["spec.zone".into()],
            }
        } else {
            ChangeAction::Create
        };
        let c = self.change(key, action);
        c.fields.push(FieldDiff {
            field: "spec.zone".into(),
            before: mine.first().map(|v| Value::Text(v.zone.to_string())),
            after: Some(Value::Text(spec.zone.to_string())),
            forces_replacement: replaced,
        });
        c.fields.push(FieldDiff {
            field: "spec.sizeGiB".into(),
            before: None,
            after: Some(Value::Text(spec.size_gib.to_string())),
            forces_replacement: false,
        });
        c.fields.push(FieldDiff {
            field: "spec.type".into(),
            before: None,
            after: Some(Value::Text(spec.volume_type.as_str().into())),
            forces_replacement: false,
        });
        if let Some(s) = &spec.from_snapshot {
            c.fields.push(FieldDiff {
                field: "spec.fromSnapshot".into(),
                before: None,
                after: Some(Value::Text(s.to_string())),
                forces_replacement: false,
            });
        }
    }

    /// The current copy of a declared volume: grown or retyped in place
    /// (never shrunk), its tags set back.
    fn current_volume(
        &mut self,
        name: &ResourceName,
        spec: &VolumeSpec,
        v: &ObservedVolume,
        tags: Tags,
    ) {
        let key = ResourceKey::new(Kind::Volume, name.clone());
        let mut fields = Vec::new();
        let mut notes = Vec::new();
        let grow = spec.size_gib > v.size_gib;
        if spec.size_gib < v.size_gib {
            notes.push(Note::Unsupported {
                reason: format!(
                    "spec.sizeGiB {} is below the volume's {} GiB: EBS volumes cannot shrink",
                    spec.size_gib, v.size_gib
                ),
            });
        }
        let retype = spec.volume_type != v.volume_type;
        if grow || retype {
            self.add(
                Step::ModifyVolume {
                    name: name.clone(),
                    volume: v.id.clone(),
                    size_gib: spec.size_gib.max(v.size_gib),
                    volume_type: spec.volume_type,
                },
                [],
            );
            if grow {
                fields.push(FieldDiff {
                    field: "spec.sizeGiB".into(),
                    before: Some(Value::Text(v.size_gib.to_string())),
                    after: Some(Value::Text(spec.size_gib.to_string())),
                    forces_replacement: false,
                });
            }
            if retype {
                fields.push(FieldDiff {
                    field: "spec.type".into(),
                    before: Some(Value::Text(v.volume_type.as_str().into())),
                    after: Some(Value::Text(spec.volume_type.as_str().into())),
                    forces_replacement: false,
                });
            }
        }
        let drift = self.tag_drift(&key, TagTarget::Volume(v.id.clone()), &tags, &v.tags, &[]);
        self.volumes.insert(
            name.clone(),
            VolumeState {
                volume: VolumeRef::Known(v.id.clone()),
                create_step: None,
                attached_to: v.attachment.clone(),
            },
        );
        let action = update_if(grow || retype || drift.is_some());
        let c = self.change(key, action);
        c.fields = fields;
        c.notes = notes;
        Self::tag_field(c, &tags, &v.tags);
    }

    /// A `DetachVolume` step after `deps`.
    pub(crate) fn detach(
        &mut self,
        name: &ResourceName,
        volume: &VolumeId,
        instance: &InstanceId,
        deps: impl IntoIterator<Item = StepId>,
    ) -> StepId {
        self.add(
            Step::DetachVolume {
                name: name.clone(),
                volume: volume.clone(),
                instance: instance.clone(),
            },
            deps,
        )
    }

    /// Deletes (or keeps, by their policy) the volumes that go, after the
    /// instances they are attached to are terminated.
    pub(crate) fn finish_volume_deletes(&mut self) {
        let mut doomed = std::mem::take(&mut self.doomed_volumes);
        // Several cloud volumes can carry one name (an old copy left in
        // another zone). They share one change entry: deleted copies first,
        // so that the entry is a delete if any copy is deleted, and the
        // copies kept are noted on it.
        doomed.sort_by_key(|(_, policy, _)| *policy == DeletionPolicy::Retain);
        for (v, policy, deps) in doomed {
            if policy == DeletionPolicy::Retain {
                self.keep_volume(&v, policy);
            } else {
                self.delete_volume(&v, policy, deps);
            }
        }
    }

    /// A volume that goes but is kept by its policy: shown on its change
    /// entry.
    fn keep_volume(&mut self, v: &ObservedVolume, policy: DeletionPolicy) {
        let key = ResourceKey::new(Kind::Volume, v.owner.name.clone());
        let declared = self.desired().volumes.contains_key(&v.owner.name);
        match self.changes.iter_mut().find(|c| c.key == key) {
            Some(c) if matches!(c.action, ChangeAction::DeleteBlocked { .. }) => {
                c.fields.push(id_field(v))
            }
            Some(c) => c.notes.push(Note::Unsupported {
                reason: format!(
                    "the old volume {} in {} is kept by deletionPolicy retain",
                    v.id, v.zone
                ),
            }),
            None if !declared => {
                let c = self.change(key, ChangeAction::DeleteBlocked { policy });
                c.fields.push(id_field(v));
            }
            None => {}
        }
    }

    /// A volume that goes: detached (or after its instance's termination),
    /// snapshotted if its policy says so, deleted.
    fn delete_volume(&mut self, v: &ObservedVolume, policy: DeletionPolicy, mut deps: Vec<StepId>) {
        let name = v.owner.name.clone();
        let key = ResourceKey::new(Kind::Volume, name.clone());
        if let Some(a) = &v.attachment {
            match self.terminating.get(&a.instance) {
                Some(t) => deps.push(*t),
                None => deps.push(self.detach(&name, &v.id, &a.instance, [])),
            }
        }
        let mut notes = Vec::new();
        if policy == DeletionPolicy::Snapshot {
            let tags = snapshot_tags(self.desired(), &name, SnapshotPurpose::Final);
            let snap = self.add(
                Step::Snapshot {
                    name: name.clone(),
                    volume: v.id.clone(),
                    purpose: SnapshotPurpose::Final,
                    tags,
                },
                deps.clone(),
            );
            deps = vec![snap];
            notes.push(Note::FinalSnapshot);
        }
        self.add(
            Step::DeleteVolume {
                name: name.clone(),
                volume: v.id.clone(),
            },
            deps,
        );
        // The entry shows which volume goes: the resource's own for a
        // removed volume, or an old copy of a declared one (its zone
        // changed, or a stray duplicate), which is data going too.
        let c = match self.changes.iter().position(|c| c.key == key) {
            Some(i) => &mut self.changes[i],
            None => self.change(key, ChangeAction::Delete),
        };
        let mut id_field = id_field(v);
        match c.action {
            ChangeAction::NoChange => c.action = ChangeAction::Update,
            ChangeAction::Create | ChangeAction::Replace { .. } => {
                id_field.after = Some(Value::Unknown)
            }
            _ => {}
        }
        c.fields.push(id_field);
        for n in notes {
            if !c.notes.contains(&n) {
                c.notes.push(n);
            }
        }
    }
}

/// The field that names a volume that goes.
fn id_field(v: &ObservedVolume) -> FieldDiff {
    FieldDiff {
        field: "id".into(),
        before: Some(Value::Text(v.id.to_string())),
        after: None,
        forces_replacement: false,
    }
}

/// The tags of a snapshot converge takes of a volume: the stack's tags,
/// the stack's ownership tag, the volume's manifest name and why it was
/// taken. Snapshots without them are never converge's, and never touched.
pub fn snapshot_tags(desired: &Desired, volume: &ResourceName, purpose: SnapshotPurpose) -> Tags {
    let mut t = desired.tags.clone();
    t.insert(tags::STACK.into(), desired.stack.to_string());
    t.insert(tags::VOLUME.into(), volume.to_string());
    t.insert(tags::PURPOSE.into(), purpose.as_str().into());
    t
}
