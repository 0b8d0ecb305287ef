//! ACM in one place: certificates as converge sees them (declared and
//! observed), AWS's rules for them (read by manifest validation, the
//! planner and the local cloud alike, as `route53.rs` is for records),
//! and the mark converge writes beside each DNS validation record.
//!
//! A `Certificate` is requested with DNS validation: ACM names one CNAME
//! per domain (the same name and value for every certificate of that
//! domain in the account, and for `example.com` and `*.example.com`
//! alike), converge writes it into the certificate's zone and waits until
//! ACM says ISSUED. A validation record carries, like a DnsRecord, a TXT
//! mark beside it, `_converge-cname.<name>` holding
//! `"converge stack=S certificate=N"`: it names no `record=`, so the
//! DnsRecord planner never takes it for one of its own records.

use crate::desired::Tags;
use crate::ids::ResourceName;
use crate::observed::Owner;
use crate::route53::{RecordSet, RecordType, ZoneRef, quote};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The region of a certificate a CloudFront distribution uses: "To use an
/// ACM certificate with CloudFront, make sure you request (or import) the
/// certificate in the US East (N. Virginia) Region (us-east-1)" (ACM User
/// Guide, "Supported Regions").
pub const CDN_REGION: &str = "us-east-1";

/// How many domain names one certificate may cover (ACM's default quota,
/// "Domain names per ACM certificate": 10,
/// <https://docs.aws.amazon.com/acm/latest/userguide/acm-limits.html>).
pub const MAX_DOMAINS: usize = 10;

/// The TLS security policies a distribution's viewer certificate takes
/// (CloudFront API Reference, ViewerCertificate, MinimumProtocolVersion).
pub const MINIMUM_PROTOCOL_VERSIONS: [&str; 7] = [
    "TLSv1",
    "TLSv1_2016",
    "TLSv1.1_2016",
    "TLSv1.2_2018",
    "TLSv1.2_2019",
    "TLSv1.2_2021",
    "TLSv1.2_2025",
];

/// The default minimum protocol version of a distribution's viewer
/// certificate (the one CloudFront's console recommends).
pub const DEFAULT_MINIMUM_PROTOCOL_VERSION: &str = "TLSv1.2_2021";

/// A `Certificate`: an ACM certificate validated by DNS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateSpec {
    /// Its domain names, lowercase, the first one primary (wildcards
    /// `*.example.com` allowed), in the order declared.
    pub domains: Vec<String>,
    /// The zone its validation records go in.
    pub zone: ZoneRef,
    /// The region it is requested in (default the stack's).
    pub region: String,
    /// Its own tags.
    pub tags: Tags,
}

/// Where a reference to a certificate points (a balancer listener's or a
/// Cdn's `certificate`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertificateRef {
    /// A Certificate of the stack, by manifest name.
    Stack(ResourceName),
    /// An existing certificate, by ARN (ACM, or an IAM server
    /// certificate for a balancer).
    Arn(String),
}

impl CertificateRef {
    /// Parses a reference as manifests write it: `Certificate/NAME`, or
    /// anything else as an ARN (checked by the caller).
    pub fn parse(s: &str) -> Result<CertificateRef, String> {
        match s.strip_prefix("Certificate/") {
            Some(n) => n
                .parse()
                .map(CertificateRef::Stack)
                .map_err(|e| format!("{s:?}: {e}")),
            None => Ok(CertificateRef::Arn(s.to_owned())),
        }
    }
}

impl fmt::Display for CertificateRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertificateRef::Stack(n) => write!(f, "Certificate/{n}"),
            CertificateRef::Arn(a) => f.write_str(a),
        }
    }
}

/// A certificate's status, as ACM names it (DescribeCertificate
/// `Status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CertificateStatus {
    /// Waiting for its validation records.
    PendingValidation,
    /// Issued: usable by listeners and distributions.
    Issued,
    /// Not issued in 72 hours.
    ValidationTimedOut,
    /// Refused by ACM.
    Failed,
    /// Revoked.
    Revoked,
    /// Expired.
    Expired,
    /// Inactive.
    Inactive,
}

