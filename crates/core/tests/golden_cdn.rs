//! Golden plans of a Cdn's origin access and its bucket's content
//! (issue 11 B): the origin access control and the bucket-policy
//! statement on create and when they drift, content added, changed and
//! deleted with the invalidation that follows, and the plan's cut-off
//! after 20 object names.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use common::*;
use converge_core::desired::{BucketContent, ContentFile, Desired};
use converge_core::observed::{ObjectMetadata, Observed, ObservedObject};
use converge_core::plan::{Plan, Step};
use converge_core::s3::{CONTENT_TAG, content_digest, content_type};
use insta::assert_snapshot;

fn file(key: &str, md5: &str) -> ContentFile {
    ContentFile {
        key: key.into(),
        path: format!("/srv/public/{key}"),
        md5: md5.into(),
        size: 10,
        content_type: content_type(key).into(),
    }
}

/// SmallPayroll whose assets bucket holds `files`.
fn with_content(files: Vec<ContentFile>) -> Desired {
    let mut d = smallpayroll();
    d.buckets
        .get_mut(&name("smallpayroll-assets"))
        .unwrap()
        .content = Some(BucketContent {
        prefix: String::new(),
        delete: true,
        cache_control: Some("max-age=300".into()),
        exclude: vec!["*.map".into()],
        files,
    });
    d
}

fn object(key: &str, etag: &str) -> ObservedObject {
    ObservedObject {
        key: key.into(),
        etag: etag.into(),
        size: 10,
        metadata: None,
    }
}

fn steps_of<'p>(p: &'p Plan, kind: &str) -> Vec<(usize, &'p Step)> {
    p.graph.iter().filter(|(_, s)| s.kind() == kind).collect()
}

#[test]
fn a_private_origin_gets_origin_access_and_a_statement_on_create() {
    let d = smallpayroll();
    let plan = run(&d, &empty_region(), SATURDAY_NOON);
    let oac = step(
        &plan,
        "create origin access control converge-smallpayroll-assets",
    );
    let create = step(&plan, "create Cdn/assets");
    let grant = step(&plan, "let Cdn/assets read bucket smallpayroll-assets");
    assert!(precedes(&plan, oac, create));
    assert!(precedes(&plan, create, grant));
    let Some(Step::CreateDistribution { config, .. }) = plan.graph.step(create) else {
        panic!("a create step");
    };
    assert_eq!(
        config.origin_access_control.as_deref(),
        Some("converge-smallpayroll-assets")
    );
}

#[test]
fn drifted_origin_access_and_statement_are_set_back() {
    let d = smallpayroll();
    let mut o = in_place(&d, ts(SATURDAY_NOON));
    o.origin_access[0].settings.signing_behavior = "never".into();
    bucket(&mut o, "smallpayroll-assets")
        .cdn_grants
        .insert("converge-cdn-assets".into(), None);
    // Another Cdn's statement left behind goes; other statements are not
    // converge's to read.
    bucket(&mut o, "smallpayroll-assets")
        .cdn_grants
        .insert("converge-cdn-old".into(), Some("arn:x".into()));
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("cdn_access_drift.txt", text(&plan));
    step(
        &plan,
        "set back origin access control converge-smallpayroll-assets",
    );
    step(&plan, "let Cdn/assets read bucket smallpayroll-assets");
    step(
        &plan,
        "remove the read access of Cdn/old from bucket smallpayroll-assets",
    );
}

#[test]
fn a_public_origin_needs_no_origin_access() {
    let mut d = smallpayroll();
    d.buckets
        .get_mut(&name("smallpayroll-assets"))
        .unwrap()
        .public_read = true;
    let plan = run(&d, &empty_region(), SATURDAY_NOON);
    assert!(steps_of(&plan, "create-origin-access").is_empty());
    assert!(steps_of(&plan, "grant-cdn-read").is_empty());
}

/// The bucket in place with `objects`, its headers recorded as current.
fn observed_with(d: &Desired, objects: Vec<ObservedObject>) -> Observed {
    let mut o = in_place(d, ts(SATURDAY_NOON));
    let b = bucket(&mut o, "smallpayroll-assets");
    b.objects = Some(objects);
    b.tags
        .insert(CONTENT_TAG.into(), content_digest(Some("max-age=300")));
    o
}

