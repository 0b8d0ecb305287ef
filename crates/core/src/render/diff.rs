//! What the text and Markdown renderers share: a resource change turned
//! into marked lines (added, removed, changed, context), so that the two
//! only differ in how they draw a line. Nothing here decides *what*
//! changed; the planner did that. This only decides how a typed diff reads.

use crate::ids::Kind;
use crate::plan::{
    ChangeAction, FieldDiff, InstanceChange, LaunchReason, Note, Plan, ResourceChange, Value,
};
use similar::{ChangeTag, TextDiff};
use std::collections::BTreeSet;

/// How a line is marked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mark {
    /// Something appears (`+`).
    Add,
    /// Something goes (`-`).
    Remove,
    /// Something changes in place (`~`).
    Change,
    /// Unchanged context, a heading for the lines under it, or a note.
    Context,
}

/// What a line is, beyond its mark; the renderers draw these differently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    /// A field with one value (`spec.image: ami-1`).
    Field {
        /// The field's path.
        field: String,
        /// Its value, shown on one line.
        value: String,
    },
    /// A field changed from one value to another.
    FieldChange {
        /// The field's path.
        field: String,
        /// The value before.
        before: String,
        /// The value after.
        after: String,
    },
    /// A fleet's instance count: `Fleet/app: 2 → 3 instances`; `before`
    /// is `None` when the fleet is new, `after` when it goes.
    Scaling {
        /// The fleet (`Fleet/app`).
        fleet: String,
        /// The count before.
        before: Option<String>,
        /// The count after.
        after: Option<String>,
    },
    /// A field whose items or lines follow, one level deeper.
    Heading {
        /// The field's path.
        field: String,
    },
    /// An item of a list, a line of a multi-line value, or an instance
    /// change.
    Item(String),
    /// Unchanged lines or items left out (`(3 unchanged)`), or the gap
    /// between two hunks of a line diff.
    Elided(String),
    /// A note: why something waits, is held back, or is shaped as it is.
    Note(String),
}

/// One line of a resource's block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Line {
    /// Its mark.
    pub mark: Mark,
    /// Nesting below the resource: 0 for fields, 1 for their items.
    pub depth: usize,
    /// What it says.
    pub body: Body,
}

/// Lines of unchanged context kept around each change in a line diff.
const CONTEXT_LINES: usize = 3;

/// Whether a resource appears in a rendered plan: everything that changes
/// or is held back, and unchanged resources only when a note needs a
/// reader's attention (a change converge will not make).
pub(crate) fn is_listed(c: &ResourceChange) -> bool {
    match c.action {
        ChangeAction::NoChange => c.notes.iter().any(needs_attention),
        _ => true,
    }
}

/// Notes worth listing an otherwise unchanged resource for. Schedule and
/// autoscale notes only explain a count, which is not news when it holds.
fn needs_attention(n: &Note) -> bool {
    match n {
        Note::Unsupported { .. }
        | Note::Waiting { .. }
        | Note::IgnoredAfterCreate { .. }
        | Note::Blocked { .. }
        | Note::ModificationHeld { .. }
        | Note::CutoverWaits { .. } => true,
        Note::Scheduled { .. }
        | Note::Autoscaled { .. }
        | Note::Rolling { .. }
        | Note::VolumeMoves { .. }
        | Note::AddressHandOver { .. }
        | Note::Drains { .. }
        | Note::HealthGate { .. }
        | Note::DisableBeforeDelete
        | Note::FinalSnapshot
        | Note::SnapshotDue
        | Note::SnapshotPruned { .. }
        | Note::ImagePublished { .. }
        | Note::Adopt
        | Note::Cutover { .. }
        | Note::CutoverStamp { .. } => false,
        Note::BackingOff { .. } => true,
    }
}

/// The line saying what the reconcile loop holds back this pass, if
/// anything: how many steps, and which work backs off.
pub(crate) fn held_line(plan: &Plan) -> Option<String> {
    if plan.held.is_empty() {
        return None;
    }
    let causes: BTreeSet<String> = plan.held.iter().map(|h| h.because.to_string()).collect();
    let n = plan.held.len();
    let (steps, verb) = (
        if n == 1 { "step" } else { "steps" },
        if causes.len() == 1 { "backs" } else { "back" },
    );
    let causes: Vec<String> = causes.into_iter().collect();
    Some(format!(
        "{n} {steps} held back this pass: {} {verb} off.",
        causes.join(", ")
    ))
}

