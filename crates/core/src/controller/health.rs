//! Health: which running instances are unhealthy and are replaced.
//!
//! An instance is failing when it is OutOfService on one of its fleet's
//! balancers or fails its fleet's `health.http` probe. It is unhealthy
//! once it has run for at least the fleet's `health.grace` and has been
//! failing for at least as long. Per pass, at most the fleet's `update`
//! budget (`maxSurge + maxUnavailable`, at least one) of its unhealthy
//! instances are replaced, those failing longest first. When more than
//! half of a fleet's running instances are unhealthy at once, the check
//! itself is taken to be broken (a wrong path, a dependency down for
//! everyone): nothing in that fleet is replaced, and it is reported, so
//! that a wrong check never replaces every instance in a loop.
//!
//! A fleet of one or two running instances is too small to judge by a
//! majority: its unhealthy instances are replaced (within the budget), but
//! if one of its instances was replaced for health less than three grace
//! periods ago and it is unhealthy again, the check is taken to be broken
//! (the successor failed the same way) for as long as it keeps failing, so
//! a one-instance fleet with a wrong check is replaced once, then
//! reported; it is judged afresh once healthy for three grace periods.

use crate::desired::Desired;
use crate::ids::{InstanceId, Kind, ResourceName};
use crate::observed::{InstanceState, MemberState, Observed, ObservedInstance};
use jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

/// The result of one HTTP health probe of one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    /// It answered 2xx with the expected text.
    Passed,
    /// It did not; why (`connection refused`, `status 503`, `no "welcome"
    /// in the body`).
    Failed(String),
}

/// Why an instance counts as failing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// OutOfService on this balancer.
    OutOfService {
        /// The balancer's name.
        balancer: String,
    },
    /// The fleet's HTTP probe failed.
    Probe(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::OutOfService { balancer } => write!(f, "OutOfService on Balancer/{balancer}"),
            Failure::Probe(why) => write!(f, "health probe failed: {why}"),
        }
    }
}

/// What the health decision reads.
#[derive(Clone, Copy, Debug)]
pub struct HealthInput<'a> {
    /// The manifests.
    pub desired: &'a Desired,
    /// The cloud now.
    pub observed: &'a Observed,
    /// Now.
    pub at: Timestamp,
    /// This pass's probe results, for instances of fleets with a probe.
    pub probes: &'a BTreeMap<InstanceId, ProbeResult>,
    /// Since when each instance has been seen failing (from the previous
    /// pass's [`HealthDecision::failing_since`]).
    pub failing_since: &'a BTreeMap<InstanceId, Timestamp>,
    /// When each small fleet last had an instance replaced for health
    /// (from the previous pass's [`HealthDecision::replaced_at`]).
    pub replaced_at: &'a BTreeMap<ResourceName, Timestamp>,
}

/// Fleets with fewer running instances than this are too small to judge a
/// check by a majority of them.
const SMALL_FLEET: usize = 3;

/// An instance found unhealthy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unhealthy {
    /// The instance.
    pub instance: InstanceId,
    /// Why.
    pub failure: Failure,
    /// Failing since.
    pub since: Timestamp,
}

/// One fleet's verdict, for fleets with at least one unhealthy instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetHealth {
    /// The fleet.
    pub fleet: ResourceName,
    /// Its running instances.
    pub running: u32,
    /// Its unhealthy instances, failing longest first.
    pub unhealthy: Vec<Unhealthy>,
    /// Those replaced this pass (within the update budget).
    pub replace: Vec<InstanceId>,
    /// The check is taken to be broken (more than half unhealthy; in a
    /// fleet of one or two, unhealthy again soon after a replacement) and
    /// nothing is replaced.
    pub check_broken: bool,
}

