//! The plan: what would change (a typed diff per resource, for people) and
//! the steps that make it so (a dependency graph, for the executor).

use super::graph::StepGraph;
pub use super::route53::{CutoverStep, PlannedAlias, PlannedRecordChange, RecordPurpose};
use crate::desired::ContentFile;
use crate::desired::{
    Attr, BalancerHealth, DeletionPolicy, Encryption, IngressRule, Listener, MetadataOptions,
    RootVolume, Secret, Tags, VolumeType,
};
use crate::elb::{BalancerHandle, Scheme};
use crate::ids::{
    AssociationId, BalancerName, BucketName, DistributionId, GatewayId, GroupId, GroupName,
    ImageId, InstanceId, InstanceProfile, KeyName, ParameterName, ResourceKey, ResourceName,
    RouteTableAssociationId, RouteTableId, SnapshotId, SubnetId, TargetGroupName, VolumeId, VpcId,
    Zone,
};
use crate::net::Ipv4Cidr;
use crate::observed::{CloudRule, DistributionConfig, ModificationState, OriginAccessSettings};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

/// The version of the plan's JSON shape; bumped on incompatible changes.
pub const PLAN_FORMAT_VERSION: u32 = 2;

/// A plan: the diff to show and the steps to run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The JSON shape's version ([`PLAN_FORMAT_VERSION`]).
    pub format_version: u32,
    /// The stack.
    pub stack: ResourceName,
    /// The region.
    pub region: String,
    /// The moment the plan was made for (schedules are read at this time).
    pub at: Timestamp,
    /// One entry per resource, sorted by kind and name; unchanged resources
    /// are included with [`ChangeAction::NoChange`].
    pub changes: Vec<ResourceChange>,
    /// The steps and the order between them (serialized as `steps` and
    /// `edges`).
    #[serde(flatten)]
    pub graph: StepGraph,
    /// Steps the reconcile loop holds back this pass, because their
    /// resource (or one they wait for) is backing off after failing; they
    /// are not in `graph`. Empty outside the loop (and then not
    /// serialized).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<HeldStep>,
    /// A partial plan's targets (`--target Kind/NAME`): only their steps
    /// and what those wait for are here ([`crate::plan::targeted`]).
    /// Empty for a whole plan (and then not serialized).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<ResourceKey>,
}

/// What the reconcile loop backs off by: a resource, or a volume's
/// scheduled snapshots (so a failing snapshot never holds back the
/// volume's attachment). Shown as `Fleet/app` or `Volume/pgdata
/// snapshots`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum WorkKey {
    /// A resource's steps.
    Resource {
        /// The resource.
        key: ResourceKey,
    },
    /// A volume's scheduled snapshots and their pruning.
    Snapshots {
        /// The volume's manifest name.
        volume: ResourceName,
    },
}

impl WorkKey {
    /// The resource the work is for (the volume, for its snapshots).
    pub fn resource(&self) -> ResourceKey {
        match self {
            WorkKey::Resource { key } => key.clone(),
            WorkKey::Snapshots { volume } => {
                ResourceKey::new(crate::ids::Kind::Volume, volume.clone())
            }
        }
    }
}

impl fmt::Display for WorkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkKey::Resource { key } => write!(f, "{key}"),
            WorkKey::Snapshots { volume } => write!(f, "Volume/{volume} snapshots"),
        }
    }
}

/// Why the loop holds a resource's work back: its last failure, and until
/// when it backs off (an input of the planner).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldBack {
    /// Its steps are held back until then.
    pub until: Timestamp,
    /// The error that made it back off.
    pub error: String,
    /// Which of the work's steps are held: the reconcile loop holds only
    /// the steps that failed, by content ([`Step::content`]), so that a
    /// step re-planned for the same resource (aimed at a successor
    /// instance, say) is not held by an old failure.
    #[serde(default)]
    pub steps: HeldSteps,
}

/// Which steps of a piece of work a [`HoldBack`] holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "contents", rename_all = "kebab-case")]
pub enum HeldSteps {
    /// Every step of the work.
    #[default]
    All,
    /// Only the steps with these contents ([`Step::content`]).
    Only(BTreeSet<StepContent>),
}

impl HeldSteps {
    /// Whether `step` is held.
    pub fn holds(&self, step: &Step) -> bool {
        match self {
            HeldSteps::All => true,
            HeldSteps::Only(contents) => contents.contains(&step.content()),
        }
    }
}

/// A digest of what a step does: its operation and its targets
/// ([`Step::content`]), the same for the same step in two plans, different
/// once the step is aimed elsewhere (another instance, another volume).
/// The reconcile loop keys its backoff by it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StepContent(String);

impl StepContent {
    /// The digest as text (16 hex digits).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StepContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Collects the strings in `v` that look like cloud IDs (`i-0abc…`,
/// `vol-…`, `sg-…`, `subnet-…`, `ami-…`, `rtbassoc-…`: lowercase letters
/// and dashes, a dash, then at least eight hex digits).
fn cloud_ids(v: &serde_json::Value, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::String(s) => {
            if let Some((prefix, hex)) = s.rsplit_once('-')
                && !prefix.is_empty()
                && prefix.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
                && hex.len() >= 8
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
            {
                out.insert(s.clone());
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| cloud_ids(i, out)),
        serde_json::Value::Object(fields) => fields.values().for_each(|f| cloud_ids(f, out)),
        _ => {}
    }
}

/// A step the plan leaves out because of a [`HoldBack`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldStep {
    /// The step as progress lines name it.
    pub step: String,
    /// The work the step belongs to.
    pub key: WorkKey,
    /// The held work it is left out for: `key` itself, or work it waits
    /// for.
    pub because: WorkKey,
    /// Until when `because` backs off.
    pub until: Timestamp,
    /// The error `because` failed with.
    pub error: String,
}

impl Plan {
    /// Whether applying the plan would change anything. Blocked deletions
    /// are not changes.
    pub fn has_changes(&self) -> bool {
        !self.graph.is_empty()
    }

    /// Whether the manifests declare a change that this plan does not
    /// make: one converge never makes (shrinking a volume, changing its
    /// encryption) or one held back until the cloud allows it (a volume
    /// modified less than six hours ago). The stack then differs from
    /// its manifests even when [`Plan::has_changes`] is false, and
    /// `plan --detailed-exitcode` says so with its "changes" code.
    pub fn has_blocked_changes(&self) -> bool {
        self.changes
            .iter()
            .any(|c| c.notes.iter().any(Note::is_blocked_change))
    }

    /// Counts of changes by action, for the summary line.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in &self.changes {
            match &c.action {
                ChangeAction::Create => s.create += 1,
                ChangeAction::Update => s.update += 1,
                ChangeAction::Replace { .. } => s.replace += 1,
                ChangeAction::Delete => s.delete += 1,
                ChangeAction::DeleteBlocked { .. } => s.blocked += 1,
                ChangeAction::NoChange => s.unchanged += 1,
            }
            if c.notes.iter().any(Note::is_blocked_change) {
                s.not_done += 1;
            }
        }
        s
    }
}

/// Counts of resource changes by action.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Resources to create.
    pub create: usize,
    /// Resources changed in place (fleets scaled included).
    pub update: usize,
    /// Resources (or a fleet's instances) to replace.
    pub replace: usize,
    /// Resources to delete.
    pub delete: usize,
    /// Deletions a deletion policy blocks.
    pub blocked: usize,
    /// Resources already as declared.
    pub unchanged: usize,
    /// Resources with a declared change this plan does not make (blocked,
    /// or held back until the cloud allows it): also counted under the
    /// action of what the plan does make of them.
    #[serde(default)]
    pub not_done: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} to create, {} to update, {} to replace, {} to delete",
            self.create, self.update, self.replace, self.delete
        )?;
        if self.blocked > 0 {
            write!(f, ", {} retained", self.blocked)?;
        }
        if self.not_done > 0 {
            write!(f, ", {} with changes not made", self.not_done)?;
        }
        Ok(())
    }
}

/// What happens to one resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResourceChange {
    /// The resource.
    pub key: ResourceKey,
    /// What happens to it.
    pub action: ChangeAction,
    /// Field-by-field differences (for creates: the values set).
    pub fields: Vec<FieldDiff>,
    /// For fleets: the instance-level changes.
    pub instances: Vec<InstanceChange>,
    /// Why something waits or is held back.
    pub notes: Vec<Note>,
}

/// The kind of change to a resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ChangeAction {
    /// Nothing to do.
    NoChange,
    /// It does not exist yet.
    Create,
    /// Changed in place.
    Update,
    /// Replaced, because these immutable fields changed.
    Replace {
        /// The fields that force the replacement.
        because: Vec<String>,
    },
    /// Deleted.
    Delete,
    /// Would be deleted, but its deletion policy keeps it.
    DeleteBlocked {
        /// The policy that keeps it.
        policy: DeletionPolicy,
    },
}

impl ChangeAction {
    /// The symbol shown before the resource in text plans.
    pub fn symbol(&self) -> &'static str {
        match self {
            ChangeAction::NoChange => " ",
            ChangeAction::Create => "+",
            ChangeAction::Update => "~",
            ChangeAction::Replace { .. } => "-/+",
            ChangeAction::Delete => "-",
            ChangeAction::DeleteBlocked { .. } => "!",
        }
    }
}

/// One field's difference. `before`/`after` are `None` when the field is
/// absent on that side (created or deleted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDiff {
    /// The field's path in manifest terms (`spec.ingress`, `spec.userData`).
    pub field: String,
    /// The value before.
    pub before: Option<Value>,
    /// The value after.
    pub after: Option<Value>,
    /// Whether this field's change forces a replacement.
    pub forces_replacement: bool,
}

/// A value shown in a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "kebab-case")]
pub enum Value {
    /// A single-line value.
    Text(String),
    /// A value that may span lines (shown as a line diff).
    Multiline(String),
    /// A list, shown as added and removed items.
    List(Vec<String>),
    /// A value that comes from the environment: never shown.
    Sensitive,
    /// A value not known until apply (`(known after apply)`).
    Unknown,
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Text(t) | Value::Multiline(t) => f.write_str(t),
            Value::List(items) => write!(f, "[{}]", items.join(", ")),
            Value::Sensitive => f.write_str("(sensitive)"),
            Value::Unknown => f.write_str("(known after apply)"),
        }
    }
}

