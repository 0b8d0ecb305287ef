//! The embedded local cloud: a simulated AWS region kept in a file, the
//! default target of every command.
//!
//! # What it simulates
//!
//! Key pairs, security groups, instances, volumes, snapshots, load
//! balancers (classic, application and network, with target groups and
//! certificates), buckets and distributions, with the rules of the real region
//! that matter to converge: instances go pending → running after a boot
//! delay and get an ID, a private address in 10.0.0.0/16 and a launch
//! time; volumes go creating → available → in-use, attach only in their
//! own zone, to a running instance, one at a time, and detach when their
//! instance terminates; snapshots go pending → completed; a distribution
//! goes InProgress → Deployed after each change and can only be deleted
//! once disabled and deployed; balancer members become InService only
//! `interval × healthyThreshold` after they run; security groups cannot be
//! deleted while used; client tokens and caller references make creates
//! idempotent. Errors carry AWS's codes. The details, with every code, are
//! in `docs/local-cloud.md`.
//!
//! # Time
//!
//! All time comes from the injected [`Clock`] (tests use
//! [`crate::sys::ManualClock`]). The world stores when each transition
//! happens and derives states when it is read; see [`Delays`].
//!
//! # Faults
//!
//! [`Faults`] inject throttling, lagging describes and a crash after N
//! calls. The CLI reads them from `--local-faults` or
//! `CONVERGE_LOCAL_FAULTS` (`throttle=0.2,lag=3s,seed=7,crash_after=5`),
//! and delays from `--local-delays` or `CONVERGE_LOCAL_DELAYS` (`zero`,
//! `boot=1s,volume=0s`). `converge local terminate ID`
//! ([`LocalCloud::lose_instance`]) loses an instance as a crash would.
//!
//! # The file
//!
//! The world is one JSON file, [`STATE_FILE`] in the state directory
//! (`.converge/` by default), created by the first change. Every call
//! takes an OS lock on [`LOCK_FILE`] for its own duration (shared to read,
//! exclusive to change), reads the file (the parsed world is cached while
//! the file's bytes are unchanged), and a change writes a temporary file
//! in the same directory, syncs it and renames it over the old one. A
//! crash at any point leaves either the old world or the new one, and
//! separate processes share one world without losing updates.

mod config;
mod ls;
mod ops;
mod view;
mod world;

pub use config::{Delays, Faults, LocalConfig, ParseError, parse_duration};
pub use ls::{LsRow, ResourceType, Table, format_table};

use crate::cloud::{Cloud, CloudError, ErrorKind, Op, Outcome, answered_id};
use crate::sys::{self, Clock, FileLock};
use async_trait::async_trait;
use converge_core::desired::Tags;
use converge_core::elb::BalancerType;
use converge_core::ids::{
    BalancerName, BucketName, DistributionId, ImageId, InstanceId, ParameterName, ResourceName,
    SnapshotId, SubnetId, VolumeId, VpcId, Zone,
};
use converge_core::net::Ipv4Cidr;
use converge_core::observed::{
    Member, Observed, ObservedDistribution, ObservedInstance, ObservedSnapshot, ObservedSubnet,
    ObservedVolume,
};
use converge_core::observed::{ObservedImage, ObservedObject};
use ops::{Ctx, Errs};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use world::{Termination, World};

/// The world file's name in the state directory.
pub const STATE_FILE: &str = "local-cloud.json";
/// The lock file's name in the state directory.
pub const LOCK_FILE: &str = "local-cloud.lock";

