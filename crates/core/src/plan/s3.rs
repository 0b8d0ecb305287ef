//! Planning S3 buckets: created, their public-read setting and tags set
//! back, and deleted (after the distributions that use them) only when
//! their deletion policy says so.

use crate::desired::{BucketSpec, DeletionPolicy, Tags};
use crate::ids::{Kind, ResourceKey, tags};
use crate::observed::ObservedBucket;
use crate::plan::{ChangeAction, FieldDiff, Planner, Produced, Step, TagTarget, Value, update_if};

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
                    let c = self.change(key, ChangeAction::Create);
                    c.fields.push(FieldDiff {
                        field: "spec.publicRead".into(),
                        before: None,
                        after: Some(Value::Text(spec.public_read.to_string())),
                        forces_replacement: false,
                    });
                }
                Some(b) => self.current_bucket(key, spec, b, tags),
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
    fn current_bucket(
        &mut self,
        key: ResourceKey,
        spec: &BucketSpec,
        b: &ObservedBucket,
        tags: Tags,
    ) {
        let mut changed = false;
        let mut fields = Vec::new();
        if b.public_read != spec.public_read {
            self.add(
                Step::SetBucketPublicRead {
                    name: key.name.clone(),
                    public_read: spec.public_read,
                },
                [],
            );
            changed = true;
            fields.push(FieldDiff {
                field: "spec.publicRead".into(),
                before: Some(Value::Text(b.public_read.to_string())),
                after: Some(Value::Text(spec.public_read.to_string())),
                forces_replacement: false,
            });
        }
        let drift = self.tag_drift(&key, TagTarget::Bucket(b.name.clone()), &tags, &b.tags, &[]);
        let action = update_if(changed || drift.is_some());
        let c = self.change(key, action);
        c.fields = fields;
        Self::tag_field(c, &tags, &b.tags);
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
