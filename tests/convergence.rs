//! The engine's fixed point, end to end on the local cloud: from random
//! observed states (what an earlier version of the manifests left, then
//! disturbed: instances lost, a stray version still running), applying the
//! plan for the target manifests and planning again leaves no changes, and
//! applying twice equals applying once. Versions move between the default
//! VPC and a Network of their own, and within a Network between subnets,
//! public and private subnets, and explicit public addresses.
//!
//! Manifests are generated as YAML text and read by the real loader, the
//! cloud is an in-memory local cloud with zero delays, and the plan is
//! carried out by the real executor.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use converge::apply::{ApplyOptions, Quiet, RetryPolicy, execute};
use converge::cloud::Cloud;
use converge::cloud::local::{Delays, Faults, LocalCloud, LocalConfig, ResourceType};
use converge::commands::observe_and_plan;
use converge::core::desired::Desired;
use converge::manifest;
use converge::sys::SystemClock;
use jiff::Timestamp;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

/// Monday 10:00 in Toronto.
const AT: &str = "2026-03-09T14:00:00Z";

/// One version of a small stack's manifests.
#[derive(Clone, Debug)]
struct Shape {
    app_replicas: u32,
    app_two_zones: bool,
    app_type: u8,
    app_user_data: u8,
    app_schedule: bool,
    db: bool,
    volume: bool,
    balancer: bool,
    health_interval: u32,
    web_port: u16,
    ssh_from: u8,
    bucket: bool,
    bucket_public: bool,
    cdn: bool,
    cdn_enabled: bool,
    team: u8,
    /// In a Network of its own rather than the default VPC.
    network: bool,
    /// With a Network: the app and db subnets give public addresses.
    public_subnets: bool,
    /// With a Network: the app fleet's `publicIp` (none, true, false).
    public_ip: u8,
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        (0u32..4, any::<bool>(), 0u8..2, 0u8..3, any::<bool>()),
        (any::<bool>(), any::<bool>(), any::<bool>(), 0u32..2),
        (prop_oneof![Just(80u16), Just(8080)], 0u8..2),
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            0u8..2,
        ),
        (any::<bool>(), any::<bool>(), 0u8..3),
    )
        .prop_map(
            |(
                (app_replicas, app_two_zones, app_type, app_user_data, app_schedule),
                (db, volume, balancer, health_interval),
                (web_port, ssh_from),
                (bucket, bucket_public, cdn, cdn_enabled, team),
                (network, public_subnets, public_ip),
            )| Shape {
                app_replicas,
                app_two_zones,
                app_type,
                app_user_data,
                app_schedule,
                db,
                volume: volume && db,
                balancer,
                health_interval: 10 + health_interval * 20,
                web_port,
                ssh_from,
                bucket,
                bucket_public,
                cdn: cdn && bucket,
                cdn_enabled,
                team,
                network,
                public_subnets,
                public_ip,
            },
        )
}

