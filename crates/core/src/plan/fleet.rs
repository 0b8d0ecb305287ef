//! Planning a fleet: how many instances, in which zones, which ones go,
//! and how outdated ones are replaced in waves within the update budget
//! (each successor launched, registered and healthy before its
//! predecessor is deregistered and terminated).

use super::*;
use crate::desired::{Attr, FleetSpec, TemplatePart};
use crate::ids::Zone;
use crate::observed::ObservedInstance;
use crate::spec_hash::launch_spec_hash;
use jiff::tz::TimeZone;
use std::net::Ipv4Addr;

/// On instances: present when their user data holds values from the
/// environment (`${env:…}`), so that a later plan never shows that user
/// data, even once the manifests no longer mark it sensitive.
pub const SENSITIVE_TAG: &str = "converge:sensitive";

/// What a planned fleet leaves behind, for references and membership.
#[derive(Clone, Debug, Default)]
pub(crate) struct FleetOutcome {
    /// Instances that stay, sorted.
    pub staying: Vec<InstanceId>,
    /// Their addresses, sorted.
    pub staying_ips: Vec<Ipv4Addr>,
    /// Launch steps whose instances join.
    pub launches: Vec<StepId>,
}

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

/// Spreads `count` instances evenly over `zones`, the remainder going to
/// the zones listed first.
pub fn spread(count: u32, zones: &[Zone]) -> Vec<(Zone, u32)> {
    if zones.is_empty() {
        return Vec::new();
    }
    let n = zones.len() as u32;
    zones
        .iter()
        .enumerate()
        .map(|(i, z)| (z.clone(), count / n + u32::from((i as u32) < count % n)))
        .collect()
}

/// Per zone, how many instances a fleet keeps when it moves from `have`
/// (one count per zone, in the zones' order) to `target` without moving
/// any instance: growth goes to the zones with the fewest (the first
/// listed on a tie), shrinking takes from the zones with the most (the
/// last listed on a tie), so the zones stay as even as they can.
pub(crate) fn fill(target: u32, zones: &[Zone], have: &[u32]) -> Vec<(Zone, u32)> {
    if zones.is_empty() {
        return Vec::new();
    }
    let mut counts: Vec<u32> = zones
        .iter()
        .enumerate()
        .map(|(i, _)| have.get(i).copied().unwrap_or(0))
        .collect();
    // Level the lowest zones up (or the highest down) a step at a time:
    // a handful of rounds per zone, whatever the counts.
    let mut total: u64 = counts.iter().map(|c| u64::from(*c)).sum();
    let target = u64::from(target);
    while total < target {
        let low = counts.iter().copied().min().unwrap_or(0);
        let at_low: Vec<usize> = (0..counts.len()).filter(|i| counts[*i] == low).collect();
        let next = counts.iter().copied().filter(|c| *c > low).min();
        let k = at_low.len() as u64;
        let left = target - total;
        let room = next.map_or(u64::MAX, |n| u64::from(n - low).saturating_mul(k));
        if left >= room {
            for i in &at_low {
                counts[*i] = next.unwrap_or(low);
            }
            total += room;
        } else {
            for (j, i) in at_low.iter().enumerate() {
                let add = left / k + u64::from((j as u64) < left % k);
                counts[*i] += add as u32;
            }
            total = target;
        }
    }
    while total > target {
        let high = counts.iter().copied().max().unwrap_or(0);
        let at_high: Vec<usize> = (0..counts.len()).filter(|i| counts[*i] == high).collect();
        let next = counts
            .iter()
            .copied()
            .filter(|c| *c < high)
            .max()
            .unwrap_or(0);
        let k = at_high.len() as u64;
        let left = total - target;
        let room = u64::from(high - next).saturating_mul(k);
        if left >= room {
            for i in &at_high {
                counts[*i] = next;
            }
            total -= room;
        } else {
            // The last listed give first, mirroring `spread`.
            for (j, i) in at_high.iter().rev().enumerate() {
                let take = left / k + u64::from((j as u64) < left % k);
                counts[*i] -= take as u32;
            }
            total = target;
        }
    }
    zones.iter().cloned().zip(counts).collect()
}

/// User data as the executor assembles it, the fully resolved text when
/// every part is known, what to show in a plan, and the steps it waits for.
struct ResolvedUserData {
    parts: Vec<UserDataPart>,
    text: Option<String>,
    display: Value,
    deps: BTreeSet<StepId>,
}

/// An instance that goes, and why.
#[derive(Clone, Copy)]
struct Retiring<'o> {
    instance: &'o ObservedInstance,
    reason: TerminateReason,
}

