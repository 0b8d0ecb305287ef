//! The desired state: what the manifests ask for, validated and with every
//! reference checked. The manifest loader builds it; the planner reads it.

use crate::cron::Cron;
use crate::elb::{BalancerType, Scheme, TargetHealthCheck};
use crate::ids::{
    ImageId, InstanceProfile, Kind, ParameterName, ResourceKey, ResourceName, SnapshotId, SubnetId,
    VpcId, Zone,
};
use crate::net::Ipv4Cidr;
pub use crate::tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Tags as a sorted map, so that output is deterministic.
pub type Tags = BTreeMap<String, String>;

/// A whole stack as the manifests declare it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    /// The stack's name (the `Stack` document's name).
    pub stack: ResourceName,
    /// The region it lives in.
    pub region: String,
    /// Tags added to every resource.
    pub tags: Tags,
    /// The stack's VPC network, if it declares one; without it, the
    /// region's default VPC is used.
    #[serde(default)]
    pub network: Option<Network>,
    /// Key pairs by name.
    pub key_pairs: BTreeMap<ResourceName, KeyPairSpec>,
    /// Security groups by name.
    pub security_groups: BTreeMap<ResourceName, SecurityGroupSpec>,
    /// Fleets by name.
    pub fleets: BTreeMap<ResourceName, FleetSpec>,
    /// Volumes by name.
    pub volumes: BTreeMap<ResourceName, VolumeSpec>,
    /// Balancers by name.
    pub balancers: BTreeMap<ResourceName, BalancerSpec>,
    /// Buckets by name (the name is the bucket's name).
    pub buckets: BTreeMap<ResourceName, BucketSpec>,
    /// CDN distributions by name.
    pub cdns: BTreeMap<ResourceName, CdnSpec>,
    /// Route 53 hosted zones by name.
    #[serde(default)]
    pub dns_zones: BTreeMap<ResourceName, crate::route53::DnsZoneSpec>,
    /// Route 53 records by name.
    #[serde(default)]
    pub dns_records: BTreeMap<ResourceName, crate::route53::DnsRecordSpec>,
    /// ACM certificates by name.
    #[serde(default)]
    pub certificates: BTreeMap<ResourceName, crate::acm::CertificateSpec>,
}

impl Desired {
    /// An empty stack: what `destroy` converges to.
    pub fn empty(stack: ResourceName, region: String) -> Self {
        Self {
            stack,
            region,
            tags: Tags::new(),
            network: None,
            key_pairs: BTreeMap::new(),
            security_groups: BTreeMap::new(),
            fleets: BTreeMap::new(),
            volumes: BTreeMap::new(),
            balancers: BTreeMap::new(),
            buckets: BTreeMap::new(),
            cdns: BTreeMap::new(),
            dns_zones: BTreeMap::new(),
            dns_records: BTreeMap::new(),
            certificates: BTreeMap::new(),
        }
    }

    /// Whether the stack declares a resource with this kind and name.
    pub fn contains(&self, key: &ResourceKey) -> bool {
        let n = &key.name;
        match key.kind {
            Kind::Stack => *n == self.stack,
            Kind::Network => self.network.as_ref().is_some_and(|net| net.name == *n),
            Kind::KeyPair => self.key_pairs.contains_key(n),
            Kind::SecurityGroup => self.security_groups.contains_key(n),
            Kind::Fleet => self.fleets.contains_key(n),
            Kind::Volume => self.volumes.contains_key(n),
            Kind::Balancer => self.balancers.contains_key(n),
            Kind::Bucket => self.buckets.contains_key(n),
            Kind::Cdn => self.cdns.contains_key(n),
            Kind::DnsZone => self.dns_zones.contains_key(n),
            Kind::DnsRecord => self.dns_records.contains_key(n),
            Kind::Certificate => self.certificates.contains_key(n),
        }
    }

    /// The volume attached to a fleet, if any.
    pub fn volume_attached_to(&self, fleet: &ResourceName) -> Option<(&ResourceName, &VolumeSpec)> {
        self.volumes
            .iter()
            .find(|(_, v)| v.attach.as_ref().is_some_and(|a| &a.fleet == fleet))
    }
}

