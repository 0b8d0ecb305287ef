//! Route 53 in one place: hosted zones and record sets as converge sees
//! them, AWS's rules for them (read by manifest validation, the planner
//! and the local cloud alike, as `ebs.rs` is for volumes), and the
//! ownership mark converge writes beside each record it owns.
//!
//! Route 53 records carry no tags, so, as external-dns does, converge
//! marks a record set it owns with a TXT record beside it, written in the
//! same change batch: `_converge-<type>.<name>` holding
//! `"converge stack=S record=N policy=delete"`. A cutover in progress adds
//! its stage and moment to the mark (`lowered=<time> old-ttl=<s>` or
//! `switched=<time>`), so a wait longer than one run is carried by the
//! cloud itself, never by a local state file.

use crate::ids::ResourceName;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The record types converge manages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RecordType {
    /// IPv4 addresses (or an alias).
    A,
    /// IPv6 addresses (or an alias).
    #[serde(rename = "AAAA")]
    Aaaa,
    /// A canonical name.
    #[serde(rename = "CNAME")]
    Cname,
    /// Text.
    #[serde(rename = "TXT")]
    Txt,
    /// Mail exchangers (`10 mail.example.com`).
    #[serde(rename = "MX")]
    Mx,
    /// Name servers (only observed: the zone's own).
    #[serde(rename = "NS")]
    Ns,
    /// Start of authority (only observed: the zone's own).
    #[serde(rename = "SOA")]
    Soa,
    /// Any other type Route 53 lists (observed, never touched).
    Other,
}

impl RecordType {
    /// The type as Route 53 names it.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
            RecordType::Cname => "CNAME",
            RecordType::Txt => "TXT",
            RecordType::Mx => "MX",
            RecordType::Ns => "NS",
            RecordType::Soa => "SOA",
            RecordType::Other => "OTHER",
        }
    }

    /// Parses a type as Route 53 names it; unknown ones are `Other`.
    pub fn parse(s: &str) -> RecordType {
        match s {
            "A" => RecordType::A,
            "AAAA" => RecordType::Aaaa,
            "CNAME" => RecordType::Cname,
            "TXT" => RecordType::Txt,
            "MX" => RecordType::Mx,
            "NS" => RecordType::Ns,
            "SOA" => RecordType::Soa,
            _ => RecordType::Other,
        }
    }

    /// The types a manifest may declare.
    pub const DECLARABLE: [RecordType; 5] = [
        RecordType::A,
        RecordType::Aaaa,
        RecordType::Cname,
        RecordType::Txt,
        RecordType::Mx,
    ];
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an alias record points: a DNS name in another hosted zone.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AliasTarget {
    /// The target's DNS name, lowercase, without the final dot.
    pub dns_name: String,
    /// The target's hosted zone (`Z35SXDOTRQ7X7K`).
    pub zone_id: String,
}

/// A record set: one name and type, with values and a TTL, or an alias.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordSet {
    /// The full name, lowercase, without the final dot.
    pub name: String,
    /// Its type.
    pub rtype: RecordType,
    /// Its TTL in seconds; `None` for an alias.
    pub ttl: Option<u32>,
    /// Its values as Route 53 holds them (TXT values quoted), sorted.
    pub values: Vec<String>,
    /// The alias target, for an alias record (then no values).
    pub alias: Option<AliasTarget>,
}

/// A hosted zone and its record sets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedZone {
    /// Its ID (`Z0123456789ABCDEFGHIJ`, without `/hostedzone/`).
    pub id: String,
    /// Its domain, lowercase, without the final dot.
    pub domain: String,
    /// The name servers to delegate to.
    pub name_servers: Vec<String>,
    /// Its owner, when it carries converge's tags.
    pub owner: Option<crate::observed::Owner>,
    /// Its tags.
    pub tags: crate::desired::Tags,
    /// Its record sets, sorted by name and type.
    pub records: Vec<RecordSet>,
}

impl ObservedZone {
    /// The record set of this name and type, if any.
    pub fn record(&self, name: &str, rtype: RecordType) -> Option<&RecordSet> {
        self.records
            .iter()
            .find(|r| r.name == name && r.rtype == rtype)
    }
}