impl Shape {
    /// The manifests of this version, as one YAML file.
    fn yaml(&self) -> String {
        let mut y = String::new();
        let team = ["payroll", "platform"][self.team as usize];
        writeln!(
            y,
            "kind: Stack\nname: prop\nspec:\n  region: us-east-1\n  tags: {{ team: {team} }}"
        )
        .unwrap();
        y.push_str(
            "---\nkind: KeyPair\nname: main\nspec:\n  publicKey: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH23A8DpTfNAtNaPrDUGmxnEYdRZCJpsiUN2WzaV4KCZ ops@example\n",
        );
        let ssh = ["203.0.113.7/32", "198.51.100.0/24"][self.ssh_from as usize];
        writeln!(
            y,
            "---\nkind: SecurityGroup\nname: web\nspec:\n  description: web\n  ingress:\n    - {{ port: {}, cidr: 0.0.0.0/0 }}\n    - {{ port: 22, cidr: {ssh} }}",
            self.web_port
        )
        .unwrap();
        if self.network {
            writeln!(
                y,
                "---\nkind: Network\nname: main\nspec:\n  cidr: 10.0.0.0/16\n  deletionPolicy: delete\n  subnets:\n    - {{ name: a, zone: us-east-1a, cidr: 10.0.1.0/24, public: {p} }}\n    - {{ name: b, zone: us-east-1b, cidr: 10.0.2.0/24, public: {p} }}\n    - {{ name: lb-a, zone: us-east-1a, cidr: 10.0.101.0/24, public: true }}\n    - {{ name: lb-b, zone: us-east-1b, cidr: 10.0.102.0/24, public: true }}",
                p = self.public_subnets
            )
            .unwrap();
        }
        // Where a fleet goes: zones in the default VPC, subnets in the
        // Network.
        let place = |two: bool| match (self.network, two) {
            (false, true) => "zones: [us-east-1a, us-east-1b]",
            (false, false) => "zones: [us-east-1a]",
            (true, true) => "subnets: [a, b]",
            (true, false) => "subnets: [a]",
        };
        let itype = ["m1.small", "t3.micro"][self.app_type as usize];
        let user_data = match (self.app_user_data, self.db) {
            (0, _) => "role=app".to_owned(),
            (1, _) => "role=app\nversion=2".to_owned(),
            (_, true) => "role=app;db=${Fleet/db.privateIp}".to_owned(),
            (_, false) => "role=app;db=none".to_owned(),
        };
        writeln!(
            y,
            "---\nkind: Fleet\nname: app\nspec:\n  image: ami-147f977d\n  instanceType: {itype}\n  {}\n  replicas: {}\n  keyPair: main\n  securityGroups: [web]\n  userData: {}",
            place(self.app_two_zones),
            self.app_replicas,
            serde_json::to_string(&user_data).unwrap()
        )
        .unwrap();
        match (self.network, self.public_ip) {
            (true, 1) => y.push_str("  publicIp: true\n"),
            (true, 2) => y.push_str("  publicIp: false\n"),
            _ => {}
        }
        if self.app_schedule {
            y.push_str("  schedule:\n    timezone: America/Toronto\n    rules:\n      - { cron: \"0 8 * * 1-5\", replicas: 3 }\n      - { cron: \"0 21 * * 1-5\", replicas: 1 }\n");
        }
        y.push_str("  update: { maxSurge: 1, maxUnavailable: 0 }\n");
        if self.db {
            y.push_str("---\nkind: SecurityGroup\nname: db\nspec:\n  description: db\n  ingress:\n    - { port: 5432, group: web }\n");
            writeln!(
                y,
                "---\nkind: Fleet\nname: db\nspec:\n  image: ami-147f977d\n  instanceType: m1.small\n  {}\n  keyPair: main\n  securityGroups: [db]",
                place(false)
            )
            .unwrap();
        }
        if self.volume {
            y.push_str("---\nkind: Volume\nname: pgdata\nspec:\n  sizeGiB: 20\n  zone: us-east-1a\n  attach: { fleet: db, device: /dev/sdj }\n  deletionPolicy: delete\n");
        }
        if self.balancer {
            writeln!(
                y,
                "---\nkind: Balancer\nname: web\nspec:\n  {}\n  listeners:\n    - {{ port: 80, instancePort: {}, protocol: HTTP }}\n  healthCheck: {{ target: \"HTTP:{}/\", interval: {}s, timeout: 3s, healthyThreshold: 2, unhealthyThreshold: 2 }}\n  fleets: [app]",
                if self.network {
                    "subnets: [lb-a, lb-b]"
                } else {
                    "zones: [us-east-1a, us-east-1b]"
                },
                self.web_port,
                self.web_port,
                self.health_interval
            )
            .unwrap();
        }
        if self.bucket {
            writeln!(
                y,
                "---\nkind: Bucket\nname: prop-assets\nspec:\n  publicRead: {}\n  deletionPolicy: delete",
                self.bucket_public
            )
            .unwrap();
        }
        // No aliases: they need a certificate and its zone
        // (tests/certificate_local.rs converges those).
        if self.cdn {
            writeln!(
                y,
                "---\nkind: Cdn\nname: assets\nspec:\n  origin: {{ bucket: prop-assets }}\n  enabled: {}",
                self.cdn_enabled
            )
            .unwrap();
        }
        y
    }

    fn desired(&self) -> Desired {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stack.yaml"), self.yaml()).unwrap();
        match manifest::load(dir.path(), &|_| None) {
            Ok(l) => l.desired,
            Err(d) => panic!("generated manifests are invalid: {d}\n{}", self.yaml()),
        }
    }
}

fn options() -> ApplyOptions {
    ApplyOptions {
        parallelism: 4,
        retry: RetryPolicy::fast(),
        wait_timeout: Duration::from_secs(30),
        poll_interval: Duration::from_millis(1),
        ..ApplyOptions::default()
    }
}

/// Plans `desired` and applies it; returns whether the plan had changes.
async fn apply(cloud: &Arc<LocalCloud>, desired: &Desired) -> bool {
    let at: Timestamp = AT.parse().unwrap();
    let (_, plan) = observe_and_plan(cloud.as_ref(), desired, at, &BTreeMap::new())
        .await
        .unwrap();
    let dyn_cloud: Arc<dyn Cloud> = cloud.clone();
    let report = execute(dyn_cloud, &plan, options(), Arc::new(Quiet)).await;
    assert!(
        report.is_success(),
        "apply failed: {:?}\nplan steps: {:#?}",
        report.steps,
        plan.graph.steps()
    );
    plan.has_changes()
}

