//! The plan checker (after omicron's `blippy`): the invariants every plan
//! must keep, checked before a plan is applied.
//!
//! [`check`] reads a plan and the input it was made from and returns every
//! [`Problem`] it finds, not only the first: the step graph is a DAG with
//! edges in range; whatever a step refers to by step ID exists, makes what
//! is needed and runs before it; nothing is terminated twice; replaced
//! instances go only after their successors run (and are healthy behind
//! the fleet's balancers), within the update budget; members are
//! deregistered before they are terminated; groups, volumes, buckets and
//! distributions are deleted only once nothing uses them, and only if
//! their deletion policy allows it; DNS records carry their ownership
//! marks, are touched only when owned or adopted, and switch value only
//! as their cutover allows; a certificate goes only once nothing uses it; launches go in their zone's subnet,
//! and a network is deleted only once the stack has left it; idempotency tokens do not repeat; the
//! summary agrees with the steps. `docs/plan-checks.md` lists the rules.
//!
//! It is cheap enough to run before every apply and every reconcile pass:
//! the lookups it needs are built once, and "does A run before B" is a
//! walk bounded by the steps between them (`order.rs`), so a valid plan is
//! checked in time near-linear in its steps.

mod addresses;
mod cdn;
mod certificates;
mod changes;
mod dns;
mod graph;
mod groups;
mod instances;
mod network;
mod order;
mod problem;
mod rolling;
mod tokens;
mod volumes;

pub use problem::{Link, Problem, StepName, User};

use crate::desired::Desired;
use crate::ids::{InstanceId, ResourceKey, VolumeId};
use crate::observed::{Observed, ObservedInstance, ObservedVolume};
use crate::plan::{InstanceRef, Plan, PlanInput, ResourceChange, Step, StepId, VolumeRef};
use order::Order;
use std::collections::BTreeMap;

/// A plan refused because it breaks invariants: a bug in converge's
/// planner, never the user's input. Displayed as one line per problem.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("the plan breaks {} invariant(s) and was not carried out (a bug in converge; please report it with the plan from `converge plan --format json`):\n- {}", .0.len(), list(.0))]
pub struct Refused(pub Vec<Problem>);

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n- ")
}

/// The plan, if it keeps every invariant; else every problem it has.
pub fn checked(plan: Plan, input: &PlanInput<'_>) -> Result<Plan, Refused> {
    let problems = check(&plan, input);
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(Refused(problems))
    }
}

/// Every problem with `plan`, made from `input`; empty when it keeps every
/// invariant. Pure, and near-linear in the plan's size on a valid plan
/// (each problem found may cost a walk over the steps before it).
pub fn check(plan: &Plan, input: &PlanInput<'_>) -> Vec<Problem> {
    let mut problems = graph::edges(plan);
    let order = match Order::new(&plan.graph) {
        Ok(order) => order,
        Err(step) => {
            // Without an order, no question of what runs first has an
            // answer: the cycle is the problem to fix.
            problems.push(Problem::Cycle {
                step: step_name(plan, step),
            });
            return problems;
        }
    };
    let index = Index::new(plan, input.observed);
    let mut cx = Ctx {
        plan,
        desired: input.desired,
        observed: input.observed,
        index: &index,
        order,
        problems,
    };
    graph::references(&mut cx);
    changes::check(&mut cx);
    instances::check(&mut cx);
    addresses::check(&mut cx);
    tokens::check(&mut cx);
    rolling::check(&mut cx);
    groups::check(&mut cx);
    volumes::check(&mut cx);
    cdn::check(&mut cx);
    dns::check(&mut cx);
    certificates::check(&mut cx);
    network::check(&mut cx);
    cx.problems
}

/// What every part of the checker reads (shared references, so a part can
/// hold one while it reports), the order questions, and the problems
/// found so far.
struct Ctx<'a> {
    plan: &'a Plan,
    desired: &'a Desired,
    observed: &'a Observed,
    index: &'a Index<'a>,
    order: Order<'a>,
    problems: Vec<Problem>,
}

impl Ctx<'_> {
    /// The step with this ID, for a problem.
    fn name(&self, id: StepId) -> StepName {
        step_name(self.plan, id)
    }

    fn report(&mut self, problem: Problem) {
        self.problems.push(problem);
    }
}

fn step_name(plan: &Plan, id: StepId) -> StepName {
    StepName {
        id,
        description: plan
            .graph
            .step(id)
            .map_or_else(|| "no such step".into(), Step::describe),
    }
}

