//! Planning CloudFront distributions: created after their buckets,
//! updated in place, and disabled before they are deleted (their buckets
//! go only after).

use crate::desired::{CdnSpec, Tags};
use crate::ids::{Kind, ResourceKey, ResourceName};
use crate::observed::{DistributionConfig, ObservedDistribution, bucket_domain};
use crate::plan::{
    ChangeAction, FieldDiff, Note, Planner, Produced, Step, StepId, TagTarget, Value, update_if,
};
use crate::spec_hash::short_digest;

impl<'a> Planner<'a> {
    /// Plans every declared distribution, then disables and deletes those
    /// the manifests no longer declare.
    pub(crate) fn cdns(&mut self) {
        let d = self.desired();
        let obs = &self.observed().distributions;
        for (name, spec) in &d.cdns {
            let key = ResourceKey::new(Kind::Cdn, name.clone());
            let tags = self.tags_for(Kind::Cdn, name, &spec.tags);
            let config = self.cdn_config(spec);
            let mut bucket_deps: Vec<StepId> = Vec::new();
            for b in
                std::iter::once(&spec.origin_bucket).chain(spec.logging.as_ref().map(|l| &l.bucket))
            {
                if let Some(Produced { step: Some(s) }) = self.buckets.get(b) {
                    bucket_deps.push(*s);
                }
            }
            match obs.iter().find(|x| x.owner.name == *name) {
                None => {
                    let caller_reference = format!(
                        "converge:{}:{}:{}",
                        d.stack,
                        name,
                        short_digest(&[&format!("{config:?}")])
                    );
                    let step = self.add(
                        Step::CreateDistribution {
                            name: name.clone(),
                            caller_reference,
                            config: config.clone(),
                            tags,
                        },
                        bucket_deps,
                    );
                    self.cdns
                        .insert(name.clone(), (None, Produced { step: Some(step) }));
                    let c = self.change(key, ChangeAction::Create);
                    c.fields = cdn_fields(None, &config);
                }
                Some(x) => self.current_cdn(key, x, config, tags, bucket_deps),
            }
        }
        for x in obs.iter().filter(|x| !d.cdns.contains_key(&x.owner.name)) {
            self.removed_cdn(x);
        }
    }

    fn cdn_config(&self, spec: &CdnSpec) -> DistributionConfig {
        DistributionConfig {
            origin_domain: bucket_domain(spec.origin_bucket.as_str()),
            aliases: spec.aliases.clone(),
            enabled: spec.enabled,
            logging: spec
                .logging
                .as_ref()
                .map(|l| (bucket_domain(l.bucket.as_str()), l.prefix.clone())),
            comment: spec.comment.clone(),
            default_root_object: spec.default_root_object.clone(),
        }
    }

    /// A distribution that exists: updated to `config` after the buckets
    /// it needs, its tags set back.
    fn current_cdn(
        &mut self,
        key: ResourceKey,
        x: &ObservedDistribution,
        config: DistributionConfig,
        tags: Tags,
        bucket_deps: Vec<StepId>,
    ) {
        let name: ResourceName = key.name.clone();
        let mut changed = false;
        if x.config != config {
            self.add(
                Step::UpdateDistribution {
                    name: name.clone(),
                    id: x.id.clone(),
                    config: config.clone(),
                },
                bucket_deps,
            );
            changed = true;
        }
        let drift = self.tag_drift(
            &key,
            TagTarget::Distribution(x.id.clone()),
            &tags,
            &x.tags,
            &[],
        );
        self.cdns
            .insert(name, (Some(x.domain_name.clone()), Produced::default()));
        let action = update_if(changed || drift.is_some());
        let c = self.change(key, action);
        if changed {
            c.fields = cdn_fields(Some(&x.config), &config);
        }
        Self::tag_field(c, &tags, &x.tags);
    }

    /// A distribution the manifests no longer declare: disabled, then
    /// deleted; the buckets it uses wait for its deletion.
    fn removed_cdn(&mut self, x: &ObservedDistribution) {
        let name = x.owner.name.clone();
        let disable = self.add(
            Step::DisableDistribution {
                name: name.clone(),
                id: x.id.clone(),
            },
            [],
        );
        let delete = self.add(
            Step::DeleteDistribution {
                name: name.clone(),
                id: x.id.clone(),
            },
            [disable],
        );
        for b in self.observed().buckets.iter() {
            if x.config.origin_domain == bucket_domain(b.name.as_str())
                || x.config
                    .logging
                    .as_ref()
                    .is_some_and(|(l, _)| *l == bucket_domain(b.name.as_str()))
            {
                self.bucket_users
                    .entry(b.owner.name.clone())
                    .or_default()
                    .push(delete);
            }
        }
        let c = self.change(ResourceKey::new(Kind::Cdn, name), ChangeAction::Delete);
        c.notes.push(Note::DisableBeforeDelete);
    }
}

fn cdn_fields(before: Option<&DistributionConfig>, after: &DistributionConfig) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    let mut push = |field: &str, b: Option<Value>, a: Value| {
        if b.as_ref() != Some(&a) {
            out.push(FieldDiff {
                field: field.into(),
                before: b,
                after: Some(a),
                forces_replacement: false,
            });
        }
    };
    let logging = |c: &DistributionConfig| match &c.logging {
        None => Value::Text("off".into()),
        Some((b, p)) => Value::Text(format!("{b}/{p}")),
    };
    push(
        "spec.origin",
        before.map(|b| Value::Text(b.origin_domain.clone())),
        Value::Text(after.origin_domain.clone()),
    );
    push(
        "spec.aliases",
        before.map(|b| Value::List(b.aliases.clone())),
        Value::List(after.aliases.clone()),
    );
    push(
        "spec.enabled",
        before.map(|b| Value::Text(b.enabled.to_string())),
        Value::Text(after.enabled.to_string()),
    );
    push("spec.logging", before.map(logging), logging(after));
    push(
        "spec.comment",
        before.map(|b| Value::Text(b.comment.clone())),
        Value::Text(after.comment.clone()),
    );
    let root =
        |c: &DistributionConfig| Value::Text(c.default_root_object.clone().unwrap_or_default());
    push("spec.defaultRootObject", before.map(root), root(after));
    out
}
