//! Classic Elastic Load Balancing. Observation: one paginated
//! DescribeLoadBalancers for the account (400 per page), DescribeTags for
//! 20 names per call to find the stack's, DescribeLoadBalancerAttributes
//! (connection draining, cross-zone balancing) for each of the stack's
//! balancers, and DescribeInstanceHealth for each of the stack's
//! balancers that has members.

use super::error::{found, refuse, sdk_error};
use super::{AwsCloud, bounded, tags_from};
use crate::cloud::{CloudError, ErrorKind, Outcome, answered_id};
use aws_sdk_elasticloadbalancing::types::{
    ConnectionDraining, CrossZoneLoadBalancing, HealthCheck as ElbHealthCheck, Instance,
    Listener as ElbListener, LoadBalancerAttributes, LoadBalancerDescription, Tag, TagKeyOnly,
};
use converge_core::desired::{HealthCheck, Listener, ListenerProtocol, Tags};
use converge_core::elb::{BalancerType, Scheme, needs_certificate, ranges};
use converge_core::ids::{BalancerName, GroupId, InstanceId, Kind, ResourceName, SubnetId, Zone};
use converge_core::observed::{Member, MemberState, ObservedBalancer, Owner};
use std::collections::{BTreeMap, BTreeSet};

/// The most names one DescribeTags takes.
const TAG_NAMES: usize = 20;

/// Where a new classic balancer goes and who may reach it.
pub(super) struct Placement<'a> {
    /// Internet-facing or internal (in a VPC only).
    pub(super) scheme: Scheme,
    /// Zones (without subnets).
    pub(super) zones: &'a [Zone],
    /// Subnets (in a VPC).
    pub(super) subnets: &'a [SubnetId],
    /// Security groups (in a VPC).
    pub(super) groups: &'a [GroupId],
}

/// The classic listener rules converge checks before CreateLoadBalancer
/// and CreateLoadBalancerListeners: the protocols a classic balancer
/// takes, an `SSLCertificateId` exactly on HTTPS and SSL listeners
/// (<https://docs.aws.amazon.com/elasticloadbalancing/2012-06-01/APIReference/API_Listener.html>)
/// that looks like an ACM or IAM certificate ARN.
fn check_classic(op: &'static str, listeners: &[Listener]) -> Result<(), CloudError> {
    listeners
        .iter()
        .try_for_each(|l| check_classic_listener(op, l))
}

fn check_classic_listener(op: &'static str, l: &Listener) -> Result<(), CloudError> {
    if !BalancerType::Classic
        .listener_protocols()
        .contains(&l.protocol)
    {
        return Err(refuse(
            op,
            "ValidationError",
            format!(
                "listener {l}: a classic load balancer takes HTTP, HTTPS, TCP and SSL listeners"
            ),
        ));
    }
    super::elbv2::check_certificate(op, l)
}

fn listener(l: &Listener) -> Result<ElbListener, CloudError> {
    ElbListener::builder()
        .protocol(l.protocol.as_str())
        .load_balancer_port(i32::from(l.port))
        .instance_protocol(l.protocol.as_str())
        .instance_port(i32::from(l.instance_port))
        .set_ssl_certificate_id(
            l.certificate
                .clone()
                .filter(|_| needs_certificate(l.protocol)),
        )
        .build()
        .map_err(|e| refuse("CreateLoadBalancer", "InvalidListener", e.to_string()))
}

fn read_listener(l: &ElbListener) -> Option<Listener> {
    let protocol = ListenerProtocol::parse(&l.protocol().to_ascii_uppercase())?;
    Some(Listener {
        port: u16::try_from(l.load_balancer_port()).ok()?,
        instance_port: u16::try_from(l.instance_port()).ok()?,
        protocol,
        certificate: l
            .ssl_certificate_id()
            .filter(|c| !c.is_empty() && needs_certificate(protocol))
            .map(str::to_owned),
    })
}

