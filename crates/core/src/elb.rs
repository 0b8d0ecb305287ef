//! Elastic Load Balancing's rules that several layers check: the three
//! types of balancer, which listener protocols each takes, the names
//! converge gives a balancer and its target groups in the cloud, the
//! ranges of health checks and draining, and the hosted zones of the
//! balancers' DNS names. Manifest validation, the planner and the local
//! cloud all read them from here, so they cannot disagree.
//!
//! Sources: the elbv2 API reference (CreateLoadBalancer, CreateTargetGroup,
//! CreateListener, ModifyTargetGroupAttributes,
//! <https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/>)
//! and the classic one (ConfigureHealthCheck,
//! ModifyLoadBalancerAttributes,
//! <https://docs.aws.amazon.com/elasticloadbalancing/2012-06-01/APIReference/>).

use crate::desired::ListenerProtocol;
use crate::ids::{BalancerName, ResourceName, TargetGroupName};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which Elastic Load Balancing API a balancer lives in.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum BalancerType {
    /// The classic ELB (API version 2012-06-01): instances are its members.
    #[default]
    Classic,
    /// An Application Load Balancer (elbv2): HTTP and HTTPS, target groups.
    Application,
    /// A Network Load Balancer (elbv2): TCP, TLS, UDP, target groups.
    Network,
}

impl BalancerType {
    /// The type as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            BalancerType::Classic => "classic",
            BalancerType::Application => "application",
            BalancerType::Network => "network",
        }
    }

    /// Whether it is an elbv2 balancer, whose members live in target
    /// groups.
    pub fn has_target_groups(self) -> bool {
        self != BalancerType::Classic
    }

    /// The listener protocols this type takes.
    pub fn listener_protocols(self) -> &'static [ListenerProtocol] {
        use ListenerProtocol::*;
        match self {
            BalancerType::Classic => &[Http, Https, Tcp, Ssl],
            BalancerType::Application => &[Http, Https],
            BalancerType::Network => &[Tcp, Tls, Udp, TcpUdp],
        }
    }

    /// The protocol of the target group a listener of this type forwards
    /// to: an application balancer speaks HTTP to its targets (HTTPS ends
    /// at the balancer); a network balancer passes TCP, UDP and TCP_UDP
    /// through and ends TLS, speaking TCP behind it.
    pub fn target_protocol(self, listener: ListenerProtocol) -> ListenerProtocol {
        match (self, listener) {
            (BalancerType::Application, _) => ListenerProtocol::Http,
            (_, ListenerProtocol::Tls) => ListenerProtocol::Tcp,
            (_, p) => p,
        }
    }

    /// The health check protocols its target groups take (classic
    /// balancers write theirs as a `target`).
    pub fn health_protocols(self) -> &'static [ListenerProtocol] {
        use ListenerProtocol::*;
        match self {
            BalancerType::Classic => &[Http, Https, Tcp, Ssl],
            BalancerType::Application => &[Http, Https],
            BalancerType::Network => &[Tcp, Http, Https],
        }
    }

    /// The default health check protocol of its target groups.
    pub fn default_health_protocol(self) -> ListenerProtocol {
        match self {
            BalancerType::Network => ListenerProtocol::Tcp,
            _ => ListenerProtocol::Http,
        }
    }

    /// The HTTP codes a health check matcher may name: 200–499 for an
    /// application balancer, 200–599 for a network one.
    pub fn matcher_range(self) -> (u16, u16) {
        match self {
            BalancerType::Network => (200, 599),
            _ => (200, 499),
        }
    }
}

impl fmt::Display for BalancerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a balancer has public addresses.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum Scheme {
    /// Reachable from the internet (AWS's default).
    #[default]
    #[serde(rename = "internet-facing")]
    InternetFacing,
    /// Private addresses only.
    #[serde(rename = "internal")]
    Internal,
}

impl Scheme {
    /// The scheme as written in manifests and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::InternetFacing => "internet-facing",
            Scheme::Internal => "internal",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a listener protocol carries TLS ended at the balancer, so that
/// it needs a certificate (and no other protocol takes one).
pub fn needs_certificate(p: ListenerProtocol) -> bool {
    matches!(
        p,
        ListenerProtocol::Https | ListenerProtocol::Ssl | ListenerProtocol::Tls
    )
}

/// The health check of an elbv2 target group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetHealthCheck {
    /// HTTP, HTTPS or TCP.
    pub protocol: ListenerProtocol,
    /// The port checked; `None` is the traffic port (the target group's).
    pub port: Option<u16>,
    /// The path requested (HTTP and HTTPS only).
    pub path: Option<String>,
    /// The HTTP codes that count as healthy (`200-399`; HTTP and HTTPS
    /// only).
    pub matcher: Option<String>,
    /// Seconds between checks, 5–300.
    pub interval_secs: u32,
    /// Seconds before a check fails, 2–120, below the interval.
    pub timeout_secs: u32,
    /// Consecutive successes before a target is healthy, 2–10.
    pub healthy_threshold: u32,
    /// Consecutive failures before a target is unhealthy, 2–10.
    pub unhealthy_threshold: u32,
}

