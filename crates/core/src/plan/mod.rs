//! The planner: `plan(desired, observed, at, scale) -> Plan`, a pure
//! function. It decides everything (zones, counts, which instance goes,
//! the order of steps) so that the executor only carries the plan out.
//!
//! Resources are planned kind by kind in dependency order: the network,
//! key pairs,
//! security groups, hosted zones, certificates, buckets, distributions,
//! volumes, balancers, fleets (in
//! reference order), balancer membership, then what the manifests no
//! longer declare.
//!
//! Each kind is planned by `Planner` methods in the file of its AWS
//! service, the layout the AWS backend has: `ec2/` (key pairs, security
//! groups, volumes, fleets), `elb.rs` (balancers and their membership),
//! `s3.rs` (buckets), `cloudfront.rs` (distributions). This file holds
//! the input, the errors, [`plan`] (the order in which kinds are planned)
//! and what every kind shares: adding steps and change entries, ownership
//! and tags. A new kind is a new file (or a section of its service's file)
//! and a line in [`plan`] (two when its deletions wait for other kinds).

mod acm;
mod cloudfront;
mod ec2;
mod elb;
mod graph;
mod hold;
mod partial;
mod route53;
mod s3;
mod types;

pub use ec2::fleet::{ROOT_VOLUME_TAG, SENSITIVE_TAG, fleet_target, spread_share};
pub use ec2::{rule_ports, snapshot_tags};
pub use graph::{Cycle, StepGraph};
pub use partial::targeted;
pub use types::*;

use crate::controller::snapshots::SnapshotWork;
use crate::desired::{DeletionPolicy, Desired, Tags};
use crate::ids::{
    BalancerName, GroupId, ImageId, InstanceId, KeyName, Kind, ParameterName, ResourceKey,
    ResourceName, SubnetId, VolumeId, VpcId, Zone,
};
use crate::observed::{
    InstanceState, Observed, ObservedBalancer, ObservedInstance, ObservedVolume, Owner,
};
use ec2::fleet;
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
    /// Fleets whose instances are all replaced although nothing changed
    /// (`--replace Fleet/NAME`): a rolling replacement within the
    /// fleet's `update` budget, shown as "replace requested".
    pub replace_fleets: &'a BTreeSet<ResourceName>,
    /// Scheduled snapshots due and snapshots to prune (the reconcile
    /// loop's decision, [`crate::controller::snapshots::snapshot_work`]).
    pub snapshots: &'a SnapshotWork,
    /// Work the reconcile loop holds back because it failed and backs
    /// off: its steps, and every step that waits for them, are left out
    /// and listed in [`Plan::held`].
    pub held: &'a BTreeMap<WorkKey, HoldBack>,
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
            replace_fleets: &NO_FLEETS,
            snapshots: &NO_SNAPSHOTS,
            held: &NO_HOLDS,
        }
    }
}

static NO_SNAPSHOTS: SnapshotWork = SnapshotWork {
    take: Vec::new(),
    prune: Vec::new(),
};
static NO_HOLDS: BTreeMap<WorkKey, HoldBack> = BTreeMap::new();

static NO_SCALE: BTreeMap<ResourceName, u32> = BTreeMap::new();
static NO_FLEETS: BTreeSet<ResourceName> = BTreeSet::new();
static NO_INSTANCES: BTreeSet<InstanceId> = BTreeSet::new();

