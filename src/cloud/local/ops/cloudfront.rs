//! CloudFront: distributions, which go InProgress → Deployed after each
//! change and can only be deleted once disabled and deployed.

use super::tags::check_tags;
use super::{Ctx, Errs};
use crate::cloud::local::world::{Distribution, World};
use crate::cloud::{CloudError, Outcome};
use converge_core::desired::Tags;
use converge_core::ids::DistributionId;
use converge_core::observed::{DistributionConfig, DistributionStatus};
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

fn check_distribution(
    w: &World,
    e: &Errs,
    this: Option<&DistributionId>,
    c: &DistributionConfig,
) -> Result<(), CloudError> {
    if c.origin_domain.is_empty() {
        return Err(e.invalid("InvalidOrigin", "The origin domain name is empty."));
    }
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
