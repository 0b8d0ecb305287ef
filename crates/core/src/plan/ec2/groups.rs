//! Planning security groups: which observed group is current for each
//! name (a new description means a new group), the rules to authorize and
//! revoke, and the deletion of groups that go once nothing uses them.

use crate::desired::{IngressRule, Protocol, SecurityGroupSpec, Source};
use crate::ids::{GroupId, GroupName, Kind, ResourceKey, ResourceName};
use crate::observed::{CloudRule, CloudSource, ObservedGroup};
use crate::plan::{
    ChangeAction, FieldDiff, GroupRef, PlannedRule, Planner, Step, StepId, TagTarget, Value,
    sorted_strings, update_if,
};
use std::collections::{BTreeMap, BTreeSet};

/// How a current group's rules differ from the declared ones.
struct RuleDiff {
    /// Declared rules the cloud lacks (or whose source group is new).
    add: Vec<IngressRule>,
    /// Rules the cloud holds that are not declared.
    remove: Vec<CloudRule>,
}

impl<'a> Planner<'a> {
    /// Plans every declared group (creates first, so that rules can name
    /// their sources), and marks the groups that go.
    pub(crate) fn security_groups(&mut self) {
        let creates = self.resolve_groups();
        // Groups that go: not declared, or an old description.
        for g in &self.observed().security_groups {
            if !self.group_names.contains_key(&g.id) {
                self.doomed_groups
                    .insert(g.id.clone(), (g.owner.name.clone(), Vec::new()));
            }
        }
        // Second pass: rules and tags.
        for (name, spec) in &self.desired().security_groups {
            match creates.get(name).copied() {
                Some(create) => self.new_group(name, spec, create),
                None => self.current_group(name, spec),
            }
        }
    }

    /// First pass: decides which observed group is current for each name,
    /// and creates the missing ones; returns their create steps.
    fn resolve_groups(&mut self) -> BTreeMap<ResourceName, StepId> {
        let obs = &self.observed().security_groups;
        let mut creates: BTreeMap<ResourceName, StepId> = BTreeMap::new();
        for (name, spec) in &self.desired().security_groups {
            let cloud_name = GroupName::of(&self.desired().stack, name, &spec.description);
            // A group lives in one VPC: one in another VPC than the
            // stack's is replaced, as for a new description.
            let vpc = self.vpc.clone();
            let current = obs.iter().find(|g| {
                g.owner.name == *name
                    && g.cloud_name == cloud_name
                    && vpc.as_ref().and_then(|v| v.known()) == Some(&g.vpc)
            });
            match current {
                Some(g) => {
                    self.groups
                        .insert(name.clone(), GroupRef::Known(g.id.clone()));
                    self.group_names.insert(g.id.clone(), name.clone());
                }
                None => {
                    let tags = self.tags_for(Kind::SecurityGroup, name, &spec.tags);
                    // `network()` planned first: a stack with groups has a
                    // VPC, or planning stopped at NoDefaultVpc.
                    let Some(vpc) = vpc else { continue };
                    let step = self.add(
                        Step::CreateGroup {
                            name: name.clone(),
                            cloud_name,
                            vpc: vpc.clone(),
                            description: spec.description.clone(),
                            tags,
                        },
                        vpc.created(),
                    );
                    creates.insert(name.clone(), step);
                    self.groups.insert(name.clone(), GroupRef::Created(step));
                }
            }
        }
        creates
    }