fn read_health_check(h: &ElbHealthCheck) -> HealthCheck {
    let n = |v: i32| u32::try_from(v).unwrap_or(0);
    HealthCheck {
        target: h.target().to_owned(),
        interval_secs: n(h.interval()),
        timeout_secs: n(h.timeout()),
        healthy_threshold: n(h.healthy_threshold()),
        unhealthy_threshold: n(h.unhealthy_threshold()),
    }
}

fn elb_tags(tags: &Tags) -> Result<Vec<Tag>, CloudError> {
    tags.iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| refuse("AddTags", "InvalidTag", e.to_string()))
        })
        .collect()
}

/// A classic balancer's connection draining (`Some(0)`: off) and
/// cross-zone balancing, as DescribeLoadBalancerAttributes reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Attributes {
    drain_secs: Option<u32>,
    cross_zone: Option<bool>,
}

fn read_attributes(a: Option<&LoadBalancerAttributes>) -> Attributes {
    let Some(a) = a else {
        return Attributes::default();
    };
    Attributes {
        drain_secs: a.connection_draining().map(|d| {
            if d.enabled() {
                d.timeout()
                    .and_then(|t| u32::try_from(t).ok())
                    .unwrap_or(converge_core::elb::DEFAULT_DRAIN_SECS)
            } else {
                0
            }
        }),
        cross_zone: a.cross_zone_load_balancing().map(|c| c.enabled()),
    }
}

/// The hosted zone of a classic balancer's DNS name: as the API reports
/// it, else from AWS's table for the region (moto reports none).
fn zone_of(region: &str, reported: Option<&str>) -> Option<String> {
    reported
        .filter(|z| !z.is_empty())
        .or_else(|| converge_core::elb::canonical_zone_id(region, BalancerType::Classic))
        .map(str::to_owned)
}

fn balancer(
    region: &str,
    d: &LoadBalancerDescription,
    owner: Owner,
    tags: Tags,
    members: Vec<Member>,
    attributes: Attributes,
) -> Result<ObservedBalancer, CloudError> {
    let mut zones: Vec<Zone> = d
        .availability_zones()
        .iter()
        .map(|z| answered_id("DescribeLoadBalancers", z.as_str()))
        .collect::<Result<_, _>>()?;
    zones.sort();
    let mut listeners: Vec<Listener> = d
        .listener_descriptions()
        .iter()
        .filter_map(|l| l.listener().and_then(read_listener))
        .collect();
    listeners.sort();
    Ok(ObservedBalancer {
        name: answered_id(
            "DescribeLoadBalancers",
            d.load_balancer_name().unwrap_or_default(),
        )?,
        owner,
        kind: BalancerType::Classic,
        scheme: match d.scheme() {
            Some("internal") => Scheme::Internal,
            _ => Scheme::InternetFacing,
        },
        dns_name: d.dns_name().unwrap_or_default().to_owned(),
        zone_id: zone_of(region, d.canonical_hosted_zone_name_id()).unwrap_or_default(),
        security_groups: {
            let mut v: Vec<GroupId> = d
                .security_groups()
                .iter()
                .map(|g| answered_id("DescribeLoadBalancers", g.as_str()))
                .collect::<Result<_, _>>()?;
            v.sort();
            v
        },
        target_groups: Vec::new(),
        drain_secs: attributes.drain_secs,
        cross_zone: attributes.cross_zone,
        zones,
        subnets: {
            let mut v: Vec<SubnetId> = d
                .subnets()
                .iter()
                .map(|s| answered_id("DescribeLoadBalancers", s.as_str()))
                .collect::<Result<_, _>>()?;
            v.sort();
            v
        },
        listeners,
        health_check: d.health_check().map(read_health_check),
        members,
        tags,
    })
}

/// Members from DescribeInstanceHealth; registered instances it does not
/// report are out of service.
fn members(registered: &[InstanceId], health: &[(InstanceId, String)]) -> Vec<Member> {
    let states: BTreeMap<&InstanceId, &str> = health.iter().map(|(i, s)| (i, s.as_str())).collect();
    let mut ids: BTreeSet<&InstanceId> = registered.iter().collect();
    ids.extend(
        health
            .iter()
            .filter(|(_, s)| s != "Unknown")
            .map(|(i, _)| i),
    );
    ids.into_iter()
        .map(|i| Member {
            instance: i.clone(),
            state: match states.get(i) {
                Some(&"InService") => MemberState::InService,
                _ => MemberState::OutOfService,
            },
        })
        .collect()
}

