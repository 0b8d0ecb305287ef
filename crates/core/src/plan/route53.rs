//! Planning Route 53: the stack's hosted zones, and its records with
//! their ownership marks and TTL-aware cutover.
//!
//! A record's change batch always carries its mark (the TXT record beside
//! it, `crate::route53::Mark`), so what converge owns and where a cutover
//! stands are read back from the cloud on every plan. A record is never
//! touched without converge's mark unless `adopt: true` says so.
//!
//! The cutover of an existing record whose value changes while its TTL
//! is above `cutover.ttl`: *lower* (old value, TTL `cutover.ttl`, moment
//! noted), then, once the old TTL has passed, *switch* (new value, still
//! `cutover.ttl`), then, once `settle` has passed, *settle* (TTL back to
//! `ttl`). Each plan carries out the step due at its moment (`at`) and
//! notes when the next one is due.

use crate::desired::{Attr, DeletionPolicy};
use crate::ids::{Kind, ResourceKey, ResourceName};
use crate::plan::{
    BlockedChange, ChangeAction, FieldDiff, Note, PlanError, Planner, Produced, Ref, Step, StepId,
    TagTarget, UserDataPart, Value, update_if,
};
use crate::route53::{
    self, AliasTarget, ChangeAction as Action, DnsRecordSpec, Mark, ObservedZone, RecordSet,
    RecordTarget, RecordType, Stage, ZoneRef,
};
use crate::spec_hash::short_digest;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A step of a record's cutover.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CutoverStep {
    /// The TTL goes down to `cutover.ttl`, the old value stays.
    Lower,
    /// The new value goes in at `cutover.ttl`.
    Switch,
    /// The TTL goes back up to `ttl`.
    Settle,
}

impl CutoverStep {
    /// As plans name it.
    pub fn as_str(self) -> &'static str {
        match self {
            CutoverStep::Lower => "lower the TTL, keep the old value",
            CutoverStep::Switch => "switch to the new value",
            CutoverStep::Settle => "settle: raise the TTL",
        }
    }

    /// The verb of a wait (`switch at …`).
    pub fn verb(self) -> &'static str {
        match self {
            CutoverStep::Lower => "lower",
            CutoverStep::Switch => "switch",
            CutoverStep::Settle => "settle",
        }
    }
}

/// What a record's change batch does, for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordPurpose {
    /// A new record and its mark.
    Create,
    /// A record that exists gets converge's mark (and maybe more).
    Adopt,
    /// A change made at once (TTL, or a value whose TTL is short).
    Update,
    /// A cutover step.
    Cutover(CutoverStep),
    /// The mark of a cutover step whose moment was never noted (the run
    /// stopped before the change was in sync) is written again, so that
    /// the moment is noted.
    Stamp,
    /// The record and its mark go.
    Delete,
}

impl RecordPurpose {
    /// The step's description.
    pub fn describe(self, name: &ResourceName) -> String {
        match self {
            RecordPurpose::Create => format!("create DnsRecord/{name}"),
            RecordPurpose::Adopt => format!("adopt DnsRecord/{name}"),
            RecordPurpose::Update => format!("update DnsRecord/{name}"),
            RecordPurpose::Cutover(CutoverStep::Lower) => {
                format!("lower the TTL of DnsRecord/{name} (cutover)")
            }
            RecordPurpose::Cutover(CutoverStep::Switch) => {
                format!("switch DnsRecord/{name} to its new value (cutover)")
            }
            RecordPurpose::Cutover(CutoverStep::Settle) => {
                format!("raise the TTL of DnsRecord/{name} (cutover settled)")
            }
            RecordPurpose::Stamp => {
                format!("note when the cutover step of DnsRecord/{name} was in sync")
            }
            RecordPurpose::Delete => format!("delete DnsRecord/{name}"),
        }
    }
}

/// An alias target as the executor assembles it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedAlias {
    /// The target's DNS name (known, or a step's output).
    pub dns_name: Vec<UserDataPart>,
    /// The target's hosted zone (known, or the creating step's output:
    /// a new balancer's zone is what the cloud answers).
    pub zone_id: Vec<UserDataPart>,
}

/// One change of a record's batch, as the executor assembles it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedRecordChange {
    /// CREATE, UPSERT or DELETE.
    pub action: Action,
    /// The set's name.
    pub name: String,
    /// The set's type.
    pub rtype: RecordType,
    /// Its TTL (none for an alias).
    pub ttl: Option<u32>,
    /// Its values, each from its parts.
    pub values: Vec<Vec<UserDataPart>>,
    /// Whether the values come from the manifests (the executor checks
    /// and normalizes them, quoting TXT) rather than from the cloud.
    pub from_manifest: bool,
    /// Its alias target, for an alias.
    pub alias: Option<PlannedAlias>,
}

