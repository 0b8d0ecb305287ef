//! Planning classic load balancers: created, their listeners, health
//! check and zones set back in place, deleted when undeclared; and, once
//! every fleet is planned, their membership (the instances that stay
//! registered, strays deregistered).

use crate::desired::{BalancerSpec, Tags};
use crate::ids::{InstanceId, Kind, ResourceKey, ResourceName, SubnetId};
use crate::observed::ObservedBalancer;
use crate::plan::{
    ChangeAction, FieldDiff, InstanceRef, Note, Planner, Produced, Step, StepId, SubnetRef,
    TagTarget, Value, sorted_strings, update_if,
};
use std::collections::BTreeSet;

impl<'a> Planner<'a> {
    /// Plans every declared balancer, then deletes those the manifests no
    /// longer declare.
    pub(crate) fn balancers(&mut self) {
        let d = self.desired();
        let obs = &self.observed().balancers;
        for (name, spec) in &d.balancers {
            let key = ResourceKey::new(Kind::Balancer, name.clone());
            let tags = self.tags_for(Kind::Balancer, name, &spec.tags);
            match obs.iter().find(|b| b.name.as_str() == name.as_str()) {
                None => self.new_balancer(key, spec, tags),
                Some(b) => self.current_balancer(key, spec, b, tags),
            }
        }
        for b in obs
            .iter()
            .filter(|b| !d.balancers.contains_key(&b.owner.name))
        {
            let delete = self.add(
                Step::DeleteBalancer {
                    name: b.owner.name.clone(),
                },
                [],
            );
            self.doomed_balancers.insert(b.owner.name.clone(), delete);
            self.change(
                ResourceKey::new(Kind::Balancer, b.owner.name.clone()),
                ChangeAction::Delete,
            );
        }
    }

    fn new_balancer(&mut self, key: ResourceKey, spec: &BalancerSpec, tags: Tags) {
        let name = key.name.clone();
        let (subnets, deps) = self.balancer_subnets(spec);
        let step = self.add(
            Step::CreateBalancer {
                name: name.clone(),
                zones: spec.zones.clone(),
                subnets,
                listeners: spec.listeners.clone(),
                health_check: spec.health_check.clone(),
                tags,
            },
            deps,
        );
        self.balancers
            .insert(name, (None, Produced { step: Some(step) }));
        let c = self.change(key, ChangeAction::Create);
        c.fields.push(FieldDiff {
            field: "spec.listeners".into(),
            before: None,
            after: Some(Value::List(sorted_strings(spec.listeners.iter()))),
            forces_replacement: false,
        });
        c.fields.push(FieldDiff {
            field: "spec.healthCheck".into(),
            before: None,
            after: Some(Value::Text(spec.health_check.to_string())),
            forces_replacement: false,
        });
        if spec.subnets.is_empty() {
            c.fields.push(FieldDiff {
                field: "spec.zones".into(),
                before: None,
                after: Some(Value::List(sorted_strings(spec.zones.iter()))),
                forces_replacement: false,
            });
        } else {
            c.fields.push(FieldDiff {
                field: "spec.subnets".into(),
                before: None,
                after: Some(Value::List(sorted_strings(spec.subnets.iter()))),
                forces_replacement: false,
            });
        }
    }

    /// A balancer's subnets, and the steps that make them ready.
    fn balancer_subnets(&self, spec: &BalancerSpec) -> (Vec<SubnetRef>, Vec<StepId>) {
        let mut refs = Vec::new();
        let mut deps = Vec::new();
        for s in &spec.subnets {
            if let Some(p) = self.subnets.get(s) {
                refs.push(p.id.clone());
                deps.extend(p.ready.iter().copied());
            }
        }
        (refs, deps)
    }

