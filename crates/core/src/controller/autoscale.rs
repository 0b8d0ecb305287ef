//! Metric scaling: how an autoscaled fleet's count moves on one reading.
//!
//! Above `scaleOut.above`, `step` instances are added, up to `max`; below
//! `scaleIn.below`, `step` are removed, down to `min`, and only instances
//! that have run at least `minUptime` go, the newest of those first; at
//! most one action per `cooldown`. A reading that could not be taken
//! changes nothing. The decision names the instances that go, so that the
//! planner (told through [`PlanInput::retire`](crate::plan::PlanInput))
//! makes no choice of its own.

use crate::desired::Autoscale;
use crate::ids::InstanceId;
use crate::observed::ObservedInstance;
use jiff::{SignedDuration, Timestamp};
use std::fmt;

/// One reading of a fleet's metric.
#[derive(Clone, Debug, PartialEq)]
pub enum Reading {
    /// The number read.
    Value(f64),
    /// Why it could not be read.
    Unreadable(String),
}

/// What the autoscaler reads for one fleet.
#[derive(Clone, Copy, Debug)]
pub struct AutoscaleInput<'a> {
    /// The fleet's autoscale spec.
    pub spec: &'a Autoscale,
    /// The count the fleet is held at now (the last decision, or its live
    /// count when there was none).
    pub current: u32,
    /// The fleet's live instances.
    pub instances: &'a [&'a ObservedInstance],
    /// The reading.
    pub reading: &'a Reading,
    /// When the fleet last scaled, if the loop remembers.
    pub last_action: Option<Timestamp>,
    /// Now.
    pub at: Timestamp,
}

/// The decision.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Add instances.
    ScaleOut {
        /// The count before.
        from: u32,
        /// The count after.
        to: u32,
    },
    /// Remove these instances.
    ScaleIn {
        /// The count before.
        from: u32,
        /// The count after.
        to: u32,
        /// The instances that go, newest first.
        remove: Vec<InstanceId>,
    },
    /// Keep the count.
    Hold {
        /// The count kept.
        count: u32,
        /// Why.
        reason: Hold,
    },
}

impl Decision {
    /// The count the fleet is held at after this decision.
    pub fn count(&self) -> u32 {
        match self {
            Decision::ScaleOut { to, .. } | Decision::ScaleIn { to, .. } => *to,
            Decision::Hold { count, .. } => *count,
        }
    }

    /// Whether the count changes.
    pub fn is_action(&self) -> bool {
        !matches!(self, Decision::Hold { .. })
    }
}

/// Why the count is kept.
#[derive(Clone, Debug, PartialEq)]
pub enum Hold {
    /// The reading is between the thresholds.
    InRange,
    /// Above the scale-out threshold, but at `max`.
    AtMax,
    /// Below the scale-in threshold, but at `min`.
    AtMin,
    /// The last action was too recent.
    Cooldown {
        /// When the next action may happen.
        until: Timestamp,
    },
    /// Below the scale-in threshold, but no instance has run `minUptime`.
    TooYoung,
    /// The metric could not be read.
    Unreadable(String),
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hold::InRange => f.write_str("metric within thresholds"),
            Hold::AtMax => f.write_str("at max"),
            Hold::AtMin => f.write_str("at min"),
            Hold::Cooldown { until } => write!(f, "cooling down until {until}"),
            Hold::TooYoung => f.write_str("no instance has run minUptime yet"),
            Hold::Unreadable(why) => write!(f, "metric unreadable: {why}"),
        }
    }
}

