//! The plan as JSON for machines: a documented, versioned shape (see
//! `docs/plan-json.md`). It is the [`Plan`] itself with three keys added for
//! convenience, `has_changes`, `has_blocked_changes` and `summary`, and each step wrapped with its
//! `id` and a human `label` (the step itself under `op`, so that its own
//! fields can never collide with the wrapper's):
//!
//! ```json
//! {
//!   "format_version": 2,
//!   "stack": "smallpayroll",
//!   "region": "us-east-1",
//!   "at": "2026-03-09T12:00:00Z",
//!   "has_changes": true,
//!   "has_blocked_changes": false,
//!   "summary": { "create": 0, "update": 1, "replace": 0, "delete": 0, "blocked": 0, "unchanged": 10, "not_done": 0 },
//!   "changes": [ … ],
//!   "steps": [ { "id": 0, "label": "launch 1 Fleet/app instance(s) in us-east-1a", "op": { "step": "launch", … } } ],
//!   "edges": [ [0, 1] ]
//! }
//! ```
//!
//! `format_version` is [`PLAN_FORMAT_VERSION`]: it changes only when a key
//! is removed, renamed or changes meaning or type; new keys and new
//! variants may appear within a version. Values from the environment are
//! never serialized (the `Secret` type has no serialized form).

use crate::ids::{ResourceKey, ResourceName};
use crate::plan::{PLAN_FORMAT_VERSION, Plan, ResourceChange, Step, StepId, Summary};
use jiff::Timestamp;
use serde::Serialize;

/// The document `render::json` writes.
#[derive(Serialize)]
struct Document<'a> {
    format_version: u32,
    stack: &'a ResourceName,
    region: &'a str,
    at: Timestamp,
    has_changes: bool,
    has_blocked_changes: bool,
    /// A partial plan's targets (`--target`); absent from a whole plan.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    targets: &'a [ResourceKey],
    summary: Summary,
    changes: &'a [ResourceChange],
    steps: Vec<NumberedStep<'a>>,
    edges: &'a [(StepId, StepId)],
}

/// A step with its index and a one-line label.
#[derive(Serialize)]
struct NumberedStep<'a> {
    id: StepId,
    label: String,
    op: &'a Step,
}

/// Renders a plan as pretty-printed JSON, ending with a newline.
/// Deterministic: the same plan always gives the same bytes.
pub fn json(plan: &Plan) -> String {
    // The document is written with the version this renderer knows: the
    // shape is that of the types compiled in, whatever a plan read from a
    // file may say.
    let doc = Document {
        format_version: PLAN_FORMAT_VERSION,
        stack: &plan.stack,
        region: &plan.region,
        at: plan.at,
        has_changes: plan.has_changes(),
        has_blocked_changes: plan.has_blocked_changes(),
        targets: &plan.targets,
        summary: plan.summary(),
        changes: &plan.changes,
        steps: plan
            .graph
            .iter()
            .map(|(id, op)| NumberedStep {
                id,
                label: op.describe(),
                op,
            })
            .collect(),
        edges: plan.graph.edges(),
    };
    // Serializing these types cannot fail (string map keys, no floats, no
    // fallible `Serialize` impls); should it ever, say so in JSON rather
    // than panic.
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_else(|e| {
        serde_json::json!({ "format_version": PLAN_FORMAT_VERSION, "error": e.to_string() })
            .to_string()
    });
    s.push('\n');
    s
}
