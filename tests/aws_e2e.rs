//! The AWS backend end to end, through the real SDK over HTTP against a
//! moto server (`source scripts/moto.sh start` sets
//! `CONVERGE_TEST_AWS_ENDPOINT`; without it every test here says it was
//! skipped and passes, unless `CONVERGE_REQUIRE_MOTO` is set, as
//! `scripts/test.sh` does, and then it fails). Each test runs in an AWS account of its own on the
//! shared server (moto's `x-moto-account-id` header) with a stack and
//! bucket name of its own, so tests run in parallel without seeing each
//! other.
//!
//! Where moto is simply incomplete the assertions follow the real API's
//! semantics and say so: instances are `running` at once, balancer health
//! is `InService` for every running instance, distributions deploy on the
//! next read, and client tokens are not enforced (converge's idempotency
//! on re-runs rests on ownership tags set at creation, which moto keeps).

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use crate::support::moto;

use crate::support::example;

use converge::apply::{ApplyOptions, Quiet, Report, RetryPolicy, StepResult, execute};
use converge::cloud::aws::{AwsCloud, AwsOptions, RetryMode};
use converge::cloud::{Cloud, ErrorKind, Op, Outcome};
use converge::commands::observe_and_plan;
use converge::core::desired::{
    DeletionPolicy, Desired, HttpTokens, ImageSource, MetadataOptions, Network, NetworkVpc,
    NewSubnet, RootVolume, Tags, VolumeType,
};
use converge::core::ids::{
    GroupId, ImageId, InstanceId, InstanceProfile, Kind, ParameterName, ResourceKey, ResourceName,
    SubnetId, Zone, tags,
};
use converge::core::observed::{InstanceState, Observed, Owner, VolumeState};
use converge::core::plan::{ChangeAction, Note, Plan, Step, StepGraph};
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Monday 10:00 in Toronto: the app fleet's weekday schedule gives 3.
const AT: &str = "2026-03-09T14:00:00Z";

fn at() -> Timestamp {
    AT.parse().unwrap()
}

struct Env {
    cloud: Arc<AwsCloud>,
    desired: Desired,
    /// The moto server.
    endpoint: String,
    /// The test's account on it.
    account: String,
}

/// A fresh account on the moto server and the SmallPayroll stack renamed
/// for this test.
async fn env(endpoint: String, test: &str, throttle: Option<f64>) -> Env {
    let account = format!("{:012}", fastrand::u64(100_000_000_000..999_999_999_999));
    let cloud = AwsCloud::connect(
        AwsOptions {
            region: None,
            endpoint_url: Some(endpoint.clone()),
            moto_account: Some(account.clone()),
            inject_throttling: throttle,
            // With 30% of requests throttled, about 3% of calls still fail
            // after the SDK's 3 attempts and are left to converge's own
            // retries (the executor's, and whole observations).
            max_attempts: Some(3),
            // The adaptive rate limiter starts cold and would crawl here.
            retry_mode: if throttle.is_some() {
                RetryMode::Standard
            } else {
                RetryMode::Adaptive
            },
            initial_backoff: Some(Duration::from_millis(5)),
            ..AwsOptions::default()
        },
        "us-east-1",
    )
    .await
    .unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/smallpayroll");
    let mut desired = converge::manifest::load(&dir, &|_| None).unwrap().desired;
    let suffix = fastrand::u32(..).to_string();
    desired.stack = ResourceName::new(format!("{test}-{suffix}")).unwrap();
    example::rename_assets_bucket(&mut desired, &format!("sp-assets-{test}-{suffix}"));
    Env {
        cloud: Arc::new(cloud),
        desired,
        endpoint,
        account,
    }
}

fn options() -> ApplyOptions {
    ApplyOptions {
        parallelism: 10,
        retry: RetryPolicy::fast(),
        wait_timeout: Duration::from_secs(60),
        poll_interval: Duration::from_millis(50),
        ..ApplyOptions::default()
    }
}

async fn plan_for(env: &Env, desired: &Desired) -> (Observed, Plan) {
    observe_and_plan(&*env.cloud, desired, at(), &BTreeMap::new())
        .await
        .unwrap()
}

