//! The AWS backend: [`Cloud`] over the official AWS SDK for Rust (EC2,
//! classic Elastic Load Balancing and elbv2, S3, CloudFront).
//!
//! Ownership is read from tags only (`converge:stack`, `converge:kind`,
//! `converge:name`): nothing without them is ever changed. Observing a
//! stack is a constant number of batched, tag-filtered, paginated calls
//! per kind (see `docs/aws.md` for the exact cost), run concurrently.
//! Every mutating call is safe to retry: client tokens where AWS has them
//! (RunInstances, CreateVolume, CloudFront's caller reference), ownership
//! checks before creates where a name is the only key (key pairs,
//! balancers, buckets), and a look by tags, without the SDK's retries,
//! before the creates AWS gives no token (VPCs, subnets, internet
//! gateways). Where the emulator used in tests (moto) is laxer
//! than AWS, converge checks AWS's rule itself: a volume attaches only in
//! its own zone, a distribution is deleted only once disabled and deployed.

mod acm;
mod cloudfront;
mod ec2;
mod elb;
mod elbv2;
mod error;
mod faults;
mod hooks;
mod http;
mod origin_access;
mod route53;
mod s3;
mod ssm;
mod vpc;

pub(crate) use error::sdk_error;
pub use faults::{AwsFaults, Fault, FaultCounts};

use crate::cloud::retry::RetryPolicy;
use crate::cloud::{ApiCall, Cloud, CloudError, ErrorKind, Op, Outcome, Service, misrouted};
use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use converge_core::elb::BalancerType;
use converge_core::ids::{
    BalancerName, BucketName, DistributionId, ImageId, InstanceId, ParameterName, ResourceName,
    SnapshotId, SubnetId, VolumeId,
};
use converge_core::observed::{
    Member, Observed, ObservedDistribution, ObservedImage, ObservedInstance, ObservedObject,
    ObservedSnapshot, ObservedSubnet, ObservedVolume,
};
use converge_core::plan::TagTarget;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// How to reach AWS. Everything is optional: the standard chain decides
/// what is not given (environment, shared config and credentials files,
/// SSO, container and instance metadata).
#[derive(Clone, Debug, Default)]
pub struct AwsOptions {
    /// The region (`--region`); else the stack's region.
    pub region: Option<String>,
    /// The shared-config profile (`--profile`); else `AWS_PROFILE` or
    /// `default`.
    pub profile: Option<String>,
    /// A custom endpoint for every service (`--endpoint-url`), e.g. a moto
    /// server or LocalStack; else `AWS_ENDPOINT_URL` if set. S3 then uses
    /// path-style addressing.
    pub endpoint_url: Option<String>,
    /// Attempts per call by the SDK's adaptive retry (default 3); converge
    /// retries what is still throttled on top, with its own backoff.
    pub max_attempts: Option<u32>,
    /// The SDK's first retry backoff (default 1 s). What the SDK's retries
    /// leave failed is retried by converge with the caller's policy: each
    /// part of an observation on its own ([`Cloud::observe_retrying`]),
    /// each call of a step by the executor.
    pub initial_backoff: Option<Duration>,
    /// The SDK's retry mode: adaptive (the default) also slows the client
    /// down after throttling, with a rate limiter that starts cold.
    pub retry_mode: RetryMode,
    /// For tests against a moto server: send `x-moto-account-id` with every
    /// request, so that each test has an account of its own, and sign with
    /// the dummy credentials `testing`/`testing` instead of the standard
    /// chain (moto does not check them), so that a test can never pick up
    /// real ones.
    pub moto_account: Option<String>,
    /// Fault injection for tests: this share of requests (0.0–1.0) is
    /// answered with the service's throttling error without being sent
    /// (short for [`faults`](Self::faults) with throttling only).
    pub inject_throttling: Option<f64>,
    /// Fault injection for tests against a moto server: throttling, 500s,
    /// timeouts and dropped connections, before or after the request
    /// reaches the server (`src/cloud/aws/faults.rs`). Takes precedence
    /// over [`inject_throttling`](Self::inject_throttling).
    pub faults: Option<AwsFaults>,
}

