//! The S3 steps: creating buckets (taking over one this stack created in
//! an interrupted apply), setting their public read access, deleting them.

use super::StepError;
use super::ctx::{Ctx, Output};
use crate::cloud::{ErrorKind, Op};
use converge_core::desired::Tags;
use converge_core::ids::{ResourceName, tags};

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