/// Why a plan could not be made. Validation catches these first; the
/// planner still refuses rather than guess.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A fleet's declared address is in none of its subnets (an existing
    /// VPC's, whose blocks are known only once observed).
    #[error(
        "Fleet/{fleet}: spec.privateIps: {ip} is in none of the fleet's subnets (spec.subnets), as observed"
    )]
    AddressOutsideSubnets {
        /// The fleet.
        fleet: ResourceName,
        /// The address.
        ip: std::net::Ipv4Addr,
    },
    /// A fleet's declared address is one AWS reserves in its subnet.
    #[error(
        "Fleet/{fleet}: spec.privateIps: {ip} is one of the five addresses AWS reserves in subnet {subnet} ({cidr}: its first four and its last)"
    )]
    ReservedAddress {
        /// The fleet.
        fleet: ResourceName,
        /// The address.
        ip: std::net::Ipv4Addr,
        /// The subnet's manifest name.
        subnet: ResourceName,
        /// Its block.
        cidr: crate::net::Ipv4Cidr,
    },
    /// Fleets reference each other in a cycle.
    #[error("fleets reference each other in a cycle: {0}")]
    ReferenceCycle(String),
    /// A fleet's image comes from an SSM parameter that does not exist.
    #[error(
        "Fleet/{fleet}: spec.image: SSM parameter {parameter} does not exist (GetParameters lists it as invalid)"
    )]
    UnknownParameter {
        /// The fleet.
        fleet: ResourceName,
        /// The parameter.
        parameter: ParameterName,
    },
    /// A fleet's SSM parameter holds something other than an image ID.
    #[error(
        "Fleet/{fleet}: spec.image: SSM parameter {parameter} holds {value:?}, expected an image ID (ami-…)"
    )]
    NotAnImage {
        /// The fleet.
        fleet: ResourceName,
        /// The parameter.
        parameter: ParameterName,
        /// What it holds.
        value: String,
    },
    /// A fleet with a root volume launches from an image EC2 does not
    /// know (its root device is needed).
    #[error(
        "Fleet/{fleet}: spec.image: image {image} does not exist (DescribeImages does not list it), and spec.rootVolume needs its root device"
    )]
    UnknownImage {
        /// The fleet.
        fleet: ResourceName,
        /// The image.
        image: ImageId,
    },
    /// A fleet's root volume is smaller than its image's root snapshot.
    #[error(
        "Fleet/{fleet}: spec.rootVolume.sizeGiB: {size_gib} GiB is smaller than the {snapshot_gib} GiB root snapshot of image {image}; expected at least {snapshot_gib}"
    )]
    RootVolumeTooSmall {
        /// The fleet.
        fleet: ResourceName,
        /// The image.
        image: ImageId,
        /// The size declared.
        size_gib: u32,
        /// The image's root snapshot size.
        snapshot_gib: u32,
    },
    /// No Network is declared and the region has no default VPC.
    #[error(
        "the region has no default VPC, and the stack declares no Network: declare a Network (kind: Network, with spec.cidr and spec.subnets, or spec.vpc naming an existing VPC) and place fleets and balancers in its subnets"
    )]
    NoDefaultVpc,
    /// A subnet an existing VPC's Network names does not exist.
    #[error("Network/{network}: spec.subnets {subnet}: subnet {id} does not exist")]
    SubnetNotFound {
        /// The Network.
        network: ResourceName,
        /// The subnet's manifest name.
        subnet: ResourceName,
        /// Its ID.
        id: SubnetId,
    },
    /// A subnet an existing VPC's Network names is in another VPC.
    #[error(
        "Network/{network}: spec.subnets {subnet}: subnet {id} is in {actual}, not in spec.vpc {vpc}"
    )]
    SubnetNotInVpc {
        /// The Network.
        network: ResourceName,
        /// The subnet's manifest name.
        subnet: ResourceName,
        /// Its ID.
        id: SubnetId,
        /// The VPC the Network names.
        vpc: VpcId,
        /// The VPC the subnet is in.
        actual: VpcId,
    },
    /// A DnsRecord cannot be planned: its zone is missing or ambiguous,
    /// a value is invalid once known, or Route 53 would refuse the batch.
    #[error("DnsRecord/{record}: {message}")]
    Dns {
        /// The record.
        record: ResourceName,
        /// What is wrong.
        message: String,
    },
    /// A Certificate cannot be planned: its zone is missing or ambiguous.
    #[error("Certificate/{certificate}: {message}")]
    Certificate {
        /// The certificate.
        certificate: ResourceName,
        /// What is wrong.
        message: String,
    },
    /// A fleet's volume is in a zone none of its subnets is in.
    #[error(
        "Fleet/{fleet}: spec.subnets: none is in {zone}, the zone of Volume/{volume} attached to it"
    )]
    VolumeZoneNotInSubnets {
        /// The fleet.
        fleet: ResourceName,
        /// The volume.
        volume: ResourceName,
        /// The volume's zone.
        zone: Zone,
    },
}

/// Makes a plan. Pure: the same input always gives the same plan.
pub fn plan(input: &PlanInput<'_>) -> Result<Plan, PlanError> {
    let mut p = Planner::new(input);
    p.network()?;
    p.key_pairs();
    p.security_groups();
    p.dns_zones();
    p.certificates()?;
    p.buckets();
    p.cdns();
    p.volumes();
    p.balancers();
    for name in fleet::reference_order(input.desired)? {
        p.fleet(&name)?;
    }
    p.removed_fleets();
    p.balancer_membership();
    p.balancer_notes();
    let validation_deletes = p.removed_certificates();
    p.dns_records(validation_deletes)?;
    p.finish_group_deletes();
    p.finish_volume_deletes();
    p.finish_bucket_deletes();
    p.finish_network_deletes();
    p.scheduled_snapshots();
    let Planner {
        steps,
        edges,
        mut changes,
        ..
    } = p;
    changes.sort_by(|a, b| a.key.cmp(&b.key));
    let (graph, held) = hold::hold_back(StepGraph::from_parts(steps, edges), &mut changes, input);
    Ok(Plan {
        format_version: PLAN_FORMAT_VERSION,
        stack: input.desired.stack.clone(),
        region: input.desired.region.clone(),
        at: input.at,
        changes,
        graph,
        held,
        targets: Vec::new(),
    })
}

