//! The local cloud against its contract: lifecycles moved by a manual
//! clock, the region's rules (zones, one attachment, disable before
//! delete, health thresholds, groups in use), idempotency tokens under
//! lagging describes, throttling, and the file: persistence, concurrent
//! writers in threads and processes, atomic replacement, a crash after N
//! calls.
//!
//! Tests that need another process re-run this test binary with
//! `CONVERGE_LOCAL_CHILD` set; the `child_process_entry` test then plays the
//! child's part (and does nothing otherwise).

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use converge::cloud::local::{Delays, Faults, LocalCloud, LocalConfig, LocalError, ResourceType};
use converge::cloud::{Cloud, CloudError, ErrorKind, Op, Outcome};
use converge::core::desired::{
    HealthCheck, HttpTokens, Listener, ListenerProtocol, MetadataOptions, Protocol, RootVolume,
    Tags, VolumeType,
};
use converge::core::elb::{BalancerType, Scheme};
use converge::core::ids::{
    GroupId, InstanceId, InstanceProfile, Kind, ParameterName, ResourceName, VolumeId, VpcId, Zone,
    tags,
};
use converge::core::observed::{
    CloudRule, CloudSource, DistributionConfig, DistributionStatus, InstanceState, MemberState,
    Owner, SnapshotState, VolumeState,
};
use converge::core::plan::{PlannedRootVolume, TagTarget};
use converge::sys::ManualClock;
use jiff::Timestamp;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const STACK: &str = "shop";
const ZONE_A: &str = "us-east-1a";
const ZONE_B: &str = "us-east-1b";

