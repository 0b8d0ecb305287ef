//! The manifest documents as written: one serde type per kind's `spec`,
//! with every field name, default and documented constraint in one place.
//! The JSON Schemas under `schemas/` are generated from these types.
//!
//! These types only check shape (fields, types, enums); every rule that
//! needs more than that (ranges, name syntax, references) lives in
//! `resolve`, so that one document can report several problems at once.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Tags: string keys and values. Keys starting with `aws:` or `converge:`
/// are reserved.
pub type Tags = BTreeMap<String, String>;

/// A duration: one or more of `<n>h`, `<n>m`, `<n>s` in that order, such
/// as `30s`, `5m`, `1h30m`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DurationText(pub String);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = DurationText;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration like \"30s\", \"500ms\", \"5m\" or \"1h30m\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DurationText, E> {
                Ok(DurationText(v.to_owned()))
            }
        }
        d.deserialize_str(V)
    }
}

impl DurationText {
    pub(crate) fn of(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl JsonSchema for DurationText {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A duration such as `30s`, `500ms`, `5m`, `1h30m` or `2 hours` (jiff's friendly format; `0` alone is zero).",
        })
    }
}

/// The JSON Schema pattern of a duration.
/// (jiff's friendly format: numbers with units, largest first; only the
/// last may have a fraction; see `converge_core::duration`).
pub const DURATION_PATTERN: &str = "^(0|([0-9]+ ?[a-z]+,? ?)*[0-9]+(\\.[0-9]+)? ?[a-zµ]+)$";

/// The `Stack` document: the region and the tags every resource gets.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StackSpec {
    /// The AWS region, such as `us-east-1`.
    #[schemars(regex(pattern = r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$"))]
    pub region: String,
    /// Tags added to every resource of the stack.
    #[serde(default)]
    pub tags: Tags,
}

/// A `KeyPair` document: an SSH public key imported into the region.
/// Exactly one of `publicKey` and `publicKeyFile`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyPairSpec {
    /// The OpenSSH public key text: `ssh-ed25519 AAAA… comment`.
    #[serde(default)]
    pub public_key: Option<String>,
    /// A file holding the OpenSSH public key, relative to the manifest file.
    #[serde(default)]
    pub public_key_file: Option<String>,
    /// Tags of this key pair.
    #[serde(default)]
    pub tags: Tags,
}

/// A `SecurityGroup` document: inbound rules.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecurityGroupSpec {
    /// What the group is for (at most 255 characters; changing it replaces
    /// the group).
    #[serde(default = "default_group_description")]
    #[schemars(length(max = 255))]
    pub description: String,
    /// Inbound rules.
    #[serde(default)]
    pub ingress: Vec<IngressRule>,
    /// Tags of this group.
    #[serde(default)]
    pub tags: Tags,
}

fn default_group_description() -> String {
    "managed by converge".into()
}

/// One inbound rule: a protocol, ports (for tcp and udp) and exactly one
/// source, `cidr` or `group`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IngressRule {
    /// The protocol.
    #[serde(default = "default_protocol")]
    pub protocol: Protocol,
    /// A single port, 1–65535 (tcp and udp: exactly one of `port` and `ports`).
    #[serde(default)]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i64>,
    /// A port range, such as `"8100-8101"` (tcp and udp: exactly one of
    /// `port` and `ports`).
    #[serde(default)]
    #[schemars(regex(pattern = r"^[0-9]+-[0-9]+$"))]
    pub ports: Option<String>,
    /// An IPv4 CIDR block such as `203.0.113.7/32`, with no host bits set.
    #[serde(default)]
    #[schemars(regex(pattern = r"^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$"))]
    pub cidr: Option<String>,
    /// A security group of the stack, by name (may be this group).
    #[serde(default)]
    pub group: Option<String>,
}

fn default_protocol() -> Protocol {
    Protocol::Tcp
}

/// An IP protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP, with a port or range.
    Tcp,
    /// UDP, with a port or range.
    Udp,
    /// ICMP, every type; no ports.
    Icmp,
    /// Every protocol and port; no ports.
    All,
}

