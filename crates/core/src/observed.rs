//! The observed state: what the cloud holds that carries the stack's tags,
//! as one snapshot in time. A cloud backend builds it; the planner reads it.

use crate::desired::{
    HealthCheck, Listener, ListenerProtocol, MetadataOptions, Protocol, Tags, VolumeType,
};
use crate::elb::{BalancerType, Scheme, TargetHealthCheck};
use crate::ids::{
    AssociationId, BalancerName, BucketName, DistributionId, GatewayId, GroupId, GroupName,
    ImageId, InstanceId, KeyName, KeyPairId, Kind, ParameterName, ResourceName,
    RouteTableAssociationId, RouteTableId, SnapshotId, SubnetId, TargetGroupName, VolumeId, VpcId,
    Zone, tags,
};
use crate::net::Ipv4Cidr;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Who owns a cloud resource, read from its `converge:*` tags.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Owner {
    /// The stack.
    pub stack: ResourceName,
    /// The manifest kind.
    pub kind: Kind,
    /// The manifest name.
    pub name: ResourceName,
}

impl Owner {
    /// Reads ownership from tags; `None` unless all three tags are present,
    /// the kind is known and the names are valid (a resource whose tags no
    /// manifest could have written is not converge's to touch).
    pub fn from_tags(t: &Tags) -> Option<Owner> {
        Some(Owner {
            stack: t.get(tags::STACK)?.parse().ok()?,
            kind: Kind::parse(t.get(tags::KIND)?)?,
            name: t.get(tags::NAME)?.parse().ok()?,
        })
    }

    /// The three ownership tags.
    pub fn to_tags(&self) -> Tags {
        Tags::from([
            (tags::STACK.to_owned(), self.stack.to_string()),
            (tags::KIND.to_owned(), self.kind.as_str().to_owned()),
            (tags::NAME.to_owned(), self.name.to_string()),
        ])
    }
}

/// Everything of one stack the cloud holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// The region's default VPC, if it has one (looked up on every
    /// observation: without a Network, groups and instances go there).
    #[serde(default)]
    pub default_vpc: Option<VpcId>,
    /// VPCs carrying the stack's tags.
    #[serde(default)]
    pub vpcs: Vec<ObservedVpc>,
    /// Subnets carrying the stack's tags, and the subnets an existing
    /// VPC's Network names (read by ID).
    #[serde(default)]
    pub subnets: Vec<ObservedSubnet>,
    /// Internet gateways carrying the stack's tags.
    #[serde(default)]
    pub gateways: Vec<ObservedGateway>,
    /// Route tables carrying the stack's tags.
    #[serde(default)]
    pub route_tables: Vec<ObservedRouteTable>,
    /// Key pairs.
    pub key_pairs: Vec<ObservedKeyPair>,
    /// Security groups.
    pub security_groups: Vec<ObservedGroup>,
    /// Instances, including terminated ones the cloud still lists.
    pub instances: Vec<ObservedInstance>,
    /// Volumes.
    pub volumes: Vec<ObservedVolume>,
    /// Snapshots taken by converge.
    pub snapshots: Vec<ObservedSnapshot>,
    /// Balancers.
    pub balancers: Vec<ObservedBalancer>,
    /// Target groups of the stack that no observed balancer has (left
    /// behind when a run stopped between deleting a balancer and deleting
    /// its groups, or between creating a group and a listener using it).
    #[serde(default)]
    pub stray_target_groups: Vec<StrayTargetGroup>,
    /// Buckets.
    pub buckets: Vec<ObservedBucket>,
    /// Distributions.
    pub distributions: Vec<ObservedDistribution>,
    /// Origin access controls named for the stack's distributions
    /// (issue 11 B).
    #[serde(default)]
    pub origin_access: Vec<ObservedOriginAccess>,
    /// Route 53 hosted zones: the stack's own and the existing ones its
    /// records name, each with its record sets.
    #[serde(default)]
    pub dns_zones: Vec<crate::route53::ObservedZone>,
    /// ACM certificates in the stack's region and in us-east-1 (a Cdn's).
    #[serde(default)]
    pub certificates: Vec<crate::acm::ObservedCertificate>,
    /// The values of the SSM parameters the stack's fleets take their
    /// image from (`image: ssm:NAME`), by name, read when planning; a name
    /// SSM does not know is absent.
    #[serde(default)]
    pub parameters: BTreeMap<ParameterName, String>,
    /// The images fleets with a `rootVolume` launch from, by ID, as
    /// DescribeImages tells them; an image EC2 does not know is absent.
    #[serde(default)]
    pub images: BTreeMap<ImageId, ObservedImage>,
}