fn run(mut start: Shape, lose: Vec<usize>, mut target: Shape) {
    // A classic balancer cannot move between VPCs (the plan says so and
    // leaves it): between the default VPC and a Network, none is declared.
    if start.network != target.network {
        start.balancer = false;
        target.balancer = false;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = LocalConfig {
            region: "us-east-1".into(),
            delays: Delays::zero(),
            faults: Faults::default(),
        };
        let cloud = Arc::new(LocalCloud::in_memory(config, Arc::new(SystemClock)));
        // The earlier version, then disturbed.
        apply(&cloud, &start.desired()).await;
        let instances: Vec<String> = cloud
            .list()
            .unwrap()
            .into_iter()
            .filter(|r| r.kind == ResourceType::Instance)
            .map(|r| r.id)
            .collect();
        for i in lose {
            if let Some(id) = instances.get(i % instances.len().max(1)) {
                let _ = cloud.lose_instance(&id.parse().unwrap());
            }
        }
        // The target version: once converged, nothing left to do.
        let target = target.desired();
        apply(&cloud, &target).await;
        let at: Timestamp = AT.parse().unwrap();
        let (_, again) = observe_and_plan(cloud.as_ref(), &target, at, &BTreeMap::new())
            .await
            .unwrap();
        assert!(
            !again.has_changes(),
            "changes left after apply:\n{}",
            converge::core::render::text(&again, &Default::default())
        );
        // Applying twice equals applying once.
        let before = cloud.list().unwrap();
        let changed = apply(&cloud, &target).await;
        assert!(!changed);
        assert_eq!(before, cloud.list().unwrap());
    });
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn apply_reaches_a_fixed_point(
        start in shape(),
        lose in proptest::collection::vec(0usize..8, 0..3),
        target in shape(),
    ) {
        run(start, lose, target);
    }
}

#[test]
fn the_richest_shape_converges_from_nothing_and_back() {
    let rich = Shape {
        app_replicas: 3,
        app_two_zones: true,
        app_type: 0,
        app_user_data: 2,
        app_schedule: true,
        db: true,
        volume: true,
        balancer: true,
        health_interval: 30,
        web_port: 80,
        ssh_from: 0,
        bucket: true,
        bucket_public: true,
        cdn: true,
        cdn_enabled: true,
        team: 0,
        network: true,
        public_subnets: false,
        public_ip: 1,
    };
    let bare = bare_shape();
    run(bare.clone(), vec![], rich.clone());
    run(rich.clone(), vec![0, 1], bare.clone());
    // Into a Network and out of it, with the balancer (which then stays
    // out), and within one from private to public subnets.
    let mut in_default = rich.clone();
    in_default.network = false;
    run(in_default.clone(), vec![], rich.clone());
    run(rich.clone(), vec![2], in_default);
    let mut public = rich.clone();
    public.public_subnets = true;
    public.public_ip = 0;
    run(rich, vec![], public);
}

/// A Terminate step naming an instance the cloud no longer knows still
/// terminates the others (AWS fails a whole TerminateInstances on one
/// unknown ID; the executor must not take that as done for all).
#[test]
fn terminating_a_batch_with_an_unknown_instance_terminates_the_rest() {
    use converge::core::ids::{InstanceId, ResourceName};
    use converge::core::plan::{PLAN_FORMAT_VERSION, Plan, Step, StepGraph, TerminateReason};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = LocalConfig {
            region: "us-east-1".into(),
            delays: Delays::zero(),
            faults: Faults::default(),
        };
        let cloud = Arc::new(LocalCloud::in_memory(config, Arc::new(SystemClock)));
        let mut shape = bare_shape();
        shape.app_replicas = 2;
        apply(&cloud, &shape.desired()).await;
        let live = |cloud: &LocalCloud| -> Vec<String> {
            cloud
                .list()
                .unwrap()
                .into_iter()
                .filter(|r| r.kind == ResourceType::Instance && r.state.starts_with("running"))
                .map(|r| r.id)
                .collect()
        };
        let ids = live(&cloud);
        assert_eq!(ids.len(), 2);
        let mut instances: Vec<InstanceId> = ids.iter().map(|i| i.parse().unwrap()).collect();
        instances.insert(1, "i-00000000000000bad".into());
        let plan = Plan {
            format_version: PLAN_FORMAT_VERSION,
            stack: ResourceName::from("prop"),
            region: "us-east-1".into(),
            at: AT.parse().unwrap(),
            changes: Vec::new(),
            graph: StepGraph::from_parts(
                vec![Step::Terminate {
                    fleet: ResourceName::from("app"),
                    instances,
                    reason: TerminateReason::Scale,
                }],
                [],
            ),
            held: Vec::new(),
            targets: Vec::new(),
        };
        let dyn_cloud: Arc<dyn Cloud> = cloud.clone();
        let report = execute(dyn_cloud, &plan, options(), Arc::new(Quiet)).await;
        assert!(report.is_success(), "{:?}", report.steps);
        assert!(live(&cloud).is_empty(), "{:?}", cloud.list().unwrap());
    });
}