impl fmt::Display for TargetHealthCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = self
            .port
            .map_or_else(|| "traffic-port".to_owned(), |p| p.to_string());
        write!(f, "{}:{port}", self.protocol.as_str())?;
        if let Some(p) = &self.path {
            f.write_str(p)?;
        }
        if let Some(m) = &self.matcher {
            write!(f, " ({m})")?;
        }
        write!(
            f,
            " every {}s, timeout {}s, healthy {}, unhealthy {}",
            self.interval_secs, self.timeout_secs, self.healthy_threshold, self.unhealthy_threshold
        )
    }
}

/// Ranges of an elbv2 health check (CreateTargetGroup).
pub mod ranges {
    /// Seconds between checks.
    pub const INTERVAL: (u32, u32) = (5, 300);
    /// Seconds before a check fails.
    pub const TIMEOUT: (u32, u32) = (2, 120);
    /// Healthy and unhealthy thresholds.
    pub const THRESHOLD: (u32, u32) = (2, 10);
    /// Seconds a leaving target drains (deregistration_delay.timeout_seconds).
    pub const DEREGISTRATION_DELAY: (u32, u32) = (0, 3600);
    /// Seconds a classic balancer drains a leaving instance (the
    /// ConnectionDraining timeout; converge writes 0 for off).
    pub const CONNECTION_DRAINING: (u32, u32) = (1, 3600);
    /// The longest path a health check may request.
    pub const PATH_LEN: usize = 1024;
}

/// The default time a leaving member drains: AWS's default deregistration
/// delay and the classic balancer's default draining timeout.
pub const DEFAULT_DRAIN_SECS: u32 = 300;

/// The longest name of an elbv2 balancer or target group.
pub const NAME_MAX: usize = 32;

/// What converge adds to a manifest name to make an elbv2 balancer's
/// cloud name: the type and the scheme, so that changing either gives a
/// new name and the successor can exist beside its predecessor until it
/// takes over.
pub fn name_suffix(kind: BalancerType, scheme: Scheme) -> &'static str {
    match (kind, scheme) {
        (BalancerType::Classic, _) => "",
        (BalancerType::Application, Scheme::InternetFacing) => "-alb",
        (BalancerType::Application, Scheme::Internal) => "-ialb",
        (BalancerType::Network, Scheme::InternetFacing) => "-nlb",
        (BalancerType::Network, Scheme::Internal) => "-inlb",
    }
}

/// The longest manifest name a balancer of this type may have, so that
/// its cloud name fits in 32 characters.
pub fn max_manifest_name(kind: BalancerType) -> usize {
    let longest = match kind {
        BalancerType::Classic => 0,
        _ => "-ialb".len(),
    };
    NAME_MAX - longest
}

/// A balancer as the cloud knows it: its manifest name (what people read),
/// its cloud name and type (what the API needs), and, for an elbv2
/// balancer, the target groups a step acts on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BalancerHandle {
    /// The manifest name.
    pub name: ResourceName,
    /// The name in the cloud.
    pub cloud_name: BalancerName,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: BalancerType,
    /// Its target groups a step acts on (empty for a classic balancer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_groups: Vec<TargetGroupName>,
}

impl BalancerHandle {
    /// The handle of the balancer converge makes for this manifest name,
    /// type and scheme, without target groups.
    pub fn of(name: &ResourceName, kind: BalancerType, scheme: Scheme) -> Self {
        let cloud = format!("{name}{}", name_suffix(kind, scheme));
        BalancerHandle {
            name: name.clone(),
            cloud_name: BalancerName::new(&cloud).unwrap_or_else(|_| BalancerName::from(name)),
            kind,
            target_groups: Vec::new(),
        }
    }

    /// The same balancer, acting on these target groups.
    pub fn with_target_groups(mut self, groups: Vec<TargetGroupName>) -> Self {
        self.target_groups = groups;
        self
    }
}

impl fmt::Display for BalancerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Balancer/{}", self.name)
    }
}

