//! The Route 53 steps: creating a hosted zone (and tagging it), deleting
//! one, and a record's change batch, assembled from the outputs of the
//! steps it waits for and then waited on until GetChange says INSYNC.

use super::StepError;
use super::ctx::{Ctx, Output, answered};
use crate::cloud::{ErrorKind, Op, Outcome};
use converge_core::desired::Tags;
use converge_core::ids::tags as own;
use converge_core::plan::{PlannedRecordChange, Ref, StepId};
use converge_core::route53::{self, AliasTarget, Mark, RecordChange, RecordSet};

/// Creates a public hosted zone and hands on its ID. A caller reference
/// used before (a retried or interrupted run) finds the zone this stack's
/// tags name instead.
pub(super) async fn create_zone(
    ctx: &Ctx,
    domain: &str,
    caller_reference: &str,
    tags: &Tags,
) -> Result<Output, StepError> {
    let op = Op::CreateHostedZone {
        domain: domain.to_owned(),
        caller_reference: caller_reference.to_owned(),
        tags: tags.clone(),
    };
    match ctx.call(&op, false).await {
        Ok(Outcome::Zone { id, name_servers }) => Ok(Output::Zone { id, name_servers }),
        Ok(other) => Err(answered("CreateHostedZone", &other)),
        Err(e) if e.kind == ErrorKind::AlreadyExists => {
            let stack = tags
                .get(own::STACK)
                .and_then(|s| s.parse().ok())
                .ok_or(StepError::Cloud(e.clone()))?;
            let domains = [domain.to_owned()];
            let zones = ctx.read(|| ctx.cloud.dns_zones(&stack, &domains)).await?;
            zones
                .into_iter()
                .find(|z| z.domain == domain && z.tags.get(own::NAME) == tags.get(own::NAME))
                .map(|z| Output::Zone {
                    id: z.id,
                    name_servers: z.name_servers,
                })
                .ok_or(StepError::Cloud(e))
        }
        Err(e) => Err(e.into()),
    }
}

/// Deletes a hosted zone.
pub(super) async fn delete_zone(ctx: &Ctx, id: &str) -> Result<Output, StepError> {
    ctx.perform(&Op::DeleteHostedZone { id: id.to_owned() }, false)
        .await
}

/// Sends a record's change batch (the record and its mark, all or
/// nothing) and waits until Route 53 has it on every server.
pub(super) async fn change_records(
    ctx: &Ctx,
    step: StepId,
    zone: &Ref<String>,
    changes: &[PlannedRecordChange],
) -> Result<Output, StepError> {
    let zone = zone_id(ctx, zone)?;
    let mut batch = Vec::new();
    for c in changes {
        batch.push(RecordChange {
            action: c.action,
            set: assemble(ctx, c)?,
        });
    }
    send_and_wait(ctx, step, &zone, batch.clone()).await?;
    stamp_marks(ctx, &zone, &batch).await?;
    Ok(Output::None)
}

/// A hosted zone's ID, known or created by an earlier step.
pub(super) fn zone_id(ctx: &Ctx, zone: &Ref<String>) -> Result<String, StepError> {
    match zone {
        Ref::Known(id) => Ok(id.clone()),
        Ref::Created(s) => match ctx.output(*s)? {
            Output::Zone { id, .. } => Ok(id),
            _ => Err(StepError::Unexpected(format!(
                "step {s} created no hosted zone"
            ))),
        },
    }
}

/// Sends a change batch and waits until Route 53 has it on every server
/// (GetChange says INSYNC).
pub(super) async fn send_and_wait(
    ctx: &Ctx,
    step: StepId,
    zone: &str,
    changes: Vec<RecordChange>,
) -> Result<(), StepError> {
    let op = Op::ChangeRecordSets {
        zone: zone.to_owned(),
        changes,
    };
    let id = match ctx.call(&op, false).await? {
        Outcome::Change(id) => id,
        other => return Err(answered("ChangeResourceRecordSets", &other)),
    };
    ctx.wait_until(
        step,
        &format!("change {id} in zone {zone} to be INSYNC"),
        || async { Ok(ctx.read(|| ctx.cloud.change_in_sync(&id)).await?) },
    )
    .await
}

/// Notes in the marks of a batch now in sync the moment it was: a cutover
/// stage's wait (the old TTL, the settle time) counts from when every
/// Route 53 server answers the change, not from when it was planned. The
/// stamped mark needs no wait of its own: only converge reads it, and the
/// API answers it at once.
async fn stamp_marks(ctx: &Ctx, zone: &str, changes: &[RecordChange]) -> Result<(), StepError> {
    let pending: Vec<(&RecordSet, Mark)> = changes
        .iter()
        .filter(|c| c.action == route53::ChangeAction::Upsert)
        .filter_map(|c| {
            let m = Mark::parse(c.set.values.first()?)?;
            (m.pending && c.set.name.starts_with("_converge-")).then_some((&c.set, m))
        })
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    let now = ctx.cloud_now().await?;
    let stamped = pending
        .into_iter()
        .map(|(set, m)| RecordChange {
            action: route53::ChangeAction::Upsert,
            set: RecordSet {
                values: vec![m.stamped(now).to_value()],
                ..set.clone()
            },
        })
        .collect();
    let op = Op::ChangeRecordSets {
        zone: zone.to_owned(),
        changes: stamped,
    };
    match ctx.call(&op, false).await? {
        Outcome::Change(_) => Ok(()),
        other => Err(answered("ChangeResourceRecordSets", &other)),
    }
}

/// One set of a batch, from its parts: values from the manifests are
/// checked and normalized now that references are known.
fn assemble(ctx: &Ctx, c: &PlannedRecordChange) -> Result<RecordSet, StepError> {
    let mut values = Vec::new();
    for parts in &c.values {
        let text = ctx.user_data(parts)?;
        values.push(if c.from_manifest {
            route53::value(c.rtype, &text)
                .map_err(|m| StepError::Unexpected(format!("{} {}: {m}", c.name, c.rtype)))?
        } else {
            text
        });
    }
    values.sort();
    let alias = match &c.alias {
        None => None,
        Some(a) => Some(AliasTarget {
            dns_name: ctx
                .user_data(&a.dns_name)?
                .trim_end_matches('.')
                .to_ascii_lowercase(),
            zone_id: ctx.user_data(&a.zone_id)?,
        }),
    };
    Ok(RecordSet {
        name: c.name.clone(),
        rtype: c.rtype,
        ttl: c.ttl,
        values,
        alias,
    })
}