/// The local cloud: a simulated region, shared through a file by every
/// process that opens the same state directory. Cheap to clone; clones
/// share everything.
#[derive(Clone, Debug)]
pub struct LocalCloud {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    store: Option<Store>,
    config: LocalConfig,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

/// The files of a world kept on disk.
#[derive(Debug)]
struct Store {
    dir: PathBuf,
    path: PathBuf,
    lock: File,
}

#[derive(Debug)]
struct Inner {
    /// The world as last read or written, and the file bytes it came from
    /// (`None`: there was no file). For an in-memory cloud, the world.
    cache: Option<(Option<Vec<u8>>, World)>,
    /// This process's random choices (throttling).
    rng: fastrand::Rng,
    /// Successful mutating calls so far, for `crash_after`.
    mutations: u64,
    /// Calls made through this value so far, throttled ones included, by
    /// operation ([`Cloud::api_calls`]).
    calls: BTreeMap<&'static str, u64>,
}

/// An error of the local cloud itself (its file), as opposed to a refusal
/// of the simulated region, which is a [`CloudError`].
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// Reading, writing or locking a file failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done (`read`, `lock`, …).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The state file is not valid JSON of the expected shape.
    #[error("{} is not a valid local cloud state file (move it away to start a new world)", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The state file was written by an incompatible version of converge.
    #[error(
        "{} has local cloud format {found:?}, this converge reads {expected:?}",
        path.display()
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// What it holds (`converge-local-cloud v2`).
        found: String,
        /// What this build reads.
        expected: String,
    },
    /// No such instance (for `converge local terminate`): the ID as
    /// given, which may not even be well formed.
    #[error("the local cloud holds no instance {0}")]
    NoSuchInstance(String),
    /// The instance is terminated already.
    #[error("instance {0} is already terminated")]
    AlreadyTerminated(InstanceId),
    /// The simulated region refused a change made outside any stack
    /// (`converge local add|remove`), as its service would.
    #[error(transparent)]
    Refused(#[from] CloudError),
}

/// A local operation that answered the wrong kind of outcome (a bug).
fn unexpected(op: &'static str, other: &Outcome) -> CloudError {
    CloudError::new(
        ErrorKind::Invalid,
        op,
        "Unexpected",
        format!("{op} answered {other:?}"),
    )
}

impl LocalError {
    fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LocalError {
        let path = path.to_owned();
        move |source| LocalError::Io {
            action,
            path,
            source,
        }
    }

    /// As a cloud error naming `operation`: file trouble is `Unavailable`
    /// (retrying may help), a bad file `Invalid`.
    fn into_cloud(self, operation: &'static str) -> CloudError {
        let kind = match &self {
            LocalError::Io { .. } => ErrorKind::Unavailable,
            LocalError::NoSuchInstance(_) => ErrorKind::NotFound,
            LocalError::Refused(e) => e.kind,
            _ => ErrorKind::Invalid,
        };
        let mut message = self.to_string();
        let mut source = std::error::Error::source(&self);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        CloudError::new(kind, operation, "LocalStateError", message)
    }
}

