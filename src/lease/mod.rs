//! One writer per stack: a lease that a reconciler (or an `apply`) takes
//! before acting on a stack, so that two of them never act at once.
//!
//! A lease is a small record — the stack, the holder's ID
//! ([`HolderId`]: `hostname-pid-random`), when it was taken and when it
//! expires — kept where every writer of the stack can see it. Taking it
//! ([`Lease::acquire`]) succeeds when nobody holds it, when its holder's
//! time ran out (a crashed process's lease expires after its TTL, default
//! [`DEFAULT_TTL`]), or when this holder has it already; otherwise it fails
//! with [`LeaseError::Held`], which says who holds it and until when. The
//! holder renews it on every pass ([`Lease::renew`], which fails with
//! [`LeaseError::Lost`] once someone else holds it: stop acting then) and
//! releases it when it stops ([`Lease::release`]). [`acquire_waiting`]
//! waits for a held lease to be released or to expire.
//!
//! Every change is a read-modify-write that cannot interleave with
//! another's: [`LocalLease`] (the local cloud) does it under an exclusive
//! OS lock on a lock file in the state directory and replaces the lease
//! file atomically; the AWS lease ([`s3::S3Lease`])
//! does it with S3 conditional writes.
//!
//! Time comes from an injected [`Clock`], so tests expire leases with
//! [`crate::sys::ManualClock`]. Holders on different machines compare
//! their own clocks with the expiry another wrote: the TTL must be well
//! above the clock skew between them (seconds, against a TTL of a minute).

pub mod s3;

use crate::sys::{self, Clock, FileLock};
use async_trait::async_trait;
use converge_core::ids::ResourceName;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long a lease lasts without renewal unless told otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// How often [`acquire_waiting`] tries again.
pub const DEFAULT_POLL: Duration = Duration::from_secs(1);

/// Who holds a lease: `hostname-pid-random`, unique per process and
/// readable in messages.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HolderId(pub String);

impl HolderId {
    /// A fresh ID for this process: its host name, its PID and a random
    /// suffix (so that two leases in one process differ too).
    pub fn generate() -> Self {
        Self(format!(
            "{}-{}-{:08x}",
            hostname(),
            std::process::id(),
            fastrand::u32(..)
        ))
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this holder was a process on this host that is gone (its
    /// PID no longer in `/proc`, or a zombie: killed, not yet reaped by
    /// its parent): a killed `apply` or reconciler whose lease on the
    /// local cloud need not be waited out. False when unsure (another
    /// host, an ID not made by [`HolderId::generate`], no `/proc`). A PID
    /// reused since by another process reads as alive: the lease is then
    /// waited out, which is safe.
    pub fn is_dead_process_here(&self) -> bool {
        let mut parts = self.0.rsplitn(3, '-');
        let (Some(_random), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            return false;
        };
        if host != hostname() || pid == std::process::id() || !Path::new("/proc/self").exists() {
            return false;
        }
        match fs::read_to_string(format!("/proc/{pid}/stat")) {
            // `PID (COMMAND) STATE …`; the command may hold `)` itself.
            Ok(stat) => stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| matches!(state, "Z" | "X")),
            Err(_) => !Path::new(&format!("/proc/{pid}")).exists(),
        }
    }
}

impl fmt::Display for HolderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for HolderId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// The machine's host name, without a dependency: `HOSTNAME`, else the
/// kernel's, else `localhost`; only characters safe in an ID are kept.
fn hostname() -> String {
    let raw = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| fs::read_to_string("/etc/hostname").ok())
        .unwrap_or_default();
    let clean: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .take(63)
        .collect();
    if clean.is_empty() {
        "localhost".to_owned()
    } else {
        clean
    }
}

/// A lease as stored (JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaseRecord {
    /// The stack the lease is for.
    pub stack: ResourceName,
    /// Who holds it.
    pub holder: HolderId,
    /// When this holder took it.
    pub acquired_at: Timestamp,
    /// When it was last taken or renewed.
    pub renewed_at: Timestamp,
    /// When it lapses unless renewed.
    pub expires_at: Timestamp,
}

impl LeaseRecord {
    /// Whether the lease has lapsed at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        now >= self.expires_at
    }
}

/// A lease just taken (or taken again by its holder).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acquired {
    /// This holder.
    pub holder: HolderId,
    /// When the lease lapses unless renewed.
    pub expires_at: Timestamp,
    /// The holder whose expired lease was taken over (a crashed or stuck
    /// process), if any.
    pub took_over: Option<HolderId>,
}