/// A `Fleet` document: identical EC2 instances spread over zones.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FleetSpec {
    /// The machine image: `ami-` followed by 8 or 17 hex digits, or
    /// `ssm:NAME`, the SSM parameter whose value is the image (read when
    /// planning), such as
    /// `ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64`.
    #[schemars(regex(
        pattern = r"^(ami-([0-9a-f]{8}|[0-9a-f]{17})|ssm:[a-zA-Z0-9_./-]{1,1011})$"
    ))]
    pub image: String,
    /// The instance type, such as `m1.small`.
    pub instance_type: String,
    /// Zones of the stack's region to spread instances over, evenly, the
    /// remainder going to the zones listed first. Without a Network only
    /// (with one, name `subnets`).
    #[serde(default)]
    pub zones: Vec<String>,
    /// With a Network: its subnets (names from its `spec.subnets`) to
    /// spread instances over, evenly, one subnet per zone; the fleet's
    /// zones are theirs.
    #[serde(default)]
    pub subnets: Vec<String>,
    /// Whether instances get a public address (with a Network only).
    /// Default: the subnet's own setting (public subnets give one).
    #[serde(default)]
    pub public_ip: Option<bool>,
    /// With a Network: the private addresses the instances take, one
    /// each (IPv4, each inside one of `subnets`, not one of the five AWS
    /// reserves, listed once). A lost instance's successor takes its
    /// address again, so what reads `${Fleet/NAME.privateIp}` is not
    /// rolled. At least as many as the fleet can run, in each subnet as
    /// many as it spreads there. Not with `autoscale`. Default: the
    /// subnet picks.
    #[serde(default)]
    pub private_ips: Vec<String>,
    /// The instance count, 0–1000, when no schedule rule says otherwise.
    /// Default 1. Not allowed with `autoscale`.
    #[serde(default)]
    #[schemars(range(min = 0, max = 1000), extend("default" = 1))]
    pub replicas: Option<i64>,
    /// The key pair (name of a KeyPair document).
    #[serde(default)]
    pub key_pair: Option<String>,
    /// Security groups (names of SecurityGroup documents).
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// User data, with `${Kind/name.attr}` and `${env:NAME}` references;
    /// `$${` is a literal `${`.
    #[serde(default)]
    pub user_data: String,
    /// Tags of the fleet's instances.
    #[serde(default)]
    pub tags: Tags,
    /// Replica counts on a schedule.
    #[serde(default)]
    pub schedule: Option<Schedule>,
    /// Replica counts driven by a metric.
    #[serde(default)]
    pub autoscale: Option<Autoscale>,
    /// How health is judged.
    #[serde(default)]
    pub health: Health,
    /// How instances are replaced when the launch spec changes.
    #[serde(default)]
    pub update: Update,
    /// The IAM instance profile the instances run with: the name or ARN
    /// of an existing one. Changed in place on running instances.
    #[serde(default)]
    pub instance_profile: Option<String>,
    /// The instance metadata service's options. Default
    /// `{tokens: required, hopLimit: 2}` (IMDSv2 only). Changed in place.
    #[serde(default)]
    pub metadata: Metadata,
    /// The root volume. Left out: the image's own. A change replaces
    /// instances.
    #[serde(default)]
    pub root_volume: Option<RootVolume>,
}

/// The instance metadata service's options.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// `required` (IMDSv2 only) or `optional` (IMDSv1 too). Default
    /// `required`.
    #[serde(default)]
    #[schemars(extend("default" = "required"))]
    pub tokens: Option<HttpTokens>,
    /// How many network hops the metadata PUT response may travel, 1–64.
    /// Default 2 (so that containers on the instance reach it).
    #[serde(default)]
    #[schemars(range(min = 1, max = 64), extend("default" = 2))]
    pub hop_limit: Option<i64>,
}

/// Whether the instance metadata service requires session tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HttpTokens {
    /// IMDSv2 only.
    Required,
    /// IMDSv1 too.
    Optional,
}

/// A fleet's root volume.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RootVolume {
    /// The size in GiB: within the type's EBS range (gp2/gp3 1–16384,
    /// io1/io2 from 4, st1/sc1 from 125, standard up to 1024), and at
    /// least the image's root snapshot.
    #[serde(rename = "sizeGiB")]
    #[schemars(range(min = 1, max = 16384))]
    pub size_gib: i64,
    /// The volume type. Default `gp3`.
    #[serde(default = "default_volume_type", rename = "type")]
    pub volume_type: VolumeType,
    /// Whether it is encrypted (with the account's default EBS key).
    /// Default `true`.
    #[serde(default = "default_encrypted")]
    pub encrypted: bool,
}

fn default_encrypted() -> bool {
    true
}

/// Replica counts that follow cron rules: the rule that fired most
/// recently is in effect.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Schedule {
    /// The IANA time zone the rules are read in.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// The rules (at least one).
    #[schemars(length(min = 1))]
    pub rules: Vec<ScheduleRule>,
}

fn default_timezone() -> String {
    "UTC".into()
}

/// One scheduled replica count.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScheduleRule {
    /// A five-field cron expression: minute hour day-of-month month
    /// day-of-week, such as `0 8 * * 1-5`.
    pub cron: String,
    /// The instance count from then on, 0–1000.
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i64,
}

/// Metric-driven scaling (acted on by `converge reconcile`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Autoscale {
    /// Where the metric is read.
    pub metric: Metric,
    /// How often the metric is read. Default `1m`.
    #[serde(default = "default_every")]
    pub every: DurationText,
    /// Add instances while the metric is above a threshold.
    pub scale_out: ScaleOut,
    /// Remove instances while the metric is below a threshold.
    pub scale_in: ScaleIn,
    /// The fewest instances, 0–1000.
    #[schemars(range(min = 0, max = 1000))]
    pub min: i64,
    /// The most instances, `min`–1000.
    #[schemars(range(min = 1, max = 1000))]
    pub max: i64,
    /// The least time between two scaling actions. Default `5m`.
    #[serde(default = "default_cooldown")]
    pub cooldown: DurationText,
}

fn default_every() -> DurationText {
    DurationText::of("1m")
}

fn default_cooldown() -> DurationText {
    DurationText::of("5m")
}

/// Where a metric is read.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metric {
    /// An `http://` or `https://` URL answering with a plain number.
    pub url: String,
}

