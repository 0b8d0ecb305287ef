//! ACM: certificates that exist outside any stack (made with `converge
//! local add certificate`, issued at once), certificates requested with
//! DNS validation (pending until each of their validation records is in
//! a zone the world holds, then issued `delays.certificate` later, as
//! ACM issues minutes after it sees the records), and the checks the
//! services using them make: a listener names an issued certificate of
//! its region, a distribution one of us-east-1 covering its aliases, and
//! a certificate in use cannot be deleted.

use super::iam::ACCOUNT;
use super::{Ctx, Errs};
use crate::cloud::local::world::{Certificate, World};
use crate::cloud::{CloudError, Outcome};
use converge_core::acm::{
    self, CertificateStatus, MAX_DOMAINS, ObservedCertificate, ValidationRecord,
};
use converge_core::desired::{Listener, Tags};
use converge_core::elb::needs_certificate;
use converge_core::observed::{DistributionConfig, Owner};
use converge_core::route53::RecordType;
use jiff::Timestamp;
use sha2::{Digest, Sha256};

/// The most tags ACM takes on a certificate (AddTagsToCertificate: 50).
const MAX_TAGS: usize = 50;

/// Requests a certificate for `domains` in `region`, issued at once;
/// answers its ARN, `arn:aws:acm:REGION:ACCOUNT:certificate/UUID`.
pub(crate) fn add_certificate(
    w: &mut World,
    e: &Errs,
    region: &str,
    domains: &[String],
    now: Timestamp,
) -> Result<String, CloudError> {
    check_domains(e, domains)?;
    Ok(insert(w, (region, domains), now, None, &Tags::new()))
}

/// Stores a new certificate; answers its ARN. One with a token is
/// validated by DNS, one without (`local add certificate`) issued at once.
fn insert(
    w: &mut World,
    (region, domains): (&str, &[String]),
    now: Timestamp,
    token: Option<&str>,
    tags: &Tags,
) -> String {
    let arn = new_arn(w, region);
    w.certificates.insert(
        arn.clone(),
        Certificate {
            arn: arn.clone(),
            region: region.to_owned(),
            domains: domains.to_vec(),
            created_at: now,
            dns_validated: token.is_some(),
            validated_at: None,
            token: token.map(str::to_owned),
            tags: tags.clone(),
        },
    );
    arn
}

/// RequestCertificate with DNS validation: a token used before in the
/// region answers the certificate it requested (ACM keeps tokens an hour;
/// the local cloud for ever, which only makes a retry safer).
pub(crate) fn request_certificate(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    (region, domains): (&str, &[String]),
    token: &str,
    tags: &Tags,
) -> Result<Outcome, CloudError> {
    if let Some(c) = w
        .certificates
        .values()
        .find(|c| c.region == region && c.token.as_deref() == Some(token))
    {
        return Ok(Outcome::Certificate(c.arn.clone()));
    }
    check_domains(e, domains)?;
    if tags.len() > MAX_TAGS {
        return Err(e.invalid(
            "TooManyTagsException",
            format!(
                "A certificate takes at most {MAX_TAGS} tags, {} given.",
                tags.len()
            ),
        ));
    }
    let arn = insert(w, (region, domains), cx.now, Some(token), tags);
    notice_validation(w, cx.now);
    Ok(Outcome::Certificate(arn))
}

/// DeleteCertificate: refused while a listener or distribution uses the
/// certificate, as ACM does (`ResourceInUseException`, ACM API Reference,
/// DeleteCertificate, Errors).
pub(crate) fn delete_certificate(
    w: &mut World,
    e: &Errs,
    region: &str,
    arn: &str,
) -> Result<Outcome, CloudError> {
    if w.certificates.get(arn).is_none_or(|c| c.region != region) {
        return Err(e.not_found(
            "ResourceNotFoundException",
            format!("Could not find certificate {arn}."),
        ));
    }
    let users = in_use_by(w, arn);
    if let Some(u) = users.first() {
        return Err(e.state(
            "ResourceInUseException",
            format!("Certificate {arn} is in use by {u}."),
        ));
    }
    w.certificates.remove(arn);
    Ok(Outcome::Done)
}

