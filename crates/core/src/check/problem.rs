//! What the checker reports: one typed [`Problem`] per broken rule, each
//! naming the steps (by ID and description), the resource and the cloud
//! IDs involved, so that a refused plan says exactly what is wrong with it.

use crate::desired::DeletionPolicy;
use crate::ids::{
    BalancerName, DistributionId, GroupId, InstanceId, ResourceKey, ResourceName, SnapshotId,
    SubnetId, VolumeId, Zone,
};
use crate::plan::{Produces, StepId};
use std::fmt;

/// A step named in a problem: its ID and what it does
/// ([`Step::describe`](crate::plan::Step::describe)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepName {
    /// The step's ID.
    pub id: StepId,
    /// What the step does (`launch 2 Fleet/app instance(s) in us-east-1a`).
    pub description: String,
}

impl fmt::Display for StepName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {} ({})", self.id, self.description)
    }
}

/// How a step names another one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// An edge: the step waits for the other.
    Dependency,
    /// A step reference ([`Step::step_refs`](crate::plan::Step::step_refs)):
    /// the step uses what the other makes.
    Reference(Produces),
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Link::Dependency => f.write_str("depends on"),
            Link::Reference(what) => write!(f, "refers for {} to", produced(*what)),
        }
    }
}

/// What still uses a resource that a step deletes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum User {
    /// An instance that is in the security group, and is neither
    /// terminated nor moved to other groups first.
    Instance(InstanceId),
    /// A rule of another security group that names the group as its
    /// source, and is not revoked first.
    Rule(GroupId),
    /// The instance the volume is attached to, neither detached from nor
    /// terminated first.
    Attached(InstanceId),
    /// A distribution that serves from the bucket (or logs to it), not
    /// deleted first.
    Distribution(DistributionId),
}

impl fmt::Display for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            User::Instance(id) => write!(
                f,
                "instance {id} is still in it, neither terminated nor moved first"
            ),
            User::Rule(g) => write!(f, "a rule of {g} still names it, not revoked first"),
            User::Attached(id) => write!(
                f,
                "it is attached to {id}, neither detached nor terminated first"
            ),
            User::Distribution(id) => write!(
                f,
                "distribution {id} still serves from it, not deleted first"
            ),
        }
    }
}