fn failures(r: &Report) -> String {
    r.steps
        .values()
        .filter(|(_, res)| !matches!(res, StepResult::Done))
        .map(|(what, res)| format!("{what}: {res:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn apply(env: &Env, plan: &Plan) -> Report {
    let r = execute(env.cloud.clone(), plan, options(), Arc::new(Quiet)).await;
    assert!(r.is_success(), "apply failed:\n{}", failures(&r));
    r
}

fn steps(plan: &Plan) -> String {
    plan.graph
        .steps()
        .iter()
        .map(|s| s.describe())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Plans and applies until the plan is empty (once, normally), and checks
/// that a second plan has nothing to do.
async fn converge(env: &Env, desired: &Desired) -> Observed {
    let (_, plan) = plan_for(env, desired).await;
    apply(env, &plan).await;
    let (observed, again) = plan_for(env, desired).await;
    assert!(
        !again.has_changes(),
        "a plan right after apply still has steps:\n{}",
        steps(&again)
    );
    observed
}

fn live(o: &Observed, fleet: &str) -> Vec<InstanceId> {
    o.instances
        .iter()
        .filter(|i| i.owner.name.as_str() == fleet && i.state.is_live())
        .map(|i| i.id.clone())
        .collect()
}

/// The whole SmallPayroll stack is there, once.
fn assert_smallpayroll(o: &Observed) {
    assert_eq!(o.key_pairs.len(), 1, "{:?}", o.key_pairs);
    assert_eq!(o.security_groups.len(), 3, "db, app and the balancer's");
    assert_eq!(live(o, "db").len(), 1);
    assert_eq!(live(o, "app").len(), 3);
    assert_eq!(live(o, "job").len(), 0);
    assert_eq!(o.volumes.len(), 1);
    let db = &live(o, "db")[0];
    let v = &o.volumes[0];
    assert_eq!(v.state, VolumeState::InUse);
    let a = v.attachment.as_ref().unwrap();
    assert_eq!((&a.instance, a.device.as_str()), (db, "/dev/sdj"));
    assert_eq!(o.balancers.len(), 1);
    let mut members: Vec<InstanceId> = o.balancers[0]
        .members
        .iter()
        .map(|m| m.instance.clone())
        .collect();
    members.sort();
    let mut app = live(o, "app");
    app.sort();
    assert_eq!(members, app, "balancer members are the app instances");
    assert_eq!(o.buckets.len(), 1);
    assert_eq!(o.distributions.len(), 1);
    let d = &o.distributions[0];
    assert_eq!(d.config.aliases.len(), 4);
    assert_eq!(d.config.comment, "SmallPayroll static assets");
}

fn total_calls(cloud: &AwsCloud) -> u64 {
    cloud.stats().iter().map(|c| c.calls).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smallpayroll_applies_and_a_second_plan_has_no_changes() {
    let e = env(moto_or_skip!(), "apply", None).await;
    let (_, plan) = plan_for(&e, &e.desired).await;
    assert!(plan.has_changes());
    // Launches are batched per fleet and zone.
    let launches: Vec<_> = plan
        .graph
        .steps()
        .iter()
        .filter_map(|s| match s {
            Step::Launch {
                fleet, zone, count, ..
            } => Some((fleet.to_string(), zone.to_string(), *count)),
            _ => None,
        })
        .collect();
    assert_eq!(
        launches.len(),
        3,
        "db in one zone, app in two: {launches:?}"
    );
    e.cloud.reset_stats();
    apply(&e, &plan).await;
    let runs: u64 = e
        .cloud
        .stats()
        .iter()
        .filter(|c| c.operation == "RunInstances")
        .map(|c| c.calls)
        .sum();
    assert_eq!(runs, 3, "one RunInstances per fleet and zone");

    e.cloud.reset_stats();
    let (observed, again) = plan_for(&e, &e.desired).await;
    assert!(!again.has_changes(), "{}", steps(&again));
    assert!(
        again
            .changes
            .iter()
            .all(|c| c.action == ChangeAction::NoChange)
    );
    let calls = e.cloud.stats();
    eprintln!(
        "no-change plan of SmallPayroll: {} calls: {calls:?}",
        total_calls(&e.cloud)
    );
    // Constant per kind: 5 EC2 describes and the volumes' modifications, 5
    // network ones (the default VPC, the stack's VPCs, subnets, gateways and
    // route tables), the classic ELB list (no classic balancer: no tags),
    // elbv2's balancers, target groups, tags, and the application
    // balancer's listeners, its group's targets and attributes, S3 list +
    // tags + policy, CloudFront list + get + tags, Route 53 zones + their
    // tags + the stack zone's record sets, CloudFront's origin access
    // controls and the content bucket's ListObjectsV2 page (issue 11 B),
    // ACM's ListCertificates and the one certificate's DescribeCertificate
    // and ListTagsForCertificate (issue 11 A): 32.
    assert!(total_calls(&e.cloud) <= 32, "{calls:?}");
    assert_smallpayroll(&observed);
    // Every instance carries the ownership tags and the launch-spec hash.
    for i in &observed.instances {
        assert!(i.spec_hash.is_some());
        assert_eq!(i.owner.stack, e.desired.stack);
    }
    let outputs = converge::commands::outputs(&e.desired, &observed);
    let names: Vec<&str> = outputs.iter().map(|(k, _)| k.as_str()).collect();
    assert!(names.contains(&"Balancer/web.dnsName"), "{names:?}");
    assert!(names.contains(&"Cdn/assets.domainName"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_instances_are_replaced_and_registered() {
    let e = env(moto_or_skip!(), "lost", None).await;
    let before = converge(&e, &e.desired).await;
    let app = live(&before, "app");
    let db = live(&before, "db");
    // Lost out of band: an app server and the database server.
    e.cloud
        .act(&Op::TerminateInstances {
            ids: vec![app[0].clone(), db[0].clone()],
        })
        .await
        .unwrap();
    let (_, plan) = plan_for(&e, &e.desired).await;
    let launches = plan
        .graph
        .steps()
        .iter()
        .filter(|s| matches!(s, Step::Launch { .. }))
        .count();
    // One for each lost server: the db comes back at its declared
    // address, so the app servers that read it are not rolled.
    assert_eq!(launches, 2, "replacements planned:\n{}", steps(&plan));
    // A fleet whose every instance was lost is healed, not created: EC2
    // still lists the terminated server (`Fleet/db: 0 → 1 instance`), as
    // the local cloud's plan of the same loss says.
    let db_change = plan
        .changes
        .iter()
        .find(|c| c.key == ResourceKey::new(Kind::Fleet, ResourceName::from("db")))
        .unwrap();
    assert_eq!(db_change.action, ChangeAction::Update, "{db_change:#?}");
    apply(&e, &plan).await;
    let (after, again) = plan_for(&e, &e.desired).await;
    assert!(!again.has_changes(), "{}", steps(&again));
    assert_smallpayroll(&after);
    assert!(!live(&after, "app").contains(&app[0]));
    let new_db = &live(&after, "db")[0];
    assert_ne!(new_db, &db[0]);
    let at = after.instances.iter().find(|i| i.id == *new_db).unwrap();
    assert_eq!(at.private_ip, "10.0.10.10".parse().ok(), "spec.privateIps");
    for kept in &app[1..] {
        assert!(live(&after, "app").contains(kept), "{kept} was kept");
    }
    // The volume followed the database to its new server.
    assert_eq!(
        &after.volumes[0].attachment.as_ref().unwrap().instance,
        new_db
    );
    assert!(
        !after.balancers[0]
            .members
            .iter()
            .any(|m| m.instance == app[0]),
        "the lost instance is no longer a member"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_removed_from_the_manifests_is_kept() {
    let mut e = env(moto_or_skip!(), "keep", None).await;
    let pgdata = ResourceName::from("pgdata");
    e.desired.volumes.get_mut(&pgdata).unwrap().deletion_policy = DeletionPolicy::Retain;
    let before = converge(&e, &e.desired).await;
    let volume = before.volumes[0].id.clone();
    let mut without = e.desired.clone();
    without.volumes.remove(&pgdata);
    let (_, plan) = plan_for(&e, &without).await;
    let change = plan
        .changes
        .iter()
        .find(|c| c.key.kind == Kind::Volume)
        .unwrap();
    assert!(
        matches!(change.action, ChangeAction::DeleteBlocked { .. }),
        "{:?}",
        change.action
    );
    assert!(
        !plan
            .graph
            .steps()
            .iter()
            .any(|s| matches!(s, Step::DeleteVolume { .. })),
        "{}",
        steps(&plan)
    );
    apply(&e, &plan).await;
    let (after, _) = plan_for(&e, &without).await;
    assert!(
        after.volumes.iter().any(|v| v.id == volume),
        "the volume is kept"
    );
    e.desired = without;
}

/// The stack with only its volume, unattached: plans that depend on
/// nothing but the volume, at any moment (no schedules).
fn volume_only(d: &Desired) -> Desired {
    let mut d = d.clone();
    d.fleets.clear();
    d.balancers.clear();
    d.cdns.clear();
    d.buckets.clear();
    d.key_pairs.clear();
    d.dns_records.clear();
    d.dns_zones.clear();
    d.certificates.clear();
    d.security_groups.clear();
    for v in d.volumes.values_mut() {
        v.attach = None;
        v.snapshots = None;
    }
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_gp3_volume_grows_and_gets_more_iops_in_place() {
    use converge::core::desired::Encryption;
    use converge::core::ebs::KmsKey;
    use converge::core::observed::ModificationState;
    use converge::core::plan::Note;
    let e = env(moto_or_skip!(), "ebs", None).await;
    let pgdata = ResourceName::from("pgdata");
    let mut d = volume_only(&e.desired);
    let v = d.volumes.get_mut(&pgdata).unwrap();
    v.iops = Some(4000);
    v.throughput = Some(200);
    v.encryption = Encryption::Encrypted {
        key: Some(KmsKey::parse("alias/pgdata").unwrap()),
    };
    // moto's modifications start at its own clock: these plans are made
    // at the real time, which schedules no longer matter for.
    let now = Timestamp::now();
    let plan_at = |d: Desired, t: Timestamp| {
        let cloud = e.cloud.clone();
        async move {
            observe_and_plan(&*cloud, &d, t, &BTreeMap::new())
                .await
                .unwrap()
        }
    };
    let (_, plan) = plan_at(d.clone(), now).await;
    apply(&e, &plan).await;
    let (o, again) = plan_at(d.clone(), now).await;
    assert!(!again.has_changes(), "{}", steps(&again));
    let created = o.volumes[0].clone();
    assert!(created.encrypted);
    // moto reports the key as it was named (AWS reports the key's ARN;
    // converge compares with the name it tagged the volume with).
    assert_eq!(created.kms_key.as_deref(), Some("alias/pgdata"));
    assert_eq!(
        created.tags.get(tags::KMS_KEY).map(String::as_str),
        Some("alias/pgdata")
    );
    assert_eq!(
        (created.size_gib, created.iops, created.throughput),
        (20, Some(4000), Some(200))
    );
    assert!(created.modification.is_none());

    // Grown and more IOPS: one ModifyVolume, the same volume.
    let v = d.volumes.get_mut(&pgdata).unwrap();
    v.size_gib = 40;
    v.iops = Some(6000);
    let (_, plan) = plan_at(d.clone(), now).await;
    let modifies: Vec<&Step> = plan
        .graph
        .steps()
        .iter()
        .filter(|s| matches!(s, Step::ModifyVolume { .. }))
        .collect();
    assert_eq!(modifies.len(), 1, "{}", steps(&plan));
    assert_eq!(plan.graph.steps().len(), 1, "{}", steps(&plan));
    apply(&e, &plan).await;
    let (o, again) = plan_at(d.clone(), now).await;
    assert!(!again.has_changes(), "{}", steps(&again));
    let modified = &o.volumes[0];
    assert_eq!(modified.id, created.id, "modified in place");
    assert_eq!(
        (modified.size_gib, modified.iops, modified.throughput),
        (40, Some(6000), Some(200))
    );
    assert!(modified.encrypted);
    // moto completes a modification at once (AWS: modifying, optimizing,
    // completed) and reports when it started.
    let m = modified.modification.clone().unwrap();
    assert_eq!(m.state, ModificationState::Completed);

    // Another within six hours: held back, no call, until six hours after
    // the last one started (moto does not enforce the rule).
    d.volumes.get_mut(&pgdata).unwrap().size_gib = 50;
    let (_, held) = plan_at(d.clone(), m.started_at).await;
    assert!(!held.has_changes(), "{}", steps(&held));
    assert!(held.has_blocked_changes());
    let change = held
        .changes
        .iter()
        .find(|c| c.key.kind == Kind::Volume)
        .unwrap();
    assert!(
        change
            .notes
            .iter()
            .any(|n| matches!(n, Note::ModificationHeld { .. })),
        "{:?}",
        change.notes
    );
    // Seven hours on, it is planned.
    let later = m.started_at + Duration::from_secs(7 * 3600);
    let (_, plan) = plan_at(d.clone(), later).await;
    assert_eq!(plan.graph.steps().len(), 1, "{}", steps(&plan));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_removes_everything_but_what_is_retained() {
    let e = env(moto_or_skip!(), "destroy", None).await;
    let before = converge(&e, &e.desired).await;
    let empty = Desired::empty(e.desired.stack.clone(), e.desired.region.clone());
    let (_, plan) = plan_for(&e, &empty).await;
    apply(&e, &plan).await;
    let (after, again) = plan_for(&e, &empty).await;
    assert!(!again.has_changes(), "{}", steps(&again));
    assert!(after.key_pairs.is_empty());
    assert!(after.security_groups.is_empty());
    assert!(
        after
            .instances
            .iter()
            .all(|i| i.state == InstanceState::Terminated)
    );
    assert!(after.balancers.is_empty());
    assert!(after.distributions.is_empty());
    // pgdata says `snapshot`: a final snapshot, then the volume goes.
    assert!(after.volumes.is_empty());
    assert!(
        after
            .snapshots
            .iter()
            .any(|s| s.volume.as_str() == "pgdata" && s.volume_id == before.volumes[0].id),
        "{:?}",
        after.snapshots
    );
    // The bucket says `retain`.
    assert_eq!(after.buckets.len(), 1);
    assert!(
        again.changes.iter().any(|c| c.key.kind == Kind::Bucket
            && matches!(c.action, ChangeAction::DeleteBlocked { .. }))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_apply_run_again_creates_no_duplicates() {
    let mut e = env(moto_or_skip!(), "killed", None).await;
    // Without the bucket and the CDN: moto ignores the tags CreateBucket
    // carries, so a kill between it and converge's PutBucketTagging leaves
    // an untagged bucket there that the next run rightly refuses as not
    // the stack's (on AWS the tags come with the bucket; docs/aws.md).
    e.desired.buckets.clear();
    e.desired.cdns.clear();
    // And its records (cdn0 names the CDN), and the certificate validated
    // in their zone, with the HTTPS listener using it.
    e.desired.dns_records.clear();
    e.desired.dns_zones.clear();
    example::drop_certificates(&mut e.desired);
    // First run: killed after half of the steps.
    let (_, plan) = plan_for(&e, &e.desired).await;
    let k = plan.graph.len() / 2;
    let mut prefix = plan.clone();
    let (mut steps, edges) = prefix.graph.into_parts();
    steps.truncate(k);
    let edges = edges.into_iter().filter(|(a, b)| *a < k && *b < k);
    prefix.graph = StepGraph::from_parts(steps, edges);
    apply(&e, &prefix).await;
    // Second run: aborted mid-flight, wherever it is.
    let (_, plan) = plan_for(&e, &e.desired).await;
    let cloud: Arc<dyn Cloud> = e.cloud.clone();
    let _ = tokio::time::timeout(
        Duration::from_millis(300),
        execute(cloud, &plan, options(), Arc::new(Quiet)),
    )
    .await;
    // A request the aborted run had sent may still be in moto's hands.
    // moto does not enforce client tokens (docs/aws.md), so a RunInstances
    // landing after the next observation would launch twice there whatever
    // the token; a process run again after a kill starts after its last
    // request was answered, so the re-run does too.
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Third run: to the end.
    let observed = converge(&e, &e.desired).await;
    assert_eq!(live(&observed, "app").len(), 3, "{observed:?}");
    assert_eq!(live(&observed, "db").len(), 1, "{observed:?}");
    assert_eq!(observed.volumes.len(), 1);
    assert_eq!(observed.balancers.len(), 1);
    assert_eq!(observed.balancers[0].members.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_survived() {
    let e = env(moto_or_skip!(), "throttle", Some(0.3)).await;
    let observed = converge(&e, &e.desired).await;
    assert_smallpayroll(&observed);
    assert!(e.cloud.injected_throttles() > 0, "throttling was injected");
    eprintln!(
        "{} of {} requests answered with a throttling error",
        e.cloud.injected_throttles(),
        total_calls(&e.cloud)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_operation_and_carry_the_aws_code() {
    let e = env(moto_or_skip!(), "errors", None).await;
    let err = e
        .cloud
        .act(&Op::DeleteGroup {
            group: GroupId::from("sg-00000000000000000"),
        })
        .await
        .unwrap_err();
    assert_eq!(err.operation, "DeleteSecurityGroup");
    assert_eq!(err.code, "InvalidGroup.NotFound");
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(
        err.to_string()
            .starts_with("DeleteSecurityGroup failed: InvalidGroup.NotFound: ")
    );
}

fn owner_tags(stack: &ResourceName, kind: Kind, name: &str) -> Tags {
    Owner {
        stack: stack.clone(),
        kind,
        name: ResourceName::new(name).unwrap(),
    }
    .to_tags()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_without_converges_tags_are_never_adopted() {
    let e = env(moto_or_skip!(), "foreign", None).await;
    let stack = e.desired.stack.clone();
    let bucket = format!("foreign-{}", fastrand::u32(..));
    let mut team = Tags::new();
    team.insert("team".into(), "other".into());
    // Someone else's bucket and key pair, with the names converge would use.
    e.cloud
        .act(&Op::CreateBucket {
            name: bucket.parse().unwrap(),
            tags: team.clone(),
        })
        .await
        .unwrap();
    let key = format!("{stack}-main");
    let public_key = e
        .desired
        .key_pairs
        .values()
        .next()
        .unwrap()
        .public_key
        .clone();
    e.cloud
        .act(&Op::CreateKeyPair {
            name: key.parse().unwrap(),
            public_key: public_key.clone(),
            tags: team,
        })
        .await
        .unwrap();
    let err = e
        .cloud
        .act(&Op::CreateBucket {
            name: bucket.parse().unwrap(),
            tags: owner_tags(&stack, Kind::Bucket, &bucket),
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid, "{err}");
    let err = e
        .cloud
        .act(&Op::CreateKeyPair {
            name: key.parse().unwrap(),
            public_key,
            tags: owner_tags(&stack, Kind::KeyPair, "main"),
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid, "{err}");
    let observed = e.cloud.observe(&stack).await.unwrap();
    assert!(observed.buckets.is_empty() && observed.key_pairs.is_empty());
    // Tags were not touched either.
    let _ = tags::STACK;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_instance_type_replaces_instances_in_a_rolling_way() {
    let mut e = env(moto_or_skip!(), "rolling", None).await;
    let before = converge(&e, &e.desired).await;
    let old = live(&before, "app");
    let app = ResourceName::from("app");
    e.desired.fleets.get_mut(&app).unwrap().instance_type = "m1.medium".into();
    let (_, plan) = plan_for(&e, &e.desired).await;
    let change = plan
        .changes
        .iter()
        .find(|c| c.key.kind == Kind::Fleet && c.key.name == app)
        .unwrap();
    assert!(
        matches!(change.action, ChangeAction::Replace { .. }),
        "{:?}",
        change.action
    );
    apply(&e, &plan).await;
    let (after, again) = plan_for(&e, &e.desired).await;
    assert!(!again.has_changes(), "{}", steps(&again));
    assert_smallpayroll(&after);
    for i in after
        .instances
        .iter()
        .filter(|i| i.owner.name == app && i.state.is_live())
    {
        assert_eq!(i.instance_type, "m1.medium");
        assert!(!old.contains(&i.id), "{} should have been replaced", i.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_security_groups_are_applied_in_place() {
    let mut e = env(moto_or_skip!(), "groups", None).await;
    let before = converge(&e, &e.desired).await;
    let app = ResourceName::from("app");
    e.desired
        .fleets
        .get_mut(&app)
        .unwrap()
        .security_groups
        .push(ResourceName::from("db"));
    let (_, plan) = plan_for(&e, &e.desired).await;
    assert!(
        !plan
            .graph
            .steps()
            .iter()
            .any(|s| matches!(s, Step::Launch { .. } | Step::Terminate { .. })),
        "{}",
        steps(&plan)
    );
    assert!(
        plan.graph
            .steps()
            .iter()
            .any(|s| matches!(s, Step::SetInstanceGroups { .. }))
    );
    apply(&e, &plan).await;
    let (after, again) = plan_for(&e, &e.desired).await;
    assert!(!again.has_changes(), "{}", steps(&again));
    assert_eq!(
        live(&after, "app"),
        live(&before, "app"),
        "the same instances"
    );
    for i in after
        .instances
        .iter()
        .filter(|i| i.owner.name == app && i.state.is_live())
    {
        assert_eq!(i.groups.len(), 2, "{:?}", i.groups);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_access_and_distribution_settings_change_in_place() {
    let mut e = env(moto_or_skip!(), "inplace", None).await;
    let before = converge(&e, &e.desired).await;
    let bucket = e.desired.buckets.keys().next().unwrap().clone();
    e.desired.buckets.get_mut(&bucket).unwrap().public_read = true;
    let cdn = e
        .desired
        .cdns
        .get_mut(&ResourceName::from("assets"))
        .unwrap();
    cdn.aliases.truncate(2);
    cdn.comment = "assets, fewer names".into();
    cdn.default_root_object = None;
    let (_, plan) = plan_for(&e, &e.desired).await;
    assert!(plan.graph.steps().iter().any(|s| matches!(
        s,
        Step::SetBucketPublicRead {
            public_read: true,
            ..
        }
    )));
    assert!(
        plan.graph
            .steps()
            .iter()
            .any(|s| matches!(s, Step::UpdateDistribution { .. }))
    );
    apply(&e, &plan).await;
    let (after, again) = plan_for(&e, &e.desired).await;
    assert!(!again.has_changes(), "{}", steps(&again));
    assert!(after.buckets[0].public_read);
    let d = &after.distributions[0];
    assert_eq!(d.id, before.distributions[0].id, "updated, not replaced");
    assert_eq!(d.config.aliases.len(), 2);
    assert_eq!(d.config.comment, "assets, fewer names");
    assert_eq!(d.config.default_root_object, None);
    // And back: the policy statement goes again.
    e.desired.buckets.get_mut(&bucket).unwrap().public_read = false;
    let after = converge(&e, &e.desired).await;
    assert!(!after.buckets[0].public_read);
}

/// The real binary with `--cloud aws`: apply, a no-change plan whose
/// `--stats` show batched describes, and destroy.
#[test]
fn the_cli_applies_plans_and_destroys_on_aws() {
    let endpoint = moto_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let suffix = example::copy_into(dir.path(), Some("cli"));
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_converge"))
            .current_dir(dir.path())
            .args(["--cloud", "aws", "--endpoint-url", &endpoint])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env_remove("AWS_PROFILE")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let text = format!(
            "--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, out) = run(&["apply", "stack", "--yes", "--at", AT]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Balancer/web.dnsName"), "{out}");
    let (code, out) = run(&[
        "plan",
        "stack",
        "--at",
        AT,
        "--detailed-exitcode",
        "--stats",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("API calls ("), "{out}");
    assert!(out.contains("DescribeInstances"), "{out}");
    // The loop through the CLI, with the stack's lease in S3. The first
    // pass runs at the real time, so the app fleet follows the schedule in
    // effect now; the second finds nothing to do, and could take the lease
    // the first released. The job fleet's metric is not served here: it is
    // reported, not a failure.
    let lease_bucket = format!("cli-leases-{suffix}");
    for pass in 0..2 {
        let (code, out) = run(&[
            "--lease-bucket",
            &lease_bucket,
            "reconcile",
            "stack",
            "--once",
        ]);
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains("metric unreadable"), "{out}");
        if pass == 1 {
            assert!(out.contains(" 0 step(s) planned"), "{out}");
        }
    }
    let (code, out) = run(&["destroy", "stack", "--yes"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = run(&["plan", "stack", "--at", AT, "--format", "json"]);
    assert_eq!(code, Some(0), "{out}");
}

// ---- launch options: instance profiles, IMDSv2, root volumes, SSM images ----

/// Amazon Linux 2023 and Amazon Linux 2 (x86_64) as moto lists them in
/// us-east-1: root on /dev/xvda from a 15 GiB snapshot.
const AL2023_AMI: &str = "ami-03c3da4cfa8e8943a";
const AL2_AMI: &str = "ami-0fb23f2d720767b7a";

impl Env {
    /// Creates an IAM instance profile in the test's account (through
    /// moto's IAM API: converge has no IAM client); answers its ARN.
    fn create_profile(&self, name: &str) -> String {
        let body = moto::call(
            &self.endpoint,
            &self.account,
            "iam",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &moto::form(&[
                ("Action", "CreateInstanceProfile"),
                ("Version", "2010-05-08"),
                ("InstanceProfileName", name),
            ]),
        );
        let arn = between(&body, "<Arn>", "</Arn>");
        assert!(arn.ends_with(&format!("/{name}")), "{body}");
        arn.to_owned()
    }

    /// Creates or overwrites an SSM parameter in the test's account
    /// (through moto's SSM API).
    fn put_parameter(&self, name: &str, value: &str) {
        moto::call(
            &self.endpoint,
            &self.account,
            "ssm",
            &[
                ("Content-Type", "application/x-amz-json-1.1"),
                ("X-Amz-Target", "AmazonSSM.PutParameter"),
            ],
            &format!(r#"{{"Name":"{name}","Value":"{value}","Type":"String","Overwrite":true}}"#),
        );
    }

    /// The size, type and encryption of an instance's root volume, as
    /// DescribeVolumes tells them (converge does not observe root
    /// volumes).
    fn root_volume(&self, instance: &InstanceId) -> (u32, String, bool) {
        let body = moto::call(
            &self.endpoint,
            &self.account,
            "ec2",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &moto::form(&[
                ("Action", "DescribeVolumes"),
                ("Version", "2016-11-15"),
                ("Filter.1.Name", "attachment.instance-id"),
                ("Filter.1.Value.1", instance.as_str()),
                ("Filter.2.Name", "attachment.device"),
                ("Filter.2.Value.1", "/dev/xvda"),
            ]),
        );
        assert_eq!(body.matches("<attachmentSet>").count(), 1, "{body}");
        (
            between(&body, "<size>", "</size>").parse().unwrap(),
            between(&body, "<volumeType>", "</volumeType>").to_owned(),
            between(&body, "<encrypted>", "</encrypted>") == "true",
        )
    }
}

/// The text between the first `start` and the `end` after it.
fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let from = s.find(start).map(|i| i + start.len()).unwrap_or_else(|| {
        panic!("no {start} in {s}");
    });
    let to = s[from..].find(end).unwrap() + from;
    &s[from..to]
}

fn fleet_mut<'a>(
    d: &'a mut Desired,
    name: &'static str,
) -> &'a mut converge::core::desired::FleetSpec {
    d.fleets.get_mut(&ResourceName::from(name)).unwrap()
}

fn live_instances<'a>(
    o: &'a Observed,
    fleet: &'a str,
) -> impl Iterator<Item = &'a converge::core::observed::ObservedInstance> + 'a {
    o.instances
        .iter()
        .filter(move |i| i.owner.name.as_str() == fleet && i.state.is_live())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_options_are_sent_and_read_back() {
    let mut e = env(moto_or_skip!(), "launchopts", None).await;
    let arn = e.create_profile("db-role");
    // The database server (one instance: moto associates a launch's
    // profile with its first instance only).
    let db = fleet_mut(&mut e.desired, "db");
    db.image = ImageSource::Id(ImageId::from(AL2023_AMI));
    db.instance_profile = Some(InstanceProfile::from("db-role"));
    db.root_volume = Some(RootVolume {
        size_gib: 20,
        volume_type: VolumeType::Gp3,
        encrypted: true,
    });
    let observed = converge(&e, &e.desired).await;
    // IMDSv2 only, two hops, everywhere (moto's own default would be
    // tokens optional, one hop).
    for i in observed.instances.iter().filter(|i| i.state.is_live()) {
        assert_eq!(i.metadata, MetadataOptions::DEFAULT, "{}", i.id);
    }
    let db: Vec<_> = live_instances(&observed, "db").collect();
    assert_eq!(db.len(), 1);
    assert_eq!(
        db[0].profile.as_ref().map(|p| p.arn.as_str()),
        Some(arn.as_str())
    );
    assert_eq!(e.root_volume(&db[0].id), (20, "gp3".to_owned(), true));
    // A root volume smaller than the image's 15 GiB snapshot is refused
    // before any call.
    fleet_mut(&mut e.desired, "db").root_volume = Some(RootVolume {
        size_gib: 10,
        volume_type: VolumeType::Gp3,
        encrypted: true,
    });
    let err = observe_and_plan(&*e.cloud, &e.desired, at(), &BTreeMap::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("10 GiB is smaller than the 15 GiB root snapshot"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ssm_image_and_a_newly_published_ami_roll_the_fleet() {
    let mut e = env(moto_or_skip!(), "ssmimage", None).await;
    let name = "/converge/e2e/app-ami";
    e.put_parameter(name, AL2023_AMI);
    fleet_mut(&mut e.desired, "app").image = ImageSource::Parameter(ParameterName::from(name));
    let before = converge(&e, &e.desired).await;
    let old = live(&before, "app");
    assert_eq!(old.len(), 3);
    for i in live_instances(&before, "app") {
        assert_eq!(i.image.as_str(), AL2023_AMI);
    }
    // A new AMI published under the name: a rolling replacement.
    e.put_parameter(name, AL2_AMI);
    let (_, plan) = plan_for(&e, &e.desired).await;
    let app = plan
        .changes
        .iter()
        .find(|c| c.key.kind == Kind::Fleet && c.key.name.as_str() == "app")
        .unwrap();
    assert_eq!(
        app.action,
        ChangeAction::Replace {
            because: vec!["spec.image".into()]
        }
    );
    assert!(
        app.notes
            .iter()
            .any(|n| matches!(n, Note::ImagePublished { image, .. } if image.as_str() == AL2_AMI)),
        "{:?}",
        app.notes
    );
    apply(&e, &plan).await;
    let (after, again) = plan_for(&e, &e.desired).await;
    assert!(!again.has_changes(), "{}", steps(&again));
    let new = live(&after, "app");
    assert_eq!(new.len(), 3);
    for i in live_instances(&after, "app") {
        assert_eq!(i.image.as_str(), AL2_AMI);
        assert!(!old.contains(&i.id), "{} should have been replaced", i.id);
    }
    // A name SSM does not know is an error naming the fleet, before any
    // change.
    fleet_mut(&mut e.desired, "app").image =
        ImageSource::Parameter(ParameterName::from("/converge/e2e/missing"));
    let err = observe_and_plan(&*e.cloud, &e.desired, at(), &BTreeMap::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Fleet/app: spec.image: SSM parameter /converge/e2e/missing does not exist"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_options_and_instance_profiles_change_in_place() {
    let mut e = env(moto_or_skip!(), "inplaceopts", None).await;
    let first = e.create_profile("db-first");
    let second = e.create_profile("db-second");
    let before = converge(&e, &e.desired).await;
    let ids = live(&before, "db");
    let in_place_only = |plan: &Plan, kind: &str| {
        let kinds: Vec<&str> = plan.graph.steps().iter().map(|s| s.kind()).collect();
        assert!(
            !kinds.contains(&"launch") && !kinds.contains(&"terminate"),
            "{kinds:?}"
        );
        assert!(kinds.contains(&kind), "{kind} not in {kinds:?}");
    };
    let db_profile = |o: &Observed| {
        live_instances(o, "db")
            .next()
            .and_then(|i| i.profile.as_ref().map(|p| p.arn.clone()))
    };

    // IMDSv1 allowed, one hop, and a profile: associated in place.
    let v1 = MetadataOptions {
        tokens: HttpTokens::Optional,
        hop_limit: 1,
    };
    let db = fleet_mut(&mut e.desired, "db");
    db.metadata = v1;
    db.instance_profile = Some(InstanceProfile::from("db-first"));
    let (_, plan) = plan_for(&e, &e.desired).await;
    in_place_only(&plan, "set-metadata-options");
    in_place_only(&plan, "associate-instance-profile");
    let after = converge(&e, &e.desired).await;
    assert_eq!(live(&after, "db"), ids, "the same instance");
    assert_eq!(live_instances(&after, "db").next().unwrap().metadata, v1);
    assert_eq!(db_profile(&after), Some(first));

    // Another profile, by ARN: the association is replaced.
    fleet_mut(&mut e.desired, "db").instance_profile =
        Some(InstanceProfile::new(second.clone()).unwrap());
    let (_, plan) = plan_for(&e, &e.desired).await;
    in_place_only(&plan, "replace-instance-profile");
    let after = converge(&e, &e.desired).await;
    assert_eq!(live(&after, "db"), ids);
    assert_eq!(db_profile(&after), Some(second));

    // None: the association goes.
    fleet_mut(&mut e.desired, "db").instance_profile = None;
    let (_, plan) = plan_for(&e, &e.desired).await;
    in_place_only(&plan, "disassociate-instance-profile");
    let after = converge(&e, &e.desired).await;
    assert_eq!(live(&after, "db"), ids);
    assert_eq!(db_profile(&after), None);
}

// ---- networks -----------------------------------------------------------------

/// The stack in a Network: the fleets in private subnets, the balancer in
/// public ones.
fn in_network(mut d: Desired, vpc: NetworkVpc, policy: DeletionPolicy) -> Desired {
    d.network = Some(Network {
        name: ResourceName::from("main"),
        vpc,
        deletion_policy: policy,
        tags: Tags::new(),
    });
    let n = |s: &str| ResourceName::new(s).unwrap();
    for (name, f) in d.fleets.iter_mut() {
        f.subnets = if name.as_str() == "db" {
            vec![n("private-a")]
        } else {
            vec![n("private-a"), n("private-b")]
        };
        f.zones.clear();
        // The example's db address is in its own network's private-a.
        f.private_ips.clear();
    }
    for b in d.balancers.values_mut() {
        b.subnets = vec![n("public-a"), n("public-b")];
        b.zones.clear();
    }
    d
}

/// The stack without a Network, in the region's default VPC: the db in
/// its volume's zone, the rest over two zones.
fn in_default_vpc(mut d: Desired) -> Desired {
    d.network = None;
    let z = |s: &str| Zone::new(s).unwrap();
    for (name, f) in d.fleets.iter_mut() {
        f.zones = if name.as_str() == "db" {
            vec![z("us-east-1a")]
        } else {
            vec![z("us-east-1a"), z("us-east-1b")]
        };
        f.subnets.clear();
        // A declared address needs a Network.
        f.private_ips.clear();
    }
    for b in d.balancers.values_mut() {
        b.zones = vec![z("us-east-1a"), z("us-east-1b")];
        b.subnets.clear();
    }
    d
}

fn created_vpc() -> NetworkVpc {
    let sub = |z: &str, c: &str, public: bool| NewSubnet {
        zone: Zone::new(z).unwrap(),
        cidr: c.parse().unwrap(),
        public,
    };
    NetworkVpc::Create {
        cidr: "10.20.0.0/16".parse().unwrap(),
        subnets: BTreeMap::from([
            (
                ResourceName::from("public-a"),
                sub("us-east-1a", "10.20.0.0/24", true),
            ),
            (
                ResourceName::from("public-b"),
                sub("us-east-1b", "10.20.1.0/24", true),
            ),
            (
                ResourceName::from("private-a"),
                sub("us-east-1a", "10.20.10.0/24", false),
            ),
            (
                ResourceName::from("private-b"),
                sub("us-east-1b", "10.20.11.0/24", false),
            ),
        ]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_network_holds_the_stack_and_is_deleted_in_order() {
    let e = env(moto_or_skip!(), "network", None).await;
    let d = in_network(e.desired.clone(), created_vpc(), DeletionPolicy::Delete);
    let o = converge(&e, &d).await;
    assert_smallpayroll(&o);
    assert_eq!(o.vpcs.len(), 1, "{:?}", o.vpcs);
    let vpc = &o.vpcs[0].id;
    assert_eq!(o.subnets.len(), 4);
    assert!(o.subnets.iter().all(|s| s.vpc == *vpc && s.name.is_some()));
    assert_eq!(o.gateways.len(), 1);
    assert_eq!(o.gateways[0].attached_to.as_ref(), Some(vpc));
    assert_eq!(o.route_tables.len(), 1);
    let rt = &o.route_tables[0];
    assert_eq!(rt.default_route.as_ref(), Some(&o.gateways[0].id));
    let public: Vec<&SubnetId> = o
        .subnets
        .iter()
        .filter(|s| {
            s.name
                .as_ref()
                .is_some_and(|n| n.as_str().starts_with("public"))
        })
        .map(|s| &s.id)
        .collect();
    let mut routed: Vec<&SubnetId> = rt.associations.iter().map(|(_, s)| s).collect();
    routed.sort();
    let mut want = public.clone();
    want.sort();
    assert_eq!(
        routed, want,
        "the public subnets use the public route table"
    );
    assert!(
        o.subnets
            .iter()
            .all(|s| s.map_public_ip == public.contains(&&s.id))
    );
    // Groups are in the VPC; instances in their zone's private subnet.
    assert!(o.security_groups.iter().all(|g| g.vpc == *vpc));
    for i in o.instances.iter().filter(|i| i.state.is_live()) {
        let s = o
            .subnets
            .iter()
            .find(|s| Some(&s.id) == i.subnet.as_ref())
            .unwrap();
        assert_eq!(s.zone, i.zone);
        assert!(
            s.name.as_ref().unwrap().as_str().starts_with("private"),
            "{i:?}"
        );
    }
    let mut lb_subnets = o.balancers[0].subnets.clone();
    lb_subnets.sort();
    assert_eq!(lb_subnets.iter().collect::<Vec<_>>(), want);
    // Destroy: everything goes, the network last.
    let empty = Desired::empty(d.stack.clone(), d.region.clone());
    let (_, plan) = plan_for(&e, &empty).await;
    apply(&e, &plan).await;
    let after = e.cloud.observe(&d.stack).await.unwrap();
    assert!(after.vpcs.is_empty(), "{:?}", after.vpcs);
    assert!(after.subnets.is_empty() && after.gateways.is_empty() && after.route_tables.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_vpc_given_by_id_is_used_and_kept() {
    let e = env(moto_or_skip!(), "existing", None).await;
    // Someone else's VPC, without converge's tags.
    let Outcome::Vpc(vpc) = e
        .cloud
        .act(&Op::CreateVpc {
            cidr: "10.30.0.0/16".parse().unwrap(),
            tags: Tags::new(),
        })
        .await
        .unwrap()
    else {
        panic!("no VPC");
    };
    let mut ids = Vec::new();
    for (z, c) in [
        ("us-east-1a", "10.30.1.0/24"),
        ("us-east-1b", "10.30.2.0/24"),
    ] {
        let op = Op::CreateSubnet {
            vpc: vpc.clone(),
            zone: Zone::new(z).unwrap(),
            cidr: c.parse().unwrap(),
            tags: Tags::new(),
        };
        let Outcome::Subnet(s) = e.cloud.act(&op).await.unwrap() else {
            panic!("no subnet");
        };
        ids.push(s);
    }
    let subnets = ["public-a", "public-b", "private-a", "private-b"]
        .into_iter()
        .enumerate()
        .map(|(i, n)| (ResourceName::from(n), ids[i % 2].clone()))
        .collect();
    let d = in_network(
        e.desired.clone(),
        NetworkVpc::Existing {
            vpc: vpc.clone(),
            subnets,
        },
        DeletionPolicy::Retain,
    );
    e.cloud.reset_stats();
    let o = converge(&e, &d).await;
    assert_smallpayroll(&o);
    assert!(o.vpcs.is_empty(), "converge made no VPC: {:?}", o.vpcs);
    assert!(o.security_groups.iter().all(|g| g.vpc == vpc));
    for i in o.instances.iter().filter(|i| i.state.is_live()) {
        assert!(ids.contains(i.subnet.as_ref().unwrap()), "{i:?}");
    }
    let by_id = e
        .cloud
        .stats()
        .iter()
        .filter(|c| c.operation == "DescribeSubnets")
        .map(|c| c.calls)
        .sum::<u64>();
    assert!(
        by_id >= 2,
        "the stack's subnets, and the existing ones by ID"
    );
    // Destroyed, the VPC and its subnets stay.
    let empty = Desired::empty(d.stack.clone(), d.region.clone());
    let (_, plan) = plan_for(&e, &empty).await;
    assert!(!steps(&plan).contains("Network/"), "{}", steps(&plan));
    apply(&e, &plan).await;
    assert_eq!(e.cloud.subnets(&ids).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_without_a_default_vpc_is_refused_before_any_change() {
    let mut e = env(moto_or_skip!(), "nodefault", None).await;
    // The example without its Network: everything in the default VPC.
    e.desired = in_default_vpc(e.desired.clone());
    let o = e.cloud.observe(&e.desired.stack).await.unwrap();
    let default = o.default_vpc.expect("moto makes a default VPC");
    delete_default_vpc(&e, &default).await;
    let o = e.cloud.observe(&e.desired.stack).await.unwrap();
    assert_eq!(o.default_vpc, None);
    let err = observe_and_plan(&*e.cloud, &e.desired, at(), &BTreeMap::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("declare a Network"), "{err}");
    let after = e.cloud.observe(&e.desired.stack).await.unwrap();
    assert!(after.is_empty(), "nothing was made: {after:?}");
    // With a Network, the stack needs no default VPC.
    let d = in_network(e.desired.clone(), created_vpc(), DeletionPolicy::Delete);
    converge(&e, &d).await;
}

/// Deletes the account's default VPC as a landing zone does: its subnets,
/// its gateway, then the VPC.
async fn delete_default_vpc(e: &Env, vpc: &converge::core::ids::VpcId) {
    let sdk = e.cloud.ec2_client_for_tests();
    let subnets = sdk
        .describe_subnets()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("vpc-id")
                .values(vpc.as_str())
                .build(),
        )
        .send()
        .await
        .unwrap();
    for s in subnets.subnets() {
        sdk.delete_subnet()
            .subnet_id(s.subnet_id().unwrap())
            .send()
            .await
            .unwrap();
    }
    let gws = sdk
        .describe_internet_gateways()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("attachment.vpc-id")
                .values(vpc.as_str())
                .build(),
        )
        .send()
        .await
        .unwrap();
    for g in gws.internet_gateways() {
        let id = g.internet_gateway_id().unwrap();
        sdk.detach_internet_gateway()
            .internet_gateway_id(id)
            .vpc_id(vpc.as_str())
            .send()
            .await
            .unwrap();
        sdk.delete_internet_gateway()
            .internet_gateway_id(id)
            .send()
            .await
            .unwrap();
    }
    sdk.delete_vpc().vpc_id(vpc.as_str()).send().await.unwrap();
}
