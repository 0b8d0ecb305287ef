//! The executor's schedule on the local cloud: which steps start before
//! which are done.

use converge::apply::{ApplyOptions, Progress, RetryPolicy, execute};
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
