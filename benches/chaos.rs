//! Issue 12: the loop under chaos on the local cloud, with the example
//! stack.
//!
//! ```text
//! cargo bench --bench chaos -- heal 20      # the heal-time distribution over 20 seeds
//! cargo bench --bench chaos -- heal 20 5    # … with 5 losses a seed instead of 10
//! cargo bench --bench chaos -- heal 1 5 19   # … seed 19 alone (seeds from the third)
//! cargo bench --bench chaos -- soak 600     # a 10-minute soak (seconds)
//! ```
//!
//! (Without a release build: `cargo test --bench chaos --no-run`, then
//! `target/debug/deps/chaos-HASH soak 600`.)
//!
//! `heal SEEDS`: issue 12's run (`--interval 2s`, `throttle=0.3,lag=2s`,
//! an instance lost every 4 s, ten times, the newest half the time) per
//! seed, in this process on an in-memory cloud; prints each seed's time
//! from the last loss to a converged stack, then the median, p95 and
//! maximum, against the bound of three intervals (plus the boot delay,
//! zero). Exits 1 when a run exceeds it.
//!
//! `soak SECONDS`: real processes on a local cloud kept in a temporary
//! state directory (the example stack copied beside it). The reconciler is
//! the `converge` binary (`reconcile --interval 1s`, `--local-faults
//! throttle=0.2,lag=1s`, zero delays), killed with SIGKILL at random
//! moments (most of them while it heals a loss) and started again: at
//! once one time in three (the new one takes the dead one's lease over),
//! else once an `apply --yes` process has run while it was down; a `plan
//! --detailed-exitcode` process runs every 3 s beside it (exit 0 or 2; a
//! failure other than throttling past its retries is a broken invariant).
//! This process loses a running instance about every 5 s and checks,
//! every 250 ms, through its own handle on the state directory (no
//! faults): no fleet has more live instances than its target (its
//! autoscaling maximum) plus `maxSurge`; no Volume has two volumes, nor
//! is one attached to another fleet's instance or on a device another
//! volume holds (one volume attached twice cannot be observed: the model
//! has one attachment per volume); no fleet's last InService balancer
//! member is terminated but by the chaos; no process panicked or was
//! refused the lease of a killed one. After it: the loop, sent SIGTERM,
//! exits 0 within 10 s and releases its lease; an `apply` converges the
//! stack; one `plan` is empty; `destroy` leaves only what the deletion
//! policies retain. Prints losses, SIGKILLs, applies, plans, heal times,
//! API calls (each process's own count) and the reconcilers' peak RSS;
//! exits 1 on a broken invariant or a failed check.

#![allow(clippy::unwrap_used)] // a benchmark: a panic says what broke

#[path = "../tests/support/chaos.rs"]
mod chaos;
#[path = "../tests/support/example.rs"]
mod example;
#[path = "chaos/soak.rs"]
mod soak;

use chaos::{HealConfig, heal_run, spread};
use std::time::Duration;

fn main() {
    // `CONVERGE_LOG=reconcile=warn` shows the in-process loop's failures.
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
        Some("soak") => soak::soak(Duration::from_secs(n(1, 600))),
        Some("heal") | None => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(heal(n(3, 1)..n(3, 1) + n(1, 20), n(2, 10) as u32)),
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