fn t0() -> Timestamp {
    "2026-03-09T12:00:00Z".parse().unwrap()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn owned(kind: Kind, name: &str) -> Tags {
    Owner {
        stack: ResourceName::from(STACK),
        kind,
        name: ResourceName::new(name).unwrap(),
    }
    .to_tags()
}

fn config(delays: Delays, faults: Faults) -> LocalConfig {
    LocalConfig {
        region: "us-east-1".into(),
        delays,
        faults,
    }
}

/// A file-backed cloud in `dir` with a manual clock.
fn open(dir: &Path, delays: Delays, faults: Faults) -> (LocalCloud, ManualClock) {
    let clock = ManualClock::new(t0());
    let cloud = LocalCloud::open(dir, config(delays, faults), Arc::new(clock.clone())).unwrap();
    (cloud, clock)
}

fn stack() -> ResourceName {
    ResourceName::from(STACK)
}

fn run_op(fleet: &str, zone: &str, count: u32, token: &str) -> Op {
    let mut t = owned(Kind::Fleet, fleet);
    t.insert(tags::SPEC_HASH.into(), "abc123".into());
    Op::RunInstances {
        public_ip: None,
        private_ip: None,
        subnet: None,
        image: "ami-147f977d".into(),
        instance_type: "m1.small".into(),
        key_name: None,
        groups: vec![],
        user_data: format!("role={fleet}"),
        zone: Zone::new(zone).unwrap(),
        count,
        tags: t,
        client_token: token.into(),
        instance_profile: None,
        metadata: MetadataOptions::DEFAULT,
        root_volume: None,
    }
}

fn volume_op(name: &str, zone: &str, token: &str) -> Op {
    Op::CreateVolume {
        zone: Zone::new(zone).unwrap(),
        size_gib: 20,
        volume_type: VolumeType::Gp3,
        snapshot: None,
        encrypted: true,
        kms_key: None,
        iops: None,
        throughput: None,
        tags: owned(Kind::Volume, name),
        client_token: token.into(),
    }
}

/// [`volume_op`] with its size, type, IOPS and throughput.
fn sized_volume_op(
    name: &str,
    size_gib: u32,
    volume_type: VolumeType,
    iops: Option<u32>,
    throughput: Option<u32>,
) -> Op {
    let mut op = volume_op(name, ZONE_A, "");
    if let Op::CreateVolume {
        size_gib: s,
        volume_type: t,
        iops: i,
        throughput: th,
        ..
    } = &mut op
    {
        (*s, *t, *i, *th) = (size_gib, volume_type, iops, throughput);
    }
    op
}

async fn launch(
    c: &LocalCloud,
    fleet: &str,
    zone: &str,
    count: u32,
    token: &str,
) -> Vec<InstanceId> {
    match c.act(&run_op(fleet, zone, count, token)).await.unwrap() {
        Outcome::Instances(launched) => launched.into_iter().map(|l| l.id).collect(),
        other => panic!("RunInstances answered {other:?}"),
    }
}

async fn create_volume(c: &LocalCloud, name: &str, zone: &str, token: &str) -> VolumeId {
    match c.act(&volume_op(name, zone, token)).await.unwrap() {
        Outcome::Volume(v) => v,
        other => panic!("CreateVolume answered {other:?}"),
    }
}

async fn instance_state(c: &LocalCloud, id: &InstanceId) -> Option<InstanceState> {
    c.instances(std::slice::from_ref(id))
        .await
        .unwrap()
        .first()
        .map(|i| i.state)
}

async fn volume_state(c: &LocalCloud, id: &VolumeId) -> Option<VolumeState> {
    c.volumes(std::slice::from_ref(id))
        .await
        .unwrap()
        .first()
        .map(|v| v.state)
}

fn assert_error(r: Result<Outcome, CloudError>, kind: ErrorKind, code: &str) -> CloudError {
    let e = r.expect_err("the call should fail");
    assert_eq!((e.kind, e.code.as_str()), (kind, code), "{e}");
    e
}

fn attach(volume: &VolumeId, instance: &InstanceId) -> Op {
    Op::AttachVolume {
        volume: volume.clone(),
        instance: instance.clone(),
        device: "/dev/sdj".into(),
    }
}

fn health_check() -> HealthCheck {
    HealthCheck {
        target: "HTTP:80/".into(),
        interval_secs: 30,
        timeout_secs: 3,
        healthy_threshold: 2,
        unhealthy_threshold: 2,
    }
}

async fn create_balancer(c: &LocalCloud, name: &str) -> String {
    let op = Op::CreateBalancer {
        subnets: Vec::new(),
        name: name.parse().unwrap(),
        scheme: Scheme::InternetFacing,
        groups: Vec::new(),
        zones: vec![Zone::from(ZONE_A)],
        listeners: vec![Listener {
            port: 80,
            instance_port: 80,
            protocol: ListenerProtocol::Http,
            certificate: None,
        }],
        tags: owned(Kind::Balancer, name),
    };
    let Outcome::Balancer { dns_name, .. } = c.act(&op).await.unwrap() else {
        panic!("CreateLoadBalancer answered something else");
    };
    c.act(&Op::ConfigureHealthCheck {
        name: name.parse().unwrap(),
        health_check: health_check(),
    })
    .await
    .unwrap();
    dns_name
}

fn dist_config(enabled: bool, aliases: &[&str]) -> DistributionConfig {
    DistributionConfig {
        origin_domain: "shop-assets.s3.amazonaws.com".into(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        enabled,
        logging: None,
        comment: "assets".into(),
        default_root_object: Some("index.html".into()),
        origin_access_control: None,
        viewer_certificate: None,
    }
}

// ---- lifecycles ----------------------------------------------------------

#[tokio::test]
async fn instances_boot_run_terminate_and_vanish_an_hour_later() {
    let dir = tempfile::tempdir().unwrap();
    let (c, clock) = open(dir.path(), Delays::default(), Faults::default());
    let ids = launch(&c, "app", ZONE_A, 2, "tok-1").await;
    assert_eq!(ids.len(), 2);
    for id in &ids {
        let hex = id.as_str().strip_prefix("i-").unwrap();
        assert_eq!(hex.len(), 17, "{id}");
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    }

    let o = c.observe(&stack()).await.unwrap();
    assert_eq!(o.instances.len(), 2);
    let i = &o.instances[0];
    assert_eq!(i.state, InstanceState::Pending);
    assert_eq!(i.launched_at, t0());
    assert_eq!(i.user_data.as_deref(), Some("role=app"));
    assert_eq!(i.spec_hash.as_deref(), Some("abc123"));
    assert_eq!(i.owner.name.as_str(), "app");
    let ip = i.private_ip.unwrap();
    assert_eq!(ip.octets()[..2], [10, 0]);
    assert_ne!(o.instances[0].private_ip, o.instances[1].private_ip);

    clock.advance(Delays::default().boot - Duration::from_millis(1));
    assert_eq!(
        instance_state(&c, &ids[0]).await,
        Some(InstanceState::Pending)
    );
    clock.advance(Duration::from_millis(1));
    assert_eq!(
        instance_state(&c, &ids[0]).await,
        Some(InstanceState::Running)
    );

    c.act(&Op::TerminateInstances {
        ids: vec![ids[0].clone()],
    })
    .await
    .unwrap();
    assert_eq!(
        instance_state(&c, &ids[0]).await,
        Some(InstanceState::ShuttingDown)
    );
    clock.advance(Delays::default().shutdown);
    assert_eq!(
        instance_state(&c, &ids[0]).await,
        Some(InstanceState::Terminated)
    );
    // Terminating again is a no-op, as in EC2.
    c.act(&Op::TerminateInstances {
        ids: vec![ids[0].clone()],
    })
    .await
    .unwrap();

    // Still listed for an hour, without its address; then gone.
    clock.advance(secs(3599));
    let o = c.observe(&stack()).await.unwrap();
    let gone = o.instances.iter().find(|i| i.id == ids[0]).unwrap();
    assert_eq!(gone.state, InstanceState::Terminated);
    assert_eq!(gone.private_ip, None);
    clock.advance(secs(1));
    let o = c.observe(&stack()).await.unwrap();
    assert_eq!(o.instances.len(), 1);
    assert_eq!(instance_state(&c, &ids[0]).await, None);
    assert_error(
        c.act(&Op::TerminateInstances {
            ids: vec![ids[0].clone()],
        })
        .await,
        ErrorKind::NotFound,
        "InvalidInstanceID.NotFound",
    );
}

#[tokio::test]
async fn only_the_stacks_tagged_resources_are_observed() {
    let (c, _) = (
        LocalCloud::in_memory(
            config(Delays::zero(), Faults::default()),
            Arc::new(ManualClock::new(t0())),
        ),
        (),
    );
    launch(&c, "app", ZONE_A, 1, "a").await;
    // Untagged, and another stack's.
    let mut untagged = run_op("x", ZONE_A, 1, "b");
    if let Op::RunInstances { tags, .. } = &mut untagged {
        tags.clear();
    }
    c.act(&untagged).await.unwrap();
    let mut other = run_op("app", ZONE_A, 1, "c");
    if let Op::RunInstances { tags: t, .. } = &mut other {
        t.insert(tags::STACK.into(), "other".into());
    }
    c.act(&other).await.unwrap();
    c.act(&Op::CreateBucket {
        name: "nobodys-bucket".into(),
        tags: Tags::new(),
    })
    .await
    .unwrap();

    let o = c.observe(&stack()).await.unwrap();
    assert_eq!(o.instances.len(), 1);
    assert!(o.buckets.is_empty());
    let o = c.observe(&ResourceName::from("other")).await.unwrap();
    assert_eq!(o.instances.len(), 1);
    // `ls` shows everything, owned or not.
    assert_eq!(
        c.list()
            .unwrap()
            .iter()
            .filter(|r| r.kind == ResourceType::Instance)
            .count(),
        3
    );
}

#[tokio::test]
async fn volumes_attach_in_their_zone_to_one_running_instance_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let (c, clock) = open(dir.path(), Delays::default(), Faults::default());
    let vol = create_volume(&c, "pgdata", ZONE_A, "v1").await;
    assert!(vol.as_str().starts_with("vol-"));
    let [db] = launch(&c, "db", ZONE_A, 1, "db").await.try_into().unwrap();
    let [other] = launch(&c, "db2", ZONE_A, 1, "db2")
        .await
        .try_into()
        .unwrap();
    let [far] = launch(&c, "far", ZONE_B, 1, "far")
        .await
        .try_into()
        .unwrap();

    assert_eq!(volume_state(&c, &vol).await, Some(VolumeState::Creating));
    assert_error(
        c.act(&attach(&vol, &db)).await,
        ErrorKind::InvalidState,
        "IncorrectState",
    );
    clock.advance(Delays::default().volume);
    assert_eq!(volume_state(&c, &vol).await, Some(VolumeState::Available));
    // The instance is still pending.
    assert_error(
        c.act(&attach(&vol, &db)).await,
        ErrorKind::InvalidState,
        "IncorrectState",
    );
    clock.advance(Delays::default().boot);

    // Never across zones, whatever the states.
    let e = assert_error(
        c.act(&attach(&vol, &far)).await,
        ErrorKind::Invalid,
        "InvalidVolume.ZoneMismatch",
    );
    assert!(!e.is_retryable());

    c.act(&attach(&vol, &db)).await.unwrap();
    let v = &c.volumes(std::slice::from_ref(&vol)).await.unwrap()[0];
    assert_eq!(v.state, VolumeState::InUse);
    assert_eq!(v.attachment.as_ref().unwrap().instance, db);
    assert_eq!(v.attachment.as_ref().unwrap().device, "/dev/sdj");

    // One instance at a time, and not deleted while attached.
    assert_error(
        c.act(&attach(&vol, &other)).await,
        ErrorKind::InvalidState,
        "VolumeInUse",
    );
    assert_error(
        c.act(&Op::DeleteVolume {
            volume: vol.clone(),
        })
        .await,
        ErrorKind::InvalidState,
        "VolumeInUse",
    );
    // Detaching from the wrong instance finds no attachment.
    assert_error(
        c.act(&Op::DetachVolume {
            volume: vol.clone(),
            instance: other.clone(),
        })
        .await,
        ErrorKind::NotFound,
        "InvalidAttachment.NotFound",
    );
    c.act(&Op::DetachVolume {
        volume: vol.clone(),
        instance: db.clone(),
    })
    .await
    .unwrap();
    assert_eq!(volume_state(&c, &vol).await, Some(VolumeState::Available));

    // Terminating the instance detaches the volume once it is terminated.
    c.act(&attach(&vol, &other)).await.unwrap();
    c.act(&Op::TerminateInstances {
        ids: vec![other.clone()],
    })
    .await
    .unwrap();
    assert_eq!(volume_state(&c, &vol).await, Some(VolumeState::InUse));
    clock.advance(Delays::default().shutdown);
    assert_eq!(volume_state(&c, &vol).await, Some(VolumeState::Available));
    c.act(&Op::DeleteVolume {
        volume: vol.clone(),
    })
    .await
    .unwrap();
    assert_eq!(volume_state(&c, &vol).await, None);
}

#[tokio::test]
async fn snapshots_complete_and_volumes_restore_from_completed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (c, clock) = open(dir.path(), Delays::default(), Faults::default());
    let vol = create_volume(&c, "pgdata", ZONE_A, "v").await;
    let t = Tags::from([
        (tags::STACK.to_owned(), STACK.to_owned()),
        (tags::VOLUME.to_owned(), "pgdata".to_owned()),
        (tags::PURPOSE.to_owned(), "scheduled".to_owned()),
    ]);
    // Not while the volume is being created.
    let early = Op::CreateSnapshot {
        volume: vol.clone(),
        description: "nightly".into(),
        tags: t.clone(),
    };
    assert_error(
        c.act(&early).await,
        ErrorKind::InvalidState,
        "IncorrectState",
    );
    clock.advance(Delays::default().volume);
    let Outcome::Snapshot(snap) = c
        .act(&Op::CreateSnapshot {
            volume: vol.clone(),
            description: "nightly".into(),
            tags: t.clone(),
        })
        .await
        .unwrap()
    else {
        panic!("no snapshot");
    };
    let s = c.snapshot(&snap).await.unwrap().unwrap();
    assert_eq!(s.state, SnapshotState::Pending);
    assert_eq!(s.volume.as_str(), "pgdata");
    assert_eq!(s.volume_id, vol);
    // A volume cannot be restored from a pending snapshot.
    let restore = Op::CreateVolume {
        zone: Zone::from(ZONE_A),
        size_gib: 20,
        volume_type: VolumeType::Gp3,
        snapshot: Some(snap.clone()),
        encrypted: true,
        kms_key: None,
        iops: None,
        throughput: None,
        tags: owned(Kind::Volume, "restored"),
        client_token: "r".into(),
    };
    assert_error(
        c.act(&restore).await,
        ErrorKind::InvalidState,
        "IncorrectState",
    );
    clock.advance(Delays::default().snapshot);
    let o = c.observe(&stack()).await.unwrap();
    assert_eq!(o.snapshots.len(), 1);
    assert_eq!(o.snapshots[0].state, SnapshotState::Completed);
    // Smaller than the snapshot: refused.
    let mut small = restore.clone();
    if let Op::CreateVolume { size_gib, .. } = &mut small {
        *size_gib = 10;
    }
    assert_error(
        c.act(&small).await,
        ErrorKind::Invalid,
        "InvalidParameterValue",
    );
    // The snapshot is encrypted, as its volume: a restore cannot be
    // unencrypted.
    let mut plain = restore.clone();
    if let Op::CreateVolume { encrypted, .. } = &mut plain {
        *encrypted = false;
    }
    assert_error(
        c.act(&plain).await,
        ErrorKind::Invalid,
        "InvalidParameterCombination",
    );
    assert!(o.snapshots[0].encrypted);
    let Outcome::Volume(restored) = c.act(&restore).await.unwrap() else {
        panic!("no volume");
    };
    assert_ne!(restored, vol);
    // Restored with the snapshot's key, the volume's own.
    let keys: Vec<Option<String>> = c
        .volumes(&[vol.clone(), restored.clone()])
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.kms_key)
        .collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1]);
    c.act(&Op::DeleteSnapshot {
        snapshot: snap.clone(),
    })
    .await
    .unwrap();
    assert!(c.snapshot(&snap).await.unwrap().is_none());
}