/// The stack's network: a VPC converge creates, or one that exists.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// Its manifest name.
    pub name: ResourceName,
    /// Which VPC, and its subnets.
    pub vpc: NetworkVpc,
    /// What happens to a created VPC when the Network is removed
    /// (`retain` or `delete`); an existing VPC is never deleted.
    pub deletion_policy: DeletionPolicy,
    /// Tags of what converge creates for it.
    pub tags: Tags,
}

impl Network {
    /// The names of its subnets, in order.
    pub fn subnet_names(&self) -> Vec<&ResourceName> {
        match &self.vpc {
            NetworkVpc::Create { subnets, .. } => subnets.keys().collect(),
            NetworkVpc::Existing { subnets, .. } => subnets.keys().collect(),
        }
    }

    /// Whether it declares a subnet of this name.
    pub fn has_subnet(&self, name: &ResourceName) -> bool {
        match &self.vpc {
            NetworkVpc::Create { subnets, .. } => subnets.contains_key(name),
            NetworkVpc::Existing { subnets, .. } => subnets.contains_key(name),
        }
    }
}

/// Where a network's VPC comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkVpc {
    /// converge creates the VPC, its subnets, an internet gateway and a
    /// route table for the public subnets.
    Create {
        /// The VPC's IPv4 block (`/16` to `/28`).
        cidr: Ipv4Cidr,
        /// Its subnets by manifest name.
        subnets: BTreeMap<ResourceName, NewSubnet>,
    },
    /// A VPC that exists; converge never changes or deletes it.
    Existing {
        /// The VPC.
        vpc: VpcId,
        /// Its subnets converge places things in, by manifest name.
        subnets: BTreeMap<ResourceName, SubnetId>,
    },
}

/// A subnet converge creates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSubnet {
    /// Its zone.
    pub zone: Zone,
    /// Its block, inside the VPC's.
    pub cidr: Ipv4Cidr,
    /// Whether it routes to the internet gateway and gives instances
    /// public addresses by default.
    pub public: bool,
}

/// An SSH key pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyPairSpec {
    /// The OpenSSH public key text (`ssh-ed25519 AAAA… comment`).
    pub public_key: String,
    /// Tags of this resource (the stack's tags are added by the planner).
    pub tags: Tags,
}

/// A security group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecurityGroupSpec {
    /// The group's description (immutable in AWS: a change replaces the group).
    pub description: String,
    /// Inbound rules.
    pub ingress: Vec<IngressRule>,
    /// Tags of this resource.
    pub tags: Tags,
}

/// The IP protocol of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP, with a port or range.
    Tcp,
    /// UDP, with a port or range.
    Udp,
    /// ICMP, all types.
    Icmp,
    /// Every protocol and port.
    All,
}

impl Protocol {
    /// The protocol as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
            Protocol::All => "all",
        }
    }
}

/// An inclusive port range; a single port has `from == to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortRange {
    /// First port.
    pub from: u16,
    /// Last port (inclusive).
    pub to: u16,
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.from == self.to {
            write!(f, "{}", self.from)
        } else {
            write!(f, "{}-{}", self.from, self.to)
        }
    }
}

/// Where traffic allowed by a rule may come from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Source {
    /// An IPv4 CIDR block, normalised (`203.0.113.7/32`).
    Cidr(String),
    /// Another security group of the stack, by manifest name.
    Group(ResourceName),
}

/// One inbound rule. Ports are `None` for `icmp` and `all`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IngressRule {
    /// The protocol.
    pub protocol: Protocol,
    /// The port range (`None` for icmp and all).
    pub ports: Option<PortRange>,
    /// The source.
    pub source: Source,
}

impl fmt::Display for IngressRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.protocol.as_str())?;
        if let Some(p) = self.ports {
            write!(f, " {p}")?;
        }
        match &self.source {
            Source::Cidr(c) => write!(f, " from {c}"),
            Source::Group(g) => write!(f, " from SecurityGroup/{g}"),
        }
    }
}

