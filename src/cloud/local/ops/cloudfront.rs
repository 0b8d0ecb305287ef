//! CloudFront: distributions, which go InProgress → Deployed after each
//! change and can only be deleted once disabled and deployed; origin
//! access controls and invalidations (InProgress, then Completed)
//! (issue 11 B).

use super::tags::check_tags;
use super::{Ctx, Errs};
use crate::cloud::local::world::{Distribution, Invalidation, OriginAccessControl, World};
use crate::cloud::{CloudError, Outcome};
use converge_core::desired::Tags;
use converge_core::ids::DistributionId;
use converge_core::observed::{DistributionConfig, DistributionStatus, OriginAccessSettings};
use converge_core::s3::MAX_OAC_NAME;
use std::collections::BTreeSet;

pub(crate) fn create_distribution(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    caller_reference: &str,
    config: &DistributionConfig,
    tags: &Tags,
) -> Result<Outcome, CloudError> {
    if let Some(d) = w
        .distributions
        .values()
        .find(|d| d.caller_reference == *caller_reference)
    {
        if d.original == *config {
            return Ok(Outcome::Distribution {
                id: d.id.clone(),
                domain_name: d.domain_name.clone(),
            });
        }
        return Err(e.exists(
            "DistributionAlreadyExists",
            format!(
                "The caller reference '{caller_reference}' was used for distribution {} with other settings.",
                d.id
            ),
        ));
    }
    if caller_reference.is_empty() {
        return Err(e.invalid("InvalidArgument", "The caller reference is empty."));
    }
    check_distribution(w, e, None, config)?;
    super::acm::check_viewer_certificate(w, cx, e, config)?;
    check_tags(e, tags)?;
    let id: DistributionId = e.id(format!(
        "E{}",
        w.next_chars(13, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    ))?;
    let domain_name = format!(
        "d{}.cloudfront.net",
        w.next_chars(13, b"abcdefghijklmnopqrstuvwxyz0123456789")
    );
    w.distributions.insert(
        id.clone(),
        Distribution {
            id: id.clone(),
            domain_name: domain_name.clone(),
            caller_reference: caller_reference.to_owned(),
            original: config.clone(),
            config: config.clone(),
            tags: tags.clone(),
            created_at: cx.now,
            deployed_at: cx.later(cx.delays.deploy),
        },
    );
    Ok(Outcome::Distribution { id, domain_name })
}

pub(crate) fn update_distribution(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    id: &DistributionId,
    config: &DistributionConfig,
) -> Result<Outcome, CloudError> {
    if !w.distributions.contains_key(id) {
        return Err(no_such_distribution(e, id));
    }
    check_distribution(w, e, Some(id), config)?;
    super::acm::check_viewer_certificate(w, cx, e, config)?;
    if let Some(d) = w.distributions.get_mut(id) {
        d.config = config.clone();
        d.deployed_at = cx.later(cx.delays.deploy);
    }
    Ok(Outcome::Done)
}

pub(crate) fn delete_distribution(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    id: &DistributionId,
) -> Result<Outcome, CloudError> {
    let d = w
        .distributions
        .get(id)
        .ok_or_else(|| no_such_distribution(e, id))?;
    if d.config.enabled || d.status(cx.now) != DistributionStatus::Deployed {
        return Err(e.state(
            "DistributionNotDisabled",
            format!(
                "The distribution {id} must be disabled and deployed before it is deleted (enabled: {}, status: {:?}).",
                d.config.enabled,
                d.status(cx.now)
            ),
        ));
    }
    w.distributions.remove(id);
    Ok(Outcome::Done)
}

pub(super) fn no_such_distribution(e: &Errs, id: &DistributionId) -> CloudError {
    e.not_found(
        "NoSuchDistribution",
        format!("The specified distribution does not exist: {id}"),
    )
}

/// A private bucket origin needs origin access: CloudFront itself
/// accepts the distribution, but S3 answers every request with 403
/// AccessDenied, as neither anonymous requests nor unsigned ones may read
/// a bucket that is not public ("Restricting access to an Amazon S3
/// origin", CloudFront Developer Guide:
/// https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-restricting-access-to-s3.html).
/// The local cloud refuses such a distribution outright, so the mistake
/// shows at apply, not in a browser. A named control must exist.
fn check_origin_access(w: &World, e: &Errs, c: &DistributionConfig) -> Result<(), CloudError> {
    if let Some(name) = &c.origin_access_control
        && !w.origin_access_controls.values().any(|o| o.name == *name)
    {
        return Err(e.not_found(
            "NoSuchOriginAccessControl",
            format!("The specified origin access control does not exist: {name}"),
        ));
    }
    // A disabled distribution serves nothing: it may be disabled (before
    // its deletion) whatever its bucket has become.
    if c.enabled
        && let Some(bucket) = c.origin_domain.strip_suffix(".s3.amazonaws.com")
        && let Some(b) = w.buckets.get(bucket)
        && !b.public_read
        && c.origin_access_control.is_none()
    {
        return Err(e.make(
            crate::cloud::ErrorKind::AccessDenied,
            "AccessDenied",
            format!(
                "The origin bucket '{bucket}' is private and the distribution has no origin access control: S3 would answer every request with 403 AccessDenied."
            ),
        ));
    }
    Ok(())
}

fn check_distribution(
    w: &World,
    e: &Errs,
    this: Option<&DistributionId>,
    c: &DistributionConfig,
) -> Result<(), CloudError> {
    if c.origin_domain.is_empty() {
        return Err(e.invalid("InvalidOrigin", "The origin domain name is empty."));
    }
    check_origin_access(w, e, c)?;
    if let Some(bucket) = c.origin_domain.strip_suffix(".s3.amazonaws.com")
        && !w.buckets.contains_key(bucket)
    {
        return Err(e.invalid(
            "InvalidOrigin",
            format!("The specified origin server does not exist or is not valid: bucket '{bucket}' does not exist."),
        ));
    }
    if let Some((domain, _)) = &c.logging {
        let bucket = domain.strip_suffix(".s3.amazonaws.com").unwrap_or(domain);
        if !w.buckets.contains_key(bucket) {
            return Err(e.invalid(
                "InvalidArgument",
                format!(
                    "The S3 bucket that you specified for CloudFront logs does not exist: {bucket}"
                ),
            ));
        }
    }
    if let Some(root) = &c.default_root_object
        && (root.starts_with('/') || root.len() > 255)
    {
        return Err(e.invalid(
            "InvalidDefaultRootObject",
            format!("The default root object '{root}' is not valid: no leading '/', at most 255 characters."),
        ));
    }
    if c.comment.chars().count() > 128 {
        return Err(e.invalid(
            "InvalidArgument",
            "The comment is longer than 128 characters.",
        ));
    }
    let mut seen = BTreeSet::new();
    for a in &c.aliases {
        let host_ok = !a.is_empty()
            && a.len() <= 253
            && a.split('.').count() >= 2
            && a.split('.').enumerate().all(|(i, label)| {
                (!label.is_empty()
                    && label.len() <= 63
                    && label
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '-'))
                    || (i == 0 && label == "*")
            });
        if !host_ok {
            return Err(e.invalid(
                "InvalidArgument",
                format!("The alternate domain name '{a}' is not a valid host name."),
            ));
        }
        if !seen.insert(a.to_ascii_lowercase()) {
            return Err(e.invalid(
                "InvalidArgument",
                format!("The alternate domain name '{a}' is listed twice."),
            ));
        }
        if let Some(other) = w.distributions.values().find(|d| {
            Some(&d.id) != this && d.config.aliases.iter().any(|o| o.eq_ignore_ascii_case(a))
        }) {
            return Err(e.exists(
                "CNAMEAlreadyExists",
                format!(
                    "One or more of the CNAMEs you provided are already associated with a different resource: {a} ({})",
                    other.id
                ),
            ));
        }
    }
    Ok(())
}

