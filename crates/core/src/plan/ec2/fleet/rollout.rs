//! The third phase of planning a fleet: the steps that bring its
//! instances where the placement says. Instances without a successor go
//! first, growth is launched at once, and replaced instances go in waves
//! within the fleet's update budget: in each wave up to
//! `maxUnavailable` predecessors go first, the successors launch and join
//! the balancers, and the rest of the wave's predecessors go once the
//! successors are healthy.

use super::addresses::AddressBook;
use super::placement::Placement;
use super::wanted::Wanted;
use super::zones::group_zones;
use super::{Retiring, Running};
use crate::desired::{FleetSpec, UpdatePolicy};
use crate::elb::BalancerHandle;
use crate::ids::{ResourceName, Zone};
use crate::plan::{
    InstanceChange, InstanceRef, LaunchReason, LaunchSpec, Note, Planner, Ref, Step, StepId,
    SubnetRef,
};
use crate::spec_hash::short_digest;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// The steps a fleet's rollout adds, as its change entry and the later
/// phases need them.
#[derive(Default)]
pub(super) struct Rollout {
    /// Launches and terminations, in the order planned.
    pub(super) instance_changes: Vec<InstanceChange>,
    /// Every launch step.
    pub(super) launches: Vec<StepId>,
    /// The detach steps of volumes on retired instances.
    pub(super) detaches: Vec<StepId>,
    /// The note on a rolling replacement, when there is more than one
    /// instance to replace.
    pub(super) rolling: Option<Note>,
    /// Notes on declared addresses: predecessors that go first to hand
    /// theirs over, launches that wait for one.
    pub(super) address_notes: Vec<Note>,
    /// The declared addresses the launches take.
    pub(super) addresses: Vec<Ipv4Addr>,
}

/// A replaced instance, the zone its successor launches in, and the
/// declared address the successor takes, if the fleet declares them.
struct Succession<'o> {
    zone: Zone,
    predecessor: Retiring<'o>,
    ip: Option<Ipv4Addr>,
    /// A step that frees the address first (another instance's
    /// termination).
    after: Option<StepId>,
}

/// What every launch of one fleet shares.
struct Launcher<'w> {
    fleet: &'w ResourceName,
    spec: &'w LaunchSpec,
    /// With a Network: the subnet of each zone.
    subnets: &'w BTreeMap<Zone, SubnetRef>,
    /// The steps every launch waits for.
    base_deps: &'w BTreeSet<StepId>,
    /// Seeds the launches' client tokens: the launch-spec hash and the
    /// fleet's instances, so that a retried apply reuses the tokens.
    token_seed: String,
    /// The balancers the fleet is behind (those it can join).
    balancers: Vec<BalancerHandle>,
    /// Whether the manifests put it behind any balancer (one left in
    /// another VPC included: its successors are still waited for).
    behind_balancer: bool,
    /// The fleet's declared addresses, as launches take them.
    book: RefCell<AddressBook>,
}

impl Launcher<'_> {
    /// Up to `count` declared addresses in `zone` for new instances, with
    /// the steps that free them first; `None` when the fleet declares
    /// none (the subnet picks).
    fn take(&self, zone: &Zone, count: u32) -> Option<(Vec<Ipv4Addr>, Vec<StepId>)> {
        let mut book = self.book.borrow_mut();
        if book.is_empty() {
            return None;
        }
        let mut ips = Vec::new();
        let mut after = Vec::new();
        for _ in 0..count {
            let Some(t) = book.take(zone) else { break };
            ips.push(t.ip);
            after.extend(t.after);
        }
        Some((ips, after))
    }
}

/// The note on launches that wait for a declared address.
fn no_address(zone: &Zone, short: u32) -> Note {
    Note::Waiting {
        reason: format!(
            "{short} instance(s) in {zone} wait for an address of spec.privateIps: every one in the zone is held"
        ),
    }
}

