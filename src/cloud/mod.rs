//! The cloud: one trait that the embedded local cloud and AWS both
//! implement. `observe` reads a stack (batched, by tags); `act` carries out
//! one operation; a few narrow reads serve the executor's waits.

pub mod aws;
pub mod local;
pub mod retry;

use async_trait::async_trait;
use converge_core::desired::{
    HealthCheck, Listener, ListenerProtocol, MetadataOptions, Tags, VolumeType,
};
use converge_core::ebs::KmsKey;
use converge_core::elb::{BalancerType, Scheme, TargetHealthCheck};
use converge_core::ids::{
    AssociationId, BalancerName, BucketName, DistributionId, GatewayId, GroupId, GroupName,
    IdError, ImageId, InstanceId, InstanceProfile, KeyName, ParameterName, ResourceName,
    RouteTableAssociationId, RouteTableId, SnapshotId, SubnetId, TargetGroupName, VolumeId, VpcId,
    Zone,
};
use converge_core::net::Ipv4Cidr;
use converge_core::observed::{
    CloudRule, DistributionConfig, Member, Observed, ObservedDistribution, ObservedImage,
    ObservedInstance, ObservedObject, ObservedSnapshot, ObservedSubnet, ObservedVolume,
    OriginAccessSettings,
};
use converge_core::plan::{PlannedRootVolume, TagTarget};
use converge_core::route53::{ObservedZone, RecordChange};
use jiff::Timestamp;
use retry::RetryPolicy;
use std::collections::BTreeMap;
use std::fmt;

