//! Elastic Load Balancing v2: application and network balancers, their
//! target groups (of instances) and listeners, through the
//! `elasticloadbalancing` 2015-12-01 API
//! (<https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/>).
//!
//! Every [`Op`](crate::cloud::Op) names balancers and target groups by
//! name; the API wants ARNs. The backend keeps a cache from names to ARNs
//! (and a balancer's VPC and type), filled by observation and by
//! creation; a miss is one DescribeLoadBalancers or DescribeTargetGroups
//! by name, and an ARN that AWS no longer knows is forgotten, so a retry
//! looks again.
//!
//! Observation is a constant number of calls for a stack that does not
//! change: DescribeLoadBalancers (400 per page) **1**, and only when the
//! account has an elbv2 balancer: DescribeTargetGroups (400 per page)
//! **1**, DescribeTags **1 per 20 balancers and target groups of the
//! account**, DescribeListeners **1 per balancer of the stack**, and
//! DescribeTargetHealth and DescribeTargetGroupAttributes **1 each per
//! target group of the stack**.
//!
//! A target group belongs to the balancer named by its
//! `converge:balancer` tag, which the backend adds at creation (a group
//! no listener forwards to yet, or any more, still has it), else to the
//! first balancer AWS says it serves.

use super::ec2::filter;
use super::error::{found, refuse, sdk_error};
use super::{AwsCloud, bounded, lock, tags_from};
use crate::cloud::{CloudError, ErrorKind, Outcome, answered_id};
use aws_sdk_elasticloadbalancingv2::Client;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, Certificate, IpAddressType, Listener as V2Listener, LoadBalancer,
    LoadBalancerSchemeEnum, LoadBalancerTypeEnum, Matcher, ProtocolEnum, Tag, TargetDescription,
    TargetGroup, TargetGroupAttribute, TargetHealthStateEnum, TargetTypeEnum,
};
use converge_core::desired::{Listener, ListenerProtocol, Tags};
use converge_core::elb::{self, BalancerType, Scheme, TargetHealthCheck, ranges};
use converge_core::ids::{
    BalancerName, GroupId, InstanceId, Kind, ResourceName, SubnetId, TargetGroupName, VpcId, Zone,
    tags,
};
use converge_core::observed::{
    Member, MemberState, ObservedBalancer, ObservedTargetGroup, Owner, StrayTargetGroup,
};
use std::collections::{BTreeMap, BTreeSet};

/// The tag the backend adds to a target group at creation: the cloud name
/// of the balancer it serves.
pub(super) const BALANCER_TAG: &str = "converge:balancer";

/// The most ARNs one DescribeTags takes.
const TAG_ARNS: usize = 20;

/// The security policy of HTTPS and TLS listeners: TLS 1.3 and 1.2 with
/// forward secrecy only, the policy AWS recommends and gives listeners
/// made in its console
/// (<https://docs.aws.amazon.com/elasticloadbalancing/latest/application/describe-ssl-policies.html>;
/// the API's own default, `ELBSecurityPolicy-2016-08`, still allows TLS
/// 1.0). Application and network balancers both take it.
pub const SSL_POLICY: &str = "ELBSecurityPolicy-TLS13-1-2-2021-06";

/// The target group attribute of the deregistration delay.
const DEREGISTRATION_DELAY: &str = "deregistration_delay.timeout_seconds";

/// What the API needs to know of a balancer converge names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct BalancerRef {
    /// Its ARN.
    pub(super) arn: String,
    /// Its VPC (where its target groups are made).
    pub(super) vpc: Option<VpcId>,
    /// Application or network.
    pub(super) kind: BalancerType,
}

/// Names to ARNs, filled by observation and creation.
#[derive(Debug, Default)]
pub(super) struct Elbv2Cache {
    balancers: BTreeMap<BalancerName, BalancerRef>,
    target_groups: BTreeMap<TargetGroupName, GroupRef>,
}

/// What the API needs to know of a target group converge names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct GroupRef {
    /// Its ARN.
    arn: String,
    /// The type of balancer it serves, which its protocol tells.
    kind: BalancerType,
}

impl GroupRef {
    fn of(g: &TargetGroup) -> Option<GroupRef> {
        Some(GroupRef {
            arn: g.target_group_arn()?.to_owned(),
            kind: group_kind(protocol_of(g.protocol())?),
        })
    }
}

/// The type of balancer a target group of this protocol serves: HTTP and
/// HTTPS ones an application balancer, the others a network one.
pub(super) fn group_kind(p: ListenerProtocol) -> BalancerType {
    match p {
        ListenerProtocol::Http | ListenerProtocol::Https => BalancerType::Application,
        _ => BalancerType::Network,
    }
}

// ---------------------------------------------------------------------
// Rules converge checks before calling AWS (moto checks few of them).
// ---------------------------------------------------------------------

/// An elbv2 balancer or target group name: 1–32 letters, digits and
/// hyphens, no hyphen first or last; a balancer's may not begin with
/// `internal-` (CreateLoadBalancer, CreateTargetGroup `Name`).
pub(super) fn check_name(op: &'static str, what: &str, name: &str) -> Result<(), CloudError> {
    let internal = what == "load balancer" && name.starts_with("internal-");
    let ok = !name.is_empty()
        && name.len() <= elb::NAME_MAX
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !internal;
    if ok {
        Ok(())
    } else {
        Err(refuse(
            op,
            "ValidationError",
            format!(
                "{what} name {name:?} must be 1-{} letters, digits and hyphens, not beginning or \
                 ending with a hyphen{}",
                elb::NAME_MAX,
                if what == "load balancer" {
                    ", nor beginning with \"internal-\""
                } else {
                    ""
                }
            ),
        ))
    }
}

/// A new balancer's placement: an application balancer needs subnets in
/// at least two zones, a network one at least one; at most one subnet
/// per zone (CreateLoadBalancer `Subnets`); a network balancer's scheme
/// and type are fixed at creation.
pub(super) fn check_placement(
    op: &'static str,
    name: &BalancerName,
    kind: BalancerType,
    zones: &[Zone],
    subnets: &[SubnetId],
) -> Result<(), CloudError> {
    if kind == BalancerType::Classic {
        return Err(refuse(
            op,
            "ValidationError",
            format!("{name} is a classic balancer: elbv2 calls take application and network ones"),
        ));
    }
    if !zones.is_empty() && !subnets.is_empty() {
        return Err(refuse(
            op,
            "ValidationError",
            format!("{name}: give zones or subnets, not both"),
        ));
    }
    let n = zones.len().max(subnets.len());
    let least = if kind == BalancerType::Application {
        2
    } else {
        1
    };
    if n < least {
        return Err(refuse(
            op,
            "ValidationError",
            format!(
                "{name}: an {kind} load balancer needs subnets in at least {least} availability \
                 zone{}",
                if least == 1 { "" } else { "s" }
            ),
        ));
    }
    let distinct: BTreeSet<&Zone> = zones.iter().collect();
    if distinct.len() != zones.len() {
        return Err(refuse(
            op,
            "ValidationError",
            format!("{name}: a zone is named twice"),
        ));
    }
    Ok(())
}

/// A listener of this type of balancer: a protocol the type takes, a port
/// of 1–65535, a certificate exactly when TLS ends at the balancer (HTTPS,
/// TLS), and an ACM or IAM certificate ARN (CreateListener `Certificates`).
pub(super) fn check_listener(
    op: &'static str,
    kind: BalancerType,
    l: &Listener,
) -> Result<(), CloudError> {
    if !kind.listener_protocols().contains(&l.protocol) {
        return Err(refuse(
            op,
            "UnsupportedProtocol",
            format!(
                "an {kind} load balancer does not take {} listeners (it takes {})",
                l.protocol.as_str(),
                protocols(kind.listener_protocols())
            ),
        ));
    }
    if l.port == 0 || l.instance_port == 0 {
        return Err(refuse(
            op,
            "ValidationError",
            format!("listener {l}: ports are 1-65535"),
        ));
    }
    check_certificate(op, l)
}