/// A fleet of identical instances.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FleetSpec {
    /// The machine image, or the SSM parameter that names it.
    pub image: ImageSource,
    /// The instance type (`m1.small`).
    pub instance_type: String,
    /// Zones to spread instances over, in the manifest's order (empty
    /// when the fleet names `subnets`: its zones are theirs).
    pub zones: Vec<Zone>,
    /// The network's subnets to spread instances over (manifest names, in
    /// the manifest's order, each in its own zone); empty without a
    /// Network.
    #[serde(default)]
    pub subnets: Vec<ResourceName>,
    /// Whether instances get a public address; `None` leaves it to the
    /// subnet's own setting.
    #[serde(default)]
    pub public_ip: Option<bool>,
    /// Private addresses its instances take, one each, in the manifest's
    /// order (each in one of `subnets`); empty: the subnet picks. An
    /// instance lost is succeeded at its address, so what reads it
    /// (`${Fleet/x.privateIp}`) does not change.
    #[serde(default)]
    pub private_ips: Vec<std::net::Ipv4Addr>,
    /// The replica count when no schedule rule or autoscaler says otherwise.
    pub replicas: u32,
    /// The key pair (manifest name), if any.
    pub key_pair: Option<ResourceName>,
    /// Security groups (manifest names).
    pub security_groups: Vec<ResourceName>,
    /// User data, with references resolved at plan or apply time.
    pub user_data: Template,
    /// Tags of this fleet's instances.
    pub tags: Tags,
    /// Scheduled replica counts.
    pub schedule: Option<Schedule>,
    /// Metric-driven scaling bounds and rules.
    pub autoscale: Option<Autoscale>,
    /// How health is judged.
    pub health: Health,
    /// How replacements roll.
    pub update: UpdatePolicy,
    /// The IAM instance profile its instances run with, if any (changed
    /// in place on running instances).
    pub instance_profile: Option<InstanceProfile>,
    /// The instance metadata service's options (changed in place).
    pub metadata: MetadataOptions,
    /// The root volume; `None` keeps the image's own (a change replaces
    /// instances).
    pub root_volume: Option<RootVolume>,
}

/// Where a fleet's machine image comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageSource {
    /// This image.
    Id(ImageId),
    /// The image an SSM parameter names, read when planning
    /// (`ssm:/aws/service/ami-amazon-linux-latest/…`).
    Parameter(ParameterName),
}

impl fmt::Display for ImageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageSource::Id(id) => write!(f, "{id}"),
            ImageSource::Parameter(p) => write!(f, "ssm:{p}"),
        }
    }
}

/// For literals in code and tests only: `ssm:NAME` is a parameter,
/// anything else an image ID.
impl From<&'static str> for ImageSource {
    fn from(s: &'static str) -> Self {
        match s.strip_prefix("ssm:") {
            Some(name) => ImageSource::Parameter(ParameterName::from(name)),
            None => ImageSource::Id(s.into()),
        }
    }
}

/// Whether the instance metadata service wants session tokens (IMDSv2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpTokens {
    /// Only IMDSv2: every request needs a session token.
    Required,
    /// IMDSv1 too: requests without a token are answered.
    Optional,
}

impl HttpTokens {
    /// The value as the EC2 API and manifests write it.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpTokens::Required => "required",
            HttpTokens::Optional => "optional",
        }
    }
}

/// The instance metadata service's options, as EC2's
/// `InstanceMetadataOptionsRequest` takes them (the endpoint is always
/// enabled).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MetadataOptions {
    /// Whether tokens are required.
    pub tokens: HttpTokens,
    /// How many network hops the PUT response may travel, 1–64.
    pub hop_limit: u8,
}

impl MetadataOptions {
    /// converge's default: IMDSv2 only, two hops (so containers on the
    /// instance reach it).
    pub const DEFAULT: MetadataOptions = MetadataOptions {
        tokens: HttpTokens::Required,
        hop_limit: 2,
    };
    /// The hop limits EC2 accepts (`HttpPutResponseHopLimit`: "Possible
    /// values: Integers from 1 to 64",
    /// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_InstanceMetadataOptionsRequest.html>).
    pub const HOP_LIMITS: std::ops::RangeInclusive<u8> = 1..=64;
}

impl Default for MetadataOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A fleet's root volume, set at launch by a block device mapping on the
/// image's root device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootVolume {
    /// The size in GiB.
    pub size_gib: u32,
    /// The EBS type.
    pub volume_type: VolumeType,
    /// Whether it is encrypted (with the account's default key).
    pub encrypted: bool,
}

impl RootVolume {
    /// The root volume as its instances' `converge:root-volume` tag and
    /// the launch-spec hash write it: `20:gp3:encrypted`.
    pub fn tag_value(&self) -> String {
        format!(
            "{}:{}:{}",
            self.size_gib,
            self.volume_type.as_str(),
            if self.encrypted {
                "encrypted"
            } else {
                "unencrypted"
            }
        )
    }

