//! S3 buckets. S3 cannot list buckets by tag, so observing is one
//! ListBuckets restricted to the stack's region, then GetBucketTagging for
//! each bucket not already known to be someone else's (the verdict is kept
//! for the life of the process, keyed by the bucket's creation time), and
//! GetBucketPolicy for each of the stack's own buckets (public read).
//!
//! `publicRead` is a bucket-policy statement with the Sid
//! [`PUBLIC_READ_SID`] granting `s3:GetObject` to everyone, with the
//! public-access block relaxed for policies only (ACLs stay blocked);
//! other statements of the policy are kept as they are.
//!
//! The statements that let distributions read a private bucket (Sid
//! `converge-cdn-CDN`) are read from the same GetBucketPolicy and written
//! the same way; a bucket's content is listed with ListObjectsV2 pages
//! (1000 keys each), uploaded with single PUTs and deleted with
//! DeleteObjects (issue 11 B).

use super::error::{refuse, sdk_error};
use super::{AwsCloud, bounded, tags_from};
use crate::cloud::{Body, CloudError, ErrorKind, Outcome, answered_id};
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, Delete, ObjectIdentifier,
    PublicAccessBlockConfiguration, Tag, Tagging,
};
use converge_core::desired::Tags;
use converge_core::ids::{DistributionId, Kind, ResourceName};
use converge_core::observed::{ObservedBucket, ObservedObject, Owner};
use converge_core::s3::{
    MAX_DELETE_KEYS, MAX_PUT_BYTES, grant_statement, read_grants, with_statement,
};
use serde_json::{Value, json};

/// The Sid of the policy statement converge manages.
pub const PUBLIC_READ_SID: &str = "ConvergePublicRead";

/// What GetBucketTagging says about a bucket.
enum BucketTags {
    Missing,
    Tagged(Tags),
    /// It exists but is not readable here (another account's, or another
    /// region's).
    Unreadable(CloudError),
}

fn s3_tags(tags: &Tags, op: &'static str) -> Result<Vec<Tag>, CloudError> {
    tags.iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| refuse(op, "InvalidTag", e.to_string()))
        })
        .collect()
}

/// Whether a policy document holds converge's public-read statement.
pub(super) fn has_public_read(policy: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<Value>(policy) else {
        return false;
    };
    statements(&doc).iter().any(|s| {
        s.get("Sid").and_then(Value::as_str) == Some(PUBLIC_READ_SID)
            && s.get("Effect").and_then(Value::as_str) == Some("Allow")
    })
}