    /// A balancer that exists: listeners, health check, zones and tags
    /// set back in place.
    fn current_balancer(
        &mut self,
        key: ResourceKey,
        spec: &BalancerSpec,
        b: &ObservedBalancer,
        tags: Tags,
    ) {
        let name = &key.name;
        let mut fields = Vec::new();
        fields.extend(self.set_listeners(name, spec, b));
        fields.extend(self.set_health_check(name, spec, b));
        // A balancer in none of the Network's subnets (made in the default
        // VPC) would have to move VPCs: a classic balancer cannot.
        let ours = |id: &SubnetId| self.subnets.values().any(|p| p.id.known() == Some(id));
        let moves = !spec.subnets.is_empty() && !b.subnets.iter().any(ours);
        let mut notes = Vec::new();
        if spec.subnets.is_empty() {
            fields.extend(self.set_balancer_zones(name, spec, b));
        } else if moves {
            self.stranded.insert(name.clone());
            notes.push(Note::Unsupported {
                reason: format!(
                    "Balancer/{name} is not in the Network's VPC, and a classic balancer cannot move VPCs: remove it from the manifests, apply, then declare it again"
                ),
            });
        } else {
            fields.extend(self.set_balancer_subnets(name, spec, b));
        }
        let changed = !fields.is_empty();
        let drift = self.tag_drift(
            &key,
            TagTarget::Balancer(b.name.clone()),
            &tags,
            &b.tags,
            &[],
        );
        self.balancers.insert(
            name.clone(),
            (Some(b.dns_name.clone()), Produced::default()),
        );
        let action = update_if(changed || drift.is_some());
        let c = self.change(key, action);
        c.fields = fields;
        c.notes = notes;
        Self::tag_field(c, &tags, &b.tags);
    }

    /// Adds and removes listeners; the field shown when any change.
    fn set_listeners(
        &mut self,
        name: &ResourceName,
        spec: &BalancerSpec,
        b: &ObservedBalancer,
    ) -> Option<FieldDiff> {
        let want: BTreeSet<_> = spec.listeners.iter().cloned().collect();
        let have: BTreeSet<_> = b.listeners.iter().cloned().collect();
        let add: Vec<_> = want.difference(&have).cloned().collect();
        let remove: Vec<u16> = have
            .difference(&want)
            .map(|l| l.port)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if add.is_empty() && remove.is_empty() {
            return None;
        }
        self.add(
            Step::SetListeners {
                name: name.clone(),
                add,
                remove,
            },
            [],
        );
        Some(FieldDiff {
            field: "spec.listeners".into(),
            before: Some(Value::List(sorted_strings(b.listeners.iter()))),
            after: Some(Value::List(sorted_strings(spec.listeners.iter()))),
            forces_replacement: false,
        })
    }

    /// Sets the health check back; the field shown when it differs.
    fn set_health_check(
        &mut self,
        name: &ResourceName,
        spec: &BalancerSpec,
        b: &ObservedBalancer,
    ) -> Option<FieldDiff> {
        if b.health_check.as_ref() == Some(&spec.health_check) {
            return None;
        }
        self.add(
            Step::ConfigureHealthCheck {
                name: name.clone(),
                health_check: spec.health_check.clone(),
            },
            [],
        );
        Some(FieldDiff {
            field: "spec.healthCheck".into(),
            before: b.health_check.as_ref().map(|h| Value::Text(h.to_string())),
            after: Some(Value::Text(spec.health_check.to_string())),
            forces_replacement: false,
        })
    }

    /// Enables and disables zones; the field shown when they differ.
    fn set_balancer_zones(
        &mut self,
        name: &ResourceName,
        spec: &BalancerSpec,
        b: &ObservedBalancer,
    ) -> Option<FieldDiff> {
        let want_z: BTreeSet<_> = spec.zones.iter().cloned().collect();
        let have_z: BTreeSet<_> = b.zones.iter().cloned().collect();
        if want_z == have_z {
            return None;
        }
        self.add(
            Step::SetBalancerZones {
                name: name.clone(),
                enable: want_z.difference(&have_z).cloned().collect(),
                disable: have_z.difference(&want_z).cloned().collect(),
            },
            [],
        );
        Some(FieldDiff {
            field: "spec.zones".into(),
            before: Some(Value::List(sorted_strings(have_z.iter()))),
            after: Some(Value::List(sorted_strings(want_z.iter()))),
            forces_replacement: false,
        })
    }

