//! The world: everything the local cloud holds, exactly as it is stored in
//! its file, and the states derived from it at a given moment.
//!
//! Time is lazy. A record keeps the moments its transitions happen
//! (`running_at`, `available_at`, `deployed_at`, …), fixed when the change
//! was made; a state is computed from them and the clock whenever it is
//! read. Nothing has to run in the background, and a world left alone for
//! an hour is an hour older when it is next opened.

use converge_core::desired::{
    HealthCheck, Listener, ListenerProtocol, MetadataOptions, RootVolume, Tags, VolumeType,
};
use converge_core::elb::{BalancerType, Scheme, TargetHealthCheck};
use converge_core::ids::{
    AssociationId, DistributionId, GatewayId, GroupId, ImageId, InstanceId, KeyPairId,
    RouteTableAssociationId, RouteTableId, SnapshotId, SubnetId, VolumeId, VpcId, Zone,
};
use converge_core::net::Ipv4Cidr;
use converge_core::observed::{
    CloudRule, DistributionConfig, DistributionStatus, InstanceState, MemberState,
    ModificationState, SnapshotState, VolumeState,
};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

/// The `format` field of every world file.
pub(crate) const FORMAT: &str = "converge-local-cloud";
/// The version of the world file's shape; bumped on incompatible changes.
pub(crate) const VERSION: u32 = 1;
/// How long a terminated instance stays listed.
pub(crate) const TERMINATED_RETENTION: Duration = Duration::from_secs(3600);

/// Everything the local cloud holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct World {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// The seed of generated IDs.
    pub seed: u64,
    /// How many IDs have been generated.
    pub counter: u64,
    /// VPCs by ID (default VPCs are not stored: see [`World::default_vpc`]).
    #[serde(default)]
    pub vpcs: BTreeMap<VpcId, Vpc>,
    /// Subnets by ID.
    #[serde(default)]
    pub subnets: BTreeMap<SubnetId, Subnet>,
    /// Internet gateways by ID.
    #[serde(default)]
    pub gateways: BTreeMap<GatewayId, Gateway>,
    /// Route tables by ID.
    #[serde(default)]
    pub route_tables: BTreeMap<RouteTableId, RouteTable>,
    /// CreateRouteTable client tokens, by `region/token`.
    #[serde(default)]
    pub route_table_tokens: BTreeMap<String, RouteTableId>,
    /// Regions whose default VPC was removed (`converge local remove
    /// default-vpc`).
    #[serde(default)]
    pub no_default_vpc: BTreeSet<String>,
    /// Key pairs by ID.
    pub key_pairs: BTreeMap<KeyPairId, KeyPair>,
    /// Security groups by ID.
    pub groups: BTreeMap<GroupId, Group>,
    /// Instances by ID, terminated ones included until they are purged.
    pub instances: BTreeMap<InstanceId, Instance>,
    /// Volumes by ID.
    pub volumes: BTreeMap<VolumeId, Volume>,
    /// Snapshots by ID.
    pub snapshots: BTreeMap<SnapshotId, Snapshot>,
    /// Balancers, in creation order (their key is region and name).
    pub balancers: Vec<Balancer>,
    /// Application and network balancers (elbv2), in creation order
    /// (their key is region and name; elbv2 names are apart from classic
    /// ones).
    #[serde(default)]
    pub balancers_v2: Vec<BalancerV2>,
    /// elbv2 target groups, in creation order (key: region and name).
    #[serde(default)]
    pub target_groups: Vec<TargetGroup>,
    /// ACM certificates by ARN, made with `converge local add
    /// certificate`.
    #[serde(default)]
    pub certificates: BTreeMap<String, Certificate>,
    /// Buckets by name (global, as in S3).
    pub buckets: BTreeMap<String, Bucket>,
    /// Distributions by ID (global, as in CloudFront).
    pub distributions: BTreeMap<DistributionId, Distribution>,
    /// RunInstances client tokens, by `region/token`.
    pub run_tokens: BTreeMap<String, RunToken>,
    /// CreateVolume client tokens, by `region/token`.
    pub volume_tokens: BTreeMap<String, VolumeToken>,
    /// IAM instance profiles by name (global, as in IAM), made with
    /// `converge local add instance-profile`.
    #[serde(default)]
    pub instance_profiles: BTreeMap<String, InstanceProfileRecord>,
    /// SSM parameters by region, then name (SSM is regional), made with
    /// `converge local add parameter`.
    #[serde(default)]
    pub parameters: BTreeMap<String, BTreeMap<String, Parameter>>,
    /// How far the world's clock is ahead of the host's, in seconds
    /// (`converge local advance`): every call sees the host's time plus
    /// this.
    #[serde(default)]
    pub clock_offset_s: i64,
    /// Route 53 hosted zones by ID (global, as in Route 53).
    #[serde(default)]
    pub hosted_zones: BTreeMap<String, super::ops::route53::HostedZone>,
    /// CreateHostedZone caller references → zone IDs.
    #[serde(default)]
    pub zone_references: BTreeMap<String, String>,
    /// Route 53 change batches by ID: when each is in sync.
    #[serde(default)]
    pub dns_changes: BTreeMap<String, Timestamp>,
    /// CloudFront origin access controls by ID (global, as in CloudFront).
    #[serde(default)]
    pub origin_access_controls: BTreeMap<String, OriginAccessControl>,
    /// CloudFront invalidations by ID.
    #[serde(default)]
    pub invalidations: BTreeMap<String, Invalidation>,
}

