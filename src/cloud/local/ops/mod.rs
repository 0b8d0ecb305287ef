//! The simulated region's rules: how each [`Op`] changes the world, and
//! the AWS-like errors it answers when a rule forbids it.
//!
//! Every operation checks first and changes the world only once every
//! check has passed, so a failed call leaves nothing behind. Errors carry
//! the codes the real services use (`InvalidVolume.ZoneMismatch`,
//! `DependencyViolation`, `DistributionNotDisabled`, …) and the
//! [`ErrorKind`] that tells the executor whether a retry can help.
//!
//! One file per service, as in `cloud/aws/`: [`ec2`] (key pairs, security
//! groups, instances, volumes and snapshots), [`elb`], [`s3`] and
//! [`cloudfront`], each with one function per operation and the checks
//! only it uses; [`tags`] holds `CreateTags` and `DeleteTags`, which reach
//! resources of every service. [`act`] only routes: adding an operation
//! means one function in its service's file and one arm here.

pub(crate) mod acm;
pub(crate) mod cloudfront;
mod ec2;
mod elb;
pub(crate) mod elbv2;
pub(crate) mod iam;
pub(crate) mod route53;
pub(crate) mod s3;
pub(crate) mod ssm;
mod tags;

pub(crate) use acm::add_certificate;
pub(crate) use elb::find_balancer;

use super::config::Delays;
use super::world::{World, after};
use crate::cloud::{CloudError, ErrorKind, Op, Outcome, Service, misrouted};
use converge_core::ids::Zone;
use jiff::Timestamp;
use std::time::Duration;

/// What one call sees: the moment, the region and the faults that shape
/// visibility.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ctx<'a> {
    /// Now, from the injected clock.
    pub now: Timestamp,
    /// The caller's region.
    pub region: &'a str,
    /// This process's delays.
    pub delays: &'a Delays,
    /// EC2 and ELB resources younger than this are invisible.
    pub lag: Duration,
}

impl Ctx<'_> {
    /// Whether an EC2 or ELB resource created at `created` is visible yet.
    pub fn sees(&self, created: Timestamp) -> bool {
        self.lag.is_zero() || after(created, self.lag) <= self.now
    }

    fn later(&self, d: Duration) -> Timestamp {
        after(self.now, d)
    }
}

/// Carries out one operation on the world, in the file of its service.
pub(crate) fn act(w: &mut World, op: &Op, cx: &Ctx<'_>) -> Result<Outcome, CloudError> {
    let e = &Errs(op.name());
    match op.service() {
        Service::Ec2Network => act_ec2_network(w, op, cx, e),
        Service::Vpc => act_vpc(w, op, cx, e),
        Service::Ec2Instances => act_ec2_instances(w, op, cx, e),
        Service::Ebs => act_ebs(w, op, cx, e),
        Service::Tagging => act_tagging(w, op, cx, e),
        Service::Elb => act_elb(w, op, cx, e),
        Service::Elbv2 => elbv2::act(w, op, cx, e),
        Service::S3 => act_s3(w, op, cx, e),
        Service::CloudFront => act_cloudfront(w, op, cx, e),
        Service::Route53 => act_route53(w, op, cx, e),
        Service::Acm => act_acm(w, op, cx, e),
    }
}

/// EC2 key pairs and security groups.
fn act_ec2_network(w: &mut World, op: &Op, cx: &Ctx<'_>, e: &Errs) -> Result<Outcome, CloudError> {
    match op {
        Op::CreateKeyPair {
            name,
            public_key,
            tags,
        } => ec2::create_key_pair(w, cx, e, name.as_str(), public_key, tags),
        Op::DeleteKeyPair { name } => ec2::delete_key_pair(w, cx, name.as_str()),
        Op::CreateGroup {
            name,
            vpc,
            description,
            tags,
        } => ec2::create_group(w, cx, e, name.as_str(), vpc, description, tags),
        Op::AuthorizeIngress { group, rules } => ec2::authorize_ingress(w, cx, e, group, rules),
        Op::RevokeIngress { group, rules } => ec2::revoke_ingress(w, cx, e, group, rules),
        Op::DeleteGroup { group } => ec2::delete_group(w, cx, e, group),
        other => Err(misrouted(other, "EC2 network")),
    }
}

