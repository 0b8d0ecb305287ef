//! Security group deletes: a group goes only once its instances are
//! terminated or moved, no step uses it, and the rules naming it as their
//! source are revoked.

use super::{Ctx, Problem, User, listed, push};
use crate::ids::{GroupId, InstanceId};
use crate::observed::{CloudSource, InstanceState};
use crate::plan::{GroupRef, Step, StepId};
use std::collections::{BTreeMap, BTreeSet};

pub(super) fn check(cx: &mut Ctx<'_>) {
    let plan = cx.plan;
    let mut doomed: BTreeMap<&GroupId, Vec<StepId>> = BTreeMap::new();
    let mut moves: BTreeMap<&InstanceId, Vec<StepId>> = BTreeMap::new();
    let mut revokes: BTreeMap<&GroupId, Vec<StepId>> = BTreeMap::new();
    for (i, s) in plan.graph.iter() {
        match s {
            Step::DeleteGroup { group, .. } => push(&mut doomed, group, i),
            Step::SetInstanceGroups { instance, .. } => push(&mut moves, instance, i),
            Step::RevokeIngress { group, .. } => push(&mut revokes, group, i),
            _ => {}
        }
    }
    if doomed.is_empty() {
        return;
    }
    members_go_first(cx, &doomed, &moves);
    for (i, s) in plan.graph.iter() {
        for group in uses(s) {
            for &delete in listed(&doomed, &group) {
                cx.report(Problem::UsesDeletedGroup {
                    step: cx.name(i),
                    group: group.clone(),
                    delete: cx.name(delete),
                });
            }
        }
        if let Step::RevokeIngress { rules, .. } = s {
            let sources: BTreeSet<&GroupId> =
                rules.iter().filter_map(|r| source(&r.source)).collect();
            for &delete in sources.iter().flat_map(|g| listed(&doomed, g)) {
                if !cx.order.before(i, delete) {
                    cx.report(Problem::RevokeAfterGroupDelete {
                        step: cx.name(i),
                        delete: cx.name(delete),
                    });
                }
            }
        }
    }
    rules_go_first(cx, &doomed, &revokes);
}

/// The group a rule's source names, if any.
fn source(s: &CloudSource) -> Option<&GroupId> {
    match s {
        CloudSource::Group(g) => Some(g),
        CloudSource::Cidr(_) => None,
    }
}

/// The existing groups a step puts instances in or authorizes rules on or
/// from, once each.
fn uses(s: &Step) -> BTreeSet<&GroupId> {
    fn known(g: &GroupRef) -> Option<&GroupId> {
        match g {
            GroupRef::Known(id) => Some(id),
            GroupRef::Created(_) => None,
        }
    }
    match s {
        Step::Launch { spec, .. } => spec.groups.iter().filter_map(known).collect(),
        Step::SetInstanceGroups { groups, .. } => groups.iter().filter_map(known).collect(),
        Step::AuthorizeIngress { group, rules, .. } => known(group)
            .into_iter()
            .chain(
                rules
                    .iter()
                    .filter_map(|r| r.source_group.as_ref().and_then(known)),
            )
            .collect(),
        _ => BTreeSet::new(),
    }
}

/// Each instance in a doomed group is terminated or moved to other groups
/// before the group's delete. Instances shutting down release the group
/// by themselves (the executor retries the delete until they have).
fn members_go_first(
    cx: &mut Ctx<'_>,
    doomed: &BTreeMap<&GroupId, Vec<StepId>>,
    moves: &BTreeMap<&InstanceId, Vec<StepId>>,
) {
    let index = cx.index;
    let observed = cx.observed;
    let holding = observed
        .instances
        .iter()
        .filter(|x| x.state.is_live() || x.state == InstanceState::Stopped);
    for inst in holding {
        let groups: BTreeSet<&GroupId> = inst
            .groups
            .iter()
            .filter(|g| doomed.contains_key(g))
            .collect();
        if groups.is_empty() {
            continue;
        }
        let mut gone: Vec<StepId> = index.terminates(&inst.id).to_vec();
        gone.extend_from_slice(listed(moves, &&inst.id));
        gone.sort_unstable();
        for &delete in groups.iter().flat_map(|g| listed(doomed, g)) {
            if !cx.order.any_before(&gone, delete) {
                cx.report(Problem::DeletedWhileInUse {
                    step: cx.name(delete),
                    user: User::Instance(inst.id.clone()),
                });
            }
        }
    }
}

/// A rule of a group that stays, naming a doomed group as its source, is
/// revoked before the delete (it would keep the group from going).
fn rules_go_first(
    cx: &mut Ctx<'_>,
    doomed: &BTreeMap<&GroupId, Vec<StepId>>,
    revokes: &BTreeMap<&GroupId, Vec<StepId>>,
) {
    let plan = cx.plan;
    let observed = cx.observed;
    for g in observed
        .security_groups
        .iter()
        .filter(|g| !doomed.contains_key(&g.id))
    {
        for r in &g.ingress {
            let Some(deletes) = source(&r.source).and_then(|s| doomed.get(s)) else {
                continue;
            };
            let revoking: Vec<StepId> = listed(revokes, &&g.id)
                .iter()
                .copied()
                .filter(|&j| {
                    matches!(plan.graph.step(j), Some(Step::RevokeIngress { rules, .. }) if rules.contains(r))
                })
                .collect();
            for &delete in deletes {
                if !cx.order.any_before(&revoking, delete) {
                    cx.report(Problem::DeletedWhileInUse {
                        step: cx.name(delete),
                        user: User::Rule(g.id.clone()),
                    });
                }
            }
        }
    }
}