/// An instance-level change within a fleet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum InstanceChange {
    /// New instances in a zone.
    Launch {
        /// The zone.
        zone: Zone,
        /// How many.
        count: u32,
        /// Why (`scale`, `replace`, `lost`).
        reason: LaunchReason,
        /// The addresses they take (`spec.privateIps`); empty: the
        /// subnet picks.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        addresses: Vec<std::net::Ipv4Addr>,
    },
    /// An instance goes.
    Terminate {
        /// The instance.
        instance: InstanceId,
        /// Its zone.
        zone: Zone,
        /// Why.
        reason: TerminateReason,
    },
    /// An instance's security groups change in place.
    SetGroups {
        /// The instance.
        instance: InstanceId,
    },
    /// An instance's tags change in place.
    SetTags {
        /// The instance.
        instance: InstanceId,
    },
    /// An instance's metadata options change in place.
    SetMetadataOptions {
        /// The instance.
        instance: InstanceId,
    },
    /// An instance without a profile gets one, in place.
    AssociateProfile {
        /// The instance.
        instance: InstanceId,
    },
    /// An instance's profile is swapped for another, in place.
    ReplaceProfile {
        /// The instance.
        instance: InstanceId,
    },
    /// An instance's profile is taken away, in place.
    DisassociateProfile {
        /// The instance.
        instance: InstanceId,
    },
}

/// Why instances are launched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LaunchReason {
    /// The fleet grows (or starts).
    Scale,
    /// To replace outdated instances.
    Replace,
}

/// Why an instance is terminated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TerminateReason {
    /// The fleet shrinks.
    Scale,
    /// Its launch spec is outdated; a successor replaces it.
    Outdated,
    /// It is in a zone the fleet no longer uses.
    WrongZone,
    /// It is not in the subnet the fleet places instances of its zone in.
    WrongSubnet,
    /// Its private address is not one of the fleet's `privateIps`.
    WrongAddress,
    /// It is stopped: converge treats it as lost.
    Stopped,
    /// The fleet was removed from the manifests.
    Removed,
    /// It stayed unhealthy past its fleet's grace; a successor replaces it.
    Unhealthy,
    /// Its replacement was asked for (`--replace Fleet/NAME`).
    Requested,
}

impl TerminateReason {
    /// The reason as shown in plans.
    pub fn as_str(self) -> &'static str {
        match self {
            TerminateReason::Scale => "scale in",
            TerminateReason::Outdated => "outdated launch spec",
            TerminateReason::WrongZone => "zone not in spec.zones",
            TerminateReason::WrongSubnet => "subnet not in spec.subnets",
            TerminateReason::WrongAddress => "address not in spec.privateIps",
            TerminateReason::Stopped => "stopped",
            TerminateReason::Removed => "fleet removed",
            TerminateReason::Unhealthy => "unhealthy",
            TerminateReason::Requested => "replace requested",
        }
    }
}

/// Why something waits or is held back: a typed reason that shows in the
/// plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Note {
    /// Fleet replicas come from a schedule rule.
    Scheduled {
        /// The rule's cron expression.
        cron: String,
        /// Its replica count.
        replicas: u32,
    },
    /// An autoscaled fleet keeps its current count within bounds.
    Autoscaled {
        /// The lower bound.
        min: u32,
        /// The upper bound.
        max: u32,
    },
    /// Replacements roll in waves within the update budget.
    Rolling {
        /// Instances replaced per wave.
        per_wave: u32,
        /// Number of waves.
        waves: u32,
        /// Instances of each wave taken out before their successors run
        /// (`update.maxUnavailable`); 0 means every successor is healthy
        /// before its predecessor goes.
        max_unavailable: u32,
    },
    /// Members leave a balancer and drain before their instances go (or
    /// before a replaced balancer is deleted).
    Drains {
        /// The balancer (manifest name).
        balancer: ResourceName,
        /// The members that drain.
        instances: Vec<InstanceId>,
        /// The longest one drains.
        bound_secs: u32,
        /// Whether they drain from a replaced balancer before it is
        /// deleted (rather than before their instances go).
        #[serde(default)]
        replaced: bool,
    },
    /// New members must be healthy on these balancers before the
    /// instances they replace go.
    HealthGate {
        /// The balancers (manifest names).
        balancers: Vec<ResourceName>,
        /// About how long a healthy member takes to pass: the health
        /// check's healthy threshold times its interval (the longest).
        typical_secs: u32,
    },
    /// Instances go before their successors launch, because each
    /// successor takes its predecessor's address (`spec.privateIps`, no
    /// spare one in the zone).
    AddressHandOver {
        /// The instances that go first.
        instances: Vec<InstanceId>,
    },
    /// The volume moves from the old instance to its successor.
    VolumeMoves {
        /// The volume.
        volume: ResourceName,
    },
    /// A field that is only read at creation changed, and is ignored.
    IgnoredAfterCreate {
        /// The field.
        field: String,
    },
    /// A distribution is disabled and must deploy before it is deleted.
    DisableBeforeDelete,
    /// A final snapshot is taken before the delete.
    FinalSnapshot,
    /// The resource waits for something in the cloud.
    Waiting {
        /// What it waits for.
        reason: String,
    },
    /// The reconcile loop holds this resource's steps back: they failed,
    /// and it backs off.
    BackingOff {
        /// What backs off.
        key: WorkKey,
        /// Until when.
        until: Timestamp,
        /// The error.
        error: String,
    },
    /// A scheduled snapshot of the volume is due.
    SnapshotDue,
    /// One of converge's snapshots of the volume goes: only the newest
    /// `keep` are retained.
    SnapshotPruned {
        /// The snapshot.
        snapshot: SnapshotId,
    },
    /// A new image was published under the SSM parameter a fleet takes
    /// its image from: its instances are replaced.
    ImagePublished {
        /// The parameter.
        parameter: ParameterName,
        /// The image it names now.
        image: ImageId,
    },
    /// A change converge cannot make, shown and left alone.
    Unsupported {
        /// What and why.
        reason: String,
    },
    /// A declared change converge never makes, because making it would
    /// lose data or AWS does not allow it: shown, no step.
    Blocked {
        /// The manifest field (`spec.sizeGiB`, `spec.encrypted`).
        field: String,
        /// Why.
        reason: BlockedChange,
    },
    /// A record that exists without converge's mark is taken over
    /// (`adopt: true`).
    Adopt,
    /// A step of a record's TTL-aware cutover is carried out now.
    Cutover {
        /// Which step.
        step: CutoverStep,
        /// The TTL the record has after it, in seconds (none for an alias).
        ttl: Option<u32>,
    },
    /// The next step of a record's cutover is due later: `apply` carries
    /// out what is due and a later run (or the loop) does this one.
    CutoverWaits {
        /// Which step.
        step: CutoverStep,
        /// When it is due.
        at: Timestamp,
        /// The TTL resolvers may still hold the old value for, in seconds.
        old_ttl: Option<u32>,
    },
    /// The moment a record's last cutover step was in sync was never noted
    /// (the run that made it stopped first): its mark is written again,
    /// and what waits counts from now.
    CutoverStamp {
        /// The step whose moment is noted.
        step: CutoverStep,
    },
    /// A volume's modification (size, type, IOPS, throughput) waits: AWS
    /// allows one modification of a volume every six hours, each after
    /// the last is complete. No step this run; a later plan makes it.
    ModificationHeld {
        /// The fields that change once it is allowed.
        fields: Vec<String>,
        /// What it waits for.
        wait: ModificationWait,
    },
}

/// Why a declared change is never made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum BlockedChange {
    /// EBS volumes only grow.
    Shrink {
        /// The volume's size.
        size_gib: u32,
        /// The declared size.
        declared_gib: u32,
    },
    /// An existing volume's encryption cannot be turned on or off in
    /// place, and converge never replaces a volume (its data) to do it.
    Encryption {
        /// Whether the volume is encrypted.
        encrypted: bool,
    },
    /// An existing volume's KMS key cannot change in place.
    KmsKey {
        /// The key it is encrypted with (as named at creation, or its
        /// ARN).
        current: String,
        /// The declared key (`the account's default key` when none is).
        declared: String,
    },
    /// The volume is restored from an encrypted snapshot, so it is
    /// encrypted, but the manifest says `encrypted: false`: not created.
    EncryptedSnapshot {
        /// The snapshot.
        snapshot: SnapshotId,
    },
    /// A record set exists without converge's ownership mark (or with
    /// another stack's or record's): never touched unless `adopt: true`.
    NotOwned {
        /// The record set (`www.example.com A`).
        set: String,
        /// Who the mark names, when it names someone else.
        owner: Option<String>,
    },
}

impl fmt::Display for BlockedChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockedChange::Shrink {
                size_gib,
                declared_gib,
            } => write!(
                f,
                "{declared_gib} GiB is below the volume's {size_gib} GiB: EBS volumes cannot shrink"
            ),
            BlockedChange::Encryption { encrypted: true } => f.write_str(
                "the volume is encrypted and cannot be decrypted in place; converge never replaces a volume to change its encryption (copy the data to a new volume by hand)",
            ),
            BlockedChange::Encryption { encrypted: false } => f.write_str(
                "the volume is not encrypted and cannot be encrypted in place; converge never replaces a volume to change its encryption (snapshot it and restore the snapshot into a new, encrypted volume)",
            ),
            BlockedChange::KmsKey { current, declared } => write!(
                f,
                "the volume is encrypted with {current}, not {declared}; a volume's key cannot change in place and converge never replaces a volume to change it"
            ),
            BlockedChange::NotOwned { set, owner: None } => write!(
                f,
                "{set} exists without converge's ownership mark: it is left alone; set spec.adopt: true to take it over"
            ),
            BlockedChange::NotOwned {
                set,
                owner: Some(o),
            } => write!(
                f,
                "{set} is marked as owned by {o}: it is left alone"
            ),
            BlockedChange::EncryptedSnapshot { snapshot } => write!(
                f,
                "snapshot {snapshot} is encrypted, so a volume restored from it is too: not created while the manifest says encrypted: false"
            ),
        }
    }
}