/// A certificate exactly on the listeners whose TLS ends at the balancer,
/// and one that looks like an ACM or IAM server certificate ARN.
pub(super) fn check_certificate(op: &'static str, l: &Listener) -> Result<(), CloudError> {
    match (&l.certificate, elb::needs_certificate(l.protocol)) {
        (None, true) => Err(refuse(
            op,
            "CertificateNotFound",
            format!(
                "listener {l}: a {} listener needs a certificate",
                l.protocol.as_str()
            ),
        )),
        (Some(_), false) => Err(refuse(
            op,
            "ValidationError",
            format!(
                "listener {l}: a {} listener takes no certificate",
                l.protocol.as_str()
            ),
        )),
        (Some(c), true) if !certificate_arn(c) => Err(refuse(
            op,
            "CertificateNotFound",
            format!(
                "listener {l}: {c:?} is not an ACM certificate ARN \
                 (arn:aws:acm:REGION:ACCOUNT:certificate/ID) nor an IAM server certificate ARN \
                 (arn:aws:iam::ACCOUNT:server-certificate/NAME)"
            ),
        )),
        _ => Ok(()),
    }
}

/// Whether `s` has the shape of an ACM or IAM server certificate ARN (in
/// any partition).
pub(super) fn certificate_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts.as_slice() else {
        return false;
    };
    let account_ok = account.len() == 12 && account.chars().all(|c| c.is_ascii_digit());
    *arn == "arn"
        && partition.starts_with("aws")
        && account_ok
        && match *service {
            "acm" => {
                !region.is_empty()
                    && resource.len() > "certificate/".len()
                    && resource.starts_with("certificate/")
            }
            "iam" => {
                region.is_empty()
                    && resource.len() > "server-certificate/".len()
                    && resource.starts_with("server-certificate/")
            }
            _ => false,
        }
}

fn protocols(ps: &[ListenerProtocol]) -> String {
    ps.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
}

/// A target group's settings (CreateTargetGroup, ModifyTargetGroup):
/// the protocol a balancer of its type speaks to targets, a port, and a
/// health check in AWS's ranges: interval 5–300 s, timeout 2–120 s and
/// below the interval, thresholds 2–10, a path (HTTP and HTTPS only)
/// beginning with `/` of at most 1,024 characters, a matcher (HTTP and
/// HTTPS only) of codes or ranges within 200–499 (application) or 200–599
/// (network).
pub(super) fn check_health_check(
    op: &'static str,
    group: &TargetGroupName,
    kind: BalancerType,
    h: &TargetHealthCheck,
) -> Result<(), CloudError> {
    let bad = |m: String| {
        Err(refuse(
            op,
            "ValidationError",
            format!("target group {group}: {m}"),
        ))
    };
    if !kind.health_protocols().contains(&h.protocol) {
        return bad(format!(
            "an {kind} balancer's health checks are {}, not {}",
            protocols(kind.health_protocols()),
            h.protocol.as_str()
        ));
    }
    let within = |v: u32, (lo, hi): (u32, u32)| (lo..=hi).contains(&v);
    if !within(h.interval_secs, ranges::INTERVAL) {
        return bad(format!(
            "the health check interval {}s is not within 5-300",
            h.interval_secs
        ));
    }
    if !within(h.timeout_secs, ranges::TIMEOUT) || h.timeout_secs >= h.interval_secs {
        return bad(format!(
            "the health check timeout {}s must be 2-120 and below the interval ({}s)",
            h.timeout_secs, h.interval_secs
        ));
    }
    for (what, v) in [
        ("healthy", h.healthy_threshold),
        ("unhealthy", h.unhealthy_threshold),
    ] {
        if !within(v, ranges::THRESHOLD) {
            return bad(format!("the {what} threshold {v} is not within 2-10"));
        }
    }
    if h.port == Some(0) {
        return bad("the health check port is 1-65535 (or the traffic port)".into());
    }
    let http = matches!(h.protocol, ListenerProtocol::Http | ListenerProtocol::Https);
    if !http && (h.path.is_some() || h.matcher.is_some()) {
        return bad(format!(
            "a {} health check takes no path nor matcher",
            h.protocol.as_str()
        ));
    }
    if let Some(p) = &h.path
        && (!p.starts_with('/') || p.len() > ranges::PATH_LEN)
    {
        return bad(format!(
            "the health check path {p:?} must begin with / and be at most 1024 characters"
        ));
    }
    if let Some(m) = &h.matcher
        && !matcher_ok(m, kind.matcher_range())
    {
        let (lo, hi) = kind.matcher_range();
        return bad(format!(
            "the matcher {m:?} must be HTTP codes (200,202) or ranges (200-299) within {lo}-{hi}"
        ));
    }
    Ok(())
}

/// Whether a matcher is codes and ranges of codes, all within `range`.
pub(super) fn matcher_ok(m: &str, (lo, hi): (u16, u16)) -> bool {
    let code = |s: &str| s.parse::<u16>().ok().filter(|c| (lo..=hi).contains(c));
    !m.is_empty()
        && m.split(',').all(|part| match part.split_once('-') {
            Some((a, b)) => matches!((code(a), code(b)), (Some(a), Some(b)) if a <= b),
            None => code(part).is_some(),
        })
}

/// A deregistration delay of 0–3,600 s.
pub(super) fn check_delay(
    op: &'static str,
    group: &TargetGroupName,
    secs: u32,
) -> Result<(), CloudError> {
    let (lo, hi) = ranges::DEREGISTRATION_DELAY;
    if (lo..=hi).contains(&secs) {
        Ok(())
    } else {
        Err(refuse(
            op,
            "ValidationError",
            format!("target group {group}: the deregistration delay {secs}s is not within 0-3600"),
        ))
    }
}

// ---------------------------------------------------------------------
// Reading what the API answers.
// ---------------------------------------------------------------------

fn balancer_type(t: Option<&LoadBalancerTypeEnum>) -> Option<BalancerType> {
    match t? {
        LoadBalancerTypeEnum::Application => Some(BalancerType::Application),
        LoadBalancerTypeEnum::Network => Some(BalancerType::Network),
        _ => None,
    }
}

fn scheme_of(s: Option<&LoadBalancerSchemeEnum>) -> Scheme {
    match s {
        Some(LoadBalancerSchemeEnum::Internal) => Scheme::Internal,
        _ => Scheme::InternetFacing,
    }
}

fn protocol_of(p: Option<&ProtocolEnum>) -> Option<ListenerProtocol> {
    ListenerProtocol::parse(&p?.as_str().to_ascii_uppercase())
}

fn api_protocol(p: ListenerProtocol) -> ProtocolEnum {
    ProtocolEnum::from(p.as_str())
}

fn port(v: Option<i32>) -> u16 {
    v.and_then(|p| u16::try_from(p).ok()).unwrap_or(0)
}

/// A target's state as converge sees it; `None` for `unused` (not
/// registered, or in a group no listener uses, or in a zone the balancer
/// does not serve: no traffic either way).
pub(super) fn member_state(s: Option<&TargetHealthStateEnum>) -> Option<MemberState> {
    Some(match s? {
        TargetHealthStateEnum::Healthy => MemberState::InService,
        TargetHealthStateEnum::Initial => MemberState::Initial,
        TargetHealthStateEnum::Draining => MemberState::Draining,
        TargetHealthStateEnum::Unused => return None,
        // unhealthy, unhealthy.draining (still registered), unavailable.
        _ => MemberState::OutOfService,
    })
}

/// Each instance once, in the worst state it has in any of the groups.
pub(super) fn worst_members<'a>(groups: impl IntoIterator<Item = &'a [Member]>) -> Vec<Member> {
    let mut worst: BTreeMap<InstanceId, MemberState> = BTreeMap::new();
    for m in groups.into_iter().flatten() {
        worst
            .entry(m.instance.clone())
            .and_modify(|s| *s = (*s).max(m.state))
            .or_insert(m.state);
    }
    worst
        .into_iter()
        .map(|(instance, state)| Member { instance, state })
        .collect()
}