impl<'a> Planner<'a> {
    /// Retires, launches and replaces a fleet's instances as `placement`
    /// says.
    pub(super) fn roll_out(
        &mut self,
        name: &ResourceName,
        spec: &FleetSpec,
        wanted: &Wanted<'_>,
        running: &Running<'_>,
        placement: &Placement<'_>,
        book: AddressBook,
    ) -> Rollout {
        let token_seed = {
            let mut ids: Vec<&str> = running.all.iter().map(|i| i.id.as_str()).collect();
            ids.sort_unstable();
            format!(
                "{}|{}",
                wanted.hash.as_deref().unwrap_or("?"),
                ids.join(",")
            )
        };
        let l = Launcher {
            fleet: name,
            spec: &wanted.launch_spec,
            subnets: &wanted.subnets,
            base_deps: &wanted.base_deps,
            token_seed,
            balancers: self.balancers_of(name),
            behind_balancer: self.index.balancers_of.contains_key(name),
            book: RefCell::new(book),
        };
        let mut out = Rollout::default();
        // What goes without a successor: stopped, surplus, leftovers.
        for r in &placement.retire_now {
            let (t, det) = self.retire(name, *r, &[]);
            l.book.borrow_mut().freed_by(&r.instance.id, t);
            out.detaches.extend(det);
            out.instance_changes.push(r.change());
        }
        // Growth: launched at once (after the terminations that free
        // their declared addresses, if any).
        for (zone, count) in group_zones(&placement.growth) {
            let (count, ips, after) = match l.take(&zone, count) {
                None => (count, Vec::new(), Vec::new()),
                Some((ips, after)) => {
                    let got = ips.len() as u32;
                    if got < count {
                        out.address_notes.push(no_address(&zone, count - got));
                    }
                    (got, ips, after)
                }
            };
            if count == 0 {
                continue;
            }
            let mut deps = l.base_deps.clone();
            deps.extend(after);
            let (step, _) = self.launch(&l, &zone, count, &deps, 0, &ips);
            out.launches.push(step);
            out.addresses.extend(ips.iter().copied());
            out.instance_changes.push(InstanceChange::Launch {
                zone,
                count,
                reason: LaunchReason::Scale,
                addresses: ips,
            });
        }
        out.rolling = self.replacement_waves(&l, spec.update, &placement.replaced, &mut out);
        out
    }