// ---- EBS encryption, IOPS, throughput, modifications -----------------------

#[tokio::test]
async fn volumes_are_encrypted_with_the_default_key_or_the_one_named() {
    let c = LocalCloud::in_memory(
        config(Delays::zero(), Faults::default()),
        Arc::new(ManualClock::new(t0())),
    );
    let default = create_volume(&c, "pgdata", ZONE_A, "").await;
    let mut named = volume_op("logs", ZONE_A, "");
    let mut plain = volume_op("scratch", ZONE_A, "");
    let mut bad = volume_op("bad", ZONE_A, "");
    let key = "1234abcd-12ab-34cd-56ef-1234567890ab";
    if let Op::CreateVolume { kms_key, .. } = &mut named {
        *kms_key = Some(converge::core::ebs::KmsKey::parse(key).unwrap());
    }
    if let Op::CreateVolume { encrypted, .. } = &mut plain {
        *encrypted = false;
    }
    if let Op::CreateVolume {
        encrypted, kms_key, ..
    } = &mut bad
    {
        *encrypted = false;
        *kms_key = Some(converge::core::ebs::KmsKey::parse(key).unwrap());
    }
    let Outcome::Volume(named) = c.act(&named).await.unwrap() else {
        panic!()
    };
    let Outcome::Volume(plain) = c.act(&plain).await.unwrap() else {
        panic!()
    };
    // A key without encryption: EC2's own refusal.
    assert_error(
        c.act(&bad).await,
        ErrorKind::Invalid,
        "InvalidParameterDependency",
    );
    let seen = c.volumes(&[default, named, plain]).await.unwrap();
    let default_arn = seen[0].kms_key.clone().unwrap();
    assert!(seen[0].encrypted);
    assert!(
        default_arn.starts_with("arn:aws:kms:us-east-1:123456789012:key/"),
        "{default_arn}"
    );
    assert_eq!(
        seen[1].kms_key.as_deref(),
        Some(format!("arn:aws:kms:us-east-1:123456789012:key/{key}").as_str())
    );
    assert!(!seen[2].encrypted && seen[2].kms_key.is_none());
    // gp3's baseline when nothing is asked.
    assert_eq!((seen[0].iops, seen[0].throughput), (Some(3000), Some(125)));
}

#[tokio::test]
async fn iops_and_throughput_follow_each_types_rules() {
    let c = LocalCloud::in_memory(
        config(Delays::zero(), Faults::default()),
        Arc::new(ManualClock::new(t0())),
    );
    let refused = [
        // gp3: 3,000–16,000 IOPS, at most 500 per GiB.
        (
            sized_volume_op("a", 100, VolumeType::Gp3, Some(2000), None),
            "InvalidParameterValue",
        ),
        (
            sized_volume_op("a", 100, VolumeType::Gp3, Some(16_001), None),
            "InvalidParameterValue",
        ),
        (
            sized_volume_op("a", 10, VolumeType::Gp3, Some(6000), None),
            "InvalidParameterValue",
        ),
        // gp3: 125–1,000 MiB/s, at most 0.25 per IOPS.
        (
            sized_volume_op("a", 100, VolumeType::Gp3, None, Some(1001)),
            "InvalidParameterValue",
        ),
        (
            sized_volume_op("a", 100, VolumeType::Gp3, Some(3000), Some(800)),
            "InvalidParameterValue",
        ),
        // io1: 100–64,000 IOPS, at most 50 per GiB; io2: at most 1,000.
        (
            sized_volume_op("a", 100, VolumeType::Io1, Some(5001), None),
            "InvalidParameterValue",
        ),
        (
            sized_volume_op("a", 100, VolumeType::Io2, Some(100_001), None),
            "InvalidParameterValue",
        ),
        (
            sized_volume_op("a", 100, VolumeType::Io2, Some(99), None),
            "InvalidParameterValue",
        ),
        // io1 and io2 need IOPS; the others take none; throughput is gp3's.
        (
            sized_volume_op("a", 100, VolumeType::Io1, None, None),
            "MissingParameter",
        ),
        (
            sized_volume_op("a", 100, VolumeType::Gp2, Some(3000), None),
            "InvalidParameterCombination",
        ),
        (
            sized_volume_op("a", 500, VolumeType::St1, Some(3000), None),
            "InvalidParameterCombination",
        ),
        (
            sized_volume_op("a", 100, VolumeType::Io2, Some(1000), Some(125)),
            "InvalidParameterCombination",
        ),
    ];
    for (op, code) in refused {
        assert_error(c.act(&op).await, ErrorKind::Invalid, code);
    }
    for op in [
        sized_volume_op("a", 32, VolumeType::Gp3, Some(16_000), Some(1000)),
        sized_volume_op("b", 100, VolumeType::Io1, Some(5000), None),
        sized_volume_op("c", 256, VolumeType::Io2, Some(256_000), None),
        sized_volume_op("d", 1, VolumeType::Gp3, None, None),
    ] {
        c.act(&op).await.unwrap();
    }
}

#[tokio::test]
async fn a_volume_is_modified_once_every_six_hours_after_the_last_completes() {
    let dir = tempfile::tempdir().unwrap();
    let (c, clock) = open(dir.path(), Delays::default(), Faults::default());
    let vol = create_volume(&c, "pgdata", ZONE_A, "").await;
    clock.advance(Delays::default().volume);
    let modify = |size_gib, iops| Op::ModifyVolume {
        volume: vol.clone(),
        size_gib,
        volume_type: VolumeType::Gp3,
        iops,
        throughput: None,
    };
    // Below the size: refused; beyond gp3's per-GiB IOPS: refused.
    assert_error(
        c.act(&modify(10, None)).await,
        ErrorKind::Invalid,
        "InvalidParameterValue",
    );
    assert_error(
        c.act(&modify(20, Some(12_000))).await,
        ErrorKind::Invalid,
        "InvalidParameterValue",
    );
    let Outcome::Modification { started_at } = c.act(&modify(40, Some(6000))).await.unwrap() else {
        panic!("no modification")
    };
    assert_eq!(started_at, t0() + Delays::default().volume);
    let v = &c.volumes(std::slice::from_ref(&vol)).await.unwrap()[0];
    assert_eq!(
        (v.size_gib, v.iops, v.throughput),
        (40, Some(6000), Some(125))
    );
    let m = v.modification.clone().unwrap();
    assert_eq!(
        m.state,
        converge::core::observed::ModificationState::Modifying
    );
    clock.advance(Delays::default().volume);
    let m = c.volumes(std::slice::from_ref(&vol)).await.unwrap()[0]
        .modification
        .clone()
        .unwrap();
    assert_eq!(
        m.state,
        converge::core::observed::ModificationState::Optimizing
    );
    // Again within six hours: AWS's own refusal, complete or not.
    clock.advance(secs(3600));
    assert_error(
        c.act(&modify(50, None)).await,
        ErrorKind::Invalid,
        "VolumeModificationRateExceeded",
    );
    clock.advance(secs(5 * 3600));
    let Outcome::Modification { .. } = c.act(&modify(50, None)).await.unwrap() else {
        panic!("no modification")
    };
    // The IOPS are kept within a type when none are given.
    let v = &c.volumes(std::slice::from_ref(&vol)).await.unwrap()[0];
    assert_eq!((v.size_gib, v.iops), (50, Some(6000)));
}

