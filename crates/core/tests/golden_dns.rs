//! Golden plans of Route 53: a record that exists without converge's
//! mark (refused, then adopted), and each stage of a TTL-aware cutover
//! (lower, waiting for the old TTL, switch, waiting to settle, settle),
//! planned at the moments `plan --at` would be given. Every plan passes
//! the invariants checker and is planned twice (`common::run`).

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use common::*;
use converge_core::desired::{DeletionPolicy, Desired, Template};
use converge_core::ids::{Kind, ResourceKey};
use converge_core::observed::Observed;
use converge_core::plan::{Note, Step};
use converge_core::route53::{
    Cutover, DnsRecordSpec, DnsZoneSpec, Mark, ObservedZone, RecordSet, RecordTarget, RecordType,
    Stage, ZoneRef,
};
use insta::assert_snapshot;

const T0: &str = "2026-12-01T16:00:00Z";

fn stack() -> Desired {
    Desired::empty(name("shop"), "us-east-1".into())
}

fn www(values: &[&str], adopt: bool) -> DnsRecordSpec {
    DnsRecordSpec {
        zone: ZoneRef::Existing("example.com".into()),
        name: "www.example.com".into(),
        rtype: RecordType::A,
        target: RecordTarget::Values(values.iter().map(|v| Template::literal(*v)).collect()),
        ttl: 300,
        cutover: Cutover::default(),
        adopt,
        deletion_policy: DeletionPolicy::Delete,
    }
}

fn a_set(value: &str, ttl: u32) -> RecordSet {
    RecordSet {
        name: "www.example.com".into(),
        rtype: RecordType::A,
        ttl: Some(ttl),
        values: vec![value.into()],
        alias: None,
    }
}

/// The existing zone with `www` at `value`/`ttl`, and its mark if given.
fn world(value: &str, ttl: u32, stage: Option<Option<Stage>>) -> Observed {
    let mut records = vec![a_set(value, ttl)];
    if let Some(stage) = stage {
        let m = Mark {
            stack: name("shop"),
            record: name("www"),
            retain: false,
            stage,
        };
        records.push(m.record_set("www.example.com", RecordType::A));
    }
    Observed {
        dns_zones: vec![ObservedZone {
            id: "Z0EXISTING".into(),
            domain: "example.com".into(),
            name_servers: vec!["ns-1.awsdns-01.com".into()],
            owner: None,
            tags: Default::default(),
            records,
        }],
        ..empty_region()
    }
}

fn desired(values: &[&str], adopt: bool) -> Desired {
    let mut d = stack();
    d.dns_records.insert(name("www"), www(values, adopt));
    d
}

#[test]
fn a_record_without_the_mark_is_left_alone() {
    let d = desired(&["192.0.2.20"], false);
    let plan = run(&d, &world("192.0.2.10", 86400, None), T0);
    assert!(plan.graph.steps().is_empty());
    assert!(plan.has_blocked_changes());
    assert_snapshot!("dns_not_owned.txt", text(&plan));
}

#[test]
fn cutover_lower_on_an_adopted_long_ttl_record() {
    let d = desired(&["192.0.2.20"], true);
    let plan = run(&d, &world("192.0.2.10", 86400, None), T0);
    assert_snapshot!("dns_cutover_lower.txt", text(&plan));
    let Some(Step::ChangeRecords { changes, .. }) = plan.graph.steps().first() else {
        panic!("no change batch: {}", text(&plan));
    };
    // The old value at the cutover TTL, and the mark noting the moment.
    assert_eq!(changes[0].ttl, Some(60));
    let c = plan
        .changes
        .iter()
        .find(|c| c.key == ResourceKey::new(Kind::DnsRecord, name("www")))
        .unwrap();
    assert!(c.notes.contains(&Note::Adopt));
}

#[test]
fn cutover_waits_for_the_old_ttl_then_switches() {
    let d = desired(&["192.0.2.20"], false);
    let lowered = Some(Some(Stage::Lowered {
        at: ts(T0),
        old_ttl: 86400,
    }));
    let o = world("192.0.2.10", 60, lowered);
    let early = run(&d, &o, "2026-12-02T04:00:00Z");
    assert!(early.graph.steps().is_empty());
    assert_snapshot!("dns_cutover_waits_to_switch.txt", text(&early));
    let due = run(&d, &o, "2026-12-02T16:00:00Z");
    assert_snapshot!("dns_cutover_switch.txt", text(&due));
}

#[test]
fn cutover_settles_after_the_settle_time() {
    let d = desired(&["192.0.2.20"], false);
    let switched = Some(Some(Stage::Switched {
        at: ts("2026-12-02T16:00:00Z"),
    }));
    let o = world("192.0.2.20", 60, switched);
    let early = run(&d, &o, "2026-12-02T16:30:00Z");
    assert!(early.graph.steps().is_empty());
    assert_snapshot!("dns_cutover_waits_to_settle.txt", text(&early));
    let due = run(&d, &o, "2026-12-02T17:00:00Z");
    assert_snapshot!("dns_cutover_settle.txt", text(&due));
    let done = world("192.0.2.20", 300, Some(None));
    assert!(!run(&d, &done, "2026-12-02T17:05:00Z").has_changes());
}

#[test]
fn a_short_ttl_record_changes_at_once() {
    let d = desired(&["192.0.2.20"], false);
    let plan = run(&d, &world("192.0.2.10", 60, Some(None)), T0);
    assert_snapshot!("dns_change_at_once.txt", text(&plan));
}

#[test]
fn a_new_zone_and_an_alias_to_the_balancer() {
    let mut d = smallpayroll();
    d.dns_zones.insert(
        name("main"),
        DnsZoneSpec {
            domain: "smallpayroll.example".into(),
            deletion_policy: DeletionPolicy::Retain,
            tags: Default::default(),
        },
    );
    d.dns_records.insert(
        name("www"),
        DnsRecordSpec {
            zone: ZoneRef::Stack(name("main")),
            name: "www.smallpayroll.example".into(),
            rtype: RecordType::A,
            target: RecordTarget::Alias(ResourceKey::new(Kind::Balancer, name("web"))),
            ttl: 300,
            cutover: Cutover::default(),
            adopt: false,
            deletion_policy: DeletionPolicy::Delete,
        },
    );
    let plan = run(&d, &empty_region(), SATURDAY_NOON);
    let zone = step(&plan, "create DnsZone/main");
    let balancer = step(&plan, "create Balancer/web");
    let record = step(&plan, "create DnsRecord/www");
    assert!(precedes(&plan, zone, record));
    assert!(precedes(&plan, balancer, record));
}