/// The scale-out rule.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScaleOut {
    /// The threshold the metric must exceed.
    pub above: f64,
    /// Instances added per action, 1–1000. Default 1.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 1000))]
    pub step: i64,
}

/// The scale-in rule.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScaleIn {
    /// The threshold the metric must fall under (below `scaleOut.above`).
    pub below: f64,
    /// Instances removed per action, 1–1000. Default 1.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 1000))]
    pub step: i64,
    /// Only instances that have run this long are removed. Default `0s`.
    #[serde(default = "zero_duration")]
    pub min_uptime: DurationText,
}

fn one() -> i64 {
    1
}

fn zero_duration() -> DurationText {
    DurationText::of("0s")
}

/// How a fleet's health is judged.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Health {
    /// How long a new instance may take to become healthy. Default `5m`.
    #[serde(default = "default_grace")]
    pub grace: DurationText,
    /// An HTTP probe; without one, a running instance is healthy.
    #[serde(default)]
    pub http: Option<HttpCheck>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            grace: default_grace(),
            http: None,
        }
    }
}

fn default_grace() -> DurationText {
    DurationText::of("5m")
}

/// An HTTP probe: `GET http://ADDRESS:PORT/PATH` answers 2xx and its body
/// contains `expect`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpCheck {
    /// The port, 1–65535.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i64,
    /// The path, starting with `/`. Default `/`.
    #[serde(default = "default_path")]
    pub path: String,
    /// Text the body must contain.
    #[serde(default)]
    pub expect: Option<String>,
}

fn default_path() -> String {
    "/".into()
}

/// The rolling-replacement budget: with the defaults, each replacement is
/// running and healthy before the instance it replaces goes.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Update {
    /// Extra instances allowed above the target while replacing. Default 1.
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 1000))]
    pub max_surge: i64,
    /// Instances allowed below the target while replacing. Default 0. Not
    /// both 0.
    #[serde(default)]
    #[schemars(range(min = 0, max = 1000))]
    pub max_unavailable: i64,
}

impl Default for Update {
    fn default() -> Self {
        Self {
            max_surge: 1,
            max_unavailable: 0,
        }
    }
}

/// A `Volume` document: an EBS volume, optionally attached to a
/// one-replica fleet.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VolumeSpec {
    /// The size in GiB, 1–16384 (io1/io2 from 4, st1/sc1 from 125,
    /// standard up to 1024).
    #[serde(rename = "sizeGiB")]
    #[schemars(range(min = 1, max = 16384))]
    pub size_gib: i64,
    /// The zone; the volume attaches only to instances in it.
    pub zone: String,
    /// The volume type. Default `gp3`.
    #[serde(default = "default_volume_type", rename = "type")]
    pub volume_type: VolumeType,
    /// Restore from this snapshot (`snap-…`) when the volume is created.
    /// A volume restored from an encrypted snapshot is encrypted.
    #[serde(default)]
    #[schemars(regex(pattern = r"^snap-([0-9a-f]{8}|[0-9a-f]{17})$"))]
    pub from_snapshot: Option<String>,
    /// Whether the volume is encrypted at rest. Default `true`. Set at
    /// creation: converge never changes an existing volume's encryption.
    #[serde(default = "default_encrypted")]
    pub encrypted: bool,
    /// The KMS key it is encrypted with: a key ID, a key ARN, an alias name
    /// (`alias/…`) or an alias ARN. Default: the account's default EBS key
    /// (`alias/aws/ebs` unless the account sets another). Only with
    /// `encrypted: true`; set at creation.
    #[serde(default)]
    pub kms_key: Option<String>,
    /// Provisioned IOPS: gp3 3,000–16,000 (at most 500 per GiB; default
    /// 3,000, gp3's baseline), io1 100–64,000 (at most 50 per GiB), io2
    /// 100–256,000 (at most 1,000 per GiB). Required for io1 and io2, refused
    /// for gp2, st1, sc1 and standard. Changed in place.
    #[serde(default)]
    #[schemars(range(min = 100, max = 256000))]
    pub iops: Option<i64>,
    /// Throughput in MiB/s, gp3 only: 125–1,000, at most 0.25 per IOPS
    /// (default 125, gp3's baseline). Changed in place.
    #[serde(default)]
    #[schemars(range(min = 125, max = 1000))]
    pub throughput: Option<i64>,
    /// Where it is attached.
    #[serde(default)]
    pub attach: Option<Attach>,
    /// Scheduled snapshots (taken by `converge reconcile`).
    #[serde(default)]
    pub snapshots: Option<Snapshots>,
    /// What happens when it is removed from the manifests. Default `retain`.
    #[serde(default = "default_deletion_policy")]
    pub deletion_policy: DeletionPolicy,
    /// Tags of this volume.
    #[serde(default)]
    pub tags: Tags,
}

fn default_volume_type() -> VolumeType {
    VolumeType::Gp3
}

fn default_deletion_policy() -> DeletionPolicy {
    DeletionPolicy::Retain
}

