//! Backoff keyed by what failed: a resource's work (`Fleet/app`, or
//! `Volume/pgdata snapshots` for a volume's scheduled snapshots, so that a
//! failing snapshot never holds back the volume's attachment) and the
//! failed step's content ([`StepContent`]: its operation and targets). A
//! step re-planned for the same resource but aimed elsewhere (the
//! successor of a lost instance) is therefore never held by an old
//! failure, while the same step failing again backs off (exponential,
//! with jitter), so one broken thing neither stops the others nor floods
//! the API; a success resets it.
//!
//! How long depends on the failure's class ([`FailureClass`]): a stale
//! one (the world moved since it was observed) is re-planned at the next
//! pass with no backoff the first [`FREE_STALE`] times in a row, and backs
//! off on the normal schedule only if the same step keeps failing so; a transient one backs
//! off on the normal schedule; one retrying cannot fix (access denied, an
//! invalid image, a quota) on a slower schedule, so it is still retried,
//! and reported, now and then.
//!
//! Times are read from the loop's clock, so tests drive it with a manual
//! one. The table holds only failed steps whose work is still planned or
//! held, so it never outgrows the stack.

use crate::apply::FailureClass;
use converge_core::plan::{HeldSteps, HoldBack, StepContent, WorkKey};
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::time::Duration;

/// How many consecutive stale failures of the same step are re-planned at
/// once before it backs off: a re-plan from a lagging observation may aim
/// the same request at the same dead target once or twice (a launch whose
/// client token still finds the instance that died) before the world it
/// observes catches up.
pub const FREE_STALE: u32 = 3;

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
    /// The backoff after `failures` consecutive failures (1-based) of
    /// `class`: none after the first [`FREE_STALE`] stale ones, else the exponential
    /// bound of its schedule, capped, with jitter taking it down by up to
    /// half.
    pub fn delay_for(&self, failures: u32, class: FailureClass) -> Duration {
        match class {
            FailureClass::Stale if failures <= FREE_STALE => Duration::ZERO,
            FailureClass::Stale => self.delay(failures - FREE_STALE, false),
            FailureClass::Transient => self.delay(failures, false),
            FailureClass::Permanent => self.delay(failures, true),
        }
    }

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

/// One failed step's backoff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Consecutive failed passes.
    pub failures: u32,
    /// The step is held back until then.
    pub until: Timestamp,
    /// The last error, for reports.
    pub last_error: String,
    /// The class of the last error.
    pub class: FailureClass,
}

/// What a backoff is keyed by: the work and the failed step's content.
pub type BackoffKey = (WorkKey, StepContent);

/// The backoff table.
#[derive(Clone, Debug, Default)]
pub struct Backoffs {
    entries: BTreeMap<BackoffKey, Entry>,
}

impl Backoffs {
    /// The step's entry, if it is backing off (or did and has not
    /// succeeded since).
    pub fn get(&self, key: &WorkKey, content: &StepContent) -> Option<&Entry> {
        self.entries.get(&(key.clone(), content.clone()))
    }