/// Why a lease could not be taken, renewed or released.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Someone else holds an unexpired lease on the stack.
    #[error(
        "stack {stack} is being changed by {holder} (its lease runs until {expires_at} unless renewed); \
         wait for it to finish or stop it"
    )]
    Held {
        /// The stack.
        stack: ResourceName,
        /// Who holds it.
        holder: HolderId,
        /// Until when.
        expires_at: Timestamp,
    },
    /// This holder does not hold the lease (any more): it expired and was
    /// taken over, or was never taken. Whoever sees this must stop acting.
    #[error("the lease on stack {stack} is not held by {me}: {}", match holder {
        Some(h) => format!("{h} holds it"),
        None => "nobody holds it".to_owned(),
    })]
    Lost {
        /// The stack.
        stack: ResourceName,
        /// This holder.
        me: HolderId,
        /// Who holds it now, if anyone.
        holder: Option<HolderId>,
    },
    /// Writers kept changing the lease between this holder's read and
    /// write; try again later.
    #[error(
        "the lease on stack {stack} kept changing while being written ({attempts} attempts); try again"
    )]
    Contended {
        /// The stack.
        stack: ResourceName,
        /// Attempts made.
        attempts: u32,
    },
    /// The stack name cannot name a lease.
    #[error("stack name {0:?} cannot name a lease: expected lowercase letters, digits and hyphens")]
    InvalidStack(String),
    /// A lease file could not be read, written or locked.
    #[error("cannot {action} lease file {}", path.display())]
    Io {
        /// What was being done (`lock`, `read`, `replace`, …).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A stored lease is not a valid record.
    #[error("{location} is not a valid lease record (remove it if no converge runs on this stack)")]
    Corrupt {
        /// The file or object.
        location: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A request to the cloud that stores the lease failed.
    #[error("cannot {action} lease {location}")]
    Cloud {
        /// What was being done (`read`, `write`, `delete`).
        action: &'static str,
        /// The object (`s3://bucket/key`).
        location: String,
        /// Why.
        #[source]
        source: crate::cloud::CloudError,
    },
}

impl LeaseError {
    /// Whether trying again later may succeed without anyone acting: the
    /// store was briefly unavailable or contended. [`LeaseError::Held`] is
    /// not transient in this sense (someone must release it or let it
    /// expire), nor is [`LeaseError::Lost`] (stop acting).
    pub fn is_transient(&self) -> bool {
        match self {
            LeaseError::Contended { .. } => true,
            LeaseError::Cloud { source, .. } => source.is_retryable(),
            LeaseError::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            LeaseError::Held { .. }
            | LeaseError::Lost { .. }
            | LeaseError::InvalidStack(_)
            | LeaseError::Corrupt { .. } => false,
        }
    }
}

/// One writer per stack. Implementations make every change atomic with
/// respect to other holders of the same stack.
#[async_trait]
pub trait Lease: Send + Sync {
    /// This holder.
    fn holder(&self) -> &HolderId;

    /// The stack.
    fn stack(&self) -> &ResourceName;

    /// How long the lease lasts without renewal.
    fn ttl(&self) -> Duration;

    /// Takes the lease: when free, when expired (taking it over), or when
    /// held by this holder already (which renews it). Fails with
    /// [`LeaseError::Held`] while another holder's lease runs.
    async fn acquire(&self) -> Result<Acquired, LeaseError>;

    /// Extends this holder's lease by the TTL from now. Fails with
    /// [`LeaseError::Lost`] when the lease is not this holder's: it was
    /// taken over after expiring, released, or never taken. A lapsed lease
    /// nobody took over yet is still this holder's and is renewed.
    async fn renew(&self) -> Result<(), LeaseError>;

    /// Gives the lease up. Nothing to do when nobody holds it; fails with
    /// [`LeaseError::Lost`], leaving it alone, when someone else does.
    async fn release(&self) -> Result<(), LeaseError>;

    /// The lease as stored now, whoever holds it (expired or not).
    async fn current(&self) -> Result<Option<LeaseRecord>, LeaseError>;
}

/// [`Lease::acquire`], trying again every [`DEFAULT_POLL`] while another
/// holder has it, for at most `timeout` (zero: once). Answers the last
/// [`LeaseError::Held`] when the time is up; other errors at once.
pub async fn acquire_waiting<L: Lease + ?Sized>(
    lease: &L,
    timeout: Duration,
) -> Result<Acquired, LeaseError> {
    acquire_waiting_every(lease, timeout, DEFAULT_POLL).await
}

/// [`acquire_waiting`] with its own polling interval.
pub async fn acquire_waiting_every<L: Lease + ?Sized>(
    lease: &L,
    timeout: Duration,
    poll: Duration,
) -> Result<Acquired, LeaseError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match lease.acquire().await {
            Err(e @ LeaseError::Held { .. }) => {
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    return Err(e);
                }
                tracing::info!(stack = %lease.stack(), error = %e, "waiting for the stack's lease");
                let wait = poll.max(Duration::from_millis(1)).min(deadline - now);
                tokio::time::sleep(wait).await;
            }
            r => return r,
        }
    }
}