/// An IAM instance profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct InstanceProfileRecord {
    pub name: String,
    pub arn: String,
    pub created_at: Timestamp,
}

/// An SSM parameter (a `String`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Parameter {
    pub value: String,
    /// 1 when created, one more at each overwrite.
    pub version: u64,
    pub modified_at: Timestamp,
}

/// An instance's association with an instance profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Association {
    pub id: AssociationId,
    /// The profile's ARN.
    pub arn: String,
}

/// The root device of every image in the local cloud, as on Amazon Linux
/// and most current AMIs.
pub(crate) const ROOT_DEVICE: &str = "/dev/xvda";
/// The size of every image's root snapshot, in GiB (Amazon Linux 2023's).
pub(crate) const ROOT_SNAPSHOT_GIB: u32 = 8;

/// An imported key pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct KeyPair {
    pub id: KeyPairId,
    pub region: String,
    pub name: String,
    pub public_key: String,
    pub tags: Tags,
    pub created_at: Timestamp,
}

/// A VPC made by CreateVpc or `converge local add vpc`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Vpc {
    pub id: VpcId,
    pub region: String,
    pub cidr: Ipv4Cidr,
    pub dns_support: bool,
    pub dns_hostnames: bool,
    pub tags: Tags,
    pub created_at: Timestamp,
}

/// A subnet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Subnet {
    pub id: SubnetId,
    pub vpc: VpcId,
    pub zone: Zone,
    pub cidr: Ipv4Cidr,
    pub map_public_ip: bool,
    pub tags: Tags,
    pub created_at: Timestamp,
}

impl Subnet {
    /// The region, from the zone.
    pub fn region(&self) -> &str {
        region_of(self.zone.as_str())
    }
}

/// An internet gateway.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Gateway {
    pub id: GatewayId,
    pub region: String,
    pub attached_to: Option<VpcId>,
    pub tags: Tags,
    pub created_at: Timestamp,
}

/// A route table (not a VPC's main one, which is implicit: subnets
/// without an association use it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct RouteTable {
    pub id: RouteTableId,
    pub region: String,
    pub vpc: VpcId,
    /// Routes to internet gateways, by destination.
    pub routes: BTreeMap<Ipv4Cidr, GatewayId>,
    pub associations: BTreeMap<RouteTableAssociationId, SubnetId>,
    pub tags: Tags,
    pub created_at: Timestamp,
}

/// A security group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Group {
    pub id: GroupId,
    pub region: String,
    /// Its VPC (`None`: the region's default VPC, as in world files from
    /// before VPCs).
    #[serde(default)]
    pub vpc: Option<VpcId>,
    pub name: String,
    pub description: String,
    pub rules: Vec<CloudRule>,
    pub tags: Tags,
    pub created_at: Timestamp,
}

