//! Idempotency tokens: the cloud takes a second request with a token it
//! has seen for a retry of the first, so two launches, two volume creates
//! or two distribution creates (caller reference) in one plan never share
//! one. Tokens of different kinds of step go to different calls and may
//! coincide.

use super::{Ctx, Problem};
use crate::plan::{Step, StepId};
use std::collections::BTreeMap;

pub(super) fn check(cx: &mut Ctx<'_>) {
    // By the kind of step, then the token: the steps that carry it.
    let mut seen: BTreeMap<(&str, &str), Vec<StepId>> = BTreeMap::new();
    for (i, s) in cx.plan.graph.iter() {
        let token = match s {
            Step::Launch { token, .. } | Step::CreateVolume { token, .. } => token,
            Step::CreateDistribution {
                caller_reference, ..
            } => caller_reference,
            _ => continue,
        };
        seen.entry((s.kind(), token)).or_default().push(i);
    }
    for ((_, token), steps) in seen {
        if steps.len() > 1 {
            cx.report(Problem::DuplicateToken {
                token: token.to_owned(),
                steps: steps.iter().map(|&i| cx.name(i)).collect(),
            });
        }
    }
}