/// What a volume's next modification waits for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ModificationWait {
    /// Six hours since the last modification started.
    Cooldown {
        /// When the last one started.
        last_started: Timestamp,
        /// When the next may start.
        until: Timestamp,
    },
    /// The last modification, started more than six hours ago, is not
    /// complete yet.
    InProgress {
        /// When it started.
        started: Timestamp,
        /// Where it is.
        state: ModificationState,
    },
}

impl Note {
    /// Whether the note is about a declared change the plan does not make
    /// ([`Plan::has_blocked_changes`]).
    pub fn is_blocked_change(&self) -> bool {
        matches!(
            self,
            Note::Blocked { .. } | Note::ModificationHeld { .. } | Note::CutoverWaits { .. }
        )
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::Scheduled { cron, replicas } => {
                write!(f, "replicas {replicas} from schedule rule \"{cron}\"")
            }
            Note::Autoscaled { min, max } => {
                write!(f, "autoscaled: current count kept within [{min}, {max}]")
            }
            Note::Rolling {
                per_wave,
                waves,
                max_unavailable: 0,
            } => write!(
                f,
                "rolling replacement: {waves} wave(s) of {per_wave}, each successor healthy before its predecessor goes"
            ),
            Note::Rolling {
                per_wave,
                waves,
                max_unavailable,
            } => write!(
                f,
                "rolling replacement: {waves} wave(s) of {per_wave}, up to {max_unavailable} instance(s) per wave out before their successors run, each wave up before the next starts"
            ),
            Note::Drains {
                balancer,
                instances,
                bound_secs,
                replaced,
            } => {
                let ids = join_ids(instances.iter().map(|i| i.as_str()));
                let bound =
                    crate::duration::show(std::time::Duration::from_secs(u64::from(*bound_secs)));
                if *replaced {
                    write!(
                        f,
                        "drain {ids} from the replaced Balancer/{balancer} before it is deleted, up to {bound} each"
                    )
                } else {
                    write!(
                        f,
                        "drain {ids} from Balancer/{balancer} before {} go, up to {bound} each",
                        if instances.len() == 1 { "it" } else { "they" }
                    )
                }
            }
            Note::HealthGate {
                balancers,
                typical_secs,
            } => write!(
                f,
                "new instances healthy on {} before their predecessors go (about {} from their first check)",
                balancers
                    .iter()
                    .map(|b| format!("Balancer/{b}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                crate::duration::show(std::time::Duration::from_secs(u64::from(*typical_secs)))
            ),
            Note::AddressHandOver { instances } => {
                let ids = join_ids(instances.iter().map(|i| i.as_str()));
                if instances.len() == 1 {
                    write!(
                        f,
                        "{ids} goes before its successor, which takes its address (spec.privateIps has no spare one in the zone)"
                    )
                } else {
                    write!(
                        f,
                        "{ids} go before their successors, which take their addresses (spec.privateIps has no spare one in their zones)"
                    )
                }
            }
            Note::VolumeMoves { volume } => write!(
                f,
                "Volume/{volume} is detached from the old instance and attached to its successor"
            ),
            Note::IgnoredAfterCreate { field } => {
                write!(f, "{field} changed, but is only used at creation: ignored")
            }
            Note::DisableBeforeDelete => f.write_str("disabled and deployed first, then deleted"),
            Note::FinalSnapshot => f.write_str("a final snapshot is taken before the delete"),
            Note::Waiting { reason } => write!(f, "waiting: {reason}"),
            Note::BackingOff { key, until, error } => {
                write!(f, "held back: {key} backs off until {until} after: {error}")
            }
            Note::SnapshotDue => f.write_str("a scheduled snapshot is due"),
            Note::SnapshotPruned { snapshot } => {
                write!(f, "snapshot {snapshot} is pruned (keep the newest)")
            }
            Note::ImagePublished { parameter, image } => write!(
                f,
                "image ssm:{parameter} now {image}: instances started from the previous image are replaced"
            ),
            Note::Unsupported { reason } => write!(f, "not done: {reason}"),
            Note::Blocked { field, reason } => write!(f, "blocked: {field}: {reason}"),
            Note::Adopt => f.write_str(
                "adopt: the record exists without converge's ownership mark; spec.adopt takes it over",
            ),
            Note::Cutover { step, ttl } => match ttl {
                Some(t) => write!(f, "cutover: {}, TTL {t} s", step.as_str()),
                None => write!(f, "cutover: {} (alias, no TTL)", step.as_str()),
            },
            Note::CutoverStamp { step } => write!(
                f,
                "cutover: when the {} step was in sync was never noted (the run stopped first); it is noted now, and what waits counts from now",
                step.verb()
            ),
            Note::CutoverWaits { step, at, old_ttl } => match old_ttl {
                Some(t) => write!(f, "{} at {at} (old TTL {t} s)", step.verb()),
                None => write!(f, "{} at {at}", step.verb()),
            },
            Note::ModificationHeld { fields, wait } => {
                let fields = fields.join(", ");
                match wait {
                    ModificationWait::Cooldown {
                        last_started,
                        until,
                    } => write!(
                        f,
                        "held back until {until}: {fields} change then; AWS allows one modification of a volume every 6 hours and the last started at {last_started}"
                    ),
                    ModificationWait::InProgress { started, state } => write!(
                        f,
                        "held back: {fields} change once the modification started at {started} is complete (now {})",
                        state.as_str()
                    ),
                }
            }
        }
    }
}

/// A step's index in [`Plan::steps`].
pub type StepId = usize;

/// A security group that exists or is created by a step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupRef {
    /// Exists already.
    Known(GroupId),
    /// Created by this step.
    Created(StepId),
}

/// A network resource that exists, or that an earlier step of the plan
/// creates (a VPC, a subnet, a gateway, a route table).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Ref<T> {
    /// Exists already.
    Known(T),
    /// Created by this step.
    Created(StepId),
}

impl<T> Ref<T> {
    /// The ID, when it exists already.
    pub fn known(&self) -> Option<&T> {
        match self {
            Ref::Known(t) => Some(t),
            Ref::Created(_) => None,
        }
    }

    /// The creating step, when this plan creates it.
    pub fn created(&self) -> Option<StepId> {
        match self {
            Ref::Known(_) => None,
            Ref::Created(s) => Some(*s),
        }
    }
}

/// A VPC that exists or is created by a step.
pub type VpcRef = Ref<VpcId>;
/// A subnet that exists or is created by a step.
pub type SubnetRef = Ref<SubnetId>;
/// An internet gateway that exists or is created by a step.
pub type GatewayRef = Ref<GatewayId>;
/// A route table that exists or is created by a step.
pub type RouteTableRef = Ref<RouteTableId>;

/// Instances that exist, or all instances a launch step starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InstanceRef {
    /// Exists already.
    Known(InstanceId),
    /// Every instance launched by this step.
    Launched(StepId),
}

/// A volume that exists or is created by a step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumeRef {
    /// Exists already.
    Known(VolumeId),
    /// Created by this step.
    Created(StepId),
}

/// A rule to authorize, whose source group may not exist yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedRule {
    /// The rule as declared (for display).
    pub rule: IngressRule,
    /// The source group, for group rules.
    pub source_group: Option<GroupRef>,
}

/// A part of user data as the executor assembles it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum UserDataPart {
    /// Literal text, or a value known at plan time.
    Text(String),
    /// A value from the environment (never serialized).
    Secret(#[serde(skip)] Secret),
    /// An attribute produced by a step (a balancer's DNS name, a volume's
    /// ID, a distribution's domain name).
    StepOutput {
        /// The step.
        step: StepId,
        /// The attribute.
        attr: Attr,
    },
    /// A fleet's addresses: those of instances that stay, plus those of
    /// instances launched by these steps, sorted.
    FleetIps {
        /// Addresses of instances that stay.
        known: Vec<Ipv4Addr>,
        /// Launch steps whose instances join.
        launches: Vec<StepId>,
        /// `privateIp` (exactly one) rather than `privateIps`.
        single: bool,
    },
}

/// Everything needed to launch a fleet's instances.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LaunchSpec {
    /// Image.
    pub image: ImageId,
    /// Instance type.
    pub instance_type: String,
    /// Key pair cloud name.
    pub key_name: Option<KeyName>,
    /// Security groups.
    pub groups: Vec<GroupRef>,
    /// The subnet (with a Network; else the zone's default subnet). Set
    /// per launch step, as each zone has its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<SubnetRef>,
    /// Whether instances get a public address; `None` leaves it to the
    /// subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<bool>,
    /// User data parts.
    pub user_data: Vec<UserDataPart>,
    /// Tags, ownership included; the executor adds the spec hash.
    pub tags: Tags,
    /// The IAM instance profile, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_profile: Option<InstanceProfile>,
    /// The instance metadata options.
    #[serde(default)]
    pub metadata: MetadataOptions,
    /// The root volume, on the image's root device; `None` keeps the
    /// image's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_volume: Option<PlannedRootVolume>,
}

/// A root volume as a launch sets it: the image's root device (from
/// DescribeImages, observed when planning) and the volume declared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedRootVolume {
    /// The image's root device name (`/dev/xvda`).
    pub device: String,
    /// The volume.
    pub volume: RootVolume,
}

/// Something a step acts on that can carry tags.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TagTarget {
    /// An instance.
    Instance(InstanceId),
    /// A volume.
    Volume(VolumeId),
    /// A security group.
    Group(GroupId),
    /// A key pair.
    KeyPair(KeyName),
    /// A balancer by name.
    Balancer(BalancerName),
    /// A bucket by name.
    Bucket(BucketName),
    /// A distribution.
    Distribution(DistributionId),
    /// A VPC.
    Vpc(VpcId),
    /// A subnet.
    Subnet(SubnetId),
    /// A hosted zone (its ID, without `/hostedzone/`).
    Zone(String),
    /// An ACM certificate, by ARN (its region is the ARN's).
    Certificate(String),
}

