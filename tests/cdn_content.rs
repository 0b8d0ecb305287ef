//! A Cdn in front of a private bucket with content, on the local cloud
//! (issue 11 B): the origin access control and the bucket-policy
//! statement (another statement kept byte for byte), content added,
//! changed, deleted and excluded with an invalidation that completes, and
//! what the local cloud refuses as AWS would: a private origin without
//! origin access, a policy that is not JSON, an origin access control's
//! name taken, one deleted while in use.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use converge::apply::{ApplyOptions, Quiet, RetryPolicy, execute};
use converge::cloud::local::{Delays, Faults, LocalCloud, LocalConfig};
use converge::cloud::{Cloud, ErrorKind, Op};
use converge::commands::observe_and_plan;
use converge::core::desired::Desired;
use converge::core::observed::{DistributionConfig, Observed};
use converge::core::s3::oac_settings;
use converge::manifest;
use converge::sys::SystemClock;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const STACK: &str = "kind: Stack
name: shop
spec:
  region: us-east-1
---
kind: Bucket
name: shop-assets
spec:
  content:
    dir: public
    cacheControl: max-age=300
    exclude: ['*.map']
---
kind: Cdn
name: assets
spec:
  origin:
    bucket: shop-assets
  defaultRootObject: index.html
";

const OTHER: &str = r#"{"Sid":"Logs","Effect":"Allow","Principal":{"Service":"logging.s3.amazonaws.com"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::shop-assets/logs/*"}"#;

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn options() -> ApplyOptions {
    ApplyOptions {
        parallelism: 4,
        retry: RetryPolicy::fast(),
        wait_timeout: Duration::from_secs(30),
        poll_interval: Duration::from_millis(20),
        ..ApplyOptions::default()
    }
}

fn load(dir: &Path) -> Desired {
    manifest::load(&dir.join("s"), &|_| None).unwrap().desired
}

/// Plans and applies; answers the plan's step descriptions.
async fn apply(cloud: &Arc<LocalCloud>, dir: &Path) -> Vec<String> {
    let d = load(dir);
    let (_, plan) = observe_and_plan(cloud.as_ref(), &d, jiff::Timestamp::now(), &BTreeMap::new())
        .await
        .unwrap();
    let dyn_cloud: Arc<dyn Cloud> = cloud.clone();
    let report = execute(dyn_cloud, &plan, options(), Arc::new(Quiet)).await;
    assert!(report.is_success(), "{:?}", report.steps);
    plan.graph.steps().iter().map(|s| s.describe()).collect()
}

async fn observe(cloud: &LocalCloud, dir: &Path) -> Observed {
    converge::commands::observe(cloud, &load(dir))
        .await
        .unwrap()
}