#[tokio::test]
async fn a_modification_still_under_way_after_six_hours_is_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let slow = Delays {
        volume: secs(4 * 3600),
        ..Delays::zero()
    };
    let (c, clock) = open(dir.path(), slow, Faults::default());
    let vol = create_volume(&c, "pgdata", ZONE_A, "").await;
    clock.advance(slow.volume);
    let modify = |size_gib| Op::ModifyVolume {
        volume: vol.clone(),
        size_gib,
        volume_type: VolumeType::Gp3,
        iops: None,
        throughput: None,
    };
    c.act(&modify(30)).await.unwrap();
    // Six hours on it is optimizing (completed at eight): refused.
    clock.advance(secs(6 * 3600));
    assert_error(
        c.act(&modify(40)).await,
        ErrorKind::InvalidState,
        "IncorrectModificationState",
    );
    clock.advance(secs(2 * 3600));
    c.act(&modify(40)).await.unwrap();
}

#[tokio::test]
async fn ls_shows_encryption_iops_and_throughput() {
    let c = LocalCloud::in_memory(
        config(Delays::zero(), Faults::default()),
        Arc::new(ManualClock::new(t0())),
    );
    c.act(&sized_volume_op(
        "pgdata",
        100,
        VolumeType::Gp3,
        Some(6000),
        Some(500),
    ))
    .await
    .unwrap();
    let rows = c.list().unwrap();
    assert!(
        rows[0]
            .state
            .starts_with("available (100 GiB gp3, 6000 IOPS, 500 MiB/s, encrypted with key "),
        "{}",
        rows[0].state
    );
}

// ---- idempotency and lag -------------------------------------------------

#[tokio::test]
async fn client_tokens_return_the_same_resources_even_while_describes_lag() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults {
        lag: secs(10),
        ..Faults::default()
    };
    let (c, clock) = open(dir.path(), Delays::zero(), faults);
    let first = launch(&c, "app", ZONE_A, 2, "launch-app-1").await;
    // Invisible to observe and describes...
    assert!(c.observe(&stack()).await.unwrap().instances.is_empty());
    assert!(c.instances(&first).await.unwrap().is_empty());
    // ...and to calls that name them,
    assert_error(
        c.act(&Op::CreateTags {
            target: TagTarget::Instance(first[0].clone()),
            tags: Tags::from([("team".to_owned(), "web".to_owned())]),
        })
        .await,
        ErrorKind::NotFound,
        "InvalidInstanceID.NotFound",
    );
    // but the token still finds them.
    let again = launch(&c, "app", ZONE_A, 2, "launch-app-1").await;
    assert_eq!(first, again);
    // A different request with the same token is refused.
    let mut changed = run_op("app", ZONE_A, 3, "launch-app-1");
    if let Op::RunInstances { count, .. } = &mut changed {
        *count = 3;
    }
    assert_error(
        c.act(&changed).await,
        ErrorKind::Invalid,
        "IdempotentParameterMismatch",
    );

    let v1 = create_volume(&c, "pgdata", ZONE_A, "vol-token").await;
    let v2 = create_volume(&c, "pgdata", ZONE_A, "vol-token").await;
    assert_eq!(v1, v2);

    clock.advance(secs(10));
    let o = c.observe(&stack()).await.unwrap();
    assert_eq!(o.instances.len(), 2);
    assert_eq!(o.volumes.len(), 1);
    assert_eq!(launch(&c, "app", ZONE_A, 2, "launch-app-1").await, first);
    assert_eq!(c.observe(&stack()).await.unwrap().instances.len(), 2);
}

#[tokio::test]
async fn a_caller_reference_returns_the_same_distribution() {
    let c = LocalCloud::in_memory(
        config(Delays::zero(), Faults::default()),
        Arc::new(ManualClock::new(t0())),
    );
    c.act(&Op::CreateBucket {
        name: "shop-assets".into(),
        tags: owned(Kind::Bucket, "shop-assets"),
    })
    .await
    .unwrap();
    // A public origin: a private one needs origin access
    // (tests/cdn_content.rs).
    c.act(&Op::SetBucketPublicRead {
        name: "shop-assets".into(),
        public_read: true,
    })
    .await
    .unwrap();
    // Aliases need a certificate covering them (InvalidViewerCertificate).
    let cert = c.add_certificate(&["*.example.com".into()]).unwrap();
    let cfg = |enabled, aliases: &[&str]| DistributionConfig {
        viewer_certificate: Some(converge::core::observed::ViewerCertificate {
            arn: cert.clone(),
            minimum_protocol_version: "TLSv1.2_2021".into(),
        }),
        ..dist_config(enabled, aliases)
    };
    let op = Op::CreateDistribution {
        caller_reference: "converge:shop:assets:1".into(),
        config: cfg(true, &["cdn0.example.com"]),
        tags: owned(Kind::Cdn, "assets"),
    };
    let a = c.act(&op).await.unwrap();
    let b = c.act(&op).await.unwrap();
    assert_eq!(a, b);
    let Outcome::Distribution { id, domain_name } = a else {
        panic!("no distribution");
    };
    assert!(
        id.as_str().starts_with('E') && id.as_str().len() == 14,
        "{id}"
    );
    let host = domain_name.strip_suffix(".cloudfront.net").unwrap();
    assert_eq!(host.len(), 14);
    assert!(host.starts_with('d'));
    assert!(
        host.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    );
    // Same reference, other settings.
    let other = Op::CreateDistribution {
        caller_reference: "converge:shop:assets:1".into(),
        config: cfg(false, &["cdn0.example.com"]),
        tags: owned(Kind::Cdn, "assets"),
    };
    assert_error(
        c.act(&other).await,
        ErrorKind::AlreadyExists,
        "DistributionAlreadyExists",
    );
    // The alias is taken.
    let clash = Op::CreateDistribution {
        caller_reference: "someone-else".into(),
        config: cfg(true, &["CDN0.example.com"]),
        tags: Tags::new(),
    };
    assert_error(
        c.act(&clash).await,
        ErrorKind::AlreadyExists,
        "CNAMEAlreadyExists",
    );
    assert_eq!(c.observe(&stack()).await.unwrap().distributions.len(), 1);
}

// ---- the region's rules --------------------------------------------------

#[tokio::test]
async fn distributions_must_be_disabled_and_deployed_before_delete() {
    let dir = tempfile::tempdir().unwrap();
    let (c, clock) = open(dir.path(), Delays::default(), Faults::default());
    c.act(&Op::CreateBucket {
        name: "shop-assets".into(),
        tags: owned(Kind::Bucket, "shop-assets"),
    })
    .await
    .unwrap();
    // A public origin: a private one needs origin access
    // (tests/cdn_content.rs).
    c.act(&Op::SetBucketPublicRead {
        name: "shop-assets".into(),
        public_read: true,
    })
    .await
    .unwrap();
    let Outcome::Distribution { id, .. } = c
        .act(&Op::CreateDistribution {
            caller_reference: "ref".into(),
            config: dist_config(true, &[]),
            tags: owned(Kind::Cdn, "assets"),
        })
        .await
        .unwrap()
    else {
        panic!("no distribution");
    };
    let status =
        |c: LocalCloud, id| async move { c.distribution(&id).await.unwrap().unwrap().status };
    assert_eq!(
        status(c.clone(), id.clone()).await,
        DistributionStatus::InProgress
    );
    clock.advance(Delays::default().deploy);
    assert_eq!(
        status(c.clone(), id.clone()).await,
        DistributionStatus::Deployed
    );

    let delete = Op::DeleteDistribution { id: id.clone() };
    let e = assert_error(
        c.act(&delete).await,
        ErrorKind::InvalidState,
        "DistributionNotDisabled",
    );
    assert!(e.is_retryable());
    c.act(&Op::UpdateDistribution {
        id: id.clone(),
        config: dist_config(false, &[]),
    })
    .await
    .unwrap();
    assert_eq!(
        status(c.clone(), id.clone()).await,
        DistributionStatus::InProgress
    );
    // Disabled, but not deployed yet.
    assert_error(
        c.act(&delete).await,
        ErrorKind::InvalidState,
        "DistributionNotDisabled",
    );
    clock.advance(Delays::default().deploy);
    c.act(&delete).await.unwrap();
    assert!(c.distribution(&id).await.unwrap().is_none());
    assert_error(
        c.act(&delete).await,
        ErrorKind::NotFound,
        "NoSuchDistribution",
    );
}