/// Why a snapshot is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotPurpose {
    /// By the volume's schedule.
    Scheduled,
    /// Before the volume is deleted.
    Final,
}

impl SnapshotPurpose {
    /// The purpose as written in the snapshot's tag.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotPurpose::Scheduled => "scheduled",
            SnapshotPurpose::Final => "final",
        }
    }
}

/// One action for the executor, with every choice made: zones, counts,
/// which instance goes. References to things created earlier in the same
/// plan are [`StepId`]s, resolved when the step runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// Import a key pair.
    CreateKeyPair {
        /// Manifest name.
        name: ResourceName,
        /// Cloud name.
        cloud_name: KeyName,
        /// Public key text.
        public_key: String,
        /// Tags.
        tags: Tags,
    },
    /// Delete a key pair.
    DeleteKeyPair {
        /// Manifest name.
        name: ResourceName,
        /// Cloud name.
        cloud_name: KeyName,
    },
    /// Create a VPC with DNS support and DNS hostnames on.
    CreateVpc {
        /// The Network's manifest name.
        name: ResourceName,
        /// Its IPv4 block.
        cidr: Ipv4Cidr,
        /// Tags.
        tags: Tags,
    },
    /// Create an internet gateway and attach it to the VPC.
    CreateGateway {
        /// The Network's manifest name.
        name: ResourceName,
        /// The VPC.
        vpc: VpcRef,
        /// Tags.
        tags: Tags,
    },
    /// Attach an internet gateway that is not attached.
    AttachGateway {
        /// The Network's manifest name.
        name: ResourceName,
        /// The gateway.
        gateway: GatewayId,
        /// The VPC.
        vpc: VpcId,
    },
    /// Create the route table of the public subnets (idempotent by
    /// client token).
    CreateRouteTable {
        /// The Network's manifest name.
        name: ResourceName,
        /// The VPC.
        vpc: VpcRef,
        /// Tags.
        tags: Tags,
        /// Idempotency token.
        token: String,
    },
    /// Add the `0.0.0.0/0` route to the internet gateway.
    AddDefaultRoute {
        /// The Network's manifest name.
        name: ResourceName,
        /// The route table.
        route_table: RouteTableRef,
        /// The gateway.
        gateway: GatewayRef,
    },
    /// Create a subnet.
    CreateSubnet {
        /// The Network's manifest name.
        name: ResourceName,
        /// The subnet's manifest name.
        subnet: ResourceName,
        /// The VPC.
        vpc: VpcRef,
        /// Its zone.
        zone: Zone,
        /// Its block.
        cidr: Ipv4Cidr,
        /// Tags.
        tags: Tags,
    },
    /// Set whether instances launched in a subnet get a public address
    /// by default (`MapPublicIpOnLaunch`).
    SetSubnetPublicIp {
        /// The Network's manifest name.
        name: ResourceName,
        /// The subnet's manifest name.
        subnet: ResourceName,
        /// The subnet.
        id: SubnetRef,
        /// The setting.
        public: bool,
    },
    /// Associate a (public) subnet with the route table.
    AssociateSubnet {
        /// The Network's manifest name.
        name: ResourceName,
        /// The subnet's manifest name.
        subnet: ResourceName,
        /// The subnet.
        id: SubnetRef,
        /// The route table.
        route_table: RouteTableRef,
    },
    /// Take a subnet out of the route table (back to the main one).
    DisassociateSubnet {
        /// The Network's manifest name.
        name: ResourceName,
        /// The subnet's manifest name.
        subnet: ResourceName,
        /// The association.
        association: RouteTableAssociationId,
    },
    /// Delete a subnet (nothing of the stack is left in it).
    DeleteSubnet {
        /// The Network's manifest name.
        name: ResourceName,
        /// The subnet's manifest name.
        subnet: ResourceName,
        /// The subnet.
        id: SubnetId,
    },
    /// Disassociate a route table from its subnets and delete it.
    DeleteRouteTable {
        /// The Network's manifest name.
        name: ResourceName,
        /// The route table.
        route_table: RouteTableId,
        /// Its associations.
        associations: Vec<RouteTableAssociationId>,
    },
    /// Detach an internet gateway and delete it.
    DeleteGateway {
        /// The Network's manifest name.
        name: ResourceName,
        /// The gateway.
        gateway: GatewayId,
        /// The VPC it is attached to.
        vpc: Option<VpcId>,
    },
    /// Delete a VPC (nothing else is left in it).
    DeleteVpc {
        /// The Network's manifest name.
        name: ResourceName,
        /// The VPC.
        vpc: VpcId,
    },
    /// Create a security group (no rules).
    CreateGroup {
        /// Manifest name.
        name: ResourceName,
        /// Cloud name.
        cloud_name: GroupName,
        /// Its VPC.
        vpc: VpcRef,
        /// Description.
        description: String,
        /// Tags.
        tags: Tags,
    },
    /// Add inbound rules.
    AuthorizeIngress {
        /// Manifest name.
        name: ResourceName,
        /// The group.
        group: GroupRef,
        /// The rules.
        rules: Vec<PlannedRule>,
    },
    /// Remove inbound rules.
    RevokeIngress {
        /// Manifest name.
        name: ResourceName,
        /// The group.
        group: GroupId,
        /// The rules, as the cloud holds them.
        rules: Vec<CloudRule>,
    },
    /// Delete a security group.
    DeleteGroup {
        /// Manifest name.
        name: ResourceName,
        /// The group.
        group: GroupId,
    },
    /// Add or change tags, and remove tag keys.
    SetTags {
        /// The resource.
        key: ResourceKey,
        /// What to tag.
        target: TagTarget,
        /// Tags to set.
        set: Tags,
        /// Tag keys to remove.
        remove: Vec<String>,
    },
    /// Launch instances in one zone, with one idempotency token, and wait
    /// until they run.
    Launch {
        /// The fleet.
        fleet: ResourceName,
        /// The zone.
        zone: Zone,
        /// How many.
        count: u32,
        /// What to launch.
        spec: LaunchSpec,
        /// The idempotency (client) token.
        token: String,
        /// The private address of each instance (`spec.privateIps`), one
        /// RunInstances each; empty: the subnet picks.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        private_ips: Vec<std::net::Ipv4Addr>,
    },
    /// Change a running instance's security groups.
    SetInstanceGroups {
        /// The fleet.
        fleet: ResourceName,
        /// The instance.
        instance: InstanceId,
        /// The groups.
        groups: Vec<GroupRef>,
    },
    /// Change a running instance's metadata options in place.
    SetMetadataOptions {
        /// The fleet.
        fleet: ResourceName,
        /// The instance.
        instance: InstanceId,
        /// The options.
        metadata: MetadataOptions,
    },
    /// Give a running instance that has none an instance profile.
    AssociateInstanceProfile {
        /// The fleet.
        fleet: ResourceName,
        /// The instance.
        instance: InstanceId,
        /// The profile.
        profile: InstanceProfile,
    },
    /// Swap a running instance's instance profile for another.
    ReplaceInstanceProfile {
        /// The fleet.
        fleet: ResourceName,
        /// The instance.
        instance: InstanceId,
        /// Its current association.
        association: AssociationId,
        /// The new profile.
        profile: InstanceProfile,
    },
    /// Take a running instance's instance profile away.
    DisassociateInstanceProfile {
        /// The fleet.
        fleet: ResourceName,
        /// The instance.
        instance: InstanceId,
        /// Its association.
        association: AssociationId,
    },
    /// Wait until instances run and are healthy (InService, or target
    /// state `healthy`) on every balancer of their fleet.
    WaitHealthy {
        /// The fleet.
        fleet: ResourceName,
        /// The instances.
        instances: Vec<InstanceRef>,
        /// Balancers they must be healthy on (with the target groups).
        balancers: Vec<BalancerHandle>,
    },
    /// Terminate instances.
    Terminate {
        /// The fleet.
        fleet: ResourceName,
        /// The instances.
        instances: Vec<InstanceId>,
        /// Why.
        reason: TerminateReason,
    },
    /// Create a volume and wait until it is available.
    CreateVolume {
        /// Manifest name.
        name: ResourceName,
        /// Zone.
        zone: Zone,
        /// Size.
        size_gib: u32,
        /// Type.
        volume_type: VolumeType,
        /// Restore from this snapshot.
        from_snapshot: Option<SnapshotId>,
        /// Encrypted, and with which key.
        encryption: Encryption,
        /// Provisioned IOPS (gp3, io1, io2): always set for those types,
        /// gp3's baseline when none are declared.
        iops: Option<u32>,
        /// Throughput in MiB/s (gp3 only, its baseline when none is
        /// declared).
        throughput: Option<u32>,
        /// Tags.
        tags: Tags,
        /// Idempotency token.
        token: String,
    },
    /// Grow a volume, change its type, IOPS or throughput: one
    /// ModifyVolume, then wait until the modification is `optimizing`
    /// (the volume is usable with its new configuration) or `completed`.
    ModifyVolume {
        /// Manifest name.
        name: ResourceName,
        /// The volume.
        volume: VolumeId,
        /// New size.
        size_gib: u32,
        /// New type.
        volume_type: VolumeType,
        /// New IOPS (gp3, io1, io2).
        iops: Option<u32>,
        /// New throughput (gp3).
        throughput: Option<u32>,
    },
    /// Attach a volume and wait until it is in use.
    AttachVolume {
        /// Manifest name.
        name: ResourceName,
        /// The volume.
        volume: VolumeRef,
        /// The instance (exactly one).
        instance: InstanceRef,
        /// Device name.
        device: String,
    },
    /// Detach a volume from an instance and wait until it is available.
    DetachVolume {
        /// Manifest name.
        name: ResourceName,
        /// The volume.
        volume: VolumeId,
        /// The instance it is attached to.
        instance: InstanceId,
    },
    /// Take a snapshot and wait until it completes.
    Snapshot {
        /// Manifest name.
        name: ResourceName,
        /// The volume.
        volume: VolumeId,
        /// Why.
        purpose: SnapshotPurpose,
        /// Tags.
        tags: Tags,
    },
    /// Delete a snapshot.
    DeleteSnapshot {
        /// The volume's manifest name.
        name: ResourceName,
        /// The snapshot.
        snapshot: SnapshotId,
    },
    /// Delete a volume.
    DeleteVolume {
        /// Manifest name.
        name: ResourceName,
        /// The volume.
        volume: VolumeId,
    },
    /// Create a balancer with its listeners, health check and draining
    /// (an elbv2 balancer with its target groups).
    CreateBalancer {
        /// The balancer, with all its target groups.
        balancer: BalancerHandle,
        /// Internet-facing or internal.
        #[serde(default)]
        scheme: Scheme,
        /// Zones (empty in a Network).
        zones: Vec<Zone>,
        /// Subnets (in a Network; else empty).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        subnets: Vec<SubnetRef>,
        /// Security groups.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        security_groups: Vec<GroupRef>,
        /// Listeners.
        listeners: Vec<Listener>,
        /// Health check.
        health_check: BalancerHealth,
        /// Seconds a leaving member drains (0: off).
        drain_secs: u32,
        /// Cross-zone balancing (classic).
        cross_zone: bool,
        /// Tags.
        tags: Tags,
        /// Listeners (port, requesting step) whose certificate this plan
        /// requests: the ARN the requesting step answers goes in.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        certificates: Vec<(u16, StepId)>,
    },
    /// Add, change and remove listeners (an elbv2 balancer's target groups
    /// made for new target ports, and those no listener uses deleted).
    SetListeners {
        /// The balancer.
        balancer: BalancerHandle,
        /// Listeners to add.
        add: Vec<Listener>,
        /// Listeners changed in place on their port (elbv2).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        modify: Vec<Listener>,
        /// Balancer ports whose listeners go.
        remove: Vec<u16>,
        /// The health check new target groups get.
        health_check: BalancerHealth,
        /// The deregistration delay new target groups get.
        drain_secs: u32,
        /// Target groups no listener uses any more, deleted last.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        retire: Vec<TargetGroupName>,
        /// Listeners (port, requesting step) whose certificate this plan
        /// requests: the ARN the requesting step answers goes in.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        certificates: Vec<(u16, StepId)>,
    },
    /// Set the health check (of each of the handle's target groups).
    ConfigureHealthCheck {
        /// The balancer.
        balancer: BalancerHandle,
        /// Health check.
        health_check: BalancerHealth,
    },
    /// Set how long leaving members drain, and (classic) cross-zone
    /// balancing.
    SetBalancerAttributes {
        /// The balancer (elbv2: the target groups to set).
        balancer: BalancerHandle,
        /// Seconds a leaving member drains (0: off).
        drain_secs: u32,
        /// Cross-zone balancing (classic).
        cross_zone: bool,
    },
    /// Set a balancer's security groups.
    SetBalancerGroups {
        /// The balancer.
        balancer: BalancerHandle,
        /// The groups.
        groups: Vec<GroupRef>,
    },
    /// Enable and disable zones.
    SetBalancerZones {
        /// The balancer.
        balancer: BalancerHandle,
        /// Zones to enable.
        enable: Vec<Zone>,
        /// Zones to disable.
        disable: Vec<Zone>,
        /// Every zone it serves after (elbv2 sets the whole list).
        #[serde(default)]
        all: Vec<Zone>,
    },
    /// Attach and detach subnets.
    SetBalancerSubnets {
        /// The balancer.
        balancer: BalancerHandle,
        /// Subnets to attach.
        attach: Vec<SubnetRef>,
        /// Subnets to detach.
        detach: Vec<SubnetId>,
        /// Every subnet it serves in after (elbv2 sets the whole list).
        #[serde(default)]
        all: Vec<SubnetRef>,
    },
    /// Register instances (once they run) with a classic balancer or the
    /// handle's target groups.
    Register {
        /// The balancer.
        balancer: BalancerHandle,
        /// Instances.
        instances: Vec<InstanceRef>,
    },
    /// Deregister instances (they start draining).
    Deregister {
        /// The balancer.
        balancer: BalancerHandle,
        /// Instances.
        instances: Vec<InstanceId>,
    },
    /// Wait until deregistered instances have drained: their target state
    /// is gone or `unused`, or (classic) the draining time has passed.
    WaitDrained {
        /// The balancer.
        balancer: BalancerHandle,
        /// Instances.
        instances: Vec<InstanceId>,
        /// The longest it takes: the balancer's draining time.
        bound_secs: u32,
    },
    /// Delete a balancer (an elbv2 one's target groups after it).
    DeleteBalancer {
        /// The balancer, with the target groups to delete.
        balancer: BalancerHandle,
    },
    /// Delete target groups a balancer left behind (see
    /// [`crate::observed::StrayTargetGroup`]).
    DeleteTargetGroups {
        /// The Balancer (manifest name) they were made for.
        balancer: ResourceName,
        /// Their names.
        names: Vec<TargetGroupName>,
    },
    /// Create a bucket.
    CreateBucket {
        /// Name.
        name: ResourceName,
        /// Public read.
        public_read: bool,
        /// Tags.
        tags: Tags,
    },
    /// Set a bucket's public read access.
    SetBucketPublicRead {
        /// Name.
        name: ResourceName,
        /// Public read.
        public_read: bool,
    },
    /// Delete a bucket.
    DeleteBucket {
        /// Name.
        name: ResourceName,
    },
    /// Create a distribution (idempotent by caller reference).
    CreateDistribution {
        /// Manifest name.
        name: ResourceName,
        /// The caller reference.
        caller_reference: String,
        /// Settings.
        config: DistributionConfig,
        /// Tags.
        tags: Tags,
        /// The step requesting its viewer certificate in this plan: the
        /// ARN it answers goes in.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        certificate: Option<StepId>,
    },
    /// Change a distribution's settings.
    UpdateDistribution {
        /// Manifest name.
        name: ResourceName,
        /// The distribution.
        id: DistributionId,
        /// Settings.
        config: DistributionConfig,
        /// The step requesting its viewer certificate in this plan: the
        /// ARN it answers goes in.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        certificate: Option<StepId>,
    },
    /// Disable a distribution and wait until it is deployed.
    DisableDistribution {
        /// Manifest name.
        name: ResourceName,
        /// The distribution.
        id: DistributionId,
    },
    /// Delete a (disabled, deployed) distribution.
    DeleteDistribution {
        /// Manifest name.
        name: ResourceName,
        /// The distribution.
        id: DistributionId,
    },
    // origin access and content (issue 11 B)
    /// Create the origin access control a distribution reaches its
    /// private bucket through.
    CreateOriginAccess {
        /// The stack (a control that exists already is fine when the
        /// stack observes it as its own).
        stack: ResourceName,
        /// The Cdn (manifest name).
        cdn: ResourceName,
        /// The control's name (`converge-STACK-CDN`).
        name: String,
        /// Its settings.
        settings: OriginAccessSettings,
    },
    /// Set an origin access control's settings back.
    UpdateOriginAccess {
        /// The Cdn (manifest name).
        cdn: ResourceName,
        /// The control.
        id: String,
        /// Its name.
        name: String,
        /// Its settings.
        settings: OriginAccessSettings,
    },
    /// Delete an origin access control no distribution uses any more.
    DeleteOriginAccess {
        /// The Cdn (manifest name) it was made for.
        cdn: ResourceName,
        /// The control.
        id: String,
        /// Its name.
        name: String,
    },
    /// Write the bucket-policy statement that lets a distribution read its
    /// bucket (other statements are kept).
    GrantCdnRead {
        /// The Cdn (manifest name).
        cdn: ResourceName,
        /// The bucket.
        bucket: ResourceName,
        /// The statement's Sid.
        sid: String,
        /// The distribution.
        distribution: Ref<DistributionId>,
    },
    /// Remove a distribution's statement from a bucket's policy.
    RevokeCdnRead {
        /// The Cdn (manifest name).
        cdn: ResourceName,
        /// The bucket.
        bucket: ResourceName,
        /// The statement's Sid.
        sid: String,
    },
    /// Upload files of a bucket's content (new or changed), then record
    /// the headers they carry in the bucket's `converge:content` tag.
    PutObjects {
        /// The Bucket (manifest name).
        bucket: ResourceName,
        /// The files.
        objects: Vec<ContentFile>,
        /// Their `Cache-Control`.
        cache_control: Option<String>,
        /// The value of the bucket's `converge:content` tag once they are up.
        mark: String,
    },
    /// Delete objects no file of the content matches any more.
    DeleteObjects {
        /// The Bucket (manifest name).
        bucket: ResourceName,
        /// Their keys.
        keys: Vec<String>,
    },
    /// Invalidate changed and deleted paths of a distribution and wait
    /// until the invalidation completes.
    Invalidate {
        /// The Cdn (manifest name).
        cdn: ResourceName,
        /// The distribution.
        id: DistributionId,
        /// The caller reference (the same paths and content give the same).
        caller_reference: String,
        /// The paths (`/KEY`, or `/*`).
        paths: Vec<String>,
    },
    /// Create a public hosted zone (idempotent by caller reference) and
    /// tag it.
    CreateZone {
        /// Manifest name.
        name: ResourceName,
        /// Its domain.
        domain: String,
        /// The caller reference.
        caller_reference: String,
        /// Tags.
        tags: Tags,
    },
    /// Delete a hosted zone (its own records are gone first).
    DeleteZone {
        /// Manifest name.
        name: ResourceName,
        /// The zone.
        id: String,
    },
    /// Change a DnsRecord's record sets and its ownership mark in one
    /// Route 53 change batch, then wait until it is in sync.
    ChangeRecords {
        /// The DnsRecord's manifest name.
        name: ResourceName,
        /// The hosted zone.
        zone: Ref<String>,
        /// What the batch does, for people.
        purpose: RecordPurpose,
        /// The changes, in order.
        changes: Vec<PlannedRecordChange>,
    },
    /// Request an ACM certificate validated by DNS (idempotent by its
    /// token), tagged.
    RequestCertificate {
        /// Manifest name.
        name: ResourceName,
        /// Its region.
        region: String,
        /// Its domains, the primary first.
        domains: Vec<String>,
        /// The idempotency token.
        token: String,
        /// Tags.
        tags: Tags,
    },
    /// Write a certificate's validation records (with their marks) into
    /// its zone, then wait until ACM issues it.
    ValidateCertificate {
        /// The stack (its validation marks name it).
        stack: ResourceName,
        /// Manifest name.
        name: ResourceName,
        /// Its region.
        region: String,
        /// The certificate.
        arn: Ref<String>,
        /// The hosted zone of its validation records.
        zone: Ref<String>,
        /// That zone's domain.
        domain: String,
    },
    /// Delete a certificate nothing uses any more.
    DeleteCertificate {
        /// Manifest name.
        name: ResourceName,
        /// Its region.
        region: String,
        /// The certificate.
        arn: String,
    },
    /// Delete validation records (and their marks) no certificate of the
    /// stack needs any more.
    DeleteValidationRecords {
        /// The Certificate (manifest name) that wrote them.
        name: ResourceName,
        /// The hosted zone.
        zone: String,
        /// The deletions, the sets exactly as they are.
        changes: Vec<crate::route53::RecordChange>,
    },
}

