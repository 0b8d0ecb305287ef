//! Resolving `DnsZone` and `DnsRecord` documents, with Route 53's rules
//! checked before any call (`converge_core::route53`): domains and names
//! as Route 53 takes them, the name inside its zone, a CNAME neither at
//! the apex nor beside another record of its name, values of the
//! record's type, aliases only for A and AAAA, TTLs in range, at most 10
//! tags on a zone, and no two records of one name and type.

use super::{At, Resolver, Spec, duration, id};
use crate::manifest::diagnostics::Diagnostic;
use crate::manifest::node::FieldPath;
use crate::manifest::raw;
use converge_core::desired::{self as d, Template, TemplatePart};
use converge_core::ids::{Kind, ResourceKey, ResourceName};
use converge_core::route53::{
    self, Cutover, DnsRecordSpec, DnsZoneSpec, RecordTarget, RecordType, ZoneRef,
};
use std::collections::BTreeMap;
use std::time::Duration;

/// The most tags Route 53 allows on a hosted zone.
const MAX_ZONE_TAGS: usize = 10;

impl Resolver<'_> {
    /// Resolves a DnsZone.
    pub(super) fn dns_zone(
        &self,
        at: &At<'_>,
        s: &raw::DnsZoneSpec,
        out: &mut Vec<Diagnostic>,
    ) -> Option<DnsZoneSpec> {
        let spec = FieldPath::spec();
        let domain = match route53::domain(&s.domain) {
            Ok(dn) => Some(dn),
            Err(m) => {
                out.push(at.diag(&spec.key("domain"), false, m));
                None
            }
        };
        let from_stack = self
            .stack_tags
            .keys()
            .filter(|k| !s.tags.contains_key(*k))
            .count();
        // Ownership (3) and the deletion policy.
        let total = s.tags.len() + from_stack + 4;
        if total > MAX_ZONE_TAGS {
            out.push(at.diag(
                &spec.key("tags"),
                false,
                format!(
                    "too many tags: {} here, {from_stack} more from the Stack and 4 that converge adds make {total}; Route 53 allows at most {MAX_ZONE_TAGS} on a hosted zone",
                    s.tags.len()
                ),
            ));
        }
        Some(DnsZoneSpec {
            domain: domain?,
            deletion_policy: match s.deletion_policy {
                raw::BucketDeletionPolicy::Retain => d::DeletionPolicy::Retain,
                raw::BucketDeletionPolicy::Delete => d::DeletionPolicy::Delete,
            },
            tags: s.tags.clone(),
        })
    }

    /// The domain of a DnsZone document, if it declares a valid one.
    fn zone_domain(&self, name: &str) -> Option<String> {
        match &self.lookup(Kind::DnsZone, name)?.spec {
            Some(Spec::DnsZone(z)) => route53::domain(&z.domain).ok(),
            _ => None,
        }
    }

    /// Resolves a DnsRecord.
    pub(super) fn dns_record(
        &self,
        at: &At<'_>,
        s: &raw::DnsRecordSpec,
        out: &mut Vec<Diagnostic>,
    ) -> Option<DnsRecordSpec> {
        let spec = FieldPath::spec();
        let mut ok = true;
        let (zone, zone_domain) = if self.lookup(Kind::DnsZone, &s.zone).is_some() {
            let z = id::<ResourceName>(&s.zone)?;
            (ZoneRef::Stack(z), self.zone_domain(&s.zone))
        } else {
            match route53::domain(&s.zone) {
                Ok(dn) => (ZoneRef::Existing(dn.clone()), Some(dn)),
                Err(_) => {
                    let declared: Vec<&str> = self
                        .index
                        .get(&Kind::DnsZone)
                        .map(|m| m.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    out.push(at.diag(
                        &spec.key("zone"),
                        false,
                        format!(
                            "expected a DnsZone of the stack ({}) or the domain of an existing hosted zone like \"example.com\", found {:?}",
                            if declared.is_empty() { "it declares none".to_owned() } else { declared.join(", ") },
                            s.zone
                        ),
                    ));
                    return None;
                }
            }
        };
        let rtype = match s.record_type.as_str() {
            "A" => RecordType::A,
            "AAAA" => RecordType::Aaaa,
            "CNAME" => RecordType::Cname,
            "TXT" => RecordType::Txt,
            "MX" => RecordType::Mx,
            other => {
                out.push(at.diag(
                    &spec.key("type"),
                    false,
                    format!("expected one of A, AAAA, CNAME, TXT, MX, found {other:?}"),
                ));
                return None;
            }
        };
        let name = match route53::domain(&s.name) {
            Ok(n) => n,
            Err(m) => {
                out.push(at.diag(&spec.key("name"), false, m));
                return None;
            }
        };
        if let Some(zd) = &zone_domain {
            if !route53::in_zone(&name, zd) {
                ok = false;
                out.push(at.diag(
                    &spec.key("name"),
                    false,
                    format!("{name} is not inside the zone {zd}: expected {zd} or a name ending in .{zd}"),
                ));
            } else if rtype == RecordType::Cname && name == *zd {
                ok = false;
                out.push(at.diag(
                    &spec.key("type"),
                    false,
                    format!("a CNAME record cannot be at the zone apex {zd} (Route 53 refuses it); use an alias A record"),
                ));
            }
        }
        let target = self.record_target(at, s, rtype, out)?;
        let secs = |field: &FieldPath,
                    t: &Option<raw::DurationText>,
                    default: u32,
                    out: &mut Vec<Diagnostic>| {
            match t {
                None => Some(default),
                Some(text) => {
                    let dur: Duration = duration(at, field, text, false, out)?;
                    if dur.as_secs() > route53::MAX_TTL {
                        out.push(at.diag(
                            field,
                            false,
                            format!(
                                "expected at most {} seconds, found {:?}",
                                route53::MAX_TTL,
                                text.0
                            ),
                        ));
                        return None;
                    }
                    u32::try_from(dur.as_secs()).ok()
                }
            }
        };
        let ttl = secs(&spec.key("ttl"), &s.ttl, 300, out);
        if s.alias.is_some() && s.ttl.is_some() {
            ok = false;
            out.push(at.diag(
                &spec.key("ttl"),
                false,
                "an alias record takes no TTL (Route 53 uses the target's)",
            ));
        }
        let defaults = Cutover::default();
        let (cut_ttl, settle) = match &s.cutover {
            None => (Some(defaults.ttl), Some(defaults.settle)),
            Some(c) => (
                secs(&spec.key("cutover").key("ttl"), &c.ttl, defaults.ttl, out),
                secs(
                    &spec.key("cutover").key("settle"),
                    &c.settle,
                    defaults.settle,
                    out,
                ),
            ),
        };
        let deletion_policy = match s.deletion_policy {
            None | Some(raw::BucketDeletionPolicy::Delete) => d::DeletionPolicy::Delete,
            Some(raw::BucketDeletionPolicy::Retain) => d::DeletionPolicy::Retain,
        };
        if !ok {
            return None;
        }
        Some(DnsRecordSpec {
            zone,
            name,
            rtype,
            target,
            ttl: ttl?,
            cutover: Cutover {
                ttl: cut_ttl?,
                settle: settle?,
            },
            adopt: s.adopt,
            deletion_policy,
        })
    }

    /// A record's values or alias.
    fn record_target(
        &self,
        at: &At<'_>,
        s: &raw::DnsRecordSpec,
        rtype: RecordType,
        out: &mut Vec<Diagnostic>,
    ) -> Option<RecordTarget> {
        let spec = FieldPath::spec();
        match (&s.alias, &s.values) {
            (Some(_), Some(_)) | (None, None) => {
                out.push(at.diag(
                    &spec,
                    false,
                    "expected exactly one of `alias` (Balancer/NAME or Cdn/NAME) and `values`",
                ));
                None
            }
            (Some(a), None) => {
                let path = spec.key("alias");
                let target = match a.split_once('/') {
                    Some(("Balancer", n)) => Some((Kind::Balancer, n)),
                    Some(("Cdn", n)) => Some((Kind::Cdn, n)),
                    _ => None,
                };
                let Some((kind, n)) = target else {
                    out.push(at.diag(
                        &path,
                        false,
                        format!("expected Balancer/NAME or Cdn/NAME, found {a:?}"),
                    ));
                    return None;
                };
                if !matches!(rtype, RecordType::A | RecordType::Aaaa) {
                    out.push(at.diag(
                        &spec.key("type"),
                        false,
                        format!("an alias record is of type A or AAAA, found {rtype}"),
                    ));
                    return None;
                }
                if !self.reference(at, &path, kind, n, out) {
                    return None;
                }
                Some(RecordTarget::Alias(ResourceKey::new(
                    kind,
                    id::<ResourceName>(n)?,
                )))
            }
            (None, Some(values)) => {
                let path = spec.key("values");
                if values.is_empty() {
                    out.push(at.diag(&path, false, "expected at least one value, found none"));
                    return None;
                }
                if rtype == RecordType::Cname && values.len() > 1 {
                    out.push(at.diag(
                        &path,
                        false,
                        format!(
                            "a CNAME record has exactly one value, found {}",
                            values.len()
                        ),
                    ));
                    return None;
                }
                let mut templates: Vec<Template> = Vec::new();
                let mut seen = BTreeMap::new();
                for (i, v) in values.iter().enumerate() {
                    let p = path.index(i);
                    let t = self.template(at, &p, v, out)?;
                    if t.parts.iter().all(|x| matches!(x, TemplatePart::Text(_))) {
                        match route53::value(rtype, v) {
                            Ok(norm) => {
                                if seen.insert(norm.clone(), i).is_some() {
                                    out.push(at.diag(
                                        &p,
                                        false,
                                        format!("value {v:?} is listed twice"),
                                    ));
                                    return None;
                                }
                            }
                            Err(m) => {
                                out.push(at.diag(&p, false, m));
                                return None;
                            }
                        }
                    }
                    templates.push(t);
                }
                Some(RecordTarget::Values(templates))
            }
        }
    }

    /// Rules across records: no two of one name and type, and no CNAME
    /// beside another record of its name (Route 53 refuses both).
    pub(super) fn dns_cross_checks(&mut self, desired: &d::Desired) {
        let mut by_name: BTreeMap<&str, Vec<(&ResourceName, RecordType)>> = BTreeMap::new();
        for (n, r) in &desired.dns_records {
            by_name
                .entry(r.name.as_str())
                .or_default()
                .push((n, r.rtype));
        }
        let mut diags = Vec::new();
        for (name, records) in by_name {
            for (i, (a, ta)) in records.iter().enumerate() {
                for (b, tb) in &records[i + 1..] {
                    let message = if ta == tb {
                        format!(
                            "DnsRecord/{a} and DnsRecord/{b} are both the {ta} record of {name}"
                        )
                    } else if *ta == RecordType::Cname || *tb == RecordType::Cname {
                        format!(
                            "DnsRecord/{a} ({ta}) and DnsRecord/{b} ({tb}) share the name {name}, and a CNAME record cannot have another record beside it"
                        )
                    } else {
                        continue;
                    };
                    if let Some(e) = self.lookup(Kind::DnsRecord, b.as_str()) {
                        diags.push(e.at().diag(&FieldPath::spec().key("name"), false, message));
                    }
                }
            }
        }
        let mut domains: BTreeMap<&str, &ResourceName> = BTreeMap::new();
        for (n, z) in &desired.dns_zones {
            if let Some(first) = domains.insert(z.domain.as_str(), n)
                && let Some(e) = self.lookup(Kind::DnsZone, n.as_str())
            {
                diags.push(e.at().diag(
                    &FieldPath::spec().key("domain"),
                    false,
                    format!("DnsZone/{first} already declares the zone {}", z.domain),
                ));
            }
        }
        for d in diags {
            self.push(d);
        }
    }
}
