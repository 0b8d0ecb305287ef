//! Route 53: a record converge writes always carries its ownership mark in
//! the same batch; a record set that exists is touched only when it is
//! the stack's (its mark says so) or adopted; a value change of a record
//! that resolvers may hold for longer than the cutover TTL waits for the
//! cutover (the old TTL passed since lowering); a zone goes only after the
//! plan's deletions of its records (a certificate's validation records
//! included), and only if its policy allows it.

use super::{Ctx, Problem, listed, push};
use crate::desired::DeletionPolicy;
use crate::ids::ResourceName;
use crate::plan::{PlannedRecordChange, Ref, Step, StepId, UserDataPart};
use crate::route53::{ChangeAction, Mark, ObservedZone, RecordType, Stage};
use jiff::SignedDuration;
use std::collections::BTreeMap;

pub(super) fn check(cx: &mut Ctx<'_>) {
    let plan = cx.plan;
    // The steps deleting record sets, by zone ID.
    let mut deletes: BTreeMap<&str, Vec<StepId>> = BTreeMap::new();
    for (i, s) in plan.graph.iter() {
        let Step::ChangeRecords {
            name,
            zone,
            changes,
            ..
        } = s
        else {
            continue;
        };
        let observed = match zone {
            Ref::Known(id) => {
                if changes.iter().any(|c| c.action == ChangeAction::Delete) {
                    push(&mut deletes, id.as_str(), i);
                }
                cx.observed.dns_zones.iter().find(|z| z.id == *id)
            }
            Ref::Created(_) => None,
        };
        marked(cx, i, name, changes);
        if let Some(z) = observed {
            owned(cx, i, name, z, changes);
            staged(cx, i, name, z, changes);
        }
    }
    // A certificate's validation records go before their zone too.
    for (i, s) in plan.graph.iter() {
        if let Step::DeleteValidationRecords { zone, .. } = s {
            push(&mut deletes, zone.as_str(), i);
        }
    }
    for (i, s) in plan.graph.iter() {
        let Step::DeleteZone { name, id } = s else {
            continue;
        };
        let policy = match cx.desired.dns_zones.get(name) {
            Some(spec) => spec.deletion_policy,
            None => cx
                .observed
                .dns_zones
                .iter()
                .find(|z| z.id == *id)
                .map_or(DeletionPolicy::Retain, |z| {
                    DeletionPolicy::from_tags(&z.tags)
                }),
        };
        if policy != DeletionPolicy::Delete {
            cx.report(Problem::RetainedDeleted {
                step: cx.name(i),
                policy,
            });
        }
        let before = listed(&deletes, &id.as_str());
        if let Some(&d) = before.iter().find(|&&d| !cx.order.before(d, i)) {
            cx.report(Problem::ZoneDeletedBeforeRecords {
                step: cx.name(i),
                records: cx.name(d),
            });
        }
    }
}

/// Whether a change is of an ownership mark.
fn is_mark(c: &PlannedRecordChange) -> bool {
    c.rtype == RecordType::Txt && c.name.starts_with("_converge-")
}

/// The mark a change writes, when its value is known.
fn written_mark(c: &PlannedRecordChange) -> Option<Mark> {
    match c.values.first()?.as_slice() {
        [UserDataPart::Text(t)] => Mark::parse(t),
        _ => None,
    }
}

/// Every set a batch creates or upserts has its mark, naming this stack
/// and record, upserted in the same batch.
fn marked(cx: &mut Ctx<'_>, i: StepId, record: &ResourceName, changes: &[PlannedRecordChange]) {
    for c in changes
        .iter()
        .filter(|c| c.action != ChangeAction::Delete && !is_mark(c))
    {
        let mark_name = Mark::name_for(&c.name, c.rtype);
        let ok = changes.iter().any(|m| {
            m.action != ChangeAction::Delete
                && m.name == mark_name
                && written_mark(m)
                    .is_some_and(|w| w.stack == cx.desired.stack && w.record == *record)
        });
        if !ok {
            cx.report(Problem::RecordWithoutMark {
                step: cx.name(i),
                set: format!("{} {}", c.name, c.rtype),
            });
        }
    }
}

/// A set that exists is changed only if this stack's record owns it (its
/// mark), or the record is declared with `adopt: true` and no other stack
/// owns it.
fn owned(
    cx: &mut Ctx<'_>,
    i: StepId,
    record: &ResourceName,
    z: &ObservedZone,
    changes: &[PlannedRecordChange],
) {
    let adopt = cx.desired.dns_records.get(record).is_some_and(|r| r.adopt);
    for c in changes.iter().filter(|c| !is_mark(c)) {
        if z.record(&c.name, c.rtype).is_none() {
            continue;
        }
        let ok = match Mark::of(z, &c.name, c.rtype) {
            Some(m) => m.stack == cx.desired.stack && m.record == *record,
            None => adopt,
        };
        if !ok {
            cx.report(Problem::UnownedRecordChanged {
                step: cx.name(i),
                set: format!("{} {}", c.name, c.rtype),
            });
        }
    }
}

/// A set whose value changes, while resolvers may hold its old value for
/// longer than the record's cutover TTL, is switched only once the TTL was
/// lowered and the old TTL has passed since.
fn staged(
    cx: &mut Ctx<'_>,
    i: StepId,
    record: &ResourceName,
    z: &ObservedZone,
    changes: &[PlannedRecordChange],
) {
    let Some(spec) = cx.desired.dns_records.get(record) else {
        return;
    };
    for c in changes
        .iter()
        .filter(|c| c.action != ChangeAction::Delete && !is_mark(c))
    {
        let Some(cur) = z.record(&c.name, c.rtype) else {
            continue;
        };
        let Some(values) = known_values(c) else {
            continue;
        };
        if c.alias.is_none() && values == cur.values {
            continue;
        }
        let mark = Mark::of(z, &c.name, c.rtype);
        let early = match mark.as_ref().and_then(|m| m.stage) {
            // Lowered: the switch waits for the old TTL, counted from when
            // the lowering was in sync (unknown while the mark is pending).
            Some(Stage::Lowered { at, old_ttl }) => {
                let due = at
                    .checked_add(SignedDuration::from_secs(i64::from(old_ttl)))
                    .unwrap_or(jiff::Timestamp::MAX);
                mark.as_ref().is_some_and(|m| m.pending) || cx.plan.at < due
            }
            // Switched already: the TTL is the cutover's.
            Some(Stage::Switched { .. }) => false,
            None => cur.ttl.is_some_and(|t| t > spec.cutover.ttl),
        };
        if early {
            cx.report(Problem::CutoverSkipped {
                step: cx.name(i),
                set: format!("{} {}", c.name, c.rtype),
            });
        }
    }
}

/// A change's values as text, when every part is known (sorted, as
/// observed sets hold them); an alias has none.
fn known_values(c: &PlannedRecordChange) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for v in &c.values {
        let mut s = String::new();
        for p in v {
            match p {
                UserDataPart::Text(t) => s.push_str(t),
                _ => return None,
            }
        }
        out.push(if c.from_manifest {
            crate::route53::value(c.rtype, &s).ok()?
        } else {
            s
        });
    }
    out.sort();
    Some(out)
}
