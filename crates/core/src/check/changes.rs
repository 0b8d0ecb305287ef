//! The changes agree with the steps: sorted, one per resource, the summary
//! says there are changes exactly when there are steps, and every step
//! acts for a resource shown as changing.

use super::{Ctx, Problem};
use crate::ids::{InstanceId, Kind, ResourceKey};
use crate::plan::{ChangeAction, InstanceRef, Step};
use std::collections::BTreeSet;

pub(super) fn check(cx: &mut Ctx<'_>) {
    let plan = cx.plan;
    let changes = &plan.changes;
    for w in changes.windows(2) {
        if w[0].key >= w[1].key {
            cx.report(Problem::ChangesUnsorted {
                first: w[0].key.clone(),
                then: w[1].key.clone(),
            });
        }
    }
    let changing: BTreeSet<&ResourceKey> = changes
        .iter()
        .filter(|c| is_change(&c.action))
        .map(|c| &c.key)
        .collect();
    let shows_changes = !changing.is_empty();
    // Work the reconcile loop holds back is a change without steps this
    // pass (listed in `Plan::held`).
    if shows_changes != (cx.plan.has_changes() || !cx.plan.held.is_empty()) {
        cx.report(Problem::SummaryMismatch {
            has_changes: cx.plan.has_changes(),
        });
    }
    for (i, s) in plan.graph.iter() {
        let resources = acts_for(cx, s);
        if !resources.iter().any(|k| changing.contains(k)) {
            cx.report(Problem::StepWithoutChange {
                step: cx.name(i),
                resources,
            });
        }
    }
}

/// Whether applying the action does anything (a blocked delete does not).
fn is_change(action: &ChangeAction) -> bool {
    !matches!(
        action,
        ChangeAction::NoChange | ChangeAction::DeleteBlocked { .. }
    )
}

/// The resources a step acts for: its own, and for a step on instances
/// (attaching, detaching, registering), the fleets they belong to.
fn acts_for(cx: &Ctx<'_>, s: &Step) -> Vec<ResourceKey> {
    let known = |id: &InstanceId| {
        cx.index
            .instances
            .get(id)
            .map(|i| ResourceKey::new(Kind::Fleet, i.owner.name.clone()))
    };
    let launched = |step| match cx.plan.graph.step(step) {
        Some(Step::Launch { fleet, .. }) => Some(ResourceKey::new(Kind::Fleet, fleet.clone())),
        _ => None,
    };
    let of_ref = |r: &InstanceRef| match r {
        InstanceRef::Known(id) => known(id),
        InstanceRef::Launched(step) => launched(*step),
    };
    let mut keys = vec![s.resource()];
    match s {
        Step::AttachVolume { instance, .. } => keys.extend(of_ref(instance)),
        Step::DetachVolume { instance, .. } => keys.extend(known(instance)),
        Step::Register { instances, .. } => keys.extend(instances.iter().filter_map(of_ref)),
        Step::WaitHealthy { balancers, .. } => keys.extend(
            balancers
                .iter()
                .map(|b| ResourceKey::new(Kind::Balancer, b.name.clone())),
        ),
        Step::Deregister { instances, .. } | Step::WaitDrained { instances, .. } => {
            keys.extend(instances.iter().filter_map(known))
        }
        _ => {}
    }
    keys
}
