//! A fleet's user data as the executor assembles it: literal text, values
//! from the environment, and references to other resources, resolved now
//! when they are known and left to the executor (with the steps they wait
//! for) when they are not.

use crate::desired::{Attr, Reference, Template, TemplatePart};
use crate::ids::Kind;
use crate::plan::{Planner, Produced, Ref, StepId, UserDataPart, Value, VolumeRef};
use std::collections::BTreeSet;

/// User data as the executor assembles it, the fully resolved text when
/// every part is known, what to show in a plan, and the steps it waits for.
pub(crate) struct ResolvedUserData {
    /// The parts the executor joins.
    pub(crate) parts: Vec<UserDataPart>,
    /// The whole text, when every part is known now.
    pub(crate) text: Option<String>,
    /// What a plan shows.
    pub(crate) display: Value,
    /// The steps that produce the parts not known yet.
    pub(crate) deps: BTreeSet<StepId>,
}

/// What a reference resolves to at planning time.
enum Resolved {
    /// Its value, known now (empty when the target is not planned).
    Known(String),
    /// A value the executor reads from these steps' outputs.
    Pending(UserDataPart, Vec<StepId>),
    /// A kind that offers no attribute: it contributes nothing.
    Nothing,
}

/// User data being assembled, part by part.
struct Builder {
    parts: Vec<UserDataPart>,
    text: Option<String>,
    display: String,
    deps: BTreeSet<StepId>,
}

impl Builder {
    /// Appends a part known now.
    fn known(&mut self, s: &str) {
        self.parts.push(UserDataPart::Text(s.to_owned()));
        if let Some(t) = self.text.as_mut() {
            t.push_str(s);
        }
        self.display.push_str(s);
    }
}

impl<'a> Planner<'a> {
    /// Resolves a fleet's user data template against what the planner
    /// has decided so far.
    pub(crate) fn resolve_user_data(&self, t: &Template) -> ResolvedUserData {
        let mut b = Builder {
            parts: Vec::new(),
            text: Some(String::new()),
            display: String::new(),
            deps: BTreeSet::new(),
        };
        for part in &t.parts {
            match part {
                TemplatePart::Text(s) => b.known(s),
                TemplatePart::Env { value, .. } => {
                    b.parts.push(UserDataPart::Secret(value.clone()));
                    if let Some(t) = b.text.as_mut() {
                        t.push_str(value.expose());
                    }
                    b.display.push_str("(sensitive)");
                }
                TemplatePart::Ref(r) => match self.resolve_reference(r) {
                    Resolved::Known(v) => b.known(&v),
                    Resolved::Pending(p, deps) => {
                        b.deps.extend(deps);
                        b.parts.push(p);
                        b.text = None;
                        b.display.push_str(&format!("{r} (known after apply)"));
                    }
                    Resolved::Nothing => {}
                },
            }
        }
        let display = if t.is_sensitive() {
            Value::Sensitive
        } else {
            Value::Multiline(b.display)
        };
        ResolvedUserData {
            parts: b.parts,
            text: b.text,
            display,
            deps: b.deps,
        }
    }

    /// A reference's value from what the planner has decided so far: the
    /// fleets, balancers, distributions, volumes and hosted zones planned
    /// before.
    fn resolve_reference(&self, r: &Reference) -> Resolved {
        let name = &r.target.name;
        match r.target.kind {
            Kind::Fleet => {
                let o = self.fleets.get(name).cloned().unwrap_or_default();
                // Declared addresses are known now, launches or not.
                if let Some(planned) = &o.planned_ips {
                    Resolved::Known(addresses_value(planned, r.attr))
                } else if o.launches.is_empty() {
                    Resolved::Known(addresses_value(&o.staying_ips, r.attr))
                } else {
                    let part = UserDataPart::FleetIps {
                        known: o.staying_ips.clone(),
                        launches: o.launches.clone(),
                        single: r.attr == Attr::PrivateIp,
                    };
                    Resolved::Pending(part, o.launches)
                }
            }
            Kind::Balancer => match self.balancers.get(name) {
                Some(b) => match (&b.dns, b.produced.step) {
                    (Some((dns, zone)), _) => Resolved::Known(if r.attr == Attr::ZoneId {
                        zone.clone()
                    } else {
                        dns.clone()
                    }),
                    (None, Some(s)) => Resolved::Pending(
                        UserDataPart::StepOutput {
                            step: s,
                            attr: r.attr,
                        },
                        vec![s],
                    ),
                    (None, None) => Resolved::Known(String::new()),
                },
                None => Resolved::Known(String::new()),
            },
            Kind::Cdn => match self.cdns.get(name) {
                Some((Some(v), _)) => Resolved::Known(v.clone()),
                Some((None, Produced { step: Some(s) })) => Resolved::Pending(
                    UserDataPart::StepOutput {
                        step: *s,
                        attr: r.attr,
                    },
                    vec![*s],
                ),
                _ => Resolved::Known(String::new()),
            },
            Kind::Volume => match self.volumes.get(name).map(|v| &v.volume) {
                Some(VolumeRef::Known(id)) => Resolved::Known(id.as_str().to_owned()),
                Some(VolumeRef::Created(s)) => Resolved::Pending(
                    UserDataPart::StepOutput {
                        step: *s,
                        attr: Attr::Id,
                    },
                    vec![*s],
                ),
                None => Resolved::Known(String::new()),
            },
            Kind::DnsZone => match self.zones.get(name).map(|(id, _)| id) {
                Some(Ref::Known(id)) => Resolved::Known(
                    self.observed()
                        .dns_zones
                        .iter()
                        .find(|z| z.id == *id)
                        .map(|z| z.name_servers.join(","))
                        .unwrap_or_default(),
                ),
                Some(Ref::Created(s)) => Resolved::Pending(
                    UserDataPart::StepOutput {
                        step: *s,
                        attr: Attr::NameServers,
                    },
                    vec![*s],
                ),
                None => Resolved::Known(String::new()),
            },
            _ => Resolved::Nothing,
        }
    }
}

/// A fleet's addresses as a reference reads them: the first for
/// `privateIp`, all comma-separated for `privateIps`.
fn addresses_value(ips: &[std::net::Ipv4Addr], attr: Attr) -> String {
    if attr == Attr::PrivateIp {
        ips.first().map(|ip| ip.to_string()).unwrap_or_default()
    } else {
        ips.iter()
            .map(|ip| ip.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}
