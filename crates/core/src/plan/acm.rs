//! Planning ACM certificates: requested with DNS validation, their
//! validation records written into their zone and the certificate waited
//! for until it is issued; replaced (create before delete) when their
//! domains change, every listener and distribution switched to the new
//! one before the old one goes; deleted once nothing uses them, their
//! validation records after them.
//!
//! A certificate carries the stack's ownership tags, so several may carry
//! one name during a replacement: the one in the declared region whose
//! domains are the declared ones (in a usable status) is current, the
//! others are leftovers, deleted once unused.

use crate::acm::{self, CertificateRef, CertificateSpec, ValidationMark};
use crate::desired::Listener;
use crate::ids::{Kind, ResourceKey, ResourceName};
use crate::observed::ViewerCertificate;
use crate::plan::{
    ChangeAction, FieldDiff, PlanError, Planner, Ref, Step, StepId, TagTarget, Value,
};
use crate::route53::{ChangeAction as Action, ObservedZone, RecordChange, RecordType, ZoneRef};
use std::collections::{BTreeMap, BTreeSet};

/// What the plan makes of a declared certificate, for the listeners and
/// distributions that use it.
#[derive(Clone, Debug)]
pub(crate) struct PlannedCertificate {
    /// Its ARN, when the current one exists.
    pub(crate) arn: Option<String>,
    /// The step requesting it, when this plan does.
    pub(crate) request: Option<StepId>,
    /// The step its users wait for: its validation, when this plan
    /// validates it (a new one, or one still pending).
    pub(crate) ready: Option<StepId>,
}

/// A certificate a listener or distribution ends up with.
pub(crate) struct Resolved {
    /// The ARN, or `Certificate/NAME` while it is requested in this plan.
    pub(crate) arn: String,
    /// The requesting step, when this plan requests it.
    pub(crate) request: Option<StepId>,
    /// The step to wait for.
    pub(crate) ready: Option<StepId>,
}

impl<'a> Planner<'a> {
    /// Plans the stack's declared certificates (after the zones, before
    /// the balancers and distributions that use them).
    pub(crate) fn certificates(&mut self) -> Result<(), PlanError> {
        let d = self.desired();
        let o = self.observed();
        for (name, spec) in &d.certificates {
            let key = ResourceKey::new(Kind::Certificate, name.clone());
            let (zone, domain) = self.certificate_zone(name, spec)?;
            if let Some(c) = acm::current(&o.certificates, &d.stack, name, spec) {
                let ready = (c.status != acm::CertificateStatus::Issued).then(|| {
                    self.add(
                        Step::ValidateCertificate {
                            stack: d.stack.clone(),
                            name: name.clone(),
                            region: spec.region.clone(),
                            arn: Ref::Known(c.arn.clone()),
                            zone: zone.clone(),
                            domain: domain.clone(),
                        },
                        zone.created(),
                    )
                });
                self.certificates.insert(
                    name.clone(),
                    PlannedCertificate {
                        arn: Some(c.arn.clone()),
                        request: None,
                        ready,
                    },
                );
                // Tags set back (they are set at request, and may drift).
                let tags = self.tags_for(Kind::Certificate, name, &spec.tags);
                let drift = self.tag_drift(
                    &key,
                    TagTarget::Certificate(c.arn.clone()),
                    &tags,
                    &c.tags,
                    &[],
                );
                let observed_tags = c.tags.clone();
                let ch = self.change(key, super::update_if(ready.is_some() || drift.is_some()));
                Self::tag_field(ch, &tags, &observed_tags);
                let c = ch;
                if ready.is_some() {
                    c.fields.push(FieldDiff {
                        field: "status".into(),
                        before: Some(Value::Text(
                            acm::CertificateStatus::PendingValidation.to_string(),
                        )),
                        after: Some(Value::Text(acm::CertificateStatus::Issued.to_string())),
                        forces_replacement: false,
                    });
                }
                continue;
            }
            let tags = self.tags_for(Kind::Certificate, name, &spec.tags);
            let request = self.add(
                Step::RequestCertificate {
                    name: name.clone(),
                    region: spec.region.clone(),
                    domains: spec.domains.clone(),
                    token: acm::idempotency_token(d.stack.as_str(), name.as_str(), &spec.domains),
                    tags,
                },
                [],
            );
            let mut deps = vec![request];
            deps.extend(zone.created());
            let validate = self.add(
                Step::ValidateCertificate {
                    stack: d.stack.clone(),
                    name: name.clone(),
                    region: spec.region.clone(),
                    arn: Ref::Created(request),
                    zone,
                    domain,
                },
                deps,
            );
            self.certificates.insert(
                name.clone(),
                PlannedCertificate {
                    arn: None,
                    request: Some(request),
                    ready: Some(validate),
                },
            );
            let old = o
                .certificates
                .iter()
                .find(|c| acm::is_of(c, &d.stack, name));
            let action = match old {
                None => ChangeAction::Create,
                Some(c) => ChangeAction::Replace {
                    because: replaced_because(c, spec),
                },
            };
            let c = self.change(key, action);
            c.fields = certificate_fields(old, spec);
        }
        Ok(())
    }