impl Step {
    /// A short description for progress lines and errors
    /// (`launch 2 Fleet/app instances in us-east-1a`).
    pub fn describe(&self) -> String {
        match self {
            Step::CreateKeyPair { name, .. } => format!("create KeyPair/{name}"),
            Step::DeleteKeyPair { name, .. } => format!("delete KeyPair/{name}"),
            Step::CreateVpc { name, .. } => format!("create the VPC of Network/{name}"),
            Step::CreateGateway { name, .. } => {
                format!("create the internet gateway of Network/{name}")
            }
            Step::AttachGateway { name, .. } => {
                format!("attach the internet gateway of Network/{name}")
            }
            Step::CreateRouteTable { name, .. } => {
                format!("create the public route table of Network/{name}")
            }
            Step::AddDefaultRoute { name, .. } => {
                format!("route 0.0.0.0/0 to the internet gateway in Network/{name}")
            }
            Step::CreateSubnet { name, subnet, .. } => {
                format!("create subnet {subnet} of Network/{name}")
            }
            Step::SetSubnetPublicIp {
                name,
                subnet,
                public,
                ..
            } => format!(
                "{} public addresses in subnet {subnet} of Network/{name}",
                if *public { "turn on" } else { "turn off" }
            ),
            Step::AssociateSubnet { name, subnet, .. } => {
                format!("route subnet {subnet} of Network/{name} to the internet gateway")
            }
            Step::DisassociateSubnet { name, subnet, .. } => {
                format!("take subnet {subnet} of Network/{name} off the public route table")
            }
            Step::DeleteSubnet { name, subnet, .. } => {
                format!("delete subnet {subnet} of Network/{name}")
            }
            Step::DeleteRouteTable { name, .. } => {
                format!("delete the public route table of Network/{name}")
            }
            Step::DeleteGateway { name, .. } => {
                format!("delete the internet gateway of Network/{name}")
            }
            Step::DeleteVpc { name, .. } => format!("delete the VPC of Network/{name}"),
            Step::CreateGroup { name, .. } => format!("create SecurityGroup/{name}"),
            Step::AuthorizeIngress { name, rules, .. } => {
                format!("authorize {} rule(s) on SecurityGroup/{name}", rules.len())
            }
            Step::RevokeIngress { name, rules, .. } => {
                format!("revoke {} rule(s) on SecurityGroup/{name}", rules.len())
            }
            Step::DeleteGroup { name, .. } => format!("delete SecurityGroup/{name}"),
            Step::SetTags { key, target, .. } => describe_tags(key, target),
            Step::Launch {
                fleet, zone, count, ..
            } => format!("launch {count} Fleet/{fleet} instance(s) in {zone}"),
            Step::SetInstanceGroups {
                fleet, instance, ..
            } => format!("set security groups of Fleet/{fleet} instance {instance}"),
            Step::SetMetadataOptions {
                fleet, instance, ..
            } => format!("set metadata options of Fleet/{fleet} instance {instance}"),
            Step::AssociateInstanceProfile {
                fleet, instance, ..
            } => format!("associate an instance profile with Fleet/{fleet} instance {instance}"),
            Step::ReplaceInstanceProfile {
                fleet, instance, ..
            } => format!("replace the instance profile of Fleet/{fleet} instance {instance}"),
            Step::DisassociateInstanceProfile {
                fleet, instance, ..
            } => format!("disassociate the instance profile of Fleet/{fleet} instance {instance}"),
            Step::WaitHealthy { fleet, .. } => {
                format!("wait for new Fleet/{fleet} instances to be healthy")
            }
            Step::Terminate {
                fleet, instances, ..
            } => format!(
                "terminate Fleet/{fleet} instance(s) {}",
                join_ids(instances.iter().map(|i| i.as_str()))
            ),
            Step::CreateVolume { name, .. } => format!("create Volume/{name}"),
            Step::ModifyVolume { name, .. } => format!("modify Volume/{name}"),
            Step::AttachVolume { name, device, .. } => {
                format!("attach Volume/{name} at {device}")
            }
            Step::DetachVolume { name, instance, .. } => {
                format!("detach Volume/{name} from {instance}")
            }
            Step::Snapshot { name, purpose, .. } => {
                format!("take a {} snapshot of Volume/{name}", purpose.as_str())
            }
            Step::DeleteSnapshot { name, snapshot } => {
                format!("delete snapshot {snapshot} of Volume/{name}")
            }
            Step::DeleteVolume { name, .. } => format!("delete Volume/{name}"),
            Step::CreateBalancer { balancer, .. } => format!("create {balancer}"),
            Step::SetListeners { balancer, .. } => format!("set listeners of {balancer}"),
            Step::ConfigureHealthCheck { balancer, .. } => {
                format!("configure health check of {balancer}")
            }
            Step::SetBalancerAttributes { balancer, .. } => {
                format!("set draining of {balancer}")
            }
            Step::SetBalancerGroups { balancer, .. } => {
                format!("set security groups of {balancer}")
            }
            Step::SetBalancerZones { balancer, .. } => format!("set zones of {balancer}"),
            Step::SetBalancerSubnets { balancer, .. } => format!("set subnets of {balancer}"),
            Step::Register {
                balancer,
                instances,
            } => format!(
                "register {} instance group(s) with {balancer}",
                instances.len()
            ),
            Step::Deregister {
                balancer,
                instances,
            } => format!(
                "deregister {} from {balancer}",
                join_ids(instances.iter().map(|i| i.as_str()))
            ),
            Step::WaitDrained {
                balancer,
                instances,
                bound_secs,
            } => format!(
                "drain {} from {balancer}, up to {}",
                join_ids(instances.iter().map(|i| i.as_str())),
                crate::duration::show(std::time::Duration::from_secs(u64::from(*bound_secs)))
            ),
            Step::DeleteBalancer { balancer } => format!("delete {balancer}"),
            Step::DeleteTargetGroups { balancer, names } => format!(
                "delete target groups {} left by Balancer/{balancer}",
                join_ids(names.iter().map(|n| n.as_str()))
            ),
            Step::CreateZone { name, .. } => format!("create DnsZone/{name}"),
            Step::DeleteZone { name, .. } => format!("delete DnsZone/{name}"),
            Step::ChangeRecords { name, purpose, .. } => purpose.describe(name),
            Step::RequestCertificate { .. }
            | Step::ValidateCertificate { .. }
            | Step::DeleteCertificate { .. }
            | Step::DeleteValidationRecords { .. } => describe_certificate_step(self),
            // The S3 and CloudFront steps (`kind` and `resource` stay
            // exhaustive, so a new step is never missed).
            _ => self.describe_s3_cloudfront(),
        }
    }

