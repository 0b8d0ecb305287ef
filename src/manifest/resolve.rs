//! From parsed documents to the desired state: every document's header and
//! spec are checked, names registered, references resolved, and the rules
//! that span resources (cycles, volume placement, balancer zones) checked.
//! Problems are collected, never returned early, so one run reports them
//! all.

use super::check;

mod acm;
mod balancer;
mod content;
mod network;
mod route53;
use super::decode::decode_all;
use super::diagnostics::Diagnostic;
use super::node::{FieldPath, Node};
use super::raw;
use super::template::{self, Piece};
use super::yaml;

use converge_core::cron::Cron;
use converge_core::desired::{
    self as d, Attachment, Attr, Desired, IngressRule, Reference, Secret, Template, TemplatePart,
    Tz,
};
use converge_core::ids::{Kind, ResourceKey, ResourceName};
use serde_saphyr::Spanned;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The most tags AWS allows on a resource.
pub(crate) const MAX_TAGS: usize = 50;
/// The most instances a fleet may declare (replicas, schedule, autoscale).
pub(crate) const MAX_REPLICAS: i64 = 1000;
/// The largest user data EC2 accepts, in bytes.
pub(crate) const MAX_USER_DATA: usize = 16 * 1024;
/// The largest key file read.
pub(crate) const MAX_KEY_FILE: u64 = 64 * 1024;
/// The most aliases on a distribution (CloudFront's default quota).
pub(crate) const MAX_ALIASES: usize = 100;

/// The tags converge itself puts on a resource of this kind
/// (`converge:stack`, `converge:kind`, `converge:name`, plus the spec hash
/// on instances, the deletion policy on volumes, buckets and networks, and
/// the subnet's name on subnets; a fleet with a root volume adds one more).
/// They count against AWS's limit too.
pub(crate) fn converge_tag_count(kind: Kind) -> usize {
    match kind {
        Kind::Fleet | Kind::Volume | Kind::Bucket => 4,
        // A subnet carries the deletion policy and its own name too.
        Kind::Network => 5,
        _ => 3,
    }
}

/// A manifest file's text.
pub(crate) struct Source {
    pub path: PathBuf,
    pub text: String,
}

/// A document's spec, decoded.
enum Spec {
    Stack(raw::StackSpec),
    Network(raw::NetworkSpec),
    KeyPair(raw::KeyPairSpec),
    SecurityGroup(raw::SecurityGroupSpec),
    Fleet(Box<raw::FleetSpec>),
    Volume(raw::VolumeSpec),
    Balancer(raw::BalancerSpec),
    Bucket(raw::BucketSpec),
    Cdn(raw::CdnSpec),
    DnsZone(raw::DnsZoneSpec),
    DnsRecord(Box<raw::DnsRecordSpec>),
    Certificate(raw::CertificateSpec),
}

/// One document of a file.
struct Entry {
    file: PathBuf,
    root: Spanned<Node>,
    kind: Kind,
    name: String,
    /// `None` when the spec did not decode (already reported).
    spec: Option<Spec>,
}

impl Entry {
    fn resource(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }

    fn at(&self) -> At<'_> {
        At {
            file: &self.file,
            resource: Some(self.resource()),
            root: &self.root,
        }
    }

    fn fleet(&self) -> Option<&raw::FleetSpec> {
        match &self.spec {
            Some(Spec::Fleet(f)) => Some(f),
            _ => None,
        }
    }
}

/// Where a problem is: a document, to which a field path is added.
struct At<'a> {
    file: &'a Path,
    resource: Option<String>,
    root: &'a Spanned<Node>,
}

impl At<'_> {
    fn diag(&self, path: &FieldPath, at_key: bool, message: impl Into<String>) -> Diagnostic {
        let loc = path.locate(self.root, at_key);
        Diagnostic {
            file: self.file.to_owned(),
            line: loc.map(|l| l.line()),
            column: loc.map(|l| l.column()),
            resource: self.resource.clone(),
            field: (!path.0.is_empty()).then(|| path.to_string()),
            message: message.into(),
        }
    }
}

/// Resolves parsed sources into the desired state. Every problem goes into
/// `diags`; the desired state is returned only when there are none.
pub(crate) fn resolve(
    dir: &Path,
    sources: Vec<Source>,
    env: &dyn Fn(&str) -> Option<String>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Desired> {
    let mut r = Resolver {
        diags,
        env,
        entries: Vec::new(),
        index: BTreeMap::new(),
        incomplete: false,
        region: None,
        stack_tags: d::Tags::new(),
    };
    for source in sources {
        r.read_source(source);
    }
    r.register();
    let stack = r.stack(dir);
    let desired = r.build(stack);
    r.cross_checks();
    if r.diags.is_empty() { desired } else { None }
}

struct Resolver<'a> {
    diags: &'a mut Vec<Diagnostic>,
    env: &'a dyn Fn(&str) -> Option<String>,
    entries: Vec<Entry>,
    /// Registered names per kind → entry index (the first of each name).
    index: BTreeMap<Kind, BTreeMap<String, usize>>,
    /// Whether some file or document could not be read far enough to know
    /// what it declares: then a reference to a missing resource or a
    /// missing Stack may only be a consequence, and is not reported.
    incomplete: bool,
    /// The stack's region, when it is valid.
    region: Option<String>,
    stack_tags: d::Tags,
}

const KINDS_LIST: &str =
    "Stack, KeyPair, SecurityGroup, Fleet, Volume, Balancer, Bucket, Cdn, DnsZone, DnsRecord";

