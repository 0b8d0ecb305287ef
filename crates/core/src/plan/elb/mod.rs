//! Planning load balancers, classic and elbv2: created (an elbv2 one with
//! its target groups and listeners), set back in place
//! ([`update`]), replaced when their type or scheme changes (the successor
//! made and its members healthy before the predecessor goes), deleted when
//! undeclared; and, once every fleet is planned, their membership and the
//! draining of members that leave ([`members`]).

mod members;
mod update;

use crate::desired::{BalancerSpec, ListenerProtocol, Tags};
use crate::elb::{BalancerHandle, BalancerType, listener_target_groups};
use crate::ids::{Kind, ResourceKey, ResourceName, TargetGroupName};
use crate::observed::ObservedBalancer;
use crate::plan::{
    ChangeAction, FieldDiff, GroupRef, Planner, Produced, Step, StepId, SubnetRef, Value,
    sorted_strings,
};
use std::collections::{BTreeMap, BTreeSet};

/// What the plan makes of a declared balancer, for its members and for
/// references to its DNS name.
#[derive(Clone, Debug)]
pub(crate) struct PlannedBalancer {
    /// The balancer the manifests want, with every target group it has
    /// once the plan is done.
    pub(crate) handle: BalancerHandle,
    /// Its DNS name and hosted zone, when it exists already.
    pub(crate) dns: Option<(String, String)>,
    /// The step that creates it, when this plan does.
    pub(crate) produced: Produced,
    /// Steps members wait for before they register: its creation, or the
    /// listener change that makes a new target group.
    pub(crate) ready: Vec<StepId>,
    /// A predecessor of another type or scheme, deleted once the
    /// successor's members are healthy.
    pub(crate) predecessor: Option<BalancerHandle>,
}

/// The target groups an elbv2 balancer's listeners forward to.
pub(crate) fn desired_target_groups(
    handle: &BalancerHandle,
    spec: &BalancerSpec,
) -> Vec<(TargetGroupName, ListenerProtocol, u16)> {
    listener_target_groups(spec.kind, &handle.cloud_name, &spec.listeners)
}

/// The handle of a balancer as observed, with all its target groups.
pub(crate) fn observed_handle(b: &ObservedBalancer) -> BalancerHandle {
    BalancerHandle {
        name: b.owner.name.clone(),
        cloud_name: b.name.clone(),
        kind: b.kind,
        target_groups: b.target_groups.iter().map(|t| t.name.clone()).collect(),
    }
}

impl<'a> Planner<'a> {
    /// Plans every declared balancer, then deletes those the manifests no
    /// longer declare.
    pub(crate) fn balancers(&mut self) {
        let d = self.desired();
        let obs = &self.observed().balancers;
        for (name, spec) in &d.balancers {
            let key = ResourceKey::new(Kind::Balancer, name.clone());
            let tags = self.tags_for(Kind::Balancer, name, &spec.tags);
            let want = BalancerHandle::of(name, spec.kind, spec.scheme);
            let groups = desired_target_groups(&want, spec);
            let want = want.with_target_groups(groups.into_iter().map(|g| g.0).collect());
            let mine: Vec<&ObservedBalancer> =
                obs.iter().filter(|b| &b.owner.name == name).collect();
            let current = mine
                .iter()
                .copied()
                .find(|b| b.name == want.cloud_name && b.kind == spec.kind);
            // Another type or scheme (or a second copy): replaced.
            let mut others = mine
                .iter()
                .copied()
                .filter(|b| current.is_none_or(|c| c.name != b.name));
            match current {
                None => {
                    let predecessor = others.next();
                    self.new_balancer(key, spec, want, tags, predecessor);
                }
                Some(b) => self.current_balancer(key, spec, want, b, tags),
            }
            for extra in others {
                self.delete_balancer(extra, &[]);
            }
        }
        for b in obs
            .iter()
            .filter(|b| !d.balancers.contains_key(&b.owner.name))
        {
            self.delete_balancer(b, &[]);
            self.change(
                ResourceKey::new(Kind::Balancer, b.owner.name.clone()),
                ChangeAction::Delete,
            );
        }
        self.stray_target_groups();
    }

    /// Deletes the stack's target groups that no balancer has and none the
    /// manifests want (a group a declared balancer wants is taken back by
    /// its CreateTargetGroup, which answers this stack's existing group).
    fn stray_target_groups(&mut self) {
        let d = self.desired();
        let wanted: BTreeSet<TargetGroupName> = d
            .balancers
            .iter()
            .flat_map(|(name, spec)| {
                let handle = BalancerHandle::of(name, spec.kind, spec.scheme);
                desired_target_groups(&handle, spec)
                    .into_iter()
                    .map(|g| g.0)
            })
            .collect();
        let mut strays: BTreeMap<&ResourceName, Vec<TargetGroupName>> = BTreeMap::new();
        for g in &self.observed().stray_target_groups {
            if !wanted.contains(&g.name) {
                strays.entry(&g.balancer).or_default().push(g.name.clone());
            }
        }
        for (balancer, mut names) in strays {
            names.sort();
            let shown = Value::List(names.iter().map(ToString::to_string).collect());
            self.add(
                Step::DeleteTargetGroups {
                    balancer: balancer.clone(),
                    names,
                },
                [],
            );
            if !d.balancers.contains_key(balancer) {
                // Only its groups are left: say so, or the deletion of a
                // balancer nobody can see would puzzle the reader.
                let c = self.change(
                    ResourceKey::new(Kind::Balancer, balancer.clone()),
                    ChangeAction::Delete,
                );
                c.fields.push(FieldDiff {
                    field: "targetGroups (left behind)".into(),
                    before: Some(shown),
                    after: None,
                    forces_replacement: false,
                });
            }
        }
    }

