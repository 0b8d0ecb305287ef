//! The reconcile loop's steady-state cost on the file-backed local cloud:
//! a stack of 1,000 instances (3 fleets over 2 zones, a key pair, a
//! security group, a balancer in front of one fleet) is converged by a
//! first pass, then the loop runs no-change passes at an interval for a
//! while, and each pass's wall time, CPU time and resident memory are
//! measured.
//!
//! ```text
//! cargo bench --bench reconcile               # 600 s at a 5 s interval
//! cargo bench --bench reconcile -- 60         # a quick run: 60 s
//! cargo bench --bench reconcile -- 600 5 1000 # seconds, interval (s), instances
//! ```
//!
//! Targets (issue 4): under 50 MiB resident and under 50 ms of CPU per
//! no-change pass. It prints whether they are met, and exits 1 when a
//! pass fails or has changes.
//!
//! CPU per pass is the growth, over the pass, of the sum of the first
//! field (ns on the CPU) of `/proc/self/task/*/schedstat`: nanosecond
//! resolution, every thread of the process (a thread that exits during
//! the pass loses its share, so the total over the run is checked against
//! `/proc/self/stat`'s utime + stime, which keeps exited threads but
//! counts in 10 ms ticks).

#![allow(clippy::unwrap_used)] // a benchmark: a panic says what broke

use converge::cloud::Cloud as _;
use converge::cloud::local::{Delays, Faults, LocalCloud, LocalConfig};
use converge::core::observed::MemberState;
use converge::lease::{Holding, LocalLease};
use converge::reconcile::metrics::Metrics;
use converge::reconcile::{Manifests, PassReport, ReconcileOptions, Reconciler};
use converge::sys::SystemClock;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const FLEETS: [&str; 3] = ["web", "worker", "cache"];
const ZONES: &str = "[us-east-1a, us-east-1b]";
const REGION: &str = "us-east-1";
const RSS_TARGET: u64 = 50 * 1024 * 1024;
const CPU_TARGET: Duration = Duration::from_millis(50);

/// Writes the stack: `n` instances over 3 fleets and 2 zones, a key pair,
/// a security group and a balancer in front of the first fleet.
fn manifests(dir: &Path, stack: &str, n: u32) {
    let mut y = format!(
        "kind: Stack\nname: {stack}\nspec:\n  region: {REGION}\n  tags: {{ bench: \"true\" }}\n---\n\
         kind: KeyPair\nname: ops\nspec:\n  publicKey: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH23A8DpTfNAtNaPrDUGmxnEYdRZCJpsiUN2WzaV4KCZ ops@example\n---\n\
         kind: SecurityGroup\nname: app\nspec:\n  description: bench servers\n  ingress:\n    - {{ port: 80, cidr: 0.0.0.0/0 }}\n"
    );
    for (i, fleet) in FLEETS.iter().enumerate() {
        let replicas = n / 3 + u32::from((i as u32) < n % 3);
        y.push_str(&format!(
            "---\nkind: Fleet\nname: {fleet}\nspec:\n  image: ami-147f977d\n  instanceType: t3.micro\n  zones: {ZONES}\n  replicas: {replicas}\n  keyPair: ops\n  securityGroups: [app]\n  userData: role={fleet}\n"
        ));
    }
    y.push_str(&format!(
        "---\nkind: Balancer\nname: web\nspec:\n  zones: {ZONES}\n  listeners:\n    - {{ port: 80, instancePort: 80, protocol: HTTP }}\n  healthCheck:\n    target: \"HTTP:80/\"\n    interval: 30s\n    timeout: 3s\n    healthyThreshold: 2\n    unhealthyThreshold: 2\n  fleets: [{}]\n",
        FLEETS[0]
    ));
    std::fs::write(dir.join("stack.yaml"), y).unwrap();
}

/// CPU time of every live thread of this process, in ns.
fn thread_cpu_ns() -> u64 {
    let mut total = 0;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    for t in tasks.flatten() {
        // A thread may exit between the listing and the read.
        if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat"))
            && let Some(ns) = s
                .split_whitespace()
                .next()
                .and_then(|f| f.parse::<u64>().ok())
        {
            total += ns;
        }
    }
    total
}

/// utime + stime of the whole process (exited threads included), in
/// clock ticks, and the number of threads.
fn process_ticks() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which is in parentheses).
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): utime is field 14, stime 15, threads 20.
    let utime: u64 = f[14 - 3].parse().unwrap();
    let stime: u64 = f[15 - 3].parse().unwrap();
    let threads: u64 = f[20 - 3].parse().unwrap();
    (utime + stime, threads)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
