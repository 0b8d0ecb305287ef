//! The CloudFront steps: creating distributions (idempotent by caller
//! reference), changing their settings, and disabling them, then
//! deleting them once the disabled state is deployed, as CloudFront
//! requires; origin access controls, and invalidations waited for until
//! they complete (issue 11 B).

use super::StepError;
use super::ctx::{Ctx, Output, answered};
use crate::cloud::{ErrorKind, Op, Outcome};
use converge_core::desired::Tags;
use converge_core::ids::DistributionId;
use converge_core::observed::{DistributionConfig, DistributionStatus, OriginAccessSettings};
use converge_core::plan::StepId;

/// Creates a distribution and hands on its domain name.
pub(super) async fn create_distribution(
    ctx: &Ctx,
    caller_reference: &str,
    config: &DistributionConfig,
    tags: &Tags,
) -> Result<Output, StepError> {
    let op = Op::CreateDistribution {
        caller_reference: caller_reference.to_owned(),
        config: config.clone(),
        tags: tags.clone(),
    };
    match ctx.call(&op, false).await? {
        Outcome::Distribution { id, domain_name } => Ok(Output::Distribution { id, domain_name }),
        other => Err(answered("CreateDistribution", &other)),
    }
}

/// Changes a distribution's settings.
pub(super) async fn update_distribution(
    ctx: &Ctx,
    dist: &DistributionId,
    config: &DistributionConfig,
) -> Result<Output, StepError> {
    let op = Op::UpdateDistribution {
        id: dist.clone(),
        config: config.clone(),
    };
    ctx.perform(&op, false).await
}

/// Disables a distribution (if it is not already) and waits until the
/// change is deployed, as CloudFront requires before a delete.
pub(super) async fn disable_distribution(
    ctx: &Ctx,
    step: StepId,
    id: &DistributionId,
) -> Result<Output, StepError> {
    let Some(d) = ctx.read(|| ctx.cloud.distribution(id)).await? else {
        return Ok(Output::None);
    };
    if d.config.enabled {
        let mut config = d.config.clone();
        config.enabled = false;
        let op = Op::UpdateDistribution {
            id: id.clone(),
            config,
        };
        ctx.call(&op, false).await?;
    }
    ctx.wait_until(step, &format!("distribution {id} to deploy"), || async {
        Ok(match ctx.read(|| ctx.cloud.distribution(id)).await? {
            Some(d) => d.status == DistributionStatus::Deployed && !d.config.enabled,
            None => true,
        })
    })
    .await?;
    Ok(Output::None)
}

/// Deletes a (disabled, deployed) distribution.
pub(super) async fn delete_distribution(
    ctx: &Ctx,
    dist: &DistributionId,
) -> Result<Output, StepError> {
    let op = Op::DeleteDistribution { id: dist.clone() };
    ctx.perform(&op, false).await
}

/// Creates an origin access control. One that exists already is fine
/// when the stack observes it as its own (a retried or interrupted
/// create): names are unique per account.
pub(super) async fn create_origin_access(
    ctx: &Ctx,
    stack: &converge_core::ids::ResourceName,
    name: &str,
    settings: &OriginAccessSettings,
) -> Result<Output, StepError> {
    let op = Op::CreateOriginAccessControl {
        name: name.to_owned(),
        settings: settings.clone(),
    };
    match ctx.call(&op, false).await {
        Ok(_) => Ok(Output::None),
        Err(e) if e.kind == ErrorKind::AlreadyExists => {
            let ours = ctx.read(|| ctx.cloud.observe(stack)).await?;
            if ours.origin_access.iter().any(|a| a.name == name) {
                Ok(Output::None)
            } else {
                Err(e.into())
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Sets an origin access control's settings back.
pub(super) async fn update_origin_access(
    ctx: &Ctx,
    id: &str,
    name: &str,
    settings: &OriginAccessSettings,
) -> Result<Output, StepError> {
    let op = Op::UpdateOriginAccessControl {
        id: id.to_owned(),
        name: name.to_owned(),
        settings: settings.clone(),
    };
    ctx.perform(&op, false).await
}

/// Deletes an origin access control.
pub(super) async fn delete_origin_access(ctx: &Ctx, id: &str) -> Result<Output, StepError> {
    let op = Op::DeleteOriginAccessControl { id: id.to_owned() };
    ctx.perform(&op, false).await
}

/// Invalidates paths of a distribution and waits until the invalidation
/// completes.
pub(super) async fn invalidate(
    ctx: &Ctx,
    step: StepId,
    dist: &DistributionId,
    caller_reference: &str,
    paths: &[String],
) -> Result<Output, StepError> {
    let op = Op::CreateInvalidation {
        id: dist.clone(),
        caller_reference: caller_reference.to_owned(),
        paths: paths.to_vec(),
    };
    let inv = match ctx.call(&op, false).await? {
        Outcome::Invalidation(id) => id,
        other => return Err(answered("CreateInvalidation", &other)),
    };
    ctx.wait_until(step, &format!("invalidation {inv} of {dist}"), || async {
        Ok(ctx
            .read(|| ctx.cloud.invalidation_completed(dist, &inv))
            .await?)
    })
    .await?;
    Ok(Output::None)
}