    /// A group this plan creates (new, or replacing one with an old
    /// description): its rules are authorized once it and their sources
    /// exist.
    fn new_group(&mut self, name: &ResourceName, spec: &SecurityGroupSpec, create: StepId) {
        let key = ResourceKey::new(Kind::SecurityGroup, name.clone());
        let desired_rules: Vec<String> = sorted_strings(spec.ingress.iter());
        if !spec.ingress.is_empty() {
            let rules = self.planned_rules(&spec.ingress);
            let deps = self.rule_deps(&rules, Some(create));
            let authorize = self.add(
                Step::AuthorizeIngress {
                    name: name.clone(),
                    group: GroupRef::Created(create),
                    rules,
                },
                deps,
            );
            self.group_rules.insert(create, authorize);
        }
        let replaced = self
            .observed()
            .security_groups
            .iter()
            .find(|g| g.owner.name == *name);
        let new_vpc = self.vpc.as_ref().and_then(|v| v.known()).cloned();
        let moved = replaced.filter(|g| g.description == spec.description);
        let action = match (replaced, moved) {
            (Some(_), Some(_)) => ChangeAction::Replace {
                because: vec!["vpc".into()],
            },
            (Some(_), None) => ChangeAction::Replace {
                because: vec!["spec.description".into()],
            },
            (None, _) => ChangeAction::Create,
        };
        let c = self.change(key, action);
        if let Some(g) = moved {
            c.fields.push(FieldDiff {
                field: "vpc".into(),
                before: Some(Value::Text(g.vpc.to_string())),
                after: Some(new_vpc.map_or(Value::Unknown, |v| Value::Text(v.to_string()))),
                forces_replacement: true,
            });
        } else {
            c.fields.push(FieldDiff {
                field: "spec.description".into(),
                before: replaced.map(|g| Value::Text(g.description.clone())),
                after: Some(Value::Text(spec.description.clone())),
                forces_replacement: replaced.is_some(),
            });
        }
        if !desired_rules.is_empty() {
            c.fields.push(FieldDiff {
                field: "spec.ingress".into(),
                before: None,
                after: Some(Value::List(desired_rules)),
                forces_replacement: false,
            });
        }
    }

    /// A group that exists: missing rules authorized, undeclared ones
    /// revoked, tags set back.
    fn current_group(&mut self, name: &ResourceName, spec: &SecurityGroupSpec) {
        let GroupRef::Known(gid) = self.groups[name].clone() else {
            return;
        };
        let g = self
            .observed()
            .security_groups
            .iter()
            .find(|g| g.id == gid)
            .expect("current group observed");
        let key = ResourceKey::new(Kind::SecurityGroup, name.clone());
        let tags = self.tags_for(Kind::SecurityGroup, name, &spec.tags);
        let desired_rules: Vec<String> = sorted_strings(spec.ingress.iter());
        let diff = self.rule_diff(&spec.ingress, g);
        let mut changed = false;
        if !diff.add.is_empty() {
            let rules = self.planned_rules(&diff.add);
            let deps = self.rule_deps(&rules, None);
            self.add(
                Step::AuthorizeIngress {
                    name: name.clone(),
                    group: GroupRef::Known(gid.clone()),
                    rules,
                },
                deps,
            );
            changed = true;
        }
        if !diff.remove.is_empty() {
            let step = self.add(
                Step::RevokeIngress {
                    name: name.clone(),
                    group: gid.clone(),
                    rules: diff.remove.clone(),
                },
                [],
            );
            for r in &diff.remove {
                if let CloudSource::Group(src) = &r.source {
                    self.group_user(src, step);
                }
            }
            changed = true;
        }
        let drift = self.tag_drift(&key, TagTarget::Group(gid.clone()), &tags, &g.tags, &[]);
        let observed_rules: Vec<String> = {
            let mut v: Vec<String> = g.ingress.iter().map(|r| self.show_cloud_rule(r)).collect();
            v.sort();
            v
        };
        let action = update_if(changed || drift.is_some());
        let c = self.change(key, action);
        if changed {
            c.fields.push(FieldDiff {
                field: "spec.ingress".into(),
                before: Some(Value::List(observed_rules)),
                after: Some(Value::List(desired_rules)),
                forces_replacement: false,
            });
        }
        Self::tag_field(c, &tags, &g.tags);
    }

    /// The rules to authorize and revoke on a current group.
    fn rule_diff(&self, declared: &[IngressRule], g: &ObservedGroup) -> RuleDiff {
        // Desired rules whose sources exist, as the cloud would hold them.
        let mut want: BTreeSet<CloudRule> = BTreeSet::new();
        let mut add: Vec<IngressRule> = Vec::new();
        for r in declared {
            match self.cloud_rule(r) {
                Some(cr) => {
                    if !g.ingress.contains(&cr) {
                        add.push(r.clone());
                    }
                    want.insert(cr);
                }
                None => add.push(r.clone()),
            }
        }
        let remove: Vec<CloudRule> = g
            .ingress
            .iter()
            .filter(|r| !want.contains(r))
            .cloned()
            .collect();
        RuleDiff { add, remove }
    }

