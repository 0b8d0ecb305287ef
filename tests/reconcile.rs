//! The reconcile loop, end to end on the in-memory local cloud with zero
//! delays and a manual clock: passes are driven one at a time with
//! `run_once` at chosen times, so a week of schedule takes no real week.
//!
//! Health probes of simulated instances (whose addresses exist only in the
//! local cloud) are answered by a stand-in HTTP client; the job fleet's
//! metric is read from a real HTTP server on 127.0.0.1.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use crate::support::metric;
use metric::metric_server;

use async_trait::async_trait;
use converge::apply::RetryPolicy;
use converge::cloud::local::{Delays, Faults, LocalCloud, LocalConfig, ResourceType};
use converge::cloud::{Cloud, Op};
use converge::core::Desired;
use converge::core::ids::{InstanceId, Kind, ResourceKey, ResourceName, tags};
use converge::core::observed::{InstanceState, MemberState, Observed};
use converge::core::plan::WorkKey;
use converge::manifest;
use converge::reconcile::{
    Event, HttpClient, HttpConfig, HttpError, HttpGet, HttpResponse, Manifests, PassReport,
    ReconcileOptions, Reconciler,
};
use converge::sys::ManualClock;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// ---- fixtures -----------------------------------------------------------

/// The real client, for the servers the tests run on 127.0.0.1.
static REAL: std::sync::LazyLock<HttpClient> =
    std::sync::LazyLock::new(|| HttpClient::new(&HttpConfig::default()).unwrap());

/// Answers probes of simulated instances (any host but 127.0.0.1):
/// `200 welcome`, unless the instance's address is set to fail (or all
/// are). Requests to 127.0.0.1 go to the real client.
#[derive(Default)]
struct Probes {
    fail_all: AtomicBool,
    fail: Mutex<BTreeSet<String>>,
    /// The answer to the job fleet's metric when it points elsewhere.
    metric: Mutex<String>,
}

#[async_trait]
impl HttpGet for Probes {
    async fn get(&self, url: &str, timeout: Duration) -> Result<HttpResponse, HttpError> {
        if url.starts_with("http://127.0.0.1") {
            return REAL.get(url, timeout).await;
        }
        if url.contains("/queue/length") {
            return Ok(HttpResponse {
                status: 200,
                body: self.metric.lock().unwrap().clone(),
            });
        }
        let host = url
            .trim_start_matches("http://")
            .split(':')
            .next()
            .unwrap_or("");
        if self.fail_all.load(Ordering::SeqCst) || self.fail.lock().unwrap().contains(host) {
            return Ok(HttpResponse {
                status: 503,
                body: "maintenance".into(),
            });
        }
        Ok(HttpResponse {
            status: 200,
            body: "<h1>welcome to SmallPayroll</h1>".into(),
        })
    }
}