    /// Reads a [`RootVolume::tag_value`]; `None` if it is not one.
    pub fn from_tag_value(s: &str) -> Option<RootVolume> {
        let mut parts = s.split(':');
        let size_gib = parts.next()?.parse().ok()?;
        let t = parts.next()?;
        let volume_type = VolumeType::ALL.into_iter().find(|v| v.as_str() == t)?;
        let encrypted = match parts.next()? {
            "encrypted" => true,
            "unencrypted" => false,
            _ => return None,
        };
        parts.next().is_none().then_some(RootVolume {
            size_gib,
            volume_type,
            encrypted,
        })
    }
}

impl fmt::Display for RootVolume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} GiB {}{}",
            self.size_gib,
            self.volume_type.as_str(),
            if self.encrypted {
                ", encrypted"
            } else {
                ", not encrypted"
            }
        )
    }
}

/// Replica counts that follow cron rules in a time zone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// The IANA time zone the rules are read in.
    pub timezone: Tz,
    /// The rules; the one that fired most recently is in effect.
    pub rules: Vec<ScheduleRule>,
}

/// One scheduled replica count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRule {
    /// When the rule takes effect.
    pub cron: Cron,
    /// The replica count from then on.
    pub replicas: u32,
}

/// Metric-driven scaling, acted on by the reconcile loop. `plan` and
/// `apply` keep the fleet's current count within `[min, max]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Autoscale {
    /// Where the metric is read: a plain number in the response body.
    pub metric_url: String,
    /// How often the metric is read.
    pub every: Duration,
    /// Add instances while the metric is above a threshold.
    pub scale_out: ScaleOut,
    /// Remove instances while the metric is below a threshold.
    pub scale_in: ScaleIn,
    /// The fewest instances.
    pub min: u32,
    /// The most instances.
    pub max: u32,
    /// The least time between two scaling actions.
    pub cooldown: Duration,
}

/// The scale-out rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScaleOut {
    /// Threshold the metric must exceed.
    pub above: f64,
    /// Instances added per action.
    pub step: u32,
}

/// The scale-in rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScaleIn {
    /// Threshold the metric must fall under.
    pub below: f64,
    /// Instances removed per action.
    pub step: u32,
    /// Only instances that have run this long are removed.
    pub min_uptime: Duration,
}

/// How a fleet's health is judged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// How long a new instance may be unhealthy before it counts.
    pub grace: Duration,
    /// An HTTP probe, if any.
    pub http: Option<HttpCheck>,
}

/// An HTTP health probe: `GET http://ADDRESS:PORT/PATH` must answer 2xx and
/// contain `expect`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HttpCheck {
    /// Port.
    pub port: u16,
    /// Path, starting with `/`.
    pub path: String,
    /// Text the body must contain, if any.
    pub expect: Option<String>,
}

/// The rolling-replacement budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdatePolicy {
    /// Extra instances allowed above the target while replacing.
    pub max_surge: u32,
    /// Instances allowed below the target while replacing.
    pub max_unavailable: u32,
}

impl Default for UpdatePolicy {
    fn default() -> Self {
        Self {
            max_surge: 1,
            max_unavailable: 0,
        }
    }
}

/// The EBS volume type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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

impl VolumeType {
    /// The sizes EBS allows for a volume of this type, in GiB
    /// (<https://docs.aws.amazon.com/ebs/latest/userguide/ebs-volume-types.html>):
    /// gp2/gp3 1–16384, io1/io2 4–16384, st1/sc1 125–16384, standard
    /// 1–1024.
    pub fn size_range_gib(self) -> std::ops::RangeInclusive<u32> {
        match self {
            VolumeType::Io1 | VolumeType::Io2 => 4..=16384,
            VolumeType::St1 | VolumeType::Sc1 => 125..=16384,
            VolumeType::Standard => 1..=1024,
            VolumeType::Gp2 | VolumeType::Gp3 => 1..=16384,
        }
    }

    /// Every type, as written in manifests.
    pub const ALL: [VolumeType; 7] = [
        VolumeType::Gp2,
        VolumeType::Gp3,
        VolumeType::Io1,
        VolumeType::Io2,
        VolumeType::St1,
        VolumeType::Sc1,
        VolumeType::Standard,
    ];