    /// A declared rule as the cloud would hold it; `None` when its source
    /// group does not exist yet.
    fn cloud_rule(&self, r: &IngressRule) -> Option<CloudRule> {
        let source = match &r.source {
            Source::Cidr(c) => CloudSource::Cidr(c.clone()),
            Source::Group(g) => match self.groups.get(g)? {
                GroupRef::Known(id) => CloudSource::Group(id.clone()),
                GroupRef::Created(_) => return None,
            },
        };
        Some(CloudRule {
            protocol: r.protocol,
            ports: rule_ports(r),
            source,
        })
    }

    fn planned_rules(&self, rules: &[IngressRule]) -> Vec<PlannedRule> {
        rules
            .iter()
            .map(|r| PlannedRule {
                rule: r.clone(),
                source_group: match &r.source {
                    Source::Group(g) => self.groups.get(g).cloned(),
                    Source::Cidr(_) => None,
                },
            })
            .collect()
    }

    /// The steps a rule authorization waits for: its own group's creation
    /// (`own`, when this plan creates it) and its sources' creation.
    fn rule_deps(&self, rules: &[PlannedRule], own: Option<StepId>) -> Vec<StepId> {
        let mut deps: BTreeSet<StepId> = rules
            .iter()
            .filter_map(|r| match &r.source_group {
                Some(GroupRef::Created(s)) => Some(*s),
                _ => None,
            })
            .collect();
        deps.extend(own);
        deps.into_iter().collect()
    }

    fn show_cloud_rule(&self, r: &CloudRule) -> String {
        let mut s = r.protocol.as_str().to_owned();
        if let Some((from, to)) = r.ports {
            if from == to {
                s.push_str(&format!(" {from}"));
            } else {
                s.push_str(&format!(" {from}-{to}"));
            }
        }
        match &r.source {
            CloudSource::Cidr(c) => s.push_str(&format!(" from {c}")),
            CloudSource::Group(id) => {
                match self.observed().security_groups.iter().find(|g| g.id == *id) {
                    Some(g) if self.group_names.contains_key(id) => {
                        s.push_str(&format!(" from SecurityGroup/{}", g.owner.name))
                    }
                    // A group this plan deletes (undeclared, or replaced for a
                    // new description): name its ID, or a rule re-pointed to
                    // the replacement would read as unchanged.
                    Some(g) => s.push_str(&format!(
                        " from SecurityGroup/{} (old group {id})",
                        g.owner.name
                    )),
                    None => s.push_str(&format!(" from {id}")),
                }
            }
        }
        s
    }

    /// Records that `step` must finish before a doomed group goes.
    pub(crate) fn group_user(&mut self, group: &GroupId, step: StepId) {
        if let Some((_, users)) = self.doomed_groups.get_mut(group) {
            users.push(step);
        }
    }

    /// Deletes the groups that go, after every step that uses them.
    pub(crate) fn finish_group_deletes(&mut self) {
        let doomed = std::mem::take(&mut self.doomed_groups);
        for (id, (name, users)) in doomed {
            // Every rule in the stack that names it must be gone first:
            // revokes were recorded as users; instances too.
            self.add(
                Step::DeleteGroup {
                    name: name.clone(),
                    group: id.clone(),
                },
                users,
            );
            if !self.desired().security_groups.contains_key(&name)
                && !self
                    .changes
                    .iter()
                    .any(|c| c.key.kind == Kind::SecurityGroup && c.key.name == name)
            {
                self.change(
                    ResourceKey::new(Kind::SecurityGroup, name),
                    ChangeAction::Delete,
                );
            }
        }
    }
}

/// The ports a rule is held with in the cloud.
pub fn rule_ports(r: &IngressRule) -> Option<(u16, u16)> {
    match r.protocol {
        Protocol::Icmp | Protocol::All => None,
        Protocol::Tcp | Protocol::Udp => r.ports.map(|p| (p.from, p.to)),
    }
}