/// A lease held for the length of one command (an `apply`, a `destroy`):
/// renewed in the background every third of its TTL until
/// [`Holding::release`]. If a renewal finds the lease lost (taken over
/// after this process stalled past the TTL), [`Holding::is_lost`] turns
/// true, [`Holding::lost_signal`] fires, and the command should stop
/// starting new work.
pub struct Holding {
    lease: Arc<dyn Lease>,
    lost: tokio::sync::watch::Receiver<bool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for Holding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Holding")
            .field("stack", self.lease.stack())
            .field("holder", self.lease.holder())
            .field("lost", &self.is_lost())
            .finish()
    }
}

impl Holding {
    /// Takes `lease` (waiting at most `wait` while another holder has it)
    /// and starts renewing it.
    pub async fn take(lease: Arc<dyn Lease>, wait: Duration) -> Result<Holding, LeaseError> {
        let acquired = acquire_waiting(lease.as_ref(), wait).await?;
        if let Some(previous) = &acquired.took_over {
            tracing::warn!(stack = %lease.stack(), %previous, "took the stack's lease over: its holder's time ran out or its process is gone");
        }
        let (lost_tx, lost) = tokio::sync::watch::channel(false);
        let every = (lease.ttl() / 3).max(Duration::from_millis(10));
        let renewer = {
            let lease = lease.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    match lease.renew().await {
                        Ok(()) => {}
                        Err(e) if e.is_transient() => {
                            tracing::warn!(stack = %lease.stack(), error = %e, "renewing the lease failed; trying again");
                        }
                        Err(e) => {
                            tracing::error!(stack = %lease.stack(), error = %e, "the stack's lease was lost");
                            let _ = lost_tx.send(true);
                            return;
                        }
                    }
                }
            })
        };
        Ok(Holding {
            lease,
            lost,
            renewer,
        })
    }

    /// Whether the lease was lost while held.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Turns true when the lease is lost: `wait_for(|lost| *lost)` answers
    /// `Ok` then, and `Err` once the lease is released without being lost.
    pub fn lost_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.lost.clone()
    }

    /// Stops renewing and gives the lease up.
    pub async fn release(self) -> Result<(), LeaseError> {
        self.renewer.abort();
        self.lease.release().await
    }
}