/// EC2 networking: VPCs, subnets, internet gateways, route tables.
fn act_vpc(w: &mut World, op: &Op, cx: &Ctx<'_>, e: &Errs) -> Result<Outcome, CloudError> {
    match op {
        Op::CreateVpc { cidr, tags } => ec2::create_vpc(w, cx, e, *cidr, tags),
        Op::ModifyVpcAttribute { vpc, attribute } => {
            ec2::modify_vpc_attribute(w, cx, e, vpc, *attribute)
        }
        Op::DeleteVpc { vpc } => ec2::delete_vpc(w, cx, e, vpc),
        Op::CreateSubnet {
            vpc,
            zone,
            cidr,
            tags,
        } => {
            let n = ec2::NewSubnet {
                vpc,
                zone,
                cidr: *cidr,
                tags,
            };
            ec2::create_subnet(w, cx, e, &n)
        }
        Op::ModifySubnetAttribute {
            subnet,
            map_public_ip,
        } => ec2::modify_subnet_attribute(w, cx, e, subnet, *map_public_ip),
        Op::DeleteSubnet { subnet } => ec2::delete_subnet(w, cx, e, subnet),
        Op::CreateInternetGateway { tags } => ec2::create_internet_gateway(w, cx, e, tags),
        Op::AttachInternetGateway { gateway, vpc } => {
            ec2::attach_internet_gateway(w, cx, e, gateway, vpc)
        }
        Op::DetachInternetGateway { gateway, vpc } => {
            ec2::detach_internet_gateway(w, cx, e, gateway, vpc)
        }
        Op::DeleteInternetGateway { gateway } => ec2::delete_internet_gateway(w, cx, e, gateway),
        Op::CreateRouteTable {
            vpc,
            tags,
            client_token,
        } => ec2::create_route_table(w, cx, e, vpc, tags, client_token),
        Op::CreateRoute {
            route_table,
            destination,
            gateway,
        } => ec2::create_route(w, cx, e, route_table, *destination, gateway),
        Op::AssociateRouteTable {
            route_table,
            subnet,
        } => ec2::associate_route_table(w, cx, e, route_table, subnet),
        Op::DisassociateRouteTable { association } => {
            ec2::disassociate_route_table(w, e, association)
        }
        Op::DeleteRouteTable { route_table } => ec2::delete_route_table(w, cx, e, route_table),
        other => Err(misrouted(other, "VPC")),
    }
}

/// EC2 instances.
fn act_ec2_instances(
    w: &mut World,
    op: &Op,
    cx: &Ctx<'_>,
    e: &Errs,
) -> Result<Outcome, CloudError> {
    match op {
        Op::RunInstances { .. } => match op.launch() {
            Some(launch) => ec2::run_instances(w, cx, e, &launch),
            None => Err(misrouted(op, "EC2 instances")),
        },
        Op::TerminateInstances { ids } => ec2::terminate_instances(w, cx, e, ids),
        Op::SetInstanceGroups { instance, groups } => {
            ec2::set_instance_groups(w, cx, e, instance, groups)
        }
        Op::ModifyInstanceMetadataOptions { instance, metadata } => {
            ec2::modify_instance_metadata_options(w, cx, e, instance, *metadata)
        }
        Op::AssociateIamInstanceProfile { instance, profile } => {
            ec2::associate_iam_instance_profile(w, cx, e, instance, profile)
        }
        Op::ReplaceIamInstanceProfileAssociation {
            association,
            profile,
        } => ec2::replace_iam_instance_profile_association(w, cx, e, association, profile),
        Op::DisassociateIamInstanceProfile { association } => {
            ec2::disassociate_iam_instance_profile(w, cx, e, association)
        }
        other => Err(misrouted(other, "EC2 instances")),
    }
}

