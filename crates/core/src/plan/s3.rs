//! Planning S3 buckets: created, their public-read setting and tags set
//! back, and deleted (after the distributions that use them) only when
//! their deletion policy says so; their declared content uploaded when
//! new or changed and deleted when gone (issue 11 B).

use crate::desired::{BucketContent, BucketSpec, ContentFile, DeletionPolicy, Tags};
use crate::ids::{Kind, ResourceKey, ResourceName, tags};
use crate::observed::{ObjectMetadata, ObservedBucket, ObservedObject};
use crate::plan::{
    ChangeAction, FieldDiff, Planner, Produced, SHOWN_NAMES, Step, StepId, TagTarget, Value,
    update_if,
};
use crate::s3::{CONTENT_TAG, content_digest, glob_match};
use std::collections::BTreeMap;

/// What the plan does to a bucket's content, for the distributions that
/// serve it.
#[derive(Clone, Debug, Default)]
pub(crate) struct PlannedContent {
    /// The upload and delete steps.
    pub(crate) steps: Vec<StepId>,
    /// Keys whose cached copies are stale: changed and deleted ones.
    pub(crate) stale: Vec<String>,
    /// A digest of what changes (for invalidation caller references).
    pub(crate) digest: String,
}

/// A bucket's content against its objects.
#[derive(Debug, Default)]
struct ContentDiff<'a> {
    added: Vec<&'a ContentFile>,
    changed: Vec<&'a ContentFile>,
    deleted: Vec<String>,
}

/// Compares declared files with observed objects: a file is changed when
/// its MD5 is not the object's ETag (a multipart ETag, with `-`, never
/// is), its size differs, or its headers do (as listed, or as the
/// bucket's `converge:content` tag records them: `headers_current`).
fn diff_content<'a>(
    c: &'a BucketContent,
    objects: &[ObservedObject],
    headers_current: bool,
    exclude: &[String],
) -> ContentDiff<'a> {
    let by_key: BTreeMap<&str, &ObservedObject> =
        objects.iter().map(|o| (o.key.as_str(), o)).collect();
    let mut out = ContentDiff::default();
    for f in &c.files {
        let Some(o) = by_key.get(f.key.as_str()) else {
            out.added.push(f);
            continue;
        };
        let want = ObjectMetadata {
            content_type: f.content_type.clone(),
            cache_control: c.cache_control.clone(),
        };
        let headers_ok = match &o.metadata {
            Some(m) => *m == want,
            None => headers_current,
        };
        if o.etag.contains('-') || o.etag != f.md5 || o.size != f.size || !headers_ok {
            out.changed.push(f);
        }
    }
    if c.delete {
        let declared: std::collections::BTreeSet<&str> =
            c.files.iter().map(|f| f.key.as_str()).collect();
        out.deleted = objects
            .iter()
            .map(|o| o.key.as_str())
            .filter(|k| k.starts_with(&c.prefix) && !declared.contains(k))
            .filter(|k| {
                let rel = &k[c.prefix.len()..];
                !exclude.iter().any(|g| glob_match(g, rel))
            })
            .map(str::to_owned)
            .collect();
    }
    out
}

/// The first names of a list, then how many more, as a plan field.
fn names_field(field: &str, names: Vec<&str>, removed: bool) -> FieldDiff {
    let total = names.len();
    let mut shown: Vec<String> = names
        .into_iter()
        .take(SHOWN_NAMES)
        .map(str::to_owned)
        .collect();
    if total > SHOWN_NAMES {
        shown.push(format!("… and {} more", total - SHOWN_NAMES));
    }
    let v = Some(Value::List(shown));
    let (before, after) = if removed { (v, None) } else { (None, v) };
    FieldDiff {
        field: field.into(),
        before,
        after,
        forces_replacement: false,
    }
}

impl<'a> Planner<'a> {
    /// Plans every declared bucket, and marks those the manifests no
    /// longer declare.
    pub(crate) fn buckets(&mut self) {
        let d = self.desired();
        let obs = &self.observed().buckets;
        for (name, spec) in &d.buckets {
            let key = ResourceKey::new(Kind::Bucket, name.clone());
            let mut tags = self.tags_for(Kind::Bucket, name, &spec.tags);
            tags.insert(
                tags::DELETION_POLICY.to_owned(),
                spec.deletion_policy.as_str().to_owned(),
            );
            let mut produced = Produced::default();
            match obs.iter().find(|b| b.name.as_str() == name.as_str()) {
                None => {
                    produced.step = Some(self.add(
                        Step::CreateBucket {
                            name: name.clone(),
                            public_read: spec.public_read,
                            tags,
                        },
                        [],
                    ));
                    let create = produced.step;
                    let content = self.content(name, spec, None, create);
                    let c = self.change(key, ChangeAction::Create);
                    c.fields.push(FieldDiff {
                        field: "spec.publicRead".into(),
                        before: None,
                        after: Some(Value::Text(spec.public_read.to_string())),
                        forces_replacement: false,
                    });
                    c.fields.extend(content);
                }
                // Distributions wait for a changed public-read setting: a
                // private origin needs origin access, a public one not.
                Some(b) => produced.step = self.current_bucket(key, spec, b, tags),
            }
            self.buckets.insert(name.clone(), produced);
        }
        for b in obs
            .iter()
            .filter(|b| !d.buckets.contains_key(&b.owner.name))
        {
            self.doomed_buckets.insert(b.owner.name.clone(), ());
        }
    }