/// The name converge gives the target group of an elbv2 balancer for one
/// target protocol and port: `<cloud name, cut to 21>-<port>-<digest>`,
/// at most 32 characters, the digest (four hex digits) telling apart
/// names the cut made equal and protocols on one port.
pub fn target_group_name(
    balancer: &BalancerName,
    protocol: ListenerProtocol,
    port: u16,
) -> TargetGroupName {
    let digest =
        crate::spec_hash::short_digest(&[balancer.as_str(), protocol.as_str(), &port.to_string()]);
    let base: String = balancer.as_str().chars().take(21).collect();
    let base = base.trim_end_matches('-');
    let name = format!("{base}-{port}-{}", &digest[..4]);
    TargetGroupName::new(&name).unwrap_or_else(|_| TargetGroupName::from("converge-tg"))
}

/// The target groups an elbv2 balancer's listeners forward to: one per
/// target protocol and port, in order, with the protocol and port; none
/// for a classic balancer.
pub fn listener_target_groups(
    kind: BalancerType,
    balancer: &BalancerName,
    listeners: &[crate::desired::Listener],
) -> Vec<(TargetGroupName, ListenerProtocol, u16)> {
    if !kind.has_target_groups() {
        return Vec::new();
    }
    let set: std::collections::BTreeSet<(ListenerProtocol, u16)> = listeners
        .iter()
        .map(|l| (kind.target_protocol(l.protocol), l.instance_port))
        .collect();
    set.into_iter()
        .map(|(p, port)| (target_group_name(balancer, p, port), p, port))
        .collect()
}

/// The target group one listener of an elbv2 balancer forwards to.
pub fn listener_target_group(
    kind: BalancerType,
    balancer: &BalancerName,
    listener: &crate::desired::Listener,
) -> TargetGroupName {
    target_group_name(
        balancer,
        kind.target_protocol(listener.protocol),
        listener.instance_port,
    )
}

/// The canonical hosted zone of a balancer's DNS name in a region (for
/// alias records), from AWS's table of Elastic Load Balancing endpoints
/// (<https://docs.aws.amazon.com/general/latest/gr/elb.html>): classic and
/// application balancers share one zone per region, network balancers
/// have another. `None` for a region not in the table.
pub fn canonical_zone_id(region: &str, kind: BalancerType) -> Option<&'static str> {
    let (alb, nlb) = match region {
        "us-east-1" => ("Z35SXDOTRQ7X7K", "Z26RNL4JYFTOTI"),
        "us-east-2" => ("Z3AADJGX6KTTL2", "ZLMOA37VPKANP"),
        "us-west-1" => ("Z368ELLRRE2KJ0", "Z24FKFUX50B4VW"),
        "us-west-2" => ("Z1H1FL5HABSF5", "Z18D5FSROUN65G"),
        "eu-west-1" => ("Z32O12XQLNTSW2", "Z2IFOLAFXWLO4F"),
        "eu-central-1" => ("Z215JYRZR1TBD5", "Z3F0SRJ5LGBH90"),
        "ap-southeast-1" => ("Z1LMS91P8CMLE5", "ZKVM4W9LS7TM"),
        "ap-northeast-1" => ("Z14GRHDCWA56QT", "Z31USIVHYNEOWT"),
        _ => return None,
    };
    Some(match kind {
        BalancerType::Network => nlb,
        _ => alb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_names_carry_type_and_scheme() {
        let web = ResourceName::from("web");
        let h = BalancerHandle::of(&web, BalancerType::Classic, Scheme::InternetFacing);
        assert_eq!(h.cloud_name, "web");
        let h = BalancerHandle::of(&web, BalancerType::Application, Scheme::InternetFacing);
        assert_eq!(h.cloud_name, "web-alb");
        let h = BalancerHandle::of(&web, BalancerType::Network, Scheme::Internal);
        assert_eq!(h.cloud_name, "web-inlb");
    }

    #[test]
    fn target_group_names_fit_and_differ() {
        let long = BalancerName::from("a-very-long-balancer-name-27-ialb");
        let a = target_group_name(&long, ListenerProtocol::Tcp, 65535);
        let b = target_group_name(&long, ListenerProtocol::Udp, 65535);
        assert!(a.as_str().len() <= NAME_MAX, "{a}");
        assert_ne!(a, b);
        let short = target_group_name(&BalancerName::from("web-alb"), ListenerProtocol::Http, 80);
        assert!(short.as_str().starts_with("web-alb-80-"), "{short}");
    }

    #[test]
    fn protocols_per_type() {
        assert_eq!(
            BalancerType::Application.target_protocol(ListenerProtocol::Https),
            ListenerProtocol::Http
        );
        assert_eq!(
            BalancerType::Network.target_protocol(ListenerProtocol::Tls),
            ListenerProtocol::Tcp
        );
        assert!(needs_certificate(ListenerProtocol::Tls));
        assert!(!needs_certificate(ListenerProtocol::TcpUdp));
        assert_eq!(
            canonical_zone_id("us-east-1", BalancerType::Network),
            Some("Z26RNL4JYFTOTI")
        );
    }
}
