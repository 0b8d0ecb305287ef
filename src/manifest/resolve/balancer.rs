//! Resolving `Balancer` documents: the type and scheme, listeners (the
//! protocols each type takes, certificates where TLS ends), the health
//! check in the form of its type, draining, security groups, and the
//! rules of Elastic Load Balancing that moto does not enforce (an
//! application balancer in two zones at least, no security groups on a
//! network balancer, the name's length with converge's suffix).

use super::{At, Resolver, duration, id};
use crate::manifest::check;
use crate::manifest::diagnostics::Diagnostic;
use crate::manifest::node::FieldPath;
use crate::manifest::raw;
use converge_core::acm::CertificateRef;
use converge_core::desired::{self as d, BalancerHealth, ListenerProtocol};
use converge_core::elb::{
    self, BalancerType, Scheme, TargetHealthCheck, max_manifest_name, needs_certificate, ranges,
};
use converge_core::ids::{Kind, ResourceName};
use std::collections::{BTreeMap, BTreeSet};

fn kind_of(k: raw::BalancerType) -> BalancerType {
    match k {
        raw::BalancerType::Classic => BalancerType::Classic,
        raw::BalancerType::Application => BalancerType::Application,
        raw::BalancerType::Network => BalancerType::Network,
    }
}

fn protocol_of(p: raw::ListenerProtocol) -> ListenerProtocol {
    match p {
        raw::ListenerProtocol::Http => ListenerProtocol::Http,
        raw::ListenerProtocol::Https => ListenerProtocol::Https,
        raw::ListenerProtocol::Tcp => ListenerProtocol::Tcp,
        raw::ListenerProtocol::Ssl => ListenerProtocol::Ssl,
        raw::ListenerProtocol::Tls => ListenerProtocol::Tls,
        raw::ListenerProtocol::Udp => ListenerProtocol::Udp,
        raw::ListenerProtocol::TcpUdp => ListenerProtocol::TcpUdp,
    }
}

/// The article before a protocol's name as it is read aloud ("an HTTPS
/// listener", "a TLS listener").
fn article(p: ListenerProtocol) -> &'static str {
    match p {
        ListenerProtocol::Http | ListenerProtocol::Https | ListenerProtocol::Ssl => "an",
        _ => "a",
    }
}

fn names(ps: &[ListenerProtocol]) -> String {
    ps.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
}

/// Whole seconds of a duration within `lo..=hi`; reports any other.
fn whole_secs(
    at: &At<'_>,
    path: &FieldPath,
    text: &raw::DurationText,
    (lo, hi): (u32, u32),
    out: &mut Vec<Diagnostic>,
) -> Option<u32> {
    let d = duration(at, path, text, false, out)?;
    let secs = d.as_secs();
    if secs < u64::from(lo) || secs > u64::from(hi) || d.subsec_nanos() != 0 {
        out.push(at.diag(
            path,
            false,
            format!(
                "expected whole seconds from {lo}s to {hi}s, found {:?}",
                text.0
            ),
        ));
        return None;
    }
    u32::try_from(secs).ok()
}

