//! Retrying cloud calls: exponential backoff with full jitter for what
//! the cloud throttles or is not ready for yet, and a bounded window in
//! which "not found" right after a create means "not visible yet".

use crate::cloud::{CloudError, ErrorKind};
use std::future::Future;
use std::time::{Duration, Instant};

/// How long a call keeps failing before its retries are logged as a
/// warning.
pub const SLOW_RETRY_WARNING: Duration = Duration::from_secs(10);

/// How often an interruptible sleep looks whether it should end early.
pub const HALT_CHECK: Duration = Duration::from_millis(50);

/// Sleeps `d` in slices of at most [`HALT_CHECK`]; `false` (at once) when
/// `halted` says so before or during the sleep.
pub(crate) async fn sleep_unless(d: Duration, halted: &(dyn Fn() -> bool + Sync)) -> bool {
    let end = tokio::time::Instant::now() + d;
    loop {
        if halted() {
            return false;
        }
        let now = tokio::time::Instant::now();
        if now >= end {
            return true;
        }
        tokio::time::sleep((end - now).min(HALT_CHECK)).await;
    }
}

/// How calls are retried.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// The first backoff.
    pub base: Duration,
    /// The longest single backoff.
    pub cap: Duration,
    /// How long a retryable error may keep failing before it is final.
    pub max_elapsed: Duration,
    /// How long "not found" is taken as "not visible yet" for a resource
    /// this apply created or references.
    pub visibility: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(20),
            max_elapsed: Duration::from_secs(300),
            visibility: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// A policy for tests: tiny backoffs, short windows.
    pub fn fast() -> Self {
        Self {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(20),
            max_elapsed: Duration::from_secs(30),
            visibility: Duration::from_secs(5),
        }
    }

    /// The backoff before attempt `attempt` (1-based), with full jitter:
    /// a random duration between zero and the exponential bound.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX));
        let bound = exp.min(self.cap);
        let nanos = bound.as_nanos().min(u64::MAX as u128) as u64;
        Duration::from_nanos(fastrand::u64(0..=nanos.max(1)))
    }

    /// Runs `f` until it succeeds, fails with an error a retry cannot fix,
    /// or keeps failing past the policy's window, sleeping
    /// [`backoff`](Self::backoff) between attempts. `not_found_is_lag` as
    /// in [`should_retry`](Self::should_retry); `what` names the call in
    /// debug logs. The one retry loop of cloud calls: the executor's calls
    /// and reads and the parts of observations all go through it.
    pub async fn run<T, F, Fut>(
        &self,
        what: &str,
        not_found_is_lag: bool,
        f: F,
    ) -> Result<T, CloudError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CloudError>>,
    {
        self.run_until(what, not_found_is_lag, &|| false, f).await
    }

    /// [`run`](Self::run), giving up as soon as `halted` says so (the run
    /// is stopping, or the step's deadline passed): the backoff between
    /// attempts is slept in slices of at most [`HALT_CHECK`], and the last
    /// error is returned. An attempt in flight is never cut short.
    pub async fn run_until<T, F, Fut>(
        &self,
        what: &str,
        not_found_is_lag: bool,
        halted: &(dyn Fn() -> bool + Sync),
        mut f: F,
    ) -> Result<T, CloudError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CloudError>>,
    {
        let start = Instant::now();
        let mut attempt = 0u32;
        let mut warned = false;
        loop {
            attempt += 1;
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) if self.should_retry(&e, start.elapsed(), not_found_is_lag) => {
                    tracing::debug!(what, code = %e.code, attempt, error = %e, "retrying");
                    // Once a call has failed for a while, say so: a wrong
                    // endpoint or a dead network would otherwise look like
                    // a hang for the whole window.
                    if !warned && start.elapsed() >= SLOW_RETRY_WARNING {
                        warned = true;
                        tracing::warn!(
                            "{what}: still retrying after {}s (up to {}s): {e}",
                            start.elapsed().as_secs(),
                            self.max_elapsed.as_secs()
                        );
                    }
                    if !sleep_unless(self.backoff(attempt), halted).await {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether an error seen after `elapsed` should be retried.
    pub fn should_retry(
        &self,
        err: &CloudError,
        elapsed: Duration,
        not_found_is_lag: bool,
    ) -> bool {
        match err.kind {
            ErrorKind::NotFound => not_found_is_lag && elapsed < self.visibility,
            _ => err.is_retryable() && elapsed < self.max_elapsed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_by_the_cap() {
        let p = RetryPolicy::default();
        for attempt in 1..40 {
            assert!(p.backoff(attempt) <= p.cap);
        }
    }

    #[test]
    fn only_transient_errors_are_retried() {
        let p = RetryPolicy::default();
        let e = |k| CloudError::new(k, "RunInstances", "X", "y");
        let short = Duration::from_secs(1);
        assert!(!p.should_retry(&e(ErrorKind::Stale), short, true));
        assert!(p.should_retry(&e(ErrorKind::Throttled), short, false));
        assert!(p.should_retry(&e(ErrorKind::InvalidState), short, false));
        assert!(!p.should_retry(&e(ErrorKind::Invalid), short, false));
        assert!(!p.should_retry(&e(ErrorKind::AccessDenied), short, false));
        assert!(!p.should_retry(&e(ErrorKind::NotFound), short, false));
        assert!(p.should_retry(&e(ErrorKind::NotFound), short, true));
        assert!(!p.should_retry(&e(ErrorKind::NotFound), Duration::from_secs(61), true));
        assert!(!p.should_retry(&e(ErrorKind::Throttled), Duration::from_secs(301), false));
    }

    #[tokio::test]
    async fn a_halted_retry_gives_up_at_once_with_the_last_error() {
        let p = RetryPolicy {
            base: Duration::from_secs(10),
            cap: Duration::from_secs(10),
            ..RetryPolicy::default()
        };
        let start = Instant::now();
        let halted = std::sync::atomic::AtomicBool::new(false);
        let r: Result<(), _> = p
            .run_until(
                "x",
                false,
                &|| halted.load(std::sync::atomic::Ordering::SeqCst),
                || {
                    halted.store(true, std::sync::atomic::Ordering::SeqCst);
                    async {
                        Err(CloudError::new(
                            ErrorKind::Throttled,
                            "X",
                            "Throttling",
                            "slow",
                        ))
                    }
                },
            )
            .await;
        assert_eq!(r.expect_err("halted").code, "Throttling");
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
