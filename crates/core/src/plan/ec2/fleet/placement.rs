//! The second phase of planning a fleet: where its instances stand.
//! Each running instance is sorted (stays, is replaced because it is
//! outdated, in a zone the fleet left or unhealthy, or goes: stopped, or
//! chosen by the autoscaler), then the current ones are scaled to the
//! target zone by zone, and the instances to replace are paired with the
//! zones their successors launch in.

use super::wanted::Wanted;
use super::zones::{fill, pair_by_zone, spread};
use super::{Retiring, Running};
use crate::desired::FleetSpec;
use crate::ids::Zone;
use crate::observed::{InstanceState, ObservedInstance};
use crate::plan::{Planner, TerminateReason};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// A fleet's instances, sorted by what happens to them.
struct Triage<'o> {
    /// Instances that go without a successor: stopped ones, and those the
    /// autoscaler chose.
    retire_now: Vec<Retiring<'o>>,
    /// Instances to replace: outdated, in a zone the fleet left, or
    /// unhealthy.
    old: Vec<Retiring<'o>>,
    /// Instances that are as declared, by zone.
    current_by_zone: BTreeMap<&'o Zone, Vec<&'o ObservedInstance>>,
}

/// What a fleet does with its instances.
pub(super) struct Placement<'o> {
    /// Instances that go without a successor: stopped, chosen by the
    /// autoscaler, surplus, or replaced ones left over when the fleet
    /// shrinks.
    pub(super) retire_now: Vec<Retiring<'o>>,
    /// Current instances that stay, sorted by ID.
    pub(super) staying: Vec<&'o ObservedInstance>,
    /// Instances replaced, each with the zone its successor launches in,
    /// oldest first.
    pub(super) replaced: Vec<(Zone, Retiring<'o>)>,
    /// Zones to launch new instances in (growth), one entry per instance.
    pub(super) growth: Vec<Zone>,
}

impl<'a> Planner<'a> {
    /// Decides which instances stay, which are replaced, which go, and
    /// where the fleet grows.
    pub(super) fn placement<'o>(
        &self,
        spec: &FleetSpec,
        wanted: &Wanted<'_>,
        running: &Running<'o>,
    ) -> Placement<'o> {
        let Triage {
            mut retire_now,
            mut old,
            mut current_by_zone,
        } = self.triage(wanted, running);
        let zones = &wanted.zones;
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
            fill(wanted.target, zones, &have)
        } else {
            spread(wanted.target, zones)
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
        let (replaced, leftover, growth) = pair_by_zone(deficits, old);
        retire_now.extend(leftover);
        staying.sort_by(|a, b| a.id.cmp(&b.id));
        Placement {
            retire_now,
            staying,
            replaced,
            growth,
        }
    }

    /// Sorts a fleet's instances: stopped ones and those the autoscaler
    /// chose go; outdated, misplaced and unhealthy ones are replaced; the
    /// rest are current.
    fn triage<'o>(&self, wanted: &Wanted<'_>, running: &Running<'o>) -> Triage<'o> {
        let mut retire_now: Vec<Retiring> = Vec::new();
        for i in running
            .all
            .iter()
            .filter(|i| i.state == InstanceState::Stopped)
        {
            retire_now.push(Retiring {
                instance: i,
                reason: TerminateReason::Stopped,
            });
        }
        let mut current_by_zone: BTreeMap<&Zone, Vec<&ObservedInstance>> = BTreeMap::new();
        let mut old: Vec<Retiring> = Vec::new();
        for i in &running.live {
            if self.input.retire.contains(&i.id) {
                // The autoscaler chose it to go when the fleet scales in.
                retire_now.push(Retiring {
                    instance: i,
                    reason: TerminateReason::Scale,
                });
            } else if let Some(reason) = self.replace_reason(wanted, i) {
                old.push(Retiring {
                    instance: i,
                    reason,
                });
            } else {
                current_by_zone.entry(&i.zone).or_default().push(i);
            }
        }
        Triage {
            retire_now,
            old,
            current_by_zone,
        }
    }

    /// Why a running instance must be replaced, if it must.
    fn replace_reason(&self, wanted: &Wanted<'_>, i: &ObservedInstance) -> Option<TerminateReason> {
        let outdated = match &wanted.hash {
            Some(h) => i.spec_hash.as_ref() != Some(h),
            None => true,
        };
        // With a Network, an instance must be in its zone's subnet (one
        // this plan creates holds none yet).
        let wrong_subnet = wanted
            .subnets
            .get(&i.zone)
            .is_some_and(|s| s.known().is_none() || s.known() != i.subnet.as_ref());
        // An instance in another VPC than the stack's (a Network declared
        // or removed) cannot even change groups: it is replaced.
        let wrong_vpc = match (&self.vpc, &i.vpc) {
            (Some(want), Some(have)) => want.known() != Some(have),
            _ => false,
        };
        // An explicit `publicIp` is judged on running instances only: a
        // pending one may not show its address yet.
        let wrong_public = wanted
            .launch_spec
            .public_ip
            .is_some_and(|want| i.state == InstanceState::Running && want != i.public_ip.is_some());
        // With declared addresses, each instance holds one of them.
        let wrong_address = !wanted.addresses.is_empty()
            && i.private_ip
                .is_some_and(|ip| !wanted.addresses.iter().any(|(a, _)| *a == ip));
        if !wanted.zones.contains(&i.zone) {
            Some(TerminateReason::WrongZone)
        } else if wrong_subnet || wrong_vpc {
            Some(TerminateReason::WrongSubnet)
        } else if wrong_address {
            Some(TerminateReason::WrongAddress)
        } else if outdated || wrong_public {
            Some(TerminateReason::Outdated)
        } else if self.input.replace.contains(&i.id) {
            Some(TerminateReason::Unhealthy)
        } else if self.input.replace_fleets.contains(&i.owner.name) {
            Some(TerminateReason::Requested)
        } else {
            None
        }
    }
}

/// Oldest first; ties by ID.
fn by_age(a: &&ObservedInstance, b: &&ObservedInstance) -> Ordering {
    (a.launched_at, &a.id).cmp(&(b.launched_at, &b.id))
}