impl Resolver<'_> {
    /// Resolves a Balancer document.
    pub(super) fn balancer(
        &self,
        at: &At<'_>,
        name: &str,
        s: &raw::BalancerSpec,
        out: &mut Vec<Diagnostic>,
    ) -> Option<d::BalancerSpec> {
        let spec = FieldPath::spec();
        let kind = kind_of(s.kind);
        let scheme = match s.scheme {
            raw::BalancerScheme::InternetFacing => Scheme::InternetFacing,
            raw::BalancerScheme::Internal => Scheme::Internal,
        };
        let mut ok = self.balancer_rules(at, name, kind, s, out);
        let subnets = self.placement(at, "balancer", &s.zones, &s.subnets, out);
        let listeners = listeners(at, kind, &s.listeners, out);
        let health_check = health(at, kind, s, out);
        let drain = drain(at, kind, s, out);
        let mut fleets = Vec::new();
        for (i, f) in s.fleets.iter().enumerate() {
            let path = spec.key("fleets").index(i);
            if fleets.iter().any(|n: &ResourceName| n.as_str() == f) {
                out.push(at.diag(&path, false, format!("Fleet/{f} is listed twice")));
            } else if self.reference(at, &path, Kind::Fleet, f, out) {
                fleets.extend(id(f));
            }
        }
        fleets.sort();
        let mut groups = Vec::new();
        for (i, g) in s.security_groups.iter().enumerate() {
            let path = spec.key("securityGroups").index(i);
            if self.reference(at, &path, Kind::SecurityGroup, g, out) {
                groups.extend(id(g));
            } else {
                ok = false;
            }
        }
        groups.sort();
        groups.dedup();
        ok.then_some(())?;
        Some(d::BalancerSpec {
            kind,
            scheme,
            zones: s.zones.iter().map(|z| id(z)).collect::<Option<_>>()?,
            subnets: subnets?,
            security_groups: groups,
            listeners: listeners?,
            health_check: health_check?,
            drain_secs: drain?,
            cross_zone: s.cross_zone.unwrap_or(true),
            fleets,
            tags: s.tags.clone(),
        })
    }

    /// The rules that tie a balancer's fields to its type.
    fn balancer_rules(
        &self,
        at: &At<'_>,
        name: &str,
        kind: BalancerType,
        s: &raw::BalancerSpec,
        out: &mut Vec<Diagnostic>,
    ) -> bool {
        let spec = FieldPath::spec();
        let before = out.len();
        let max = max_manifest_name(kind);
        if name.len() > max {
            out.push(at.diag(
                &FieldPath::default().key("name"),
                false,
                format!(
                    "an {kind} balancer's name has at most {max} characters (converge adds {:?} for the cloud's 32), found {} characters",
                    elb::name_suffix(kind, Scheme::Internal),
                    name.len()
                ),
            ));
        }
        if name.starts_with("internal-") {
            out.push(at.diag(
                &FieldPath::default().key("name"),
                false,
                "a balancer's name must not begin with \"internal-\" (AWS reserves it)",
            ));
        }
        match kind {
            BalancerType::Application => {
                if s.security_groups.is_empty() {
                    out.push(at.diag(
                        &spec.key("securityGroups"),
                        false,
                        "an application balancer needs at least one security group (SecurityGroup documents of the stack)",
                    ));
                }
                if let Some(zones) = self.balancer_zones_of(s) {
                    let distinct: BTreeSet<&String> = zones.iter().collect();
                    if distinct.len() < 2 {
                        let field = if s.subnets.is_empty() {
                            "zones"
                        } else {
                            "subnets"
                        };
                        out.push(at.diag(
                            &spec.key(field),
                            false,
                            format!(
                                "an application balancer needs two zones at least, found {}",
                                distinct.len()
                            ),
                        ));
                    }
                }
            }
            BalancerType::Network if !s.security_groups.is_empty() => {
                out.push(at.diag(
                    &spec.key("securityGroups"),
                    false,
                    "a network balancer takes no security groups: its members' groups decide what reaches them",
                ));
            }
            BalancerType::Classic if !s.security_groups.is_empty() && s.subnets.is_empty() => {
                out.push(at.diag(
                    &spec.key("securityGroups"),
                    false,
                    "a classic balancer takes security groups only in a Network (name spec.subnets)",
                ));
            }
            _ => {}
        }
        let wrong_type = |field: &str, set: bool, for_kind: &str, out: &mut Vec<Diagnostic>| {
            if set {
                out.push(at.diag(
                    &spec.key(field),
                    false,
                    format!("{field} is for {for_kind} balancers; this one is {kind}"),
                ));
            }
        };
        if kind == BalancerType::Classic {
            wrong_type(
                "deregistrationDelay",
                s.deregistration_delay.is_some(),
                "application and network",
                out,
            );
        } else {
            wrong_type(
                "connectionDraining",
                s.connection_draining.is_some(),
                "classic",
                out,
            );
            wrong_type("crossZone", s.cross_zone.is_some(), "classic", out);
        }
        out.len() == before
    }
}

/// The listeners, checked against the type; sorted.
fn listeners(
    at: &At<'_>,
    kind: BalancerType,
    ls: &[raw::Listener],
    out: &mut Vec<Diagnostic>,
) -> Option<Vec<d::Listener>> {
    let spec = FieldPath::spec();
    let before = out.len();
    if ls.is_empty() {
        out.push(at.diag(
            &spec.key("listeners"),
            false,
            "expected at least one listener, found none",
        ));
    }
    let mut listeners = Vec::new();
    let mut ports: BTreeMap<u16, usize> = BTreeMap::new();
    for (i, l) in ls.iter().enumerate() {
        let path = spec.key("listeners").index(i);
        let protocol = protocol_of(l.protocol);
        if !kind.listener_protocols().contains(&protocol) {
            out.push(at.diag(
                &path.key("protocol"),
                false,
                format!(
                    "a{} {kind} balancer's listeners take {}, found {}",
                    if kind == BalancerType::Application {
                        "n"
                    } else {
                        ""
                    },
                    names(kind.listener_protocols()),
                    protocol.as_str()
                ),
            ));
        }
        let port = if kind == BalancerType::Classic {
            check::balancer_port(l.port)
        } else {
            check::port(l.port)
        }
        .map_err(|m| out.push(at.diag(&path.key("port"), false, m)))
        .ok();
        let (own, other, given) = if kind == BalancerType::Classic {
            ("instancePort", "targetPort", l.instance_port)
        } else {
            ("targetPort", "instancePort", l.target_port)
        };
        let stray = if kind == BalancerType::Classic {
            l.target_port
        } else {
            l.instance_port
        };
        if stray.is_some() {
            out.push(at.diag(
                &path.key(other),
                false,
                format!("a {kind} balancer's listener names {own}, not {other}"),
            ));
        }
        let target = match given {
            None => port,
            Some(p) => check::port(p)
                .map_err(|m| out.push(at.diag(&path.key(own), false, m)))
                .ok(),
        };
        let certificate = certificate(at, &path, protocol, l.certificate.as_deref(), out);
        if let (Some(port), Some(target)) = (port, target) {
            if let Some(first) = ports.insert(port, i) {
                out.push(at.diag(
                    &path.key("port"),
                    false,
                    format!("port {port} is already used by listeners[{first}]"),
                ));
            }
            listeners.push(d::Listener {
                port,
                instance_port: target,
                protocol,
                certificate: certificate.flatten(),
            });
        }
    }
    listeners.sort();
    (out.len() == before).then_some(listeners)
}