/// One operation on the cloud, with every ID resolved.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Import a public key.
    CreateKeyPair {
        /// Cloud name.
        name: KeyName,
        /// OpenSSH public key.
        public_key: String,
        /// Tags.
        tags: Tags,
    },
    /// Delete a key pair by name.
    DeleteKeyPair {
        /// Cloud name.
        name: KeyName,
    },
    /// Create a VPC; answers [`Outcome::Vpc`].
    CreateVpc {
        /// Its IPv4 block.
        cidr: Ipv4Cidr,
        /// Tags.
        tags: Tags,
    },
    /// Turn one VPC attribute on (EC2 takes one attribute per call).
    ModifyVpcAttribute {
        /// The VPC.
        vpc: VpcId,
        /// The attribute.
        attribute: VpcAttribute,
    },
    /// Delete a VPC.
    DeleteVpc {
        /// The VPC.
        vpc: VpcId,
    },
    /// Create a subnet; answers [`Outcome::Subnet`].
    CreateSubnet {
        /// The VPC.
        vpc: VpcId,
        /// Its zone.
        zone: Zone,
        /// Its block.
        cidr: Ipv4Cidr,
        /// Tags.
        tags: Tags,
    },
    /// Set `MapPublicIpOnLaunch` on a subnet.
    ModifySubnetAttribute {
        /// The subnet.
        subnet: SubnetId,
        /// The setting.
        map_public_ip: bool,
    },
    /// Delete a subnet.
    DeleteSubnet {
        /// The subnet.
        subnet: SubnetId,
    },
    /// Create an internet gateway; answers [`Outcome::Gateway`].
    CreateInternetGateway {
        /// Tags.
        tags: Tags,
    },
    /// Attach an internet gateway to a VPC.
    AttachInternetGateway {
        /// The gateway.
        gateway: GatewayId,
        /// The VPC.
        vpc: VpcId,
    },
    /// Detach an internet gateway from a VPC.
    DetachInternetGateway {
        /// The gateway.
        gateway: GatewayId,
        /// The VPC.
        vpc: VpcId,
    },
    /// Delete a (detached) internet gateway.
    DeleteInternetGateway {
        /// The gateway.
        gateway: GatewayId,
    },
    /// Create a route table; answers [`Outcome::RouteTable`]. The same
    /// client token returns the same table.
    CreateRouteTable {
        /// The VPC.
        vpc: VpcId,
        /// Tags.
        tags: Tags,
        /// Idempotency token.
        client_token: String,
    },
    /// Add a route to an internet gateway.
    CreateRoute {
        /// The route table.
        route_table: RouteTableId,
        /// The destination block.
        destination: Ipv4Cidr,
        /// The gateway.
        gateway: GatewayId,
    },
    /// Associate a subnet with a route table; answers
    /// [`Outcome::Association`].
    AssociateRouteTable {
        /// The route table.
        route_table: RouteTableId,
        /// The subnet.
        subnet: SubnetId,
    },
    /// Undo a subnet's association.
    DisassociateRouteTable {
        /// The association.
        association: RouteTableAssociationId,
    },
    /// Delete a route table with no associations.
    DeleteRouteTable {
        /// The route table.
        route_table: RouteTableId,
    },
    /// Create a security group; answers [`Outcome::Group`].
    CreateGroup {
        /// Cloud name.
        name: GroupName,
        /// Its VPC.
        vpc: VpcId,
        /// Description.
        description: String,
        /// Tags.
        tags: Tags,
    },
    /// Add inbound rules.
    AuthorizeIngress {
        /// The group.
        group: GroupId,
        /// Rules.
        rules: Vec<CloudRule>,
    },
    /// Remove inbound rules.
    RevokeIngress {
        /// The group.
        group: GroupId,
        /// Rules.
        rules: Vec<CloudRule>,
    },
    /// Delete a security group.
    DeleteGroup {
        /// The group.
        group: GroupId,
    },
    /// Set tags on a resource.
    CreateTags {
        /// The resource.
        target: TagTarget,
        /// Tags.
        tags: Tags,
    },
    /// Remove tag keys from a resource.
    DeleteTags {
        /// The resource.
        target: TagTarget,
        /// Keys.
        keys: Vec<String>,
    },
    /// Launch instances; answers [`Outcome::Instances`]. The same client
    /// token returns the same instances instead of launching again.
    RunInstances {
        /// Image.
        image: String,
        /// Instance type.
        instance_type: String,
        /// Key pair cloud name.
        key_name: Option<KeyName>,
        /// Security groups.
        groups: Vec<GroupId>,
        /// User data (plain text; backends encode as needed).
        user_data: String,
        /// Zone.
        zone: Zone,
        /// The subnet (in the zone); `None` for the zone's default subnet.
        subnet: Option<SubnetId>,
        /// Whether instances get a public address; `None` leaves it to
        /// the subnet.
        public_ip: Option<bool>,
        /// The private address of the one instance launched (`count` is
        /// then 1, as EC2 asks); `None`: the subnet picks.
        private_ip: Option<std::net::Ipv4Addr>,
        /// How many.
        count: u32,
        /// Tags.
        tags: Tags,
        /// Idempotency token.
        client_token: String,
        /// The IAM instance profile (name or ARN).
        instance_profile: Option<InstanceProfile>,
        /// Metadata options (the endpoint always enabled).
        metadata: MetadataOptions,
        /// The root volume, mapped on the image's root device.
        root_volume: Option<PlannedRootVolume>,
    },
    /// Terminate instances.
    TerminateInstances {
        /// Instances.
        ids: Vec<InstanceId>,
    },
    /// Replace an instance's security groups.
    SetInstanceGroups {
        /// The instance.
        instance: InstanceId,
        /// Groups.
        groups: Vec<GroupId>,
    },
    /// Change a running instance's metadata options.
    ModifyInstanceMetadataOptions {
        /// The instance.
        instance: InstanceId,
        /// The options.
        metadata: MetadataOptions,
    },
    /// Associate an instance profile with an instance that has none.
    AssociateIamInstanceProfile {
        /// The instance.
        instance: InstanceId,
        /// The profile (name or ARN).
        profile: InstanceProfile,
    },
    /// Replace the profile of an association.
    ReplaceIamInstanceProfileAssociation {
        /// The association.
        association: AssociationId,
        /// The new profile (name or ARN).
        profile: InstanceProfile,
    },
    /// Remove an association.
    DisassociateIamInstanceProfile {
        /// The association.
        association: AssociationId,
    },
    /// Create a volume; answers [`Outcome::Volume`].
    CreateVolume {
        /// Zone.
        zone: Zone,
        /// Size.
        size_gib: u32,
        /// Type.
        volume_type: VolumeType,
        /// Restore from.
        snapshot: Option<SnapshotId>,
        /// Encrypted (always sent, so the account's encryption-by-default
        /// setting never decides).
        encrypted: bool,
        /// The KMS key (`KmsKeyId`); the account's default EBS key when
        /// `None` and encrypted.
        kms_key: Option<KmsKey>,
        /// Provisioned IOPS (gp3, io1, io2).
        iops: Option<u32>,
        /// Throughput in MiB/s (gp3).
        throughput: Option<u32>,
        /// Tags.
        tags: Tags,
        /// Idempotency token.
        client_token: String,
    },
    /// Grow a volume, change its type, IOPS or throughput, in one
    /// modification; answers [`Outcome::Modification`].
    ModifyVolume {
        /// The volume.
        volume: VolumeId,
        /// Size.
        size_gib: u32,
        /// Type.
        volume_type: VolumeType,
        /// IOPS (gp3, io1, io2).
        iops: Option<u32>,
        /// Throughput in MiB/s (gp3).
        throughput: Option<u32>,
    },
    /// Attach a volume.
    AttachVolume {
        /// The volume.
        volume: VolumeId,
        /// The instance.
        instance: InstanceId,
        /// Device name.
        device: String,
    },
    /// Detach a volume from an instance.
    DetachVolume {
        /// The volume.
        volume: VolumeId,
        /// The instance.
        instance: InstanceId,
    },
    /// Delete a volume.
    DeleteVolume {
        /// The volume.
        volume: VolumeId,
    },
    /// Take a snapshot; answers [`Outcome::Snapshot`].
    CreateSnapshot {
        /// The volume.
        volume: VolumeId,
        /// Description.
        description: String,
        /// Tags.
        tags: Tags,
    },
    /// Delete a snapshot.
    DeleteSnapshot {
        /// The snapshot.
        snapshot: SnapshotId,
    },
    /// Create a classic balancer; answers [`Outcome::Balancer`].
    CreateBalancer {
        /// Name.
        name: BalancerName,
        /// Internet-facing or internal (in a VPC).
        scheme: Scheme,
        /// Zones (without subnets).
        zones: Vec<Zone>,
        /// Subnets (in a VPC; then no zones).
        subnets: Vec<SubnetId>,
        /// Security groups (in a VPC).
        groups: Vec<GroupId>,
        /// Listeners (with the certificates of HTTPS and SSL ones).
        listeners: Vec<Listener>,
        /// Tags.
        tags: Tags,
    },
    /// Set a classic balancer's connection draining (0: off) and
    /// cross-zone balancing (ModifyLoadBalancerAttributes).
    ModifyBalancerAttributes {
        /// Name.
        name: BalancerName,
        /// Draining timeout in seconds; 0 turns draining off.
        drain_secs: u32,
        /// Cross-zone balancing.
        cross_zone: bool,
    },
    /// Set a classic balancer's security groups
    /// (ApplySecurityGroupsToLoadBalancer).
    ApplyBalancerGroups {
        /// Name.
        name: BalancerName,
        /// The groups.
        groups: Vec<GroupId>,
    },
    /// Set the health check.
    ConfigureHealthCheck {
        /// Name.
        name: BalancerName,
        /// Health check.
        health_check: HealthCheck,
    },
    /// Add listeners.
    CreateListeners {
        /// Name.
        name: BalancerName,
        /// Listeners.
        listeners: Vec<Listener>,
    },
    /// Remove listeners by balancer port.
    DeleteListeners {
        /// Name.
        name: BalancerName,
        /// Ports.
        ports: Vec<u16>,
    },
    /// Enable zones.
    EnableZones {
        /// Name.
        name: BalancerName,
        /// Zones.
        zones: Vec<Zone>,
    },
    /// Disable zones.
    DisableZones {
        /// Name.
        name: BalancerName,
        /// Zones.
        zones: Vec<Zone>,
    },
    /// Attach a balancer to subnets.
    AttachBalancerToSubnets {
        /// Name.
        name: BalancerName,
        /// Subnets.
        subnets: Vec<SubnetId>,
    },
    /// Detach a balancer from subnets.
    DetachBalancerFromSubnets {
        /// Name.
        name: BalancerName,
        /// Subnets.
        subnets: Vec<SubnetId>,
    },
    /// Register instances.
    RegisterInstances {
        /// Name.
        name: BalancerName,
        /// Instances.
        ids: Vec<InstanceId>,
    },
    /// Deregister instances.
    DeregisterInstances {
        /// Name.
        name: BalancerName,
        /// Instances.
        ids: Vec<InstanceId>,
    },
    /// Delete a classic balancer.
    DeleteBalancer {
        /// Name.
        name: BalancerName,
    },
    /// Create an application or network balancer (elbv2
    /// CreateLoadBalancer); answers [`Outcome::Balancer`]. Without
    /// subnets, the backend uses the default subnet of each zone.
    CreateLoadBalancerV2 {
        /// Name.
        name: BalancerName,
        /// Application or network.
        kind: BalancerType,
        /// Internet-facing or internal.
        scheme: Scheme,
        /// Zones (default VPC; then no subnets).
        zones: Vec<Zone>,
        /// Subnets (in a VPC).
        subnets: Vec<SubnetId>,
        /// Security groups (application balancers).
        groups: Vec<GroupId>,
        /// Tags.
        tags: Tags,
    },
    /// Set an elbv2 balancer's security groups (SetSecurityGroups).
    SetSecurityGroupsV2 {
        /// Name.
        name: BalancerName,
        /// The groups.
        groups: Vec<GroupId>,
    },
    /// Set the whole list of an elbv2 balancer's subnets (SetSubnets);
    /// zones mean their default subnets.
    SetSubnetsV2 {
        /// Name.
        name: BalancerName,
        /// Zones (default VPC).
        zones: Vec<Zone>,
        /// Subnets (in a VPC).
        subnets: Vec<SubnetId>,
    },
    /// Delete an elbv2 balancer (and with it its listeners).
    DeleteLoadBalancerV2 {
        /// Name.
        name: BalancerName,
    },
    /// Create a target group of instances in the balancer's VPC
    /// (CreateTargetGroup; the same name and settings again answer the
    /// existing group, as AWS does).
    CreateTargetGroup {
        /// Name.
        name: TargetGroupName,
        /// The balancer it serves (whose VPC it is made in).
        balancer: BalancerName,
        /// The protocol its targets speak.
        protocol: ListenerProtocol,
        /// The port its targets listen on.
        port: u16,
        /// Its health check.
        health_check: TargetHealthCheck,
        /// Tags.
        tags: Tags,
    },
    /// Set a target group's health check (ModifyTargetGroup).
    ModifyTargetGroup {
        /// Name.
        name: TargetGroupName,
        /// Health check.
        health_check: TargetHealthCheck,
    },
    /// Set a target group's deregistration delay
    /// (ModifyTargetGroupAttributes).
    ModifyTargetGroupAttributes {
        /// Name.
        name: TargetGroupName,
        /// Seconds a deregistered target drains.
        deregistration_delay_secs: u32,
    },
    /// Delete a target group.
    DeleteTargetGroup {
        /// Name.
        name: TargetGroupName,
    },
    /// Add a listener forwarding to a target group (CreateListener).
    CreateListenerV2 {
        /// The balancer.
        balancer: BalancerName,
        /// Port, protocol and certificate.
        listener: Listener,
        /// Where it forwards.
        target_group: TargetGroupName,
    },
    /// Change the listener on a port in place (ModifyListener).
    ModifyListenerV2 {
        /// The balancer.
        balancer: BalancerName,
        /// Port, protocol and certificate.
        listener: Listener,
        /// Where it forwards.
        target_group: TargetGroupName,
    },
    /// Remove the listener on a port (DeleteListener).
    DeleteListenerV2 {
        /// The balancer.
        balancer: BalancerName,
        /// Its port.
        port: u16,
    },
    /// Register instances with a target group.
    RegisterTargets {
        /// The target group.
        target_group: TargetGroupName,
        /// Instances.
        ids: Vec<InstanceId>,
    },
    /// Deregister instances from a target group (they drain).
    DeregisterTargets {
        /// The target group.
        target_group: TargetGroupName,
        /// Instances.
        ids: Vec<InstanceId>,
    },
    /// Create a bucket.
    CreateBucket {
        /// Name.
        name: BucketName,
        /// Tags.
        tags: Tags,
    },
    /// Set public read access.
    SetBucketPublicRead {
        /// Name.
        name: BucketName,
        /// Public read.
        public_read: bool,
    },
    /// Delete an (empty) bucket.
    DeleteBucket {
        /// Name.
        name: BucketName,
    },
    /// Create a distribution; answers [`Outcome::Distribution`]. The same
    /// caller reference returns the same distribution.
    CreateDistribution {
        /// Caller reference.
        caller_reference: String,
        /// Settings.
        config: DistributionConfig,
        /// Tags.
        tags: Tags,
    },
    /// Change a distribution's settings.
    UpdateDistribution {
        /// The distribution.
        id: DistributionId,
        /// Settings.
        config: DistributionConfig,
    },
    /// Delete a disabled, deployed distribution.
    DeleteDistribution {
        /// The distribution.
        id: DistributionId,
    },
    // origin access and content (issue 11 B)
    /// Create an origin access control (names are unique per account).
    CreateOriginAccessControl {
        /// Its name.
        name: String,
        /// Its settings.
        settings: OriginAccessSettings,
    },
    /// Set an origin access control's name and settings.
    UpdateOriginAccessControl {
        /// The control.
        id: String,
        /// Its name.
        name: String,
        /// Its settings.
        settings: OriginAccessSettings,
    },
    /// Delete an origin access control no distribution uses.
    DeleteOriginAccessControl {
        /// The control.
        id: String,
    },
    /// Write the statement `sid` letting a distribution read a bucket
    /// into the bucket's policy, keeping its other statements.
    PutCdnGrant {
        /// The bucket.
        bucket: BucketName,
        /// The statement's Sid.
        sid: String,
        /// The distribution.
        distribution: DistributionId,
    },
    /// Remove the statement `sid` from a bucket's policy (the policy goes
    /// when nothing is left).
    RemoveCdnGrant {
        /// The bucket.
        bucket: BucketName,
        /// The statement's Sid.
        sid: String,
    },
    /// Replace a bucket's whole policy (a JSON document).
    PutBucketPolicy {
        /// The bucket.
        bucket: BucketName,
        /// The policy.
        policy: String,
    },
    /// Upload one object in a single PUT.
    PutObject {
        /// The bucket.
        bucket: BucketName,
        /// Its key.
        key: String,
        /// Its bytes.
        body: Body,
        /// Its `Content-Type`.
        content_type: String,
        /// Its `Cache-Control`.
        cache_control: Option<String>,
    },
    /// Delete objects, at most 1000 keys a call.
    DeleteObjects {
        /// The bucket.
        bucket: BucketName,
        /// Their keys.
        keys: Vec<String>,
    },
    /// Invalidate paths of a distribution; answers
    /// [`Outcome::Invalidation`]. The same caller reference answers the
    /// same invalidation.
    CreateInvalidation {
        /// The distribution.
        id: DistributionId,
        /// Caller reference.
        caller_reference: String,
        /// Paths (`/KEY`, `/*`).
        paths: Vec<String>,
    },
    /// Create a public hosted zone and tag it; answers [`Outcome::Zone`].
    /// The same caller reference answers the same zone.
    CreateHostedZone {
        /// Its domain.
        domain: String,
        /// Caller reference.
        caller_reference: String,
        /// Tags.
        tags: Tags,
    },
    /// Delete a hosted zone holding only its SOA and NS records.
    DeleteHostedZone {
        /// The zone.
        id: String,
    },
    /// Apply a change batch to a zone's record sets, all or nothing;
    /// answers [`Outcome::Change`].
    ChangeRecordSets {
        /// The zone.
        zone: String,
        /// The changes, in order.
        changes: Vec<RecordChange>,
    },
    /// Request an ACM certificate validated by DNS, tagged; answers
    /// [`Outcome::Certificate`]. The same token (within an hour) answers
    /// the same certificate.
    RequestCertificate {
        /// Its region.
        region: String,
        /// Its domains, the primary first.
        domains: Vec<String>,
        /// The idempotency token.
        token: String,
        /// Tags.
        tags: Tags,
    },
    /// Delete a certificate nothing uses.
    DeleteCertificate {
        /// Its region.
        region: String,
        /// Its ARN.
        arn: String,
    },
}

