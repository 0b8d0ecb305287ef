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
    let mut tags = converge_core::desired::Tags::new();
    if let Some(stage) = stage {
        // converge tagged the zone when it first wrote the mark.
        tags.insert(
            converge_core::ids::tags::records_of(&name("shop")),
            "DnsRecord".into(),
        );
        let m = Mark {
            stack: name("shop"),
            record: name("www"),
            retain: false,
            stage,
            pending: false,
        };
        records.push(m.record_set("www.example.com", RecordType::A));
    }
    Observed {
        dns_zones: vec![ObservedZone {
            id: "Z0EXISTING".into(),
            domain: "example.com".into(),
            name_servers: vec!["ns-1.awsdns-01.com".into()],
            owner: None,
            tags,
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
    // The zone is tagged as holding the stack's records first.
    let tag = step(&plan, "tag hosted zone Z0EXISTING");
    let batch = step(&plan, "lower the TTL of DnsRecord/www");
    assert!(precedes(&plan, tag, batch));
    let Some(Step::ChangeRecords { changes, .. }) = plan.graph.step(batch) else {
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

/// A stack with the zone `main` and a fleet `ns` whose user data reads
/// the zone's name servers.
fn zone_reader() -> Desired {
    let mut d = smallpayroll();
    d.dns_zones.insert(
        name("main"),
        DnsZoneSpec {
            domain: "smallpayroll.example".into(),
            deletion_policy: DeletionPolicy::Retain,
            tags: Default::default(),
        },
    );
    d.fleets
        .insert(name("ns"), fleet("ns=${DnsZone/main.nameServers}"));
    d
}

#[test]
fn a_template_reads_the_name_servers_of_a_zone_made_in_the_same_plan() {
    let d = zone_reader();
    let plan = run(&d, &empty_region(), SATURDAY_NOON);
    let zone = step(&plan, "create DnsZone/main");
    let launch = step(&plan, "launch 1 Fleet/ns instance(s)");
    assert!(precedes(&plan, zone, launch));
    assert!(
        text(&plan).contains("ns=${DnsZone/main.nameServers} (known after apply)"),
        "{}",
        text(&plan)
    );
}

#[test]
fn a_template_reads_the_name_servers_of_the_zone_that_exists() {
    let d = zone_reader();
    let mut o = empty_region();
    o.dns_zones.push(ObservedZone {
        id: "Z0MAIN".into(),
        domain: "smallpayroll.example".into(),
        name_servers: vec!["ns-1.awsdns-01.com".into(), "ns-2.awsdns-02.net".into()],
        owner: Some(owner(&d, Kind::DnsZone, &name("main"))),
        tags: Default::default(),
        records: Vec::new(),
    });
    let plan = run(&d, &o, SATURDAY_NOON);
    let t = text(&plan);
    assert!(
        t.contains("ns=ns-1.awsdns-01.com,ns-2.awsdns-02.net"),
        "{t}"
    );
    assert!(!t.contains("DnsZone/main.nameServers"), "{t}");
}

#[test]
fn a_lowered_mark_whose_moment_was_never_noted_is_written_again() {
    let d = desired(&["192.0.2.20"], false);
    let lowered = Stage::Lowered {
        at: ts(T0),
        old_ttl: 86400,
    };
    let mut o = world("192.0.2.10", 60, Some(Some(lowered)));
    // The run that lowered the TTL stopped before the change was in sync.
    let pending = Mark {
        stack: name("shop"),
        record: name("www"),
        retain: false,
        stage: Some(lowered),
        pending: true,
    };
    let mark = pending.record_set("www.example.com", RecordType::A);
    let z = &mut o.dns_zones[0];
    z.records.retain(|r| r.name != mark.name);
    z.records.push(mark.clone());
    // A day later the switch would be due by the planned moment; it is
    // not: the mark is written again and the switch counted from now.
    let plan = run(&d, &o, "2026-12-02T16:00:00Z");
    let i = step(
        &plan,
        "note when the cutover step of DnsRecord/www was in sync",
    );
    let Some(Step::ChangeRecords { changes, .. }) = plan.graph.step(i) else {
        panic!("not a record change");
    };
    assert_eq!(changes.len(), 1, "only the mark is written");
    assert_eq!(changes[0].name, mark.name);
    assert_snapshot!("dns_cutover_mark_pending.txt", text(&plan));
}