fn statements(doc: &Value) -> Vec<Value> {
    match doc.get("Statement") {
        Some(Value::Array(v)) => v.clone(),
        Some(s @ Value::Object(_)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// The policy with converge's statement added or removed, other statements
/// kept; `None` when nothing is left.
pub(super) fn with_public_read(policy: Option<&str>, bucket: &str, public: bool) -> Option<String> {
    let doc: Value = policy
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_else(|| json!({ "Version": "2012-10-17" }));
    let mut kept: Vec<Value> = statements(&doc)
        .into_iter()
        .filter(|s| s.get("Sid").and_then(Value::as_str) != Some(PUBLIC_READ_SID))
        .collect();
    if public {
        kept.push(json!({
            "Sid": PUBLIC_READ_SID,
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": format!("arn:aws:s3:::{bucket}/*"),
        }));
    }
    if kept.is_empty() {
        return None;
    }
    let mut doc = doc;
    if let Some(o) = doc.as_object_mut() {
        o.insert("Statement".into(), Value::Array(kept));
    }
    Some(doc.to_string())
}

impl AwsCloud {
    pub(super) async fn observe_buckets(
        &self,
        stack: &ResourceName,
    ) -> Result<Vec<ObservedBucket>, CloudError> {
        let mut all: Vec<(String, Option<i64>)> = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .s3
                .list_buckets()
                .bucket_region(&self.region)
                .max_buckets(10_000)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_error("ListBuckets", e))?;
            all.extend(
                out.buckets().iter().filter_map(|b| {
                    Some((b.name()?.to_owned(), b.creation_date().map(|d| d.secs())))
                }),
            );
            match out.continuation_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => break,
            }
        }
        let candidates: Vec<(String, Option<i64>)> = {
            let foreign = super::lock(&self.foreign_buckets);
            all.into_iter()
                .filter(|(name, created)| foreign.get(name) != Some(created))
                .collect()
        };
        let s3 = self.s3.clone();
        let stack2 = stack.clone();
        let seen = bounded(candidates, 8, move |(name, created)| {
            let s3 = s3.clone();
            let stack = stack2.clone();
            async move {
                let t = match bucket_tags(&s3, &name).await? {
                    BucketTags::Tagged(t) => t,
                    BucketTags::Missing => return Ok((name, created, None, false)),
                    BucketTags::Unreadable(_) => return Ok((name, created, None, true)),
                };
                let owner = Owner::from_tags(&t);
                let foreign = owner.is_none();
                let Some(owner) = owner.filter(|o| o.stack == stack && o.kind == Kind::Bucket)
                else {
                    return Ok((name, created, None, foreign));
                };
                let policy = bucket_policy(&s3, &name).await?;
                let public_read = policy.as_deref().is_some_and(has_public_read);
                let cdn_grants = policy
                    .as_deref()
                    .and_then(|p| read_grants(p, &name).ok())
                    .unwrap_or_default();
                Ok((
                    name.clone(),
                    created,
                    Some(ObservedBucket {
                        name: answered_id("ListBuckets", name)?,
                        owner,
                        public_read,
                        tags: t,
                        cdn_grants,
                        objects: None,
                    }),
                    false,
                ))
            }
        })
        .await?;
        let mut out = Vec::new();
        let mut foreign = super::lock(&self.foreign_buckets);
        for (name, created, bucket, is_foreign) in seen {
            if is_foreign {
                foreign.insert(name, created);
            }
            out.extend(bucket);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub(super) async fn create_bucket(
        &self,
        name: &str,
        tags: &Tags,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "CreateBucket";
        // A bucket name is global and CreateBucket in us-east-1 succeeds on
        // a bucket one owns already: look first, and never adopt a bucket
        // that is not this stack's.
        match bucket_tags(&self.s3, name).await? {
            BucketTags::Missing => {}
            BucketTags::Tagged(t) => {
                let mine = Owner::from_tags(&t).is_some()
                    && Owner::from_tags(&t) == Owner::from_tags(tags);
                if !mine {
                    return Err(refuse(
                        OP,
                        "BucketAlreadyOwnedByYou",
                        format!(
                            "bucket {name} exists and is not this stack's (no matching converge tags)"
                        ),
                    ));
                }
                self.put_tags(name, tags).await?;
                return Ok(Outcome::Done);
            }
            BucketTags::Unreadable(e) => {
                return Err(refuse(
                    OP,
                    "BucketAlreadyExists",
                    format!(
                        "bucket name {name} is taken by another account or region ({}: {})",
                        e.code, e.message
                    ),
                ));
            }
        }
        let mut config = CreateBucketConfiguration::builder().set_tags(Some(s3_tags(tags, OP)?));
        if self.region != "us-east-1" {
            config =
                config.location_constraint(BucketLocationConstraint::from(self.region.as_str()));
        }
        match self
            .s3
            .create_bucket()
            .bucket(name)
            .create_bucket_configuration(config.build())
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) => {
                let e = sdk_error(OP, e);
                if e.code == "BucketAlreadyExists" {
                    return Err(refuse(
                        OP,
                        &e.code,
                        format!("bucket name {name} is taken: {}", e.message),
                    ));
                }
                // BucketAlreadyOwnedByYou: a concurrent or retried create;
                // the tagging below settles whose it is.
                if e.code != "BucketAlreadyOwnedByYou" {
                    return Err(e);
                }
            }
        }
        // Tags were sent with the create; set them again for emulators that
        // ignore tags at creation (idempotent on AWS).
        self.put_tags(name, tags).await?;
        Ok(Outcome::Done)
    }

    async fn put_tags(&self, name: &str, tags: &Tags) -> Result<(), CloudError> {
        const OP: &str = "PutBucketTagging";
        let tagging = Tagging::builder()
            .set_tag_set(Some(s3_tags(tags, OP)?))
            .build()
            .map_err(|e| refuse(OP, "InvalidTag", e.to_string()))?;
        self.s3
            .put_bucket_tagging()
            .bucket(name)
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| sdk_error(OP, e))?;
        Ok(())
    }

    async fn current_tags(&self, name: &str, op: &'static str) -> Result<Tags, CloudError> {
        match bucket_tags(&self.s3, name).await? {
            BucketTags::Tagged(t) => Ok(t),
            BucketTags::Missing => Err(CloudError::new(
                ErrorKind::NotFound,
                op,
                "NoSuchBucket",
                format!("bucket {name} does not exist"),
            )),
            BucketTags::Unreadable(e) => Err(e),
        }
    }

    pub(super) async fn tag_bucket(&self, name: &str, tags: &Tags) -> Result<Outcome, CloudError> {
        // S3 replaces the whole tag set: merge.
        let mut t = self.current_tags(name, "PutBucketTagging").await?;
        t.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.put_tags(name, &t).await?;
        Ok(Outcome::Done)
    }

    pub(super) async fn untag_bucket(
        &self,
        name: &str,
        keys: &[String],
    ) -> Result<Outcome, CloudError> {
        let mut t = self.current_tags(name, "PutBucketTagging").await?;
        t.retain(|k, _| !keys.contains(k));
        if t.is_empty() {
            self.s3
                .delete_bucket_tagging()
                .bucket(name)
                .send()
                .await
                .map_err(|e| sdk_error("DeleteBucketTagging", e))?;
        } else {
            self.put_tags(name, &t).await?;
        }
        Ok(Outcome::Done)
    }

    pub(super) async fn set_public_read(
        &self,
        name: &str,
        public: bool,
    ) -> Result<Outcome, CloudError> {
        let current = bucket_policy(&self.s3, name).await?;
        if public {
            // Public policies must not be blocked; public ACLs stay blocked.
            self.put_access_block(name, false).await?;
        }
        self.write_policy(
            name,
            current.as_deref(),
            with_public_read(current.as_deref(), name, public),
        )
        .await?;
        if !public {
            self.put_access_block(name, true).await?;
        }
        Ok(Outcome::Done)
    }

    async fn put_access_block(&self, name: &str, block_policies: bool) -> Result<(), CloudError> {
        self.s3
            .put_public_access_block()
            .bucket(name)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(block_policies)
                    .restrict_public_buckets(block_policies)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_error("PutPublicAccessBlock", e))?;
        Ok(())
    }

    pub(super) async fn delete_bucket(&self, name: &str) -> Result<Outcome, CloudError> {
        const OP: &str = "DeleteBucket";
        match self.s3.delete_bucket().bucket(name).send().await {
            Ok(_) => Ok(Outcome::Done),
            Err(e) => {
                let e = sdk_error(OP, e);
                if e.code == "BucketNotEmpty" {
                    // Never retried, never forced: converge does not delete
                    // objects.
                    return Err(refuse(
                        OP,
                        &e.code,
                        format!(
                            "bucket {name} is not empty; converge never deletes objects: empty it first"
                        ),
                    ));
                }
                Err(e)
            }
        }
    }
}

async fn bucket_tags(s3: &aws_sdk_s3::Client, name: &str) -> Result<BucketTags, CloudError> {
    match s3.get_bucket_tagging().bucket(name).send().await {
        Ok(out) => Ok(BucketTags::Tagged(tags_from(
            out.tag_set()
                .iter()
                .map(|t| (Some(t.key()), Some(t.value()))),
        ))),
        Err(e) => {
            let e = sdk_error("GetBucketTagging", e);
            match e.code.as_str() {
                "NoSuchTagSet" | "NoSuchTagSetError" => Ok(BucketTags::Tagged(Tags::new())),
                "NoSuchBucket" => Ok(BucketTags::Missing),
                _ if matches!(e.kind, ErrorKind::AccessDenied)
                    || e.code == "PermanentRedirect"
                    || e.code == "AuthorizationHeaderMalformed" =>
                {
                    Ok(BucketTags::Unreadable(e))
                }
                _ => Err(e),
            }
        }
    }
}

async fn bucket_policy(s3: &aws_sdk_s3::Client, name: &str) -> Result<Option<String>, CloudError> {
    match s3.get_bucket_policy().bucket(name).send().await {
        Ok(out) => Ok(out.policy().map(str::to_owned)),
        Err(e) => {
            let e = sdk_error("GetBucketPolicy", e);
            if e.code == "NoSuchBucketPolicy" {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

impl AwsCloud {
    /// Writes a policy, or deletes it when `None` (and there is one).
    async fn write_policy(
        &self,
        name: &str,
        current: Option<&str>,
        policy: Option<String>,
    ) -> Result<Outcome, CloudError> {
        match policy {
            Some(policy) => {
                self.s3
                    .put_bucket_policy()
                    .bucket(name)
                    .policy(policy)
                    .send()
                    .await
                    .map_err(|e| sdk_error("PutBucketPolicy", e))?;
            }
            None if current.is_some() => {
                self.s3
                    .delete_bucket_policy()
                    .bucket(name)
                    .send()
                    .await
                    .map_err(|e| sdk_error("DeleteBucketPolicy", e))?;
            }
            None => {}
        }
        Ok(Outcome::Done)
    }

    /// PutBucketPolicy of a whole document, which converge checks is JSON
    /// first (S3 answers `MalformedPolicy`; the emulator accepts it).
    pub(super) async fn put_policy(&self, name: &str, policy: &str) -> Result<Outcome, CloudError> {
        with_statement(Some(policy), "", None)
            .map_err(|m| refuse("PutBucketPolicy", "MalformedPolicy", m))?;
        let current = bucket_policy(&self.s3, name).await?;
        self.write_policy(name, current.as_deref(), Some(policy.to_owned()))
            .await
    }

    /// Writes the statement that lets a distribution read the bucket,
    /// keeping the other statements.
    pub(super) async fn put_cdn_grant(
        &self,
        name: &str,
        sid: &str,
        distribution: &DistributionId,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "PutBucketPolicy";
        let arn = self.arn(distribution, OP).await?;
        let current = bucket_policy(&self.s3, name).await?;
        let statement = grant_statement(sid, name, &arn);
        let policy = with_statement(current.as_deref(), sid, Some(&statement))
            .map_err(|m| refuse(OP, "MalformedPolicy", m))?;
        self.write_policy(name, current.as_deref(), policy).await
    }

    /// Removes a distribution's statement; the policy goes when empty.
    pub(super) async fn remove_cdn_grant(
        &self,
        name: &str,
        sid: &str,
    ) -> Result<Outcome, CloudError> {
        let current = bucket_policy(&self.s3, name).await?;
        let policy = with_statement(current.as_deref(), sid, None)
            .map_err(|m| refuse("PutBucketPolicy", "MalformedPolicy", m))?;
        self.write_policy(name, current.as_deref(), policy).await
    }

    /// A bucket's objects under a prefix: ListObjectsV2, 1000 keys a page.
    pub(super) async fn list_objects(
        &self,
        name: &str,
        prefix: &str,
    ) -> Result<Vec<ObservedObject>, CloudError> {
        const OP: &str = "ListObjectsV2";
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(name)
                .prefix(prefix)
                .max_keys(1000)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_error(OP, e))?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                out.push(ObservedObject {
                    key: key.to_owned(),
                    etag: o.e_tag().unwrap_or_default().trim_matches('"').to_owned(),
                    size: u64::try_from(o.size().unwrap_or_default()).unwrap_or_default(),
                    metadata: None,
                });
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) && !t.is_empty() => {
                    token = Some(t.to_owned());
                }
                _ => break,
            }
        }
        Ok(out)
    }

    /// One PUT of an object, at most 5 GiB (checked first: converge does
    /// no multipart uploads).
    pub(super) async fn put_object(
        &self,
        name: &str,
        key: &str,
        body: &Body,
        content_type: &str,
        cache_control: Option<&str>,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "PutObject";
        if body.0.len() as u64 > MAX_PUT_BYTES {
            return Err(refuse(
                OP,
                "EntityTooLarge",
                format!("{key} is over 5 GiB, the most one PUT uploads"),
            ));
        }
        self.s3
            .put_object()
            .bucket(name)
            .key(key)
            .body(body.0.clone().into())
            .content_type(content_type)
            .set_cache_control(cache_control.map(str::to_owned))
            .send()
            .await
            .map_err(|e| sdk_error(OP, e))?;
        Ok(Outcome::Done)
    }

    /// DeleteObjects, at most 1000 keys (checked first); a key that fails
    /// fails the call.
    pub(super) async fn delete_objects(
        &self,
        name: &str,
        keys: &[String],
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "DeleteObjects";
        if keys.is_empty() || keys.len() > MAX_DELETE_KEYS {
            return Err(refuse(
                OP,
                "MalformedXML",
                format!(
                    "DeleteObjects takes 1 to {MAX_DELETE_KEYS} keys, not {}",
                    keys.len()
                ),
            ));
        }
        let objects = keys
            .iter()
            .map(|k| {
                ObjectIdentifier::builder()
                    .key(k)
                    .build()
                    .map_err(|e| refuse(OP, "InvalidArgument", e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| refuse(OP, "InvalidArgument", e.to_string()))?;
        let out = self
            .s3
            .delete_objects()
            .bucket(name)
            .delete(delete)
            .send()
            .await
            .map_err(|e| sdk_error(OP, e))?;
        if let Some(err) = out.errors().first() {
            return Err(CloudError::new(
                ErrorKind::Unavailable,
                OP,
                err.code().unwrap_or("InternalError"),
                format!(
                    "{}: {}",
                    err.key().unwrap_or_default(),
                    err.message().unwrap_or_default()
                ),
            ));
        }
        Ok(Outcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_read_is_added_and_removed_keeping_other_statements() {
        let other = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Logs","Effect":"Allow","Principal":{"Service":"logging.s3.amazonaws.com"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*"}]}"#;
        let with = with_public_read(Some(other), "b", true).expect("a policy");
        assert!(has_public_read(&with));
        assert!(with.contains("\"Logs\""));
        let without = with_public_read(Some(&with), "b", false).expect("the other statement");
        assert!(!has_public_read(&without));
        assert!(without.contains("\"Logs\""));
        let only = with_public_read(None, "b", true).expect("a policy");
        assert!(only.contains("arn:aws:s3:::b/*"));
        assert_eq!(with_public_read(Some(&only), "b", false), None);
        assert!(!has_public_read("not json"));
    }
}