impl Op {
    /// The service (and, for EC2, the part of it) an operation belongs
    /// to: each backend routes an operation to that service's file.
    pub fn service(&self) -> Service {
        match self {
            Op::CreateKeyPair { .. }
            | Op::DeleteKeyPair { .. }
            | Op::CreateGroup { .. }
            | Op::AuthorizeIngress { .. }
            | Op::RevokeIngress { .. }
            | Op::DeleteGroup { .. } => Service::Ec2Network,
            Op::CreateVpc { .. }
            | Op::ModifyVpcAttribute { .. }
            | Op::DeleteVpc { .. }
            | Op::CreateSubnet { .. }
            | Op::ModifySubnetAttribute { .. }
            | Op::DeleteSubnet { .. }
            | Op::CreateInternetGateway { .. }
            | Op::AttachInternetGateway { .. }
            | Op::DetachInternetGateway { .. }
            | Op::DeleteInternetGateway { .. }
            | Op::CreateRouteTable { .. }
            | Op::CreateRoute { .. }
            | Op::AssociateRouteTable { .. }
            | Op::DisassociateRouteTable { .. }
            | Op::DeleteRouteTable { .. } => Service::Vpc,
            Op::RunInstances { .. }
            | Op::TerminateInstances { .. }
            | Op::SetInstanceGroups { .. }
            | Op::ModifyInstanceMetadataOptions { .. }
            | Op::AssociateIamInstanceProfile { .. }
            | Op::ReplaceIamInstanceProfileAssociation { .. }
            | Op::DisassociateIamInstanceProfile { .. } => Service::Ec2Instances,
            Op::CreateVolume { .. }
            | Op::ModifyVolume { .. }
            | Op::AttachVolume { .. }
            | Op::DetachVolume { .. }
            | Op::DeleteVolume { .. }
            | Op::CreateSnapshot { .. }
            | Op::DeleteSnapshot { .. } => Service::Ebs,
            Op::CreateTags { .. } | Op::DeleteTags { .. } => Service::Tagging,
            Op::CreateBalancer { .. }
            | Op::ConfigureHealthCheck { .. }
            | Op::CreateListeners { .. }
            | Op::DeleteListeners { .. }
            | Op::EnableZones { .. }
            | Op::DisableZones { .. }
            | Op::AttachBalancerToSubnets { .. }
            | Op::DetachBalancerFromSubnets { .. }
            | Op::RegisterInstances { .. }
            | Op::DeregisterInstances { .. }
            | Op::ModifyBalancerAttributes { .. }
            | Op::ApplyBalancerGroups { .. }
            | Op::DeleteBalancer { .. } => Service::Elb,
            Op::CreateLoadBalancerV2 { .. }
            | Op::SetSecurityGroupsV2 { .. }
            | Op::SetSubnetsV2 { .. }
            | Op::DeleteLoadBalancerV2 { .. }
            | Op::CreateTargetGroup { .. }
            | Op::ModifyTargetGroup { .. }
            | Op::ModifyTargetGroupAttributes { .. }
            | Op::DeleteTargetGroup { .. }
            | Op::CreateListenerV2 { .. }
            | Op::ModifyListenerV2 { .. }
            | Op::DeleteListenerV2 { .. }
            | Op::RegisterTargets { .. }
            | Op::DeregisterTargets { .. } => Service::Elbv2,
            Op::CreateBucket { .. }
            | Op::SetBucketPublicRead { .. }
            | Op::DeleteBucket { .. }
            | Op::PutCdnGrant { .. }
            | Op::RemoveCdnGrant { .. }
            | Op::PutBucketPolicy { .. }
            | Op::PutObject { .. }
            | Op::DeleteObjects { .. } => Service::S3,
            Op::CreateDistribution { .. }
            | Op::UpdateDistribution { .. }
            | Op::DeleteDistribution { .. }
            | Op::CreateOriginAccessControl { .. }
            | Op::UpdateOriginAccessControl { .. }
            | Op::DeleteOriginAccessControl { .. }
            | Op::CreateInvalidation { .. } => Service::CloudFront,
            Op::CreateHostedZone { .. }
            | Op::DeleteHostedZone { .. }
            | Op::ChangeRecordSets { .. } => Service::Route53,
            Op::RequestCertificate { .. } | Op::DeleteCertificate { .. } => Service::Acm,
        }
    }

