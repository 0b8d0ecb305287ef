//! `converge reconcile`: the continuous loop (observe, plan, apply, sleep)
//! and what it needs around it, such as its [`metrics`].
//!
//! A [`Reconciler`] runs passes. Each pass reads the time from the
//! injected [`Clock`] and:
//!
//! 1. reads the manifests (again, for a directory: an invalid edit keeps
//!    the last good version and is reported);
//! 2. observes the stack;
//! 3. probes the instances of fleets with a `health.http` check and
//!    judges health ([`converge_core::controller::health`]);
//! 4. reads each autoscaled fleet's metric when `autoscale.every` has
//!    passed and decides its count ([`converge_core::controller::autoscale`]);
//! 5. decides scheduled snapshots ([`converge_core::controller::snapshots`]);
//! 6. plans with those decisions (schedules are read at the pass's time),
//!    holds back the steps of resources that are backing off, and applies
//!    the rest with the executor.
//!
//! [`Reconciler::run`] repeats passes every interval (with jitter) until
//! stopped; [`Reconciler::run_once`] runs one, which is how tests drive a
//! week of schedule with a manual clock. Stopping ([`StopHandle::stop`])
//! starts no new step and abandons the waits and retry backoffs of the
//! running ones (calls in flight finish); a pass that is stopped returns
//! at once, and one that has not ended [`STOP_GRACE`] later is dropped.
//! No step holds a pass longer than [`ReconcileOptions::step_timeout`].
//!
//! What the loop remembers between passes is small and bounded by the
//! stack: since when each running instance has been failing, each
//! autoscaled fleet's count and last action, the instances it chose to
//! retire until they are gone, and the resources backing off. Every
//! decision and action is a `tracing` event with the target `reconcile`.

pub mod backoff;
pub mod http;
pub mod metrics;

pub use backoff::{BackoffPolicy, Backoffs};
pub use http::{HttpClient, HttpConfig, HttpError, HttpGet, HttpResponse};

use crate::apply::{
    ApplyOptions, FailureClass, Progress, Report, RetryPolicy, StepError, StepResult, execute,
};
use crate::cloud::Cloud;
use crate::commands::observe_for;
use crate::manifest;
use crate::sys::Clock;
use converge_core::controller::autoscale::{self, AutoscaleInput, Decision, Hold, Reading};
use converge_core::controller::health::{self, HealthInput, ProbeResult};
use converge_core::controller::snapshots::snapshot_work;
use converge_core::desired::Desired;
use converge_core::ids::{InstanceId, Kind, ResourceName, SnapshotId};
use converge_core::observed::{InstanceState, Observed};
use converge_core::plan::{Plan, PlanInput, StepContent, StepId, WorkKey, fleet_target};
use jiff::Timestamp;
use metrics::Metrics;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

/// The `tracing` target of the loop's events.
pub const TARGET: &str = "reconcile";

/// The default bound on one step in a pass ([`ReconcileOptions::step_timeout`]):
/// long enough for an instance to boot and pass two health checks 30 s
/// apart, short enough that one slow step holds the loop for minutes, not
/// the quarter of an hour a wait may take in `apply`.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a stopping loop lets the pass in flight end by itself (its
/// waits and retry backoffs end at once; a call in flight finishes) before
/// it drops the pass, so that a SIGTERM always ends the loop within 10 s.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Where the loop reads the manifests from.
#[derive(Clone, Debug)]
pub enum Manifests {
    /// A desired state given once.
    Fixed(Arc<Desired>),
    /// A stack directory, read again every pass, environment references
    /// (`${env:NAME}`) from the process environment. When it stops
    /// loading, the last good version is kept and the error reported.
    Directory(PathBuf),
}

/// How the loop runs.
#[derive(Clone, Debug)]
pub struct ReconcileOptions {
    /// Time between passes (from the end of one to the start of the
    /// next).
    pub interval: Duration,
    /// The interval varies by up to this fraction either way (0.1:
    /// ±10 %), so that many loops do not call the API in step.
    pub jitter: f64,
    /// Steps running at once.
    pub parallelism: usize,
    /// Retries of cloud calls within a pass.
    pub retry: RetryPolicy,
    /// How long a wait within a step may take.
    pub wait_timeout: Duration,
    /// The bound on one step in a pass: its calls' retries and its waits
    /// together give up past it, so that no single step keeps a pass from
    /// finishing for longer (plus the one call in flight). The next pass
    /// re-plans what was left undone.
    pub step_timeout: Duration,
    /// How often waits poll.
    pub poll_interval: Duration,
    /// Deadline of one health probe.
    pub probe_timeout: Duration,
    /// Probes running at once.
    pub probe_parallelism: usize,
    /// Deadline of one metric read.
    pub metric_timeout: Duration,
    /// How resources whose steps fail back off.
    pub backoff: BackoffPolicy,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            jitter: 0.1,
            parallelism: 10,
            retry: RetryPolicy::default(),
            wait_timeout: Duration::from_secs(900),
            step_timeout: STEP_TIMEOUT,
            poll_interval: Duration::from_secs(2),
            probe_timeout: Duration::from_secs(2),
            probe_parallelism: 32,
            metric_timeout: Duration::from_secs(5),
            backoff: BackoffPolicy::default(),
        }
    }
}