/// An instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Instance {
    pub id: InstanceId,
    pub zone: Zone,
    pub image: ImageId,
    pub instance_type: String,
    pub key_name: Option<String>,
    pub groups: Vec<GroupId>,
    pub user_data: String,
    pub tags: Tags,
    pub private_ip: Ipv4Addr,
    /// Its subnet (`None`: the default subnet of its zone).
    #[serde(default)]
    pub subnet: Option<SubnetId>,
    /// Its public address, if it has one.
    #[serde(default)]
    pub public_ip: Option<Ipv4Addr>,
    pub launched_at: Timestamp,
    /// When it leaves `pending`.
    pub running_at: Timestamp,
    /// When it was told to terminate (or lost), and when it is gone.
    pub termination: Option<Termination>,
    /// Its instance profile association.
    #[serde(default)]
    pub profile: Option<Association>,
    /// Its metadata options.
    #[serde(default)]
    pub metadata: MetadataOptions,
    /// Its root volume as launched; `None`: the image's own
    /// ([`ROOT_SNAPSHOT_GIB`] GiB gp2, not encrypted).
    #[serde(default)]
    pub root_volume: Option<RootVolume>,
}

/// When an instance was terminated.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Termination {
    /// Shutting down from here.
    pub requested_at: Timestamp,
    /// Terminated from here.
    pub terminated_at: Timestamp,
}

impl Instance {
    /// The state at `now`.
    pub fn state(&self, now: Timestamp) -> InstanceState {
        match self.termination {
            Some(t) if now >= t.terminated_at => InstanceState::Terminated,
            Some(t) if now >= t.requested_at => InstanceState::ShuttingDown,
            _ if now >= self.running_at => InstanceState::Running,
            _ => InstanceState::Pending,
        }
    }

    /// Whether it no longer exists at all at `now` (terminated long ago).
    pub fn purged(&self, now: Timestamp) -> bool {
        self.termination
            .is_some_and(|t| now >= after(t.terminated_at, TERMINATED_RETENTION))
    }

    /// Whether it is terminated (or purged) at `now`.
    pub fn is_gone(&self, now: Timestamp) -> bool {
        self.state(now) == InstanceState::Terminated
    }

    /// The region, from the zone.
    pub fn region(&self) -> &str {
        region_of(self.zone.as_str())
    }
}

/// A volume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Volume {
    pub id: VolumeId,
    pub zone: Zone,
    pub size_gib: u32,
    pub volume_type: VolumeType,
    pub snapshot: Option<SnapshotId>,
    /// Whether it is encrypted (worlds written before encryption was
    /// modelled hold unencrypted volumes).
    #[serde(default)]
    pub encrypted: bool,
    /// The ARN of its KMS key, when encrypted.
    #[serde(default)]
    pub kms_key: Option<String>,
    /// Its IOPS (gp3, io1, io2).
    #[serde(default)]
    pub iops: Option<u32>,
    /// Its throughput in MiB/s (gp3).
    #[serde(default)]
    pub throughput: Option<u32>,
    /// Its latest modification.
    #[serde(default)]
    pub modification: Option<Modification>,
    pub tags: Tags,
    pub created_at: Timestamp,
    /// When it leaves `creating`.
    pub available_at: Timestamp,
    /// Its attachment, as last set. It no longer holds once the instance
    /// is terminated ([`World::attachment`]).
    pub attachment: Option<Attachment>,
}

/// A volume modification: modifying, then optimizing, then completed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Modification {
    pub started_at: Timestamp,
    /// When it reaches `optimizing` (the volume has its new size).
    pub optimizing_at: Timestamp,
    /// When it is `completed`.
    pub completed_at: Timestamp,
}

impl Modification {
    /// The state at `now`.
    pub fn state(&self, now: Timestamp) -> ModificationState {
        if now >= self.completed_at {
            ModificationState::Completed
        } else if now >= self.optimizing_at {
            ModificationState::Optimizing
        } else {
            ModificationState::Modifying
        }
    }
}

