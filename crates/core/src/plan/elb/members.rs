//! Balancer membership, once every fleet is planned: the instances that
//! stay are registered (with each target group of an elbv2 balancer),
//! strays are deregistered, a member that leaves before its instance is
//! terminated drains first, and a replaced balancer goes once its
//! successor's members are healthy and its own have drained.

use super::{PlannedBalancer, observed_handle};
use crate::elb::BalancerHandle;
use crate::ids::{InstanceId, Kind, ResourceKey, ResourceName, TargetGroupName};
use crate::observed::{Member, ObservedBalancer};
use crate::plan::{ChangeAction, FieldDiff, InstanceRef, Planner, Step, StepId, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The members of one place instances register in: a classic balancer,
/// or one target group of an elbv2 balancer.
struct Pool {
    /// The balancer, acting on this pool only.
    handle: BalancerHandle,
    /// Members that take (or are about to take) traffic.
    active: BTreeSet<InstanceId>,
}

/// A balancer's pools as observed: its target groups, or itself.
fn pools(b: &ObservedBalancer) -> Vec<Pool> {
    let active = |ms: &[Member]| {
        ms.iter()
            .filter(|m| !m.state.draining())
            .map(|m| m.instance.clone())
            .collect()
    };
    if b.kind.has_target_groups() {
        b.target_groups
            .iter()
            .map(|t| Pool {
                handle: observed_handle(b).with_target_groups(vec![t.name.clone()]),
                active: active(&t.members),
            })
            .collect()
    } else {
        vec![Pool {
            handle: observed_handle(b),
            active: active(&b.members),
        }]
    }
}

/// How long a member of an observed balancer may drain: the longest
/// deregistration delay of the target groups it is in, or a classic
/// balancer's draining timeout (`fallback` when it is unknown).
fn drain_bound(b: &ObservedBalancer, groups: &[TargetGroupName], fallback: u32) -> u32 {
    if b.kind.has_target_groups() {
        b.target_groups
            .iter()
            .filter(|t| groups.contains(&t.name))
            .map(|t| t.deregistration_delay_secs)
            .max()
            .unwrap_or(0)
    } else {
        b.drain_secs.unwrap_or(fallback)
    }
}

impl<'a> Planner<'a> {
    /// Registers instances that stay but are not members, deregisters
    /// members that are not the fleets' instances, and retires replaced
    /// balancers.
    pub(crate) fn balancer_membership(&mut self) {
        let d = self.desired();
        for (name, spec) in &d.balancers {
            if self.stranded.contains(name) {
                continue;
            }
            let Some(planned) = self.balancers.get(name).cloned() else {
                continue;
            };
            let observed = self
                .observed()
                .balancers
                .iter()
                .find(|b| b.name == planned.handle.cloud_name);
            let mut keep: BTreeSet<InstanceId> = BTreeSet::new();
            for f in &spec.fleets {
                if let Some(o) = self.fleets.get(f) {
                    keep.extend(o.staying.iter().cloned());
                }
            }
            let mut regs = self.register_staying(&planned, observed, &keep);
            let strays = self.deregister_strays(observed, &keep);
            if let Some(pred) = &planned.predecessor {
                regs.extend(self.wait_successor(name, &spec.fleets, &planned, &keep));
                self.retire_predecessor(pred, &regs);
            }
            if !regs.is_empty() || strays {
                let members: BTreeSet<InstanceId> = observed
                    .map(|b| b.members.iter().map(|m| m.instance.clone()).collect())
                    .unwrap_or_default();
                self.show_members(name, observed, &members, &keep);
            }
        }
    }

    /// Registers the staying instances missing from each pool of the
    /// balancer the manifests want; returns the register steps.
    fn register_staying(
        &mut self,
        planned: &PlannedBalancer,
        observed: Option<&ObservedBalancer>,
        keep: &BTreeSet<InstanceId>,
    ) -> Vec<StepId> {
        let have: BTreeMap<Vec<TargetGroupName>, BTreeSet<InstanceId>> = observed
            .map(pools)
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.handle.target_groups, p.active))
            .collect();
        let targets: Vec<BalancerHandle> = if planned.handle.kind.has_target_groups() {
            planned
                .handle
                .target_groups
                .iter()
                .map(|t| planned.handle.clone().with_target_groups(vec![t.clone()]))
                .collect()
        } else {
            vec![planned.handle.clone()]
        };
        let empty = BTreeSet::new();
        let mut steps = Vec::new();
        for handle in targets {
            let members = have.get(&handle.target_groups).unwrap_or(&empty);
            let missing: Vec<InstanceRef> = keep
                .iter()
                .filter(|i| !members.contains(*i))
                .map(|i| InstanceRef::Known(i.clone()))
                .collect();
            if missing.is_empty() {
                continue;
            }
            steps.push(self.add(
                Step::Register {
                    balancer: handle,
                    instances: missing,
                },
                planned.ready.iter().copied(),
            ));
        }
        steps
    }

    /// Deregisters members that are none of the fleets' staying instances
    /// (those being terminated are the fleet pass's); they keep running,
    /// so nothing waits for their draining. Returns whether any did.
    fn deregister_strays(
        &mut self,
        observed: Option<&ObservedBalancer>,
        keep: &BTreeSet<InstanceId>,
    ) -> bool {
        let Some(b) = observed else {
            return false;
        };
        let mut any = false;
        for pool in pools(b) {
            let strays: Vec<InstanceId> = pool
                .active
                .iter()
                .filter(|i| {
                    !keep.contains(*i)
                        && !self.deregistered.contains(&(b.name.clone(), (*i).clone()))
                        && !self.terminating.contains_key(*i)
                })
                .cloned()
                .collect();
            if strays.is_empty() {
                continue;
            }
            any = true;
            self.add(
                Step::Deregister {
                    balancer: pool.handle,
                    instances: strays,
                },
                [],
            );
        }
        any
    }

    /// Waits until the staying instances of each fleet are healthy in a
    /// replacing balancer; returns the wait steps.
    fn wait_successor(
        &mut self,
        name: &ResourceName,
        fleets: &[ResourceName],
        planned: &PlannedBalancer,
        keep: &BTreeSet<InstanceId>,
    ) -> Vec<StepId> {
        let regs = self.steps_where(
            |s| matches!(s, Step::Register { balancer, .. } if &balancer.name == name),
        );
        let mut waits = Vec::new();
        for f in fleets {
            let Some(o) = self.fleets.get(f) else {
                continue;
            };
            let staying: Vec<InstanceRef> = o
                .staying
                .iter()
                .filter(|i| keep.contains(*i))
                .map(|i| InstanceRef::Known(i.clone()))
                .collect();
            if staying.is_empty() {
                continue;
            }
            waits.push(self.add(
                Step::WaitHealthy {
                    fleet: f.clone(),
                    instances: staying,
                    balancers: vec![planned.handle.clone()],
                },
                regs.iter().copied(),
            ));
        }
        waits.extend(planned.ready.iter().copied());
        waits
    }

    /// Drains a replaced balancer's members and deletes it, after `deps`
    /// (its successor's members healthy) and after every step of this
    /// plan that still acts on it.
    fn retire_predecessor(&mut self, pred: &BalancerHandle, deps: &[StepId]) {
        let Some(b) = self
            .observed()
            .balancers
            .iter()
            .find(|b| b.name == pred.cloud_name)
        else {
            return;
        };
        let mut before: Vec<StepId> = deps.to_vec();
        for pool in pools(b) {
            let leaving: Vec<InstanceId> = pool
                .active
                .iter()
                .filter(|i| {
                    !self.deregistered.contains(&(b.name.clone(), (*i).clone()))
                        && !self.terminating.contains_key(*i)
                })
                .cloned()
                .collect();
            if leaving.is_empty() {
                continue;
            }
            let bound = drain_bound(b, &pool.handle.target_groups, 0);
            let dereg = self.add(
                Step::Deregister {
                    balancer: pool.handle.clone(),
                    instances: leaving.clone(),
                },
                deps.iter().copied(),
            );
            before.push(dereg);
            if bound > 0 {
                before.push(self.add(
                    Step::WaitDrained {
                        balancer: pool.handle,
                        instances: leaving,
                        bound_secs: bound,
                    },
                    [dereg],
                ));
            }
        }
        let users = self.steps_where(|s| match s {
            Step::Deregister { balancer, .. } | Step::WaitDrained { balancer, .. } => {
                balancer.cloud_name == b.name
            }
            _ => false,
        });
        before.extend(users);
        self.delete_balancer(b, &before);
    }

    /// Deregisters a retiring instance from every balancer it is a member
    /// of and lets it drain; returns the steps its termination waits for.
    pub(crate) fn leave_balancers(&mut self, id: &InstanceId, deps: &[StepId]) -> Vec<StepId> {
        let memberships = self.index.memberships.get(id).cloned().unwrap_or_default();
        let mut out = Vec::new();
        for b in memberships {
            let groups: Vec<TargetGroupName> = b
                .target_groups
                .iter()
                .filter(|t| t.members.iter().any(|m| &m.instance == id))
                .map(|t| t.name.clone())
                .collect();
            let handle = observed_handle(b).with_target_groups(groups.clone());
            let draining = b
                .members
                .iter()
                .any(|m| &m.instance == id && m.state.draining());
            let fallback = self
                .desired()
                .balancers
                .get(&b.owner.name)
                .map_or(0, |s| s.drain_secs);
            let bound = drain_bound(b, &groups, fallback);
            let mut last = deps.to_vec();
            if !draining {
                let s = self.add(
                    Step::Deregister {
                        balancer: handle.clone(),
                        instances: vec![id.clone()],
                    },
                    deps.iter().copied(),
                );
                last = vec![s];
                out.push(s);
            }
            if bound > 0 {
                let w = self.add(
                    Step::WaitDrained {
                        balancer: handle,
                        instances: vec![id.clone()],
                        bound_secs: bound,
                    },
                    last.iter().copied(),
                );
                out.push(w);
            }
            // A deregistration from a balancer that is being deleted must
            // not race its delete.
            if let Some(&delete) = self.doomed_balancers.get(&b.name) {
                for s in &out {
                    self.edges.insert((*s, delete));
                }
            }
            self.deregistered.insert((b.name.clone(), id.clone()));
        }
        out
    }

    /// Marks a balancer's entry updated by its membership change, and
    /// shows the change when the balancer exists.
    fn show_members(
        &mut self,
        name: &ResourceName,
        observed: Option<&ObservedBalancer>,
        members: &BTreeSet<InstanceId>,
        keep: &BTreeSet<InstanceId>,
    ) {
        let key = ResourceKey::new(Kind::Balancer, name.clone());
        let before: Vec<String> = members.iter().map(|i| i.to_string()).collect();
        let after: Vec<String> = keep.iter().map(|i| i.to_string()).collect();
        if let Some(c) = self.changes.iter_mut().find(|c| c.key == key) {
            if c.action == ChangeAction::NoChange {
                c.action = ChangeAction::Update;
            }
            if observed.is_some() && before != after {
                c.fields.push(FieldDiff {
                    field: "members".into(),
                    before: Some(Value::List(before)),
                    after: Some(Value::List(after)),
                    forces_replacement: false,
                });
            }
        }
    }
}

