//! `converge local ls`: one row per resource the local cloud holds, in
//! every region and stack, whether converge owns it or not, and whatever
//! the `lag` fault hides.

use super::world::{Instance, ROOT_SNAPSHOT_GIB, World};
use converge_core::ids::{InstanceId, tags};
use converge_core::observed::{DistributionStatus, MemberState, Owner};
use jiff::Timestamp;
use std::fmt;

/// One resource in the local cloud.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LsRow {
    /// What type of cloud resource (`instance`, `volume`, …); rows are
    /// sorted by it first, in dependency order.
    pub kind: ResourceType,
    /// Its ID (`i-…`, `vol-…`), or its name for balancers and buckets.
    pub id: String,
    /// The stack that owns it (`-` when it has no converge tags).
    pub stack: String,
    /// The manifest resource it belongs to: `Fleet/app` for an instance,
    /// `Volume/pgdata` for a volume and its snapshots, `-` when unowned.
    pub resource: String,
    /// Its zone, a balancer's zones, or `-`.
    pub zone: String,
    /// Its state (`running`, `in-use by i-… at /dev/sdj`, `Deployed,
    /// enabled`, …).
    pub state: String,
}

/// The type of a cloud resource, in the order `ls` lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    /// A VPC.
    Vpc,
    /// A subnet.
    Subnet,
    /// An internet gateway.
    Gateway,
    /// A route table.
    RouteTable,
    /// A key pair.
    KeyPair,
    /// A security group.
    SecurityGroup,
    /// An instance.
    Instance,
    /// A volume.
    Volume,
    /// A snapshot.
    Snapshot,
    /// A load balancer (classic, application or network).
    Balancer,
    /// An elbv2 target group.
    TargetGroup,
    /// A bucket.
    Bucket,
    /// A distribution.
    Distribution,
    /// An IAM instance profile (made with `converge local add`).
    InstanceProfile,
    /// An SSM parameter (made with `converge local add`).
    Parameter,
    /// An ACM certificate (made with `converge local add`).
    Certificate,
    /// A Route 53 hosted zone.
    HostedZone,
    /// A Route 53 record set (ownership marks included).
    Record,
}