/// The EBS volume type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VolumeType {
    /// General purpose SSD (previous generation).
    Gp2,
    /// General purpose SSD.
    Gp3,
    /// Provisioned IOPS SSD.
    Io1,
    /// Provisioned IOPS SSD.
    Io2,
    /// Throughput-optimised HDD.
    St1,
    /// Cold HDD.
    Sc1,
    /// Magnetic.
    Standard,
}

/// What happens to a volume removed from the manifests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeletionPolicy {
    /// Keep it (the plan shows the delete as blocked).
    Retain,
    /// Delete it.
    Delete,
    /// Take a final snapshot, then delete it.
    Snapshot,
}

/// A volume's attachment.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Attach {
    /// The fleet (name of a Fleet document with at most one replica, whose
    /// zones include the volume's).
    pub fleet: String,
    /// The device name, `/dev/sdf` to `/dev/sdp` (or `/dev/xvdf`–`/dev/xvdp`).
    #[schemars(regex(pattern = r"^/dev/(sd|xvd)[f-p]$"))]
    pub device: String,
}

/// Scheduled snapshots.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Snapshots {
    /// A five-field cron expression, such as `0 3 * * *`.
    pub schedule: String,
    /// The IANA time zone the schedule is read in. Default `UTC`.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// How many scheduled snapshots to keep, 1–1000.
    #[schemars(range(min = 1, max = 1000))]
    pub keep: i64,
}

/// A `Balancer` document: a load balancer in front of fleets: a classic
/// Elastic Load Balancer, an Application Load Balancer or a Network Load
/// Balancer.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BalancerSpec {
    /// `classic` (the default), `application` (HTTP and HTTPS) or
    /// `network` (TCP, TLS, UDP). Changing it replaces the balancer: the
    /// new one is made and its members healthy before the old one goes.
    #[serde(default, rename = "type")]
    pub kind: BalancerType,
    /// `internet-facing` (the default) or `internal`. Changing it replaces
    /// the balancer.
    #[serde(default)]
    pub scheme: BalancerScheme,
    /// Zones it serves; its fleets must launch only in these. Without a
    /// Network only (with one, name `subnets`). An application balancer
    /// needs two at least.
    #[serde(default)]
    pub zones: Vec<String>,
    /// With a Network: the subnets it serves in (names from its
    /// `spec.subnets`), at most one per zone; its fleets must launch only
    /// in their zones.
    #[serde(default)]
    pub subnets: Vec<String>,
    /// SecurityGroups of the stack (document names): at least one for an
    /// application balancer; none for a network one; a classic balancer
    /// takes them with a Network.
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// Its listeners (at least one).
    #[schemars(length(min = 1))]
    pub listeners: Vec<Listener>,
    /// Its health check: required for a classic balancer (`target`); for
    /// application and network balancers every field has a default.
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    /// Application and network balancers: how long a leaving member
    /// drains before its instance may be terminated, whole seconds from
    /// 0s to 3600s. Default `300s` (AWS's).
    #[serde(default)]
    pub deregistration_delay: Option<DurationText>,
    /// Classic balancers: how long a leaving member drains, whole seconds
    /// up to 3600s; `0s` turns draining off. Default `300s`.
    #[serde(default)]
    pub connection_draining: Option<DurationText>,
    /// Classic balancers: spread traffic evenly across zones. Default
    /// true.
    #[serde(default)]
    pub cross_zone: Option<bool>,
    /// Fleets whose instances are its members (names of Fleet documents).
    #[serde(default)]
    pub fleets: Vec<String>,
    /// Tags of this balancer.
    #[serde(default)]
    pub tags: Tags,
}

/// The type of a balancer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BalancerType {
    /// A classic Elastic Load Balancer.
    #[default]
    Classic,
    /// An Application Load Balancer.
    Application,
    /// A Network Load Balancer.
    Network,
}

/// Whether a balancer is reachable from the internet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum BalancerScheme {
    /// Public addresses (the default).
    #[default]
    #[serde(rename = "internet-facing")]
    InternetFacing,
    /// Private addresses only.
    #[serde(rename = "internal")]
    Internal,
}

/// A listener: traffic to `port` goes to the members' `instancePort`
/// (classic) or `targetPort` (application, network).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Listener {
    /// The balancer's port: 1–65535 (a classic balancer: 25, 80, 443, 465,
    /// 587 or 1024–65535).
    #[schemars(range(min = 1, max = 65535))]
    pub port: i64,
    /// Classic balancers: the instances' port, 1–65535. Default: `port`.
    #[serde(default)]
    #[schemars(range(min = 1, max = 65535))]
    pub instance_port: Option<i64>,
    /// Application and network balancers: the targets' port, 1–65535.
    /// Default: `port`.
    #[serde(default)]
    #[schemars(range(min = 1, max = 65535))]
    pub target_port: Option<i64>,
    /// The protocol: HTTP, HTTPS, TCP or SSL (classic); HTTP or HTTPS
    /// (application); TCP, TLS, UDP or TCP_UDP (network).
    pub protocol: ListenerProtocol,
    /// The certificate of an HTTPS, SSL or TLS listener (required there,
    /// refused elsewhere): `Certificate/NAME` of the stack (in the
    /// balancer's region), or an ACM certificate ARN.
    #[serde(default)]
    pub certificate: Option<String>,
}