/// A broken plan invariant. A plan with any problem is refused before
/// anything is done (`docs/plan-checks.md`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    // ---- the graph ------------------------------------------------------
    /// Every edge joins two steps of the plan: an edge whose waiting step
    /// does not exist orders nothing.
    #[error("edge ({before}, {after}) names step {after}, which does not exist ({steps} steps)")]
    EdgeOutOfRange {
        /// The step that must finish first.
        before: StepId,
        /// The step that waits (missing).
        after: StepId,
        /// How many steps the plan has.
        steps: usize,
    },
    /// A step never waits for itself (it could never start).
    #[error("{step} depends on itself")]
    SelfLoop {
        /// The step.
        step: StepName,
    },
    /// The steps form a DAG: a cycle could never run.
    #[error("the step graph has a cycle through {step}")]
    Cycle {
        /// A step on the cycle.
        step: StepName,
    },
    /// Whatever a step depends on or refers to by step ID exists.
    #[error("{step} {link} step {refers_to}, which does not exist")]
    MissingStep {
        /// The step that names the missing one.
        step: StepName,
        /// The missing step's ID.
        refers_to: StepId,
        /// Whether it waits for it or uses what it makes.
        link: Link,
    },
    /// A step reference points at a step that makes what it needs (a
    /// launch for instances, a group create for a group).
    #[error("{step} refers to {refers_to} for {}, which it does not make", produced(*wants))]
    WrongReference {
        /// The referring step.
        step: StepName,
        /// The step referred to.
        refers_to: StepName,
        /// What the reference needs.
        wants: Produces,
    },
    /// A step runs after every step it refers to (it uses their output).
    #[error("{step} uses what {refers_to} makes, but does not wait for it")]
    ReferenceNotBefore {
        /// The referring step.
        step: StepName,
        /// The step referred to.
        refers_to: StepName,
    },

    // ---- the changes ----------------------------------------------------
    /// The changes are sorted by resource, one entry per resource.
    #[error("the changes are not sorted by resource, or one repeats: {first} comes before {then}")]
    ChangesUnsorted {
        /// The earlier entry.
        first: ResourceKey,
        /// The entry after it, not greater.
        then: ResourceKey,
    },
    /// The plan has steps exactly when a resource's change is more than
    /// "no change" or a blocked delete.
    #[error("{}", summary_mismatch(*has_changes))]
    SummaryMismatch {
        /// What [`Plan::has_changes`](crate::Plan::has_changes) says.
        has_changes: bool,
    },
    /// Every step belongs to a resource the plan shows as changing.
    #[error(
        "{step} belongs to no resource the plan shows as changing ({})",
        keys(resources)
    )]
    StepWithoutChange {
        /// The step.
        step: StepName,
        /// The resources it acts for.
        resources: Vec<ResourceKey>,
    },
    /// Every declared fleet has a change entry.
    #[error("Fleet/{fleet} is declared but has no change entry")]
    FleetWithoutChange {
        /// The fleet.
        fleet: ResourceName,
    },

    // ---- instances ------------------------------------------------------
    /// A terminate step terminates at least one instance.
    #[error("{step} terminates nothing")]
    TerminatesNothing {
        /// The step.
        step: StepName,
    },
    /// Only observed instances are terminated.
    #[error("{step} terminates {instance}, which was not observed")]
    TerminatesUnobserved {
        /// The step.
        step: StepName,
        /// The instance.
        instance: InstanceId,
    },
    /// No instance is terminated twice.
    #[error("{instance} is terminated twice: by {first} and by {second}")]
    TerminatedTwice {
        /// The instance.
        instance: InstanceId,
        /// One terminate step.
        first: StepName,
        /// Another (or the same step, naming it twice).
        second: StepName,
    },
    /// A launch step launches at least one instance.
    #[error("{step} launches nothing")]
    LaunchesNothing {
        /// The step.
        step: StepName,
    },
    /// Instances are launched in one of their fleet's zones (the zone of
    /// the volume attached to the fleet, if any).
    #[error("{step} launches in {zone}, not one of {}", zones(allowed))]
    LaunchOutsideZones {
        /// The step.
        step: StepName,
        /// The zone it launches in.
        zone: Zone,
        /// The zones it may launch in.
        allowed: Vec<Zone>,
    },
    /// A fleet with subnets launches into one of them.
    #[error(
        "{step} launches Fleet/{fleet} instances without a subnet, but the fleet names spec.subnets"
    )]
    LaunchWithoutSubnet {
        /// The step.
        step: StepName,
        /// The fleet.
        fleet: ResourceName,
    },
    /// A launch with declared addresses gives one to each instance.
    #[error("{step} launches {count} instance(s) with {addresses} address(es)")]
    LaunchAddressCount {
        /// The step.
        step: StepName,
        /// How many it launches.
        count: u32,
        /// How many addresses it gives.
        addresses: u32,
    },
    /// A launch takes only its fleet's declared addresses.
    #[error("{step} takes {ip}, which is not in its fleet's spec.privateIps")]
    UndeclaredAddress {
        /// The step.
        step: StepName,
        /// The address.
        ip: std::net::Ipv4Addr,
    },
    /// No two launches take one address.
    #[error("{first} and {second} both take {ip}")]
    AddressTakenTwice {
        /// The address.
        ip: std::net::Ipv4Addr,
        /// The first launch.
        first: StepName,
        /// The second.
        second: StepName,
    },
    /// An address a live instance holds is taken only once that instance
    /// is terminated.
    #[error("{step} takes {ip}, which {holder} holds, without waiting for its termination")]
    AddressTakenWhileHeld {
        /// The launch.
        step: StepName,
        /// The address.
        ip: std::net::Ipv4Addr,
        /// The instance that holds it.
        holder: crate::ids::InstanceId,
    },
    /// A launch's subnet is one of its fleet's, in the launch's zone.
    #[error("{step} launches in subnet {subnet}, which is not the fleet's subnet in {zone}")]
    LaunchInWrongSubnet {
        /// The step.
        step: StepName,
        /// The subnet.
        subnet: SubnetId,
        /// The launch's zone.
        zone: Zone,
    },
    /// A network's subnets, route table and gateway are deleted only once
    /// the stack has left the network, and its VPC last.
    #[error("{step} does not wait for {first}")]
    NetworkDeletedBeforeLeft {
        /// The delete.
        step: StepName,
        /// The step that must finish first.
        first: StepName,
    },
    /// Instances are launched only for declared fleets.
    #[error("{step} launches for Fleet/{fleet}, which is not declared")]
    LaunchUndeclared {
        /// The step.
        step: StepName,
        /// The fleet.
        fleet: ResourceName,
    },
    /// An instance that the plan terminates is not changed in place.
    #[error("{step} changes {instance}, which the plan terminates")]
    ChangesTerminated {
        /// The step.
        step: StepName,
        /// The instance.
        instance: InstanceId,
    },
    /// An instance that the plan terminates is not registered.
    #[error("{step} registers {instance}, which the plan terminates")]
    RegistersTerminated {
        /// The step.
        step: StepName,
        /// The instance.
        instance: InstanceId,
    },
    /// Only live (pending or running) instances are registered.
    #[error("{step} registers {instance}, which is not live")]
    RegistersNotLive {
        /// The step.
        step: StepName,
        /// The instance.
        instance: InstanceId,
    },
    /// Instances are registered with a balancer only once it is created.
    #[error("{step} does not wait for {create}")]
    RegisterBeforeBalancer {
        /// The register step.
        step: StepName,
        /// The balancer's create step.
        create: StepName,
    },
    /// Members are deregistered from every balancer they are in before
    /// they are terminated.
    #[error("{step} does not wait for {instance} to be deregistered from Balancer/{balancer}")]
    DeregisterAfterTerminate {
        /// The terminate step.
        step: StepName,
        /// The member.
        instance: InstanceId,
        /// The balancer (its name).
        balancer: BalancerName,
    },
    /// Members of a balancer that drains are terminated only after they
    /// have drained.
    #[error("{step} does not wait for {instance} to drain from Balancer/{balancer}")]
    TerminatedBeforeDrained {
        /// The terminate step.
        step: StepName,
        /// The member.
        instance: InstanceId,
        /// The balancer (its cloud name).
        balancer: BalancerName,
    },
    /// A deregistration from a balancer that is deleted finishes before
    /// the delete.
    #[error("{step} may run after {delete}")]
    DeregisterAfterBalancerDelete {
        /// The deregister step.
        step: StepName,
        /// The balancer's delete step.
        delete: StepName,
    },
    /// Two launches, two volume creates or two distribution creates never
    /// share an idempotency token (caller reference): the cloud would
    /// take the second for a retry of the first.
    #[error("{} share the idempotency token {token:?}", names(steps))]
    DuplicateToken {
        /// The token.
        token: String,
        /// The steps that carry it.
        steps: Vec<StepName>,
    },

    // ---- rolling replacements -------------------------------------------
    /// Replaced instances go only once a successor runs (and is healthy,
    /// when the fleet is behind balancers), except the
    /// `update.maxUnavailable` of each wave that may go first.
    #[error(
        "the replacement of Fleet/{fleet} takes out more than update.maxUnavailable allows: \
         {replacements} replacement(s) need {required} predecessor(s) terminated only after \
         a successor is launched{}, found {found}",
        if *healthy { " and healthy" } else { "" }
    )]
    OverBudget {
        /// The fleet.
        fleet: ResourceName,
        /// Instances replaced.
        replacements: u32,
        /// Predecessors that must wait for a successor.
        required: u32,
        /// Predecessors that do.
        found: u32,
        /// Whether the successor must be healthy (the fleet is behind
        /// balancers).
        healthy: bool,
    },
    /// A fleet behind balancers whose `update.maxUnavailable` is 0 waits
    /// for its successors to be healthy before its predecessors go.
    #[error(
        "Fleet/{fleet} is replaced without waiting for its successors to be healthy, \
         though update.maxUnavailable is 0"
    )]
    TerminateBeforeHealthy {
        /// The fleet.
        fleet: ResourceName,
    },

    // ---- deletes ----------------------------------------------------------
    /// A security group, volume or bucket is deleted only once nothing
    /// uses it any more.
    #[error("{step} may run while {user}")]
    DeletedWhileInUse {
        /// The delete step.
        step: StepName,
        /// What still uses it.
        user: User,
    },
    /// No step uses a security group that the plan deletes.
    #[error("{step} uses {group}, which {delete} deletes")]
    UsesDeletedGroup {
        /// The step.
        step: StepName,
        /// The group.
        group: GroupId,
        /// The group's delete step.
        delete: StepName,
    },
    /// A rule naming a deleted group is revoked before the group goes.
    #[error("{step} may run after {delete}")]
    RevokeAfterGroupDelete {
        /// The revoke step.
        step: StepName,
        /// The group's delete step.
        delete: StepName,
    },
    /// Only observed volumes are deleted.
    #[error("{step} deletes {volume}, which was not observed")]
    DeletesUnobservedVolume {
        /// The step.
        step: StepName,
        /// The volume.
        volume: VolumeId,
    },
    /// Nothing is deleted that its deletion policy retains (a volume's or
    /// a bucket's, from its manifest or, once removed, its tag).
    #[error("{step} deletes what its deletion policy ({}) retains", policy.as_str())]
    RetainedDeleted {
        /// The delete step.
        step: StepName,
        /// The policy.
        policy: DeletionPolicy,
    },
    /// A volume whose policy is `snapshot` is deleted only after its final
    /// snapshot.
    #[error("{step} is not preceded by a final snapshot of {volume}")]
    NoFinalSnapshot {
        /// The delete step.
        step: StepName,
        /// The volume.
        volume: VolumeId,
    },
    /// A volume is attached to exactly one instance.
    #[error("{step} attaches to {launch}, which launches {count} instances")]
    AttachToMany {
        /// The attach step.
        step: StepName,
        /// The launch it attaches to.
        launch: StepName,
        /// How many instances that launches.
        count: u32,
    },
    /// A volume is attached only to an instance in its own zone.
    #[error(
        "{step} attaches across zones: the instance is in {}, the volume in {}",
        zone(instance_zone),
        zone(volume_zone)
    )]
    AttachAcrossZones {
        /// The attach step.
        step: StepName,
        /// The instance's zone, if known.
        instance_zone: Option<Zone>,
        /// The volume's zone, if known.
        volume_zone: Option<Zone>,
    },
    /// A volume attached elsewhere is detached before it is attached.
    #[error("{step} may run while the volume is still attached to {instance}")]
    AttachedElsewhere {
        /// The attach step.
        step: StepName,
        /// Where the volume is attached.
        instance: InstanceId,
    },
    /// A volume is detached only from the instance it is attached to.
    #[error("{step} detaches {volume} from {instance}, where it is not attached")]
    DetachNotAttached {
        /// The detach step.
        step: StepName,
        /// The volume.
        volume: VolumeId,
        /// The instance.
        instance: InstanceId,
    },
    /// A volume is detached before its instance is terminated.
    #[error("{step} may run after {terminate}")]
    DetachAfterTerminate {
        /// The detach step.
        step: StepName,
        /// The instance's terminate step.
        terminate: StepName,
    },
    /// A ModifyVolume never makes a volume smaller than observed.
    #[error("{step} shrinks {volume} from {from_gib} to {to_gib} GiB: EBS volumes only grow")]
    VolumeShrunk {
        /// The modify step.
        step: StepName,
        /// The volume.
        volume: VolumeId,
        /// Its observed size.
        from_gib: u32,
        /// The step's size.
        to_gib: u32,
    },
    /// A volume is modified only six hours after its last modification
    /// started, and once that one is over (AWS's rule, which moto does not
    /// enforce).
    #[error(
        "{step} modifies {volume} before AWS allows it: the last modification started at {last_started} and is {state}"
    )]
    ModifiedTooSoon {
        /// The modify step.
        step: StepName,
        /// The volume.
        volume: VolumeId,
        /// When the last modification started.
        last_started: jiff::Timestamp,
        /// Its state.
        state: &'static str,
    },
    /// A volume is created or modified only with a size, IOPS and
    /// throughput its type allows.
    #[error("{step} breaks an EBS rule: {problem}")]
    EbsRuleBroken {
        /// The create or modify step.
        step: StepName,
        /// The rule.
        problem: crate::ebs::Problem,
    },
    /// A volume restored from an encrypted snapshot is never asked to be
    /// unencrypted.
    #[error("{step} restores the encrypted {snapshot} into an unencrypted volume")]
    UnencryptedRestore {
        /// The create step.
        step: StepName,
        /// The snapshot.
        snapshot: SnapshotId,
    },
    /// A volume is detached from an instance once.
    #[error("{volume} is detached from {instance} twice, by {}", names(steps))]
    DetachedTwice {
        /// The volume.
        volume: VolumeId,
        /// The instance.
        instance: InstanceId,
        /// The detach steps.
        steps: Vec<StepName>,
    },
    /// Every record set a batch creates or upserts has its ownership mark
    /// (naming this stack and record) upserted in the same batch.
    #[error("{step} writes {set} without its ownership mark in the same batch")]
    RecordWithoutMark {
        /// The change-records step.
        step: StepName,
        /// The set (`www.example.com A`).
        set: String,
    },
    /// A record set that exists is changed only when this stack's record
    /// owns it (its mark), or the record says `adopt: true` and no other
    /// stack owns it.
    #[error("{step} changes {set}, which this stack's record does not own and does not adopt")]
    UnownedRecordChanged {
        /// The change-records step.
        step: StepName,
        /// The set.
        set: String,
    },
    /// A record set's value changes while resolvers may still hold the old
    /// one for longer than the cutover TTL: the TTL was not lowered first,
    /// or the old TTL has not passed since it was (in sync).
    #[error(
        "{step} switches {set} before its cutover allows: the TTL was not lowered, or the old TTL has not passed since"
    )]
    CutoverSkipped {
        /// The change-records step.
        step: StepName,
        /// The set.
        set: String,
    },
    /// A hosted zone is deleted only after the plan's deletions of its
    /// records (Route 53 refuses to delete a zone that holds records).
    #[error("{step} does not wait for {records}")]
    ZoneDeletedBeforeRecords {
        /// The delete-zone step.
        step: StepName,
        /// A step deleting records of the zone, not before it.
        records: StepName,
    },
    /// A certificate is deleted only after its users are switched away.
    #[error("{step} does not wait for {user} to stop using the certificate")]
    CertificateDeletedInUse {
        /// The delete-certificate step.
        step: StepName,
        /// The listener's balancer or the distribution still using it.
        user: String,
    },
    /// A distribution is deleted only after it is disabled.
    #[error("{step} does not wait for {distribution} to be disabled")]
    DeleteBeforeDisable {
        /// The delete step.
        step: StepName,
        /// The distribution.
        distribution: DistributionId,
    },
}

