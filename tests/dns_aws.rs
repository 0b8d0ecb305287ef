//! Route 53 through the AWS backend against a moto server: zones created
//! and existing, records with values and aliased to a balancer, ownership
//! marks, adoption refused and accepted, a cutover lowered on an existing
//! long-TTL record, and deletion. Skipped (and passing) without
//! `CONVERGE_TEST_AWS_ENDPOINT`, failing under `CONVERGE_REQUIRE_MOTO`.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use converge::apply::{ApplyOptions, Quiet, RetryPolicy, execute};
use converge::cloud::aws::AwsCloud;
use converge::cloud::{Cloud, Op, Outcome};
use converge::commands::observe_and_plan;
use converge::core::desired::Desired;
use converge::core::ids::{Kind, ResourceKey};
use converge::core::plan::{Note, Plan};
use converge::core::route53::{
    ChangeAction, Mark, ObservedZone, RecordChange, RecordSet, RecordType, Stage,
};
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::support::moto::{cloud, load};

const AT: &str = "2026-12-01T16:00:00Z";

async fn plan(c: &Arc<AwsCloud>, d: &Desired, at: &str) -> Plan {
    let at: Timestamp = at.parse().unwrap();
    observe_and_plan(&**c, d, at, &BTreeMap::new())
        .await
        .unwrap()
        .1
}

/// Applies `p` with the executor's clock stopped at the plan's moment, so
/// that the moment a cutover step is noted at is the one the test chose.
async fn apply(c: &Arc<AwsCloud>, p: &Plan) {
    let opts = ApplyOptions {
        clock: Arc::new(converge::sys::ManualClock::new(p.at)),
        retry: RetryPolicy::fast(),
        wait_timeout: Duration::from_secs(60),
        poll_interval: Duration::from_millis(50),
        ..ApplyOptions::default()
    };
    let r = execute(c.clone(), p, opts, Arc::new(Quiet)).await;
    assert!(r.is_success(), "{:?}", r.steps);
}

async fn zone(c: &Arc<AwsCloud>, stack: &str, domain: &str) -> ObservedZone {
    c.dns_zones(&stack.parse().unwrap(), &[domain.to_owned()])
        .await
        .unwrap()
        .into_iter()
        .find(|z| z.domain == domain)
        .unwrap()
}