    /// [`Step::describe`] for the S3 and CloudFront steps.
    fn describe_s3_cloudfront(&self) -> String {
        match self {
            Step::CreateBucket { name, .. } => format!("create Bucket/{name}"),
            Step::SetBucketPublicRead { name, .. } => format!("set access of Bucket/{name}"),
            Step::DeleteBucket { name } => format!("delete Bucket/{name}"),
            Step::CreateDistribution { name, .. } => format!("create Cdn/{name}"),
            Step::UpdateDistribution { name, .. } => format!("update Cdn/{name}"),
            Step::DisableDistribution { name, .. } => format!("disable Cdn/{name}"),
            Step::DeleteDistribution { name, .. } => format!("delete Cdn/{name}"),
            Step::CreateOriginAccess { cdn, name, .. } => {
                format!("create origin access control {name} of Cdn/{cdn}")
            }
            Step::UpdateOriginAccess { cdn, name, .. } => {
                format!("set back origin access control {name} of Cdn/{cdn}")
            }
            Step::DeleteOriginAccess { cdn, name, .. } => {
                format!("delete origin access control {name} of Cdn/{cdn}")
            }
            Step::GrantCdnRead { cdn, bucket, .. } => {
                format!("let Cdn/{cdn} read bucket {bucket}")
            }
            Step::RevokeCdnRead { cdn, bucket, .. } => {
                format!("remove the read access of Cdn/{cdn} from bucket {bucket}")
            }
            Step::PutObjects {
                bucket, objects, ..
            } => format!(
                "upload {} to Bucket/{bucket}: {}",
                count(objects.len(), "object"),
                first_names(objects.iter().map(|o| o.key.as_str()))
            ),
            Step::DeleteObjects { bucket, keys } => format!(
                "delete {} from Bucket/{bucket}: {}",
                count(keys.len(), "object"),
                first_names(keys.iter().map(String::as_str))
            ),
            Step::Invalidate { cdn, paths, .. } => format!(
                "invalidate {} of Cdn/{cdn} and wait: {}",
                count(paths.len(), "path"),
                first_names(paths.iter().map(String::as_str))
            ),
            _ => self.kind().to_owned(),
        }
    }
}