    /// A bucket that exists: its public-read setting and tags set back.
    /// Answers the step that changes its public-read setting, if any.
    fn current_bucket(
        &mut self,
        key: ResourceKey,
        spec: &BucketSpec,
        b: &ObservedBucket,
        tags: Tags,
    ) -> Option<StepId> {
        let mut changed = false;
        let mut fields = Vec::new();
        let mut access = None;
        if b.public_read != spec.public_read {
            access = Some(self.add(
                Step::SetBucketPublicRead {
                    name: key.name.clone(),
                    public_read: spec.public_read,
                },
                [],
            ));
            changed = true;
            fields.push(FieldDiff {
                field: "spec.publicRead".into(),
                before: Some(Value::Text(b.public_read.to_string())),
                after: Some(Value::Text(spec.public_read.to_string())),
                forces_replacement: false,
            });
        }
        let content = self.content(&key.name, spec, Some(b), None);
        changed |= !content.is_empty();
        fields.extend(content);
        let drift = self.tag_drift(
            &key,
            TagTarget::Bucket(b.name.clone()),
            &tags,
            &b.tags,
            &[CONTENT_TAG],
        );
        let action = update_if(changed || drift.is_some());
        let c = self.change(key, action);
        c.fields = fields;
        Self::tag_field(c, &tags, &b.tags);
        access
    }

    /// Plans a bucket's declared content: uploads what is new or changed,
    /// deletes what is gone (with `delete`), after `create` (the bucket's
    /// creation, if planned). Answers the plan fields.
    fn content(
        &mut self,
        name: &ResourceName,
        spec: &BucketSpec,
        observed: Option<&ObservedBucket>,
        create: Option<StepId>,
    ) -> Vec<FieldDiff> {
        let Some(c) = &spec.content else {
            return Vec::new();
        };
        let mark = content_digest(c.cache_control.as_deref());
        let objects = observed.and_then(|b| b.objects.as_deref()).unwrap_or(&[]);
        let headers_current = observed.is_some_and(|b| b.tags.get(CONTENT_TAG) == Some(&mark));
        let d = diff_content(c, objects, headers_current, &c.exclude);
        let mut planned = PlannedContent::default();
        let upload: Vec<ContentFile> = d
            .added
            .iter()
            .chain(d.changed.iter())
            .map(|f| (*f).clone())
            .collect();
        if !upload.is_empty() {
            let mut upload = upload;
            upload.sort_by(|a, b| a.key.cmp(&b.key));
            planned.steps.push(self.add(
                Step::PutObjects {
                    bucket: name.clone(),
                    objects: upload,
                    cache_control: c.cache_control.clone(),
                    mark: mark.clone(),
                },
                create,
            ));
        }
        if !d.deleted.is_empty() {
            planned.steps.push(self.add(
                Step::DeleteObjects {
                    bucket: name.clone(),
                    keys: d.deleted.clone(),
                },
                create,
            ));
        }
        planned.stale = d
            .changed
            .iter()
            .map(|f| f.key.clone())
            .chain(d.deleted.iter().cloned())
            .collect();
        let mut parts: Vec<&str> = Vec::new();
        for f in &d.changed {
            parts.push(&f.key);
            parts.push(&f.md5);
        }
        parts.extend(d.deleted.iter().map(String::as_str));
        planned.digest = crate::spec_hash::short_digest(&parts);
        let mut fields = Vec::new();
        if !d.added.is_empty() {
            fields.push(names_field(
                "content (added)",
                d.added.iter().map(|f| f.key.as_str()).collect(),
                false,
            ));
        }
        if !d.changed.is_empty() {
            fields.push(names_field(
                "content (changed)",
                d.changed.iter().map(|f| f.key.as_str()).collect(),
                false,
            ));
        }
        if !d.deleted.is_empty() {
            fields.push(names_field(
                "content (deleted)",
                d.deleted.iter().map(String::as_str).collect(),
                true,
            ));
        }
        self.content.insert(name.clone(), planned);
        fields
    }

    /// Deletes the buckets that go and whose policy allows it, after the
    /// distributions that use them.
    pub(crate) fn finish_bucket_deletes(&mut self) {
        let doomed = std::mem::take(&mut self.doomed_buckets);
        for name in doomed.into_keys() {
            let key = ResourceKey::new(Kind::Bucket, name.clone());
            // A removed bucket's policy is unknown from the manifests: it
            // was declared in a document that is gone, so converge keeps
            // the bucket unless its tag says delete.
            let policy = self
                .observed()
                .buckets
                .iter()
                .find(|b| b.owner.name == name)
                .map(|b| DeletionPolicy::from_tags(&b.tags))
                .unwrap_or(DeletionPolicy::Retain);
            match policy {
                DeletionPolicy::Delete => {
                    let users = self.bucket_users.remove(&name).unwrap_or_default();
                    self.add(Step::DeleteBucket { name }, users);
                    self.change(key, ChangeAction::Delete);
                }
                p => {
                    self.change(key, ChangeAction::DeleteBlocked { policy: p });
                }
            }
        }
    }
}
