//! ACM certificates on the local cloud: a certificate validated through
//! the stack's zone (pending until its validation records are there,
//! issued after the configured delay) and used by an HTTPS listener and a
//! Cdn with aliases; replaced by changing its domains; removed with its
//! validation records. Then what the local cloud refuses as AWS does: a
//! certificate deleted while in use, aliases without a covering
//! certificate, a distribution's certificate outside us-east-1, a
//! listener's certificate not issued yet; and what manifest validation
//! refuses before any call.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use converge::apply::{ApplyOptions, Quiet, RetryPolicy, execute};
use converge::cloud::local::{Delays, Faults, LocalCloud, LocalConfig};
use converge::cloud::{Cloud, ErrorKind, Op, Outcome};
use converge::commands::observe_and_plan;
use converge::core::acm::CertificateStatus;
use converge::core::desired::{Desired, Listener, ListenerProtocol, Tags};
use converge::core::ids::Kind;
use converge::core::observed::{DistributionConfig, Observed, ViewerCertificate};
use converge::core::plan::ChangeAction;
use converge::manifest;
use converge::sys::SystemClock;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn manifests(hosts: &[&str]) -> String {
    let domains: Vec<String> = hosts.iter().map(|h| format!("{h}.shop.example")).collect();
    format!(
        "kind: Stack
name: shop
spec:
  region: us-east-1
---
kind: DnsZone
name: main
spec:
  domain: shop.example
  deletionPolicy: delete
---
kind: Certificate
name: www
spec:
  domains: [{}]
  zone: main
---
kind: SecurityGroup
name: lb
spec:
  description: the balancer
  ingress: [{{port: 443, cidr: 0.0.0.0/0}}]
---
kind: Balancer
name: web
spec:
  type: application
  zones: [us-east-1a, us-east-1b]
  securityGroups: [lb]
  listeners:
    - {{port: 443, protocol: HTTPS, targetPort: 80, certificate: Certificate/www}}
  healthCheck: {{path: /, interval: 30s, timeout: 3s, healthyThreshold: 2, unhealthyThreshold: 2}}
---
kind: Bucket
name: shop-assets
spec:
  publicRead: true
  deletionPolicy: delete
---
kind: Cdn
name: assets
spec:
  origin: {{bucket: shop-assets}}
  aliases: [cdn0.shop.example]
  certificate: Certificate/www
",
        domains.join(", ")
    )
}

fn load(dir: &Path, text: &str) -> Result<Desired, String> {
    std::fs::create_dir_all(dir.join("s")).unwrap();
    std::fs::write(dir.join("s/stack.yaml"), text).unwrap();
    manifest::load(&dir.join("s"), &|_| None)
        .map(|l| l.desired)
        .map_err(|e| format!("{e:#}"))
}

fn open(dir: &Path, certificate: Duration) -> Arc<LocalCloud> {
    let config = LocalConfig {
        region: "us-east-1".into(),
        delays: Delays {
            certificate,
            ..Delays::zero()
        },
        faults: Faults::default(),
    };
    Arc::new(LocalCloud::open(&dir.join("state"), config, Arc::new(SystemClock)).unwrap())
}

/// Plans and applies `d`; answers the plan.
async fn apply(cloud: &Arc<LocalCloud>, d: &Desired) -> converge::core::plan::Plan {
    let (_, plan) = observe_and_plan(cloud.as_ref(), d, jiff::Timestamp::now(), &BTreeMap::new())
        .await
        .unwrap();
    let opts = ApplyOptions {
        parallelism: 4,
        retry: RetryPolicy::fast(),
        wait_timeout: Duration::from_secs(30),
        poll_interval: Duration::from_millis(20),
        ..ApplyOptions::default()
    };
    let dyn_cloud: Arc<dyn Cloud> = cloud.clone();
    let report = execute(dyn_cloud, &plan, opts, Arc::new(Quiet)).await;
    assert!(report.is_success(), "{:?}", report.steps);
    plan
}

