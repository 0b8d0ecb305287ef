//! A rolling replacement of a fleet behind an application balancer on the
//! file-backed local cloud, in real time: the fleet is converged, its user
//! data changes, and the plan replaces every instance in waves (each wave
//! healthy before its predecessors are deregistered, each predecessor
//! drained before it is terminated) while a sampler reads the balancer's
//! target health. Prints the wall time of the replacement and the fewest
//! healthy members seen, and exits 1 if that is below the fleet's target.
//!
//! ```text
//! cargo bench --bench rolling_alb                  # 100 instances, maxSurge 10, health 0.02
//! cargo bench --bench rolling_alb -- 100 25 0.05   # instances, maxSurge, health factor
//! ```
//!
//! The health factor scales the balancer's `healthyThreshold × interval`
//! (2 × 5 s) and its deregistration delay (10 s), as `--local-delays
//! health=F` does; instances boot and shut down at once.

#![allow(clippy::unwrap_used)] // a benchmark: a panic says what broke

use converge::apply::{ApplyOptions, Quiet, RetryPolicy, execute};
use converge::cloud::Cloud;
use converge::cloud::local::{Delays, Faults, LocalCloud, LocalConfig};
use converge::commands::observe_and_plan;
use converge::core::desired::Desired;
use converge::core::elb::BalancerType;
use converge::core::ids::BalancerName;
use converge::manifest;
use converge::sys::{Clock, SystemClock};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn stack(n: u32, surge: u32, version: u32) -> Desired {
    let yaml = format!(
        "kind: Stack\nname: bench\nspec:\n  region: us-east-1\n---\n\
         kind: SecurityGroup\nname: lb\nspec:\n  description: bench balancer\n  ingress:\n    - {{ port: 80, cidr: 0.0.0.0/0 }}\n---\n\
         kind: Fleet\nname: app\nspec:\n  image: ami-147f977d\n  instanceType: t3.micro\n  zones: [us-east-1a, us-east-1b]\n  replicas: {n}\n  userData: v{version}\n  update: {{ maxSurge: {surge}, maxUnavailable: 0 }}\n---\n\
         kind: Balancer\nname: web\nspec:\n  type: application\n  zones: [us-east-1a, us-east-1b]\n  securityGroups: [lb]\n  listeners:\n    - {{ port: 80, protocol: HTTP }}\n  healthCheck: {{ interval: 5s, timeout: 2s, healthyThreshold: 2 }}\n  deregistrationDelay: 10s\n  fleets: [app]\n"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stack.yaml"), yaml).unwrap();
    match manifest::load(dir.path(), &|_| None) {
        Ok(l) => l.desired,
        Err(e) => panic!("invalid manifests: {e}"),
    }
}

async fn apply(cloud: &Arc<LocalCloud>, desired: &Desired) -> bool {
    let (_, plan) = observe_and_plan(cloud.as_ref(), desired, SystemClock.now(), &BTreeMap::new())
        .await
        .unwrap();
    let options = ApplyOptions {
        parallelism: 8,
        retry: RetryPolicy::fast(),
        wait_timeout: Duration::from_secs(300),
        poll_interval: Duration::from_millis(50),
        ..ApplyOptions::default()
    };
    let dyn_cloud: Arc<dyn Cloud> = cloud.clone();
    let report = execute(dyn_cloud, &plan, options, Arc::new(Quiet)).await;
    if !report.is_success() {
        eprintln!("apply failed: {:?}", report.steps);
    }
    report.is_success()
}

async fn healthy(cloud: &LocalCloud, name: &BalancerName) -> usize {
    cloud
        .balancer_members(name, BalancerType::Application)
        .await
        .map(|m| m.iter().filter(|m| m.state.healthy()).count())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n: u32 = args.first().map_or(100, |a| a.parse().unwrap());
    let surge: u32 = args.get(1).map_or(10, |a| a.parse().unwrap());
    let factor: f64 = args.get(2).map_or(0.02, |a| a.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let config = LocalConfig {
        region: "us-east-1".into(),
        delays: Delays {
            health: factor,
            ..Delays::zero()
        },
        faults: Faults::default(),
    };
    let cloud = Arc::new(LocalCloud::open(dir.path(), config, Arc::new(SystemClock)).unwrap());
    let name: BalancerName = "web-alb".parse().unwrap();
    let started = Instant::now();
    if !apply(&cloud, &stack(n, surge, 1)).await {
        return ExitCode::FAILURE;
    }
    while healthy(&cloud, &name).await < n as usize {
        if started.elapsed() > Duration::from_secs(300) {
            eprintln!("the first version never became healthy");
            return ExitCode::FAILURE;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "converged {n} instances behind Balancer/web in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (cloud, done, name) = (cloud.clone(), done.clone(), name.clone());
        tokio::spawn(async move {
            let (mut least, mut samples) = (usize::MAX, 0u64);
            while !done.load(Ordering::SeqCst) {
                least = least.min(healthy(&cloud, &name).await);
                samples += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (least, samples)
        })
    };
    let rolling = Instant::now();
    let ok = apply(&cloud, &stack(n, surge, 2)).await;
    let wall = rolling.elapsed();
    done.store(true, Ordering::SeqCst);
    let (least, samples) = sampler.await.unwrap();
    println!(
        "rolling replacement of {n} instances (maxSurge {surge}, health factor {factor}): {:.2} s wall",
        wall.as_secs_f64()
    );
    println!("fewest healthy members seen: {least} of {n} ({samples} samples)");
    if !ok || least < n as usize {
        println!("FAILED: the healthy count fell below the fleet's target");
        return ExitCode::FAILURE;
    }
    println!("ok: never below the target");
    ExitCode::SUCCESS
}