/// Pairs deficits (zones to launch a successor in, in order) with
/// instances that must go (sorted oldest first): each deficit first takes
/// the oldest instance in its own zone, then the remaining deficits take
/// the remaining instances oldest first. Returns the pairs in deficit
/// order, the instances left without a successor, and the deficits left
/// without a predecessor (growth).
fn pair_by_zone<'o>(
    deficits: Vec<Zone>,
    old: Vec<Retiring<'o>>,
) -> (Vec<(Zone, Retiring<'o>)>, Vec<Retiring<'o>>, Vec<Zone>) {
    let mut by_zone: BTreeMap<Zone, std::collections::VecDeque<(usize, Retiring<'o>)>> =
        BTreeMap::new();
    for (age, r) in old.into_iter().enumerate() {
        by_zone
            .entry(r.instance.zone.clone())
            .or_default()
            .push_back((age, r));
    }
    let mut slots: Vec<(Zone, Option<Retiring<'o>>)> = deficits
        .into_iter()
        .map(|zone| {
            let same = by_zone.get_mut(&zone).and_then(|q| q.pop_front());
            (zone, same.map(|(_, r)| r))
        })
        .collect();
    // What is left, oldest first, fills the deficits that found no
    // instance in their zone.
    let mut rest: Vec<(usize, Retiring<'o>)> = by_zone.into_values().flatten().collect();
    rest.sort_by_key(|(age, _)| *age);
    let mut rest = rest.into_iter().map(|(_, r)| r);
    for slot in slots.iter_mut().filter(|(_, r)| r.is_none()) {
        match rest.next() {
            Some(r) => slot.1 = Some(r),
            None => break,
        }
    }
    let leftover: Vec<Retiring<'o>> = rest.collect();
    let mut pairs = Vec::new();
    let mut growth = Vec::new();
    for (zone, r) in slots {
        match r {
            Some(r) => pairs.push((zone, r)),
            None => growth.push(zone),
        }
    }
    (pairs, leftover, growth)
}

/// A fleet's target replica count at `at`, and the notes that explain
/// it: an autoscaled fleet's count decided outside the planner (`scale`,
/// else its live count), clamped to its bounds; else a count decided
/// outside the planner; else the schedule rule in effect (the latest
/// firing wins; on a tie, the rule listed last); else `replicas`.
pub fn fleet_target(
    name: &ResourceName,
    spec: &FleetSpec,
    at: Timestamp,
    scale: Option<u32>,
    live: u32,
) -> Result<(u32, Vec<Note>), PlanError> {
    if let Some(a) = &spec.autoscale {
        let base = scale.unwrap_or(live);
        return Ok((
            base.clamp(a.min, a.max.max(a.min)),
            vec![Note::Autoscaled {
                min: a.min,
                max: a.max,
            }],
        ));
    }
    if let Some(n) = scale {
        return Ok((n, Vec::new()));
    }
    if let Some(s) = &spec.schedule {
        let tz = TimeZone::get(&s.timezone).map_err(|_| PlanError::UnknownTimeZone {
            fleet: name.clone(),
            zone: s.timezone.clone(),
        })?;
        let in_effect = s
            .rules
            .iter()
            .filter_map(|r| r.cron.latest_at_or_before(at, &tz).map(|t| (t, r)))
            // The latest firing wins; on a tie, the rule listed last.
            .max_by_key(|(t, _)| *t);
        if let Some((_, rule)) = in_effect {
            return Ok((
                rule.replicas,
                vec![Note::Scheduled {
                    cron: rule.cron.to_string(),
                    replicas: rule.replicas,
                }],
            ));
        }
    }
    Ok((spec.replicas, Vec::new()))
}

impl<'a> Planner<'a> {
    fn target_replicas(
        &self,
        name: &ResourceName,
        spec: &FleetSpec,
        live: u32,
    ) -> Result<(u32, Vec<Note>), PlanError> {
        fleet_target(
            name,
            spec,
            self.input.at,
            self.input.scale.get(name).copied(),
            live,
        )
    }

    fn resolve_user_data(&self, t: &crate::desired::Template) -> ResolvedUserData {
        let mut parts = Vec::new();
        let mut text = Some(String::new());
        let mut display = String::new();
        let mut deps = BTreeSet::new();
        let push_known = |parts: &mut Vec<UserDataPart>,
                          text: &mut Option<String>,
                          display: &mut String,
                          s: &str| {
            parts.push(UserDataPart::Text(s.to_owned()));
            if let Some(t) = text.as_mut() {
                t.push_str(s);
            }
            display.push_str(s);
        };
        for part in &t.parts {
            match part {
                TemplatePart::Text(s) => push_known(&mut parts, &mut text, &mut display, s),
                TemplatePart::Env { value, .. } => {
                    parts.push(UserDataPart::Secret(value.clone()));
                    if let Some(t) = text.as_mut() {
                        t.push_str(value.expose());
                    }
                    display.push_str("(sensitive)");
                }
                TemplatePart::Ref(r) => {
                    let name = &r.target.name;
                    let pending: Option<UserDataPart> = match r.target.kind {
                        Kind::Fleet => {
                            let o = self.fleets.get(name).cloned().unwrap_or_default();
                            if o.launches.is_empty() {
                                let ips: Vec<String> =
                                    o.staying_ips.iter().map(|ip| ip.to_string()).collect();
                                let v = if r.attr == Attr::PrivateIp {
                                    ips.first().cloned().unwrap_or_default()
                                } else {
                                    ips.join(",")
                                };
                                push_known(&mut parts, &mut text, &mut display, &v);
                                None
                            } else {
                                deps.extend(o.launches.iter().copied());
                                Some(UserDataPart::FleetIps {
                                    known: o.staying_ips.clone(),
                                    launches: o.launches.clone(),
                                    single: r.attr == Attr::PrivateIp,
                                })
                            }
                        }
                        Kind::Balancer | Kind::Cdn => {
                            let entry = if r.target.kind == Kind::Balancer {
                                self.balancers.get(name)
                            } else {
                                self.cdns.get(name)
                            };
                            match entry {
                                Some((Some(v), _)) => {
                                    push_known(&mut parts, &mut text, &mut display, v);
                                    None
                                }
                                Some((None, Produced { step: Some(s) })) => {
                                    deps.insert(*s);
                                    Some(UserDataPart::StepOutput {
                                        step: *s,
                                        attr: r.attr,
                                    })
                                }
                                _ => {
                                    push_known(&mut parts, &mut text, &mut display, "");
                                    None
                                }
                            }
                        }
                        Kind::Volume => match self.volumes.get(name).map(|v| &v.volume) {
                            Some(VolumeRef::Known(id)) => {
                                push_known(&mut parts, &mut text, &mut display, id.as_str());
                                None
                            }
                            Some(VolumeRef::Created(s)) => {
                                deps.insert(*s);
                                Some(UserDataPart::StepOutput {
                                    step: *s,
                                    attr: Attr::Id,
                                })
                            }
                            None => {
                                push_known(&mut parts, &mut text, &mut display, "");
                                None
                            }
                        },
                        _ => None,
                    };
                    if let Some(p) = pending {
                        parts.push(p);
                        text = None;
                        display.push_str(&format!("{r} (known after apply)"));
                    }
                }
            }
        }
        let display = if t.is_sensitive() {
            Value::Sensitive
        } else {
            Value::Multiline(display)
        };
        ResolvedUserData {
            parts,
            text,
            display,
            deps,
        }
    }

    /// Deregisters, detaches and terminates one instance after `deps`;
    /// returns the terminate step and the detach step, if a volume was
    /// attached.
    fn retire(
        &mut self,
        fleet: &ResourceName,
        r: Retiring<'_>,
        deps: &[StepId],
    ) -> (StepId, Option<StepId>) {
        let id = &r.instance.id;
        let mut before: Vec<StepId> = deps.to_vec();
        let mut after_dereg = Vec::new();
        let memberships = self.index.memberships.get(id).cloned().unwrap_or_default();
        for b in memberships {
            let name = b.owner.name.clone();
            let s = self.add(
                Step::Deregister {
                    balancer: name.clone(),
                    instances: vec![id.clone()],
                },
                before.iter().copied(),
            );
            // A deregistration from a balancer that is being deleted must
            // not race its delete.
            if let Some(&delete) = self.doomed_balancers.get(&name) {
                self.edges.insert((s, delete));
            }
            self.deregistered.insert((name, id.clone()));
            after_dereg.push(s);
        }
        before.extend(after_dereg);
        let mut detach = None;
        if let Some(v) = self.index.attached_volume.get(id).copied()
            && let Some(&s) = self.detaching.get(&v.id)
        {
            // Already detached by the volume pass: terminate after it.
            before.push(s);
            detach = Some(s);
        } else if let Some(v) = self.index.attached_volume.get(id).copied()
            && self.desired().volumes.contains_key(&v.owner.name)
        {
            let s = self.add(
                Step::DetachVolume {
                    name: v.owner.name.clone(),
                    volume: v.id.clone(),
                    instance: id.clone(),
                },
                before.iter().copied(),
            );
            before.push(s);
            detach = Some(s);
        }
        let term = self.add(
            Step::Terminate {
                fleet: fleet.clone(),
                instances: vec![id.clone()],
                reason: r.reason,
            },
            before,
        );
        self.terminating.insert(id.clone(), term);
        for g in &r.instance.groups {
            self.group_user(g, term);
        }
        (term, detach)
    }

    fn balancers_of(&self, fleet: &ResourceName) -> Vec<ResourceName> {
        self.index
            .balancers_of
            .get(fleet)
            .cloned()
            .unwrap_or_default()
    }

    /// Launches `count` instances in `zone` and registers them with the
    /// fleet's balancers; returns the launch step and the register steps.
    #[allow(clippy::too_many_arguments)]
    fn launch(
        &mut self,
        fleet: &ResourceName,
        zone: &Zone,
        count: u32,
        spec: &LaunchSpec,
        deps: &BTreeSet<StepId>,
        token_seed: &str,
        wave: usize,
    ) -> (StepId, Vec<StepId>) {
        let token = short_digest(&[
            self.desired().stack.as_str(),
            fleet.as_str(),
            zone.as_str(),
            &count.to_string(),
            &wave.to_string(),
            token_seed,
        ]);
        let step = self.add(
            Step::Launch {
                fleet: fleet.clone(),
                zone: zone.clone(),
                count,
                spec: spec.clone(),
                token,
            },
            deps.iter().copied(),
        );
        let mut regs = Vec::new();
        for b in self.balancers_of(fleet) {
            let create = self.balancers.get(&b).and_then(|(_, p)| p.step);
            let r = self.add(
                Step::Register {
                    balancer: b,
                    instances: vec![InstanceRef::Launched(step)],
                },
                std::iter::once(step).chain(create),
            );
            regs.push(r);
        }
        (step, regs)
    }

    pub(crate) fn fleet(&mut self, name: &ResourceName) -> Result<(), PlanError> {
        let d = self.desired();
        let spec = &d.fleets[name];
        let key = ResourceKey::new(Kind::Fleet, name.clone());
        let all: Vec<&ObservedInstance> = self
            .index
            .instances_by_fleet
            .get(name)
            .cloned()
            .unwrap_or_default();
        let live: Vec<&ObservedInstance> =
            all.iter().copied().filter(|i| is_live(i.state)).collect();
        let (target, mut notes) = self.target_replicas(name, spec, live.len() as u32)?;
        let volume = d
            .volume_attached_to(name)
            .map(|(n, v)| (n.clone(), v.clone()));
        let zones: Vec<Zone> = match &volume {
            Some((_, v)) => vec![v.zone.clone()],
            None => spec.zones.clone(),
        };

        // The launch spec, and the hash it should carry.
        let key_name = spec
            .key_pair
            .as_ref()
            .and_then(|k| self.key_pairs.get(k))
            .map(|(cloud, _)| cloud.clone());
        let mut base_deps: BTreeSet<StepId> = BTreeSet::new();
        if let Some(k) = &spec.key_pair
            && let Some((_, Produced { step: Some(s) })) = self.key_pairs.get(k)
        {
            base_deps.insert(*s);
        }
        let groups: Vec<GroupRef> = spec
            .security_groups
            .iter()
            .filter_map(|g| self.groups.get(g).cloned())
            .collect();
        for g in &groups {
            if let GroupRef::Created(s) = g {
                base_deps.insert(*s);
                base_deps.extend(self.group_rules.get(s).copied());
            }
        }
        let ud = self.resolve_user_data(&spec.user_data);
        base_deps.extend(ud.deps.iter().copied());
        let desired_hash = ud.text.as_deref().map(|t| {
            launch_spec_hash(
                spec.image.as_str(),
                &spec.instance_type,
                key_name.as_deref(),
                t,
            )
        });
        let mut tags = self.tags_for(Kind::Fleet, name, &spec.tags);
        if spec.user_data.is_sensitive() {
            tags.insert(SENSITIVE_TAG.to_owned(), "true".to_owned());
        }
        let launch_spec = LaunchSpec {
            image: spec.image.clone(),
            instance_type: spec.instance_type.clone(),
            key_name: key_name.clone(),
            groups: groups.clone(),
            user_data: ud.parts.clone(),
            tags: tags.clone(),
        };

        // Classify what runs.
        let is_outdated = |i: &ObservedInstance| match &desired_hash {
            Some(h) => i.spec_hash.as_ref() != Some(h),
            None => true,
        };
        let mut retire_now: Vec<Retiring> = Vec::new();
        for i in all.iter().filter(|i| i.state == InstanceState::Stopped) {
            retire_now.push(Retiring {
                instance: i,
                reason: TerminateReason::Stopped,
            });
        }
        let mut current_by_zone: BTreeMap<&Zone, Vec<&ObservedInstance>> = BTreeMap::new();
        let mut old: Vec<Retiring> = Vec::new();
        for i in &live {
            if self.input.retire.contains(&i.id) {
                // The autoscaler chose it to go when the fleet scales in.
                retire_now.push(Retiring {
                    instance: i,
                    reason: TerminateReason::Scale,
                });
            } else if !zones.contains(&i.zone) {
                old.push(Retiring {
                    instance: i,
                    reason: TerminateReason::WrongZone,
                });
            } else if is_outdated(i) {
                old.push(Retiring {
                    instance: i,
                    reason: TerminateReason::Outdated,
                });
            } else if self.input.replace.contains(&i.id) {
                old.push(Retiring {
                    instance: i,
                    reason: TerminateReason::Unhealthy,
                });
            } else {
                current_by_zone.entry(&i.zone).or_default().push(i);
            }
        }
        let by_age = |a: &&ObservedInstance, b: &&ObservedInstance| {
            (a.launched_at, &a.id).cmp(&(b.launched_at, &b.id))
        };
        // Surplus current instances go, newest first; deficits are zones
        // to launch in, one entry per instance, in the zones' order.
        let mut staying: Vec<&ObservedInstance> = Vec::new();
        let mut deficits: Vec<Zone> = Vec::new();
        // An autoscaled fleet grows and shrinks where it stands: moving a
        // running instance to even out zones would defeat the autoscaler's
        // choice of which instances go (those that have run long enough).
        let wants = if spec.autoscale.is_some() {
            let have: Vec<u32> = zones
                .iter()
                .map(|z| current_by_zone.get(z).map_or(0, |v| v.len() as u32))
                .collect();
            fill(target, &zones, &have)
        } else {
            spread(target, &zones)
        };
        for (zone, want) in wants {
            let mut cur = current_by_zone.remove(&zone).unwrap_or_default();
            cur.sort_by(by_age);
            let want = want as usize;
            if cur.len() > want {
                for i in cur.drain(want..) {
                    retire_now.push(Retiring {
                        instance: i,
                        reason: TerminateReason::Scale,
                    });
                }
            } else {
                deficits.extend(std::iter::repeat_n(zone.clone(), want - cur.len()));
            }
            staying.extend(cur);
        }
        // Outdated instances are paired with deficits, oldest first: a
        // successor goes in its predecessor's zone where one is wanted
        // there (so a wave never moves capacity between zones), then the
        // rest in the order of the remaining deficits. Those left over
        // (the newest) go now: the fleet shrinks.
        old.sort_by(|a, b| by_age(&a.instance, &b.instance));
        let (replaced, leftover, extra_zones) = pair_by_zone(deficits, old);
        retire_now.extend(leftover);

        let token_seed = {
            let mut ids: Vec<&str> = all.iter().map(|i| i.id.as_str()).collect();
            ids.sort_unstable();
            format!(
                "{}|{}",
                desired_hash.as_deref().unwrap_or("?"),
                ids.join(",")
            )
        };
        let mut instance_changes: Vec<InstanceChange> = Vec::new();
        let mut launches: Vec<StepId> = Vec::new();
        let mut detaches: Vec<StepId> = Vec::new();

        // What goes without a successor: stopped, surplus, leftovers.
        for r in &retire_now {
            let (_, det) = self.retire(name, *r, &[]);
            detaches.extend(det);
            instance_changes.push(InstanceChange::Terminate {
                instance: r.instance.id.clone(),
                zone: r.instance.zone.clone(),
                reason: r.reason,
            });
        }
        // Growth: launched at once.
        for (zone, count) in group_zones(&extra_zones) {
            let (step, _) =
                self.launch(name, &zone, count, &launch_spec, &base_deps, &token_seed, 0);
            launches.push(step);
            instance_changes.push(InstanceChange::Launch {
                zone,
                count,
                reason: LaunchReason::Scale,
            });
        }
        // Replacement waves.
        let budget = spec.update;
        let per_wave = (budget.max_surge + budget.max_unavailable).max(1) as usize;
        let balancers = self.balancers_of(name);
        let mut prev_wave: Vec<StepId> = Vec::new();
        let waves = replaced.len().div_ceil(per_wave);
        for (w, chunk) in replaced.chunks(per_wave).enumerate() {
            let first = (budget.max_unavailable as usize).min(chunk.len());
            let mut wave_end: Vec<StepId> = Vec::new();
            for (_, r) in &chunk[..first] {
                let (t, det) = self.retire(name, *r, &prev_wave);
                detaches.extend(det);
                wave_end.push(t);
            }
            let mut deps = base_deps.clone();
            deps.extend(prev_wave.iter().copied());
            deps.extend(wave_end.iter().copied());
            let zones_here: Vec<Zone> = chunk.iter().map(|(z, _)| z.clone()).collect();
            let mut wave_launches = Vec::new();
            let mut wave_regs = Vec::new();
            for (zone, count) in group_zones(&zones_here) {
                let (step, regs) =
                    self.launch(name, &zone, count, &launch_spec, &deps, &token_seed, w + 1);
                wave_launches.push(step);
                wave_regs.extend(regs);
                instance_changes.push(InstanceChange::Launch {
                    zone,
                    count,
                    reason: LaunchReason::Replace,
                });
            }
            let wait = if balancers.is_empty() {
                wave_launches.clone()
            } else {
                vec![
                    self.add(
                        Step::WaitHealthy {
                            fleet: name.clone(),
                            instances: wave_launches
                                .iter()
                                .map(|s| InstanceRef::Launched(*s))
                                .collect(),
                            balancers: balancers.iter().map(|b| b.to_string()).collect(),
                        },
                        wave_launches.iter().chain(&wave_regs).copied(),
                    ),
                ]
            };
            for (_, r) in &chunk[first..] {
                let (t, det) = self.retire(name, *r, &wait);
                detaches.extend(det);
                wave_end.push(t);
            }
            for (_, r) in chunk {
                instance_changes.push(InstanceChange::Terminate {
                    instance: r.instance.id.clone(),
                    zone: r.instance.zone.clone(),
                    reason: r.reason,
                });
            }
            launches.extend(wave_launches);
            // The next wave starts once this wave's successors are up
            // (healthy behind the balancers, or running): with
            // maxUnavailable > 0 the wave's own terminations come before
            // its launches, so they alone do not say that.
            wave_end.extend(wait);
            prev_wave = wave_end;
        }
        if waves > 1 || (waves == 1 && replaced.len() > 1) {
            notes.push(Note::Rolling {
                per_wave: per_wave as u32,
                waves: waves as u32,
                max_unavailable: budget.max_unavailable.min(per_wave as u32),
            });
        }

        // In-place drift on instances that stay.
        let want_groups: BTreeSet<&GroupId> = groups
            .iter()
            .filter_map(|g| match g {
                GroupRef::Known(id) => Some(id),
                GroupRef::Created(_) => None,
            })
            .collect();
        let groups_pending = groups.iter().any(|g| matches!(g, GroupRef::Created(_)));
        staying.sort_by(|a, b| a.id.cmp(&b.id));
        let mut drifted = false;
        for i in &staying {
            let have: BTreeSet<&GroupId> = i.groups.iter().collect();
            if groups_pending || have != want_groups {
                // A new group is joined once it exists and its rules are
                // in, so that the instance's traffic is never cut off.
                let deps: Vec<StepId> = groups
                    .iter()
                    .filter_map(|g| match g {
                        GroupRef::Created(s) => Some(*s),
                        GroupRef::Known(_) => None,
                    })
                    .flat_map(|s| std::iter::once(s).chain(self.group_rules.get(&s).copied()))
                    .collect();
                let s = self.add(
                    Step::SetInstanceGroups {
                        fleet: name.clone(),
                        instance: i.id.clone(),
                        groups: groups.clone(),
                    },
                    deps,
                );
                for g in &i.groups {
                    self.group_user(g, s);
                }
                instance_changes.push(InstanceChange::SetGroups {
                    instance: i.id.clone(),
                });
                drifted = true;
            }
            let mut want_tags = tags.clone();
            if let Some(h) = &i.spec_hash {
                want_tags.insert(tags::SPEC_HASH.to_owned(), h.clone());
            }
            if self
                .tag_drift(
                    &key,
                    TagTarget::Instance(i.id.clone()),
                    &want_tags,
                    &i.tags,
                    &[tags::SPEC_HASH],
                )
                .is_some()
            {
                instance_changes.push(InstanceChange::SetTags {
                    instance: i.id.clone(),
                });
                drifted = true;
            }
        }

        // The attached volume follows the fleet's one instance.
        let mut volume_moved = false;
        if let Some((vname, vspec)) = &volume
            && let Some(attach) = &vspec.attach
            && let Some(vs) = self.volumes.get(vname).cloned()
        {
            let holder: Option<InstanceRef> = staying
                .first()
                .map(|i| InstanceRef::Known(i.id.clone()))
                .or_else(|| launches.first().map(|s| InstanceRef::Launched(*s)));
            let already = match (&holder, &vs.attached_to) {
                (Some(InstanceRef::Known(id)), Some(a)) => {
                    a.instance == *id && a.device == attach.device
                }
                _ => false,
            };
            if let Some(holder) = holder
                && !already
            {
                let mut deps: Vec<StepId> = vs.create_step.into_iter().collect();
                if let InstanceRef::Launched(s) = &holder {
                    deps.push(*s);
                }
                if let Some(a) = &vs.attached_to
                    && let VolumeRef::Known(vid) = &vs.volume
                {
                    // Detached by a retire above, or detach it here.
                    match self.terminating.get(&a.instance) {
                        Some(_) => deps.extend(detaches.iter().copied()),
                        None => {
                            let s = self.add(
                                Step::DetachVolume {
                                    name: vname.clone(),
                                    volume: vid.clone(),
                                    instance: a.instance.clone(),
                                },
                                [],
                            );
                            deps.push(s);
                        }
                    }
                }
                self.add(
                    Step::AttachVolume {
                        name: vname.clone(),
                        volume: vs.volume.clone(),
                        instance: holder,
                        device: attach.device.clone(),
                    },
                    deps,
                );
                volume_moved = vs.attached_to.is_some();
                if let Some(c) = self
                    .changes
                    .iter_mut()
                    .find(|c| c.key.kind == Kind::Volume && c.key.name == *vname)
                {
                    if c.action == ChangeAction::NoChange {
                        c.action = ChangeAction::Update;
                    }
                    c.fields.push(FieldDiff {
                        field: "spec.attach".into(),
                        before: vs
                            .attached_to
                            .as_ref()
                            .map(|a| Value::Text(format!("{} at {}", a.instance, a.device))),
                        after: Some(Value::Text(format!("Fleet/{name} at {}", attach.device))),
                        forces_replacement: false,
                    });
                }
            }
        }
        if volume_moved
            && !replaced.is_empty()
            && let Some((vname, _)) = &volume
        {
            notes.push(Note::VolumeMoves {
                volume: vname.clone(),
            });
        }

        // What the plan shows.
        let mut fields = Vec::new();
        // Instances in a zone the fleet left are replaced for that, not for
        // their launch spec: only outdated ones say what changed in it.
        let going = || replaced.iter().map(|(_, r)| r).chain(retire_now.iter());
        let outdated: Vec<&ObservedInstance> = going()
            .filter(|r| r.reason == TerminateReason::Outdated)
            .map(|r| r.instance)
            .collect();
        let mut because = Vec::new();
        if going().any(|r| r.reason == TerminateReason::WrongZone) {
            let have: BTreeSet<&Zone> = live.iter().map(|i| &i.zone).collect();
            because.push("spec.zones".to_owned());
            fields.push(FieldDiff {
                field: "spec.zones".into(),
                before: Some(Value::List(have.iter().map(|z| z.to_string()).collect())),
                after: Some(Value::List(zones.iter().map(|z| z.to_string()).collect())),
                forces_replacement: true,
            });
        }
        if let Some(sample) = outdated.first() {
            let mut diff = |field: &str, before: Option<Value>, after: Value, changed: bool| {
                if changed {
                    because.push(field.to_owned());
                    fields.push(FieldDiff {
                        field: field.into(),
                        before,
                        after: Some(after),
                        forces_replacement: true,
                    });
                }
            };
            diff(
                "spec.image",
                Some(Value::Text(sample.image.to_string())),
                Value::Text(spec.image.to_string()),
                sample.image != spec.image,
            );
            diff(
                "spec.instanceType",
                Some(Value::Text(sample.instance_type.clone())),
                Value::Text(spec.instance_type.clone()),
                sample.instance_type != spec.instance_type,
            );
            diff(
                "spec.keyPair",
                Some(Value::Text(sample.key_name.clone().unwrap_or_default())),
                Value::Text(key_name.clone().unwrap_or_default()),
                sample.key_name != key_name,
            );
            let ud_changed = sample.image == spec.image
                && sample.instance_type == spec.instance_type
                && sample.key_name == key_name
                || ud.text.is_none();
            let before = match (&ud.display, &sample.user_data) {
                (Value::Sensitive, _) => Some(Value::Sensitive),
                // The old user data held values from the environment: it
                // is as secret as the new one would be.
                _ if sample.tags.contains_key(SENSITIVE_TAG) => Some(Value::Sensitive),
                (_, Some(u)) => Some(Value::Multiline(u.clone())),
                (_, None) => None,
            };
            let ud_really = match (&sample.user_data, &ud.text) {
                (Some(before), Some(after)) => before != after,
                _ => ud_changed,
            };
            diff("spec.userData", before, ud.display.clone(), ud_really);
            if because.is_empty() {
                because.push("launch spec".to_owned());
            }
        }
        let live_n = live.len() as u32;
        let created = all.is_empty() && target > 0;
        if created {
            fields.push(FieldDiff {
                field: "spec.image".into(),
                before: None,
                after: Some(Value::Text(spec.image.to_string())),
                forces_replacement: false,
            });
            fields.push(FieldDiff {
                field: "spec.instanceType".into(),
                before: None,
                after: Some(Value::Text(spec.instance_type.clone())),
                forces_replacement: false,
            });
            if !spec.user_data.is_empty() {
                fields.push(FieldDiff {
                    field: "spec.userData".into(),
                    before: None,
                    after: Some(ud.display.clone()),
                    forces_replacement: false,
                });
            }
        }
        if live_n != target || created {
            fields.push(FieldDiff {
                field: "replicas".into(),
                before: (!created).then(|| Value::Text(live_n.to_string())),
                after: Some(Value::Text(target.to_string())),
                forces_replacement: false,
            });
        }
        let action = if created {
            ChangeAction::Create
        } else if !because.is_empty() {
            ChangeAction::Replace { because }
        } else if !instance_changes.is_empty() || drifted {
            ChangeAction::Update
        } else {
            ChangeAction::NoChange
        };
        let c = self.change(key, action);
        c.fields = fields;
        c.instances = instance_changes;
        c.notes = notes;

        let mut staying_ips: Vec<Ipv4Addr> = staying.iter().filter_map(|i| i.private_ip).collect();
        staying_ips.sort();
        self.fleets.insert(
            name.clone(),
            FleetOutcome {
                staying: staying.iter().map(|i| i.id.clone()).collect(),
                staying_ips,
                launches,
            },
        );
        Ok(())
    }

    /// Instances of fleets the manifests no longer declare.
    pub(crate) fn removed_fleets(&mut self) {
        let d = self.desired();
        let mut gone: BTreeMap<ResourceName, Vec<&ObservedInstance>> = BTreeMap::new();
        for i in &self.observed().instances {
            if i.owner.kind == Kind::Fleet
                && !d.fleets.contains_key(&i.owner.name)
                && (is_live(i.state) || i.state == InstanceState::Stopped)
            {
                gone.entry(i.owner.name.clone()).or_default().push(i);
            }
        }
        for (name, instances) in gone {
            let mut changes = Vec::new();
            for i in instances {
                self.retire(
                    &name,
                    Retiring {
                        instance: i,
                        reason: TerminateReason::Removed,
                    },
                    &[],
                );
                changes.push(InstanceChange::Terminate {
                    instance: i.id.clone(),
                    zone: i.zone.clone(),
                    reason: TerminateReason::Removed,
                });
            }
            let c = self.change(ResourceKey::new(Kind::Fleet, name), ChangeAction::Delete);
            c.instances = changes;
        }
    }
}

/// Groups a list of zones (one entry per instance) into counts, keeping the
/// order zones first appear in.
fn group_zones(zones: &[Zone]) -> Vec<(Zone, u32)> {
    let mut out: Vec<(Zone, u32)> = Vec::new();
    for z in zones {
        match out.iter_mut().find(|(x, _)| x == z) {
            Some((_, n)) => *n += 1,
            None => out.push((z.clone(), 1)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_gives_the_remainder_to_the_first_zones() {
        let z = |s: &str| Zone::from(s);
        let zones = [z("a"), z("b")];
        assert_eq!(spread(3, &zones), vec![(z("a"), 2), (z("b"), 1)]);
        assert_eq!(spread(0, &zones), vec![(z("a"), 0), (z("b"), 0)]);
        assert_eq!(spread(4, &zones), vec![(z("a"), 2), (z("b"), 2)]);
        assert!(spread(4, &[]).is_empty());
    }

    #[test]
    fn fill_grows_the_emptiest_zones_and_shrinks_the_fullest() {
        let z = |s: &str| Zone::from(s);
        let zones = [z("a"), z("b")];
        // Nothing moves: b keeps its two when the target is already met.
        assert_eq!(fill(2, &zones, &[0, 2]), vec![(z("a"), 0), (z("b"), 2)]);
        assert_eq!(fill(3, &zones, &[0, 2]), vec![(z("a"), 1), (z("b"), 2)]);
        assert_eq!(fill(1, &zones, &[1, 1]), vec![(z("a"), 1), (z("b"), 0)]);
        assert_eq!(fill(0, &zones, &[1, 2]), vec![(z("a"), 0), (z("b"), 0)]);
        assert_eq!(fill(3, &zones, &[0, 0]), spread(3, &zones));
        assert!(fill(4, &[], &[]).is_empty());
    }

    #[test]
    fn successors_go_in_their_predecessors_zone_first() {
        let z = |s: &str| Zone::from(s);
        let inst = |id: &str, zone: &str, minute: i64| ObservedInstance {
            id: id.into(),
            owner: crate::observed::Owner {
                stack: "s".into(),
                kind: crate::ids::Kind::Fleet,
                name: "app".into(),
            },
            zone: z(zone),
            state: InstanceState::Running,
            private_ip: None,
            launched_at: Timestamp::UNIX_EPOCH
                .checked_add(jiff::SignedDuration::from_mins(minute))
                .unwrap_or(Timestamp::UNIX_EPOCH),
            image: "ami-1".into(),
            instance_type: "t3.micro".into(),
            key_name: None,
            groups: Vec::new(),
            spec_hash: None,
            user_data: None,
            tags: Default::default(),
        };
        // Oldest first: b1 (minute 1), a1 (2), b2 (3), a2 (4).
        let all = [
            inst("i-b1", "b", 1),
            inst("i-a1", "a", 2),
            inst("i-b2", "b", 3),
            inst("i-a2", "a", 4),
        ];
        let old: Vec<Retiring> = all
            .iter()
            .map(|i| Retiring {
                instance: i,
                reason: TerminateReason::Outdated,
            })
            .collect();
        let ids = |v: &[(Zone, Retiring)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(zone, r)| (zone.to_string(), r.instance.id.to_string()))
                .collect()
        };
        // Two deficits in a, one in b: a's take a's instances, b's takes
        // b's oldest; b2 is left over (the fleet shrinks).
        let (pairs, leftover, growth) = pair_by_zone(vec![z("a"), z("a"), z("b")], old.clone());
        assert_eq!(
            ids(&pairs),
            [("a", "i-a1"), ("a", "i-a2"), ("b", "i-b1")]
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        assert_eq!(leftover.len(), 1);
        assert_eq!(leftover[0].instance.id.as_str(), "i-b2");
        assert!(growth.is_empty());
        // Deficits in a zone nobody runs in take the oldest remaining;
        // deficits beyond the instances are growth.
        let (pairs, leftover, growth) =
            pair_by_zone(vec![z("a"), z("c"), z("c"), z("c"), z("c")], old);
        assert_eq!(
            ids(&pairs),
            [("a", "i-a1"), ("c", "i-b1"), ("c", "i-b2"), ("c", "i-a2")]
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        assert!(leftover.is_empty());
        assert_eq!(growth, vec![z("c")]);
    }
}