fn bare_shape() -> Shape {
    Shape {
        app_replicas: 0,
        app_two_zones: false,
        app_type: 1,
        app_user_data: 0,
        app_schedule: false,
        db: false,
        volume: false,
        balancer: false,
        health_interval: 10,
        web_port: 8080,
        ssh_from: 1,
        bucket: false,
        bucket_public: false,
        cdn: false,
        cdn_enabled: false,
        team: 1,
        network: false,
        public_subnets: false,
        public_ip: 0,
    }
}

/// A stack of one volume with these extra `spec` lines.
fn volume_stack(spec: &str) -> Desired {
    let yaml = format!(
        "kind: Stack\nname: vol\nspec:\n  region: us-east-1\n---\nkind: Volume\nname: pgdata\nspec:\n  zone: us-east-1a\n{spec}"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stack.yaml"), yaml).unwrap();
    manifest::load(dir.path(), &|_| None).unwrap().desired
}

#[test]
fn a_volume_is_modified_in_place_once_every_six_hours_on_the_local_cloud() {
    use converge::sys::{Clock, ManualClock};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let clock = ManualClock::new(AT.parse().unwrap());
        let config = LocalConfig {
            region: "us-east-1".into(),
            delays: Delays::zero(),
            faults: Faults::default(),
        };
        let cloud = Arc::new(LocalCloud::in_memory(config, Arc::new(clock.clone())));
        let plan = |d: Desired| {
            let (cloud, now) = (cloud.clone(), clock.now());
            async move {
                observe_and_plan(cloud.as_ref(), &d, now, &BTreeMap::new())
                    .await
                    .unwrap()
                    .1
            }
        };
        let run = |p: converge::core::Plan| {
            let dyn_cloud: Arc<dyn Cloud> = cloud.clone();
            async move {
                let r = execute(dyn_cloud, &p, options(), Arc::new(Quiet)).await;
                assert!(r.is_success(), "{:?}", r.steps);
            }
        };
        let volume = |c: &LocalCloud| {
            c.list()
                .unwrap()
                .into_iter()
                .find(|r| r.kind == ResourceType::Volume)
                .unwrap()
        };
        run(plan(volume_stack("  sizeGiB: 20\n")).await).await;
        let created = volume(&cloud);
        assert!(
            created
                .state
                .starts_with("available (20 GiB gp3, 3000 IOPS, 125 MiB/s, encrypted with key "),
            "{}",
            created.state
        );
        // Grown with more IOPS: one ModifyVolume, the same volume.
        let bigger = volume_stack("  sizeGiB: 40\n  iops: 6000\n");
        let p = plan(bigger.clone()).await;
        assert_eq!(p.graph.steps().len(), 1, "{:?}", p.graph.steps());
        run(p).await;
        let modified = volume(&cloud);
        assert_eq!(modified.id, created.id);
        assert!(
            modified
                .state
                .starts_with("available (40 GiB gp3, 6000 IOPS"),
            "{}",
            modified.state
        );
        assert!(!plan(bigger).await.has_changes());
        // Again within six hours: held back, and apply has nothing to call.
        let again = volume_stack("  sizeGiB: 50\n  iops: 6000\n");
        let held = plan(again.clone()).await;
        assert!(!held.has_changes() && held.has_blocked_changes());
        clock.advance(Duration::from_secs(6 * 3600));
        let p = plan(again.clone()).await;
        assert!(p.has_changes() && !p.has_blocked_changes());
        run(p).await;
        assert!(volume(&cloud).state.starts_with("available (50 GiB gp3"));
        // Encryption never changes in place: blocked, no step.
        let plain = plan(volume_stack(
            "  sizeGiB: 50\n  iops: 6000\n  encrypted: false\n",
        ))
        .await;
        assert!(!plain.has_changes() && plain.has_blocked_changes());
    });
}