/// A listener's protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ListenerProtocol {
    /// HTTP.
    #[serde(rename = "HTTP")]
    Http,
    /// HTTPS.
    #[serde(rename = "HTTPS")]
    Https,
    /// TCP.
    #[serde(rename = "TCP")]
    Tcp,
    /// SSL (classic).
    #[serde(rename = "SSL")]
    Ssl,
    /// TLS (network).
    #[serde(rename = "TLS")]
    Tls,
    /// UDP (network).
    #[serde(rename = "UDP")]
    Udp,
    /// TCP and UDP on one port (network).
    #[serde(rename = "TCP_UDP")]
    TcpUdp,
}

/// A balancer's health check.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HealthCheck {
    /// Classic balancers: what is checked: `HTTP:80/`, `HTTPS:443/path`,
    /// `TCP:5432` or `SSL:443`.
    #[serde(default)]
    #[schemars(regex(pattern = r"^((HTTP|HTTPS):[0-9]+/.*|(TCP|SSL):[0-9]+)$"))]
    pub target: Option<String>,
    /// Application and network balancers: HTTP or HTTPS (application;
    /// default HTTP), TCP, HTTP or HTTPS (network; default TCP).
    #[serde(default)]
    pub protocol: Option<ListenerProtocol>,
    /// Application and network balancers: the port checked, 1–65535.
    /// Default: the target port.
    #[serde(default)]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i64>,
    /// Application and network balancers, HTTP and HTTPS checks: the path
    /// requested. Default `/`.
    #[serde(default)]
    pub path: Option<String>,
    /// Application and network balancers, HTTP and HTTPS checks: the codes
    /// that count as healthy (`200`, `200,302`, `200-399`). Default
    /// `200-399`.
    #[serde(default)]
    pub matcher: Option<String>,
    /// Time between checks, whole seconds from 5s to 5m. Default `30s`.
    #[serde(default = "default_interval")]
    pub interval: DurationText,
    /// Time before a check fails, less than the interval: whole seconds
    /// from 2s to 60s (classic) or 120s. Default `5s` (classic,
    /// application) or `10s` (network).
    #[serde(default)]
    pub timeout: Option<DurationText>,
    /// Consecutive successes before a member is healthy, 2–10. Default 10
    /// (classic) or 5 (application, network).
    #[serde(default)]
    #[schemars(range(min = 2, max = 10))]
    pub healthy_threshold: Option<i64>,
    /// Consecutive failures before a member is unhealthy, 2–10. Default 2.
    #[serde(default = "default_unhealthy")]
    #[schemars(range(min = 2, max = 10))]
    pub unhealthy_threshold: i64,
}

impl Default for HealthCheck {
    /// Every field's default (an elbv2 balancer's check when none is
    /// written).
    fn default() -> Self {
        HealthCheck {
            target: None,
            protocol: None,
            port: None,
            path: None,
            matcher: None,
            interval: default_interval(),
            timeout: None,
            healthy_threshold: None,
            unhealthy_threshold: default_unhealthy(),
        }
    }
}

fn default_interval() -> DurationText {
    DurationText::of("30s")
}

fn default_unhealthy() -> i64 {
    2
}

/// A `Bucket` document: an S3 bucket named after the document.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BucketSpec {
    /// Whether anyone may read its objects. Default false.
    #[serde(default)]
    pub public_read: bool,
    /// What happens when it is removed from the manifests. Default `retain`.
    #[serde(default)]
    pub deletion_policy: BucketDeletionPolicy,
    /// Tags of this bucket.
    #[serde(default)]
    pub tags: Tags,
    // origin access and content (issue 11 B)
    /// Its objects: the files of a directory, uploaded when new or
    /// changed, deleted when gone. Default: converge leaves objects alone.
    #[serde(default)]
    pub content: Option<BucketContent>,
}

/// A bucket's content: `{dir, prefix, cacheControl, exclude, delete}`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BucketContent {
    /// The directory whose files are the objects, relative to the
    /// manifest's file.
    pub dir: String,
    /// The key prefix the files go under: empty (the default) or ending
    /// in `/`, without a leading `/`.
    #[serde(default)]
    pub prefix: String,
    /// The `Cache-Control` every object gets, such as `max-age=300`.
    #[serde(default)]
    pub cache_control: Option<String>,
    /// Globs of paths under `dir` that are neither uploaded nor deleted
    /// (`*` within a segment, `**` across, `?` one character; a glob
    /// without `/` matches file names anywhere, like `*.map`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Whether objects under `prefix` that no file matches are deleted.
    /// Default true.
    #[serde(default = "yes")]
    pub delete: bool,
}

/// A `Network` document: the stack's VPC (at most one per stack), created
/// (`cidr`) or existing (`vpc`), and the subnets fleets and balancers go
/// in.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkSpec {
    /// Create a VPC with this IPv4 block, `/16` to `/28`. Exactly one of
    /// `cidr` and `vpc`.
    #[serde(default)]
    pub cidr: Option<String>,
    /// Use this existing VPC (`vpc-…`); converge never changes or deletes
    /// it. Exactly one of `cidr` and `vpc`.
    #[serde(default)]
    #[schemars(regex(pattern = r"^vpc-[0-9a-f]+$"))]
    pub vpc: Option<String>,
    /// Its subnets, at least one.
    #[schemars(length(min = 1))]
    pub subnets: Vec<SubnetSpec>,
    /// What happens to a created VPC when the Network is removed: `retain`
    /// (default) or `delete`, which deletes it once nothing else is left
    /// in it.
    #[serde(default)]
    pub deletion_policy: NetworkDeletionPolicy,
    /// Tags of what converge creates for it.
    #[serde(default)]
    pub tags: Tags,
}