/// The local cloud's world, as its state file holds it.
fn world(cloud: &LocalCloud) -> serde_json::Value {
    let text = std::fs::read_to_string(cloud.state_file().unwrap()).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn policy(cloud: &LocalCloud) -> String {
    world(cloud)["buckets"]["shop-assets"]["policy"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn open(dir: &Path) -> Arc<LocalCloud> {
    let delays = Delays {
        invalidation: Duration::from_millis(300),
        ..Delays::zero()
    };
    let config = LocalConfig {
        region: "us-east-1".into(),
        delays,
        faults: Faults::default(),
    };
    Arc::new(LocalCloud::open(&dir.join("state"), config, Arc::new(SystemClock)).unwrap())
}

#[tokio::test]
async fn a_private_bucket_is_read_through_origin_access_and_its_content_synced() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "s/stack.yaml", STACK);
    write(dir, "s/public/index.html", "<h1>hi</h1>");
    write(dir, "s/public/css/site.css", "body{}");
    write(dir, "s/public/robots.txt", "User-agent: *");
    let cloud = open(dir);

    let steps = apply(&cloud, dir).await;
    assert!(
        steps
            .iter()
            .any(|s| s.starts_with("create origin access control converge-shop-assets")),
        "{steps:?}"
    );
    let o = observe(&cloud, dir).await;
    let dist = &o.distributions[0];
    assert_eq!(
        dist.config.origin_access_control.as_deref(),
        Some("converge-shop-assets")
    );
    assert_eq!(o.origin_access.len(), 1);
    assert_eq!(o.origin_access[0].settings, oac_settings("shop", "assets"));
    let b = &o.buckets[0];
    assert_eq!(
        b.cdn_grants.get("converge-cdn-assets"),
        Some(&Some(dist.arn.clone()))
    );
    let objects = b.objects.as_ref().unwrap();
    let keys: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["css/site.css", "index.html", "robots.txt"]);
    let css = objects[0].metadata.as_ref().unwrap();
    assert_eq!(css.content_type, "text/css; charset=utf-8");
    assert_eq!(css.cache_control.as_deref(), Some("max-age=300"));
    // A new distribution has nothing cached: no invalidation.
    assert!(
        world(&cloud)["invalidations"]
            .as_object()
            .unwrap()
            .is_empty()
    );
    assert!(apply(&cloud, dir).await.is_empty(), "converged");

    // Someone else's statement replaces the policy: converge writes its
    // own back and keeps the other byte for byte.
    cloud
        .act(&Op::PutBucketPolicy {
            bucket: "shop-assets".into(),
            policy: format!(r#"{{"Version":"2012-10-17","Statement":[{OTHER}]}}"#),
        })
        .await
        .unwrap();
    let steps = apply(&cloud, dir).await;
    assert_eq!(steps, ["let Cdn/assets read bucket shop-assets"]);
    let p = policy(&cloud);
    assert!(p.contains(OTHER), "{p}");
    assert!(p.contains("converge-cdn-assets"), "{p}");

    // Content: one changed, one deleted, one added, one excluded.
    write(dir, "s/public/css/site.css", "body{color:red}");
    std::fs::remove_file(dir.join("s/public/robots.txt")).unwrap();
    write(dir, "s/public/new.txt", "new");
    write(dir, "s/public/app.js.map", "{}");
    let steps = apply(&cloud, dir).await;
    assert!(
        steps.contains(&"upload 2 objects to Bucket/shop-assets: css/site.css, new.txt".to_owned()),
        "{steps:?}"
    );
    assert!(
        steps.contains(&"delete 1 object from Bucket/shop-assets: robots.txt".to_owned()),
        "{steps:?}"
    );
    assert!(
        steps.contains(
            &"invalidate 2 paths of Cdn/assets and wait: /css/site.css, /robots.txt".to_owned()
        ),
        "{steps:?}"
    );
    let w = world(&cloud);
    let invs = w["invalidations"].as_object().unwrap();
    assert_eq!(invs.len(), 1);
    let inv = invs.values().next().unwrap();
    assert_eq!(
        inv["paths"],
        serde_json::json!(["/css/site.css", "/robots.txt"])
    );
    // The apply waited until it completed.
    let id = inv["id"].as_str().unwrap();
    assert!(cloud.invalidation_completed(&dist.id, id).await.unwrap());
    let objects = w["buckets"]["shop-assets"]["objects"].as_object().unwrap();
    let keys: Vec<&String> = objects.keys().collect();
    assert_eq!(keys, ["css/site.css", "index.html", "new.txt"]);
    assert!(apply(&cloud, dir).await.is_empty(), "converged");

    // Without the Cdn: its statement and its control go, the other
    // statement stays.
    let text = STACK.split("---\nkind: Cdn").next().unwrap().to_owned();
    write(dir, "s/stack.yaml", &text);
    apply(&cloud, dir).await;
    let p = policy(&cloud);
    assert!(
        p.contains(OTHER) && !p.contains("converge-cdn-assets"),
        "{p}"
    );
    assert!(observe(&cloud, dir).await.origin_access.is_empty());
}

fn private_origin(bucket: &str, oac: Option<&str>) -> DistributionConfig {
    DistributionConfig {
        origin_domain: format!("{bucket}.s3.amazonaws.com"),
        aliases: Vec::new(),
        enabled: true,
        logging: None,
        comment: String::new(),
        default_root_object: None,
        origin_access_control: oac.map(str::to_owned),
        viewer_certificate: None,
    }
}

#[tokio::test]
async fn the_local_cloud_refuses_what_aws_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let cloud = open(tmp.path());
    cloud
        .act(&Op::CreateBucket {
            name: "shop-assets".into(),
            tags: Default::default(),
        })
        .await
        .unwrap();
    // A private origin without origin access: S3 would answer 403.
    let e = cloud
        .act(&Op::CreateDistribution {
            caller_reference: "r1".into(),
            config: private_origin("shop-assets", None),
            tags: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (ErrorKind::AccessDenied, "AccessDenied"),
        "{e}"
    );
    // A control that does not exist.
    let e = cloud
        .act(&Op::CreateDistribution {
            caller_reference: "r1".into(),
            config: private_origin("shop-assets", Some("nope")),
            tags: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, "NoSuchOriginAccessControl");
    // A policy that is not JSON.
    let e = cloud
        .act(&Op::PutBucketPolicy {
            bucket: "shop-assets".into(),
            policy: "{not json".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, "MalformedPolicy");
    // A control's name is unique.
    let create = Op::CreateOriginAccessControl {
        name: "converge-shop-assets".into(),
        settings: oac_settings("shop", "assets"),
    };
    cloud.act(&create).await.unwrap();
    let e = cloud.act(&create).await.unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (ErrorKind::AlreadyExists, "OriginAccessControlAlreadyExists")
    );
    // In use, it is not deleted.
    cloud
        .act(&Op::CreateDistribution {
            caller_reference: "r2".into(),
            config: private_origin("shop-assets", Some("converge-shop-assets")),
            tags: Default::default(),
        })
        .await
        .unwrap();
    let w = world(&cloud);
    let id = w["origin_access_controls"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let e = cloud
        .act(&Op::DeleteOriginAccessControl { id })
        .await
        .unwrap_err();
    assert_eq!(e.code, "OriginAccessControlInUse");
}
