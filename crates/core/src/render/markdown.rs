//! The plan as Markdown, fit for a pull-request comment: a heading, the
//! summary line and a table of counts, then a section per resource that
//! changes with its field changes in a ```` ```diff ```` block (so GitHub
//! colours additions and removals), long line diffs such as user data
//! folded into `<details>`, and notes as a list. No ANSI escapes.
//!
//! Values only ever appear inside fenced blocks, whose fence is made longer
//! than any run of backticks in the content, so a value cannot end the
//! block early and inject Markdown of its own.

use super::diff::{self, Body, Line, Mark};
use crate::plan::{ChangeAction, Plan, ResourceChange};
use std::fmt::Write as _;

/// Item lines under one field beyond which they are folded into
/// `<details>`.
const FOLD_AFTER: usize = 12;

/// How to render Markdown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MarkdownOptions {
    /// Whether the region line names the moment the plan is for (`plan
    /// --at`). Off by default, so that a pull-request bot sees the same
    /// bytes for an unchanged stack.
    pub at: bool,
}

/// Renders a plan as Markdown without its moment
/// ([`MarkdownOptions::default`]). Deterministic: the same plan always
/// gives the same bytes.
pub fn markdown(plan: &Plan) -> String {
    markdown_with(plan, &MarkdownOptions::default())
}

/// Renders a plan as Markdown. Deterministic: the same plan and options
/// always give the same bytes.
pub fn markdown_with(plan: &Plan, opts: &MarkdownOptions) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## converge plan: {}", code(plan.stack.as_str()));
    out.push('\n');
    if opts.at {
        let _ = writeln!(
            out,
            "Region {}, planned for {}.",
            code(&plan.region),
            code(&plan.at.to_string())
        );
    } else {
        let _ = writeln!(out, "Region {}.", code(&plan.region));
    }
    out.push('\n');
    if let Some(warning) = super::diff::partial_line(plan) {
        let _ = writeln!(out, "> **Warning:** {warning}\n");
    }
    let s = plan.summary();
    if plan.has_changes() || !plan.held.is_empty() {
        let _ = writeln!(out, "**Plan: {s}.**");
        if let Some(held) = super::diff::held_line(plan) {
            let _ = writeln!(out, "\n{held}");
        }
    } else if let Some(line) = super::diff::not_done_line(plan) {
        let _ = writeln!(out, "**{line}**");
    } else {
        let _ = writeln!(out, "**No changes.** The stack matches the manifests.");
    }
    if plan.has_changes() || s.blocked > 0 || s.not_done > 0 {
        out.push('\n');
        out.push_str(
            "| to create | to update | to replace | to delete | kept | unchanged | changes not made |\n",
        );
        out.push_str("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            s.create, s.update, s.replace, s.delete, s.blocked, s.unchanged, s.not_done
        );
    }
    for c in plan.changes.iter().filter(|c| diff::is_listed(c)) {
        out.push('\n');
        resource(c, &mut out);
    }
    out
}

fn resource(c: &ResourceChange, out: &mut String) {
    let symbol = match c.action {
        ChangeAction::NoChange => "=",
        _ => c.action.symbol(),
    };
    let mut what = diff::action_word(&c.action).to_owned();
    if let Some(why) = diff::action_reason(&c.action) {
        let _ = write!(what, ", {why}");
    }
    let _ = writeln!(
        out,
        "### {} {} ({})",
        code(symbol),
        escape(&c.key.to_string()),
        escape(&what)
    );

    // Fields with many item lines (user data, long lists) are folded.
    let lines = diff::lines(c);
    let mut main: Vec<&Line> = Vec::new();
    let mut folded: Vec<(String, Vec<&Line>)> = Vec::new();
    let mut notes: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = &lines[i];
        if let Body::Note(n) = &l.body {
            notes.push(n);
            i += 1;
            continue;
        }
        let end = lines[i + 1..]
            .iter()
            .position(|x| x.depth == 0)
            .map_or(lines.len(), |p| i + 1 + p);
        let block: Vec<&Line> = lines[i..end].iter().collect();
        match &l.body {
            Body::Heading { field } if block.len() - 1 > FOLD_AFTER => {
                folded.push((field.clone(), block));
            }
            _ => main.extend(block),
        }
        i = end;
    }
    if !main.is_empty() {
        out.push('\n');
        diff_block(&main, out);
    }
    for (field, block) in folded {
        let changed = block
            .iter()
            .filter(|l| matches!(l.mark, Mark::Add | Mark::Remove))
            .count();
        out.push('\n');
        let _ = writeln!(
            out,
            "<details><summary><code>{}</code>: {changed} {} added or removed</summary>",
            html(&field),
            if changed == 1 { "line" } else { "lines" }
        );
        out.push('\n');
        diff_block(&block, out);
        out.push('\n');
        out.push_str("</details>\n");
    }
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            let _ = writeln!(out, "- {}", escape(n));
        }
    }
}

/// A fenced `diff` block: `+` and `-` lines as such, a change in place as
/// a `-` line and a `+` line, anything else as context.
fn diff_block(lines: &[&Line], out: &mut String) {
    let mut body = String::new();
    for l in lines {
        let indent = "  ".repeat(l.depth);
        let mark = match l.mark {
            Mark::Add => '+',
            Mark::Remove => '-',
            Mark::Change => '!',
            Mark::Context => ' ',
        };
        match &l.body {
            Body::FieldChange {
                field,
                before,
                after,
            } => {
                let _ = writeln!(body, "- {indent}{field}: {before}");
                let _ = writeln!(body, "+ {indent}{field}: {after}");
            }
            Body::Field { field, value } => {
                let _ = writeln!(body, "{mark} {indent}{field}: {value}");
            }
            Body::Scaling {
                fleet,
                before,
                after,
            } => {
                let text = diff::scaling(fleet, before.as_deref(), after.as_deref());
                let _ = writeln!(body, "{mark} {indent}{text}");
            }
            Body::Heading { field } => {
                // A heading only introduces its items; it is context unless
                // the whole field appears or goes.
                let mark = match l.mark {
                    Mark::Add => '+',
                    Mark::Remove => '-',
                    Mark::Change | Mark::Context => ' ',
                };
                let _ = writeln!(body, "{mark} {indent}{field}:");
            }
            Body::Item(t) | Body::Elided(t) | Body::Note(t) => {
                let _ = writeln!(body, "{mark} {indent}{t}");
            }
        }
    }
    let fence = fence_for(&body);
    let _ = writeln!(out, "{fence}diff");
    for line in body.lines() {
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let _ = writeln!(out, "{fence}");
}

/// A backtick fence longer than any run of backticks in `body`.
fn fence_for(body: &str) -> String {
    let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat((longest + 1).max(3))
}

/// Inline code, with a delimiter longer than any backtick run inside.
fn code(s: &str) -> String {
    let s = diff::clean(s);
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let tick = "`".repeat(longest + 1);
    if longest > 0 {
        format!("{tick} {s} {tick}")
    } else {
        format!("{tick}{s}{tick}")
    }
}

/// Escapes text for Markdown prose (headings, list items).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in diff::clean(s).chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '#' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for HTML.
fn html(s: &str) -> String {
    diff::clean(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_outgrow_the_content() {
        assert_eq!(fence_for("a"), "```");
        assert_eq!(fence_for("x ```` y"), "`````");
        assert_eq!(code("a`b"), "`` a`b ``");
        assert_eq!(code("app"), "`app`");
    }

    #[test]
    fn prose_is_escaped() {
        assert_eq!(escape("a_b <c> *d*"), "a\\_b &lt;c&gt; \\*d\\*");
    }
}