/// What the planner knows about a resource another one depends on.
#[derive(Clone, Debug, Default)]
struct Produced {
    /// The step that creates (or last changes) it, if any.
    step: Option<StepId>,
}

/// The planner's state while it makes one plan: the steps and change
/// entries so far, and what each kind planned tells the kinds after it.
pub(crate) struct Planner<'a> {
    input: &'a PlanInput<'a>,
    steps: Vec<Step>,
    edges: BTreeSet<(StepId, StepId)>,
    changes: Vec<ResourceChange>,
    /// The VPC groups, instances and balancers go in: the Network's, or
    /// the region's default VPC (`None` only when nothing needs one).
    vpc: Option<VpcRef>,
    /// The Network's subnets by manifest name.
    subnets: BTreeMap<ResourceName, ec2::PlannedSubnet>,
    /// Key pair cloud names and their creating step.
    key_pairs: BTreeMap<ResourceName, (KeyName, Produced)>,
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
    /// The stack's hosted zones: the ID (or the step creating it) and the
    /// domain.
    zones: BTreeMap<ResourceName, (Ref<String>, String)>,
    /// The stack's certificates, for the listeners and distributions
    /// that use them.
    certificates: BTreeMap<ResourceName, acm::PlannedCertificate>,
    /// What the plan does to each bucket's content (issue 11 B).
    content: BTreeMap<ResourceName, s3::PlannedContent>,
    /// Per Cdn, the step that last changes its distribution (an update or
    /// its deletion): statements and controls it stops using go after.
    cdn_last: BTreeMap<ResourceName, StepId>,
    /// Fields planned for a resource before its change entry is made.
    pending_fields: BTreeMap<ResourceKey, Vec<FieldDiff>>,
    volumes: BTreeMap<ResourceName, ec2::VolumeState>,
    /// Volumes that go, with the steps that must finish before.
    doomed_volumes: Vec<(ObservedVolume, DeletionPolicy, Vec<StepId>)>,
    balancers: BTreeMap<ResourceName, elb::PlannedBalancer>,
    /// Balancers left in another VPC than the stack's (they cannot move):
    /// no instance of the stack's VPC joins them.
    stranded: BTreeSet<ResourceName>,
    /// Per fleet: what stays and what is launched, for references and
    /// balancer membership.
    fleets: BTreeMap<ResourceName, fleet::FleetOutcome>,
    /// Instances being terminated, with the terminating step.
    terminating: BTreeMap<InstanceId, StepId>,
    /// Instances deregistered from a balancer by a fleet step.
    deregistered: BTreeSet<(BalancerName, InstanceId)>,
    /// Balancers that go, with their delete step: members deregistered
    /// from them must be deregistered before the balancer is deleted.
    doomed_balancers: BTreeMap<BalancerName, StepId>,
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
            vpc: None,
            subnets: BTreeMap::new(),
            key_pairs: BTreeMap::new(),
            groups: BTreeMap::new(),
            doomed_groups: BTreeMap::new(),
            group_names: BTreeMap::new(),
            buckets: BTreeMap::new(),
            bucket_users: BTreeMap::new(),
            doomed_buckets: BTreeMap::new(),
            cdns: BTreeMap::new(),
            zones: BTreeMap::new(),
            certificates: BTreeMap::new(),
            content: BTreeMap::new(),
            cdn_last: BTreeMap::new(),
            pending_fields: BTreeMap::new(),
            volumes: BTreeMap::new(),
            doomed_volumes: Vec::new(),
            balancers: BTreeMap::new(),
            stranded: BTreeSet::new(),
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

    /// The steps so far that `is` picks, in order.
    fn steps_where(&self, is: impl Fn(&Step) -> bool) -> Vec<StepId> {
        self.steps
            .iter()
            .enumerate()
            .filter(|(_, s)| is(s))
            .map(|(i, _)| i)
            .collect()
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

/// Whether an instance counts towards its fleet.
pub(crate) fn is_live(state: InstanceState) -> bool {
    state.is_live()
}