    /// The operation's name as the AWS API calls it, for errors and stats.
    pub fn name(&self) -> &'static str {
        match self {
            Op::CreateKeyPair { .. } => "ImportKeyPair",
            Op::DeleteKeyPair { .. } => "DeleteKeyPair",
            Op::CreateVpc { .. } => "CreateVpc",
            Op::ModifyVpcAttribute { .. } => "ModifyVpcAttribute",
            Op::DeleteVpc { .. } => "DeleteVpc",
            Op::CreateSubnet { .. } => "CreateSubnet",
            Op::ModifySubnetAttribute { .. } => "ModifySubnetAttribute",
            Op::DeleteSubnet { .. } => "DeleteSubnet",
            Op::CreateInternetGateway { .. } => "CreateInternetGateway",
            Op::AttachInternetGateway { .. } => "AttachInternetGateway",
            Op::DetachInternetGateway { .. } => "DetachInternetGateway",
            Op::DeleteInternetGateway { .. } => "DeleteInternetGateway",
            Op::CreateRouteTable { .. } => "CreateRouteTable",
            Op::CreateRoute { .. } => "CreateRoute",
            Op::AssociateRouteTable { .. } => "AssociateRouteTable",
            Op::DisassociateRouteTable { .. } => "DisassociateRouteTable",
            Op::DeleteRouteTable { .. } => "DeleteRouteTable",
            Op::CreateGroup { .. } => "CreateSecurityGroup",
            Op::AuthorizeIngress { .. } => "AuthorizeSecurityGroupIngress",
            Op::RevokeIngress { .. } => "RevokeSecurityGroupIngress",
            Op::DeleteGroup { .. } => "DeleteSecurityGroup",
            Op::CreateTags { .. } => "CreateTags",
            Op::DeleteTags { .. } => "DeleteTags",
            Op::RunInstances { .. } => "RunInstances",
            Op::TerminateInstances { .. } => "TerminateInstances",
            Op::SetInstanceGroups { .. } => "ModifyInstanceAttribute",
            Op::ModifyInstanceMetadataOptions { .. } => "ModifyInstanceMetadataOptions",
            Op::AssociateIamInstanceProfile { .. } => "AssociateIamInstanceProfile",
            Op::ReplaceIamInstanceProfileAssociation { .. } => {
                "ReplaceIamInstanceProfileAssociation"
            }
            Op::DisassociateIamInstanceProfile { .. } => "DisassociateIamInstanceProfile",
            Op::CreateVolume { .. } => "CreateVolume",
            Op::ModifyVolume { .. } => "ModifyVolume",
            Op::AttachVolume { .. } => "AttachVolume",
            Op::DetachVolume { .. } => "DetachVolume",
            Op::DeleteVolume { .. } => "DeleteVolume",
            Op::CreateSnapshot { .. } => "CreateSnapshot",
            Op::DeleteSnapshot { .. } => "DeleteSnapshot",
            Op::CreateBalancer { .. } => "CreateLoadBalancer",
            Op::ConfigureHealthCheck { .. } => "ConfigureHealthCheck",
            Op::CreateListeners { .. } => "CreateLoadBalancerListeners",
            Op::DeleteListeners { .. } => "DeleteLoadBalancerListeners",
            Op::EnableZones { .. } => "EnableAvailabilityZonesForLoadBalancer",
            Op::DisableZones { .. } => "DisableAvailabilityZonesForLoadBalancer",
            Op::AttachBalancerToSubnets { .. } => "AttachLoadBalancerToSubnets",
            Op::DetachBalancerFromSubnets { .. } => "DetachLoadBalancerFromSubnets",
            Op::RegisterInstances { .. } => "RegisterInstancesWithLoadBalancer",
            Op::DeregisterInstances { .. } => "DeregisterInstancesFromLoadBalancer",
            Op::DeleteBalancer { .. } => "DeleteLoadBalancer",
            Op::ModifyBalancerAttributes { .. } => "ModifyLoadBalancerAttributes",
            Op::ApplyBalancerGroups { .. } => "ApplySecurityGroupsToLoadBalancer",
            Op::CreateLoadBalancerV2 { .. } => "CreateLoadBalancer",
            Op::SetSecurityGroupsV2 { .. } => "SetSecurityGroups",
            Op::SetSubnetsV2 { .. } => "SetSubnets",
            Op::DeleteLoadBalancerV2 { .. } => "DeleteLoadBalancer",
            Op::CreateTargetGroup { .. } => "CreateTargetGroup",
            Op::ModifyTargetGroup { .. } => "ModifyTargetGroup",
            Op::ModifyTargetGroupAttributes { .. } => "ModifyTargetGroupAttributes",
            Op::DeleteTargetGroup { .. } => "DeleteTargetGroup",
            Op::CreateListenerV2 { .. } => "CreateListener",
            Op::ModifyListenerV2 { .. } => "ModifyListener",
            Op::DeleteListenerV2 { .. } => "DeleteListener",
            Op::RegisterTargets { .. } => "RegisterTargets",
            Op::DeregisterTargets { .. } => "DeregisterTargets",
            Op::CreateBucket { .. } => "CreateBucket",
            Op::SetBucketPublicRead { .. } => "PutBucketPolicy",
            Op::DeleteBucket { .. } => "DeleteBucket",
            Op::CreateDistribution { .. } => "CreateDistributionWithTags",
            Op::UpdateDistribution { .. } => "UpdateDistribution",
            Op::DeleteDistribution { .. } => "DeleteDistribution",
            Op::CreateOriginAccessControl { .. } => "CreateOriginAccessControl",
            Op::UpdateOriginAccessControl { .. } => "UpdateOriginAccessControl",
            Op::DeleteOriginAccessControl { .. } => "DeleteOriginAccessControl",
            Op::PutCdnGrant { .. } | Op::RemoveCdnGrant { .. } | Op::PutBucketPolicy { .. } => {
                "PutBucketPolicy"
            }
            Op::PutObject { .. } => "PutObject",
            Op::DeleteObjects { .. } => "DeleteObjects",
            Op::CreateInvalidation { .. } => "CreateInvalidation",
            Op::CreateHostedZone { .. } => "CreateHostedZone",
            Op::DeleteHostedZone { .. } => "DeleteHostedZone",
            Op::ChangeRecordSets { .. } => "ChangeResourceRecordSets",
            Op::RequestCertificate { .. } => "RequestCertificate",
            Op::DeleteCertificate { .. } => "DeleteCertificate",
        }
    }

    /// Whether this operation removes something, so that "not found" means
    /// it is already done.
    pub fn is_delete(&self) -> bool {
        matches!(
            self,
            Op::DeleteKeyPair { .. }
                | Op::DeleteVpc { .. }
                | Op::DeleteSubnet { .. }
                | Op::DetachInternetGateway { .. }
                | Op::DeleteInternetGateway { .. }
                | Op::DisassociateRouteTable { .. }
                | Op::DeleteRouteTable { .. }
                | Op::DeleteGroup { .. }
                | Op::TerminateInstances { .. }
                | Op::DeleteVolume { .. }
                | Op::DeleteSnapshot { .. }
                | Op::DeleteBalancer { .. }
                | Op::DeleteLoadBalancerV2 { .. }
                | Op::DeleteTargetGroup { .. }
                | Op::DeleteListenerV2 { .. }
                | Op::DeleteBucket { .. }
                | Op::DeleteDistribution { .. }
                | Op::DeleteHostedZone { .. }
                | Op::DeleteOriginAccessControl { .. }
                | Op::DeleteObjects { .. }
        )
    }
}
/// What RunInstances sends, borrowed from an [`Op::RunInstances`]: the
/// one shape both backends launch from ([`Op::launch`]).
pub(crate) struct Launch<'a> {
    pub image: &'a str,
    pub instance_type: &'a str,
    pub key_name: Option<&'a str>,
    pub groups: &'a [GroupId],
    pub user_data: &'a str,
    pub zone: &'a Zone,
    pub subnet: Option<&'a SubnetId>,
    pub public_ip: Option<bool>,
    pub private_ip: Option<std::net::Ipv4Addr>,
    pub count: u32,
    pub tags: &'a Tags,
    pub client_token: &'a str,
    pub instance_profile: Option<&'a InstanceProfile>,
    pub metadata: MetadataOptions,
    pub root_volume: Option<&'a PlannedRootVolume>,
}

