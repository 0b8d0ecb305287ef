//! The AWS backend's cost against a moto server: for N instances (default
//! 100 and 1,000) over 3 fleets and 2 zones, it applies the stack, then
//! times a no-change plan and counts its API calls, and times the apply.
//!
//! ```text
//! source scripts/moto.sh start
//! cargo bench --bench aws                 # N = 100 and 1000
//! cargo bench --bench aws -- 100 1000 3000
//! moto_stop
//! ```
//!
//! Targets: a no-change plan of 1,000 instances in at most 12 API calls
//! and under 5 s; the apply uses one RunInstances per fleet and zone.
//! Each N runs in an account of its own on the server.

#![allow(clippy::unwrap_used)] // a benchmark: a panic says what broke

use converge::apply::{ApplyOptions, Quiet, execute};
use converge::cloud::ApiCall;
use converge::cloud::aws::{AwsCloud, AwsOptions};
use converge::commands::observe_and_plan;
use converge::core::desired::Desired;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const FLEETS: [&str; 3] = ["web", "worker", "cache"];
const ZONES: &str = "[us-east-1a, us-east-1b]";

fn manifests(dir: &std::path::Path, stack: &str, n: u32) {
    let mut y = format!(
        "kind: Stack\nname: {stack}\nspec:\n  region: us-east-1\n  tags: {{ bench: \"true\" }}\n---\n\
         kind: KeyPair\nname: ops\nspec:\n  publicKey: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH23A8DpTfNAtNaPrDUGmxnEYdRZCJpsiUN2WzaV4KCZ ops@example\n---\n\
         kind: SecurityGroup\nname: app\nspec:\n  description: bench servers\n  ingress:\n    - {{ port: 80, cidr: 0.0.0.0/0 }}\n"
    );
    for (i, fleet) in FLEETS.iter().enumerate() {
        let replicas = n / 3 + u32::from((i as u32) < n % 3);
        y.push_str(&format!(
            "---\nkind: Fleet\nname: {fleet}\nspec:\n  image: ami-147f977d\n  instanceType: t3.micro\n  zones: {ZONES}\n  replicas: {replicas}\n  keyPair: ops\n  securityGroups: [app]\n  userData: role={fleet}\n"
        ));
    }
    std::fs::write(dir.join("stack.yaml"), y).unwrap();
}

fn total(calls: &[ApiCall]) -> u64 {
    calls.iter().map(|c| c.calls).sum()
}

fn calls_of(calls: &[ApiCall], op: &str) -> u64 {
    calls
        .iter()
        .filter(|c| c.operation == op)
        .map(|c| c.calls)
        .sum()
}

fn show(calls: &[ApiCall]) -> String {
    calls
        .iter()
        .map(|c| format!("{} {}×{}", c.service, c.operation, c.calls))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn bench(endpoint: &str, n: u32) -> bool {
    let account = format!("{:012}", fastrand::u64(100_000_000_000..999_999_999_999));
    let cloud = Arc::new(
        AwsCloud::connect(
            AwsOptions {
                endpoint_url: Some(endpoint.to_owned()),
                moto_account: Some(account),
                ..AwsOptions::default()
            },
            "us-east-1",
        )
        .await
        .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let stack = format!("bench-{n}-{}", fastrand::u32(..));
    manifests(dir.path(), &stack, n);
    let desired: Desired = converge::manifest::load(dir.path(), &|_| None)
        .unwrap()
        .desired;
    let at = jiff::Timestamp::now();
    let scale = BTreeMap::new();

    let (_, plan) = observe_and_plan(&*cloud, &desired, at, &scale)
        .await
        .unwrap();
    cloud.reset_stats();
    let start = Instant::now();
    let opts = ApplyOptions {
        poll_interval: Duration::from_millis(200),
        ..ApplyOptions::default()
    };
    let report = execute(cloud.clone(), &plan, opts, Arc::new(Quiet)).await;
    let apply_time = start.elapsed();
    assert!(
        report.is_success(),
        "the apply failed: {} failed",
        report.failed()
    );
    let apply_calls = cloud.stats();

    let mut times = Vec::new();
    let mut plan_calls = Vec::new();
    for _ in 0..3 {
        cloud.reset_stats();
        let start = Instant::now();
        let (observed, again) = observe_and_plan(&*cloud, &desired, at, &scale)
            .await
            .unwrap();
        times.push(start.elapsed());
        plan_calls = cloud.stats();
        assert!(!again.has_changes(), "a no-change plan has steps");
        let live = observed
            .instances
            .iter()
            .filter(|i| i.state.is_live())
            .count();
        assert_eq!(live, n as usize);
    }
    times.sort();
    let median = times[times.len() / 2];
    let runs = calls_of(&apply_calls, "RunInstances");
    let plan_total = total(&plan_calls);
    println!("N = {n} instances, 3 fleets × 2 zones");
    println!(
        "  apply:            {:>8.2} s, {} API calls, RunInstances × {runs} (target 6)",
        apply_time.as_secs_f64(),
        total(&apply_calls)
    );
    println!(
        "  no-change plan:   {:>8.2} s median of 3 (min {:.2} s), {plan_total} API calls",
        median.as_secs_f64(),
        times[0].as_secs_f64()
    );
    println!("  plan calls:       {}", show(&plan_calls));
    let mut ok = runs == 6 && plan_total <= 12;
    if n == 1000 {
        ok &= median < Duration::from_secs(5);
        println!(
            "  targets (≤ 12 calls, < 5 s, 6 RunInstances): {}",
            if ok { "met" } else { "MISSED" }
        );
    }
    ok
}

fn main() {
    // `cargo bench` passes `--bench`; numbers are instance counts.
    let mut sizes: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if sizes.is_empty() {
        sizes = vec![100, 1000];
    }
    let Some(endpoint) = std::env::var("CONVERGE_TEST_AWS_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
    else {
        eprintln!(
            "CONVERGE_TEST_AWS_ENDPOINT is not set: run `source scripts/moto.sh start` first"
        );
        std::process::exit(2);
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut ok = true;
    for n in sizes {
        ok &= rt.block_on(bench(&endpoint, n));
    }
    if !ok {
        std::process::exit(1);
    }
}
