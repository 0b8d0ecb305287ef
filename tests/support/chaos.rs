//! What the chaos tests (`tests/chaos.rs`) and the chaos bench
//! (`benches/chaos.rs`) share: the example stack as the loop sees it, a
//! stand-in for health probes and metrics, a cloud that runs a hook before
//! or after chosen calls, and the heal-time scenario of issue 12.

#![allow(dead_code)] // each user takes what it needs

use async_trait::async_trait;
use converge::cloud::local::LocalCloud;
use converge::cloud::{ApiCall, Cloud, CloudError, Op, Outcome};
use converge::core::Desired;
use converge::core::elb::BalancerType;
use converge::core::ids::{
    BalancerName, DistributionId, ImageId, InstanceId, ParameterName, ResourceName, SnapshotId,
    SubnetId, VolumeId,
};
use converge::core::observed::{
    InstanceState, Member, Observed, ObservedDistribution, ObservedImage, ObservedInstance,
    ObservedSnapshot, ObservedSubnet, ObservedVolume,
};
use converge::manifest;
use converge::reconcile::{HttpError, HttpGet, HttpResponse};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The example stack, its job fleet's metric answered by [`Answers`].
pub fn smallpayroll() -> Desired {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/smallpayroll");
    let mut d = manifest::load(&dir, &|_| None).unwrap().desired;
    for f in d.fleets.values_mut() {
        if let Some(a) = &mut f.autoscale {
            a.metric_url = "http://metrics.invalid/queue/length".into();
        }
    }
    d
}

/// Answers every probe `200 welcome` and every metric `0`.
#[derive(Default)]
pub struct Answers;

#[async_trait]
impl HttpGet for Answers {
    async fn get(&self, url: &str, _timeout: Duration) -> Result<HttpResponse, HttpError> {
        let body = if url.contains("/queue/length") {
            "0"
        } else {
            "<h1>welcome to SmallPayroll</h1>"
        };
        Ok(HttpResponse {
            status: 200,
            body: body.into(),
        })
    }
}

/// When a hook runs, relative to the call it is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// Before the call reaches the cloud.
    Before,
    /// After the cloud answered it.
    After,
}

type Hook = Box<dyn Fn(&LocalCloud, &Op) + Send + Sync>;