/// What CreateVolume sends, borrowed from an [`Op::CreateVolume`]
/// ([`Op::new_volume`]).
pub(crate) struct NewVolume<'a> {
    pub zone: &'a Zone,
    pub size_gib: u32,
    pub volume_type: VolumeType,
    pub snapshot: Option<&'a SnapshotId>,
    pub encrypted: bool,
    pub kms_key: Option<&'a KmsKey>,
    pub iops: Option<u32>,
    pub throughput: Option<u32>,
    pub tags: &'a Tags,
    pub client_token: &'a str,
}

impl Op {
    /// The launch an [`Op::RunInstances`] asks for; `None` for any other
    /// operation.
    pub(crate) fn launch(&self) -> Option<Launch<'_>> {
        let Op::RunInstances {
            image,
            instance_type,
            key_name,
            groups,
            user_data,
            zone,
            subnet,
            public_ip,
            private_ip,
            count,
            tags,
            client_token,
            instance_profile,
            metadata,
            root_volume,
        } = self
        else {
            return None;
        };
        Some(Launch {
            image,
            instance_type,
            key_name: key_name.as_ref().map(KeyName::as_str),
            groups,
            user_data,
            zone,
            subnet: subnet.as_ref(),
            public_ip: *public_ip,
            private_ip: *private_ip,
            count: *count,
            tags,
            client_token,
            instance_profile: instance_profile.as_ref(),
            metadata: *metadata,
            root_volume: root_volume.as_ref(),
        })
    }

    /// The volume an [`Op::CreateVolume`] asks for; `None` for any other
    /// operation.
    pub(crate) fn new_volume(&self) -> Option<NewVolume<'_>> {
        let Op::CreateVolume {
            zone,
            size_gib,
            volume_type,
            snapshot,
            encrypted,
            kms_key,
            iops,
            throughput,
            tags,
            client_token,
        } = self
        else {
            return None;
        };
        Some(NewVolume {
            zone,
            size_gib: *size_gib,
            volume_type: *volume_type,
            snapshot: snapshot.as_ref(),
            encrypted: *encrypted,
            kms_key: kms_key.as_ref(),
            iops: *iops,
            throughput: *throughput,
            tags,
            client_token,
        })
    }
}