/// EBS volumes and snapshots.
fn act_ebs(w: &mut World, op: &Op, cx: &Ctx<'_>, e: &Errs) -> Result<Outcome, CloudError> {
    match op {
        Op::CreateVolume { .. } => match op.new_volume() {
            Some(new) => ec2::create_volume(w, cx, e, &new),
            None => Err(misrouted(op, "EBS")),
        },
        Op::ModifyVolume {
            volume,
            size_gib,
            volume_type,
            iops,
            throughput,
        } => {
            let change = ec2::VolumeChange {
                size_gib: *size_gib,
                volume_type: *volume_type,
                iops: *iops,
                throughput: *throughput,
            };
            ec2::modify_volume(w, cx, e, volume, &change)
        }
        Op::AttachVolume {
            volume,
            instance,
            device,
        } => ec2::attach_volume(w, cx, e, volume, instance, device),
        Op::DetachVolume { volume, instance } => ec2::detach_volume(w, cx, e, volume, instance),
        Op::DeleteVolume { volume } => ec2::delete_volume(w, cx, e, volume),
        Op::CreateSnapshot {
            volume,
            description,
            tags,
        } => ec2::create_snapshot(w, cx, e, volume, description, tags),
        Op::DeleteSnapshot { snapshot } => ec2::delete_snapshot(w, cx, e, snapshot),
        other => Err(misrouted(other, "EBS")),
    }
}

/// Tags, of a resource of any service.
fn act_tagging(w: &mut World, op: &Op, cx: &Ctx<'_>, e: &Errs) -> Result<Outcome, CloudError> {
    match op {
        Op::CreateTags { target, tags } => tags::create_tags(w, cx, e, target, tags),
        Op::DeleteTags { target, keys } => tags::delete_tags(w, cx, e, target, keys),
        other => Err(misrouted(other, "tagging")),
    }
}

/// Classic load balancers.
fn act_elb(w: &mut World, op: &Op, cx: &Ctx<'_>, e: &Errs) -> Result<Outcome, CloudError> {
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
            let n = elb::NewBalancer {
                name,
                scheme: *scheme,
                zones,
                subnets,
                groups,
                listeners,
                tags,
            };
            elb::create_balancer(w, cx, e, &n)
        }
        Op::ModifyBalancerAttributes {
            name,
            drain_secs,
            cross_zone,
        } => elb::modify_attributes(w, cx, e, name, *drain_secs, *cross_zone),
        Op::ApplyBalancerGroups { name, groups } => elb::apply_groups(w, cx, e, name, groups),
        Op::ConfigureHealthCheck { name, health_check } => {
            elb::configure_health_check(w, cx, e, name, health_check)
        }
        Op::CreateListeners { name, listeners } => elb::create_listeners(w, cx, e, name, listeners),
        Op::DeleteListeners { name, ports } => elb::delete_listeners(w, cx, e, name, ports),
        Op::EnableZones { name, zones } => elb::enable_zones(w, cx, e, name, zones),
        Op::DisableZones { name, zones } => elb::disable_zones(w, cx, e, name, zones),
        Op::AttachBalancerToSubnets { name, subnets } => {
            elb::attach_subnets(w, cx, e, name, subnets)
        }
        Op::DetachBalancerFromSubnets { name, subnets } => {
            elb::detach_subnets(w, cx, e, name, subnets)
        }
        Op::RegisterInstances { name, ids } => elb::register_instances(w, cx, e, name, ids),
        Op::DeregisterInstances { name, ids } => elb::deregister_instances(w, cx, e, name, ids),
        Op::DeleteBalancer { name } => elb::delete_balancer(w, cx, name),
        other => Err(misrouted(other, "ELB")),
    }
}

/// S3 buckets.
fn act_s3(w: &mut World, op: &Op, cx: &Ctx<'_>, e: &Errs) -> Result<Outcome, CloudError> {
    match op {
        Op::CreateBucket { name, tags } => s3::create_bucket(w, cx, e, name.as_str(), tags),
        Op::SetBucketPublicRead { name, public_read } => {
            s3::set_bucket_public_read(w, e, name.as_str(), *public_read)
        }
        Op::DeleteBucket { name } => s3::delete_bucket(w, e, name.as_str()),
        Op::PutBucketPolicy { bucket, policy } => {
            s3::put_bucket_policy(w, e, bucket.as_str(), policy)
        }
        Op::PutCdnGrant {
            bucket,
            sid,
            distribution,
        } => s3::put_cdn_grant(w, e, bucket.as_str(), sid, distribution),
        Op::RemoveCdnGrant { bucket, sid } => s3::remove_cdn_grant(w, e, bucket.as_str(), sid),
        Op::PutObject {
            bucket,
            key,
            body,
            content_type,
            cache_control,
        } => s3::put_object(
            w,
            e,
            bucket.as_str(),
            key,
            &body.0,
            content_type,
            cache_control.as_deref(),
        ),
        Op::DeleteObjects { bucket, keys } => s3::delete_objects(w, e, bucket.as_str(), keys),
        other => Err(misrouted(other, "S3")),
    }
}

