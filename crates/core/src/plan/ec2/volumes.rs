//! Planning EBS volumes: created in their declared zone (a zone change
//! creates a new one), grown and retyped in place, detached when no fleet
//! claims them; copies that go are deleted after a final snapshot or kept,
//! as their deletion policy says. Attaching a volume to its fleet's
//! instance is planned with the fleet.

use crate::desired::{DeletionPolicy, Desired, Encryption, Tags, VolumeSpec};
use crate::ebs::{KmsKeyForm, MODIFICATION_COOLDOWN};
use crate::ids::{InstanceId, Kind, ResourceKey, ResourceName, VolumeId, tags};
use crate::observed::{ObservedAttachment, ObservedVolume};
use crate::plan::{
    BlockedChange, ChangeAction, FieldDiff, ModificationWait, Note, Planner, SnapshotPurpose, Step,
    StepId, TagTarget, Value, VolumeRef, update_if,
};
use crate::spec_hash::short_digest;
use jiff::Timestamp;

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
        let blocked = match current {
            None => self.blocked_restore(spec),
            Some(_) => None,
        };
        if let Some(note) = blocked {
            // Not created, so the copies elsewhere stay: they are the
            // data the new one would replace.
            let c = self.change(
                ResourceKey::new(Kind::Volume, name.clone()),
                ChangeAction::NoChange,
            );
            c.notes.push(note);
            return;
        }
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

    /// Why a new volume cannot be created as declared: restored from one
    /// of converge's snapshots that is encrypted, while the manifest says
    /// `encrypted: false` (AWS encrypts a volume restored from an
    /// encrypted snapshot, whatever is asked). Snapshots converge did not
    /// take are not observed: AWS (and the local cloud) refuse those.
    fn blocked_restore(&self, spec: &VolumeSpec) -> Option<Note> {
        let snapshot = spec.from_snapshot.as_ref()?;
        let encrypted = self
            .observed()
            .snapshots
            .iter()
            .any(|s| s.id == *snapshot && s.encrypted);
        (encrypted && !spec.encryption.is_encrypted()).then(|| Note::Blocked {
            field: "spec.encrypted".into(),
            reason: BlockedChange::EncryptedSnapshot {
                snapshot: snapshot.clone(),
            },
        })
    }

    /// A volume with no copy in its declared zone: created there (a
    /// replacement when copies exist elsewhere).
    fn new_volume(
        &mut self,
        name: &ResourceName,
        spec: &VolumeSpec,
        mine: &[&ObservedVolume],
        mut tags: Tags,
    ) {
        let key = ResourceKey::new(Kind::Volume, name.clone());
        if spec.encryption.is_encrypted() {
            // The key as named at creation: EC2 reports only the key's
            // ARN, and only KMS knows which key an alias names.
            tags.insert(tags::KMS_KEY.to_owned(), key_as_declared(&spec.encryption));
        }
        let (iops, throughput) = (spec.target_iops(), spec.target_throughput());
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
            &encryption_text(&spec.encryption),
            &iops.map(|n| n.to_string()).unwrap_or_default(),
            &throughput.map(|n| n.to_string()).unwrap_or_default(),
        ]);
        let step = self.add(
            Step::CreateVolume {
                name: name.clone(),
                zone: spec.zone.clone(),
                size_gib: spec.size_gib,
                volume_type: spec.volume_type,
                from_snapshot: spec.from_snapshot.clone(),
                encryption: spec.encryption.clone(),
                iops,
                throughput,
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
        let mut set = |field: &str, value: String| {
            c.fields.push(FieldDiff {
                field: field.into(),
                before: None,
                after: Some(Value::Text(value)),
                forces_replacement: false,
            })
        };
        set("spec.sizeGiB", spec.size_gib.to_string());
        set("spec.type", spec.volume_type.as_str().into());
        if let Some(n) = iops {
            set("spec.iops", with_baseline(n, spec.iops.is_none()));
        }
        if let Some(n) = throughput {
            set(
                "spec.throughput",
                with_baseline(n, spec.throughput.is_none()),
            );
        }
        set("spec.encrypted", spec.encryption.is_encrypted().to_string());
        if spec.encryption.is_encrypted() {
            set("spec.kmsKey", key_shown(&spec.encryption));
        }
        if let Some(s) = &spec.from_snapshot {
            set("spec.fromSnapshot", s.to_string());
        }
    }

    /// The current copy of a declared volume: grown, retyped, its IOPS
    /// and throughput set in one modification (never shrunk, never
    /// re-encrypted, held back while AWS does not allow another
    /// modification yet), its tags set back.
    fn current_volume(
        &mut self,
        name: &ResourceName,
        spec: &VolumeSpec,
        v: &ObservedVolume,
        tags: Tags,
    ) {
        let key = ResourceKey::new(Kind::Volume, name.clone());
        let mut notes = blocked_changes(spec, v);
        let fields = modified_fields(spec, v);
        let mut modify = !fields.is_empty();
        if modify && let Some(wait) = modification_wait(v, self.input.at) {
            notes.push(Note::ModificationHeld {
                fields: fields.iter().map(field_change).collect(),
                wait,
            });
            modify = false;
        }
        if modify {
            self.add(
                Step::ModifyVolume {
                    name: name.clone(),
                    volume: v.id.clone(),
                    size_gib: spec.size_gib.max(v.size_gib),
                    volume_type: spec.volume_type,
                    iops: spec.target_iops(),
                    throughput: spec.target_throughput(),
                },
                [],
            );
        }
        let drift = self.tag_drift(
            &key,
            TagTarget::Volume(v.id.clone()),
            &tags,
            &v.tags,
            &[tags::KMS_KEY],
        );
        self.volumes.insert(
            name.clone(),
            VolumeState {
                volume: VolumeRef::Known(v.id.clone()),
                create_step: None,
                attached_to: v.attachment.clone(),
            },
        );
        let action = update_if(modify || drift.is_some());
        let c = self.change(key, action);
        c.fields = if modify { fields } else { Vec::new() };
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

/// What the manifest declares of a volume that converge changes in place
/// (one ModifyVolume): a larger size, another type, other IOPS or
/// throughput. A smaller size is never a change ([`blocked_changes`]).
fn modified_fields(spec: &VolumeSpec, v: &ObservedVolume) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    let mut diff = |field: &str, before: Option<String>, after: String| {
        out.push(FieldDiff {
            field: field.into(),
            before: before.map(Value::Text),
            after: Some(Value::Text(after)),
            forces_replacement: false,
        })
    };
    if spec.size_gib > v.size_gib {
        diff(
            "spec.sizeGiB",
            Some(v.size_gib.to_string()),
            spec.size_gib.to_string(),
        );
    }
    if spec.volume_type != v.volume_type {
        diff(
            "spec.type",
            Some(v.volume_type.as_str().into()),
            spec.volume_type.as_str().into(),
        );
    }
    // A type whose IOPS converge does not manage keeps what EC2 gives it
    // (gp2's IOPS follow its size).
    if let Some(n) = spec.target_iops()
        && v.iops != Some(n)
    {
        diff(
            "spec.iops",
            v.iops.map(|n| n.to_string()),
            with_baseline(n, spec.iops.is_none()),
        );
    }
    if let Some(n) = spec.target_throughput()
        && v.throughput != Some(n)
    {
        diff(
            "spec.throughput",
            v.throughput.map(|n| n.to_string()),
            with_baseline(n, spec.throughput.is_none()),
        );
    }
    out
}

/// The declared changes converge never makes to an existing volume, as
/// notes: shrinking it, turning its encryption on or off, changing its
/// key. None of them is ever done by replacing the volume.
fn blocked_changes(spec: &VolumeSpec, v: &ObservedVolume) -> Vec<Note> {
    let mut out = Vec::new();
    if spec.size_gib < v.size_gib {
        out.push(Note::Blocked {
            field: "spec.sizeGiB".into(),
            reason: BlockedChange::Shrink {
                size_gib: v.size_gib,
                declared_gib: spec.size_gib,
            },
        });
    }
    if spec.encryption.is_encrypted() != v.encrypted {
        out.push(Note::Blocked {
            field: "spec.encrypted".into(),
            reason: BlockedChange::Encryption {
                encrypted: v.encrypted,
            },
        });
    } else if v.encrypted
        && let Some(current) = other_key(&spec.encryption, v)
    {
        out.push(Note::Blocked {
            field: "spec.kmsKey".into(),
            reason: BlockedChange::KmsKey {
                current,
                declared: key_shown(&spec.encryption),
            },
        });
    }
    out
}

/// The key an encrypted volume has, if it is known not to be the declared
/// one. A key ID or key ARN is compared with the ARN EC2 reports; an alias
/// or the account's default with the key as named when converge created
/// the volume (its `converge:kms-key` tag). Without that tag an alias
/// cannot be told apart from its key: no verdict.
fn other_key(declared: &Encryption, v: &ObservedVolume) -> Option<String> {
    let key = declared.key();
    let by_arn = match (key, &v.kms_key) {
        (Some(k), Some(arn)) if matches!(k.form(), KmsKeyForm::KeyId | KmsKeyForm::KeyArn) => {
            k.matches_key_arn(arn)
        }
        _ => None,
    };
    match by_arn {
        Some(true) => None,
        Some(false) => v.kms_key.clone(),
        None => {
            let named = v.tags.get(tags::KMS_KEY)?;
            (*named != key_as_declared(declared)).then(|| match named.as_str() {
                DEFAULT_KEY_TAG => "the account's default key".to_owned(),
                other => other.to_owned(),
            })
        }
    }
}

/// The `converge:kms-key` tag's value for the account's default key.
const DEFAULT_KEY_TAG: &str = "default";

/// The key as the `converge:kms-key` tag records it.
fn key_as_declared(e: &Encryption) -> String {
    e.key()
        .map(|k| k.to_string())
        .unwrap_or_else(|| DEFAULT_KEY_TAG.to_owned())
}

/// The key as plans show it.
fn key_shown(e: &Encryption) -> String {
    e.key()
        .map(|k| k.to_string())
        .unwrap_or_else(|| "the account's default key (alias/aws/ebs)".to_owned())
}

/// The encryption as the CreateVolume token reads it.
fn encryption_text(e: &Encryption) -> String {
    match e {
        Encryption::Unencrypted => "unencrypted".into(),
        Encryption::Encrypted { .. } => format!("encrypted:{}", key_as_declared(e)),
    }
}

/// A gp3 baseline value, shown as such when the manifest leaves it out.
fn with_baseline(n: u32, defaulted: bool) -> String {
    if defaulted {
        format!("{n} (gp3 baseline)")
    } else {
        n.to_string()
    }
}

/// A field's change in one line (`spec.sizeGiB 20 → 30`), for notes.
fn field_change(f: &FieldDiff) -> String {
    let show = |v: &Option<Value>| v.as_ref().map(|v| v.to_string()).unwrap_or("(none)".into());
    format!("{} {} → {}", f.field, show(&f.before), show(&f.after))
}

/// What another modification of `v` waits for at `now`, if anything: six
/// hours since the last one started, then that one to be complete (AWS:
/// "Requirements for EBS volume modifications"; see [`crate::ebs`]).
fn modification_wait(v: &ObservedVolume, now: Timestamp) -> Option<ModificationWait> {
    let m = v.modification.as_ref()?;
    let until = m
        .started_at
        .checked_add(MODIFICATION_COOLDOWN)
        .unwrap_or(Timestamp::MAX);
    if now < until {
        return Some(ModificationWait::Cooldown {
            last_started: m.started_at,
            until,
        });
    }
    (!m.state.is_over()).then_some(ModificationWait::InProgress {
        started: m.started_at,
        state: m.state,
    })
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