#[tokio::test]
async fn members_are_in_service_after_the_healthy_threshold_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let (c, clock) = open(dir.path(), Delays::default(), Faults::default());
    let dns = create_balancer(&c, "web").await;
    let (name, rest) = dns.split_once('-').unwrap();
    assert_eq!(name, "web");
    let (digits, suffix) = rest.split_once('.').unwrap();
    assert_eq!(digits.len(), 10);
    assert!(digits.chars().all(|c| c.is_ascii_digit()));
    assert_eq!(suffix, "us-east-1.elb.amazonaws.com");

    let ids = launch(&c, "app", ZONE_A, 2, "app").await;
    let register = Op::RegisterInstances {
        name: "web".into(),
        ids: ids.clone(),
    };
    // Only running instances are registered.
    assert_error(
        c.act(&register).await,
        ErrorKind::InvalidState,
        "InvalidInstance",
    );
    clock.advance(Delays::default().boot);
    c.act(&register).await.unwrap();

    // 30 s × 2 checks × 0.05 = 3 s.
    let states = |c: LocalCloud| async move {
        c.balancer_members(&"web".into(), BalancerType::Classic)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.state)
            .collect::<Vec<_>>()
    };
    assert_eq!(states(c.clone()).await, vec![MemberState::OutOfService; 2]);
    clock.advance(Duration::from_millis(2999));
    assert_eq!(states(c.clone()).await, vec![MemberState::OutOfService; 2]);
    clock.advance(Duration::from_millis(1));
    assert_eq!(states(c.clone()).await, vec![MemberState::InService; 2]);
    let o = c.observe(&stack()).await.unwrap();
    assert_eq!(o.balancers[0].members.len(), 2);
    assert_eq!(o.balancers[0].health_check, Some(health_check()));

    // Terminated: out of service while shutting down, then dropped.
    c.act(&Op::TerminateInstances {
        ids: vec![ids[0].clone()],
    })
    .await
    .unwrap();
    let members = c
        .balancer_members(&"web".into(), BalancerType::Classic)
        .await
        .unwrap();
    assert_eq!(members.len(), 2);
    assert!(
        members
            .iter()
            .any(|m| m.instance == ids[0] && m.state == MemberState::OutOfService)
    );
    clock.advance(Delays::default().shutdown);
    let members = c
        .balancer_members(&"web".into(), BalancerType::Classic)
        .await
        .unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].instance, ids[1]);

    // Lost as a crash would: dropped at once.
    c.lose_instance(&ids[1]).unwrap();
    assert!(
        c.balancer_members(&"web".into(), BalancerType::Classic)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        c.lose_instance(&ids[1]),
        Err(LocalError::AlreadyTerminated(_))
    ));
    assert!(matches!(
        c.lose_instance(&InstanceId::from("i-00000000000000000")),
        Err(LocalError::NoSuchInstance(_))
    ));
    assert_error(
        c.act(&Op::RegisterInstances {
            name: "nope".into(),
            ids: vec![],
        })
        .await,
        ErrorKind::NotFound,
        "LoadBalancerNotFound",
    );
}

#[tokio::test]
async fn with_zero_delays_members_are_in_service_at_once() {
    let c = LocalCloud::in_memory(
        config(Delays::zero(), Faults::default()),
        Arc::new(ManualClock::new(t0())),
    );
    create_balancer(&c, "web").await;
    let ids = launch(&c, "app", ZONE_A, 1, "app").await;
    c.act(&Op::RegisterInstances {
        name: "web".into(),
        ids: ids.clone(),
    })
    .await
    .unwrap();
    let m = c
        .balancer_members(&"web".into(), BalancerType::Classic)
        .await
        .unwrap();
    assert_eq!(m[0].state, MemberState::InService);
    // An instance in a zone the balancer does not serve is out of service.
    let far = launch(&c, "far", ZONE_B, 1, "far").await;
    c.act(&Op::RegisterInstances {
        name: "web".into(),
        ids: far.clone(),
    })
    .await
    .unwrap();
    let m = c
        .balancer_members(&"web".into(), BalancerType::Classic)
        .await
        .unwrap();
    let far_state = m.iter().find(|m| m.instance == far[0]).unwrap().state;
    assert_eq!(far_state, MemberState::OutOfService);
}

#[tokio::test]
async fn groups_in_use_or_referenced_cannot_be_deleted() {
    let c = LocalCloud::in_memory(
        config(Delays::zero(), Faults::default()),
        Arc::new(ManualClock::new(t0())),
    );
    let group = |name: &str| Op::CreateGroup {
        vpc: VpcId::from("vpc-default-us-east-1"),
        name: format!("shop-{name}").parse().unwrap(),
        description: format!("{name} servers"),
        tags: owned(Kind::SecurityGroup, name),
    };
    let Outcome::Group(web) = c.act(&group("web")).await.unwrap() else {
        panic!("no group");
    };
    let Outcome::Group(db) = c.act(&group("db")).await.unwrap() else {
        panic!("no group");
    };
    assert_error(
        c.act(&group("web")).await,
        ErrorKind::AlreadyExists,
        "InvalidGroup.Duplicate",
    );

    let from_web = CloudRule {
        protocol: Protocol::Tcp,
        ports: Some((5432, 5432)),
        source: CloudSource::Group(web.clone()),
    };
    let ssh = CloudRule {
        protocol: Protocol::Tcp,
        ports: Some((22, 22)),
        source: CloudSource::Cidr("203.0.113.7/32".into()),
    };
    c.act(&Op::AuthorizeIngress {
        group: db.clone(),
        rules: vec![from_web.clone(), ssh.clone()],
    })
    .await
    .unwrap();
    assert_error(
        c.act(&Op::AuthorizeIngress {
            group: db.clone(),
            rules: vec![ssh.clone()],
        })
        .await,
        ErrorKind::AlreadyExists,
        "InvalidPermission.Duplicate",
    );
    let mut bad = ssh.clone();
    bad.source = CloudSource::Cidr("203.0.113.7/33".into());
    assert_error(
        c.act(&Op::AuthorizeIngress {
            group: db.clone(),
            rules: vec![bad],
        })
        .await,
        ErrorKind::Invalid,
        "InvalidParameterValue",
    );

    let mut op = run_op("app", ZONE_A, 1, "app");
    if let Op::RunInstances { groups, .. } = &mut op {
        *groups = vec![web.clone()];
    }
    let Outcome::Instances(ids) = c.act(&op).await.unwrap() else {
        panic!("no instances");
    };
    let o = c.observe(&stack()).await.unwrap();
    assert_eq!(o.instances[0].groups, vec![web.clone()]);
    let db_group = o.security_groups.iter().find(|g| g.id == db).unwrap();
    assert_eq!(db_group.ingress, vec![from_web.clone(), ssh.clone()]);

    let delete_web = Op::DeleteGroup { group: web.clone() };
    let e = assert_error(
        c.act(&delete_web).await,
        ErrorKind::InvalidState,
        "DependencyViolation",
    );
    assert!(e.message.contains(ids[0].id.as_str()), "{e}");
    c.act(&Op::TerminateInstances {
        ids: ids.into_iter().map(|l| l.id).collect(),
    })
    .await
    .unwrap();
    // Still referenced by db's rule.
    let e = assert_error(
        c.act(&delete_web).await,
        ErrorKind::InvalidState,
        "DependencyViolation",
    );
    assert!(e.message.contains(db.as_str()), "{e}");
    c.act(&Op::RevokeIngress {
        group: db.clone(),
        rules: vec![from_web],
    })
    .await
    .unwrap();
    c.act(&delete_web).await.unwrap();
    assert_error(
        c.act(&delete_web).await,
        ErrorKind::NotFound,
        "InvalidGroup.NotFound",
    );
}