    /// Adds the step that deletes an observed balancer after `deps`.
    fn delete_balancer(&mut self, b: &ObservedBalancer, deps: &[StepId]) -> StepId {
        let delete = self.add(
            Step::DeleteBalancer {
                balancer: observed_handle(b),
            },
            deps.iter().copied(),
        );
        self.doomed_balancers.insert(b.name.clone(), delete);
        for g in &b.security_groups {
            self.group_user(g, delete);
        }
        delete
    }

    /// Creates a balancer; with a predecessor of another type or scheme,
    /// as its replacement.
    fn new_balancer(
        &mut self,
        key: ResourceKey,
        spec: &BalancerSpec,
        want: BalancerHandle,
        tags: Tags,
        predecessor: Option<&ObservedBalancer>,
    ) {
        let name = key.name.clone();
        let (subnets, mut deps) = self.balancer_subnets(spec);
        let (security_groups, group_deps) = self.balancer_groups(spec);
        deps.extend(group_deps);
        let (listeners, certificates, cert_deps) = self.listener_certificates(&spec.listeners);
        deps.extend(cert_deps);
        let step = self.add(
            Step::CreateBalancer {
                balancer: want.clone(),
                scheme: spec.scheme,
                zones: spec.zones.clone(),
                subnets,
                security_groups,
                listeners: listeners.clone(),
                health_check: spec.health_check.clone(),
                drain_secs: spec.drain_secs,
                cross_zone: spec.cross_zone,
                tags,
                certificates: certificates.clone().into_iter().collect(),
            },
            deps,
        );
        self.balancers.insert(
            name,
            PlannedBalancer {
                handle: want,
                dns: None,
                produced: Produced { step: Some(step) },
                ready: vec![step],
                predecessor: predecessor.map(observed_handle),
            },
        );
        let action = match predecessor {
            None => ChangeAction::Create,
            Some(p) => {
                let mut because = Vec::new();
                if p.kind != spec.kind {
                    because.push("spec.type".to_owned());
                }
                if p.scheme != spec.scheme {
                    because.push("spec.scheme".to_owned());
                }
                if because.is_empty() {
                    because.push("spec".to_owned());
                }
                ChangeAction::Replace { because }
            }
        };
        let c = self.change(key, action);
        if let Some(p) = predecessor {
            if p.kind != spec.kind {
                c.fields.push(FieldDiff {
                    field: "spec.type".into(),
                    before: Some(Value::Text(p.kind.as_str().into())),
                    after: Some(Value::Text(spec.kind.as_str().into())),
                    forces_replacement: true,
                });
            }
            if p.scheme != spec.scheme {
                c.fields.push(FieldDiff {
                    field: "spec.scheme".into(),
                    before: Some(Value::Text(p.scheme.as_str().into())),
                    after: Some(Value::Text(spec.scheme.as_str().into())),
                    forces_replacement: true,
                });
            }
        } else if spec.kind != BalancerType::Classic {
            c.fields.push(FieldDiff {
                field: "spec.type".into(),
                before: None,
                after: Some(Value::Text(spec.kind.as_str().into())),
                forces_replacement: false,
            });
        }
        let shown = [
            (
                "spec.listeners",
                Value::List(shown_listeners(&listeners, &certificates)),
            ),
            (
                "spec.healthCheck",
                Value::Text(spec.health_check.to_string()),
            ),
        ];
        for (field, after) in shown {
            c.fields.push(FieldDiff {
                field: field.into(),
                before: None,
                after: Some(after),
                forces_replacement: false,
            });
        }
        if !spec.security_groups.is_empty() {
            c.fields.push(FieldDiff {
                field: "spec.securityGroups".into(),
                before: None,
                after: Some(Value::List(sorted_strings(spec.security_groups.iter()))),
                forces_replacement: false,
            });
        }
        let (field, places) = if spec.subnets.is_empty() {
            ("spec.zones", sorted_strings(spec.zones.iter()))
        } else {
            ("spec.subnets", sorted_strings(spec.subnets.iter()))
        };
        c.fields.push(FieldDiff {
            field: field.into(),
            before: None,
            after: Some(Value::List(places)),
            forces_replacement: false,
        });
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

    /// A balancer's security groups, and the steps that create them.
    fn balancer_groups(&self, spec: &BalancerSpec) -> (Vec<GroupRef>, Vec<StepId>) {
        let groups: Vec<GroupRef> = spec
            .security_groups
            .iter()
            .filter_map(|g| self.groups.get(g).cloned())
            .collect();
        let deps = groups
            .iter()
            .filter_map(|g| match g {
                GroupRef::Created(s) => Some(*s),
                GroupRef::Known(_) => None,
            })
            .collect();
        (groups, deps)
    }
}

/// Listeners as a plan shows them: one whose certificate this plan
/// requests says its ARN is known after apply.
pub(crate) fn shown_listeners(
    listeners: &[crate::desired::Listener],
    requested: &BTreeMap<u16, StepId>,
) -> Vec<String> {
    sorted_strings(listeners.iter().map(|l| {
        if requested.contains_key(&l.port) {
            let mut bare = l.clone();
            let named = bare.certificate.take().unwrap_or_default();
            format!("{bare} (certificate {named}, known after apply)")
        } else {
            l.to_string()
        }
    }))
}