/// How the SDK retries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RetryMode {
    /// Retries with backoff, and a client-side rate limiter that engages
    /// on throttling (the right choice against AWS).
    #[default]
    Adaptive,
    /// Retries with backoff only (for tests that inject throttling, where
    /// the rate limiter would only slow the run down).
    Standard,
}

/// The AWS cloud: one client per service, sharing credentials, region,
/// retry settings and a call counter.
#[derive(Debug)]
pub struct AwsCloud {
    region: String,
    ec2: aws_sdk_ec2::Client,
    elb: aws_sdk_elasticloadbalancing::Client,
    elbv2: aws_sdk_elasticloadbalancingv2::Client,
    /// The S3 client, shared with the stack lease in S3.
    pub(crate) s3: aws_sdk_s3::Client,
    cloudfront: aws_sdk_cloudfront::Client,
    route53: aws_sdk_route53::Client,
    /// ACM in the stack's region.
    acm: aws_sdk_acm::Client,
    /// ACM in us-east-1, where a distribution's certificate must be.
    acm_cdn: aws_sdk_acm::Client,
    ssm: aws_sdk_ssm::Client,
    counter: hooks::CallCounter,
    injected: Option<faults::FaultHandle>,
    /// Buckets known not to be converge's, with their creation time, so
    /// that a long-running process asks for their tags only once.
    foreign_buckets: Mutex<BTreeMap<String, Option<i64>>>,
    /// Distribution ARNs (needed to tag) by ID, learned while observing.
    distribution_arns: Mutex<BTreeMap<DistributionId, String>>,
    /// elbv2 balancer and target group ARNs by name, learned while
    /// observing and creating.
    elbv2_cache: Mutex<elbv2::Elbv2Cache>,
}

impl AwsCloud {
    /// Builds the clients. `default_region` is the stack's region, used
    /// when `options.region` is not set. Fails when no credentials can be
    /// found, before any plan is made.
    pub async fn connect(
        options: AwsOptions,
        default_region: &str,
    ) -> Result<AwsCloud, CloudError> {
        let region = options
            .region
            .clone()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| default_region.to_owned());
        let https = http::https_client()?;
        let faults = options
            .faults
            .clone()
            .or_else(|| options.inject_throttling.map(AwsFaults::throttling))
            .filter(AwsFaults::any);
        let (http, injected) = match faults {
            Some(f) => {
                let t = faults::FaultInjector::new(https, f);
                let injected = t.handle();
                (SharedHttpClient::new(t), Some(injected))
            }
            None => (https, None),
        };
        let mut retry = match options.retry_mode {
            RetryMode::Adaptive => RetryConfig::adaptive(),
            RetryMode::Standard => RetryConfig::standard(),
        }
        .with_max_attempts(options.max_attempts.unwrap_or(3).max(1));
        if let Some(b) = options.initial_backoff {
            retry = retry.with_initial_backoff(b);
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(region.clone()))
            .http_client(http)
            .retry_config(retry)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_attempt_timeout(Duration::from_secs(60))
                    .build(),
            );
        if let Some(p) = options.profile.as_deref().filter(|p| !p.is_empty()) {
            loader = loader.profile_name(p);
        }
        if let Some(u) = options.endpoint_url.as_deref().filter(|u| !u.is_empty()) {
            loader = loader.endpoint_url(u);
        }
        if options.moto_account.is_some() {
            loader = loader.credentials_provider(aws_sdk_ec2::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ));
        }
        let sdk = loader.load().await;
        check_credentials(&sdk).await?;
        let custom_endpoint = sdk.endpoint_url().is_some()
            || std::env::var_os("AWS_ENDPOINT_URL").is_some_and(|v| !v.is_empty());
        let counter = hooks::CallCounter::default();
        let moto = options.moto_account.clone().map(hooks::MotoAccount);

        macro_rules! client {
            ($krate:ident $(, $extra:ident)?) => {{
                let mut b = $krate::config::Builder::from(&sdk).interceptor(counter.clone());
                if let Some(m) = &moto {
                    b = b.interceptor(m.clone());
                }
                $( b = b.$extra(custom_endpoint); )?
                $krate::Client::from_conf(b.build())
            }};
        }
        Ok(AwsCloud {
            region,
            ec2: client!(aws_sdk_ec2),
            elb: client!(aws_sdk_elasticloadbalancing),
            elbv2: client!(aws_sdk_elasticloadbalancingv2),
            s3: client!(aws_sdk_s3, force_path_style),
            cloudfront: client!(aws_sdk_cloudfront),
            route53: client!(aws_sdk_route53),
            acm: client!(aws_sdk_acm),
            acm_cdn: {
                let mut b = aws_sdk_acm::config::Builder::from(&sdk)
                    .interceptor(counter.clone())
                    .region(aws_config::Region::new(converge_core::acm::CDN_REGION));
                if let Some(m) = &moto {
                    b = b.interceptor(m.clone());
                }
                aws_sdk_acm::Client::from_conf(b.build())
            },
            ssm: client!(aws_sdk_ssm),
            counter,
            injected,
            foreign_buckets: Mutex::new(BTreeMap::new()),
            distribution_arns: Mutex::new(BTreeMap::new()),
            elbv2_cache: Mutex::new(elbv2::Elbv2Cache::default()),
        })
    }

    /// The region the clients talk to.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Requests sent so far (every attempt, retries included), by service
    /// and operation, sorted.
    pub fn stats(&self) -> Vec<ApiCall> {
        self.counter.snapshot()
    }

    /// The EC2 client, for tests that shape the account outside any stack
    /// (deleting its default VPC, as a landing zone does).
    pub fn ec2_client_for_tests(&self) -> &aws_sdk_ec2::Client {
        &self.ec2
    }

    /// Forgets the counts (e.g. between the apply and the plan a benchmark
    /// measures).
    pub fn reset_stats(&self) {
        self.counter.reset();
    }

    /// Requests answered with an injected throttling error (see
    /// [`AwsOptions::inject_throttling`]).
    pub fn injected_throttles(&self) -> u64 {
        self.fault_counts()
            .injected
            .get(&Fault::Throttle)
            .copied()
            .unwrap_or(0)
    }

    /// What the fault injector did so far (see [`AwsOptions::faults`]);
    /// all zero without one.
    pub fn fault_counts(&self) -> FaultCounts {
        self.injected
            .as_ref()
            .map(faults::FaultHandle::counts)
            .unwrap_or_default()
    }
}