#[tokio::test]
async fn bad_requests_and_unknown_ids_get_aws_codes() {
    let c = LocalCloud::in_memory(
        config(Delays::zero(), Faults::default()),
        Arc::new(ManualClock::new(t0())),
    );
    let mut op = run_op("app", ZONE_A, 1, "");
    if let Op::RunInstances { image, .. } = &mut op {
        *image = "ami-nothex!".into();
    }
    assert_error(
        c.act(&op).await,
        ErrorKind::Invalid,
        "InvalidAMIID.Malformed",
    );
    // A zone of another region.
    assert_error(
        c.act(&run_op("app", "eu-west-1a", 1, "")).await,
        ErrorKind::Invalid,
        "InvalidParameterValue",
    );
    let mut op = run_op("app", ZONE_A, 1, "");
    if let Op::RunInstances { key_name, .. } = &mut op {
        *key_name = Some("missing".into());
    }
    assert_error(
        c.act(&op).await,
        ErrorKind::NotFound,
        "InvalidKeyPair.NotFound",
    );
    let mut op = run_op("app", ZONE_A, 1, "");
    if let Op::RunInstances { groups, .. } = &mut op {
        *groups = vec![GroupId::from("sg-0123456789abcdef0")];
    }
    assert_error(
        c.act(&op).await,
        ErrorKind::NotFound,
        "InvalidGroup.NotFound",
    );

    let i = InstanceId::from("i-0123456789abcdef0");
    let v = VolumeId::from("vol-0123456789abcdef0");
    assert_error(
        c.act(&attach(&v, &i)).await,
        ErrorKind::NotFound,
        "InvalidVolume.NotFound",
    );
    assert_error(
        c.act(&Op::SetInstanceGroups {
            instance: i.clone(),
            groups: vec![],
        })
        .await,
        ErrorKind::NotFound,
        "InvalidInstanceID.NotFound",
    );
    assert_error(
        c.act(&Op::ConfigureHealthCheck {
            name: "web".into(),
            health_check: health_check(),
        })
        .await,
        ErrorKind::NotFound,
        "LoadBalancerNotFound",
    );
    assert_error(
        c.act(&Op::DeleteBucket {
            name: "nope-bucket".into(),
        })
        .await,
        ErrorKind::NotFound,
        "NoSuchBucket",
    );
    assert_error(
        c.act(&Op::CreateBucket {
            name: "Not_A_Bucket".into(),
            tags: Tags::new(),
        })
        .await,
        ErrorKind::Invalid,
        "InvalidBucketName",
    );
    let bucket = Op::CreateBucket {
        name: "shop-assets".into(),
        tags: owned(Kind::Bucket, "shop-assets"),
    };
    c.act(&bucket).await.unwrap();
    assert_error(
        c.act(&bucket).await,
        ErrorKind::AlreadyExists,
        "BucketAlreadyOwnedByYou",
    );
    c.act(&Op::DeleteBucket {
        name: "shop-assets".into(),
    })
    .await
    .unwrap();

    let key = Op::CreateKeyPair {
        name: "main".into(),
        public_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH0 ops@example".into(),
        tags: owned(Kind::KeyPair, "main"),
    };
    c.act(&key).await.unwrap();
    assert_error(
        c.act(&key).await,
        ErrorKind::AlreadyExists,
        "InvalidKeyPair.Duplicate",
    );
    let o = c.observe(&stack()).await.unwrap();
    assert_eq!(o.key_pairs[0].cloud_name, "main");
    assert!(o.key_pairs[0].id.as_str().starts_with("key-"));
    assert_error(
        c.act(&Op::CreateKeyPair {
            name: "other".into(),
            public_key: "not a key".into(),
            tags: Tags::new(),
        })
        .await,
        ErrorKind::Invalid,
        "InvalidKey.Format",
    );
    let too_many: Tags = (0..51).map(|n| (format!("k{n}"), "v".to_owned())).collect();
    assert_error(
        c.act(&Op::CreateTags {
            target: TagTarget::KeyPair("main".into()),
            tags: too_many,
        })
        .await,
        ErrorKind::Invalid,
        "TagLimitExceeded",
    );
}

// ---- faults --------------------------------------------------------------

#[tokio::test]
async fn throttling_at_rate_one_fails_every_call_and_at_zero_none() {
    let always = LocalCloud::in_memory(
        config(
            Delays::zero(),
            Faults::parse("throttle=1.0,seed=3").unwrap(),
        ),
        Arc::new(ManualClock::new(t0())),
    );
    for _ in 0..20 {
        let e = assert_error(
            always.act(&run_op("app", ZONE_A, 1, "t")).await,
            ErrorKind::Throttled,
            "RequestLimitExceeded",
        );
        assert!(e.is_retryable());
        assert_eq!(
            always.observe(&stack()).await.unwrap_err().kind,
            ErrorKind::Throttled
        );
    }
    // Nothing happened.
    assert!(always.list().unwrap().is_empty());

    let never = LocalCloud::in_memory(
        config(Delays::zero(), Faults::parse("throttle=0,seed=3").unwrap()),
        Arc::new(ManualClock::new(t0())),
    );
    for n in 0..50 {
        never
            .act(&run_op("app", ZONE_A, 1, &format!("t{n}")))
            .await
            .unwrap();
        never.observe(&stack()).await.unwrap();
    }

    // In between, some calls fail and retrying gets through.
    let half = LocalCloud::in_memory(
        config(
            Delays::zero(),
            Faults::parse("throttle=0.5,seed=3").unwrap(),
        ),
        Arc::new(ManualClock::new(t0())),
    );
    let mut failures = 0;
    for n in 0..20 {
        loop {
            match half.act(&run_op("app", ZONE_A, 1, &format!("h{n}"))).await {
                Ok(_) => break,
                Err(e) => {
                    assert_eq!(e.kind, ErrorKind::Throttled);
                    failures += 1;
                }
            }
        }
    }
    assert!(failures > 0);
    // `list` is not subject to faults.
    assert_eq!(half.list().unwrap().len(), 20);
}

// ---- the file ------------------------------------------------------------

#[tokio::test]
async fn two_values_on_one_directory_share_one_world() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = open(dir.path(), Delays::zero(), Faults::default());
    let (b, _) = open(dir.path(), Delays::zero(), Faults::default());
    let ids = launch(&a, "app", ZONE_A, 1, "x").await;
    assert_eq!(b.instances(&ids).await.unwrap().len(), 1);
    // B's change is seen by A, whose cache is stale.
    b.act(&Op::TerminateInstances { ids: ids.clone() })
        .await
        .unwrap();
    assert_eq!(
        instance_state(&a, &ids[0]).await,
        Some(InstanceState::Terminated)
    );
    // A third value opened later sees the same, and tokens persist.
    drop((a, b));
    let (c, _) = open(dir.path(), Delays::zero(), Faults::default());
    assert_eq!(launch(&c, "app", ZONE_A, 1, "x").await, ids);
    assert!(dir.path().join("local-cloud.json").is_file());
    assert_eq!(
        c.state_file(),
        Some(dir.path().join("local-cloud.json").as_path())
    );
}

#[tokio::test]
async fn the_same_seed_gives_the_same_ids() {
    let mut seen = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = open(
            dir.path(),
            Delays::zero(),
            Faults::parse("seed=42").unwrap(),
        );
        let ids = launch(&c, "app", ZONE_A, 3, "t").await;
        let vol = create_volume(&c, "pgdata", ZONE_A, "v").await;
        let dns = create_balancer(&c, "web").await;
        seen.push((ids, vol, dns, c.observe(&stack()).await.unwrap()));
    }
    assert_eq!(seen[0], seen[1]);
}

#[test]
fn a_corrupt_state_file_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("local-cloud.json"), "{\"format\": ").unwrap();
    let err = LocalCloud::open(
        dir.path(),
        config(Delays::zero(), Faults::default()),
        Arc::new(ManualClock::new(t0())),
    )
    .unwrap_err();
    assert!(matches!(err, LocalError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("local-cloud.json"), "{err}");

    std::fs::write(
        dir.path().join("local-cloud.json"),
        r#"{"format": "converge-local-cloud", "version": 99}"#,
    )
    .unwrap();
    let err = LocalCloud::open(
        dir.path(),
        config(Delays::zero(), Faults::default()),
        Arc::new(ManualClock::new(t0())),
    )
    .unwrap_err();
    assert!(matches!(err, LocalError::Version { .. }), "{err:?}");
}

