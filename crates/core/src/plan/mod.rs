//! The planner: `plan(desired, observed, at, scale) -> Plan`, a pure
//! function. It decides everything (zones, counts, which instance goes,
//! the order of steps) so that the executor only carries the plan out.
//!
//! Resources are planned kind by kind in dependency order: key pairs,
//! security groups, buckets, distributions, volumes, balancers, fleets (in
//! reference order), balancer membership, then what the manifests no
//! longer declare.

mod cloudfront;
mod elb;
mod fleet;
mod s3;
mod types;

pub use fleet::{SENSITIVE_TAG, fleet_target};
pub use types::*;

use crate::desired::{DeletionPolicy, Desired, IngressRule, Protocol, Source, Tags};
use crate::ids::{GroupId, InstanceId, Kind, ResourceKey, ResourceName, VolumeId, tags};
use crate::observed::{
    CloudRule, CloudSource, InstanceState, Observed, ObservedBalancer, ObservedInstance,
    ObservedVolume, Owner,
};
use crate::spec_hash::short_digest;
use jiff::Timestamp;
use std::collections::{BTreeMap, BTreeSet};

/// Everything the planner reads.
#[derive(Clone, Copy, Debug)]
pub struct PlanInput<'a> {
    /// What the manifests declare.
    pub desired: &'a Desired,
    /// What the cloud holds.
    pub observed: &'a Observed,
    /// The moment to plan for: schedules are read at this time.
    pub at: Timestamp,
    /// Replica counts decided outside the planner (the reconcile loop's
    /// autoscaler), by fleet. They win over schedules and `replicas`, and
    /// are clamped to the fleet's autoscale bounds.
    pub scale: &'a BTreeMap<ResourceName, u32>,
    /// Instances to replace because they are unhealthy (the reconcile
    /// loop's health decision): each gets a successor, create-before-destroy
    /// within its fleet's `update` budget, like an outdated instance.
    pub replace: &'a BTreeSet<InstanceId>,
    /// Instances to remove when their fleet scales in (the autoscaler's
    /// choice: those that have run long enough, newest first). They go
    /// without a successor; the fleet's other instances stay where they
    /// are.
    pub retire: &'a BTreeSet<InstanceId>,
}

impl<'a> PlanInput<'a> {
    /// An input with no decisions from the reconcile loop: no counts
    /// decided outside the planner, nothing to replace or retire.
    pub fn new(desired: &'a Desired, observed: &'a Observed, at: Timestamp) -> Self {
        Self {
            desired,
            observed,
            at,
            scale: &NO_SCALE,
            replace: &NO_INSTANCES,
            retire: &NO_INSTANCES,
        }
    }
}

static NO_SCALE: BTreeMap<ResourceName, u32> = BTreeMap::new();
static NO_INSTANCES: BTreeSet<InstanceId> = BTreeSet::new();

/// Why a plan could not be made. Validation catches these first; the
/// planner still refuses rather than guess.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A schedule names a time zone the time-zone database does not know.
    #[error("Fleet/{fleet}: spec.schedule.timezone: unknown time zone \"{zone}\"")]
    UnknownTimeZone {
        /// The fleet.
        fleet: ResourceName,
        /// The zone name.
        zone: String,
    },
    /// Fleets reference each other in a cycle.
    #[error("fleets reference each other in a cycle: {0}")]
    ReferenceCycle(String),
    /// A volume's snapshot schedule names a time zone the time-zone
    /// database does not know.
    #[error("Volume/{volume}: spec.snapshots.timezone: unknown time zone \"{zone}\"")]
    UnknownSnapshotTimeZone {
        /// The volume.
        volume: ResourceName,
        /// The zone name.
        zone: String,
    },
}