impl LocalCloud {
    /// Opens (or prepares) the world kept in `state_dir`, creating the
    /// directory if needed. The state file itself is created by the first
    /// change; an existing one is checked now, so a damaged file is
    /// reported before anything else happens.
    pub fn open(
        state_dir: &Path,
        config: LocalConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<LocalCloud, LocalError> {
        let existed = state_dir.is_dir();
        fs::create_dir_all(state_dir).map_err(LocalError::io("create", state_dir))?;
        if !existed {
            // Like `.terraform/`, the world is local and not for version
            // control. Best effort: the directory works without it.
            let _ = fs::write(state_dir.join(".gitignore"), "*\n");
        }
        let lock_path = state_dir.join(LOCK_FILE);
        let lock = sys::open_lock_file(&lock_path).map_err(LocalError::io("open", &lock_path))?;
        let store = Store {
            dir: state_dir.to_owned(),
            path: state_dir.join(STATE_FILE),
            lock,
        };
        let cloud = Self::build(Some(store), config, clock);
        cloud.shared.read(|_, _| ())?;
        Ok(cloud)
    }

    /// A world that lives only in this value (and its clones): no file, no
    /// lock. For tests that need speed rather than persistence.
    pub fn in_memory(config: LocalConfig, clock: Arc<dyn Clock>) -> LocalCloud {
        Self::build(None, config, clock)
    }

    fn build(store: Option<Store>, config: LocalConfig, clock: Arc<dyn Clock>) -> LocalCloud {
        let rng = match config.faults.seed {
            Some(s) => fastrand::Rng::with_seed(s),
            None => fastrand::Rng::new(),
        };
        LocalCloud {
            shared: Arc::new(Shared {
                store,
                config,
                clock,
                inner: Mutex::new(Inner {
                    cache: None,
                    rng,
                    mutations: 0,
                    calls: BTreeMap::new(),
                }),
            }),
        }
    }

    /// The settings this value was opened with.
    pub fn config(&self) -> &LocalConfig {
        &self.shared.config
    }

    /// The state file, unless the world is in memory.
    pub fn state_file(&self) -> Option<&Path> {
        self.shared.store.as_ref().map(|s| s.path.as_path())
    }

    /// Every resource in the world, in every region and stack, one row
    /// each, sorted by type and ID. Faults do not apply.
    pub fn list(&self) -> Result<Vec<LsRow>, LocalError> {
        self.shared.read(|w, cx| ls::rows(w, cx.now))
    }

    /// How far the world's clock is ahead of the host's.
    pub fn offset(&self) -> Result<jiff::SignedDuration, LocalError> {
        self.shared
            .read(|w, _| jiff::SignedDuration::from_secs(w.clock_offset_s))
    }

    /// Moves the world's clock forward by `by` for every later call
    /// (`converge local advance`); answers the new offset. Everything that
    /// waits on time (boots, schedules, snapshot schedules, `minUptime`,
    /// DNS cutovers) sees the later moment.
    pub fn advance(&self, by: std::time::Duration) -> Result<jiff::SignedDuration, LocalError> {
        let secs = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
        let r = self.shared.write(|w, _| {
            w.clock_offset_s = w.clock_offset_s.saturating_add(secs);
            Ok::<_, CloudError>(jiff::SignedDuration::from_secs(w.clock_offset_s))
        })?;
        r.map_err(LocalError::Refused)
    }

    /// Creates a public hosted zone outside any stack (`converge local add
    /// zone`), by CreateHostedZone's rules; answers its ID.
    pub fn add_zone(&self, domain: &str) -> Result<String, LocalError> {
        let r = self.shared.write(|w, cx| {
            let reference = format!("converge-local-add:{}", w.next_hex(16));
            let op = Op::CreateHostedZone {
                domain: domain.to_owned(),
                caller_reference: reference,
                tags: Tags::new(),
            };
            match ops::act(w, &op, cx)? {
                Outcome::Zone { id, .. } => Ok(id),
                other => Err(unexpected("CreateHostedZone", &other)),
            }
        });
        r?.map_err(LocalError::Refused)
    }

    /// Creates a record set in the public zone of `zone` (a domain or a
    /// zone ID) outside any stack (`converge local add record`), by
    /// ChangeResourceRecordSets' rules: the "existing" records of a
    /// migration, with no ownership mark.
    pub fn add_record(
        &self,
        zone: &str,
        name: &str,
        rtype: converge_core::route53::RecordType,
        values: &[String],
        ttl: u32,
    ) -> Result<(), LocalError> {
        let r = self.shared.write(|w, cx| {
            let e = Errs("ChangeResourceRecordSets");
            let domain = converge_core::route53::domain(zone).unwrap_or_else(|_| zone.to_owned());
            let id = w
                .hosted_zones
                .values()
                .find(|z| z.id == zone || z.domain == domain)
                .map(|z| z.id.clone())
                .ok_or_else(|| {
                    e.not_found(
                        "NoSuchHostedZone",
                        format!("No hosted zone found with ID or domain: {zone}"),
                    )
                })?;
            let name = converge_core::route53::domain(name)
                .map_err(|m| e.invalid("InvalidChangeBatch", m))?;
            let mut vals = Vec::new();
            for v in values {
                vals.push(
                    converge_core::route53::value(rtype, v)
                        .map_err(|m| e.invalid("InvalidChangeBatch", m))?,
                );
            }
            vals.sort();
            let set = converge_core::route53::RecordSet {
                name,
                rtype,
                ttl: Some(ttl),
                values: vals,
                alias: None,
            };
            let op = Op::ChangeRecordSets {
                zone: id,
                changes: vec![converge_core::route53::RecordChange {
                    action: converge_core::route53::ChangeAction::Create,
                    set,
                }],
            };
            ops::act(w, &op, cx).map(|_| ())
        });
        r?.map_err(LocalError::Refused)
    }

    /// Makes a VPC outside any stack (`converge local add vpc`), with
    /// subnets, by the rules CreateVpc and CreateSubnet follow; returns
    /// their IDs. Nothing is made if any of it is refused.
    pub fn add_vpc(
        &self,
        cidr: Ipv4Cidr,
        subnets: &[(Zone, Ipv4Cidr)],
    ) -> Result<(VpcId, Vec<SubnetId>), LocalError> {
        let r = self.shared.write(|w, cx| {
            let tags = Tags::new();
            let vpc = match ops::act(
                w,
                &Op::CreateVpc {
                    cidr,
                    tags: tags.clone(),
                },
                cx,
            )? {
                Outcome::Vpc(v) => v,
                other => return Err(unexpected("CreateVpc", &other)),
            };
            let mut ids = Vec::new();
            for (zone, block) in subnets {
                let op = Op::CreateSubnet {
                    vpc: vpc.clone(),
                    zone: zone.clone(),
                    cidr: *block,
                    tags: tags.clone(),
                };
                match ops::act(w, &op, cx)? {
                    Outcome::Subnet(s) => ids.push(s),
                    other => return Err(unexpected("CreateSubnet", &other)),
                }
            }
            Ok((vpc, ids))
        });
        r?.map_err(LocalError::Refused)
    }

    /// Removes the region's default VPC (`converge local remove
    /// default-vpc`), as an account without one (an Organizations landing
    /// zone) is; returns its ID. Refused while anything is in it.
    pub fn remove_default_vpc(&self) -> Result<VpcId, LocalError> {
        let r = self.shared.write(|w, cx| {
            let e = ops::Errs("DeleteVpc");
            let Some(vpc) = w.default_vpc(cx.region) else {
                return Err(e.not_found(
                    "InvalidVpcID.NotFound",
                    format!("{} has no default VPC", cx.region),
                ));
            };
            let in_use = w.groups.values().any(|g| w.group_vpc(g).as_ref() == Some(&vpc))
                || w.instances
                    .values()
                    .any(|i| !i.is_gone(cx.now) && w.instance_vpc(i).as_ref() == Some(&vpc));
            if in_use {
                return Err(e.state(
                    "DependencyViolation",
                    format!("The vpc '{vpc}' has dependencies (groups or instances) and cannot be deleted."),
                ));
            }
            w.no_default_vpc.insert(cx.region.to_owned());
            Ok(vpc)
        });
        r?.map_err(LocalError::Refused)
    }

    /// Loses an instance as a crash would: it is terminated at once, its
    /// volumes are detached and balancers drop it. Works in any region;
    /// faults do not apply.
    pub fn lose_instance(&self, id: &InstanceId) -> Result<(), LocalError> {
        let r = self.shared.write(|w, cx| {
            let Some(i) = w.instances.get_mut(id).filter(|i| !i.purged(cx.now)) else {
                return Err(Lose::NoSuch);
            };
            if i.is_gone(cx.now) {
                return Err(Lose::Gone);
            }
            i.termination = Some(Termination {
                requested_at: cx.now,
                terminated_at: cx.now,
            });
            Ok(())
        });
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(Lose::NoSuch)) => Err(LocalError::NoSuchInstance(id.to_string())),
            Ok(Err(Lose::Gone)) => Err(LocalError::AlreadyTerminated(id.clone())),
            Err(e) => Err(e),
        }
    }

    /// Creates an IAM instance profile (as `iam create-instance-profile`);
    /// answers its ARN.
    pub fn add_instance_profile(&self, name: &str) -> Result<String, LocalError> {
        let e = Errs("CreateInstanceProfile");
        Ok(self
            .shared
            .write(|w, cx| ops::iam::create_profile(w, &e, name, cx.now))??)
    }

    /// Deletes an IAM instance profile; answers its ARN.
    pub fn remove_instance_profile(&self, name: &str) -> Result<String, LocalError> {
        let e = Errs("DeleteInstanceProfile");
        Ok(self
            .shared
            .write(|w, cx| ops::iam::delete_profile(w, &e, name, cx.now))??)
    }

    /// Requests an ACM certificate for `domains` in the cloud's region,
    /// issued at once (`converge local add certificate`); answers its ARN,
    /// which HTTPS, SSL and TLS listeners may then name.
    pub fn add_certificate(&self, domains: &[String]) -> Result<String, LocalError> {
        let e = Errs("RequestCertificate");
        let region = self.config().region.clone();
        Ok(self
            .shared
            .write(|w, cx| ops::add_certificate(w, &e, &region, domains, cx.now))??)
    }

    /// Creates or overwrites an SSM `String` parameter in the cloud's
    /// region (as `ssm put-parameter --overwrite`); answers its version.
    /// The name is held to SSM's naming rules.
    pub fn put_parameter(&self, name: &str, value: &str) -> Result<u64, LocalError> {
        let e = Errs("PutParameter");
        if let Err(m) = crate::manifest::check::ssm_parameter(name) {
            return Err(e.invalid("ValidationException", m).into());
        }
        let region = self.config().region.clone();
        Ok(self
            .shared
            .write(|w, cx| ops::ssm::put_parameter(w, &e, &region, name, value, cx.now))??)
    }

    /// Deletes an SSM parameter from the cloud's region.
    pub fn delete_parameter(&self, name: &str) -> Result<(), LocalError> {
        let e = Errs("DeleteParameter");
        let region = self.config().region.clone();
        Ok(self
            .shared
            .write(|w, _| ops::ssm::delete_parameter(w, &e, &region, name))??)
    }

    /// Runs a synchronous call of the shared state on the blocking pool,
    /// so that file I/O and lock waits never stall the async runtime.
    async fn blocking<T, F>(&self, operation: &'static str, f: F) -> Result<T, CloudError>
    where
        T: Send + 'static,
        F: FnOnce(&Shared) -> Result<T, CloudError> + Send + 'static,
    {
        let shared = self.shared.clone();
        match tokio::task::spawn_blocking(move || f(&shared)).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(CloudError::new(
                ErrorKind::Unavailable,
                operation,
                "LocalStateError",
                format!("the local cloud call was cancelled: {e}"),
            )),
        }
    }
}

