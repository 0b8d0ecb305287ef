//! The reconcile loop end to end against a moto server, through the real
//! SDK over HTTP (`source scripts/moto.sh start` sets
//! `CONVERGE_TEST_AWS_ENDPOINT`; without it the test says it was skipped
//! and passes, unless `CONVERGE_REQUIRE_MOTO` is set, as `scripts/test.sh`
//! does, and then it fails). The test runs in an AWS account of its own on
//! the shared server (moto's `x-moto-account-id` header) with a stack,
//! assets bucket and lease bucket named for it.
//!
//! The SmallPayroll stack is reconciled under an S3 lease with
//! `Manifests::Fixed` and a manual clock (Monday 10:00 in Toronto: 3 app
//! servers), passes driven one at a time with `run_once`: the first
//! converges everything; after an app server and the database server are
//! terminated out of band the next replaces both (the app successor
//! registered with the balancer, the volume moved to the new database
//! server in its zone, and, as the app and job servers' user data name
//! the database server's address, the other app and job servers rolled
//! onto the new address); the one after has nothing to do and stays
//! within a constant number of API calls; a second lease holder is
//! refused throughout.
//!
//! The job fleet's metric is read for real, from a tokio HTTP server on
//! 127.0.0.1 answering a queue length (30 at first: the fleet scales out
//! to one instance; then 10, between the thresholds: held). The app
//! fleet's `health.http` probes go to the instances' private addresses,
//! which moto invents and nothing listens on, so they are answered by a
//! stand-in (`200 welcome`); with real probes all three would fail, the
//! check would be judged broken and reported, and nothing replaced.
//!
//! Where moto is lax the assertions follow the real API's semantics and
//! say so: instances are `running` as soon as they are launched (no
//! `pending`), every running instance is `InService` on the balancer at
//! once (no health-check threshold), and resources are stamped with the
//! server's wall time, which is later than the manual clock, so the
//! volume's 03:00 snapshot schedule has not fired since it was created.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use crate::support::example;
use crate::support::metric;
use metric::metric_server;

use async_trait::async_trait;
use converge::apply::RetryPolicy;
use converge::cloud::aws::{AwsCloud, AwsOptions};
use converge::cloud::{Cloud, Op};
use converge::core::Desired;
use converge::core::ids::{InstanceId, ResourceName};
use converge::core::observed::{InstanceState, MemberState, Observed};
use converge::lease::s3::S3Lease;
use converge::lease::{HolderId, Lease, LeaseError};
use converge::reconcile::{
    Event, HttpClient, HttpConfig, HttpError, HttpGet, HttpResponse, Manifests, PassReport,
    ReconcileOptions, Reconciler,
};
use converge::sys::ManualClock;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Monday 10:00 in Toronto: the app fleet's weekday schedule gives 3.
const T0: &str = "2026-03-09T14:00:00Z";

/// Requests one no-change pass of SmallPayroll may send: one observation
/// (5 EC2 describes, 5 network ones, the classic ELB list, elbv2's
/// balancers, target groups, tags, listeners, targets and group
/// attributes, S3 list + tags + policy, CloudFront list + get + tags: 23;
/// Route 53's zones, their tags and the stack zone's record sets: 3; the
/// origin access controls' list and the content bucket's ListObjectsV2
/// page: 2; ACM's ListCertificates and, for the Certificate of www and
/// cdn0–cdn3, its DescribeCertificate and ListTagsForCertificate: 3, issue
/// 11 A) with room for the SDK's retries. It does not grow with the
/// number of passes or of instances.
const NO_CHANGE_CALLS: u64 = 33;

/// A connection to the moto server in `account`, as a process of its own
/// would have.
async fn connect(endpoint: &str, account: &str) -> AwsCloud {
    AwsCloud::connect(
        AwsOptions {
            endpoint_url: Some(endpoint.to_owned()),
            moto_account: Some(account.to_owned()),
            initial_backoff: Some(Duration::from_millis(5)),
            ..AwsOptions::default()
        },
        "us-east-1",
    )
    .await
    .unwrap()
}