/// Resolves credentials once, so that a missing or broken configuration is
/// one clear error rather than a failure of the first call.
async fn check_credentials(sdk: &aws_config::SdkConfig) -> Result<(), CloudError> {
    use aws_sdk_ec2::config::ProvideCredentials;
    let Some(provider) = sdk.credentials_provider() else {
        return Err(CloudError::new(
            ErrorKind::AccessDenied,
            "LoadCredentials",
            "NoCredentials",
            "no AWS credentials provider is configured",
        ));
    };
    use aws_credential_types::provider::error::CredentialsError;
    provider
        .provide_credentials()
        .await
        .map(|_| ())
        .map_err(|e| match &e {
            CredentialsError::InvalidConfiguration(_) => CloudError::new(
                ErrorKind::AccessDenied,
                "LoadCredentials",
                "InvalidConfiguration",
                format!(
                    "the AWS configuration is not usable: {}",
                    crate::cloud::causes(&e)
                ),
            ),
            _ => CloudError::new(
                ErrorKind::AccessDenied,
                "LoadCredentials",
                "NoCredentials",
                format!(
                    "Unable to locate credentials. Tried the environment, the shared config \
                     and credentials files, SSO, web identity, and container and instance \
                     metadata; the last said: {}",
                    crate::cloud::causes(&e)
                ),
            ),
        })
}

/// How the parts of an observation are read: each once
/// ([`Cloud::observe`]), or each retried on its own by a policy
/// ([`Cloud::observe_retrying`]), so that a part that failed is read again
/// without the others.
#[derive(Clone, Copy)]
pub(super) struct Reads<'a>(Option<&'a RetryPolicy>);

impl Reads<'_> {
    /// Reads one part: `f` once, or until the policy gives up.
    pub(super) async fn read<T, F, Fut>(&self, what: &str, mut f: F) -> Result<T, CloudError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, CloudError>>,
    {
        match self.0 {
            Some(policy) => policy.run(what, false, f).await,
            None => f().await,
        }
    }
}

