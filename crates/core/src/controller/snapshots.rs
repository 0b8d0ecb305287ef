//! Scheduled snapshots: which volumes are due one, and which of
//! converge's snapshots go to keep only the newest `keep`.
//!
//! Stateless: a volume is due when none of converge's snapshots of it
//! started at or after its schedule's latest firing (read in the
//! schedule's time zone), so a loop that restarts neither misses a
//! snapshot nor takes one twice. Only snapshots carrying converge's tags
//! for this stack and volume are ever considered; a pending snapshot is
//! never deleted, and a final snapshot (taken before a delete) is never
//! pruned.

use crate::desired::Desired;
use crate::ids::{ResourceName, SnapshotId, VolumeId, tags};
use crate::observed::{Observed, ObservedSnapshot, ObservedVolume, SnapshotState, VolumeState};
use crate::plan::{SnapshotPurpose, Step, snapshot_tags};
use jiff::Timestamp;

/// What the schedules ask for now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SnapshotWork {
    /// Volumes due a snapshot: (manifest name, volume).
    pub take: Vec<(ResourceName, VolumeId)>,
    /// Snapshots to delete: (volume's manifest name, snapshot).
    pub prune: Vec<(ResourceName, SnapshotId)>,
}

impl SnapshotWork {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.take.is_empty() && self.prune.is_empty()
    }

    /// The steps that do it: snapshots to take, then snapshots to delete,
    /// all independent of each other.
    pub fn steps(&self, desired: &Desired) -> Vec<Step> {
        let take = self.take.iter().map(|(name, volume)| Step::Snapshot {
            name: name.clone(),
            volume: volume.clone(),
            purpose: SnapshotPurpose::Scheduled,
            tags: snapshot_tags(desired, name, SnapshotPurpose::Scheduled),
        });
        let prune = self
            .prune
            .iter()
            .map(|(name, snapshot)| Step::DeleteSnapshot {
                name: name.clone(),
                snapshot: snapshot.clone(),
            });
        take.chain(prune).collect()
    }
}

