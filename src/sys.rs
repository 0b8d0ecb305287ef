//! What converge needs from the host, in one place: the clock, atomic
//! file writes and file locks. The clouds, the lease and the command line
//! all use these, and this module uses none of them, so no two of those
//! modules need to import each other.
//!
//! - [`Clock`]: all time comes from an injected clock ([`SystemClock`] in
//!   the binary, [`ManualClock`] in tests), never from `now()` calls
//!   scattered through the code.
//! - [`write_atomic`], [`write_atomic_locked`]: write a file so that a
//!   crash at any point leaves either the old content or the new one,
//!   never a mix.
//! - [`FileLock`]: an OS advisory lock on an open file, released when the
//!   guard is dropped (and by the OS when the process dies).

use jiff::Timestamp;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A source of the current time, injected so tests control it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to, for tests. Clones share the time.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<Mutex<Timestamp>>);

impl ManualClock {
    /// A clock stopped at `at`.
    pub fn new(at: Timestamp) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: std::time::Duration) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let span = jiff::SignedDuration::try_from(by).unwrap_or(jiff::SignedDuration::MAX);
        *t = t.checked_add(span).unwrap_or(*t);
    }

    /// Sets the clock.
    pub fn set(&self, at: Timestamp) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Replaces `path` with `bytes` atomically, for a writer that may run
/// beside others (`plan --out`): the bytes go to a temporary file in the
/// same directory, named after the target, this process and a random
/// suffix so concurrent writers never share one; it is synced, renamed
/// over `path`, and the directory synced so the rename is durable. On
/// failure the temporary file is removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (dir, name) = split(path);
    let temp = dir.join(format!(
        ".{name}.{}.{:08x}.tmp",
        std::process::id(),
        fastrand::u32(..)
    ));
    write_via(&temp, path, bytes)
}

/// [`write_atomic`] for a writer that holds a lock excluding every other
/// writer of `path` (the local cloud's world, a lease file): the
/// temporary file is always `<name>.tmp` beside it, so a crash leaves at
/// most one behind, and the next write replaces it.
pub fn write_atomic_locked(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (dir, name) = split(path);
    write_via(&dir.join(format!("{name}.tmp")), path, bytes)
}

/// The directory a file is in (`.` for a bare name) and its name.
fn split(path: &Path) -> (&Path, &str) {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    (dir, name)
}

/// Writes `bytes` to `temp`, syncs it, renames it over `path` and syncs
/// the directory; removes `temp` if any of that fails.
fn write_via(temp: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let written = File::create(temp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(temp, path));
    if written.is_err() {
        let _ = fs::remove_file(temp);
    }
    written?;
    sync_dir(split(path).0);
    Ok(())
}

/// Removes `path` durably; a file that is not there is not an error.
pub fn remove_durably(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                sync_dir(dir);
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes a rename or removal in `dir` durable. Not every platform can open
/// a directory; the change is atomic either way.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Opens (creating it if needed) a file that is only ever locked, never
/// written.
pub fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// An OS advisory lock on an open file, released when dropped.
#[derive(Debug)]
pub struct FileLock<'a>(&'a File);

impl<'a> FileLock<'a> {
    /// Waits for the exclusive lock (one writer, no readers).
    pub fn exclusive(file: &'a File) -> io::Result<Self> {
        file.lock()?;
        Ok(FileLock(file))
    }

    /// Waits for a shared lock (many readers, no writer).
    pub fn shared(file: &'a File) -> io::Result<Self> {
        file.lock_shared()?;
        Ok(FileLock(file))
    }
}

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("plan.json")]);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: the rename fails.
        let path = dir.path().join("taken");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"x").unwrap();
        assert!(write_atomic(&path, b"new").is_err());
        assert!(path.is_dir());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_locked_write_replaces_what_a_crash_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("world.json");
        fs::write(dir.path().join("world.json.tmp"), b"{\"half").unwrap();
        write_atomic_locked(&path, b"whole").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"whole");
        assert!(!dir.path().join("world.json.tmp").exists());
    }

    #[test]
    fn removing_a_missing_file_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        remove_durably(&dir.path().join("nothing")).unwrap();
    }

    #[test]
    fn the_manual_clock_moves_only_when_told() {
        let c = ManualClock::new("2026-03-09T12:00:00Z".parse().unwrap());
        let shared = c.clone();
        c.advance(std::time::Duration::from_secs(90));
        assert_eq!(shared.now().to_string(), "2026-03-09T12:01:30Z");
    }
}