/// What launching with a root volume needs to know of an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedImage {
    /// The device its root volume is attached at (`/dev/xvda`).
    pub root_device_name: String,
    /// The size of its root snapshot, in GiB, when the image has one: a
    /// root volume may not be smaller.
    pub root_snapshot_gib: Option<u32>,
}

/// An instance's IAM instance profile, as its association says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileAssociation {
    /// The association (replacing or removing the profile names it).
    pub id: AssociationId,
    /// The profile's ARN.
    pub arn: String,
}

impl Observed {
    /// Whether the stack holds nothing at all (terminated instances and
    /// snapshots aside).
    pub fn is_empty(&self) -> bool {
        self.key_pairs.is_empty()
            && self.vpcs.is_empty()
            && self.subnets.iter().all(|s| s.owner.is_none())
            && self.gateways.is_empty()
            && self.route_tables.is_empty()
            && self.security_groups.is_empty()
            && self.instances.iter().all(|i| !i.state.is_live())
            && self.volumes.is_empty()
            && self.balancers.is_empty()
            && self.buckets.is_empty()
            && self.distributions.is_empty()
    }
}

/// A VPC converge created.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObservedVpc {
    /// Its ID.
    pub id: VpcId,
    /// Its owner (the Network).
    pub owner: Owner,
    /// Its IPv4 block.
    pub cidr: Ipv4Cidr,
    /// All its tags.
    pub tags: Tags,
}

/// A subnet: one converge created (with an owner), or one of an existing
/// VPC that a Network names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObservedSubnet {
    /// Its ID.
    pub id: SubnetId,
    /// Its VPC.
    pub vpc: VpcId,
    /// Its zone.
    pub zone: Zone,
    /// Its IPv4 block.
    pub cidr: Ipv4Cidr,
    /// Whether instances launched in it get a public address by default
    /// (`MapPublicIpOnLaunch`).
    pub map_public_ip: bool,
    /// The Network that created it, `None` for an existing VPC's subnet.
    pub owner: Option<Owner>,
    /// Its manifest name, from its `converge:subnet` tag.
    pub name: Option<ResourceName>,
    /// All its tags.
    pub tags: Tags,
}

/// An internet gateway converge created.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObservedGateway {
    /// Its ID.
    pub id: GatewayId,
    /// Its owner (the Network).
    pub owner: Owner,
    /// The VPC it is attached to, if any.
    pub attached_to: Option<VpcId>,
    /// All its tags.
    pub tags: Tags,
}

/// A route table converge created.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObservedRouteTable {
    /// Its ID.
    pub id: RouteTableId,
    /// Its owner (the Network).
    pub owner: Owner,
    /// Its VPC.
    pub vpc: VpcId,
    /// The gateway its `0.0.0.0/0` route goes to, if it has one.
    pub default_route: Option<GatewayId>,
    /// Its subnet associations.
    pub associations: Vec<(RouteTableAssociationId, SubnetId)>,
    /// All its tags.
    pub tags: Tags,
}

/// A key pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObservedKeyPair {
    /// Its ID.
    pub id: KeyPairId,
    /// Its name in the cloud.
    pub cloud_name: KeyName,
    /// Its owner.
    pub owner: Owner,
    /// The public key, when the cloud returns it.
    pub public_key: Option<String>,
    /// All its tags.
    pub tags: Tags,
}

/// Where a rule's traffic comes from, as the cloud says.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CloudSource {
    /// An IPv4 CIDR block.
    Cidr(String),
    /// A security group by ID.
    Group(GroupId),
}

/// An inbound rule as the cloud holds it. Ports are `None` for icmp/all.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CloudRule {
    /// The protocol.
    pub protocol: Protocol,
    /// First and last port.
    pub ports: Option<(u16, u16)>,
    /// The source.
    pub source: CloudSource,
}

/// A security group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObservedGroup {
    /// Its ID.
    pub id: GroupId,
    /// Its name in the cloud.
    pub cloud_name: GroupName,
    /// Its owner.
    pub owner: Owner,
    /// Its description.
    pub description: String,
    /// Its VPC.
    pub vpc: VpcId,
    /// Its inbound rules.
    pub ingress: Vec<CloudRule>,
    /// All its tags.
    pub tags: Tags,
}