impl AwsCloud {
    pub(super) async fn observe_balancers(
        &self,
        stack: &ResourceName,
    ) -> Result<Vec<ObservedBalancer>, CloudError> {
        let mut pages = self
            .elb
            .describe_load_balancers()
            .page_size(400)
            .into_paginator()
            .send();
        let mut all = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("DescribeLoadBalancers", e))?;
            all.extend(page.load_balancer_descriptions().iter().cloned());
        }
        if all.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = all
            .iter()
            .filter_map(|d| d.load_balancer_name().map(str::to_owned))
            .collect();
        let chunks: Vec<Vec<String>> = names.chunks(TAG_NAMES).map(<[String]>::to_vec).collect();
        let elb = self.elb.clone();
        let tag_pages = bounded(chunks, 4, move |chunk| {
            let elb = elb.clone();
            async move {
                let out = elb
                    .describe_tags()
                    .set_load_balancer_names(Some(chunk))
                    .send()
                    .await
                    .map_err(|e| sdk_error("DescribeTags", e))?;
                Ok(out
                    .tag_descriptions()
                    .iter()
                    .filter_map(|d| {
                        Some((
                            d.load_balancer_name()?.to_owned(),
                            tags_from(d.tags().iter().map(|t| (Some(t.key()), t.value()))),
                        ))
                    })
                    .collect::<Vec<_>>())
            }
        })
        .await?;
        let tags: BTreeMap<String, Tags> = tag_pages.into_iter().flatten().collect();
        let mine: Vec<(LoadBalancerDescription, Owner, Tags)> = all
            .into_iter()
            .filter_map(|d| {
                let t = tags.get(d.load_balancer_name()?)?.clone();
                let owner = Owner::from_tags(&t)
                    .filter(|o| o.stack == *stack && o.kind == Kind::Balancer)?;
                Some((d, owner, t))
            })
            .collect();
        let elb = self.elb.clone();
        let region = self.region().to_owned();
        let out = bounded(mine, 8, move |(d, owner, t)| {
            let elb = elb.clone();
            let region = region.clone();
            async move {
                let registered: Vec<InstanceId> = d
                    .instances()
                    .iter()
                    .filter_map(|i| i.instance_id())
                    .map(|id| answered_id("DescribeLoadBalancers", id))
                    .collect::<Result<_, _>>()?;
                let name = d.load_balancer_name().unwrap_or_default();
                // No members, no health to ask for.
                let (health, attributes) = if registered.is_empty() {
                    (Vec::new(), attributes_of(&elb, name).await?)
                } else {
                    tokio::try_join!(health_of(&elb, name), attributes_of(&elb, name))?
                };
                balancer(
                    &region,
                    &d,
                    owner,
                    t,
                    members(&registered, &health),
                    attributes,
                )
            }
        })
        .await?;
        let mut out = out;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub(super) async fn instance_health(&self, name: &str) -> Result<Vec<Member>, CloudError> {
        let health = health_of(&self.elb, name).await?;
        Ok(members(&[], &health))
    }

    /// A balancer's tags, or `None` if it does not exist.
    async fn balancer_tags(&self, name: &str) -> Result<Option<Tags>, CloudError> {
        let answer = self
            .elb
            .describe_tags()
            .load_balancer_names(name)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeTags", e));
        Ok(found(answer)?.map(|out| {
            out.tag_descriptions()
                .first()
                .map(|d| tags_from(d.tags().iter().map(|t| (Some(t.key()), t.value()))))
                .unwrap_or_default()
        }))
    }

    pub(super) async fn create_balancer(
        &self,
        name: &BalancerName,
        p: Placement<'_>,
        listeners: &[Listener],
        tags: &Tags,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "CreateLoadBalancer";
        check_classic(OP, listeners)?;
        let Placement {
            scheme,
            zones,
            subnets,
            groups,
        } = p;
        // The name is the only key: CreateLoadBalancer on an existing name
        // succeeds, so look first and never adopt someone else's balancer.
        if let Some(existing) = self.balancer_tags(name.as_str()).await? {
            let mine = Owner::from_tags(&existing).is_some()
                && Owner::from_tags(&existing) == Owner::from_tags(tags);
            if !mine {
                return Err(refuse(
                    OP,
                    "DuplicateLoadBalancerName",
                    format!(
                        "load balancer {name} exists and is not this stack's (no matching converge tags)"
                    ),
                ));
            }
        }
        let out = self
            .elb
            .create_load_balancer()
            .load_balancer_name(name.as_str())
            .set_listeners(Some(
                listeners.iter().map(listener).collect::<Result<_, _>>()?,
            ))
            // In a VPC: Subnets (at most one per zone) instead of
            // AvailabilityZones
            // (<https://docs.aws.amazon.com/elasticloadbalancing/2012-06-01/APIReference/API_CreateLoadBalancer.html>).
            .set_availability_zones(
                (!zones.is_empty()).then(|| zones.iter().map(|z| z.to_string()).collect()),
            )
            .set_subnets(
                (!subnets.is_empty()).then(|| subnets.iter().map(|s| s.to_string()).collect()),
            )
            .set_security_groups(
                (!groups.is_empty()).then(|| groups.iter().map(|g| g.to_string()).collect()),
            )
            // AWS's default is internet-facing; only internal is sent.
            .set_scheme((scheme == Scheme::Internal).then(|| scheme.as_str().to_owned()))
            .set_tags(Some(elb_tags(tags)?))
            .send()
            .await
            .map_err(|e| sdk_error(OP, e));
        let dns_name = match out {
            Ok(out) => out.dns_name().unwrap_or_default().to_owned(),
            // moto refuses a repeat that AWS answers: an earlier attempt,
            // whose answer was lost, made the balancer. Ours if its tags
            // say so.
            Err(e) if e.kind == ErrorKind::AlreadyExists => {
                let existing = self.balancer_tags(name.as_str()).await?;
                let mine = existing
                    .as_ref()
                    .and_then(Owner::from_tags)
                    .is_some_and(|o| Some(o) == Owner::from_tags(tags));
                if !mine {
                    return Err(e);
                }
                self.describe_one(name)
                    .await?
                    .and_then(|d| d.dns_name().map(str::to_owned))
                    .unwrap_or_default()
            }
            Err(e) => return Err(e),
        };
        // CreateLoadBalancer answers the DNS name only: the zone of its
        // DNS name is AWS's per region, else one DescribeLoadBalancers away.
        let zone_id = match zone_of(self.region(), None) {
            Some(z) => z,
            None => self
                .describe_one(name)
                .await?
                .and_then(|d| d.canonical_hosted_zone_name_id().map(str::to_owned))
                .unwrap_or_default(),
        };
        Ok(Outcome::Balancer { dns_name, zone_id })
    }

    /// DescribeLoadBalancers of one name; `None` if there is none.
    async fn describe_one(
        &self,
        name: &BalancerName,
    ) -> Result<Option<LoadBalancerDescription>, CloudError> {
        let answer = self
            .elb
            .describe_load_balancers()
            .load_balancer_names(name.as_str())
            .send()
            .await
            .map_err(|e| sdk_error("DescribeLoadBalancers", e));
        Ok(found(answer)?.and_then(|out| out.load_balancer_descriptions().first().cloned()))
    }

    /// ModifyLoadBalancerAttributes: connection draining (0: off, else
    /// 1–3,600 s) and cross-zone balancing.
    pub(super) async fn modify_balancer_attributes(
        &self,
        name: &BalancerName,
        drain_secs: u32,
        cross_zone: bool,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "ModifyLoadBalancerAttributes";
        let (_, hi) = ranges::CONNECTION_DRAINING;
        if drain_secs > hi {
            return Err(refuse(
                OP,
                "InvalidConfigurationRequest",
                format!(
                    "load balancer {name}: the connection draining timeout {drain_secs}s is not within 1-{hi} (0 turns draining off)"
                ),
            ));
        }
        let draining = ConnectionDraining::builder()
            .enabled(drain_secs > 0)
            .set_timeout((drain_secs > 0).then(|| i32::try_from(drain_secs).unwrap_or(i32::MAX)))
            .build();
        let attributes = LoadBalancerAttributes::builder()
            .connection_draining(draining)
            .cross_zone_load_balancing(
                CrossZoneLoadBalancing::builder()
                    .enabled(cross_zone)
                    .build(),
            )
            .build();
        self.elb
            .modify_load_balancer_attributes()
            .load_balancer_name(name.as_str())
            .load_balancer_attributes(attributes)
            .send()
            .await
            .map_err(|e| sdk_error(OP, e))?;
        Ok(Outcome::Done)
    }

    /// ApplySecurityGroupsToLoadBalancer (in a VPC).
    pub(super) async fn apply_groups(
        &self,
        name: &BalancerName,
        groups: &[GroupId],
    ) -> Result<Outcome, CloudError> {
        self.elb
            .apply_security_groups_to_load_balancer()
            .load_balancer_name(name.as_str())
            .set_security_groups(Some(groups.iter().map(|g| g.to_string()).collect()))
            .send()
            .await
            .map_err(|e| sdk_error("ApplySecurityGroupsToLoadBalancer", e))?;
        Ok(Outcome::Done)
    }

    /// AttachLoadBalancerToSubnets.
    pub(super) async fn attach_subnets(
        &self,
        name: &BalancerName,
        subnets: &[SubnetId],
    ) -> Result<Outcome, CloudError> {
        self.elb
            .attach_load_balancer_to_subnets()
            .load_balancer_name(name.as_str())
            .set_subnets(Some(subnets.iter().map(|s| s.to_string()).collect()))
            .send()
            .await
            .map_err(|e| sdk_error("AttachLoadBalancerToSubnets", e))?;
        Ok(Outcome::Done)
    }

    /// DetachLoadBalancerFromSubnets.
    pub(super) async fn detach_subnets(
        &self,
        name: &BalancerName,
        subnets: &[SubnetId],
    ) -> Result<Outcome, CloudError> {
        self.elb
            .detach_load_balancer_from_subnets()
            .load_balancer_name(name.as_str())
            .set_subnets(Some(subnets.iter().map(|s| s.to_string()).collect()))
            .send()
            .await
            .map_err(|e| sdk_error("DetachLoadBalancerFromSubnets", e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn configure_health_check(
        &self,
        name: &BalancerName,
        h: &HealthCheck,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "ConfigureHealthCheck";
        let n = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        let check = ElbHealthCheck::builder()
            .target(&h.target)
            .interval(n(h.interval_secs))
            .timeout(n(h.timeout_secs))
            .healthy_threshold(n(h.healthy_threshold))
            .unhealthy_threshold(n(h.unhealthy_threshold))
            .build()
            .map_err(|e| refuse(OP, "InvalidHealthCheck", e.to_string()))?;
        self.elb
            .configure_health_check()
            .load_balancer_name(name.as_str())
            .health_check(check)
            .send()
            .await
            .map_err(|e| sdk_error(OP, e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn create_listeners(
        &self,
        name: &BalancerName,
        listeners: &[Listener],
    ) -> Result<Outcome, CloudError> {
        for l in listeners {
            check_classic_listener("CreateLoadBalancerListeners", l)?;
        }
        self.elb
            .create_load_balancer_listeners()
            .load_balancer_name(name.as_str())
            .set_listeners(Some(
                listeners.iter().map(listener).collect::<Result<_, _>>()?,
            ))
            .send()
            .await
            .map_err(|e| sdk_error("CreateLoadBalancerListeners", e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn delete_listeners(
        &self,
        name: &BalancerName,
        ports: &[u16],
    ) -> Result<Outcome, CloudError> {
        self.elb
            .delete_load_balancer_listeners()
            .load_balancer_name(name.as_str())
            .set_load_balancer_ports(Some(ports.iter().map(|p| i32::from(*p)).collect()))
            .send()
            .await
            .map_err(|e| sdk_error("DeleteLoadBalancerListeners", e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn enable_zones(
        &self,
        name: &BalancerName,
        zones: &[Zone],
    ) -> Result<Outcome, CloudError> {
        self.elb
            .enable_availability_zones_for_load_balancer()
            .load_balancer_name(name.as_str())
            .set_availability_zones(Some(zones.iter().map(|z| z.to_string()).collect()))
            .send()
            .await
            .map_err(|e| sdk_error("EnableAvailabilityZonesForLoadBalancer", e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn disable_zones(
        &self,
        name: &BalancerName,
        zones: &[Zone],
    ) -> Result<Outcome, CloudError> {
        self.elb
            .disable_availability_zones_for_load_balancer()
            .load_balancer_name(name.as_str())
            .set_availability_zones(Some(zones.iter().map(|z| z.to_string()).collect()))
            .send()
            .await
            .map_err(|e| sdk_error("DisableAvailabilityZonesForLoadBalancer", e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn register(
        &self,
        name: &BalancerName,
        ids: &[InstanceId],
    ) -> Result<Outcome, CloudError> {
        self.elb
            .register_instances_with_load_balancer()
            .load_balancer_name(name.as_str())
            .set_instances(Some(instances(ids)))
            .send()
            .await
            .map_err(|e| sdk_error("RegisterInstancesWithLoadBalancer", e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn deregister(
        &self,
        name: &BalancerName,
        ids: &[InstanceId],
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "DeregisterInstancesFromLoadBalancer";
        let call = |ids: &[InstanceId]| {
            self.elb
                .deregister_instances_from_load_balancer()
                .load_balancer_name(name.as_str())
                .set_instances(Some(instances(ids)))
                .send()
        };
        match call(ids).await {
            Ok(_) => Ok(Outcome::Done),
            Err(e) => {
                let e = sdk_error(OP, e);
                if e.kind == ErrorKind::Unavailable
                    && self.balancer_tags(name.as_str()).await?.is_none()
                {
                    // The balancer is gone, and its members with it. (AWS
                    // says LoadBalancerNotFound; moto 5 fails with a 500.)
                    return Err(CloudError::new(
                        ErrorKind::NotFound,
                        OP,
                        "LoadBalancerNotFound",
                        format!("load balancer {name} does not exist"),
                    ));
                }
                if e.code != "InvalidInstance" || ids.len() < 2 {
                    return Err(e);
                }
                // One instance that is gone fails the whole call:
                // deregister those still registered.
                let registered: BTreeSet<InstanceId> = health_of(&self.elb, name.as_str())
                    .await?
                    .into_iter()
                    .filter(|(_, s)| s != "Unknown")
                    .map(|(i, _)| i)
                    .collect();
                let left: Vec<InstanceId> = ids
                    .iter()
                    .filter(|i| registered.contains(*i))
                    .cloned()
                    .collect();
                if left.is_empty() {
                    return Ok(Outcome::Done);
                }
                call(&left).await.map_err(|e| sdk_error(OP, e))?;
                Ok(Outcome::Done)
            }
        }
    }

    pub(super) async fn delete_balancer(&self, name: &BalancerName) -> Result<Outcome, CloudError> {
        self.elb
            .delete_load_balancer()
            .load_balancer_name(name.as_str())
            .send()
            .await
            .map_err(|e| sdk_error("DeleteLoadBalancer", e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn tag_balancer(
        &self,
        name: &BalancerName,
        tags: &Tags,
    ) -> Result<Outcome, CloudError> {
        self.elb
            .add_tags()
            .load_balancer_names(name.as_str())
            .set_tags(Some(elb_tags(tags)?))
            .send()
            .await
            .map_err(|e| sdk_error("AddTags", e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn untag_balancer(
        &self,
        name: &BalancerName,
        keys: &[String],
    ) -> Result<Outcome, CloudError> {
        self.elb
            .remove_tags()
            .load_balancer_names(name.as_str())
            .set_tags(Some(
                keys.iter()
                    .map(|k| TagKeyOnly::builder().key(k).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| sdk_error("RemoveTags", e))?;
        Ok(Outcome::Done)
    }
}

fn instances(ids: &[InstanceId]) -> Vec<Instance> {
    ids.iter()
        .map(|i| Instance::builder().instance_id(i.as_str()).build())
        .collect()
}

/// A balancer's connection draining and cross-zone balancing
/// (DescribeLoadBalancerAttributes).
async fn attributes_of(
    elb: &aws_sdk_elasticloadbalancing::Client,
    name: &str,
) -> Result<Attributes, CloudError> {
    let out = elb
        .describe_load_balancer_attributes()
        .load_balancer_name(name)
        .send()
        .await
        .map_err(|e| sdk_error("DescribeLoadBalancerAttributes", e))?;
    Ok(read_attributes(out.load_balancer_attributes()))
}

/// Every registered instance's state (`InService`, `OutOfService`,
/// `Unknown` for one that is not registered).
async fn health_of(
    elb: &aws_sdk_elasticloadbalancing::Client,
    name: &str,
) -> Result<Vec<(InstanceId, String)>, CloudError> {
    let out = elb
        .describe_instance_health()
        .load_balancer_name(name)
        .send()
        .await
        .map_err(|e| sdk_error("DescribeInstanceHealth", e))?;
    out.instance_states()
        .iter()
        .filter_map(|s| Some((s.instance_id()?, s.state().unwrap_or("OutOfService"))))
        .map(|(id, state)| Ok((answered_id("DescribeInstanceHealth", id)?, state.to_owned())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_in_service_only_when_the_balancer_says_so() {
        let a = InstanceId::from("i-a");
        let b = InstanceId::from("i-b");
        let c = InstanceId::from("i-c");
        let m = members(
            &[a.clone(), b.clone(), c.clone()],
            &[
                (a.clone(), "InService".into()),
                (b.clone(), "OutOfService".into()),
            ],
        );
        assert_eq!(
            m,
            vec![
                Member {
                    instance: a,
                    state: MemberState::InService
                },
                Member {
                    instance: b,
                    state: MemberState::OutOfService
                },
                Member {
                    instance: c,
                    state: MemberState::OutOfService
                },
            ]
        );
    }

    #[test]
    fn listeners_round_trip() {
        let l = Listener {
            port: 80,
            instance_port: 8080,
            protocol: ListenerProtocol::Http,
            certificate: None,
        };
        assert_eq!(read_listener(&listener(&l).expect("valid")), Some(l));
        let cert = "arn:aws:acm:us-east-1:123456789012:certificate/abc";
        let l = Listener {
            port: 443,
            instance_port: 8443,
            protocol: ListenerProtocol::Https,
            certificate: Some(cert.into()),
        };
        let sent = listener(&l).expect("valid");
        assert_eq!(sent.ssl_certificate_id(), Some(cert));
        assert_eq!(read_listener(&sent), Some(l));
    }

    #[test]
    fn classic_rules_are_checked_before_calling() {
        let https = |certificate: Option<&str>| Listener {
            port: 443,
            instance_port: 8443,
            protocol: ListenerProtocol::Https,
            certificate: certificate.map(str::to_owned),
        };
        let cert = "arn:aws:iam::123456789012:server-certificate/web";
        assert!(check_classic("Op", &[https(Some(cert))]).is_ok());
        let e = check_classic("Op", &[https(None)]).expect_err("refused");
        assert_eq!(e.code, "CertificateNotFound");
        let mut udp = https(None);
        udp.protocol = ListenerProtocol::Udp;
        assert!(check_classic("Op", &[udp]).is_err());
    }

    #[test]
    fn attributes_read_draining_off_as_zero() {
        let a = LoadBalancerAttributes::builder()
            .connection_draining(
                ConnectionDraining::builder()
                    .enabled(false)
                    .timeout(300)
                    .build(),
            )
            .cross_zone_load_balancing(CrossZoneLoadBalancing::builder().enabled(true).build())
            .build();
        assert_eq!(
            read_attributes(Some(&a)),
            Attributes {
                drain_secs: Some(0),
                cross_zone: Some(true)
            }
        );
        assert_eq!(read_attributes(None), Attributes::default());
    }
}