fn span(d: std::time::Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// Decides one fleet's count.
pub fn decide(input: &AutoscaleInput<'_>) -> Decision {
    let a = input.spec;
    let current = input.current.clamp(a.min, a.max.max(a.min));
    let hold = |reason| Decision::Hold {
        count: current,
        reason,
    };
    let value = match input.reading {
        Reading::Unreadable(why) => return hold(Hold::Unreadable(why.clone())),
        // NaN compares false both ways: in range, no action.
        Reading::Value(v) => *v,
    };
    let out = value > a.scale_out.above;
    let inn = value < a.scale_in.below;
    if !out && !inn {
        return hold(Hold::InRange);
    }
    if out && current >= a.max {
        return hold(Hold::AtMax);
    }
    if inn && !out && current <= a.min {
        return hold(Hold::AtMin);
    }
    if let Some(last) = input.last_action
        && let Some(until) = last.checked_add(span(a.cooldown)).ok()
        && input.at < until
    {
        return hold(Hold::Cooldown { until });
    }
    if out {
        let to = current.saturating_add(a.scale_out.step.max(1)).min(a.max);
        return Decision::ScaleOut { from: current, to };
    }
    let min_uptime = span(a.scale_in.min_uptime);
    let mut eligible: Vec<&ObservedInstance> = input
        .instances
        .iter()
        .copied()
        .filter(|i| i.state.is_live() && input.at.duration_since(i.launched_at) >= min_uptime)
        .collect();
    eligible.sort_by(|x, y| (y.launched_at, &y.id).cmp(&(x.launched_at, &x.id)));
    let n = a
        .scale_in
        .step
        .max(1)
        .min(current - a.min)
        .min(eligible.len() as u32);
    if n == 0 {
        return hold(Hold::TooYoung);
    }
    Decision::ScaleIn {
        from: current,
        to: current - n,
        remove: eligible
            .iter()
            .take(n as usize)
            .map(|i| i.id.clone())
            .collect(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;
    use crate::desired::{ScaleIn, ScaleOut, Tags};
    use crate::ids::{Kind, Zone};
    use crate::observed::{InstanceState, Owner};
    use std::time::Duration;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn spec() -> Autoscale {
        Autoscale {
            metric_url: "http://127.0.0.1:9100/queue/length".into(),
            every: Duration::from_secs(60),
            scale_out: ScaleOut {
                above: 20.0,
                step: 1,
            },
            scale_in: ScaleIn {
                below: 5.0,
                step: 1,
                min_uptime: Duration::from_secs(45 * 60),
            },
            min: 0,
            max: 2,
            cooldown: Duration::from_secs(300),
        }
    }

    fn instance(id: &'static str, launched: &str) -> ObservedInstance {
        ObservedInstance {
            vpc: None,
            public_ip: None,
            subnet: None,
            id: id.into(),
            owner: Owner {
                stack: "sp".into(),
                kind: Kind::Fleet,
                name: "job".into(),
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

    fn run(
        current: u32,
        instances: &[ObservedInstance],
        reading: Reading,
        last: Option<&str>,
        at: &str,
    ) -> Decision {
        let s = spec();
        let refs: Vec<&ObservedInstance> = instances.iter().collect();
        decide(&AutoscaleInput {
            spec: &s,
            current,
            instances: &refs,
            reading: &reading,
            last_action: last.map(ts),
            at: ts(at),
        })
    }

    const AT: &str = "2026-03-09T14:00:00Z";

    #[test]
    fn scales_out_by_step_up_to_max() {
        assert_eq!(
            run(0, &[], Reading::Value(30.0), None, AT),
            Decision::ScaleOut { from: 0, to: 1 }
        );
        assert!(matches!(
            run(2, &[], Reading::Value(30.0), None, AT),
            Decision::Hold {
                count: 2,
                reason: Hold::AtMax
            }
        ));
        // Exactly at the threshold is not above it.
        assert!(matches!(
            run(1, &[], Reading::Value(20.0), None, AT),
            Decision::Hold {
                reason: Hold::InRange,
                ..
            }
        ));
    }

    #[test]
    fn cooldown_holds_between_actions() {
        let d = run(
            1,
            &[],
            Reading::Value(30.0),
            Some("2026-03-09T13:56:00Z"),
            AT,
        );
        assert_eq!(
            d,
            Decision::Hold {
                count: 1,
                reason: Hold::Cooldown {
                    until: ts("2026-03-09T14:01:00Z")
                }
            }
        );
        assert_eq!(
            run(
                1,
                &[],
                Reading::Value(30.0),
                Some("2026-03-09T13:55:00Z"),
                AT
            ),
            Decision::ScaleOut { from: 1, to: 2 }
        );
    }

    #[test]
    fn scales_in_only_instances_that_ran_min_uptime_newest_first() {
        let is = [
            instance("i-old", "2026-03-09T12:00:00Z"),
            instance("i-mid", "2026-03-09T13:10:00Z"),
            instance("i-new", "2026-03-09T13:30:00Z"),
        ];
        // i-mid ran 50 minutes, i-new 30: i-mid goes, not the older one.
        let mut s = spec();
        s.max = 3;
        let refs: Vec<&ObservedInstance> = is.iter().collect();
        let d = decide(&AutoscaleInput {
            spec: &s,
            current: 3,
            instances: &refs,
            reading: &Reading::Value(1.0),
            last_action: None,
            at: ts(AT),
        });
        assert_eq!(
            d,
            Decision::ScaleIn {
                from: 3,
                to: 2,
                remove: vec!["i-mid".into()]
            }
        );
        let young = [instance("i-new", "2026-03-09T13:30:00Z")];
        assert!(matches!(
            run(1, &young, Reading::Value(1.0), None, AT),
            Decision::Hold {
                reason: Hold::TooYoung,
                ..
            }
        ));
        assert!(matches!(
            run(0, &[], Reading::Value(1.0), None, AT),
            Decision::Hold {
                reason: Hold::AtMin,
                ..
            }
        ));
    }

    #[test]
    fn an_unreadable_metric_changes_nothing() {
        let d = run(1, &[], Reading::Unreadable("refused".into()), None, AT);
        assert_eq!(d.count(), 1);
        assert!(!d.is_action());
        assert!(matches!(
            run(1, &[], Reading::Value(f64::NAN), None, AT),
            Decision::Hold {
                reason: Hold::InRange,
                ..
            }
        ));
    }
}