/// Makes a plan. Pure: the same input always gives the same plan.
pub fn plan(input: &PlanInput<'_>) -> Result<Plan, PlanError> {
    let mut p = Planner::new(input);
    p.key_pairs();
    p.security_groups();
    p.buckets();
    p.cdns();
    p.volumes();
    p.balancers();
    for name in fleet::reference_order(input.desired)? {
        p.fleet(&name)?;
    }
    p.removed_fleets();
    p.balancer_membership();
    p.finish_group_deletes();
    p.finish_volume_deletes();
    p.finish_bucket_deletes();
    let Planner {
        steps,
        edges,
        mut changes,
        ..
    } = p;
    changes.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(Plan {
        format_version: PLAN_FORMAT_VERSION,
        stack: input.desired.stack.clone(),
        region: input.desired.region.clone(),
        at: input.at,
        changes,
        steps,
        edges: edges.into_iter().collect(),
    })
}

/// What the planner knows about a resource another one depends on.
#[derive(Clone, Debug, Default)]
struct Produced {
    /// The step that creates (or last changes) it, if any.
    step: Option<StepId>,
}

pub(crate) struct Planner<'a> {
    input: &'a PlanInput<'a>,
    steps: Vec<Step>,
    edges: BTreeSet<(StepId, StepId)>,
    changes: Vec<ResourceChange>,
    /// Key pair cloud names and their creating step.
    key_pairs: BTreeMap<ResourceName, (String, Produced)>,
    /// The group each manifest name resolves to.
    groups: BTreeMap<ResourceName, GroupRef>,
    /// Group IDs that go away, with the steps that must finish first.
    doomed_groups: BTreeMap<GroupId, (ResourceName, Vec<StepId>)>,
    /// Observed group ID → manifest name, for current groups.
    group_names: BTreeMap<GroupId, ResourceName>,
    buckets: BTreeMap<ResourceName, Produced>,
    /// Bucket name → steps that must finish before it is deleted.
    bucket_users: BTreeMap<ResourceName, Vec<StepId>>,
    doomed_buckets: BTreeMap<ResourceName, ()>,
    cdns: BTreeMap<ResourceName, (Option<String>, Produced)>,
    volumes: BTreeMap<ResourceName, fleet::VolumeState>,
    /// Volumes that go, with the steps that must finish before.
    doomed_volumes: Vec<(ObservedVolume, DeletionPolicy, Vec<StepId>)>,
    balancers: BTreeMap<ResourceName, (Option<String>, Produced)>,
    /// Per fleet: what stays and what is launched, for references and
    /// balancer membership.
    fleets: BTreeMap<ResourceName, fleet::FleetOutcome>,
    /// Instances being terminated, with the terminating step.
    terminating: BTreeMap<InstanceId, StepId>,
    /// Instances deregistered from a balancer by a fleet step.
    deregistered: BTreeSet<(ResourceName, InstanceId)>,
    /// Balancers that go, with their delete step: members deregistered
    /// from them must be deregistered before the balancer is deleted.
    doomed_balancers: BTreeMap<ResourceName, StepId>,
    /// For a group this plan creates (by its create step), the step that
    /// authorizes its rules: instances join the group only once it lets
    /// their traffic in.
    group_rules: BTreeMap<StepId, StepId>,
    /// Volumes detached because no fleet claims them any more, with the
    /// detach step: an instance that goes reuses it rather than detach the
    /// volume a second time.
    detaching: BTreeMap<VolumeId, StepId>,
    /// Indexes of the observed state, built once so that planning stays
    /// linear in the number of instances (a scan of every instance per
    /// fleet, or of every member per retired instance, is quadratic).
    index: ObservedIndex<'a>,
}

/// Lookups into the observed (and desired) state, each in the order a scan
/// would have found them.
struct ObservedIndex<'a> {
    /// Instances by the fleet that owns them.
    instances_by_fleet: BTreeMap<&'a ResourceName, Vec<&'a ObservedInstance>>,
    /// For each instance, the balancers it is a member of (once each).
    memberships: BTreeMap<&'a InstanceId, Vec<&'a ObservedBalancer>>,
    /// For each instance, the first volume attached to it.
    attached_volume: BTreeMap<&'a InstanceId, &'a ObservedVolume>,
    /// For each declared fleet, the declared balancers it is behind, by
    /// name.
    balancers_of: BTreeMap<&'a ResourceName, Vec<ResourceName>>,
}