/// CloudFront distributions.
fn act_cloudfront(w: &mut World, op: &Op, cx: &Ctx<'_>, e: &Errs) -> Result<Outcome, CloudError> {
    match op {
        Op::CreateDistribution {
            caller_reference,
            config,
            tags,
        } => cloudfront::create_distribution(w, cx, e, caller_reference, config, tags),
        Op::UpdateDistribution { id, config } => {
            cloudfront::update_distribution(w, cx, e, id, config)
        }
        Op::DeleteDistribution { id } => cloudfront::delete_distribution(w, cx, e, id),
        Op::CreateOriginAccessControl { name, settings } => {
            cloudfront::create_oac(w, e, name, settings)
        }
        Op::UpdateOriginAccessControl { id, name, settings } => {
            cloudfront::update_oac(w, e, id, name, settings)
        }
        Op::DeleteOriginAccessControl { id } => cloudfront::delete_oac(w, e, id),
        Op::CreateInvalidation {
            id,
            caller_reference,
            paths,
        } => cloudfront::create_invalidation(w, cx, e, id, caller_reference, paths),
        other => Err(misrouted(other, "CloudFront")),
    }
}

/// Route 53 hosted zones and record sets.
fn act_route53(w: &mut World, op: &Op, cx: &Ctx<'_>, e: &Errs) -> Result<Outcome, CloudError> {
    match op {
        Op::CreateHostedZone {
            domain,
            caller_reference,
            tags,
        } => route53::create_zone(w, cx, e, domain, caller_reference, tags),
        Op::DeleteHostedZone { id } => route53::delete_zone(w, e, id),
        Op::ChangeRecordSets { zone, changes } => {
            let out = route53::change_records(w, cx, e, zone, changes)?;
            acm::notice_validation(w, cx.now);
            Ok(out)
        }
        other => Err(misrouted(other, "Route 53")),
    }
}

/// ACM certificates.
fn act_acm(w: &mut World, op: &Op, cx: &Ctx<'_>, e: &Errs) -> Result<Outcome, CloudError> {
    match op {
        Op::RequestCertificate {
            region,
            domains,
            token,
            tags,
        } => acm::request_certificate(w, cx, e, (region, domains), token, tags),
        Op::DeleteCertificate { region, arn } => acm::delete_certificate(w, e, region, arn),
        other => Err(misrouted(other, "ACM")),
    }
}