impl Volume {
    /// The region, from the zone.
    pub fn region(&self) -> &str {
        region_of(self.zone.as_str())
    }
}

/// A volume's attachment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Attachment {
    pub instance: InstanceId,
    pub device: String,
    pub attached_at: Timestamp,
}

/// A snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub id: SnapshotId,
    pub region: String,
    pub volume_id: VolumeId,
    pub volume_size: u32,
    /// Whether it is encrypted (as its volume was), and with which key.
    #[serde(default)]
    pub encrypted: bool,
    #[serde(default)]
    pub kms_key: Option<String>,
    pub description: String,
    pub tags: Tags,
    pub started_at: Timestamp,
    pub completed_at: Timestamp,
}

impl Snapshot {
    /// The state at `now`.
    pub fn state(&self, now: Timestamp) -> SnapshotState {
        if now >= self.completed_at {
            SnapshotState::Completed
        } else {
            SnapshotState::Pending
        }
    }
}

/// A classic load balancer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Balancer {
    pub name: String,
    pub region: String,
    pub dns_name: String,
    pub zones: Vec<Zone>,
    /// Its subnets, when created in a VPC's subnets.
    #[serde(default)]
    pub subnets: Vec<SubnetId>,
    pub listeners: Vec<Listener>,
    pub health_check: Option<HealthCheck>,
    /// Registered instances.
    pub members: BTreeMap<InstanceId, Registration>,
    pub tags: Tags,
    pub created_at: Timestamp,
    /// Internet-facing or internal (internal only in a VPC).
    #[serde(default)]
    pub scheme: Scheme,
    /// Its security groups (in a VPC).
    #[serde(default)]
    pub groups: Vec<GroupId>,
    /// Connection draining timeout in seconds; 0: off (the API's default).
    #[serde(default)]
    pub drain_secs: u32,
    /// Cross-zone balancing (off by default through the API).
    #[serde(default)]
    pub cross_zone: bool,
    /// Deregistered instances still finishing their requests, and, kept
    /// until the instance is purged, those that have drained: the record
    /// a test reads to check that no instance was terminated while
    /// draining.
    #[serde(default)]
    pub draining: BTreeMap<InstanceId, Drain>,
}

/// A member leaving a balancer: it drains from `since` until `until`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Drain {
    /// When it was deregistered (or its instance began to terminate).
    pub since: Timestamp,
    /// When it has drained.
    pub until: Timestamp,
    /// Whether the cloud deregistered it because its instance was
    /// terminated (as elbv2 does), rather than a DeregisterTargets call.
    #[serde(default)]
    pub by_termination: bool,
}

impl Drain {
    /// Whether it is still draining at `now`.
    pub fn active(&self, now: Timestamp) -> bool {
        now < self.until
    }
}

/// An application or network balancer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct BalancerV2 {
    pub name: String,
    pub region: String,
    pub arn: String,
    pub kind: BalancerType,
    pub scheme: Scheme,
    pub dns_name: String,
    pub vpc: VpcId,
    /// The zones it serves (of its subnets, or named with no subnets).
    pub zones: Vec<Zone>,
    /// Its subnets; empty when it serves the default subnets of `zones`.
    pub subnets: Vec<SubnetId>,
    pub groups: Vec<GroupId>,
    /// Its listeners, each forwarding to one target group.
    pub listeners: Vec<ListenerV2>,
    pub tags: Tags,
    pub created_at: Timestamp,
}

/// An elbv2 listener.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ListenerV2 {
    /// Port, protocol, certificate (its `instance_port` as it was given).
    pub listener: Listener,
    /// The name of the target group it forwards to.
    pub target_group: String,
}