/// The hooks to run: the operation, when, and what.
type Hooks = Arc<Mutex<Vec<(&'static str, When, Hook)>>>;

/// The local cloud, with hooks run once each before or after the first
/// call of a named operation (`AttachVolume`): how the tests make the
/// world move between observation and action, or during a wait.
#[derive(Clone)]
pub struct Hooked {
    /// The cloud itself.
    pub inner: LocalCloud,
    hooks: Hooks,
    /// Calls made through it (each observe, act and describe counts one).
    pub calls: Arc<std::sync::atomic::AtomicU64>,
}

impl Hooked {
    /// The cloud without hooks.
    pub fn new(inner: LocalCloud) -> Self {
        Self {
            inner,
            hooks: Arc::default(),
            calls: Arc::default(),
        }
    }

    /// Runs `f` once, `when` the next `operation` is called.
    pub fn once(
        &self,
        operation: &'static str,
        when: When,
        f: impl Fn(&LocalCloud, &Op) + Send + Sync + 'static,
    ) {
        self.hooks
            .lock()
            .unwrap()
            .push((operation, when, Box::new(f)));
    }

    fn count(&self) {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn fire(&self, op: &Op, when: When) {
        let hook = {
            let mut hooks = self.hooks.lock().unwrap();
            let i = hooks
                .iter()
                .position(|(name, w, _)| *name == op.name() && *w == when);
            i.map(|i| hooks.remove(i))
        };
        if let Some((_, _, f)) = hook {
            f(&self.inner, op);
        }
    }
}

#[async_trait]
impl Cloud for Hooked {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    async fn observe(&self, stack: &ResourceName) -> Result<Observed, CloudError> {
        self.count();
        self.inner.observe(stack).await
    }
    async fn act(&self, op: &Op) -> Result<Outcome, CloudError> {
        self.count();
        self.fire(op, When::Before);
        let r = self.inner.act(op).await;
        self.fire(op, When::After);
        r
    }
    async fn instances(&self, ids: &[InstanceId]) -> Result<Vec<ObservedInstance>, CloudError> {
        self.count();
        self.inner.instances(ids).await
    }
    async fn subnets(&self, ids: &[SubnetId]) -> Result<Vec<ObservedSubnet>, CloudError> {
        self.count();
        self.inner.subnets(ids).await
    }
    async fn volumes(&self, ids: &[VolumeId]) -> Result<Vec<ObservedVolume>, CloudError> {
        self.count();
        self.inner.volumes(ids).await
    }
    async fn snapshot(&self, id: &SnapshotId) -> Result<Option<ObservedSnapshot>, CloudError> {
        self.count();
        self.inner.snapshot(id).await
    }
    fn tracks_classic_draining(&self) -> bool {
        self.inner.tracks_classic_draining()
    }
    async fn dns_zones(
        &self,
        stack: &ResourceName,
        domains: &[String],
    ) -> Result<Vec<converge::core::route53::ObservedZone>, CloudError> {
        self.count();
        self.inner.dns_zones(stack, domains).await
    }
    async fn change_in_sync(&self, id: &str) -> Result<bool, CloudError> {
        self.count();
        self.inner.change_in_sync(id).await
    }
    async fn certificate(
        &self,
        region: &str,
        arn: &str,
    ) -> Result<Option<converge_core::acm::ObservedCertificate>, CloudError> {
        self.count();
        self.inner.certificate(region, arn).await
    }
    async fn bucket_objects(
        &self,
        bucket: &converge::core::ids::BucketName,
        prefix: &str,
    ) -> Result<Vec<converge::core::observed::ObservedObject>, CloudError> {
        self.count();
        self.inner.bucket_objects(bucket, prefix).await
    }
    async fn invalidation_completed(
        &self,
        distribution: &DistributionId,
        id: &str,
    ) -> Result<bool, CloudError> {
        self.count();
        self.inner.invalidation_completed(distribution, id).await
    }
    async fn clock_offset(&self) -> Result<jiff::SignedDuration, CloudError> {
        self.inner.clock_offset().await
    }
    async fn balancer_members(
        &self,
        name: &BalancerName,
        kind: BalancerType,
    ) -> Result<Vec<Member>, CloudError> {
        self.count();
        self.inner.balancer_members(name, kind).await
    }
    async fn distribution(
        &self,
        id: &DistributionId,
    ) -> Result<Option<ObservedDistribution>, CloudError> {
        self.count();
        self.inner.distribution(id).await
    }
    async fn parameters(
        &self,
        names: &[ParameterName],
    ) -> Result<BTreeMap<ParameterName, String>, CloudError> {
        self.count();
        self.inner.parameters(names).await
    }
    async fn images(
        &self,
        ids: &[ImageId],
    ) -> Result<BTreeMap<ImageId, ObservedImage>, CloudError> {
        self.count();
        self.inner.images(ids).await
    }
    fn api_calls(&self) -> Vec<ApiCall> {
        self.inner.api_calls()
    }
}

/// The instances an operation aims at (its targets).
pub fn targets(op: &Op) -> Vec<InstanceId> {
    match op {
        Op::AttachVolume { instance, .. } => vec![instance.clone()],
        Op::RegisterInstances { ids, .. } | Op::RegisterTargets { ids, .. } => ids.clone(),
        _ => Vec::new(),
    }
}

/// Loses (terminates at once) the instances an operation aims at.
pub fn lose_targets(cloud: &LocalCloud, op: &Op) {
    for id in targets(op) {
        let _ = cloud.lose_instance(&id);
    }
}

/// A fleet's instances in `state`, sorted.
pub fn in_state(o: &Observed, fleet: &str, state: InstanceState) -> Vec<InstanceId> {
    let mut v: Vec<InstanceId> = o
        .instances
        .iter()
        .filter(|i| i.owner.name.as_str() == fleet && i.state == state)
        .map(|i| i.id.clone())
        .collect();
    v.sort();
    v
}

// ---- the heal-time scenario of issue 12 ---------------------------------

use converge::apply::RetryPolicy;
use converge::cloud::local::{Delays, Faults, LocalConfig};
use converge::reconcile::{ReconcileOptions, Reconciler};
use converge::sys::SystemClock;
use std::time::Instant;

/// How a heal run goes: the loop's interval, instance losses every
/// `loss_every` for `losses` times, the local cloud's faults.
#[derive(Clone, Debug)]
pub struct HealConfig {
    /// The loop's interval.
    pub interval: Duration,
    /// Time between two losses.
    pub loss_every: Duration,
    /// How many instances are lost.
    pub losses: u32,
    /// The probability that a call is throttled.
    pub throttle: f64,
    /// How long describes lag behind creates.
    pub lag: Duration,
    /// The seed of the faults and of which instance is lost.
    pub seed: u64,
}

impl HealConfig {
    /// Issue 12's run: `reconcile --interval 2s` under
    /// `--local-faults throttle=0.3,lag=2s`, an instance lost every 4 s.
    pub fn issue(seed: u64, losses: u32) -> Self {
        Self {
            interval: Duration::from_secs(2),
            loss_every: Duration::from_secs(4),
            losses,
            throttle: 0.3,
            lag: Duration::from_secs(2),
            seed,
        }
    }

    /// The bound of issue 12: three intervals plus the boot delay (zero).
    pub fn bound(&self) -> Duration {
        self.interval * 3
    }
}

/// What a heal run measured.
#[derive(Clone, Debug)]
pub struct Healed {
    /// From the last loss to a converged stack (an empty plan, every
    /// running instance of a fleet behind a balancer a member of it).
    pub heal: Duration,
    /// Instances lost.
    pub lost: u32,
    /// Calls the loop made to the cloud (observes, actions, describes).
    pub api_calls: u64,
    /// The fleet of the last instance lost (`db`: its successor has
    /// another address, which the app fleet's user data names, so the
    /// app fleet rolls).
    pub last_fleet: String,
}

/// Retries of throttled calls within milliseconds, for the chaos's own
/// looks, so that they measure the loop, not their own backoff.
fn quick() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(2),
        cap: Duration::from_millis(10),
        ..RetryPolicy::default()
    }
}

