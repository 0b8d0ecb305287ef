//! How the local cloud behaves: its region, how long things take
//! ([`Delays`]) and what goes wrong on purpose ([`Faults`]), with the
//! parsers for the `--local-delays`/`CONVERGE_LOCAL_DELAYS` and
//! `--local-faults`/`CONVERGE_LOCAL_FAULTS` settings.

use std::fmt;
use std::time::Duration;

/// The local cloud's settings for one process. Nothing here is stored in
/// the world file: every run chooses its own delays and faults.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalConfig {
    /// The region this process acts in (`us-east-1`). Zones must belong to
    /// it; regional resources of other regions are invisible to it.
    pub region: String,
    /// How long transitions take.
    pub delays: Delays,
    /// Faults to inject.
    pub faults: Faults,
}

impl LocalConfig {
    /// Default delays and no faults, in `region`.
    pub fn new(region: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            delays: Delays::default(),
            faults: Faults::default(),
        }
    }
}

/// How long the simulated region takes to move resources between states.
///
/// Each delay is fixed when the change is made and stored with the
/// resource, so a resource launched by a process with `boot=3s` runs three
/// seconds later whoever looks at it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Delays {
    /// Instances: pending → running.
    pub boot: Duration,
    /// Instances: shutting-down → terminated.
    pub shutdown: Duration,
    /// Volumes: creating → available.
    pub volume: Duration,
    /// Snapshots: pending → completed.
    pub snapshot: Duration,
    /// Distributions: InProgress → Deployed after a create or update.
    pub deploy: Duration,
    /// Route 53 change batches: PENDING → INSYNC.
    pub dns: Duration,
    /// CloudFront invalidations: InProgress → Completed.
    pub invalidation: Duration,
    /// ACM certificates: PENDING_VALIDATION → ISSUED once their
    /// validation records are in a zone.
    pub certificate: Duration,
    /// Balancer members become InService `interval × healthyThreshold ×
    /// health` after they are registered and running. The default, 0.05,
    /// turns the design's 30 s × 2 into 3 s; 1.0 is real time.
    pub health: f64,
}

impl Default for Delays {
    fn default() -> Self {
        Self {
            boot: Duration::from_secs(3),
            shutdown: Duration::from_secs(1),
            volume: Duration::from_secs(1),
            snapshot: Duration::from_secs(2),
            deploy: Duration::from_secs(5),
            dns: Duration::from_secs(1),
            invalidation: Duration::from_secs(2),
            certificate: Duration::from_secs(2),
            health: 0.05,
        }
    }
}

/// The keys [`Delays::parse`] accepts, for error messages.
const DELAY_KEYS: &str =
    "zero, boot, shutdown, volume, snapshot, deploy, dns, invalidation, certificate, health";

impl Delays {
    /// No delays at all: every transition happens at once.
    pub fn zero() -> Self {
        Self {
            boot: Duration::ZERO,
            shutdown: Duration::ZERO,
            volume: Duration::ZERO,
            snapshot: Duration::ZERO,
            deploy: Duration::ZERO,
            dns: Duration::ZERO,
            invalidation: Duration::ZERO,
            certificate: Duration::ZERO,
            health: 0.0,
        }
    }

    /// Parses a comma-separated list such as `zero`,
    /// `boot=1s,volume=500ms` or `zero,deploy=2s`. Items apply in order,
    /// starting from the defaults; `zero` sets every delay to zero.
    /// Durations are a number and a unit (`ms`, `s`, `m`, `h`), or `0`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let mut d = Delays::default();
        for item in items(s) {
            let (key, value) = split_item(item);
            match (key, value) {
                ("zero", None) => d = Delays::zero(),
                ("default", None) => d = Delays::default(),
                ("boot", Some(v)) => d.boot = duration(key, v)?,
                ("shutdown", Some(v)) => d.shutdown = duration(key, v)?,
                ("volume", Some(v)) => d.volume = duration(key, v)?,
                ("snapshot", Some(v)) => d.snapshot = duration(key, v)?,
                ("deploy", Some(v)) => d.deploy = duration(key, v)?,
                ("dns", Some(v)) => d.dns = duration(key, v)?,
                ("invalidation", Some(v)) => d.invalidation = duration(key, v)?,
                ("certificate", Some(v)) => d.certificate = duration(key, v)?,
                ("health", Some(v)) => {
                    d.health = match v.parse::<f64>() {
                        Ok(f) if f.is_finite() && f >= 0.0 => f,
                        _ => {
                            return Err(ParseError::BadValue {
                                key: key.to_owned(),
                                value: v.to_owned(),
                                expected: "a non-negative factor such as 0.05 or 1",
                            });
                        }
                    }
                }
                (
                    "boot" | "shutdown" | "volume" | "snapshot" | "deploy" | "dns" | "invalidation"
                    | "certificate" | "health",
                    None,
                ) => {
                    return Err(ParseError::MissingValue {
                        key: key.to_owned(),
                        example: if key == "health" {
                            "health=0.05"
                        } else {
                            "boot=2s"
                        },
                    });
                }
                ("zero" | "default", Some(_)) => {
                    return Err(ParseError::UnexpectedValue {
                        key: key.to_owned(),
                    });
                }
                _ => {
                    return Err(ParseError::UnknownKey {
                        key: key.to_owned(),
                        expected: DELAY_KEYS,
                    });
                }
            }
        }
        Ok(d)
    }
}