fn check_oac(
    w: &World,
    e: &Errs,
    this: Option<&str>,
    name: &str,
    s: &OriginAccessSettings,
) -> Result<(), CloudError> {
    let name_ok = !name.is_empty()
        && name.len() <= MAX_OAC_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !name_ok {
        return Err(e.invalid(
            "InvalidArgument",
            format!("The origin access control name '{name}' is not valid: 1 to {MAX_OAC_NAME} letters, digits, '-', '_' or '.'."),
        ));
    }
    let valid = s.signing_protocol == "sigv4"
        && ["always", "never", "no-override"].contains(&s.signing_behavior.as_str())
        && ["s3", "mediastore", "lambda", "mediapackagev2"].contains(&s.origin_type.as_str())
        && s.description.chars().count() <= 256;
    if !valid {
        return Err(e.invalid(
            "InvalidArgument",
            format!("The origin access control settings are not valid: {s:?}"),
        ));
    }
    if w.origin_access_controls
        .values()
        .any(|o| o.name == name && Some(o.id.as_str()) != this)
    {
        return Err(e.exists(
            "OriginAccessControlAlreadyExists",
            format!("An origin access control with the name '{name}' already exists."),
        ));
    }
    Ok(())
}

fn no_such_oac(e: &Errs, id: &str) -> CloudError {
    e.not_found(
        "NoSuchOriginAccessControl",
        format!("The specified origin access control does not exist: {id}"),
    )
}