/// A listener's certificate: required where TLS ends at the balancer,
/// refused elsewhere. `Certificate/NAME` waits for that kind.
fn certificate(
    at: &At<'_>,
    path: &FieldPath,
    protocol: ListenerProtocol,
    given: Option<&str>,
    out: &mut Vec<Diagnostic>,
) -> Option<Option<String>> {
    let path = path.key("certificate");
    match (needs_certificate(protocol), given) {
        (true, None) => {
            out.push(at.diag(
                &path,
                false,
                format!(
                    "{} {} listener needs a certificate (Certificate/NAME, or an ACM certificate ARN, arn:aws:acm:REGION:ACCOUNT:certificate/ID)",
                    article(protocol),
                    protocol.as_str()
                ),
            ));
            None
        }
        (false, Some(_)) => {
            out.push(at.diag(
                &path,
                false,
                format!(
                    "{} {} listener takes no certificate (only HTTPS, SSL and TLS ones do)",
                    article(protocol),
                    protocol.as_str()
                ),
            ));
            None
        }
        (_, None) => Some(None),
        // Declared, and in the balancer's region: checked across
        // resources (`certificate_cross_checks`).
        (true, Some(c)) if c.starts_with("Certificate/") => match CertificateRef::parse(c) {
            Ok(_) => Some(Some(c.to_owned())),
            Err(m) => {
                out.push(at.diag(&path, false, m));
                None
            }
        },
        (true, Some(c)) => {
            let acm = c.starts_with("arn:aws:acm:") && c.contains(":certificate/");
            let iam = c.starts_with("arn:aws:iam::") && c.contains(":server-certificate/");
            if acm || iam {
                Some(Some(c.to_owned()))
            } else {
                out.push(at.diag(
                    &path,
                    false,
                    format!(
                        "expected an ACM certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/ID), found {c:?}"
                    ),
                ));
                None
            }
        }
    }
}

/// Draining: the deregistration delay (elbv2) or the connection draining
/// timeout (classic, `0s` off); AWS's 300 s by default.
fn drain(
    at: &At<'_>,
    kind: BalancerType,
    s: &raw::BalancerSpec,
    out: &mut Vec<Diagnostic>,
) -> Option<u32> {
    let spec = FieldPath::spec();
    if kind == BalancerType::Classic {
        let Some(text) = &s.connection_draining else {
            return Some(elb::DEFAULT_DRAIN_SECS);
        };
        whole_secs(
            at,
            &spec.key("connectionDraining"),
            text,
            (0, ranges::CONNECTION_DRAINING.1),
            out,
        )
    } else {
        let Some(text) = &s.deregistration_delay else {
            return Some(elb::DEFAULT_DRAIN_SECS);
        };
        whole_secs(
            at,
            &spec.key("deregistrationDelay"),
            text,
            ranges::DEREGISTRATION_DELAY,
            out,
        )
    }
}

/// The health check, in the form of the balancer's type.
fn health(
    at: &At<'_>,
    kind: BalancerType,
    s: &raw::BalancerSpec,
    out: &mut Vec<Diagnostic>,
) -> Option<BalancerHealth> {
    let path = FieldPath::spec().key("healthCheck");
    if kind == BalancerType::Classic {
        let Some(h) = &s.health_check else {
            out.push(at.diag(
                &path,
                false,
                "a classic balancer needs a healthCheck with a target (like \"HTTP:80/\")",
            ));
            return None;
        };
        return super::health_check(at, &path, h, out).map(BalancerHealth::Classic);
    }
    let h = s.health_check.clone().unwrap_or_default();
    target_health(at, &path, kind, &h, out).map(BalancerHealth::Targets)
}

