//! Buckets and distributions: a distribution is deleted only once
//! disabled; a bucket only if its deletion policy allows it, and once no
//! distribution serves from it or logs to it.

use super::{Ctx, Problem, User, listed, push};
use crate::desired::DeletionPolicy;
use crate::ids::{DistributionId, ResourceName};
use crate::observed::{ObservedBucket, ObservedDistribution, bucket_domain};
use crate::plan::{Step, StepId};
use std::collections::BTreeMap;

pub(super) fn check(cx: &mut Ctx<'_>) {
    let plan = cx.plan;
    let mut disables: BTreeMap<&DistributionId, Vec<StepId>> = BTreeMap::new();
    let mut deletes: BTreeMap<&DistributionId, Vec<StepId>> = BTreeMap::new();
    for (i, s) in plan.graph.iter() {
        match s {
            Step::DisableDistribution { id, .. } => push(&mut disables, id, i),
            Step::DeleteDistribution { id, .. } => push(&mut deletes, id, i),
            _ => {}
        }
    }
    // The distributions using each domain, as origin or for logs.
    let mut serving: BTreeMap<String, Vec<&ObservedDistribution>> = BTreeMap::new();
    for x in &cx.observed.distributions {
        let origin = &x.config.origin_domain;
        serving.entry(origin.clone()).or_default().push(x);
        if let Some((logs, _)) = &x.config.logging
            && logs != origin
        {
            serving.entry(logs.clone()).or_default().push(x);
        }
    }
    let mut buckets = BTreeMap::new();
    for b in &cx.observed.buckets {
        buckets.entry(&b.owner.name).or_insert(b);
    }
    for (i, s) in plan.graph.iter() {
        match s {
            Step::DeleteDistribution { id, .. }
                if !cx.order.any_before(listed(&disables, &id), i) =>
            {
                cx.report(Problem::DeleteBeforeDisable {
                    step: cx.name(i),
                    distribution: id.clone(),
                });
            }
            Step::DeleteBucket { name } => {
                retained(cx, i, name, buckets.get(name).copied());
                let users = serving.get(&bucket_domain(name.as_str()));
                for x in users.into_iter().flatten() {
                    if !cx.order.any_before(listed(&deletes, &&x.id), i) {
                        cx.report(Problem::DeletedWhileInUse {
                            step: cx.name(i),
                            user: User::Distribution(x.id.clone()),
                        });
                    }
                }
            }
            _ => {}
        }
    }
}

/// A bucket is deleted only if its policy says delete: the manifest's,
/// or once removed, its tag's (missing means retain).
fn retained(cx: &mut Ctx<'_>, i: StepId, name: &ResourceName, observed: Option<&ObservedBucket>) {
    let policy = match cx.desired.buckets.get(name) {
        Some(spec) => spec.deletion_policy,
        None => observed.map_or(DeletionPolicy::Retain, |b| {
            DeletionPolicy::from_tags(&b.tags)
        }),
    };
    if policy != DeletionPolicy::Delete {
        cx.report(Problem::RetainedDeleted {
            step: cx.name(i),
            policy,
        });
    }
}