#[tokio::test]
async fn a_partial_temporary_file_is_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = open(dir.path(), Delays::zero(), Faults::default());
    let ids = launch(&c, "app", ZONE_A, 1, "x").await;
    // What a crash in the middle of a write leaves behind.
    std::fs::write(
        dir.path().join("local-cloud.json.tmp"),
        "{\"format\": \"conv",
    )
    .unwrap();
    let (d, _) = open(dir.path(), Delays::zero(), Faults::default());
    assert_eq!(d.instances(&ids).await.unwrap().len(), 1);
    // The next write replaces it.
    launch(&d, "app", ZONE_A, 1, "y").await;
    assert_eq!(d.observe(&stack()).await.unwrap().instances.len(), 2);
    assert!(!dir.path().join("local-cloud.json.tmp").exists());
}

#[test]
fn concurrent_writers_in_threads_lose_no_update_and_readers_see_whole_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A reader that parses the file as fast as it can: it must always be
    // complete JSON.
    let reader = {
        let path = path.join("local-cloud.json");
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(bytes) = std::fs::read(&path) {
                    serde_json::from_slice::<serde_json::Value>(&bytes)
                        .expect("the state file is always whole");
                    reads += 1;
                }
            }
            reads
        })
    };
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                // Each thread has its own value: only the file lock keeps
                // them apart, as between processes.
                let (c, _) = open(&path, Delays::zero(), Faults::default());
                for n in 0..15 {
                    rt.block_on(c.act(&Op::CreateBucket {
                        name: format!("bucket-{t}-{n}").parse().unwrap(),
                        tags: owned(Kind::Bucket, &format!("bucket-{t}-{n}")),
                    }))
                    .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(reader.join().unwrap() > 0);
    let (c, _) = open(&path, Delays::zero(), Faults::default());
    let buckets = c
        .list()
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == ResourceType::Bucket)
        .count();
    assert_eq!(buckets, 60);
}

/// Runs this test binary again as a child playing `role` in `dir`.
fn child(role: &str, dir: &Path, faults: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "local_cloud::child_process_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CONVERGE_LOCAL_CHILD", role)
        .env("CONVERGE_LOCAL_CHILD_DIR", dir)
        .env("CONVERGE_LOCAL_FAULTS", faults)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// The child's part (see [`child`]); a no-op in a normal test run.
#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var("CONVERGE_LOCAL_CHILD") else {
        return;
    };
    let dir = std::path::PathBuf::from(std::env::var("CONVERGE_LOCAL_CHILD_DIR").unwrap());
    let faults = Faults::parse(&std::env::var("CONVERGE_LOCAL_FAULTS").unwrap()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = LocalCloud::open(
        &dir,
        config(Delays::zero(), faults),
        Arc::new(converge::sys::SystemClock),
    )
    .unwrap();
    rt.block_on(async {
        match role.split_once(':') {
            // Five launches with distinct tokens (a crash may cut it short).
            Some(("launch", fleet)) => {
                for n in 0..5 {
                    launch(&c, fleet, ZONE_A, 1, &format!("{fleet}-{n}")).await;
                }
            }
            // Many small writes.
            Some(("buckets", prefix)) => {
                for n in 0..25 {
                    c.act(&Op::CreateBucket {
                        name: format!("{prefix}-{n}").parse().unwrap(),
                        tags: owned(Kind::Bucket, &format!("{prefix}-{n}")),
                    })
                    .await
                    .unwrap();
                }
            }
            _ => panic!("unknown child role {role}"),
        }
    });
}

#[test]
fn concurrent_writer_processes_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let kids: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|p| child(&format!("buckets:{p}"), dir.path(), ""))
        .collect();
    for k in kids {
        let out = k.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (c, _) = open(dir.path(), Delays::zero(), Faults::default());
    let buckets = c
        .list()
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == ResourceType::Bucket)
        .count();
    assert_eq!(buckets, 75);
}

#[tokio::test]
async fn crash_after_aborts_once_the_nth_change_is_saved_and_tokens_prevent_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let out = child("launch:db", dir.path(), "crash_after=3")
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success(), "the child should have crashed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("crash_after=3"), "{stderr}");

    // Exactly three launches were saved, and the world is whole.
    let (c, _) = open(dir.path(), Delays::zero(), Faults::default());
    assert_eq!(c.observe(&stack()).await.unwrap().instances.len(), 3);

    // Run again without the fault: the same tokens find the first three.
    let out = child("launch:db", dir.path(), "")
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(c.observe(&stack()).await.unwrap().instances.len(), 5);
}

// ---- ls ------------------------------------------------------------------

#[tokio::test]
async fn ls_lists_every_resource_in_an_aligned_table() {
    let c = LocalCloud::in_memory(
        config(Delays::zero(), Faults::default()),
        Arc::new(ManualClock::new(t0())),
    );
    assert_eq!(
        converge::cloud::local::format_table(&c.list().unwrap()),
        "the local cloud holds nothing\n"
    );
    let ids = launch(&c, "db", ZONE_A, 1, "db").await;
    let vol = create_volume(&c, "pgdata", ZONE_A, "v").await;
    c.act(&attach(&vol, &ids[0])).await.unwrap();
    create_balancer(&c, "web").await;
    c.act(&Op::CreateBucket {
        name: "shop-assets".into(),
        tags: owned(Kind::Bucket, "shop-assets"),
    })
    .await
    .unwrap();
    // A public origin: a private one needs origin access
    // (tests/cdn_content.rs).
    c.act(&Op::SetBucketPublicRead {
        name: "shop-assets".into(),
        public_read: true,
    })
    .await
    .unwrap();
    let rows = c.list().unwrap();
    let kinds: Vec<ResourceType> = rows.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            ResourceType::Instance,
            ResourceType::Volume,
            ResourceType::Balancer,
            ResourceType::Bucket
        ]
    );
    assert_eq!(rows[0].resource, "Fleet/db");
    assert_eq!(rows[0].zone, ZONE_A);
    assert!(
        rows[0].state.starts_with("running 10.0."),
        "{}",
        rows[0].state
    );
    assert_eq!(rows[1].resource, "Volume/pgdata");
    assert!(
        rows[1]
            .state
            .starts_with(&format!("in-use by {} at /dev/sdj", ids[0]))
    );
    assert_eq!(rows[2].state, "classic internet-facing, 0/0 healthy");

    let table = converge::cloud::local::format_table(&rows);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5);
    assert!(lines[0].starts_with("TYPE "));
    // Columns line up: every line has its ID column at the same offset.
    let id_col = lines[0].find("ID").unwrap();
    assert!(lines[1][id_col..].starts_with("i-"));
    assert!(lines[2][id_col..].starts_with("vol-"));
    assert!(lines[4][id_col..].starts_with("shop-assets"));
}

/// The launch `run_op` makes, with these options.
fn run_with(
    token: &str,
    profile: Option<&str>,
    metadata: MetadataOptions,
    root: Option<PlannedRootVolume>,
) -> Op {
    let mut op = run_op("app", ZONE_A, 1, token);
    if let Op::RunInstances {
        instance_profile,
        metadata: m,
        root_volume,
        ..
    } = &mut op
    {
        *instance_profile = profile.map(|p| InstanceProfile::new(p).unwrap());
        *m = metadata;
        *root_volume = root;
    }
    op
}

fn root(device: &str, size_gib: u32, volume_type: VolumeType) -> Option<PlannedRootVolume> {
    Some(PlannedRootVolume {
        device: device.into(),
        volume: RootVolume {
            size_gib,
            volume_type,
            encrypted: true,
        },
    })
}

/// The one instance observed in the stack.
async fn only_instance(c: &LocalCloud) -> converge::core::observed::ObservedInstance {
    let o = c.observe(&stack()).await.unwrap();
    assert_eq!(o.instances.len(), 1);
    o.instances[0].clone()
}

fn refused(r: Result<impl std::fmt::Debug, LocalError>, code: &str) {
    match r {
        Err(LocalError::Refused(e)) => assert_eq!(e.code, code, "{e}"),
        other => panic!("expected a refusal with {code}, got {other:?}"),
    }
}