/// Stops a [`Reconciler`]: no new step starts, the waits and retry
/// backoffs of running steps are abandoned (calls in flight finish), the
/// pass returns and [`Reconciler::run`] ends, within [`STOP_GRACE`] at the
/// latest. Cheap to clone; safe to call
/// from a signal handler task.
#[derive(Clone, Debug, Default)]
pub struct StopHandle {
    flag: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

impl StopHandle {
    /// Asks the loop to stop.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        // `notify_one` keeps a permit when the loop is not sleeping yet.
        self.wake.notify_one();
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Resolves `grace` after a stop was asked for.
    async fn stopped_for(&self, grace: Duration) {
        while !self.is_stopped() {
            self.wake.notified().await;
        }
        tokio::time::sleep(grace).await;
    }
}

/// Something a pass decided or ran into, reported in [`PassReport`] and
/// logged as it happens.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The manifests did not load; `kept_last` when the last good version
    /// was used instead.
    ManifestsInvalid {
        /// The diagnostics.
        error: String,
        /// Whether the pass went on with the last good manifests.
        kept_last: bool,
    },
    /// Observing the stack failed: nothing was done.
    ObserveFailed {
        /// Why.
        error: String,
    },
    /// The planner refused: nothing was done.
    PlanFailed {
        /// Why.
        error: String,
    },
    /// A fleet's metric could not be read: its count is unchanged.
    MetricUnreadable {
        /// The fleet.
        fleet: ResourceName,
        /// Why.
        error: String,
    },
    /// A fleet's metric was read and its count changed.
    Scaled {
        /// The fleet.
        fleet: ResourceName,
        /// The metric.
        value: f64,
        /// Count before.
        from: u32,
        /// Count after.
        to: u32,
        /// The instances chosen to go (scale-in).
        removed: Vec<InstanceId>,
    },
    /// A fleet's metric was read and its count kept.
    ScaleHeld {
        /// The fleet.
        fleet: ResourceName,
        /// The metric.
        value: f64,
        /// The count kept.
        count: u32,
        /// Why it was kept.
        reason: String,
    },
    /// An unhealthy instance is replaced.
    Replacing {
        /// The fleet.
        fleet: ResourceName,
        /// The instance.
        instance: InstanceId,
        /// Why it is unhealthy.
        failure: String,
    },
    /// More than half of a fleet is unhealthy: the check is taken to be
    /// broken and nothing in the fleet is replaced.
    HealthCheckBroken {
        /// The fleet.
        fleet: ResourceName,
        /// Unhealthy instances.
        unhealthy: u32,
        /// Running instances.
        running: u32,
    },
    /// A volume is due its scheduled snapshot.
    SnapshotDue {
        /// The volume.
        volume: ResourceName,
    },
    /// One of converge's snapshots of a volume is pruned.
    SnapshotPruned {
        /// The volume.
        volume: ResourceName,
        /// The snapshot.
        snapshot: SnapshotId,
    },
    /// A resource's steps were held back: it is backing off.
    BackingOff {
        /// The resource (`Fleet/app`).
        resource: String,
        /// Until when.
        until: Timestamp,
        /// Its last error.
        error: String,
    },
    /// A step failed; it backs off as its class says.
    StepFailed {
        /// The resource.
        resource: String,
        /// The step.
        step: String,
        /// Why.
        error: String,
        /// What the failure says about trying again.
        class: FailureClass,
        /// When its resource is tried again.
        retry_after: Timestamp,
    },
}

/// What one pass did.
#[derive(Clone, Debug)]
pub struct PassReport {
    /// The pass's time (schedules were read at it).
    pub at: Timestamp,
    /// How long it took (wall time).
    pub duration: Duration,
    /// Whether it finished with nothing failed or held back, and the
    /// stack and manifests read. An unreadable metric or a health check
    /// judged broken is reported (as an event, and counted in the
    /// metrics' errors) but does not fail the pass: the loop carried on.
    pub ok: bool,
    /// Whether it was stopped.
    pub stopped: bool,
    /// Whether the stack was observed (a pass that could not observe did
    /// nothing and is retried with backoff by [`Reconciler::run`]).
    pub observed: bool,
    /// Steps planned (after holding back).
    pub planned: usize,
    /// Steps held back by backoff.
    pub held: usize,
    /// The executor's report, when steps ran.
    pub apply: Option<Report>,
    /// Decisions and problems, in the order they happened.
    pub events: Vec<Event>,
}

impl PassReport {
    /// Steps done.
    pub fn done(&self) -> usize {
        self.apply.as_ref().map_or(0, Report::done)
    }

    /// Steps failed.
    pub fn failed(&self) -> usize {
        self.apply.as_ref().map_or(0, Report::failed)
    }

    /// Steps skipped (a dependency failed, or the pass was stopped).
    pub fn skipped(&self) -> usize {
        self.apply.as_ref().map_or(0, Report::skipped)
    }