/// Why `lose_instance` refused.
enum Lose {
    NoSuch,
    Gone,
}

impl Shared {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            now: self.clock.now(),
            region: &self.config.region,
            delays: &self.config.delays,
            lag: self.config.faults.lag,
        }
    }

    /// Counts the call, and fails it with `RequestLimitExceeded` at the
    /// throttling rate.
    fn throttle(&self, inner: &mut Inner, operation: &'static str) -> Result<(), CloudError> {
        *inner.calls.entry(operation).or_default() += 1;
        let p = self.config.faults.throttle;
        if p > 0.0 && inner.rng.f64() < p {
            return Err(Errs(operation).make(
                ErrorKind::Throttled,
                "RequestLimitExceeded",
                "Request limit exceeded.",
            ));
        }
        Ok(())
    }

    /// A read under a shared lock.
    fn read<T>(&self, f: impl FnOnce(&World, &Ctx<'_>) -> T) -> Result<T, LocalError> {
        let mut inner = self.inner();
        let cx = self.ctx();
        match &self.store {
            None => {
                let (_, world) = inner
                    .cache
                    .get_or_insert_with(|| (None, World::new(self.seed())));
                Ok(f(world, &world.offset(cx)))
            }
            Some(store) => {
                let _guard = FileLock::shared(&store.lock)
                    .map_err(LocalError::io("lock", &store.dir.join(LOCK_FILE)))?;
                let world = self.load(store, &mut inner)?;
                Ok(f(world, &world.offset(cx)))
            }
        }
    }

    /// A change under an exclusive lock: the world is settled to now,
    /// changed by `f` and, if `f` succeeds and changed anything, saved.
    fn write<T, E>(
        &self,
        f: impl FnOnce(&mut World, &Ctx<'_>) -> Result<T, E>,
    ) -> Result<Result<T, E>, LocalError> {
        let mut inner = self.inner();
        let cx = self.ctx();
        match &self.store {
            None => {
                let (_, world) = inner
                    .cache
                    .get_or_insert_with(|| (None, World::new(self.seed())));
                let cx = world.offset(cx);
                let mut next = world.clone();
                next.settle(cx.now);
                let r = f(&mut next, &cx);
                if r.is_ok() {
                    *world = next;
                }
                Ok(r)
            }
            Some(store) => {
                let _guard = FileLock::exclusive(&store.lock)
                    .map_err(LocalError::io("lock", &store.dir.join(LOCK_FILE)))?;
                let world = self.load(store, &mut inner)?;
                let cx = world.offset(cx);
                let mut next = world.clone();
                next.settle(cx.now);
                let r = f(&mut next, &cx);
                if r.is_ok() && next != *world {
                    let mut bytes =
                        serde_json::to_vec_pretty(&next).map_err(|e| LocalError::Io {
                            action: "encode",
                            path: store.path.clone(),
                            source: io::Error::other(e),
                        })?;
                    // Cached exactly as written, so the next read of an
                    // unchanged file is a cache hit.
                    bytes.push(b'\n');
                    store.save(&bytes)?;
                    inner.cache = Some((Some(bytes), next));
                }
                Ok(r)
            }
        }
    }

    /// One cloud operation: throttled, carried out, saved, counted.
    fn act(&self, op: &Op) -> Result<Outcome, CloudError> {
        self.throttle(&mut self.inner(), op.name())?;
        let r = self
            .write(|w, cx| ops::act(w, op, cx))
            .map_err(|e| e.into_cloud(op.name()))?;
        let outcome = r?;
        let n = {
            let mut inner = self.inner();
            inner.mutations += 1;
            inner.mutations
        };
        if self.config.faults.crash_after == Some(n) {
            // The fault asked for: die like a killed process, after the
            // change is saved and before anyone hears of it.
            eprintln!(
                "converge local cloud: crash_after={n}: aborting after {}",
                op.name()
            );
            std::process::abort();
        }
        Ok(outcome)
    }

    /// A read for a trait method: throttled, file errors as cloud errors.
    fn describe<T>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&World, &Ctx<'_>) -> Result<T, CloudError>,
    ) -> Result<T, CloudError> {
        self.throttle(&mut self.inner(), operation)?;
        self.read(f).map_err(|e| e.into_cloud(operation))?
    }

    fn seed(&self) -> u64 {
        self.config.faults.seed.unwrap_or(0)
    }

    /// The world in the file, parsed again only if the file changed since
    /// this process last read or wrote it.
    fn load<'a>(&self, store: &Store, inner: &'a mut Inner) -> Result<&'a World, LocalError> {
        let bytes = match fs::read(&store.path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(LocalError::io("read", &store.path)(e)),
        };
        let fresh = matches!(&inner.cache, Some((cached, _)) if *cached == bytes);
        if !fresh {
            let world = match &bytes {
                None => World::new(self.seed()),
                Some(b) => parse(&store.path, b)?,
            };
            inner.cache = Some((bytes, world));
        }
        // Filled above when it was not fresh.
        let seed = self.seed();
        Ok(&inner
            .cache
            .get_or_insert_with(|| (None, World::new(seed)))
            .1)
    }
}