/// Lookups more than one part of the checker needs, built once. The
/// observed instances and volumes are indexed only if a step names them:
/// a plan with few steps is checked without indexing a large fleet.
struct Index<'a> {
    /// The observed instances that steps name, by ID.
    instances: BTreeMap<&'a InstanceId, &'a ObservedInstance>,
    /// The observed volumes that steps name, by ID.
    volumes: BTreeMap<&'a VolumeId, &'a ObservedVolume>,
    /// The steps that terminate each instance, in ID order.
    terminates: BTreeMap<&'a InstanceId, Vec<StepId>>,
    /// Each resource's change entry.
    changes: BTreeMap<&'a ResourceKey, &'a ResourceChange>,
}

impl<'a> Index<'a> {
    fn new(plan: &'a Plan, o: &'a Observed) -> Self {
        let mut terminates: BTreeMap<&InstanceId, Vec<StepId>> = BTreeMap::new();
        let mut instances: BTreeMap<&InstanceId, Option<&ObservedInstance>> = BTreeMap::new();
        let mut volumes: BTreeMap<&VolumeId, Option<&ObservedVolume>> = BTreeMap::new();
        for (i, s) in plan.graph.iter() {
            if let Step::Terminate { instances, .. } = s {
                for id in instances {
                    push(&mut terminates, id, i);
                }
            }
            named(
                s,
                &mut |id| {
                    instances.insert(id, None);
                },
                &mut |id| {
                    volumes.insert(id, None);
                },
            );
        }
        let mut changes = BTreeMap::new();
        for c in &plan.changes {
            changes.entry(&c.key).or_insert(c);
        }
        Index {
            instances: first_observed(instances, &o.instances, |i| &i.id),
            volumes: first_observed(volumes, &o.volumes, |v| &v.id),
            terminates,
            changes,
        }
    }

    /// The steps that terminate `id` (none if the plan keeps it).
    fn terminates(&self, id: &InstanceId) -> &[StepId] {
        self.terminates.get(id).map_or(&[], Vec::as_slice)
    }
}

/// Calls `instance` and `volume` on the observed instances and volumes a
/// step names by cloud ID.
fn named<'a>(
    s: &'a Step,
    instance: &mut impl FnMut(&'a InstanceId),
    volume: &mut impl FnMut(&'a VolumeId),
) {
    let mut known = |r: &'a InstanceRef| {
        if let InstanceRef::Known(id) = r {
            instance(id);
        }
    };
    match s {
        Step::Terminate { instances, .. }
        | Step::Deregister { instances, .. }
        | Step::WaitDrained { instances, .. } => instances.iter().for_each(&mut *instance),
        Step::SetInstanceGroups { instance: id, .. }
        | Step::SetMetadataOptions { instance: id, .. }
        | Step::AssociateInstanceProfile { instance: id, .. }
        | Step::ReplaceInstanceProfile { instance: id, .. }
        | Step::DisassociateInstanceProfile { instance: id, .. } => instance(id),
        Step::Register { instances, .. } => instances.iter().for_each(known),
        Step::AttachVolume {
            volume: v,
            instance: i,
            ..
        } => {
            known(i);
            if let VolumeRef::Known(id) = v {
                volume(id);
            }
        }
        Step::DetachVolume {
            volume: v,
            instance: i,
            ..
        } => {
            instance(i);
            volume(v);
        }
        Step::DeleteVolume { volume: v, .. } | Step::ModifyVolume { volume: v, .. } => volume(v),
        _ => {}
    }
}

/// For each wanted ID, the first observed item with it; IDs not observed
/// are left out.
fn first_observed<'a, K: Ord, T>(
    mut wanted: BTreeMap<&'a K, Option<&'a T>>,
    observed: &'a [T],
    id: impl Fn(&T) -> &K,
) -> BTreeMap<&'a K, &'a T> {
    if !wanted.is_empty() {
        for x in observed {
            if let Some(slot @ None) = wanted.get_mut(id(x)) {
                *slot = Some(x);
            }
        }
    }
    wanted
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect()
}

/// Appends `step` to the steps listed under `key`.
fn push<K: Ord>(map: &mut BTreeMap<K, Vec<StepId>>, key: K, step: StepId) {
    map.entry(key).or_default().push(step);
}

/// The steps listed under `key`, or none.
fn listed<'m, K: Ord>(map: &'m BTreeMap<K, Vec<StepId>>, key: &K) -> &'m [StepId] {
    map.get(key).map_or(&[], Vec::as_slice)
}