/// What a plan without steps says when the manifests still declare
/// changes it does not make (blocked, or held back until the cloud
/// allows them): the stack does not match its manifests, and the plan
/// must not say it does.
pub(crate) fn not_done_line(plan: &Plan) -> Option<String> {
    let n = plan.summary().not_done;
    (n > 0).then(|| {
        let (resources, its) = if n == 1 {
            ("resource has", "its")
        } else {
            ("resources have", "their")
        };
        format!(
            "No changes can be made. The stack differs from the manifests: {n} {resources} declared changes that converge does not make; see {its} notes."
        )
    })
}

/// The word for an action, for headings (`create`, `replace`).
pub(crate) fn action_word(a: &ChangeAction) -> &'static str {
    match a {
        ChangeAction::NoChange => "no change",
        ChangeAction::Create => "create",
        ChangeAction::Update => "update",
        ChangeAction::Replace { .. } => "replace",
        ChangeAction::Delete => "delete",
        ChangeAction::DeleteBlocked { .. } => "delete blocked",
    }
}

/// What follows the resource in its heading: why it is replaced, or what
/// keeps it.
pub(crate) fn action_reason(a: &ChangeAction) -> Option<String> {
    match a {
        // No field forces it: `--replace` asked for it.
        ChangeAction::Replace { because } if because.is_empty() => {
            Some("replace requested".to_owned())
        }
        ChangeAction::Replace { because } => Some(format!("because {} changed", and_list(because))),
        ChangeAction::DeleteBlocked { policy } => {
            Some(format!("kept: deletionPolicy {}", policy.as_str()))
        }
        ChangeAction::NoChange
        | ChangeAction::Create
        | ChangeAction::Update
        | ChangeAction::Delete => None,
    }
}

