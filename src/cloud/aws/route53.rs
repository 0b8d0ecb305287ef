//! Route 53: public hosted zones and their record sets.
//!
//! Observing is a constant number of calls per zone: ListHostedZones
//! pages (100 zones a page), ListTagsForResources for ten zones a call
//! (to find the stack's own), and ListResourceRecordSets pages (300 sets
//! a page) for each zone of interest: the stack's own and those whose
//! domain its records name. A zone's name servers are its apex NS set.
//! Hosted zones carry converge's tags; records carry none (Route 53 has
//! no record tags), so converge's ownership mark is a TXT record beside
//! each (`converge_core::route53::Mark`).

use super::AwsCloud;
use super::error::{refuse, sdk_error};
use crate::cloud::{CloudError, ErrorKind, Outcome};
use aws_sdk_route53::types::{
    AliasTarget as SdkAlias, Change, ChangeAction as SdkAction, ChangeBatch, ChangeStatus,
    ResourceRecord, ResourceRecordSet, RrType, Tag, TagResourceType,
};
use converge_core::desired::Tags;
use converge_core::ids::ResourceName;
use converge_core::observed::Owner;
use converge_core::route53::{
    self, AliasTarget, ChangeAction, ObservedZone, RecordChange, RecordSet, RecordType,
};

/// A zone ID without the `/hostedzone/` prefix Route 53 puts on it.
fn bare(id: &str) -> String {
    id.rsplit('/').next().unwrap_or(id).to_owned()
}

/// A name as Route 53 lists it, without the final dot, lowercase, `*`
/// unescaped.
fn name_of(s: &str) -> String {
    s.trim_end_matches('.')
        .replace("\\052", "*")
        .to_ascii_lowercase()
}

