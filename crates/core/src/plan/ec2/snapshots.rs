//! Planning a volume's scheduled snapshots: the reconcile loop decides
//! which are due and which go ([`SnapshotWork`], an input of the planner),
//! and the plan takes and prunes them like any other change, so the
//! plan's changes and steps agree.

use super::super::Planner;
use crate::controller::snapshots::SnapshotWork;
use crate::ids::{Kind, ResourceKey};
use crate::plan::{ChangeAction, Note};

impl Planner<'_> {
    /// The snapshots due and the snapshots pruned, as independent steps,
    /// each noted on its volume's change.
    pub(crate) fn scheduled_snapshots(&mut self) {
        let work: &SnapshotWork = self.input.snapshots;
        let notes = work
            .take
            .iter()
            .map(|(name, _)| (name, Note::SnapshotDue))
            .chain(work.prune.iter().map(|(name, snapshot)| {
                (
                    name,
                    Note::SnapshotPruned {
                        snapshot: snapshot.clone(),
                    },
                )
            }));
        for (name, note) in notes {
            let key = ResourceKey::new(Kind::Volume, name.clone());
            match self.changes.iter_mut().find(|c| c.key == key) {
                Some(c) => {
                    if c.action == ChangeAction::NoChange {
                        c.action = ChangeAction::Update;
                    }
                    c.notes.push(note);
                }
                None => self.change(key, ChangeAction::Update).notes.push(note),
            }
        }
        for step in work.steps(self.desired()) {
            self.add(step, []);
        }
    }
}
