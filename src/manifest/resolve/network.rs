//! Resolving the `Network` document and where fleets and balancers go in
//! it: a created VPC's block and its subnets' (sizes, inside the VPC, no
//! overlap, zones of the region), an existing VPC's IDs, and the
//! `zones`/`subnets` rule of fleets and balancers (with a Network they
//! name subnets, without one zones).

use super::{At, Entry, Resolver, Spec, id};
use crate::manifest::check;
use crate::manifest::diagnostics::Diagnostic;
use crate::manifest::node::FieldPath;
use crate::manifest::raw;
use converge_core::desired::{self as d, NetworkVpc, NewSubnet};
use converge_core::ids::{Kind, ResourceName};
use converge_core::net::Ipv4Cidr;
use std::collections::BTreeMap;

impl Resolver<'_> {
    /// The first Network document, with its name.
    pub(super) fn declared_network(&self) -> Option<(&Entry, &raw::NetworkSpec)> {
        self.entries.iter().find_map(|e| match &e.spec {
            Some(Spec::Network(n)) if e.kind == Kind::Network => Some((e, n)),
            _ => None,
        })
    }

    /// Resolves the Network; a second Network (another name) is an error.
    pub(super) fn network(
        &self,
        at: &At<'_>,
        name: ResourceName,
        s: &raw::NetworkSpec,
        out: &mut Vec<Diagnostic>,
    ) -> Option<d::Network> {
        if let Some((first, _)) = self.declared_network()
            && first.name != name.as_str()
        {
            out.push(at.diag(
                &FieldPath::default().key("kind"),
                false,
                format!(
                    "a second Network: this stack already declares {} in {}; a stack has at most one",
                    first.resource(),
                    first.file.display()
                ),
            ));
            return None;
        }
        let spec = FieldPath::spec();
        if s.subnets.is_empty() {
            out.push(at.diag(
                &spec.key("subnets"),
                false,
                "expected at least one subnet, found none",
            ));
        }
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, sub) in s.subnets.iter().enumerate() {
            let path = spec.key("subnets").index(i).key("name");
            if let Err(m) = check::name(Kind::Network, &sub.name) {
                out.push(at.diag(&path, false, m));
            }
            if let Some(first) = names.insert(&sub.name, i) {
                out.push(at.diag(
                    &path,
                    false,
                    format!(
                        "subnet {} is already declared by subnets[{first}]",
                        sub.name
                    ),
                ));
            }
        }
        let vpc = match (&s.cidr, &s.vpc) {
            (Some(c), None) => self.created_vpc(at, c, &s.subnets, out),
            (None, Some(v)) => existing_vpc(at, v, s, out),
            (Some(_), Some(_)) => {
                out.push(at.diag(
                    &spec,
                    false,
                    "expected exactly one of cidr (create a VPC) and vpc (use an existing one), found both",
                ));
                None
            }
            (None, None) => {
                out.push(at.diag(
                    &spec,
                    false,
                    "expected exactly one of cidr (create a VPC) and vpc (use an existing one), found neither",
                ));
                None
            }
        };
        let deletion_policy = match s.deletion_policy {
            raw::NetworkDeletionPolicy::Retain => d::DeletionPolicy::Retain,
            raw::NetworkDeletionPolicy::Delete => d::DeletionPolicy::Delete,
        };
        Some(d::Network {
            name,
            vpc: vpc?,
            deletion_policy,
            tags: s.tags.clone(),
        })
    }

    /// A VPC converge creates: its block and its subnets'.
    fn created_vpc(
        &self,
        at: &At<'_>,
        cidr: &str,
        subnets: &[raw::SubnetSpec],
        out: &mut Vec<Diagnostic>,
    ) -> Option<NetworkVpc> {
        let spec = FieldPath::spec();
        let block = check::network_block(cidr)
            .map_err(|m| out.push(at.diag(&spec.key("cidr"), false, m)))
            .ok();
        let mut made: BTreeMap<ResourceName, NewSubnet> = BTreeMap::new();
        let mut blocks: Vec<(usize, Ipv4Cidr)> = Vec::new();
        let mut ok = true;
        for (i, sub) in subnets.iter().enumerate() {
            let path = spec.key("subnets").index(i);
            if sub.id.is_some() {
                out.push(at.diag(
                    &path.key("id"),
                    false,
                    "id names a subnet of an existing VPC (spec.vpc); a created VPC's subnets take zone, cidr and public",
                ));
                ok = false;
            }
            let zone = match &sub.zone {
                None => {
                    out.push(at.diag(&path, false, "missing required field `zone`"));
                    None
                }
                Some(z) => match &self.region {
                    Some(r) => check::zone(z, r)
                        .map_err(|m| out.push(at.diag(&path.key("zone"), false, m)))
                        .ok()
                        .and_then(|()| id(z)),
                    None => None,
                },
            };
            let sub_block = match &sub.cidr {
                None => {
                    out.push(at.diag(&path, false, "missing required field `cidr`"));
                    None
                }
                Some(c) => check::network_block(c)
                    .map_err(|m| out.push(at.diag(&path.key("cidr"), false, m)))
                    .ok(),
            };
            if let (Some(vpc), Some(b)) = (block, sub_block) {
                if !vpc.contains(b) {
                    out.push(at.diag(
                        &path.key("cidr"),
                        false,
                        format!(
                            "subnet {} ({b}) is not inside the VPC's block {vpc}",
                            sub.name
                        ),
                    ));
                    ok = false;
                }
                if let Some((j, other)) = blocks.iter().find(|(_, o)| o.overlaps(b)) {
                    out.push(at.diag(
                        &path.key("cidr"),
                        false,
                        format!(
                            "{b} overlaps subnets[{j}] ({other}); a VPC's subnets may not overlap"
                        ),
                    ));
                    ok = false;
                }
                blocks.push((i, b));
            }
            match (id::<ResourceName>(&sub.name), zone, sub_block) {
                (Some(n), Some(zone), Some(cidr)) => {
                    made.insert(
                        n,
                        NewSubnet {
                            zone,
                            cidr,
                            public: sub.public.unwrap_or(false),
                        },
                    );
                }
                _ => ok = false,
            }
        }
        (ok && made.len() == subnets.len()).then_some(NetworkVpc::Create {
            cidr: block?,
            subnets: made,
        })
    }

    /// Checks a fleet's or balancer's `zones` and `subnets` against the
    /// Network (or its absence); returns the subnets.
    pub(super) fn placement(
        &self,
        at: &At<'_>,
        what: &str,
        zones: &[String],
        subnets: &[String],
        out: &mut Vec<Diagnostic>,
    ) -> Option<Vec<ResourceName>> {
        let spec = FieldPath::spec();
        let Some((net, n)) = self.declared_network() else {
            if !subnets.is_empty() {
                out.push(at.diag(
                    &spec.key("subnets"),
                    false,
                    format!("subnets need a Network (kind: Network), and the stack declares none; without one, a {what} names spec.zones"),
                ));
                return None;
            }
            self.zones(at, &spec.key("zones"), zones, out);
            return Some(Vec::new());
        };
        let declared: Vec<&str> = n.subnets.iter().map(|s| s.name.as_str()).collect();
        if !zones.is_empty() {
            out.push(at.diag(
                &spec.key("zones"),
                false,
                format!(
                    "with a Network, a {what} names spec.subnets (subnets of {}: {}), not zones",
                    net.resource(),
                    declared.join(", ")
                ),
            ));
        }
        if subnets.is_empty() {
            out.push(at.diag(
                &spec.key("subnets"),
                false,
                format!(
                    "expected at least one subnet of {} ({}), found none",
                    net.resource(),
                    declared.join(", ")
                ),
            ));
            return None;
        }
        let mut ok = zones.is_empty();
        let mut zone_of: BTreeMap<&str, usize> = BTreeMap::new();
        let mut names = Vec::new();
        for (i, sname) in subnets.iter().enumerate() {
            let path = spec.key("subnets").index(i);
            let Some(sub) = n.subnets.iter().find(|s| s.name == *sname) else {
                out.push(at.diag(
                    &path,
                    false,
                    format!(
                        "{} has no subnet {sname} (declared: {})",
                        net.resource(),
                        declared.join(", ")
                    ),
                ));
                ok = false;
                continue;
            };
            if names.iter().any(|n: &ResourceName| n.as_str() == sname) {
                out.push(at.diag(&path, false, format!("subnet {sname} is listed twice")));
                ok = false;
                continue;
            }
            // One subnet per zone: instances spread over zones, and a
            // classic balancer takes at most one subnet per zone.
            if let Some(z) = &sub.zone
                && let Some(first) = zone_of.insert(z.as_str(), i)
            {
                out.push(at.diag(
                    &path,
                    false,
                    format!(
                        "subnet {sname} is in {z}, as subnets[{first}] is: a {what} takes at most one subnet per zone"
                    ),
                ));
                ok = false;
            }
            names.extend(id(sname));
        }
        ok.then_some(names)
    }

    /// The zones a fleet launches in, when the manifests say them: its
    /// zones, or its created subnets' (`None` for an existing VPC's,
    /// known only once observed).
    pub(super) fn fleet_zones(&self, f: &raw::FleetSpec) -> Option<Vec<String>> {
        if f.subnets.is_empty() {
            return Some(f.zones.clone());
        }
        self.subnet_zones(&f.subnets)
    }

    /// The zones a balancer serves, when the manifests say them.
    pub(super) fn balancer_zones_of(&self, b: &raw::BalancerSpec) -> Option<Vec<String>> {
        if b.subnets.is_empty() {
            return Some(b.zones.clone());
        }
        self.subnet_zones(&b.subnets)
    }

    fn subnet_zones(&self, names: &[String]) -> Option<Vec<String>> {
        let (_, n) = self.declared_network()?;
        names
            .iter()
            .map(|s| n.subnets.iter().find(|x| x.name == *s)?.zone.clone())
            .collect()
    }

    /// A fleet's most instances must fit in its created subnets: AWS
    /// reserves five addresses of each.
    pub(super) fn subnet_room(&self, at: &At<'_>, f: &raw::FleetSpec, out: &mut Vec<Diagnostic>) {
        let Some((_, n)) = self.declared_network() else {
            return;
        };
        if f.subnets.is_empty() {
            return;
        }
        let max = Self::max_replicas(f).max(0) as u64;
        let per_subnet = max.div_ceil(f.subnets.len() as u64);
        for (i, sname) in f.subnets.iter().enumerate() {
            let Some(block) = n
                .subnets
                .iter()
                .find(|s| s.name == *sname)
                .and_then(|s| s.cidr.as_deref())
                .and_then(|c| check::network_block(c).ok())
            else {
                continue;
            };
            let usable = check::usable_addresses(block);
            if per_subnet > usable {
                out.push(at.diag(
                    &FieldPath::spec().key("subnets").index(i),
                    false,
                    format!(
                        "the fleet can run up to {max} instances, {per_subnet} in subnet {sname}, which has {usable} usable addresses ({block}, less the 5 AWS reserves)"
                    ),
                ));
            }
        }
    }
}

