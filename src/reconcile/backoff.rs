//! Per-resource backoff: a resource whose steps failed is left alone for
//! a while (exponential, with jitter), so one broken resource neither
//! stops the others nor floods the API; a success resets it. Errors that
//! retrying cannot fix (access denied, an invalid image) back off on a
//! slower schedule, so they are still retried, and reported, now and then.
//!
//! Times are read from the loop's clock, so tests drive it with a manual
//! one. The table holds only resources that failed and still have work,
//! keyed by a name such as `Fleet/app` (or `Volume/pgdata snapshots` for a
//! volume's scheduled snapshots, so that a failing snapshot never holds
//! back the volume's attachment).

use converge_core::plan::{HoldBack, WorkKey};
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long resources back off.
#[derive(Clone, Debug, PartialEq)]
pub struct BackoffPolicy {
    /// The first backoff after a retryable error.
    pub base: Duration,
    /// The longest backoff after retryable errors.
    pub cap: Duration,
    /// The first backoff after an error retrying cannot fix.
    pub slow_base: Duration,
    /// The longest backoff after such errors.
    pub slow_cap: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(30),
            cap: Duration::from_secs(15 * 60),
            slow_base: Duration::from_secs(5 * 60),
            slow_cap: Duration::from_secs(60 * 60),
        }
    }
}

impl BackoffPolicy {
    /// The backoff after `failures` consecutive failures (1-based): the
    /// exponential bound, capped, with jitter taking it down by up to half.
    pub fn delay(&self, failures: u32, slow: bool) -> Duration {
        let (base, cap) = if slow {
            (self.slow_base, self.slow_cap)
        } else {
            (self.base, self.cap)
        };
        let factor = 1u32
            .checked_shl(failures.saturating_sub(1).min(20))
            .unwrap_or(u32::MAX);
        let bound = base.saturating_mul(factor).min(cap);
        let half = bound / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

/// One resource's backoff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Consecutive failed passes.
    pub failures: u32,
    /// Its steps are held back until then.
    pub until: Timestamp,
    /// The last error, for reports.
    pub last_error: String,
    /// Whether the last error was one retrying cannot fix.
    pub slow: bool,
}

/// The backoff table.
#[derive(Clone, Debug, Default)]
pub struct Backoffs {
    entries: BTreeMap<WorkKey, Entry>,
}

impl Backoffs {
    /// The resource's entry, if it is backing off (or did and has not
    /// succeeded since).
    pub fn get(&self, key: &WorkKey) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Whether the resource's steps are held back at `at`.
    pub fn holds(&self, key: &WorkKey, at: Timestamp) -> bool {
        self.entries.get(key).is_some_and(|e| at < e.until)
    }

    /// The work held back at `at`, as the planner takes it.
    pub fn holds_at(&self, at: Timestamp) -> BTreeMap<WorkKey, HoldBack> {
        self.entries
            .iter()
            .filter(|(_, e)| at < e.until)
            .map(|(k, e)| {
                let hold = HoldBack {
                    until: e.until,
                    error: e.last_error.clone(),
                };
                (k.clone(), hold)
            })
            .collect()
    }

    /// Records a failure at `at`; returns the entry.
    pub fn failed(
        &mut self,
        key: &WorkKey,
        at: Timestamp,
        error: String,
        slow: bool,
        policy: &BackoffPolicy,
    ) -> &Entry {
        let e = self.entries.entry(key.clone()).or_insert(Entry {
            failures: 0,
            until: at,
            last_error: String::new(),
            slow,
        });
        e.failures = e.failures.saturating_add(1);
        let d = policy.delay(e.failures, slow);
        e.until = at
            .checked_add(jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX))
            .unwrap_or(Timestamp::MAX);
        e.last_error = error;
        e.slow = slow;
        e
    }

    /// Forgets the resource: it succeeded.
    pub fn succeeded(&mut self, key: &WorkKey) {
        self.entries.remove(key);
    }

    /// Keeps only the resources `keep` says still matter (those with
    /// work left), so the table never outgrows the stack.
    pub fn retain(&mut self, keep: impl Fn(&WorkKey) -> bool) {
        self.entries.retain(|k, _| keep(k));
    }

    /// How many resources are in the table.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no resource is backing off.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_capped_and_jittered_down_by_at_most_half() {
        let p = BackoffPolicy::default();
        for f in 1..40 {
            let d = p.delay(f, false);
            assert!(d <= p.cap, "{f}: {d:?}");
            let bound = p.base.saturating_mul(1 << (f - 1).min(20)).min(p.cap);
            assert!(d >= bound / 2, "{f}: {d:?}");
        }
        assert!(p.delay(1, true) >= p.slow_base / 2);
        assert!(p.delay(30, true) <= p.slow_cap);
    }

    #[test]
    fn failures_hold_a_resource_until_a_success_resets_it() {
        let p = BackoffPolicy::default();
        let k = &WorkKey::Resource {
            key: converge_core::ids::ResourceKey::new(converge_core::ids::Kind::Fleet, "app"),
        };
        let t0: Timestamp = "2026-03-09T14:00:00Z".parse().unwrap();
        let mut b = Backoffs::default();
        assert!(!b.holds(k, t0));
        let until = b.failed(k, t0, "boom".into(), false, &p).until;
        assert!(b.holds(k, t0));
        assert!(!b.holds(k, until));
        let second = b.failed(k, until, "boom".into(), false, &p).clone();
        assert_eq!(second.failures, 2);
        b.succeeded(k);
        assert!(b.is_empty());
        b.failed(k, t0, "denied".into(), true, &p);
        b.retain(|_| false);
        assert_eq!(b.len(), 0);
    }
}
