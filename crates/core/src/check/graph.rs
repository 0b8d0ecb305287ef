//! The graph itself: edges join existing steps and no step waits for
//! itself; step references name a step that exists, makes what is needed
//! and runs first.

use super::{Ctx, Link, Problem, step_name};
use crate::plan::Plan;

/// Problems with the edges, found before the graph is ordered.
pub(super) fn edges(plan: &Plan) -> Vec<Problem> {
    let n = plan.graph.len();
    let mut problems = Vec::new();
    for &(before, after) in plan.graph.edges() {
        if after >= n {
            problems.push(Problem::EdgeOutOfRange {
                before,
                after,
                steps: n,
            });
        } else if before >= n {
            problems.push(Problem::MissingStep {
                step: step_name(plan, after),
                refers_to: before,
                link: Link::Dependency,
            });
        } else if before == after {
            problems.push(Problem::SelfLoop {
                step: step_name(plan, after),
            });
        }
    }
    problems
}

/// Every step reference exists, names a step that makes what the
/// reference needs, and that step runs first.
pub(super) fn references(cx: &mut Ctx<'_>) {
    let plan = cx.plan;
    let graph = &plan.graph;
    for (i, s) in graph.iter() {
        for (r, wants) in s.step_refs() {
            let Some(target) = graph.step(r) else {
                cx.report(Problem::MissingStep {
                    step: cx.name(i),
                    refers_to: r,
                    link: Link::Reference(wants),
                });
                continue;
            };
            if !wants.is_made_by(target) {
                cx.report(Problem::WrongReference {
                    step: cx.name(i),
                    refers_to: cx.name(r),
                    wants,
                });
            }
            if !cx.order.before(r, i) {
                cx.report(Problem::ReferenceNotBefore {
                    step: cx.name(i),
                    refers_to: cx.name(r),
                });
            }
        }
    }
}