impl Resolver<'_> {
    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    // ---- reading documents ------------------------------------------------

    fn read_source(&mut self, source: Source) {
        let docs = match yaml::parse_documents(&source.text) {
            Ok(docs) => docs,
            Err(e) => {
                self.incomplete = true;
                self.push(
                    Diagnostic::new(&source.path, e.message)
                        .at(e.location.map(|l| l.line()), e.location.map(|l| l.column())),
                );
                return;
            }
        };
        for root in docs {
            self.read_document(&source.path, root);
        }
    }

    fn read_document(&mut self, file: &Path, root: Spanned<Node>) {
        let at = At {
            file,
            resource: None,
            root: &root,
        };
        let top = FieldPath::default();
        let Node::Map(entries) = &root.value else {
            let d = at.diag(
                &top,
                false,
                format!(
                    "expected a document with kind, name and spec, found {}",
                    root.value.describe()
                ),
            );
            self.incomplete = true;
            self.push(d);
            return;
        };
        let mut problems = Vec::new();
        for (key, _) in entries {
            if !matches!(key.value.as_str(), "kind" | "name" | "spec") {
                problems.push(at.diag(
                    &top.key(&key.value),
                    true,
                    format!(
                        "unknown field `{}`; a document has kind, name and spec",
                        key.value
                    ),
                ));
            }
        }
        let kind = match root.value.get("kind") {
            None => {
                problems.push(at.diag(
                    &top,
                    false,
                    format!("missing required field `kind`; expected one of {KINDS_LIST}"),
                ));
                None
            }
            Some((_, v)) => match &v.value {
                Node::Str(s) => match Kind::parse(s) {
                    Some(k) => Some(k),
                    None => {
                        let hint = Kind::ALL
                            .into_iter()
                            .find(|k| k.as_str().eq_ignore_ascii_case(s))
                            .map(|k| format!(" (did you mean {k}?)"))
                            .unwrap_or_default();
                        problems.push(at.diag(
                            &top.key("kind"),
                            false,
                            format!("unknown kind {s:?}{hint}; expected one of {KINDS_LIST}"),
                        ));
                        None
                    }
                },
                other => {
                    problems.push(at.diag(
                        &top.key("kind"),
                        false,
                        format!("expected one of {KINDS_LIST}, found {}", other.describe()),
                    ));
                    None
                }
            },
        };
        let name = match root.value.get("name") {
            None => {
                problems.push(at.diag(&top, false, "missing required field `name`"));
                None
            }
            Some((_, v)) => match &v.value {
                Node::Str(s) => Some(s.clone()),
                other => {
                    problems.push(at.diag(
                        &top.key("name"),
                        false,
                        format!("expected a string, found {}", other.describe()),
                    ));
                    None
                }
            },
        };
        let named = name.is_some();
        // How the document calls itself, even when the kind is unknown.
        let written = match (root.value.get("kind").map(|(_, v)| &v.value), &name) {
            (Some(Node::Str(k)), Some(n)) => Some(format!("{k}/{n}")),
            (Some(Node::Str(k)), None) => Some(k.clone()),
            _ => None,
        };
        let (Some(kind), Some(name)) = (kind, name) else {
            // Without a name, what the document declares is unknown, and a
            // reference to it would look dangling. An unknown kind declares
            // nothing another document could refer to.
            if root.value.get("kind").is_none() || !named {
                self.incomplete = true;
            }
            for mut p in problems {
                p.resource = written.clone();
                self.push(p);
            }
            return;
        };
        let resource = format!("{kind}/{name}");
        for mut p in problems {
            p.resource = Some(resource.clone());
            self.push(p);
        }
        let at = At {
            file,
            resource: Some(resource),
            root: &root,
        };
        if let Err(e) = check::name(kind, &name) {
            let d = at.diag(&top.key("name"), false, e);
            self.push(d);
        }
        let spec = root.value.get("spec").map(|(_, v)| v.value.to_json());
        let spec = self.decode_spec(&at, kind, spec);
        self.entries.push(Entry {
            file: file.to_owned(),
            root,
            kind,
            name,
            spec,
        });
    }

    fn decode_spec(
        &mut self,
        at: &At<'_>,
        kind: Kind,
        spec: Option<serde_json::Value>,
    ) -> Option<Spec> {
        let path = FieldPath::spec();
        let missing = spec.is_none();
        let value = spec.unwrap_or_else(|| serde_json::Value::Object(Default::default()));
        let decoded = match kind {
            Kind::Stack => decode_all(value, &path).map(Spec::Stack),
            Kind::Network => decode_all(value, &path).map(Spec::Network),
            Kind::KeyPair => decode_all(value, &path).map(Spec::KeyPair),
            Kind::SecurityGroup => decode_all(value, &path).map(Spec::SecurityGroup),
            Kind::Fleet => decode_all(value, &path).map(|f| Spec::Fleet(Box::new(f))),
            Kind::Volume => decode_all(value, &path).map(Spec::Volume),
            Kind::Balancer => decode_all(value, &path).map(Spec::Balancer),
            Kind::Bucket => decode_all(value, &path).map(Spec::Bucket),
            Kind::Cdn => decode_all(value, &path).map(Spec::Cdn),
            Kind::DnsZone => decode_all(value, &path).map(Spec::DnsZone),
            Kind::DnsRecord => decode_all(value, &path).map(|r| Spec::DnsRecord(Box::new(r))),
            Kind::Certificate => decode_all(value, &path).map(Spec::Certificate),
        };
        match decoded {
            Ok(s) => Some(s),
            Err(_) if missing => {
                let d = at.diag(
                    &FieldPath::default(),
                    false,
                    "missing required field `spec`",
                );
                self.push(d);
                None
            }
            Err(errors) => {
                for e in errors {
                    let d = at.diag(&e.path, e.at_key, e.message);
                    self.push(d);
                }
                None
            }
        }
    }

    // ---- names ------------------------------------------------------------

    fn register(&mut self) {
        let mut dups = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            let names = self.index.entry(e.kind).or_default();
            match names.get(&e.name) {
                None => {
                    names.insert(e.name.clone(), i);
                }
                Some(&first) => dups.push((i, first)),
            }
        }
        for (i, first) in dups {
            let f = &self.entries[first];
            let loc = FieldPath::default().key("name").locate(&f.root, false);
            let place = match loc {
                Some(l) => format!("{}:{}:{}", f.file.display(), l.line(), l.column()),
                None => f.file.display().to_string(),
            };
            let e = &self.entries[i];
            let d = e.at().diag(
                &FieldPath::default().key("name"),
                false,
                format!(
                    "duplicate name: {} is already declared at {place}",
                    e.resource()
                ),
            );
            self.push(d);
        }
    }

    fn lookup(&self, kind: Kind, name: &str) -> Option<&Entry> {
        self.index
            .get(&kind)
            .and_then(|m| m.get(name))
            .map(|i| &self.entries[*i])
    }

    /// Checks a reference to another document; reports a dangling one.
    fn reference(
        &self,
        at: &At<'_>,
        path: &FieldPath,
        kind: Kind,
        name: &str,
        out: &mut Vec<Diagnostic>,
    ) -> bool {
        if self.lookup(kind, name).is_some() {
            return true;
        }
        if !self.incomplete {
            let declared: Vec<&str> = self
                .index
                .get(&kind)
                .map(|m| m.keys().map(String::as_str).collect())
                .unwrap_or_default();
            let list = if declared.is_empty() {
                format!("the stack declares no {kind}")
            } else if declared.len() <= 10 {
                format!("declared: {}", declared.join(", "))
            } else {
                format!("{} declared", declared.len())
            };
            out.push(at.diag(
                path,
                false,
                format!("{kind}/{name} does not exist ({list})"),
            ));
        }
        false
    }

    // ---- the stack --------------------------------------------------------

    /// Finds the one Stack and checks it; returns its name.
    fn stack(&mut self, dir: &Path) -> Option<String> {
        let stacks: Vec<usize> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.kind == Kind::Stack)
            .map(|(i, _)| i)
            .collect();
        let Some(&first) = stacks.first() else {
            if !self.incomplete {
                self.push(Diagnostic::new(
                    dir,
                    "no Stack document: a stack directory needs exactly one (kind: Stack, a name, spec.region)",
                ));
            }
            return None;
        };
        let mut extra = Vec::new();
        for &i in &stacks[1..] {
            let e = &self.entries[i];
            if e.name != self.entries[first].name {
                extra.push(e.at().diag(
                    &FieldPath::default().key("kind"),
                    false,
                    format!(
                        "a second Stack: this directory already declares {} in {}; it must hold exactly one",
                        self.entries[first].resource(),
                        self.entries[first].file.display()
                    ),
                ));
            }
        }
        for d in extra {
            self.push(d);
        }
        let e = &self.entries[first];
        let Some(Spec::Stack(spec)) = &e.spec else {
            return Some(e.name.clone());
        };
        let at = e.at();
        let mut out = Vec::new();
        match check::region(&spec.region) {
            Ok(()) => self.region = Some(spec.region.clone()),
            Err(m) => out.push(at.diag(&FieldPath::spec().key("region"), false, m)),
        }
        let path = FieldPath::spec().key("tags");
        tag_syntax(&at, &path, &spec.tags, &mut out);
        let room = MAX_TAGS - converge_tag_count(Kind::Fleet);
        if spec.tags.len() > room {
            out.push(at.diag(
                &path,
                false,
                format!(
                    "expected at most {room} stack tags (every resource gets them, converge adds up to {} of its own, and AWS allows {MAX_TAGS}), found {}",
                    converge_tag_count(Kind::Fleet),
                    spec.tags.len()
                ),
            ));
        }
        self.stack_tags = spec.tags.clone();
        let name = e.name.clone();
        for d in out {
            self.push(d);
        }
        Some(name)
    }

    // ---- every resource ---------------------------------------------------

    fn build(&mut self, stack: Option<String>) -> Option<Desired> {
        // A missing or invalid name is already reported: every document is
        // still checked, under a stand-in name, and no stack is built.
        let stand_in = || ResourceName::from("invalid");
        let stack = stack.and_then(|s| ResourceName::new(s).ok());
        let mut complete = stack.is_some();
        let mut desired = Desired::empty(
            stack.unwrap_or_else(stand_in),
            self.region.clone().unwrap_or_default(),
        );
        desired.tags = self.stack_tags.clone();
        // Only the first document of each name is built; duplicates are
        // already reported.
        let firsts: Vec<usize> = self
            .index
            .values()
            .flat_map(|m| m.values().copied())
            .collect();
        for i in firsts {
            let mut out = Vec::new();
            let e = &self.entries[i];
            let Some(spec) = &e.spec else { continue };
            let at = e.at();
            let name = ResourceName::new(e.name.as_str()).unwrap_or_else(|_| {
                complete = false;
                stand_in()
            });
            match spec {
                Spec::Stack(_) => {}
                Spec::Network(s) => {
                    if let Some(n) = self.network(&at, name.clone(), s, &mut out) {
                        desired.network = Some(n);
                    }
                }
                Spec::KeyPair(s) => {
                    if let Some(k) = self.key_pair(&at, &e.file, s, &mut out) {
                        desired.key_pairs.insert(name, k);
                    }
                }
                Spec::SecurityGroup(s) => {
                    let g = self.security_group(&at, s, &mut out);
                    desired.security_groups.insert(name, g);
                }
                Spec::Fleet(s) => {
                    if let Some(f) = self.fleet(&at, &e.name, s, &mut out) {
                        desired.fleets.insert(name, f);
                    }
                }
                Spec::Volume(s) => {
                    if let Some(v) = self.volume(&at, s, &mut out) {
                        desired.volumes.insert(name, v);
                    }
                }
                Spec::Balancer(s) => {
                    if let Some(b) = self.balancer(&at, name.as_str(), s, &mut out) {
                        desired.balancers.insert(name, b);
                    }
                }
                Spec::Bucket(s) => {
                    let mut b = Self::bucket(s);
                    b.content = s
                        .content
                        .as_ref()
                        .and_then(|c| content::read(&at, c, &mut out));
                    desired.buckets.insert(name, b);
                }
                Spec::Cdn(s) => {
                    if let Some(c) = self.cdn(&at, s, &mut out) {
                        desired.cdns.insert(name, c);
                    }
                }
                Spec::DnsZone(s) => {
                    if let Some(z) = self.dns_zone(&at, s, &mut out) {
                        desired.dns_zones.insert(name, z);
                    }
                }
                Spec::DnsRecord(s) => {
                    if let Some(r) = self.dns_record(&at, s, &mut out) {
                        desired.dns_records.insert(name, r);
                    }
                }
                Spec::Certificate(s) => {
                    if let Some(c) = self.certificate(&at, s, &mut out) {
                        desired.certificates.insert(name, c);
                    }
                }
            }
            let kind = e.kind;
            let own_tags = match spec {
                Spec::Stack(_) => None,
                Spec::Network(s) => Some(&s.tags),
                Spec::KeyPair(s) => Some(&s.tags),
                Spec::SecurityGroup(s) => Some(&s.tags),
                Spec::Fleet(s) => Some(&s.tags),
                Spec::Volume(s) => Some(&s.tags),
                Spec::Balancer(s) => Some(&s.tags),
                Spec::Bucket(s) => Some(&s.tags),
                Spec::Cdn(s) => Some(&s.tags),
                Spec::Certificate(s) => Some(&s.tags),
                // Route 53 allows 10 tags on a zone (checked with the
                // zone); records carry none.
                Spec::DnsZone(_) | Spec::DnsRecord(_) => None,
            };
            // Instances launched with a declared root volume also carry
            // `converge:root-volume`.
            let extra = match spec {
                Spec::Fleet(s) => usize::from(s.root_volume.is_some()),
                _ => 0,
            };
            if let Some(tags) = own_tags {
                self.tags(&at, kind, tags, extra, &mut out);
            }
            self.diags.extend(out);
        }
        self.dns_cross_checks(&desired);
        self.certificate_cross_checks(&desired);
        complete.then_some(desired)
    }

    fn tags(
        &self,
        at: &At<'_>,
        kind: Kind,
        tags: &d::Tags,
        extra: usize,
        out: &mut Vec<Diagnostic>,
    ) {
        let path = FieldPath::spec().key("tags");
        tag_syntax(at, &path, tags, out);
        let from_stack = self
            .stack_tags
            .keys()
            .filter(|k| !tags.contains_key(*k))
            .count();
        let ours = converge_tag_count(kind) + extra;
        let total = tags.len() + from_stack + ours;
        if total > MAX_TAGS {
            out.push(at.diag(
                &path,
                false,
                format!(
                    "too many tags: {} here, {from_stack} more from the Stack and {ours} that converge adds make {total}; AWS allows at most {MAX_TAGS}",
                    tags.len()
                ),
            ));
        }
    }

    fn zones(&self, at: &At<'_>, path: &FieldPath, zones: &[String], out: &mut Vec<Diagnostic>) {
        if zones.is_empty() {
            out.push(at.diag(path, false, "expected at least one zone, found none"));
        }
        let mut seen = BTreeSet::new();
        for (i, z) in zones.iter().enumerate() {
            if let Some(region) = &self.region
                && let Err(m) = check::zone(z, region)
            {
                out.push(at.diag(&path.index(i), false, m));
            }
            if !seen.insert(z) {
                out.push(at.diag(&path.index(i), false, format!("zone {z} is listed twice")));
            }
        }
    }

    fn key_pair(
        &self,
        at: &At<'_>,
        file: &Path,
        s: &raw::KeyPairSpec,
        out: &mut Vec<Diagnostic>,
    ) -> Option<d::KeyPairSpec> {
        let spec = FieldPath::spec();
        let text = match (&s.public_key, &s.public_key_file) {
            (Some(k), None) => (k.clone(), spec.key("publicKey")),
            (None, Some(f)) => {
                let path = spec.key("publicKeyFile");
                let base = file.parent().unwrap_or_else(|| Path::new("."));
                let full = base.join(f);
                match read_key_file(&full) {
                    Ok(t) => (t, path),
                    Err(m) => {
                        out.push(at.diag(
                            &path,
                            false,
                            format!("cannot read key file {}: {m}", full.display()),
                        ));
                        return None;
                    }
                }
            }
            (Some(_), Some(_)) => {
                out.push(at.diag(
                    &spec,
                    false,
                    "expected exactly one of publicKey and publicKeyFile, found both",
                ));
                return None;
            }
            (None, None) => {
                out.push(at.diag(
                    &spec,
                    false,
                    "expected exactly one of publicKey and publicKeyFile, found neither",
                ));
                return None;
            }
        };
        match check::public_key(&text.0) {
            Ok(public_key) => Some(d::KeyPairSpec {
                public_key,
                tags: s.tags.clone(),
            }),
            Err(m) => {
                out.push(at.diag(&text.1, false, m));
                None
            }
        }
    }

    fn security_group(
        &self,
        at: &At<'_>,
        s: &raw::SecurityGroupSpec,
        out: &mut Vec<Diagnostic>,
    ) -> d::SecurityGroupSpec {
        let spec = FieldPath::spec();
        if let Err(m) = check::group_description(&s.description) {
            out.push(at.diag(&spec.key("description"), false, m));
        }
        let mut rules = Vec::new();
        let mut seen = BTreeMap::new();
        for (i, rule) in s.ingress.iter().enumerate() {
            let path = spec.key("ingress").index(i);
            if let Some(r) = self.ingress_rule(at, &path, rule, out) {
                if let Some(first) = seen.insert(r.clone(), i) {
                    out.push(at.diag(
                        &path,
                        false,
                        format!("the same rule as ingress[{first}] ({r})"),
                    ));
                } else {
                    rules.push(r);
                }
            }
        }
        rules.sort();
        d::SecurityGroupSpec {
            description: s.description.clone(),
            ingress: rules,
            tags: s.tags.clone(),
        }
    }

    fn ingress_rule(
        &self,
        at: &At<'_>,
        path: &FieldPath,
        rule: &raw::IngressRule,
        out: &mut Vec<Diagnostic>,
    ) -> Option<IngressRule> {
        let (protocol, needs_ports) = match rule.protocol {
            raw::Protocol::Tcp => (d::Protocol::Tcp, true),
            raw::Protocol::Udp => (d::Protocol::Udp, true),
            raw::Protocol::Icmp => (d::Protocol::Icmp, false),
            raw::Protocol::All => (d::Protocol::All, false),
        };
        let mut ok = true;
        let ports = match (rule.port, &rule.ports, needs_ports) {
            (Some(p), None, true) => match check::port(p) {
                Ok(p) => Some(d::PortRange { from: p, to: p }),
                Err(m) => {
                    out.push(at.diag(&path.key("port"), false, m));
                    ok = false;
                    None
                }
            },
            (None, Some(r), true) => match check::port_range(r) {
                Ok(r) => Some(r),
                Err(m) => {
                    out.push(at.diag(&path.key("ports"), false, m));
                    ok = false;
                    None
                }
            },
            (Some(_), Some(_), true) => {
                out.push(at.diag(
                    path,
                    false,
                    format!(
                        "{} rules take exactly one of port and ports, found both",
                        protocol.as_str()
                    ),
                ));
                ok = false;
                None
            }
            (None, None, true) => {
                out.push(at.diag(
                    path,
                    false,
                    format!(
                        "{} rules take exactly one of port and ports, found neither",
                        protocol.as_str()
                    ),
                ));
                ok = false;
                None
            }
            (p, r, false) => {
                if p.is_some() || r.is_some() {
                    let field = if p.is_some() { "port" } else { "ports" };
                    out.push(at.diag(
                        &path.key(field),
                        false,
                        format!(
                            "{} rules cover every port; remove {field} (or use tcp or udp)",
                            protocol.as_str()
                        ),
                    ));
                    ok = false;
                }
                None
            }
        };
        let source = match (&rule.cidr, &rule.group) {
            (Some(c), None) => match check::cidr(c) {
                Ok(c) => Some(d::Source::Cidr(c)),
                Err(m) => {
                    out.push(at.diag(&path.key("cidr"), false, m));
                    None
                }
            },
            (None, Some(g)) => self
                .reference(at, &path.key("group"), Kind::SecurityGroup, g, out)
                .then(|| id(g).map(d::Source::Group))
                .flatten(),
            (Some(_), Some(_)) => {
                out.push(at.diag(
                    path,
                    false,
                    "expected exactly one of cidr and group, found both",
                ));
                None
            }
            (None, None) => {
                out.push(at.diag(
                    path,
                    false,
                    "expected exactly one of cidr and group, found neither",
                ));
                None
            }
        };
        let source = source?;
        ok.then_some(IngressRule {
            protocol,
            ports,
            source,
        })
    }

    /// The most instances a fleet can run: its replicas, its schedule's
    /// counts or its autoscale maximum.
    fn max_replicas(f: &raw::FleetSpec) -> i64 {
        if let Some(a) = &f.autoscale {
            return a.max;
        }
        let scheduled = f
            .schedule
            .iter()
            .flat_map(|s| s.rules.iter().map(|r| r.replicas))
            .max()
            .unwrap_or(0);
        f.replicas.unwrap_or(1).max(scheduled)
    }

    fn fleet(
        &self,
        at: &At<'_>,
        name: &str,
        s: &raw::FleetSpec,
        out: &mut Vec<Diagnostic>,
    ) -> Option<d::FleetSpec> {
        let spec = FieldPath::spec();
        let image = match check::image_source(&s.image) {
            Ok(()) => image_source(&s.image),
            Err(m) => {
                out.push(at.diag(&spec.key("image"), false, m));
                None
            }
        };
        let options = launch_options(at, &spec, s, out);
        if let Err(m) = check::instance_type(&s.instance_type) {
            out.push(at.diag(&spec.key("instanceType"), false, m));
        }
        let subnets = self.placement(at, "fleet", &s.zones, &s.subnets, out);
        if s.public_ip.is_some() && self.declared_network().is_none() {
            out.push(at.diag(
                &spec.key("publicIp"),
                false,
                "publicIp needs a Network (kind: Network); in the default VPC instances get the default subnet's setting",
            ));
        }
        self.subnet_room(at, s, out);
        let private_ips = self.fleet_addresses(at, name, s, out);
        if let Some(n) = s.replicas {
            count(at, &spec.key("replicas"), n, 0, out);
            if s.autoscale.is_some() {
                out.push(at.diag(
                    &spec.key("replicas"),
                    false,
                    "replicas has no effect with autoscale, which keeps the count between autoscale.min and autoscale.max; remove it",
                ));
            }
        }
        if let Some(k) = &s.key_pair {
            self.reference(at, &spec.key("keyPair"), Kind::KeyPair, k, out);
        }
        let mut groups = Vec::new();
        for (i, g) in s.security_groups.iter().enumerate() {
            let path = spec.key("securityGroups").index(i);
            if groups.iter().any(|n: &ResourceName| n.as_str() == g) {
                out.push(at.diag(&path, false, format!("SecurityGroup/{g} is listed twice")));
            } else if self.reference(at, &path, Kind::SecurityGroup, g, out) {
                groups.extend(id(g));
            }
        }
        groups.sort();
        let user_data = self.template(at, &spec.key("userData"), &s.user_data, out);
        let schedule = s.schedule.as_ref().and_then(|sc| {
            let path = spec.key("schedule");
            if s.autoscale.is_some() {
                out.push(at.diag(
                    &path,
                    false,
                    "a fleet takes a schedule or autoscale, not both",
                ));
            }
            schedule(at, &path, sc, out)
        });
        let autoscale = s
            .autoscale
            .as_ref()
            .and_then(|a| autoscale(at, &spec.key("autoscale"), a, out));
        let health = health(at, &spec.key("health"), &s.health, out);
        let update = update(at, &spec.key("update"), &s.update, out);
        let replicas = match &autoscale {
            Some(a) => a.min,
            None => s.replicas.map_or(Some(1), |n| u32::try_from(n).ok())?,
        };
        let (instance_profile, metadata, root_volume) = options?;
        Some(d::FleetSpec {
            image: image?,
            instance_type: s.instance_type.clone(),
            zones: s.zones.iter().map(|z| id(z)).collect::<Option<_>>()?,
            subnets: subnets?,
            public_ip: s.public_ip,
            private_ips: private_ips?,
            replicas,
            key_pair: match &s.key_pair {
                Some(k) => Some(id(k)?),
                None => None,
            },
            security_groups: groups,
            user_data: user_data?,
            tags: s.tags.clone(),
            schedule,
            autoscale,
            health: health?,
            update: update?,
            instance_profile,
            metadata,
            root_volume,
        })
    }

    fn template(
        &self,
        at: &At<'_>,
        path: &FieldPath,
        text: &str,
        out: &mut Vec<Diagnostic>,
    ) -> Option<Template> {
        let (pieces, errors) = template::parse(text);
        let mut ok = errors.is_empty();
        for e in errors {
            out.push(at.diag(path, false, e));
        }
        let mut parts = Vec::new();
        let mut known_bytes = 0usize;
        for piece in pieces {
            match piece {
                Piece::Text(t) => {
                    known_bytes += t.len();
                    parts.push(TemplatePart::Text(t));
                }
                Piece::Env(name) => match (self.env)(&name) {
                    Some(value) => {
                        known_bytes += value.len();
                        parts.push(TemplatePart::Env {
                            name,
                            value: Secret::new(value),
                        });
                    }
                    None => {
                        ok = false;
                        out.push(at.diag(
                            path,
                            false,
                            format!(
                                "environment variable {name} (from ${{env:{name}}}) is not set"
                            ),
                        ));
                    }
                },
                Piece::Ref { kind, name, attr } => {
                    if !self.reference(at, path, kind, &name, out) {
                        ok = false;
                        continue;
                    }
                    // The referenced document's name is reported if invalid.
                    let Some(name) = id::<ResourceName>(&name) else {
                        ok = false;
                        continue;
                    };
                    if attr == Attr::PrivateIp {
                        let max = self
                            .lookup(kind, name.as_str())
                            .and_then(Entry::fleet)
                            .map(Self::max_replicas)
                            .unwrap_or(1);
                        if max > 1 {
                            ok = false;
                            out.push(at.diag(
                                path,
                                false,
                                format!(
                                    "${{Fleet/{name}.privateIp}} needs a fleet of one instance, but Fleet/{name} can run up to {max}; use ${{Fleet/{name}.privateIps}} for all their addresses"
                                ),
                            ));
                        }
                    }
                    parts.push(TemplatePart::Ref(Reference {
                        target: ResourceKey::new(kind, name),
                        attr,
                    }));
                }
            }
        }
        if known_bytes > MAX_USER_DATA {
            ok = false;
            out.push(at.diag(
                path,
                false,
                format!("user data is at most {MAX_USER_DATA} bytes, found at least {known_bytes}"),
            ));
        }
        ok.then_some(Template { parts })
    }

    fn volume(
        &self,
        at: &At<'_>,
        s: &raw::VolumeSpec,
        out: &mut Vec<Diagnostic>,
    ) -> Option<d::VolumeSpec> {
        let spec = FieldPath::spec();
        let volume_type = match s.volume_type {
            raw::VolumeType::Gp2 => d::VolumeType::Gp2,
            raw::VolumeType::Gp3 => d::VolumeType::Gp3,
            raw::VolumeType::Io1 => d::VolumeType::Io1,
            raw::VolumeType::Io2 => d::VolumeType::Io2,
            raw::VolumeType::St1 => d::VolumeType::St1,
            raw::VolumeType::Sc1 => d::VolumeType::Sc1,
            raw::VolumeType::Standard => d::VolumeType::Standard,
        };
        let size = volume_numbers(at, s, volume_type, out);
        let encryption = volume_encryption(at, s, out);
        if let Some(region) = &self.region
            && let Err(m) = check::zone(&s.zone, region)
        {
            out.push(at.diag(&spec.key("zone"), false, m));
        }
        if let Some(snap) = &s.from_snapshot
            && let Err(m) = check::snapshot_id(snap)
        {
            out.push(at.diag(&spec.key("fromSnapshot"), false, m));
        }
        let attach = s.attach.as_ref().and_then(|a| {
            let path = spec.key("attach");
            if let Err(m) = check::device(&a.device) {
                out.push(at.diag(&path.key("device"), false, m));
            }
            if !self.reference(at, &path.key("fleet"), Kind::Fleet, &a.fleet, out) {
                return None;
            }
            Some(Attachment {
                fleet: id(&a.fleet)?,
                device: a.device.clone(),
            })
        });
        let snapshots = s.snapshots.as_ref().and_then(|sn| {
            let path = spec.key("snapshots");
            let cron = cron(at, &path.key("schedule"), &sn.schedule, out);
            let tz = timezone(at, &path.key("timezone"), &sn.timezone, out);
            let keep = count(at, &path.key("keep"), sn.keep, 1, out);
            Some(d::SnapshotPolicy {
                schedule: cron?,
                timezone: tz?,
                keep: keep?,
            })
        });
        let deletion_policy = match s.deletion_policy {
            raw::DeletionPolicy::Retain => d::DeletionPolicy::Retain,
            raw::DeletionPolicy::Delete => d::DeletionPolicy::Delete,
            raw::DeletionPolicy::Snapshot => d::DeletionPolicy::Snapshot,
        };
        let (size_gib, iops, throughput) = size?;
        Some(d::VolumeSpec {
            size_gib,
            zone: id(&s.zone)?,
            volume_type,
            encryption: encryption?,
            iops,
            throughput,
            from_snapshot: match &s.from_snapshot {
                Some(snap) => Some(id(snap)?),
                None => None,
            },
            attach,
            snapshots,
            deletion_policy,
            tags: s.tags.clone(),
        })
    }

    fn bucket(s: &raw::BucketSpec) -> d::BucketSpec {
        d::BucketSpec {
            public_read: s.public_read,
            deletion_policy: match s.deletion_policy {
                raw::BucketDeletionPolicy::Retain => d::DeletionPolicy::Retain,
                raw::BucketDeletionPolicy::Delete => d::DeletionPolicy::Delete,
            },
            tags: s.tags.clone(),
            content: None,
        }
    }

    fn cdn(&self, at: &At<'_>, s: &raw::CdnSpec, out: &mut Vec<Diagnostic>) -> Option<d::CdnSpec> {
        let spec = FieldPath::spec();
        self.reference(
            at,
            &spec.key("origin").key("bucket"),
            Kind::Bucket,
            &s.origin.bucket,
            out,
        );
        let mut aliases = Vec::new();
        if s.aliases.len() > MAX_ALIASES {
            out.push(at.diag(
                &spec.key("aliases"),
                false,
                format!(
                    "expected at most {MAX_ALIASES} aliases, found {}",
                    s.aliases.len()
                ),
            ));
        }
        for (i, a) in s.aliases.iter().enumerate() {
            let path = spec.key("aliases").index(i);
            match check::hostname(a) {
                Ok(h) if aliases.contains(&h) => {
                    out.push(at.diag(&path, false, format!("alias {h} is listed twice")));
                }
                Ok(h) => aliases.push(h),
                Err(m) => out.push(at.diag(&path, false, m)),
            }
        }
        aliases.sort();
        let logging = match &s.logging {
            raw::Logging::Off => None,
            raw::Logging::To(t) => {
                let path = spec.key("logging");
                self.reference(at, &path.key("bucket"), Kind::Bucket, &t.bucket, out);
                if t.prefix.starts_with('/') {
                    out.push(at.diag(
                        &path.key("prefix"),
                        false,
                        format!(
                            "expected a key prefix without a leading slash, like \"cdn/\", found {:?}",
                            t.prefix
                        ),
                    ));
                }
                id(&t.bucket).map(|bucket| d::CdnLogging {
                    bucket,
                    prefix: t.prefix.clone(),
                })
            }
        };
        if s.comment.chars().count() > 128 {
            out.push(at.diag(
                &spec.key("comment"),
                false,
                format!(
                    "a comment is at most 128 characters, found {}",
                    s.comment.chars().count()
                ),
            ));
        }
        if let Some(o) = &s.default_root_object
            && (o.is_empty() || o.starts_with('/') || o.len() > 255)
        {
            out.push(at.diag(
                &spec.key("defaultRootObject"),
                false,
                format!(
                    "expected an object name without a leading slash, like \"index.html\", found {o:?}"
                ),
            ));
        }
        Some(d::CdnSpec {
            origin_bucket: id(&s.origin.bucket)?,
            aliases,
            enabled: s.enabled,
            logging,
            comment: s.comment.clone(),
            default_root_object: s.default_root_object.clone(),
            tags: s.tags.clone(),
            invalidate: s.invalidate,
            certificate: self.cdn_certificate(at, s, out)?,
            minimum_protocol_version: s
                .minimum_protocol_version
                .clone()
                .unwrap_or_else(|| converge_core::acm::DEFAULT_MINIMUM_PROTOCOL_VERSION.to_owned()),
        })
    }

    // ---- rules across resources --------------------------------------------

    fn cross_checks(&mut self) {
        self.volume_attachments();
        self.shared_addresses();
        self.balancer_zones();
        self.fleet_cycles();
    }

    /// The volume attached to each fleet (the first, by name).
    fn attached_volumes(&self) -> BTreeMap<&str, (&str, &raw::VolumeSpec)> {
        let mut m = BTreeMap::new();
        if let Some(volumes) = self.index.get(&Kind::Volume) {
            for (name, &i) in volumes {
                if let Some(Spec::Volume(v)) = &self.entries[i].spec
                    && let Some(a) = &v.attach
                {
                    m.entry(a.fleet.as_str()).or_insert((name.as_str(), v));
                }
            }
        }
        m
    }

    /// No address in two fleets' `privateIps`: one instance holds it.
    fn shared_addresses(&mut self) {
        let mut owner: BTreeMap<std::net::Ipv4Addr, &str> = BTreeMap::new();
        let mut out = Vec::new();
        if let Some(fleets) = self.index.get(&Kind::Fleet) {
            for (name, &i) in fleets {
                let e = &self.entries[i];
                let Some(f) = e.fleet() else { continue };
                for (k, s) in f.private_ips.iter().enumerate() {
                    let Ok(a) = s.parse::<std::net::Ipv4Addr>() else {
                        continue;
                    };
                    match owner.get(&a) {
                        Some(first) if first != name => out.push(e.at().diag(
                            &FieldPath::spec().key("privateIps").index(k),
                            false,
                            format!("{a} is in the privateIps of Fleet/{first} too; an address is one instance's"),
                        )),
                        _ => {
                            owner.insert(a, name.as_str());
                        }
                    }
                }
            }
        }
        self.diags.extend(out);
    }

    fn volume_attachments(&mut self) {
        let attached = self.attached_volumes();
        let mut out = Vec::new();
        if let Some(volumes) = self.index.get(&Kind::Volume) {
            for (name, &i) in volumes {
                let e = &self.entries[i];
                let Some(Spec::Volume(v)) = &e.spec else {
                    continue;
                };
                let Some(a) = &v.attach else { continue };
                let at = e.at();
                let path = FieldPath::spec().key("attach").key("fleet");
                if let Some((first, _)) = attached.get(a.fleet.as_str())
                    && first != name
                {
                    out.push(at.diag(
                        &path,
                        false,
                        format!(
                            "Fleet/{} already has Volume/{first} attached; a fleet holds at most one volume",
                            a.fleet
                        ),
                    ));
                }
                let Some(f) = self.lookup(Kind::Fleet, &a.fleet).and_then(Entry::fleet) else {
                    continue;
                };
                let max = Self::max_replicas(f);
                if max > 1 {
                    out.push(at.diag(
                        &path,
                        false,
                        format!(
                            "a volume attaches to one instance, but Fleet/{} can run up to {max} (replicas, schedule or autoscale)",
                            a.fleet
                        ),
                    ));
                }
                // With an existing VPC's subnets the zones are known only
                // once observed: the planner checks them then.
                let zones = self.fleet_zones(f);
                if let Some(zones) = zones
                    && !zones.contains(&v.zone)
                {
                    out.push(at.diag(
                        &path,
                        false,
                        format!(
                            "Fleet/{} launches in {} but the volume is in {}; a volume attaches only in its own zone",
                            a.fleet,
                            zones.join(", "),
                            v.zone
                        ),
                    ));
                }
            }
        }
        self.diags.extend(out);
    }

    fn balancer_zones(&mut self) {
        let attached = self.attached_volumes();
        let mut out = Vec::new();
        if let Some(balancers) = self.index.get(&Kind::Balancer) {
            for &i in balancers.values() {
                let e = &self.entries[i];
                let Some(Spec::Balancer(b)) = &e.spec else {
                    continue;
                };
                for (j, fleet) in b.fleets.iter().enumerate() {
                    let Some(f) = self.lookup(Kind::Fleet, fleet).and_then(Entry::fleet) else {
                        continue;
                    };
                    // A fleet with a volume launches in the volume's zone.
                    let Some(fleet_zones) = self.fleet_zones(f) else {
                        continue;
                    };
                    let zones: Vec<String> = match attached.get(fleet.as_str()) {
                        Some((_, v)) => vec![v.zone.clone()],
                        None => fleet_zones,
                    };
                    let Some(served) = self.balancer_zones_of(b) else {
                        continue;
                    };
                    let outside: Vec<&str> = zones
                        .iter()
                        .filter(|z| !served.contains(z))
                        .map(String::as_str)
                        .collect();
                    if !outside.is_empty() {
                        out.push(e.at().diag(
                            &FieldPath::spec().key("fleets").index(j),
                            false,
                            format!(
                                "Fleet/{fleet} launches in {}, which this balancer does not serve (zones: {})",
                                outside.join(", "),
                                served.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
        self.diags.extend(out);
    }

    /// Fleets whose user data refer to each other in a loop cannot be
    /// launched: each would wait for the other's address.
    fn fleet_cycles(&mut self) {
        let Some(fleets) = self.index.get(&Kind::Fleet) else {
            return;
        };
        let mut deps: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (name, &i) in fleets {
            let mut targets = BTreeSet::new();
            if let Some(f) = self.entries[i].fleet() {
                for p in template::parse(&f.user_data).0 {
                    if let Piece::Ref {
                        kind: Kind::Fleet,
                        name: target,
                        ..
                    } = p
                        && let Some((t, _)) = fleets.get_key_value(&target)
                    {
                        targets.insert(t.as_str());
                    }
                }
            }
            deps.insert(name.as_str(), targets);
        }
        // Peel off fleets with no unresolved dependencies (Kahn); what is
        // left is in or behind a cycle.
        let mut left: BTreeSet<&str> = deps.keys().copied().collect();
        loop {
            let ready: Vec<&str> = left
                .iter()
                .copied()
                .filter(|n| deps[n].iter().all(|d| !left.contains(d)))
                .collect();
            if ready.is_empty() {
                break;
            }
            for n in ready {
                left.remove(n);
            }
        }
        let mut reported: BTreeSet<&str> = BTreeSet::new();
        let mut out = Vec::new();
        for &start in &left {
            if reported.contains(start) {
                continue;
            }
            // Walk dependencies inside `left` until a fleet repeats: that is
            // a cycle.
            let mut path = vec![start];
            let mut cur = start;
            let cycle = loop {
                let Some(next) = deps[cur].iter().copied().find(|d| left.contains(d)) else {
                    break None;
                };
                if let Some(pos) = path.iter().position(|p| *p == next) {
                    break Some(path[pos..].to_vec());
                }
                path.push(next);
                cur = next;
            };
            let Some(cycle) = cycle else { continue };
            if cycle.iter().any(|c| reported.contains(c)) {
                continue;
            }
            reported.extend(cycle.iter().copied());
            // Report at the cycle's first fleet by name.
            let first = cycle.iter().copied().min().unwrap_or(start);
            let rot = cycle.iter().position(|c| *c == first).unwrap_or(0);
            let mut names: Vec<String> = cycle[rot..]
                .iter()
                .chain(&cycle[..rot])
                .map(|n| format!("Fleet/{n}"))
                .collect();
            names.push(format!("Fleet/{first}"));
            let e = &self.entries[fleets[first]];
            let message = if cycle.len() == 1 {
                format!(
                    "Fleet/{first} refers to its own address; a fleet's user data cannot depend on itself"
                )
            } else {
                format!(
                    "reference cycle: {}; each fleet's user data waits for the next one's address",
                    names.join(" → ")
                )
            };
            out.push(
                e.at()
                    .diag(&FieldPath::spec().key("userData"), false, message),
            );
        }
        self.diags.extend(out);
    }
}

// ---- checks of one spec's parts -----------------------------------------------

fn tag_syntax(at: &At<'_>, path: &FieldPath, tags: &d::Tags, out: &mut Vec<Diagnostic>) {
    for (k, v) in tags {
        let p = path.key(k);
        if k.is_empty() || k.chars().count() > 128 {
            out.push(at.diag(
                &p,
                true,
                format!(
                    "expected a tag key of 1 to 128 characters, found {}",
                    k.chars().count()
                ),
            ));
        }
        for reserved in ["aws:", "converge:"] {
            if k.to_ascii_lowercase().starts_with(reserved) {
                out.push(at.diag(
                    &p,
                    true,
                    format!("tag keys starting with {reserved:?} are reserved, found {k:?}"),
                ));
            }
        }
        if v.chars().count() > 256 {
            out.push(at.diag(
                &p,
                false,
                format!(
                    "expected a tag value of at most 256 characters, found {}",
                    v.chars().count()
                ),
            ));
        }
    }
}

/// A count such as replicas: `min`..=MAX_REPLICAS.
/// A checked `image`: an image ID, or the SSM parameter after `ssm:`.
fn image_source(s: &str) -> Option<d::ImageSource> {
    match s.strip_prefix("ssm:") {
        Some(name) => id(name).map(d::ImageSource::Parameter),
        None => id(s).map(d::ImageSource::Id),
    }
}

/// What a fleet's instances launch with besides the image: the instance
/// profile, the metadata options (defaults written out: IMDSv2 only, two
/// hops) and the root volume (its size within the type's EBS range).
fn launch_options(
    at: &At<'_>,
    spec: &FieldPath,
    s: &raw::FleetSpec,
    out: &mut Vec<Diagnostic>,
) -> Option<(
    Option<converge_core::ids::InstanceProfile>,
    d::MetadataOptions,
    Option<d::RootVolume>,
)> {
    let mut ok = true;
    let profile = match &s.instance_profile {
        Some(p) => match check::instance_profile(p) {
            Ok(()) => id(p),
            Err(m) => {
                out.push(at.diag(&spec.key("instanceProfile"), false, m));
                ok = false;
                None
            }
        },
        None => None,
    };
    let tokens = match s.metadata.tokens {
        None | Some(raw::HttpTokens::Required) => d::HttpTokens::Required,
        Some(raw::HttpTokens::Optional) => d::HttpTokens::Optional,
    };
    let limits = d::MetadataOptions::HOP_LIMITS;
    let hop_limit = match s.metadata.hop_limit {
        None => d::MetadataOptions::DEFAULT.hop_limit,
        Some(n) => match u8::try_from(n).ok().filter(|n| limits.contains(n)) {
            Some(n) => n,
            None => {
                out.push(at.diag(
                    &spec.key("metadata").key("hopLimit"),
                    false,
                    format!(
                        "expected a hop limit from {} to {}, found {n}",
                        limits.start(),
                        limits.end()
                    ),
                ));
                ok = false;
                0
            }
        },
    };
    let root_volume = match &s.root_volume {
        Some(r) => {
            let v = root_volume(at, &spec.key("rootVolume"), r, out);
            ok &= v.is_some();
            v
        }
        None => None,
    };
    ok.then_some((
        profile,
        d::MetadataOptions { tokens, hop_limit },
        root_volume,
    ))
}

/// A fleet's root volume, its size within its type's EBS range. (That it
/// is at least the image's root snapshot is the planner's check, once
/// DescribeImages has told the snapshot's size.)
fn root_volume(
    at: &At<'_>,
    path: &FieldPath,
    r: &raw::RootVolume,
    out: &mut Vec<Diagnostic>,
) -> Option<d::RootVolume> {
    let volume_type = ebs_type(r.volume_type);
    let range = volume_type.size_range_gib();
    match u32::try_from(r.size_gib).ok().filter(|n| range.contains(n)) {
        Some(size_gib) => Some(d::RootVolume {
            size_gib,
            volume_type,
            encrypted: r.encrypted,
        }),
        None => {
            out.push(at.diag(
                &path.key("sizeGiB"),
                false,
                format!(
                    "expected a size from {} to {} GiB for a {} volume, found {}",
                    range.start(),
                    range.end(),
                    volume_type.as_str(),
                    r.size_gib
                ),
            ));
            None
        }
    }
}

/// An EBS type as the desired state names it.
fn ebs_type(t: raw::VolumeType) -> d::VolumeType {
    match t {
        raw::VolumeType::Gp2 => d::VolumeType::Gp2,
        raw::VolumeType::Gp3 => d::VolumeType::Gp3,
        raw::VolumeType::Io1 => d::VolumeType::Io1,
        raw::VolumeType::Io2 => d::VolumeType::Io2,
        raw::VolumeType::St1 => d::VolumeType::St1,
        raw::VolumeType::Sc1 => d::VolumeType::Sc1,
        raw::VolumeType::Standard => d::VolumeType::Standard,
    }
}

fn count(
    at: &At<'_>,
    path: &FieldPath,
    n: i64,
    min: i64,
    out: &mut Vec<Diagnostic>,
) -> Option<u32> {
    if (min..=MAX_REPLICAS).contains(&n) {
        u32::try_from(n).ok()
    } else {
        out.push(at.diag(
            path,
            false,
            format!("expected a number from {min} to {MAX_REPLICAS}, found {n}"),
        ));
        None
    }
}

fn duration(
    at: &At<'_>,
    path: &FieldPath,
    text: &raw::DurationText,
    positive: bool,
    out: &mut Vec<Diagnostic>,
) -> Option<std::time::Duration> {
    match check::duration(&text.0) {
        Ok(d) if positive && d.is_zero() => {
            out.push(at.diag(
                path,
                false,
                format!("expected a duration above zero, found {:?}", text.0),
            ));
            None
        }
        Ok(d) => Some(d),
        Err(m) => {
            out.push(at.diag(path, false, m));
            None
        }
    }
}

fn cron(at: &At<'_>, path: &FieldPath, text: &str, out: &mut Vec<Diagnostic>) -> Option<Cron> {
    match Cron::parse(text) {
        Ok(c) => Some(c),
        Err(e) => {
            out.push(at.diag(path, false, format!("bad cron expression {text:?}: {e}")));
            None
        }
    }
}

/// The time zone named `tz`, from the database bundled into the binary
/// (so planning needs nothing from the host).
fn timezone(at: &At<'_>, path: &FieldPath, tz: &str, out: &mut Vec<Diagnostic>) -> Option<Tz> {
    match Tz::bundled(tz) {
        Ok(zone) => Some(zone),
        Err(_) => {
            out.push(at.diag(
                path,
                false,
                format!(
                    "expected an IANA time zone like \"America/Toronto\" or \"UTC\", found {tz:?}"
                ),
            ));
            None
        }
    }
}

fn schedule(
    at: &At<'_>,
    path: &FieldPath,
    s: &raw::Schedule,
    out: &mut Vec<Diagnostic>,
) -> Option<d::Schedule> {
    let tz = timezone(at, &path.key("timezone"), &s.timezone, out);
    if s.rules.is_empty() {
        out.push(at.diag(
            &path.key("rules"),
            false,
            "expected at least one rule, found none",
        ));
    }
    let mut rules = Vec::new();
    let mut ok = true;
    for (i, r) in s.rules.iter().enumerate() {
        let p = path.key("rules").index(i);
        let c = cron(at, &p.key("cron"), &r.cron, out);
        let n = count(at, &p.key("replicas"), r.replicas, 0, out);
        match (c, n) {
            (Some(cron), Some(replicas)) => rules.push(d::ScheduleRule { cron, replicas }),
            _ => ok = false,
        }
    }
    (ok && !rules.is_empty()).then_some(())?;
    Some(d::Schedule {
        timezone: tz?,
        rules,
    })
}

fn autoscale(
    at: &At<'_>,
    path: &FieldPath,
    a: &raw::Autoscale,
    out: &mut Vec<Diagnostic>,
) -> Option<d::Autoscale> {
    let url_ok = check::http_url(&a.metric.url)
        .map_err(|m| out.push(at.diag(&path.key("metric").key("url"), false, m)))
        .is_ok();
    let every = duration(at, &path.key("every"), &a.every, true, out);
    let cooldown = duration(at, &path.key("cooldown"), &a.cooldown, false, out);
    let min_uptime = duration(
        at,
        &path.key("scaleIn").key("minUptime"),
        &a.scale_in.min_uptime,
        false,
        out,
    );
    let out_step = count(
        at,
        &path.key("scaleOut").key("step"),
        a.scale_out.step,
        1,
        out,
    );
    let in_step = count(
        at,
        &path.key("scaleIn").key("step"),
        a.scale_in.step,
        1,
        out,
    );
    let min = count(at, &path.key("min"), a.min, 0, out);
    let max = count(at, &path.key("max"), a.max, 1, out);
    let mut ok = true;
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        ok = false;
        out.push(at.diag(
            &path.key("min"),
            false,
            format!("min must not exceed max, found min {lo} and max {hi}"),
        ));
    }
    for (field, v) in [
        ("scaleOut", a.scale_out.above),
        ("scaleIn", a.scale_in.below),
    ] {
        if !v.is_finite() {
            ok = false;
            let key = if field == "scaleOut" {
                "above"
            } else {
                "below"
            };
            out.push(at.diag(
                &path.key(field).key(key),
                false,
                format!("expected a finite number, found {v}"),
            ));
        }
    }
    if a.scale_in.below >= a.scale_out.above {
        ok = false;
        out.push(at.diag(
            &path.key("scaleIn").key("below"),
            false,
            format!(
                "scaleIn.below must be under scaleOut.above, or the fleet would scale both ways; found below {} and above {}",
                a.scale_in.below, a.scale_out.above
            ),
        ));
    }
    (ok && url_ok).then_some(())?;
    Some(d::Autoscale {
        metric_url: a.metric.url.clone(),
        every: every?,
        scale_out: d::ScaleOut {
            above: a.scale_out.above,
            step: out_step?,
        },
        scale_in: d::ScaleIn {
            below: a.scale_in.below,
            step: in_step?,
            min_uptime: min_uptime?,
        },
        min: min?,
        max: max?,
        cooldown: cooldown?,
    })
}

fn health(
    at: &At<'_>,
    path: &FieldPath,
    h: &raw::Health,
    out: &mut Vec<Diagnostic>,
) -> Option<d::Health> {
    let grace = duration(at, &path.key("grace"), &h.grace, false, out);
    let http = match &h.http {
        None => Some(None),
        Some(c) => {
            let p = path.key("http");
            let port = check::port(c.port)
                .map_err(|m| out.push(at.diag(&p.key("port"), false, m)))
                .ok();
            let path_ok = c.path.starts_with('/')
                && !c
                    .path
                    .chars()
                    .any(|ch| ch.is_whitespace() || ch.is_control());
            if !path_ok {
                out.push(at.diag(
                    &p.key("path"),
                    false,
                    format!("expected a URL path starting with /, found {:?}", c.path),
                ));
            }
            match (port, path_ok) {
                (Some(port), true) => Some(Some(d::HttpCheck {
                    port,
                    path: c.path.clone(),
                    expect: c.expect.clone(),
                })),
                _ => None,
            }
        }
    };
    Some(d::Health {
        grace: grace?,
        http: http?,
    })
}

fn update(
    at: &At<'_>,
    path: &FieldPath,
    u: &raw::Update,
    out: &mut Vec<Diagnostic>,
) -> Option<d::UpdatePolicy> {
    let surge = count(at, &path.key("maxSurge"), u.max_surge, 0, out);
    let unavailable = count(at, &path.key("maxUnavailable"), u.max_unavailable, 0, out);
    if surge == Some(0) && unavailable == Some(0) {
        out.push(at.diag(
            path,
            false,
            "maxSurge and maxUnavailable cannot both be 0: no instance could ever be replaced",
        ));
        return None;
    }
    Some(d::UpdatePolicy {
        max_surge: surge?,
        max_unavailable: unavailable?,
    })
}

/// A classic balancer's health check.
fn health_check(
    at: &At<'_>,
    path: &FieldPath,
    h: &raw::HealthCheck,
    out: &mut Vec<Diagnostic>,
) -> Option<d::HealthCheck> {
    let before = out.len();
    for (field, set) in [
        ("protocol", h.protocol.is_some()),
        ("port", h.port.is_some()),
        ("path", h.path.is_some()),
        ("matcher", h.matcher.is_some()),
    ] {
        if set {
            out.push(at.diag(
                &path.key(field),
                false,
                format!("{field} is for application and network balancers; a classic balancer's check is its target (like \"HTTP:80/health\")"),
            ));
        }
    }
    let Some(target) = &h.target else {
        out.push(at.diag(
            &path.key("target"),
            false,
            "a classic balancer's health check needs a target (like \"HTTP:80/\")",
        ));
        return None;
    };
    let target_ok = check::health_target(target)
        .map_err(|m| out.push(at.diag(&path.key("target"), false, m)))
        .is_ok()
        && out.len() == before;
    let secs =
        |field: &str, text: &raw::DurationText, lo: u64, hi: u64, out: &mut Vec<Diagnostic>| {
            let d = duration(at, &path.key(field), text, true, out)?;
            // The balancer's API takes whole seconds.
            if d.as_secs() < lo || d.as_secs() > hi || d.subsec_nanos() != 0 {
                out.push(at.diag(
                    &path.key(field),
                    false,
                    format!(
                        "expected a {field} of whole seconds from {lo}s to {hi}s, found {:?}",
                        text.0
                    ),
                ));
                return None;
            }
            u32::try_from(d.as_secs()).ok()
        };
    let interval = secs("interval", &h.interval, 5, 300, out);
    let timeout_text = h
        .timeout
        .clone()
        .unwrap_or_else(|| raw::DurationText::of("5s"));
    let timeout = secs("timeout", &timeout_text, 2, 60, out);
    let mut ok = target_ok;
    if let (Some(i), Some(t)) = (interval, timeout)
        && t >= i
    {
        ok = false;
        out.push(at.diag(
            &path.key("timeout"),
            false,
            format!("the timeout must be below the interval, found timeout {t}s and interval {i}s"),
        ));
    }
    let mut threshold = |field: &str, n: i64| {
        if (2..=10).contains(&n) {
            u32::try_from(n).ok()
        } else {
            out.push(at.diag(
                &path.key(field),
                false,
                format!("expected a threshold from 2 to 10, found {n}"),
            ));
            None
        }
    };
    let healthy = threshold("healthyThreshold", h.healthy_threshold.unwrap_or(10));
    let unhealthy = threshold("unhealthyThreshold", h.unhealthy_threshold);
    ok.then_some(())?;
    Some(d::HealthCheck {
        target: target.clone(),
        interval_secs: interval?,
        timeout_secs: timeout?,
        healthy_threshold: healthy?,
        unhealthy_threshold: unhealthy?,
    })
}

fn read_key_file(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| super::io_reason(&e))?;
    let meta = file.metadata().map_err(|e| super::io_reason(&e))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| super::io_reason(&e))?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(format!(
            "larger than {} KiB; a public key is one short line",
            MAX_KEY_FILE / 1024
        ));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())
}

/// An identifier from manifest text the checks have passed. `None` only
/// for text they have already reported (their rules are stricter than an
/// identifier's shape), so a document with it is never built.
fn id<T: std::str::FromStr>(s: &str) -> Option<T> {
    s.parse().ok()
}

/// A volume's size, IOPS and throughput, checked against AWS's rules for
/// its type ([`converge_core::ebs::check`]), each problem reported at its
/// field.
fn volume_numbers(
    at: &At<'_>,
    s: &raw::VolumeSpec,
    volume_type: d::VolumeType,
    out: &mut Vec<Diagnostic>,
) -> Option<(u32, Option<u32>, Option<u32>)> {
    let spec = FieldPath::spec();
    let Ok(size) = u32::try_from(s.size_gib) else {
        let (min, max) = converge_core::ebs::size_range(volume_type);
        out.push(at.diag(
            &spec.key("sizeGiB"),
            false,
            format!(
                "expected a size from {min} to {max} GiB for {} volume, found {}",
                volume_type.with_article(),
                s.size_gib
            ),
        ));
        return None;
    };
    let mut ok = true;
    let mut number = |field: &str, n: Option<i64>| {
        let n = n?;
        u32::try_from(n)
            .inspect_err(|_| {
                ok = false;
                out.push(at.diag(
                    &spec.key(field),
                    false,
                    format!("expected a positive whole number, found {n}"),
                ));
            })
            .ok()
    };
    let iops = number("iops", s.iops);
    let throughput = number("throughput", s.throughput);
    if !ok {
        return None;
    }
    let problems = converge_core::ebs::check(volume_type, size, iops, throughput);
    for p in &problems {
        out.push(at.diag(&spec.key(p.field()), false, p.to_string()));
    }
    problems.is_empty().then_some((size, iops, throughput))
}

/// A volume's encryption: `kmsKey` in one of the forms CreateVolume takes,
/// and only with `encrypted: true`.
fn volume_encryption(
    at: &At<'_>,
    s: &raw::VolumeSpec,
    out: &mut Vec<Diagnostic>,
) -> Option<d::Encryption> {
    let path = FieldPath::spec().key("kmsKey");
    let key = match &s.kms_key {
        None => None,
        Some(k) => match converge_core::ebs::KmsKey::parse(k) {
            Ok(key) => Some(key),
            Err(m) => {
                out.push(at.diag(&path, false, m));
                return None;
            }
        },
    };
    match (s.encrypted, key) {
        (true, key) => Some(d::Encryption::Encrypted { key }),
        (false, None) => Some(d::Encryption::Unencrypted),
        (false, Some(_)) => {
            out.push(at.diag(
                &path,
                false,
                "a KMS key needs encrypted: true; remove kmsKey or set encrypted: true",
            ));
            None
        }
    }
}