/// An elbv2 target group of instances.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct TargetGroup {
    pub name: String,
    pub region: String,
    pub arn: String,
    pub protocol: ListenerProtocol,
    pub port: u16,
    pub vpc: VpcId,
    pub health_check: TargetHealthCheck,
    pub deregistration_delay_secs: u32,
    /// How long a target drains, in this world's time: the delay scaled
    /// by the `health` factor of the process that set it.
    pub drain_ms: u64,
    /// Registered targets.
    pub targets: BTreeMap<InstanceId, Registration>,
    /// Deregistered targets (see [`Balancer::draining`]).
    pub draining: BTreeMap<InstanceId, Drain>,
    pub tags: Tags,
    pub created_at: Timestamp,
}

/// An ACM certificate: one made with `converge local add certificate`
/// is issued at once; one requested with DNS validation is pending until
/// its validation records are in a zone the world holds, then issued
/// `delays.certificate` later.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Certificate {
    pub arn: String,
    pub region: String,
    /// The domain names it covers, the first one its subject.
    pub domains: Vec<String>,
    pub created_at: Timestamp,
    /// Whether it is validated by DNS (requested with RequestCertificate).
    #[serde(default)]
    pub dns_validated: bool,
    /// When its last validation record was seen in a zone.
    #[serde(default)]
    pub validated_at: Option<Timestamp>,
    /// The idempotency token it was requested with.
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub tags: Tags,
}

/// An instance's registration with a balancer.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Registration {
    pub registered_at: Timestamp,
    /// How long after it is both registered and running it passes
    /// `healthyThreshold` checks (fixed at registration).
    pub healthy_after_ms: u64,
}

/// A bucket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Bucket {
    pub name: String,
    pub region: String,
    pub public_read: bool,
    pub tags: Tags,
    pub created_at: Timestamp,
    // origin access and content (issue 11 B)
    /// Its policy (a JSON document), apart from the public-read
    /// statement `public_read` stands for.
    #[serde(default)]
    pub policy: Option<String>,
    /// Its objects by key.
    #[serde(default)]
    pub objects: BTreeMap<String, Object>,
}

/// An object: what converge reads of it (the bytes are not kept).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Object {
    pub md5: String,
    pub size: u64,
    pub content_type: String,
    pub cache_control: Option<String>,
}

/// A CloudFront origin access control.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OriginAccessControl {
    pub id: String,
    pub name: String,
    pub settings: converge_core::observed::OriginAccessSettings,
}

/// A CloudFront invalidation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Invalidation {
    pub id: String,
    pub distribution: DistributionId,
    pub caller_reference: String,
    pub paths: Vec<String>,
    /// When it completes.
    pub completed_at: Timestamp,
}

/// A distribution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Distribution {
    pub id: DistributionId,
    pub domain_name: String,
    pub caller_reference: String,
    /// The settings it was created with, to answer a repeated create.
    pub original: DistributionConfig,
    pub config: DistributionConfig,
    pub tags: Tags,
    pub created_at: Timestamp,
    /// When the last change has propagated.
    pub deployed_at: Timestamp,
}

impl Distribution {
    /// The status at `now`.
    pub fn status(&self, now: Timestamp) -> DistributionStatus {
        if now >= self.deployed_at {
            DistributionStatus::Deployed
        } else {
            DistributionStatus::InProgress
        }
    }
}

/// What a RunInstances client token launched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunToken {
    /// The request's parameters, to refuse a different request with the
    /// same token (`IdempotentParameterMismatch`).
    pub request: String,
    pub ids: Vec<InstanceId>,
}

/// What a CreateVolume client token created.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct VolumeToken {
    pub request: String,
    pub id: VolumeId,
}

