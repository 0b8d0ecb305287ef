//! The stack lease on AWS ([`S3Lease`]) against a moto server (`source
//! scripts/moto.sh start` sets `CONVERGE_TEST_AWS_ENDPOINT`; without it
//! every test here says it was skipped and passes, unless
//! `CONVERGE_REQUIRE_MOTO` is set, as `scripts/test.sh` does, and then it
//! fails). Each test has an AWS account and a bucket of its own.
//!
//! moto 5.2.5 honours the conditional writes the lease relies on
//! (`If-None-Match: *` and `If-Match` on PutObject, `If-Match` on
//! DeleteObject, answering 412) but does not make the check and the write
//! atomic; the lease's read-back after each write covers the ordering the
//! concurrent test below produces (see `src/lease/s3.rs`).

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use converge::cloud::aws::{AwsCloud, AwsOptions};
use converge::core::ids::ResourceName;
use converge::lease::s3::S3Lease;
use converge::lease::{HolderId, Lease, LeaseError, acquire_waiting_every};
use converge::sys::ManualClock;
use jiff::Timestamp;
use std::sync::Arc;
use std::time::Duration;

const T0: &str = "2026-03-09T14:00:00Z";

struct Env {
    cloud: Arc<AwsCloud>,
    bucket: String,
    stack: ResourceName,
    clock: ManualClock,
}

/// A fresh account on the moto server, a bucket and a stack name of this
/// test's own.
async fn env(endpoint: String, test: &str) -> Env {
    let account = format!("{:012}", fastrand::u64(100_000_000_000..999_999_999_999));
    let cloud = AwsCloud::connect(
        AwsOptions {
            endpoint_url: Some(endpoint),
            moto_account: Some(account),
            initial_backoff: Some(Duration::from_millis(5)),
            ..AwsOptions::default()
        },
        "us-east-1",
    )
    .await
    .unwrap();
    let suffix = fastrand::u32(..);
    Env {
        cloud: Arc::new(cloud),
        // Bucket names are global on the server, across accounts.
        bucket: format!("converge-leases-{test}-{suffix}"),
        stack: ResourceName::new(format!("{test}-{suffix}")).unwrap(),
        clock: ManualClock::new(T0.parse().unwrap()),
    }
}

impl Env {
    fn lease(&self, holder: &str) -> S3Lease {
        S3Lease::new(
            &self.cloud,
            &self.bucket,
            &self.stack,
            Arc::new(self.clock.clone()),
        )
        .unwrap()
        .with_holder(HolderId::from(holder))
    }
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[tokio::test]
async fn two_holders_on_one_stack_only_one_wins() {
    let endpoint = moto_or_skip!();
    let env = env(endpoint, "two-holders").await;
    let a = env.lease("host-a-1");
    let b = env.lease("host-b-2");
    a.ensure_bucket().await.unwrap();
    // Again, as every start does: nothing to do.
    b.ensure_bucket().await.unwrap();
    assert_eq!(a.key(), format!("converge-leases/{}.json", env.stack));

    let got = a.acquire().await.unwrap();
    assert_eq!(got.holder, HolderId::from("host-a-1"));
    assert_eq!(got.expires_at, at("2026-03-09T14:01:00Z"));
    assert_eq!(got.took_over, None);

    let e = b.acquire().await.unwrap_err();
    match &e {
        LeaseError::Held {
            holder, expires_at, ..
        } => {
            assert_eq!(holder.as_str(), "host-a-1");
            assert_eq!(*expires_at, at("2026-03-09T14:01:00Z"));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        e.to_string().contains("is being changed by host-a-1"),
        "{e}"
    );
    // A non-holder can neither renew nor release it.
    assert!(matches!(
        b.renew().await,
        Err(LeaseError::Lost {
            holder: Some(_),
            ..
        })
    ));
    assert!(matches!(
        b.release().await,
        Err(LeaseError::Lost {
            holder: Some(_),
            ..
        })
    ));
    let stored = b.current().await.unwrap().unwrap();
    assert_eq!(stored.holder, HolderId::from("host-a-1"));
    assert_eq!(stored.stack, env.stack);

    // The holder renews and takes it again freely.
    env.clock.advance(Duration::from_secs(30));
    a.renew().await.unwrap();
    assert_eq!(
        a.current().await.unwrap().unwrap().expires_at,
        at("2026-03-09T14:01:30Z")
    );
    assert_eq!(a.acquire().await.unwrap().took_over, None);

    // Released, it is free for the other, and the first must take it
    // again rather than renew.
    a.release().await.unwrap();
    assert_eq!(a.current().await.unwrap(), None);
    a.release().await.unwrap();
    b.acquire().await.unwrap();
    assert!(matches!(a.renew().await, Err(LeaseError::Lost { .. })));
}

#[tokio::test]
async fn concurrent_holders_one_winner() {
    let endpoint = moto_or_skip!();
    let env = env(endpoint, "concurrent").await;
    env.lease("setup").ensure_bucket().await.unwrap();
    for round in 0..3 {
        let mut tasks = tokio::task::JoinSet::new();
        let leases: Vec<_> = (0..6)
            .map(|i| env.lease(&format!("holder-{round}-{i}")))
            .collect();
        for l in leases.clone() {
            tasks.spawn(async move { l.acquire().await });
        }
        let results = tasks.join_all().await;
        let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        for r in &results {
            if let Err(e) = r {
                assert!(
                    matches!(e, LeaseError::Held { .. } | LeaseError::Contended { .. }),
                    "{e:?}"
                );
            }
        }
        let stored = env.lease("reader").current().await.unwrap().unwrap();
        assert_eq!(stored.holder, winners[0].holder);
        let winner = leases
            .iter()
            .find(|l| *l.holder() == stored.holder)
            .unwrap();
        winner.release().await.unwrap();
    }
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_the_old_holder_told() {
    let endpoint = moto_or_skip!();
    let env = env(endpoint, "expiry").await;
    let a = env.lease("crashed").with_ttl(Duration::from_secs(20));
    let b = env.lease("successor");
    a.ensure_bucket().await.unwrap();
    a.acquire().await.unwrap();

    env.clock.advance(Duration::from_secs(19));
    assert!(matches!(b.acquire().await, Err(LeaseError::Held { .. })));
    // Waiting a little gives up with the holder's name.
    let e = acquire_waiting_every(&b, Duration::from_millis(30), Duration::from_millis(10))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("crashed"), "{e}");

    env.clock.advance(Duration::from_secs(1));
    let got = b.acquire().await.unwrap();
    assert_eq!(got.took_over, Some(HolderId::from("crashed")));
    assert_eq!(got.expires_at, at("2026-03-09T14:01:20Z"));

    let e = a.renew().await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "the lease on stack {} is not held by crashed: successor holds it",
            env.stack
        )
    );
    assert!(matches!(a.acquire().await, Err(LeaseError::Held { .. })));
    b.release().await.unwrap();
}

#[tokio::test]
async fn a_missing_bucket_is_a_clear_error() {
    let endpoint = moto_or_skip!();
    let env = env(endpoint, "no-bucket").await;
    let a = env.lease("a");
    let e = a.acquire().await.unwrap_err();
    let text = format!("{e:#}");
    assert!(
        text.contains(&format!("s3://{}/converge-leases/", env.bucket)),
        "{text}"
    );
    let source = std::error::Error::source(&e).unwrap().to_string();
    assert!(source.contains("NoSuchBucket"), "{source}");
}