fn read_health_check(g: &TargetGroup) -> TargetHealthCheck {
    let n = |v: Option<i32>| v.and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
    let protocol = protocol_of(g.health_check_protocol()).unwrap_or(ListenerProtocol::Http);
    let http = matches!(protocol, ListenerProtocol::Http | ListenerProtocol::Https);
    TargetHealthCheck {
        protocol,
        port: g
            .health_check_port()
            .filter(|p| *p != "traffic-port")
            .and_then(|p| p.parse().ok()),
        path: g.health_check_path().filter(|_| http).map(str::to_owned),
        matcher: g
            .matcher()
            .and_then(Matcher::http_code)
            .filter(|_| http)
            .map(str::to_owned),
        interval_secs: n(g.health_check_interval_seconds()),
        timeout_secs: n(g.health_check_timeout_seconds()),
        healthy_threshold: n(g.healthy_threshold_count()),
        unhealthy_threshold: n(g.unhealthy_threshold_count()),
    }
}

/// A listener as converge knows it: its port and protocol, the port of
/// the target group it forwards to, and its default certificate.
fn read_listener(l: &V2Listener, group_ports: &BTreeMap<String, u16>) -> Option<Listener> {
    let port = port(l.port());
    let forward = l
        .default_actions()
        .iter()
        .find(|a| a.r#type() == Some(&ActionTypeEnum::Forward))
        .and_then(forwarded_group);
    let certificate = l
        .certificates()
        .iter()
        .find(|c| c.is_default() != Some(false))
        .and_then(|c| c.certificate_arn())
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    Some(Listener {
        port,
        instance_port: forward
            .and_then(|arn| group_ports.get(arn).copied())
            .unwrap_or(port),
        protocol: protocol_of(l.protocol())?,
        certificate,
    })
}

/// The target group a forward action sends to.
fn forwarded_group(a: &Action) -> Option<&str> {
    a.target_group_arn().or_else(|| {
        a.forward_config()?
            .target_groups()
            .first()?
            .target_group_arn()
    })
}

fn v2_tags(t: &Tags) -> Vec<Tag> {
    t.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn forward(target_group_arn: &str) -> Action {
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .target_group_arn(target_group_arn)
        .build()
}

fn not_found(op: &'static str, code: &str, message: String) -> CloudError {
    CloudError::new(ErrorKind::NotFound, op, code, message)
}

/// The stack's own: tagged with its name.
fn in_stack(t: &Tags, stack: &ResourceName) -> bool {
    t.get(tags::STACK).is_some_and(|s| s == stack.as_str())
}

/// What one observation read of the account's elbv2 resources.
struct Account {
    balancers: Vec<LoadBalancer>,
    groups: Vec<TargetGroup>,
    tags: BTreeMap<String, Tags>,
}

/// One of the stack's target groups, read.
struct GroupRead {
    balancer_arn: Option<String>,
    group: ObservedTargetGroup,
}

impl AwsCloud {
    /// The stack's application and network balancers, with their target
    /// groups, listeners and targets.
    pub(super) async fn observe_balancers_v2(
        &self,
        stack: &ResourceName,
    ) -> Result<(Vec<ObservedBalancer>, Vec<StrayTargetGroup>), CloudError> {
        let Some(account) = self.read_account_v2().await? else {
            return Ok((Vec::new(), Vec::new()));
        };
        let mut mine = Vec::new();
        for b in &account.balancers {
            let (Some(arn), Some(name)) = (b.load_balancer_arn(), b.load_balancer_name()) else {
                continue;
            };
            let Some(t) = account.tags.get(arn).filter(|t| in_stack(t, stack)) else {
                continue;
            };
            let Some(owner) = Owner::from_tags(t).filter(|o| o.kind == Kind::Balancer) else {
                continue;
            };
            let Some(kind) = balancer_type(b.r#type()) else {
                continue;
            };
            let name: BalancerName = answered_id("DescribeLoadBalancers", name)?;
            let vpc = b
                .vpc_id()
                .map(|v| answered_id("DescribeLoadBalancers", v))
                .transpose()?;
            self.remember_balancer(
                &name,
                BalancerRef {
                    arn: arn.to_owned(),
                    vpc,
                    kind,
                },
            );
            mine.push((b.clone(), name, kind, owner, t.clone()));
        }
        let by_name: BTreeMap<&str, &str> = account
            .balancers
            .iter()
            .filter_map(|b| Some((b.load_balancer_name()?, b.load_balancer_arn()?)))
            .collect();
        let stack_groups: Vec<(TargetGroup, Option<String>)> = account
            .groups
            .iter()
            .filter_map(|g| {
                let t = account.tags.get(g.target_group_arn()?)?;
                if !in_stack(t, stack) {
                    return None;
                }
                let by_tag = t
                    .get(BALANCER_TAG)
                    .and_then(|n| by_name.get(n.as_str()))
                    .map(|a| (*a).to_owned());
                let lb = by_tag.or_else(|| g.load_balancer_arns().first().cloned());
                Some((g.clone(), lb))
            })
            .collect();
        let group_ports: BTreeMap<String, u16> = account
            .groups
            .iter()
            .filter_map(|g| Some((g.target_group_arn()?.to_owned(), port(g.port()))))
            .collect();
        // A group whose balancer is not one of the stack's observed ones
        // was left behind; only its name and owner are read.
        let mine_arns: BTreeSet<&str> = mine
            .iter()
            .filter_map(|m| m.0.load_balancer_arn())
            .collect();
        let (stack_groups, strays): (Vec<_>, Vec<_>) = stack_groups
            .into_iter()
            .partition(|(_, lb)| lb.as_deref().is_some_and(|a| mine_arns.contains(a)));
        let mut stray_groups = Vec::new();
        for (g, _) in &strays {
            let tags = g.target_group_arn().and_then(|a| account.tags.get(a));
            if let (Some(name), Some(owner)) = (
                g.target_group_name(),
                tags.and_then(Owner::from_tags)
                    .filter(|o| o.kind == Kind::Balancer),
            ) {
                stray_groups.push(StrayTargetGroup {
                    name: answered_id("DescribeTargetGroups", name)?,
                    balancer: owner.name,
                });
            }
        }
        stray_groups.sort_by(|a, b| a.name.cmp(&b.name));
        let groups = self.read_groups(stack_groups).await?;
        let client = self.elbv2.clone();
        let listeners = bounded(
            mine.iter()
                .map(|m| m.0.load_balancer_arn().unwrap_or_default().to_owned())
                .collect(),
            8,
            move |arn| {
                let client = client.clone();
                async move { listeners_of(&client, &arn).await }
            },
        )
        .await?;
        let mut out = Vec::new();
        for ((b, name, kind, owner, t), ls) in mine.into_iter().zip(listeners) {
            let arn = b.load_balancer_arn().unwrap_or_default();
            let mut ls: Vec<Listener> = ls
                .iter()
                .filter_map(|l| read_listener(l, &group_ports))
                .collect();
            ls.sort();
            let mut target_groups: Vec<ObservedTargetGroup> = groups
                .iter()
                .filter(|g| g.balancer_arn.as_deref() == Some(arn))
                .map(|g| g.group.clone())
                .collect();
            target_groups.sort_by(|a, b| a.name.cmp(&b.name));
            out.push(observed_balancer(
                &b,
                name,
                kind,
                owner,
                t,
                ls,
                target_groups,
            )?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((out, stray_groups))
    }

    /// Every elbv2 balancer and target group of the account, with their
    /// tags; `None` when there is neither.
    async fn read_account_v2(&self) -> Result<Option<Account>, CloudError> {
        let mut pages = self
            .elbv2
            .describe_load_balancers()
            .page_size(400)
            .into_paginator()
            .send();
        let mut balancers = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("DescribeLoadBalancers", e))?;
            balancers.extend(page.load_balancers().iter().cloned());
        }
        // Target groups are read even without balancers: a run stopped
        // between DeleteLoadBalancer and DeleteTargetGroup leaves some.
        let mut pages = self
            .elbv2
            .describe_target_groups()
            .page_size(400)
            .into_paginator()
            .send();
        let mut groups = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("DescribeTargetGroups", e))?;
            groups.extend(page.target_groups().iter().cloned());
        }
        if balancers.is_empty() && groups.is_empty() {
            return Ok(None);
        }
        let arns: Vec<String> = balancers
            .iter()
            .filter_map(|b| b.load_balancer_arn().map(str::to_owned))
            .chain(
                groups
                    .iter()
                    .filter_map(|g| g.target_group_arn().map(str::to_owned)),
            )
            .collect();
        let tags = self.tags_of(arns).await?;
        Ok(Some(Account {
            balancers,
            groups,
            tags,
        }))
    }

    /// Whether the balancer or target group `arn` carries converge's
    /// ownership tags, the same owner as `tags` names.
    async fn owned_as(&self, arn: &str, tags: &Tags) -> Result<bool, CloudError> {
        let theirs = self.tags_of(vec![arn.to_owned()]).await?;
        let have = theirs.get(arn).and_then(Owner::from_tags);
        Ok(have.is_some() && have == Owner::from_tags(tags))
    }

    /// DescribeTags, 20 ARNs a call.
    async fn tags_of(&self, arns: Vec<String>) -> Result<BTreeMap<String, Tags>, CloudError> {
        let chunks: Vec<Vec<String>> = arns.chunks(TAG_ARNS).map(<[String]>::to_vec).collect();
        let client = self.elbv2.clone();
        let pages = bounded(chunks, 4, move |chunk| {
            let client = client.clone();
            async move {
                let out = client
                    .describe_tags()
                    .set_resource_arns(Some(chunk))
                    .send()
                    .await
                    .map_err(|e| sdk_error("DescribeTags", e))?;
                Ok(out
                    .tag_descriptions()
                    .iter()
                    .filter_map(|d| {
                        Some((
                            d.resource_arn()?.to_owned(),
                            tags_from(d.tags().iter().map(|t| (t.key(), t.value()))),
                        ))
                    })
                    .collect::<Vec<_>>())
            }
        })
        .await?;
        Ok(pages.into_iter().flatten().collect())
    }

    /// The stack's target groups with their targets and deregistration
    /// delays (DescribeTargetHealth and DescribeTargetGroupAttributes per
    /// group), remembered by name.
    async fn read_groups(
        &self,
        groups: Vec<(TargetGroup, Option<String>)>,
    ) -> Result<Vec<GroupRead>, CloudError> {
        for (g, _) in &groups {
            if let (Some(name), Some(r)) = (g.target_group_name(), GroupRef::of(g)) {
                let name: TargetGroupName = answered_id("DescribeTargetGroups", name)?;
                lock(&self.elbv2_cache).target_groups.insert(name, r);
            }
        }
        let client = self.elbv2.clone();
        bounded(groups, 8, move |(g, balancer_arn)| {
            let client = client.clone();
            async move {
                let arn = g.target_group_arn().unwrap_or_default().to_owned();
                let (members, delay) =
                    tokio::try_join!(target_health(&client, &arn), delay_of(&client, &arn))?;
                Ok(GroupRead {
                    balancer_arn,
                    group: ObservedTargetGroup {
                        name: answered_id(
                            "DescribeTargetGroups",
                            g.target_group_name().unwrap_or_default(),
                        )?,
                        protocol: protocol_of(g.protocol()).unwrap_or(ListenerProtocol::Http),
                        port: port(g.port()),
                        health_check: read_health_check(&g),
                        deregistration_delay_secs: delay,
                        members,
                    },
                })
            }
        })
        .await
    }

    fn remember_balancer(&self, name: &BalancerName, r: BalancerRef) {
        lock(&self.elbv2_cache).balancers.insert(name.clone(), r);
    }

    fn forget_balancer(&self, name: &BalancerName) {
        lock(&self.elbv2_cache).balancers.remove(name);
    }

    fn forget_group(&self, name: &TargetGroupName) {
        lock(&self.elbv2_cache).target_groups.remove(name);
    }

    /// An elbv2 balancer by name: from the cache, else one
    /// DescribeLoadBalancers; `None` if there is none.
    pub(super) async fn find_balancer_v2(
        &self,
        name: &BalancerName,
    ) -> Result<Option<BalancerRef>, CloudError> {
        if let Some(r) = lock(&self.elbv2_cache).balancers.get(name).cloned() {
            return Ok(Some(r));
        }
        let Some(b) = self.describe_balancer_v2(name).await? else {
            return Ok(None);
        };
        let r = BalancerRef {
            arn: b.load_balancer_arn().unwrap_or_default().to_owned(),
            vpc: b
                .vpc_id()
                .map(|v| answered_id("DescribeLoadBalancers", v))
                .transpose()?,
            kind: balancer_type(b.r#type()).unwrap_or(BalancerType::Application),
        };
        self.remember_balancer(name, r.clone());
        Ok(Some(r))
    }

    /// DescribeLoadBalancers by name; `None` if there is none.
    async fn describe_balancer_v2(
        &self,
        name: &BalancerName,
    ) -> Result<Option<LoadBalancer>, CloudError> {
        let answer = self
            .elbv2
            .describe_load_balancers()
            .names(name.as_str())
            .send()
            .await
            .map_err(|e| sdk_error("DescribeLoadBalancers", e));
        Ok(found(answer)?.and_then(|out| out.load_balancers().first().cloned()))
    }

    /// A balancer that must exist.
    async fn balancer_v2(
        &self,
        op: &'static str,
        name: &BalancerName,
    ) -> Result<BalancerRef, CloudError> {
        self.find_balancer_v2(name).await?.ok_or_else(|| {
            not_found(
                op,
                "LoadBalancerNotFound",
                format!("load balancer {name} does not exist"),
            )
        })
    }

    /// A target group by name: from the cache, else one
    /// DescribeTargetGroups; `None` if there is none.
    async fn find_group(&self, name: &TargetGroupName) -> Result<Option<TargetGroup>, CloudError> {
        let answer = self
            .elbv2
            .describe_target_groups()
            .names(name.as_str())
            .send()
            .await
            .map_err(|e| sdk_error("DescribeTargetGroups", e));
        Ok(found(answer)?.and_then(|out| out.target_groups().first().cloned()))
    }

    /// A target group's ARN and type, which must exist.
    async fn group_ref(
        &self,
        op: &'static str,
        name: &TargetGroupName,
    ) -> Result<GroupRef, CloudError> {
        if let Some(r) = lock(&self.elbv2_cache).target_groups.get(name).cloned() {
            return Ok(r);
        }
        let r = self
            .find_group(name)
            .await?
            .as_ref()
            .and_then(GroupRef::of)
            .ok_or_else(|| {
                not_found(
                    op,
                    "TargetGroupNotFound",
                    format!("target group {name} does not exist"),
                )
            })?;
        lock(&self.elbv2_cache)
            .target_groups
            .insert(name.clone(), r.clone());
        Ok(r)
    }

    /// A target group's ARN, which must exist.
    async fn group_arn(
        &self,
        op: &'static str,
        name: &TargetGroupName,
    ) -> Result<String, CloudError> {
        Ok(self.group_ref(op, name).await?.arn)
    }

    /// Forgets a balancer's ARN when AWS says it is gone, so that the
    /// next try looks again.
    fn on_balancer_error(&self, name: &BalancerName, e: CloudError) -> CloudError {
        if e.kind == ErrorKind::NotFound && e.code == "LoadBalancerNotFound" {
            self.forget_balancer(name);
        }
        e
    }

    fn on_group_error(&self, name: &TargetGroupName, e: CloudError) -> CloudError {
        if e.kind == ErrorKind::NotFound && e.code == "TargetGroupNotFound" {
            self.forget_group(name);
        }
        e
    }

    /// The default subnet of each zone (DescribeSubnets `default-for-az`),
    /// in the zones' order; a zone without one is refused.
    async fn default_subnets(
        &self,
        op: &'static str,
        zones: &[Zone],
    ) -> Result<Vec<SubnetId>, CloudError> {
        let out = self
            .ec2
            .describe_subnets()
            .filters(filter("default-for-az", ["true".to_owned()]))
            .filters(filter(
                "availability-zone",
                zones.iter().map(|z| z.to_string()),
            ))
            .send()
            .await
            .map_err(|e| sdk_error("DescribeSubnets", e))?;
        let by_zone: BTreeMap<&str, &str> = out
            .subnets()
            .iter()
            .filter_map(|s| Some((s.availability_zone()?, s.subnet_id()?)))
            .collect();
        zones
            .iter()
            .map(|z| match by_zone.get(z.as_str()) {
                Some(id) => answered_id("DescribeSubnets", *id),
                None => Err(refuse(
                    op,
                    "SubnetNotFound",
                    format!(
                        "zone {z} has no default subnet: name the balancer's subnets (a Network) \
                         instead of zones"
                    ),
                )),
            })
            .collect()
    }

    /// Subnets as given, or the default subnets of the zones.
    async fn subnets_or_defaults(
        &self,
        op: &'static str,
        zones: &[Zone],
        subnets: &[SubnetId],
    ) -> Result<Vec<SubnetId>, CloudError> {
        if subnets.is_empty() {
            self.default_subnets(op, zones).await
        } else {
            Ok(subnets.to_vec())
        }
    }

    /// CreateLoadBalancer (elbv2), tagged at creation. The name is the
    /// only key: an existing balancer of the name is answered if it is
    /// this stack's (a re-run), refused if not.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn create_load_balancer_v2(
        &self,
        name: &BalancerName,
        kind: BalancerType,
        scheme: Scheme,
        zones: &[Zone],
        subnets: &[SubnetId],
        groups: &[GroupId],
        tags: &Tags,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "CreateLoadBalancer";
        check_name(OP, "load balancer", name.as_str())?;
        check_placement(OP, name, kind, zones, subnets)?;
        if let Some(done) = self.existing_balancer_v2(name, tags).await? {
            return Ok(done);
        }
        let subnets = self.subnets_or_defaults(OP, zones, subnets).await?;
        let out = self
            .elbv2
            .create_load_balancer()
            .name(name.as_str())
            .r#type(match kind {
                BalancerType::Network => LoadBalancerTypeEnum::Network,
                _ => LoadBalancerTypeEnum::Application,
            })
            .scheme(LoadBalancerSchemeEnum::from(scheme.as_str()))
            .ip_address_type(IpAddressType::Ipv4)
            .set_subnets(Some(subnets.iter().map(|s| s.to_string()).collect()))
            .set_security_groups(
                (!groups.is_empty()).then(|| groups.iter().map(|g| g.to_string()).collect()),
            )
            .set_tags((!tags.is_empty()).then(|| v2_tags(tags)))
            .send()
            .await
            .map_err(|e| sdk_error(OP, e));
        let out = match out {
            Ok(out) => out,
            // An earlier attempt's answer was lost and the SDK sent it
            // again: the balancer that attempt made is this stack's.
            Err(e) if e.kind == ErrorKind::AlreadyExists => {
                return match self.existing_balancer_v2(name, tags).await? {
                    Some(done) => Ok(done),
                    None => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        let Some(b) = out.load_balancers().first() else {
            return Err(CloudError::new(
                ErrorKind::Unavailable,
                OP,
                "MissingBalancer",
                "the response carried no load balancer",
            ));
        };
        self.created(name, b)
    }

    /// The outcome of creating a balancer of the name that is already
    /// there and this stack's; `None` when there is none; refused when it
    /// is someone else's.
    async fn existing_balancer_v2(
        &self,
        name: &BalancerName,
        tags: &Tags,
    ) -> Result<Option<Outcome>, CloudError> {
        let Some(existing) = self.describe_balancer_v2(name).await? else {
            return Ok(None);
        };
        let arn = existing.load_balancer_arn().unwrap_or_default();
        if !self.owned_as(arn, tags).await? {
            return Err(refuse(
                "CreateLoadBalancer",
                "DuplicateLoadBalancerName",
                format!(
                    "load balancer {name} exists and is not this stack's (no matching converge tags)"
                ),
            ));
        }
        self.created(name, &existing).map(Some)
    }

    /// Remembers a balancer and answers its DNS name and zone.
    fn created(&self, name: &BalancerName, b: &LoadBalancer) -> Result<Outcome, CloudError> {
        let r = BalancerRef {
            arn: b.load_balancer_arn().unwrap_or_default().to_owned(),
            vpc: b
                .vpc_id()
                .map(|v| answered_id("CreateLoadBalancer", v))
                .transpose()?,
            kind: balancer_type(b.r#type()).unwrap_or(BalancerType::Application),
        };
        self.remember_balancer(name, r);
        Ok(Outcome::Balancer {
            dns_name: b.dns_name().unwrap_or_default().to_owned(),
            zone_id: b.canonical_hosted_zone_id().unwrap_or_default().to_owned(),
        })
    }

    /// SetSecurityGroups.
    pub(super) async fn set_security_groups_v2(
        &self,
        name: &BalancerName,
        groups: &[GroupId],
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "SetSecurityGroups";
        let b = self.balancer_v2(OP, name).await?;
        self.elbv2
            .set_security_groups()
            .load_balancer_arn(&b.arn)
            .set_security_groups(Some(groups.iter().map(|g| g.to_string()).collect()))
            .send()
            .await
            .map_err(|e| self.on_balancer_error(name, sdk_error(OP, e)))?;
        Ok(Outcome::Done)
    }

    /// SetSubnets: the whole list (zones: their default subnets).
    pub(super) async fn set_subnets_v2(
        &self,
        name: &BalancerName,
        zones: &[Zone],
        subnets: &[SubnetId],
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "SetSubnets";
        let b = self.balancer_v2(OP, name).await?;
        check_placement(OP, name, b.kind, zones, subnets)?;
        let subnets = self.subnets_or_defaults(OP, zones, subnets).await?;
        self.elbv2
            .set_subnets()
            .load_balancer_arn(&b.arn)
            .set_subnets(Some(subnets.iter().map(|s| s.to_string()).collect()))
            .send()
            .await
            .map_err(|e| self.on_balancer_error(name, sdk_error(OP, e)))?;
        Ok(Outcome::Done)
    }

    /// DeleteLoadBalancer (elbv2; its listeners go with it).
    pub(super) async fn delete_load_balancer_v2(
        &self,
        name: &BalancerName,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "DeleteLoadBalancer";
        let b = self.balancer_v2(OP, name).await?;
        self.elbv2
            .delete_load_balancer()
            .load_balancer_arn(&b.arn)
            .send()
            .await
            .map_err(|e| self.on_balancer_error(name, sdk_error(OP, e)))?;
        self.forget_balancer(name);
        Ok(Outcome::Done)
    }

    /// CreateTargetGroup of instances in the balancer's VPC, tagged at
    /// creation (with [`BALANCER_TAG`] added). An existing group of the
    /// name is answered if it is this stack's, refused if not.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn create_target_group(
        &self,
        name: &TargetGroupName,
        balancer: &BalancerName,
        protocol: ListenerProtocol,
        port: u16,
        h: &TargetHealthCheck,
        tags: &Tags,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "CreateTargetGroup";
        check_name(OP, "target group", name.as_str())?;
        let b = self.balancer_v2(OP, balancer).await?;
        check_health_check(OP, name, b.kind, h)?;
        let allowed = b
            .kind
            .listener_protocols()
            .iter()
            .map(|p| b.kind.target_protocol(*p))
            .collect::<BTreeSet<_>>();
        if !allowed.contains(&protocol) || port == 0 {
            return Err(refuse(
                OP,
                "ValidationError",
                format!(
                    "target group {name}: an {} balancer's targets speak {} on ports 1-65535, not {} on {port}",
                    b.kind,
                    protocols(&allowed.into_iter().collect::<Vec<_>>()),
                    protocol.as_str()
                ),
            ));
        }
        // A group is its balancer's: without ownership tags of its own
        // (a step that adds listeners to a balancer carries none), it
        // takes the balancer's.
        let tags = match Owner::from_tags(tags) {
            Some(_) => tags.clone(),
            None => {
                let theirs = self.tags_of(vec![b.arn.clone()]).await?;
                let Some(owner) = theirs.get(&b.arn).and_then(Owner::from_tags) else {
                    return Err(refuse(
                        OP,
                        "ValidationError",
                        format!("load balancer {balancer} is not converge's (no converge tags)"),
                    ));
                };
                let mut all = tags.clone();
                all.extend(owner.to_tags());
                all
            }
        };
        if self.existing_group(name, &tags).await? {
            return Ok(Outcome::Done);
        }
        let Some(vpc) = &b.vpc else {
            return Err(refuse(
                OP,
                "ValidationError",
                format!("load balancer {balancer} is in no VPC"),
            ));
        };
        let mut all = tags;
        all.insert(BALANCER_TAG.to_owned(), balancer.to_string());
        let http = matches!(h.protocol, ListenerProtocol::Http | ListenerProtocol::Https);
        let n = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        let out = self
            .elbv2
            .create_target_group()
            .name(name.as_str())
            .protocol(api_protocol(protocol))
            .port(i32::from(port))
            .vpc_id(vpc.as_str())
            .target_type(TargetTypeEnum::Instance)
            .health_check_enabled(true)
            .health_check_protocol(api_protocol(h.protocol))
            .health_check_port(health_port(h))
            .set_health_check_path(h.path.clone().filter(|_| http))
            .set_matcher(
                h.matcher
                    .clone()
                    .filter(|_| http)
                    .map(|m| Matcher::builder().http_code(m).build()),
            )
            .health_check_interval_seconds(n(h.interval_secs))
            .health_check_timeout_seconds(n(h.timeout_secs))
            .healthy_threshold_count(n(h.healthy_threshold))
            .unhealthy_threshold_count(n(h.unhealthy_threshold))
            .set_tags(Some(v2_tags(&all)))
            .send()
            .await
            .map_err(|e| sdk_error(OP, e));
        let out = match out {
            Ok(out) => out,
            // The answer to an earlier attempt was lost (a 500, a
            // timeout, a dropped connection) and the SDK sent it again:
            // the group that attempt made is this stack's.
            Err(e)
                if e.kind == ErrorKind::AlreadyExists
                    && self.existing_group(name, &all).await? =>
            {
                return Ok(Outcome::Done);
            }
            Err(e) => return Err(e),
        };
        if let Some(r) = out.target_groups().first().and_then(GroupRef::of) {
            lock(&self.elbv2_cache)
                .target_groups
                .insert(name.clone(), r);
        }
        Ok(Outcome::Done)
    }

    /// Whether a target group of the name is there and this stack's (then
    /// it is remembered); refused if it is there and not.
    async fn existing_group(
        &self,
        name: &TargetGroupName,
        tags: &Tags,
    ) -> Result<bool, CloudError> {
        let Some(g) = self.find_group(name).await? else {
            return Ok(false);
        };
        let arn = g.target_group_arn().unwrap_or_default();
        if !self.owned_as(arn, tags).await? {
            return Err(refuse(
                "CreateTargetGroup",
                "DuplicateTargetGroupName",
                format!("target group {name} exists and is not this stack's"),
            ));
        }
        if let Some(r) = GroupRef::of(&g) {
            lock(&self.elbv2_cache)
                .target_groups
                .insert(name.clone(), r);
        }
        Ok(true)
    }

    /// ModifyTargetGroup: the health check.
    pub(super) async fn modify_target_group(
        &self,
        name: &TargetGroupName,
        h: &TargetHealthCheck,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "ModifyTargetGroup";
        let g = self.group_ref(OP, name).await?;
        check_health_check(OP, name, g.kind, h)?;
        let arn = g.arn;
        let http = matches!(h.protocol, ListenerProtocol::Http | ListenerProtocol::Https);
        let n = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        self.elbv2
            .modify_target_group()
            .target_group_arn(&arn)
            .health_check_enabled(true)
            .health_check_protocol(api_protocol(h.protocol))
            .health_check_port(health_port(h))
            .set_health_check_path(h.path.clone().filter(|_| http))
            .set_matcher(
                h.matcher
                    .clone()
                    .filter(|_| http)
                    .map(|m| Matcher::builder().http_code(m).build()),
            )
            .health_check_interval_seconds(n(h.interval_secs))
            .health_check_timeout_seconds(n(h.timeout_secs))
            .healthy_threshold_count(n(h.healthy_threshold))
            .unhealthy_threshold_count(n(h.unhealthy_threshold))
            .send()
            .await
            .map_err(|e| self.on_group_error(name, sdk_error(OP, e)))?;
        Ok(Outcome::Done)
    }

    /// ModifyTargetGroupAttributes: the deregistration delay.
    pub(super) async fn modify_target_group_attributes(
        &self,
        name: &TargetGroupName,
        secs: u32,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "ModifyTargetGroupAttributes";
        check_delay(OP, name, secs)?;
        let arn = self.group_arn(OP, name).await?;
        self.elbv2
            .modify_target_group_attributes()
            .target_group_arn(&arn)
            .attributes(
                TargetGroupAttribute::builder()
                    .key(DEREGISTRATION_DELAY)
                    .value(secs.to_string())
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.on_group_error(name, sdk_error(OP, e)))?;
        Ok(Outcome::Done)
    }

    /// DeleteTargetGroup (refused with ResourceInUse while a listener
    /// forwards to it).
    pub(super) async fn delete_target_group(
        &self,
        name: &TargetGroupName,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "DeleteTargetGroup";
        let arn = self.group_arn(OP, name).await?;
        self.elbv2
            .delete_target_group()
            .target_group_arn(&arn)
            .send()
            .await
            .map_err(|e| self.on_group_error(name, sdk_error(OP, e)))?;
        self.forget_group(name);
        Ok(Outcome::Done)
    }

    /// CreateListener forwarding to a target group; an HTTPS or TLS one
    /// with its certificate and [`SSL_POLICY`].
    pub(super) async fn create_listener_v2(
        &self,
        balancer: &BalancerName,
        l: &Listener,
        group: &TargetGroupName,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "CreateListener";
        let b = self.balancer_v2(OP, balancer).await?;
        check_listener(OP, b.kind, l)?;
        let tg = self.group_arn(OP, group).await?;
        let tls = elb::needs_certificate(l.protocol);
        self.elbv2
            .create_listener()
            .load_balancer_arn(&b.arn)
            .port(i32::from(l.port))
            .protocol(api_protocol(l.protocol))
            .set_certificates(certificates(l))
            .set_ssl_policy(tls.then(|| SSL_POLICY.to_owned()))
            .default_actions(forward(&tg))
            .send()
            .await
            .map_err(|e| self.on_balancer_error(balancer, sdk_error(OP, e)))?;
        Ok(Outcome::Done)
    }

    /// ModifyListener: the listener on the port, in place.
    pub(super) async fn modify_listener_v2(
        &self,
        balancer: &BalancerName,
        l: &Listener,
        group: &TargetGroupName,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "ModifyListener";
        let b = self.balancer_v2(OP, balancer).await?;
        check_listener(OP, b.kind, l)?;
        let arn = self.listener_arn(OP, balancer, &b, l.port).await?;
        let tg = self.group_arn(OP, group).await?;
        let tls = elb::needs_certificate(l.protocol);
        self.elbv2
            .modify_listener()
            .listener_arn(arn)
            .port(i32::from(l.port))
            .protocol(api_protocol(l.protocol))
            .set_certificates(certificates(l))
            .set_ssl_policy(tls.then(|| SSL_POLICY.to_owned()))
            .default_actions(forward(&tg))
            .send()
            .await
            .map_err(|e| sdk_error(OP, e))?;
        Ok(Outcome::Done)
    }

    /// DeleteListener: the listener on the port.
    pub(super) async fn delete_listener_v2(
        &self,
        balancer: &BalancerName,
        port: u16,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "DeleteListener";
        let b = self.balancer_v2(OP, balancer).await?;
        let arn = self.listener_arn(OP, balancer, &b, port).await?;
        self.elbv2
            .delete_listener()
            .listener_arn(arn)
            .send()
            .await
            .map_err(|e| sdk_error(OP, e))?;
        Ok(Outcome::Done)
    }

    /// The ARN of the listener on a port (one DescribeListeners).
    async fn listener_arn(
        &self,
        op: &'static str,
        name: &BalancerName,
        b: &BalancerRef,
        port: u16,
    ) -> Result<String, CloudError> {
        let listeners = listeners_of(&self.elbv2, &b.arn)
            .await
            .map_err(|e| self.on_balancer_error(name, e))?;
        listeners
            .iter()
            .find(|l| l.port() == Some(i32::from(port)))
            .and_then(|l| l.listener_arn().map(str::to_owned))
            .ok_or_else(|| {
                not_found(
                    op,
                    "ListenerNotFound",
                    format!("load balancer {name} has no listener on port {port}"),
                )
            })
    }

    /// RegisterTargets: instances on the group's port.
    pub(super) async fn register_targets(
        &self,
        group: &TargetGroupName,
        ids: &[InstanceId],
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "RegisterTargets";
        let arn = self.group_arn(OP, group).await?;
        self.elbv2
            .register_targets()
            .target_group_arn(&arn)
            .set_targets(Some(targets(ids)))
            .send()
            .await
            .map_err(|e| self.on_group_error(group, sdk_error(OP, e)))?;
        Ok(Outcome::Done)
    }

    /// DeregisterTargets: they drain for the group's deregistration
    /// delay. An instance that is gone fails the whole call
    /// (InvalidTarget): those still registered are deregistered then.
    pub(super) async fn deregister_targets(
        &self,
        group: &TargetGroupName,
        ids: &[InstanceId],
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "DeregisterTargets";
        let arn = self.group_arn(OP, group).await?;
        let call = |ids: &[InstanceId]| {
            self.elbv2
                .deregister_targets()
                .target_group_arn(&arn)
                .set_targets(Some(targets(ids)))
                .send()
        };
        match call(ids).await {
            Ok(_) => Ok(Outcome::Done),
            Err(e) => {
                let e = self.on_group_error(group, sdk_error(OP, e));
                if e.code != "InvalidTarget" {
                    return Err(e);
                }
                let registered: BTreeSet<InstanceId> = target_health(&self.elbv2, &arn)
                    .await?
                    .into_iter()
                    .filter(|m| !m.state.draining())
                    .map(|m| m.instance)
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

    /// Each target of the balancer's target groups once, in its worst
    /// state (DescribeTargetGroups by the balancer's ARN, then
    /// DescribeTargetHealth per group).
    pub(super) async fn target_members(
        &self,
        name: &BalancerName,
    ) -> Result<Vec<Member>, CloudError> {
        const OP: &str = "DescribeTargetGroups";
        let b = self.balancer_v2(OP, name).await?;
        let out = self
            .elbv2
            .describe_target_groups()
            .load_balancer_arn(&b.arn)
            .send()
            .await
            .map_err(|e| self.on_balancer_error(name, sdk_error(OP, e)))?;
        let arns: Vec<String> = out
            .target_groups()
            .iter()
            .filter_map(|g| g.target_group_arn().map(str::to_owned))
            .collect();
        let client = self.elbv2.clone();
        let per_group = bounded(arns, 8, move |arn| {
            let client = client.clone();
            async move { target_health(&client, &arn).await }
        })
        .await?;
        Ok(worst_members(per_group.iter().map(Vec::as_slice)))
    }

    /// AddTags on an elbv2 balancer.
    pub(super) async fn tag_balancer_v2(
        &self,
        b: &BalancerRef,
        tags: &Tags,
    ) -> Result<Outcome, CloudError> {
        self.elbv2
            .add_tags()
            .resource_arns(&b.arn)
            .set_tags(Some(v2_tags(tags)))
            .send()
            .await
            .map_err(|e| sdk_error("AddTags", e))?;
        Ok(Outcome::Done)
    }

    /// RemoveTags on an elbv2 balancer.
    pub(super) async fn untag_balancer_v2(
        &self,
        b: &BalancerRef,
        keys: &[String],
    ) -> Result<Outcome, CloudError> {
        self.elbv2
            .remove_tags()
            .resource_arns(&b.arn)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .await
            .map_err(|e| sdk_error("RemoveTags", e))?;
        Ok(Outcome::Done)
    }
}

/// The port a health check names: its own, or the traffic port.
fn health_port(h: &TargetHealthCheck) -> String {
    h.port
        .map_or_else(|| "traffic-port".to_owned(), |p| p.to_string())
}

fn certificates(l: &Listener) -> Option<Vec<Certificate>> {
    let c = l.certificate.as_ref()?;
    elb::needs_certificate(l.protocol)
        .then(|| vec![Certificate::builder().certificate_arn(c).build()])
}

fn targets(ids: &[InstanceId]) -> Vec<TargetDescription> {
    ids.iter()
        .map(|i| TargetDescription::builder().id(i.as_str()).build())
        .collect()
}

/// DescribeListeners of one balancer (every page).
async fn listeners_of(client: &Client, arn: &str) -> Result<Vec<V2Listener>, CloudError> {
    let mut pages = client
        .describe_listeners()
        .load_balancer_arn(arn)
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| sdk_error("DescribeListeners", e))?;
        out.extend(page.listeners().iter().cloned());
    }
    Ok(out)
}

/// DescribeTargetHealth of one group: its targets, `unused` ones left out,
/// sorted.
async fn target_health(client: &Client, arn: &str) -> Result<Vec<Member>, CloudError> {
    const OP: &str = "DescribeTargetHealth";
    let out = client
        .describe_target_health()
        .target_group_arn(arn)
        .send()
        .await
        .map_err(|e| sdk_error(OP, e))?;
    let mut members = Vec::new();
    for d in out.target_health_descriptions() {
        let (Some(id), Some(state)) = (
            d.target().and_then(|t| t.id()),
            member_state(d.target_health().and_then(|h| h.state())),
        ) else {
            continue;
        };
        members.push(Member {
            instance: answered_id(OP, id)?,
            state,
        });
    }
    members.sort_by(|a, b| a.instance.cmp(&b.instance));
    Ok(members)
}

/// A group's deregistration delay (DescribeTargetGroupAttributes); AWS's
/// default when it is not reported.
async fn delay_of(client: &Client, arn: &str) -> Result<u32, CloudError> {
    let out = client
        .describe_target_group_attributes()
        .target_group_arn(arn)
        .send()
        .await
        .map_err(|e| sdk_error("DescribeTargetGroupAttributes", e))?;
    Ok(out
        .attributes()
        .iter()
        .find(|a| a.key() == Some(DEREGISTRATION_DELAY))
        .and_then(|a| a.value()?.parse().ok())
        .unwrap_or(elb::DEFAULT_DRAIN_SECS))
}

/// An elbv2 balancer as converge observes it.
fn observed_balancer(
    b: &LoadBalancer,
    name: BalancerName,
    kind: BalancerType,
    owner: Owner,
    tags: Tags,
    listeners: Vec<Listener>,
    target_groups: Vec<ObservedTargetGroup>,
) -> Result<ObservedBalancer, CloudError> {
    const OP: &str = "DescribeLoadBalancers";
    let mut zones: Vec<Zone> = Vec::new();
    let mut subnets: Vec<SubnetId> = Vec::new();
    for z in b.availability_zones() {
        if let Some(n) = z.zone_name() {
            zones.push(answered_id(OP, n)?);
        }
        if let Some(s) = z.subnet_id() {
            subnets.push(answered_id(OP, s)?);
        }
    }
    zones.sort();
    subnets.sort();
    let mut security_groups: Vec<GroupId> = b
        .security_groups()
        .iter()
        .map(|g| answered_id(OP, g.as_str()))
        .collect::<Result<_, _>>()?;
    security_groups.sort();
    let members = worst_members(target_groups.iter().map(|g| g.members.as_slice()));
    Ok(ObservedBalancer {
        name,
        owner,
        kind,
        scheme: scheme_of(b.scheme()),
        dns_name: b.dns_name().unwrap_or_default().to_owned(),
        zone_id: b.canonical_hosted_zone_id().unwrap_or_default().to_owned(),
        security_groups,
        target_groups,
        drain_secs: None,
        cross_zone: None,
        zones,
        subnets,
        listeners,
        health_check: None,
        members,
        tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(protocol: ListenerProtocol) -> TargetHealthCheck {
        TargetHealthCheck {
            protocol,
            port: None,
            path: Some("/health".into()),
            matcher: Some("200-399".into()),
            interval_secs: 30,
            timeout_secs: 5,
            healthy_threshold: 3,
            unhealthy_threshold: 3,
        }
    }

    #[test]
    fn names_follow_aws_rules() {
        assert!(check_name("Op", "load balancer", "web-alb").is_ok());
        assert!(check_name("Op", "target group", "web-alb-80-ab12").is_ok());
        for bad in [
            "",
            "-web",
            "web-",
            "web_alb",
            "internal-web",
            &"a".repeat(33),
        ] {
            assert!(check_name("Op", "load balancer", bad).is_err(), "{bad}");
        }
        // Only balancers may not begin with internal-.
        assert!(check_name("Op", "target group", "internal-web").is_ok());
    }

    #[test]
    fn placement_needs_two_zones_for_an_application_balancer() {
        let n = BalancerName::from("web-alb");
        let one = [Zone::from("us-east-1a")];
        let two = [Zone::from("us-east-1a"), Zone::from("us-east-1b")];
        assert!(check_placement("Op", &n, BalancerType::Application, &one, &[]).is_err());
        assert!(check_placement("Op", &n, BalancerType::Application, &two, &[]).is_ok());
        assert!(check_placement("Op", &n, BalancerType::Network, &one, &[]).is_ok());
        assert!(check_placement("Op", &n, BalancerType::Network, &[], &[]).is_err());
        assert!(check_placement("Op", &n, BalancerType::Classic, &two, &[]).is_err());
        let twice = [Zone::from("us-east-1a"), Zone::from("us-east-1a")];
        assert!(check_placement("Op", &n, BalancerType::Network, &twice, &[]).is_err());
    }

    #[test]
    fn listeners_take_certificates_exactly_when_tls_ends_at_the_balancer() {
        let cert = "arn:aws:acm:us-east-1:123456789012:certificate/abc-123";
        let l = |protocol, certificate: Option<&str>| Listener {
            port: 443,
            instance_port: 8080,
            protocol,
            certificate: certificate.map(str::to_owned),
        };
        use BalancerType::*;
        use ListenerProtocol::*;
        assert!(check_listener("Op", Application, &l(Https, Some(cert))).is_ok());
        let e = check_listener("Op", Application, &l(Https, None)).expect_err("refused");
        assert_eq!(e.code, "CertificateNotFound");
        assert!(check_listener("Op", Application, &l(Http, Some(cert))).is_err());
        assert!(check_listener("Op", Application, &l(Tcp, None)).is_err());
        assert!(check_listener("Op", Network, &l(Tls, Some(cert))).is_ok());
        assert!(check_listener("Op", Network, &l(Udp, None)).is_ok());
        assert!(check_listener("Op", Network, &l(Http, None)).is_err());
        assert!(check_listener("Op", Network, &l(Tls, Some("my-cert"))).is_err());
        assert!(certificate_arn(
            "arn:aws:iam::123456789012:server-certificate/web"
        ));
        assert!(!certificate_arn("arn:aws:iam::123456789012:role/web"));
        assert!(!certificate_arn("arn:aws:acm:us-east-1:1234:certificate/x"));
    }

    #[test]
    fn health_checks_are_in_aws_ranges() {
        let g = TargetGroupName::from("web-alb-80-ab12");
        use BalancerType::*;
        use ListenerProtocol::*;
        assert!(check_health_check("Op", &g, Application, &hc(Http)).is_ok());
        let mut h = hc(Http);
        h.timeout_secs = 30;
        assert!(
            check_health_check("Op", &g, Application, &h).is_err(),
            "timeout = interval"
        );
        let mut h = hc(Http);
        h.interval_secs = 301;
        assert!(check_health_check("Op", &g, Application, &h).is_err());
        let mut h = hc(Http);
        h.healthy_threshold = 11;
        assert!(check_health_check("Op", &g, Application, &h).is_err());
        let mut h = hc(Http);
        h.path = Some("health".into());
        assert!(check_health_check("Op", &g, Application, &h).is_err());
        let mut h = hc(Http);
        h.matcher = Some("200-599".into());
        assert!(check_health_check("Op", &g, Application, &h).is_err());
        assert!(check_health_check("Op", &g, Network, &h).is_ok());
        // TCP checks take no path nor matcher, and applications none.
        assert!(check_health_check("Op", &g, Network, &hc(Tcp)).is_err());
        let mut h = hc(Tcp);
        h.path = None;
        h.matcher = None;
        assert!(check_health_check("Op", &g, Network, &h).is_ok());
        assert!(check_health_check("Op", &g, Application, &h).is_err());
        assert!(check_delay("Op", &g, 3600).is_ok());
        assert!(check_delay("Op", &g, 3601).is_err());
    }

    #[test]
    fn matchers_are_codes_and_ranges() {
        for ok in ["200", "200,202", "200-299", "200-299,302"] {
            assert!(matcher_ok(ok, (200, 499)), "{ok}");
        }
        for bad in ["", "abc", "199", "500", "299-200", "200-", "200,,201"] {
            assert!(!matcher_ok(bad, (200, 499)), "{bad}");
        }
    }

    #[test]
    fn members_are_each_target_once_in_its_worst_state() {
        let m = |i: &'static str, state| Member {
            instance: InstanceId::from(i),
            state,
        };
        let a = [
            m("i-a", MemberState::InService),
            m("i-b", MemberState::Initial),
        ];
        let b = [
            m("i-a", MemberState::Draining),
            m("i-c", MemberState::InService),
        ];
        assert_eq!(
            worst_members([a.as_slice(), b.as_slice()]),
            vec![
                m("i-a", MemberState::Draining),
                m("i-b", MemberState::Initial),
                m("i-c", MemberState::InService),
            ]
        );
        assert_eq!(member_state(Some(&TargetHealthStateEnum::Unused)), None);
        assert_eq!(
            member_state(Some(&TargetHealthStateEnum::UnhealthyDraining)),
            Some(MemberState::OutOfService)
        );
        assert_eq!(
            member_state(Some(&TargetHealthStateEnum::Draining)),
            Some(MemberState::Draining)
        );
    }

    #[test]
    fn listeners_read_back_with_their_group_port_and_certificate() {
        let cert = "arn:aws:acm:us-east-1:123456789012:certificate/abc";
        let l = V2Listener::builder()
            .port(443)
            .protocol(ProtocolEnum::Https)
            .certificates(Certificate::builder().certificate_arn(cert).build())
            .default_actions(forward("arn:tg"))
            .build();
        let ports = BTreeMap::from([("arn:tg".to_owned(), 8080)]);
        assert_eq!(
            read_listener(&l, &ports),
            Some(Listener {
                port: 443,
                instance_port: 8080,
                protocol: ListenerProtocol::Https,
                certificate: Some(cert.into()),
            })
        );
    }
}