/// SmallPayroll renamed for this test, the job fleet's metric read from
/// `metric_url`.
fn smallpayroll(suffix: u32, metric_url: String) -> Desired {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/smallpayroll");
    let mut d = converge::manifest::load(&dir, &|_| None).unwrap().desired;
    d.stack = ResourceName::new(format!("reconcile-{suffix}")).unwrap();
    example::rename_assets_bucket(&mut d, &format!("sp-assets-reconcile-{suffix}"));
    d.fleets
        .get_mut(&ResourceName::from("job"))
        .unwrap()
        .autoscale
        .as_mut()
        .unwrap()
        .metric_url = metric_url;
    d
}

/// The real client, for the servers the tests run on 127.0.0.1.
static REAL: std::sync::LazyLock<HttpClient> =
    std::sync::LazyLock::new(|| HttpClient::new(&HttpConfig::default()).unwrap());

/// Requests to 127.0.0.1 (the metric) go out for real; health probes of
/// moto's instances, whose addresses lead nowhere, are answered as a
/// healthy SmallPayroll would answer them.
struct Http;

#[async_trait]
impl HttpGet for Http {
    async fn get(&self, url: &str, timeout: Duration) -> Result<HttpResponse, HttpError> {
        if url.starts_with("http://127.0.0.1") {
            return REAL.get(url, timeout).await;
        }
        Ok(HttpResponse {
            status: 200,
            body: "<h1>welcome to SmallPayroll</h1>".into(),
        })
    }
}

fn options() -> ReconcileOptions {
    ReconcileOptions {
        interval: Duration::from_millis(10),
        jitter: 0.0,
        retry: RetryPolicy::fast(),
        wait_timeout: Duration::from_secs(60),
        poll_interval: Duration::from_millis(50),
        probe_timeout: Duration::from_secs(1),
        metric_timeout: Duration::from_secs(2),
        ..ReconcileOptions::default()
    }
}

fn total_calls(cloud: &AwsCloud) -> u64 {
    cloud.api_calls().iter().map(|c| c.calls).sum()
}

/// An instance's private address.
fn private_ip(o: &Observed, id: &InstanceId) -> std::net::Ipv4Addr {
    o.instances
        .iter()
        .find(|i| i.id == *id)
        .and_then(|i| i.private_ip)
        .unwrap_or_else(|| panic!("{id} has no private address"))
}

/// The launch-spec hashes the live instances of `fleet` were started with.
fn spec_hashes(o: &Observed, fleet: &str) -> BTreeSet<String> {
    o.instances
        .iter()
        .filter(|i| i.owner.name.as_str() == fleet && i.state.is_live())
        .map(|i| i.spec_hash.clone().unwrap())
        .collect()
}

/// Checks that a pass went through without trouble.
fn assert_ok(r: &PassReport, what: &str) {
    assert!(r.ok, "{what}: the pass was not ok: {:#?}", r.events);
    assert_eq!(r.failed(), 0, "{what}: {:#?}", r.apply);
    assert_eq!(r.held, 0, "{what}: {:#?}", r.events);
}

/// The live instances of `fleet`, sorted.
fn live(o: &Observed, fleet: &str) -> Vec<InstanceId> {
    let mut v: Vec<InstanceId> = o
        .instances
        .iter()
        .filter(|i| i.owner.name.as_str() == fleet && i.state.is_live())
        .map(|i| i.id.clone())
        .collect();
    v.sort();
    v
}