/// A `DnsZone`: a public hosted zone converge creates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsZoneSpec {
    /// Its domain, lowercase, without the final dot.
    pub domain: String,
    /// Whether it goes when the manifests drop it (default `retain`).
    pub deletion_policy: crate::desired::DeletionPolicy,
    /// Its own tags.
    pub tags: crate::desired::Tags,
}

/// The zone a record goes in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ZoneRef {
    /// A DnsZone of the stack, by manifest name.
    Stack(ResourceName),
    /// An existing hosted zone, by domain.
    Existing(String),
}

/// What a record holds: values, or an alias to a resource of the stack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordTarget {
    /// Values (each may hold references), checked when they are known.
    Values(Vec<crate::desired::Template>),
    /// An alias to a `Balancer` or `Cdn` of the stack.
    Alias(crate::ids::ResourceKey),
}

/// How a change of an existing record's value is staged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cutover {
    /// The TTL during the cutover, in seconds (default 60).
    pub ttl: u32,
    /// How long after the switch the TTL rises again, in seconds
    /// (default one hour).
    pub settle: u32,
}

impl Default for Cutover {
    fn default() -> Self {
        Self {
            ttl: 60,
            settle: 3600,
        }
    }
}

/// A `DnsRecord`: one record set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DnsRecordSpec {
    /// Its zone.
    pub zone: ZoneRef,
    /// Its full name, lowercase, without the final dot.
    pub name: String,
    /// Its type.
    pub rtype: RecordType,
    /// Its values or alias.
    pub target: RecordTarget,
    /// Its TTL in seconds (default 300; none for an alias).
    pub ttl: u32,
    /// How a value change is staged.
    pub cutover: Cutover,
    /// Whether to take over a record that exists without converge's mark.
    pub adopt: bool,
    /// Whether it goes when the manifests drop it (default `delete`).
    pub deletion_policy: crate::desired::DeletionPolicy,
}

/// The hosted zone of CloudFront distributions, for alias records
/// (the same in every region). AWS: "Specify Z2FDTNDATAQYW2. This is
/// always the hosted zone ID when you create an alias record that routes
/// traffic to a CloudFront distribution." (Route 53 API Reference,
/// AliasTarget, HostedZoneId).
pub const CLOUDFRONT_ZONE_ID: &str = "Z2FDTNDATAQYW2";

/// The hosted zone of classic load balancers' DNS names in a region
/// (CanonicalHostedZoneNameID), as the Elastic Load Balancing endpoints
/// table of the AWS General Reference lists it; `None` for a region not
/// listed. Used for a balancer this plan creates (an existing one's is
/// observed).
pub fn elb_zone_id(region: &str) -> Option<&'static str> {
    Some(match region {
        "us-east-1" => "Z35SXDOTRQ7X7K",
        "us-east-2" => "Z3AADJGX6KTTL2",
        "us-west-1" => "Z368ELLRRE2KJ0",
        "us-west-2" => "Z1H1FL5HABSF5",
        "ca-central-1" => "ZQSVJUPU6J1EY",
        "eu-west-1" => "Z32O12XQLNTSW2",
        "eu-west-2" => "ZHURV8PSTC4K8",
        "eu-west-3" => "Z3Q77PNBQS71R4",
        "eu-central-1" => "Z215JYRZR1TBD5",
        "eu-north-1" => "Z23TAZ7KKTBGLP",
        "ap-northeast-1" => "Z14GRHDCWA56QT",
        "ap-northeast-2" => "ZWKZPGTI48KDX",
        "ap-southeast-1" => "Z1LMS91P8CMLE5",
        "ap-southeast-2" => "Z1GM3OXH4ZPM65",
        "ap-south-1" => "ZP97RAFLXTNZK",
        "sa-east-1" => "Z2P70J7HTTTPLU",
        _ => return None,
    })
}