impl fmt::Display for Delays {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "boot={},shutdown={},volume={},snapshot={},deploy={},dns={},invalidation={},health={}",
            show(self.boot),
            show(self.shutdown),
            show(self.volume),
            show(self.snapshot),
            show(self.deploy),
            show(self.dns),
            show(self.invalidation),
            self.health
        )
    }
}

/// Faults the local cloud injects, for tests and demonstrations.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    /// The probability (0 to 1) that any call fails with
    /// `RequestLimitExceeded` (throttled) before it does anything.
    pub throttle: f64,
    /// EC2 and ELB resources created less than this long ago are invisible
    /// to observe, describes and calls that name them, as with AWS's
    /// eventual consistency. Client tokens still find them.
    pub lag: Duration,
    /// The seed of this process's random choices (throttling), and of the
    /// IDs of a world created by this process. Without it throttling is
    /// random and a new world uses seed 0.
    pub seed: Option<u64>,
    /// Abort the process (`std::process::abort`) right after the Nth
    /// successful mutating call has been saved: a crash in the middle of
    /// an apply.
    pub crash_after: Option<u64>,
}

/// The keys [`Faults::parse`] accepts, for error messages.
const FAULT_KEYS: &str = "none, throttle, lag, seed, crash_after";

impl Faults {
    /// Parses a comma-separated list such as
    /// `throttle=0.2,lag=3s,seed=7,crash_after=5`. An empty string or
    /// `none` means no faults.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let mut f = Faults::default();
        for item in items(s) {
            let (key, value) = split_item(item);
            match (key, value) {
                ("none", None) => f = Faults::default(),
                ("throttle", Some(v)) => {
                    f.throttle = match v.parse::<f64>() {
                        Ok(p) if (0.0..=1.0).contains(&p) => p,
                        _ => {
                            return Err(ParseError::BadValue {
                                key: key.to_owned(),
                                value: v.to_owned(),
                                expected: "a probability between 0 and 1, such as 0.2",
                            });
                        }
                    }
                }
                ("lag", Some(v)) => f.lag = duration(key, v)?,
                ("seed", Some(v)) => f.seed = Some(number(key, v)?),
                ("crash_after" | "crash-after", Some(v)) => {
                    let n = number(key, v)?;
                    if n == 0 {
                        return Err(ParseError::BadValue {
                            key: key.to_owned(),
                            value: v.to_owned(),
                            expected: "a count of at least 1",
                        });
                    }
                    f.crash_after = Some(n);
                }
                ("throttle" | "lag" | "seed" | "crash_after" | "crash-after", None) => {
                    return Err(ParseError::MissingValue {
                        key: key.to_owned(),
                        example: match key {
                            "throttle" => "throttle=0.2",
                            "lag" => "lag=3s",
                            "seed" => "seed=7",
                            _ => "crash_after=5",
                        },
                    });
                }
                ("none", Some(_)) => {
                    return Err(ParseError::UnexpectedValue {
                        key: key.to_owned(),
                    });
                }
                _ => {
                    return Err(ParseError::UnknownKey {
                        key: key.to_owned(),
                        expected: FAULT_KEYS,
                    });
                }
            }
        }
        Ok(f)
    }

    /// Whether no fault is set (a seed alone injects nothing).
    pub fn is_none(&self) -> bool {
        self.throttle == 0.0 && self.lag.is_zero() && self.crash_after.is_none()
    }
}

impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.throttle > 0.0 {
            parts.push(format!("throttle={}", self.throttle));
        }
        if !self.lag.is_zero() {
            parts.push(format!("lag={}", show(self.lag)));
        }
        if let Some(s) = self.seed {
            parts.push(format!("seed={s}"));
        }
        if let Some(n) = self.crash_after {
            parts.push(format!("crash_after={n}"));
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(","))
        }
    }
}