/// The name of what a step produces, for messages.
fn produced(what: Produces) -> &'static str {
    match what {
        Produces::Group => "a security group",
        Produces::Instances => "instances",
        Produces::Volume => "a volume",
        Produces::Balancer => "a balancer",
        Produces::Distribution => "a distribution",
        Produces::Vpc => "a VPC",
        Produces::Gateway => "an internet gateway",
        Produces::RouteTable => "a route table",
        Produces::Subnet => "a subnet",
        Produces::Zone => "a hosted zone",
        Produces::Certificate => "a certificate",
    }
}

fn summary_mismatch(has_changes: bool) -> &'static str {
    if has_changes {
        "the plan has steps, but shows no resource as changing"
    } else {
        "a resource the plan shows as changing, but the plan has no steps"
    }
}

fn keys(keys: &[ResourceKey]) -> String {
    join(keys.iter().map(ToString::to_string))
}

fn zones(zones: &[Zone]) -> String {
    join(zones.iter().map(ToString::to_string))
}

fn zone(z: &Option<Zone>) -> String {
    z.as_ref()
        .map_or_else(|| "no known zone".into(), ToString::to_string)
}

/// `step 1 (…)`, `step 1 (…) and step 2 (…)`, `step 1 (…), step 2 (…) and
/// step 3 (…)`.
fn names(steps: &[StepName]) -> String {
    match steps {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", join(rest.iter().map(ToString::to_string))),
    }
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}
