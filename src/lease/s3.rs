//! The stack lease on AWS ([`S3Lease`]): one S3 object,
//! `converge-leases/<stack>.json`, in a bucket the user names, holding a
//! [`LeaseRecord`]. No extra service has to be set up: the bucket is
//! created on first use ([`S3Lease::ensure_bucket`]) if it does not exist.
//! A dedicated bucket is best; it must not be one of the stack's own
//! buckets if those may be deleted.
//!
//! # Why two writers can never both win
//!
//! Every change is read → decide → conditional write → read back:
//!
//! - a free lease is created with `PutObject` and `If-None-Match: *`: S3
//!   stores it only if no object has that key;
//! - a lease is taken over (expired) or renewed with `PutObject` and
//!   `If-Match: <ETag read>`: S3 stores it only if nobody wrote since the
//!   read;
//! - it is released with `DeleteObject` and `If-Match: <ETag read>`.
//!
//! S3 evaluates these conditions atomically with the write (answering 412
//! `PreconditionFailed`, or 409 `ConditionalRequestConflict` for a
//! concurrent write), so of two writers that read the same state only one
//! can succeed; the other reads again and finds the lease held.
//!
//! Each write is then read back and the lease counts as taken only if the
//! stored record is exactly the one written. Against S3 this is belt and
//! braces (it also settles a write whose answer was lost and whose retry
//! was refused by its own condition). Against the moto emulator used in
//! the tests it matters more: moto 5.2.5 honours `If-None-Match: *` and
//! `If-Match` on `PutObject` and `If-Match` on `DeleteObject`, answering
//! 412, but checks the condition and then writes without a lock, from a
//! threaded server; two requests at the very same moment can both pass the
//! check. The read-back catches the writer whose record was overwritten
//! before it looked; and a holder that was overwritten later finds out at
//! its next renewal ([`LeaseError::Lost`]), before its next pass acts.
//!
//! # Permissions
//!
//! `s3:GetObject`, `s3:PutObject` and `s3:DeleteObject` on
//! `converge-leases/*` in the bucket, and `s3:ListBucket` on the bucket
//! (without it S3 answers a missing lease with 403 rather than
//! `NoSuchKey`); `s3:CreateBucket` only if [`S3Lease::ensure_bucket`] is
//! to create it.
//!
//! Expiry compares the reader's clock with the expiry the holder wrote
//! from its own clock, so the TTL must be well above the skew between
//! hosts (see [`crate::lease`]).

use crate::cloud::aws::{AwsCloud, sdk_error};
use crate::cloud::{CloudError, ErrorKind};
use crate::lease::{
    Acquired, DEFAULT_TTL, HolderId, Lease, LeaseError, LeaseRecord, check_stack, decide_acquire,
    decide_renew, lost,
};
use crate::sys::Clock;
use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use converge_core::ids::ResourceName;
use std::sync::Arc;
use std::time::Duration;

/// The key prefix of lease objects in the lease bucket.
pub const LEASE_PREFIX: &str = "converge-leases/";

/// Read-decide-write rounds before a change gives up as contended.
const ATTEMPTS: u32 = 4;

/// A stack's lease in S3 (see the module documentation). Cheap to clone;
/// clones are the same holder.
#[derive(Clone, Debug)]
pub struct S3Lease {
    s3: aws_sdk_s3::Client,
    region: String,
    bucket: String,
    key: String,
    stack: ResourceName,
    holder: HolderId,
    ttl: Duration,
    clock: Arc<dyn Clock>,
}

/// A lease as read, with the ETag its next write is conditional on.
struct Stored {
    record: LeaseRecord,
    etag: String,
}

/// What a write requires of the object.
enum Condition {
    /// That there is none.
    Absent,
    /// That it is unchanged since it was read.
    Unchanged(String),
}

