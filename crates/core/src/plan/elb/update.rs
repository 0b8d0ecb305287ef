//! A balancer that exists, set back in place: listeners (an elbv2 one's
//! target groups with them), health check, draining and cross-zone
//! balancing, security groups, zones or subnets, and tags.

use super::PlannedBalancer;
use crate::desired::{BalancerHealth, BalancerSpec, Listener, Tags};
use crate::elb::BalancerHandle;
use crate::ids::{GroupId, ResourceKey, SubnetId, TargetGroupName};
use crate::observed::ObservedBalancer;
use crate::plan::{
    FieldDiff, GroupRef, Note, Planner, Produced, Step, StepId, SubnetRef, TagTarget, Value,
    sorted_strings, update_if,
};
use std::collections::{BTreeMap, BTreeSet};

impl<'a> Planner<'a> {
    /// A balancer that exists: everything it can change in place set back.
    pub(super) fn current_balancer(
        &mut self,
        key: ResourceKey,
        spec: &BalancerSpec,
        want: BalancerHandle,
        b: &ObservedBalancer,
        tags: Tags,
    ) {
        let mut fields = Vec::new();
        let mut ready = Vec::new();
        if let Some((f, step)) = self.set_listeners(&want, spec, b) {
            fields.push(f);
            ready.push(step);
        }
        fields.extend(self.set_health_check(&want, spec, b));
        fields.extend(self.set_draining(&want, spec, b));
        fields.extend(self.set_balancer_groups(&want, spec, b));
        // A balancer in none of the Network's subnets (made in the default
        // VPC) would have to move VPCs: a balancer cannot.
        let ours = |id: &SubnetId| self.subnets.values().any(|p| p.id.known() == Some(id));
        let moves = !spec.subnets.is_empty() && !b.subnets.iter().any(ours);
        let mut notes = Vec::new();
        if spec.subnets.is_empty() {
            fields.extend(self.set_balancer_zones(&want, spec, b));
        } else if moves {
            self.stranded.insert(key.name.clone());
            notes.push(Note::Unsupported {
                reason: format!(
                    "Balancer/{} is not in the Network's VPC, and a balancer cannot move VPCs: remove it from the manifests, apply, then declare it again",
                    key.name
                ),
            });
        } else {
            fields.extend(self.set_balancer_subnets(&want, spec, b));
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
            key.name.clone(),
            PlannedBalancer {
                handle: want,
                dns: Some((b.dns_name.clone(), b.zone_id.clone())),
                produced: Produced::default(),
                ready,
                predecessor: None,
            },
        );
        let action = update_if(changed || drift.is_some());
        let c = self.change(key, action);
        c.fields = fields;
        c.notes = notes;
        Self::tag_field(c, &tags, &b.tags);
    }

    /// Adds, changes and removes listeners (a classic balancer cannot
    /// change one in place: it is removed and added again); returns the
    /// field shown and the step, when any change.
    fn set_listeners(
        &mut self,
        want: &BalancerHandle,
        spec: &BalancerSpec,
        b: &ObservedBalancer,
    ) -> Option<(FieldDiff, StepId)> {
        let have: BTreeMap<u16, &Listener> = b.listeners.iter().map(|l| (l.port, l)).collect();
        let (listeners, certificates, cert_deps) = self.listener_certificates(&spec.listeners);
        let wanted: BTreeMap<u16, &Listener> = listeners.iter().map(|l| (l.port, l)).collect();
        let v2 = spec.kind.has_target_groups();
        let mut add = Vec::new();
        let mut modify = Vec::new();
        let mut remove = Vec::new();
        for (port, l) in &wanted {
            match have.get(port) {
                None => add.push((*l).clone()),
                Some(h) if h != l => {
                    if v2 {
                        modify.push((*l).clone());
                    } else {
                        remove.push(*port);
                        add.push((*l).clone());
                    }
                }
                Some(_) => {}
            }
        }
        remove.extend(have.keys().filter(|p| !wanted.contains_key(p)));
        remove.sort_unstable();
        let kept: BTreeSet<&TargetGroupName> = want.target_groups.iter().collect();
        let retire: Vec<TargetGroupName> = b
            .target_groups
            .iter()
            .map(|t| t.name.clone())
            .filter(|t| !kept.contains(t))
            .collect();
        if add.is_empty() && modify.is_empty() && remove.is_empty() && retire.is_empty() {
            return None;
        }
        let step = self.add(
            Step::SetListeners {
                balancer: want.clone(),
                add,
                modify,
                remove,
                health_check: spec.health_check.clone(),
                drain_secs: spec.drain_secs,
                retire,
                certificates: certificates.clone().into_iter().collect(),
            },
            cert_deps,
        );
        let field = FieldDiff {
            field: "spec.listeners".into(),
            before: Some(Value::List(sorted_strings(b.listeners.iter()))),
            after: Some(Value::List(super::shown_listeners(
                &listeners,
                &certificates,
            ))),
            forces_replacement: false,
        };
        Some((field, step))
    }

