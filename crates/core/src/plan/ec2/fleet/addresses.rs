//! A fleet's declared private addresses (`spec.privateIps`): which one
//! each launch takes. An address is free when no instance holds it (a
//! terminated instance holds none), about to be free when its instance
//! is shutting down (the launch waits for it: EC2 answers
//! `InvalidIPAddress.InUse` until then), and free after a step when this
//! plan terminates its instance. A lost instance's successor so takes
//! its address again, and what reads the fleet's addresses
//! (`${Fleet/db.privateIp}`) does not change.

use crate::desired::FleetSpec;
use crate::ids::{InstanceId, ResourceName, Zone};
use crate::observed::{InstanceState, ObservedInstance};
use crate::plan::{PlanError, Planner, StepId};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Where a declared address stands in this plan.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Slot {
    /// No instance holds it.
    Free,
    /// A shutting-down instance holds it until it is terminated.
    Leaving,
    /// A live instance of the fleet holds it.
    Held(InstanceId),
    /// Its instance is terminated by this step.
    FreedBy(StepId),
    /// A launch of this plan takes it.
    Taken,
}

/// The fleet's declared addresses and who holds each, as launches take
/// them.
#[derive(Debug, Default)]
pub(super) struct AddressBook {
    /// Each address with its zone (its subnet's), in the manifest's order.
    declared: Vec<(Ipv4Addr, Zone)>,
    slots: BTreeMap<Ipv4Addr, Slot>,
}

/// An address a launch takes, and the step that frees it, if one must
/// run first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Taken {
    /// The address.
    pub(super) ip: Ipv4Addr,
    /// The termination of the instance that holds it now.
    pub(super) after: Option<StepId>,
}

impl AddressBook {
    /// The book of `declared` addresses as `instances` (every instance of
    /// the fleet, in any state) hold them.
    pub(super) fn new(declared: Vec<(Ipv4Addr, Zone)>, instances: &[&ObservedInstance]) -> Self {
        let mut slots: BTreeMap<Ipv4Addr, Slot> =
            declared.iter().map(|(a, _)| (*a, Slot::Free)).collect();
        for i in instances {
            let Some(slot) = i.private_ip.and_then(|a| slots.get_mut(&a)) else {
                continue;
            };
            match i.state {
                InstanceState::Terminated => {}
                InstanceState::ShuttingDown => {
                    if *slot == Slot::Free {
                        *slot = Slot::Leaving;
                    }
                }
                _ => *slot = Slot::Held(i.id.clone()),
            }
        }
        AddressBook { declared, slots }
    }

    /// Whether the fleet declares addresses at all.
    pub(super) fn is_empty(&self) -> bool {
        self.declared.is_empty()
    }

    /// Notes that `step` terminates `instance`: its address is free after.
    pub(super) fn freed_by(&mut self, instance: &InstanceId, step: StepId) {
        for slot in self.slots.values_mut() {
            if *slot == Slot::Held(instance.clone()) {
                *slot = Slot::FreedBy(step);
            }
        }
    }

    /// Takes an address in `zone`: a free one first (in the manifest's
    /// order), then one about to be free, then one this plan frees.
    pub(super) fn take(&mut self, zone: &Zone) -> Option<Taken> {
        let in_zone: Vec<Ipv4Addr> = self
            .declared
            .iter()
            .filter(|(_, z)| z == zone)
            .map(|(a, _)| *a)
            .collect();
        let rank = |s: &Slot| match s {
            Slot::Free => Some(0),
            Slot::Leaving => Some(1),
            Slot::FreedBy(_) => Some(2),
            Slot::Held(_) | Slot::Taken => None,
        };
        let (ip, after) = in_zone
            .iter()
            .filter_map(|a| {
                let s = &self.slots[a];
                Some((rank(s)?, *a, s))
            })
            .min_by_key(|(r, _, _)| *r)
            .map(|(_, a, s)| {
                let after = match s {
                    Slot::FreedBy(step) => Some(*step),
                    _ => None,
                };
                (a, after)
            })?;
        self.slots.insert(ip, Slot::Taken);
        Some(Taken { ip, after })
    }

    /// The declared address `instance` holds, taken for its successor
    /// (which must launch after it is terminated).
    pub(super) fn take_own(&mut self, instance: &InstanceId) -> Option<Ipv4Addr> {
        let ip = self
            .slots
            .iter()
            .find(|(_, s)| **s == Slot::Held(instance.clone()))
            .map(|(a, _)| *a)?;
        self.slots.insert(ip, Slot::Taken);
        Some(ip)
    }
}