/// A bad `--local-delays` or `--local-faults` setting.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A key that is not one of the known ones.
    #[error("unknown setting `{key}`: expected one of {expected}")]
    UnknownKey {
        /// The key found.
        key: String,
        /// The keys accepted.
        expected: &'static str,
    },
    /// A key given without `=value`.
    #[error("`{key}` needs a value, like `{example}`")]
    MissingValue {
        /// The key.
        key: String,
        /// An example.
        example: &'static str,
    },
    /// A value given to a key that takes none.
    #[error("`{key}` takes no value")]
    UnexpectedValue {
        /// The key.
        key: String,
    },
    /// A value that does not parse or is out of range.
    #[error("`{key}`: expected {expected}, found `{value}`")]
    BadValue {
        /// The key.
        key: String,
        /// The value found.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

fn items(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|i| !i.is_empty())
}

fn split_item(item: &str) -> (&str, Option<&str>) {
    match item.split_once('=') {
        Some((k, v)) => (k.trim(), Some(v.trim())),
        None => (item, None),
    }
}

fn number(key: &str, v: &str) -> Result<u64, ParseError> {
    v.parse::<u64>().map_err(|_| ParseError::BadValue {
        key: key.to_owned(),
        value: v.to_owned(),
        expected: "a whole number",
    })
}

fn duration(key: &str, v: &str) -> Result<Duration, ParseError> {
    parse_duration(v).ok_or_else(|| ParseError::BadValue {
        key: key.to_owned(),
        value: v.to_owned(),
        expected: "a duration such as 0, 500ms, 1.5s, 2m or 1h30m",
    })
}

/// Parses a duration in the one grammar of manifests and flags
/// ([`converge_core::duration`]): `0`, `500ms`, `1.5s`, `2m`, `1h30m`.
pub fn parse_duration(v: &str) -> Option<Duration> {
    converge_core::duration::parse(v).ok()
}

/// Shows a duration the way [`parse_duration`] reads it.
fn show(d: Duration) -> String {
    converge_core::duration::show(d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;

    #[test]
    fn faults_parse_the_documented_example() {
        let f = Faults::parse("throttle=0.2,lag=3s,seed=7,crash_after=5").unwrap();
        assert_eq!(
            f,
            Faults {
                throttle: 0.2,
                lag: Duration::from_secs(3),
                seed: Some(7),
                crash_after: Some(5),
            }
        );
        assert_eq!(f.to_string(), "throttle=0.2,lag=3s,seed=7,crash_after=5");
        assert_eq!(Faults::parse("").unwrap(), Faults::default());
        assert_eq!(Faults::parse(" none ").unwrap(), Faults::default());
    }

    #[test]
    fn faults_reject_bad_input_with_the_valid_choices() {
        let e = Faults::parse("thrttle=0.2").unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown setting `thrttle`: expected one of none, throttle, lag, seed, crash_after"
        );
        let e = Faults::parse("throttle=2").unwrap_err().to_string();
        assert_eq!(
            e,
            "`throttle`: expected a probability between 0 and 1, such as 0.2, found `2`"
        );
        assert!(Faults::parse("lag=3 parsecs").is_err());
        assert!(Faults::parse("lag").is_err());
        assert!(Faults::parse("crash_after=0").is_err());
        assert!(Faults::parse("seed=-1").is_err());
    }

    #[test]
    fn delays_parse_zero_and_overrides() {
        assert_eq!(Delays::parse("zero").unwrap(), Delays::zero());
        let d = Delays::parse("zero,boot=1.5s,health=1").unwrap();
        assert_eq!(d.boot, Duration::from_millis(1500));
        assert_eq!(d.volume, Duration::ZERO);
        assert_eq!(d.health, 1.0);
        let d = Delays::parse("volume=500ms").unwrap();
        assert_eq!(d.volume, Duration::from_millis(500));
        assert_eq!(d.boot, Delays::default().boot);
        assert_eq!(
            Delays::parse(&Delays::default().to_string()).unwrap(),
            Delays::default()
        );
        let e = Delays::parse("bot=1s").unwrap_err().to_string();
        assert!(e.contains("expected one of zero, boot"), "{e}");
        assert!(Delays::parse("boot=fast").is_err());
        assert!(Delays::parse("health=-1").is_err());
        assert!(Delays::parse("zero=1").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("1d"), None);
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("-1s"), None);
    }
}