    /// Descriptions of the steps done, in step order.
    pub fn actions(&self) -> Vec<String> {
        self.apply
            .iter()
            .flat_map(|r| r.steps.values())
            .filter(|(_, r)| matches!(r, StepResult::Done))
            .map(|(what, _)| what.clone())
            .collect()
    }
}

/// What [`Reconciler::run`] did before it stopped.
#[derive(Clone, Debug, Default)]
pub struct RunSummary {
    /// Passes run.
    pub passes: u64,
    /// Passes that were not ok.
    pub failed_passes: u64,
}

/// One autoscaled fleet's memory.
#[derive(Clone, Debug, Default)]
struct ScaleState {
    /// The count the fleet is held at (`None`: not decided yet; its live
    /// count is used).
    count: Option<u32>,
    /// When the metric was last read.
    last_read: Option<Timestamp>,
    /// When the count last changed.
    last_action: Option<Timestamp>,
    /// Instances chosen to go, until they are gone.
    retiring: BTreeSet<InstanceId>,
}

/// The loop.
pub struct Reconciler {
    cloud: Arc<dyn Cloud>,
    manifests: Manifests,
    clock: Arc<dyn Clock>,
    http: Arc<dyn HttpGet>,
    opts: ReconcileOptions,
    metrics: Option<Arc<Metrics>>,
    stop: StopHandle,
    /// The last manifests that loaded.
    last_good: Option<Arc<Desired>>,
    failing_since: BTreeMap<InstanceId, Timestamp>,
    /// When each small fleet last had an instance replaced for health.
    health_replaced_at: BTreeMap<ResourceName, Timestamp>,
    scale: BTreeMap<ResourceName, ScaleState>,
    backoffs: Backoffs,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("cloud", &self.cloud.name())
            .field("manifests", &self.manifests)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl Reconciler {
    /// A loop over `cloud` for the stack `manifests` declare, reading the
    /// time from `clock`. Probes and metrics use [`HttpClient`] with the platform's roots and no
    /// proxy (the CLI gives it the environment's, [`HttpConfig::from_env`]); no metrics
    /// are kept until [`Reconciler::with_metrics`].
    pub fn new(
        cloud: Arc<dyn Cloud>,
        manifests: Manifests,
        clock: Arc<dyn Clock>,
        opts: ReconcileOptions,
    ) -> Self {
        let last_good = match &manifests {
            Manifests::Fixed(d) => Some(d.clone()),
            Manifests::Directory(_) => None,
        };
        Self {
            cloud,
            manifests,
            clock,
            http: http::default_client(),
            opts,
            metrics: None,
            stop: StopHandle::default(),
            last_good,
            failing_since: BTreeMap::new(),
            health_replaced_at: BTreeMap::new(),
            scale: BTreeMap::new(),
            backoffs: Backoffs::default(),
        }
    }

    /// Uses `http` for health probes and metric reads (tests answer for
    /// simulated instances this way).
    pub fn with_http(mut self, http: Arc<dyn HttpGet>) -> Self {
        self.http = http;
        self
    }

    /// Records passes, actions, errors, API calls and fleet counts in
    /// `metrics` (served by [`metrics::serve`]).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The handle that stops this loop.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// The resources backing off now.
    pub fn backoffs(&self) -> &Backoffs {
        &self.backoffs
    }

    /// Runs passes until stopped: after each, sleeps the interval (with
    /// jitter), or longer, backing off, while the stack cannot be observed.
    pub async fn run(&mut self) -> RunSummary {
        let mut summary = RunSummary::default();
        let mut blind = 0u32;
        while !self.stop.is_stopped() {
            let stop = self.stop.clone();
            // A stop abandons the pass's waits and backoffs at once; a
            // pass still running `STOP_GRACE` later (a call that hangs) is
            // dropped, so the loop always ends within seconds.
            let report = tokio::select! {
                r = self.run_once() => Some(r),
                _ = stop.stopped_for(STOP_GRACE) => None,
            };
            let Some(report) = report else {
                summary.passes += 1;
                summary.failed_passes += 1;
                tracing::warn!(
                    target: TARGET,
                    "the pass did not end within {}s of the stop: dropped (the next run re-plans)",
                    STOP_GRACE.as_secs()
                );
                break;
            };
            summary.passes += 1;
            if !report.ok {
                summary.failed_passes += 1;
            }
            if report.stopped || self.stop.is_stopped() {
                break;
            }
            blind = if report.observed { 0 } else { blind + 1 };
            let mut delay = jittered(self.opts.interval, self.opts.jitter);
            if blind > 0 {
                delay = delay.max(self.opts.backoff.delay(blind, false));
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.stop.wake.notified() => {}
            }
        }
        tracing::info!(
            target: TARGET,
            passes = summary.passes,
            failed_passes = summary.failed_passes,
            "reconcile loop stopped"
        );
        summary
    }

    /// Runs one pass at the clock's current time (plus the cloud's clock
    /// offset: the local cloud's `converge local advance`).
    pub async fn run_once(&mut self) -> PassReport {
        let offset = self.cloud.clock_offset().await.unwrap_or_default();
        let at = self
            .clock
            .now()
            .checked_add(offset)
            .unwrap_or(jiff::Timestamp::MAX);
        let started = Instant::now();
        let mut pass = Pass {
            report: PassReport {
                at,
                duration: Duration::ZERO,
                ok: true,
                stopped: false,
                observed: false,
                planned: 0,
                held: 0,
                apply: None,
                events: Vec::new(),
            },
            metrics: self.metrics.clone(),
        };
        self.pass(&mut pass, at).await;
        let mut report = pass.report;
        report.duration = started.elapsed();
        if let Some(m) = &self.metrics {
            m.pass_finished(report.ok, at, report.duration);
            m.set_api_calls(&self.cloud.api_calls());
        }
        tracing::info!(
            target: TARGET,
            at = %at,
            duration_ms = report.duration.as_millis() as u64,
            ok = report.ok,
            stopped = report.stopped,
            planned = report.planned,
            done = report.done(),
            failed = report.failed(),
            skipped = report.skipped(),
            held = report.held,
            "pass finished"
        );
        report
    }

    /// One pass: observe, decide (health, autoscaling, snapshots, what
    /// backs off), plan with every decision as an input, check, apply, and
    /// learn from the outcome. Each phase reports into `pass` and may end
    /// it early.
    async fn pass(&mut self, pass: &mut Pass, at: Timestamp) {
        if self.stopping(pass) {
            return;
        }
        let Some(desired) = self.desired(pass) else {
            return;
        };
        let Some(observed) = self.observe(pass, &desired).await else {
            return;
        };
        if self.stopping(pass) {
            return;
        }
        let replace = self.health(pass, &desired, &observed, at).await;
        let (scale, retire) = self.autoscale(pass, &desired, &observed, at).await;
        if self.stopping(pass) {
            return;
        }
        self.fleet_gauges(&desired, &observed, at, &scale);
        let decisions = Decisions {
            scale,
            replace,
            retire,
        };
        let Some(plan) = self.plan(pass, &desired, &observed, at, &decisions) else {
            return;
        };
        pass.report.planned = plan.graph.len();
        if plan.graph.is_empty() || self.stopping(pass) {
            return;
        }
        tracing::debug!(target: "reconcile", plan = %converge_core::render::text(&plan, &Default::default()), "the plan this pass runs");
        self.apply(pass, &plan).await;
    }

    /// Whether the loop is stopping (then the pass says so).
    fn stopping(&self, pass: &mut Pass) -> bool {
        let stopped = self.stop.is_stopped();
        pass.report.stopped |= stopped;
        stopped
    }

    /// The stack as the cloud holds it, with retries; `None` when it could
    /// not be read (reported).
    async fn observe(&self, pass: &mut Pass, desired: &Desired) -> Option<Observed> {
        match observe_for(self.cloud.as_ref(), desired, &self.opts.retry).await {
            Ok(o) => {
                pass.report.observed = true;
                Some(o)
            }
            Err(e) => {
                pass.error("observe");
                pass.event(Event::ObserveFailed {
                    error: e.to_string(),
                });
                None
            }
        }
    }

    /// Probes and judges health; returns the instances to replace.
    async fn health(
        &mut self,
        pass: &mut Pass,
        desired: &Desired,
        observed: &Observed,
        at: Timestamp,
    ) -> BTreeSet<InstanceId> {
        let probes = self.probe(desired, observed).await;
        let verdict = health::assess(&HealthInput {
            desired,
            observed,
            at,
            probes: &probes,
            failing_since: &self.failing_since,
            replaced_at: &self.health_replaced_at,
        });
        self.failing_since = verdict.failing_since.clone();
        self.health_replaced_at = verdict.replaced_at.clone();
        for f in &verdict.fleets {
            if f.check_broken {
                pass.warning("health-check-broken");
                pass.event(Event::HealthCheckBroken {
                    fleet: f.fleet.clone(),
                    unhealthy: f.unhealthy.len() as u32,
                    running: f.running,
                });
            }
            for u in f
                .unhealthy
                .iter()
                .filter(|u| f.replace.contains(&u.instance))
            {
                pass.event(Event::Replacing {
                    fleet: f.fleet.clone(),
                    instance: u.instance.clone(),
                    failure: u.failure.to_string(),
                });
            }
        }
        verdict.replace
    }

    /// The fleet gauges: the count each fleet is planned at, and what runs.
    fn fleet_gauges(
        &self,
        desired: &Desired,
        observed: &Observed,
        at: Timestamp,
        scale: &BTreeMap<ResourceName, u32>,
    ) {
        let Some(m) = &self.metrics else { return };
        for (name, spec) in &desired.fleets {
            let live = count(observed, name, InstanceState::is_live);
            let running = count(observed, name, |s| s == InstanceState::Running);
            let (target, _) = fleet_target(spec, at, scale.get(name).copied(), live);
            m.fleet(name.as_str(), target, running);
        }
        m.retain_fleets(desired.fleets.keys().map(ResourceName::as_str));
    }

    /// The plan this pass runs, made with every decision of the pass
    /// (snapshots due, work held back by backoff) as an input, and checked;
    /// `None` when it could not be made (reported).
    fn plan(
        &mut self,
        pass: &mut Pass,
        desired: &Desired,
        observed: &Observed,
        at: Timestamp,
        decisions: &Decisions,
    ) -> Option<Plan> {
        let snapshots = snapshot_work(desired, observed, at);
        for (volume, _) in &snapshots.take {
            pass.event(Event::SnapshotDue {
                volume: volume.clone(),
            });
        }
        for (volume, snapshot) in &snapshots.prune {
            pass.event(Event::SnapshotPruned {
                volume: volume.clone(),
                snapshot: snapshot.clone(),
            });
        }
        let held = self.backoffs.holds_at(at);
        let input = PlanInput {
            desired,
            observed,
            at,
            scale: &decisions.scale,
            replace: &decisions.replace,
            retire: &decisions.retire,
            snapshots: &snapshots,
            held: &held,
            ..PlanInput::new(desired, observed, at)
        };
        let plan = match converge_core::plan(&input) {
            Ok(p) => p,
            Err(e) => {
                pass.error("plan");
                pass.event(Event::PlanFailed {
                    error: e.to_string(),
                });
                return None;
            }
        };
        // A plan that breaks an invariant is a bug: nothing of it is done.
        let plan = match converge_core::checked(plan, &input) {
            Ok(p) => p,
            Err(refused) => {
                pass.error("plan-refused");
                pass.event(Event::PlanFailed {
                    error: refused.to_string(),
                });
                return None;
            }
        };
        self.held_back(pass, &plan, at);
        Some(plan)
    }

    /// Backoff bookkeeping after planning: failed steps that are neither
    /// held any more nor planned again are forgotten (a step re-planned
    /// elsewhere leaves its old failure behind), and the work held back is
    /// reported.
    fn held_back(&mut self, pass: &mut Pass, plan: &Plan, at: Timestamp) {
        let planned: BTreeSet<(WorkKey, StepContent)> = plan
            .graph
            .steps()
            .iter()
            .map(|s| (s.work_key(), s.content()))
            .collect();
        self.backoffs
            .retain(|k, c, e| at < e.until || planned.contains(&(k.clone(), c.clone())));
        if plan.held.is_empty() {
            return;
        }
        pass.report.ok = false;
        pass.report.held = plan.held.len();
        let mut seen = BTreeSet::new();
        for h in &plan.held {
            if seen.insert(&h.because) {
                pass.event(Event::BackingOff {
                    resource: h.because.to_string(),
                    until: h.until,
                    error: h.error.clone(),
                });
            }
        }
    }

    /// Carries the plan out, then backs off what failed (keyed by the
    /// step's work and content, as long as its class says) and resets
    /// what succeeded. A pass that was stopped records no failure: its
    /// steps were abandoned, not refused.
    async fn apply(&mut self, pass: &mut Pass, plan: &Plan) {
        let progress: Arc<dyn Progress> = Arc::new(LogProgress);
        let report = execute(
            self.cloud.clone(),
            plan,
            ApplyOptions {
                parallelism: self.opts.parallelism,
                retry: self.opts.retry.clone(),
                wait_timeout: self.opts.wait_timeout,
                poll_interval: self.opts.poll_interval,
                stop: self.stop.flag.clone(),
                step_timeout: Some(self.opts.step_timeout),
                clock: self.clock.clone(),
            },
            progress,
        )
        .await;
        let now = self.clock.now();
        let stopped = self.stop.is_stopped();
        let mut failed: BTreeMap<(WorkKey, StepContent), (String, String, FailureClass)> =
            BTreeMap::new();
        for (id, (what, result)) in &report.steps {
            let Some(step) = plan.graph.step(*id) else {
                continue;
            };
            let key = (step.work_key(), step.content());
            match result {
                StepResult::Done => {
                    if let Some(m) = &self.metrics {
                        m.action(step.kind());
                    }
                    self.backoffs.succeeded(&key.0, &key.1);
                }
                StepResult::Failed(StepError::Stopped) => {}
                StepResult::Failed(e) => {
                    pass.error(&error_kind(e));
                    if !stopped {
                        failed.insert(key, (what.clone(), e.to_string(), e.class()));
                    }
                }
                StepResult::Skipped { .. } => {}
            }
        }
        for ((key, content), (step, error, class)) in failed {
            let until = self
                .backoffs
                .failed(
                    &key,
                    &content,
                    now,
                    error.clone(),
                    class,
                    &self.opts.backoff,
                )
                .until;
            pass.event(Event::StepFailed {
                resource: key.to_string(),
                step,
                error,
                class,
                retry_after: until,
            });
        }
        if report.failed() > 0 {
            pass.report.ok = false;
        }
        self.stopping(pass);
        pass.report.apply = Some(report);
    }

    /// The manifests for this pass.
    fn desired(&mut self, pass: &mut Pass) -> Option<Arc<Desired>> {
        let Manifests::Directory(dir) = &self.manifests else {
            return self.last_good.clone();
        };
        match manifest::load(dir, &|name| std::env::var(name).ok()) {
            Ok(loaded) => {
                let d = Arc::new(loaded.desired);
                self.last_good = Some(d.clone());
                Some(d)
            }
            Err(diags) => {
                pass.error("manifests");
                pass.event(Event::ManifestsInvalid {
                    error: diags.to_string(),
                    kept_last: self.last_good.is_some(),
                });
                self.last_good.clone()
            }
        }
    }

    /// Probes the running instances of fleets with a `health.http` check,
    /// a bounded number at once.
    async fn probe(
        &self,
        desired: &Desired,
        observed: &Observed,
    ) -> BTreeMap<InstanceId, ProbeResult> {
        let mut tasks: JoinSet<(InstanceId, ProbeResult)> = JoinSet::new();
        let permits = Arc::new(Semaphore::new(self.opts.probe_parallelism.max(1)));
        for i in &observed.instances {
            if i.owner.kind != Kind::Fleet || i.state != InstanceState::Running {
                continue;
            }
            let Some(check) = desired
                .fleets
                .get(&i.owner.name)
                .and_then(|f| f.health.http.clone())
            else {
                continue;
            };
            let Some(ip) = i.private_ip else { continue };
            let url = format!("http://{ip}:{}{}", check.port, check.path);
            let (http, permits, timeout, id) = (
                self.http.clone(),
                permits.clone(),
                self.opts.probe_timeout,
                i.id.clone(),
            );
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let result = match http.probe(&url, timeout).await {
                    Ok(r) if !(200..300).contains(&r.status) => {
                        ProbeResult::Failed(format!("GET {url}: status {}", r.status))
                    }
                    Ok(r) => match &check.expect {
                        Some(want) if !r.body.contains(want.as_str()) => {
                            ProbeResult::Failed(format!("GET {url}: no \"{want}\" in the body"))
                        }
                        _ => ProbeResult::Passed,
                    },
                    Err(e) => ProbeResult::Failed(format!("GET {url}: {e}")),
                };
                (id, result)
            });
        }
        let mut out = BTreeMap::new();
        while let Some(joined) = tasks.join_next().await {
            if let Ok((id, r)) = joined {
                out.insert(id, r);
            }
        }
        out
    }

    /// Reads due metrics and decides autoscaled fleets' counts; returns
    /// the counts to plan with and the instances to retire.
    async fn autoscale(
        &mut self,
        pass: &mut Pass,
        desired: &Desired,
        observed: &Observed,
        at: Timestamp,
    ) -> (BTreeMap<ResourceName, u32>, BTreeSet<InstanceId>) {
        self.scale.retain(|name, _| {
            desired
                .fleets
                .get(name)
                .is_some_and(|f| f.autoscale.is_some())
        });
        let mut counts = BTreeMap::new();
        let mut retire = BTreeSet::new();
        for (name, spec) in &desired.fleets {
            let Some(a) = &spec.autoscale else { continue };
            let live: Vec<_> = observed
                .instances
                .iter()
                .filter(|i| {
                    i.owner.kind == Kind::Fleet && i.owner.name == *name && i.state.is_live()
                })
                .collect();
            let state = self.scale.entry(name.clone()).or_default();
            state.retiring.retain(|id| live.iter().any(|i| i.id == *id));
            let current = state
                .count
                .unwrap_or_else(|| (live.len() as u32).clamp(a.min, a.max.max(a.min)));
            let due = state.last_read.is_none_or(|last| {
                last.checked_add(jiff::SignedDuration::try_from(a.every).unwrap_or_default())
                    .map_or(true, |next| at >= next)
            });
            let mut count_now = current;
            if due {
                state.last_read = Some(at);
                let reading =
                    read_metric(self.http.as_ref(), &a.metric_url, self.opts.metric_timeout).await;
                if let (Reading::Value(v), Some(m)) = (&reading, &self.metrics) {
                    m.autoscale_reading(name.as_str(), *v);
                }
                let decision = autoscale::decide(&AutoscaleInput {
                    spec: a,
                    current,
                    instances: &live,
                    reading: &reading,
                    last_action: state.last_action,
                    at,
                });
                count_now = decision.count();
                if decision.is_action() {
                    state.last_action = Some(at);
                }
                match (&decision, &reading) {
                    (
                        Decision::Hold {
                            reason: Hold::Unreadable(error),
                            ..
                        },
                        _,
                    ) => {
                        pass.warning("metric");
                        pass.event(Event::MetricUnreadable {
                            fleet: name.clone(),
                            error: error.clone(),
                        });
                    }
                    (Decision::Hold { count, reason }, Reading::Value(v)) => {
                        pass.event(Event::ScaleHeld {
                            fleet: name.clone(),
                            value: *v,
                            count: *count,
                            reason: reason.to_string(),
                        });
                    }
                    (Decision::ScaleOut { from, to }, Reading::Value(v)) => {
                        pass.event(Event::Scaled {
                            fleet: name.clone(),
                            value: *v,
                            from: *from,
                            to: *to,
                            removed: Vec::new(),
                        });
                    }
                    (Decision::ScaleIn { from, to, remove }, Reading::Value(v)) => {
                        state.retiring.extend(remove.iter().cloned());
                        pass.event(Event::Scaled {
                            fleet: name.clone(),
                            value: *v,
                            from: *from,
                            to: *to,
                            removed: remove.clone(),
                        });
                    }
                    _ => {}
                }
            }
            state.count = Some(count_now);
            retire.extend(state.retiring.iter().cloned());
            counts.insert(name.clone(), count_now);
        }
        (counts, retire)
    }
}