/// An instance's lifecycle state, with the data each state carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum InstanceState {
    /// Booting.
    Pending,
    /// Running.
    Running,
    /// Being terminated.
    ShuttingDown,
    /// Gone (still listed for a while).
    Terminated,
    /// Stopping or stopped: converge treats it as lost.
    Stopped,
}

impl InstanceState {
    /// Whether the instance is (or will be) serving: pending or running.
    pub fn is_live(self) -> bool {
        matches!(self, InstanceState::Pending | InstanceState::Running)
    }

    /// The state as the EC2 API names it.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
            InstanceState::Stopped => "stopped",
        }
    }
}

/// An instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObservedInstance {
    /// Its ID.
    pub id: InstanceId,
    /// Its owner (the fleet).
    pub owner: Owner,
    /// Its zone.
    pub zone: Zone,
    /// Its state.
    pub state: InstanceState,
    /// Its private address, once it has one.
    pub private_ip: Option<Ipv4Addr>,
    /// Its subnet, once it has one.
    #[serde(default)]
    pub subnet: Option<SubnetId>,
    /// Its VPC, once it has one.
    #[serde(default)]
    pub vpc: Option<VpcId>,
    /// Its public address, if it has one.
    #[serde(default)]
    pub public_ip: Option<Ipv4Addr>,
    /// When it was launched.
    pub launched_at: Timestamp,
    /// Its image.
    pub image: ImageId,
    /// Its instance type.
    pub instance_type: String,
    /// Its key pair's cloud name.
    pub key_name: Option<KeyName>,
    /// Its security groups.
    pub groups: Vec<GroupId>,
    /// The launch-spec hash it was started with (from its tag).
    pub spec_hash: Option<String>,
    /// Its user data, where the backend can read it cheaply (the local
    /// cloud always; AWS only when a replacement is shown).
    pub user_data: Option<String>,
    /// All its tags.
    pub tags: Tags,
    /// Its IAM instance profile, if it has one.
    #[serde(default)]
    pub profile: Option<ProfileAssociation>,
    /// Its instance metadata options.
    #[serde(default)]
    pub metadata: MetadataOptions,
}

/// A volume's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeState {
    /// Being created.
    Creating,
    /// Ready, not attached.
    Available,
    /// Attached.
    InUse,
    /// Being deleted.
    Deleting,
    /// Failed.
    Error,
}

impl VolumeState {
    /// The state as the EC2 API names it.
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeState::Creating => "creating",
            VolumeState::Available => "available",
            VolumeState::InUse => "in-use",
            VolumeState::Deleting => "deleting",
            VolumeState::Error => "error",
        }
    }
}

/// A volume's attachment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedAttachment {
    /// The instance.
    pub instance: InstanceId,
    /// The device name.
    pub device: String,
}

/// A volume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObservedVolume {
    /// Its ID.
    pub id: VolumeId,
    /// Its owner.
    pub owner: Owner,
    /// Its zone.
    pub zone: Zone,
    /// Its size.
    pub size_gib: u32,
    /// Its type.
    pub volume_type: VolumeType,
    /// Its state.
    pub state: VolumeState,
    /// Whether it is encrypted.
    pub encrypted: bool,
    /// The ARN of the KMS key it is encrypted with, as EC2 reports it
    /// (always a key ARN, whatever form the key was named in).
    pub kms_key: Option<String>,
    /// Its IOPS, where EC2 reports them (gp3, io1, io2, and gp2's
    /// baseline).
    pub iops: Option<u32>,
    /// Its throughput in MiB/s (gp3).
    pub throughput: Option<u32>,
    /// Its latest modification (size, type, IOPS, throughput), if it was
    /// ever modified: the next one waits for it.
    pub modification: Option<VolumeModification>,
    /// Its attachment, if any.
    pub attachment: Option<ObservedAttachment>,
    /// When it was created.
    pub created_at: Timestamp,
    /// All its tags.
    pub tags: Tags,
}

/// A volume modification as DescribeVolumesModifications reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeModification {
    /// Where it is.
    pub state: ModificationState,
    /// When it started.
    pub started_at: Timestamp,
}

/// The state of a volume modification. The volume is usable, with its new
/// size, while `optimizing`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModificationState {
    /// Being applied.
    Modifying,
    /// Applied; performance is being optimized.
    Optimizing,
    /// Done.
    Completed,
    /// Failed: the volume keeps its old configuration.
    Failed,
}