impl World {
    /// An empty world whose IDs derive from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            format: FORMAT.to_owned(),
            version: VERSION,
            seed,
            counter: 0,
            vpcs: BTreeMap::new(),
            subnets: BTreeMap::new(),
            gateways: BTreeMap::new(),
            route_tables: BTreeMap::new(),
            route_table_tokens: BTreeMap::new(),
            no_default_vpc: BTreeSet::new(),
            key_pairs: BTreeMap::new(),
            groups: BTreeMap::new(),
            instances: BTreeMap::new(),
            volumes: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            balancers: Vec::new(),
            balancers_v2: Vec::new(),
            target_groups: Vec::new(),
            certificates: BTreeMap::new(),
            buckets: BTreeMap::new(),
            distributions: BTreeMap::new(),
            run_tokens: BTreeMap::new(),
            volume_tokens: BTreeMap::new(),
            instance_profiles: BTreeMap::new(),
            parameters: BTreeMap::new(),
            clock_offset_s: 0,
            hosted_zones: BTreeMap::new(),
            zone_references: BTreeMap::new(),
            dns_changes: BTreeMap::new(),
            origin_access_controls: BTreeMap::new(),
            invalidations: BTreeMap::new(),
        }
    }

    /// `cx` with the world's clock offset added to its moment.
    pub fn offset<'a>(&self, cx: super::ops::Ctx<'a>) -> super::ops::Ctx<'a> {
        let now = cx
            .now
            .checked_add(jiff::SignedDuration::from_secs(self.clock_offset_s))
            .unwrap_or(cx.now);
        super::ops::Ctx { now, ..cx }
    }

    /// The next 64 pseudo-random bits: a pure function of the seed and the
    /// counter, so a world replays the same IDs.
    pub fn next_u64(&mut self) -> u64 {
        self.counter += 1;
        splitmix64(self.seed ^ splitmix64(self.counter))
    }

    /// `n` lowercase hex digits.
    pub fn next_hex(&mut self, n: usize) -> String {
        self.next_chars(n, b"0123456789abcdef")
    }

    /// `n` characters drawn from `alphabet`.
    pub fn next_chars(&mut self, n: usize, alphabet: &[u8]) -> String {
        let mut s = String::with_capacity(n);
        let mut bits = self.next_u64();
        let mut left = 64 / 6;
        for _ in 0..n {
            if left == 0 {
                bits = self.next_u64();
                left = 64 / 6;
            }
            let i = (bits % alphabet.len() as u64) as usize;
            bits /= alphabet.len() as u64;
            left -= 1;
            s.push(char::from(alphabet[i]));
        }
        s
    }

    /// The region's default VPC, unless it was removed. It is not stored:
    /// every region has one, with a default subnet in each zone.
    pub fn default_vpc(&self, region: &str) -> Option<VpcId> {
        if self.no_default_vpc.contains(region) {
            return None;
        }
        VpcId::new(format!("vpc-default-{region}")).ok()
    }

    /// Whether `vpc` exists in `region` (a stored VPC or the default one).
    pub fn vpc_exists(&self, region: &str, vpc: &VpcId) -> bool {
        self.vpcs.get(vpc).is_some_and(|v| v.region == region)
            || self.default_vpc(region).as_ref() == Some(vpc)
    }

    /// The VPC an instance is in: its subnet's, or the default VPC's.
    pub fn instance_vpc(&self, i: &Instance) -> Option<VpcId> {
        match &i.subnet {
            Some(s) => self.subnets.get(s).map(|s| s.vpc.clone()),
            None => self.default_vpc(i.region()),
        }
    }

    /// The VPC a group is in.
    pub fn group_vpc(&self, g: &Group) -> Option<VpcId> {
        g.vpc.clone().or_else(|| self.default_vpc(&g.region))
    }

    /// An instance that exists at `now` (not purged), regardless of
    /// visibility.
    pub fn instance(&self, id: &InstanceId, now: Timestamp) -> Option<&Instance> {
        self.instances.get(id).filter(|i| !i.purged(now))
    }

    /// A volume's attachment, if it still holds at `now`: attachments end
    /// when their instance is terminated.
    pub fn attachment<'a>(&self, v: &'a Volume, now: Timestamp) -> Option<&'a Attachment> {
        v.attachment.as_ref().filter(|a| {
            self.instance(&a.instance, now)
                .is_some_and(|i| !i.is_gone(now))
        })
    }

    /// A volume's state at `now`.
    pub fn volume_state(&self, v: &Volume, now: Timestamp) -> VolumeState {
        if now < v.available_at {
            VolumeState::Creating
        } else if self.attachment(v, now).is_some() {
            VolumeState::InUse
        } else {
            VolumeState::Available
        }
    }

    /// A balancer member's health at `now`, or `None` once the instance is
    /// terminated (the balancer drops it).
    pub fn member_state(
        &self,
        b: &Balancer,
        id: &InstanceId,
        reg: &Registration,
        now: Timestamp,
    ) -> Option<MemberState> {
        let i = self.instance(id, now)?;
        match i.state(now) {
            InstanceState::Terminated => None,
            InstanceState::Running if b.zones.contains(&i.zone) => {
                let since = reg.registered_at.max(i.running_at);
                let healthy_at = after(since, Duration::from_millis(reg.healthy_after_ms));
                Some(if now >= healthy_at {
                    MemberState::InService
                } else {
                    MemberState::OutOfService
                })
            }
            _ => Some(MemberState::OutOfService),
        }
    }

    /// An elbv2 balancer by region and name.
    pub fn balancer_v2(&self, region: &str, name: &str) -> Option<&BalancerV2> {
        self.balancers_v2
            .iter()
            .find(|b| b.region == region && b.name == name)
    }

    /// An elbv2 balancer by region and name, to change it.
    pub fn balancer_v2_mut(&mut self, region: &str, name: &str) -> Option<&mut BalancerV2> {
        self.balancers_v2
            .iter_mut()
            .find(|b| b.region == region && b.name == name)
    }

    /// A target group by region and name.
    pub fn target_group(&self, region: &str, name: &str) -> Option<&TargetGroup> {
        self.target_groups
            .iter()
            .find(|g| g.region == region && g.name == name)
    }

    /// A target group by region and name, to change it.
    pub fn target_group_mut(&mut self, region: &str, name: &str) -> Option<&mut TargetGroup> {
        self.target_groups
            .iter_mut()
            .find(|g| g.region == region && g.name == name)
    }

    /// The balancer whose listeners forward to a target group (at most
    /// one: CreateListener refuses a second).
    pub fn group_balancer(&self, tg: &TargetGroup) -> Option<&BalancerV2> {
        self.balancers_v2.iter().find(|b| {
            b.region == tg.region && b.listeners.iter().any(|l| l.target_group == tg.name)
        })
    }

    /// The drain elbv2 starts on its own when a target's instance begins
    /// to terminate: the target is deregistered and drains for the
    /// group's delay.
    pub fn termination_drain(
        &self,
        tg: &TargetGroup,
        id: &InstanceId,
        now: Timestamp,
    ) -> Option<Drain> {
        let t = self.instances.get(id)?.termination?;
        (now >= t.requested_at).then(|| Drain {
            since: t.requested_at,
            until: after(t.requested_at, Duration::from_millis(tg.drain_ms)),
            by_termination: true,
        })
    }

    /// A registered target's state at `now` (DescribeTargetHealth), or
    /// `None` once it is gone: `initial` until `healthyThreshold ×
    /// interval` after it is registered and running, then `healthy`;
    /// `unhealthy` while its instance is not running, `unused` (shown as
    /// out of service) while no listener forwards to the group or its
    /// zone is not the balancer's; `draining` once its instance
    /// terminates.
    pub fn target_state(
        &self,
        tg: &TargetGroup,
        id: &InstanceId,
        reg: &Registration,
        now: Timestamp,
    ) -> Option<MemberState> {
        let i = self.instance(id, now)?;
        if let Some(d) = self.termination_drain(tg, id, now) {
            return d.active(now).then_some(MemberState::Draining);
        }
        if i.state(now) != InstanceState::Running {
            return Some(MemberState::OutOfService);
        }
        let in_use = self
            .group_balancer(tg)
            .is_some_and(|b| b.zones.contains(&i.zone));
        if !in_use {
            return Some(MemberState::OutOfService);
        }
        let since = reg.registered_at.max(i.running_at);
        let healthy_at = after(since, Duration::from_millis(reg.healthy_after_ms));
        Some(if now >= healthy_at {
            MemberState::InService
        } else {
            MemberState::Initial
        })
    }

    /// Every target of a group at `now` with its state, draining ones
    /// included, sorted by instance.
    pub fn targets(&self, tg: &TargetGroup, now: Timestamp) -> Vec<(InstanceId, MemberState)> {
        let mut out: Vec<(InstanceId, MemberState)> = tg
            .targets
            .iter()
            .filter_map(|(id, reg)| self.target_state(tg, id, reg, now).map(|s| (id.clone(), s)))
            .collect();
        for (id, d) in &tg.draining {
            if d.active(now) && !tg.targets.contains_key(id) {
                out.push((id.clone(), MemberState::Draining));
            }
        }
        out.sort();
        out
    }

    /// A balancer by region and name.
    pub fn balancer(&self, region: &str, name: &str) -> Option<&Balancer> {
        self.balancers
            .iter()
            .find(|b| b.region == region && b.name == name)
    }

    /// A balancer by region and name, to change it.
    pub fn balancer_mut(&mut self, region: &str, name: &str) -> Option<&mut Balancer> {
        self.balancers
            .iter_mut()
            .find(|b| b.region == region && b.name == name)
    }

    /// Makes what time has done permanent before a change is saved:
    /// terminated instances leave their volumes and balancers, and are
    /// purged an hour later with the client tokens that named them. Reads
    /// derive the same states without this.
    pub fn settle(&mut self, now: Timestamp) {
        let gone: Vec<InstanceId> = self
            .instances
            .values()
            .filter(|i| i.is_gone(now))
            .map(|i| i.id.clone())
            .collect();
        for v in self.volumes.values_mut() {
            if v.attachment.as_ref().is_some_and(|a| {
                gone.contains(&a.instance) || !self.instances.contains_key(&a.instance)
            }) {
                v.attachment = None;
            }
        }
        for b in &mut self.balancers {
            b.members
                .retain(|id, _| self.instances.contains_key(id) && !gone.contains(id));
        }
        for tg in &mut self.target_groups {
            let ids: Vec<InstanceId> = tg.targets.keys().cloned().collect();
            for id in ids {
                let Some(i) = self.instances.get(&id) else {
                    tg.targets.remove(&id);
                    continue;
                };
                if let Some(t) = i.termination
                    && now >= t.requested_at
                {
                    tg.targets.remove(&id);
                    let until = after(t.requested_at, Duration::from_millis(tg.drain_ms));
                    tg.draining.insert(
                        id,
                        Drain {
                            since: t.requested_at,
                            until,
                            by_termination: true,
                        },
                    );
                }
            }
        }
        self.instances.retain(|_, i| !i.purged(now));
        // Drains are kept, once over, as long as their instance is: the
        // record of when each member drained.
        let instances = &self.instances;
        for b in &mut self.balancers {
            b.draining
                .retain(|id, d| d.active(now) || instances.contains_key(id));
        }
        for tg in &mut self.target_groups {
            tg.draining
                .retain(|id, d| d.active(now) || instances.contains_key(id));
        }
        let instances = &self.instances;
        self.run_tokens
            .retain(|_, t| t.ids.iter().any(|id| instances.contains_key(id)));
        let volumes = &self.volumes;
        self.volume_tokens
            .retain(|_, t| volumes.contains_key(&t.id));
    }
}

/// The region a zone belongs to: `us-east-1a` → `us-east-1`.
pub(crate) fn region_of(zone: &str) -> &str {
    zone.trim_end_matches(|c: char| c.is_ascii_lowercase())
}

/// `t + d`, saturating.
pub(crate) fn after(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;

    #[test]
    fn ids_replay_from_seed_and_counter() {
        let mut a = World::new(7);
        let mut b = World::new(7);
        let mut c = World::new(8);
        let (x, y, z) = (a.next_hex(17), b.next_hex(17), c.next_hex(17));
        assert_eq!(x, y);
        assert_ne!(x, z);
        assert_eq!(x.len(), 17);
        assert!(x.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.next_hex(17), x);
    }

    #[test]
    fn regions_come_from_zones() {
        assert_eq!(region_of("us-east-1a"), "us-east-1");
        assert_eq!(region_of("eu-west-3c"), "eu-west-3");
    }
}