impl AwsCloud {
    /// Every part of the stack's observation, at once; each part is a few
    /// calls at most (a describe and its pages, or a list and the tags of
    /// what it found), read as `reads` says.
    async fn observe_parts(
        &self,
        stack: &ResourceName,
        reads: Reads<'_>,
    ) -> Result<Observed, CloudError> {
        let (
            network,
            ec2,
            mut balancers,
            (balancers_v2, stray_target_groups),
            buckets,
            (distributions, origin_access),
            certificates,
        ) = tokio::try_join!(
            self.observe_network(stack, reads),
            self.observe_ec2(stack, reads),
            reads.read("observe classic balancers", || self
                .observe_balancers(stack)),
            reads.read("observe application and network balancers", || {
                self.observe_balancers_v2(stack)
            }),
            reads.read("observe buckets", || self.observe_buckets(stack)),
            reads.read("observe distributions", || self
                .observe_distributions(stack)),
            reads.read("observe certificates", || self.observe_certificates(stack)),
        )?;
        balancers.extend(balancers_v2);
        balancers.sort_by(|a, b| a.name.cmp(&b.name).then(a.kind.cmp(&b.kind)));
        let ec2::Ec2Observed {
            key_pairs,
            security_groups,
            instances,
            volumes,
            snapshots,
        } = ec2;
        let vpc::NetworkObserved {
            default_vpc,
            vpcs,
            subnets,
            gateways,
            route_tables,
        } = network;
        Ok(Observed {
            default_vpc,
            vpcs,
            subnets,
            gateways,
            route_tables,
            key_pairs,
            security_groups,
            instances,
            volumes,
            snapshots,
            balancers,
            stray_target_groups,
            buckets,
            distributions,
            origin_access,
            // Read for the desired state, when planning
            // (`commands::observe_with`).
            parameters: BTreeMap::new(),
            images: BTreeMap::new(),
            // Read with the domains the manifests name
            // (`commands::observe_with`, `Cloud::dns_zones`).
            dns_zones: Vec::new(),
            certificates,
        })
    }

    async fn act_once(&self, op: &Op) -> Result<Outcome, CloudError> {
        match op.service() {
            Service::Ec2Network => self.act_ec2_network(op).await,
            Service::Vpc => self.act_vpc(op).await,
            Service::Tagging => self.act_tagging(op).await,
            Service::Ec2Instances => self.act_ec2_instances(op).await,
            Service::Ebs => self.act_ebs(op).await,
            Service::Elb => self.act_elb(op).await,
            Service::Elbv2 => self.act_elbv2(op).await,
            Service::S3 => self.act_s3(op).await,
            Service::CloudFront => self.act_cloudfront(op).await,
            Service::Route53 => self.act_route53(op).await,
            Service::Acm => self.act_acm(op).await,
        }
    }

    /// EC2 key pairs and security groups.
    async fn act_ec2_network(&self, op: &Op) -> Result<Outcome, CloudError> {
        match op {
            Op::CreateKeyPair {
                name,
                public_key,
                tags,
            } => self.import_key_pair(name, public_key, tags).await,
            Op::DeleteKeyPair { name } => self.delete_key_pair(name).await,
            Op::CreateGroup {
                name,
                vpc,
                description,
                tags,
            } => self.create_group(name, vpc, description, tags).await,
            Op::AuthorizeIngress { group, rules } => self.authorize(group, rules).await,
            Op::RevokeIngress { group, rules } => self.revoke(group, rules).await,
            Op::DeleteGroup { group } => self.delete_group(group).await,
            other => Err(misrouted(other, "EC2 network")),
        }
    }