impl ResourceType {
    /// The type's name as `ls` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::Vpc => "vpc",
            ResourceType::Subnet => "subnet",
            ResourceType::Gateway => "internet-gateway",
            ResourceType::RouteTable => "route-table",
            ResourceType::KeyPair => "key-pair",
            ResourceType::SecurityGroup => "security-group",
            ResourceType::Instance => "instance",
            ResourceType::Volume => "volume",
            ResourceType::Snapshot => "snapshot",
            ResourceType::Balancer => "balancer",
            ResourceType::TargetGroup => "target-group",
            ResourceType::Bucket => "bucket",
            ResourceType::Distribution => "distribution",
            ResourceType::InstanceProfile => "instance-profile",
            ResourceType::Parameter => "parameter",
            ResourceType::Certificate => "certificate",
            ResourceType::HostedZone => "hosted-zone",
            ResourceType::Record => "record",
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn owner_cols(t: &converge_core::desired::Tags) -> (String, String) {
    match Owner::from_tags(t) {
        Some(o) => (o.stack.to_string(), format!("{}/{}", o.kind, o.name)),
        None => (
            t.get(tags::STACK)
                .cloned()
                .unwrap_or_else(|| "-".to_owned()),
            "-".to_owned(),
        ),
    }
}

/// The hosted zones and one row per record set: its name (the ID
/// column), type, TTL in seconds and values; the stack and DnsRecord its
/// ownership mark names.
fn dns_rows(w: &World) -> Vec<LsRow> {
    use converge_core::route53::Mark;
    let mut out = Vec::new();
    for z in w.hosted_zones.values() {
        let (stack, resource) = owner_cols(&z.tags);
        out.push(LsRow {
            kind: ResourceType::HostedZone,
            id: z.id.clone(),
            stack,
            resource,
            zone: z.domain.clone(),
            state: format!("public, name servers {}", z.name_servers.join(", ")),
        });
        let observed = z.observed();
        for r in &z.records {
            let mark = Mark::of(&observed, &r.name, r.rtype)
                .or_else(|| r.values.first().and_then(|v| Mark::parse(v)));
            let (stack, resource) = match &mark {
                Some(m) => (m.stack.to_string(), format!("DnsRecord/{}", m.record)),
                None => ("-".to_owned(), "-".to_owned()),
            };
            let ttl = r.ttl.map_or("alias".to_owned(), |t| format!("TTL {t} s"));
            let content = match &r.alias {
                Some(a) => format!("{} ({})", a.dns_name, a.zone_id),
                None => r.values.join(" "),
            };
            out.push(LsRow {
                kind: ResourceType::Record,
                id: r.name.clone(),
                stack,
                resource,
                zone: z.domain.clone(),
                state: format!("{} {ttl} {content}", r.rtype),
            });
        }
    }
    out
}

/// Every resource in the world at `now`, sorted by type, then ID.
pub(crate) fn rows(w: &World, now: Timestamp) -> Vec<LsRow> {
    let mut out = network_rows(w);
    for k in w.key_pairs.values() {
        let (stack, resource) = owner_cols(&k.tags);
        out.push(LsRow {
            kind: ResourceType::KeyPair,
            id: k.id.to_string(),
            stack,
            resource,
            zone: "-".to_owned(),
            state: format!("available ({}, {})", k.name, k.region),
        });
    }
    for g in w.groups.values() {
        let (stack, resource) = owner_cols(&g.tags);
        out.push(LsRow {
            kind: ResourceType::SecurityGroup,
            id: g.id.to_string(),
            stack,
            resource,
            zone: "-".to_owned(),
            state: format!("available ({}, {} rule(s))", g.name, g.rules.len()),
        });
    }
    for i in w.instances.values().filter(|i| !i.purged(now)) {
        let (stack, resource) = owner_cols(&i.tags);
        out.push(LsRow {
            kind: ResourceType::Instance,
            id: i.id.to_string(),
            stack,
            resource,
            zone: i.zone.to_string(),
            state: instance_state(i, now),
        });
    }
    for v in w.volumes.values() {
        let (stack, resource) = owner_cols(&v.tags);
        let state = match w.attachment(v, now) {
            Some(a) => format!("in-use by {} at {}", a.instance, a.device),
            _ => w.volume_state(v, now).as_str().to_owned(),
        };
        out.push(LsRow {
            kind: ResourceType::Volume,
            id: v.id.to_string(),
            stack,
            resource,
            zone: v.zone.to_string(),
            state: format!("{state} ({})", volume_details(v, now)),
        });
    }
    for s in w.snapshots.values() {
        let stack = s
            .tags
            .get(tags::STACK)
            .cloned()
            .unwrap_or_else(|| "-".to_owned());
        let resource = s
            .tags
            .get(tags::VOLUME)
            .map(|v| format!("Volume/{v}"))
            .unwrap_or_else(|| "-".to_owned());
        let state = match s.state(now) {
            converge_core::observed::SnapshotState::Pending => "pending",
            converge_core::observed::SnapshotState::Completed => "completed",
            converge_core::observed::SnapshotState::Error => "error",
        };
        out.push(LsRow {
            kind: ResourceType::Snapshot,
            id: s.id.to_string(),
            stack,
            resource,
            zone: "-".to_owned(),
            state: format!("{state} (of {})", s.volume_id),
        });
    }
    balancer_rows(w, now, &mut out);
    for b in w.buckets.values() {
        let (stack, resource) = owner_cols(&b.tags);
        out.push(LsRow {
            kind: ResourceType::Bucket,
            id: b.name.clone(),
            stack,
            resource,
            zone: "-".to_owned(),
            state: if b.public_read {
                "public-read"
            } else {
                "private"
            }
            .to_owned(),
        });
    }
    for d in w.distributions.values() {
        let (stack, resource) = owner_cols(&d.tags);
        let status = match d.status(now) {
            DistributionStatus::InProgress => "InProgress",
            DistributionStatus::Deployed => "Deployed",
        };
        let enabled = if d.config.enabled {
            "enabled"
        } else {
            "disabled"
        };
        out.push(LsRow {
            kind: ResourceType::Distribution,
            id: d.id.to_string(),
            stack,
            resource,
            zone: "-".to_owned(),
            state: format!("{status}, {enabled} ({})", d.domain_name),
        });
    }
    outside_rows(w, &mut out);
    out.extend(dns_rows(w));
    out.sort();
    out
}

/// An instance's state, addresses, subnet and launch options: `running
/// 10.0.3.7 public 198.51.4.9 in subnet-…, profile app-role, metadata
/// tokens required hop limit 2, root 20 GiB gp3 encrypted`.
fn instance_state(i: &Instance, now: Timestamp) -> String {
    let state = i.state(now);
    if state == converge_core::observed::InstanceState::Terminated {
        return state.as_str().to_owned();
    }
    let profile = match &i.profile {
        Some(a) => a.arn.rsplit('/').next().unwrap_or(&a.arn).to_owned(),
        None => "none".to_owned(),
    };
    let m = i.metadata;
    let root = match i.root_volume {
        Some(r) => r.to_string(),
        None => format!("the image's, {ROOT_SNAPSHOT_GIB} GiB"),
    };
    let mut text = format!("{} {}", state.as_str(), i.private_ip);
    if let Some(p) = i.public_ip {
        text.push_str(&format!(" public {p}"));
    }
    if let Some(s) = &i.subnet {
        text.push_str(&format!(" in {s}"));
    }
    text.push_str(&format!(
        ", profile {profile}, metadata tokens {} hop limit {}, root {root}",
        m.tokens.as_str(),
        m.hop_limit
    ));
    text
}

/// Balancers of every type, with `N/M healthy` members (M: those not
/// leaving) and the draining ones named; target groups.
fn balancer_rows(w: &World, now: Timestamp, out: &mut Vec<LsRow>) {
    for b in &w.balancers {
        let (stack, resource) = owner_cols(&b.tags);
        let states: Vec<(InstanceId, MemberState)> = b
            .members
            .iter()
            .filter_map(|(id, reg)| w.member_state(b, id, reg, now).map(|s| (id.clone(), s)))
            .chain(
                b.draining
                    .iter()
                    .filter(|(_, d)| d.active(now))
                    .map(|(id, _)| (id.clone(), MemberState::Draining)),
            )
            .collect();
        let zones: Vec<&str> = b.zones.iter().map(|z| z.as_str()).collect();
        out.push(LsRow {
            kind: ResourceType::Balancer,
            id: b.name.clone(),
            stack,
            resource,
            zone: zones.join(","),
            state: format!("classic {}, {}", b.scheme, members_text(&states)),
        });
    }
    for b in &w.balancers_v2 {
        let (stack, resource) = owner_cols(&b.tags);
        let mut worst: std::collections::BTreeMap<InstanceId, MemberState> = Default::default();
        for l in &b.listeners {
            if let Some(g) = w.target_group(&b.region, &l.target_group) {
                for (id, s) in w.targets(g, now) {
                    let e = worst.entry(id).or_insert(s);
                    *e = (*e).max(s);
                }
            }
        }
        let states: Vec<(InstanceId, MemberState)> = worst.into_iter().collect();
        let zones: Vec<&str> = b.zones.iter().map(|z| z.as_str()).collect();
        out.push(LsRow {
            kind: ResourceType::Balancer,
            id: b.name.clone(),
            stack,
            resource,
            zone: zones.join(","),
            state: format!("{} {}, {}", b.kind, b.scheme, members_text(&states)),
        });
    }
    for g in &w.target_groups {
        let (stack, resource) = owner_cols(&g.tags);
        let used = w
            .group_balancer(g)
            .map_or_else(|| "unused".to_owned(), |b| format!("for {}", b.name));
        let targets = w.targets(g, now);
        let states: Vec<(InstanceId, MemberState)> = targets;
        out.push(LsRow {
            kind: ResourceType::TargetGroup,
            id: g.name.clone(),
            stack,
            resource,
            zone: g.region.clone(),
            state: format!(
                "{}:{} {used}, drains {}s, {}",
                g.protocol.as_str(),
                g.port,
                g.deregistration_delay_secs,
                members_text(&states)
            ),
        });
    }
}

/// `2/3 healthy, draining i-…`: the members not leaving and how many of
/// them pass their checks, then those draining.
fn members_text(states: &[(InstanceId, MemberState)]) -> String {
    let staying = states.iter().filter(|(_, s)| !s.draining()).count();
    let healthy = states.iter().filter(|(_, s)| s.healthy()).count();
    let draining: Vec<&str> = states
        .iter()
        .filter(|(_, s)| s.draining())
        .map(|(id, _)| id.as_str())
        .collect();
    let mut text = format!("{healthy}/{staying} healthy");
    if !draining.is_empty() {
        text.push_str(&format!(", draining {}", draining.join(" ")));
    }
    text
}

/// What exists outside any stack: instance profiles, SSM parameters and
/// certificates.
fn outside_rows(w: &World, out: &mut Vec<LsRow>) {
    for c in w.certificates.values() {
        // A requested one is issued a delay after its records are seen.
        let state = match (c.dns_validated, c.validated_at) {
            (true, None) => "PENDING_VALIDATION",
            (true, Some(_)) => "validated",
            (false, _) => "ISSUED",
        };
        let tag = |k: &str| c.tags.get(k).cloned().unwrap_or_else(|| "-".to_owned());
        out.push(LsRow {
            kind: ResourceType::Certificate,
            id: c.arn.clone(),
            stack: tag(converge_core::ids::tags::STACK),
            resource: tag(converge_core::ids::tags::NAME),
            zone: c.region.clone(),
            state: format!("{state} for {}", c.domains.join(", ")),
        });
    }
    for p in w.instance_profiles.values() {
        out.push(LsRow {
            kind: ResourceType::InstanceProfile,
            id: p.name.clone(),
            stack: "-".to_owned(),
            resource: "-".to_owned(),
            zone: "-".to_owned(),
            state: p.arn.clone(),
        });
    }
    for (region, params) in &w.parameters {
        for (name, p) in params {
            out.push(LsRow {
                kind: ResourceType::Parameter,
                id: name.clone(),
                stack: "-".to_owned(),
                resource: "-".to_owned(),
                zone: region.clone(),
                state: format!("version {}: {}", p.version, p.value),
            });
        }
    }
}

/// The VPCs (those made by CreateVpc or `local add vpc`; default VPCs are
/// implicit), subnets, internet gateways and route tables.
fn network_rows(w: &World) -> Vec<LsRow> {
    let mut out = Vec::new();
    for v in w.vpcs.values() {
        let (stack, resource) = owner_cols(&v.tags);
        let dns = match (v.dns_support, v.dns_hostnames) {
            (true, true) => "DNS support and host names",
            (true, false) => "DNS support",
            _ => "no DNS",
        };
        out.push(LsRow {
            kind: ResourceType::Vpc,
            id: v.id.to_string(),
            stack,
            resource,
            zone: "-".to_owned(),
            state: format!("available {} ({}, {dns})", v.cidr, v.region),
        });
    }
    for s in w.subnets.values() {
        let (stack, mut resource) = owner_cols(&s.tags);
        if let Some(name) = s.tags.get(tags::SUBNET) {
            resource.push_str(&format!(" subnet {name}"));
        }
        let public = if s.map_public_ip {
            ", public addresses"
        } else {
            ""
        };
        out.push(LsRow {
            kind: ResourceType::Subnet,
            id: s.id.to_string(),
            stack,
            resource,
            zone: s.zone.to_string(),
            state: format!("available {} in {}{public}", s.cidr, s.vpc),
        });
    }
    for g in w.gateways.values() {
        let (stack, resource) = owner_cols(&g.tags);
        out.push(LsRow {
            kind: ResourceType::Gateway,
            id: g.id.to_string(),
            stack,
            resource,
            zone: "-".to_owned(),
            state: match &g.attached_to {
                Some(v) => format!("attached to {v}"),
                None => "detached".to_owned(),
            },
        });
    }
    for r in w.route_tables.values() {
        let (stack, resource) = owner_cols(&r.tags);
        let routes: Vec<String> = r.routes.iter().map(|(d, g)| format!("{d}→{g}")).collect();
        let subnets: Vec<&str> = r.associations.values().map(|s| s.as_str()).collect();
        out.push(LsRow {
            kind: ResourceType::RouteTable,
            id: r.id.to_string(),
            stack,
            resource,
            zone: "-".to_owned(),
            state: format!(
                "in {}, routes [{}], subnets [{}]",
                r.vpc,
                routes.join(", "),
                subnets.join(", ")
            ),
        });
    }
    out
}

/// The rows as an aligned table with a header, one line per resource and
/// a final newline; a short sentence when there are none.
pub fn format_table(rows: &[LsRow]) -> String {
    Table(rows).to_string()
}

/// Displays rows as an aligned table (see [`format_table`]).
#[derive(Clone, Copy, Debug)]
pub struct Table<'a>(pub &'a [LsRow]);