async fn observe(cloud: &LocalCloud, d: &Desired) -> Observed {
    converge::commands::observe(cloud, d).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validated_used_replaced_and_removed() {
    let t = tempfile::tempdir().unwrap();
    let cloud = open(t.path(), Duration::from_millis(300));
    let d = load(t.path(), &manifests(&["www", "cdn0"])).unwrap();
    apply(&cloud, &d).await;
    let o = observe(&cloud, &d).await;
    let [cert] = o.certificates.as_slice() else {
        panic!("one certificate: {:?}", o.certificates);
    };
    assert_eq!(cert.status, CertificateStatus::Issued);
    assert_eq!(cert.validation.len(), 2);
    let listener = &o.balancers[0].listeners[0];
    assert_eq!(listener.certificate.as_deref(), Some(cert.arn.as_str()));
    let viewer = o.distributions[0]
        .config
        .viewer_certificate
        .clone()
        .unwrap();
    assert_eq!(viewer.arn, cert.arn);
    assert_eq!(cert.in_use_by.len(), 2, "{:?}", cert.in_use_by);
    let (_, again) = observe_and_plan(cloud.as_ref(), &d, jiff::Timestamp::now(), &BTreeMap::new())
        .await
        .unwrap();
    assert!(!again.has_changes(), "{:?}", again.graph.steps());
    // A tag added by hand is removed again.
    cloud
        .act(&Op::CreateTags {
            target: converge::core::plan::TagTarget::Certificate(cert.arn.clone()),
            tags: Tags::from([("extra".to_owned(), "x".to_owned())]),
        })
        .await
        .unwrap();
    let plan = apply(&cloud, &d).await;
    assert!(
        plan.graph.steps().iter().any(|s| s.kind() == "set-tags"),
        "{:?}",
        plan.graph.steps()
    );
    let o = observe(&cloud, &d).await;
    assert!(!o.certificates[0].tags.contains_key("extra"));

    // Other domains: replaced, both users switched, the old one deleted,
    // and the validation record of the domain dropped with it.
    let other = load(t.path(), &manifests(&["www", "cdn0", "cdn1"])).unwrap();
    let plan = apply(&cloud, &other).await;
    let c = plan
        .changes
        .iter()
        .find(|c| c.key.kind == Kind::Certificate)
        .unwrap();
    assert!(matches!(c.action, ChangeAction::Replace { .. }));
    let o = observe(&cloud, &other).await;
    let [new] = o.certificates.as_slice() else {
        panic!("one certificate: {:?}", o.certificates);
    };
    assert_ne!(new.arn, cert.arn);
    assert_eq!(
        o.balancers[0].listeners[0].certificate.as_deref(),
        Some(new.arn.as_str())
    );
    let narrower = load(t.path(), &manifests(&["www", "cdn0"])).unwrap();
    apply(&cloud, &narrower).await;
    let o = observe(&cloud, &narrower).await;
    let zone = &o.dns_zones[0];
    let cnames = zone
        .records
        .iter()
        .filter(|r| r.name.ends_with("cdn1.shop.example"))
        .count();
    assert_eq!(cnames, 0, "{:?}", zone.records);

    // Destroy: users first, then the certificate, its records, the zone.
    let empty = Desired::empty(d.stack.clone(), d.region.clone());
    apply(&cloud, &empty).await;
    let o = observe(&cloud, &empty).await;
    assert!(o.certificates.is_empty(), "{:?}", o.certificates);
    assert!(o.dns_zones.is_empty(), "{:?}", o.dns_zones);
}

fn config(aliases: &[&str], viewer: Option<&str>) -> DistributionConfig {
    DistributionConfig {
        origin_domain: "shop-assets.s3.amazonaws.com".into(),
        aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
        enabled: true,
        logging: None,
        comment: "assets".into(),
        default_root_object: None,
        origin_access_control: None,
        viewer_certificate: viewer.map(|arn| ViewerCertificate {
            arn: arn.into(),
            minimum_protocol_version: "TLSv1.2_2021".into(),
        }),
    }
}

#[track_caller]
fn refused(r: Result<Outcome, converge::cloud::CloudError>, kind: ErrorKind, code: &str) {
    let e = r.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (kind, code), "{e}");
}