/// Passed as the only domain to `Cloud::dns_zones`: every public zone,
/// for `destroy`, which must find the stack's records in existing zones
/// its (now empty) manifests no longer name.
pub const ALL_ZONES: &str = "*";

/// Whether observation reads a zone for `stack`: the stack owns it (its
/// tags), it holds the stack's records (`converge:records:STACK`), or its
/// domain is one of `domains` (or `domains` holds [`ALL_ZONES`]).
pub fn observed_for(
    stack: &str,
    domains: &[String],
    domain: &str,
    tags: &crate::desired::Tags,
) -> bool {
    domains.iter().any(|d| d == domain || d == ALL_ZONES)
        || crate::observed::Owner::from_tags(tags).is_some_and(|o| o.stack.as_str() == stack)
        || tags.contains_key(&format!("{}{stack}", crate::ids::tags::RECORDS_OF))
}

/// The most a TTL may be (Route 53: 0 to 2147483647 seconds).
pub const MAX_TTL: u64 = 2_147_483_647;
/// The most characters in one TXT string (RFC 1035; Route 53 splits
/// longer ones into several quoted strings, converge does not).
pub const MAX_TXT_STRING: usize = 255;

/// A domain name as Route 53 takes it: lowercased, the final dot dropped;
/// labels of 1–63 letters, digits, hyphens and underscores, not starting
/// or ending with a hyphen, at most 253 characters in all, at least two
/// labels. Wildcards are refused (converge does not manage them).
pub fn domain(s: &str) -> Result<String, String> {
    let lower = s.trim_end_matches('.').to_ascii_lowercase();
    let expected = "expected a domain name like \"www.example.com\"";
    let labels: Vec<&str> = lower.split('.').collect();
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if lower.starts_with("*.") || lower == "*" {
        return Err(format!(
            "{expected}, found {s:?} (converge does not manage wildcard records)"
        ));
    }
    if lower.len() <= 253 && labels.len() >= 2 && labels.iter().all(label_ok) {
        Ok(lower)
    } else {
        Err(format!("{expected}, found {s:?}"))
    }
}

/// Whether `name` is `zone` itself or inside it. Route 53 refuses a
/// record outside its zone: "RRSet with DNS name x is not permitted in
/// zone y" (InvalidChangeBatch).
pub fn in_zone(name: &str, zone: &str) -> bool {
    name == zone || name.ends_with(&format!(".{zone}"))
}

/// Checks one value of a record of `rtype` as a manifest writes it (TXT
/// unquoted); returns it as Route 53 holds it (TXT quoted, names
/// lowercased without the final dot).
pub fn value(rtype: RecordType, v: &str) -> Result<String, String> {
    match rtype {
        RecordType::A => v.parse::<Ipv4Addr>().map(|a| a.to_string()).map_err(|_| {
            format!("an A record's value is an IPv4 address like 192.0.2.10, found {v:?}")
        }),
        RecordType::Aaaa => v.parse::<Ipv6Addr>().map(|a| a.to_string()).map_err(|_| {
            format!("an AAAA record's value is an IPv6 address like 2001:db8::1, found {v:?}")
        }),
        RecordType::Cname => domain(v).map_err(|m| format!("a CNAME record's value: {m}")),
        RecordType::Mx => {
            let err = || {
                format!(
                    "an MX record's value is a priority and a host, like \"10 mail.example.com\", found {v:?}"
                )
            };
            let (p, host) = v.trim().split_once(' ').ok_or_else(err)?;
            let p: u16 = p.parse().map_err(|_| err())?;
            let host = domain(host.trim()).map_err(|_| err())?;
            Ok(format!("{p} {host}"))
        }
        RecordType::Txt => {
            if v.chars().count() > MAX_TXT_STRING {
                return Err(format!(
                    "a TXT value is at most {MAX_TXT_STRING} characters, found {}",
                    v.chars().count()
                ));
            }
            if v.chars().any(|c| !(' '..='~').contains(&c)) {
                return Err(format!(
                    "a TXT value holds printable ASCII characters only, found {v:?}"
                ));
            }
            Ok(quote(v))
        }
        RecordType::Ns | RecordType::Soa | RecordType::Other => {
            Err(format!("converge does not manage {rtype} records"))
        }
    }
}