    /// EC2 networking: VPCs, subnets, internet gateways, route tables.
    async fn act_vpc(&self, op: &Op) -> Result<Outcome, CloudError> {
        match op {
            Op::CreateVpc { cidr, tags } => self.create_vpc(*cidr, tags).await,
            Op::ModifyVpcAttribute { vpc, attribute } => {
                self.modify_vpc_attribute(vpc, *attribute).await
            }
            Op::DeleteVpc { vpc } => self.delete_vpc(vpc).await,
            Op::CreateSubnet {
                vpc,
                zone,
                cidr,
                tags,
            } => self.create_subnet(vpc, zone, *cidr, tags).await,
            Op::ModifySubnetAttribute {
                subnet,
                map_public_ip,
            } => self.set_map_public_ip(subnet, *map_public_ip).await,
            Op::DeleteSubnet { subnet } => self.delete_subnet(subnet).await,
            Op::CreateInternetGateway { tags } => self.create_internet_gateway(tags).await,
            Op::AttachInternetGateway { gateway, vpc } => {
                self.attach_internet_gateway(gateway, vpc).await
            }
            Op::DetachInternetGateway { gateway, vpc } => {
                self.detach_internet_gateway(gateway, vpc).await
            }
            Op::DeleteInternetGateway { gateway } => self.delete_internet_gateway(gateway).await,
            Op::CreateRouteTable {
                vpc,
                tags,
                client_token,
            } => self.create_route_table(vpc, tags, client_token).await,
            Op::CreateRoute {
                route_table,
                destination,
                gateway,
            } => self.create_route(route_table, *destination, gateway).await,
            Op::AssociateRouteTable {
                route_table,
                subnet,
            } => self.associate_route_table(route_table, subnet).await,
            Op::DisassociateRouteTable { association } => {
                self.disassociate_route_table(association).await
            }
            Op::DeleteRouteTable { route_table } => self.delete_route_table(route_table).await,
            other => Err(misrouted(other, "VPC")),
        }
    }

    /// Tags, through the resource's own service.
    async fn act_tagging(&self, op: &Op) -> Result<Outcome, CloudError> {
        match op {
            Op::CreateTags { target, tags } => match target {
                TagTarget::Balancer(name) => match self.find_balancer_v2(name).await? {
                    Some(b) => self.tag_balancer_v2(&b, tags).await,
                    None => self.tag_balancer(name, tags).await,
                },
                TagTarget::Bucket(name) => self.tag_bucket(name.as_str(), tags).await,
                TagTarget::Distribution(id) => self.tag_distribution(id, tags).await,
                TagTarget::Zone(id) => self.tag_zone(id, tags, &[]).await,
                TagTarget::Certificate(arn) => self.tag_certificate(arn, tags, &[]).await,
                _ => self.ec2_tag(target, tags).await,
            },
            Op::DeleteTags { target, keys } => match target {
                TagTarget::Balancer(name) => match self.find_balancer_v2(name).await? {
                    Some(b) => self.untag_balancer_v2(&b, keys).await,
                    None => self.untag_balancer(name, keys).await,
                },
                TagTarget::Bucket(name) => self.untag_bucket(name.as_str(), keys).await,
                TagTarget::Distribution(id) => self.untag_distribution(id, keys).await,
                TagTarget::Zone(id) => {
                    self.tag_zone(id, &converge_core::desired::Tags::new(), keys)
                        .await
                }
                TagTarget::Certificate(arn) => {
                    self.tag_certificate(arn, &converge_core::desired::Tags::new(), keys)
                        .await
                }
                _ => self.ec2_untag(target, keys).await,
            },
            other => Err(misrouted(other, "tagging")),
        }
    }

    /// EC2 instances.
    async fn act_ec2_instances(&self, op: &Op) -> Result<Outcome, CloudError> {
        match op {
            Op::RunInstances { .. } => match op.launch() {
                Some(launch) => self.run_instances(launch).await,
                None => Err(misrouted(op, "EC2 instances")),
            },
            Op::TerminateInstances { ids } => self.terminate(ids).await,
            Op::SetInstanceGroups { instance, groups } => {
                self.set_instance_groups(instance, groups).await
            }
            Op::ModifyInstanceMetadataOptions { instance, metadata } => {
                self.modify_metadata_options(instance, *metadata).await
            }
            Op::AssociateIamInstanceProfile { instance, profile } => {
                self.associate_profile(instance, profile).await
            }
            Op::ReplaceIamInstanceProfileAssociation {
                association,
                profile,
            } => self.replace_profile(association, profile).await,
            Op::DisassociateIamInstanceProfile { association } => {
                self.disassociate_profile(association).await
            }
            other => Err(misrouted(other, "EC2 instances")),
        }
    }

