//! The fourth phase of planning a fleet: drift set back in place on the
//! instances that stay: what EC2 can change on a running instance (its
//! security groups, its tags, its metadata options, its instance
//! profile), one step per change.

use super::wanted::Wanted;
use crate::desired::MetadataOptions;
use crate::ids::{GroupId, InstanceProfile, Kind, ResourceKey, ResourceName, tags};
use crate::observed::ObservedInstance;
use crate::plan::{FieldDiff, GroupRef, InstanceChange, Planner, Step, StepId, TagTarget, Value};
use std::collections::{BTreeMap, BTreeSet};

/// What changes in place on a fleet's instances that stay.
#[derive(Default)]
pub(super) struct Drift {
    /// The instance-level changes.
    pub(super) changes: Vec<InstanceChange>,
    /// The fields that change, each shown once (before: the first
    /// instance that differs).
    pub(super) fields: Vec<FieldDiff>,
}

impl Drift {
    /// Records a field's change, once per field.
    fn field(&mut self, field: &str, before: String, after: String) {
        if self.fields.iter().any(|f| f.field == field) {
            return;
        }
        self.fields.push(FieldDiff {
            field: field.to_owned(),
            before: Some(Value::Text(before)),
            after: Some(Value::Text(after)),
            forces_replacement: false,
        });
    }
}

impl<'a> Planner<'a> {
    /// Sets the groups, tags, metadata options and instance profile of
    /// the instances that stay back to what the fleet declares; returns
    /// what changes on them.
    pub(super) fn drift(
        &mut self,
        name: &ResourceName,
        wanted: &Wanted<'_>,
        staying: &[&ObservedInstance],
    ) -> Drift {
        let key = ResourceKey::new(Kind::Fleet, name.clone());
        let groups = &wanted.groups;
        let want_groups: BTreeSet<&GroupId> = groups
            .iter()
            .filter_map(|g| match g {
                GroupRef::Known(id) => Some(id),
                GroupRef::Created(_) => None,
            })
            .collect();
        let groups_pending = groups.iter().any(|g| matches!(g, GroupRef::Created(_)));
        let mut drift = Drift::default();
        let changes = &mut drift.changes;
        for i in staying {
            let have: BTreeSet<&GroupId> = i.groups.iter().collect();
            if groups_pending || have != want_groups {
                self.set_instance_groups(name, groups, i);
                changes.push(InstanceChange::SetGroups {
                    instance: i.id.clone(),
                });
            }
            let mut want_tags = wanted.tags.clone();
            if let Some(h) = &i.spec_hash {
                want_tags.insert(tags::SPEC_HASH.to_owned(), h.clone());
            }
            if self
                .tag_drift(
                    &key,
                    TagTarget::Instance(i.id.clone()),
                    &want_tags,
                    &i.tags,
                    &[tags::SPEC_HASH],
                )
                .is_some()
            {
                changes.push(InstanceChange::SetTags {
                    instance: i.id.clone(),
                });
            }
        }
        for i in staying {
            self.metadata_drift(name, wanted.launch_spec.metadata, i, &mut drift);
            self.profile_drift(
                name,
                wanted.launch_spec.instance_profile.as_ref(),
                i,
                &mut drift,
            );
        }
        // Fields in the order the manifest reference lists them.
        let order: BTreeMap<&str, usize> = [
            "spec.instanceProfile",
            "spec.metadata.tokens",
            "spec.metadata.hopLimit",
        ]
        .into_iter()
        .enumerate()
        .map(|(n, f)| (f, n))
        .collect();
        drift
            .fields
            .sort_by_key(|f| order.get(f.field.as_str()).copied());
        drift
    }

    /// Sets an instance's metadata options when they differ
    /// (ModifyInstanceMetadataOptions works on a running instance).
    fn metadata_drift(
        &mut self,
        name: &ResourceName,
        want: MetadataOptions,
        i: &ObservedInstance,
        drift: &mut Drift,
    ) {
        let have = i.metadata;
        if have == want {
            return;
        }
        if have.tokens != want.tokens {
            drift.field(
                "spec.metadata.tokens",
                have.tokens.as_str().to_owned(),
                want.tokens.as_str().to_owned(),
            );
        }
        if have.hop_limit != want.hop_limit {
            drift.field(
                "spec.metadata.hopLimit",
                have.hop_limit.to_string(),
                want.hop_limit.to_string(),
            );
        }
        self.add(
            Step::SetMetadataOptions {
                fleet: name.clone(),
                instance: i.id.clone(),
                metadata: want,
            },
            [],
        );
        drift.changes.push(InstanceChange::SetMetadataOptions {
            instance: i.id.clone(),
        });
    }

    /// Associates, replaces or removes an instance's profile when it is
    /// not the one declared: EC2 associates a profile with an instance
    /// that has none, and replaces or removes an association by its ID.
    fn profile_drift(
        &mut self,
        name: &ResourceName,
        want: Option<&InstanceProfile>,
        i: &ObservedInstance,
        drift: &mut Drift,
    ) {
        let have = i.profile.as_ref();
        let (step, change) = match (have, want) {
            (None, None) => return,
            (Some(h), Some(w)) if w.matches_arn(&h.arn) => return,
            (None, Some(w)) => (
                Step::AssociateInstanceProfile {
                    fleet: name.clone(),
                    instance: i.id.clone(),
                    profile: w.clone(),
                },
                InstanceChange::AssociateProfile {
                    instance: i.id.clone(),
                },
            ),
            (Some(h), Some(w)) => (
                Step::ReplaceInstanceProfile {
                    fleet: name.clone(),
                    instance: i.id.clone(),
                    association: h.id.clone(),
                    profile: w.clone(),
                },
                InstanceChange::ReplaceProfile {
                    instance: i.id.clone(),
                },
            ),
            (Some(h), None) => (
                Step::DisassociateInstanceProfile {
                    fleet: name.clone(),
                    instance: i.id.clone(),
                    association: h.id.clone(),
                },
                InstanceChange::DisassociateProfile {
                    instance: i.id.clone(),
                },
            ),
        };
        // The profile it has, as the manifest names profiles: by ARN when
        // it names the new one by ARN, else by name.
        let before = match (have, want) {
            (None, _) => "(none)".to_owned(),
            (Some(h), Some(w)) if w.is_arn() => h.arn.clone(),
            (Some(h), _) => h.arn.rsplit('/').next().unwrap_or(&h.arn).to_owned(),
        };
        let after = want.map_or_else(|| "(none)".to_owned(), InstanceProfile::to_string);
        drift.field("spec.instanceProfile", before, after);
        self.add(step, []);
        drift.changes.push(change);
    }

    /// Moves an instance into `groups`. A new group is joined once it
    /// exists and its rules are in, so that the instance's traffic is
    /// never cut off; the groups it leaves wait for the move.
    fn set_instance_groups(
        &mut self,
        fleet: &ResourceName,
        groups: &[GroupRef],
        i: &ObservedInstance,
    ) {
        let deps: Vec<StepId> = groups
            .iter()
            .filter_map(|g| match g {
                GroupRef::Created(s) => Some(*s),
                GroupRef::Known(_) => None,
            })
            .flat_map(|s| std::iter::once(s).chain(self.group_rules.get(&s).copied()))
            .collect();
        let s = self.add(
            Step::SetInstanceGroups {
                fleet: fleet.clone(),
                instance: i.id.clone(),
                groups: groups.to_vec(),
            },
            deps,
        );
        for g in &i.groups {
            self.group_user(g, s);
        }
    }
}