impl PlannedRecordChange {
    /// A change of a set as the cloud holds it (values known).
    fn of_set(action: Action, s: &RecordSet) -> Self {
        Self {
            action,
            name: s.name.clone(),
            rtype: s.rtype,
            ttl: s.ttl,
            values: s
                .values
                .iter()
                .map(|v| vec![UserDataPart::Text(v.clone())])
                .collect(),
            from_manifest: false,
            alias: s.alias.as_ref().map(|a| PlannedAlias {
                dns_name: vec![UserDataPart::Text(a.dns_name.clone())],
                zone_id: vec![UserDataPart::Text(a.zone_id.clone())],
            }),
        }
    }

    /// The set, when every part is known now.
    fn known(&self) -> Option<RecordSet> {
        let text = |parts: &[UserDataPart]| -> Option<String> {
            let mut s = String::new();
            for p in parts {
                match p {
                    UserDataPart::Text(t) => s.push_str(t),
                    UserDataPart::Secret(v) => s.push_str(v.expose()),
                    _ => return None,
                }
            }
            Some(s)
        };
        let mut values = Vec::new();
        for v in &self.values {
            let t = text(v)?;
            values.push(if self.from_manifest {
                route53::value(self.rtype, &t).ok()?
            } else {
                t
            });
        }
        values.sort();
        let alias = match &self.alias {
            None => None,
            Some(a) => Some(AliasTarget {
                dns_name: text(&a.dns_name)?
                    .trim_end_matches('.')
                    .to_ascii_lowercase(),
                zone_id: text(&a.zone_id)?,
            }),
        };
        Some(RecordSet {
            name: self.name.clone(),
            rtype: self.rtype,
            ttl: self.ttl,
            values,
            alias,
        })
    }

    /// Calls `f` on each step reference its parts hold.
    pub(crate) fn visit_step_refs(
        &mut self,
        f: &mut dyn FnMut(&mut StepId, crate::plan::Produces),
    ) {
        let parts = self.values.iter_mut().flatten().chain(
            self.alias
                .iter_mut()
                .flat_map(|a| a.dns_name.iter_mut().chain(a.zone_id.iter_mut())),
        );
        for p in parts {
            match p {
                UserDataPart::StepOutput { step, attr } => {
                    f(step, crate::plan::Produces::of_attr(*attr))
                }
                UserDataPart::FleetIps { launches, .. } => {
                    for l in launches {
                        f(l, crate::plan::Produces::Instances);
                    }
                }
                UserDataPart::Text(_) | UserDataPart::Secret(_) => {}
            }
        }
    }
}

/// What the manifests want a record set to hold, resolved against what
/// the planner decided so far.
struct Want {
    /// The set as the executor assembles it (TTL filled in per step).
    change: PlannedRecordChange,
    /// The set, when every part is known now.
    known: Option<RecordSet>,
    /// The steps it waits for.
    deps: BTreeSet<StepId>,
    /// What a plan shows of its content.
    display: Vec<String>,
}

/// A zone as the planner resolves a record's `zone`.
struct ZoneAt<'z> {
    /// Its ID, or the step creating it.
    id: Ref<String>,
    /// Its domain.
    domain: String,
    /// The zone as observed, if it exists.
    observed: Option<&'z ObservedZone>,
}

/// What one record's planning decides.
struct Decision {
    purpose: Option<RecordPurpose>,
    changes: Vec<PlannedRecordChange>,
    notes: Vec<Note>,
    action: ChangeAction,
}