    /// EBS volumes and snapshots.
    async fn act_ebs(&self, op: &Op) -> Result<Outcome, CloudError> {
        match op {
            Op::CreateVolume { .. } => match op.new_volume() {
                Some(new) => self.create_volume(&new).await,
                None => Err(misrouted(op, "EBS")),
            },
            Op::ModifyVolume {
                volume,
                size_gib,
                volume_type,
                iops,
                throughput,
            } => {
                self.modify_volume(volume, *size_gib, *volume_type, *iops, *throughput)
                    .await
            }
            Op::AttachVolume {
                volume,
                instance,
                device,
            } => self.attach_volume(volume, instance, device).await,
            Op::DetachVolume { volume, instance } => self.detach_volume(volume, instance).await,
            Op::DeleteVolume { volume } => self.delete_volume(volume).await,
            Op::CreateSnapshot {
                volume,
                description,
                tags,
            } => self.create_snapshot(volume, description, tags).await,
            Op::DeleteSnapshot { snapshot } => self.delete_snapshot(snapshot).await,
            other => Err(misrouted(other, "EBS")),
        }
    }

    /// Classic load balancers.
    async fn act_elb(&self, op: &Op) -> Result<Outcome, CloudError> {
        match op {
            Op::CreateBalancer {
                name,
                scheme,
                zones,
                subnets,
                groups,
                listeners,
                tags,
            } => {
                let placement = elb::Placement {
                    scheme: *scheme,
                    zones,
                    subnets,
                    groups,
                };
                self.create_balancer(name, placement, listeners, tags).await
            }
            Op::ModifyBalancerAttributes {
                name,
                drain_secs,
                cross_zone,
            } => {
                self.modify_balancer_attributes(name, *drain_secs, *cross_zone)
                    .await
            }
            Op::ApplyBalancerGroups { name, groups } => self.apply_groups(name, groups).await,
            Op::AttachBalancerToSubnets { name, subnets } => {
                self.attach_subnets(name, subnets).await
            }
            Op::DetachBalancerFromSubnets { name, subnets } => {
                self.detach_subnets(name, subnets).await
            }
            Op::ConfigureHealthCheck { name, health_check } => {
                self.configure_health_check(name, health_check).await
            }
            Op::CreateListeners { name, listeners } => self.create_listeners(name, listeners).await,
            Op::DeleteListeners { name, ports } => self.delete_listeners(name, ports).await,
            Op::EnableZones { name, zones } => self.enable_zones(name, zones).await,
            Op::DisableZones { name, zones } => self.disable_zones(name, zones).await,
            Op::RegisterInstances { name, ids } => self.register(name, ids).await,
            Op::DeregisterInstances { name, ids } => self.deregister(name, ids).await,
            Op::DeleteBalancer { name } => self.delete_balancer(name).await,
            other => Err(misrouted(other, "ELB")),
        }
    }

    /// Application and network balancers, target groups, listeners.
    async fn act_elbv2(&self, op: &Op) -> Result<Outcome, CloudError> {
        match op {
            Op::CreateLoadBalancerV2 {
                name,
                kind,
                scheme,
                zones,
                subnets,
                groups,
                tags,
            } => {
                self.create_load_balancer_v2(name, *kind, *scheme, zones, subnets, groups, tags)
                    .await
            }
            Op::SetSecurityGroupsV2 { name, groups } => {
                self.set_security_groups_v2(name, groups).await
            }
            Op::SetSubnetsV2 {
                name,
                zones,
                subnets,
            } => self.set_subnets_v2(name, zones, subnets).await,
            Op::DeleteLoadBalancerV2 { name } => self.delete_load_balancer_v2(name).await,
            Op::CreateTargetGroup {
                name,
                balancer,
                protocol,
                port,
                health_check,
                tags,
            } => {
                self.create_target_group(name, balancer, *protocol, *port, health_check, tags)
                    .await
            }
            Op::ModifyTargetGroup { name, health_check } => {
                self.modify_target_group(name, health_check).await
            }
            Op::ModifyTargetGroupAttributes {
                name,
                deregistration_delay_secs,
            } => {
                self.modify_target_group_attributes(name, *deregistration_delay_secs)
                    .await
            }
            Op::DeleteTargetGroup { name } => self.delete_target_group(name).await,
            Op::CreateListenerV2 {
                balancer,
                listener,
                target_group,
            } => {
                self.create_listener_v2(balancer, listener, target_group)
                    .await
            }
            Op::ModifyListenerV2 {
                balancer,
                listener,
                target_group,
            } => {
                self.modify_listener_v2(balancer, listener, target_group)
                    .await
            }
            Op::DeleteListenerV2 { balancer, port } => {
                self.delete_listener_v2(balancer, *port).await
            }
            Op::RegisterTargets { target_group, ids } => {
                self.register_targets(target_group, ids).await
            }
            Op::DeregisterTargets { target_group, ids } => {
                self.deregister_targets(target_group, ids).await
            }
            other => Err(misrouted(other, "ELBv2")),
        }
    }