/// Where an [`Op`] goes: the service, with EC2 in parts as AWS's own
/// documentation splits it (networking and security groups, instances,
/// EBS). Tags are set through each service's own calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// EC2 key pairs and security groups.
    Ec2Network,
    /// EC2 networking: VPCs, subnets, internet gateways, route tables.
    Vpc,
    /// EC2 instances and their in-place options.
    Ec2Instances,
    /// EBS volumes and snapshots.
    Ebs,
    /// Tags of a resource of any service.
    Tagging,
    /// Classic Elastic Load Balancing.
    Elb,
    /// Elastic Load Balancing v2: application and network balancers,
    /// target groups, listeners.
    Elbv2,
    /// S3 buckets.
    S3,
    /// CloudFront distributions.
    CloudFront,
    /// Route 53 hosted zones and records.
    Route53,
    /// ACM certificates.
    Acm,
}

/// The error a backend gives for an operation routed to the wrong
/// service's handler: a bug in converge, reported rather than a panic.
pub(crate) fn misrouted(op: &Op, handler: &str) -> CloudError {
    CloudError::new(
        ErrorKind::Invalid,
        op.name(),
        "Misrouted",
        format!(
            "converge routed {} to the {handler} handler (a bug)",
            op.name()
        ),
    )
}

/// A VPC attribute converge turns on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VpcAttribute {
    /// `EnableDnsSupport`: the Amazon DNS server answers in the VPC.
    DnsSupport,
    /// `EnableDnsHostnames`: instances get public DNS host names.
    DnsHostnames,
}

