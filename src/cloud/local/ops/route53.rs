//! Route 53: public hosted zones and their record sets, with Route 53's
//! rules (`converge_core::route53::check_batch`: a CNAME neither at the
//! apex nor beside another set of its name, names inside the zone,
//! CREATE of an existing set and DELETE of one that does not match
//! refused, aliases A/AAAA without a TTL, no value twice), batches
//! applied all or nothing, and changes PENDING until they are in sync
//! (`Delays::dns` later). Route 53 is global: zones have no region.

use super::tags::check_tags;
use super::{Ctx, Errs};
use crate::cloud::local::world::World;
use crate::cloud::{CloudError, Outcome};
use converge_core::desired::Tags;
use converge_core::observed::Owner;
use converge_core::route53::{self, ObservedZone, RecordChange, RecordSet, RecordType};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A hosted zone as the world stores it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct HostedZone {
    pub id: String,
    pub domain: String,
    pub name_servers: Vec<String>,
    pub tags: Tags,
    /// Every set but the SOA and NS ones, sorted by name and type.
    pub records: Vec<RecordSet>,
    pub created_at: Timestamp,
}

impl HostedZone {
    /// The zone as observed: its SOA and NS sets listed first, as
    /// ListResourceRecordSets does.
    pub(crate) fn observed(&self) -> ObservedZone {
        let mut records = vec![
            RecordSet {
                name: self.domain.clone(),
                rtype: RecordType::Ns,
                ttl: Some(172_800),
                values: self.name_servers.clone(),
                alias: None,
            },
            RecordSet {
                name: self.domain.clone(),
                rtype: RecordType::Soa,
                ttl: Some(900),
                values: vec![format!(
                    "{} awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400",
                    self.name_servers.first().cloned().unwrap_or_default()
                )],
                alias: None,
            },
        ];
        records.extend(self.records.iter().cloned());
        ObservedZone {
            id: self.id.clone(),
            domain: self.domain.clone(),
            name_servers: self.name_servers.clone(),
            owner: Owner::from_tags(&self.tags),
            tags: self.tags.clone(),
            records,
        }
    }
}

/// CreateHostedZone (then ChangeTagsForResource): a public zone; a
/// caller reference used before answers HostedZoneAlreadyExists, as
/// Route 53 does.
pub(crate) fn create_zone(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    domain: &str,
    caller_reference: &str,
    tags: &Tags,
) -> Result<Outcome, CloudError> {
    let domain = route53::domain(domain).map_err(|m| e.invalid("InvalidDomainName", m))?;
    check_tags(e, tags)?;
    if caller_reference.is_empty() || caller_reference.len() > 128 {
        return Err(e.invalid(
            "InvalidInput",
            "CallerReference must be 1 to 128 characters",
        ));
    }
    if w.zone_references.contains_key(caller_reference) {
        return Err(e.exists(
            "HostedZoneAlreadyExists",
            format!("A hosted zone has already been created with the specified caller reference {caller_reference}."),
        ));
    }
    let id = format!(
        "Z{}",
        w.next_chars(20, b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    );
    let n = w.next_u64();
    let name_servers = (0..4)
        .map(|i| {
            let tld = ["com", "net", "org", "co.uk"][i];
            format!(
                "ns-{}.awsdns-{:02}.{tld}",
                (n >> (i * 10)) % 2048,
                (n >> (i * 6)) % 64
            )
        })
        .collect::<Vec<_>>();
    w.zone_references
        .insert(caller_reference.to_owned(), id.clone());
    w.hosted_zones.insert(
        id.clone(),
        HostedZone {
            id: id.clone(),
            domain,
            name_servers: name_servers.clone(),
            tags: tags.clone(),
            records: Vec::new(),
            created_at: cx.now,
        },
    );
    Ok(Outcome::Zone { id, name_servers })
}

/// DeleteHostedZone: only a zone holding nothing but its SOA and NS sets.
pub(crate) fn delete_zone(w: &mut World, e: &Errs, id: &str) -> Result<Outcome, CloudError> {
    let z = w.hosted_zones.get(id).ok_or_else(|| no_such_zone(e, id))?;
    if !z.records.is_empty() {
        return Err(e.state(
            "HostedZoneNotEmpty",
            format!(
                "The specified hosted zone {id} contains resource record sets other than the default SOA and NS records ({} of them).",
                z.records.len()
            ),
        ));
    }
    w.hosted_zones.remove(id);
    Ok(Outcome::Done)
}

/// ChangeResourceRecordSets: the batch checked whole by Route 53's rules
/// and applied all or nothing; answers the change's ID, in sync after
/// `Delays::dns`.
pub(crate) fn change_records(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    zone: &str,
    changes: &[RecordChange],
) -> Result<Outcome, CloudError> {
    if changes.is_empty() || changes.len() > 1000 {
        return Err(e.invalid("InvalidInput", "a change batch holds 1 to 1000 changes"));
    }
    let z = w
        .hosted_zones
        .get(zone)
        .ok_or_else(|| no_such_zone(e, zone))?;
    for c in changes {
        if matches!(c.set.rtype, RecordType::Ns | RecordType::Soa) && c.set.name == z.domain {
            return Err(e.invalid(
                "InvalidChangeBatch",
                "converge's local cloud does not change a zone's own SOA and NS sets",
            ));
        }
    }
    let records = route53::check_batch(&z.domain, &z.records, changes)
        .map_err(|m| e.invalid("InvalidChangeBatch", m))?;
    if let Some(z) = w.hosted_zones.get_mut(zone) {
        z.records = records;
    }
    let id = format!(
        "C{}",
        w.next_chars(20, b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    );
    w.dns_changes.insert(id.clone(), cx.later(cx.delays.dns));
    Ok(Outcome::Change(id))
}

/// GetChange: whether the batch is in sync at `now`.
pub(crate) fn change_in_sync(
    w: &World,
    now: Timestamp,
    e: &Errs,
    id: &str,
) -> Result<bool, CloudError> {
    match w.dns_changes.get(id) {
        Some(at) => Ok(*at <= now),
        None => Err(e.not_found(
            "NoSuchChange",
            format!("A change with the specified change ID {id} does not exist."),
        )),
    }
}

/// The stack's zones, the zones holding its records (by their tags) and
/// the zones of `domains`.
pub(crate) fn zones(w: &World, stack: &str, domains: &[String]) -> Vec<ObservedZone> {
    w.hosted_zones
        .values()
        .filter(|z| route53::observed_for(stack, domains, &z.domain, &z.tags))
        .map(HostedZone::observed)
        .collect()
}

fn no_such_zone(e: &Errs, id: &str) -> CloudError {
    e.not_found(
        "NoSuchHostedZone",
        format!("No hosted zone found with ID: {id}"),
    )
}