impl<'a> Planner<'a> {
    /// Plans the stack's hosted zones and records, then deletes what the
    /// manifests no longer declare (records first, then their zones).
    /// Plans the stack's hosted zones. They come before the fleets, so a
    /// template may read `${DnsZone/NAME.nameServers}`.
    pub(crate) fn dns_zones(&mut self) {
        let d = self.desired();
        let o = self.observed();
        let mut zones: BTreeMap<ResourceName, (Ref<String>, String)> = BTreeMap::new();
        for (name, spec) in &d.dns_zones {
            let key = ResourceKey::new(Kind::DnsZone, name.clone());
            let owned = o.dns_zones.iter().find(|z| {
                z.owner.as_ref().is_some_and(|w| {
                    w.stack == d.stack && w.kind == Kind::DnsZone && w.name == *name
                })
            });
            let mut tags = self.tags_for(Kind::DnsZone, name, &spec.tags);
            tags.insert(
                crate::ids::tags::DELETION_POLICY.to_owned(),
                spec.deletion_policy.as_str().to_owned(),
            );
            match owned {
                Some(z) => {
                    zones.insert(name.clone(), (Ref::Known(z.id.clone()), z.domain.clone()));
                    // Tags set back; the stacks' record tags are theirs.
                    let keep: Vec<&str> = z
                        .tags
                        .keys()
                        .filter(|k| k.starts_with(crate::ids::tags::RECORDS_OF))
                        .map(String::as_str)
                        .collect();
                    let drift =
                        self.tag_drift(&key, TagTarget::Zone(z.id.clone()), &tags, &z.tags, &keep);
                    let c = self.change(key, update_if(drift.is_some()));
                    Self::tag_field(c, &tags, &z.tags);
                    if z.domain != spec.domain {
                        c.notes.push(Note::Unsupported {
                            reason: format!(
                                "spec.domain changed from {} to {}: a hosted zone's domain cannot change (declare a new DnsZone)",
                                z.domain, spec.domain
                            ),
                        });
                    }
                }
                None => {
                    let caller_reference = format!(
                        "converge:{}:{}:{}",
                        d.stack,
                        name,
                        short_digest(&[&spec.domain])
                    );
                    let step = self.add(
                        Step::CreateZone {
                            name: name.clone(),
                            domain: spec.domain.clone(),
                            caller_reference,
                            tags,
                        },
                        [],
                    );
                    zones.insert(name.clone(), (Ref::Created(step), spec.domain.clone()));
                    let c = self.change(key, ChangeAction::Create);
                    c.fields.push(FieldDiff {
                        field: "spec.domain".into(),
                        before: None,
                        after: Some(Value::Text(spec.domain.clone())),
                        forces_replacement: false,
                    });
                }
            }
        }
        self.zones = zones;
    }

    /// Plans the stack's records, then deletes what the stack no longer
    /// declares: records first, then their zones.
    /// `deletes` holds the steps deleting certificates' validation
    /// records, by zone ID.
    pub(crate) fn dns_records(
        &mut self,
        mut deletes: BTreeMap<String, Vec<StepId>>,
    ) -> Result<(), PlanError> {
        let d = self.desired();
        // A copy: the records' values may read the zones (`nameServers`).
        let zones = self.zones.clone();
        // The steps deleting records, by zone ID: a zone goes after them.
        for (name, spec) in &d.dns_records {
            let zone = self.record_zone(name, spec, &zones)?;
            self.record(name, spec, &zone, &mut deletes)?;
        }
        self.removed_records(&mut deletes);
        self.removed_zones(&deletes);
        Ok(())
    }

