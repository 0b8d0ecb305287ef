//! Invariants every plan must keep, checked on every plan a test makes
//! (after omicron's `blippy`): the step graph is a DAG with edges in
//! range; whatever a step refers to by step ID runs before it; nothing is
//! terminated twice; replaced instances go only after their successors run
//! (and are healthy behind the fleet's balancers), within the update
//! budget; members are deregistered before they are terminated; groups,
//! volumes, buckets and distributions are deleted only once nothing uses
//! them; the summary agrees with the steps.
//!
//! The checker reads the plan and the input it was made from, and returns
//! every problem it finds, not only the first.

use converge_core::desired::Attr;
use converge_core::desired::DeletionPolicy;
use converge_core::ids::{GroupId, InstanceId, Kind, ResourceKey, ResourceName, tags};
use converge_core::observed::InstanceState;
use converge_core::plan::{
    ChangeAction, GroupRef, InstanceChange, InstanceRef, LaunchReason, Plan, PlanInput, Step,
    StepId, TerminateReason, UserDataPart, VolumeRef,
};
use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::{BTreeMap, BTreeSet};

/// Panics with every broken invariant, the plan's steps and edges.
pub fn assert_ok(plan: &Plan, input: &PlanInput<'_>) {
    let problems = check(plan, input);
    if !problems.is_empty() {
        let steps: Vec<String> = plan
            .graph
            .steps()
            .iter()
            .enumerate()
            .map(|(i, s)| format!("  {i}: {}", s.describe()))
            .collect();
        panic!(
            "the plan breaks {} invariant(s):\n- {}\nsteps:\n{}\nedges: {:?}",
            problems.len(),
            problems.join("\n- "),
            steps.join("\n"),
            plan.graph.edges()
        );
    }
}

/// The steps each step transitively depends on. Empty sets when the graph
/// has a cycle (which [`check`] reports).
pub fn ancestors(plan: &Plan) -> Vec<BTreeSet<StepId>> {
    let n = plan.graph.len();
    let mut g: DiGraph<(), ()> = DiGraph::with_capacity(n, plan.graph.edges().len());
    for _ in 0..n {
        g.add_node(());
    }
    let mut preds: Vec<Vec<StepId>> = vec![Vec::new(); n];
    for &(a, b) in plan.graph.edges() {
        if a < n && b < n {
            g.add_edge(NodeIndex::new(a), NodeIndex::new(b), ());
            preds[b].push(a);
        }
    }
    let mut anc: Vec<BTreeSet<StepId>> = vec![BTreeSet::new(); n];
    let Ok(order) = toposort(&g, None) else {
        return anc;
    };
    for node in order {
        let i = node.index();
        let mut set = BTreeSet::new();
        for &p in &preds[i] {
            set.insert(p);
            set.extend(anc[p].iter().copied());
        }
        anc[i] = set;
    }
    anc
}

