//! S3: buckets and their public-read setting.

use super::tags::check_tags;
use super::{Ctx, Errs};
use crate::cloud::local::world::{Bucket, World};
use crate::cloud::{CloudError, Outcome};
use converge_core::desired::Tags;
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
    // The local cloud never holds objects: every bucket is empty.
    if w.buckets.remove(name).is_none() {
        return Err(no_such_bucket(e, name));
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