    /// The type as written in manifests and the EC2 API.
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeType::Gp2 => "gp2",
            VolumeType::Gp3 => "gp3",
            VolumeType::Io1 => "io1",
            VolumeType::Io2 => "io2",
            VolumeType::St1 => "st1",
            VolumeType::Sc1 => "sc1",
            VolumeType::Standard => "standard",
        }
    }

    /// The type with its article, for messages (`a gp3`, `an io1`).
    pub fn with_article(self) -> &'static str {
        match self {
            VolumeType::Gp2 => "a gp2",
            VolumeType::Gp3 => "a gp3",
            VolumeType::Io1 => "an io1",
            VolumeType::Io2 => "an io2",
            VolumeType::St1 => "an st1",
            VolumeType::Sc1 => "an sc1",
            VolumeType::Standard => "a standard",
        }
    }

    /// Parses a type as written in manifests.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// What happens to a volume or bucket removed from the manifests (or the
/// stack destroyed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeletionPolicy {
    /// Keep it: the delete is shown as blocked and never done.
    Retain,
    /// Delete it.
    Delete,
    /// Take a final snapshot, then delete it (volumes only).
    Snapshot,
}

impl DeletionPolicy {
    /// The policy a resource converge made carries in its
    /// `converge:deletion-policy` tag (`retain` when absent or unknown:
    /// data is never lost by default).
    pub fn from_tags(t: &Tags) -> Self {
        match t.get(crate::ids::tags::DELETION_POLICY).map(String::as_str) {
            Some("delete") => DeletionPolicy::Delete,
            Some("snapshot") => DeletionPolicy::Snapshot,
            _ => DeletionPolicy::Retain,
        }
    }

    /// The policy as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            DeletionPolicy::Retain => "retain",
            DeletionPolicy::Delete => "delete",
            DeletionPolicy::Snapshot => "snapshot",
        }
    }
}

/// An EBS volume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VolumeSpec {
    /// Size in GiB.
    pub size_gib: u32,
    /// Its zone: it can only attach to instances there.
    pub zone: Zone,
    /// The volume type.
    pub volume_type: VolumeType,
    /// Restore from this snapshot when created (ignored afterwards).
    pub from_snapshot: Option<SnapshotId>,
    /// Whether it is encrypted, and with which key. Set at creation: an
    /// existing volume's encryption never changes.
    pub encryption: Encryption,
    /// Provisioned IOPS as declared (gp3, io1, io2); see
    /// [`VolumeSpec::target_iops`] for what a volume gets.
    pub iops: Option<u32>,
    /// Throughput in MiB/s as declared (gp3 only); see
    /// [`VolumeSpec::target_throughput`].
    pub throughput: Option<u32>,
    /// Where it is attached.
    pub attach: Option<Attachment>,
    /// Scheduled snapshots, taken by the reconcile loop.
    pub snapshots: Option<SnapshotPolicy>,
    /// What happens when it is removed.
    pub deletion_policy: DeletionPolicy,
    /// Tags of this resource.
    pub tags: Tags,
}

impl VolumeSpec {
    /// The IOPS the volume gets: the declared ones, gp3's baseline (3,000)
    /// when none are declared, `None` for types whose IOPS converge does
    /// not manage (gp2, st1, sc1, standard).
    pub fn target_iops(&self) -> Option<u32> {
        crate::ebs::effective_iops(self.volume_type, self.iops)
    }

    /// The throughput the volume gets: the declared one, gp3's baseline
    /// (125 MiB/s) when none is, `None` for types other than gp3.
    pub fn target_throughput(&self) -> Option<u32> {
        crate::ebs::effective_throughput(self.volume_type, self.throughput)
    }
}

/// Whether a volume is encrypted at rest, and with which KMS key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Encryption {
    /// Not encrypted (`encrypted: false`).
    Unencrypted,
    /// Encrypted with this key, or with the account's default EBS key
    /// (`alias/aws/ebs`, or the one set as the account's default) when
    /// `key` is `None`.
    Encrypted {
        /// The key as the manifest names it.
        key: Option<crate::ebs::KmsKey>,
    },
}

impl Encryption {
    /// Whether the volume is encrypted.
    pub fn is_encrypted(&self) -> bool {
        matches!(self, Encryption::Encrypted { .. })
    }