/// Parses a world file, checking its format and version first so that an
/// incompatible file gets a clear message.
fn parse(path: &Path, bytes: &[u8]) -> Result<World, LocalError> {
    #[derive(serde::Deserialize)]
    struct Header {
        format: String,
        version: u32,
    }
    let corrupt = |source| LocalError::Corrupt {
        path: path.to_owned(),
        source,
    };
    let h: Header = serde_json::from_slice(bytes).map_err(corrupt)?;
    if h.format != world::FORMAT || h.version != world::VERSION {
        return Err(LocalError::Version {
            path: path.to_owned(),
            found: format!("{} v{}", h.format, h.version),
            expected: format!("{} v{}", world::FORMAT, world::VERSION),
        });
    }
    serde_json::from_slice(bytes).map_err(corrupt)
}

impl Store {
    /// Replaces the state file atomically ([`sys::write_atomic_locked`]), under
    /// the exclusive lock.
    fn save(&self, bytes: &[u8]) -> Result<(), LocalError> {
        sys::write_atomic_locked(&self.path, bytes).map_err(LocalError::io("replace", &self.path))
    }
}

#[async_trait]
impl Cloud for LocalCloud {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn observe(&self, stack: &ResourceName) -> Result<Observed, CloudError> {
        let stack = stack.clone();
        self.blocking("Observe", move |s| {
            s.describe("Observe", |w, cx| view::observe(w, &stack, cx))
        })
        .await
    }