impl<'a> Planner<'a> {
    /// The fleet's declared addresses with the zone of the subnet each is
    /// in; refuses one in none of the fleet's subnets, or one AWS
    /// reserves (validation checks both for created subnets, an existing
    /// VPC's blocks are known only once observed).
    pub(super) fn declared_addresses(
        &self,
        name: &ResourceName,
        spec: &FleetSpec,
    ) -> Result<Vec<(Ipv4Addr, Zone)>, PlanError> {
        let mut out = Vec::new();
        for ip in &spec.private_ips {
            let subnet = spec
                .subnets
                .iter()
                .filter_map(|s| self.subnets.get(s).map(|p| (s, p)))
                .find(|(_, p)| p.cidr.contains_addr(*ip));
            match subnet {
                Some((s, p)) if crate::net::reserved_address(p.cidr, *ip) => {
                    return Err(PlanError::ReservedAddress {
                        fleet: name.clone(),
                        ip: *ip,
                        subnet: s.clone(),
                        cidr: p.cidr,
                    });
                }
                Some((_, p)) => out.push((*ip, p.zone.clone())),
                None => {
                    return Err(PlanError::AddressOutsideSubnets {
                        fleet: name.clone(),
                        ip: *ip,
                    });
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;
    use crate::observed::Owner;

    fn instance(id: &str, ip: &str, state: InstanceState) -> ObservedInstance {
        ObservedInstance {
            id: id.parse().unwrap(),
            owner: Owner {
                stack: "s".into(),
                kind: crate::ids::Kind::Fleet,
                name: "db".into(),
            },
            zone: Zone::from("us-east-1a"),
            state,
            private_ip: Some(ip.parse().unwrap()),
            subnet: None,
            vpc: None,
            public_ip: None,
            launched_at: "2026-03-09T12:00:00Z".parse().unwrap(),
            image: "ami-1".into(),
            instance_type: "m1.small".into(),
            key_name: None,
            groups: Vec::new(),
            spec_hash: None,
            user_data: None,
            tags: Default::default(),
            profile: None,
            metadata: Default::default(),
        }
    }

    fn book(instances: &[ObservedInstance]) -> AddressBook {
        let a = Zone::from("us-east-1a");
        let refs: Vec<&ObservedInstance> = instances.iter().collect();
        AddressBook::new(
            vec![
                ("10.0.10.10".parse().unwrap(), a.clone()),
                ("10.0.10.11".parse().unwrap(), a),
            ],
            &refs,
        )
    }

    #[test]
    fn a_lost_instance_address_is_taken_again_first() {
        let a = Zone::from("us-east-1a");
        let lost = instance(
            "i-0000000000000000a",
            "10.0.10.10",
            InstanceState::Terminated,
        );
        let mut b = book(&[lost]);
        assert_eq!(b.take(&a).map(|t| t.ip), "10.0.10.10".parse().ok());
        assert_eq!(b.take(&a).map(|t| t.ip), "10.0.10.11".parse().ok());
        assert_eq!(b.take(&a), None);
    }

    #[test]
    fn free_comes_before_leaving_before_freed_by_this_plan() {
        let a = Zone::from("us-east-1a");
        let leaving = instance(
            "i-0000000000000000a",
            "10.0.10.10",
            InstanceState::ShuttingDown,
        );
        let live = instance("i-0000000000000000b", "10.0.10.11", InstanceState::Running);
        let mut b = book(&[leaving, live.clone()]);
        b.freed_by(&live.id, 7);
        let first = b.take(&a).unwrap();
        assert_eq!(
            (first.ip, first.after),
            ("10.0.10.10".parse().unwrap(), None)
        );
        let second = b.take(&a).unwrap();
        assert_eq!(
            (second.ip, second.after),
            ("10.0.10.11".parse().unwrap(), Some(7))
        );
        assert_eq!(b.take(&Zone::from("us-east-1b")), None);
    }

    #[test]
    fn a_successor_takes_its_predecessor_address() {
        let live = instance("i-0000000000000000b", "10.0.10.11", InstanceState::Running);
        let mut b = book(std::slice::from_ref(&live));
        assert_eq!(b.take_own(&live.id), "10.0.10.11".parse().ok());
        assert_eq!(b.take_own(&live.id), None);
    }
}
