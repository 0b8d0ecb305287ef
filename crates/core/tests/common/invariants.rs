//! The plan checker as the tests use it: every plan a test makes goes
//! through [`assert_ok`], a thin wrapper over the library's
//! [`converge_core::check`] (the one checker; `tests/checker.rs` breaks
//! plans on purpose to prove it catches what it claims to).

use converge_core::plan::{Plan, PlanInput};

/// Panics with every broken invariant, the plan's steps and edges.
pub fn assert_ok(plan: &Plan, input: &PlanInput<'_>) {
    let problems = converge_core::check(plan, input);
    if !problems.is_empty() {
        let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let steps: Vec<String> = plan
            .graph
            .iter()
            .map(|(i, s)| format!("  {i}: {}", s.describe()))
            .collect();
        panic!(
            "the plan breaks {} invariant(s):\n- {}\nsteps:\n{}\nedges: {:?}",
            problems.len(),
            problems.join("\n- "),
            steps.join("\n"),
            plan.graph.edges()
        );
    }
}
