//! The plan as text for a terminal, read the way a Terraform plan is read:
//! a header, one block per resource that changes (its symbol, its fields
//! `before → after`, its instance changes and notes), and a summary line.
//!
//! ```text
//! Plan for stack smallpayroll (us-east-1)
//! Symbols: ~ update
//!
//!   ~ Fleet/app
//!       ~ Fleet/app: 2 → 3 instances
//!       + launch 1 in us-east-1a (scale)
//!       note: replicas 3 from schedule rule "0 8 * * 1-5"
//!
//! 9 unchanged resources not shown.
//! Plan: 0 to create, 1 to update, 0 to replace, 0 to delete.
//! ```
//!
//! Colour (ANSI escapes) only when [`TextOptions::color`] says so: the CLI
//! decides from the terminal and `NO_COLOR`. Values never carry escapes or
//! line breaks of their own into the output (they are escaped), so what a
//! reviewer reads is what the plan holds.

use super::diff::{self, Body, Line, Mark};
use crate::plan::{ChangeAction, Plan};
use std::fmt::Write as _;

/// How to render text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TextOptions {
    /// Whether to colour the output with ANSI escapes.
    pub color: bool,
    /// Whether the first line names the moment the plan is for (`plan
    /// --at`). Off by default, so that two plans of an unchanged stack are
    /// the same bytes (the JSON always carries the moment).
    pub at: bool,
}

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const CYAN: &str = "\x1b[36m";

/// Renders a plan as text. Deterministic: the same plan always gives the
/// same bytes.
pub fn text(plan: &Plan, opts: &TextOptions) -> String {
    let p = Paint(opts.color);
    let mut out = String::new();
    let mut head = format!(
        "Plan for stack {} ({})",
        diff::clean(plan.stack.as_str()),
        diff::clean(&plan.region),
    );
    if opts.at {
        let _ = write!(head, " at {}", plan.at);
    }
    let _ = writeln!(out, "{}", p.paint(BOLD, &head));
    if let Some(warning) = diff::partial_line(plan) {
        let _ = writeln!(out, "{}", p.paint(YELLOW, &format!("Warning: {warning}")));
    }
    let listed: Vec<_> = plan.changes.iter().filter(|c| diff::is_listed(c)).collect();
    if !listed.is_empty() {
        let _ = writeln!(out, "Symbols: {}", legend(&listed, p));
    }
    for c in &listed {
        out.push('\n');
        let mut head = format!(
            "{} {}",
            symbol(&c.action, p),
            p.paint(BOLD, &c.key.to_string())
        );
        if let Some(why) = diff::action_reason(&c.action) {
            let _ = write!(head, " ({why})");
        }
        let _ = writeln!(out, "{head}");
        for l in diff::lines(c) {
            let _ = writeln!(out, "{}", line(&l, p));
        }
    }
    out.push('\n');
    let s = plan.summary();
    let hidden = plan.changes.len() - listed.len();
    if plan.has_changes() || !plan.held.is_empty() {
        if hidden > 0 {
            let _ = writeln!(
                out,
                "{hidden} unchanged {} not shown.",
                plural(hidden, "resource")
            );
        }
        let _ = writeln!(out, "{}", p.paint(BOLD, &format!("Plan: {s}.")));
        if let Some(held) = super::diff::held_line(plan) {
            let _ = writeln!(out, "{held}");
        }
    } else if let Some(line) = super::diff::not_done_line(plan) {
        let _ = writeln!(out, "{}", p.paint(BOLD, &line));
    } else {
        let mut last = "No changes. The stack matches the manifests.".to_owned();
        if s.blocked > 0 {
            let _ = if s.blocked == 1 {
                write!(last, " 1 removed resource is kept by its deletion policy.")
            } else {
                write!(
                    last,
                    " {} removed resources are kept by their deletion policies.",
                    s.blocked
                )
            };
        }
        let _ = writeln!(out, "{}", p.paint(BOLD, &last));
    }
    out
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_owned()
    } else {
        format!("{word}s")
    }
}

/// The symbols used in this plan, with their meaning, in a fixed order.
fn legend(listed: &[&crate::plan::ResourceChange], p: Paint) -> String {
    let order = [
        (ChangeAction::Create, "create"),
        (ChangeAction::Update, "update"),
        (
            ChangeAction::Replace {
                because: Vec::new(),
            },
            "replace",
        ),
        (ChangeAction::Delete, "delete"),
        (
            ChangeAction::DeleteBlocked {
                policy: crate::desired::DeletionPolicy::Retain,
            },
            "kept",
        ),
        (ChangeAction::NoChange, "unchanged, with a note"),
    ];
    let same =
        |a: &ChangeAction, b: &ChangeAction| std::mem::discriminant(a) == std::mem::discriminant(b);
    order
        .iter()
        .filter(|(a, _)| listed.iter().any(|c| same(&c.action, a)))
        .map(|(a, word)| {
            let sym = symbol(a, p);
            format!("{} {word}", sym.trim_start())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// An action's symbol, right-aligned in three columns.
fn symbol(a: &ChangeAction, p: Paint) -> String {
    match a {
        ChangeAction::Create => format!("  {}", p.paint(GREEN, "+")),
        ChangeAction::Update => format!("  {}", p.paint(YELLOW, "~")),
        ChangeAction::Replace { .. } => {
            format!("{}/{}", p.paint(RED, "-"), p.paint(GREEN, "+"))
        }
        ChangeAction::Delete => format!("  {}", p.paint(RED, "-")),
        ChangeAction::DeleteBlocked { .. } => format!("  {}", p.paint(CYAN, "!")),
        ChangeAction::NoChange => format!("  {}", p.paint(CYAN, "=")),
    }
}

fn line(l: &Line, p: Paint) -> String {
    let indent = " ".repeat(6 + 4 * l.depth);
    let (code, mark) = match l.mark {
        Mark::Add => (GREEN, "+"),
        Mark::Remove => (RED, "-"),
        Mark::Change => (YELLOW, "~"),
        Mark::Context => ("", " "),
    };
    let text = match &l.body {
        Body::Field { field, value } => format!("{field}: {value}"),
        Body::FieldChange {
            field,
            before,
            after,
        } => format!("{field}: {before} → {after}"),
        Body::Scaling {
            fleet,
            before,
            after,
        } => diff::scaling(fleet, before.as_deref(), after.as_deref()),
        Body::Heading { field } => format!("{field}:"),
        Body::Item(t) => t.clone(),
        Body::Elided(t) => return format!("{indent}  {}", p.paint(CYAN, t)),
        Body::Note(n) => return format!("{indent}{} {n}", p.paint(CYAN, "note:")),
    };
    let marked = if code.is_empty() {
        format!("{indent}{mark} {text}")
    } else {
        format!("{indent}{} {text}", p.paint(code, mark))
    };
    marked.trim_end().to_owned()
}

/// ANSI colouring, or none.
#[derive(Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn paint(self, code: &str, s: &str) -> String {
        if self.0 && !code.is_empty() {
            format!("{code}{s}{RESET}")
        } else {
            s.to_owned()
        }
    }
}
