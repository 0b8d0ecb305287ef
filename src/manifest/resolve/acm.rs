//! Resolving `Certificate` documents and the references to them, with
//! ACM's and CloudFront's rules checked before any call
//! (`converge_core::acm`): at most 10 domain names ACM takes, each inside
//! the zone its validation record goes in; a Cdn with aliases has a
//! certificate, in us-east-1, covering every alias; a listener's
//! certificate is in the balancer's region.

use super::{At, Resolver, Spec, id};
use crate::manifest::check;
use crate::manifest::diagnostics::Diagnostic;
use crate::manifest::node::FieldPath;
use crate::manifest::raw;
use converge_core::acm::{self, CertificateRef, CertificateSpec};
use converge_core::desired as d;
use converge_core::ids::Kind;
use converge_core::route53::{self, ZoneRef};

impl Resolver<'_> {
    /// Resolves a Certificate.
    pub(super) fn certificate(
        &self,
        at: &At<'_>,
        s: &raw::CertificateSpec,
        out: &mut Vec<Diagnostic>,
    ) -> Option<CertificateSpec> {
        let spec = FieldPath::spec();
        let before = out.len();
        if s.domains.is_empty() || s.domains.len() > acm::MAX_DOMAINS {
            out.push(at.diag(
                &spec.key("domains"),
                false,
                format!(
                    "expected 1 to {} domain names (ACM's quota), found {}",
                    acm::MAX_DOMAINS,
                    s.domains.len()
                ),
            ));
        }
        let (zone, zone_domain) = self.certificate_zone(at, &s.zone, out)?;
        let mut domains: Vec<String> = Vec::new();
        for (i, raw_domain) in s.domains.iter().enumerate() {
            let path = spec.key("domains").index(i);
            match acm::domain(raw_domain) {
                Ok(dn) if domains.contains(&dn) => {
                    out.push(at.diag(&path, false, format!("{dn} is listed twice")));
                }
                Ok(dn) => {
                    if let Some(zd) = &zone_domain
                        && !route53::in_zone(acm::validated_at(&dn), zd)
                    {
                        out.push(at.diag(
                            &path,
                            false,
                            format!(
                                "{dn} is not inside zone {zd}, where its validation record goes (spec.zone)"
                            ),
                        ));
                    }
                    domains.push(dn);
                }
                Err(m) => out.push(at.diag(&path, false, m)),
            }
        }
        let region = match &s.region {
            None => self.region.clone().unwrap_or_default(),
            Some(r) => match check::region(r) {
                Ok(()) => r.clone(),
                Err(m) => {
                    out.push(at.diag(&spec.key("region"), false, m));
                    return None;
                }
            },
        };
        (out.len() == before).then_some(CertificateSpec {
            domains,
            zone,
            region,
            tags: s.tags.clone(),
        })
    }

    /// A certificate's zone: a DnsZone of the stack, or an existing
    /// zone's domain; with the zone's domain when it is known.
    fn certificate_zone(
        &self,
        at: &At<'_>,
        zone: &str,
        out: &mut Vec<Diagnostic>,
    ) -> Option<(ZoneRef, Option<String>)> {
        if let Some(e) = self.lookup(Kind::DnsZone, zone) {
            let domain = match &e.spec {
                Some(Spec::DnsZone(z)) => route53::domain(&z.domain).ok(),
                _ => None,
            };
            return Some((ZoneRef::Stack(id(zone)?), domain));
        }
        match route53::domain(zone) {
            Ok(dn) => Some((ZoneRef::Existing(dn.clone()), Some(dn))),
            Err(_) => {
                out.push(at.diag(
                    &FieldPath::spec().key("zone"),
                    false,
                    format!(
                        "expected a DnsZone of the stack or the domain of an existing hosted zone like \"example.com\", found {zone:?}"
                    ),
                ));
                None
            }
        }
    }

    /// A Cdn's certificate reference, as written (checked against the
    /// certificates across resources).
    pub(super) fn cdn_certificate(
        &self,
        at: &At<'_>,
        s: &raw::CdnSpec,
        out: &mut Vec<Diagnostic>,
    ) -> Option<Option<CertificateRef>> {
        let spec = FieldPath::spec();
        if let Some(v) = &s.minimum_protocol_version
            && !acm::MINIMUM_PROTOCOL_VERSIONS.contains(&v.as_str())
        {
            out.push(at.diag(
                &spec.key("minimumProtocolVersion"),
                false,
                format!(
                    "expected one of {}, found {v:?}",
                    acm::MINIMUM_PROTOCOL_VERSIONS.join(", ")
                ),
            ));
            return None;
        }
        let Some(c) = &s.certificate else {
            if !s.aliases.is_empty() {
                out.push(at.diag(
                    &spec.key("certificate"),
                    false,
                    "a Cdn with aliases needs a certificate covering them (Certificate/NAME, or an ACM certificate ARN in us-east-1); CloudFront refuses aliases without one",
                ));
                return None;
            }
            return Some(None);
        };
        let path = spec.key("certificate");
        match CertificateRef::parse(c) {
            Ok(CertificateRef::Stack(n)) => self
                .reference(at, &path, Kind::Certificate, n.as_str(), out)
                .then_some(Some(CertificateRef::Stack(n))),
            Ok(CertificateRef::Arn(a)) => match acm::arn_region(&a) {
                Some(acm::CDN_REGION) if a.contains(":certificate/") => {
                    Some(Some(CertificateRef::Arn(a)))
                }
                Some(r) => {
                    out.push(at.diag(
                        &path,
                        false,
                        format!(
                            "a Cdn's certificate must be in {}, found one in {r}",
                            acm::CDN_REGION
                        ),
                    ));
                    None
                }
                None => {
                    out.push(at.diag(
                        &path,
                        false,
                        format!(
                            "expected Certificate/NAME or an ACM certificate ARN (arn:aws:acm:us-east-1:ACCOUNT:certificate/ID), found {a:?}"
                        ),
                    ));
                    None
                }
            },
            Err(m) => {
                out.push(at.diag(&path, false, m));
                None
            }
        }
    }

    /// Rules across resources: a Cdn's Certificate is in us-east-1 and
    /// covers each of its aliases; a listener's Certificate is declared
    /// and in the balancer's region (so is an ACM ARN).
    pub(super) fn certificate_cross_checks(&mut self, desired: &d::Desired) {
        let mut diags = Vec::new();
        for (name, cdn) in &desired.cdns {
            let Some(CertificateRef::Stack(c)) = &cdn.certificate else {
                continue;
            };
            let (Some(cert), Some(e)) = (
                desired.certificates.get(c),
                self.lookup(Kind::Cdn, name.as_str()),
            ) else {
                continue;
            };
            let at = e.at();
            let spec = FieldPath::spec();
            if cert.region != acm::CDN_REGION {
                diags.push(at.diag(
                    &spec.key("certificate"),
                    false,
                    format!(
                        "Certificate/{c} is in {}; a Cdn's certificate must be in {} (set its spec.region)",
                        cert.region,
                        acm::CDN_REGION
                    ),
                ));
            }
            for (i, alias) in cdn.aliases.iter().enumerate() {
                if !cert.domains.iter().any(|dn| acm::covers(dn, alias)) {
                    diags.push(at.diag(
                        &spec.key("aliases").index(i),
                        false,
                        format!(
                            "alias {alias} is not covered by Certificate/{c} ({})",
                            cert.domains.join(", ")
                        ),
                    ));
                }
            }
        }
        for name in desired.balancers.keys() {
            let Some(e) = self.lookup(Kind::Balancer, name.as_str()) else {
                continue;
            };
            let Some(Spec::Balancer(b)) = &e.spec else {
                continue;
            };
            let at = e.at();
            for (i, l) in b.listeners.iter().enumerate() {
                let Some(c) = &l.certificate else { continue };
                let path = FieldPath::spec()
                    .key("listeners")
                    .index(i)
                    .key("certificate");
                let region = match CertificateRef::parse(c) {
                    Ok(CertificateRef::Stack(n)) => {
                        if !self.reference(&at, &path, Kind::Certificate, n.as_str(), &mut diags) {
                            continue;
                        }
                        desired.certificates.get(&n).map(|x| x.region.clone())
                    }
                    Ok(CertificateRef::Arn(a)) => acm::arn_region(&a).map(str::to_owned),
                    Err(_) => None,
                };
                if let Some(r) = region
                    && r != desired.region
                {
                    diags.push(at.diag(
                        &path,
                        false,
                        format!(
                            "{c} is in {r}; a listener's certificate must be in the balancer's region, {}",
                            desired.region
                        ),
                    ));
                }
            }
        }
        for d in diags {
            self.push(d);
        }
    }
}