/// Every problem with the plan; empty when it keeps every invariant.
pub fn check(plan: &Plan, input: &PlanInput<'_>) -> Vec<String> {
    let mut p = Vec::new();
    let n = plan.graph.len();
    let d = input.desired;
    let o = input.observed;
    let name = |i: StepId| format!("step {i} ({})", plan.graph.steps()[i].describe());

    // ---- the graph ------------------------------------------------------
    for &(a, b) in plan.graph.edges() {
        if a >= n || b >= n {
            p.push(format!("edge ({a}, {b}) is out of range ({n} steps)"));
        } else if a == b {
            p.push(format!("edge ({a}, {b}) is a self-loop"));
        }
    }
    let mut g: DiGraph<(), ()> = DiGraph::new();
    for _ in 0..n {
        g.add_node(());
    }
    for &(a, b) in plan.graph.edges().iter().filter(|(a, b)| *a < n && *b < n) {
        g.add_edge(NodeIndex::new(a), NodeIndex::new(b), ());
    }
    if let Err(c) = toposort(&g, None) {
        p.push(format!(
            "the step graph has a cycle through step {}",
            c.node_id().index()
        ));
        return p;
    }
    let anc = ancestors(plan);
    let before = |a: StepId, b: StepId| anc[b].contains(&a);

    // ---- step references ------------------------------------------------
    for (i, s) in plan.graph.steps().iter().enumerate() {
        for (r, want) in references(s) {
            if r >= n {
                p.push(format!(
                    "{} refers to step {r}, which does not exist",
                    name(i)
                ));
                continue;
            }
            if !kind_matches(&plan.graph.steps()[r], want) {
                p.push(format!("{} refers to {} as a {want:?}", name(i), name(r)));
            }
            if !before(r, i) {
                p.push(format!(
                    "{} refers to {}, which does not run before it",
                    name(i),
                    name(r)
                ));
            }
        }
    }

    // ---- the changes agree with the steps -------------------------------
    let keys: Vec<&ResourceKey> = plan.changes.iter().map(|c| &c.key).collect();
    if keys.windows(2).any(|w| w[0] >= w[1]) {
        p.push(format!(
            "changes are not sorted by key, or a key repeats: {keys:?}"
        ));
    }
    let active = plan.changes.iter().any(|c| {
        !matches!(
            c.action,
            ChangeAction::NoChange | ChangeAction::DeleteBlocked { .. }
        )
    });
    // Work the loop holds back is a change without steps this pass.
    if active != (plan.has_changes() || !plan.held.is_empty()) {
        p.push(format!(
            "has_changes() is {} but the changes say {active}: {:?}",
            plan.has_changes(),
            plan.changes
                .iter()
                .map(|c| format!("{} {:?}", c.key, c.action))
                .collect::<Vec<_>>()
        ));
    }
    let action: BTreeMap<&ResourceKey, &ChangeAction> =
        plan.changes.iter().map(|c| (&c.key, &c.action)).collect();
    let changed = |kind: Kind, n: &ResourceName| {
        action
            .get(&ResourceKey::new(kind, n.clone()))
            .is_some_and(|a| {
                !matches!(
                    a,
                    ChangeAction::NoChange | ChangeAction::DeleteBlocked { .. }
                )
            })
    };
    let fleet_of: BTreeMap<&InstanceId, &ResourceName> =
        o.instances.iter().map(|i| (&i.id, &i.owner.name)).collect();
    for (i, s) in plan.graph.steps().iter().enumerate() {
        let owners: Vec<(Kind, ResourceName)> = match s {
            Step::CreateKeyPair { name, .. } | Step::DeleteKeyPair { name, .. } => {
                vec![(Kind::KeyPair, name.clone())]
            }
            Step::CreateGroup { name, .. }
            | Step::AuthorizeIngress { name, .. }
            | Step::RevokeIngress { name, .. }
            | Step::DeleteGroup { name, .. } => vec![(Kind::SecurityGroup, name.clone())],
            Step::SetTags { key, .. } => vec![(key.kind, key.name.clone())],
            Step::Launch { fleet, .. }
            | Step::Terminate { fleet, .. }
            | Step::WaitHealthy { fleet, .. }
            | Step::SetInstanceGroups { fleet, .. } => vec![(Kind::Fleet, fleet.clone())],
            Step::CreateVolume { name, .. }
            | Step::ModifyVolume { name, .. }
            | Step::Snapshot { name, .. }
            | Step::DeleteSnapshot { name, .. }
            | Step::DeleteVolume { name, .. } => vec![(Kind::Volume, name.clone())],
            Step::AttachVolume { name, instance, .. } => {
                let mut v = vec![(Kind::Volume, name.clone())];
                if let InstanceRef::Known(id) = instance
                    && let Some(f) = fleet_of.get(id)
                {
                    v.push((Kind::Fleet, (*f).clone()));
                }
                if let InstanceRef::Launched(s) = instance
                    && let Some(Step::Launch { fleet, .. }) = plan.graph.step(*s)
                {
                    v.push((Kind::Fleet, fleet.clone()));
                }
                v
            }
            Step::DetachVolume { name, instance, .. } => {
                let mut v = vec![(Kind::Volume, name.clone())];
                v.extend(fleet_of.get(instance).map(|f| (Kind::Fleet, (*f).clone())));
                v
            }
            Step::Register {
                balancer,
                instances,
            } => {
                let mut v = vec![(Kind::Balancer, balancer.clone())];
                for r in instances {
                    match r {
                        InstanceRef::Known(id) => {
                            v.extend(fleet_of.get(id).map(|f| (Kind::Fleet, (*f).clone())))
                        }
                        InstanceRef::Launched(s) => {
                            if let Some(Step::Launch { fleet, .. }) = plan.graph.step(*s) {
                                v.push((Kind::Fleet, fleet.clone()));
                            }
                        }
                    }
                }
                v
            }
            Step::Deregister {
                balancer,
                instances,
            } => {
                let mut v = vec![(Kind::Balancer, balancer.clone())];
                v.extend(
                    instances
                        .iter()
                        .filter_map(|id| fleet_of.get(id).map(|f| (Kind::Fleet, (*f).clone()))),
                );
                v
            }
            Step::CreateBalancer { name, .. }
            | Step::SetListeners { name, .. }
            | Step::ConfigureHealthCheck { name, .. }
            | Step::SetBalancerZones { name, .. }
            | Step::DeleteBalancer { name } => vec![(Kind::Balancer, name.clone())],
            Step::CreateBucket { name, .. }
            | Step::SetBucketPublicRead { name, .. }
            | Step::DeleteBucket { name } => vec![(Kind::Bucket, name.clone())],
            Step::CreateDistribution { name, .. }
            | Step::UpdateDistribution { name, .. }
            | Step::DisableDistribution { name, .. }
            | Step::DeleteDistribution { name, .. } => vec![(Kind::Cdn, name.clone())],
        };
        if !owners.iter().any(|(k, n)| changed(*k, n)) {
            p.push(format!(
                "{} belongs to no resource the plan shows as changing ({})",
                name(i),
                owners
                    .iter()
                    .map(|(k, n)| format!("{k}/{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }

    // ---- instances ------------------------------------------------------
    let observed_ids: BTreeSet<&InstanceId> = o.instances.iter().map(|i| &i.id).collect();
    let mut terminated: BTreeMap<&InstanceId, StepId> = BTreeMap::new();
    for (i, s) in plan.graph.steps().iter().enumerate() {
        if let Step::Terminate { instances, .. } = s {
            if instances.is_empty() {
                p.push(format!("{} terminates nothing", name(i)));
            }
            for id in instances {
                if !observed_ids.contains(id) {
                    p.push(format!(
                        "{} terminates {id}, which was not observed",
                        name(i)
                    ));
                }
                if let Some(first) = terminated.insert(id, i) {
                    p.push(format!(
                        "{id} is terminated twice: {} and {}",
                        name(first),
                        name(i)
                    ));
                }
            }
        }
    }
    for (i, s) in plan.graph.steps().iter().enumerate() {
        match s {
            Step::Launch {
                fleet, zone, count, ..
            } => {
                if *count == 0 {
                    p.push(format!("{} launches nothing", name(i)));
                }
                if let Some(f) = d.fleets.get(fleet) {
                    let allowed = match d.volume_attached_to(fleet) {
                        Some((_, v)) => vec![v.zone.clone()],
                        None => f.zones.clone(),
                    };
                    if !allowed.contains(zone) {
                        p.push(format!(
                            "{} launches in {zone}, not one of {allowed:?}",
                            name(i)
                        ));
                    }
                } else {
                    p.push(format!(
                        "{} launches for a fleet that is not declared",
                        name(i)
                    ));
                }
            }
            Step::SetInstanceGroups { instance, .. } if terminated.contains_key(instance) => {
                p.push(format!(
                    "{} changes an instance that is terminated",
                    name(i)
                ));
            }
            Step::Register {
                balancer,
                instances,
            } => {
                for r in instances {
                    if let InstanceRef::Known(id) = r {
                        if terminated.contains_key(id) {
                            p.push(format!("{} registers {id}, which is terminated", name(i)));
                        }
                        let live = o.instances.iter().any(|x| x.id == *id && x.state.is_live());
                        if !live {
                            p.push(format!("{} registers {id}, which is not live", name(i)));
                        }
                    }
                }
                for (j, t) in plan.graph.steps().iter().enumerate() {
                    if let Step::CreateBalancer { name: b, .. } = t
                        && b == balancer
                        && !before(j, i)
                    {
                        p.push(format!("{} does not wait for {}", name(i), name(j)));
                    }
                }
            }
            _ => {}
        }
    }
    let tokens: Vec<&str> = plan
        .graph
        .steps()
        .iter()
        .filter_map(|s| match s {
            Step::Launch { token, .. } => Some(token.as_str()),
            _ => None,
        })
        .collect();
    let unique: BTreeSet<&str> = tokens.iter().copied().collect();
    if unique.len() != tokens.len() {
        p.push(format!("launch tokens repeat: {tokens:?}"));
    }

    // Members are deregistered before they are terminated, and before
    // their balancer is deleted.
    for (&id, &t) in &terminated {
        for b in o
            .balancers
            .iter()
            .filter(|b| b.members.iter().any(|m| m.instance == *id))
        {
            let ok = plan.graph.steps().iter().enumerate().any(|(j, s)| {
                matches!(s, Step::Deregister { balancer, instances }
                    if balancer.as_str() == b.name && instances.contains(id))
                    && before(j, t)
            });
            if !ok {
                p.push(format!(
                    "{} is not preceded by deregistering {id} from Balancer/{}",
                    name(t),
                    b.name
                ));
            }
        }
    }
    for (j, s) in plan.graph.steps().iter().enumerate() {
        if let Step::Deregister { balancer, .. } = s {
            for (k, t) in plan.graph.steps().iter().enumerate() {
                if let Step::DeleteBalancer { name: b } = t
                    && b == balancer
                    && !before(j, k)
                {
                    p.push(format!("{} may run after {}", name(j), name(k)));
                }
            }
        }
    }

    // Replaced instances go after their successors run (and are healthy
    // when the fleet is behind balancers), except what maxUnavailable
    // allows to go first.
    for (fname, f) in &d.fleets {
        let fleet_key = ResourceKey::new(Kind::Fleet, fname.clone());
        if plan.held.iter().any(|h| h.key.resource() == fleet_key) {
            // Held back this pass: its steps are not in the plan.
            continue;
        }
        let Some(c) = plan
            .changes
            .iter()
            .find(|c| c.key == ResourceKey::new(Kind::Fleet, fname.clone()))
        else {
            p.push(format!("Fleet/{fname} has no change entry"));
            continue;
        };
        let replacements: u32 = c
            .instances
            .iter()
            .map(|x| match x {
                InstanceChange::Launch {
                    count,
                    reason: LaunchReason::Replace,
                    ..
                } => *count,
                _ => 0,
            })
            .sum();
        let per_wave = (f.update.max_surge + f.update.max_unavailable).max(1);
        let mut required = 0;
        let mut left = replacements;
        while left > 0 {
            let chunk = left.min(per_wave);
            required += chunk - f.update.max_unavailable.min(chunk);
            left -= chunk;
        }
        let behind_balancer = d.balancers.values().any(|b| b.fleets.contains(fname));
        let launches: Vec<StepId> = plan
            .graph
            .steps()
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, Step::Launch { fleet, .. } if fleet == fname))
            .map(|(i, _)| i)
            .collect();
        let waits: Vec<StepId> = plan
            .graph
            .steps()
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, Step::WaitHealthy { fleet, .. } if fleet == fname))
            .map(|(i, _)| i)
            .collect();
        let mut covered = 0;
        for (i, s) in plan.graph.steps().iter().enumerate() {
            if let Step::Terminate {
                fleet,
                instances,
                reason:
                    TerminateReason::Outdated | TerminateReason::WrongZone | TerminateReason::Unhealthy,
            } = s
                && fleet == fname
            {
                let after_launch = launches.iter().any(|l| before(*l, i));
                let after_wait = !behind_balancer || waits.iter().any(|w| before(*w, i));
                if after_launch && after_wait {
                    covered += instances.len() as u32;
                }
            }
        }
        if covered < required {
            p.push(format!(
                "Fleet/{fname}: {replacements} replacement(s) need {required} predecessor(s) \
                 terminated after a successor is launched{}, found {covered}",
                if behind_balancer { " and healthy" } else { "" }
            ));
        }
        if f.update.max_unavailable == 0 && replacements > 0 && waits.is_empty() && behind_balancer
        {
            p.push(format!(
                "Fleet/{fname} is replaced without waiting for health"
            ));
        }
    }

    // ---- groups ---------------------------------------------------------
    let doomed: BTreeMap<&GroupId, StepId> = plan
        .graph
        .steps()
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Step::DeleteGroup { group, .. } => Some((group, i)),
            _ => None,
        })
        .collect();
    for (&gid, &del) in &doomed {
        // Instances shutting down release the group by themselves; the
        // executor retries the delete until they have.
        for inst in o.instances.iter().filter(|x| {
            (x.state.is_live() || x.state == InstanceState::Stopped) && x.groups.contains(gid)
        }) {
            let moved = plan.graph.steps().iter().enumerate().any(|(j, s)| {
                before(j, del)
                    && match s {
                        Step::Terminate { instances, .. } => instances.contains(&inst.id),
                        Step::SetInstanceGroups { instance, .. } => *instance == inst.id,
                        _ => false,
                    }
            });
            if !moved {
                p.push(format!(
                    "{} while {} still uses it and is neither terminated nor moved first",
                    name(del),
                    inst.id
                ));
            }
        }
        for (j, s) in plan.graph.steps().iter().enumerate() {
            let uses = match s {
                Step::Launch { spec, .. } => spec.groups.contains(&GroupRef::Known(gid.clone())),
                Step::SetInstanceGroups { groups, .. } => {
                    groups.contains(&GroupRef::Known(gid.clone()))
                }
                Step::AuthorizeIngress { group, rules, .. } => {
                    *group == GroupRef::Known(gid.clone())
                        || rules
                            .iter()
                            .any(|r| r.source_group == Some(GroupRef::Known(gid.clone())))
                }
                _ => false,
            };
            if uses {
                p.push(format!(
                    "{} uses {gid}, which {} deletes",
                    name(j),
                    name(del)
                ));
            }
            if let Step::RevokeIngress { rules, .. } = s
                && rules.iter().any(|r| {
                    matches!(&r.source, converge_core::observed::CloudSource::Group(x) if x == gid)
                })
                && !before(j, del)
            {
                p.push(format!("{} may run after {}", name(j), name(del)));
            }
        }
        // Rules elsewhere that name the doomed group as their source, and
        // that stay, would keep it from being deleted.
        for g in &o.security_groups {
            if doomed.contains_key(&g.id) {
                continue;
            }
            for r in &g.ingress {
                if matches!(&r.source, converge_core::observed::CloudSource::Group(x) if x == gid) {
                    let revoked = plan.graph.steps().iter().enumerate().any(|(j, s)| {
                        matches!(s, Step::RevokeIngress { group, rules, .. }
                            if *group == g.id && rules.contains(r))
                            && before(j, del)
                    });
                    if !revoked {
                        p.push(format!("{}: a rule of {} still names it", name(del), g.id));
                    }
                }
            }
        }
    }

    // ---- volumes --------------------------------------------------------
    for (i, s) in plan.graph.steps().iter().enumerate() {
        match s {
            Step::DeleteVolume { volume, .. } => {
                let Some(v) = o.volumes.iter().find(|v| v.id == *volume) else {
                    p.push(format!(
                        "{} deletes a volume that was not observed",
                        name(i)
                    ));
                    continue;
                };
                let policy = match d.volumes.get(&v.owner.name) {
                    Some(spec) => spec.deletion_policy,
                    None => match v.tags.get(tags::DELETION_POLICY).map(String::as_str) {
                        Some("delete") => DeletionPolicy::Delete,
                        Some("snapshot") => DeletionPolicy::Snapshot,
                        _ => DeletionPolicy::Retain,
                    },
                };
                if policy == DeletionPolicy::Retain {
                    p.push(format!("{} deletes a volume its policy retains", name(i)));
                }
                if policy == DeletionPolicy::Snapshot
                    && !plan.graph.steps().iter().enumerate().any(|(j, t)| {
                        matches!(t, Step::Snapshot { volume: x, .. } if x == volume) && before(j, i)
                    })
                {
                    p.push(format!("{} is not preceded by a final snapshot", name(i)));
                }
                if let Some(a) = &v.attachment {
                    let freed = plan.graph.steps().iter().enumerate().any(|(j, t)| {
                        before(j, i)
                            && match t {
                                Step::DetachVolume { volume: x, .. } => x == volume,
                                Step::Terminate { instances, .. } => {
                                    instances.contains(&a.instance)
                                }
                                _ => false,
                            }
                    });
                    if !freed {
                        p.push(format!(
                            "{} while it is attached to {}",
                            name(i),
                            a.instance
                        ));
                    }
                }
            }
            Step::AttachVolume {
                volume, instance, ..
            } => {
                let zone = match instance {
                    InstanceRef::Known(id) => o
                        .instances
                        .iter()
                        .find(|x| x.id == *id)
                        .map(|x| x.zone.clone()),
                    InstanceRef::Launched(s) => match plan.graph.step(*s) {
                        Some(Step::Launch { zone, count, .. }) => {
                            if *count != 1 {
                                p.push(format!("{} attaches to a launch of {count}", name(i)));
                            }
                            Some(zone.clone())
                        }
                        _ => None,
                    },
                };
                let vzone = match volume {
                    VolumeRef::Known(id) => o
                        .volumes
                        .iter()
                        .find(|v| v.id == *id)
                        .map(|v| v.zone.clone()),
                    VolumeRef::Created(s) => match plan.graph.step(*s) {
                        Some(Step::CreateVolume { zone, .. }) => Some(zone.clone()),
                        _ => None,
                    },
                };
                if zone.is_none() || zone != vzone {
                    p.push(format!(
                        "{} attaches across zones ({zone:?} vs {vzone:?})",
                        name(i)
                    ));
                }
                if let VolumeRef::Known(id) = volume
                    && let Some(v) = o.volumes.iter().find(|v| v.id == *id)
                    && let Some(a) = &v.attachment
                {
                    let freed = plan.graph.steps().iter().enumerate().any(|(j, t)| {
                        matches!(t, Step::DetachVolume { volume: x, instance: at, .. }
                            if x == id && *at == a.instance)
                            && before(j, i)
                    });
                    if !freed {
                        p.push(format!(
                            "{} while the volume is still attached to {}",
                            name(i),
                            a.instance
                        ));
                    }
                }
            }
            Step::DetachVolume {
                volume, instance, ..
            } => {
                let attached = o.volumes.iter().any(|v| {
                    v.id == *volume
                        && v.attachment
                            .as_ref()
                            .is_some_and(|a| a.instance == *instance)
                });
                if !attached {
                    p.push(format!(
                        "{} detaches a volume that is not attached there",
                        name(i)
                    ));
                }
                if let Some(&t) = terminated.get(instance)
                    && !before(i, t)
                {
                    p.push(format!("{} may run after {}", name(i), name(t)));
                }
            }
            _ => {}
        }
    }
    let detaches: Vec<(&converge_core::ids::VolumeId, &InstanceId)> = plan
        .graph
        .steps()
        .iter()
        .filter_map(|s| match s {
            Step::DetachVolume {
                volume, instance, ..
            } => Some((volume, instance)),
            _ => None,
        })
        .collect();
    let unique: BTreeSet<_> = detaches.iter().collect();
    if unique.len() != detaches.len() {
        p.push(format!("a volume is detached twice: {detaches:?}"));
    }

    // ---- buckets and distributions --------------------------------------
    for (i, s) in plan.graph.steps().iter().enumerate() {
        match s {
            Step::DeleteDistribution { id, .. } => {
                let ok = plan.graph.steps().iter().enumerate().any(|(j, t)| {
                    matches!(t, Step::DisableDistribution { id: x, .. } if x == id) && before(j, i)
                });
                if !ok {
                    p.push(format!("{} is not preceded by disabling it", name(i)));
                }
            }
            Step::DeleteBucket { name: b } => {
                let domain = converge_core::observed::bucket_domain(b.as_str());
                for x in &o.distributions {
                    let uses = x.config.origin_domain == domain
                        || x.config.logging.as_ref().is_some_and(|(l, _)| *l == domain);
                    if !uses {
                        continue;
                    }
                    let gone = plan.graph.steps().iter().enumerate().any(|(j, t)| {
                        matches!(t, Step::DeleteDistribution { id, .. } if *id == x.id)
                            && before(j, i)
                    });
                    if !gone {
                        p.push(format!("{} while {} still serves it", name(i), x.id));
                    }
                }
            }
            _ => {}
        }
    }
    p
}