impl Planner<'_> {
    /// Notes on the change entries that say what waits for balancers: the
    /// members that drain (on the fleet whose instances go, or on a
    /// replaced balancer), and the health every rollout waits for.
    pub(crate) fn balancer_notes(&mut self) {
        use crate::plan::Note;
        let mut drains: BTreeMap<(ResourceKey, ResourceName), (Vec<InstanceId>, u32)> =
            BTreeMap::new();
        let mut gates: BTreeMap<ResourceKey, BTreeSet<ResourceName>> = BTreeMap::new();
        for s in &self.steps {
            match s {
                Step::WaitDrained {
                    balancer,
                    instances,
                    bound_secs,
                } => {
                    for i in instances {
                        let key = match self.terminating.get(i).map(|t| &self.steps[*t]) {
                            Some(Step::Terminate { fleet, .. }) => {
                                ResourceKey::new(Kind::Fleet, fleet.clone())
                            }
                            _ => ResourceKey::new(Kind::Balancer, balancer.name.clone()),
                        };
                        let e = drains.entry((key, balancer.name.clone())).or_default();
                        e.0.push(i.clone());
                        e.1 = e.1.max(*bound_secs);
                    }
                }
                Step::WaitHealthy {
                    fleet, balancers, ..
                } => {
                    let key = match balancers.as_slice() {
                        [b] if self
                            .balancers
                            .get(&b.name)
                            .is_some_and(|p| p.predecessor.is_some()) =>
                        {
                            ResourceKey::new(Kind::Balancer, b.name.clone())
                        }
                        _ => ResourceKey::new(Kind::Fleet, fleet.clone()),
                    };
                    gates
                        .entry(key)
                        .or_default()
                        .extend(balancers.iter().map(|b| b.name.clone()));
                }
                _ => {}
            }
        }
        let d = self.desired();
        let mut notes: Vec<(ResourceKey, Note)> = Vec::new();
        for (key, balancers) in gates {
            let typical_secs = balancers
                .iter()
                .filter_map(|b| d.balancers.get(b))
                .map(|s| s.health_check.healthy_threshold() * s.health_check.interval_secs())
                .max()
                .unwrap_or(0);
            notes.push((
                key,
                Note::HealthGate {
                    balancers: balancers.into_iter().collect(),
                    typical_secs,
                },
            ));
        }
        for ((key, balancer), (mut instances, bound_secs)) in drains {
            instances.sort();
            instances.dedup();
            let replaced = key.kind == Kind::Balancer;
            notes.push((
                key,
                Note::Drains {
                    balancer,
                    instances,
                    bound_secs,
                    replaced,
                },
            ));
        }
        for (key, note) in notes {
            if let Some(c) = self.changes.iter_mut().find(|c| c.key == key) {
                c.notes.push(note);
            }
        }
    }
}