    /// The entries of the work's failed steps.
    pub fn of<'a>(&'a self, key: &'a WorkKey) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .iter()
            .filter(move |((k, _), _)| k == key)
            .map(|(_, e)| e)
    }

    /// Whether any step of the work is held back at `at`.
    pub fn holds(&self, key: &WorkKey, at: Timestamp) -> bool {
        self.entries
            .iter()
            .any(|((k, _), e)| k == key && at < e.until)
    }

    /// The work held back at `at`, as the planner takes it: per work, the
    /// contents of its steps held, until the latest of their backoffs,
    /// with the error of that one.
    pub fn holds_at(&self, at: Timestamp) -> BTreeMap<WorkKey, HoldBack> {
        let mut out: BTreeMap<WorkKey, HoldBack> = BTreeMap::new();
        for ((key, content), e) in &self.entries {
            if at >= e.until {
                continue;
            }
            let hold = out.entry(key.clone()).or_insert_with(|| HoldBack {
                until: e.until,
                error: e.last_error.clone(),
                steps: HeldSteps::Only(Default::default()),
            });
            if e.until > hold.until {
                hold.until = e.until;
                hold.error = e.last_error.clone();
            }
            if let HeldSteps::Only(contents) = &mut hold.steps {
                contents.insert(content.clone());
            }
        }
        out
    }

    /// Records a failure of the step at `at`; returns the entry.
    pub fn failed(
        &mut self,
        key: &WorkKey,
        content: &StepContent,
        at: Timestamp,
        error: String,
        class: FailureClass,
        policy: &BackoffPolicy,
    ) -> &Entry {
        let e = self
            .entries
            .entry((key.clone(), content.clone()))
            .or_insert(Entry {
                failures: 0,
                until: at,
                last_error: String::new(),
                class,
            });
        e.failures = e.failures.saturating_add(1);
        let d = policy.delay_for(e.failures, class);
        e.until = at
            .checked_add(jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX))
            .unwrap_or(Timestamp::MAX);
        e.last_error = error;
        e.class = class;
        e
    }

    /// Forgets the step: it succeeded.
    pub fn succeeded(&mut self, key: &WorkKey, content: &StepContent) {
        self.entries.remove(&(key.clone(), content.clone()));
    }

    /// Keeps only the entries `keep` says still matter (those still
    /// holding, or whose step is planned again), so the table never
    /// outgrows the stack.
    pub fn retain(&mut self, keep: impl Fn(&WorkKey, &StepContent, &Entry) -> bool) {
        self.entries.retain(|(k, c), e| keep(k, c, e));
    }

    /// How many failed steps are in the table.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no step is backing off.
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
    fn failures_hold_a_step_until_a_success_resets_it() {
        let p = BackoffPolicy::default();
        let k = &WorkKey::Resource {
            key: converge_core::ids::ResourceKey::new(converge_core::ids::Kind::Fleet, "app"),
        };
        let step = converge_core::plan::Step::DeleteKeyPair {
            name: "main".into(),
            cloud_name: "main".into(),
        };
        let c = &step.content();
        let t0: Timestamp = "2026-03-09T14:00:00Z".parse().unwrap();
        let mut b = Backoffs::default();
        assert!(!b.holds(k, t0));
        let until = b
            .failed(k, c, t0, "boom".into(), FailureClass::Transient, &p)
            .until;
        assert!(b.holds(k, t0));
        assert!(!b.holds(k, until));
        let second = b
            .failed(k, c, until, "boom".into(), FailureClass::Transient, &p)
            .clone();
        assert_eq!(second.failures, 2);
        b.succeeded(k, c);
        assert!(b.is_empty());
        b.failed(k, c, t0, "denied".into(), FailureClass::Permanent, &p);
        b.retain(|_, _, _| false);
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn a_stale_failure_is_replanned_at_once_and_backs_off_only_when_it_repeats() {
        let p = BackoffPolicy::default();
        assert_eq!(p.delay_for(1, FailureClass::Stale), Duration::ZERO);
        assert_eq!(p.delay_for(FREE_STALE, FailureClass::Stale), Duration::ZERO);
        assert!(p.delay_for(FREE_STALE + 1, FailureClass::Stale) >= p.base / 2);
        assert!(p.delay_for(1, FailureClass::Permanent) >= p.slow_base / 2);
        let k = &WorkKey::Resource {
            key: converge_core::ids::ResourceKey::new(converge_core::ids::Kind::Volume, "pgdata"),
        };
        let step = converge_core::plan::Step::DeleteKeyPair {
            name: "main".into(),
            cloud_name: "main".into(),
        };
        let t0: Timestamp = "2026-03-09T14:00:00Z".parse().unwrap();
        let mut b = Backoffs::default();
        let stale = |b: &mut Backoffs| {
            b.failed(
                k,
                &step.content(),
                t0,
                "gone".into(),
                FailureClass::Stale,
                &p,
            );
        };
        for _ in 0..FREE_STALE {
            stale(&mut b);
            assert!(!b.holds(k, t0), "the first stale failures hold nothing");
        }
        stale(&mut b);
        assert!(
            b.holds(k, t0),
            "the same step stale again and again backs off"
        );
        let held = b.holds_at(t0);
        assert!(held[k].steps.holds(&step));
        let other = converge_core::plan::Step::DeleteKeyPair {
            name: "other".into(),
            cloud_name: "other".into(),
        };
        assert!(!held[k].steps.holds(&other), "another step is not held");
    }
}