    /// The key as the manifest names it, if one is named.
    pub fn key(&self) -> Option<&crate::ebs::KmsKey> {
        match self {
            Encryption::Encrypted { key } => key.as_ref(),
            Encryption::Unencrypted => None,
        }
    }
}

/// A volume's attachment to a one-replica fleet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// The fleet (manifest name).
    pub fleet: ResourceName,
    /// The device name (`/dev/sdj`).
    pub device: String,
}

/// Scheduled snapshots of a volume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotPolicy {
    /// When to take one.
    pub schedule: Cron,
    /// The time zone the schedule is read in.
    pub timezone: Tz,
    /// How many of converge's snapshots of this volume to keep.
    pub keep: u32,
}

/// The protocol of a balancer listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
    /// SSL.
    #[serde(rename = "SSL")]
    Ssl,
    /// TLS (network balancers).
    #[serde(rename = "TLS")]
    Tls,
    /// UDP (network balancers).
    #[serde(rename = "UDP")]
    Udp,
    /// TCP and UDP on one port (network balancers).
    #[serde(rename = "TCP_UDP")]
    TcpUdp,
}

impl ListenerProtocol {
    /// The protocol as written in manifests and the ELB API.
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerProtocol::Http => "HTTP",
            ListenerProtocol::Https => "HTTPS",
            ListenerProtocol::Tcp => "TCP",
            ListenerProtocol::Ssl => "SSL",
            ListenerProtocol::Tls => "TLS",
            ListenerProtocol::Udp => "UDP",
            ListenerProtocol::TcpUdp => "TCP_UDP",
        }
    }

    /// Every protocol.
    pub const ALL: [ListenerProtocol; 7] = [
        Self::Http,
        Self::Https,
        Self::Tcp,
        Self::Ssl,
        Self::Tls,
        Self::Udp,
        Self::TcpUdp,
    ];

    /// Parses a protocol as written in manifests.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// A balancer listener: traffic on `port` goes to `instance_port` (the
/// target port of an elbv2 balancer).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Listener {
    /// The balancer's port.
    pub port: u16,
    /// The instances' port.
    pub instance_port: u16,
    /// The protocol.
    pub protocol: ListenerProtocol,
    /// The ACM (or IAM) certificate ARN of an HTTPS, SSL or TLS listener.
    /// In a declared balancer it may be `Certificate/NAME` of the stack:
    /// the planner puts the certificate's ARN in every step, or the step
    /// requesting it (`certificates` of the balancer's steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}→{}",
            self.protocol.as_str(),
            self.port,
            self.instance_port
        )?;
        if let Some(c) = &self.certificate {
            // The ARN's last segment names the certificate well enough.
            let short = c.rsplit('/').next().unwrap_or(c);
            write!(f, " (certificate {short})")?;
        }
        Ok(())
    }
}

/// A balancer's health check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// `HTTP:80/` or `TCP:5432`.
    pub target: String,
    /// Seconds between checks.
    pub interval_secs: u32,
    /// Seconds before a check fails (below the interval).
    pub timeout_secs: u32,
    /// Consecutive successes to become InService (2–10).
    pub healthy_threshold: u32,
    /// Consecutive failures to become OutOfService (2–10).
    pub unhealthy_threshold: u32,
}

impl fmt::Display for HealthCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} every {}s, timeout {}s, healthy {}, unhealthy {}",
            self.target,
            self.interval_secs,
            self.timeout_secs,
            self.healthy_threshold,
            self.unhealthy_threshold
        )
    }
}

/// How a balancer checks its members: a classic balancer's `target`, or
/// the health check of an elbv2 balancer's target groups.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BalancerHealth {
    /// A classic balancer's health check.
    Classic(HealthCheck),
    /// The health check of every target group of an elbv2 balancer.
    Targets(TargetHealthCheck),
}

impl BalancerHealth {
    /// Seconds between checks.
    pub fn interval_secs(&self) -> u32 {
        match self {
            BalancerHealth::Classic(h) => h.interval_secs,
            BalancerHealth::Targets(h) => h.interval_secs,
        }
    }

    /// A classic balancer's check, to change it.
    pub fn classic_mut(&mut self) -> Option<&mut HealthCheck> {
        match self {
            BalancerHealth::Classic(h) => Some(h),
            BalancerHealth::Targets(_) => None,
        }
    }