    async fn act(&self, op: &Op) -> Result<Outcome, CloudError> {
        let op = op.clone();
        self.blocking(op.name(), move |s| s.act(&op)).await
    }

    async fn instances(&self, ids: &[InstanceId]) -> Result<Vec<ObservedInstance>, CloudError> {
        let ids = ids.to_vec();
        self.blocking("DescribeInstances", move |s| {
            s.describe("DescribeInstances", |w, cx| view::instances(w, &ids, cx))
        })
        .await
    }

    async fn subnets(&self, ids: &[SubnetId]) -> Result<Vec<ObservedSubnet>, CloudError> {
        let ids = ids.to_vec();
        self.blocking("DescribeSubnets", move |s| {
            s.describe("DescribeSubnets", |w, cx| Ok(view::subnets(w, &ids, cx)))
        })
        .await
    }

    async fn volumes(&self, ids: &[VolumeId]) -> Result<Vec<ObservedVolume>, CloudError> {
        let ids = ids.to_vec();
        self.blocking("DescribeVolumes", move |s| {
            s.describe("DescribeVolumes", |w, cx| Ok(view::volumes(w, &ids, cx)))
        })
        .await
    }

    async fn snapshot(&self, id: &SnapshotId) -> Result<Option<ObservedSnapshot>, CloudError> {
        let id = id.clone();
        self.blocking("DescribeSnapshots", move |s| {
            s.describe("DescribeSnapshots", |w, cx| {
                Ok(view::snapshot_by_id(w, &id, cx))
            })
        })
        .await
    }