impl S3Lease {
    /// The lease of `stack` in `bucket`, through `cloud`'s S3 client (its
    /// credentials, region, endpoint and call counter), for a fresh
    /// [`HolderId`], with [`DEFAULT_TTL`].
    pub fn new(
        cloud: &AwsCloud,
        bucket: impl Into<String>,
        stack: &ResourceName,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, LeaseError> {
        check_stack(stack)?;
        Ok(Self {
            s3: cloud.s3.clone(),
            region: cloud.region().to_owned(),
            bucket: bucket.into(),
            key: format!("{LEASE_PREFIX}{stack}.json"),
            stack: stack.clone(),
            holder: HolderId::generate(),
            ttl: DEFAULT_TTL,
            clock,
        })
    }

    /// The same lease with another TTL.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The same lease for another holder ID.
    pub fn with_holder(mut self, holder: HolderId) -> Self {
        self.holder = holder;
        self
    }

    /// The lease bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The lease object's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// `s3://bucket/key`, for messages.
    pub fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    fn failed(&self, action: &'static str, source: CloudError) -> LeaseError {
        LeaseError::Cloud {
            action,
            location: self.location(),
            source,
        }
    }

    /// Creates the lease bucket in the client's region unless it exists
    /// (and is readable). Safe to call every start.
    pub async fn ensure_bucket(&self) -> Result<(), LeaseError> {
        let head = self.s3.head_bucket().bucket(&self.bucket).send().await;
        match head {
            Ok(_) => return Ok(()),
            Err(SdkError::ServiceError(se)) if se.raw().status().as_u16() == 404 => {}
            Err(e) => return Err(self.failed("find the bucket of", sdk_error("HeadBucket", e))),
        }
        let mut create = self.s3.create_bucket().bucket(&self.bucket);
        if self.region != "us-east-1" {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(self.region.as_str()))
                    .build(),
            );
        }
        match create.send().await {
            Ok(_) => {
                tracing::info!(bucket = %self.bucket, "created the lease bucket");
                Ok(())
            }
            Err(e) => {
                let e = sdk_error("CreateBucket", e);
                // Created meanwhile by another converge of this account.
                if e.code == "BucketAlreadyOwnedByYou" {
                    Ok(())
                } else {
                    Err(self.failed("create the bucket of", e))
                }
            }
        }
    }

    async fn read(&self) -> Result<Option<Stored>, LeaseError> {
        let out = match self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(SdkError::ServiceError(se)) if se.err().is_no_such_key() => return Ok(None),
            Err(e) => return Err(self.failed("read", sdk_error("GetObject", e))),
        };
        let etag = out.e_tag().unwrap_or_default().to_owned();
        if etag.is_empty() {
            return Err(self.failed(
                "read",
                CloudError::new(
                    ErrorKind::Unavailable,
                    "GetObject",
                    "MissingETag",
                    "the answer has no ETag to make the next write conditional on",
                ),
            ));
        }
        let bytes = out.body.collect().await.map_err(|e| {
            self.failed(
                "read",
                CloudError::new(
                    ErrorKind::Unavailable,
                    "GetObject",
                    "ResponseError",
                    format!("reading the body failed: {e}"),
                ),
            )
        })?;
        let record =
            serde_json::from_slice(&bytes.into_bytes()).map_err(|source| LeaseError::Corrupt {
                location: self.location(),
                source,
            })?;
        Ok(Some(Stored { record, etag }))
    }

    /// Writes `record` if `condition` holds; `false` when it did not.
    async fn put(&self, record: &LeaseRecord, condition: Condition) -> Result<bool, LeaseError> {
        let mut body = serde_json::to_vec_pretty(record).map_err(|source| LeaseError::Corrupt {
            location: self.location(),
            source,
        })?;
        body.push(b'\n');
        let mut req = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .content_type("application/json")
            .cache_control("no-store")
            .body(ByteStream::from(body));
        req = match condition {
            Condition::Absent => req.if_none_match("*"),
            Condition::Unchanged(etag) => req.if_match(etag),
        };
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(self.failed("write", sdk_error("PutObject", e))),
        }
    }

    /// Deletes the object if unchanged since `etag` was read; `false` when
    /// it changed.
    async fn delete(&self, etag: &str) -> Result<bool, LeaseError> {
        match self
            .s3
            .delete_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .if_match(etag)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(self.failed("delete", sdk_error("DeleteObject", e))),
        }
    }

    /// Reads the lease back after a write: `Ok` when it is `record`,
    /// else why not.
    async fn verify(&self, record: &LeaseRecord, wrote: bool) -> Result<Verdict, LeaseError> {
        let after = self.read().await?;
        Ok(match after {
            Some(a) if a.record == *record => Verdict::Ours,
            // Overwritten after our write: someone else holds it now.
            Some(a) if wrote => Verdict::Other(a.record),
            // Our write was refused (or the object vanished): decide again.
            _ => Verdict::Retry,
        })
    }
}