fn clk_tck() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// A field of `/proc/self/status` given in kB, in bytes.
fn status_field(name: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// `VmRSS` and `VmHWM`, in bytes.
fn memory() -> (u64, u64) {
    (status_field("VmRSS"), status_field("VmHWM"))
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The value at quantile `q` of sorted `v` (nearest rank).
fn quantile(v: &[Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn describe(r: &PassReport) -> String {
    format!(
        "ok={} observed={} planned={} done={} failed={} skipped={} held={} in {}; events: {:?}",
        r.ok,
        r.observed,
        r.planned,
        r.done(),
        r.failed(),
        r.skipped(),
        r.held,
        ms(r.duration),
        r.events
    )
}

struct Args {
    seconds: u64,
    interval: Duration,
    instances: u32,
}

fn args() -> Args {
    // `cargo bench` passes `--bench`; numbers are, in order, the run's
    // length in seconds, the interval in seconds and the instance count.
    let nums: Vec<f64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    Args {
        seconds: nums.first().map_or(600, |&s| s as u64),
        interval: Duration::from_secs_f64(nums.get(1).copied().unwrap_or(5.0)),
        instances: nums.get(2).map_or(1000, |&n| n as u32),
    }
}

async fn bench(a: Args) -> bool {
    let work = tempfile::tempdir().unwrap();
    let stack_dir = work.path().join("stack");
    let state_dir = work.path().join("state");
    std::fs::create_dir_all(&stack_dir).unwrap();
    let stack = format!("bench-{}", a.instances);
    manifests(&stack_dir, &stack, a.instances);
    let desired = converge::manifest::load(&stack_dir, &|_| None)
        .unwrap()
        .desired;

    // As `converge reconcile` does: the file-backed local cloud, the
    // stack's lease (renewed in the background), metrics, the reconciler.
    let cloud = LocalCloud::open(
        &state_dir,
        LocalConfig {
            region: REGION.to_owned(),
            delays: Delays::zero(),
            faults: Faults::default(),
        },
        Arc::new(SystemClock),
    )
    .unwrap();
    let lease = LocalLease::new(&state_dir, &desired.stack, Arc::new(SystemClock)).unwrap();
    let holding = Holding::take(Arc::new(lease), Duration::ZERO)
        .await
        .unwrap();
    let opts = ReconcileOptions {
        interval: a.interval,
        ..ReconcileOptions::default()
    };
    let mut reconciler = Reconciler::new(
        Arc::new(cloud.clone()),
        Manifests::Directory(stack_dir.clone()),
        Arc::new(SystemClock),
        opts,
    )
    .with_metrics(Arc::new(Metrics::new()));

    println!(
        "converge reconcile bench: {} instances (3 fleets × 2 zones, a balancer on {}), file-backed local cloud, {} s at a {} s interval",
        a.instances,
        FLEETS[0],
        a.seconds,
        a.interval.as_secs_f64()
    );

    // Converge: passes until one has nothing to do.
    let converge_start = Instant::now();
    let mut converging = 0;
    loop {
        let r = reconciler.run_once().await;
        converging += 1;
        println!("  converging pass {converging}: {}", describe_short(&r));
        if !r.ok || r.failed() > 0 {
            println!("  the converging pass failed: {}", describe(&r));
            return false;
        }
        if r.planned == 0 {
            break;
        }
        if converging >= 5 {
            println!("  not converged after 5 passes");
            return false;
        }
    }
    // The stack really is there: every instance live, the balancer's
    // members in service.
    let observed = cloud.observe(&desired.stack).await.unwrap();
    let live = observed
        .instances
        .iter()
        .filter(|i| i.state.is_live())
        .count();
    let in_service = observed
        .balancers
        .iter()
        .flat_map(|b| &b.members)
        .filter(|m| m.state == MemberState::InService)
        .count();
    println!(
        "  observed: {live} live instances, {} balancer(s) with {in_service} member(s) in service, {} key pair(s), {} security group(s)",
        observed.balancers.len(),
        observed.key_pairs.len(),
        observed.security_groups.len()
    );
    if live != a.instances as usize {
        println!("  expected {} live instances", a.instances);
        return false;
    }
    drop((observed, desired));
    let file_size = std::fs::metadata(cloud.state_file().unwrap())
        .map(|m| m.len())
        .unwrap_or(0);
    let (rss_converged, hwm_converged) = memory();
    println!(
        "  converged in {:.2} s; state file {}; RSS {}, VmHWM {}",
        converge_start.elapsed().as_secs_f64(),
        mib(file_size),
        mib(rss_converged),
        mib(hwm_converged)
    );

    // Steady state.
    tokio::time::sleep(a.interval).await;
    let (rss_start, _) = memory();
    let (ticks_start, _) = process_ticks();
    let steady_start = Instant::now();
    let deadline = steady_start + Duration::from_secs(a.seconds);
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    let mut rss_max = rss_start;
    let mut bad = 0u32;
    let mut next_report = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let cpu0 = thread_cpu_ns();
        let t0 = Instant::now();
        let r = reconciler.run_once().await;
        let wall = t0.elapsed();
        let cpu1 = thread_cpu_ns();
        let cpu = Duration::from_nanos(cpu1.saturating_sub(cpu0));
        let (rss, _) = memory();
        rss_max = rss_max.max(rss);
        walls.push(wall);
        cpus.push(cpu);
        if !r.ok || r.planned > 0 || r.failed() > 0 || r.held > 0 {
            bad += 1;
            println!(
                "  pass {} was not a clean no-change pass: {}",
                walls.len(),
                describe(&r)
            );
        }
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(60);
            println!(
                "  {:>4.0} s: {} passes, last {} wall, {} CPU, RSS {}",
                steady_start.elapsed().as_secs_f64(),
                walls.len(),
                ms(wall),
                ms(cpu),
                mib(rss)
            );
        }
        tokio::time::sleep(a.interval).await;
    }
    let steady = steady_start.elapsed();
    let (ticks_end, threads) = process_ticks();
    let (rss_end, hwm) = memory();
    let _ = holding.release().await;

    let passes = walls.len();
    let cpu_sum: Duration = cpus.iter().sum();
    let tck = clk_tck();
    let proc_cpu = Duration::from_secs_f64((ticks_end - ticks_start) as f64 / tck as f64);
    walls.sort();
    cpus.sort();
    let cpu_median = quantile(&cpus, 0.5);
    let cpu_p95 = quantile(&cpus, 0.95);
    let rss_ok = rss_max < RSS_TARGET;
    let cpu_ok = cpu_median < CPU_TARGET;
    println!();
    println!(
        "Steady state: {passes} no-change passes in {:.0} s ({bad} not clean); {threads} threads at the end",
        steady.as_secs_f64()
    );
    println!(
        "  wall per pass:   median {}, p95 {}, max {}, min {}",
        ms(quantile(&walls, 0.5)),
        ms(quantile(&walls, 0.95)),
        ms(walls.last().copied().unwrap_or_default()),
        ms(walls.first().copied().unwrap_or_default())
    );
    println!(
        "  CPU per pass:    median {}, p95 {}, max {}, min {} (schedstat, all threads)",
        ms(cpu_median),
        ms(cpu_p95),
        ms(cpus.last().copied().unwrap_or_default()),
        ms(cpus.first().copied().unwrap_or_default())
    );
    println!(
        "  CPU check:       {} per pass summed over passes; {} per pass from /proc/self/stat over the whole steady state (idle time included, 1/{tck} s ticks)",
        ms(cpu_sum / passes.max(1) as u32),
        ms(proc_cpu / passes.max(1) as u32)
    );
    println!(
        "  RSS:             {} after converging, {} at the start of steady state, {} at the end, {} max after a pass; VmHWM {} (converging included)",
        mib(rss_converged),
        mib(rss_start),
        mib(rss_end),
        mib(rss_max),
        mib(hwm)
    );
    println!(
        "  RSS at the end:  {} anonymous (heap, stacks), {} file-backed (the binary's pages)",
        mib(status_field("RssAnon")),
        mib(status_field("RssFile"))
    );
    println!(
        "  targets: RSS < 50 MiB: {} ({}); CPU per no-change pass < 50 ms: {} (median {}, p95 {})",
        if rss_ok { "met" } else { "MISSED" },
        mib(rss_max),
        if cpu_ok { "met" } else { "MISSED" },
        ms(cpu_median),
        ms(cpu_p95)
    );
    bad == 0 && passes > 0
}

fn describe_short(r: &PassReport) -> String {
    format!(
        "planned {}, done {}, failed {}, in {}",
        r.planned,
        r.done(),
        r.failed(),
        ms(r.duration)
    )
}

fn main() {
    let a = args();
    // The runtime `converge` itself uses.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if !rt.block_on(bench(a)) {
        std::process::exit(1);
    }
}