#[test]
fn content_added_changed_and_deleted_is_invalidated_after() {
    let d = with_content(vec![
        file("css/site.css", "c2"),
        file("index.html", "i1"),
        file("new.txt", "n1"),
    ]);
    let o = observed_with(
        &d,
        vec![
            object("css/site.css", "c1"),
            object("index.html", "i1"),
            object("old.txt", "o1"),
            // Excluded: neither uploaded nor deleted.
            object("app.js.map", "m1"),
            // A multipart upload's ETag never matches an MD5.
            object("big.bin", "abc-2"),
        ],
    );
    let mut d = d;
    d.buckets
        .get_mut(&name("smallpayroll-assets"))
        .unwrap()
        .content
        .as_mut()
        .unwrap()
        .files
        .insert(0, file("big.bin", "abc"));
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("content_sync.txt", text(&plan));
    let put = step(&plan, "upload 3 objects to Bucket/smallpayroll-assets");
    let delete = step(
        &plan,
        "delete 1 object from Bucket/smallpayroll-assets: old.txt",
    );
    let inv = step(&plan, "invalidate 3 paths of Cdn/assets");
    assert!(precedes(&plan, put, inv));
    assert!(precedes(&plan, delete, inv));
    let Some(Step::Invalidate { paths, .. }) = plan.graph.step(inv) else {
        panic!("an invalidation");
    };
    assert_eq!(paths, &["/big.bin", "/css/site.css", "/old.txt"]);
}

#[test]
fn content_in_sync_plans_nothing_and_new_headers_upload_everything() {
    let d = with_content(vec![file("index.html", "i1")]);
    let o = observed_with(&d, vec![object("index.html", "i1")]);
    assert!(!run(&d, &o, SATURDAY_NOON).has_changes());
    // A new Cache-Control: the tag no longer matches, every object goes up again.
    let mut d2 = d.clone();
    d2.buckets
        .get_mut(&name("smallpayroll-assets"))
        .unwrap()
        .content
        .as_mut()
        .unwrap()
        .cache_control = Some("max-age=60".into());
    let plan = run(&d2, &o, SATURDAY_NOON);
    step(
        &plan,
        "upload 1 object to Bucket/smallpayroll-assets: index.html",
    );
    // Headers the cloud lists (the local cloud) are compared as they are.
    let mut o2 = o.clone();
    bucket(&mut o2, "smallpayroll-assets").objects = Some(vec![ObservedObject {
        metadata: Some(ObjectMetadata {
            content_type: "text/plain".into(),
            cache_control: Some("max-age=300".into()),
        }),
        ..object("index.html", "i1")
    }]);
    let plan = run(&d, &o2, SATURDAY_NOON);
    step(
        &plan,
        "upload 1 object to Bucket/smallpayroll-assets: index.html",
    );
    // Invalidation off: the changed object is uploaded, nothing invalidated.
    let mut d3 = d.clone();
    d3.cdns.get_mut(&name("assets")).unwrap().invalidate = false;
    let plan = run(&d3, &o2, SATURDAY_NOON);
    assert!(steps_of(&plan, "invalidate").is_empty());
}

#[test]
fn many_objects_are_named_up_to_20_then_counted_and_invalidated_as_one_wildcard() {
    let files: Vec<ContentFile> = (0..25)
        .map(|i| file(&format!("f{i:02}.txt"), "new"))
        .collect();
    let d = with_content(files);
    let o = observed_with(
        &d,
        (0..25)
            .map(|i| object(&format!("f{i:02}.txt"), "old"))
            .collect(),
    );
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("content_cut_off.txt", text(&plan));
    let inv = step(&plan, "invalidate 1 path of Cdn/assets");
    let Some(Step::Invalidate { paths, .. }) = plan.graph.step(inv) else {
        panic!("an invalidation");
    };
    assert_eq!(paths, &["/*"]);
}