impl AwsCloud {
    /// Every public hosted zone: (ID, domain, caller reference).
    async fn list_zones(&self) -> Result<Vec<(String, String, String)>, CloudError> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .route53
                .list_hosted_zones()
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(|e| sdk_error("ListHostedZones", e))?;
            for z in page.hosted_zones() {
                if z.config().is_some_and(|c| c.private_zone()) {
                    continue;
                }
                out.push((
                    bare(z.id()),
                    name_of(z.name()),
                    z.caller_reference().to_owned(),
                ));
            }
            match page.next_marker() {
                Some(m) if page.is_truncated() => marker = Some(m.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    /// The tags of these zones, ten a call.
    async fn zone_tags(&self, ids: &[String]) -> Result<Vec<(String, Tags)>, CloudError> {
        let mut out = Vec::new();
        for batch in ids.chunks(10) {
            let r = self
                .route53
                .list_tags_for_resources()
                .resource_type(TagResourceType::Hostedzone)
                .set_resource_ids(Some(batch.to_vec()))
                .send()
                .await
                .map_err(|e| sdk_error("ListTagsForResources", e))?;
            for set in r.resource_tag_sets() {
                let tags = super::tags_from(set.tags().iter().map(|t| (t.key(), t.value())));
                out.push((bare(set.resource_id().unwrap_or_default()), tags));
            }
        }
        Ok(out)
    }

    /// A zone's record sets, page by page.
    async fn record_sets(&self, zone: &str) -> Result<Vec<RecordSet>, CloudError> {
        let mut out = Vec::new();
        let mut next: Option<(String, RrType, Option<String>)> = None;
        loop {
            let mut req = self
                .route53
                .list_resource_record_sets()
                .hosted_zone_id(zone);
            if let Some((name, rtype, ident)) = next.take() {
                req = req
                    .start_record_name(name)
                    .start_record_type(rtype)
                    .set_start_record_identifier(ident);
            }
            let page = req
                .send()
                .await
                .map_err(|e| sdk_error("ListResourceRecordSets", e))?;
            out.extend(page.resource_record_sets().iter().map(read_set));
            match (page.next_record_name(), page.next_record_type()) {
                (Some(n), Some(t)) if page.is_truncated() => {
                    next = Some((
                        n.to_owned(),
                        t.clone(),
                        page.next_record_identifier().map(str::to_owned),
                    ));
                }
                _ => break,
            }
        }
        out.sort_by(|a, b| (&a.name, a.rtype).cmp(&(&b.name, b.rtype)));
        Ok(out)
    }

    /// The stack's zones and the public zones of `domains`, with their
    /// record sets.
    pub(super) async fn observe_zones(
        &self,
        stack: &ResourceName,
        domains: &[String],
    ) -> Result<Vec<ObservedZone>, CloudError> {
        let zones = self.list_zones().await?;
        let ids: Vec<String> = zones.iter().map(|(id, _, _)| id.clone()).collect();
        let tags = self.zone_tags(&ids).await?;
        let mut out = Vec::new();
        for (id, domain, _) in zones {
            let tags = tags
                .iter()
                .find(|(t, _)| *t == id)
                .map(|(_, t)| t.clone())
                .unwrap_or_default();
            if !converge_core::route53::observed_for(stack.as_str(), domains, &domain, &tags) {
                continue;
            }
            let owner = Owner::from_tags(&tags);
            let records = self.record_sets(&id).await?;
            let name_servers = records
                .iter()
                .find(|r| r.rtype == RecordType::Ns && r.name == domain)
                .map(|r| r.values.clone())
                .unwrap_or_default();
            out.push(ObservedZone {
                id,
                domain,
                name_servers,
                owner,
                tags,
                records,
            });
        }
        Ok(out)
    }

    /// CreateHostedZone and ChangeTagsForResource. A caller reference
    /// used before (a retry after a lost answer, or a crash before the
    /// tags) finds that zone in ListHostedZones and tags it.
    pub(super) async fn create_zone(
        &self,
        domain: &str,
        caller_reference: &str,
        tags: &Tags,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "CreateHostedZone";
        let created = self
            .route53
            .create_hosted_zone()
            .name(domain)
            .caller_reference(caller_reference)
            .send()
            .await;
        let (id, name_servers) = match created {
            Ok(r) => {
                let id = r.hosted_zone().map(|z| bare(z.id())).unwrap_or_default();
                let ns = r
                    .delegation_set()
                    .map(|d| d.name_servers().iter().map(|n| name_of(n)).collect())
                    .unwrap_or_default();
                (id, ns)
            }
            Err(e) => {
                let err = sdk_error(OP, e);
                if err.kind != ErrorKind::AlreadyExists {
                    return Err(err);
                }
                let found = self
                    .list_zones()
                    .await?
                    .into_iter()
                    .find(|(_, _, r)| r == caller_reference)
                    .ok_or(err)?;
                let records = self.record_sets(&found.0).await?;
                let ns = records
                    .iter()
                    .find(|r| r.rtype == RecordType::Ns)
                    .map(|r| r.values.clone())
                    .unwrap_or_default();
                (found.0, ns)
            }
        };
        if id.is_empty() {
            return Err(refuse(
                OP,
                "MissingId",
                "CreateHostedZone answered no zone ID",
            ));
        }
        if !tags.is_empty() {
            let add: Vec<Tag> = tags
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect();
            self.route53
                .change_tags_for_resource()
                .resource_type(TagResourceType::Hostedzone)
                .resource_id(&id)
                .set_add_tags(Some(add))
                .send()
                .await
                .map_err(|e| sdk_error("ChangeTagsForResource", e))?;
        }
        Ok(Outcome::Zone { id, name_servers })
    }

    /// ChangeTagsForResource of a hosted zone: sets `add`, removes
    /// `remove` (at most 10 each a call, Route 53's limit).
    pub(super) async fn tag_zone(
        &self,
        id: &str,
        add: &Tags,
        remove: &[String],
    ) -> Result<Outcome, CloudError> {
        let add: Vec<Tag> = add
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        let (mut add, mut remove) = (add.as_slice(), remove);
        while !add.is_empty() || !remove.is_empty() {
            let (a, rest_a) = add.split_at(add.len().min(10));
            let (r, rest_r) = remove.split_at(remove.len().min(10));
            self.route53
                .change_tags_for_resource()
                .resource_type(TagResourceType::Hostedzone)
                .resource_id(id)
                .set_add_tags((!a.is_empty()).then(|| a.to_vec()))
                .set_remove_tag_keys((!r.is_empty()).then(|| r.to_vec()))
                .send()
                .await
                .map_err(|e| sdk_error("ChangeTagsForResource", e))?;
            (add, remove) = (rest_a, rest_r);
        }
        Ok(Outcome::Done)
    }

    /// DeleteHostedZone.
    pub(super) async fn delete_zone(&self, id: &str) -> Result<Outcome, CloudError> {
        self.route53
            .delete_hosted_zone()
            .id(id)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteHostedZone", e))?;
        Ok(Outcome::Done)
    }

    /// ChangeResourceRecordSets; answers the change's ID.
    ///
    /// The call takes no idempotency token, so when the answer to a batch
    /// that took effect is lost (a 500, a timeout, a dropped connection)
    /// the SDK's repeat of its CREATE is refused with InvalidChangeBatch
    /// "… but it already exists". That refusal is success when the zone
    /// holds the batch's result exactly, each created set with a converge
    /// mark beside it ([`route53::batch_in_effect`]): the batch is sent
    /// again as UPSERTs of the same sets (which change nothing) for a
    /// change ID to wait on.
    pub(super) async fn change_records(
        &self,
        zone: &str,
        changes: &[RecordChange],
    ) -> Result<Outcome, CloudError> {
        match self.send_batch(zone, changes).await {
            Ok(id) => Ok(Outcome::Change(id)),
            Err(e) if e.code == "InvalidChangeBatch" && e.message.contains("already exists") => {
                let records = self.record_sets(zone).await?;
                if !route53::batch_in_effect(&records, changes) {
                    return Err(e);
                }
                let again: Vec<RecordChange> = changes
                    .iter()
                    .filter(|c| c.action != ChangeAction::Delete)
                    .map(|c| RecordChange {
                        action: ChangeAction::Upsert,
                        set: c.set.clone(),
                    })
                    .collect();
                Ok(Outcome::Change(self.send_batch(zone, &again).await?))
            }
            Err(e) => Err(e),
        }
    }

    /// One ChangeResourceRecordSets; answers the change's ID.
    async fn send_batch(&self, zone: &str, changes: &[RecordChange]) -> Result<String, CloudError> {
        const OP: &str = "ChangeResourceRecordSets";
        let build = |m: aws_smithy_types::error::operation::BuildError| {
            refuse(OP, "InvalidInput", m.to_string())
        };
        let mut batch = Vec::new();
        for c in changes {
            let action = match c.action {
                ChangeAction::Create => SdkAction::Create,
                ChangeAction::Upsert => SdkAction::Upsert,
                ChangeAction::Delete => SdkAction::Delete,
            };
            let s = &c.set;
            let mut set = ResourceRecordSet::builder()
                .name(&s.name)
                .r#type(RrType::from(s.rtype.as_str()))
                .set_ttl(s.ttl.map(i64::from));
            for v in &s.values {
                set = set
                    .resource_records(ResourceRecord::builder().value(v).build().map_err(build)?);
            }
            if let Some(a) = &s.alias {
                set = set.alias_target(
                    SdkAlias::builder()
                        .hosted_zone_id(&a.zone_id)
                        .dns_name(&a.dns_name)
                        .evaluate_target_health(false)
                        .build()
                        .map_err(build)?,
                );
            }
            batch.push(
                Change::builder()
                    .action(action)
                    .resource_record_set(set.build().map_err(build)?)
                    .build()
                    .map_err(build)?,
            );
        }
        let r = self
            .route53
            .change_resource_record_sets()
            .hosted_zone_id(zone)
            .change_batch(
                ChangeBatch::builder()
                    .set_changes(Some(batch))
                    .build()
                    .map_err(build)?,
            )
            .send()
            .await
            .map_err(|e| sdk_error(OP, e))?;
        Ok(r.change_info().map(|i| bare(i.id())).unwrap_or_default())
    }

    /// GetChange: whether the change is INSYNC.
    pub(super) async fn get_change(&self, id: &str) -> Result<bool, CloudError> {
        let r = self
            .route53
            .get_change()
            .id(id)
            .send()
            .await
            .map_err(|e| sdk_error("GetChange", e))?;
        Ok(r.change_info()
            .is_some_and(|i| *i.status() == ChangeStatus::Insync))
    }
}

/// A record set as converge sees it.
fn read_set(s: &ResourceRecordSet) -> RecordSet {
    let mut values: Vec<String> = s
        .resource_records()
        .iter()
        .map(|r| match RecordType::parse(s.r#type().as_str()) {
            RecordType::Cname | RecordType::Ns => name_of(r.value()),
            RecordType::Mx => match r.value().split_once(' ') {
                Some((p, h)) => format!("{p} {}", name_of(h)),
                None => r.value().to_owned(),
            },
            _ => r.value().to_owned(),
        })
        .collect();
    values.sort();
    RecordSet {
        name: name_of(s.name()),
        rtype: RecordType::parse(s.r#type().as_str()),
        ttl: s.ttl().and_then(|t| u32::try_from(t).ok()),
        values,
        alias: s.alias_target().map(|a| AliasTarget {
            dns_name: name_of(a.dns_name()),
            zone_id: a.hosted_zone_id().to_owned(),
        }),
    }
}
