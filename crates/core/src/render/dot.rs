//! The plan's step graph as Graphviz (`converge plan --format dot`): one
//! node per step, labelled as progress lines and errors name it
//! ([`Step::describe`]), and one edge per dependency, from the step that
//! runs first. Steps that remove something are drawn red, steps that add
//! something green, the rest (changes in place, waits) black.
//!
//! ```text
//! converge plan manifests/smallpayroll --format dot | dot -Tsvg > plan.svg
//! ```

use crate::plan::{Plan, Step};
use std::fmt::Write;

/// Renders a plan's steps and dependencies as a Graphviz digraph, ending
/// with a newline. Deterministic: nodes in step order, edges sorted.
pub fn dot(plan: &Plan) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = write_dot(&mut s, plan);
    s
}

fn write_dot(s: &mut String, plan: &Plan) -> std::fmt::Result {
    writeln!(s, "digraph plan {{")?;
    writeln!(
        s,
        "  label=\"{}\";",
        escape(&format!(
            "stack {} in {} at {}: {}",
            plan.stack,
            plan.region,
            plan.at,
            plan.summary()
        ))
    )?;
    writeln!(s, "  labelloc=t;")?;
    writeln!(s, "  rankdir=LR;")?;
    writeln!(s, "  node [shape=box, fontname=\"monospace\"];")?;
    for (id, step) in plan.graph.iter() {
        writeln!(
            s,
            "  s{id} [label=\"{id}: {}\", color={}];",
            escape(&step.describe()),
            color(step)
        )?;
    }
    for (before, after) in plan.graph.edges() {
        writeln!(s, "  s{before} -> s{after};")?;
    }
    writeln!(s, "}}")
}

/// Red for steps that remove, green for steps that add, black otherwise.
fn color(step: &Step) -> &'static str {
    let kind = step.kind();
    let removes = ["delete-", "terminate", "deregister", "revoke-", "disable-"];
    let adds = ["create-", "launch", "register", "authorize-", "snapshot"];
    if removes.iter().any(|p| kind.starts_with(p)) {
        "red"
    } else if adds.iter().any(|p| kind.starts_with(p)) {
        "darkgreen"
    } else {
        "black"
    }
}

/// A string as the inside of a Graphviz double-quoted string.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn quotes_backslashes_and_newlines_are_escaped() {
        assert_eq!(escape(r#"a "b" \c"#), r#"a \"b\" \\c"#);
        assert_eq!(escape("one\ntwo"), "one\\ntwo");
    }
}