#[tokio::test]
async fn instance_profiles_must_exist_and_associations_change_in_place() {
    let c = LocalCloud::in_memory(
        config(Delays::zero(), Faults::default()),
        Arc::new(ManualClock::new(t0())),
    );
    let md = MetadataOptions::DEFAULT;
    // Unknown to IAM: EC2 refuses the launch, by name and by ARN.
    let e = assert_error(
        c.act(&run_with("", Some("app-role"), md, None)).await,
        ErrorKind::Invalid,
        "InvalidParameterValue",
    );
    assert!(e.message.contains("iamInstanceProfile.name"), "{e}");
    let arn = "arn:aws:iam::123456789012:instance-profile/app-role";
    assert_error(
        c.act(&run_with("", Some(arn), md, None)).await,
        ErrorKind::Invalid,
        "InvalidParameterValue",
    );
    assert_eq!(c.add_instance_profile("app-role").unwrap(), arn);
    refused(c.add_instance_profile("app-role"), "EntityAlreadyExists");
    refused(c.add_instance_profile("no spaces"), "ValidationError");
    let other = c.add_instance_profile("other").unwrap();

    c.act(&run_with("t1", Some("app-role"), md, None))
        .await
        .unwrap();
    let i = only_instance(&c).await;
    let first = i.profile.clone().expect("associated at launch");
    assert_eq!(first.arn, arn);
    // One association per instance.
    assert_error(
        c.act(&Op::AssociateIamInstanceProfile {
            instance: i.id.clone(),
            profile: InstanceProfile::from("other"),
        })
        .await,
        ErrorKind::InvalidState,
        "IncorrectState",
    );
    // In use: IAM will not delete it.
    refused(c.remove_instance_profile("app-role"), "DeleteConflict");
    c.act(&Op::ReplaceIamInstanceProfileAssociation {
        association: first.id.clone(),
        profile: InstanceProfile::new(other.clone()).unwrap(),
    })
    .await
    .unwrap();
    let replaced = only_instance(&c).await.profile.unwrap();
    assert_eq!(replaced.arn, other);
    assert_ne!(replaced.id, first.id, "a new association replaces the old");
    // The old association is gone.
    assert_error(
        c.act(&Op::DisassociateIamInstanceProfile {
            association: first.id.clone(),
        })
        .await,
        ErrorKind::NotFound,
        "InvalidAssociationID.NotFound",
    );
    c.act(&Op::DisassociateIamInstanceProfile {
        association: replaced.id.clone(),
    })
    .await
    .unwrap();
    assert_eq!(only_instance(&c).await.profile, None);
    c.act(&Op::AssociateIamInstanceProfile {
        instance: i.id.clone(),
        profile: InstanceProfile::from("app-role"),
    })
    .await
    .unwrap();
    assert_eq!(only_instance(&c).await.profile.unwrap().arn, arn);
    assert_eq!(c.remove_instance_profile("other").unwrap(), other);
    refused(c.remove_instance_profile("other"), "NoSuchEntity");
    let rows = c.list().unwrap();
    let profiles: Vec<&str> = rows
        .iter()
        .filter(|r| r.kind == ResourceType::InstanceProfile)
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(profiles, ["app-role"]);
    let inst = rows
        .iter()
        .find(|r| r.kind == ResourceType::Instance)
        .unwrap();
    assert!(inst.state.contains("profile app-role"), "{}", inst.state);
}

#[tokio::test]
async fn metadata_options_take_ec2s_hop_limits_and_change_in_place() {
    let c = LocalCloud::in_memory(
        config(Delays::zero(), Faults::default()),
        Arc::new(ManualClock::new(t0())),
    );
    for hop_limit in [0, 65] {
        let m = MetadataOptions {
            tokens: HttpTokens::Required,
            hop_limit,
        };
        assert_error(
            c.act(&run_with("", None, m, None)).await,
            ErrorKind::Invalid,
            "InvalidParameterValue",
        );
    }
    c.act(&run_with("t", None, MetadataOptions::DEFAULT, None))
        .await
        .unwrap();
    let i = only_instance(&c).await;
    assert_eq!(i.metadata, MetadataOptions::DEFAULT);
    let v1 = MetadataOptions {
        tokens: HttpTokens::Optional,
        hop_limit: 1,
    };
    c.act(&Op::ModifyInstanceMetadataOptions {
        instance: i.id.clone(),
        metadata: v1,
    })
    .await
    .unwrap();
    assert_eq!(only_instance(&c).await.metadata, v1);
    assert_error(
        c.act(&Op::ModifyInstanceMetadataOptions {
            instance: i.id.clone(),
            metadata: MetadataOptions {
                tokens: HttpTokens::Required,
                hop_limit: 65,
            },
        })
        .await,
        ErrorKind::Invalid,
        "InvalidParameterValue",
    );
    assert_error(
        c.act(&Op::ModifyInstanceMetadataOptions {
            instance: InstanceId::from("i-0123456789abcdef0"),
            metadata: v1,
        })
        .await,
        ErrorKind::NotFound,
        "InvalidInstanceID.NotFound",
    );
    let rows = c.list().unwrap();
    assert!(
        rows[0]
            .state
            .contains("metadata tokens optional hop limit 1"),
        "{}",
        rows[0].state
    );
}

#[tokio::test]
async fn root_volumes_map_the_images_root_device_and_fit_its_snapshot() {
    let c = LocalCloud::in_memory(
        config(Delays::zero(), Faults::default()),
        Arc::new(ManualClock::new(t0())),
    );
    // Every image has its root on /dev/xvda from an 8 GiB snapshot.
    let image = converge::core::ids::ImageId::from("ami-147f977d");
    let images = c.images(std::slice::from_ref(&image)).await.unwrap();
    assert_eq!(images[&image].root_device_name, "/dev/xvda");
    assert_eq!(images[&image].root_snapshot_gib, Some(8));
    let malformed = converge::core::ids::ImageId::from("ami-nothex00");
    assert!(c.images(&[malformed]).await.unwrap().is_empty());
    let md = MetadataOptions::DEFAULT;
    let e = assert_error(
        c.act(&run_with(
            "",
            None,
            md,
            root("/dev/xvda", 4, VolumeType::Gp3),
        ))
        .await,
        ErrorKind::Invalid,
        "InvalidBlockDeviceMapping",
    );
    assert!(e.message.contains("expect size >= 8GB"), "{e}");
    assert_error(
        c.act(&run_with(
            "",
            None,
            md,
            root("/dev/sda1", 20, VolumeType::Gp3),
        ))
        .await,
        ErrorKind::Invalid,
        "InvalidBlockDeviceMapping",
    );
    // st1 starts at 125 GiB.
    assert_error(
        c.act(&run_with(
            "",
            None,
            md,
            root("/dev/xvda", 20, VolumeType::St1),
        ))
        .await,
        ErrorKind::Invalid,
        "InvalidParameterValue",
    );
    c.act(&run_with(
        "t",
        None,
        md,
        root("/dev/xvda", 20, VolumeType::Gp3),
    ))
    .await
    .unwrap();
    let rows = c.list().unwrap();
    assert!(
        rows[0].state.ends_with("root 20 GiB gp3, encrypted"),
        "{}",
        rows[0].state
    );
}

#[tokio::test]
async fn parameters_are_versioned_and_unknown_names_are_left_out() {
    let c = LocalCloud::in_memory(
        config(Delays::zero(), Faults::default()),
        Arc::new(ManualClock::new(t0())),
    );
    let name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";
    assert_eq!(c.put_parameter(name, "ami-147f977d").unwrap(), 1);
    assert_eq!(c.put_parameter(name, "ami-2b3c4d5e").unwrap(), 2);
    refused(c.put_parameter("has space", "x"), "ValidationException");
    refused(
        c.put_parameter("no/leading/slash", "x"),
        "ValidationException",
    );
    // More names than one call takes: batched, ten at a time.
    let mut names: Vec<ParameterName> = (0..11)
        .map(|n| ParameterName::new(format!("/unknown/{n}")).unwrap())
        .collect();
    names.push(ParameterName::new(name).unwrap());
    let got = c.parameters(&names).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[&ParameterName::new(name).unwrap()], "ami-2b3c4d5e");
    let rows = c.list().unwrap();
    assert_eq!(rows[0].kind, ResourceType::Parameter);
    assert_eq!(rows[0].state, "version 2: ami-2b3c4d5e");
    c.delete_parameter(name).unwrap();
    refused(c.delete_parameter(name), "ParameterNotFound");
    assert!(c.parameters(&names).await.unwrap().is_empty());
}