/// An instance as RunInstances answers it: pending, but with its ID and
/// private address (both clouds give the address in the answer), so a
/// launch whose user data needs the address can start before this one
/// runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launched {
    /// Its ID.
    pub id: InstanceId,
    /// Its private address, when the answer gives one.
    pub private_ip: Option<std::net::Ipv4Addr>,
}

/// What an operation produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done; nothing to report.
    Done,
    /// A VPC was created.
    Vpc(VpcId),
    /// A subnet was created.
    Subnet(SubnetId),
    /// An internet gateway was created.
    Gateway(GatewayId),
    /// A route table was created (or found by its client token).
    RouteTable(RouteTableId),
    /// A subnet was associated with a route table.
    Association(RouteTableAssociationId),
    /// A security group was created.
    Group(GroupId),
    /// Instances were launched (or found by their client token), with
    /// what the answer already says of each.
    Instances(Vec<Launched>),
    /// A volume was created.
    Volume(VolumeId),
    /// A volume modification started (at this time, by the cloud's clock).
    Modification {
        /// When it started.
        started_at: Timestamp,
    },
    /// A snapshot was started.
    Snapshot(SnapshotId),
    /// A balancer was created.
    Balancer {
        /// Its DNS name.
        dns_name: String,
        /// The hosted zone of its DNS name.
        zone_id: String,
    },
    /// A distribution was created.
    Distribution {
        /// Its ID.
        id: DistributionId,
        /// Its domain name.
        domain_name: String,
    },
    /// A hosted zone was created (or found by its caller reference).
    Zone {
        /// Its ID.
        id: String,
        /// Its name servers.
        name_servers: Vec<String>,
    },
    /// A change batch was accepted: its ID, for GetChange.
    Change(String),
    /// A certificate was requested (or found by its token): its ARN.
    Certificate(String),
    /// An invalidation was created (or found by its caller reference):
    /// its ID, for GetInvalidation.
    Invalidation(String),
}

/// An object's bytes, shown by their size only.
#[derive(Clone, PartialEq, Eq)]
pub struct Body(pub Vec<u8>);

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Body({} bytes)", self.0.len())
    }
}

/// What kind of failure a cloud error is, which decides whether retrying
/// can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Too many requests: retry with backoff.
    Throttled,
    /// The resource does not exist (or is not visible yet).
    NotFound,
    /// It exists already (a create that raced or was retried).
    AlreadyExists,
    /// The resource is not in a state that allows this yet (in use,
    /// attaching, not deployed): retry later.
    InvalidState,
    /// The request is wrong (bad parameter, unknown image): retrying
    /// cannot fix it.
    Invalid,
    /// Not allowed: retrying cannot fix it.
    AccessDenied,
    /// A transient service or network failure: retry.
    Unavailable,
    /// The world moved since it was observed: the call's target is gone or
    /// in a state it will not leave (an instance terminated or shutting
    /// down). Not retried within the call; the reconcile loop re-observes
    /// and re-plans at its next pass, with no backoff
    /// (docs/failure-handling.md).
    Stale,
}

/// An error from the cloud, naming the operation and carrying the
/// service's code and message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct CloudError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The operation that failed (`RunInstances`).
    pub operation: &'static str,
    /// The service's error code (`InvalidAMIID.NotFound`).
    pub code: String,
    /// The service's message.
    pub message: String,
}

impl fmt::Display for CloudError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed: {}: {}",
            self.operation, self.code, self.message
        )
    }
}

impl CloudError {
    /// Builds an error.
    pub fn new(
        kind: ErrorKind,
        operation: &'static str,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            operation,
            code: code.into(),
            message: message.into(),
        }
    }

    /// What to try, for the errors whose fix lies outside converge
    /// (credentials, permissions, the network), as the AWS CLI's
    /// messages suggest; shown under the error by the command line.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self.code.as_str() {
            "NoCredentials" => {
                "configure credentials: `aws configure`, `aws sso login --profile NAME` with \
                 --profile NAME (or AWS_PROFILE), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            }
            "InvalidConfiguration" => {
                "check ~/.aws/config and ~/.aws/credentials for the profile in use \
                 (--profile or AWS_PROFILE)"
            }
            "ExpiredToken"
            | "ExpiredTokenException"
            | "RequestExpired"
            | "TokenRefreshRequired" => {
                "the session has expired: refresh it (`aws sso login`, or new temporary \
                 credentials), and check the machine's clock"
            }
            "AuthFailure"
            | "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "UnrecognizedClientException"
            | "InvalidAccessKeyId" => {
                "the credentials are not valid for this account: check the access key and \
                 secret, or the profile in use"
            }
            "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" | "Forbidden" => {
                "the identity in use lacks a permission: docs/aws.md#permissions lists the \
                 actions converge calls; `aws sts get-caller-identity` shows who you are"
            }
            "OptInRequired" => "the account is not subscribed to this service or region",
            "InvalidProxyUrl" => "fix or unset the proxy variable named above",
            "DispatchFailure" | "Timeout" => {
                "AWS could not be reached: check the network, the region (--region), and \
                 HTTPS_PROXY / NO_PROXY if a proxy is needed"
            }
            _ => return None,
        })
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Throttled | ErrorKind::InvalidState | ErrorKind::Unavailable
        )
    }
}

/// An error and its causes, each one's message once, joined by `: `, as
/// the AWS CLI prints them (the AWS backend's errors, the loop's HTTP
/// client's); never a `Debug` dump (the SDK's own
/// `DisplayErrorContext` ends with one: headers, bodies and all).
pub(crate) fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let line = s.to_string();
        if !line.is_empty() && !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = s.source();
    }
    text
}

/// Makes an identifier from text in a cloud's answer. A malformed one is
/// the cloud's fault, reported like an answer missing a field (retryable,
/// as the service may answer better next time), never a panic.
pub(crate) fn answered_id<T>(
    operation: &'static str,
    text: impl Into<String>,
) -> Result<T, CloudError>
where
    T: TryFrom<String, Error = IdError>,
{
    T::try_from(text.into()).map_err(|e| {
        CloudError::new(
            ErrorKind::Unavailable,
            operation,
            "MalformedId",
            e.to_string(),
        )
    })
}