/// What uses a certificate: listeners (by balancer and port) and
/// distributions.
fn in_use_by(w: &World, arn: &str) -> Vec<String> {
    let mut out = Vec::new();
    let uses = |l: &Listener| l.certificate.as_deref() == Some(arn);
    for b in &w.balancers {
        for l in b.listeners.iter().filter(|l| uses(l)) {
            out.push(format!("balancer {} port {}", b.name, l.port));
        }
    }
    for b in &w.balancers_v2 {
        for l in b.listeners.iter().filter(|l| uses(&l.listener)) {
            out.push(format!("balancer {} port {}", b.name, l.listener.port));
        }
    }
    for d in w.distributions.values() {
        if d.config
            .viewer_certificate
            .as_ref()
            .is_some_and(|v| v.arn == arn)
        {
            out.push(format!(
                "arn:aws:cloudfront::{ACCOUNT}:distribution/{}",
                d.id
            ));
        }
    }
    out
}

/// A new certificate ARN in `region`.
fn new_arn(w: &mut World, region: &str) -> String {
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        w.next_hex(8),
        w.next_hex(4),
        w.next_hex(4),
        w.next_hex(4),
        w.next_hex(12)
    );
    format!("arn:aws:acm:{region}:{ACCOUNT}:certificate/{uuid}")
}

/// RequestCertificate's domain rules: 1 to [`MAX_DOMAINS`] names ACM
/// takes.
fn check_domains(e: &Errs, domains: &[String]) -> Result<(), CloudError> {
    if domains.is_empty() {
        return Err(e.invalid(
            "ValidationException",
            "A certificate needs at least one domain name.",
        ));
    }
    if domains.len() > MAX_DOMAINS {
        return Err(e.invalid(
            "LimitExceededException",
            format!(
                "A certificate covers at most {MAX_DOMAINS} domain names, {} given.",
                domains.len()
            ),
        ));
    }
    for d in domains {
        acm::domain(d).map_err(|m| e.invalid("ValidationException", m))?;
    }
    Ok(())
}

/// The validation record ACM names for `domain` in this account: the same
/// for every certificate of the domain, and for a wildcard's parent.
pub(crate) fn validation_record(domain: &str) -> ValidationRecord {
    let at = acm::validated_at(domain);
    let digest = |what: &str| {
        let mut h = Sha256::new();
        h.update(ACCOUNT.as_bytes());
        h.update(what.as_bytes());
        h.update(at.as_bytes());
        hex::encode(&h.finalize()[..16])
    };
    ValidationRecord {
        domain: domain.to_owned(),
        name: format!("_{}.{at}", digest("name")),
        value: format!("_{}.acm-validations.aws", digest("value")),
    }
}

/// Notes the moment each pending certificate's validation records are all
/// in a zone the world holds (called after every change batch and
/// request).
pub(crate) fn notice_validation(w: &mut World, now: Timestamp) {
    let present = |w: &World, r: &ValidationRecord| {
        w.hosted_zones.values().any(|z| {
            z.records.iter().any(|s| {
                s.name == r.name && s.rtype == RecordType::Cname && s.values == [r.value.clone()]
            })
        })
    };
    let ready: Vec<String> = w
        .certificates
        .values()
        .filter(|c| c.dns_validated && c.validated_at.is_none())
        .filter(|c| c.domains.iter().all(|d| present(w, &validation_record(d))))
        .map(|c| c.arn.clone())
        .collect();
    for arn in ready {
        if let Some(c) = w.certificates.get_mut(&arn) {
            c.validated_at = Some(now);
        }
    }
}

/// A certificate's status at `cx.now`.
fn status(c: &Certificate, cx: &Ctx<'_>) -> CertificateStatus {
    let issued = !c.dns_validated
        || c.validated_at
            .is_some_and(|t| crate::cloud::local::world::after(t, cx.delays.certificate) <= cx.now);
    if issued {
        CertificateStatus::Issued
    } else {
        CertificateStatus::PendingValidation
    }
}

/// A certificate as DescribeCertificate and ListTagsForCertificate tell
/// it.
pub(crate) fn observed(w: &World, c: &Certificate, cx: &Ctx<'_>) -> ObservedCertificate {
    ObservedCertificate {
        arn: c.arn.clone(),
        region: c.region.clone(),
        domains: c.domains.clone(),
        status: status(c, cx),
        validation: if c.dns_validated {
            c.domains.iter().map(|d| validation_record(d)).collect()
        } else {
            Vec::new()
        },
        owner: Owner::from_tags(&c.tags),
        tags: c.tags.clone(),
        in_use_by: in_use_by(w, &c.arn),
    }
}