/// Applies the example stack with the loop, loses instances as `cfg`
/// says while the loop runs, and measures the time from the last loss to
/// convergence (giving up after `give_up`).
pub async fn heal_run(cfg: &HealConfig, give_up: Duration) -> Result<Healed, String> {
    let local = LocalCloud::in_memory(
        LocalConfig {
            region: "us-east-1".into(),
            delays: Delays::zero(),
            faults: Faults {
                throttle: cfg.throttle,
                lag: cfg.lag,
                seed: Some(cfg.seed),
                crash_after: None,
            },
        },
        Arc::new(SystemClock),
    );
    let desired = Arc::new(smallpayroll());
    let opts = ReconcileOptions {
        interval: cfg.interval,
        retry: RetryPolicy {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(500),
            ..RetryPolicy::default()
        },
        poll_interval: Duration::from_millis(100),
        ..ReconcileOptions::default()
    };
    let counted = Hooked::new(local.clone());
    let mut rec = Reconciler::new(
        Arc::new(counted.clone()),
        converge::reconcile::Manifests::Fixed(desired.clone()),
        Arc::new(SystemClock),
        opts,
    )
    .with_http(Arc::new(Answers));
    let stop = rec.stop_handle();
    let task = tokio::spawn(async move { rec.run().await });
    let result = heal_after_losses(&local, &desired, cfg, give_up).await;
    stop.stop();
    let _ = task.await;
    result.map(|h| Healed {
        api_calls: counted.calls.load(std::sync::atomic::Ordering::Relaxed),
        ..h
    })
}