    fn tracks_classic_draining(&self) -> bool {
        true
    }

    async fn balancer_members(
        &self,
        name: &BalancerName,
        kind: BalancerType,
    ) -> Result<Vec<Member>, CloudError> {
        let name = name.to_string();
        if kind == BalancerType::Classic {
            const OP: &str = "DescribeInstanceHealth";
            return self
                .blocking(OP, move |s| {
                    s.describe(OP, |w, cx| {
                        let b = ops::find_balancer(w, cx, &Errs(OP), &name)?;
                        Ok(view::balancer_members(w, b, cx))
                    })
                })
                .await;
        }
        const OP: &str = "DescribeTargetHealth";
        self.blocking(OP, move |s| {
            s.describe(OP, |w, cx| {
                let b = ops::elbv2::find_balancer_v2(w, cx, &Errs(OP), &name)?;
                Ok(view::balancer_v2_members(w, b, cx))
            })
        })
        .await
    }

    async fn distribution(
        &self,
        id: &DistributionId,
    ) -> Result<Option<ObservedDistribution>, CloudError> {
        let id = id.clone();
        self.blocking("GetDistribution", move |s| {
            s.describe("GetDistribution", |w, cx| {
                Ok(view::distribution(w, &id, cx))
            })
        })
        .await
    }