    /// The zone a record goes in: the stack's DnsZone, or the one
    /// existing public zone of that domain.
    fn record_zone(
        &self,
        name: &ResourceName,
        spec: &DnsRecordSpec,
        zones: &BTreeMap<ResourceName, (Ref<String>, String)>,
    ) -> Result<ZoneAt<'a>, PlanError> {
        let o = self.observed();
        match &spec.zone {
            ZoneRef::Stack(z) => {
                let (id, domain) = zones.get(z).cloned().ok_or_else(|| PlanError::Dns {
                    record: name.clone(),
                    message: format!("spec.zone: DnsZone/{z} is not declared"),
                })?;
                let observed = id
                    .known()
                    .and_then(|id| o.dns_zones.iter().find(|x| x.id == *id));
                Ok(ZoneAt {
                    id,
                    domain,
                    observed,
                })
            }
            ZoneRef::Existing(domain) => {
                let found: Vec<&ObservedZone> =
                    o.dns_zones.iter().filter(|z| z.domain == *domain).collect();
                match found.as_slice() {
                    [z] => Ok(ZoneAt {
                        id: Ref::Known(z.id.clone()),
                        domain: domain.clone(),
                        observed: Some(z),
                    }),
                    [] => Err(PlanError::Dns {
                        record: name.clone(),
                        message: format!(
                            "spec.zone: no public hosted zone {domain} exists (declare a DnsZone, or create the zone first)"
                        ),
                    }),
                    many => Err(PlanError::Dns {
                        record: name.clone(),
                        message: format!(
                            "spec.zone: {} public hosted zones are named {domain} ({}); converge cannot tell which one is meant",
                            many.len(),
                            many.iter()
                                .map(|z| z.id.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    }),
                }
            }
        }
    }

    /// What the manifests want the record to hold, resolved now.
    fn want(&self, name: &ResourceName, spec: &DnsRecordSpec) -> Result<Want, PlanError> {
        let mut deps = BTreeSet::new();
        let mut change = PlannedRecordChange {
            action: Action::Upsert,
            name: spec.name.clone(),
            rtype: spec.rtype,
            ttl: Some(spec.ttl),
            values: Vec::new(),
            from_manifest: true,
            alias: None,
        };
        let mut display = Vec::new();
        match &spec.target {
            RecordTarget::Values(values) => {
                for t in values {
                    let r = self.resolve_user_data(t);
                    deps.extend(r.deps.iter().copied());
                    display.push(match &r.display {
                        Value::Multiline(s) | Value::Text(s) => s.clone(),
                        other => other.to_string(),
                    });
                    change.values.push(r.parts);
                }
            }
            RecordTarget::Alias(target) => {
                change.ttl = None;
                let (dns_name, zone_id) = self.alias_target(name, target, &mut deps)?;
                display.push(format!("alias to {target}"));
                change.alias = Some(PlannedAlias { dns_name, zone_id });
            }
        }
        let known = change.known();
        if known.is_none() && deps.is_empty() {
            // Every part is known, so a value is invalid.
            for v in change.values.iter() {
                if let [UserDataPart::Text(t)] = v.as_slice()
                    && let Err(m) = route53::value(spec.rtype, t)
                {
                    return Err(PlanError::Dns {
                        record: name.clone(),
                        message: format!("spec.values: {m}"),
                    });
                }
            }
        }
        Ok(Want {
            change,
            known,
            deps,
            display,
        })
    }

    /// An alias target's DNS name (known, or the creating step's output)
    /// and hosted zone.
    fn alias_target(
        &self,
        name: &ResourceName,
        target: &ResourceKey,
        deps: &mut BTreeSet<StepId>,
    ) -> Result<(Vec<UserDataPart>, Vec<UserDataPart>), PlanError> {
        if target.kind == Kind::Balancer {
            return self.balancer_alias(name, target, deps);
        }
        let zone = vec![UserDataPart::Text(route53::CLOUDFRONT_ZONE_ID.to_owned())];
        match self.cdns.get(&target.name) {
            Some((Some(dns), _)) => Ok((vec![UserDataPart::Text(dns.clone())], zone)),
            Some((None, Produced { step: Some(s) })) => {
                deps.insert(*s);
                Ok((
                    vec![UserDataPart::StepOutput {
                        step: *s,
                        attr: Attr::DomainName,
                    }],
                    zone,
                ))
            }
            _ => Err(PlanError::Dns {
                record: name.clone(),
                message: format!("spec.alias: {target} is not planned"),
            }),
        }
    }

    /// A balancer alias target: the balancer the plan leaves (a replacing
    /// one's DNS name once it is made), and the hosted zone of its type in
    /// the region.
    fn balancer_alias(
        &self,
        name: &ResourceName,
        target: &ResourceKey,
        deps: &mut BTreeSet<StepId>,
    ) -> Result<(Vec<UserDataPart>, Vec<UserDataPart>), PlanError> {
        let not_planned = || PlanError::Dns {
            record: name.clone(),
            message: format!("spec.alias: {target} is not planned"),
        };
        let p = self.balancers.get(&target.name).ok_or_else(not_planned)?;
        let region = &self.desired().region;
        let known_zone = p
            .dns
            .as_ref()
            .map(|(_, z)| z.clone())
            .filter(|z| !z.is_empty());
        let zone = known_zone
            .or_else(|| {
                crate::elb::canonical_zone_id(region.as_str(), p.handle.kind).map(str::to_owned)
            })
            .ok_or_else(|| PlanError::Dns {
                record: name.clone(),
                message: format!(
                    "spec.alias: the hosted zone of balancers in {region} is not known to converge"
                ),
            })?;
        match (&p.dns, p.produced.step) {
            (Some((dns, _)), _) => Ok((
                vec![UserDataPart::Text(dns.clone())],
                vec![UserDataPart::Text(zone)],
            )),
            (None, Some(s)) => {
                deps.insert(s);
                let out = |attr| vec![UserDataPart::StepOutput { step: s, attr }];
                Ok((out(Attr::DnsName), out(Attr::ZoneId)))
            }
            (None, None) => Err(not_planned()),
        }
    }

    /// Plans one declared record.
    fn record(
        &mut self,
        name: &ResourceName,
        spec: &DnsRecordSpec,
        zone: &ZoneAt<'a>,
        deletes: &mut BTreeMap<String, Vec<StepId>>,
    ) -> Result<(), PlanError> {
        let want = self.want(name, spec)?;
        let stack = self.desired().stack.clone();
        let current = zone.observed.and_then(|z| z.record(&spec.name, spec.rtype));
        let mark = zone
            .observed
            .and_then(|z| Mark::of(z, &spec.name, spec.rtype));
        let mine = |m: &Mark| m.stack == stack && m.record == *name;
        let fresh = Mark {
            stack: stack.clone(),
            record: name.clone(),
            retain: spec.deletion_policy == DeletionPolicy::Retain,
            stage: None,
            pending: false,
        };
        let mut decision = match (current, &mark) {
            (None, _) => {
                let mut set = want.change.clone();
                set.action = Action::Create;
                let mark_set = fresh.record_set(&spec.name, spec.rtype);
                Decision {
                    purpose: Some(RecordPurpose::Create),
                    changes: vec![set, PlannedRecordChange::of_set(Action::Upsert, &mark_set)],
                    notes: Vec::new(),
                    action: ChangeAction::Create,
                }
            }
            (Some(cur), Some(m)) if !mine(m) => Decision {
                purpose: None,
                changes: Vec::new(),
                notes: vec![not_owned(
                    cur,
                    Some(format!("stack {} (DnsRecord/{})", m.stack, m.record)),
                )],
                action: ChangeAction::NoChange,
            },
            (Some(cur), None) if !spec.adopt => Decision {
                purpose: None,
                changes: Vec::new(),
                notes: vec![not_owned(cur, None)],
                action: ChangeAction::NoChange,
            },
            (Some(_), Some(m)) if m.pending => self.stamp(spec, m),
            (Some(cur), m) => self.cutover(spec, &want, cur, m.as_ref(), fresh),
        };
        // Sets this record marked before at another name or type (its
        // name or type changed) go in the same batch.
        if let Some(z) = zone.observed {
            for old in z
                .records
                .iter()
                .filter(|r| r.rtype != RecordType::Txt || !r.name.starts_with("_converge-"))
            {
                if old.name == spec.name && old.rtype == spec.rtype {
                    continue;
                }
                if Mark::of(z, &old.name, old.rtype).is_some_and(|m| mine(&m)) {
                    decision
                        .changes
                        .insert(0, PlannedRecordChange::of_set(Action::Delete, old));
                    if let Some(ms) =
                        z.record(&Mark::name_for(&old.name, old.rtype), RecordType::Txt)
                    {
                        decision
                            .changes
                            .insert(1, PlannedRecordChange::of_set(Action::Delete, ms));
                    }
                    decision.purpose.get_or_insert(RecordPurpose::Update);
                    if decision.action == ChangeAction::NoChange {
                        decision.action = ChangeAction::Update;
                    }
                }
            }
        }
        self.check_batch(name, zone, &decision.changes)?;
        let key = ResourceKey::new(Kind::DnsRecord, name.clone());
        let mut deps: Vec<StepId> = want.deps.iter().copied().collect();
        if let Ref::Created(s) = &zone.id {
            deps.push(*s);
        }
        if let Some(purpose) = decision.purpose
            && !decision.changes.is_empty()
        {
            if let (ZoneRef::Existing(_), Some(z)) = (&spec.zone, zone.observed)
                && decision.changes.iter().any(|c| c.action != Action::Delete)
            {
                deps.extend(self.records_tag(name, z));
            }
            let step = self.add(
                Step::ChangeRecords {
                    name: name.clone(),
                    zone: zone.id.clone(),
                    purpose,
                    changes: decision.changes.clone(),
                },
                deps,
            );
            if let Ref::Known(id) = &zone.id
                && decision.changes.iter().any(|c| c.action == Action::Delete)
            {
                deletes.entry(id.clone()).or_default().push(step);
            }
        }
        let c = self.change(key, decision.action.clone());
        c.fields = record_fields(spec, current, &want, &zone.domain);
        c.notes = decision.notes;
        Ok(())
    }

    /// The batch for a record that exists and is (or becomes) converge's:
    /// at once, or the cutover step due now, with what waits after.
    fn cutover(
        &self,
        spec: &DnsRecordSpec,
        want: &Want,
        cur: &RecordSet,
        mark: Option<&Mark>,
        fresh: Mark,
    ) -> Decision {
        let now = self.input.at;
        let adopting = mark.is_none();
        let stage = mark.and_then(|m| m.stage);
        let same_content = want
            .known
            .as_ref()
            .is_some_and(|k| k.values == cur.values && k.alias == cur.alias);
        let mut notes = Vec::new();
        if adopting {
            notes.push(Note::Adopt);
        }
        let mut batch = |set: PlannedRecordChange, stage: Option<Stage>| {
            // A stage written now holds the plan's moment until the
            // executor notes when the change was in sync.
            let m = Mark {
                stage,
                pending: stage.is_some(),
                ..fresh.clone()
            };
            vec![
                set,
                PlannedRecordChange::of_set(Action::Upsert, &m.record_set(&spec.name, spec.rtype)),
            ]
        };
        let with_ttl = |ttl: Option<u32>| {
            let mut c = want.change.clone();
            if c.alias.is_none() {
                c.ttl = ttl;
            }
            c
        };
        let at_once = |purpose, notes| Decision {
            purpose: Some(purpose),
            changes: Vec::new(),
            notes,
            action: ChangeAction::Update,
        };
        let cutover_ttl = spec.cutover.ttl;
        if same_content {
            return self.same_value(spec, want, cur, stage, adopting, &fresh, notes);
        }
        {
            match (stage, cur.ttl) {
                (Some(Stage::Lowered { at, old_ttl }), _) => {
                    let due = later(at, SignedDuration::from_secs(i64::from(old_ttl)));
                    if due > now {
                        notes.push(Note::CutoverWaits {
                            step: CutoverStep::Switch,
                            at: due,
                            old_ttl: Some(old_ttl),
                        });
                        return Decision {
                            purpose: None,
                            changes: Vec::new(),
                            notes,
                            action: ChangeAction::NoChange,
                        };
                    }
                    self.switch(spec, want, &mut notes, &mut batch, now)
                }
                (Some(Stage::Switched { .. }), _) => {
                    self.switch(spec, want, &mut notes, &mut batch, now)
                }
                (None, Some(ttl)) if ttl > cutover_ttl => {
                    notes.push(Note::Cutover {
                        step: CutoverStep::Lower,
                        ttl: Some(cutover_ttl),
                    });
                    notes.push(switch_waits(now, ttl));
                    let mut lowered = PlannedRecordChange::of_set(Action::Upsert, cur);
                    lowered.ttl = Some(cutover_ttl);
                    let mut d = at_once(RecordPurpose::Cutover(CutoverStep::Lower), Vec::new());
                    d.changes = batch(
                        lowered,
                        Some(Stage::Lowered {
                            at: now,
                            old_ttl: ttl,
                        }),
                    );
                    d.notes = std::mem::take(&mut notes);
                    d
                }
                // An alias, or a TTL already short: at once.
                (None, _) => {
                    let mut d = at_once(
                        if adopting {
                            RecordPurpose::Adopt
                        } else {
                            RecordPurpose::Update
                        },
                        Vec::new(),
                    );
                    d.changes = batch(with_ttl(Some(spec.ttl)), None);
                    d.notes = std::mem::take(&mut notes);
                    d
                }
            }
        }
    }

    /// A record whose value is already the declared one: the settle when
    /// due, a TTL change, or only the mark of an adopted record.
    #[allow(clippy::too_many_arguments)]
    fn same_value(
        &self,
        spec: &DnsRecordSpec,
        want: &Want,
        cur: &RecordSet,
        stage: Option<Stage>,
        adopting: bool,
        fresh: &Mark,
        mut notes: Vec<Note>,
    ) -> Decision {
        let now = self.input.at;
        let batch = |set: PlannedRecordChange, stage: Option<Stage>| {
            // A stage written now holds the plan's moment until the
            // executor notes when the change was in sync.
            let m = Mark {
                stage,
                pending: stage.is_some(),
                ..fresh.clone()
            };
            vec![
                set,
                PlannedRecordChange::of_set(Action::Upsert, &m.record_set(&spec.name, spec.rtype)),
            ]
        };
        let with_ttl = |ttl: Option<u32>| {
            let mut c = want.change.clone();
            if c.alias.is_none() {
                c.ttl = ttl;
            }
            c
        };
        let at_once = |purpose, notes| Decision {
            purpose: Some(purpose),
            changes: Vec::new(),
            notes,
            action: ChangeAction::Update,
        };
        let settle = SignedDuration::from_secs(i64::from(spec.cutover.settle));
        match stage {
            Some(Stage::Switched { at }) if later(at, settle) > now && cur.alias.is_none() => {
                notes.push(Note::CutoverWaits {
                    step: CutoverStep::Settle,
                    at: later(at, settle),
                    old_ttl: None,
                });
                Decision {
                    purpose: None,
                    changes: Vec::new(),
                    notes,
                    action: ChangeAction::NoChange,
                }
            }
            Some(_) => {
                notes.push(Note::Cutover {
                    step: CutoverStep::Settle,
                    ttl: want.change.ttl,
                });
                let mut d = at_once(RecordPurpose::Cutover(CutoverStep::Settle), notes);
                d.changes = batch(with_ttl(Some(spec.ttl)), None);
                d
            }
            None if cur.ttl != want.change.ttl => {
                let mut d = at_once(
                    if adopting {
                        RecordPurpose::Adopt
                    } else {
                        RecordPurpose::Update
                    },
                    notes,
                );
                d.changes = batch(with_ttl(Some(spec.ttl)), None);
                d
            }
            None if adopting => {
                let mut d = at_once(RecordPurpose::Adopt, notes);
                d.changes = vec![PlannedRecordChange::of_set(
                    Action::Upsert,
                    &fresh.record_set(&spec.name, spec.rtype),
                )];
                d
            }
            None => Decision {
                purpose: None,
                changes: Vec::new(),
                notes,
                action: ChangeAction::NoChange,
            },
        }
    }

    /// A mark whose stage still holds the planned moment (the run that
    /// wrote it stopped before the change was in sync): written again, so
    /// that the executor notes the moment it is in sync, which is later
    /// than the real one. What waits is counted from now meanwhile.
    fn stamp(&self, spec: &DnsRecordSpec, mark: &Mark) -> Decision {
        let now = self.input.at;
        let step = match mark.stage {
            Some(Stage::Lowered { .. }) => CutoverStep::Lower,
            _ => CutoverStep::Switch,
        };
        let wait = match mark.stage {
            Some(Stage::Lowered { old_ttl, .. }) => switch_waits(now, old_ttl),
            _ => settle_waits(now, spec.cutover.settle),
        };
        Decision {
            purpose: Some(RecordPurpose::Stamp),
            changes: vec![PlannedRecordChange::of_set(
                Action::Upsert,
                &mark.record_set(&spec.name, spec.rtype),
            )],
            notes: vec![Note::CutoverStamp { step }, wait],
            action: ChangeAction::Update,
        }
    }

    /// The switch: the new value at the cutover TTL (an alias has none,
    /// and its cutover ends here).
    fn switch(
        &self,
        spec: &DnsRecordSpec,
        want: &Want,
        notes: &mut Vec<Note>,
        batch: &mut impl FnMut(PlannedRecordChange, Option<Stage>) -> Vec<PlannedRecordChange>,
        now: Timestamp,
    ) -> Decision {
        let mut set = want.change.clone();
        let alias = set.alias.is_some();
        if !alias {
            set.ttl = Some(spec.cutover.ttl);
        }
        notes.push(Note::Cutover {
            step: CutoverStep::Switch,
            ttl: set.ttl,
        });
        let stage = (!alias).then_some(Stage::Switched { at: now });
        if !alias {
            notes.push(settle_waits(now, spec.cutover.settle));
        }
        Decision {
            purpose: Some(RecordPurpose::Cutover(CutoverStep::Switch)),
            changes: batch(set, stage),
            notes: std::mem::take(notes),
            action: ChangeAction::Update,
        }
    }

    /// Checks a batch whose parts are all known against Route 53's rules
    /// on the zone as observed, so that converge refuses before calling.
    fn check_batch(
        &self,
        name: &ResourceName,
        zone: &ZoneAt<'_>,
        changes: &[PlannedRecordChange],
    ) -> Result<(), PlanError> {
        let Some(sets) = changes
            .iter()
            .map(|c| {
                c.known().map(|set| route53::RecordChange {
                    action: c.action,
                    set,
                })
            })
            .collect::<Option<Vec<_>>>()
        else {
            return Ok(());
        };
        let records = zone.observed.map(|z| z.records.as_slice()).unwrap_or(&[]);
        route53::check_batch(&zone.domain, records, &sets)
            .map(|_| ())
            .map_err(|message| PlanError::Dns {
                record: name.clone(),
                message: format!(
                    "Route 53 would refuse the change (InvalidChangeBatch): {message}"
                ),
            })
    }

    /// The step tagging an existing zone `converge:records:STACK` before
    /// the stack's first record goes in (one per zone in a plan), so that
    /// its records are found once no manifest names the zone; none when
    /// the tag is there.
    fn records_tag(&mut self, record: &ResourceName, z: &ObservedZone) -> Option<StepId> {
        let tag = crate::ids::tags::records_of(&self.desired().stack);
        if z.tags.contains_key(&tag) {
            return None;
        }
        let planned = self.steps.iter().position(
            |s| matches!(s, Step::SetTags { target: TagTarget::Zone(id), .. } if *id == z.id),
        );
        Some(planned.unwrap_or_else(|| {
            self.add(
                Step::SetTags {
                    key: ResourceKey::new(Kind::DnsRecord, record.clone()),
                    target: TagTarget::Zone(z.id.clone()),
                    set: [(tag, "DnsRecord".to_owned())].into_iter().collect(),
                    remove: Vec::new(),
                },
                [],
            )
        }))
    }

    /// Records of the stack the manifests no longer declare: deleted with
    /// their marks, or kept by their deletion policy. An existing zone
    /// left with none of the stack's records loses its
    /// `converge:records:STACK` tag after the deletions.
    fn removed_records(&mut self, deletes: &mut BTreeMap<String, Vec<StepId>>) {
        let d = self.desired();
        let o = self.observed();
        for z in &o.dns_zones {
            // The first record deleted here, and every delete step.
            let mut untag: Option<(ResourceKey, Vec<StepId>)> = None;
            for r in &z.records {
                let Some(m) = Mark::of(z, &r.name, r.rtype) else {
                    continue;
                };
                if m.stack != d.stack || d.dns_records.contains_key(&m.record) {
                    continue;
                }
                let key = ResourceKey::new(Kind::DnsRecord, m.record.clone());
                if m.retain {
                    self.change(
                        key,
                        ChangeAction::DeleteBlocked {
                            policy: DeletionPolicy::Retain,
                        },
                    );
                    continue;
                }
                let mut changes = vec![PlannedRecordChange::of_set(Action::Delete, r)];
                if let Some(ms) = z.record(&Mark::name_for(&r.name, r.rtype), RecordType::Txt) {
                    changes.push(PlannedRecordChange::of_set(Action::Delete, ms));
                }
                let step = self.add(
                    Step::ChangeRecords {
                        name: m.record.clone(),
                        zone: Ref::Known(z.id.clone()),
                        purpose: RecordPurpose::Delete,
                        changes,
                    },
                    [],
                );
                deletes.entry(z.id.clone()).or_default().push(step);
                untag.get_or_insert((key.clone(), Vec::new())).1.push(step);
                self.change(key, ChangeAction::Delete);
            }
            let tag = crate::ids::tags::records_of(&d.stack);
            let declared = d
                .dns_records
                .values()
                .any(|r| r.zone == ZoneRef::Existing(z.domain.clone()));
            if let Some((key, after)) = untag
                && z.tags.contains_key(&tag)
                && !declared
            {
                self.add(
                    Step::SetTags {
                        key,
                        target: TagTarget::Zone(z.id.clone()),
                        set: Default::default(),
                        remove: vec![tag],
                    },
                    after,
                );
            }
        }
    }

    /// Zones of the stack the manifests no longer declare: deleted after
    /// their records when their policy says so, else kept.
    fn removed_zones(&mut self, deletes: &BTreeMap<String, Vec<StepId>>) {
        let d = self.desired();
        let o = self.observed();
        for z in &o.dns_zones {
            let Some(owner) = &z.owner else { continue };
            if owner.stack != d.stack
                || owner.kind != Kind::DnsZone
                || d.dns_zones.contains_key(&owner.name)
            {
                continue;
            }
            let key = ResourceKey::new(Kind::DnsZone, owner.name.clone());
            let policy = DeletionPolicy::from_tags(&z.tags);
            if policy != DeletionPolicy::Delete {
                self.change(
                    key,
                    ChangeAction::DeleteBlocked {
                        policy: DeletionPolicy::Retain,
                    },
                );
                continue;
            }
            let after = deletes.get(&z.id).cloned().unwrap_or_default();
            self.add(
                Step::DeleteZone {
                    name: owner.name.clone(),
                    id: z.id.clone(),
                },
                after,
            );
            self.change(key, ChangeAction::Delete);
        }
    }
}

/// `t + d`, saturating.
fn later(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// The note that the switch is due once `old_ttl` seconds have passed
/// since `from`.
fn switch_waits(from: Timestamp, old_ttl: u32) -> Note {
    Note::CutoverWaits {
        step: CutoverStep::Switch,
        at: later(from, SignedDuration::from_secs(i64::from(old_ttl))),
        old_ttl: Some(old_ttl),
    }
}

/// The note that the settle is due once `settle` seconds have passed
/// since `from`.
fn settle_waits(from: Timestamp, settle: u32) -> Note {
    Note::CutoverWaits {
        step: CutoverStep::Settle,
        at: later(from, SignedDuration::from_secs(i64::from(settle))),
        old_ttl: None,
    }
}

/// The note of a record set converge does not own.
fn not_owned(cur: &RecordSet, owner: Option<String>) -> Note {
    Note::Blocked {
        field: "spec.adopt".into(),
        reason: BlockedChange::NotOwned {
            set: format!("{} {}", cur.name, cur.rtype),
            owner,
        },
    }
}

/// The fields a plan shows of a record: what it holds now and what the
/// manifests want.
fn record_fields(
    spec: &DnsRecordSpec,
    current: Option<&RecordSet>,
    want: &Want,
    zone: &str,
) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    let shown = |s: &RecordSet| -> Vec<String> {
        match &s.alias {
            Some(a) => vec![format!("alias {} ({})", a.dns_name, a.zone_id)],
            None => s.values.clone(),
        }
    };
    let after: Vec<String> = match &want.known {
        Some(k) => shown(k),
        None => want.display.clone(),
    };
    if current.is_none() {
        out.push(FieldDiff {
            field: "spec.name".into(),
            before: None,
            after: Some(Value::Text(format!(
                "{} {} (zone {zone})",
                spec.name, spec.rtype
            ))),
            forces_replacement: false,
        });
    }
    let before = current.map(shown);
    if before.as_ref() != Some(&after) {
        out.push(FieldDiff {
            field: "spec.values".into(),
            before: before.map(Value::List),
            after: Some(if want.known.is_none() && !want.deps.is_empty() {
                Value::Unknown
            } else {
                Value::List(after)
            }),
            forces_replacement: false,
        });
    }
    let ttl =
        |t: Option<u32>| Value::Text(t.map_or("none (alias)".to_owned(), |t| format!("{t} s")));
    let before_ttl = current.map(|c| ttl(c.ttl));
    let after_ttl = ttl(want.change.ttl);
    if before_ttl.as_ref() != Some(&after_ttl) {
        out.push(FieldDiff {
            field: "spec.ttl".into(),
            before: before_ttl,
            after: Some(after_ttl),
            forces_replacement: false,
        });
    }
    out
}