async fn heal_after_losses(
    local: &LocalCloud,
    desired: &Desired,
    cfg: &HealConfig,
    give_up: Duration,
) -> Result<Healed, String> {
    let mut rng = fastrand::Rng::with_seed(cfg.seed);
    // First the stack converges.
    converged_within(local, desired, give_up).await?;
    let mut lost = 0;
    let mut last_loss = Instant::now();
    let mut last_fleet = String::new();
    for _ in 0..cfg.losses {
        tokio::time::sleep(cfg.loss_every).await;
        // The chaos's own look retries its throttled calls within
        // milliseconds: a loss skipped because the look was throttled
        // would leave an idle slot before the measurement starts, and the
        // heal time would count it.
        let o = converge::commands::observe_for(local, desired, &quick()).await;
        let Ok(o) = o else { continue };
        let mut running: Vec<&ObservedInstance> = o
            .instances
            .iter()
            .filter(|i| i.state == InstanceState::Running)
            .collect();
        if running.is_empty() {
            continue;
        }
        running.sort_by_key(|i| i.launched_at);
        // The newest half the time (the harsher run of the issue).
        let victim = if rng.bool() {
            running[running.len() - 1]
        } else {
            running[rng.usize(0..running.len())]
        };
        if local.lose_instance(&victim.id).is_ok() {
            lost += 1;
            last_loss = Instant::now();
            last_fleet = victim.owner.name.to_string();
        }
    }
    converged_within(local, desired, give_up).await?;
    Ok(Healed {
        heal: last_loss.elapsed(),
        lost,
        api_calls: 0,
        last_fleet,
    })
}

/// Polls every 50 ms until the stack is converged: a fresh plan is empty
/// and every running instance of a fleet behind a balancer is a member.
/// Its own observations retry throttled calls within milliseconds, so that
/// the check measures the loop, not its own backoff.
pub async fn converged_within(
    cloud: &LocalCloud,
    desired: &Desired,
    give_up: Duration,
) -> Result<(), String> {
    let quick = quick();
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < give_up {
        let at = jiff::Timestamp::now();
        match converge::commands::observe_for(cloud, desired, &quick).await {
            Ok(o) => {
                match converge::core::plan(&converge::core::plan::PlanInput::new(desired, &o, at)) {
                    Ok(plan) if !plan.has_changes() => match unregistered(desired, &o) {
                        None => return Ok(()),
                        Some(why) => last = why,
                    },
                    Ok(plan) => last = converge::core::render::text(&plan, &Default::default()),
                    Err(e) => last = e.to_string(),
                }
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("not converged after {give_up:?}: {last}"))
}

/// A running instance of a fleet behind a balancer that is not one of its
/// members, if any.
pub fn unregistered(desired: &Desired, o: &Observed) -> Option<String> {
    for (name, b) in &desired.balancers {
        let Some(seen) = o.balancers.iter().find(|x| x.owner.name == *name) else {
            return Some(format!("Balancer/{name} is not there"));
        };
        for fleet in &b.fleets {
            for id in in_state(o, fleet.as_str(), InstanceState::Running) {
                if !seen.members.iter().any(|m| m.instance == id) {
                    return Some(format!("{id} of Fleet/{fleet} is not in Balancer/{name}"));
                }
            }
        }
    }
    None
}

/// The median, 95th percentile and maximum of `xs`.
pub fn spread(xs: &mut [Duration]) -> (Duration, Duration, Duration) {
    xs.sort();
    let at = |q: f64| xs[((xs.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95), xs[xs.len() - 1])
}