/// An existing VPC: its ID and its subnets' IDs.
fn existing_vpc(
    at: &At<'_>,
    vpc: &str,
    s: &raw::NetworkSpec,
    out: &mut Vec<Diagnostic>,
) -> Option<NetworkVpc> {
    let spec = FieldPath::spec();
    let mut ok = true;
    if let Err(m) = check::vpc_id(vpc) {
        out.push(at.diag(&spec.key("vpc"), false, m));
        ok = false;
    }
    if s.deletion_policy == raw::NetworkDeletionPolicy::Delete {
        out.push(at.diag(
            &spec.key("deletionPolicy"),
            false,
            "converge never deletes an existing VPC (spec.vpc): deletionPolicy applies to a VPC it creates (spec.cidr)",
        ));
        ok = false;
    }
    let mut subnets = BTreeMap::new();
    for (i, sub) in s.subnets.iter().enumerate() {
        let path = spec.key("subnets").index(i);
        for (field, given) in [
            ("zone", sub.zone.is_some()),
            ("cidr", sub.cidr.is_some()),
            ("public", sub.public.is_some()),
        ] {
            if given {
                out.push(at.diag(
                    &path.key(field),
                    false,
                    format!("an existing VPC's subnet takes only name and id; its {field} is read from the cloud"),
                ));
                ok = false;
            }
        }
        match &sub.id {
            None => {
                out.push(at.diag(&path, false, "missing required field `id`"));
                ok = false;
            }
            Some(sid) => match check::subnet_id(sid) {
                Ok(()) => {
                    if let (Some(n), Some(i)) = (id::<ResourceName>(&sub.name), id(sid)) {
                        subnets.insert(n, i);
                    }
                }
                Err(m) => {
                    out.push(at.diag(&path.key("id"), false, m));
                    ok = false;
                }
            },
        }
    }
    (ok && subnets.len() == s.subnets.len()).then_some(NetworkVpc::Existing {
        vpc: id(vpc)?,
        subnets,
    })
}

