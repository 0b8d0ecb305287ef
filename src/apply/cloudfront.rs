//! The CloudFront steps: creating distributions (idempotent by caller
//! reference), changing their settings, and disabling them, then
//! deleting them once the disabled state is deployed, as CloudFront
//! requires.

use super::StepError;
use super::ctx::{Ctx, Output, answered};
use crate::cloud::{Op, Outcome};
use converge_core::desired::Tags;
use converge_core::ids::DistributionId;
use converge_core::observed::{DistributionConfig, DistributionStatus};
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
        Outcome::Distribution { domain_name, .. } => Ok(Output::Distribution { domain_name }),
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