/// The outcome: what to replace, and what to remember for the next pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthDecision {
    /// Instances to replace (for [`PlanInput::replace`](crate::plan::PlanInput)).
    pub replace: BTreeSet<InstanceId>,
    /// Since when each running instance has been failing; instances that
    /// pass, or are gone, are dropped, so it never outgrows the fleet.
    pub failing_since: BTreeMap<InstanceId, Timestamp>,
    /// Fleets with unhealthy instances, by name.
    pub fleets: Vec<FleetHealth>,
    /// When each fleet last had an instance replaced for health, kept for
    /// three grace periods (bounded by the fleets).
    pub replaced_at: BTreeMap<ResourceName, Timestamp>,
}

fn span(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// Judges every fleet's running instances.
pub fn assess(input: &HealthInput<'_>) -> HealthDecision {
    let d = input.desired;
    let mut out = HealthDecision::default();
    let mut by_fleet: BTreeMap<&ResourceName, Vec<&ObservedInstance>> = BTreeMap::new();
    for i in &input.observed.instances {
        if i.owner.kind == Kind::Fleet && i.state == InstanceState::Running {
            by_fleet.entry(&i.owner.name).or_default().push(i);
        }
    }
    // Member health by balancer (manifest name) and instance: an elbv2
    // target's worst state over its groups; `initial` and `draining` are
    // not failures, only OutOfService (`unhealthy`) is.
    let mut members: BTreeMap<(&str, &InstanceId), MemberState> = BTreeMap::new();
    for b in &input.observed.balancers {
        for m in &b.members {
            members.insert((b.owner.name.as_str(), &m.instance), m.state);
        }
    }
    for (name, spec) in &d.fleets {
        let balancers: Vec<&ResourceName> = d
            .balancers
            .iter()
            .filter(|(_, b)| b.fleets.contains(name))
            .map(|(n, _)| n)
            .collect();
        if balancers.is_empty() && spec.health.http.is_none() {
            continue;
        }
        let grace = span(spec.health.grace);
        let window = grace.saturating_mul(3);
        let recently_replaced = input
            .replaced_at
            .get(name)
            .copied()
            .filter(|t| input.at.duration_since(*t) < window);
        if let Some(t) = recently_replaced {
            out.replaced_at.insert(name.clone(), t);
        }
        let running = by_fleet.get(name).cloned().unwrap_or_default();
        let mut unhealthy = Vec::new();
        for i in &running {
            let out_of_service = balancers
                .iter()
                .find(|b| members.get(&(b.as_str(), &i.id)) == Some(&MemberState::OutOfService));
            let failure = match (out_of_service, input.probes.get(&i.id)) {
                (_, Some(ProbeResult::Failed(why))) if spec.health.http.is_some() => {
                    Some(Failure::Probe(why.clone()))
                }
                (Some(b), _) => Some(Failure::OutOfService {
                    balancer: b.to_string(),
                }),
                _ => None,
            };
            let Some(failure) = failure else { continue };
            let since = input
                .failing_since
                .get(&i.id)
                .copied()
                .unwrap_or(input.at)
                .min(input.at);
            out.failing_since.insert(i.id.clone(), since);
            let ran_long_enough = input.at.duration_since(i.launched_at) >= grace;
            let failed_long_enough = input.at.duration_since(since) >= grace;
            if ran_long_enough && failed_long_enough {
                unhealthy.push(Unhealthy {
                    instance: i.id.clone(),
                    failure,
                    since,
                });
            }
        }
        if unhealthy.is_empty() {
            continue;
        }
        unhealthy.sort_by(|a, b| (a.since, &a.instance).cmp(&(b.since, &b.instance)));
        let check_broken = if running.len() < SMALL_FLEET {
            // Still failing after a recent replacement: the check is
            // broken for as long as it keeps failing (the window restarts
            // now), and only a fleet healthy for a whole window is judged
            // afresh.
            if recently_replaced.is_some() {
                out.replaced_at.insert(name.clone(), input.at);
            }
            recently_replaced.is_some()
        } else {
            unhealthy.len() * 2 > running.len()
        };
        let budget = (spec
            .update
            .max_surge
            .saturating_add(spec.update.max_unavailable))
        .max(1);
        let replace: Vec<InstanceId> = if check_broken {
            Vec::new()
        } else {
            unhealthy
                .iter()
                .take(budget as usize)
                .map(|u| u.instance.clone())
                .collect()
        };
        out.replace.extend(replace.iter().cloned());
        if !replace.is_empty() {
            out.replaced_at.insert(name.clone(), input.at);
        }
        out.fleets.push(FleetHealth {
            fleet: name.clone(),
            running: running.len() as u32,
            unhealthy,
            replace,
            check_broken,
        });
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;
    use crate::desired::{
        BalancerSpec, FleetSpec, Health, HealthCheck, HttpCheck, Tags, Template, UpdatePolicy,
    };
    use crate::ids::Zone;
    use crate::observed::{Member, ObservedBalancer, Owner};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const T0: &str = "2026-03-09T14:00:00Z";

    fn fleet(http: bool, surge: u32) -> FleetSpec {
        FleetSpec {
            public_ip: None,
            private_ips: Vec::new(),
            subnets: Vec::new(),
            image: "ami-1".into(),
            instance_type: "m1.small".into(),
            zones: vec![Zone::from("us-east-1a")],
            replicas: 4,
            key_pair: None,
            security_groups: Vec::new(),
            user_data: Template::default(),
            tags: Tags::new(),
            schedule: None,
            autoscale: None,
            health: Health {
                grace: Duration::from_secs(300),
                http: http.then(|| HttpCheck {
                    port: 80,
                    path: "/".into(),
                    expect: Some("welcome".into()),
                }),
            },
            update: UpdatePolicy {
                max_surge: surge,
                max_unavailable: 0,
            },
            instance_profile: None,
            metadata: Default::default(),
            root_volume: None,
        }
    }

    fn desired(http: bool, balancer: bool, surge: u32) -> Desired {
        let mut d = Desired::empty("sp".into(), "us-east-1".into());
        d.fleets.insert("app".into(), fleet(http, surge));
        if balancer {
            d.balancers.insert(
                "web".into(),
                BalancerSpec {
                    kind: crate::elb::BalancerType::Classic,
                    scheme: crate::elb::Scheme::InternetFacing,
                    subnets: Vec::new(),
                    security_groups: Vec::new(),
                    zones: vec![Zone::from("us-east-1a")],
                    listeners: Vec::new(),
                    health_check: crate::desired::BalancerHealth::Classic(HealthCheck {
                        target: "HTTP:80/".into(),
                        interval_secs: 30,
                        timeout_secs: 3,
                        healthy_threshold: 2,
                        unhealthy_threshold: 2,
                    }),
                    drain_secs: 0,
                    cross_zone: true,
                    fleets: vec!["app".into()],
                    tags: Tags::new(),
                },
            );
        }
        d
    }

    fn instance(id: &str, launched: &str) -> ObservedInstance {
        ObservedInstance {
            vpc: None,
            public_ip: None,
            subnet: None,
            id: id.parse().unwrap(),
            owner: Owner {
                stack: "sp".into(),
                kind: Kind::Fleet,
                name: "app".into(),
            },
            zone: Zone::from("us-east-1a"),
            state: InstanceState::Running,
            private_ip: None,
            launched_at: ts(launched),
            image: "ami-1".into(),
            instance_type: "m1.small".into(),
            key_name: None,
            groups: Vec::new(),
            spec_hash: None,
            user_data: None,
            tags: Tags::new(),
            profile: None,
            metadata: Default::default(),
        }
    }

    fn observed(n: usize, out_of_service: &[usize]) -> Observed {
        let instances: Vec<ObservedInstance> = (0..n)
            .map(|k| instance(&format!("i-{k}"), "2026-03-09T12:00:00Z"))
            .collect();
        let members = instances
            .iter()
            .enumerate()
            .map(|(k, i)| Member {
                instance: i.id.clone(),
                state: if out_of_service.contains(&k) {
                    MemberState::OutOfService
                } else {
                    MemberState::InService
                },
            })
            .collect();
        Observed {
            instances,
            balancers: vec![ObservedBalancer {
                subnets: Vec::new(),
                name: "web".into(),
                owner: Owner {
                    stack: "sp".into(),
                    kind: Kind::Balancer,
                    name: "web".into(),
                },
                kind: crate::elb::BalancerType::Classic,
                scheme: crate::elb::Scheme::InternetFacing,
                dns_name: "web.example".into(),
                zone_id: String::new(),
                security_groups: Vec::new(),
                target_groups: Vec::new(),
                drain_secs: Some(0),
                cross_zone: Some(true),
                zones: Vec::new(),
                listeners: Vec::new(),
                health_check: None,
                members,
                tags: Tags::new(),
            }],
            ..Observed::default()
        }
    }

    fn assess_at(
        d: &Desired,
        o: &Observed,
        at: &str,
        probes: &BTreeMap<InstanceId, ProbeResult>,
        since: &BTreeMap<InstanceId, Timestamp>,
    ) -> HealthDecision {
        assess(&HealthInput {
            desired: d,
            observed: o,
            at: ts(at),
            probes,
            failing_since: since,
            replaced_at: &BTreeMap::new(),
        })
    }

    #[test]
    fn a_one_instance_fleet_is_replaced_once_then_the_check_is_reported() {
        let d = desired(true, false, 1);
        let o = observed(1, &[]);
        let failing = |o: &Observed| -> BTreeMap<InstanceId, ProbeResult> {
            o.instances
                .iter()
                .map(|i| (i.id.clone(), ProbeResult::Failed("status 503".into())))
                .collect()
        };
        let long_ago = |o: &Observed| -> BTreeMap<InstanceId, Timestamp> {
            o.instances
                .iter()
                .map(|i| (i.id.clone(), ts("2026-03-09T13:00:00Z")))
                .collect()
        };
        let first = assess(&HealthInput {
            desired: &d,
            observed: &o,
            at: ts(T0),
            probes: &failing(&o),
            failing_since: &long_ago(&o),
            replaced_at: &BTreeMap::new(),
        });
        assert_eq!(first.replace.len(), 1, "{first:?}");
        assert!(!first.fleets[0].check_broken);
        assert_eq!(first.replaced_at.len(), 1);
        // Its successor fails the same way soon after: the check is
        // reported, nothing replaced.
        let mut successor = observed(1, &[]);
        successor.instances[0].id = "i-successor".into();
        let again = assess(&HealthInput {
            desired: &d,
            observed: &successor,
            at: ts("2026-03-09T14:10:00Z"),
            probes: &failing(&successor),
            failing_since: &long_ago(&successor),
            replaced_at: &first.replaced_at,
        });
        assert!(again.replace.is_empty());
        assert!(again.fleets[0].check_broken);
        // Still failing long after: still broken (the window restarted).
        let still = assess(&HealthInput {
            desired: &d,
            observed: &successor,
            at: ts("2026-03-09T14:20:00Z"),
            probes: &failing(&successor),
            failing_since: &long_ago(&successor),
            replaced_at: &again.replaced_at,
        });
        assert!(still.replace.is_empty());
        assert!(still.fleets[0].check_broken);
        // Healthy for a whole window (3 × the 5-minute grace), then
        // failing: judged afresh.
        let healthy = assess(&HealthInput {
            desired: &d,
            observed: &successor,
            at: ts("2026-03-09T15:00:00Z"),
            probes: &BTreeMap::new(),
            failing_since: &BTreeMap::new(),
            replaced_at: &still.replaced_at,
        });
        assert!(healthy.replaced_at.is_empty(), "{healthy:?}");
        let later = assess(&HealthInput {
            desired: &d,
            observed: &successor,
            at: ts("2026-03-09T15:01:00Z"),
            probes: &failing(&successor),
            failing_since: &long_ago(&successor),
            replaced_at: &healthy.replaced_at,
        });
        assert_eq!(later.replace.len(), 1);
    }

    #[test]
    fn out_of_service_past_grace_is_replaced() {
        let d = desired(false, true, 1);
        let o = observed(4, &[2]);
        let none = BTreeMap::new();
        let first = assess_at(&d, &o, T0, &none, &BTreeMap::new());
        assert!(first.replace.is_empty(), "not failing for the grace yet");
        assert_eq!(first.failing_since.len(), 1);
        let later = assess_at(&d, &o, "2026-03-09T14:05:00Z", &none, &first.failing_since);
        assert_eq!(later.replace, BTreeSet::from([InstanceId::from("i-2")]));
        assert_eq!(later.failing_since[&InstanceId::from("i-2")], ts(T0));
        // Healthy again: forgotten.
        let ok = assess_at(&d, &observed(4, &[]), T0, &none, &later.failing_since);
        assert!(ok.failing_since.is_empty());
    }

    #[test]
    fn a_young_instance_has_its_grace() {
        let d = desired(false, true, 1);
        let mut o = observed(4, &[3]);
        o.instances[3].launched_at = ts("2026-03-09T13:58:00Z");
        let since = BTreeMap::from([(InstanceId::from("i-3"), ts("2026-03-09T13:00:00Z"))]);
        let r = assess_at(&d, &o, T0, &BTreeMap::new(), &since);
        assert!(r.replace.is_empty());
    }

    #[test]
    fn a_failing_probe_counts_and_the_budget_caps_replacements() {
        let d = desired(true, false, 1);
        let o = observed(5, &[]);
        let probes: BTreeMap<InstanceId, ProbeResult> = ["i-1", "i-3"]
            .into_iter()
            .map(|i| (i.into(), ProbeResult::Failed("status 503".into())))
            .collect();
        let since: BTreeMap<InstanceId, Timestamp> = [
            ("i-1", "2026-03-09T13:00:00Z"),
            ("i-3", "2026-03-09T12:30:00Z"),
        ]
        .into_iter()
        .map(|(i, t)| (i.into(), ts(t)))
        .collect();
        let r = assess_at(&d, &o, T0, &probes, &since);
        // Budget 1: the one failing longest goes first.
        assert_eq!(r.replace, BTreeSet::from([InstanceId::from("i-3")]));
        assert_eq!(r.fleets[0].unhealthy.len(), 2);
        assert!(!r.fleets[0].check_broken);
    }

    #[test]
    fn more_than_half_unhealthy_means_the_check_is_broken() {
        let d = desired(true, false, 2);
        let o = observed(4, &[]);
        let probes: BTreeMap<InstanceId, ProbeResult> = o
            .instances
            .iter()
            .take(3)
            .map(|i| (i.id.clone(), ProbeResult::Failed("no \"welcome\"".into())))
            .collect();
        let since: BTreeMap<InstanceId, Timestamp> = probes
            .keys()
            .map(|i| (i.clone(), ts("2026-03-09T13:00:00Z")))
            .collect();
        let r = assess_at(&d, &o, T0, &probes, &since);
        assert!(r.replace.is_empty());
        assert!(r.fleets[0].check_broken);
        assert_eq!(r.fleets[0].unhealthy.len(), 3);
        // Exactly half is not "more than half".
        let two: BTreeMap<_, _> = probes.into_iter().take(2).collect();
        let r = assess_at(&d, &o, T0, &two, &since);
        assert_eq!(r.replace.len(), 2);
    }

    #[test]
    fn fleets_without_a_check_are_not_judged() {
        let d = desired(false, false, 1);
        let o = observed(2, &[0, 1]);
        let r = assess_at(&d, &o, T0, &BTreeMap::new(), &BTreeMap::new());
        assert_eq!(r, HealthDecision::default());
    }
}
