//! ACM, as far as balancers need it: certificates that exist outside any
//! stack (made with `converge local add certificate`, issued at once), and
//! the check every HTTPS, SSL and TLS listener goes through: it names a
//! certificate the region holds, and no other listener names one.

use super::iam::ACCOUNT;
use super::{Ctx, Errs};
use crate::cloud::CloudError;
use crate::cloud::local::world::{Certificate, World};
use converge_core::desired::Listener;
use converge_core::elb::needs_certificate;
use jiff::Timestamp;

/// How many domain names one certificate may cover (ACM's default quota,
/// <https://docs.aws.amazon.com/acm/latest/userguide/acm-limits.html>).
pub(crate) const MAX_DOMAINS: usize = 10;

/// Requests a certificate for `domains` in `region`, issued at once;
/// answers its ARN, `arn:aws:acm:REGION:ACCOUNT:certificate/UUID`.
pub(crate) fn add_certificate(
    w: &mut World,
    e: &Errs,
    region: &str,
    domains: &[String],
    now: Timestamp,
) -> Result<String, CloudError> {
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
        check_domain(d).map_err(|m| e.invalid("ValidationException", m))?;
    }
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        w.next_hex(8),
        w.next_hex(4),
        w.next_hex(4),
        w.next_hex(4),
        w.next_hex(12)
    );
    let arn = format!("arn:aws:acm:{region}:{ACCOUNT}:certificate/{uuid}");
    w.certificates.insert(
        arn.clone(),
        Certificate {
            arn: arn.clone(),
            region: region.to_owned(),
            domains: domains.to_vec(),
            created_at: now,
        },
    );
    Ok(arn)
}

/// A domain name ACM takes (RequestCertificate's DomainName: at most 253
/// characters, labels of letters, digits and hyphens, optionally starting
/// with a `*.` wildcard).
fn check_domain(d: &str) -> Result<(), String> {
    let bare = d.strip_prefix("*.").unwrap_or(d);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let ok = d.len() <= 253 && bare.contains('.') && bare.split('.').all(label_ok);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{d}' is not a domain name a certificate can cover (labels of letters, digits and hyphens, at least two, optionally after '*.')."
        ))
    }
}

/// A listener's certificate as ELB checks it (CreateListener,
/// CreateLoadBalancerListeners): HTTPS, SSL and TLS listeners need one the
/// region holds (`CertificateNotFound` otherwise), other protocols take
/// none.
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
        (Some(arn), true) => {
            let known = w
                .certificates
                .get(arn)
                .is_some_and(|c| c.region == cx.region);
            if known {
                Ok(())
            } else {
                Err(e.not_found(
                    "CertificateNotFound",
                    format!("Certificate '{arn}' not found"),
                ))
            }
        }
        (None, false) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        assert!(check_domain("example.com").is_ok());
        assert!(check_domain("*.example.com").is_ok());
        assert!(check_domain("a-b.c.example.org").is_ok());
        assert!(check_domain("localhost").is_err());
        assert!(check_domain("-a.example.com").is_err());
        assert!(check_domain("a..b").is_err());
        assert!(check_domain("ex ample.com").is_err());
    }
}