/// An elbv2 target group's health check, with AWS's defaults and ranges
/// (CreateTargetGroup).
fn target_health(
    at: &At<'_>,
    path: &FieldPath,
    kind: BalancerType,
    h: &raw::HealthCheck,
    out: &mut Vec<Diagnostic>,
) -> Option<TargetHealthCheck> {
    let before = out.len();
    if h.target.is_some() {
        out.push(at.diag(
            &path.key("target"),
            false,
            format!(
                "target is a classic balancer's; a {kind} balancer names protocol, port and path"
            ),
        ));
    }
    let protocol = h
        .protocol
        .map_or(kind.default_health_protocol(), protocol_of);
    if !kind.health_protocols().contains(&protocol) {
        out.push(at.diag(
            &path.key("protocol"),
            false,
            format!(
                "a {kind} balancer checks health over {}, found {}",
                names(kind.health_protocols()),
                protocol.as_str()
            ),
        ));
    }
    let http = matches!(protocol, ListenerProtocol::Http | ListenerProtocol::Https);
    let port = h.port.and_then(|p| {
        check::port(p)
            .map_err(|m| out.push(at.diag(&path.key("port"), false, m)))
            .ok()
    });
    let path_ok = |p: &String| p.starts_with('/') && p.len() <= ranges::PATH_LEN;
    match (&h.path, http) {
        (Some(_), false) => {
            out.push(at.diag(
                &path.key("path"),
                false,
                format!(
                    "{} {} health check requests no path",
                    article(protocol),
                    protocol.as_str()
                ),
            ));
        }
        (Some(p), true) if !path_ok(p) => {
            out.push(at.diag(
                &path.key("path"),
                false,
                format!(
                    "expected a path starting with / of at most {} characters, found {p:?}",
                    ranges::PATH_LEN
                ),
            ));
        }
        _ => {}
    }
    let matcher = match (&h.matcher, http) {
        (Some(_), false) => {
            out.push(at.diag(
                &path.key("matcher"),
                false,
                format!(
                    "{} {} health check has no matcher",
                    article(protocol),
                    protocol.as_str()
                ),
            ));
            None
        }
        (Some(m), true) => {
            if let Err(e) = check_matcher(m, kind.matcher_range()) {
                out.push(at.diag(&path.key("matcher"), false, e));
            }
            Some(m.clone())
        }
        (None, true) => Some("200-399".to_owned()),
        (None, false) => None,
    };
    let interval = whole_secs(
        at,
        &path.key("interval"),
        &h.interval,
        ranges::INTERVAL,
        out,
    );
    let default_timeout = if kind == BalancerType::Network && !http {
        10
    } else {
        5
    };
    let timeout = match &h.timeout {
        None => Some(default_timeout),
        Some(t) => whole_secs(at, &path.key("timeout"), t, ranges::TIMEOUT, out),
    };
    if let (Some(i), Some(t)) = (interval, timeout)
        && t >= i
    {
        out.push(at.diag(
            &path.key("timeout"),
            false,
            format!("the timeout must be below the interval, found timeout {t}s and interval {i}s"),
        ));
    }
    let mut threshold = |field: &str, n: i64| {
        let (lo, hi) = ranges::THRESHOLD;
        match u32::try_from(n) {
            Ok(v) if (lo..=hi).contains(&v) => Some(v),
            _ => {
                out.push(at.diag(
                    &path.key(field),
                    false,
                    format!("expected a threshold from {lo} to {hi}, found {n}"),
                ));
                None
            }
        }
    };
    let healthy = threshold("healthyThreshold", h.healthy_threshold.unwrap_or(5));
    let unhealthy = threshold("unhealthyThreshold", h.unhealthy_threshold);
    (out.len() == before).then_some(())?;
    Some(TargetHealthCheck {
        protocol,
        port,
        path: http.then(|| h.path.clone().unwrap_or_else(|| "/".to_owned())),
        matcher,
        interval_secs: interval?,
        timeout_secs: timeout?,
        healthy_threshold: healthy?,
        unhealthy_threshold: unhealthy?,
    })
}

/// A matcher: codes and ranges (`200`, `200,302`, `200-399`) within the
/// type's range.
fn check_matcher(m: &str, (lo, hi): (u16, u16)) -> Result<(), String> {
    let bad = || {
        format!(
            "expected HTTP codes from {lo} to {hi} like \"200\", \"200,302\" or \"200-399\", found {m:?}"
        )
    };
    let code = |t: &str| -> Result<u16, String> {
        let c: u16 = t.trim().parse().map_err(|_| bad())?;
        if (lo..=hi).contains(&c) {
            Ok(c)
        } else {
            Err(bad())
        }
    };
    for part in m.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                if code(a)? > code(b)? {
                    return Err(bad());
                }
            }
            None => {
                code(part)?;
            }
        }
    }
    Ok(())
}