/// One pass's report under construction.
/// What the loop decided before planning, handed to the planner.
struct Decisions {
    /// Autoscaled counts, by fleet.
    scale: BTreeMap<ResourceName, u32>,
    /// Unhealthy instances to replace.
    replace: BTreeSet<InstanceId>,
    /// Instances chosen to go when their fleet scales in.
    retire: BTreeSet<InstanceId>,
}

struct Pass {
    report: PassReport,
    metrics: Option<Arc<Metrics>>,
}

impl Pass {
    /// Records and logs an event.
    fn event(&mut self, e: Event) {
        log_event(&e);
        self.report.events.push(e);
    }

    /// Counts an error of `kind` and marks the pass not ok.
    fn error(&mut self, kind: &str) {
        self.report.ok = false;
        self.warning(kind);
    }

    /// Counts an error of `kind` that does not fail the pass: what the
    /// loop reports and carries on without (an unreadable metric, a
    /// health check judged broken).
    fn warning(&mut self, kind: &str) {
        if let Some(m) = &self.metrics {
            m.error(kind);
        }
    }
}

impl std::fmt::Display for Event {
    /// One line for people (`reconcile --once` prints these).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::ManifestsInvalid { error, kept_last } => {
                let kept = if *kept_last {
                    " (kept the last good version)"
                } else {
                    ""
                };
                write!(f, "manifests do not load{kept}: {error}")
            }
            Event::ObserveFailed { error } => write!(f, "observing the stack failed: {error}"),
            Event::PlanFailed { error } => write!(f, "planning failed: {error}"),
            Event::MetricUnreadable { fleet, error } => {
                write!(
                    f,
                    "Fleet/{fleet}: metric unreadable, count unchanged: {error}"
                )
            }
            Event::Scaled {
                fleet,
                value,
                from,
                to,
                removed,
            } => {
                write!(f, "Fleet/{fleet}: metric {value}: scaled {from} → {to}")?;
                if !removed.is_empty() {
                    let ids: Vec<&str> = removed.iter().map(InstanceId::as_str).collect();
                    write!(f, " (removing {})", ids.join(", "))?;
                }
                Ok(())
            }
            Event::ScaleHeld {
                fleet,
                value,
                count,
                reason,
            } => write!(
                f,
                "Fleet/{fleet}: metric {value}: count kept at {count}: {reason}"
            ),
            Event::Replacing {
                fleet,
                instance,
                failure,
            } => write!(
                f,
                "Fleet/{fleet}: replacing unhealthy {instance}: {failure}"
            ),
            Event::HealthCheckBroken {
                fleet,
                unhealthy,
                running,
            } => write!(
                f,
                "Fleet/{fleet}: {unhealthy} of {running} unhealthy: the health check looks broken, nothing replaced"
            ),
            Event::SnapshotDue { volume } => write!(f, "Volume/{volume}: scheduled snapshot due"),
            Event::SnapshotPruned { volume, snapshot } => {
                write!(f, "Volume/{volume}: pruning snapshot {snapshot}")
            }
            Event::BackingOff {
                resource,
                until,
                error,
            } => write!(f, "{resource}: backing off until {until} after: {error}"),
            Event::StepFailed {
                resource,
                step,
                error,
                class,
                retry_after,
            } => write!(
                f,
                "{resource}: {step} failed ({}, retry after {retry_after}): {error}",
                class.as_str()
            ),
        }
    }
}