impl Resolver<'_> {
    /// A fleet's `privateIps`: each an IPv4 address, listed once, in one
    /// of the fleet's subnets (when the manifests give their blocks) and
    /// not one AWS reserves; as many as the fleet can run, in each subnet
    /// as many as it spreads there. `None` when one is wrong.
    pub(super) fn fleet_addresses(
        &self,
        at: &At<'_>,
        name: &str,
        f: &raw::FleetSpec,
        out: &mut Vec<Diagnostic>,
    ) -> Option<Vec<std::net::Ipv4Addr>> {
        let path = FieldPath::spec().key("privateIps");
        if f.private_ips.is_empty() {
            return Some(Vec::new());
        }
        let before = out.len();
        if f.subnets.is_empty() || self.declared_network().is_none() {
            out.push(at.diag(
                &path,
                false,
                "privateIps needs a Network (kind: Network) and the fleet's spec.subnets: each address lies in one of them",
            ));
            return None;
        }
        if f.autoscale.is_some() {
            out.push(at.diag(
                &path,
                false,
                "privateIps and autoscale do not go together: the autoscaler picks which instances go, and a fleet with declared addresses keeps each at its own; use replicas or a schedule",
            ));
        }
        // Each address with its index in the list, for the diagnostics.
        let mut addrs: Vec<(usize, std::net::Ipv4Addr)> = Vec::new();
        for (i, s) in f.private_ips.iter().enumerate() {
            match s.parse::<std::net::Ipv4Addr>() {
                Ok(a) if addrs.iter().any(|(_, b)| *b == a) => {
                    out.push(at.diag(&path.index(i), false, format!("{a} is listed twice")));
                }
                Ok(a) => addrs.push((i, a)),
                Err(_) => out.push(at.diag(
                    &path.index(i),
                    false,
                    format!("expected an IPv4 address such as 10.0.10.10, found {s:?}"),
                )),
            }
        }
        let max = Self::max_replicas(f).max(0) as u64;
        if (addrs.len() as u64) < max {
            out.push(at.diag(
                &path,
                false,
                format!(
                    "the fleet can run up to {max} instances (replicas or schedule) but privateIps lists {}; each instance takes one",
                    addrs.len()
                ),
            ));
        }
        self.addresses_in_subnets(at, name, f, &addrs, out);
        (out.len() == before).then(|| addrs.into_iter().map(|(_, a)| a).collect())
    }

    /// With a created VPC: each address in one of the fleet's subnets and
    /// not reserved, and each subnet holding as many as the fleet puts
    /// there (all of them in the attached volume's zone).
    fn addresses_in_subnets(
        &self,
        at: &At<'_>,
        name: &str,
        f: &raw::FleetSpec,
        addrs: &[(usize, std::net::Ipv4Addr)],
        out: &mut Vec<Diagnostic>,
    ) {
        let Some((_, n)) = self.declared_network() else {
            return;
        };
        let path = FieldPath::spec().key("privateIps");
        // The fleet's subnets with their blocks and zones, in its order;
        // an existing VPC's are known only once observed (the planner
        // checks them then).
        let mut subnets: Vec<(&str, Ipv4Cidr, &str)> = Vec::new();
        for sname in &f.subnets {
            let Some(sub) = n.subnets.iter().find(|s| s.name == *sname) else {
                return;
            };
            let (Some(block), Some(zone)) = (
                sub.cidr
                    .as_deref()
                    .and_then(|c| check::network_block(c).ok()),
                sub.zone.as_deref(),
            ) else {
                return;
            };
            subnets.push((sname.as_str(), block, zone));
        }
        let before = out.len();
        let mut held = vec![0u64; subnets.len()];
        for &(i, a) in addrs {
            match subnets.iter().position(|(_, b, _)| b.contains_addr(a)) {
                Some(k) if converge_core::net::reserved_address(subnets[k].1, a) => out.push(at.diag(
                    &path.index(i),
                    false,
                    format!(
                        "{a} is one of the five addresses AWS reserves in subnet {} ({}: its first four and its last)",
                        subnets[k].0, subnets[k].1
                    ),
                )),
                Some(k) => held[k] += 1,
                None => out.push(at.diag(
                    &path.index(i),
                    false,
                    format!(
                        "{a} is in none of the fleet's subnets ({})",
                        subnets
                            .iter()
                            .map(|(n, b, _)| format!("{n} {b}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )),
            }
        }
        let max = Self::max_replicas(f).max(0) as u64;
        if out.len() > before || (addrs.len() as u64) < max {
            // Said already: an address out of place, or too few in all.
            return;
        }
        let volume_zone = self
            .attached_volumes()
            .get(name)
            .map(|(_, v)| v.zone.clone());
        for (i, (sname, _, zone)) in subnets.iter().enumerate() {
            // As the planner spreads; an attached volume's zone takes them
            // all.
            let wants = match &volume_zone {
                Some(z) if z == zone => max,
                Some(_) => 0,
                None => u64::from(converge_core::plan::spread_share(
                    max as u32,
                    subnets.len(),
                    i,
                )),
            };
            if held[i] < wants {
                out.push(at.diag(
                    &path,
                    false,
                    format!(
                        "the fleet can put {wants} instance(s) in subnet {sname} ({zone}), but privateIps has {} address(es) in it",
                        held[i]
                    ),
                ));
            }
        }
    }
}