impl Step {
    /// The step's kind, as its JSON `step` tag names it (`launch`,
    /// `attach-volume`): a short label for counting actions by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::CreateKeyPair { .. } => "create-key-pair",
            Step::DeleteKeyPair { .. } => "delete-key-pair",
            Step::CreateVpc { .. } => "create-vpc",
            Step::CreateGateway { .. } => "create-gateway",
            Step::AttachGateway { .. } => "attach-gateway",
            Step::CreateRouteTable { .. } => "create-route-table",
            Step::AddDefaultRoute { .. } => "add-default-route",
            Step::CreateSubnet { .. } => "create-subnet",
            Step::SetSubnetPublicIp { .. } => "set-subnet-public-ip",
            Step::AssociateSubnet { .. } => "associate-subnet",
            Step::DisassociateSubnet { .. } => "disassociate-subnet",
            Step::DeleteSubnet { .. } => "delete-subnet",
            Step::DeleteRouteTable { .. } => "delete-route-table",
            Step::DeleteGateway { .. } => "delete-gateway",
            Step::DeleteVpc { .. } => "delete-vpc",
            Step::CreateGroup { .. } => "create-group",
            Step::AuthorizeIngress { .. } => "authorize-ingress",
            Step::RevokeIngress { .. } => "revoke-ingress",
            Step::DeleteGroup { .. } => "delete-group",
            Step::SetTags { .. } => "set-tags",
            Step::Launch { .. } => "launch",
            Step::SetInstanceGroups { .. } => "set-instance-groups",
            Step::SetMetadataOptions { .. } => "set-metadata-options",
            Step::AssociateInstanceProfile { .. } => "associate-instance-profile",
            Step::ReplaceInstanceProfile { .. } => "replace-instance-profile",
            Step::DisassociateInstanceProfile { .. } => "disassociate-instance-profile",
            Step::WaitHealthy { .. } => "wait-healthy",
            Step::Terminate { .. } => "terminate",
            Step::CreateVolume { .. } => "create-volume",
            Step::ModifyVolume { .. } => "modify-volume",
            Step::AttachVolume { .. } => "attach-volume",
            Step::DetachVolume { .. } => "detach-volume",
            Step::Snapshot { .. } => "snapshot",
            Step::DeleteSnapshot { .. } => "delete-snapshot",
            Step::DeleteVolume { .. } => "delete-volume",
            Step::CreateBalancer { .. } => "create-balancer",
            Step::SetListeners { .. } => "set-listeners",
            Step::ConfigureHealthCheck { .. } => "configure-health-check",
            Step::SetBalancerAttributes { .. } => "set-balancer-attributes",
            Step::SetBalancerGroups { .. } => "set-balancer-groups",
            Step::SetBalancerZones { .. } => "set-balancer-zones",
            Step::SetBalancerSubnets { .. } => "set-balancer-subnets",
            Step::Register { .. } => "register",
            Step::Deregister { .. } => "deregister",
            Step::WaitDrained { .. } => "wait-drained",
            Step::DeleteBalancer { .. } => "delete-balancer",
            Step::DeleteTargetGroups { .. } => "delete-target-groups",
            Step::CreateBucket { .. } => "create-bucket",
            Step::SetBucketPublicRead { .. } => "set-bucket-public-read",
            Step::DeleteBucket { .. } => "delete-bucket",
            Step::CreateDistribution { .. } => "create-distribution",
            Step::UpdateDistribution { .. } => "update-distribution",
            Step::DisableDistribution { .. } => "disable-distribution",
            Step::DeleteDistribution { .. } => "delete-distribution",
            Step::CreateOriginAccess { .. } => "create-origin-access",
            Step::UpdateOriginAccess { .. } => "update-origin-access",
            Step::DeleteOriginAccess { .. } => "delete-origin-access",
            Step::GrantCdnRead { .. } => "grant-cdn-read",
            Step::RevokeCdnRead { .. } => "revoke-cdn-read",
            Step::PutObjects { .. } => "put-objects",
            Step::DeleteObjects { .. } => "delete-objects",
            Step::Invalidate { .. } => "invalidate",
            Step::CreateZone { .. } => "create-zone",
            Step::DeleteZone { .. } => "delete-zone",
            Step::ChangeRecords { .. } => "change-records",
            Step::RequestCertificate { .. } => "request-certificate",
            Step::ValidateCertificate { .. } => "validate-certificate",
            Step::DeleteCertificate { .. } => "delete-certificate",
            Step::DeleteValidationRecords { .. } => "delete-validation-records",
        }
    }

    /// What the step does, as a digest ([`StepContent`]): its operation
    /// and resource ([`Step::kind`], [`Step::describe`]) and its targets,
    /// every cloud ID it names (instances, volumes, groups, subnets, the
    /// image, …), found in its serialized form so that a new step variant
    /// needs nothing here. Parameters that follow from the rest of the
    /// world (user data, client tokens, tags) are left out: the same
    /// request aimed at the same things is the same content. The reconcile
    /// loop's backoff is keyed by the step's work and its content.
    pub fn content(&self) -> StepContent {
        let mut ids = BTreeSet::new();
        // Serializing a step cannot fail (no maps with non-string keys);
        // if it did, only the kind and description would tell steps
        // apart, which holds more than it should, never less.
        if let Ok(v) = serde_json::to_value(self) {
            cloud_ids(&v, &mut ids);
        }
        let described = self.describe();
        let mut parts: Vec<&str> = vec![self.kind(), &described];
        parts.extend(ids.iter().map(String::as_str));
        StepContent(crate::spec_hash::short_digest(&parts))
    }

    /// The work the step belongs to, for the reconcile loop's backoff:
    /// its resource, or a volume's scheduled snapshots.
    pub fn work_key(&self) -> WorkKey {
        match self {
            Step::Snapshot {
                name,
                purpose: SnapshotPurpose::Scheduled,
                ..
            }
            | Step::DeleteSnapshot { name, .. } => WorkKey::Snapshots {
                volume: name.clone(),
            },
            other => WorkKey::Resource {
                key: other.resource(),
            },
        }
    }

    /// The resource the step acts for (`Fleet/app` for a launch, the
    /// balancer for a registration, the volume for a snapshot), for
    /// per-resource bookkeeping such as the reconcile loop's backoff.
    pub fn resource(&self) -> ResourceKey {
        use crate::ids::Kind;
        let key = |kind, name: &ResourceName| ResourceKey::new(kind, name.clone());
        match self {
            Step::CreateKeyPair { name, .. } | Step::DeleteKeyPair { name, .. } => {
                key(Kind::KeyPair, name)
            }
            Step::CreateVpc { name, .. }
            | Step::CreateGateway { name, .. }
            | Step::AttachGateway { name, .. }
            | Step::CreateRouteTable { name, .. }
            | Step::AddDefaultRoute { name, .. }
            | Step::CreateSubnet { name, .. }
            | Step::SetSubnetPublicIp { name, .. }
            | Step::AssociateSubnet { name, .. }
            | Step::DisassociateSubnet { name, .. }
            | Step::DeleteSubnet { name, .. }
            | Step::DeleteRouteTable { name, .. }
            | Step::DeleteGateway { name, .. }
            | Step::DeleteVpc { name, .. } => key(Kind::Network, name),
            Step::CreateGroup { name, .. }
            | Step::AuthorizeIngress { name, .. }
            | Step::RevokeIngress { name, .. }
            | Step::DeleteGroup { name, .. } => key(Kind::SecurityGroup, name),
            Step::SetTags { key: k, .. } => k.clone(),
            Step::Launch { fleet, .. }
            | Step::SetInstanceGroups { fleet, .. }
            | Step::SetMetadataOptions { fleet, .. }
            | Step::AssociateInstanceProfile { fleet, .. }
            | Step::ReplaceInstanceProfile { fleet, .. }
            | Step::DisassociateInstanceProfile { fleet, .. }
            | Step::WaitHealthy { fleet, .. }
            | Step::Terminate { fleet, .. } => key(Kind::Fleet, fleet),
            Step::CreateVolume { name, .. }
            | Step::ModifyVolume { name, .. }
            | Step::AttachVolume { name, .. }
            | Step::DetachVolume { name, .. }
            | Step::Snapshot { name, .. }
            | Step::DeleteSnapshot { name, .. }
            | Step::DeleteVolume { name, .. } => key(Kind::Volume, name),
            Step::CreateBalancer { balancer, .. }
            | Step::SetListeners { balancer, .. }
            | Step::ConfigureHealthCheck { balancer, .. }
            | Step::SetBalancerAttributes { balancer, .. }
            | Step::SetBalancerGroups { balancer, .. }
            | Step::SetBalancerZones { balancer, .. }
            | Step::SetBalancerSubnets { balancer, .. }
            | Step::Register { balancer, .. }
            | Step::Deregister { balancer, .. }
            | Step::WaitDrained { balancer, .. }
            | Step::DeleteBalancer { balancer } => key(Kind::Balancer, &balancer.name),
            Step::DeleteTargetGroups { balancer, .. } => key(Kind::Balancer, balancer),
            Step::CreateBucket { name, .. }
            | Step::SetBucketPublicRead { name, .. }
            | Step::DeleteBucket { name } => key(Kind::Bucket, name),
            Step::CreateDistribution { name, .. }
            | Step::UpdateDistribution { name, .. }
            | Step::DisableDistribution { name, .. }
            | Step::DeleteDistribution { name, .. } => key(Kind::Cdn, name),
            Step::CreateOriginAccess { cdn, .. }
            | Step::UpdateOriginAccess { cdn, .. }
            | Step::DeleteOriginAccess { cdn, .. }
            | Step::GrantCdnRead { cdn, .. }
            | Step::RevokeCdnRead { cdn, .. }
            | Step::Invalidate { cdn, .. } => key(Kind::Cdn, cdn),
            Step::PutObjects { bucket, .. } | Step::DeleteObjects { bucket, .. } => {
                key(Kind::Bucket, bucket)
            }
            Step::CreateZone { name, .. } | Step::DeleteZone { name, .. } => {
                key(Kind::DnsZone, name)
            }
            Step::ChangeRecords { name, .. } => key(Kind::DnsRecord, name),
            Step::RequestCertificate { name, .. }
            | Step::ValidateCertificate { name, .. }
            | Step::DeleteCertificate { name, .. }
            | Step::DeleteValidationRecords { name, .. } => key(Kind::Certificate, name),
        }
    }
}