/// Builds errors that name one operation.
#[derive(Clone, Copy)]
pub(crate) struct Errs(pub &'static str);

impl Errs {
    pub fn make(self, kind: ErrorKind, code: &str, msg: impl Into<String>) -> CloudError {
        CloudError::new(kind, self.0, code, msg)
    }
    pub fn invalid(self, code: &str, msg: impl Into<String>) -> CloudError {
        self.make(ErrorKind::Invalid, code, msg)
    }
    pub fn not_found(self, code: &str, msg: impl Into<String>) -> CloudError {
        self.make(ErrorKind::NotFound, code, msg)
    }
    pub fn exists(self, code: &str, msg: impl Into<String>) -> CloudError {
        self.make(ErrorKind::AlreadyExists, code, msg)
    }
    pub fn state(self, code: &str, msg: impl Into<String>) -> CloudError {
        self.make(ErrorKind::InvalidState, code, msg)
    }
    /// The target is gone or in a state it will not leave (terminated,
    /// shutting down): AWS answers with the same code as for a state that
    /// passes ([`ErrorKind::Stale`]).
    pub fn stale(self, code: &str, msg: impl Into<String>) -> CloudError {
        self.make(ErrorKind::Stale, code, msg)
    }
    /// An identifier the local cloud made up (valid by construction; a
    /// bug would be an error, not a panic).
    pub fn id<T>(self, text: String) -> Result<T, CloudError>
    where
        T: TryFrom<String, Error = converge_core::ids::IdError>,
    {
        crate::cloud::answered_id(self.0, text)
    }
}

// ---- checks and helpers more than one service uses ----------------------

fn check_zone(cx: &Ctx<'_>, e: &Errs, zone: &Zone) -> Result<(), CloudError> {
    let z = zone.as_str();
    let ok = z.len() == cx.region.len() + 1
        && z.starts_with(cx.region)
        && z.ends_with(|c: char| ('a'..='f').contains(&c));
    if ok {
        Ok(())
    } else {
        Err(e.invalid(
            "InvalidParameterValue",
            format!(
                "Invalid availability zone: [{z}]; {} has zones {}a to {}f",
                cx.region, cx.region, cx.region
            ),
        ))
    }
}

fn dedup<T: PartialEq + Clone>(items: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for i in items {
        if !out.contains(i) {
            out.push(i.clone());
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;
    use crate::cloud::local::view;
    use converge_core::desired::{Listener, ListenerProtocol, VolumeType};
    use converge_core::ids::{Kind, ResourceName, Zone};
    use converge_core::observed::Owner;

    /// Settling the world (what a write does first) changes no state a read
    /// derives: terminated instances leave volumes and balancers either way.
    #[test]
    fn settling_changes_nothing_a_read_sees() {
        let t0: Timestamp = "2026-03-09T12:00:00Z".parse().unwrap();
        let delays = Delays {
            health: 0.0,
            ..Delays::default()
        };
        let mut w = World::new(1);
        let tags = |kind, name: &str| {
            Owner {
                stack: ResourceName::from("s"),
                kind,
                name: ResourceName::new(name).expect("a valid name"),
            }
            .to_tags()
        };
        let at = |t: Timestamp| Ctx {
            now: t,
            region: "us-east-1",
            delays: &delays,
            lag: Duration::ZERO,
        };
        let run = |w: &mut World, op: Op, t| act(w, &op, &at(t)).unwrap();
        let Outcome::Instances(ids) = run(
            &mut w,
            Op::RunInstances {
                image: "ami-147f977d".into(),
                instance_type: "m1.small".into(),
                key_name: None,
                groups: vec![],
                user_data: String::new(),
                zone: Zone::from("us-east-1a"),
                subnet: None,
                public_ip: None,
                private_ip: None,
                count: 2,
                tags: tags(Kind::Fleet, "db"),
                client_token: "t".into(),
                instance_profile: None,
                metadata: Default::default(),
                root_volume: None,
            },
            t0,
        ) else {
            panic!()
        };
        let ids: Vec<converge_core::ids::InstanceId> = ids.into_iter().map(|l| l.id).collect();
        let Outcome::Volume(vol) = run(
            &mut w,
            Op::CreateVolume {
                zone: Zone::from("us-east-1a"),
                size_gib: 20,
                volume_type: VolumeType::Gp3,
                snapshot: None,
                encrypted: true,
                kms_key: None,
                iops: None,
                throughput: None,
                tags: tags(Kind::Volume, "pgdata"),
                client_token: "v".into(),
            },
            t0,
        ) else {
            panic!()
        };
        let t1 = after(t0, Duration::from_secs(10));
        run(
            &mut w,
            Op::AttachVolume {
                volume: vol,
                instance: ids[0].clone(),
                device: "/dev/sdj".into(),
            },
            t1,
        );
        run(
            &mut w,
            Op::CreateBalancer {
                name: "web".into(),
                scheme: Default::default(),
                zones: vec![Zone::from("us-east-1a")],
                subnets: vec![],
                groups: vec![],
                listeners: vec![Listener {
                    port: 80,
                    instance_port: 80,
                    protocol: ListenerProtocol::Http,
                    certificate: None,
                }],
                tags: tags(Kind::Balancer, "web"),
            },
            t1,
        );
        run(
            &mut w,
            Op::RegisterInstances {
                name: "web".into(),
                ids: ids.clone(),
            },
            t1,
        );
        run(&mut w, Op::TerminateInstances { ids: ids.clone() }, t1);
        let stack = ResourceName::from("s");
        for secs in [0, 1, 2, 3599, 3600, 3602, 7200] {
            let t = after(t1, Duration::from_secs(secs));
            let mut settled = w.clone();
            settled.settle(t);
            assert_eq!(
                view::observe(&w, &stack, &at(t)),
                view::observe(&settled, &stack, &at(t)),
                "{secs}s after termination"
            );
        }
        // An hour after, the instances and their client token are gone.
        let mut settled = w.clone();
        settled.settle(after(t1, Duration::from_secs(3602)));
        assert!(settled.instances.is_empty());
        assert!(settled.run_tokens.is_empty());
        assert!(settled.volumes.values().all(|v| v.attachment.is_none()));
        assert!(settled.balancers[0].members.is_empty());
    }
}
