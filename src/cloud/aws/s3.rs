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

use super::error::{refuse, sdk_error};
use super::{AwsCloud, bounded, tags_from};
use crate::cloud::{CloudError, ErrorKind, Outcome, answered_id};
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, PublicAccessBlockConfiguration, Tag,
    Tagging,
};
use converge_core::desired::Tags;
use converge_core::ids::{Kind, ResourceName};
use converge_core::observed::{ObservedBucket, Owner};
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
                let public_read = public_read(&s3, &name).await?;
                Ok((
                    name.clone(),
                    created,
                    Some(ObservedBucket {
                        name: answered_id("ListBuckets", name)?,
                        owner,
                        public_read,
                        tags: t,
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
        match with_public_read(current.as_deref(), name, public) {
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

async fn public_read(s3: &aws_sdk_s3::Client, name: &str) -> Result<bool, CloudError> {
    Ok(bucket_policy(s3, name)
        .await?
        .is_some_and(|p| has_public_read(&p)))
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