/// What a step refers to by step ID, and the kind of step each must be.
fn references(s: &Step) -> Vec<(StepId, Want)> {
    let mut out = Vec::new();
    let group = |g: &GroupRef, out: &mut Vec<(StepId, Want)>| {
        if let GroupRef::Created(s) = g {
            out.push((*s, Want::CreateGroup));
        }
    };
    match s {
        Step::AuthorizeIngress {
            group: g, rules, ..
        } => {
            group(g, &mut out);
            for r in rules {
                if let Some(g) = &r.source_group {
                    group(g, &mut out);
                }
            }
        }
        Step::Launch { spec, .. } => {
            for g in &spec.groups {
                group(g, &mut out);
            }
            for part in &spec.user_data {
                match part {
                    UserDataPart::StepOutput { step, attr } => out.push((
                        *step,
                        match attr {
                            Attr::DnsName => Want::CreateBalancer,
                            Attr::DomainName => Want::CreateDistribution,
                            Attr::Id => Want::CreateVolume,
                            Attr::PrivateIp | Attr::PrivateIps => Want::Launch,
                        },
                    )),
                    UserDataPart::FleetIps { launches, .. } => {
                        out.extend(launches.iter().map(|l| (*l, Want::Launch)))
                    }
                    UserDataPart::Text(_) | UserDataPart::Secret(_) => {}
                }
            }
        }
        Step::SetInstanceGroups { groups, .. } => {
            for g in groups {
                group(g, &mut out);
            }
        }
        Step::WaitHealthy { instances, .. } | Step::Register { instances, .. } => {
            for i in instances {
                if let InstanceRef::Launched(s) = i {
                    out.push((*s, Want::Launch));
                }
            }
        }
        Step::AttachVolume {
            volume, instance, ..
        } => {
            if let VolumeRef::Created(s) = volume {
                out.push((*s, Want::CreateVolume));
            }
            if let InstanceRef::Launched(s) = instance {
                out.push((*s, Want::Launch));
            }
        }
        _ => {}
    }
    out
}

#[derive(Clone, Copy, Debug)]
enum Want {
    CreateGroup,
    Launch,
    CreateVolume,
    CreateBalancer,
    CreateDistribution,
}

fn kind_matches(s: &Step, w: Want) -> bool {
    matches!(
        (s, w),
        (Step::CreateGroup { .. }, Want::CreateGroup)
            | (Step::Launch { .. }, Want::Launch)
            | (Step::CreateVolume { .. }, Want::CreateVolume)
            | (Step::CreateBalancer { .. }, Want::CreateBalancer)
            | (Step::CreateDistribution { .. }, Want::CreateDistribution)
    )
}
