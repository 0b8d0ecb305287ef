//! The S3 steps: creating buckets (taking over one this stack created in
//! an interrupted apply), setting their public read access, deleting them;
//! the statements that let distributions read them, and their content
//! (issue 11 B).

use super::StepError;
use super::ctx::{Ctx, Output};
use crate::cloud::{Body, ErrorKind, Op};
use converge_core::desired::{ContentFile, Tags};
use converge_core::ids::{DistributionId, ResourceName, tags};
use converge_core::plan::{Ref, TagTarget};
use converge_core::s3::{CONTENT_TAG, MAX_DELETE_KEYS};
use md5::{Digest, Md5};

/// Creates a bucket, and makes it publicly readable if asked. A bucket
/// that already exists is fine only if it is this stack's.
pub(super) async fn create_bucket(
    ctx: &Ctx,
    name: &ResourceName,
    public_read: bool,
    tags: &Tags,
) -> Result<Output, StepError> {
    let op = Op::CreateBucket {
        name: name.into(),
        tags: tags.clone(),
    };
    match ctx.call(&op, false).await {
        Ok(_) => {}
        Err(e) if e.kind == ErrorKind::AlreadyExists => {
            // Ours from an interrupted apply, or someone else's.
            // Without a valid stack tag the bucket cannot be the stack's.
            let Some(stack) = tags
                .get(tags::STACK)
                .and_then(|s| s.parse::<ResourceName>().ok())
            else {
                return Err(e.into());
            };
            let ours = ctx.read(|| ctx.cloud.observe(&stack)).await?;
            if !ours.buckets.iter().any(|b| b.name == name.as_str()) {
                return Err(e.into());
            }
        }
        Err(e) => return Err(e.into()),
    }
    if public_read {
        let op = Op::SetBucketPublicRead {
            name: name.into(),
            public_read: true,
        };
        ctx.call(&op, true).await?;
    }
    Ok(Output::None)
}

/// Sets a bucket's public read access.
pub(super) async fn set_public_read(
    ctx: &Ctx,
    name: &ResourceName,
    public_read: bool,
) -> Result<Output, StepError> {
    let op = Op::SetBucketPublicRead {
        name: name.into(),
        public_read,
    };
    ctx.perform(&op, false).await
}

/// Deletes a bucket.
pub(super) async fn delete_bucket(ctx: &Ctx, name: &ResourceName) -> Result<Output, StepError> {
    let op = Op::DeleteBucket { name: name.into() };
    ctx.perform(&op, false).await
}

/// Writes the statement that lets a distribution (known, or created by
/// an earlier step) read a bucket.
pub(super) async fn grant_cdn_read(
    ctx: &Ctx,
    bucket: &ResourceName,
    sid: &str,
    distribution: &Ref<DistributionId>,
) -> Result<Output, StepError> {
    let distribution = ctx.distribution(distribution)?;
    let op = Op::PutCdnGrant {
        bucket: bucket.into(),
        sid: sid.to_owned(),
        distribution,
    };
    ctx.perform(&op, false).await
}

/// Removes a distribution's statement from a bucket's policy.
pub(super) async fn revoke_cdn_read(
    ctx: &Ctx,
    bucket: &ResourceName,
    sid: &str,
) -> Result<Output, StepError> {
    let op = Op::RemoveCdnGrant {
        bucket: bucket.into(),
        sid: sid.to_owned(),
    };
    ctx.perform(&op, false).await
}

/// Uploads files (each read again and checked against the MD5 planned:
/// a file changed since planning is re-planned), then records the
/// headers they carry in the bucket's `converge:content` tag.
pub(super) async fn put_objects(
    ctx: &Ctx,
    bucket: &ResourceName,
    objects: &[ContentFile],
    cache_control: Option<&str>,
    mark: &str,
) -> Result<Output, StepError> {
    for f in objects {
        let path = f.path.clone();
        let body = tokio::task::spawn_blocking(move || std::fs::read(path))
            .await
            .map_err(|e| StepError::Unexpected(format!("reading {}: {e}", f.path)))?
            .map_err(|e| StepError::Unexpected(format!("reading {}: {e}", f.path)))?;
        if hex::encode(Md5::digest(&body)) != f.md5 {
            return Err(StepError::Stale(format!(
                "{} changed since the plan was made",
                f.path
            )));
        }
        let op = Op::PutObject {
            bucket: bucket.into(),
            key: f.key.clone(),
            body: Body(body),
            content_type: f.content_type.clone(),
            cache_control: cache_control.map(str::to_owned),
        };
        ctx.call(&op, false).await?;
    }
    let op = Op::CreateTags {
        target: TagTarget::Bucket(bucket.into()),
        tags: Tags::from([(CONTENT_TAG.to_owned(), mark.to_owned())]),
    };
    ctx.perform(&op, false).await
}

/// Deletes objects, at most 1000 keys a call.
pub(super) async fn delete_objects(
    ctx: &Ctx,
    bucket: &ResourceName,
    keys: &[String],
) -> Result<Output, StepError> {
    for chunk in keys.chunks(MAX_DELETE_KEYS) {
        let op = Op::DeleteObjects {
            bucket: bucket.into(),
            keys: chunk.to_vec(),
        };
        ctx.call(&op, false).await?;
    }
    Ok(Output::None)
}