impl fmt::Display for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return writeln!(f, "the local cloud holds nothing");
        }
        let header = ["TYPE", "ID", "STACK", "RESOURCE", "ZONE", "STATE"];
        let cells: Vec<[String; 6]> = self
            .0
            .iter()
            .map(|r| {
                [
                    r.kind.to_string(),
                    r.id.clone(),
                    r.stack.clone(),
                    r.resource.clone(),
                    r.zone.clone(),
                    r.state.clone(),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, row: [&str; 6]| -> fmt::Result {
            for (i, c) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    writeln!(f, "{c}")?;
                } else {
                    write!(f, "{c:<w$}  ", w = widths[i])?;
                }
            }
            Ok(())
        };
        line(f, header)?;
        for row in &cells {
            line(f, row.each_ref().map(String::as_str))?;
        }
        Ok(())
    }
}

/// What `ls` says of a volume beside its state: size and type, IOPS and
/// throughput where it has them, its encryption (the key's ID, the end of
/// its ARN), and a modification still under way.
fn volume_details(v: &super::world::Volume, now: jiff::Timestamp) -> String {
    let mut out = format!("{} GiB {}", v.size_gib, v.volume_type.as_str());
    if let Some(iops) = v.iops {
        out.push_str(&format!(", {iops} IOPS"));
    }
    if let Some(mbs) = v.throughput {
        out.push_str(&format!(", {mbs} MiB/s"));
    }
    match (&v.encrypted, &v.kms_key) {
        (true, Some(arn)) => {
            let key = arn.rsplit('/').next().unwrap_or(arn);
            out.push_str(&format!(", encrypted with key {key}"));
        }
        (true, None) => out.push_str(", encrypted"),
        (false, _) => out.push_str(", unencrypted"),
    }
    if let Some(m) = &v.modification {
        let state = m.state(now);
        if state != converge_core::observed::ModificationState::Completed {
            out.push_str(&format!(", modification {}", state.as_str()));
        }
    }
    out
}