    /// Attaches and detaches subnets; the field shown when they differ.
    fn set_balancer_subnets(
        &mut self,
        name: &ResourceName,
        spec: &BalancerSpec,
        b: &ObservedBalancer,
    ) -> Option<FieldDiff> {
        let (want, deps) = self.balancer_subnets(spec);
        let have: BTreeSet<&SubnetId> = b.subnets.iter().collect();
        let attach: Vec<SubnetRef> = want
            .iter()
            .filter(|r| r.known().is_none_or(|id| !have.contains(id)))
            .cloned()
            .collect();
        let wanted_ids: BTreeSet<&SubnetId> = want.iter().filter_map(|r| r.known()).collect();
        let detach: Vec<SubnetId> = b
            .subnets
            .iter()
            .filter(|id| !wanted_ids.contains(id))
            .cloned()
            .collect();
        if attach.is_empty() && detach.is_empty() {
            return None;
        }
        self.add(
            Step::SetBalancerSubnets {
                name: name.clone(),
                attach,
                detach,
            },
            deps,
        );
        let names = |id: &SubnetId| {
            self.subnets
                .iter()
                .find(|(_, p)| p.id.known() == Some(id))
                .map_or_else(|| id.to_string(), |(n, _)| n.to_string())
        };
        Some(FieldDiff {
            field: "spec.subnets".into(),
            before: Some(Value::List(sorted_strings(b.subnets.iter().map(names)))),
            after: Some(Value::List(sorted_strings(spec.subnets.iter()))),
            forces_replacement: false,
        })
    }

    /// Registers instances that stay but are not members, and deregisters
    /// members that are not the fleets' instances.
    pub(crate) fn balancer_membership(&mut self) {
        let d = self.desired();
        for (name, spec) in &d.balancers {
            if self.stranded.contains(name) {
                continue;
            }
            let observed = self
                .observed()
                .balancers
                .iter()
                .find(|b| b.name.as_str() == name.as_str());
            let members: BTreeSet<InstanceId> = observed
                .map(|b| b.members.iter().map(|m| m.instance.clone()).collect())
                .unwrap_or_default();
            let mut keep: BTreeSet<InstanceId> = BTreeSet::new();
            for f in &spec.fleets {
                if let Some(o) = self.fleets.get(f) {
                    keep.extend(o.staying.iter().cloned());
                }
            }
            let register: Vec<InstanceRef> = keep
                .iter()
                .filter(|i| !members.contains(*i))
                .map(|i| InstanceRef::Known(i.clone()))
                .collect();
            let deregister: Vec<InstanceId> = members
                .iter()
                .filter(|i| {
                    !keep.contains(*i)
                        && !self.deregistered.contains(&(name.clone(), (*i).clone()))
                        && !self.launched_elsewhere(i)
                })
                .cloned()
                .collect();
            let create = self.balancers.get(name).and_then(|(_, p)| p.step);
            let changed = !register.is_empty() || !deregister.is_empty();
            if !register.is_empty() {
                self.add(
                    Step::Register {
                        balancer: name.clone(),
                        instances: register,
                    },
                    create,
                );
            }
            if !deregister.is_empty() {
                self.add(
                    Step::Deregister {
                        balancer: name.clone(),
                        instances: deregister,
                    },
                    [],
                );
            }
            if changed {
                self.show_members(name, observed, &members, &keep);
            }
        }
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
            if observed.is_some() {
                c.fields.push(FieldDiff {
                    field: "members".into(),
                    before: Some(Value::List(before)),
                    after: Some(Value::List(after)),
                    forces_replacement: false,
                });
            }
        }
    }

    /// Whether an instance is one the fleet pass already handles (being
    /// replaced or scaled in, deregistered there).
    fn launched_elsewhere(&self, i: &InstanceId) -> bool {
        self.terminating.contains_key(i)
    }
}