/// What reading back a write found.
enum Verdict {
    Ours,
    Other(LeaseRecord),
    Retry,
}

/// Whether S3 refused a request because its condition did not hold: 412
/// `PreconditionFailed`, 409 `ConditionalRequestConflict` (a concurrent
/// conditional write), or 404 for an `If-Match` on an object deleted
/// meanwhile (`NoSuchKey`; but not `NoSuchBucket`).
fn condition_failed<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    match e {
        SdkError::ServiceError(se) => match se.raw().status().as_u16() {
            409 | 412 => true,
            404 => se.err().code() != Some("NoSuchBucket"),
            _ => false,
        },
        _ => false,
    }
}

#[async_trait]
impl Lease for S3Lease {
    fn holder(&self) -> &HolderId {
        &self.holder
    }

    fn stack(&self) -> &ResourceName {
        &self.stack
    }

    fn ttl(&self) -> Duration {
        self.ttl
    }

    async fn acquire(&self) -> Result<Acquired, LeaseError> {
        for _ in 0..ATTEMPTS {
            let current = self.read().await?;
            let now = self.clock.now();
            let (record, took_over) = decide_acquire(
                current.as_ref().map(|c| &c.record),
                &self.stack,
                &self.holder,
                now,
                self.ttl,
            )?;
            let condition = match current {
                None => Condition::Absent,
                Some(c) => Condition::Unchanged(c.etag),
            };
            let wrote = self.put(&record, condition).await?;
            match self.verify(&record, wrote).await? {
                Verdict::Ours => {
                    return Ok(Acquired {
                        holder: record.holder,
                        expires_at: record.expires_at,
                        took_over,
                    });
                }
                Verdict::Other(other) => {
                    return Err(LeaseError::Held {
                        stack: self.stack.clone(),
                        holder: other.holder,
                        expires_at: other.expires_at,
                    });
                }
                Verdict::Retry => {}
            }
        }
        Err(LeaseError::Contended {
            stack: self.stack.clone(),
            attempts: ATTEMPTS,
        })
    }

    async fn renew(&self) -> Result<(), LeaseError> {
        for _ in 0..ATTEMPTS {
            let Some(current) = self.read().await? else {
                return Err(lost(&self.stack, &self.holder, None));
            };
            let now = self.clock.now();
            let record = decide_renew(
                Some(&current.record),
                &self.stack,
                &self.holder,
                now,
                self.ttl,
            )?;
            let wrote = self
                .put(&record, Condition::Unchanged(current.etag))
                .await?;
            match self.verify(&record, wrote).await? {
                Verdict::Ours => return Ok(()),
                Verdict::Other(other) => {
                    return Err(lost(&self.stack, &self.holder, Some(&other)));
                }
                Verdict::Retry => {}
            }
        }
        Err(LeaseError::Contended {
            stack: self.stack.clone(),
            attempts: ATTEMPTS,
        })
    }

    async fn release(&self) -> Result<(), LeaseError> {
        for _ in 0..ATTEMPTS {
            let Some(current) = self.read().await? else {
                return Ok(());
            };
            if current.record.holder != self.holder {
                return Err(lost(&self.stack, &self.holder, Some(&current.record)));
            }
            if self.delete(&current.etag).await? {
                return Ok(());
            }
        }
        Err(LeaseError::Contended {
            stack: self.stack.clone(),
            attempts: ATTEMPTS,
        })
    }

    async fn current(&self) -> Result<Option<LeaseRecord>, LeaseError> {
        Ok(self.read().await?.map(|s| s.record))
    }
}