fn log_event(e: &Event) {
    match e {
        Event::ManifestsInvalid { error, kept_last } => {
            tracing::error!(target: TARGET, kept_last, "manifests do not load: {error}")
        }
        Event::ObserveFailed { error } => {
            tracing::error!(target: TARGET, "observing the stack failed: {error}")
        }
        Event::PlanFailed { error } => tracing::error!(target: TARGET, "planning failed: {error}"),
        Event::MetricUnreadable { fleet, error } => tracing::warn!(
            target: TARGET, fleet = %fleet, "metric unreadable, count unchanged: {error}"
        ),
        Event::Scaled {
            fleet,
            value,
            from,
            to,
            removed,
        } => tracing::info!(
            target: TARGET, fleet = %fleet, value, from, to,
            removed = ?removed.iter().map(InstanceId::as_str).collect::<Vec<_>>(),
            "fleet scaled"
        ),
        Event::ScaleHeld {
            fleet,
            value,
            count,
            reason,
        } => tracing::debug!(target: TARGET, fleet = %fleet, value, count, "count kept: {reason}"),
        Event::Replacing {
            fleet,
            instance,
            failure,
        } => tracing::warn!(
            target: TARGET, fleet = %fleet, instance = %instance,
            "replacing unhealthy instance: {failure}"
        ),
        Event::HealthCheckBroken {
            fleet,
            unhealthy,
            running,
        } => tracing::error!(
            target: TARGET, fleet = %fleet, unhealthy, running,
            "more than half of the fleet is unhealthy: the health check itself looks broken, nothing replaced"
        ),
        Event::SnapshotDue { volume } => {
            tracing::info!(target: TARGET, volume = %volume, "scheduled snapshot due")
        }
        Event::SnapshotPruned { volume, snapshot } => tracing::info!(
            target: TARGET, volume = %volume, snapshot = %snapshot, "pruning snapshot"
        ),
        Event::BackingOff {
            resource,
            until,
            error,
        } => tracing::warn!(
            target: TARGET, resource = %resource, until = %until,
            "backing off after: {error}"
        ),
        Event::StepFailed {
            resource,
            step,
            error,
            class,
            retry_after,
        } => tracing::error!(
            target: TARGET, resource = %resource, step = %step, class = class.as_str(),
            retry_after = %retry_after, "step failed: {error}"
        ),
    }
}