/// The stack is converged: instances per fleet, the volume on the db
/// server at its device and in its zone, the app servers (and only they)
/// the balancer's members, all InService. Answers (app, db).
fn assert_converged(o: &Observed, what: &str) -> (Vec<InstanceId>, InstanceId) {
    let app = live(o, "app");
    let db = live(o, "db");
    let job = live(o, "job");
    assert_eq!(app.len(), 3, "{what}: app servers {app:?}");
    assert_eq!(db.len(), 1, "{what}: db servers {db:?}");
    assert_eq!(job.len(), 1, "{what}: job servers {job:?}");
    // moto: launched instances are `running` at once; AWS would show
    // `pending` first, and the executor waits for `running`.
    for i in o.instances.iter().filter(|i| i.state.is_live()) {
        assert_eq!(i.state, InstanceState::Running, "{what}: {}", i.id);
    }
    let db_zone = &o.instances.iter().find(|i| i.id == db[0]).unwrap().zone;
    assert_eq!(db_zone.as_str(), "us-east-1a", "{what}: the volume's zone");

    let volumes: Vec<_> = o
        .volumes
        .iter()
        .filter(|v| v.owner.name.as_str() == "pgdata")
        .collect();
    assert_eq!(volumes.len(), 1, "{what}: {volumes:?}");
    let a = volumes[0]
        .attachment
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: pgdata is not attached: {:?}", volumes[0]));
    assert_eq!(
        (&a.instance, a.device.as_str()),
        (&db[0], "/dev/sdj"),
        "{what}: pgdata is on the db server"
    );

    assert_eq!(o.balancers.len(), 1, "{what}");
    let web = &o.balancers[0];
    let members: BTreeSet<&InstanceId> = web.members.iter().map(|m| &m.instance).collect();
    assert_eq!(
        members,
        app.iter().collect::<BTreeSet<_>>(),
        "{what}: the balancer's members are the app servers"
    );
    // moto: every running member is InService at once; AWS would show
    // OutOfService until `healthyThreshold` checks passed.
    assert!(
        web.members
            .iter()
            .all(|m| m.state == MemberState::InService),
        "{what}: {:?}",
        web.members
    );
    (app, db[0].clone())
}

