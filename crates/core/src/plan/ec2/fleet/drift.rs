//! The fourth phase of planning a fleet: drift set back in place on the
//! instances that stay (their security groups and their tags).

use super::wanted::Wanted;
use crate::ids::{GroupId, Kind, ResourceKey, ResourceName, tags};
use crate::observed::ObservedInstance;
use crate::plan::{GroupRef, InstanceChange, Planner, Step, StepId, TagTarget};
use std::collections::BTreeSet;

impl<'a> Planner<'a> {
    /// Sets the groups and tags of the instances that stay back to what
    /// the fleet declares; returns what changes on them.
    pub(super) fn drift(
        &mut self,
        name: &ResourceName,
        wanted: &Wanted<'_>,
        staying: &[&ObservedInstance],
    ) -> Vec<InstanceChange> {
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
        let mut changes = Vec::new();
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
        changes
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