/// What a step that another step refers to must be: the step that
/// produces what is referred to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Produces {
    /// A security group ([`Step::CreateGroup`]).
    Group,
    /// Instances ([`Step::Launch`]).
    Instances,
    /// A volume ([`Step::CreateVolume`]).
    Volume,
    /// A balancer ([`Step::CreateBalancer`]).
    Balancer,
    /// A distribution ([`Step::CreateDistribution`]).
    Distribution,
    /// A VPC ([`Step::CreateVpc`]).
    Vpc,
    /// An internet gateway ([`Step::CreateGateway`]).
    Gateway,
    /// A route table ([`Step::CreateRouteTable`]).
    RouteTable,
    /// A subnet ([`Step::CreateSubnet`]).
    Subnet,
    /// A hosted zone ([`Step::CreateZone`]).
    Zone,
    /// A certificate ([`Step::RequestCertificate`]).
    Certificate,
}

impl Produces {
    /// Whether `step` produces this.
    pub fn is_made_by(self, step: &Step) -> bool {
        matches!(
            (self, step),
            (Produces::Group, Step::CreateGroup { .. })
                | (Produces::Instances, Step::Launch { .. })
                | (Produces::Volume, Step::CreateVolume { .. })
                | (Produces::Balancer, Step::CreateBalancer { .. })
                | (Produces::Distribution, Step::CreateDistribution { .. })
                | (Produces::Vpc, Step::CreateVpc { .. })
                | (Produces::Gateway, Step::CreateGateway { .. })
                | (Produces::RouteTable, Step::CreateRouteTable { .. })
                | (Produces::Subnet, Step::CreateSubnet { .. })
                | (Produces::Zone, Step::CreateZone { .. })
                | (Produces::Certificate, Step::RequestCertificate { .. })
        )
    }

    /// What produces an attribute a template reads.
    pub fn of_attr(attr: Attr) -> Produces {
        match attr {
            Attr::DnsName | Attr::ZoneId => Produces::Balancer,
            Attr::DomainName => Produces::Distribution,
            Attr::Id => Produces::Volume,
            Attr::PrivateIp | Attr::PrivateIps => Produces::Instances,
            Attr::NameServers => Produces::Zone,
        }
    }
}

impl Step {
    /// The earlier steps this step refers to by ID, with what each must
    /// produce, in the order the step holds them.
    pub fn step_refs(&self) -> Vec<(StepId, Produces)> {
        let mut out = Vec::new();
        // Visiting needs `&mut`; steps holding references are few and small.
        self.clone().visit_step_refs(&mut |id, what| {
            out.push((*id, what));
        });
        out
    }

    /// The step with every step reference it holds mapped through `map`
    /// (for renumbering).
    pub fn map_step_refs(&self, map: impl Fn(StepId) -> StepId) -> Step {
        let mut step = self.clone();
        step.visit_step_refs(&mut |id, _| *id = map(*id));
        step
    }

    /// Calls `f` on each step reference the step holds. The one place that
    /// knows where steps hold references, so a new one cannot be missed
    /// by renumbering or by the checker.
    fn visit_step_refs(&mut self, f: &mut impl FnMut(&mut StepId, Produces)) {
        let group = |g: &mut GroupRef, f: &mut dyn FnMut(&mut StepId, Produces)| {
            if let GroupRef::Created(s) = g {
                f(s, Produces::Group);
            }
        };
        let instances = |i: &mut InstanceRef, f: &mut dyn FnMut(&mut StepId, Produces)| {
            if let InstanceRef::Launched(s) = i {
                f(s, Produces::Instances);
            }
        };
        fn net<T>(r: &mut Ref<T>, what: Produces, f: &mut dyn FnMut(&mut StepId, Produces)) {
            if let Ref::Created(s) = r {
                f(s, what);
            }
        }
        match self {
            Step::CreateGateway { vpc, .. }
            | Step::CreateRouteTable { vpc, .. }
            | Step::CreateSubnet { vpc, .. } => net(vpc, Produces::Vpc, f),
            Step::CreateGroup { vpc, .. } => net(vpc, Produces::Vpc, f),
            Step::AddDefaultRoute {
                route_table,
                gateway,
                ..
            } => {
                net(route_table, Produces::RouteTable, f);
                net(gateway, Produces::Gateway, f);
            }
            Step::SetSubnetPublicIp { id, .. } => net(id, Produces::Subnet, f),
            Step::AssociateSubnet {
                id, route_table, ..
            } => {
                net(id, Produces::Subnet, f);
                net(route_table, Produces::RouteTable, f);
            }
            Step::CreateBalancer {
                subnets,
                security_groups,
                certificates,
                ..
            } => {
                for (_, s) in certificates.iter_mut() {
                    f(s, Produces::Certificate);
                }
                for s in subnets {
                    net(s, Produces::Subnet, f);
                }
                for g in security_groups {
                    group(g, f);
                }
            }
            Step::SetBalancerSubnets { attach, all, .. } => {
                for s in attach.iter_mut().chain(all.iter_mut()) {
                    net(s, Produces::Subnet, f);
                }
            }
            Step::SetBalancerGroups { groups, .. } => {
                for g in groups {
                    group(g, f);
                }
            }
            Step::AuthorizeIngress {
                group: g, rules, ..
            } => {
                group(g, f);
                for r in rules.iter_mut() {
                    if let Some(g) = &mut r.source_group {
                        group(g, f);
                    }
                }
            }
            Step::Launch { spec, .. } => {
                for g in &mut spec.groups {
                    group(g, f);
                }
                if let Some(s) = &mut spec.subnet {
                    net(s, Produces::Subnet, f);
                }
                for part in &mut spec.user_data {
                    match part {
                        UserDataPart::StepOutput { step, attr } => {
                            f(step, Produces::of_attr(*attr))
                        }
                        UserDataPart::FleetIps { launches, .. } => {
                            for l in launches {
                                f(l, Produces::Instances);
                            }
                        }
                        UserDataPart::Text(_) | UserDataPart::Secret(_) => {}
                    }
                }
            }
            Step::SetInstanceGroups { groups, .. } => {
                for g in groups {
                    group(g, f);
                }
            }
            Step::GrantCdnRead { distribution, .. } => net(distribution, Produces::Distribution, f),
            Step::SetListeners { certificates, .. } => {
                for (_, s) in certificates.iter_mut() {
                    f(s, Produces::Certificate);
                }
            }
            Step::CreateDistribution {
                certificate: Some(s),
                ..
            }
            | Step::UpdateDistribution {
                certificate: Some(s),
                ..
            } => f(s, Produces::Certificate),
            Step::ValidateCertificate { arn, zone, .. } => {
                net(arn, Produces::Certificate, f);
                net(zone, Produces::Zone, f);
            }
            Step::ChangeRecords { zone, changes, .. } => {
                net(zone, Produces::Zone, f);
                for c in changes {
                    c.visit_step_refs(&mut |id, what| f(id, what));
                }
            }
            Step::WaitHealthy { instances: is, .. } | Step::Register { instances: is, .. } => {
                for i in is {
                    instances(i, f);
                }
            }
            Step::AttachVolume {
                volume, instance, ..
            } => {
                if let VolumeRef::Created(s) = volume {
                    f(s, Produces::Volume);
                }
                instances(instance, f);
            }
            _ => {}
        }
    }
}

/// `1 object`, `3 objects`.
fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The first [`SHOWN_NAMES`] names, then how many more.
pub fn first_names<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> String {
    let total = names.len();
    let mut out: Vec<&str> = names.take(SHOWN_NAMES).collect();
    let more = total.saturating_sub(out.len());
    let tail = format!("… and {more} more");
    if more > 0 {
        out.push(&tail);
    }
    out.join(", ")
}

/// How many object keys a plan names before it counts the rest.
pub const SHOWN_NAMES: usize = 20;

fn join_ids<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    ids.collect::<Vec<_>>().join(", ")
}

/// What a [`Step::SetTags`] does, for people: an existing zone tagged for a
/// record's stack says so.
fn describe_tags(key: &ResourceKey, target: &TagTarget) -> String {
    match target {
        TagTarget::Zone(id) if key.kind == crate::ids::Kind::DnsRecord => {
            format!("tag hosted zone {id} as holding the stack's records ({key})")
        }
        _ => format!("set tags on {key}"),
    }
}

/// The last segment of an ARN (a certificate's ID), for step lines.
fn short_arn(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// What an ACM step does, for people.
fn describe_certificate_step(step: &Step) -> String {
    match step {
        Step::RequestCertificate {
            name,
            region,
            domains,
            ..
        } => format!(
            "request Certificate/{name} in {region} for {}",
            domains.join(", ")
        ),
        Step::ValidateCertificate { name, domain, .. } => {
            format!("validate Certificate/{name} through zone {domain} and wait until it is issued")
        }
        Step::DeleteCertificate { name, arn, .. } => {
            format!("delete Certificate/{name} ({})", short_arn(arn))
        }
        Step::DeleteValidationRecords { name, changes, .. } => {
            // The CNAMEs; their marks go with them.
            let records: Vec<&str> = changes
                .iter()
                .filter(|c| c.set.rtype == crate::route53::RecordType::Cname)
                .map(|c| c.set.name.as_str())
                .collect();
            format!(
                "delete {} of Certificate/{name}: {}",
                count(records.len(), "validation record"),
                first_names(records.into_iter())
            )
        }
        _ => String::new(),
    }
}