/// A second writer (another process, its own connection) is refused
/// while `holder` holds the stack's lease.
async fn assert_refused(second: &S3Lease, holder: &str, what: &str) {
    match second.acquire().await {
        Err(LeaseError::Held { holder: h, .. }) => assert_eq!(h.as_str(), holder, "{what}"),
        other => panic!("{what}: the second writer was not refused: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_converges_heals_and_then_leaves_smallpayroll_alone() {
    let endpoint = moto_or_skip!();
    let started = std::time::Instant::now();
    let account = format!("{:012}", fastrand::u64(100_000_000_000..999_999_999_999));
    let suffix = fastrand::u32(..);
    let cloud = Arc::new(connect(&endpoint, &account).await);
    let other = connect(&endpoint, &account).await;
    let clock = ManualClock::new(T0.parse().unwrap());
    let queue = Arc::new(Mutex::new("30".to_owned()));
    let desired = smallpayroll(suffix, metric_server(queue.clone()).await);
    let stack = desired.stack.clone();

    // One writer per stack: this loop's lease, taken first as `converge
    // reconcile` does, and another process's, refused while it is held.
    let lease_bucket = format!("converge-leases-reconcile-{suffix}");
    let lease = S3Lease::new(&cloud, &lease_bucket, &stack, Arc::new(clock.clone()))
        .unwrap()
        .with_holder(HolderId::from("reconciler-a"));
    let second = S3Lease::new(&other, &lease_bucket, &stack, Arc::new(clock.clone()))
        .unwrap()
        .with_holder(HolderId::from("reconciler-b"));
    lease.ensure_bucket().await.unwrap();
    lease.acquire().await.unwrap();
    assert_refused(&second, "reconciler-a", "before the first pass").await;

    let mut rec = Reconciler::new(
        cloud.clone(),
        Manifests::Fixed(Arc::new(desired)),
        Arc::new(clock.clone()),
        options(),
    )
    .with_http(Arc::new(Http));

    // 1. The first pass creates and converges the whole stack, the job
    // fleet scaled out by the metric.
    let r = rec.run_once().await;
    assert_ok(&r, "first pass");
    assert!(r.planned > 0);
    assert!(
        r.events.iter().any(|e| matches!(
            e,
            Event::Scaled { fleet, from: 0, to: 1, .. } if fleet.as_str() == "job"
        )),
        "{:#?}",
        r.events
    );
    let o = cloud.observe(&stack).await.unwrap();
    let (app, db) = assert_converged(&o, "after the first pass");
    assert_eq!(o.distributions.len(), 1);
    assert_eq!(o.buckets.len(), 1);

    // The loop renews its lease as it goes; the other writer is still
    // refused.
    *queue.lock().unwrap() = "10".into();
    clock.advance(Duration::from_secs(60));
    lease.renew().await.unwrap();
    assert_refused(&second, "reconciler-a", "between passes").await;

    // 2. An app server and the database server are terminated out of
    // band, as a crash or an operator would. (moto, like AWS, detaches
    // pgdata from the terminated db server; unlike AWS it keeps the
    // terminated app server registered with the balancer, OutOfService,
    // so the loop deregisters it itself.)
    let lost_app = app[0].clone();
    let old_db_ip = private_ip(&o, &db);
    let old_app_spec = spec_hashes(&o, "app");
    cloud
        .act(&Op::TerminateInstances {
            ids: vec![lost_app.clone(), db.clone()],
        })
        .await
        .unwrap();
    let gone = cloud.observe(&stack).await.unwrap();
    assert_eq!(live(&gone, "app").len(), 2);
    assert!(live(&gone, "db").is_empty());

    let r = rec.run_once().await;
    assert_ok(&r, "healing pass");
    let actions = r.actions();
    eprintln!("healing pass: {actions:#?}");
    for expected in [
        "launch 1 Fleet/db instance(s) in us-east-1a",
        "attach Volume/pgdata at /dev/sdj",
        "launch 1 Fleet/app instance(s)",
        "register 1 instance group(s) with Balancer/web",
    ] {
        assert!(
            actions.iter().any(|a| a.starts_with(expected)),
            "no {expected:?} in {actions:#?}"
        );
    }
    let o = cloud.observe(&stack).await.unwrap();
    // A new db server, in us-east-1a, with pgdata attached; three app
    // servers, all balancer members, the lost one not among them
    // (assert_converged).
    let (app2, db2) = assert_converged(&o, "after the healing pass");
    assert_ne!(db2, db, "the db server was not replaced");
    assert!(!app2.contains(&lost_app), "{app2:?}");
    assert!(
        o.balancers[0]
            .members
            .iter()
            .all(|m| m.instance != lost_app),
        "the lost app server is still a member"
    );
    // The app and job servers' user data carry the db server's private
    // address (`db=${Fleet/db.privateIp}`), which the successor does not
    // share: the surviving app servers are replaced too, one at a time
    // (maxSurge 1, create-before-destroy), in the same pass, and every app
    // server now has the same, new launch spec. (Should moto hand the
    // successor the old address again, the survivors stay.)
    let new_app_spec = spec_hashes(&o, "app");
    assert_eq!(new_app_spec.len(), 1, "{new_app_spec:?}");
    if private_ip(&o, &db2) == old_db_ip {
        assert_eq!(new_app_spec, old_app_spec);
        for survivor in &app[1..] {
            assert!(app2.contains(survivor), "{survivor} was replaced: {app2:?}");
        }
    } else {
        assert_ne!(new_app_spec, old_app_spec);
        for old in &app {
            assert!(!app2.contains(old), "{old} was kept: {app2:?}");
        }
    }

    clock.advance(Duration::from_secs(60));
    lease.renew().await.unwrap();
    assert_refused(&second, "reconciler-a", "after the healing pass").await;

    // 3. A further pass has nothing to do and costs a bounded number of
    // API calls (one observation: the stack's size does not change it).
    cloud.reset_stats();
    let r = rec.run_once().await;
    assert_ok(&r, "no-change pass");
    assert_eq!(r.planned, 0, "{:#?}", r.apply);
    assert_eq!(r.done(), 0);
    let calls = total_calls(&cloud);
    eprintln!(
        "no-change pass: {calls} calls in {:?}: {:?}",
        r.duration,
        cloud.api_calls()
    );
    assert!(
        calls <= NO_CHANGE_CALLS,
        "{calls} calls: {:?}",
        cloud.api_calls()
    );
    // The metric was read (a minute has passed) and held the fleet.
    assert!(
        r.events.iter().any(|e| matches!(
            e,
            Event::ScaleHeld { fleet, count: 1, .. } if fleet.as_str() == "job"
        )),
        "{:#?}",
        r.events
    );
    let o = cloud.observe(&stack).await.unwrap();
    assert_eq!(
        assert_converged(&o, "after the no-change pass"),
        (app2, db2)
    );

    // 4. Still held: refused. Released: the other writer may take it.
    assert_refused(&second, "reconciler-a", "after the no-change pass").await;
    lease.release().await.unwrap();
    second.acquire().await.unwrap();
    assert!(matches!(
        lease.acquire().await,
        Err(LeaseError::Held { .. })
    ));
    second.release().await.unwrap();
    eprintln!("end to end against moto in {:?}", started.elapsed());
}