/// Progress as `tracing` events: one per action started, done or failed.
#[derive(Clone, Copy, Debug, Default)]
struct LogProgress;

impl Progress for LogProgress {
    fn started(&self, step: StepId, what: &str) {
        tracing::debug!(target: TARGET, step, action = what, "action started");
    }

    fn done(&self, step: StepId, what: &str, elapsed: Duration) {
        tracing::info!(
            target: TARGET, step, action = what,
            elapsed_ms = elapsed.as_millis() as u64, "action done"
        );
    }

    fn failed(&self, step: StepId, what: &str, err: &StepError) {
        tracing::warn!(target: TARGET, step, action = what, "action failed: {err}");
    }

    fn waiting(&self, step: StepId, what: &str, elapsed: Duration) {
        tracing::debug!(
            target: TARGET, step, action = what,
            elapsed_ms = elapsed.as_millis() as u64, "action waiting"
        );
    }
}

/// The error kind counted in metrics.
fn error_kind(e: &StepError) -> String {
    match e {
        StepError::Cloud(c) => format!("{:?}", c.kind),
        StepError::Timeout { .. } => "Timeout".to_owned(),
        StepError::Unexpected(_) => "Unexpected".to_owned(),
        StepError::Stale(_) => "Stale".to_owned(),
        StepError::Stopped => "Stopped".to_owned(),
    }
}

