//! Issue 12: the loop under chaos, on the in-memory local cloud with the
//! example stack.
//!
//! ```text
//! cargo bench --bench chaos -- heal 20      # the heal-time distribution over 20 seeds
//! cargo bench --bench chaos -- heal 20 5    # … with 5 losses a seed instead of 10
//! cargo bench --bench chaos -- heal 1 5 19   # … seed 19 alone (seeds from the third)
//! cargo bench --bench chaos -- soak 600     # a 10-minute soak (seconds)
//! ```
//!
//! `heal SEEDS`: issue 12's run (`--interval 2s`, `throttle=0.3,lag=2s`,
//! an instance lost every 4 s, ten times, the newest half the time) per
//! seed; prints each seed's time from the last loss to a converged stack,
//! then the median, p95 and maximum, against the bound of three intervals
//! (plus the boot delay, zero). Exits 1 when a run exceeds it.
//!
//! `soak SECONDS`: the loop runs while instances are lost at random,
//! calls are throttled (0.2) and describes lag (1 s); now and then the
//! reconciler is killed (its task aborted mid-pass, whatever it was doing,
//! as a SIGKILL would) and, while it is down, an `apply` runs before a new
//! reconciler (with no memory) starts; a `plan` runs every few seconds
//! beside it. Checked every 250 ms: no fleet has more live instances than
//! its target (its autoscaling maximum) plus `maxSurge`; no Volume has two
//! volumes; no fleet's last InService balancer member is terminated but by
//! the chaos. After it: the stack converges, one plan is empty, and a
//! destroy leaves only what the deletion policies retain. Prints losses,
//! kills, heal times, calls and peak RSS; exits 1 on a broken invariant.

#![allow(clippy::unwrap_used)] // a benchmark: a panic says what broke

#[path = "../tests/support/chaos.rs"]
mod chaos;

use chaos::{Answers, HealConfig, Hooked, converged_within, heal_run, smallpayroll, spread};
use converge::apply::{ApplyOptions, Quiet, RetryPolicy, execute};
use converge::cloud::Cloud;
use converge::cloud::local::{Delays, Faults, LocalCloud, LocalConfig};
use converge::core::Desired;
use converge::core::ids::InstanceId;
use converge::core::observed::{InstanceState, MemberState, Observed};
use converge::core::plan::fleet_target;
use converge::reconcile::{Manifests, ReconcileOptions, Reconciler};
use converge::sys::SystemClock;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `CONVERGE_LOG=reconcile=warn` shows the loop's failures.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("CONVERGE_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let ok = match args.first().map(String::as_str) {
        Some("soak") => soak(Duration::from_secs(n(1, 600))).await,
        Some("heal") | None => heal(n(3, 1)..n(3, 1) + n(1, 20), n(2, 10) as u32).await,
        Some(other) => {
            eprintln!("unknown mode {other}: heal SEEDS or soak SECONDS");
            false
        }
    };
    std::process::exit(if ok { 0 } else { 1 });
}

async fn heal(seeds: std::ops::Range<u64>, losses: u32) -> bool {
    let mut times = Vec::new();
    let mut ok = true;
    let bound = HealConfig::issue(0, 0).bound();
    let count = seeds.end - seeds.start;
    println!("heal time after the last loss, {count} seeds, bound {bound:?}");
    for seed in seeds {
        let cfg = HealConfig::issue(seed, losses);
        match heal_run(&cfg, Duration::from_secs(120)).await {
            Ok(h) => {
                println!(
                    "  seed {seed:>3}: {:>6.2} s  ({} lost, the last of Fleet/{}, {} calls)",
                    h.heal.as_secs_f64(),
                    h.lost,
                    h.last_fleet,
                    h.api_calls
                );
                ok &= h.heal <= bound;
                times.push(h.heal);
            }
            Err(e) => {
                println!("  seed {seed:>3}: FAILED: {e}");
                ok = false;
            }
        }
    }
    if !times.is_empty() {
        let (median, p95, max) = spread(&mut times);
        println!(
            "median {:.2} s, p95 {:.2} s, max {:.2} s (bound {:.2} s): {}",
            median.as_secs_f64(),
            p95.as_secs_f64(),
            max.as_secs_f64(),
            bound.as_secs_f64(),
            if ok { "met" } else { "NOT met" }
        );
    }
    ok
}

/// What the soak saw.
#[derive(Default, Debug)]
struct Soak {
    losses: u32,
    kills: u32,
    applies: u32,
    plans: u32,
    converged: u32,
    heal_times: Vec<Duration>,
    violations: Vec<String>,
    peak_rss_kib: u64,
}

