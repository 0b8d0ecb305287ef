//! Planning a fleet: how many instances, in which zones, which ones go,
//! and how outdated ones are replaced in waves within the update budget
//! (each successor launched, registered and healthy before its
//! predecessor is deregistered and terminated).
//!
//! [`Planner::fleet`] runs the phases in order, each in its own file and
//! each handing the next a typed result: what the fleet should run
//! ([`wanted`]: count, zones, launch spec, user data), where its instances
//! stand ([`placement`]: keep, replace, retire, grow), the steps that get
//! there ([`rollout`]: retirements, growth, replacement waves), in-place
//! drift on the instances that stay, set back in place (groups, tags,
//! metadata options, instance profile: [`drift`]), the attached volume
//! following the instance ([`volume`]), and the change the plan shows
//! ([`change`]).

mod addresses;
mod change;
mod drift;
mod placement;
mod rollout;
mod target;
mod user_data;
mod volume;
mod wanted;
mod zones;

use rollout::Rollout;

pub use target::fleet_target;
pub(crate) use target::reference_order;
pub use wanted::ROOT_VOLUME_TAG;
pub use zones::spread_share;

use crate::desired::FleetSpec;
use crate::ids::{InstanceId, Kind, ResourceKey, ResourceName};
use crate::observed::{InstanceState, ObservedInstance};
use crate::plan::{
    ChangeAction, InstanceChange, Note, PlanError, Planner, StepId, TerminateReason, is_live,
};
use std::collections::BTreeMap;
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
    /// With declared addresses (`spec.privateIps`): every address the
    /// fleet's instances hold once the plan is done, sorted; known now,
    /// launches or not.
    pub planned_ips: Option<Vec<Ipv4Addr>>,
}

/// An instance that goes, and why.
#[derive(Clone, Copy)]
struct Retiring<'o> {
    instance: &'o ObservedInstance,
    reason: TerminateReason,
}

/// A fleet's instances as observed.
struct Running<'o> {
    /// Every instance the fleet owns, in any state.
    all: Vec<&'o ObservedInstance>,
    /// Those that count towards the fleet.
    live: Vec<&'o ObservedInstance>,
}

impl<'a> Planner<'a> {
    /// Plans one declared fleet (after the fleets its user data
    /// references): its instances, their replacement and drift, its
    /// volume's attachment, and its change entry.
    pub(crate) fn fleet(&mut self, name: &ResourceName) -> Result<(), PlanError> {
        let spec = &self.desired().fleets[name];
        let all: Vec<&ObservedInstance> = self
            .index
            .instances_by_fleet
            .get(name)
            .cloned()
            .unwrap_or_default();
        let live = all.iter().copied().filter(|i| is_live(i.state)).collect();
        let running = Running { all, live };
        let (target, mut notes) = self.target_replicas(name, spec, running.live.len() as u32);
        let wanted = self.wanted(name, spec, target)?;
        let placement = self.placement(spec, &wanted, &running);
        let book = addresses::AddressBook::new(wanted.addresses.clone(), &running.all);
        let Rollout {
            mut instance_changes,
            launches,
            detaches,
            rolling,
            address_notes,
            addresses,
        } = self.roll_out(name, spec, &wanted, &running, &placement, book);
        notes.extend(rolling);
        notes.extend(address_notes);
        let drift = self.drift(name, &wanted, &placement.staying);
        instance_changes.extend(drift.changes);
        let volume_moved =
            self.move_volume(name, &wanted, &placement.staying, &launches, &detaches);
        if volume_moved
            && !placement.replaced.is_empty()
            && let Some((vname, _)) = wanted.volume
        {
            notes.push(Note::VolumeMoves {
                volume: vname.clone(),
            });
        }
        let mut shown = change::shown(spec, &wanted, &running, &placement);
        shown.in_place(drift.fields);
        self.fleet_change(name, shown, instance_changes, notes);

        let staying = &placement.staying;
        let mut staying_ips: Vec<Ipv4Addr> = staying.iter().filter_map(|i| i.private_ip).collect();
        staying_ips.sort();
        let planned_ips = (!wanted.addresses.is_empty()).then(|| {
            let mut all: Vec<Ipv4Addr> = staying_ips.iter().copied().chain(addresses).collect();
            all.sort();
            all.dedup();
            all
        });
        self.fleets.insert(
            name.clone(),
            FleetOutcome {
                staying: staying.iter().map(|i| i.id.clone()).collect(),
                staying_ips,
                launches,
                planned_ips,
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
                let r = Retiring {
                    instance: i,
                    reason: TerminateReason::Removed,
                };
                self.retire(&name, r, &[]);
                changes.push(r.change());
            }
            let c = self.change(ResourceKey::new(Kind::Fleet, name), ChangeAction::Delete);
            c.instances = changes;
        }
    }
}

impl<'a> Planner<'a> {
    fn target_replicas(
        &self,
        name: &ResourceName,
        spec: &FleetSpec,
        live: u32,
    ) -> (u32, Vec<Note>) {
        fleet_target(
            spec,
            self.input.at,
            self.input.scale.get(name).copied(),
            live,
        )
    }
}

impl Retiring<'_> {
    /// How the plan shows it going.
    fn change(&self) -> InstanceChange {
        InstanceChange::Terminate {
            instance: self.instance.id.clone(),
            zone: self.instance.zone.clone(),
            reason: self.reason,
        }
    }
}