/// A TXT string quoted as Route 53 holds it.
pub fn quote(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The problem Route 53 has with a change batch applied to a zone's
/// record sets, as InvalidChangeBatch words it; `None` when it is valid.
/// The rules (Route 53 Developer Guide, "Choosing between alias and
/// non-alias records", "CNAME record type"; API Reference,
/// ChangeResourceRecordSets): a CNAME is not at the apex and no other
/// record set has its name; an alias is A or AAAA, with no TTL; CREATE
/// refuses an existing set; DELETE names an existing set exactly (values
/// and TTL); a set has values or an alias, and no value twice; a TTL is at
/// most 2147483647.
pub fn check_batch(
    zone: &str,
    records: &[RecordSet],
    changes: &[RecordChange],
) -> Result<Vec<RecordSet>, String> {
    let mut sets: Vec<RecordSet> = records.to_vec();
    for c in changes {
        let s = &c.set;
        if !in_zone(&s.name, zone) {
            return Err(format!(
                "RRSet with DNS name {}. is not permitted in zone {zone}.",
                s.name
            ));
        }
        let found = sets
            .iter()
            .position(|x| x.name == s.name && x.rtype == s.rtype);
        match c.action {
            ChangeAction::Delete => {
                let Some(i) = found else {
                    return Err(format!(
                        "Tried to delete resource record set [name='{}.', type='{}'] but it was not found",
                        s.name, s.rtype
                    ));
                };
                if sets[i] != *s {
                    return Err(format!(
                        "Tried to delete resource record set [name='{}.', type='{}'] but the values provided do not match the current values",
                        s.name, s.rtype
                    ));
                }
                sets.remove(i);
                continue;
            }
            ChangeAction::Create if found.is_some() => {
                return Err(format!(
                    "Tried to create resource record set [name='{}.', type='{}'] but it already exists",
                    s.name, s.rtype
                ));
            }
            _ => {}
        }
        check_set(zone, s)?;
        if let Some(i) = found {
            sets[i] = s.clone();
        } else {
            sets.push(s.clone());
        }
    }
    // Conflicts are judged on the result of the whole batch, as Route 53
    // does (a batch may delete an A set and create a CNAME of its name).
    for s in sets.iter().filter(|s| s.rtype == RecordType::Cname) {
        if let Some(other) = sets
            .iter()
            .find(|o| o.name == s.name && o.rtype != RecordType::Cname)
        {
            return Err(format!(
                "RRSet of type CNAME with DNS name {}. is not permitted because a conflicting RRSet of type {} with the same DNS name already exists in zone {zone}.",
                s.name, other.rtype
            ));
        }
    }
    sets.sort_by(|a, b| (&a.name, a.rtype).cmp(&(&b.name, b.rtype)));
    Ok(sets)
}

/// Whether a change batch is already in effect in a zone's record sets,
/// as a repeat of it finds them when its first attempt's answer was lost
/// (Route 53's ChangeResourceRecordSets takes no idempotency token, so
/// the repeat of a CREATE is refused as "already exists"): every set it
/// creates or upserts is there exactly as asked, every set it deletes is
/// gone, and every set it creates carries a converge mark beside it (so a
/// set someone else made, even with the same values, is never taken for
/// ours).
pub fn batch_in_effect(records: &[RecordSet], changes: &[RecordChange]) -> bool {
    let find =
        |name: &str, rtype: RecordType| records.iter().find(|r| r.name == name && r.rtype == rtype);
    changes.iter().all(|c| {
        let s = &c.set;
        match c.action {
            ChangeAction::Delete => find(&s.name, s.rtype).is_none(),
            ChangeAction::Upsert => find(&s.name, s.rtype) == Some(s),
            ChangeAction::Create => {
                find(&s.name, s.rtype) == Some(s)
                    && find(&Mark::name_for(&s.name, s.rtype), RecordType::Txt)
                        .and_then(|m| m.values.first())
                        .and_then(|v| Mark::parse(v))
                        .is_some()
            }
        }
    })
}

/// One record set's own rules.
fn check_set(zone: &str, s: &RecordSet) -> Result<(), String> {
    if s.rtype == RecordType::Cname && s.name == zone {
        return Err(format!(
            "RRSet of type CNAME with DNS name {}. is not permitted at apex in zone {zone}.",
            s.name
        ));
    }
    match (&s.alias, s.values.is_empty(), s.ttl) {
        (Some(_), _, Some(_)) => {
            return Err("Alias records do not take a TTL".into());
        }
        (Some(_), false, _) => {
            return Err("Alias records do not take resource records".into());
        }
        (Some(_), true, None) if !matches!(s.rtype, RecordType::A | RecordType::Aaaa) => {
            return Err(format!(
                "converge aliases A and AAAA records only, found an alias of type {}",
                s.rtype
            ));
        }
        (None, true, _) => {
            return Err(format!(
                "RRSet [name='{}.', type='{}'] has no resource records",
                s.name, s.rtype
            ));
        }
        (None, false, None) => {
            return Err(format!(
                "RRSet [name='{}.', type='{}'] has no TTL",
                s.name, s.rtype
            ));
        }
        _ => {}
    }
    if s.ttl.is_some_and(|t| u64::from(t) > MAX_TTL) {
        return Err(format!("TTL must be at most {MAX_TTL}"));
    }
    if s.rtype == RecordType::Cname && s.values.len() > 1 {
        return Err(format!(
            "RRSet of type CNAME with DNS name {}. has more than one value",
            s.name
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for v in &s.values {
        if !seen.insert(v) {
            return Err(format!(
                "Duplicate Resource Record: '{v}' in [name='{}.', type='{}']",
                s.name, s.rtype
            ));
        }
    }
    Ok(())
}

/// What one change of a batch does (ChangeResourceRecordSets' `Action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChangeAction {
    /// Create a set that does not exist.
    Create,
    /// Create or replace a set.
    Upsert,
    /// Delete a set, named exactly as it is.
    Delete,
}

impl ChangeAction {
    /// As Route 53 names it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeAction::Create => "CREATE",
            ChangeAction::Upsert => "UPSERT",
            ChangeAction::Delete => "DELETE",
        }
    }
}

/// One change of a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordChange {
    /// What it does.
    pub action: ChangeAction,
    /// The set.
    pub set: RecordSet,
}

