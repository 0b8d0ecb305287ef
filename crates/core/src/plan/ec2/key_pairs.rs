//! Planning key pairs: created under `<stack>-<name>`, replaced when the
//! public key's material changes, stray copies and undeclared ones
//! deleted.

use crate::desired::{KeyPairSpec, Tags};
use crate::ids::{KeyName, Kind, ResourceKey, ResourceName};
use crate::observed::ObservedKeyPair;
use crate::plan::{
    ChangeAction, FieldDiff, Planner, Produced, Step, StepId, TagTarget, Value, update_if,
};

impl<'a> Planner<'a> {
    /// Plans every declared key pair, then deletes those the manifests no
    /// longer declare.
    pub(crate) fn key_pairs(&mut self) {
        for (name, spec) in &self.desired().key_pairs {
            self.key_pair(name, spec);
        }
        self.removed_key_pairs();
    }

    /// One declared key pair: its stray copies go, then it is created,
    /// replaced or its tags set back.
    fn key_pair(&mut self, name: &ResourceName, spec: &KeyPairSpec) {
        let obs = &self.observed().key_pairs;
        let key = ResourceKey::new(Kind::KeyPair, name.clone());
        let cloud_name = KeyName::of(&self.desired().stack, name);
        let tags = self.tags_for(Kind::KeyPair, name, &spec.tags);
        let mine: Vec<_> = obs.iter().filter(|k| k.owner.name == *name).collect();
        let current = mine.iter().find(|k| k.cloud_name == cloud_name).copied();
        let mut produced = Produced::default();
        let mut deletes = Vec::new();
        for extra in mine.iter().filter(|k| Some(**k) != current) {
            deletes.push(self.delete_key_pair(name, extra));
        }
        match current {
            None => {
                let step = self.create_key_pair(name, &cloud_name, spec, tags, []);
                produced.step = Some(step);
                let c = self.change(key, ChangeAction::Create);
                c.fields.push(FieldDiff {
                    field: "spec.publicKey".into(),
                    before: None,
                    after: Some(Value::Text(key_summary(&spec.public_key))),
                    forces_replacement: false,
                });
            }
            Some(kp) => {
                let differs = kp
                    .public_key
                    .as_deref()
                    .is_some_and(|pk| key_material(pk) != key_material(&spec.public_key));
                if differs {
                    let del = self.delete_key_pair(name, kp);
                    let step = self.create_key_pair(name, &cloud_name, spec, tags, [del]);
                    produced.step = Some(step);
                    let c = self.change(
                        key,
                        ChangeAction::Replace {
                            because: vec!["spec.publicKey".into()],
                        },
                    );
                    c.fields.push(FieldDiff {
                        field: "spec.publicKey".into(),
                        before: kp
                            .public_key
                            .as_deref()
                            .map(|k| Value::Text(key_summary(k))),
                        after: Some(Value::Text(key_summary(&spec.public_key))),
                        forces_replacement: true,
                    });
                } else {
                    let drift = self.tag_drift(
                        &key,
                        TagTarget::KeyPair(kp.cloud_name.clone()),
                        &tags,
                        &kp.tags,
                        &[],
                    );
                    let action = update_if(drift.is_some() || !deletes.is_empty());
                    let c = self.change(key, action);
                    Self::tag_field(c, &tags, &kp.tags);
                }
            }
        }
        self.key_pairs.insert(name.clone(), (cloud_name, produced));
    }

    /// Key pairs the manifests no longer declare.
    fn removed_key_pairs(&mut self) {
        let d = self.desired();
        for kp in self
            .observed()
            .key_pairs
            .iter()
            .filter(|k| !d.key_pairs.contains_key(&k.owner.name))
        {
            let name = kp.owner.name.clone();
            self.delete_key_pair(&name, kp);
            if !self
                .changes
                .iter()
                .any(|c| c.key.kind == Kind::KeyPair && c.key.name == name)
            {
                self.change(ResourceKey::new(Kind::KeyPair, name), ChangeAction::Delete);
            }
        }
    }

    fn delete_key_pair(&mut self, name: &ResourceName, kp: &ObservedKeyPair) -> StepId {
        self.add(
            Step::DeleteKeyPair {
                name: name.clone(),
                cloud_name: kp.cloud_name.clone(),
            },
            [],
        )
    }

    fn create_key_pair(
        &mut self,
        name: &ResourceName,
        cloud_name: &KeyName,
        spec: &KeyPairSpec,
        tags: Tags,
        deps: impl IntoIterator<Item = StepId>,
    ) -> StepId {
        self.add(
            Step::CreateKeyPair {
                name: name.clone(),
                cloud_name: cloud_name.clone(),
                public_key: spec.public_key.clone(),
                tags,
            },
            deps,
        )
    }
}

/// The key type and material of an OpenSSH public key, without its comment.
fn key_material(k: &str) -> String {
    k.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

/// A short form of a public key for plans: type, start of the material and
/// comment.
fn key_summary(k: &str) -> String {
    let mut parts = k.split_whitespace();
    let ty = parts.next().unwrap_or("");
    let material = parts.next().unwrap_or("");
    let comment = parts.collect::<Vec<_>>().join(" ");
    let short: String = material.chars().take(12).collect();
    let mut s = format!("{ty} {short}…");
    if !comment.is_empty() {
        s.push(' ');
        s.push_str(&comment);
    }
    s
}