impl ModificationState {
    /// The state as the EC2 API names it.
    pub fn as_str(self) -> &'static str {
        match self {
            ModificationState::Modifying => "modifying",
            ModificationState::Optimizing => "optimizing",
            ModificationState::Completed => "completed",
            ModificationState::Failed => "failed",
        }
    }

    /// Whether the modification is over (completed or failed), so that
    /// another may start once the cool-down has passed.
    pub fn is_over(self) -> bool {
        matches!(
            self,
            ModificationState::Completed | ModificationState::Failed
        )
    }
}

/// A snapshot's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotState {
    /// Being taken.
    Pending,
    /// Done.
    Completed,
    /// Failed.
    Error,
}

/// A snapshot converge took.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObservedSnapshot {
    /// Its ID.
    pub id: SnapshotId,
    /// The volume (manifest name) it was taken for, from its tags.
    pub volume: ResourceName,
    /// The volume's ID at the time.
    pub volume_id: VolumeId,
    /// Its state.
    pub state: SnapshotState,
    /// Whether it is encrypted: a volume restored from it is too.
    pub encrypted: bool,
    /// When it was started.
    pub started_at: Timestamp,
    /// All its tags.
    pub tags: Tags,
}

/// A balancer member's health: a classic balancer's InService and
/// OutOfService, and the states of an elbv2 target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MemberState {
    /// Passing its health check (elbv2: `healthy`).
    InService,
    /// Just registered, its first checks not yet passed (elbv2:
    /// `initial`).
    Initial,
    /// Not passing (elbv2: `unhealthy`, `unavailable`).
    OutOfService,
    /// Deregistered and finishing its requests (elbv2: `draining`).
    Draining,
}

impl MemberState {
    /// Whether the member takes traffic.
    pub fn healthy(self) -> bool {
        self == MemberState::InService
    }

    /// Whether the member is leaving: deregistered, still draining.
    pub fn draining(self) -> bool {
        self == MemberState::Draining
    }
}

/// A balancer member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The instance.
    pub instance: InstanceId,
    /// Its health.
    pub state: MemberState,
}

/// An elbv2 balancer's target group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObservedTargetGroup {
    /// Its name.
    pub name: TargetGroupName,
    /// The protocol its targets speak.
    pub protocol: ListenerProtocol,
    /// The port its targets listen on.
    pub port: u16,
    /// Its health check.
    pub health_check: TargetHealthCheck,
    /// Seconds a deregistered target drains.
    pub deregistration_delay_secs: u32,
    /// Its registered targets (draining ones included).
    pub members: Vec<Member>,
}

/// A target group of the stack whose balancer is gone or no longer
/// uses it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrayTargetGroup {
    /// Its name.
    pub name: TargetGroupName,
    /// The Balancer (manifest name) it was made for.
    pub balancer: ResourceName,
}

/// A load balancer, classic or elbv2.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObservedBalancer {
    /// Its name in the cloud (the manifest name for a classic one).
    pub name: BalancerName,
    /// Its owner.
    pub owner: Owner,
    /// Its type.
    #[serde(default, rename = "type")]
    pub kind: BalancerType,
    /// Internet-facing or internal.
    #[serde(default)]
    pub scheme: Scheme,
    /// Its DNS name.
    pub dns_name: String,
    /// The hosted zone of its DNS name (CanonicalHostedZoneNameID; for alias records).
    #[serde(default)]
    pub zone_id: String,
    /// Its security groups.
    #[serde(default)]
    pub security_groups: Vec<GroupId>,
    /// An elbv2 balancer's target groups (empty for a classic one).
    #[serde(default)]
    pub target_groups: Vec<ObservedTargetGroup>,
    /// A classic balancer's connection draining timeout, `Some(0)` when
    /// off; `None` for elbv2 (see its target groups) or when unknown.
    #[serde(default)]
    pub drain_secs: Option<u32>,
    /// Whether a classic balancer balances across zones; `None` for elbv2.
    #[serde(default)]
    pub cross_zone: Option<bool>,
    /// Its zones.
    pub zones: Vec<Zone>,
    /// Its subnets (in a VPC).
    #[serde(default)]
    pub subnets: Vec<SubnetId>,
    /// Its listeners.
    pub listeners: Vec<Listener>,
    /// A classic balancer's health check.
    pub health_check: Option<HealthCheck>,
    /// Its registered instances; for elbv2, each instance once, in the
    /// worst state it has in any target group.
    pub members: Vec<Member>,
    /// All its tags.
    pub tags: Tags,
}