    /// The zone a certificate's validation records go in: the stack's
    /// DnsZone, or the one existing public zone of that domain.
    fn certificate_zone(
        &self,
        name: &ResourceName,
        spec: &CertificateSpec,
    ) -> Result<(Ref<String>, String), PlanError> {
        let err = |message: String| PlanError::Certificate {
            certificate: name.clone(),
            message,
        };
        match &spec.zone {
            ZoneRef::Stack(z) => self
                .zones
                .get(z)
                .cloned()
                .ok_or_else(|| err(format!("spec.zone: DnsZone/{z} is not declared"))),
            ZoneRef::Existing(domain) => {
                let found: Vec<&ObservedZone> = self
                    .observed()
                    .dns_zones
                    .iter()
                    .filter(|z| z.domain == *domain)
                    .collect();
                match found.as_slice() {
                    [z] => Ok((Ref::Known(z.id.clone()), domain.clone())),
                    [] => Err(err(format!(
                        "spec.zone: no public hosted zone {domain} exists (declare a DnsZone, or create the zone first)"
                    ))),
                    many => Err(err(format!(
                        "spec.zone: {} public hosted zones are named {domain}; converge cannot tell which one is meant",
                        many.len()
                    ))),
                }
            }
        }
    }

    /// The certificate a listener or distribution names, as the plan
    /// leaves it: an ARN as written, or the stack's Certificate.
    pub(crate) fn resolve_certificate(&self, r: &CertificateRef) -> Option<Resolved> {
        match r {
            CertificateRef::Arn(a) => Some(Resolved {
                arn: a.clone(),
                request: None,
                ready: None,
            }),
            CertificateRef::Stack(n) => {
                let p = self.certificates.get(n)?;
                Some(Resolved {
                    arn: p.arn.clone().unwrap_or_else(|| r.to_string()),
                    request: p.request,
                    ready: p.ready,
                })
            }
        }
    }

    /// A balancer's listeners with every `Certificate/NAME` resolved: the
    /// ARN, or (requested in this plan) the name, with the requesting
    /// steps by port and the steps to wait for.
    pub(crate) fn listener_certificates(
        &self,
        listeners: &[Listener],
    ) -> (Vec<Listener>, BTreeMap<u16, StepId>, Vec<StepId>) {
        let mut out = Vec::new();
        let mut requested = BTreeMap::new();
        let mut deps = Vec::new();
        for l in listeners {
            let mut l = l.clone();
            let named = l
                .certificate
                .as_deref()
                .filter(|c| c.starts_with("Certificate/"))
                .and_then(|c| CertificateRef::parse(c).ok());
            if let Some(r) = named
                && let Some(res) = self.resolve_certificate(&r)
            {
                l.certificate = Some(res.arn);
                if let Some(s) = res.request {
                    requested.insert(l.port, s);
                }
                deps.extend(res.ready);
            }
            out.push(l);
        }
        (out, requested, deps)
    }

    /// A distribution's viewer certificate as the plan leaves it, the
    /// requesting step and the step to wait for.
    pub(crate) fn viewer_certificate(
        &self,
        spec: &crate::desired::CdnSpec,
    ) -> (Option<ViewerCertificate>, Option<StepId>, Option<StepId>) {
        let Some(res) = spec
            .certificate
            .as_ref()
            .and_then(|r| self.resolve_certificate(r))
        else {
            return (None, None, None);
        };
        (
            Some(ViewerCertificate {
                arn: res.arn,
                minimum_protocol_version: spec.minimum_protocol_version.clone(),
            }),
            res.request,
            res.ready,
        )
    }