#[tokio::test]
async fn the_local_cloud_refuses_what_aws_refuses() {
    let t = tempfile::tempdir().unwrap();
    let c = open(t.path(), Duration::ZERO);
    c.act(&Op::CreateBucket {
        name: "shop-assets".into(),
        tags: Tags::new(),
    })
    .await
    .unwrap();
    c.act(&Op::SetBucketPublicRead {
        name: "shop-assets".into(),
        public_read: true,
    })
    .await
    .unwrap();
    let create = |config: DistributionConfig, r: &str| Op::CreateDistribution {
        caller_reference: r.into(),
        config,
        tags: Tags::new(),
    };
    // Aliases without a certificate, or with one that does not cover them.
    refused(
        c.act(&create(config(&["cdn0.shop.example"], None), "a"))
            .await,
        ErrorKind::Invalid,
        "InvalidViewerCertificate",
    );
    let www = c.add_certificate(&["www.shop.example".into()]).unwrap();
    refused(
        c.act(&create(config(&["cdn0.shop.example"], Some(&www)), "b"))
            .await,
        ErrorKind::Invalid,
        "InvalidViewerCertificate",
    );
    // A certificate outside us-east-1.
    let abroad = Op::RequestCertificate {
        region: "eu-west-1".into(),
        domains: vec!["*.shop.example".into()],
        token: "abroad".into(),
        tags: Tags::new(),
    };
    let Outcome::Certificate(eu) = c.act(&abroad).await.unwrap() else {
        panic!("no certificate");
    };
    refused(
        c.act(&create(config(&["cdn0.shop.example"], Some(&eu)), "c"))
            .await,
        ErrorKind::Invalid,
        "InvalidViewerCertificate",
    );
    // A certificate requested with DNS validation stays pending without
    // its records: no listener takes it.
    let pending = Op::RequestCertificate {
        region: "us-east-1".into(),
        domains: vec!["*.shop.example".into()],
        token: "pending".into(),
        tags: Tags::new(),
    };
    let Outcome::Certificate(p) = c.act(&pending).await.unwrap() else {
        panic!("no certificate");
    };
    assert_eq!(
        c.act(&pending).await.unwrap(),
        Outcome::Certificate(p.clone())
    );
    let seen = c.certificate("us-east-1", &p).await.unwrap().unwrap();
    assert_eq!(seen.status, CertificateStatus::PendingValidation);
    let balancer = Op::CreateBalancer {
        name: "web".parse().unwrap(),
        scheme: Default::default(),
        zones: vec!["us-east-1a".parse().unwrap()],
        subnets: Vec::new(),
        groups: Vec::new(),
        listeners: vec![Listener {
            port: 443,
            instance_port: 80,
            protocol: ListenerProtocol::Https,
            certificate: Some(p.clone()),
        }],
        tags: Tags::new(),
    };
    refused(
        c.act(&balancer).await,
        ErrorKind::Invalid,
        "UnsupportedCertificate",
    );
    // A certificate in use cannot be deleted.
    let wild = c.add_certificate(&["*.shop.example".into()]).unwrap();
    c.act(&create(config(&["cdn0.shop.example"], Some(&wild)), "d"))
        .await
        .unwrap();
    refused(
        c.act(&Op::DeleteCertificate {
            region: "us-east-1".into(),
            arn: wild.clone(),
        })
        .await,
        ErrorKind::InvalidState,
        "ResourceInUseException",
    );
    c.act(&Op::DeleteCertificate {
        region: "us-east-1".into(),
        arn: www,
    })
    .await
    .unwrap();
}