/// What happens to a created VPC when its Network is removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NetworkDeletionPolicy {
    /// Keep it (the plan shows the delete as blocked).
    #[default]
    Retain,
    /// Delete it, its subnets, gateway and route table, once nothing else
    /// is left in it.
    Delete,
}

/// A subnet of a Network: `{name, zone, cidr, public}` in a created VPC,
/// `{name, id}` in an existing one.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SubnetSpec {
    /// The name fleets and balancers use for it.
    pub name: String,
    /// Created VPC: its zone.
    #[serde(default)]
    pub zone: Option<String>,
    /// Created VPC: its IPv4 block, `/16` to `/28`, inside the VPC's and
    /// overlapping no other subnet.
    #[serde(default)]
    pub cidr: Option<String>,
    /// Created VPC: whether it routes to the internet and gives instances
    /// public addresses by default. Default `false`.
    #[serde(default)]
    pub public: Option<bool>,
    /// Existing VPC: the subnet's ID (`subnet-…`); its zone and public
    /// setting are read from the cloud.
    #[serde(default)]
    pub id: Option<String>,
}

/// What happens to a bucket removed from the manifests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BucketDeletionPolicy {
    /// Keep it (the plan shows the delete as blocked).
    #[default]
    Retain,
    /// Delete it, with its objects.
    Delete,
}

impl<'de> Deserialize<'de> for BucketDeletionPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "retain" => Ok(Self::Retain),
            "delete" => Ok(Self::Delete),
            "snapshot" => Err(serde::de::Error::custom(
                "`snapshot` applies to volumes only; a bucket's deletionPolicy is retain or delete",
            )),
            other => Err(serde::de::Error::custom(format!(
                "expected one of retain, delete, found {other:?}"
            ))),
        }
    }
}

/// A `Cdn` document: a CloudFront distribution in front of a bucket.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CdnSpec {
    /// Where content comes from.
    pub origin: Origin,
    /// Alternate domain names (CNAMEs), at most 100.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Whether it serves traffic. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Access logging: `false` (the default) or `{bucket, prefix}`.
    #[serde(default)]
    pub logging: Logging,
    /// A free-text comment, at most 128 characters.
    #[serde(default)]
    #[schemars(length(max = 128))]
    pub comment: String,
    /// The object served for `/`, such as `index.html`.
    #[serde(default)]
    pub default_root_object: Option<String>,
    /// Tags of this distribution.
    #[serde(default)]
    pub tags: Tags,
    // origin access and content (issue 11 B)
    /// Whether an apply that changes or deletes objects of the origin
    /// bucket's `content` invalidates their paths (one `/*` for more than
    /// 15) and waits for it. Default true.
    #[serde(default = "yes")]
    pub invalidate: bool,
    /// The viewer certificate, served by SNI: `Certificate/NAME` of the
    /// stack or an ACM certificate ARN, in us-east-1, covering every
    /// alias. Required when `aliases` is not empty.
    #[serde(default)]
    pub certificate: Option<String>,
    /// The viewer certificate's minimum TLS version: TLSv1, TLSv1_2016,
    /// TLSv1.1_2016, TLSv1.2_2018, TLSv1.2_2019, TLSv1.2_2021 (default) or
    /// TLSv1.2_2025.
    #[serde(default)]
    #[schemars(regex(
        pattern = r"^(TLSv1|TLSv1_2016|TLSv1\.1_2016|TLSv1\.2_2018|TLSv1\.2_2019|TLSv1\.2_2021|TLSv1\.2_2025)$"
    ))]
    pub minimum_protocol_version: Option<String>,
}

fn yes() -> bool {
    true
}

/// A distribution's origin.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Origin {
    /// The bucket (name of a Bucket document).
    pub bucket: String,
}

/// Access logging: off (`false`) or into a bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Logging {
    /// `false`: no access logs.
    #[default]
    Off,
    /// Logs go to a bucket.
    To(LoggingTarget),
}

/// Where access logs go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoggingTarget {
    /// The bucket (name of a Bucket document).
    pub bucket: String,
    /// The key prefix of log files, such as `cdn/`. Default empty.
    #[serde(default)]
    pub prefix: String,
}

