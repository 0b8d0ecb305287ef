//! The executor on the local cloud: which steps start before which are
//! done, and how a step waits out a reference not visible yet.

use converge::apply::{ApplyOptions, Progress, Quiet, RetryPolicy, execute};
use converge::cloud::Cloud;
use converge::cloud::local::{Delays, Faults, LocalCloud, LocalConfig};
use converge::commands::observe_and_plan;
use converge::core::plan::StepId;
use converge::manifest;
use converge::sys::SystemClock;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The events of an apply, in order: ("started" or "done", what).
#[derive(Default)]
struct Events(Mutex<Vec<(&'static str, String)>>);

impl Progress for Events {
    fn started(&self, _step: StepId, what: &str) {
        self.0.lock().unwrap().push(("started", what.to_owned()));
    }
    fn done(&self, _step: StepId, what: &str, _elapsed: Duration) {
        self.0.lock().unwrap().push(("done", what.to_owned()));
    }
}

const STACK: &str = "kind: Stack
name: early
spec:
  region: us-east-1
---
kind: Fleet
name: db
spec:
  image: ami-147f977d
  instanceType: t3.micro
  replicas: 1
  zones: [us-east-1a]
---
kind: Fleet
name: app
spec:
  image: ami-147f977d
  instanceType: t3.micro
  replicas: 2
  zones: [us-east-1a]
  userData: |
    db=${Fleet/db.privateIp}
";

/// A launch whose user data needs only another launch's address starts
/// once RunInstances answered it, while those instances boot; it is
/// given the address all the same.
#[test]
fn a_launch_that_needs_an_address_starts_while_that_instance_boots() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stack.yaml"), STACK).unwrap();
        let desired = manifest::load(dir.path(), &|_| None).unwrap().desired;
        let delays = Delays {
            boot: Duration::from_millis(800),
            ..Delays::zero()
        };
        let config = LocalConfig {
            region: "us-east-1".into(),
            delays,
            faults: Faults::default(),
        };
        let cloud = Arc::new(LocalCloud::in_memory(config, Arc::new(SystemClock)));
        let at = jiff::Timestamp::now();
        let (_, plan) = observe_and_plan(cloud.as_ref(), &desired, at, &BTreeMap::new())
            .await
            .unwrap();
        let events = Arc::new(Events::default());
        let opts = ApplyOptions {
            parallelism: 4,
            retry: RetryPolicy::fast(),
            wait_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_millis(20),
            ..ApplyOptions::default()
        };
        let dyn_cloud: Arc<dyn Cloud> = cloud.clone();
        let report = execute(dyn_cloud, &plan, opts, events.clone()).await;
        assert!(report.is_success(), "{:?}", report.steps);

        let events = events.0.lock().unwrap().clone();
        let at = |kind: &str, fleet: &str| {
            events
                .iter()
                .position(|(k, w)| *k == kind && w.starts_with("launch") && w.contains(fleet))
                .unwrap_or_else(|| panic!("no {kind} of the {fleet} launch in {events:#?}"))
        };
        assert!(
            at("started", "Fleet/app") < at("done", "Fleet/db"),
            "the app launch waited for the db to run: {events:#?}"
        );

        let o = cloud.observe(&desired.stack).await.unwrap();
        let db_ip = o
            .instances
            .iter()
            .find(|i| i.owner.name.as_str() == "db")
            .and_then(|i| i.private_ip)
            .unwrap();
        let apps: Vec<_> = o
            .instances
            .iter()
            .filter(|i| i.owner.name.as_str() == "app")
            .collect();
        assert_eq!(apps.len(), 2);
        for a in apps {
            let user_data = a.user_data.as_deref().unwrap_or_default();
            assert_eq!(user_data.trim(), format!("db={db_ip}"), "{}", a.id);
        }
    });
}

const WITHOUT_BALANCER: &str = "kind: Stack
name: lagged
spec:
  region: us-east-1
---
kind: Network
name: main
spec:
  cidr: 10.0.0.0/16
  subnets:
    - { name: public-a, zone: us-east-1a, cidr: 10.0.0.0/24, public: true }
    - { name: public-b, zone: us-east-1b, cidr: 10.0.1.0/24, public: true }
";

const BALANCER: &str = "---
kind: SecurityGroup
name: lb
spec:
  description: the balancer
  ingress:
    - { port: 80, cidr: 0.0.0.0/0 }
---
kind: Balancer
name: web
spec:
  type: application
  subnets: [public-a, public-b]
  securityGroups: [lb]
  listeners:
    - { port: 80, protocol: HTTP, targetPort: 80 }
";

/// A balancer created moments after its new security group, while
/// describes lag (EC2's eventual consistency): CreateLoadBalancer's
/// `InvalidSecurityGroup` ("does not exist") means "not visible yet" and
/// is retried until the group shows. It was a failure of the step, seen
/// when throttling delayed the group's creation until just before the
/// balancer's (the CLI's lag test under load).
#[test]
fn a_balancer_waits_until_its_new_security_group_is_visible() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let manifests = dir.path().join("stack");
        std::fs::create_dir(&manifests).unwrap();
        let open = |lag: Duration| {
            let config = LocalConfig {
                region: "us-east-1".into(),
                delays: Delays::zero(),
                faults: Faults {
                    lag,
                    ..Faults::default()
                },
            };
            Arc::new(LocalCloud::open(&state, config, Arc::new(SystemClock)).unwrap())
        };
        let load = |text: &str| {
            std::fs::write(manifests.join("stack.yaml"), text).unwrap();
            manifest::load(&manifests, &|_| None).unwrap().desired
        };
        let opts = || ApplyOptions {
            retry: RetryPolicy::fast(),
            wait_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_millis(20),
            ..ApplyOptions::default()
        };
        // The network first, seen at once.
        let plain = open(Duration::ZERO);
        let at = jiff::Timestamp::now();
        let first = load(WITHOUT_BALANCER);
        let (_, plan) = observe_and_plan(plain.as_ref(), &first, at, &BTreeMap::new())
            .await
            .unwrap();
        let r = execute(plain.clone(), &plan, opts(), Arc::new(Quiet)).await;
        assert_eq!(r.failed(), 0, "{:#?}", r.steps);
        // Then the group and the balancer, carried out through a cloud
        // whose describes lag by a second: the group made by the first
        // step is invisible to CreateLoadBalancer for that long.
        let second = load(&format!("{WITHOUT_BALANCER}{BALANCER}"));
        let (_, plan) = observe_and_plan(plain.as_ref(), &second, at, &BTreeMap::new())
            .await
            .unwrap();
        let lagging = open(Duration::from_secs(1));
        let r = execute(lagging, &plan, opts(), Arc::new(Quiet)).await;
        assert_eq!(r.failed(), 0, "{:#?}", r.steps);
        let (_, again) = observe_and_plan(plain.as_ref(), &second, at, &BTreeMap::new())
            .await
            .unwrap();
        assert!(!again.has_changes(), "{:#?}", again.changes);
    });
}
