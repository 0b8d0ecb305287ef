//! The first phase of planning a fleet: what it should run, resolved from
//! the manifests and what the planner decided for the kinds planned
//! before (its count, zones and volume, its launch spec, the hash
//! instances carry, and the steps every launch waits for).

use super::SENSITIVE_TAG;
use super::user_data::ResolvedUserData;
use crate::desired::{FleetSpec, Tags, VolumeSpec};
use crate::ids::{KeyName, Kind, ResourceName, SubnetId, Zone};
use crate::plan::{GroupRef, LaunchSpec, Planner, Produced, StepId, SubnetRef};
use crate::spec_hash::launch_spec_hash;
use std::collections::{BTreeMap, BTreeSet};

/// What a fleet should run.
pub(super) struct Wanted<'a> {
    /// How many instances.
    pub(super) target: u32,
    /// The zones they run in: the attached volume's, else the fleet's
    /// (its subnets' with a Network).
    pub(super) zones: Vec<Zone>,
    /// With a Network: the subnet instances of each zone go in.
    pub(super) subnets: BTreeMap<Zone, SubnetRef>,
    /// The manifest names of the Network's subnets that exist, by ID (to
    /// show where instances are).
    pub(super) subnet_names: BTreeMap<SubnetId, ResourceName>,
    /// The volume attached to the fleet's one instance, if any.
    pub(super) volume: Option<(&'a ResourceName, &'a VolumeSpec)>,
    /// The key pair's name in the cloud.
    pub(super) key_name: Option<KeyName>,
    /// The groups instances are in.
    pub(super) groups: Vec<GroupRef>,
    /// The user data.
    pub(super) user_data: ResolvedUserData,
    /// The launch-spec hash instances should carry; `None` while the user
    /// data is not known (then every instance counts as outdated).
    pub(super) hash: Option<String>,
    /// The tags instances should carry.
    pub(super) tags: Tags,
    /// What launches use.
    pub(super) launch_spec: LaunchSpec,
    /// The steps every launch waits for: the key pair's and the groups'
    /// creation, the groups' rules, and what the user data references.
    pub(super) base_deps: BTreeSet<StepId>,
}

impl<'a> Planner<'a> {
    /// Resolves what a fleet should run, for `target` instances.
    pub(super) fn wanted(&self, name: &ResourceName, spec: &FleetSpec, target: u32) -> Wanted<'a> {
        let volume = self.desired().volume_attached_to(name);
        let mut base_deps: BTreeSet<StepId> = BTreeSet::new();
        // With a Network, a fleet's zones are its subnets' (one subnet per
        // zone, as validation makes sure).
        let mut subnets: BTreeMap<Zone, SubnetRef> = BTreeMap::new();
        let mut subnet_zones: Vec<Zone> = Vec::new();
        for s in &spec.subnets {
            if let Some(p) = self.subnets.get(s) {
                subnets
                    .entry(p.zone.clone())
                    .or_insert_with(|| p.id.clone());
                subnet_zones.push(p.zone.clone());
                base_deps.extend(p.ready.iter().copied());
            }
        }
        let subnet_names = self
            .subnets
            .iter()
            .filter_map(|(n, p)| Some((p.id.known()?.clone(), n.clone())))
            .collect();
        let zones: Vec<Zone> = match &volume {
            Some((_, v)) => vec![v.zone.clone()],
            None if !spec.subnets.is_empty() => subnet_zones,
            None => spec.zones.clone(),
        };
        let key_name = spec
            .key_pair
            .as_ref()
            .and_then(|k| self.key_pairs.get(k))
            .map(|(cloud, _)| cloud.clone());
        if let Some(k) = &spec.key_pair
            && let Some((_, Produced { step: Some(s) })) = self.key_pairs.get(k)
        {
            base_deps.insert(*s);
        }
        let groups: Vec<GroupRef> = spec
            .security_groups
            .iter()
            .filter_map(|g| self.groups.get(g).cloned())
            .collect();
        for g in &groups {
            if let GroupRef::Created(s) = g {
                base_deps.insert(*s);
                base_deps.extend(self.group_rules.get(s).copied());
            }
        }
        let user_data = self.resolve_user_data(&spec.user_data);
        base_deps.extend(user_data.deps.iter().copied());
        let hash = user_data.text.as_deref().map(|t| {
            launch_spec_hash(
                spec.image.as_str(),
                &spec.instance_type,
                key_name.as_ref().map(KeyName::as_str),
                t,
            )
        });
        let mut tags = self.tags_for(Kind::Fleet, name, &spec.tags);
        if spec.user_data.is_sensitive() {
            tags.insert(SENSITIVE_TAG.to_owned(), "true".to_owned());
        }
        let launch_spec = LaunchSpec {
            image: spec.image.clone(),
            instance_type: spec.instance_type.clone(),
            key_name: key_name.clone(),
            groups: groups.clone(),
            subnet: None,
            public_ip: spec.public_ip,
            user_data: user_data.parts.clone(),
            tags: tags.clone(),
        };
        Wanted {
            target,
            zones,
            subnets,
            subnet_names,
            volume,
            key_name,
            groups,
            user_data,
            hash,
            tags,
            launch_spec,
            base_deps,
        }
    }
}