impl Serialize for Logging {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Logging::Off => s.serialize_bool(false),
            Logging::To(t) => t.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Logging {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Logging;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`false` or a mapping with `bucket` and `prefix`")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Logging, E> {
                if v {
                    Err(E::custom(
                        "expected `false` or a mapping with `bucket` and `prefix`, found true",
                    ))
                } else {
                    Ok(Logging::Off)
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Logging, A::Error> {
                LoggingTarget::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(Logging::To)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Logging {
    fn schema_name() -> Cow<'static, str> {
        "Logging".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let target = generator.subschema_for::<LoggingTarget>();
        json_schema!({
            "description": "Access logging: `false` (off) or `{bucket, prefix}`.",
            "oneOf": [
                { "const": false, "description": "No access logs." },
                target,
            ],
        })
    }
}

/// A document: `kind`, `name` and the kind's `spec`. Only used for the
/// JSON Schema; the loader reads the three fields separately.
pub(crate) struct Document<S>(std::marker::PhantomData<S>);

/// What the schema needs to know about a kind's spec.
pub(crate) trait KindSpec: JsonSchema {
    /// The kind, as written in `kind:`.
    const KIND: &'static str;
    /// A regular expression for the kind's names.
    const NAME_PATTERN: &'static str = r"^[a-z]([a-z0-9-]{0,62})$";
    /// What the name is.
    const NAME_DESCRIPTION: &'static str = "The resource's name: lowercase letters, digits and hyphens, starting with a letter, at most 63 characters.";
    /// A one-line description of the kind.
    const DESCRIPTION: &'static str;
    /// Whether `spec` may be left out (every field has a default).
    const SPEC_OPTIONAL: bool = false;
}

impl KindSpec for StackSpec {
    const KIND: &'static str = "Stack";
    const DESCRIPTION: &'static str =
        "The stack: its region and the tags every resource gets. Exactly one per directory.";
}
impl KindSpec for NetworkSpec {
    const KIND: &'static str = "Network";
    const DESCRIPTION: &'static str =
        "The stack's VPC network and its subnets (at most one per stack).";
}
impl KindSpec for KeyPairSpec {
    const KIND: &'static str = "KeyPair";
    const DESCRIPTION: &'static str = "An SSH key pair, imported from an OpenSSH public key.";
}
impl KindSpec for SecurityGroupSpec {
    const KIND: &'static str = "SecurityGroup";
    const DESCRIPTION: &'static str = "A security group and its inbound rules.";
}
impl KindSpec for FleetSpec {
    const KIND: &'static str = "Fleet";
    const DESCRIPTION: &'static str = "A fleet of identical EC2 instances.";
}
impl KindSpec for VolumeSpec {
    const KIND: &'static str = "Volume";
    const DESCRIPTION: &'static str = "An EBS volume.";
}
impl KindSpec for BalancerSpec {
    const KIND: &'static str = "Balancer";
    const NAME_PATTERN: &'static str = r"^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$";
    const NAME_DESCRIPTION: &'static str = "The balancer's name: lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen, at most 32 characters.";
    const DESCRIPTION: &'static str = "A classic Elastic Load Balancer in front of fleets.";
}
impl KindSpec for BucketSpec {
    const KIND: &'static str = "Bucket";
    const NAME_PATTERN: &'static str = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$";
    const NAME_DESCRIPTION: &'static str = "The bucket's name, following S3's rules: 3–63 lowercase letters, digits, hyphens and dots, starting and ending with a letter or digit, no `..`, not an IP address.";
    const DESCRIPTION: &'static str = "An S3 bucket; its name is the bucket's name.";
    const SPEC_OPTIONAL: bool = true;
}
impl KindSpec for CdnSpec {
    const KIND: &'static str = "Cdn";
    const DESCRIPTION: &'static str = "A CloudFront distribution in front of a bucket.";
}
impl KindSpec for DnsZoneSpec {
    const KIND: &'static str = "DnsZone";
    const DESCRIPTION: &'static str = "A public Route 53 hosted zone converge creates.";
}
impl KindSpec for CertificateSpec {
    const KIND: &'static str = "Certificate";
    const DESCRIPTION: &'static str = "An ACM certificate, validated by DNS through a hosted zone, for balancer listeners and Cdns.";
}
impl KindSpec for DnsRecordSpec {
    const KIND: &'static str = "DnsRecord";
    const DESCRIPTION: &'static str =
        "A Route 53 record set, marked as converge's, changed with a TTL-aware cutover.";
}

impl<S: KindSpec> JsonSchema for Document<S> {
    fn schema_name() -> Cow<'static, str> {
        format!("{}Document", S::KIND).into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let spec = generator.subschema_for::<S>();
        let required: &[&str] = if S::SPEC_OPTIONAL {
            &["kind", "name"]
        } else {
            &["kind", "name", "spec"]
        };
        json_schema!({
            "title": S::KIND,
            "description": S::DESCRIPTION,
            "type": "object",
            "properties": {
                "kind": { "const": S::KIND, "description": "The kind of document." },
                "name": {
                    "type": "string",
                    "pattern": S::NAME_PATTERN,
                    "description": S::NAME_DESCRIPTION,
                },
                "spec": spec,
            },
            "required": required,
            "additionalProperties": false,
        })
    }
}

fn schema_of<S: KindSpec>() -> (String, serde_json::Value) {
    let settings = schemars::generate::SchemaSettings::draft2020_12().for_deserialize();
    let schema = settings
        .into_generator()
        .into_root_schema_for::<Document<S>>();
    let file = format!("{}.schema.json", S::KIND);
    let mut value = schema.to_value();
    if let Some(object) = value.as_object_mut() {
        // A relative `$id`: resolved against where the file is read from,
        // so `converge.schema.json` finds its siblings wherever they are.
        object.insert("$id".to_owned(), serde_json::Value::String(file.clone()));
    }
    (file, value)
}

/// The schema of any document of a stack, for files that mix kinds: one
/// `oneOf` branch per kind, each a `$ref` to that kind's schema by its
/// `$id`. The `kind` property alone picks the branch.
fn combined(kinds: &[(String, serde_json::Value)]) -> (String, serde_json::Value) {
    let names: Vec<&str> = kinds
        .iter()
        .filter_map(|(_, s)| s.get("title").and_then(|t| t.as_str()))
        .collect();
    let branches: Vec<serde_json::Value> = kinds
        .iter()
        .map(|(file, _)| serde_json::json!({ "$ref": file }))
        .collect();
    (
        "converge.schema.json".to_owned(),
        serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "converge.schema.json",
            "title": "converge manifest",
            "description": "A document of a converge stack, of any kind (docs/manifests.md).",
            "type": "object",
            "properties": { "kind": { "enum": names, "description": "The kind of document." } },
            "required": ["kind"],
            "oneOf": branches,
        }),
    )
}