    /// Consecutive successes before a member is healthy.
    pub fn healthy_threshold(&self) -> u32 {
        match self {
            BalancerHealth::Classic(h) => h.healthy_threshold,
            BalancerHealth::Targets(h) => h.healthy_threshold,
        }
    }
}

impl fmt::Display for BalancerHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BalancerHealth::Classic(h) => h.fmt(f),
            BalancerHealth::Targets(h) => h.fmt(f),
        }
    }
}

/// A load balancer: classic, application or network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BalancerSpec {
    /// Its type.
    #[serde(default, rename = "type")]
    pub kind: BalancerType,
    /// Internet-facing or internal.
    #[serde(default)]
    pub scheme: Scheme,
    /// Zones it serves (empty when it names `subnets`).
    pub zones: Vec<Zone>,
    /// The network's subnets it serves in (manifest names, at most one per
    /// zone); empty without a Network.
    #[serde(default)]
    pub subnets: Vec<ResourceName>,
    /// Its security groups (manifest names); none for a network balancer
    /// or a classic one outside a Network.
    #[serde(default)]
    pub security_groups: Vec<ResourceName>,
    /// Its listeners, sorted.
    pub listeners: Vec<Listener>,
    /// Its health check.
    pub health_check: BalancerHealth,
    /// Seconds a leaving member drains before it may be terminated: an
    /// elbv2 balancer's deregistration delay, a classic balancer's
    /// connection draining timeout (0: draining off).
    #[serde(default = "default_drain")]
    pub drain_secs: u32,
    /// Whether a classic balancer spreads traffic across zones evenly
    /// (elbv2 balancers: AWS's default, not set).
    #[serde(default = "yes")]
    pub cross_zone: bool,
    /// Fleets whose instances are its members.
    pub fleets: Vec<ResourceName>,
    /// Tags of this resource.
    pub tags: Tags,
}

/// An S3 bucket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BucketSpec {
    /// Whether anyone may read its objects.
    pub public_read: bool,
    /// What happens when it is removed (`retain` or `delete`).
    pub deletion_policy: DeletionPolicy,
    /// Tags of this resource.
    pub tags: Tags,
    // origin access and content (issue 11 B)
    /// The objects it holds, read from a directory by the manifest
    /// resolver; `None`: converge leaves its objects alone.
    #[serde(default)]
    pub content: Option<BucketContent>,
}

/// A bucket's declared objects: the files of a directory, as the manifest
/// resolver read them (the planner does no I/O).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketContent {
    /// The key prefix the files go under (`""` or ending in `/`).
    pub prefix: String,
    /// Whether objects under `prefix` that no file matches are deleted.
    pub delete: bool,
    /// The `Cache-Control` every object gets, if any.
    pub cache_control: Option<String>,
    /// Globs of paths (relative to the directory) that are neither
    /// uploaded nor deleted.
    pub exclude: Vec<String>,
    /// The files, sorted by key.
    pub files: Vec<ContentFile>,
}

/// One file of a bucket's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentFile {
    /// The object key (`prefix` + the path under the directory, with `/`).
    pub key: String,
    /// The file on disk the object is uploaded from.
    pub path: String,
    /// Its MD5, lowercase hex (what S3 reports as a single-PUT ETag).
    pub md5: String,
    /// Its size in bytes.
    pub size: u64,
    /// The `Content-Type` it is served with (from its extension).
    pub content_type: String,
}

/// Where a distribution writes its access logs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CdnLogging {
    /// The bucket (manifest name).
    pub bucket: ResourceName,
    /// Key prefix.
    pub prefix: String,
}

/// A CloudFront distribution in front of a bucket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CdnSpec {
    /// The origin bucket (manifest name).
    pub origin_bucket: ResourceName,
    /// Alternate domain names (CNAMEs), sorted.
    pub aliases: Vec<String>,
    /// Whether it serves traffic.
    pub enabled: bool,
    /// Access logging, if on.
    pub logging: Option<CdnLogging>,
    /// A free-text comment.
    pub comment: String,
    /// The object served for `/`.
    pub default_root_object: Option<String>,
    /// Tags of this resource.
    pub tags: Tags,
    // origin access and content (issue 11 B)
    /// Whether changed and deleted objects of the origin bucket's content
    /// are invalidated after an apply changes them.
    #[serde(default = "yes")]
    pub invalidate: bool,
    /// The viewer certificate for its aliases (SNI), if any.
    #[serde(default)]
    pub certificate: Option<crate::acm::CertificateRef>,
    /// The viewer certificate's minimum TLS version (default
    /// `TLSv1.2_2021`).
    #[serde(default = "default_tls")]
    pub minimum_protocol_version: String,
}

