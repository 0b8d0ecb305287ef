//! A fleet's target replica count (autoscaler, schedule or `replicas`),
//! and the order fleets are planned in (after the fleets their user data
//! references).

use crate::desired::{Desired, FleetSpec};
use crate::ids::{Kind, ResourceName};
use crate::plan::{Note, PlanError};
use jiff::Timestamp;
use std::collections::{BTreeMap, BTreeSet};

/// Fleets in an order where every fleet comes after the fleets its user
/// data references; ties by name.
pub(crate) fn reference_order(d: &Desired) -> Result<Vec<ResourceName>, PlanError> {
    let deps: BTreeMap<&ResourceName, BTreeSet<&ResourceName>> = d
        .fleets
        .iter()
        .map(|(name, spec)| {
            let targets = spec
                .user_data
                .references()
                .filter(|r| r.target.kind == Kind::Fleet && d.fleets.contains_key(&r.target.name))
                .map(|r| &r.target.name)
                .collect();
            (name, targets)
        })
        .collect();
    let mut done: BTreeSet<&ResourceName> = BTreeSet::new();
    let mut order = Vec::new();
    while order.len() < deps.len() {
        let ready: Vec<&ResourceName> = deps
            .iter()
            .filter(|(n, ds)| !done.contains(*n) && ds.iter().all(|x| done.contains(x)))
            .map(|(n, _)| *n)
            .collect();
        if ready.is_empty() {
            let stuck: Vec<String> = deps
                .keys()
                .filter(|n| !done.contains(*n))
                .map(|n| format!("Fleet/{n}"))
                .collect();
            return Err(PlanError::ReferenceCycle(stuck.join(", ")));
        }
        for n in ready {
            done.insert(n);
            order.push(n.clone());
        }
    }
    Ok(order)
}

/// A fleet's target replica count at `at`, and the notes that explain
/// it: an autoscaled fleet's count decided outside the planner (`scale`,
/// else its live count), clamped to its bounds; else a count decided
/// outside the planner; else the schedule rule in effect (the latest
/// firing wins; on a tie, the rule listed last); else `replicas`.
pub fn fleet_target(
    spec: &FleetSpec,
    at: Timestamp,
    scale: Option<u32>,
    live: u32,
) -> (u32, Vec<Note>) {
    if let Some(a) = &spec.autoscale {
        let base = scale.unwrap_or(live);
        return (
            base.clamp(a.min, a.max.max(a.min)),
            vec![Note::Autoscaled {
                min: a.min,
                max: a.max,
            }],
        );
    }
    if let Some(n) = scale {
        return (n, Vec::new());
    }
    if let Some(s) = &spec.schedule {
        let in_effect = s
            .rules
            .iter()
            .filter_map(|r| {
                r.cron
                    .latest_at_or_before(at, s.timezone.zone())
                    .map(|t| (t, r))
            })
            // The latest firing wins; on a tie, the rule listed last.
            .max_by_key(|(t, _)| *t);
        if let Some((_, rule)) = in_effect {
            return (
                rule.replicas,
                vec![Note::Scheduled {
                    cron: rule.cron.to_string(),
                    replicas: rule.replicas,
                }],
            );
        }
    }
    (spec.replicas, Vec::new())
}