/// The JSON Schema of each kind's document, generated from the types
/// above: `(file name, schema)`, in the order kinds are listed in plans,
/// then `converge.schema.json`, which accepts a document of any kind.
pub fn schemas() -> Vec<(String, serde_json::Value)> {
    let mut kinds = kind_schemas();
    let all = combined(&kinds);
    kinds.push(all);
    kinds
}

fn kind_schemas() -> Vec<(String, serde_json::Value)> {
    vec![
        schema_of::<StackSpec>(),
        schema_of::<NetworkSpec>(),
        schema_of::<KeyPairSpec>(),
        schema_of::<SecurityGroupSpec>(),
        schema_of::<FleetSpec>(),
        schema_of::<VolumeSpec>(),
        schema_of::<BalancerSpec>(),
        schema_of::<BucketSpec>(),
        schema_of::<CdnSpec>(),
        schema_of::<DnsZoneSpec>(),
        schema_of::<DnsRecordSpec>(),
        schema_of::<CertificateSpec>(),
    ]
}

/// A `DnsZone` document: a public Route 53 hosted zone converge creates.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DnsZoneSpec {
    /// The zone's domain, such as `smallpayroll.example`.
    pub domain: String,
    /// What happens when it is removed from the manifests: `retain`
    /// (default) or `delete`.
    #[serde(default)]
    pub deletion_policy: BucketDeletionPolicy,
    /// Tags of this zone.
    #[serde(default)]
    pub tags: Tags,
}

/// A `Certificate` document: an ACM certificate validated by DNS.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CertificateSpec {
    /// The domain names it covers, the first one primary, at most 10;
    /// wildcards (`*.example.com`, one label) allowed. Changing them
    /// replaces the certificate (the new one is issued and put in use
    /// before the old one goes).
    #[schemars(length(min = 1, max = 10))]
    pub domains: Vec<String>,
    /// Where its validation records go: a DnsZone of the stack (its
    /// document name), or the domain of an existing hosted zone.
    pub zone: String,
    /// The region it is requested in. Default: the stack's. A Cdn's
    /// certificate must be in us-east-1.
    #[serde(default)]
    pub region: Option<String>,
    /// Tags of this certificate.
    #[serde(default)]
    pub tags: Tags,
}

/// A `DnsRecord` document: one Route 53 record set.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DnsRecordSpec {
    /// A DnsZone of the stack (its document name), or the domain of an
    /// existing hosted zone.
    pub zone: String,
    /// The record's full name, inside the zone (the apex is allowed).
    pub name: String,
    /// `A`, `AAAA`, `CNAME`, `TXT` or `MX`.
    #[serde(rename = "type")]
    #[schemars(regex(pattern = r"^(A|AAAA|CNAME|TXT|MX)$"))]
    pub record_type: String,
    /// `Balancer/NAME` or `Cdn/NAME`: an alias A/AAAA record (no TTL).
    /// Exactly one of `alias` and `values`.
    #[serde(default)]
    pub alias: Option<String>,
    /// The values; they may hold references (`${Balancer/web.dnsName}`).
    #[serde(default)]
    pub values: Option<Vec<String>>,
    /// The TTL. Default `5m`.
    #[serde(default)]
    pub ttl: Option<DurationText>,
    /// How a change of an existing record's value is staged. Default
    /// `{ttl: 60s, settle: 1h}`.
    #[serde(default)]
    pub cutover: Option<CutoverSpec>,
    /// Take over a record that exists without converge's ownership mark.
    /// Default false.
    #[serde(default)]
    pub adopt: bool,
    /// What happens when it is removed from the manifests: `delete`
    /// (default) or `retain`.
    #[serde(default)]
    pub deletion_policy: Option<BucketDeletionPolicy>,
}

/// A record's cutover settings.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CutoverSpec {
    /// The TTL during the cutover. Default `60s`.
    #[serde(default)]
    pub ttl: Option<DurationText>,
    /// How long after the switch the TTL rises again. Default `1h`.
    #[serde(default)]
    pub settle: Option<DurationText>,
}