/// The certificates of `regions` (ListCertificates per region).
pub(crate) fn certificates(w: &World, cx: &Ctx<'_>, regions: &[&str]) -> Vec<ObservedCertificate> {
    w.certificates
        .values()
        .filter(|c| regions.contains(&c.region.as_str()))
        .map(|c| observed(w, c, cx))
        .collect()
}

/// A listener's certificate as ELB checks it (CreateListener,
/// CreateLoadBalancerListeners): HTTPS, SSL and TLS listeners need one the
/// region holds (`CertificateNotFound` otherwise), issued (a certificate
/// still pending validation is refused as `UnsupportedCertificate`, the
/// code ELB answers for a certificate it cannot serve), other protocols
/// take none.
pub(crate) fn check_listener_certificate(
    w: &World,
    cx: &Ctx<'_>,
    e: &Errs,
    l: &Listener,
) -> Result<(), CloudError> {
    let proto = l.protocol.as_str();
    match (&l.certificate, needs_certificate(l.protocol)) {
        (None, true) => Err(e.invalid(
            "ValidationError",
            format!(
                "A certificate must be specified for {proto} listeners (port {}).",
                l.port
            ),
        )),
        (Some(_), false) => Err(e.invalid(
            "ValidationError",
            format!("A {proto} listener (port {}) takes no certificate.", l.port),
        )),
        (Some(arn), true) => match w.certificates.get(arn).filter(|c| c.region == cx.region) {
            None => Err(e.not_found(
                "CertificateNotFound",
                format!("Certificate '{arn}' not found"),
            )),
            Some(c) if status(c, cx) != CertificateStatus::Issued => Err(e.invalid(
                "UnsupportedCertificate",
                format!("Certificate '{arn}' is not issued yet (pending validation)."),
            )),
            Some(_) => Ok(()),
        },
        (None, false) => Ok(()),
    }
}

/// A distribution's viewer certificate as CloudFront checks it
/// (CreateDistribution, UpdateDistribution: `InvalidViewerCertificate`):
/// aliases need a certificate; it is an issued ACM certificate of
/// us-east-1 covering every alias.
pub(crate) fn check_viewer_certificate(
    w: &World,
    cx: &Ctx<'_>,
    e: &Errs,
    c: &DistributionConfig,
) -> Result<(), CloudError> {
    let refuse = |m: String| Err(e.invalid("InvalidViewerCertificate", m));
    let Some(v) = &c.viewer_certificate else {
        if c.aliases.is_empty() {
            return Ok(());
        }
        return refuse(
            "To add an alternate domain name (CNAME) to a CloudFront distribution, you must attach a trusted certificate that validates your authorization to use the domain name.".into(),
        );
    };
    let Some(cert) = w.certificates.get(&v.arn) else {
        return refuse(format!(
            "The specified SSL certificate {} doesn't exist.",
            v.arn
        ));
    };
    if cert.region != acm::CDN_REGION {
        return refuse(format!(
            "The certificate {} is in {}; CloudFront takes certificates of {} only.",
            v.arn,
            cert.region,
            acm::CDN_REGION
        ));
    }
    if status(cert, cx) != CertificateStatus::Issued {
        return refuse(format!("The certificate {} is not issued yet.", v.arn));
    }
    if !acm::MINIMUM_PROTOCOL_VERSIONS.contains(&v.minimum_protocol_version.as_str()) {
        return refuse(format!(
            "The minimum protocol version {} is not valid.",
            v.minimum_protocol_version
        ));
    }
    if let Some(a) = c
        .aliases
        .iter()
        .find(|a| !cert.domains.iter().any(|d| acm::covers(d, a)))
    {
        return refuse(format!(
            "The certificate that is attached to your distribution doesn't cover the alternate domain name (CNAME) that you're trying to add: {a}."
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_records_are_shared_by_a_domain_and_its_wildcard() {
        let a = validation_record("example.com");
        let b = validation_record("*.example.com");
        assert_eq!(
            (a.name.as_str(), a.value.as_str()),
            (b.name.as_str(), b.value.as_str())
        );
        assert!(a.name.ends_with(".example.com"));
        assert_ne!(validation_record("www.example.com").name, a.name);
    }
}