    /// Replaces instances in waves of `maxSurge + maxUnavailable` (at
    /// least one), each wave after the previous one's successors are up;
    /// returns the note on a rolling replacement.
    fn replacement_waves(
        &mut self,
        l: &Launcher<'_>,
        budget: UpdatePolicy,
        replaced: &[(Zone, Retiring<'_>)],
        out: &mut Rollout,
    ) -> Option<Note> {
        let per_wave = (budget.max_surge + budget.max_unavailable).max(1) as usize;
        let mut prev_wave: Vec<StepId> = Vec::new();
        let waves = replaced.len().div_ceil(per_wave);
        for (w, chunk) in replaced.chunks(per_wave).enumerate() {
            let first = (budget.max_unavailable as usize).min(chunk.len());
            prev_wave = self.wave(l, w + 1, chunk, first, &prev_wave, out);
        }
        (waves > 1 || (waves == 1 && replaced.len() > 1)).then(|| Note::Rolling {
            per_wave: per_wave as u32,
            waves: waves as u32,
            max_unavailable: budget.max_unavailable.min(per_wave as u32),
        })
    }

    /// One wave (numbered from 1): its `first` predecessors go after the
    /// previous wave, the successors launch after them, the rest go once
    /// the successors are healthy. A successor that can only take its
    /// predecessor's declared address makes that predecessor go first.
    /// Returns the steps the next wave waits for.
    fn wave(
        &mut self,
        l: &Launcher<'_>,
        wave: usize,
        chunk: &[(Zone, Retiring<'_>)],
        first: usize,
        prev_wave: &[StepId],
        out: &mut Rollout,
    ) -> Vec<StepId> {
        let (items, first) = self.successions(l, chunk, first, out);
        let mut wave_end: Vec<StepId> = Vec::new();
        for it in &items[..first] {
            let (t, det) = self.retire(l.fleet, it.predecessor, prev_wave);
            out.detaches.extend(det);
            wave_end.push(t);
        }
        let mut deps = l.base_deps.clone();
        deps.extend(prev_wave.iter().copied());
        deps.extend(wave_end.iter().copied());
        deps.extend(items.iter().filter_map(|it| it.after));
        let zones_here: Vec<Zone> = items.iter().map(|it| it.zone.clone()).collect();
        let mut wave_launches = Vec::new();
        let mut wave_regs = Vec::new();
        for (zone, count) in group_zones(&zones_here) {
            let ips: Vec<Ipv4Addr> = items
                .iter()
                .filter(|it| it.zone == zone)
                .filter_map(|it| it.ip)
                .collect();
            let (step, regs) = self.launch(l, &zone, count, &deps, wave, &ips);
            wave_launches.push(step);
            wave_regs.extend(regs);
            out.addresses.extend(ips.iter().copied());
            out.instance_changes.push(InstanceChange::Launch {
                zone,
                count,
                reason: LaunchReason::Replace,
                addresses: ips,
            });
        }
        let wait = if !l.behind_balancer {
            wave_launches.clone()
        } else {
            vec![
                self.add(
                    Step::WaitHealthy {
                        fleet: l.fleet.clone(),
                        instances: wave_launches
                            .iter()
                            .map(|s| InstanceRef::Launched(*s))
                            .collect(),
                        balancers: l.balancers.clone(),
                    },
                    wave_launches.iter().chain(&wave_regs).copied(),
                ),
            ]
        };
        for it in &items[first..] {
            let (t, det) = self.retire(l.fleet, it.predecessor, &wait);
            out.detaches.extend(det);
            wave_end.push(t);
        }
        out.instance_changes
            .extend(items.iter().map(|it| it.predecessor.change()));
        out.launches.extend(wave_launches);
        // The next wave starts once this wave's successors are up
        // (healthy behind the balancers, or running): with
        // maxUnavailable > 0 the wave's own terminations come before
        // its launches, so they alone do not say that.
        wave_end.extend(wait);
        wave_end
    }

    /// A wave's successions, those whose predecessors go first at the
    /// front, and how many go first. Without declared addresses: the
    /// chunk as it is and its `first`. With them, each successor takes a
    /// spare address of its zone, else its predecessor's (which then goes
    /// first, taking one of the wave's `maxUnavailable`); one with
    /// neither waits (its predecessor stays this pass).
    fn successions<'o>(
        &mut self,
        l: &Launcher<'_>,
        chunk: &[(Zone, Retiring<'o>)],
        first: usize,
        out: &mut Rollout,
    ) -> (Vec<Succession<'o>>, usize) {
        let mut book = l.book.borrow_mut();
        let plain = |(zone, r): &(Zone, Retiring<'o>)| Succession {
            zone: zone.clone(),
            predecessor: *r,
            ip: None,
            after: None,
        };
        if book.is_empty() {
            return (chunk.iter().map(plain).collect(), first);
        }
        let mut handing: Vec<Succession<'o>> = Vec::new();
        let mut surging: Vec<Succession<'o>> = Vec::new();
        let mut waiting: BTreeMap<Zone, u32> = BTreeMap::new();
        for c in chunk {
            let (zone, r) = c;
            if let Some(t) = book.take(zone) {
                surging.push(Succession {
                    ip: Some(t.ip),
                    after: t.after,
                    ..plain(c)
                });
            } else if let Some(ip) = book.take_own(&r.instance.id) {
                handing.push(Succession {
                    ip: Some(ip),
                    ..plain(c)
                });
            } else {
                *waiting.entry(zone.clone()).or_default() += 1;
            }
        }
        for (zone, n) in waiting {
            out.address_notes.push(no_address(&zone, n));
        }
        if !handing.is_empty() {
            out.address_notes.push(Note::AddressHandOver {
                instances: handing
                    .iter()
                    .map(|s| s.predecessor.instance.id.clone())
                    .collect(),
            });
        }
        let first = handing.len() + first.saturating_sub(handing.len()).min(surging.len());
        handing.extend(surging);
        (handing, first)
    }

    /// Deregisters, detaches and terminates one instance after `deps`;
    /// returns the terminate step and the detach step, if a volume was
    /// attached.
    pub(super) fn retire(
        &mut self,
        fleet: &ResourceName,
        r: Retiring<'_>,
        deps: &[StepId],
    ) -> (StepId, Option<StepId>) {
        let id = &r.instance.id;
        let mut before: Vec<StepId> = deps.to_vec();
        let left = self.leave_balancers(id, deps);
        before.extend(left);
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
            let s = self.detach(&v.owner.name, &v.id, id, before.iter().copied());
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

    /// The balancers a fleet's new instances join, as the plan leaves
    /// them (with every target group).
    fn balancers_of(&self, fleet: &ResourceName) -> Vec<BalancerHandle> {
        self.index
            .balancers_of
            .get(fleet)
            .into_iter()
            .flatten()
            .filter(|b| !self.stranded.contains(*b))
            .filter_map(|b| self.balancers.get(b).map(|p| p.handle.clone()))
            .collect()
    }

    /// Launches `count` instances in `zone` after `deps` and registers
    /// them with the fleet's balancers; returns the launch step and the
    /// register steps.
    fn launch(
        &mut self,
        l: &Launcher<'_>,
        zone: &Zone,
        count: u32,
        deps: &BTreeSet<StepId>,
        wave: usize,
        ips: &[Ipv4Addr],
    ) -> (StepId, Vec<StepId>) {
        let mut spec = l.spec.clone();
        spec.subnet = l.subnets.get(zone).cloned();
        let subnet_text = match &spec.subnet {
            Some(Ref::Known(s)) => s.to_string(),
            Some(Ref::Created(step)) => format!("step {step}"),
            None => String::new(),
        };
        let public = spec.public_ip.map(|p| p.to_string()).unwrap_or_default();
        let mut token_parts = vec![
            self.desired().stack.as_str(),
            l.fleet.as_str(),
            zone.as_str(),
        ];
        let (count_text, wave_text) = (count.to_string(), wave.to_string());
        token_parts.extend([count_text.as_str(), wave_text.as_str(), &l.token_seed]);
        // A launch into a subnet (or with an explicit public address) is
        // another request: its token must differ, or EC2 answers
        // IdempotentParameterMismatch. Without either, tokens stay as
        // they were.
        if !subnet_text.is_empty() || !public.is_empty() {
            token_parts.extend([subnet_text.as_str(), public.as_str()]);
        }
        let ips_text = ips
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",");
        if !ips.is_empty() {
            token_parts.push(ips_text.as_str());
        }
        let token = short_digest(&token_parts);
        let step = self.add(
            Step::Launch {
                fleet: l.fleet.clone(),
                zone: zone.clone(),
                count,
                spec,
                token,
                private_ips: ips.to_vec(),
            },
            deps.iter().copied(),
        );
        let mut regs = Vec::new();
        for b in &l.balancers {
            let ready = self
                .balancers
                .get(&b.name)
                .map(|p| p.ready.clone())
                .unwrap_or_default();
            let r = self.add(
                Step::Register {
                    balancer: b.clone(),
                    instances: vec![InstanceRef::Launched(step)],
                },
                std::iter::once(step).chain(ready),
            );
            regs.push(r);
        }
        (step, regs)
    }
}