    async fn parameters(
        &self,
        names: &[ParameterName],
    ) -> Result<BTreeMap<ParameterName, String>, CloudError> {
        const OP: &str = "GetParameters";
        let mut out = BTreeMap::new();
        // As on AWS: at most ten names a call.
        for batch in names.chunks(ops::ssm::MAX_NAMES) {
            let batch: Vec<String> = batch.iter().map(ToString::to_string).collect();
            let (found, _invalid) = self
                .blocking(OP, move |s| {
                    s.describe(OP, |w, cx| {
                        ops::ssm::get_parameters(w, cx, &Errs(OP), &batch)
                    })
                })
                .await?;
            for (n, v) in found {
                out.insert(answered_id(OP, n)?, v);
            }
        }
        Ok(out)
    }

    async fn dns_zones(
        &self,
        stack: &ResourceName,
        domains: &[String],
    ) -> Result<Vec<converge_core::route53::ObservedZone>, CloudError> {
        const OP: &str = "ListResourceRecordSets";
        let stack = stack.to_string();
        let domains = domains.to_vec();
        self.blocking(OP, move |s| {
            s.describe(OP, |w, _| Ok(ops::route53::zones(w, &stack, &domains)))
        })
        .await
    }

    async fn certificate(
        &self,
        region: &str,
        arn: &str,
    ) -> Result<Option<converge_core::acm::ObservedCertificate>, CloudError> {
        const OP: &str = "DescribeCertificate";
        let (region, arn) = (region.to_owned(), arn.to_owned());
        self.blocking(OP, move |s| {
            s.describe(OP, |w, cx| {
                Ok(w.certificates
                    .get(&arn)
                    .filter(|c| c.region == region)
                    .map(|c| ops::acm::observed(w, c, cx)))
            })
        })
        .await
    }

    async fn change_in_sync(&self, id: &str) -> Result<bool, CloudError> {
        const OP: &str = "GetChange";
        let id = id.to_owned();
        self.blocking(OP, move |s| {
            s.describe(OP, |w, cx| {
                ops::route53::change_in_sync(w, cx.now, &Errs(OP), &id)
            })
        })
        .await
    }

    async fn bucket_objects(
        &self,
        bucket: &BucketName,
        prefix: &str,
    ) -> Result<Vec<ObservedObject>, CloudError> {
        const OP: &str = "ListObjectsV2";
        let (bucket, prefix) = (bucket.to_string(), prefix.to_owned());
        self.blocking(OP, move |s| {
            s.describe(OP, |w, _| {
                view::bucket_objects(w, &bucket, &prefix).ok_or_else(|| {
                    CloudError::new(
                        ErrorKind::NotFound,
                        OP,
                        "NoSuchBucket",
                        format!("The specified bucket does not exist: {bucket}"),
                    )
                })
            })
        })
        .await
    }

    async fn invalidation_completed(
        &self,
        distribution: &DistributionId,
        id: &str,
    ) -> Result<bool, CloudError> {
        const OP: &str = "GetInvalidation";
        let (distribution, id) = (distribution.clone(), id.to_owned());
        self.blocking(OP, move |s| {
            s.describe(OP, |w, cx| {
                ops::cloudfront::invalidation_completed(w, cx.now, &Errs(OP), &distribution, &id)
            })
        })
        .await
    }

    async fn clock_offset(&self) -> Result<jiff::SignedDuration, CloudError> {
        let me = self.clone();
        self.blocking("Clock", move |_| {
            me.offset().map_err(|e| e.into_cloud("Clock"))
        })
        .await
    }

    async fn images(
        &self,
        ids: &[ImageId],
    ) -> Result<BTreeMap<ImageId, ObservedImage>, CloudError> {
        let ids = ids.to_vec();
        self.blocking("DescribeImages", move |s| {
            s.describe("DescribeImages", |_, _| Ok(view::images(&ids)))
        })
        .await
    }

    /// The calls made through this value (and its clones) in this
    /// process, throttled ones included, under the service `local`: one
    /// `Observe` stands for the many describes AWS would take.
    fn api_calls(&self) -> Vec<crate::cloud::ApiCall> {
        self.shared
            .inner()
            .calls
            .iter()
            .map(|(op, n)| crate::cloud::ApiCall {
                service: "local".to_owned(),
                operation: (*op).to_owned(),
                calls: *n,
            })
            .collect()
    }
}
