//! The first phase of planning a fleet: what it should run, resolved from
//! the manifests and what the planner decided for the kinds planned
//! before (its count, zones and volume, its launch spec, the hash
//! instances carry, and the steps every launch waits for).

use super::SENSITIVE_TAG;
use super::user_data::ResolvedUserData;
use crate::desired::{FleetSpec, ImageSource, Tags, VolumeSpec};
use crate::ids::{ImageId, KeyName, Kind, ParameterName, ResourceName, SubnetId, Zone};
use crate::plan::{
    GroupRef, LaunchSpec, PlanError, PlannedRootVolume, Planner, Produced, StepId, SubnetRef,
};
use crate::spec_hash::launch_spec_hash;
use std::collections::{BTreeMap, BTreeSet};

/// On instances launched with a declared root volume: the volume, as
/// [`crate::desired::RootVolume::tag_value`] writes it, so that a plan
/// can show what a replacement changes.
pub const ROOT_VOLUME_TAG: &str = "converge:root-volume";

/// A fleet's image, with where it came from.
#[derive(Clone, Debug)]
pub(super) struct ResolvedImage {
    /// The image launches use.
    pub(super) id: ImageId,
    /// The SSM parameter that named it, if it came from one.
    pub(super) parameter: Option<ParameterName>,
}

impl ResolvedImage {
    /// The image as a plan shows it: `ami-… (from ssm:NAME)`.
    pub(super) fn shown(&self) -> String {
        match &self.parameter {
            Some(p) => format!("{} (from ssm:{p})", self.id),
            None => self.id.to_string(),
        }
    }
}

/// What a fleet should run.
pub(super) struct Wanted<'a> {
    /// The image.
    pub(super) image: ResolvedImage,
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
    /// The declared addresses (`spec.privateIps`) with their subnets'
    /// zones, in the manifest's order.
    pub(super) addresses: Vec<(std::net::Ipv4Addr, Zone)>,
}

impl<'a> Planner<'a> {
    /// Resolves what a fleet should run, for `target` instances; refuses
    /// an image the observed SSM parameters or images cannot give.
    pub(super) fn wanted(
        &self,
        name: &ResourceName,
        spec: &FleetSpec,
        target: u32,
    ) -> Result<Wanted<'a>, PlanError> {
        let image = self.resolve_image(name, spec)?;
        let root_volume = self.root_volume(name, spec, &image.id)?;
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
        let root_tag = spec.root_volume.as_ref().map(|r| r.tag_value());
        let hash = user_data.text.as_deref().map(|t| {
            launch_spec_hash(
                image.id.as_str(),
                &spec.instance_type,
                key_name.as_ref().map(KeyName::as_str),
                t,
                root_tag.as_deref(),
            )
        });
        let mut tags = self.tags_for(Kind::Fleet, name, &spec.tags);
        if spec.user_data.is_sensitive() {
            tags.insert(SENSITIVE_TAG.to_owned(), "true".to_owned());
        }
        if let Some(t) = root_tag {
            tags.insert(ROOT_VOLUME_TAG.to_owned(), t);
        }
        let launch_spec = LaunchSpec {
            image: image.id.clone(),
            instance_type: spec.instance_type.clone(),
            key_name: key_name.clone(),
            groups: groups.clone(),
            subnet: None,
            public_ip: spec.public_ip,
            user_data: user_data.parts.clone(),
            tags: tags.clone(),
            instance_profile: spec.instance_profile.clone(),
            metadata: spec.metadata,
            root_volume,
        };
        Ok(Wanted {
            image,
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
            addresses: self.declared_addresses(name, spec)?,
        })
    }

    /// The fleet's image: as declared, or the value of its SSM parameter
    /// (read when observing), which must exist and be an image ID.
    fn resolve_image(
        &self,
        name: &ResourceName,
        spec: &FleetSpec,
    ) -> Result<ResolvedImage, PlanError> {
        let parameter = match &spec.image {
            ImageSource::Id(id) => {
                return Ok(ResolvedImage {
                    id: id.clone(),
                    parameter: None,
                });
            }
            ImageSource::Parameter(p) => p,
        };
        let Some(value) = self.observed().parameters.get(parameter) else {
            return Err(PlanError::UnknownParameter {
                fleet: name.clone(),
                parameter: parameter.clone(),
            });
        };
        match ImageId::new(value.as_str()) {
            Ok(id) if is_ami_id(value) => Ok(ResolvedImage {
                id,
                parameter: Some(parameter.clone()),
            }),
            _ => Err(PlanError::NotAnImage {
                fleet: name.clone(),
                parameter: parameter.clone(),
                value: value.clone(),
            }),
        }
    }

    /// The root volume launches set, on the image's root device: the
    /// image must be known (DescribeImages, read when observing) and the
    /// volume at least its root snapshot's size.
    fn root_volume(
        &self,
        name: &ResourceName,
        spec: &FleetSpec,
        image: &ImageId,
    ) -> Result<Option<PlannedRootVolume>, PlanError> {
        let Some(volume) = spec.root_volume else {
            return Ok(None);
        };
        let Some(img) = self.observed().images.get(image) else {
            return Err(PlanError::UnknownImage {
                fleet: name.clone(),
                image: image.clone(),
            });
        };
        if let Some(snapshot_gib) = img.root_snapshot_gib
            && volume.size_gib < snapshot_gib
        {
            return Err(PlanError::RootVolumeTooSmall {
                fleet: name.clone(),
                image: image.clone(),
                size_gib: volume.size_gib,
                snapshot_gib,
            });
        }
        Ok(Some(PlannedRootVolume {
            device: img.root_device_name.clone(),
            volume,
        }))
    }
}

/// Whether text is an AMI ID as EC2 makes them: `ami-` and 8 or 17
/// lowercase hex digits.
pub(crate) fn is_ami_id(s: &str) -> bool {
    s.strip_prefix("ami-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    })
}