    /// Sets the health check back (of each target group that differs);
    /// the field shown when it differs.
    fn set_health_check(
        &mut self,
        want: &BalancerHandle,
        spec: &BalancerSpec,
        b: &ObservedBalancer,
    ) -> Option<FieldDiff> {
        let (differs, before, handle) = match &spec.health_check {
            BalancerHealth::Classic(h) => (
                b.health_check.as_ref() != Some(h),
                b.health_check.as_ref().map(|h| h.to_string()),
                want.clone(),
            ),
            BalancerHealth::Targets(h) => {
                let groups: Vec<TargetGroupName> = b
                    .target_groups
                    .iter()
                    .filter(|t| want.target_groups.contains(&t.name) && &t.health_check != h)
                    .map(|t| t.name.clone())
                    .collect();
                let before = b
                    .target_groups
                    .iter()
                    .find(|t| groups.contains(&t.name))
                    .map(|t| t.health_check.to_string());
                (
                    !groups.is_empty(),
                    before,
                    want.clone().with_target_groups(groups),
                )
            }
        };
        if !differs {
            return None;
        }
        self.add(
            Step::ConfigureHealthCheck {
                balancer: handle,
                health_check: spec.health_check.clone(),
            },
            [],
        );
        Some(FieldDiff {
            field: "spec.healthCheck".into(),
            before: before.map(Value::Text),
            after: Some(Value::Text(spec.health_check.to_string())),
            forces_replacement: false,
        })
    }

    /// Sets draining (a classic balancer's, with cross-zone balancing; each
    /// target group's deregistration delay) back.
    fn set_draining(
        &mut self,
        want: &BalancerHandle,
        spec: &BalancerSpec,
        b: &ObservedBalancer,
    ) -> Vec<FieldDiff> {
        let mut fields = Vec::new();
        let show = |s: u32| {
            Value::Text(crate::duration::show(std::time::Duration::from_secs(
                s.into(),
            )))
        };
        let handle = if spec.kind.has_target_groups() {
            let groups: Vec<TargetGroupName> = b
                .target_groups
                .iter()
                .filter(|t| {
                    want.target_groups.contains(&t.name)
                        && t.deregistration_delay_secs != spec.drain_secs
                })
                .map(|t| t.name.clone())
                .collect();
            if let Some(t) = b.target_groups.iter().find(|t| groups.contains(&t.name)) {
                fields.push(FieldDiff {
                    field: "spec.deregistrationDelay".into(),
                    before: Some(show(t.deregistration_delay_secs)),
                    after: Some(show(spec.drain_secs)),
                    forces_replacement: false,
                });
            }
            want.clone().with_target_groups(groups)
        } else {
            if b.drain_secs.is_some_and(|d| d != spec.drain_secs) {
                fields.push(FieldDiff {
                    field: "spec.connectionDraining".into(),
                    before: b.drain_secs.map(show),
                    after: Some(show(spec.drain_secs)),
                    forces_replacement: false,
                });
            }
            if b.cross_zone.is_some_and(|c| c != spec.cross_zone) {
                fields.push(FieldDiff {
                    field: "spec.crossZone".into(),
                    before: b.cross_zone.map(|c| Value::Text(c.to_string())),
                    after: Some(Value::Text(spec.cross_zone.to_string())),
                    forces_replacement: false,
                });
            }
            want.clone()
        };
        if !fields.is_empty() {
            self.add(
                Step::SetBalancerAttributes {
                    balancer: handle,
                    drain_secs: spec.drain_secs,
                    cross_zone: spec.cross_zone,
                },
                [],
            );
        }
        fields
    }

    /// Sets the security groups back; the field shown when they differ.
    fn set_balancer_groups(
        &mut self,
        want: &BalancerHandle,
        spec: &BalancerSpec,
        b: &ObservedBalancer,
    ) -> Option<FieldDiff> {
        if spec.security_groups.is_empty() && b.security_groups.is_empty() {
            return None;
        }
        let (groups, deps) = self.balancer_groups(spec);
        let known: BTreeSet<&GroupId> = groups
            .iter()
            .filter_map(|g| match g {
                GroupRef::Known(id) => Some(id),
                GroupRef::Created(_) => None,
            })
            .collect();
        let have: BTreeSet<&GroupId> = b.security_groups.iter().collect();
        if known.len() == groups.len() && known == have {
            return None;
        }
        // An elbv2 balancer that had security groups keeps at least one
        // (SetSecurityGroups refuses none); the manifest check asks for one.
        if groups.is_empty() {
            return None;
        }
        self.add(
            Step::SetBalancerGroups {
                balancer: want.clone(),
                groups,
            },
            deps,
        );
        let names = |id: &GroupId| {
            self.group_names
                .get(id)
                .map_or_else(|| id.to_string(), |n| n.to_string())
        };
        Some(FieldDiff {
            field: "spec.securityGroups".into(),
            before: Some(Value::List(sorted_strings(
                b.security_groups.iter().map(names),
            ))),
            after: Some(Value::List(sorted_strings(spec.security_groups.iter()))),
            forces_replacement: false,
        })
    }

    /// Enables and disables zones; the field shown when they differ.
    fn set_balancer_zones(
        &mut self,
        want: &BalancerHandle,
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
                balancer: want.clone(),
                enable: want_z.difference(&have_z).cloned().collect(),
                disable: have_z.difference(&want_z).cloned().collect(),
                all: want_z.iter().cloned().collect(),
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
        want: &BalancerHandle,
        spec: &BalancerSpec,
        b: &ObservedBalancer,
    ) -> Option<FieldDiff> {
        let (all, deps) = self.balancer_subnets(spec);
        let have: BTreeSet<&SubnetId> = b.subnets.iter().collect();
        let attach: Vec<SubnetRef> = all
            .iter()
            .filter(|r| r.known().is_none_or(|id| !have.contains(id)))
            .cloned()
            .collect();
        let wanted_ids: BTreeSet<&SubnetId> = all.iter().filter_map(|r| r.known()).collect();
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
                balancer: want.clone(),
                attach,
                detach,
                all,
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
}