const STACK: &str = "kind: Stack
name: STACK
spec:
  region: us-east-1
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zones_records_aliases_marks_and_deletion() {
    let endpoint = moto_or_skip!();
    let c = cloud(&endpoint).await;
    let t = tempfile::tempdir().unwrap();
    let stack = format!("dns{}", fastrand::u32(..));
    let text = format!(
        "{}---
kind: DnsZone
name: main
spec:
  domain: {stack}.example
  deletionPolicy: delete
---
kind: Balancer
name: web
spec:
  zones: [us-east-1a]
  listeners: [{{port: 80, instancePort: 80, protocol: HTTP}}]
  healthCheck: {{target: \"HTTP:80/\", interval: 30s, timeout: 3s, healthyThreshold: 2, unhealthyThreshold: 2}}
---
kind: DnsRecord
name: www
spec:
  zone: main
  name: www.{stack}.example
  type: A
  alias: Balancer/web
---
kind: DnsRecord
name: mail
spec:
  zone: main
  name: {stack}.example
  type: MX
  values: [\"10 mail.{stack}.example\"]
  ttl: 1h
",
        STACK.replace("STACK", &stack)
    );
    let d = load(t.path(), &text);
    let p = plan(&c, &d, AT).await;
    apply(&c, &p).await;
    let again = plan(&c, &d, AT).await;
    assert!(!again.has_changes(), "{:?}", again.graph.steps());
    let z = zone(&c, &stack, &format!("{stack}.example")).await;
    assert_eq!(z.owner.as_ref().unwrap().kind, Kind::DnsZone);
    assert!(!z.name_servers.is_empty());
    let www = z
        .record(&format!("www.{stack}.example"), RecordType::A)
        .unwrap();
    let alias = www.alias.as_ref().unwrap();
    assert!(alias.dns_name.contains("elb.amazonaws.com"), "{alias:?}");
    assert!(!alias.zone_id.is_empty());
    assert!(Mark::of(&z, &format!("www.{stack}.example"), RecordType::A).is_some());
    let mx = z
        .record(&format!("{stack}.example"), RecordType::Mx)
        .unwrap();
    assert_eq!(mx.ttl, Some(3600));
    // A tag declared on the zone is set; one added by hand is removed.
    let tagged = load(
        t.path(),
        &text.replace(
            "  deletionPolicy: delete\n",
            "  deletionPolicy: delete\n  tags: {team: web}\n",
        ),
    );
    let p = plan(&c, &tagged, AT).await;
    assert!(p.has_changes());
    apply(&c, &p).await;
    let z = zone(&c, &stack, &format!("{stack}.example")).await;
    assert_eq!(z.tags.get("team").map(String::as_str), Some("web"));
    let p = plan(&c, &d, AT).await;
    apply(&c, &p).await;
    let z = zone(&c, &stack, &format!("{stack}.example")).await;
    assert!(!z.tags.contains_key("team"), "{:?}", z.tags);
    assert!(!plan(&c, &d, AT).await.has_changes());
    // Destroy: the records and their marks, then the zone (its policy).
    let empty = Desired::empty(d.stack.clone(), d.region.clone());
    let p = plan(&c, &empty, AT).await;
    apply(&c, &p).await;
    let left = c
        .dns_zones(&d.stack, &[format!("{stack}.example")])
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_record_is_refused_then_adopted_and_its_cutover_lowered() {
    let endpoint = moto_or_skip!();
    let c = cloud(&endpoint).await;
    let t = tempfile::tempdir().unwrap();
    let stack = format!("adopt{}", fastrand::u32(..));
    let domain = format!("{stack}.example");
    // The "existing" zone and record, made outside converge.
    let id = match c
        .act(&Op::CreateHostedZone {
            domain: domain.clone(),
            caller_reference: format!("outside-{stack}"),
            tags: Default::default(),
        })
        .await
        .unwrap()
    {
        Outcome::Zone { id, .. } => id,
        other => panic!("{other:?}"),
    };
    let name = format!("www.{domain}");
    c.act(&Op::ChangeRecordSets {
        zone: id.clone(),
        changes: vec![RecordChange {
            action: ChangeAction::Create,
            set: RecordSet {
                name: name.clone(),
                rtype: RecordType::A,
                ttl: Some(86400),
                values: vec!["192.0.2.10".into()],
                alias: None,
            },
        }],
    })
    .await
    .unwrap();
    let record = |adopt: bool| {
        format!(
            "{}---
kind: DnsRecord
name: www
spec:
  zone: {domain}
  name: {name}
  type: A
  values: [192.0.2.20]
  adopt: {adopt}
",
            STACK.replace("STACK", &stack)
        )
    };
    let refused = plan(&c, &load(t.path(), &record(false)), AT).await;
    assert!(refused.graph.steps().is_empty());
    assert!(refused.has_blocked_changes());
    let d = load(t.path(), &record(true));
    let p = plan(&c, &d, AT).await;
    let key = ResourceKey::new(Kind::DnsRecord, "www");
    let notes = &p.changes.iter().find(|c| c.key == key).unwrap().notes;
    assert!(notes.contains(&Note::Adopt), "{notes:?}");
    apply(&c, &p).await;
    let z = zone(&c, &stack, &domain).await;
    let set = z.record(&name, RecordType::A).unwrap();
    assert_eq!(set.ttl, Some(60));
    assert_eq!(set.values, vec!["192.0.2.10".to_owned()]);
    let mark = Mark::of(&z, &name, RecordType::A).unwrap();
    assert!(!mark.pending, "noted once in sync: {mark:?}");
    assert_eq!(
        mark.stage,
        Some(Stage::Lowered {
            at: AT.parse().unwrap(),
            old_ttl: 86400
        })
    );
    // A day later the switch is due.
    let p = plan(&c, &d, "2026-12-02T16:00:00Z").await;
    apply(&c, &p).await;
    let z = zone(&c, &stack, &domain).await;
    assert_eq!(
        z.record(&name, RecordType::A).unwrap().values,
        vec!["192.0.2.20".to_owned()]
    );
}