/// Where a record's cutover is (the stage noted in its ownership mark).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "kebab-case")]
pub enum Stage {
    /// The TTL was lowered at `at`; the old value stays until the old TTL
    /// has passed.
    Lowered {
        /// When.
        at: Timestamp,
        /// The TTL before lowering, in seconds.
        old_ttl: u32,
    },
    /// The new value went in at `at`, at the cutover TTL; the TTL rises
    /// once `settle` has passed.
    Switched {
        /// When.
        at: Timestamp,
    },
}

/// converge's ownership mark of a record set, read from or written to the
/// TXT record beside it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// The stack.
    pub stack: ResourceName,
    /// The DnsRecord's manifest name.
    pub record: ResourceName,
    /// Whether the record stays when the manifests drop it.
    pub retain: bool,
    /// The cutover in progress, if any.
    pub stage: Option<Stage>,
    /// Whether the stage's moment is still the one planned, not yet the
    /// moment Route 53 had the change on every server (`moment=planned`).
    /// The executor rewrites the mark with that moment once GetChange says
    /// INSYNC; a plan that finds a mark still pending (the run stopped in
    /// between) has it rewritten with a later moment, never an earlier one.
    pub pending: bool,
}

/// The TTL of ownership marks (they are read by converge, not resolvers).
pub const MARK_TTL: u32 = 300;

impl Mark {
    /// The mark's record name for a record set of `rtype` at `name`.
    pub fn name_for(name: &str, rtype: RecordType) -> String {
        format!("_converge-{}.{name}", rtype.as_str().to_ascii_lowercase())
    }