/// A bucket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObservedBucket {
    /// Its name.
    pub name: BucketName,
    /// Its owner.
    pub owner: Owner,
    /// Whether anyone may read it.
    pub public_read: bool,
    /// All its tags.
    pub tags: Tags,
    // origin access and content (issue 11 B)
    /// The statements of its policy that let a distribution read it, by
    /// Sid (`converge-cdn-NAME`): the distribution ARN their condition
    /// names, or `None` when the statement is not the one converge writes.
    #[serde(default)]
    pub cdn_grants: BTreeMap<String, Option<String>>,
    /// Its objects under the declared content's prefix, listed only when
    /// the manifests declare content for it (`None`: not listed).
    #[serde(default)]
    pub objects: Option<Vec<ObservedObject>>,
}

/// An object of a bucket, as ListObjectsV2 describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedObject {
    /// Its key.
    pub key: String,
    /// Its ETag, without quotes (the MD5 of a single-PUT object; a
    /// multipart upload's has a `-`).
    pub etag: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its `Content-Type` and `Cache-Control`, when the cloud lists them
    /// (the local cloud does; ListObjectsV2 does not, so on AWS the
    /// bucket's `converge:content` tag stands for them).
    #[serde(default)]
    pub metadata: Option<ObjectMetadata>,
}

/// The headers converge sets on an object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMetadata {
    /// `Content-Type`.
    pub content_type: String,
    /// `Cache-Control`, if set.
    pub cache_control: Option<String>,
}

/// An origin access control named for one of the stack's distributions
/// (`converge-STACK-CDN`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedOriginAccess {
    /// Its ID.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its settings, as converge compares them.
    pub settings: OriginAccessSettings,
}

/// The settings of an origin access control.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginAccessSettings {
    /// Its description.
    pub description: String,
    /// `sigv4`.
    pub signing_protocol: String,
    /// `always`, `never` or `no-override`.
    pub signing_behavior: String,
    /// `s3`, `mediastore`, …
    pub origin_type: String,
}

/// A distribution's deployment status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DistributionStatus {
    /// A change is propagating.
    InProgress,
    /// Settled.
    Deployed,
}

/// A distribution's settings, as converge sets and reads them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistributionConfig {
    /// The origin's domain name (the bucket's S3 endpoint).
    pub origin_domain: String,
    /// Alternate domain names, sorted.
    pub aliases: Vec<String>,
    /// Whether it serves.
    pub enabled: bool,
    /// Logging bucket domain and prefix, if on.
    pub logging: Option<(String, String)>,
    /// Comment.
    pub comment: String,
    /// Default root object.
    pub default_root_object: Option<String>,
    // origin access and content (issue 11 B)
    /// The origin access control the S3 origin is reached through, by
    /// name (an ID no known control has stands for itself).
    #[serde(default)]
    pub origin_access_control: Option<String>,
    /// The viewer certificate (SNI only), if it has one; without, the
    /// default `*.cloudfront.net` one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewer_certificate: Option<ViewerCertificate>,
}

/// A distribution's viewer certificate: an ACM certificate of us-east-1,
/// served by SNI.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewerCertificate {
    /// The certificate's ARN. In a step whose certificate is requested in
    /// the same plan, `Certificate/NAME` until the executor puts in the
    /// ARN the requesting step answered.
    pub arn: String,
    /// The minimum TLS version (`TLSv1.2_2021`).
    pub minimum_protocol_version: String,
}

/// A distribution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObservedDistribution {
    /// Its ID.
    pub id: DistributionId,
    /// Its owner.
    pub owner: Owner,
    /// Its domain name (`d111111abcdef8.cloudfront.net`).
    pub domain_name: String,
    /// Its deployment status.
    pub status: DistributionStatus,
    /// Its settings.
    pub config: DistributionConfig,
    /// All its tags.
    pub tags: Tags,
    // origin access and content (issue 11 B)
    /// Its ARN (`arn:aws:cloudfront::ACCOUNT:distribution/ID`).
    #[serde(default)]
    pub arn: String,
}

/// The S3 endpoint a distribution uses for a bucket as its origin.
pub fn bucket_domain(bucket: &str) -> String {
    format!("{bucket}.s3.amazonaws.com")
}
