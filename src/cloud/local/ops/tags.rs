//! Tags: the limits every create checks, and `CreateTags` and `DeleteTags`,
//! which reach a resource of any service through [`TagTarget`] (EC2 tags
//! instances, volumes, groups and key pairs; ELB, S3 and CloudFront tag
//! their own resources). They live here, beside the rules they share,
//! rather than in one service's file: [`tags_mut`] is the one place that
//! knows how each kind of resource is found.

use super::cloudfront::no_such_distribution;
use super::ec2::{find_group, find_instance, find_key_pair, find_volume};
use super::elb::find_balancer;
use super::s3::no_such_bucket;
use super::{Ctx, Errs};
use crate::cloud::local::world::World;
use crate::cloud::{CloudError, Outcome};
use converge_core::desired::Tags;
use converge_core::plan::TagTarget;

/// The most tags a resource may carry, as in AWS.
const MAX_TAGS: usize = 50;

pub(crate) fn create_tags(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    target: &TagTarget,
    tags: &Tags,
) -> Result<Outcome, CloudError> {
    check_tags(e, tags)?;
    let current = tags_mut(w, cx, e, target)?;
    let mut merged = current.clone();
    merged.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
    if merged.len() > MAX_TAGS {
        return Err(e.invalid(
            "TagLimitExceeded",
            format!(
                "A resource may have at most {MAX_TAGS} tags, {} asked.",
                merged.len()
            ),
        ));
    }
    *current = merged;
    Ok(Outcome::Done)
}

pub(crate) fn delete_tags(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    target: &TagTarget,
    keys: &[String],
) -> Result<Outcome, CloudError> {
    let current = tags_mut(w, cx, e, target)?;
    for k in keys {
        current.remove(k);
    }
    Ok(Outcome::Done)
}

/// The tags of a resource, to change them.
fn tags_mut<'w>(
    w: &'w mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    target: &TagTarget,
) -> Result<&'w mut Tags, CloudError> {
    let found = match target {
        TagTarget::Instance(id) => {
            find_instance(w, cx, e, id)?;
            w.instances.get_mut(id).map(|i| &mut i.tags)
        }
        TagTarget::Volume(id) => {
            find_volume(w, cx, e, id)?;
            w.volumes.get_mut(id).map(|v| &mut v.tags)
        }
        TagTarget::Group(id) => {
            find_group(w, cx, e, id)?;
            w.groups.get_mut(id).map(|g| &mut g.tags)
        }
        TagTarget::KeyPair(name) => {
            let id = find_key_pair(w, cx, e, name.as_str())?.id.clone();
            w.key_pairs.get_mut(&id).map(|k| &mut k.tags)
        }
        TagTarget::Balancer(name) => {
            // A classic balancer, or else an elbv2 one of that name.
            if find_balancer(w, cx, e, name.as_str()).is_err() {
                super::elbv2::find_balancer_v2(w, cx, e, name.as_str())?;
                w.balancer_v2_mut(cx.region, name.as_str())
                    .map(|b| &mut b.tags)
            } else {
                w.balancer_mut(cx.region, name.as_str())
                    .map(|b| &mut b.tags)
            }
        }
        TagTarget::Vpc(id) => {
            super::ec2::find_vpc(w, cx, e, id)?;
            w.vpcs.get_mut(id).map(|v| &mut v.tags)
        }
        TagTarget::Subnet(id) => {
            super::ec2::find_subnet(w, cx, e, id)?;
            w.subnets.get_mut(id).map(|s| &mut s.tags)
        }
        TagTarget::Bucket(name) => Some(
            w.buckets
                .get_mut(name.as_str())
                .map(|b| &mut b.tags)
                .ok_or_else(|| no_such_bucket(e, name.as_str()))?,
        ),
        TagTarget::Distribution(id) => Some(
            w.distributions
                .get_mut(id)
                .map(|d| &mut d.tags)
                .ok_or_else(|| no_such_distribution(e, id))?,
        ),
        TagTarget::Certificate(arn) => Some(
            w.certificates
                .get_mut(arn)
                .map(|c| &mut c.tags)
                .ok_or_else(|| {
                    e.not_found(
                        "ResourceNotFoundException",
                        format!("Could not find certificate {arn}."),
                    )
                })?,
        ),
        TagTarget::Zone(id) => Some(w.hosted_zones.get_mut(id).map(|z| &mut z.tags).ok_or_else(
            || {
                e.not_found(
                    "NoSuchHostedZone",
                    format!("No hosted zone found with ID: {id}"),
                )
            },
        )?),
    };
    // The lookups above have found it; this cannot fail.
    found.ok_or_else(|| e.not_found("NotFound", format!("{target:?} does not exist")))
}

pub(super) fn check_tags(e: &Errs, tags: &Tags) -> Result<(), CloudError> {
    if tags.len() > MAX_TAGS {
        return Err(e.invalid(
            "TagLimitExceeded",
            format!(
                "A resource may have at most {MAX_TAGS} tags, {} given.",
                tags.len()
            ),
        ));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(e.invalid(
                "InvalidParameterValue",
                format!("Tag key '{k}' must be 1 to 128 characters."),
            ));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(e.invalid(
                "InvalidParameterValue",
                format!("Tag key '{k}': keys starting with 'aws:' are reserved."),
            ));
        }
        if v.chars().count() > 256 {
            return Err(e.invalid(
                "InvalidParameterValue",
                format!("The value of tag '{k}' is longer than 256 characters."),
            ));
        }
    }
    Ok(())
}