/// The operations every backend offers.
#[async_trait]
pub trait Cloud: Send + Sync {
    /// The backend's name (`local`, `aws`).
    fn name(&self) -> &'static str;

    /// Everything the stack owns, found by its tags.
    async fn observe(&self, stack: &ResourceName) -> Result<Observed, CloudError>;

    /// [`observe`](Self::observe), what fails retried by `policy`. A
    /// backend whose observation is many calls retries each part on its
    /// own (the AWS backend: each describe or list), so that one throttled
    /// call is sent again rather than the whole observation: under a
    /// sustained error rate (the SDK's retry quota spent), redoing 30
    /// calls for one failure would rarely see them all succeed, and would
    /// multiply the load on an API that is already refusing it. The
    /// default retries the whole observation, right for a backend that
    /// observes in one step.
    async fn observe_retrying(
        &self,
        stack: &ResourceName,
        policy: &RetryPolicy,
    ) -> Result<Observed, CloudError> {
        policy.run("observe", false, || self.observe(stack)).await
    }

    /// Carries out one operation.
    async fn act(&self, op: &Op) -> Result<Outcome, CloudError>;

    /// The given instances, in one call (for waits). Unknown IDs are left
    /// out.
    async fn instances(&self, ids: &[InstanceId]) -> Result<Vec<ObservedInstance>, CloudError>;

    /// The given subnets (of an existing VPC a Network names), in one
    /// call. Unknown IDs are left out.
    async fn subnets(&self, ids: &[SubnetId]) -> Result<Vec<ObservedSubnet>, CloudError>;

    /// The given volumes, in one call. Unknown IDs are left out.
    async fn volumes(&self, ids: &[VolumeId]) -> Result<Vec<ObservedVolume>, CloudError>;

    /// One snapshot, if it exists.
    async fn snapshot(&self, id: &SnapshotId) -> Result<Option<ObservedSnapshot>, CloudError>;

    /// Whether `balancer_members` shows a classic balancer's members as
    /// draining until their draining time has passed (the local cloud
    /// does; AWS's DescribeInstanceHealth drops them at once, so the
    /// executor waits the draining time out).
    fn tracks_classic_draining(&self) -> bool {
        false
    }

    /// A balancer's members and their health: a classic balancer's
    /// instances (DescribeInstanceHealth), or each target of an elbv2
    /// balancer once, in the worst state it has in any of its target
    /// groups (DescribeTargetGroups, DescribeTargetHealth), draining ones
    /// included.
    async fn balancer_members(
        &self,
        name: &BalancerName,
        kind: BalancerType,
    ) -> Result<Vec<Member>, CloudError>;

    /// One distribution, if it exists.
    async fn distribution(
        &self,
        id: &DistributionId,
    ) -> Result<Option<ObservedDistribution>, CloudError>;

    /// The values of these SSM parameters (GetParameters, at most 10
    /// names a call: backends batch). Names SSM does not know are left
    /// out, as GetParameters lists them apart (`InvalidParameters`).
    async fn parameters(
        &self,
        names: &[ParameterName],
    ) -> Result<BTreeMap<ParameterName, String>, CloudError>;

    /// These images' root devices, in one DescribeImages call. Images EC2
    /// does not know are left out.
    async fn images(&self, ids: &[ImageId])
    -> Result<BTreeMap<ImageId, ObservedImage>, CloudError>;

    /// The stack's hosted zones (by their tags) and the public zones of
    /// these domains, each with its record sets: ListHostedZones pages,
    /// the zones' tags, and ListResourceRecordSets pages per zone.
    async fn dns_zones(
        &self,
        stack: &ResourceName,
        domains: &[String],
    ) -> Result<Vec<ObservedZone>, CloudError>;

    /// One certificate as DescribeCertificate tells it (its tags too),
    /// if it exists.
    async fn certificate(
        &self,
        region: &str,
        arn: &str,
    ) -> Result<Option<converge_core::acm::ObservedCertificate>, CloudError>;

    /// Whether a change batch is in sync on every Route 53 server
    /// (GetChange answers `INSYNC`).
    async fn change_in_sync(&self, id: &str) -> Result<bool, CloudError>;

    /// A bucket's objects under a prefix (ListObjectsV2, 1000 keys a
    /// page).
    async fn bucket_objects(
        &self,
        bucket: &BucketName,
        prefix: &str,
    ) -> Result<Vec<ObservedObject>, CloudError>;

    /// Whether an invalidation of a distribution has completed
    /// (GetInvalidation answers `Completed`).
    async fn invalidation_completed(
        &self,
        distribution: &DistributionId,
        id: &str,
    ) -> Result<bool, CloudError>;

    /// How far the cloud's clock is ahead of the host's: zero for AWS; the
    /// local cloud's `converge local advance` moves it. Every command
    /// plans for the host's time plus this.
    async fn clock_offset(&self) -> Result<jiff::SignedDuration, CloudError> {
        Ok(jiff::SignedDuration::ZERO)
    }

    /// Requests sent to the cloud's API so far, by service and operation
    /// (for `--stats` and benchmarks). Backends that do not count answer
    /// nothing.
    fn api_calls(&self) -> Vec<ApiCall> {
        Vec::new()
    }
}

/// How many requests one API operation took.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiCall {
    /// The service (`EC2`, `ELB`, `S3`, `CloudFront`).
    pub service: String,
    /// The operation (`DescribeInstances`).
    pub operation: String,
    /// Requests sent, retries included.
    pub calls: u64,
}

/// Now by the cloud's clock: `clock` plus the cloud's offset (the local
/// cloud's `converge local advance`), in whole seconds. Truncated, never
/// rounded up: a moment noted in a DNS cutover mark must not lie ahead of
/// the clock that later checks it.
pub async fn cloud_now(
    cloud: &dyn Cloud,
    clock: &dyn crate::sys::Clock,
) -> Result<jiff::Timestamp, CloudError> {
    let offset = cloud.clock_offset().await?;
    let now = clock
        .now()
        .checked_add(offset)
        .unwrap_or(jiff::Timestamp::MAX);
    let whole = jiff::TimestampRound::new()
        .smallest(jiff::Unit::Second)
        .mode(jiff::RoundMode::Trunc);
    Ok(now.round(whole).unwrap_or(now))
}
