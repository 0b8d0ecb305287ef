//! A Cdn in front of a private bucket with content, against moto
//! (issue 11 B): the origin access control and the bucket-policy
//! statement (another statement kept byte for byte), content added,
//! changed, deleted and excluded with an invalidation, and converge's own
//! checks of what moto does not enforce (a control's name taken, a policy
//! that is not JSON).

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use converge::apply::{ApplyOptions, Quiet, RetryPolicy, execute};
use converge::cloud::aws::{AwsCloud, AwsOptions};
use converge::cloud::{Cloud, ErrorKind, Op};
use converge::commands::observe_and_plan;
use converge::core::desired::Desired;
use converge::core::s3::oac_settings;
use converge::manifest;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const OTHER: &str = r#"{"Sid":"Logs","Effect":"Allow","Principal":{"Service":"logging.s3.amazonaws.com"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::BUCKET/logs/*"}"#;

fn stack_yaml(stack: &str, bucket: &str) -> String {
    format!(
        "kind: Stack
name: {stack}
spec:
  region: us-east-1
---
kind: Bucket
name: {bucket}
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
    bucket: {bucket}
"
    )
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn load(dir: &Path) -> Desired {
    manifest::load(&dir.join("s"), &|_| None).unwrap().desired
}

async fn apply(cloud: &Arc<AwsCloud>, dir: &Path) -> Vec<String> {
    let d = load(dir);
    let (_, plan) = observe_and_plan(cloud.as_ref(), &d, jiff::Timestamp::now(), &BTreeMap::new())
        .await
        .unwrap();
    let options = ApplyOptions {
        parallelism: 4,
        retry: RetryPolicy::fast(),
        wait_timeout: Duration::from_secs(60),
        poll_interval: Duration::from_millis(50),
        ..ApplyOptions::default()
    };
    let dyn_cloud: Arc<dyn Cloud> = cloud.clone();
    let report = execute(dyn_cloud, &plan, options, Arc::new(Quiet)).await;
    assert!(report.is_success(), "{:?}", report.steps);
    plan.graph.steps().iter().map(|s| s.describe()).collect()
}

/// One plain HTTP request to moto's S3 (path style, moto's default
/// account, no signature: moto does not check it): the response's head
/// and body.
fn s3_raw(endpoint: &str, method: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let host = endpoint.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(host).unwrap();
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test]
async fn origin_access_statement_and_content_on_moto() {
    let endpoint = moto_or_skip!();
    let cloud = Arc::new(
        AwsCloud::connect(
            AwsOptions {
                endpoint_url: Some(endpoint.clone()),
                // moto's default account: the plain S3 client below sees it.
                moto_account: Some("123456789012".into()),
                initial_backoff: Some(Duration::from_millis(5)),
                ..AwsOptions::default()
            },
            "us-east-1",
        )
        .await
        .unwrap(),
    );
    let n = fastrand::u32(..);
    let (stack, bucket) = (format!("cdn-{n}"), format!("cdn-assets-{n}"));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "s/stack.yaml", &stack_yaml(&stack, &bucket));
    write(dir, "s/public/index.html", "<h1>hi</h1>");
    write(dir, "s/public/css/site.css", "body{}");
    write(dir, "s/public/robots.txt", "User-agent: *");

    let steps = apply(&cloud, dir).await;
    let oac = format!("converge-{stack}-assets");
    assert!(
        steps.contains(&format!("create origin access control {oac} of Cdn/assets")),
        "{steps:?}"
    );
    let d = load(dir);
    let o = converge::commands::observe(cloud.as_ref(), &d)
        .await
        .unwrap();
    let dist = &o.distributions[0];
    assert_eq!(
        dist.config.origin_access_control.as_deref(),
        Some(oac.as_str())
    );
    assert_eq!(o.origin_access.len(), 1);
    assert_eq!(
        o.buckets[0].cdn_grants.get("converge-cdn-assets"),
        Some(&Some(dist.arn.clone()))
    );
    let objects = o.buckets[0].objects.as_ref().unwrap();
    assert_eq!(objects.len(), 3);
    let head = s3_raw(&endpoint, "HEAD", &format!("/{bucket}/css/site.css")).to_ascii_lowercase();
    assert!(
        head.contains("content-type: text/css; charset=utf-8"),
        "{head}"
    );
    assert!(head.contains("cache-control: max-age=300"), "{head}");
    assert!(apply(&cloud, dir).await.is_empty(), "converged");

    // Another statement: kept byte for byte when converge writes its own.
    let other = OTHER.replace("BUCKET", &bucket);
    cloud
        .act(&Op::PutBucketPolicy {
            bucket: bucket.parse().unwrap(),
            policy: format!(r#"{{"Version":"2012-10-17","Statement":[{other}]}}"#),
        })
        .await
        .unwrap();
    assert_eq!(
        apply(&cloud, dir).await,
        [format!("let Cdn/assets read bucket {bucket}")]
    );
    let p = s3_raw(&endpoint, "GET", &format!("/{bucket}?policy"));
    assert!(
        p.contains(&other) && p.contains("converge-cdn-assets"),
        "{p}"
    );

    // Content: changed, deleted, added, excluded.
    write(dir, "s/public/css/site.css", "body{color:red}");
    std::fs::remove_file(dir.join("s/public/robots.txt")).unwrap();
    write(dir, "s/public/new.txt", "new");
    write(dir, "s/public/app.js.map", "{}");
    let steps = apply(&cloud, dir).await;
    assert!(
        steps.contains(&format!(
            "upload 2 objects to Bucket/{bucket}: css/site.css, new.txt"
        )),
        "{steps:?}"
    );
    assert!(
        steps.contains(&format!("delete 1 object from Bucket/{bucket}: robots.txt")),
        "{steps:?}"
    );
    assert!(
        steps.contains(
            &"invalidate 2 paths of Cdn/assets and wait: /css/site.css, /robots.txt".to_owned()
        ),
        "{steps:?}"
    );
    let keys: Vec<String> = cloud
        .bucket_objects(&bucket.parse().unwrap(), "")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(keys, ["css/site.css", "index.html", "new.txt"]);
    assert!(apply(&cloud, dir).await.is_empty(), "converged");

    // converge's own checks of what moto accepts.
    let e = cloud
        .act(&Op::CreateOriginAccessControl {
            name: oac.clone(),
            settings: oac_settings(&stack, "assets"),
        })
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::AlreadyExists, "{e}");
    let e = cloud
        .act(&Op::PutBucketPolicy {
            bucket: bucket.parse().unwrap(),
            policy: "{not json".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, "MalformedPolicy");
    let e = cloud
        .act(&Op::DeleteOriginAccessControl {
            id: o.origin_access[0].id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, "OriginAccessControlInUse");
}