fn reconciler(cloud: &Hooked, desired: &Arc<Desired>) -> Reconciler {
    let opts = ReconcileOptions {
        interval: Duration::from_secs(1),
        retry: RetryPolicy {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(500),
            ..RetryPolicy::default()
        },
        poll_interval: Duration::from_millis(100),
        ..ReconcileOptions::default()
    };
    Reconciler::new(
        Arc::new(cloud.clone()),
        Manifests::Fixed(desired.clone()),
        Arc::new(SystemClock),
        opts,
    )
    .with_http(Arc::new(Answers))
}

// long-function: one soak loop, its phases in order
async fn soak(length: Duration) -> bool {
    let local = LocalCloud::in_memory(
        LocalConfig {
            region: "us-east-1".into(),
            delays: Delays::zero(),
            faults: Faults {
                throttle: 0.2,
                lag: Duration::from_secs(1),
                seed: Some(12),
                crash_after: None,
            },
        },
        Arc::new(SystemClock),
    );
    let cloud = Hooked::new(local.clone());
    let desired = Arc::new(smallpayroll());
    let mut rng = fastrand::Rng::with_seed(12);
    let mut s = Soak::default();
    let mut task = Some(tokio::spawn({
        let mut rec = reconciler(&cloud, &desired);
        async move { rec.run().await }
    }));
    let start = Instant::now();
    let mut lost_by_chaos: BTreeSet<InstanceId> = BTreeSet::new();
    let mut last_in_service: BTreeMap<String, Vec<InstanceId>> = BTreeMap::new();
    let mut unhealed_since: Option<Instant> = None;
    let mut tick = 0u64;
    println!("soak: {length:?}");
    while start.elapsed() < length {
        tokio::time::sleep(Duration::from_millis(250)).await;
        tick += 1;
        let Ok(o) = local.observe(&desired.stack).await else {
            continue;
        };
        check_invariants(&desired, &o, &lost_by_chaos, &mut last_in_service, &mut s);
        s.peak_rss_kib = s.peak_rss_kib.max(rss_kib());
        // Once a second: maybe lose an instance, maybe kill the loop.
        if tick.is_multiple_of(4) {
            let running: Vec<&InstanceId> = o
                .instances
                .iter()
                .filter(|i| i.state == InstanceState::Running)
                .map(|i| &i.id)
                .collect();
            if !running.is_empty() && rng.f64() < 0.2 {
                let victim = running[rng.usize(0..running.len())].clone();
                if local.lose_instance(&victim).is_ok() {
                    s.losses += 1;
                    lost_by_chaos.insert(victim);
                    unhealed_since.get_or_insert_with(Instant::now);
                }
            }
            if rng.f64() < 0.04
                && let Some(t) = task.take()
            {
                t.abort();
                let _ = t.await;
                s.kills += 1;
                // While the loop is down, an operator applies.
                if let Ok((_, plan)) = converge::commands::observe_and_plan(
                    &cloud,
                    &desired,
                    jiff::Timestamp::now(),
                    &BTreeMap::new(),
                )
                .await
                {
                    let opts = ApplyOptions {
                        poll_interval: Duration::from_millis(100),
                        step_timeout: Some(Duration::from_secs(60)),
                        ..ApplyOptions::default()
                    };
                    execute(Arc::new(cloud.clone()), &plan, opts, Arc::new(Quiet)).await;
                    s.applies += 1;
                }
                let mut rec = reconciler(&cloud, &desired);
                task = Some(tokio::spawn(async move { rec.run().await }));
            }
        }
        // Every three seconds: a plan beside the loop; converged or not.
        if tick.is_multiple_of(12) {
            s.plans += 1;
            let at = jiff::Timestamp::now();
            if let Ok((o, plan)) =
                converge::commands::observe_and_plan(&cloud, &desired, at, &BTreeMap::new()).await
                && !plan.has_changes()
                && chaos::unregistered(&desired, &o).is_none()
            {
                s.converged += 1;
                if let Some(since) = unhealed_since.take() {
                    s.heal_times.push(since.elapsed());
                }
            }
        }
    }
    let converged = converged_within(&local, &desired, Duration::from_secs(120)).await;
    if let Some(t) = task.take() {
        t.abort();
        let _ = t.await;
    }
    let left = destroy(&cloud, &desired).await;
    let calls = cloud.calls.load(Ordering::Relaxed);
    report(&s, length, calls, &converged, &left);
    s.violations.is_empty() && converged.is_ok() && left.is_ok()
}

