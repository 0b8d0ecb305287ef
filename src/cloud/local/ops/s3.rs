//! S3: buckets and their public-read setting; their policy, objects
//! (hashes and headers, not bytes) and the statements that let
//! distributions read them (issue 11 B).

use super::tags::check_tags;
use super::{Ctx, Errs};
use crate::cloud::local::world::{Bucket, Object, World};
use crate::cloud::{CloudError, Outcome};
use converge_core::desired::Tags;
use converge_core::ids::DistributionId;
use converge_core::s3::{MAX_DELETE_KEYS, MAX_PUT_BYTES, grant_statement, with_statement};
use md5::{Digest, Md5};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

pub(crate) fn create_bucket(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    name: &str,
    tags: &Tags,
) -> Result<Outcome, CloudError> {
    check_bucket_name(name).map_err(|m| e.invalid("InvalidBucketName", m))?;
    check_tags(e, tags)?;
    if w.buckets.contains_key(name) {
        return Err(e.exists(
            "BucketAlreadyOwnedByYou",
            format!("The bucket '{name}' already exists and is owned by you."),
        ));
    }
    w.buckets.insert(
        name.to_owned(),
        Bucket {
            name: name.to_owned(),
            region: cx.region.to_owned(),
            public_read: false,
            tags: tags.clone(),
            created_at: cx.now,
            policy: None,
            objects: BTreeMap::new(),
        },
    );
    Ok(Outcome::Done)
}

pub(crate) fn set_bucket_public_read(
    w: &mut World,
    e: &Errs,
    name: &str,
    public_read: bool,
) -> Result<Outcome, CloudError> {
    let b = w
        .buckets
        .get_mut(name)
        .ok_or_else(|| no_such_bucket(e, name))?;
    b.public_read = public_read;
    Ok(Outcome::Done)
}

pub(crate) fn delete_bucket(w: &mut World, e: &Errs, name: &str) -> Result<Outcome, CloudError> {
    let b = w.buckets.get(name).ok_or_else(|| no_such_bucket(e, name))?;
    if !b.objects.is_empty() {
        return Err(e.state(
            "BucketNotEmpty",
            format!("The bucket you tried to delete is not empty: {name}"),
        ));
    }
    w.buckets.remove(name);
    Ok(Outcome::Done)
}

fn bucket_mut<'w>(w: &'w mut World, e: &Errs, name: &str) -> Result<&'w mut Bucket, CloudError> {
    w.buckets
        .get_mut(name)
        .ok_or_else(|| no_such_bucket(e, name))
}

fn malformed(e: &Errs, why: String) -> CloudError {
    e.invalid("MalformedPolicy", why)
}

/// PutBucketPolicy: the document must be JSON (S3 answers
/// `MalformedPolicy`).
pub(crate) fn put_bucket_policy(
    w: &mut World,
    e: &Errs,
    name: &str,
    policy: &str,
) -> Result<Outcome, CloudError> {
    // Parsing with no change checks the whole document.
    with_statement(Some(policy), "", None).map_err(|m| malformed(e, m))?;
    bucket_mut(w, e, name)?.policy = Some(policy.to_owned());
    Ok(Outcome::Done)
}

/// The ARN of a local distribution.
pub(crate) fn distribution_arn(id: &DistributionId) -> String {
    format!(
        "arn:aws:cloudfront::{}:distribution/{id}",
        super::iam::ACCOUNT
    )
}

/// Writes the statement `sid` that lets a distribution read the bucket,
/// keeping the others.
pub(crate) fn put_cdn_grant(
    w: &mut World,
    e: &Errs,
    name: &str,
    sid: &str,
    distribution: &DistributionId,
) -> Result<Outcome, CloudError> {
    if !w.distributions.contains_key(distribution) {
        return Err(super::cloudfront::no_such_distribution(e, distribution));
    }
    let statement = grant_statement(sid, name, &distribution_arn(distribution));
    let b = bucket_mut(w, e, name)?;
    b.policy =
        with_statement(b.policy.as_deref(), sid, Some(&statement)).map_err(|m| malformed(e, m))?;
    Ok(Outcome::Done)
}

/// Removes the statement `sid`; the policy goes when it is empty.
pub(crate) fn remove_cdn_grant(
    w: &mut World,
    e: &Errs,
    name: &str,
    sid: &str,
) -> Result<Outcome, CloudError> {
    let b = bucket_mut(w, e, name)?;
    b.policy = with_statement(b.policy.as_deref(), sid, None).map_err(|m| malformed(e, m))?;
    Ok(Outcome::Done)
}

/// PutObject: one PUT, at most 5 GiB (`EntityTooLarge`); the local cloud
/// keeps the MD5, size and headers.
pub(crate) fn put_object(
    w: &mut World,
    e: &Errs,
    name: &str,
    key: &str,
    body: &[u8],
    content_type: &str,
    cache_control: Option<&str>,
) -> Result<Outcome, CloudError> {
    if key.is_empty() || key.len() > 1024 {
        return Err(e.invalid(
            "KeyTooLongError",
            format!("The object key must be 1 to 1024 bytes long: {key:?}"),
        ));
    }
    let size = body.len() as u64;
    if size > MAX_PUT_BYTES {
        return Err(e.invalid(
            "EntityTooLarge",
            format!("Your proposed upload exceeds the maximum allowed size: {key} is {size} bytes"),
        ));
    }
    let b = bucket_mut(w, e, name)?;
    b.objects.insert(
        key.to_owned(),
        Object {
            md5: hex::encode(Md5::digest(body)),
            size,
            content_type: content_type.to_owned(),
            cache_control: cache_control.map(str::to_owned),
        },
    );
    Ok(Outcome::Done)
}

/// DeleteObjects: at most 1000 keys a call (`MalformedXML`); keys that
/// are not there are deleted all the same.
pub(crate) fn delete_objects(
    w: &mut World,
    e: &Errs,
    name: &str,
    keys: &[String],
) -> Result<Outcome, CloudError> {
    if keys.is_empty() || keys.len() > MAX_DELETE_KEYS {
        return Err(e.invalid(
            "MalformedXML",
            format!(
                "DeleteObjects takes 1 to {MAX_DELETE_KEYS} keys, not {}",
                keys.len()
            ),
        ));
    }
    let b = bucket_mut(w, e, name)?;
    for k in keys {
        b.objects.remove(k);
    }
    Ok(Outcome::Done)
}

pub(super) fn no_such_bucket(e: &Errs, name: &str) -> CloudError {
    e.not_found(
        "NoSuchBucket",
        format!("The specified bucket does not exist: {name}"),
    )
}

fn check_bucket_name(name: &str) -> Result<(), String> {
    let chars_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    let ends_ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let ip_like = name.parse::<Ipv4Addr>().is_ok();
    let ok = (3..=63).contains(&name.len())
        && chars_ok
        && ends_ok
        && !name.contains("..")
        && !ip_like
        && !name.starts_with("xn--")
        && !name.ends_with("-s3alias");
    if ok {
        Ok(())
    } else {
        Err(format!("The specified bucket name '{name}' is not valid."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3() {
        for ok in ["smallpayroll-assets", "a.b.c", "abc"] {
            assert!(check_bucket_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "Assets",
            "a..b",
            "-abc",
            "abc-",
            "192.168.1.1",
            "xn--abc",
            "a_b",
        ] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
    }
}