impl CertificateStatus {
    /// As ACM names it.
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateStatus::PendingValidation => "PENDING_VALIDATION",
            CertificateStatus::Issued => "ISSUED",
            CertificateStatus::ValidationTimedOut => "VALIDATION_TIMED_OUT",
            CertificateStatus::Failed => "FAILED",
            CertificateStatus::Revoked => "REVOKED",
            CertificateStatus::Expired => "EXPIRED",
            CertificateStatus::Inactive => "INACTIVE",
        }
    }

    /// Parses a status as ACM names it; `None` for one converge does not
    /// know.
    pub fn parse(s: &str) -> Option<CertificateStatus> {
        [
            CertificateStatus::PendingValidation,
            CertificateStatus::Issued,
            CertificateStatus::ValidationTimedOut,
            CertificateStatus::Failed,
            CertificateStatus::Revoked,
            CertificateStatus::Expired,
            CertificateStatus::Inactive,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    /// Whether it can still become (or is) issued: a certificate in any
    /// other status is replaced.
    pub fn usable(self) -> bool {
        matches!(
            self,
            CertificateStatus::PendingValidation | CertificateStatus::Issued
        )
    }
}

impl fmt::Display for CertificateStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The CNAME ACM asks for to validate one domain of a certificate.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ValidationRecord {
    /// The domain it validates.
    pub domain: String,
    /// The record's name, lowercase, without the final dot.
    pub name: String,
    /// Its value, lowercase, without the final dot.
    pub value: String,
}

impl ValidationRecord {
    /// The record set as Route 53 holds it.
    pub fn record_set(&self) -> RecordSet {
        RecordSet {
            name: self.name.clone(),
            rtype: RecordType::Cname,
            ttl: Some(VALIDATION_TTL),
            values: vec![self.value.clone()],
            alias: None,
        }
    }
}

/// The TTL of validation records (ACM reads them once).
pub const VALIDATION_TTL: u32 = 300;

/// A certificate as ACM holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedCertificate {
    /// Its ARN.
    pub arn: String,
    /// Its region.
    pub region: String,
    /// Its domain names, the primary first.
    pub domains: Vec<String>,
    /// Its status.
    pub status: CertificateStatus,
    /// The validation records ACM asks for, once it has named them.
    pub validation: Vec<ValidationRecord>,
    /// Its owner, when it carries converge's tags.
    pub owner: Option<Owner>,
    /// Its tags.
    pub tags: Tags,
    /// The ARNs of the listeners and distributions using it.
    pub in_use_by: Vec<String>,
}

/// Whether a certificate's domain name `pattern` covers the host `name`:
/// the same name, or a wildcard `*.example.com` for exactly one label
/// more (`a.example.com`, not `example.com` nor `a.b.example.com`).
pub fn covers(pattern: &str, name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(parent) => name
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
        None => name == pattern,
    }
}

/// The domain a validation record of `domain` lies in: a wildcard's
/// parent (ACM validates `*.example.com` at `example.com`).
pub fn validated_at(domain: &str) -> &str {
    domain.strip_prefix("*.").unwrap_or(domain)
}

/// A domain name ACM takes (RequestCertificate's DomainName and
/// SubjectAlternativeNames: at most 253 characters, labels of letters,
/// digits and hyphens, at least two, optionally after a `*.` wildcard);
/// answers it lowercased, without a final dot.
pub fn domain(d: &str) -> Result<String, String> {
    let lower = d.trim_end_matches('.').to_ascii_lowercase();
    let bare = lower.strip_prefix("*.").unwrap_or(&lower);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if lower.len() <= 253 && bare.contains('.') && bare.split('.').all(label_ok) {
        Ok(lower)
    } else {
        Err(format!(
            "expected a domain name like \"www.example.com\" or \"*.example.com\" (labels of letters, digits and hyphens, at least two), found {d:?}"
        ))
    }
}

/// The idempotency token of a certificate's RequestCertificate: derived
/// from the stack, the name and the domains, so that a retried request
/// (the SDK's, or a re-run of an apply killed after it) answers the same
/// certificate, and a request for other domains a new one. ACM takes
/// `\w+`, 1 to 32 characters, and honours a token for one hour.
pub fn idempotency_token(stack: &str, name: &str, domains: &[String]) -> String {
    let mut parts: Vec<&str> = vec![stack, name];
    parts.extend(domains.iter().map(String::as_str));
    // 16 hex digits: `c` and a digest of 16 + 15 more from a second one.
    let a = crate::spec_hash::short_digest(&parts);
    parts.push("again");
    let b = crate::spec_hash::short_digest(&parts);
    format!("c{a}{}", &b[..15])
}

/// The region of an ACM certificate's ARN
/// (`arn:aws:acm:REGION:ACCOUNT:certificate/ID`); `None` for another ARN.
pub fn arn_region(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (_, _, service, region) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (service == "acm" && !region.is_empty()).then_some(region)
}

/// Whether two lists of a certificate's domains are the same certificate's:
/// the same primary name, and the same names in all (ACM lists the
/// alternative names in no promised order).
pub fn same_domains(a: &[String], b: &[String]) -> bool {
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    a.first() == b.first() && sorted(a) == sorted(b)
}

/// The certificate of the stack's `name` whose domains are `domains`, in
/// `region`, if one is observed in a usable status (the newest first: a
/// replacement makes several certificates carry one name).
pub fn current<'a>(
    observed: &'a [ObservedCertificate],
    stack: &ResourceName,
    name: &ResourceName,
    spec: &CertificateSpec,
) -> Option<&'a ObservedCertificate> {
    observed.iter().find(|c| {
        is_of(c, stack, name)
            && c.region == spec.region
            && same_domains(&c.domains, &spec.domains)
            && c.status.usable()
    })
}