impl<'a> ObservedIndex<'a> {
    fn new(d: &'a Desired, o: &'a Observed) -> Self {
        let mut instances_by_fleet: BTreeMap<&ResourceName, Vec<&ObservedInstance>> =
            BTreeMap::new();
        for i in o.instances.iter().filter(|i| i.owner.kind == Kind::Fleet) {
            instances_by_fleet.entry(&i.owner.name).or_default().push(i);
        }
        let mut memberships: BTreeMap<&InstanceId, Vec<&ObservedBalancer>> = BTreeMap::new();
        for b in &o.balancers {
            let members: BTreeSet<&InstanceId> = b.members.iter().map(|m| &m.instance).collect();
            for m in members {
                memberships.entry(m).or_default().push(b);
            }
        }
        let mut attached_volume: BTreeMap<&InstanceId, &ObservedVolume> = BTreeMap::new();
        for v in &o.volumes {
            if let Some(a) = &v.attachment {
                attached_volume.entry(&a.instance).or_insert(v);
            }
        }
        let mut balancers_of: BTreeMap<&ResourceName, Vec<ResourceName>> = BTreeMap::new();
        for (name, b) in &d.balancers {
            let fleets: BTreeSet<&ResourceName> = b.fleets.iter().collect();
            for f in fleets {
                balancers_of.entry(f).or_default().push(name.clone());
            }
        }
        Self {
            instances_by_fleet,
            memberships,
            attached_volume,
            balancers_of,
        }
    }
}

impl<'a> Planner<'a> {
    fn new(input: &'a PlanInput<'a>) -> Self {
        Self {
            input,
            steps: Vec::new(),
            edges: BTreeSet::new(),
            changes: Vec::new(),
            key_pairs: BTreeMap::new(),
            groups: BTreeMap::new(),
            doomed_groups: BTreeMap::new(),
            group_names: BTreeMap::new(),
            buckets: BTreeMap::new(),
            bucket_users: BTreeMap::new(),
            doomed_buckets: BTreeMap::new(),
            cdns: BTreeMap::new(),
            volumes: BTreeMap::new(),
            doomed_volumes: Vec::new(),
            balancers: BTreeMap::new(),
            fleets: BTreeMap::new(),
            terminating: BTreeMap::new(),
            deregistered: BTreeSet::new(),
            doomed_balancers: BTreeMap::new(),
            detaching: BTreeMap::new(),
            group_rules: BTreeMap::new(),
            index: ObservedIndex::new(input.desired, input.observed),
        }
    }

