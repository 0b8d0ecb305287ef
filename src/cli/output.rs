//! What the CLI prints while and after it applies.

use converge::apply::{Report, StepError, StepResult};
use converge::core::plan::StepId;
use std::time::Duration;

/// Progress lines on stderr.
pub struct Progress;

impl Progress {
    pub fn new() -> Self {
        Self
    }
}

impl converge::apply::Progress for Progress {
    fn started(&self, _step: StepId, what: &str) {
        eprintln!("  … {what}");
    }

    fn done(&self, _step: StepId, what: &str, elapsed: Duration) {
        eprintln!("  ✓ {what} [{:.1}s]", elapsed.as_secs_f64());
    }

    fn failed(&self, _step: StepId, what: &str, err: &StepError) {
        eprintln!("  ✗ {what}: {err}");
    }

    fn waiting(&self, _step: StepId, what: &str, elapsed: Duration) {
        eprintln!("  … still waiting: {what} ({}s)", elapsed.as_secs());
    }
}

/// The summary after an apply: counts, then every failure and skip.
pub fn print_report(report: &Report) {
    println!(
        "\nApply: {} done, {} failed, {} skipped.",
        report.done(),
        report.failed(),
        report.skipped()
    );
    for (what, result) in report.steps.values() {
        match result {
            StepResult::Done => {}
            StepResult::Failed(e) => println!("  failed: {what}: {e}"),
            StepResult::Skipped { because: Some(s) } => {
                let cause = report
                    .steps
                    .get(s)
                    .map(|(w, _)| w.as_str())
                    .unwrap_or("an earlier step");
                println!("  skipped: {what} (because {cause} failed)");
            }
            StepResult::Skipped { because: None } => {
                println!("  skipped: {what} (interrupted)")
            }
        }
    }
}