fn default_tls() -> String {
    crate::acm::DEFAULT_MINIMUM_PROTOCOL_VERSION.to_owned()
}

/// A text with references, such as user data:
/// `role=app;db=${Fleet/db.privateIp}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// The literal and referenced parts, in order.
    pub parts: Vec<TemplatePart>,
}

impl Template {
    /// A template with no references.
    pub fn literal(text: impl Into<String>) -> Self {
        let text = text.into();
        if text.is_empty() {
            Self::default()
        } else {
            Self {
                parts: vec![TemplatePart::Text(text)],
            }
        }
    }

    /// The resource references it holds (not the environment ones).
    pub fn references(&self) -> impl Iterator<Item = &Reference> {
        self.parts.iter().filter_map(|p| match p {
            TemplatePart::Ref(r) => Some(r),
            _ => None,
        })
    }

    /// Whether any part comes from the environment, which makes the whole
    /// value sensitive in every output.
    pub fn is_sensitive(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, TemplatePart::Env { .. }))
    }

    /// Whether the template is empty.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }
}

/// A piece of a template.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TemplatePart {
    /// Literal text.
    Text(String),
    /// `${Kind/name.attr}`.
    Ref(Reference),
    /// `${env:NAME}`, read when the manifests are loaded.
    Env {
        /// The variable's name.
        name: String,
        /// Its value; never serialized, printed or logged.
        #[serde(skip)]
        value: Secret,
    },
}

/// A value read from the environment. Its `Debug` and `Display` print
/// `(sensitive)`, and it is never serialized.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a sensitive value.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The value itself, for the one place that must send it to the cloud.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(sensitive)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(sensitive)")
    }
}

/// A reference to another resource's attribute.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Reference {
    /// The resource referred to.
    pub target: ResourceKey,
    /// Which of its attributes.
    pub attr: Attr,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${{{}.{}}}", self.target, self.attr.as_str())
    }
}

fn default_drain() -> u32 {
    crate::elb::DEFAULT_DRAIN_SECS
}

fn yes() -> bool {
    true
}

/// Attributes a reference may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Attr {
    /// `Fleet/x.privateIp`: the one instance's private address.
    PrivateIp,
    /// `Fleet/x.privateIps`: every instance's address, comma-separated.
    PrivateIps,
    /// `Balancer/x.dnsName`.
    DnsName,
    /// `Balancer/x.zoneId`: the hosted zone of its DNS name (for aliases).
    ZoneId,
    /// `Cdn/x.domainName`.
    DomainName,
    /// `Volume/x.id`.
    Id,
    /// `DnsZone/x.nameServers`: the zone's name servers, comma-separated.
    NameServers,
}

impl Attr {
    /// The attribute as written in references.
    pub fn as_str(self) -> &'static str {
        match self {
            Attr::PrivateIp => "privateIp",
            Attr::PrivateIps => "privateIps",
            Attr::DnsName => "dnsName",
            Attr::ZoneId => "zoneId",
            Attr::DomainName => "domainName",
            Attr::Id => "id",
            Attr::NameServers => "nameServers",
        }
    }

    /// The attributes a kind offers.
    pub fn of_kind(kind: Kind) -> &'static [Attr] {
        match kind {
            Kind::Fleet => &[Attr::PrivateIp, Attr::PrivateIps],
            Kind::Balancer => &[Attr::DnsName, Attr::ZoneId],
            Kind::Cdn => &[Attr::DomainName],
            Kind::Volume => &[Attr::Id],
            Kind::DnsZone => &[Attr::NameServers],
            _ => &[],
        }
    }

    /// Parses an attribute name for a kind; `None` if the kind has no such
    /// attribute.
    pub fn parse(kind: Kind, s: &str) -> Option<Attr> {
        Self::of_kind(kind)
            .iter()
            .copied()
            .find(|a| a.as_str() == s)
    }
}