/// Whether an observed certificate is the stack's `name` (its tags).
pub fn is_of(c: &ObservedCertificate, stack: &ResourceName, name: &ResourceName) -> bool {
    c.owner.as_ref().is_some_and(|o| {
        o.stack == *stack && o.kind == crate::ids::Kind::Certificate && o.name == *name
    })
}

/// The mark beside a validation record converge wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationMark {
    /// The stack.
    pub stack: ResourceName,
    /// The Certificate's manifest name.
    pub certificate: ResourceName,
}

impl ValidationMark {
    /// The mark as its TXT value (quoted).
    pub fn to_value(&self) -> String {
        quote(&format!(
            "converge stack={} certificate={}",
            self.stack, self.certificate
        ))
    }

    /// The mark's record set beside the validation record `name`.
    pub fn record_set(&self, name: &str) -> RecordSet {
        RecordSet {
            name: crate::route53::Mark::name_for(name, RecordType::Cname),
            rtype: RecordType::Txt,
            ttl: Some(crate::route53::MARK_TTL),
            values: vec![self.to_value()],
            alias: None,
        }
    }

    /// Reads a mark from a TXT value; `None` unless it is a validation
    /// mark converge wrote.
    pub fn parse(value: &str) -> Option<ValidationMark> {
        let text = value.strip_prefix('"')?.strip_suffix('"')?;
        let mut words = text.split(' ');
        if words.next()? != "converge" {
            return None;
        }
        let (mut stack, mut certificate) = (None, None);
        for w in words {
            let (k, v) = w.split_once('=')?;
            match k {
                "stack" => stack = v.parse().ok(),
                "certificate" => certificate = v.parse().ok(),
                // A DnsRecord's mark is not a validation mark.
                "record" => return None,
                _ => {}
            }
        }
        Some(ValidationMark {
            stack: stack?,
            certificate: certificate?,
        })
    }

    /// The validation mark beside the CNAME `name` in `zone`, if any.
    pub fn of(zone: &crate::route53::ObservedZone, name: &str) -> Option<ValidationMark> {
        zone.record(
            &crate::route53::Mark::name_for(name, RecordType::Cname),
            RecordType::Txt,
        )
        .and_then(|r| r.values.first())
        .and_then(|v| ValidationMark::parse(v))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(covers("www.example.com", "WWW.example.com."));
        assert!(covers("*.example.com", "cdn0.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("*.example.com", "a.b.example.com"));
        assert!(!covers("www.example.com", "cdn0.example.com"));
        let v = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert!(same_domains(
            &v(&["a.x.com", "b.x.com", "c.x.com"]),
            &v(&["a.x.com", "c.x.com", "b.x.com"])
        ));
        assert!(!same_domains(
            &v(&["a.x.com", "b.x.com"]),
            &v(&["b.x.com", "a.x.com"])
        ));
        assert_eq!(validated_at("*.example.com"), "example.com");
    }

    #[test]
    fn domains_as_acm_takes_them() {
        assert_eq!(domain("WWW.Example.com.").unwrap(), "www.example.com");
        assert!(domain("*.example.com").is_ok());
        assert!(domain("localhost").is_err());
        assert!(domain("-a.example.com").is_err());
        assert!(domain("a..b").is_err());
        assert!(domain("a_b.example.com").is_err());
    }

    #[test]
    fn tokens_are_acm_tokens_and_follow_the_domains() {
        let a = idempotency_token("payroll", "www", &["www.example.com".into()]);
        let b = idempotency_token("payroll", "www", &["cdn0.example.com".into()]);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        assert_eq!(
            a,
            idempotency_token("payroll", "www", &["www.example.com".into()])
        );
    }

    #[test]
    fn marks_round_trip_and_are_not_record_marks() {
        let m = ValidationMark {
            stack: "payroll".parse().unwrap(),
            certificate: "www".parse().unwrap(),
        };
        assert_eq!(ValidationMark::parse(&m.to_value()), Some(m.clone()));
        assert_eq!(crate::route53::Mark::parse(&m.to_value()), None);
        assert_eq!(
            ValidationMark::parse("\"converge stack=a record=b policy=delete\""),
            None
        );
        assert_eq!(
            arn_region("arn:aws:acm:us-east-1:123456789012:certificate/x"),
            Some("us-east-1")
        );
        assert_eq!(arn_region("arn:aws:iam::1:server-certificate/x"), None);
        assert_eq!(
            CertificateRef::parse("Certificate/www").unwrap(),
            CertificateRef::Stack("www".parse().unwrap())
        );
    }
}
