//! The fifth phase of planning a fleet: the volume attached to a
//! one-instance fleet follows its instance (detached from the old one,
//! attached to the one that stays or to its successor).

use super::wanted::Wanted;
use crate::ids::{Kind, ResourceName};
use crate::observed::ObservedInstance;
use crate::plan::{ChangeAction, FieldDiff, InstanceRef, Planner, Step, StepId, Value, VolumeRef};

impl<'a> Planner<'a> {
    /// Attaches the fleet's volume to its instance (the one that stays,
    /// else the first launched) unless it is attached there already;
    /// returns whether the volume moves from another instance.
    pub(super) fn move_volume(
        &mut self,
        name: &ResourceName,
        wanted: &Wanted<'_>,
        staying: &[&ObservedInstance],
        launches: &[StepId],
        detaches: &[StepId],
    ) -> bool {
        let Some((vname, vspec)) = wanted.volume else {
            return false;
        };
        let Some(attach) = &vspec.attach else {
            return false;
        };
        let Some(vs) = self.volumes.get(vname).cloned() else {
            return false;
        };
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
        let Some(holder) = holder else {
            return false;
        };
        if already {
            return false;
        }
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
                None => deps.push(self.detach(vname, vid, &a.instance, [])),
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
        vs.attached_to.is_some()
    }
}
