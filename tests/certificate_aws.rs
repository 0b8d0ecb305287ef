//! ACM certificates through the AWS backend against a moto server
//! (`MOTO_ACM_VALIDATION_WAIT=1`, scripts/moto.sh): a certificate
//! validated through the stack's zone (its validation records written
//! with their marks, then waited for until ISSUED), a distribution with
//! aliases and that certificate, the certificate replaced by changing its
//! domains (the distribution switched before the old one goes), and
//! everything removed. Skipped (and passing) without
//! `CONVERGE_TEST_AWS_ENDPOINT`, failing under `CONVERGE_REQUIRE_MOTO`.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use converge::apply::{ApplyOptions, Quiet, RetryPolicy, execute};
use converge::cloud::Cloud;
use converge::cloud::aws::AwsCloud;
use converge::commands::{observe, observe_and_plan};
use converge::core::acm::{CertificateStatus, ValidationMark};
use converge::core::desired::Desired;
use converge::core::ids::Kind;
use converge::core::plan::{ChangeAction, Plan};
use converge::core::route53::RecordType;
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::support::moto::{cloud, load};

const AT: &str = "2026-12-01T16:00:00Z";

async fn plan(c: &Arc<AwsCloud>, d: &Desired) -> Plan {
    let at: Timestamp = AT.parse().unwrap();
    observe_and_plan(&**c, d, at, &BTreeMap::new())
        .await
        .unwrap()
        .1
}

async fn apply(c: &Arc<AwsCloud>, p: &Plan) {
    let opts = ApplyOptions {
        retry: RetryPolicy::fast(),
        wait_timeout: Duration::from_secs(60),
        poll_interval: Duration::from_millis(200),
        ..ApplyOptions::default()
    };
    let r = execute(c.clone(), p, opts, Arc::new(Quiet)).await;
    assert!(r.is_success(), "{:?}", r.steps);
}

/// A stack with its zone, a Certificate for `hosts` and a Cdn serving
/// `cdn0` with it.
fn manifests(stack: &str, hosts: &[&str]) -> String {
    let domains: Vec<String> = hosts
        .iter()
        .map(|h| format!("{h}.{stack}.example"))
        .collect();
    format!(
        "kind: Stack
name: {stack}
spec:
  region: us-east-1
---
kind: DnsZone
name: main
spec:
  domain: {stack}.example
  deletionPolicy: delete
---
kind: Certificate
name: www
spec:
  domains: [{}]
  zone: main
---
kind: Bucket
name: {stack}-assets
spec:
  publicRead: true
  deletionPolicy: delete
---
kind: Cdn
name: assets
spec:
  origin: {{bucket: {stack}-assets}}
  aliases: [cdn0.{stack}.example]
  certificate: Certificate/www
",
        domains.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validated_used_by_a_distribution_replaced_and_removed() {
    let endpoint = moto_or_skip!();
    let c = cloud(&endpoint).await;
    let t = tempfile::tempdir().unwrap();
    let stack = format!("cert{}", fastrand::u32(..));
    let d = load(t.path(), &manifests(&stack, &["www", "cdn0"]));
    let p = plan(&c, &d).await;
    apply(&c, &p).await;
    let o = observe(&*c, &d).await.unwrap();
    let [cert] = o.certificates.as_slice() else {
        panic!("one certificate: {:?}", o.certificates);
    };
    assert_eq!(cert.status, CertificateStatus::Issued);
    assert_eq!(cert.owner.as_ref().unwrap().kind, Kind::Certificate);
    // Its validation records are in the zone, each with its mark.
    let z = &o.dns_zones[0];
    assert!(!cert.validation.is_empty());
    for v in &cert.validation {
        let set = z.record(&v.name, RecordType::Cname).unwrap();
        assert_eq!(set.values, vec![v.value.clone()]);
        let m = ValidationMark::of(z, &v.name).unwrap();
        assert_eq!(m.certificate.as_str(), "www");
    }
    // The distribution serves its aliases with it.
    let dist = &o.distributions[0];
    let viewer = dist.config.viewer_certificate.as_ref().unwrap();
    assert_eq!(viewer.arn, cert.arn);
    assert_eq!(viewer.minimum_protocol_version, "TLSv1.2_2021");
    let again = plan(&c, &d).await;
    assert!(!again.has_changes(), "{:?}", again.graph.steps());
    // A tag added by hand is removed (RemoveTagsFromCertificate).
    c.act(&converge::cloud::Op::CreateTags {
        target: converge::core::plan::TagTarget::Certificate(cert.arn.clone()),
        tags: [("extra".to_owned(), "x".to_owned())].into(),
    })
    .await
    .unwrap();
    let p = plan(&c, &d).await;
    assert!(p.graph.steps().iter().any(|s| s.kind() == "set-tags"));
    apply(&c, &p).await;
    let o = observe(&*c, &d).await.unwrap();
    assert!(!o.certificates[0].tags.contains_key("extra"));

    // New domains: a new certificate, the distribution switched, then the
    // old one deleted.
    let wider = load(t.path(), &manifests(&stack, &["www", "cdn0", "cdn1"]));
    let p = plan(&c, &wider).await;
    let change = p
        .changes
        .iter()
        .find(|x| x.key.kind == Kind::Certificate)
        .unwrap();
    assert!(matches!(change.action, ChangeAction::Replace { .. }));
    apply(&c, &p).await;
    let o = observe(&*c, &wider).await.unwrap();
    let [new] = o.certificates.as_slice() else {
        panic!("the old certificate is gone: {:?}", o.certificates);
    };
    assert_ne!(new.arn, cert.arn);
    assert_eq!(
        o.distributions[0]
            .config
            .viewer_certificate
            .as_ref()
            .unwrap()
            .arn,
        new.arn
    );
    assert!(!plan(&c, &wider).await.has_changes());

    // Destroy: the distribution, the certificate, its validation records,
    // then the zone.
    let empty = Desired::empty(d.stack.clone(), d.region.clone());
    let p = plan(&c, &empty).await;
    apply(&c, &p).await;
    let o = observe(&*c, &empty).await.unwrap();
    assert!(o.certificates.is_empty(), "{:?}", o.certificates);
    let zones = c
        .dns_zones(&d.stack, &[format!("{stack}.example")])
        .await
        .unwrap();
    assert!(zones.is_empty(), "{zones:?}");
}