    /// S3 buckets.
    async fn act_s3(&self, op: &Op) -> Result<Outcome, CloudError> {
        match op {
            Op::CreateBucket { name, tags } => self.create_bucket(name.as_str(), tags).await,
            Op::SetBucketPublicRead { name, public_read } => {
                self.set_public_read(name.as_str(), *public_read).await
            }
            Op::DeleteBucket { name } => self.delete_bucket(name.as_str()).await,
            Op::PutBucketPolicy { bucket, policy } => {
                self.put_policy(bucket.as_str(), policy).await
            }
            Op::PutCdnGrant {
                bucket,
                sid,
                distribution,
            } => self.put_cdn_grant(bucket.as_str(), sid, distribution).await,
            Op::RemoveCdnGrant { bucket, sid } => self.remove_cdn_grant(bucket.as_str(), sid).await,
            Op::PutObject {
                bucket,
                key,
                body,
                content_type,
                cache_control,
            } => {
                self.put_object(
                    bucket.as_str(),
                    key,
                    body,
                    content_type,
                    cache_control.as_deref(),
                )
                .await
            }
            Op::DeleteObjects { bucket, keys } => self.delete_objects(bucket.as_str(), keys).await,
            other => Err(misrouted(other, "S3")),
        }
    }

    /// CloudFront distributions.
    async fn act_cloudfront(&self, op: &Op) -> Result<Outcome, CloudError> {
        match op {
            Op::CreateDistribution {
                caller_reference,
                config,
                tags,
            } => {
                self.create_distribution(caller_reference, config, tags)
                    .await
            }
            Op::UpdateDistribution { id, config } => self.update_distribution(id, config).await,
            Op::DeleteDistribution { id } => self.delete_distribution(id).await,
            Op::CreateOriginAccessControl { name, settings } => {
                self.create_oac(name, settings).await
            }
            Op::UpdateOriginAccessControl { id, name, settings } => {
                self.update_oac(id, name, settings).await
            }
            Op::DeleteOriginAccessControl { id } => self.delete_oac(id).await,
            Op::CreateInvalidation {
                id,
                caller_reference,
                paths,
            } => self.create_invalidation(id, caller_reference, paths).await,
            other => Err(misrouted(other, "CloudFront")),
        }
    }

    /// Route 53 hosted zones and record sets.
    async fn act_route53(&self, op: &Op) -> Result<Outcome, CloudError> {
        match op {
            Op::CreateHostedZone {
                domain,
                caller_reference,
                tags,
            } => self.create_zone(domain, caller_reference, tags).await,
            Op::DeleteHostedZone { id } => self.delete_zone(id).await,
            Op::ChangeRecordSets { zone, changes } => self.change_records(zone, changes).await,
            other => Err(misrouted(other, "Route 53")),
        }
    }

    /// ACM certificates.
    async fn act_acm(&self, op: &Op) -> Result<Outcome, CloudError> {
        match op {
            Op::RequestCertificate {
                region,
                domains,
                token,
                tags,
            } => self.request_certificate(region, domains, token, tags).await,
            Op::DeleteCertificate { region, arn } => self.delete_certificate(region, arn).await,
            other => Err(misrouted(other, "ACM")),
        }
    }
}