pub(crate) fn create_oac(
    w: &mut World,
    e: &Errs,
    name: &str,
    settings: &OriginAccessSettings,
) -> Result<Outcome, CloudError> {
    check_oac(w, e, None, name, settings)?;
    let id = format!(
        "E{}",
        w.next_chars(13, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    );
    w.origin_access_controls.insert(
        id.clone(),
        OriginAccessControl {
            id,
            name: name.to_owned(),
            settings: settings.clone(),
        },
    );
    Ok(Outcome::Done)
}

pub(crate) fn update_oac(
    w: &mut World,
    e: &Errs,
    id: &str,
    name: &str,
    settings: &OriginAccessSettings,
) -> Result<Outcome, CloudError> {
    if !w.origin_access_controls.contains_key(id) {
        return Err(no_such_oac(e, id));
    }
    check_oac(w, e, Some(id), name, settings)?;
    let old = w
        .origin_access_controls
        .get(id)
        .map(|o| o.name.clone())
        .unwrap_or_default();
    // Distributions name their control (the local cloud links by name).
    for d in w.distributions.values_mut() {
        if d.config.origin_access_control.as_deref() == Some(old.as_str()) {
            d.config.origin_access_control = Some(name.to_owned());
        }
    }
    if let Some(o) = w.origin_access_controls.get_mut(id) {
        o.name = name.to_owned();
        o.settings = settings.clone();
    }
    Ok(Outcome::Done)
}

pub(crate) fn delete_oac(w: &mut World, e: &Errs, id: &str) -> Result<Outcome, CloudError> {
    let o = w
        .origin_access_controls
        .get(id)
        .ok_or_else(|| no_such_oac(e, id))?;
    if let Some(d) = w
        .distributions
        .values()
        .find(|d| d.config.origin_access_control.as_deref() == Some(o.name.as_str()))
    {
        return Err(e.state(
            "OriginAccessControlInUse",
            format!(
                "The origin access control {id} is in use by distribution {}.",
                d.id
            ),
        ));
    }
    w.origin_access_controls.remove(id);
    Ok(Outcome::Done)
}

/// CreateInvalidation: 1 to 3000 paths, each starting with `/`; the same
/// caller reference with the same paths answers the same invalidation,
/// with other paths `InvalidationBatchAlreadyExists`.
pub(crate) fn create_invalidation(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    id: &DistributionId,
    caller_reference: &str,
    paths: &[String],
) -> Result<Outcome, CloudError> {
    if !w.distributions.contains_key(id) {
        return Err(no_such_distribution(e, id));
    }
    if paths.is_empty() || paths.len() > 3000 || paths.iter().any(|p| !p.starts_with('/')) {
        return Err(e.invalid(
            "InvalidArgument",
            "An invalidation takes 1 to 3000 paths, each starting with '/'.",
        ));
    }
    if caller_reference.is_empty() {
        return Err(e.invalid("InvalidArgument", "The caller reference is empty."));
    }
    if let Some(i) = w
        .invalidations
        .values()
        .find(|i| i.distribution == *id && i.caller_reference == caller_reference)
    {
        if i.paths == paths {
            return Ok(Outcome::Invalidation(i.id.clone()));
        }
        return Err(e.exists(
            "InvalidationBatchAlreadyExists",
            format!("The caller reference '{caller_reference}' was used for invalidation {} with other paths.", i.id),
        ));
    }
    let inv = format!(
        "I{}",
        w.next_chars(13, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    );
    w.invalidations.insert(
        inv.clone(),
        Invalidation {
            id: inv.clone(),
            distribution: id.clone(),
            caller_reference: caller_reference.to_owned(),
            paths: paths.to_vec(),
            completed_at: cx.later(cx.delays.invalidation),
        },
    );
    Ok(Outcome::Invalidation(inv))
}

/// GetInvalidation: whether it has completed.
pub(crate) fn invalidation_completed(
    w: &World,
    now: jiff::Timestamp,
    e: &Errs,
    distribution: &DistributionId,
    id: &str,
) -> Result<bool, CloudError> {
    match w.invalidations.get(id) {
        Some(i) if i.distribution == *distribution => Ok(now >= i.completed_at),
        _ => Err(e.not_found(
            "NoSuchInvalidation",
            format!("The specified invalidation does not exist: {id}"),
        )),
    }
}