fn smallpayroll() -> Desired {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/smallpayroll");
    manifest::load(&dir, &|_| None).unwrap().desired
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

struct World {
    cloud: LocalCloud,
    clock: ManualClock,
    probes: Arc<Probes>,
    rec: Reconciler,
    stack: ResourceName,
}

fn options() -> ReconcileOptions {
    ReconcileOptions {
        interval: Duration::from_millis(10),
        jitter: 0.0,
        retry: RetryPolicy::fast(),
        wait_timeout: Duration::from_secs(10),
        poll_interval: Duration::from_millis(2),
        probe_timeout: Duration::from_secs(1),
        metric_timeout: Duration::from_secs(2),
        ..ReconcileOptions::default()
    }
}

fn world(desired: Desired, at: &str, delays: Delays) -> World {
    let clock = ManualClock::new(ts(at));
    let cloud = LocalCloud::in_memory(
        LocalConfig {
            region: "us-east-1".into(),
            delays,
            faults: Faults::default(),
        },
        Arc::new(clock.clone()),
    );
    let probes = Arc::new(Probes {
        metric: Mutex::new("0".into()),
        ..Probes::default()
    });
    let stack = desired.stack.clone();
    let rec = Reconciler::new(
        Arc::new(cloud.clone()),
        Manifests::Fixed(Arc::new(desired)),
        Arc::new(clock.clone()),
        options(),
    )
    .with_http(probes.clone());
    World {
        cloud,
        clock,
        probes,
        rec,
        stack,
    }
}

impl World {
    async fn observe(&self) -> Observed {
        self.cloud.observe(&self.stack).await.unwrap()
    }

    /// Runs a pass at `at` and checks it went through without trouble.
    async fn pass_ok(&mut self, at: Timestamp) -> PassReport {
        let r = self.pass(at).await;
        assert!(r.ok, "pass at {at} was not ok: {:#?}", r.events);
        assert_eq!(r.failed(), 0, "{:#?}", r.apply);
        r
    }

    async fn pass(&mut self, at: Timestamp) -> PassReport {
        self.clock.set(at);
        self.rec.run_once().await
    }

    async fn running(&self, fleet: &str) -> Vec<InstanceId> {
        let mut v: Vec<InstanceId> = self
            .observe()
            .await
            .instances
            .into_iter()
            .filter(|i| i.owner.name.as_str() == fleet && i.state == InstanceState::Running)
            .map(|i| i.id)
            .collect();
        v.sort();
        v
    }

    async fn ip(&self, id: &InstanceId) -> String {
        self.observe()
            .await
            .instances
            .into_iter()
            .find(|i| i.id == *id)
            .and_then(|i| i.private_ip)
            .unwrap()
            .to_string()
    }
}

/// Every fleet's metric answered by the stand-in (the job fleet's URL is
/// moved off 127.0.0.1 so no real port is involved).
fn without_real_metric(mut d: Desired) -> Desired {
    for f in d.fleets.values_mut() {
        if let Some(a) = &mut f.autoscale {
            a.metric_url = "http://metrics.invalid/queue/length".into();
        }
    }
    d
}

// ---- a week of schedule ----------------------------------------------------

/// The schedule's meaning, written independently of cron: 3 on weekdays
/// from 08:00 to 21:00 Toronto time, 2 otherwise.
fn app_replicas_at(at: Timestamp) -> usize {
    let local = at.to_zoned(TimeZone::get("America/Toronto").unwrap());
    let weekday = local.weekday().to_monday_one_offset() <= 5;
    let hour = local.hour();
    if weekday && (8..21).contains(&hour) {
        3
    } else {
        2
    }
}

#[tokio::test]
async fn a_week_of_schedule_across_the_daylight_saving_change() {
    // Friday 6 March 2026, 06:00 in Toronto (EST); clocks spring forward on
    // Sunday 8 March; the week ends Saturday 14 March.
    let start = ts("2026-03-06T11:00:00Z");
    let mut w = world(
        without_real_metric(smallpayroll()),
        "2026-03-06T11:00:00Z",
        Delays::zero(),
    );
    let mut at = start;
    let mut changes = Vec::new();
    let mut last = 0;
    while at < ts("2026-03-14T12:00:00Z") {
        w.pass_ok(at).await;
        let n = w.running("app").await.len();
        assert_eq!(n, app_replicas_at(at), "app instances at {at}");
        if n != last {
            changes.push((at.to_string(), n));
            last = n;
        }
        at = at.checked_add(jiff::SignedDuration::from_mins(30)).unwrap();
    }
    // 08:00 is 13:00Z before the change and 12:00Z after it; 21:00 is
    // 02:00Z then 01:00Z.
    let expected: Vec<(String, usize)> = [
        ("2026-03-06T11:00:00Z", 2),
        ("2026-03-06T13:00:00Z", 3),
        ("2026-03-07T02:00:00Z", 2),
        ("2026-03-09T12:00:00Z", 3),
        ("2026-03-10T01:00:00Z", 2),
        ("2026-03-10T12:00:00Z", 3),
        ("2026-03-11T01:00:00Z", 2),
        ("2026-03-11T12:00:00Z", 3),
        ("2026-03-12T01:00:00Z", 2),
        ("2026-03-12T12:00:00Z", 3),
        ("2026-03-13T01:00:00Z", 2),
        ("2026-03-13T12:00:00Z", 3),
        ("2026-03-14T01:00:00Z", 2),
    ]
    .into_iter()
    .map(|(t, n)| (t.to_owned(), n))
    .collect();
    assert_eq!(changes, expected);

    // A restart at 10:00 on a weekday finds 3 in effect at once (not
    // "fire at 08:00").
    let mut fresh = world(
        without_real_metric(smallpayroll()),
        "2026-03-11T14:00:00Z",
        Delays::zero(),
    );
    fresh.pass_ok(ts("2026-03-11T14:00:00Z")).await;
    assert_eq!(fresh.running("app").await.len(), 3);
}

// ---- metric scaling --------------------------------------------------------

fn minutes(t0: Timestamp, m: i64) -> Timestamp {
    t0.checked_add(jiff::SignedDuration::from_mins(m)).unwrap()
}

#[tokio::test]
async fn the_queue_length_scales_the_job_fleet_out_and_back_in() {
    let queue = Arc::new(Mutex::new("30".to_owned()));
    let url = metric_server(queue.clone()).await;
    let mut d = smallpayroll();
    d.fleets
        .get_mut(&ResourceName::from("job"))
        .unwrap()
        .autoscale
        .as_mut()
        .unwrap()
        .metric_url = url;
    // Saturday noon: the app fleet holds still at 2.
    let t0 = ts("2026-03-07T17:00:00Z");
    let mut w = world(d, "2026-03-07T17:00:00Z", Delays::zero());

    let mut counts = Vec::new();
    let mut first: Option<Vec<InstanceId>> = None;
    let mut removed = Vec::new();
    for m in 0..=60 {
        match m {
            10 => *queue.lock().unwrap() = "0".into(),
            // A metric that cannot be read changes nothing, and says so.
            20 => *queue.lock().unwrap() = "n/a".into(),
            21 => *queue.lock().unwrap() = "3".into(),
            _ => {}
        }
        let r = w.pass(minutes(t0, m)).await;
        assert_eq!(r.failed(), 0, "minute {m}: {:#?}", r.apply);
        if m == 20 {
            assert!(
                r.events
                    .iter()
                    .any(|e| matches!(e, Event::MetricUnreadable { fleet, .. } if fleet.as_str() == "job")),
                "{:#?}",
                r.events
            );
        } else {
            assert!(r.ok, "minute {m}: {:#?}", r.events);
        }
        for e in &r.events {
            if let Event::Scaled { removed: gone, .. } = e {
                removed.extend(gone.iter().cloned().map(|i| (m, i)));
            }
        }
        let running = w.running("job").await;
        if m == 5 {
            first = Some(running.clone());
        }
        counts.push(running.len());
    }
    let expect = |m: usize| match m {
        0..5 => 1,
        5..45 => 2,
        45..50 => 1,
        _ => 0,
    };
    for (m, n) in counts.iter().enumerate() {
        assert_eq!(*n, expect(m), "job instances at minute {m}: {counts:?}");
    }
    // The first instance (launched at minute 0) goes at minute 45, the
    // second (launched at minute 5) at minute 50: each after 45 minutes,
    // never a younger one first.
    let both = first.unwrap();
    assert_eq!(both.len(), 2);
    let launched = |o: &Observed, id: &InstanceId| {
        o.instances
            .iter()
            .find(|i| i.id == *id)
            .map(|i| i.launched_at)
    };
    let o = w.observe().await;
    let mut by_age = both.clone();
    by_age.sort_by_key(|id| launched(&o, id));
    assert_eq!(
        removed,
        vec![(45, by_age[0].clone()), (50, by_age[1].clone())]
    );
}

// ---- healing ---------------------------------------------------------------

const SATURDAY_NOON: &str = "2026-03-07T17:00:00Z";

#[tokio::test]
async fn a_lost_instance_is_replaced_and_registered_with_the_balancer() {
    let mut w = world(
        without_real_metric(smallpayroll()),
        SATURDAY_NOON,
        Delays::zero(),
    );
    w.pass_ok(ts(SATURDAY_NOON)).await;
    let before = w.running("app").await;
    assert_eq!(before.len(), 2);
    let quiet = w.pass_ok(ts("2026-03-07T17:01:00Z")).await;
    assert_eq!(quiet.planned, 0, "a converged stack is left alone");

    w.cloud.lose_instance(&before[0]).unwrap();
    let r = w.pass_ok(ts("2026-03-07T17:02:00Z")).await;
    assert!(
        r.actions()
            .iter()
            .any(|a| a.starts_with("launch 1 Fleet/app")),
        "{:?}",
        r.actions()
    );
    let after = w.running("app").await;
    assert_eq!(after.len(), 2);
    assert!(!after.contains(&before[0]));
    assert!(after.contains(&before[1]));
    let o = w.observe().await;
    let web = o
        .balancers
        .iter()
        .find(|b| b.owner.name.as_str() == "web")
        .unwrap();
    let members: BTreeSet<&InstanceId> = web.members.iter().map(|m| &m.instance).collect();
    assert_eq!(members, after.iter().collect::<BTreeSet<_>>());
    assert!(
        web.members
            .iter()
            .all(|m| m.state == MemberState::InService)
    );
}

#[tokio::test]
async fn the_lost_database_gets_a_successor_with_its_volume() {
    let mut w = world(
        without_real_metric(smallpayroll()),
        SATURDAY_NOON,
        Delays::zero(),
    );
    w.pass_ok(ts(SATURDAY_NOON)).await;
    let db = w.running("db").await;
    assert_eq!(db.len(), 1);
    let attached = |o: &Observed| {
        o.volumes
            .iter()
            .find(|v| v.owner.name.as_str() == "pgdata")
            .and_then(|v| v.attachment.clone())
    };
    assert_eq!(attached(&w.observe().await).unwrap().instance, db[0]);

    w.cloud.lose_instance(&db[0]).unwrap();
    w.pass_ok(ts("2026-03-07T17:05:00Z")).await;
    let successor = w.running("db").await;
    assert_eq!(successor.len(), 1);
    assert_ne!(successor[0], db[0]);
    let o = w.observe().await;
    let a = attached(&o).unwrap();
    assert_eq!(a.instance, successor[0]);
    assert_eq!(a.device, "/dev/sdj");
    let zone = &o
        .instances
        .iter()
        .find(|i| i.id == successor[0])
        .unwrap()
        .zone;
    assert_eq!(zone.as_str(), "us-east-1a");
}

#[tokio::test]
async fn a_broken_check_replaces_nothing_and_a_failing_instance_is_replaced() {
    // Wednesday 10:00 in Toronto: 3 app servers.
    let t0 = ts("2026-03-11T14:00:00Z");
    let mut w = world(
        without_real_metric(smallpayroll()),
        "2026-03-11T14:00:00Z",
        Delays::zero(),
    );
    w.pass_ok(t0).await;
    let app = w.running("app").await;
    assert_eq!(app.len(), 3);

    // Every probe fails (a wrong path, say): well past the 5-minute
    // grace, nothing is replaced, and it is reported.
    w.probes.fail_all.store(true, Ordering::SeqCst);
    let mut broken = 0;
    for m in 1..=15 {
        let r = w.pass(minutes(t0, m)).await;
        assert_eq!(r.failed(), 0);
        if r
            .events
            .iter()
            .any(|e| matches!(e, Event::HealthCheckBroken { fleet, unhealthy: 3, running: 3 } if fleet.as_str() == "app"))
        {
            broken += 1;
        }
        assert!(
            !r.events
                .iter()
                .any(|e| matches!(e, Event::Replacing { .. })),
            "minute {m}: {:#?}",
            r.events
        );
    }
    assert_eq!(w.running("app").await, app, "no instance was replaced");
    assert!(
        broken >= 10,
        "the broken check was reported ({broken} passes)"
    );

    // The check is fixed: everything passes again, and is forgotten.
    w.probes.fail_all.store(false, Ordering::SeqCst);
    let r = w.pass_ok(minutes(t0, 16)).await;
    assert_eq!(r.planned, 0);

    // One instance really fails: after the grace it alone is replaced.
    let sick = app[1].clone();
    let ip = w.ip(&sick).await;
    w.probes.fail.lock().unwrap().insert(ip);
    let t1 = minutes(t0, 20);
    for m in 0..5 {
        w.pass_ok(minutes(t1, m)).await;
        assert_eq!(
            w.running("app").await,
            app,
            "minute {m}: still in its grace"
        );
    }
    let r = w.pass_ok(minutes(t1, 5)).await;
    assert!(
        r.events
            .iter()
            .any(|e| matches!(e, Event::Replacing { instance, .. } if *instance == sick)),
        "{:#?}",
        r.events
    );
    let now = w.running("app").await;
    assert_eq!(now.len(), 3);
    assert!(!now.contains(&sick));
    for i in app.iter().filter(|i| **i != sick) {
        assert!(now.contains(i), "healthy {i} was kept");
    }
    // The successor passes; nothing more happens.
    let r = w.pass_ok(minutes(t1, 6)).await;
    assert_eq!(r.planned, 0, "{:?}", r.actions());
}

// ---- snapshots ---------------------------------------------------------------

#[tokio::test]
async fn snapshots_are_taken_on_schedule_and_pruned_to_keep() {
    let mut d = without_real_metric(smallpayroll());
    d.volumes
        .get_mut(&ResourceName::from("pgdata"))
        .unwrap()
        .snapshots
        .as_mut()
        .unwrap()
        .keep = 3;
    // Monday 2 March, 00:00 in Toronto.
    let t0 = ts("2026-03-02T05:00:00Z");
    let mut w = world(d, "2026-03-02T05:00:00Z", Delays::zero());
    w.pass_ok(t0).await;
    // A snapshot someone took by hand, without converge's tags.
    let vol = w
        .observe()
        .await
        .volumes
        .into_iter()
        .find(|v| v.owner.name.as_str() == "pgdata")
        .unwrap()
        .id;
    w.cloud
        .act(&Op::CreateSnapshot {
            volume: vol,
            description: "by hand".into(),
            tags: BTreeMap::from([("owner".to_owned(), "ops".to_owned())]),
        })
        .await
        .unwrap();
    let cloud = w.cloud.clone();
    let foreign = || {
        let rows = cloud.list().unwrap();
        rows.into_iter()
            .filter(|r| r.kind == ResourceType::Snapshot && r.stack == "-")
            .count()
    };
    assert_eq!(foreign(), 1);

    // Hourly passes for a week: one snapshot a day at 03:00 Toronto
    // time, never two, across the daylight-saving change of 8 March.
    let toronto = TimeZone::get("America/Toronto").unwrap();
    let mut ours_by_day = Vec::new();
    for h in 1..=(7 * 24) {
        let at = minutes(t0, h * 60);
        let r = w.pass_ok(at).await;
        let taken = r
            .events
            .iter()
            .filter(|e| matches!(e, Event::SnapshotDue { .. }))
            .count();
        let local_hour = at.to_zoned(toronto.clone()).hour();
        assert_eq!(
            taken,
            usize::from(local_hour == 3),
            "hour {h}: {:#?}",
            r.events
        );
        if local_hour == 12 {
            let ours: Vec<_> = w
                .observe()
                .await
                .snapshots
                .into_iter()
                .filter(|s| {
                    s.volume.as_str() == "pgdata"
                        && s.tags.get(tags::PURPOSE).map(String::as_str) == Some("scheduled")
                })
                .collect();
            ours_by_day.push(ours.len());
        }
    }
    // The newest 3 are kept: pruning happens on the pass after a fourth
    // completes.
    assert_eq!(ours_by_day, vec![1, 2, 3, 3, 3, 3, 3]);
    let newest: Vec<Timestamp> = {
        let mut v: Vec<Timestamp> = w
            .observe()
            .await
            .snapshots
            .iter()
            .map(|s| s.started_at)
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        newest,
        vec![
            ts("2026-03-06T08:00:00Z"),
            ts("2026-03-07T08:00:00Z"),
            ts("2026-03-08T07:00:00Z"),
        ],
        "the newest three, the last after the daylight-saving change"
    );
    assert_eq!(
        foreign(),
        1,
        "a snapshot without converge's tags is never touched"
    );
}

// ---- stopping ----------------------------------------------------------------

#[tokio::test]
async fn a_stop_mid_pass_lets_running_steps_finish_and_starts_no_more() {
    let mut delays = Delays::zero();
    delays.boot = Duration::from_secs(60);
    let w = world(without_real_metric(smallpayroll()), SATURDAY_NOON, delays);
    let World {
        cloud,
        clock,
        rec: mut reconciler,
        stack,
        ..
    } = w;
    let stop = reconciler.stop_handle();
    let run = tokio::spawn(async move { reconciler.run().await });

    // Wait until the database instance is launched and booting: its launch
    // step is in flight (waiting for it to run).
    let mut pending = false;
    for _ in 0..500 {
        let o = cloud.observe(&stack).await.unwrap();
        if o.instances
            .iter()
            .any(|i| i.state == InstanceState::Pending)
        {
            pending = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(pending, "the pass never launched anything");
    stop.stop();
    let summary = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the loop stops")
        .unwrap();
    assert_eq!(summary.passes, 1, "no pass after the stop");
    // The boot of what was launched before the loop stopped: moved on only
    // now, so that a RunInstances in flight at the stop, answered later,
    // boots by then too (advanced before, it raced the assertion below).
    clock.advance(Duration::from_secs(61));

    let o = cloud.observe(&stack).await.unwrap();
    let db: Vec<_> = o
        .instances
        .iter()
        .filter(|i| i.owner.name.as_str() == "db")
        .collect();
    assert_eq!(db.len(), 1);
    assert_eq!(
        db[0].state,
        InstanceState::Running,
        "the running step finished"
    );
    // The app servers' launches need only the db's address, so they may
    // have started before the stop, on RunInstances' answer (the
    // executor's early start); started, they finished too. What needs
    // them running never started: no balancer member.
    assert!(
        o.instances
            .iter()
            .all(|i| i.state == InstanceState::Running),
        "every launch in flight finished: {:?}",
        o.instances
    );
    assert!(
        o.balancers
            .iter()
            .all(|b| b.members.is_empty() && b.target_groups.iter().all(|t| t.members.is_empty())),
        "no registration started after the stop: {:?}",
        o.balancers
    );
    let pgdata = o.volumes.iter().find(|v| v.owner.name.as_str() == "pgdata");
    assert!(
        pgdata.is_none_or(|v| v.attachment.is_none()),
        "the attach after the launch did not start"
    );
}

// ---- backoff -----------------------------------------------------------------

#[tokio::test]
async fn a_broken_resource_backs_off_while_the_others_keep_converging() {
    let mut d = without_real_metric(smallpayroll());
    // An image ID the region refuses: retrying cannot fix it.
    d.fleets.get_mut(&ResourceName::from("app")).unwrap().image = "ami-zzzzzzzz".into();
    let t0 = ts(SATURDAY_NOON);
    let mut w = world(d, SATURDAY_NOON, Delays::zero());

    let r = w.pass(t0).await;
    assert!(!r.ok);
    let retry_after = r
        .events
        .iter()
        .find_map(|e| match e {
            Event::StepFailed {
                resource,
                retry_after,
                ..
            } if resource == "Fleet/app" => Some(*retry_after),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no failure of Fleet/app: {:#?}", r.events));
    // Slow backoff: at least half of the 5-minute base.
    assert!(retry_after >= minutes(t0, 2), "{retry_after}");
    assert!(retry_after <= minutes(t0, 5), "{retry_after}");
    assert_eq!(
        w.running("db").await.len(),
        1,
        "the rest of the stack converged"
    );

    // Backoff is keyed by the step's content (issue 12): the first plan
    // aimed the launch at the groups it created, the next one aims it at
    // their IDs, another request, tried once (and backing off as slowly).
    let r = w
        .pass(t0.checked_add(jiff::SignedDuration::from_secs(10)).unwrap())
        .await;
    assert!(r.failed() > 0, "{:#?}", r.events);

    // While it backs off, its steps are held (not tried), and the rest of
    // the stack is still healed.
    let db = w.running("db").await;
    w.cloud.lose_instance(&db[0]).unwrap();
    let r = w.pass(minutes(t0, 1)).await;
    assert!(r.held > 0);
    assert_eq!(r.failed(), 0, "the broken launch was not retried");
    assert!(
        r.events
            .iter()
            .any(|e| matches!(e, Event::BackingOff { resource, .. } if resource == "Fleet/app"))
    );
    let successor = w.running("db").await;
    assert_eq!(successor.len(), 1);
    assert_ne!(successor, db);

    // Once the backoff ends it is tried again, fails again, and backs off
    // longer.
    let r = w.pass(minutes(t0, 6)).await;
    assert!(r.failed() > 0, "{:#?}", r.events);
    let app = WorkKey::Resource {
        key: ResourceKey::new(Kind::Fleet, "app"),
    };
    let entry = w
        .rec
        .backoffs()
        .of(&app)
        .max_by_key(|e| e.failures)
        .unwrap();
    assert_eq!(entry.failures, 2);
    assert_eq!(entry.class, converge::apply::FailureClass::Permanent);
    assert!(entry.until >= minutes(t0, 6 + 5), "{}", entry.until);
}

/// A one-instance fleet is too small to judge its check by a majority: its
/// failing instance is replaced once, and when the successor fails the
/// same way soon after, the check is reported as broken instead of
/// replaced in a loop.
#[tokio::test]
async fn a_one_instance_fleet_is_replaced_once_then_its_check_is_reported() {
    let mut d = without_real_metric(smallpayroll());
    let app = d.fleets.get_mut(&ResourceName::from("app")).unwrap();
    app.schedule = None;
    app.replicas = 1;
    let t0 = ts("2026-03-11T14:00:00Z");
    let mut w = world(d, "2026-03-11T14:00:00Z", Delays::zero());
    w.pass_ok(t0).await;
    let first = w.running("app").await;
    assert_eq!(first.len(), 1);

    w.probes.fail_all.store(true, Ordering::SeqCst);
    let mut replaced = Vec::new();
    let mut broken = 0;
    for m in 1..=25 {
        let r = w.pass(minutes(t0, m)).await;
        assert_eq!(r.failed(), 0, "minute {m}: {:#?}", r.apply);
        for e in &r.events {
            match e {
                Event::Replacing {
                    fleet, instance, ..
                } if fleet.as_str() == "app" => replaced.push((m, instance.clone())),
                Event::HealthCheckBroken { fleet, .. } if fleet.as_str() == "app" => broken += 1,
                _ => {}
            }
        }
    }
    assert_eq!(replaced.len(), 1, "replaced once only: {replaced:?}");
    assert_eq!(replaced[0].1, first[0]);
    assert!(
        broken >= 5,
        "the broken check was reported ({broken} passes)"
    );
    let now = w.running("app").await;
    assert_eq!(now.len(), 1);
    assert_ne!(now, first);
}