    fn desired(&self) -> &'a Desired {
        self.input.desired
    }

    fn observed(&self) -> &'a Observed {
        self.input.observed
    }

    /// Adds a step that runs after `deps`.
    fn add(&mut self, step: Step, deps: impl IntoIterator<Item = StepId>) -> StepId {
        let id = self.steps.len();
        self.steps.push(step);
        for d in deps {
            self.edges.insert((d, id));
        }
        id
    }

    fn change(&mut self, key: ResourceKey, action: ChangeAction) -> &mut ResourceChange {
        self.changes.push(ResourceChange {
            key,
            action,
            fields: Vec::new(),
            instances: Vec::new(),
            notes: Vec::new(),
        });
        self.changes.last_mut().expect("just pushed")
    }

    fn owner(&self, kind: Kind, name: &ResourceName) -> Owner {
        Owner {
            stack: self.desired().stack.clone(),
            kind,
            name: name.clone(),
        }
    }

    /// The tags a resource should carry: the stack's, its own, and the
    /// ownership tags (which win).
    fn tags_for(&self, kind: Kind, name: &ResourceName, own: &Tags) -> Tags {
        let mut t = self.desired().tags.clone();
        t.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        t.extend(self.owner(kind, name).to_tags());
        t
    }

    /// A `SetTags` step if observed tags differ from desired ones. Keys
    /// AWS reserves (`aws:`) and those in `keep` are never removed.
    fn tag_drift(
        &mut self,
        key: &ResourceKey,
        target: TagTarget,
        desired: &Tags,
        observed: &Tags,
        keep: &[&str],
    ) -> Option<StepId> {
        let set: Tags = desired
            .iter()
            .filter(|(k, v)| observed.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let remove: Vec<String> = observed
            .keys()
            .filter(|k| {
                !desired.contains_key(*k) && !k.starts_with("aws:") && !keep.contains(&k.as_str())
            })
            .cloned()
            .collect();
        if set.is_empty() && remove.is_empty() {
            return None;
        }
        Some(self.add(
            Step::SetTags {
                key: key.clone(),
                target,
                set,
                remove,
            },
            [],
        ))
    }

    fn tag_field(change: &mut ResourceChange, desired: &Tags, observed: &Tags) {
        let show = |t: &Tags| {
            t.iter()
                // Ownership tags are converge's own, and `aws:` tags are
                // AWS's: neither is set nor removed, so neither is shown.
                .filter(|(k, _)| !k.starts_with("converge:") && !k.starts_with("aws:"))
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
        };
        let (before, after) = (show(observed), show(desired));
        if before != after {
            change.fields.push(FieldDiff {
                field: "tags".into(),
                before: Some(Value::List(before)),
                after: Some(Value::List(after)),
                forces_replacement: false,
            });
        }
    }

    // ---- key pairs ------------------------------------------------------

    fn key_pairs(&mut self) {
        let d = self.desired();
        let obs = &self.observed().key_pairs;
        for (name, spec) in &d.key_pairs {
            let key = ResourceKey::new(Kind::KeyPair, name.clone());
            let cloud_name = format!("{}-{}", d.stack, name);
            let tags = self.tags_for(Kind::KeyPair, name, &spec.tags);
            let mine: Vec<_> = obs.iter().filter(|k| k.owner.name == *name).collect();
            let current = mine.iter().find(|k| k.cloud_name == cloud_name).copied();
            let mut produced = Produced::default();
            let mut deletes = Vec::new();
            for extra in mine.iter().filter(|k| Some(**k) != current) {
                deletes.push(self.add(
                    Step::DeleteKeyPair {
                        name: name.clone(),
                        cloud_name: extra.cloud_name.clone(),
                    },
                    [],
                ));
            }
            match current {
                None => {
                    let step = self.add(
                        Step::CreateKeyPair {
                            name: name.clone(),
                            cloud_name: cloud_name.clone(),
                            public_key: spec.public_key.clone(),
                            tags,
                        },
                        [],
                    );
                    produced.step = Some(step);
                    let c = self.change(key, ChangeAction::Create);
                    c.fields.push(FieldDiff {
                        field: "spec.publicKey".into(),
                        before: None,
                        after: Some(Value::Text(key_summary(&spec.public_key))),
                        forces_replacement: false,
                    });
                }
                Some(kp) => {
                    let differs = kp
                        .public_key
                        .as_deref()
                        .is_some_and(|pk| key_material(pk) != key_material(&spec.public_key));
                    if differs {
                        let del = self.add(
                            Step::DeleteKeyPair {
                                name: name.clone(),
                                cloud_name: kp.cloud_name.clone(),
                            },
                            [],
                        );
                        let step = self.add(
                            Step::CreateKeyPair {
                                name: name.clone(),
                                cloud_name: cloud_name.clone(),
                                public_key: spec.public_key.clone(),
                                tags,
                            },
                            [del],
                        );
                        produced.step = Some(step);
                        let c = self.change(
                            key,
                            ChangeAction::Replace {
                                because: vec!["spec.publicKey".into()],
                            },
                        );
                        c.fields.push(FieldDiff {
                            field: "spec.publicKey".into(),
                            before: kp
                                .public_key
                                .as_deref()
                                .map(|k| Value::Text(key_summary(k))),
                            after: Some(Value::Text(key_summary(&spec.public_key))),
                            forces_replacement: true,
                        });
                    } else {
                        let drift = self.tag_drift(
                            &key,
                            TagTarget::KeyPair(kp.cloud_name.clone()),
                            &tags,
                            &kp.tags,
                            &[],
                        );
                        let action = if drift.is_some() || !deletes.is_empty() {
                            ChangeAction::Update
                        } else {
                            ChangeAction::NoChange
                        };
                        let c = self.change(key, action);
                        Self::tag_field(c, &tags, &kp.tags);
                    }
                }
            }
            self.key_pairs.insert(name.clone(), (cloud_name, produced));
        }
        for kp in obs
            .iter()
            .filter(|k| !d.key_pairs.contains_key(&k.owner.name))
        {
            let name = kp.owner.name.clone();
            self.add(
                Step::DeleteKeyPair {
                    name: name.clone(),
                    cloud_name: kp.cloud_name.clone(),
                },
                [],
            );
            if !self
                .changes
                .iter()
                .any(|c| c.key.kind == Kind::KeyPair && c.key.name == name)
            {
                self.change(ResourceKey::new(Kind::KeyPair, name), ChangeAction::Delete);
            }
        }
    }

    // ---- security groups -----------------------------------------------

    fn group_cloud_name(&self, name: &ResourceName, description: &str) -> String {
        format!(
            "{}-{}-{}",
            self.desired().stack,
            name,
            &short_digest(&[description])[..6]
        )
    }

    fn security_groups(&mut self) {
        let d = self.desired();
        let obs = &self.observed().security_groups;
        // First pass: decide which observed group is current for each name,
        // so that rules can name their sources.
        let mut creates: BTreeMap<ResourceName, StepId> = BTreeMap::new();
        for (name, spec) in &d.security_groups {
            let cloud_name = self.group_cloud_name(name, &spec.description);
            let current = obs
                .iter()
                .find(|g| g.owner.name == *name && g.cloud_name == cloud_name);
            match current {
                Some(g) => {
                    self.groups
                        .insert(name.clone(), GroupRef::Known(g.id.clone()));
                    self.group_names.insert(g.id.clone(), name.clone());
                }
                None => {
                    let tags = self.tags_for(Kind::SecurityGroup, name, &spec.tags);
                    let step = self.add(
                        Step::CreateGroup {
                            name: name.clone(),
                            cloud_name,
                            description: spec.description.clone(),
                            tags,
                        },
                        [],
                    );
                    creates.insert(name.clone(), step);
                    self.groups.insert(name.clone(), GroupRef::Created(step));
                }
            }
        }
        // Groups that go: not declared, or an old description.
        for g in obs {
            if !self.group_names.contains_key(&g.id) {
                self.doomed_groups
                    .insert(g.id.clone(), (g.owner.name.clone(), Vec::new()));
            }
        }
        // Second pass: rules and tags.
        for (name, spec) in &d.security_groups {
            let key = ResourceKey::new(Kind::SecurityGroup, name.clone());
            let tags = self.tags_for(Kind::SecurityGroup, name, &spec.tags);
            let desired_rules: Vec<String> = sorted_strings(spec.ingress.iter());
            match creates.get(name).copied() {
                Some(create) => {
                    if !spec.ingress.is_empty() {
                        let rules = self.planned_rules(&spec.ingress);
                        let deps = self.rule_deps(&rules, create);
                        let authorize = self.add(
                            Step::AuthorizeIngress {
                                name: name.clone(),
                                group: GroupRef::Created(create),
                                rules,
                            },
                            deps,
                        );
                        self.group_rules.insert(create, authorize);
                    }
                    let replaced = obs.iter().find(|g| g.owner.name == *name);
                    let action = match replaced {
                        Some(_) => ChangeAction::Replace {
                            because: vec!["spec.description".into()],
                        },
                        None => ChangeAction::Create,
                    };
                    let c = self.change(key, action);
                    c.fields.push(FieldDiff {
                        field: "spec.description".into(),
                        before: replaced.map(|g| Value::Text(g.description.clone())),
                        after: Some(Value::Text(spec.description.clone())),
                        forces_replacement: replaced.is_some(),
                    });
                    if !desired_rules.is_empty() {
                        c.fields.push(FieldDiff {
                            field: "spec.ingress".into(),
                            before: None,
                            after: Some(Value::List(desired_rules)),
                            forces_replacement: false,
                        });
                    }
                }
                None => {
                    let GroupRef::Known(gid) = self.groups[name].clone() else {
                        continue;
                    };
                    let g = obs
                        .iter()
                        .find(|g| g.id == gid)
                        .expect("current group observed");
                    // Desired rules whose sources exist, as the cloud would hold them.
                    let mut want: BTreeSet<CloudRule> = BTreeSet::new();
                    let mut to_add: Vec<IngressRule> = Vec::new();
                    for r in &spec.ingress {
                        match self.cloud_rule(r) {
                            Some(cr) => {
                                if !g.ingress.contains(&cr) {
                                    to_add.push(r.clone());
                                }
                                want.insert(cr);
                            }
                            None => to_add.push(r.clone()),
                        }
                    }
                    let to_remove: Vec<CloudRule> = g
                        .ingress
                        .iter()
                        .filter(|r| !want.contains(r))
                        .cloned()
                        .collect();
                    let mut changed = false;
                    if !to_add.is_empty() {
                        let rules = self.planned_rules(&to_add);
                        let deps = self.rule_deps(&rules, usize::MAX);
                        self.add(
                            Step::AuthorizeIngress {
                                name: name.clone(),
                                group: GroupRef::Known(gid.clone()),
                                rules,
                            },
                            deps,
                        );
                        changed = true;
                    }
                    if !to_remove.is_empty() {
                        let step = self.add(
                            Step::RevokeIngress {
                                name: name.clone(),
                                group: gid.clone(),
                                rules: to_remove.clone(),
                            },
                            [],
                        );
                        for r in &to_remove {
                            if let CloudSource::Group(src) = &r.source
                                && let Some((_, users)) = self.doomed_groups.get_mut(src)
                            {
                                users.push(step);
                            }
                        }
                        changed = true;
                    }
                    let drift =
                        self.tag_drift(&key, TagTarget::Group(gid.clone()), &tags, &g.tags, &[]);
                    let observed_rules: Vec<String> = {
                        let mut v: Vec<String> =
                            g.ingress.iter().map(|r| self.show_cloud_rule(r)).collect();
                        v.sort();
                        v
                    };
                    let action = if changed || drift.is_some() {
                        ChangeAction::Update
                    } else {
                        ChangeAction::NoChange
                    };
                    let c = self.change(key, action);
                    if changed {
                        c.fields.push(FieldDiff {
                            field: "spec.ingress".into(),
                            before: Some(Value::List(observed_rules)),
                            after: Some(Value::List(desired_rules)),
                            forces_replacement: false,
                        });
                    }
                    Self::tag_field(c, &tags, &g.tags);
                }
            }
        }
    }

    /// A declared rule as the cloud would hold it; `None` when its source
    /// group does not exist yet.
    fn cloud_rule(&self, r: &IngressRule) -> Option<CloudRule> {
        let source = match &r.source {
            Source::Cidr(c) => CloudSource::Cidr(c.clone()),
            Source::Group(g) => match self.groups.get(g)? {
                GroupRef::Known(id) => CloudSource::Group(id.clone()),
                GroupRef::Created(_) => return None,
            },
        };
        Some(CloudRule {
            protocol: r.protocol,
            ports: rule_ports(r),
            source,
        })
    }

    fn planned_rules(&self, rules: &[IngressRule]) -> Vec<PlannedRule> {
        rules
            .iter()
            .map(|r| PlannedRule {
                rule: r.clone(),
                source_group: match &r.source {
                    Source::Group(g) => self.groups.get(g).cloned(),
                    Source::Cidr(_) => None,
                },
            })
            .collect()
    }

    /// The steps a rule authorization waits for: its own group's creation
    /// and its sources' creation.
    fn rule_deps(&self, rules: &[PlannedRule], own: StepId) -> Vec<StepId> {
        let mut deps: BTreeSet<StepId> = rules
            .iter()
            .filter_map(|r| match &r.source_group {
                Some(GroupRef::Created(s)) => Some(*s),
                _ => None,
            })
            .collect();
        if own != usize::MAX {
            deps.insert(own);
        }
        deps.into_iter().collect()
    }

    fn show_cloud_rule(&self, r: &CloudRule) -> String {
        let mut s = r.protocol.as_str().to_owned();
        if let Some((from, to)) = r.ports {
            if from == to {
                s.push_str(&format!(" {from}"));
            } else {
                s.push_str(&format!(" {from}-{to}"));
            }
        }
        match &r.source {
            CloudSource::Cidr(c) => s.push_str(&format!(" from {c}")),
            CloudSource::Group(id) => {
                match self.observed().security_groups.iter().find(|g| g.id == *id) {
                    Some(g) if self.group_names.contains_key(id) => {
                        s.push_str(&format!(" from SecurityGroup/{}", g.owner.name))
                    }
                    // A group this plan deletes (undeclared, or replaced for a
                    // new description): name its ID, or a rule re-pointed to
                    // the replacement would read as unchanged.
                    Some(g) => s.push_str(&format!(
                        " from SecurityGroup/{} (old group {id})",
                        g.owner.name
                    )),
                    None => s.push_str(&format!(" from {id}")),
                }
            }
        }
        s
    }

    /// Records that `step` must finish before a doomed group goes.
    fn group_user(&mut self, group: &GroupId, step: StepId) {
        if let Some((_, users)) = self.doomed_groups.get_mut(group) {
            users.push(step);
        }
    }

    fn finish_group_deletes(&mut self) {
        let doomed = std::mem::take(&mut self.doomed_groups);
        for (id, (name, users)) in doomed {
            let step = self.add(
                Step::DeleteGroup {
                    name: name.clone(),
                    group: id.clone(),
                },
                users,
            );
            // Every rule in the stack that names it must be gone first:
            // revokes were recorded as users; instances too.
            let _ = step;
            if !self.desired().security_groups.contains_key(&name)
                && !self
                    .changes
                    .iter()
                    .any(|c| c.key.kind == Kind::SecurityGroup && c.key.name == name)
            {
                self.change(
                    ResourceKey::new(Kind::SecurityGroup, name),
                    ChangeAction::Delete,
                );
            }
        }
    }

    // ---- volumes --------------------------------------------------------

    fn volumes(&mut self) {
        let d = self.desired();
        let obs = &self.observed().volumes;
        for (name, spec) in &d.volumes {
            let key = ResourceKey::new(Kind::Volume, name.clone());
            let tags = {
                let mut t = self.tags_for(Kind::Volume, name, &spec.tags);
                t.insert(
                    tags::DELETION_POLICY.to_owned(),
                    spec.deletion_policy.as_str().to_owned(),
                );
                t
            };
            let mine: Vec<&ObservedVolume> = obs.iter().filter(|v| v.owner.name == *name).collect();
            // The current volume: in the declared zone, attached ones first.
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
                None => {
                    let token = short_digest(&[
                        d.stack.as_str(),
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
                        fleet::VolumeState {
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
                Some(v) => {
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
                    let drift =
                        self.tag_drift(&key, TagTarget::Volume(v.id.clone()), &tags, &v.tags, &[]);
                    self.volumes.insert(
                        name.clone(),
                        fleet::VolumeState {
                            volume: VolumeRef::Known(v.id.clone()),
                            create_step: None,
                            attached_to: v.attachment.clone(),
                        },
                    );
                    let action = if grow || retype || drift.is_some() {
                        ChangeAction::Update
                    } else {
                        ChangeAction::NoChange
                    };
                    let c = self.change(key, action);
                    c.fields = fields;
                    c.notes = notes;
                    Self::tag_field(c, &tags, &v.tags);
                }
            }
            // An attachment on a volume that no fleet claims any more is
            // undone; the fleet pass handles declared attachments.
            if spec.attach.is_none()
                && let Some(v) = current
                && let Some(a) = &v.attachment
            {
                let step = self.add(
                    Step::DetachVolume {
                        name: name.clone(),
                        volume: v.id.clone(),
                        instance: a.instance.clone(),
                    },
                    [],
                );
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
        for v in obs
            .iter()
            .filter(|v| !d.volumes.contains_key(&v.owner.name))
        {
            let policy = policy_from_tags(&v.tags);
            self.doomed_volumes.push((v.clone(), policy, Vec::new()));
        }
    }

    fn finish_volume_deletes(&mut self) {
        let mut doomed = std::mem::take(&mut self.doomed_volumes);
        // Several cloud volumes can carry one name (an old copy left in
        // another zone). They share one change entry: deleted copies first,
        // so that the entry is a delete if any copy is deleted, and the
        // copies kept are noted on it.
        doomed.sort_by_key(|(_, policy, _)| *policy == DeletionPolicy::Retain);
        for (v, policy, mut deps) in doomed {
            let name = v.owner.name.clone();
            let key = ResourceKey::new(Kind::Volume, name.clone());
            let declared = self.desired().volumes.contains_key(&name);
            let id_field = FieldDiff {
                field: "id".into(),
                before: Some(Value::Text(v.id.to_string())),
                after: None,
                forces_replacement: false,
            };
            if policy == DeletionPolicy::Retain {
                match self.changes.iter_mut().find(|c| c.key == key) {
                    Some(c) if matches!(c.action, ChangeAction::DeleteBlocked { .. }) => {
                        c.fields.push(id_field)
                    }
                    Some(c) => c.notes.push(Note::Unsupported {
                        reason: format!(
                            "the old volume {} in {} is kept by deletionPolicy retain",
                            v.id, v.zone
                        ),
                    }),
                    None if !declared => {
                        let c = self.change(key, ChangeAction::DeleteBlocked { policy });
                        c.fields.push(id_field);
                    }
                    None => {}
                }
                continue;
            }
            if let Some(a) = &v.attachment {
                match self.terminating.get(&a.instance) {
                    Some(t) => deps.push(*t),
                    None => deps.push(self.add(
                        Step::DetachVolume {
                            name: name.clone(),
                            volume: v.id.clone(),
                            instance: a.instance.clone(),
                        },
                        [],
                    )),
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
            let mut id_field = id_field;
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
}

/// `Update` when anything changes on a resource that stays, else
/// `NoChange`.
fn update_if(changed: bool) -> ChangeAction {
    if changed {
        ChangeAction::Update
    } else {
        ChangeAction::NoChange
    }
}

/// Items as text, sorted: lists shown in plans.
fn sorted_strings<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> Vec<String> {
    let mut v: Vec<String> = items.map(|i| i.to_string()).collect();
    v.sort();
    v
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

/// The ports a rule is held with in the cloud.
pub fn rule_ports(r: &IngressRule) -> Option<(u16, u16)> {
    match r.protocol {
        Protocol::Icmp | Protocol::All => None,
        Protocol::Tcp | Protocol::Udp => r.ports.map(|p| (p.from, p.to)),
    }
}

/// The deletion policy recorded on a resource's tag, for resources whose
/// manifest is gone. Missing or unreadable means retain: data is never lost
/// by default.
fn policy_from_tags(t: &Tags) -> DeletionPolicy {
    match t.get(tags::DELETION_POLICY).map(String::as_str) {
        Some("delete") => DeletionPolicy::Delete,
        Some("snapshot") => DeletionPolicy::Snapshot,
        _ => DeletionPolicy::Retain,
    }
}

/// The key type and material of an OpenSSH public key, without its comment.
fn key_material(k: &str) -> String {
    k.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

/// A short form of a public key for plans: type, start of the material and
/// comment.
fn key_summary(k: &str) -> String {
    let mut parts = k.split_whitespace();
    let ty = parts.next().unwrap_or("");
    let material = parts.next().unwrap_or("");
    let comment = parts.collect::<Vec<_>>().join(" ");
    let short: String = material.chars().take(12).collect();
    let mut s = format!("{ty} {short}…");
    if !comment.is_empty() {
        s.push(' ');
        s.push_str(&comment);
    }
    s
}

/// Whether an instance counts towards its fleet.
pub(crate) fn is_live(state: InstanceState) -> bool {
    state.is_live()
}