/// A fleet's count as read in plans: `Fleet/app: 2 → 3 instances`,
/// `Fleet/db: 1 instance`.
pub(crate) fn scaling(fleet: &str, before: Option<&str>, after: Option<&str>) -> String {
    let unit = |n: &str| if n == "1" { "instance" } else { "instances" };
    match (before, after) {
        (Some(b), Some(a)) => format!("{fleet}: {b} → {a} {}", unit(a)),
        (None, Some(n)) | (Some(n), None) => format!("{fleet}: {n} {}", unit(n)),
        (None, None) => format!("{fleet}:"),
    }
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The lines of one resource's block: its fields, its instance changes
/// and its notes, in that order.
pub(crate) fn lines(c: &ResourceChange) -> Vec<Line> {
    let mut out = Vec::new();
    for f in &c.fields {
        field_lines(c, f, &mut out);
    }
    for i in &c.instances {
        let (mark, text) = instance_line(i);
        out.push(Line {
            mark,
            depth: 0,
            body: Body::Item(text),
        });
    }
    for n in &c.notes {
        out.push(Line {
            mark: Mark::Context,
            depth: 0,
            body: Body::Note(clean(&n.to_string())),
        });
    }
    out
}

fn instance_line(i: &InstanceChange) -> (Mark, String) {
    match i {
        InstanceChange::Launch {
            zone,
            count,
            reason,
            addresses,
        } => {
            let why = match reason {
                LaunchReason::Scale => "scale",
                LaunchReason::Replace => "replace",
            };
            let at = match addresses.as_slice() {
                [] => String::new(),
                a => format!(
                    " at {}",
                    a.iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            (Mark::Add, format!("launch {count} in {zone}{at} ({why})"))
        }
        InstanceChange::Terminate {
            instance,
            zone,
            reason,
        } => (
            Mark::Remove,
            format!("terminate {instance} in {zone} ({})", reason.as_str()),
        ),
        InstanceChange::SetGroups { instance } => {
            (Mark::Change, format!("set security groups of {instance}"))
        }
        InstanceChange::SetTags { instance } => (Mark::Change, format!("set tags of {instance}")),
        InstanceChange::SetMetadataOptions { instance } => {
            (Mark::Change, format!("set metadata options of {instance}"))
        }
        InstanceChange::AssociateProfile { instance } => (
            Mark::Change,
            format!("associate the instance profile with {instance}"),
        ),
        InstanceChange::ReplaceProfile { instance } => (
            Mark::Change,
            format!("replace the instance profile of {instance}"),
        ),
        InstanceChange::DisassociateProfile { instance } => (
            Mark::Change,
            format!("disassociate the instance profile of {instance}"),
        ),
    }
}

fn field_lines(c: &ResourceChange, f: &FieldDiff, out: &mut Vec<Line>) {
    let field = f.field.clone();
    let line = |mark, body| Line {
        mark,
        depth: 0,
        body,
    };
    // A fleet's count reads as scaling: `Fleet/app: 2 → 3 instances`.
    if c.key.kind == Kind::Fleet && f.field == "replicas" {
        let mark = match (&f.before, &f.after) {
            (None, None) => return,
            (None, Some(_)) => Mark::Add,
            (Some(_), None) => Mark::Remove,
            (Some(_), Some(_)) => Mark::Change,
        };
        out.push(line(
            mark,
            Body::Scaling {
                fleet: c.key.to_string(),
                before: f.before.as_ref().map(scalar),
                after: f.after.as_ref().map(scalar),
            },
        ));
        return;
    }
    // A fleet's field that changes says how: on the running instances, or
    // by new ones.
    let how = match (c.key.kind, &f.before, &f.after) {
        (Kind::Fleet, Some(_), Some(_)) if f.forces_replacement => Some("new instances"),
        (Kind::Fleet, Some(_), Some(_)) => Some("in place"),
        _ => None,
    };
    let heading = |field: String| match how {
        Some(h) => format!("{field} ({h})"),
        None => field,
    };
    match (&f.before, &f.after) {
        (None, None) => {}
        (Some(Value::List(b)), Some(Value::List(a))) => {
            let field = heading(field);
            out.push(line(Mark::Change, Body::Heading { field }));
            list_diff(b, a, out);
        }
        (Some(Value::Multiline(b)), Some(Value::Multiline(a))) => {
            let field = heading(field);
            out.push(line(Mark::Change, Body::Heading { field }));
            line_diff(b, a, out);
        }
        (None, Some(v)) => whole(Mark::Add, field, v, out),
        (Some(v), None) => whole(Mark::Remove, field, v, out),
        (Some(b), Some(a)) => out.push(line(
            Mark::Change,
            Body::FieldChange {
                field,
                before: scalar(b),
                after: match how {
                    Some(h) => format!("{} ({h})", scalar(a)),
                    None => scalar(a),
                },
            },
        )),
    }
}

/// A field that appears or goes as a whole: lists and multi-line values
/// get one line per item.
fn whole(mark: Mark, field: String, v: &Value, out: &mut Vec<Line>) {
    let items: Vec<String> = match v {
        Value::List(items) if !items.is_empty() => items.iter().map(|i| clean(i)).collect(),
        Value::Multiline(t) if t.lines().count() > 1 => t.lines().map(clean).collect(),
        _ => {
            out.push(Line {
                mark,
                depth: 0,
                body: Body::Field {
                    field,
                    value: scalar(v),
                },
            });
            return;
        }
    };
    out.push(Line {
        mark,
        depth: 0,
        body: Body::Heading { field },
    });
    out.extend(items.into_iter().map(|text| Line {
        mark,
        depth: 1,
        body: Body::Item(text),
    }));
}

/// A value on one line. Control characters are escaped so that a value can
/// never add lines of its own or colour the terminal: what a reviewer
/// sees is what the plan holds.
pub(crate) fn scalar(v: &Value) -> String {
    match v {
        Value::Text(t) => clean(t),
        Value::Multiline(t) => match t.lines().count() {
            0 | 1 => clean(t.trim_end_matches('\n')),
            n => format!("({n} lines)"),
        },
        Value::List(items) if items.is_empty() => "(none)".to_owned(),
        Value::List(items) => items
            .iter()
            .map(|i| clean(i))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Sensitive => "(sensitive)".to_owned(),
        Value::Unknown => "(known after apply)".to_owned(),
    }
}

/// Escapes control characters (newlines, escape sequences) in a value.
pub(crate) fn clean(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().collect()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Items removed and added, merged in sorted order (a removed item before
/// an added one that sorts the same), then a count of those that stay.
/// Lists are compared as multisets: order inside a list is not a change.
fn list_diff(before: &[String], after: &[String], out: &mut Vec<Line>) {
    let mut b: Vec<&str> = before.iter().map(String::as_str).collect();
    let mut a: Vec<&str> = after.iter().map(String::as_str).collect();
    b.sort_unstable();
    a.sort_unstable();
    let (mut i, mut j, mut same) = (0, 0, 0);
    let mut push = |mark, s: &str| {
        out.push(Line {
            mark,
            depth: 1,
            body: Body::Item(clean(s)),
        })
    };
    while i < b.len() || j < a.len() {
        match (b.get(i), a.get(j)) {
            (Some(x), Some(y)) if x == y => {
                same += 1;
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x < y => {
                push(Mark::Remove, x);
                i += 1;
            }
            (Some(x), None) => {
                push(Mark::Remove, x);
                i += 1;
            }
            (_, Some(y)) => {
                push(Mark::Add, y);
                j += 1;
            }
            (None, None) => break,
        }
    }
    if same > 0 {
        out.push(Line {
            mark: Mark::Context,
            depth: 1,
            body: Body::Elided(format!("({same} unchanged)")),
        });
    }
}

/// A line diff of two multi-line values with a few lines of context
/// around each change; hunks are separated by an elision line.
fn line_diff(before: &str, after: &str, out: &mut Vec<Line>) {
    let diff = TextDiff::from_lines(before, after);
    for (n, group) in diff.grouped_ops(CONTEXT_LINES).iter().enumerate() {
        if n > 0 {
            out.push(Line {
                mark: Mark::Context,
                depth: 1,
                body: Body::Elided("…".to_owned()),
            });
        }
        for op in group {
            for change in diff.iter_changes(op) {
                let mark = match change.tag() {
                    ChangeTag::Equal => Mark::Context,
                    ChangeTag::Delete => Mark::Remove,
                    ChangeTag::Insert => Mark::Add,
                };
                let text = change.value();
                out.push(Line {
                    mark,
                    depth: 1,
                    body: Body::Item(clean(text.strip_suffix('\n').unwrap_or(text))),
                });
            }
        }
    }
}

/// The warning a partial plan (`--target`) starts with.
pub(crate) fn partial_line(plan: &crate::plan::Plan) -> Option<String> {
    if plan.targets.is_empty() {
        return None;
    }
    let names: Vec<String> = plan.targets.iter().map(|k| clean(&k.to_string())).collect();
    Some(format!(
        "Partial plan (--target {}): only these and what they depend on; other changes wait for a full plan.",
        names.join(", --target ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(lines: &[Line]) -> Vec<(Mark, String)> {
        lines
            .iter()
            .map(|l| match &l.body {
                Body::Item(t) | Body::Elided(t) => (l.mark, t.clone()),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn lists_diff_as_sorted_multisets() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let mut out = Vec::new();
        list_diff(&s(&["b", "a", "c"]), &s(&["d", "a", "b"]), &mut out);
        assert_eq!(
            items(&out),
            vec![
                (Mark::Remove, "c".into()),
                (Mark::Add, "d".into()),
                (Mark::Context, "(2 unchanged)".into()),
            ]
        );
    }

    #[test]
    fn line_diffs_keep_context_and_elide_the_rest() {
        let before: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        let after = before
            .replace("line 2\n", "line two\n")
            .replace("line 19\n", "");
        let mut out = Vec::new();
        line_diff(&before, &after, &mut out);
        let got = items(&out);
        assert_eq!(got[0], (Mark::Context, "line 1".into()));
        assert_eq!(got[1], (Mark::Remove, "line 2".into()));
        assert_eq!(got[2], (Mark::Add, "line two".into()));
        assert!(got.contains(&(Mark::Context, "…".into())));
        assert!(got.contains(&(Mark::Remove, "line 19".into())));
        assert!(!got.iter().any(|(_, t)| t == "line 10"));
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(clean("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
        assert_eq!(scalar(&Value::Text("x\ty".into())), "x\\ty");
        assert_eq!(scalar(&Value::Multiline("a\nb\nc".into())), "(3 lines)");
    }
}