    /// Deletes the stack's certificates that are not current (removed from
    /// the manifests, or replaced) once every listener and distribution
    /// was switched away from them, then the validation records no
    /// declared certificate needs; answers the deletions of validation
    /// records by zone, which a zone's deletion waits for.
    pub(crate) fn removed_certificates(&mut self) -> BTreeMap<String, Vec<StepId>> {
        let d = self.desired();
        let o = self.observed();
        // Every step that may switch a listener or distribution away from
        // a certificate, or delete its user.
        let users = self.steps_where(|s| {
            matches!(
                s,
                Step::CreateBalancer { .. }
                    | Step::SetListeners { .. }
                    | Step::DeleteBalancer { .. }
                    | Step::UpdateDistribution { .. }
                    | Step::DeleteDistribution { .. }
            )
        });
        let mut deleted: BTreeMap<ResourceName, Vec<StepId>> = BTreeMap::new();
        for c in &o.certificates {
            let Some(owner) = c
                .owner
                .as_ref()
                .filter(|w| w.stack == d.stack && w.kind == Kind::Certificate)
            else {
                continue;
            };
            let current = d
                .certificates
                .get(&owner.name)
                .and_then(|spec| acm::current(&o.certificates, &d.stack, &owner.name, spec))
                .is_some_and(|x| x.arn == c.arn);
            if current {
                continue;
            }
            let step = self.add(
                Step::DeleteCertificate {
                    name: owner.name.clone(),
                    region: c.region.clone(),
                    arn: c.arn.clone(),
                },
                users.iter().copied(),
            );
            deleted.entry(owner.name.clone()).or_default().push(step);
            if !d.certificates.contains_key(&owner.name) {
                let key = ResourceKey::new(Kind::Certificate, owner.name.clone());
                if !self.changes.iter().any(|x| x.key == key) {
                    let ch = self.change(key, ChangeAction::Delete);
                    ch.fields.push(FieldDiff {
                        field: "spec.domains".into(),
                        before: Some(Value::List(c.domains.clone())),
                        after: None,
                        forces_replacement: false,
                    });
                }
            }
        }
        self.removed_validation_records(&deleted)
    }

    /// Validation records of the stack that no declared certificate needs
    /// (none validates a domain there), deleted with their marks after the
    /// deletions of the certificate that wrote them.
    fn removed_validation_records(
        &mut self,
        deleted: &BTreeMap<ResourceName, Vec<StepId>>,
    ) -> BTreeMap<String, Vec<StepId>> {
        let d = self.desired();
        let o = self.observed();
        let needed: BTreeSet<&str> = d
            .certificates
            .values()
            .flat_map(|c| c.domains.iter().map(|x| acm::validated_at(x)))
            .collect();
        let mut out: BTreeMap<String, Vec<StepId>> = BTreeMap::new();
        for z in &o.dns_zones {
            let mut by_cert: BTreeMap<ResourceName, Vec<RecordChange>> = BTreeMap::new();
            for r in z.records.iter().filter(|r| r.rtype == RecordType::Cname) {
                let Some(m) = ValidationMark::of(z, &r.name) else {
                    continue;
                };
                let domain = r.name.split_once('.').map_or("", |(_, rest)| rest);
                if m.stack != d.stack || needed.contains(domain) {
                    continue;
                }
                let changes = by_cert.entry(m.certificate).or_default();
                changes.push(RecordChange {
                    action: Action::Delete,
                    set: r.clone(),
                });
                let mark_name = crate::route53::Mark::name_for(&r.name, RecordType::Cname);
                if let Some(ms) = z.record(&mark_name, RecordType::Txt) {
                    changes.push(RecordChange {
                        action: Action::Delete,
                        set: ms.clone(),
                    });
                }
            }
            for (name, changes) in by_cert {
                let after = deleted.get(&name).cloned().unwrap_or_default();
                let step = self.add(
                    Step::DeleteValidationRecords {
                        name: name.clone(),
                        zone: z.id.clone(),
                        changes,
                    },
                    after,
                );
                out.entry(z.id.clone()).or_default().push(step);
                let key = ResourceKey::new(Kind::Certificate, name);
                if !self.changes.iter().any(|x| x.key == key) {
                    self.change(key, ChangeAction::Delete);
                }
            }
        }
        out
    }
}

/// The fields whose change replaces a certificate.
fn replaced_because(old: &acm::ObservedCertificate, spec: &CertificateSpec) -> Vec<String> {
    let mut because = Vec::new();
    if !acm::same_domains(&old.domains, &spec.domains) {
        because.push("spec.domains".to_owned());
    }
    if old.region != spec.region {
        because.push("spec.region".to_owned());
    }
    if because.is_empty() {
        // Same domains and region: the old one failed or expired.
        because.push(format!("status {}", old.status));
    }
    because
}

/// The fields a plan shows of a certificate requested.
fn certificate_fields(
    old: Option<&acm::ObservedCertificate>,
    spec: &CertificateSpec,
) -> Vec<FieldDiff> {
    let mut out = vec![FieldDiff {
        field: "spec.domains".into(),
        before: old.map(|c| Value::List(c.domains.clone())),
        after: Some(Value::List(spec.domains.clone())),
        forces_replacement: old.is_some_and(|c| !acm::same_domains(&c.domains, &spec.domains)),
    }];
    if old.is_none_or(|c| c.region != spec.region) {
        out.push(FieldDiff {
            field: "spec.region".into(),
            before: old.map(|c| Value::Text(c.region.clone())),
            after: Some(Value::Text(spec.region.clone())),
            forces_replacement: old.is_some(),
        });
    }
    out.push(FieldDiff {
        field: "arn".into(),
        before: old.map(|c| Value::Text(c.arn.clone())),
        after: Some(Value::Unknown),
        forces_replacement: false,
    });
    out
}