/// Decides the snapshots to take and to prune at `at`.
pub fn snapshot_work(desired: &Desired, observed: &Observed, at: Timestamp) -> SnapshotWork {
    let mut work = SnapshotWork::default();
    for (name, spec) in &desired.volumes {
        let Some(policy) = &spec.snapshots else {
            continue;
        };
        let tz = policy.timezone.zone();
        let mine: Vec<&ObservedSnapshot> = observed
            .snapshots
            .iter()
            .filter(|s| {
                s.volume == *name
                    && s.tags.get(tags::STACK).map(String::as_str) == Some(desired.stack.as_str())
            })
            .collect();

        // Due: the volume as the planner sees it (in its declared zone,
        // attached copies first), ready, and no snapshot since the latest
        // firing that came after the volume existed.
        let current: Option<&ObservedVolume> = observed
            .volumes
            .iter()
            .filter(|v| v.owner.name == *name && v.zone == spec.zone)
            .min_by_key(|v| (v.attachment.is_none(), v.created_at, v.id.clone()));
        if let Some(v) = current
            && matches!(v.state, VolumeState::Available | VolumeState::InUse)
            && let Some(fired) = policy.schedule.latest_at_or_before(at, tz)
            && fired >= v.created_at
            && !mine
                .iter()
                .any(|s| s.state != SnapshotState::Error && s.started_at >= fired)
        {
            work.take.push((name.clone(), v.id.clone()));
        }

        // Prune: the newest `keep` completed scheduled snapshots stay;
        // older completed ones and failed ones go; pending ones wait.
        let mut scheduled: Vec<&ObservedSnapshot> = mine
            .into_iter()
            .filter(|s| {
                s.tags.get(tags::PURPOSE).map(String::as_str)
                    == Some(SnapshotPurpose::Scheduled.as_str())
            })
            .collect();
        scheduled.sort_by(|a, b| (b.started_at, &b.id).cmp(&(a.started_at, &a.id)));
        let mut kept = 0u32;
        for s in scheduled {
            match s.state {
                SnapshotState::Pending => {}
                SnapshotState::Completed if kept < policy.keep => kept += 1,
                SnapshotState::Completed | SnapshotState::Error => {
                    work.prune.push((name.clone(), s.id.clone()));
                }
            }
        }
    }
    work
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;
    use crate::cron::Cron;
    use crate::desired::{DeletionPolicy, SnapshotPolicy, Tags, VolumeSpec, VolumeType};
    use crate::ids::{Kind, Zone};
    use crate::observed::Owner;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn desired(keep: u32) -> Desired {
        let mut d = Desired::empty("sp".into(), "us-east-1".into());
        d.volumes.insert(
            "pgdata".into(),
            VolumeSpec {
                size_gib: 20,
                zone: Zone::from("us-east-1a"),
                volume_type: VolumeType::Gp3,
                from_snapshot: None,
                encryption: crate::desired::Encryption::Encrypted { key: None },
                iops: None,
                throughput: None,
                attach: None,
                snapshots: Some(SnapshotPolicy {
                    schedule: Cron::parse("0 3 * * *").unwrap(),
                    timezone: crate::tz::Tz::bundled("America/Toronto").unwrap(),
                    keep,
                }),
                deletion_policy: DeletionPolicy::Retain,
                tags: Tags::new(),
            },
        );
        d
    }

    fn observed(created: &str) -> Observed {
        Observed {
            volumes: vec![ObservedVolume {
                id: "vol-1".into(),
                owner: Owner {
                    stack: "sp".into(),
                    kind: Kind::Volume,
                    name: "pgdata".into(),
                },
                zone: Zone::from("us-east-1a"),
                size_gib: 20,
                volume_type: VolumeType::Gp3,
                state: VolumeState::InUse,
                encrypted: true,
                kms_key: None,
                iops: Some(3000),
                throughput: Some(125),
                modification: None,
                attachment: None,
                created_at: ts(created),
                tags: Tags::new(),
            }],
            ..Observed::default()
        }
    }

    fn snap(id: &'static str, at: &str, state: SnapshotState, purpose: &str) -> ObservedSnapshot {
        let d = desired(1);
        let mut t = snapshot_tags(&d, &"pgdata".into(), SnapshotPurpose::Scheduled);
        t.insert(tags::PURPOSE.into(), purpose.into());
        ObservedSnapshot {
            id: id.into(),
            volume: "pgdata".into(),
            volume_id: "vol-1".into(),
            state,
            encrypted: true,
            started_at: ts(at),
            tags: t,
        }
    }

    #[test]
    fn due_after_the_latest_firing_in_the_schedule_time_zone() {
        let d = desired(7);
        let o = observed("2026-03-01T00:00:00Z");
        // 03:00 in Toronto is 08:00 UTC in winter (EST).
        let before = snapshot_work(&d, &o, ts("2026-03-05T07:59:00Z"));
        let after = snapshot_work(&d, &o, ts("2026-03-05T08:00:00Z"));
        assert_eq!(before.take.len(), 1, "the 4 March snapshot is missing");
        let mut o2 = o.clone();
        o2.snapshots.push(snap(
            "snap-a",
            "2026-03-04T08:00:05Z",
            SnapshotState::Completed,
            "scheduled",
        ));
        assert!(snapshot_work(&d, &o2, ts("2026-03-05T07:59:00Z")).is_empty());
        let due = snapshot_work(&d, &o2, ts("2026-03-05T08:00:00Z"));
        assert_eq!(due.take, vec![("pgdata".into(), "vol-1".into())]);
        assert_eq!(after.take, due.take);
        // After the spring-forward change (8 March), 03:00 EDT is 07:00 UTC.
        o2.snapshots.push(snap(
            "snap-b",
            "2026-03-08T08:00:05Z",
            SnapshotState::Pending,
            "scheduled",
        ));
        assert!(
            snapshot_work(&d, &o2, ts("2026-03-09T06:59:00Z"))
                .take
                .is_empty(),
            "a pending snapshot counts as taken"
        );
        assert_eq!(
            snapshot_work(&d, &o2, ts("2026-03-09T07:00:00Z"))
                .take
                .len(),
            1
        );
    }

    #[test]
    fn not_due_for_a_firing_before_the_volume_existed_or_a_failed_snapshot() {
        let d = desired(7);
        let o = observed("2026-03-05T09:00:00Z");
        assert!(snapshot_work(&d, &o, ts("2026-03-05T10:00:00Z")).is_empty());
        let mut o = observed("2026-03-01T00:00:00Z");
        o.snapshots.push(snap(
            "snap-x",
            "2026-03-05T08:00:05Z",
            SnapshotState::Error,
            "scheduled",
        ));
        let w = snapshot_work(&d, &o, ts("2026-03-05T10:00:00Z"));
        assert_eq!(w.take.len(), 1, "a failed snapshot is retaken");
        assert_eq!(w.prune, vec![("pgdata".into(), "snap-x".into())]);
    }

    #[test]
    fn prunes_to_the_newest_keep_but_never_pending_or_final_ones() {
        let d = desired(2);
        let mut o = observed("2026-03-01T00:00:00Z");
        for (id, at) in [
            ("snap-1", "2026-03-02T08:00:00Z"),
            ("snap-2", "2026-03-03T08:00:00Z"),
            ("snap-3", "2026-03-04T08:00:00Z"),
        ] {
            o.snapshots
                .push(snap(id, at, SnapshotState::Completed, "scheduled"));
        }
        o.snapshots.push(snap(
            "snap-4",
            "2026-03-05T08:00:00Z",
            SnapshotState::Pending,
            "scheduled",
        ));
        o.snapshots.push(snap(
            "snap-final",
            "2026-03-01T08:00:00Z",
            SnapshotState::Completed,
            "final",
        ));
        let mut other = snap(
            "snap-other",
            "2026-03-01T08:00:00Z",
            SnapshotState::Completed,
            "scheduled",
        );
        other.tags.insert(tags::STACK.into(), "another".into());
        o.snapshots.push(other);
        let w = snapshot_work(&d, &o, ts("2026-03-05T10:00:00Z"));
        assert!(w.take.is_empty());
        assert_eq!(w.prune, vec![("pgdata".into(), "snap-1".into())]);
        let steps = w.steps(&d);
        assert!(
            matches!(&steps[0], Step::DeleteSnapshot { snapshot, .. } if snapshot.as_str() == "snap-1")
        );
    }

    #[test]
    fn scheduled_snapshots_carry_converge_tags() {
        let d = desired(2);
        let o = observed("2026-03-01T00:00:00Z");
        let w = snapshot_work(&d, &o, ts("2026-03-05T10:00:00Z"));
        let steps = w.steps(&d);
        let Step::Snapshot {
            tags: t, purpose, ..
        } = &steps[0]
        else {
            panic!("expected a snapshot step, got {steps:?}");
        };
        assert_eq!(*purpose, SnapshotPurpose::Scheduled);
        assert_eq!(t.get(tags::STACK).map(String::as_str), Some("sp"));
        assert_eq!(t.get(tags::VOLUME).map(String::as_str), Some("pgdata"));
        assert_eq!(t.get(tags::PURPOSE).map(String::as_str), Some("scheduled"));
    }
}
