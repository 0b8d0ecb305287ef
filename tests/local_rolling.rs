//! A rolling replacement of a fleet behind each type of balancer
//! (classic, application, network), end to end on a file-backed local
//! cloud in real time: the real loader, planner and executor replace every
//! instance while a sampler watches the balancer. The number of healthy
//! members never drops below the fleet's target, and the world file shows
//! that no instance was terminated before it had drained.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use converge::apply::{ApplyOptions, Quiet, RetryPolicy, execute};
use converge::cloud::Cloud;
use converge::cloud::local::{Delays, Faults, LocalCloud, LocalConfig};
use converge::commands::observe_and_plan;
use converge::core::desired::Desired;
use converge::core::elb::BalancerType;
use converge::core::ids::BalancerName;
use converge::manifest;
use converge::sys::{Clock, SystemClock};
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const REPLICAS: usize = 4;

/// The stack with the app fleet's user data `version`, behind a balancer
/// of `kind`.
fn stack(kind: BalancerType, version: u32) -> Desired {
    let balancer = match kind {
        BalancerType::Classic => {
            "kind: Balancer\nname: web\nspec:\n  zones: [us-east-1a, us-east-1b]\n  listeners:\n    - { port: 80, protocol: HTTP }\n  healthCheck: { target: \"HTTP:80/\", interval: 5s, timeout: 2s, healthyThreshold: 2 }\n  connectionDraining: 1s\n  fleets: [app]\n"
        }
        BalancerType::Application => {
            "kind: SecurityGroup\nname: lb\nspec:\n  description: web\n  ingress:\n    - { port: 80, cidr: 0.0.0.0/0 }\n---\nkind: Balancer\nname: web\nspec:\n  type: application\n  zones: [us-east-1a, us-east-1b]\n  securityGroups: [lb]\n  listeners:\n    - { port: 80, protocol: HTTP }\n  healthCheck: { interval: 5s, timeout: 2s, healthyThreshold: 2 }\n  deregistrationDelay: 10s\n  fleets: [app]\n"
        }
        BalancerType::Network => {
            "kind: Balancer\nname: web\nspec:\n  type: network\n  zones: [us-east-1a, us-east-1b]\n  listeners:\n    - { port: 80, protocol: TCP }\n  healthCheck: { interval: 5s, timeout: 2s, healthyThreshold: 2 }\n  deregistrationDelay: 10s\n  fleets: [app]\n"
        }
    };
    let yaml = format!(
        "kind: Stack\nname: shop\nspec:\n  region: us-east-1\n---\nkind: Fleet\nname: app\nspec:\n  image: ami-147f977d\n  instanceType: m1.small\n  zones: [us-east-1a, us-east-1b]\n  replicas: {REPLICAS}\n  userData: \"v{version}\"\n---\n{balancer}"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stack.yaml"), yaml).unwrap();
    match manifest::load(dir.path(), &|_| None) {
        Ok(l) => l.desired,
        Err(e) => panic!("invalid manifests: {e}"),
    }
}

fn options() -> ApplyOptions {
    ApplyOptions {
        parallelism: 4,
        retry: RetryPolicy::fast(),
        wait_timeout: Duration::from_secs(60),
        poll_interval: Duration::from_millis(20),
        ..ApplyOptions::default()
    }
}

async fn apply(cloud: &Arc<LocalCloud>, desired: &Desired) {
    let now = SystemClock.now();
    let (_, plan) = observe_and_plan(cloud.as_ref(), desired, now, &BTreeMap::new())
        .await
        .unwrap();
    let dyn_cloud: Arc<dyn Cloud> = cloud.clone();
    let report = execute(dyn_cloud, &plan, options(), Arc::new(Quiet)).await;
    assert!(report.is_success(), "apply failed: {:?}", report.steps);
}

/// The cloud name of the stack's balancer.
fn cloud_name(kind: BalancerType) -> BalancerName {
    let n = match kind {
        BalancerType::Classic => "web",
        BalancerType::Application => "web-alb",
        BalancerType::Network => "web-nlb",
    };
    n.parse().unwrap()
}

async fn healthy(cloud: &LocalCloud, kind: BalancerType) -> usize {
    cloud
        .balancer_members(&cloud_name(kind), kind)
        .await
        .unwrap()
        .iter()
        .filter(|m| m.state.healthy())
        .count()
}

/// Every membership that drained because it was deregistered, from the
/// world file, against its instance's termination: none was terminated
/// before its drain was over. Answers how many drains it checked.
fn check_drains(file: &Path) -> usize {
    let Ok(text) = std::fs::read_to_string(file) else {
        return 0;
    };
    let w: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ts = |v: &serde_json::Value| v.as_str().unwrap().parse::<Timestamp>().unwrap();
    let mut checked = 0;
    let pools = w["balancers"]
        .as_array()
        .into_iter()
        .chain(w["target_groups"].as_array())
        .flatten();
    for pool in pools {
        let Some(drains) = pool["draining"].as_object() else {
            continue;
        };
        for (id, d) in drains {
            if d["by_termination"].as_bool() == Some(true) {
                continue;
            }
            checked += 1;
            let term = &w["instances"][id]["termination"];
            if term.is_null() {
                continue;
            }
            let (asked, until) = (ts(&term["requested_at"]), ts(&d["until"]));
            assert!(
                asked >= until,
                "{id} was terminated at {asked}, still draining until {until}"
            );
        }
    }
    checked
}

async fn roll(kind: BalancerType) {
    let dir = tempfile::tempdir().unwrap();
    let config = LocalConfig {
        region: "us-east-1".into(),
        delays: Delays {
            health: 0.02,
            ..Delays::zero()
        },
        faults: Faults::default(),
    };
    let cloud = Arc::new(LocalCloud::open(dir.path(), config, Arc::new(SystemClock)).unwrap());
    let file = cloud.state_file().unwrap().to_owned();
    apply(&cloud, &stack(kind, 1)).await;
    for _ in 0..500 {
        if healthy(&cloud, kind).await == REPLICAS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(healthy(&cloud, kind).await, REPLICAS, "{kind}: v1 healthy");
    let before: Vec<_> = cloud
        .balancer_members(&cloud_name(kind), kind)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.instance)
        .collect();

    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (cloud, done, file) = (cloud.clone(), done.clone(), file.clone());
        tokio::spawn(async move {
            let (mut least, mut samples, mut drains) = (usize::MAX, 0, 0);
            while !done.load(Ordering::SeqCst) {
                least = least.min(healthy(&cloud, kind).await);
                drains = drains.max(check_drains(&file));
                samples += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (least, samples, drains)
        })
    };
    apply(&cloud, &stack(kind, 2)).await;
    done.store(true, Ordering::SeqCst);
    let (least, samples, mut drains) = sampler.await.unwrap();
    eprintln!("{kind}: {samples} samples, at least {least} healthy");
    assert!(samples > 10, "{kind}: only {samples} samples");
    assert!(
        least >= REPLICAS,
        "{kind}: {least} healthy members at the worst moment"
    );
    drains = drains.max(check_drains(&file));
    // Every instance was replaced, each after it drained.
    let after: Vec<_> = cloud
        .balancer_members(&cloud_name(kind), kind)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| !m.state.draining())
        .map(|m| m.instance)
        .collect();
    assert_eq!(after.len(), REPLICAS, "{kind}: {after:?}");
    assert!(after.iter().all(|i| !before.contains(i)), "{kind}");
    eprintln!("{kind}: {drains} drains checked against terminations");
    assert!(drains >= REPLICAS, "{kind}: {drains} drains recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_behind_a_classic_balancer_keeps_the_target_healthy_and_drains() {
    roll(BalancerType::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_behind_an_application_balancer_keeps_the_target_healthy_and_drains() {
    roll(BalancerType::Application).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_behind_a_network_balancer_keeps_the_target_healthy_and_drains() {
    roll(BalancerType::Network).await;
}

/// The invariant check itself: a world whose instance was terminated
/// while its target drained fails it.
#[test]
#[should_panic(expected = "still draining")]
fn terminating_while_draining_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("world.json");
    let world = serde_json::json!({
        "balancers": [],
        "target_groups": [{ "draining": { "i-0123456789abcdef0": {
            "since": "2026-03-09T12:00:00Z", "until": "2026-03-09T12:00:30Z", "by_termination": false
        } } }],
        "instances": { "i-0123456789abcdef0": { "termination": {
            "requested_at": "2026-03-09T12:00:10Z", "terminated_at": "2026-03-09T12:00:11Z"
        } } }
    });
    std::fs::write(&file, world.to_string()).unwrap();
    check_drains(&file);
}