    /// The mark as its TXT value (quoted).
    pub fn to_value(&self) -> String {
        let mut text = format!(
            "converge stack={} record={} policy={}",
            self.stack,
            self.record,
            if self.retain { "retain" } else { "delete" }
        );
        match self.stage {
            None => {}
            Some(Stage::Lowered { at, old_ttl }) => {
                text.push_str(&format!(" lowered={at} old-ttl={old_ttl}"));
            }
            Some(Stage::Switched { at }) => text.push_str(&format!(" switched={at}")),
        }
        if self.pending && self.stage.is_some() {
            text.push_str(" moment=planned");
        }
        quote(&text)
    }

    /// The mark's record set beside a set of `rtype` at `name`.
    pub fn record_set(&self, name: &str, rtype: RecordType) -> RecordSet {
        RecordSet {
            name: Mark::name_for(name, rtype),
            rtype: RecordType::Txt,
            ttl: Some(MARK_TTL),
            values: vec![self.to_value()],
            alias: None,
        }
    }

    /// Reads a mark from a TXT value; `None` unless it is one converge
    /// wrote (a record without a valid mark is not converge's to touch).
    pub fn parse(value: &str) -> Option<Mark> {
        let text = value.strip_prefix('"')?.strip_suffix('"')?;
        let mut words = text.split(' ');
        if words.next()? != "converge" {
            return None;
        }
        let (mut stack, mut record, mut retain, mut pending) = (None, None, false, false);
        let (mut lowered, mut old_ttl, mut switched) = (None, None, None);
        for w in words {
            let (k, v) = w.split_once('=')?;
            match k {
                "stack" => stack = v.parse().ok(),
                "record" => record = v.parse().ok(),
                "policy" => retain = v == "retain",
                "lowered" => lowered = v.parse::<Timestamp>().ok(),
                "old-ttl" => old_ttl = v.parse::<u32>().ok(),
                "switched" => switched = v.parse::<Timestamp>().ok(),
                "moment" => pending = v == "planned",
                _ => {}
            }
        }
        let stage = match (lowered, old_ttl, switched) {
            (Some(at), Some(old_ttl), None) => Some(Stage::Lowered { at, old_ttl }),
            (None, None, Some(at)) => Some(Stage::Switched { at }),
            _ => None,
        };
        Some(Mark {
            stack: stack?,
            record: record?,
            retain,
            pending: pending && stage.is_some(),
            stage,
        })
    }

    /// The mark with its stage's moment set to `at`, the moment the change
    /// was seen in sync, and no longer pending.
    pub fn stamped(&self, at: Timestamp) -> Mark {
        let stage = self.stage.map(|s| match s {
            Stage::Lowered { old_ttl, .. } => Stage::Lowered { at, old_ttl },
            Stage::Switched { .. } => Stage::Switched { at },
        });
        Mark {
            stage,
            pending: false,
            ..self.clone()
        }
    }

