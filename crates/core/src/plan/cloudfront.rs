//! Planning CloudFront distributions: created after their buckets,
//! updated in place, and disabled before they are deleted (their buckets
//! go only after). A private origin bucket is read through an origin
//! access control and a bucket-policy statement converge owns by its Sid;
//! changed content is invalidated (issue 11 B).

use crate::desired::{CdnSpec, Tags};
use crate::ids::{Kind, ResourceKey, ResourceName};
use crate::observed::{DistributionConfig, ObservedDistribution, bucket_domain};
use crate::plan::{
    ChangeAction, FieldDiff, Note, Planner, Produced, Ref, Step, StepId, TagTarget, Value,
    update_if,
};
use crate::s3::{GRANT_SID_PREFIX, grant_sid, invalidation_paths, oac_name, oac_settings};
use crate::spec_hash::short_digest;
use std::collections::BTreeSet;

impl<'a> Planner<'a> {
    /// Plans every declared distribution, then disables and deletes those
    /// the manifests no longer declare.
    pub(crate) fn cdns(&mut self) {
        let d = self.desired();
        let obs = &self.observed().distributions;
        for (name, spec) in &d.cdns {
            let key = ResourceKey::new(Kind::Cdn, name.clone());
            let tags = self.tags_for(Kind::Cdn, name, &spec.tags);
            let mut config = self.cdn_config(name, spec);
            let (viewer, certificate, cert_ready) = self.viewer_certificate(spec);
            config.viewer_certificate = viewer;
            let mut bucket_deps: Vec<StepId> = Vec::new();
            bucket_deps.extend(cert_ready);
            bucket_deps.extend(self.origin_access(name, spec));
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
                            certificate,
                        },
                        bucket_deps,
                    );
                    self.cdns
                        .insert(name.clone(), (None, Produced { step: Some(step) }));
                    let c = self.change(key, ChangeAction::Create);
                    c.fields = cdn_fields(None, &config);
                }
                Some(x) => self.current_cdn(key, x, (config, certificate), tags, bucket_deps),
            }
            self.cdn_grant(name, spec);
            self.invalidation(name, spec);
        }
        for x in obs.iter().filter(|x| !d.cdns.contains_key(&x.owner.name)) {
            self.removed_cdn(x);
        }
        self.finish_cdn_access();
    }

    /// Whether a Cdn reaches its bucket through origin access: its origin
    /// bucket is not public.
    fn needs_origin_access(&self, spec: &CdnSpec) -> bool {
        self.desired()
            .buckets
            .get(&spec.origin_bucket)
            .is_some_and(|b| !b.public_read)
    }

    /// Creates, or sets back, the origin access control a Cdn with a
    /// private bucket needs; answers the step the distribution waits for.
    fn origin_access(&mut self, name: &ResourceName, spec: &CdnSpec) -> Option<StepId> {
        if !self.needs_origin_access(spec) {
            return None;
        }
        let stack = self.desired().stack.as_str();
        let oac = oac_name(stack, name.as_str());
        let settings = oac_settings(stack, name.as_str());
        let key = ResourceKey::new(Kind::Cdn, name.clone());
        match self.observed().origin_access.iter().find(|a| a.name == oac) {
            None => Some(self.add(
                Step::CreateOriginAccess {
                    stack: self.desired().stack.clone(),
                    cdn: name.clone(),
                    name: oac,
                    settings,
                },
                [],
            )),
            Some(a) if a.settings != settings => {
                self.pending_fields.entry(key).or_default().push(FieldDiff {
                    field: "originAccessControl (settings)".into(),
                    before: Some(Value::Text(show_oac(&a.settings))),
                    after: Some(Value::Text(show_oac(&settings))),
                    forces_replacement: false,
                });
                Some(self.add(
                    Step::UpdateOriginAccess {
                        cdn: name.clone(),
                        id: a.id.clone(),
                        name: oac,
                        settings,
                    },
                    [],
                ))
            }
            Some(_) => None,
        }
    }

    /// Writes the statement that lets a Cdn read its private bucket,
    /// unless the bucket's policy holds it already as converge writes it.
    fn cdn_grant(&mut self, name: &ResourceName, spec: &CdnSpec) {
        if !self.needs_origin_access(spec) {
            return;
        }
        let sid = grant_sid(name.as_str());
        let observed = self.observed();
        let held = observed
            .buckets
            .iter()
            .find(|b| b.owner.name == spec.origin_bucket)
            .and_then(|b| b.cdn_grants.get(&sid));
        let dist = observed
            .distributions
            .iter()
            .find(|x| x.owner.name == *name);
        let (distribution, mut deps) = match dist {
            Some(x) if held == Some(&Some(x.arn.clone())) => return,
            Some(x) => (Ref::Known(x.id.clone()), Vec::new()),
            None => match self.cdns.get(name).and_then(|(_, p)| p.step) {
                Some(step) => (Ref::Created(step), vec![step]),
                None => return,
            },
        };
        deps.extend(self.cdn_last.get(name).copied());
        if let Some(Produced { step: Some(b) }) = self.buckets.get(&spec.origin_bucket) {
            deps.push(*b);
        }
        self.add(
            Step::GrantCdnRead {
                cdn: name.clone(),
                bucket: spec.origin_bucket.clone(),
                sid: sid.clone(),
                distribution,
            },
            deps,
        );
        let key = ResourceKey::new(Kind::Cdn, name.clone());
        self.pending_fields.entry(key).or_default().push(FieldDiff {
            field: format!("bucket policy of {}", spec.origin_bucket),
            before: held.map(|_| Value::Text(format!("{sid} (changed)"))),
            after: Some(Value::Text(sid)),
            forces_replacement: false,
        });
    }

    /// Invalidates the paths of the origin bucket's content that this plan
    /// changes or deletes, once they are changed.
    fn invalidation(&mut self, name: &ResourceName, spec: &CdnSpec) {
        if !spec.invalidate {
            return;
        }
        let Some(content) = self.content.get(&spec.origin_bucket) else {
            return;
        };
        let Some(x) = self
            .observed()
            .distributions
            .iter()
            .find(|x| x.owner.name == *name)
        else {
            // A new distribution has nothing cached.
            return;
        };
        if content.stale.is_empty() {
            return;
        }
        let paths = invalidation_paths(
            content.stale.iter().map(String::as_str),
            spec.default_root_object.as_deref(),
        );
        let caller_reference = format!(
            "converge:{}:{}:{}",
            self.desired().stack,
            name,
            content.digest
        );
        let mut deps = content.steps.clone();
        deps.extend(self.cdn_last.get(name).copied());
        self.add(
            Step::Invalidate {
                cdn: name.clone(),
                id: x.id.clone(),
                caller_reference,
                paths: paths.clone(),
            },
            deps,
        );
        let key = ResourceKey::new(Kind::Cdn, name.clone());
        self.pending_fields.entry(key).or_default().push(FieldDiff {
            field: "invalidate".into(),
            before: None,
            after: Some(Value::List(paths)),
            forces_replacement: false,
        });
    }

    /// Removes the statements and origin access controls no declared Cdn
    /// needs any more (after the distribution stops using them), and puts
    /// the fields planned for each Cdn on its change.
    fn finish_cdn_access(&mut self) {
        let d = self.desired();
        let stack = d.stack.as_str();
        let wanted: BTreeSet<(ResourceName, String)> = d
            .cdns
            .iter()
            .filter(|(_, spec)| self.needs_origin_access(spec))
            .map(|(name, spec)| (spec.origin_bucket.clone(), grant_sid(name.as_str())))
            .collect();
        for b in &self.observed().buckets {
            for sid in b.cdn_grants.keys() {
                if wanted.contains(&(b.owner.name.clone(), sid.clone())) {
                    continue;
                }
                let Some(cdn) = sid
                    .strip_prefix(GRANT_SID_PREFIX)
                    .and_then(|c| c.parse::<ResourceName>().ok())
                else {
                    continue;
                };
                let deps = self.cdn_last.get(&cdn).copied();
                let step = self.add(
                    Step::RevokeCdnRead {
                        cdn: cdn.clone(),
                        bucket: b.owner.name.clone(),
                        sid: sid.clone(),
                    },
                    deps,
                );
                self.bucket_users
                    .entry(b.owner.name.clone())
                    .or_default()
                    .push(step);
                self.pending_fields
                    .entry(ResourceKey::new(Kind::Cdn, cdn))
                    .or_default()
                    .push(FieldDiff {
                        field: format!("bucket policy of {}", b.owner.name),
                        before: Some(Value::Text(sid.clone())),
                        after: None,
                        forces_replacement: false,
                    });
            }
        }
        let needed: BTreeSet<String> = d
            .cdns
            .iter()
            .filter(|(_, spec)| self.needs_origin_access(spec))
            .map(|(name, _)| oac_name(stack, name.as_str()))
            .collect();
        for a in &self.observed().origin_access {
            if needed.contains(&a.name) {
                continue;
            }
            let prefix = format!("converge-{stack}-");
            let Some(cdn) = a
                .name
                .strip_prefix(&prefix)
                .and_then(|c| c.parse::<ResourceName>().ok())
            else {
                continue;
            };
            let deps = self.cdn_last.get(&cdn).copied();
            self.add(
                Step::DeleteOriginAccess {
                    cdn: cdn.clone(),
                    id: a.id.clone(),
                    name: a.name.clone(),
                },
                deps,
            );
            self.pending_fields
                .entry(ResourceKey::new(Kind::Cdn, cdn))
                .or_default()
                .push(FieldDiff {
                    field: "originAccessControl".into(),
                    before: Some(Value::Text(a.name.clone())),
                    after: None,
                    forces_replacement: false,
                });
        }
        for (key, fields) in std::mem::take(&mut self.pending_fields) {
            let c = match self.changes.iter_mut().rposition(|c| c.key == key) {
                Some(i) => &mut self.changes[i],
                None => self.change(key, ChangeAction::Update),
            };
            if c.action == ChangeAction::NoChange {
                c.action = ChangeAction::Update;
            }
            c.fields.extend(fields);
        }
    }

    fn cdn_config(&self, name: &ResourceName, spec: &CdnSpec) -> DistributionConfig {
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
            origin_access_control: self
                .needs_origin_access(spec)
                .then(|| oac_name(self.desired().stack.as_str(), name.as_str())),
            viewer_certificate: None,
        }
    }

    /// A distribution that exists: updated to `config` after the buckets
    /// it needs (and the certificate this plan requests for it), its tags
    /// set back.
    fn current_cdn(
        &mut self,
        key: ResourceKey,
        x: &ObservedDistribution,
        (config, certificate): (DistributionConfig, Option<StepId>),
        tags: Tags,
        bucket_deps: Vec<StepId>,
    ) {
        let name: ResourceName = key.name.clone();
        let mut changed = false;
        if x.config != config {
            let step = self.add(
                Step::UpdateDistribution {
                    name: name.clone(),
                    id: x.id.clone(),
                    config: config.clone(),
                    certificate,
                },
                bucket_deps,
            );
            self.cdn_last.insert(name.clone(), step);
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
        self.cdn_last.insert(name.clone(), delete);
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
    let oac = |c: &DistributionConfig| {
        Value::Text(
            c.origin_access_control
                .clone()
                .unwrap_or_else(|| "none".into()),
        )
    };
    push("originAccessControl", before.map(oac), oac(after));
    let viewer = |c: &DistributionConfig| {
        Value::Text(match &c.viewer_certificate {
            None => "default (*.cloudfront.net)".into(),
            Some(v) if v.arn.starts_with("Certificate/") => {
                format!(
                    "{} (known after apply), {}",
                    v.arn, v.minimum_protocol_version
                )
            }
            Some(v) => format!("{}, {}", v.arn, v.minimum_protocol_version),
        })
    };
    if before.is_some() || after.viewer_certificate.is_some() {
        push("spec.certificate", before.map(viewer), viewer(after));
    }
    out
}

/// An origin access control's settings, for the plan.
fn show_oac(s: &crate::observed::OriginAccessSettings) -> String {
    format!(
        "{}/{}/{} ({})",
        s.signing_protocol, s.signing_behavior, s.origin_type, s.description
    )
}