/// Reads a metric: a 2xx answer whose body is a plain, finite number.
async fn read_metric(http: &dyn HttpGet, url: &str, timeout: Duration) -> Reading {
    match http.get(url, timeout).await {
        Ok(r) if !(200..300).contains(&r.status) => {
            Reading::Unreadable(format!("GET {url}: status {}", r.status))
        }
        Ok(r) => match r.body.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Reading::Value(v),
            _ => Reading::Unreadable(format!(
                "GET {url}: the body is not a number: {:?}",
                r.body.chars().take(40).collect::<String>()
            )),
        },
        Err(e) => Reading::Unreadable(format!("GET {url}: {e}")),
    }
}

/// A fleet's instances whose state passes `f`.
fn count(o: &Observed, fleet: &ResourceName, f: impl Fn(InstanceState) -> bool) -> u32 {
    o.instances
        .iter()
        .filter(|i| i.owner.kind == Kind::Fleet && i.owner.name == *fleet && f(i.state))
        .count() as u32
}

/// `d` varied by up to `jitter` (a fraction) either way.
fn jittered(d: Duration, jitter: f64) -> Duration {
    let j = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let factor = 1.0 + j * (fastrand::f64() * 2.0 - 1.0);
    d.mul_f64(factor.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use converge_core::plan::Step;

    #[test]
    fn jitter_stays_within_its_fraction() {
        let d = Duration::from_secs(30);
        for _ in 0..200 {
            let j = jittered(d, 0.1);
            assert!(
                j >= Duration::from_secs(27) && j <= Duration::from_secs(33),
                "{j:?}"
            );
        }
        assert_eq!(jittered(d, 0.0), d);
        assert_eq!(jittered(d, f64::NAN), d);
    }

    #[test]
    fn scheduled_snapshots_back_off_apart_from_their_volume() {
        let snap = Step::DeleteSnapshot {
            name: "pgdata".into(),
            snapshot: "snap-1".into(),
        };
        let detach = Step::DetachVolume {
            name: "pgdata".into(),
            volume: "vol-1".into(),
            instance: "i-1".into(),
        };
        assert_eq!(snap.work_key().to_string(), "Volume/pgdata snapshots");
        assert_eq!(detach.work_key().to_string(), "Volume/pgdata");
    }
}