#[test]
fn validation_refuses_before_any_call() {
    let t = tempfile::tempdir().unwrap();
    let base = manifests(&["www", "cdn0"]);
    let cases = [
        (
            base.replace("  certificate: Certificate/www\n", ""),
            "spec.certificate: a Cdn with aliases needs a certificate",
        ),
        (
            base.replace(
                "aliases: [cdn0.shop.example]",
                "aliases: [cdn9.shop.example]",
            ),
            "spec.aliases[0]: alias cdn9.shop.example is not covered by Certificate/www",
        ),
        (
            base.replace(
                "  zone: main\n---\nkind: SecurityGroup",
                "  zone: main\n  region: eu-west-1\n---\nkind: SecurityGroup",
            ),
            "Certificate/www is in eu-west-1; a Cdn's certificate must be in us-east-1",
        ),
        (
            base.replace(
                "certificate: Certificate/www}}",
                "certificate: Certificate/nope}}",
            )
            .replace(
                "certificate: Certificate/www}",
                "certificate: Certificate/nope}",
            ),
            "Certificate/nope does not exist",
        ),
        (
            base.replace("domains: [www.shop.example", "domains: [www.other.example"),
            "www.other.example is not inside zone shop.example",
        ),
    ];
    for (text, expected) in cases {
        let e = load(t.path(), &text).unwrap_err();
        assert!(e.contains(expected), "expected {expected:?} in:\n{e}");
        assert!(e.contains("stack.yaml"), "names the file: {e}");
    }
}

/// A record of the validation record's name that converge did not write,
/// with another value, is never overwritten: the validation fails saying
/// so, and the record is left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_record_in_the_way_of_validation_is_left_alone() {
    use converge::core::route53::RecordType;
    let t = tempfile::tempdir().unwrap();
    let cloud = open(t.path(), Duration::ZERO);
    let zone = cloud.add_zone("shop.example").unwrap();
    // ACM names the same record for every certificate of a domain: learn
    // it from a certificate requested outside the stack.
    let probe = Op::RequestCertificate {
        region: "us-east-1".into(),
        domains: vec!["www.shop.example".into()],
        token: "probe".into(),
        tags: Tags::new(),
    };
    let Outcome::Certificate(arn) = cloud.act(&probe).await.unwrap() else {
        panic!("no certificate");
    };
    let c = cloud.certificate("us-east-1", &arn).await.unwrap().unwrap();
    let name = c.validation[0].name.clone();
    cloud
        .add_record(
            &zone,
            &name,
            RecordType::Cname,
            &["elsewhere.example.org".into()],
            300,
        )
        .unwrap();
    let text = "kind: Stack
name: shop
spec:
  region: us-east-1
---
kind: Certificate
name: www
spec:
  domains: [www.shop.example]
  zone: shop.example
";
    let d = load(t.path(), text).unwrap();
    let (_, plan) = observe_and_plan(cloud.as_ref(), &d, jiff::Timestamp::now(), &BTreeMap::new())
        .await
        .unwrap();
    let opts = ApplyOptions {
        retry: RetryPolicy::fast(),
        wait_timeout: Duration::from_secs(10),
        poll_interval: Duration::from_millis(20),
        ..ApplyOptions::default()
    };
    let dyn_cloud: Arc<dyn Cloud> = cloud.clone();
    let report = execute(dyn_cloud, &plan, opts, Arc::new(Quiet)).await;
    assert!(!report.is_success());
    let failed = format!("{:?}", report.steps);
    assert!(failed.contains("is not converge's"), "{failed}");
    let o = observe(&cloud, &d).await;
    let held = o.dns_zones[0].record(&name, RecordType::Cname).unwrap();
    assert_eq!(held.values, vec!["elsewhere.example.org".to_owned()]);
}