#[async_trait]
impl Cloud for AwsCloud {
    fn name(&self) -> &'static str {
        "aws"
    }

    async fn observe(&self, stack: &ResourceName) -> Result<Observed, CloudError> {
        self.observe_parts(stack, Reads(None)).await
    }

    async fn observe_retrying(
        &self,
        stack: &ResourceName,
        policy: &RetryPolicy,
    ) -> Result<Observed, CloudError> {
        self.observe_parts(stack, Reads(Some(policy))).await
    }

    async fn act(&self, op: &Op) -> Result<Outcome, CloudError> {
        self.act_once(op).await
    }

    async fn instances(&self, ids: &[InstanceId]) -> Result<Vec<ObservedInstance>, CloudError> {
        self.describe_instances_by_id(ids).await
    }

    async fn subnets(&self, ids: &[SubnetId]) -> Result<Vec<ObservedSubnet>, CloudError> {
        self.subnets_by_id(ids).await
    }

    async fn volumes(&self, ids: &[VolumeId]) -> Result<Vec<ObservedVolume>, CloudError> {
        // With their latest modifications, which the executor's wait
        // after ModifyVolume reads (one more call).
        let mut volumes = self.describe_volumes_by_id(ids).await?;
        self.add_modifications(&mut volumes).await?;
        Ok(volumes)
    }

    async fn snapshot(&self, id: &SnapshotId) -> Result<Option<ObservedSnapshot>, CloudError> {
        self.describe_snapshot(id).await
    }

    async fn balancer_members(
        &self,
        name: &BalancerName,
        kind: BalancerType,
    ) -> Result<Vec<Member>, CloudError> {
        if kind.has_target_groups() {
            self.target_members(name).await
        } else {
            self.instance_health(name.as_str()).await
        }
    }

    async fn distribution(
        &self,
        id: &DistributionId,
    ) -> Result<Option<ObservedDistribution>, CloudError> {
        self.get_distribution(id).await
    }

    async fn parameters(
        &self,
        names: &[ParameterName],
    ) -> Result<BTreeMap<ParameterName, String>, CloudError> {
        self.get_parameters(names).await
    }

    async fn images(
        &self,
        ids: &[ImageId],
    ) -> Result<BTreeMap<ImageId, ObservedImage>, CloudError> {
        self.describe_images(ids).await
    }

    async fn dns_zones(
        &self,
        stack: &ResourceName,
        domains: &[String],
    ) -> Result<Vec<converge_core::route53::ObservedZone>, CloudError> {
        self.observe_zones(stack, domains).await
    }

    async fn change_in_sync(&self, id: &str) -> Result<bool, CloudError> {
        self.get_change(id).await
    }

    async fn certificate(
        &self,
        region: &str,
        arn: &str,
    ) -> Result<Option<converge_core::acm::ObservedCertificate>, CloudError> {
        self.describe_certificate(region, arn).await
    }

    async fn bucket_objects(
        &self,
        bucket: &BucketName,
        prefix: &str,
    ) -> Result<Vec<ObservedObject>, CloudError> {
        self.list_objects(bucket.as_str(), prefix).await
    }

    async fn invalidation_completed(
        &self,
        distribution: &DistributionId,
        id: &str,
    ) -> Result<bool, CloudError> {
        self.get_invalidation(distribution, id).await
    }

    fn api_calls(&self) -> Vec<ApiCall> {
        self.stats()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Tags from the SDK's key/value pairs.
fn tags_from<'a>(
    pairs: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>)>,
) -> converge_core::desired::Tags {
    pairs
        .into_iter()
        .filter_map(|(k, v)| Some((k?.to_owned(), v.unwrap_or_default().to_owned())))
        .collect()
}

/// An SDK timestamp as a [`jiff::Timestamp`].
fn timestamp(t: Option<&aws_smithy_types::DateTime>) -> jiff::Timestamp {
    t.and_then(|t| jiff::Timestamp::new(t.secs(), t.subsec_nanos() as i32).ok())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// Runs `f` over `items` with at most `limit` at once, keeping the order
/// of results; the first error wins.
async fn bounded<T, R, F, Fut>(items: Vec<T>, limit: usize, f: F) -> Result<Vec<R>, CloudError>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<R, CloudError>> + Send + 'static,
{
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(limit.max(1)));
    let mut set = tokio::task::JoinSet::new();
    let n = items.len();
    for (i, item) in items.into_iter().enumerate() {
        let fut = f(item);
        let sem = sem.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            (i, fut.await)
        });
    }
    let mut out: Vec<Option<R>> = (0..n).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let (i, r) = joined.map_err(|e| {
            CloudError::new(
                ErrorKind::Unavailable,
                "Observe",
                "TaskFailed",
                e.to_string(),
            )
        })?;
        out[i] = Some(r?);
    }
    Ok(out.into_iter().flatten().collect())
}