    /// The mark of the set of `rtype` at `name` in `zone`, if it has one.
    pub fn of(zone: &ObservedZone, name: &str, rtype: RecordType) -> Option<Mark> {
        zone.record(&Mark::name_for(name, rtype), RecordType::Txt)
            .and_then(|r| r.values.first())
            .and_then(|v| Mark::parse(v))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;

    fn set(name: &str, rtype: RecordType, values: &[&str]) -> RecordSet {
        RecordSet {
            name: name.into(),
            rtype,
            ttl: Some(300),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
            alias: None,
        }
    }

    fn create(s: RecordSet) -> RecordChange {
        RecordChange {
            action: ChangeAction::Create,
            set: s,
        }
    }

    #[test]
    fn marks_round_trip() {
        let m = Mark {
            stack: "shop".parse().unwrap(),
            record: "www".parse().unwrap(),
            retain: false,
            stage: Some(Stage::Lowered {
                at: "2026-12-02T12:00:00Z".parse().unwrap(),
                old_ttl: 86400,
            }),
            pending: false,
        };
        assert_eq!(Mark::parse(&m.to_value()), Some(m.clone()));
        assert_eq!(Mark::parse("\"v=spf1 -all\""), None);
        let planned = Mark {
            pending: true,
            ..m.clone()
        };
        assert!(planned.to_value().contains(" moment=planned"));
        assert_eq!(Mark::parse(&planned.to_value()), Some(planned.clone()));
        let synced: Timestamp = "2026-12-02T12:00:41Z".parse().unwrap();
        let stamped = planned.stamped(synced);
        assert!(!stamped.pending);
        assert_eq!(
            stamped.stage,
            Some(Stage::Lowered {
                at: synced,
                old_ttl: 86400
            })
        );
        // A mark without a stage is never pending.
        let plain = Mark {
            stage: None,
            pending: true,
            ..m
        };
        assert!(!Mark::parse(&plain.to_value()).unwrap().pending);
    }

    /// A repeat of a batch whose first attempt took effect: its record is
    /// there as asked and marked, so the repeat's refusal is success; a
    /// set of other values, or the same one without a mark, is not ours.
    #[test]
    fn a_batch_in_effect_is_told_from_someone_elses_record() {
        let www = set("www.example.com", RecordType::A, &["192.0.2.1"]);
        let mark = Mark {
            stack: "payroll".parse().unwrap(),
            record: "www".parse().unwrap(),
            retain: false,
            stage: None,
            pending: false,
        }
        .record_set("www.example.com", RecordType::A);
        let batch = [
            create(www.clone()),
            RecordChange {
                action: ChangeAction::Upsert,
                set: mark.clone(),
            },
        ];
        assert!(batch_in_effect(&[www.clone(), mark.clone()], &batch));
        let alone = std::slice::from_ref(&www);
        assert!(!batch_in_effect(alone, &batch), "no mark");
        let other = set("www.example.com", RecordType::A, &["192.0.2.9"]);
        assert!(
            !batch_in_effect(&[other, mark.clone()], &batch),
            "other values"
        );
        assert!(!batch_in_effect(alone, &[create(www.clone())]), "unmarked");
        let delete = RecordChange {
            action: ChangeAction::Delete,
            set: www.clone(),
        };
        assert!(batch_in_effect(
            std::slice::from_ref(&mark),
            std::slice::from_ref(&delete)
        ));
        assert!(!batch_in_effect(&[www, mark], &[delete]));
    }

    #[test]
    fn batches_keep_route53_rules() {
        let zone = "example.com";
        let apex = create(set("example.com", RecordType::Cname, &["other.net"]));
        assert!(
            check_batch(zone, &[], &[apex])
                .unwrap_err()
                .contains("apex")
        );
        let a = set("www.example.com", RecordType::A, &["192.0.2.1"]);
        let cname = create(set("www.example.com", RecordType::Cname, &["x.net"]));
        assert!(
            check_batch(zone, std::slice::from_ref(&a), std::slice::from_ref(&cname))
                .unwrap_err()
                .contains("conflicting")
        );
        let swap = [
            RecordChange {
                action: ChangeAction::Delete,
                set: a.clone(),
            },
            cname,
        ];
        assert!(check_batch(zone, std::slice::from_ref(&a), &swap).is_ok());
        let outside = create(set("www.other.com", RecordType::A, &["192.0.2.1"]));
        assert!(check_batch(zone, &[], &[outside]).is_err());
        let mut wrong = a.clone();
        wrong.ttl = Some(60);
        let del = RecordChange {
            action: ChangeAction::Delete,
            set: wrong,
        };
        assert!(
            check_batch(zone, &[a], &[del])
                .unwrap_err()
                .contains("do not match")
        );
    }

    #[test]
    fn values_follow_their_type() {
        assert!(value(RecordType::A, "10.0.0.300").is_err());
        assert_eq!(value(RecordType::Txt, "hi").unwrap(), "\"hi\"");
        assert_eq!(
            value(RecordType::Mx, "10 Mail.Example.com.").unwrap(),
            "10 mail.example.com"
        );
        assert!(domain("*.example.com").is_err());
        assert!(in_zone("example.com", "example.com"));
        assert!(!in_zone("badexample.com", "example.com"));
    }
}
