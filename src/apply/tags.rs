//! The one step that spans services: setting and removing tags. The
//! executor sends the same two operations whatever the resource is; the
//! cloud routes them by [`TagTarget`] (EC2's CreateTags for instances,
//! volumes, groups and key pairs, the balancer's, bucket's or
//! distribution's own tagging call otherwise), so no service file here
//! owns it.

use super::StepError;
use super::ctx::{Ctx, Output};
use crate::cloud::Op;
use converge_core::desired::Tags;
use converge_core::plan::TagTarget;

/// Sets the tags in `set`, then removes the keys in `remove`.
pub(super) async fn set_tags(
    ctx: &Ctx,
    target: &TagTarget,
    set: &Tags,
    remove: &[String],
) -> Result<Output, StepError> {
    if !set.is_empty() {
        let op = Op::CreateTags {
            target: target.clone(),
            tags: set.clone(),
        };
        ctx.call(&op, true).await?;
    }
    if !remove.is_empty() {
        let op = Op::DeleteTags {
            target: target.clone(),
            keys: remove.to_vec(),
        };
        ctx.call(&op, true).await?;
    }
    Ok(Output::None)
}