fn check_invariants(
    desired: &Desired,
    o: &Observed,
    lost_by_chaos: &BTreeSet<InstanceId>,
    last_in_service: &mut BTreeMap<String, Vec<InstanceId>>,
    s: &mut Soak,
) {
    let now = jiff::Timestamp::now();
    for (name, spec) in &desired.fleets {
        let live = o
            .instances
            .iter()
            .filter(|i| i.owner.name == *name && i.state.is_live())
            .count() as u32;
        let target = match &spec.autoscale {
            Some(a) => a.max.max(a.min),
            None => fleet_target(spec, now, None, live).0,
        };
        if live > target + spec.update.max_surge {
            s.violations.push(format!(
                "Fleet/{name}: {live} live instances, over {target} + maxSurge {}",
                spec.update.max_surge
            ));
        }
    }
    for name in desired.volumes.keys() {
        let n = o.volumes.iter().filter(|v| v.owner.name == *name).count();
        if n > 1 {
            s.violations.push(format!("Volume/{name}: {n} volumes"));
        }
    }
    for b in &o.balancers {
        let key = b.owner.name.to_string();
        let in_service: Vec<InstanceId> = b
            .members
            .iter()
            .filter(|m| m.state == MemberState::InService)
            .map(|m| m.instance.clone())
            .collect();
        if let Some(prev) = last_in_service.get(&key)
            && prev.len() == 1
        {
            let only = &prev[0];
            let ended = o
                .instances
                .iter()
                .any(|i| i.id == *only && !i.state.is_live());
            if ended && !lost_by_chaos.contains(only) && in_service.is_empty() {
                s.violations.push(format!(
                    "Balancer/{key}: its last healthy member {only} was terminated"
                ));
            }
        }
        last_in_service.insert(key, in_service);
    }
}

/// Destroys the stack; `Err` naming what is left that no policy retains.
async fn destroy(cloud: &Hooked, desired: &Desired) -> Result<String, String> {
    let empty = Desired::empty(desired.stack.clone(), desired.region.clone());
    for _ in 0..5 {
        let (_, plan) = converge::commands::observe_and_plan(
            cloud,
            &empty,
            jiff::Timestamp::now(),
            &BTreeMap::new(),
        )
        .await
        .map_err(|e| e.to_string())?;
        if !plan.has_changes() {
            break;
        }
        let opts = ApplyOptions {
            poll_interval: Duration::from_millis(100),
            ..ApplyOptions::default()
        };
        execute(Arc::new(cloud.clone()), &plan, opts, Arc::new(Quiet)).await;
    }
    let o = converge::commands::observe_for(cloud, desired, &RetryPolicy::default())
        .await
        .map_err(|e| e.to_string())?;
    let live = o.instances.iter().filter(|i| i.state.is_live()).count();
    if live > 0 || !o.balancers.is_empty() || !o.distributions.is_empty() {
        return Err(format!(
            "{live} instances, {} balancers, {} distributions left",
            o.balancers.len(),
            o.distributions.len()
        ));
    }
    Ok(format!(
        "left: {} volume(s), {} bucket(s) (retained by their policies)",
        o.volumes.len(),
        o.buckets.len()
    ))
}

fn report(
    s: &Soak,
    length: Duration,
    calls: u64,
    converged: &Result<(), String>,
    left: &Result<String, String>,
) {
    let mut heal = s.heal_times.clone();
    println!(
        "{:.0} s: {} instances lost, {} reconciler kills (each followed by an apply), {} plans beside it ({} converged)",
        length.as_secs_f64(),
        s.losses,
        s.kills,
        s.plans,
        s.converged
    );
    if !heal.is_empty() {
        let (median, p95, max) = spread(&mut heal);
        println!(
            "heal time (first loss of a burst to the next converged plan, sampled every 3 s): median {:.1} s, p95 {:.1} s, max {:.1} s over {} bursts",
            median.as_secs_f64(),
            p95.as_secs_f64(),
            max.as_secs_f64(),
            heal.len()
        );
    }
    println!(
        "calls to the cloud by the loops and applies: {calls} ({:.1}/s); peak RSS {:.1} MiB",
        calls as f64 / length.as_secs_f64(),
        s.peak_rss_kib as f64 / 1024.0
    );
    match converged {
        Ok(()) => println!("after the soak: converged, one plan empty"),
        Err(e) => println!("after the soak: NOT converged: {e}"),
    }
    match left {
        Ok(l) => println!("destroy: {l}"),
        Err(e) => println!("destroy: FAILED: {e}"),
    }
    if s.violations.is_empty() {
        println!("invariants: all held");
    } else {
        println!("invariants: {} broken:", s.violations.len());
        for v in s.violations.iter().take(20) {
            println!("  {v}");
        }
    }
}

/// This process's resident set, KiB (0 where `/proc` is not there).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