/// `now + ttl`, saturating.
fn expiry(now: Timestamp, ttl: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(ttl)
        .ok()
        .and_then(|d| now.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// The record `me` writes to take the lease, and whose expired lease that
/// takes over; or why it may not.
pub(crate) fn decide_acquire(
    current: Option<&LeaseRecord>,
    stack: &ResourceName,
    me: &HolderId,
    now: Timestamp,
    ttl: Duration,
) -> Result<(LeaseRecord, Option<HolderId>), LeaseError> {
    let fresh = |acquired_at| LeaseRecord {
        stack: stack.clone(),
        holder: me.clone(),
        acquired_at,
        renewed_at: now,
        expires_at: expiry(now, ttl),
    };
    match current {
        None => Ok((fresh(now), None)),
        Some(r) if r.holder == *me => Ok((fresh(r.acquired_at), None)),
        Some(r) if r.is_expired(now) => Ok((fresh(now), Some(r.holder.clone()))),
        Some(r) => Err(LeaseError::Held {
            stack: stack.clone(),
            holder: r.holder.clone(),
            expires_at: r.expires_at,
        }),
    }
}

/// The record `me` writes to renew its lease, or why it may not.
pub(crate) fn decide_renew(
    current: Option<&LeaseRecord>,
    stack: &ResourceName,
    me: &HolderId,
    now: Timestamp,
    ttl: Duration,
) -> Result<LeaseRecord, LeaseError> {
    match current {
        Some(r) if r.holder == *me => Ok(LeaseRecord {
            renewed_at: now,
            expires_at: expiry(now, ttl),
            ..r.clone()
        }),
        other => Err(lost(stack, me, other)),
    }
}

/// [`LeaseError::Lost`], naming whoever holds `current`.
pub(crate) fn lost(
    stack: &ResourceName,
    me: &HolderId,
    current: Option<&LeaseRecord>,
) -> LeaseError {
    LeaseError::Lost {
        stack: stack.clone(),
        me: me.clone(),
        holder: current.map(|r| r.holder.clone()),
    }
}

/// Checks that a stack name is safe in a file name or object key.
pub(crate) fn check_stack(stack: &ResourceName) -> Result<(), LeaseError> {
    let s = stack.as_str();
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(LeaseError::InvalidStack(s.to_owned()))
    }
}

/// The lease of a stack on the local cloud: `lease-<stack>.json` in the
/// state directory, changed only under an exclusive OS lock on
/// `lease-<stack>.lock` and replaced atomically (written to a temporary
/// file, synced, renamed). Cheap to clone; clones are the same holder.
#[derive(Clone, Debug)]
pub struct LocalLease {
    inner: Arc<LocalInner>,
}

#[derive(Clone, Debug)]
struct LocalInner {
    dir: PathBuf,
    path: PathBuf,
    lock: PathBuf,
    stack: ResourceName,
    holder: HolderId,
    ttl: Duration,
    clock: Arc<dyn Clock>,
}

impl LocalLease {
    /// The lease of `stack` in `state_dir` (created when first needed),
    /// for a fresh [`HolderId`], with [`DEFAULT_TTL`].
    pub fn new(
        state_dir: impl Into<PathBuf>,
        stack: &ResourceName,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, LeaseError> {
        check_stack(stack)?;
        let dir = state_dir.into();
        Ok(Self {
            inner: Arc::new(LocalInner {
                path: dir.join(format!("lease-{stack}.json")),
                lock: dir.join(format!("lease-{stack}.lock")),
                dir,
                stack: stack.clone(),
                holder: HolderId::generate(),
                ttl: DEFAULT_TTL,
                clock,
            }),
        })
    }

    /// The same lease with another TTL.
    pub fn with_ttl(self, ttl: Duration) -> Self {
        self.map(|i| i.ttl = ttl)
    }

    /// The same lease for another holder ID.
    pub fn with_holder(self, holder: HolderId) -> Self {
        self.map(|i| i.holder = holder)
    }

    fn map(self, f: impl FnOnce(&mut LocalInner)) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        f(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The lease file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on the blocking pool, under the exclusive lock, with the
    /// lease as stored.
    async fn locked<T, F>(&self, f: F) -> Result<T, LeaseError>
    where
        T: Send + 'static,
        F: FnOnce(&LocalInner, Option<LeaseRecord>) -> Result<T, LeaseError> + Send + 'static,
    {
        let inner = self.inner.clone();
        let task = tokio::task::spawn_blocking(move || {
            let file = inner.lock_file()?;
            let _lock = FileLock::exclusive(&file).map_err(inner.io("lock", &inner.lock))?;
            let current = inner.read()?;
            f(&inner, current)
        });
        match task.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(LeaseError::Io {
                action: "lock",
                path: self.inner.lock.clone(),
                source: io::Error::other(e),
            }),
        }
    }
}

impl LocalInner {
    fn io(&self, action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LeaseError {
        let path = path.to_path_buf();
        move |source| LeaseError::Io {
            action,
            path,
            source,
        }
    }

    /// The lock file, opened (and created) for locking.
    fn lock_file(&self) -> Result<File, LeaseError> {
        fs::create_dir_all(&self.dir).map_err(self.io("create the directory of", &self.dir))?;
        sys::open_lock_file(&self.lock).map_err(self.io("open", &self.lock))
    }

    fn read(&self) -> Result<Option<LeaseRecord>, LeaseError> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io("read", &self.path)(e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| LeaseError::Corrupt {
                location: self.path.display().to_string(),
                source,
            })
    }

    fn write(&self, record: &LeaseRecord) -> Result<(), LeaseError> {
        let mut bytes =
            serde_json::to_vec_pretty(record).map_err(|source| LeaseError::Corrupt {
                location: self.path.display().to_string(),
                source,
            })?;
        bytes.push(b'\n');
        sys::write_atomic_locked(&self.path, &bytes).map_err(self.io("replace", &self.path))
    }

    fn remove(&self) -> Result<(), LeaseError> {
        sys::remove_durably(&self.path).map_err(self.io("remove", &self.path))
    }
}

#[async_trait]
impl Lease for LocalLease {
    fn holder(&self) -> &HolderId {
        &self.inner.holder
    }

    fn stack(&self) -> &ResourceName {
        &self.inner.stack
    }

    fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    async fn acquire(&self) -> Result<Acquired, LeaseError> {
        self.locked(|l, current| {
            let now = l.clock.now();
            // The local cloud lives on this host: a holder that was a
            // process here and is gone (a killed apply) is not waited out.
            let current = current.map(|mut r| {
                if r.holder != l.holder && r.holder.is_dead_process_here() {
                    r.expires_at = r.expires_at.min(now);
                }
                r
            });
            let (record, took_over) =
                decide_acquire(current.as_ref(), &l.stack, &l.holder, now, l.ttl)?;
            l.write(&record)?;
            Ok(Acquired {
                holder: record.holder,
                expires_at: record.expires_at,
                took_over,
            })
        })
        .await
    }

    async fn renew(&self) -> Result<(), LeaseError> {
        self.locked(|l, current| {
            let now = l.clock.now();
            let record = decide_renew(current.as_ref(), &l.stack, &l.holder, now, l.ttl)?;
            l.write(&record)
        })
        .await
    }

    async fn release(&self) -> Result<(), LeaseError> {
        self.locked(|l, current| match current {
            None => Ok(()),
            Some(r) if r.holder == l.holder => l.remove(),
            Some(r) => Err(lost(&l.stack, &l.holder, Some(&r))),
        })
        .await
    }

    async fn current(&self) -> Result<Option<LeaseRecord>, LeaseError> {
        self.locked(|_, current| Ok(current)).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a panic is how a test fails

    use super::*;
    use crate::sys::ManualClock;

    #[test]
    fn only_a_gone_process_on_this_host_is_dead() {
        let me = HolderId::generate();
        assert!(!me.is_dead_process_here(), "{me}");
        // PIDs are below 2^22 on Linux: this one cannot be running.
        let gone = HolderId(format!("{}-{}-0000abcd", hostname(), 4_194_304 + 17));
        assert!(gone.is_dead_process_here(), "{gone}");
        let elsewhere = HolderId(format!("not-{}-{}-0000abcd", hostname(), 4_194_304 + 17));
        assert!(!elsewhere.is_dead_process_here());
        assert!(!HolderId("someone".into()).is_dead_process_here());
    }

    #[tokio::test]
    async fn a_holding_signals_a_lost_lease_and_not_a_released_one() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new("2026-03-09T12:00:00Z".parse().unwrap()));
        let stack = ResourceName::from("shop");
        let ttl = Duration::from_millis(60);
        let a = LocalLease::new(dir.path(), &stack, clock.clone())
            .unwrap()
            .with_ttl(ttl);
        let held = Holding::take(Arc::new(a), Duration::ZERO).await.unwrap();
        let mut signal = held.lost_signal();
        assert!(!held.is_lost());
        // A stalls past its TTL; B takes the stack over; A's next renewal
        // finds it lost.
        clock.advance(Duration::from_secs(1));
        let b = LocalLease::new(dir.path(), &stack, clock.clone()).unwrap();
        b.acquire().await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), signal.wait_for(|lost| *lost))
            .await
            .unwrap()
            .unwrap();
        assert!(held.is_lost());
        b.release().await.unwrap();

        // Released without being lost: the signal never fires.
        let c = LocalLease::new(dir.path(), &stack, clock)
            .unwrap()
            .with_ttl(ttl);
        let held = Holding::take(Arc::new(c), Duration::ZERO).await.unwrap();
        let mut signal = held.lost_signal();
        held.release().await.unwrap();
        assert!(signal.wait_for(|lost| *lost).await.is_err());
    }

    #[tokio::test]
    async fn a_dead_local_holder_is_taken_over_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new("2026-03-09T12:00:00Z".parse().unwrap()));
        let stack = ResourceName::from("shop");
        let gone = HolderId(format!("{}-{}-0000abcd", hostname(), 4_194_304 + 17));
        let dead = LocalLease::new(dir.path(), &stack, clock.clone())
            .unwrap()
            .with_holder(gone.clone());
        dead.acquire().await.unwrap();
        let me = LocalLease::new(dir.path(), &stack, clock).unwrap();
        let got = me.acquire().await.unwrap();
        assert_eq!(got.took_over, Some(gone));
    }

    const T0: &str = "2026-03-09T14:00:00Z";

    struct Env {
        dir: tempfile::TempDir,
        clock: ManualClock,
        stack: ResourceName,
    }

    fn env() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            clock: ManualClock::new(T0.parse().unwrap()),
            stack: ResourceName::from("smallpayroll"),
        }
    }

    impl Env {
        fn lease(&self, holder: &str) -> LocalLease {
            LocalLease::new(self.dir.path(), &self.stack, Arc::new(self.clock.clone()))
                .unwrap()
                .with_holder(HolderId::from(holder))
        }
    }

    #[test]
    fn holder_ids_name_host_and_process() {
        let a = HolderId::generate();
        let b = HolderId::generate();
        assert_ne!(a, b);
        let pid = format!("-{}-", std::process::id());
        assert!(a.as_str().contains(&pid), "{a}");
        assert!(
            a.as_str()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)),
            "{a}"
        );
    }

    #[tokio::test]
    async fn only_one_of_two_holders_gets_the_lease() {
        let env = env();
        let a = env.lease("host-1-a");
        let b = env.lease("host-2-b");

        let got = a.acquire().await.unwrap();
        assert_eq!(got.holder, HolderId::from("host-1-a"));
        assert_eq!(got.expires_at, "2026-03-09T14:01:00Z".parse().unwrap());
        assert_eq!(got.took_over, None);

        let e = b.acquire().await.unwrap_err();
        assert!(
            matches!(&e, LeaseError::Held { holder, expires_at, .. }
                if holder.as_str() == "host-1-a" && expires_at.to_string() == "2026-03-09T14:01:00Z"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "stack smallpayroll is being changed by host-1-a (its lease runs until \
             2026-03-09T14:01:00Z unless renewed); wait for it to finish or stop it"
        );

        // Taking it again is a renewal that keeps when it was first taken.
        env.clock.advance(Duration::from_secs(30));
        let again = a.acquire().await.unwrap();
        assert_eq!(again.expires_at, "2026-03-09T14:01:30Z".parse().unwrap());
        let stored = a.current().await.unwrap().unwrap();
        assert_eq!(stored.acquired_at, T0.parse().unwrap());
        assert_eq!(stored.renewed_at, "2026-03-09T14:00:30Z".parse().unwrap());
        assert_eq!(stored.holder, HolderId::from("host-1-a"));
    }

    #[tokio::test]
    async fn many_concurrent_holders_one_winner() {
        let env = env();
        let leases: Vec<_> = (0..16).map(|i| env.lease(&format!("h-{i}"))).collect();
        let mut tasks = tokio::task::JoinSet::new();
        for l in leases {
            tasks.spawn(async move { l.acquire().await.is_ok() });
        }
        let winners = tasks.join_all().await.into_iter().filter(|w| *w).count();
        assert_eq!(winners, 1);
    }

    #[tokio::test]
    async fn an_unrenewed_lease_expires_and_is_taken_over() {
        let env = env();
        let a = env.lease("a").with_ttl(Duration::from_secs(10));
        let b = env.lease("b");
        a.acquire().await.unwrap();

        env.clock.advance(Duration::from_secs(9));
        assert!(matches!(b.acquire().await, Err(LeaseError::Held { .. })));
        // A renewal pushes the expiry out.
        a.renew().await.unwrap();
        env.clock.advance(Duration::from_secs(9));
        assert!(matches!(b.acquire().await, Err(LeaseError::Held { .. })));

        env.clock.advance(Duration::from_secs(1));
        let got = b.acquire().await.unwrap();
        assert_eq!(got.took_over, Some(HolderId::from("a")));
        assert_eq!(got.expires_at, "2026-03-09T14:01:19Z".parse().unwrap());

        // The old holder finds out at its next renewal, and must stop.
        let e = a.renew().await.unwrap_err();
        assert!(
            matches!(&e, LeaseError::Lost { holder: Some(h), .. } if h.as_str() == "b"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "the lease on stack smallpayroll is not held by a: b holds it"
        );
    }

    #[tokio::test]
    async fn renewal_by_a_non_holder_is_refused() {
        let env = env();
        let a = env.lease("a");
        let b = env.lease("b");
        // Nobody holds it: renewing is not taking.
        assert!(matches!(
            b.renew().await,
            Err(LeaseError::Lost { holder: None, .. })
        ));
        assert_eq!(a.current().await.unwrap(), None);

        a.acquire().await.unwrap();
        let before = a.current().await.unwrap();
        env.clock.advance(Duration::from_secs(5));
        assert!(matches!(
            b.renew().await,
            Err(LeaseError::Lost {
                holder: Some(_),
                ..
            })
        ));
        assert_eq!(a.current().await.unwrap(), before, "left untouched");
    }

    #[tokio::test]
    async fn release_frees_the_lease_for_others_only_when_held() {
        let env = env();
        let a = env.lease("a");
        let b = env.lease("b");
        a.acquire().await.unwrap();

        // b cannot release a's lease.
        assert!(matches!(
            b.release().await,
            Err(LeaseError::Lost {
                holder: Some(_),
                ..
            })
        ));
        assert!(a.path().exists());

        a.release().await.unwrap();
        assert!(!a.path().exists());
        // Releasing twice is fine.
        a.release().await.unwrap();

        let got = b.acquire().await.unwrap();
        assert_eq!(got.took_over, None);
        // The released holder must take it again, not renew.
        assert!(matches!(a.renew().await, Err(LeaseError::Lost { .. })));
    }

    #[tokio::test]
    async fn a_crashed_holders_lease_expires() {
        let env = env();
        {
            // A process that took the lease and died without releasing:
            // its file stays, its OS lock does not.
            let crashed =
                LocalLease::new(env.dir.path(), &env.stack, Arc::new(env.clock.clone())).unwrap();
            crashed.acquire().await.unwrap();
        }
        let next = env.lease("next");
        let e = next.acquire().await.unwrap_err();
        let LeaseError::Held { holder, .. } = &e else {
            panic!("{e:?}");
        };
        let crashed = holder.clone();

        env.clock.advance(DEFAULT_TTL);
        let got = next.acquire().await.unwrap();
        assert_eq!(got.took_over, Some(crashed));
    }

    #[tokio::test]
    async fn acquire_waiting_waits_for_a_release_or_gives_up() {
        let env = env();
        let a = env.lease("a");
        let b = env.lease("b");
        a.acquire().await.unwrap();

        let e = acquire_waiting_every(&b, Duration::from_millis(50), Duration::from_millis(10))
            .await
            .unwrap_err();
        assert!(matches!(e, LeaseError::Held { .. }), "{e:?}");

        let release = {
            let a = a.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                a.release().await
            })
        };
        let got = acquire_waiting_every(&b, Duration::from_secs(10), Duration::from_millis(10))
            .await
            .unwrap();
        assert_eq!(got.holder, HolderId::from("b"));
        release.await.unwrap().unwrap();

        // A dyn Lease works too.
        let dynamic: &dyn Lease = &b;
        acquire_waiting(dynamic, Duration::ZERO).await.unwrap();
    }

    #[tokio::test]
    async fn leases_of_different_stacks_are_independent() {
        let env = env();
        let a = env.lease("a");
        let other = LocalLease::new(
            env.dir.path(),
            &ResourceName::from("other"),
            Arc::new(env.clock.clone()),
        )
        .unwrap()
        .with_holder(HolderId::from("b"));
        a.acquire().await.unwrap();
        other.acquire().await.unwrap();
    }

    #[tokio::test]
    async fn bad_names_and_files_are_clear_errors() {
        let env = env();
        let e = LocalLease::new(
            env.dir.path(),
            // "../etc" cannot even be a ResourceName now; a dotted name
            // (valid for buckets) still cannot name a lease file.
            &ResourceName::from("etc..passwd"),
            Arc::new(env.clock.clone()),
        )
        .unwrap_err();
        assert!(matches!(e, LeaseError::InvalidStack(_)), "{e:?}");

        let a = env.lease("a");
        fs::write(a.path(), b"{not json").unwrap();
        let e = a.acquire().await.unwrap_err();
        assert!(e.to_string().contains("is not a valid lease record"), "{e}");
        assert!(e.to_string().contains("lease-smallpayroll.json"), "{e}");
    }
}
