//! Repository locks. A backup holds a shared lock, prune (which deletes)
//! an exclusive one. A lock is refreshed every few minutes; one older than
//! [`STALE_AFTER`], or whose process is gone from this host, is stale and
//! ignored, so a crashed run never blocks the next nightly one.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, FileKind};
use crate::error::{Error, Result};
use crate::repository::{Access, Repository};

/// A lock not refreshed for this long is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// How far ahead of this host's clock a lock's time may be and still count:
/// hosts' clocks differ a little, but a lock dated further ahead (a broken
/// clock, or a file planted to block every backup for years) is stale.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(10 * 60);
const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);

/// A lock file's content.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockInfo {
    /// The host holding it.
    pub hostname: String,
    /// Its process id.
    pub pid: u32,
    /// Last refresh.
    pub time: DateTime<Utc>,
    /// Exclusive (prune) or shared (backup).
    pub exclusive: bool,
    /// Random, so two refreshes never produce the same file.
    pub nonce: u64,
    /// Which process `pid` was: the host's boot id and the process's start
    /// time (Linux), so a pid reused by another process (a container
    /// restarted, pids wrapped) does not keep a dead run's lock alive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
}

impl LockInfo {
    /// True when nobody holds this lock any more.
    pub fn is_stale(&self) -> bool {
        let age = Utc::now().signed_duration_since(self.time);
        match age.to_std() {
            Ok(age) if age > STALE_AFTER => return true,
            // Negative: the lock is dated in the future.
            Err(_) if (-age).to_std().map(|a| a > MAX_CLOCK_SKEW).unwrap_or(true) => return true,
            _ => {}
        }
        self.hostname == hostname() && !process_alive(self.pid, self.process.as_deref())
    }
}

/// This host's name, as locks and snapshots record it.
pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// Whether process `pid` runs on this host and, when `identity` is known,
/// is the same process (see [`process_identity`]).
pub fn process_alive(pid: u32, identity: Option<&str>) -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
        return false;
    }
    match (identity, process_identity(pid)) {
        (Some(recorded), Some(now)) => recorded == now,
        _ => true,
    }
}

/// `BOOT_ID:STARTTIME` of a process on Linux: the kernel's boot id and the
/// process's start time in clock ticks since boot (field 22 of
/// /proc/PID/stat). Together they name one process for good.
pub fn process_identity(pid: u32) -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let start = rest.split_whitespace().nth(19)?;
    Some(format!("{}:{start}", boot.trim()))
}

/// Held while an operation runs; released on drop.
pub(crate) struct LockGuard {
    backend: Arc<dyn Backend>,
    name: Arc<Mutex<String>>,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let name = self.name.lock().map(|n| n.clone()).unwrap_or_default();
        if let Err(e) = self.backend.remove(FileKind::Lock, &name) {
            tracing::warn!("could not remove lock {name}: {e}");
        }
    }
}

impl<A: Access> Repository<A> {
    fn write_lock(&self, exclusive: bool) -> Result<String> {
        let info = LockInfo {
            hostname: hostname(),
            pid: std::process::id(),
            time: Utc::now(),
            exclusive,
            nonce: rand::random(),
            process: process_identity(std::process::id()),
        };
        let json = serde_json::to_vec(&info).expect("lock serializes");
        Ok(self.write_meta_file(FileKind::Lock, &json)?.0)
    }

    /// Every lock file with its content (`None` when unreadable).
    pub fn locks(&self) -> Result<Vec<(String, Option<LockInfo>)>> {
        let mut out = Vec::new();
        for name in self.list_names(FileKind::Lock)? {
            let info = self
                .read_meta_file(FileKind::Lock, &name, 64 * 1024)
                .ok()
                .and_then(|j| serde_json::from_slice(&j).ok());
            out.push((name, info));
        }
        Ok(out)
    }

    /// Remove stale and unreadable locks, and partial files left by dead
    /// writers; returns how many locks.
    pub fn remove_stale_locks(&self) -> Result<usize> {
        let partial = self.inner.backend.remove_partial_writes()?;
        if partial > 0 {
            tracing::info!("removed {partial} partial file(s) left by interrupted writes");
        }
        let mut n = 0;
        for (name, info) in self.locks()? {
            if info.map(|i| i.is_stale()).unwrap_or(true) {
                self.inner.backend.remove(FileKind::Lock, &name)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Take a lock. A shared lock (backup, forget) waits for an exclusive
    /// one (prune) to go, up to `LIFEBOAT_LOCK_WAIT` seconds (default 1800):
    /// a nightly backup that meets a prune finishes after it instead of
    /// failing. An exclusive lock does not wait unless that variable says
    /// so: prune refuses while a backup runs.
    pub(crate) fn lock(&self, exclusive: bool) -> Result<LockGuard> {
        let wait = std::env::var("LIFEBOAT_LOCK_WAIT")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(if exclusive { 0 } else { 1800 });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(wait);
        let mut told = false;
        loop {
            match self.try_lock(exclusive) {
                Err(Error::Locked(why)) if std::time::Instant::now() < deadline => {
                    if !told {
                        tracing::warn!("repository locked ({why}): waiting up to {wait}s");
                        told = true;
                    }
                    let jitter = u64::from(rand::random::<u8>()) * 4;
                    std::thread::sleep(std::time::Duration::from_millis(500 + jitter));
                }
                other => return other,
            }
        }
    }

    fn try_lock(&self, exclusive: bool) -> Result<LockGuard> {
        let mine = self.write_lock(exclusive)?;
        let guard_backend = self.inner.backend.clone();
        for (name, info) in self.locks()? {
            if name == mine {
                continue;
            }
            let Some(info) = info else { continue };
            if info.is_stale() {
                continue;
            }
            if exclusive || info.exclusive {
                let _ = guard_backend.remove(FileKind::Lock, &mine);
                return Err(Error::Locked(format!(
                    "{} lock held by pid {} on {} since {}",
                    if info.exclusive { "an exclusive" } else { "a" },
                    info.pid,
                    info.hostname,
                    info.time.format("%Y-%m-%d %H:%M:%S UTC")
                )));
            }
        }
        let name = Arc::new(Mutex::new(mine));
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let repo = self.clone();
        let name2 = name.clone();
        let thread = std::thread::Builder::new()
            .name("lifeboat-lock".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stop_rx.recv_timeout(REFRESH_EVERY)
                {
                    match repo.write_lock(exclusive) {
                        Ok(new) => {
                            let old = name2
                                .lock()
                                .map(|mut n| std::mem::replace(&mut *n, new))
                                .ok();
                            if let Some(old) = old {
                                let _ = repo.inner.backend.remove(FileKind::Lock, &old);
                            }
                        }
                        Err(e) => tracing::warn!("could not refresh the repository lock: {e}"),
                    }
                }
            })
            .map_err(|e| Error::io("starting the lock refresher", e))?;
        Ok(LockGuard {
            backend: guard_backend,
            name,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock_of(pid: u32, process: Option<String>) -> LockInfo {
        LockInfo {
            hostname: hostname(),
            pid,
            time: Utc::now(),
            exclusive: true,
            nonce: 1,
            process,
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_reused_pid_does_not_keep_a_dead_runs_lock_alive() {
        let me = std::process::id();
        let identity = process_identity(me).expect("our own identity");
        assert_eq!(process_identity(me).as_deref(), Some(identity.as_str()));
        // Our pid, our identity: a live lock.
        assert!(!lock_of(me, Some(identity.clone())).is_stale());
        // Our pid, but recorded for another process (the pid was reused
        // after a crash): stale.
        let (boot, start) = identity.rsplit_once(':').expect("BOOT:START");
        let other = format!("{boot}:{}", start.parse::<u64>().expect("ticks") + 1);
        assert!(lock_of(me, Some(other)).is_stale());
        // Old lock files without an identity fall back to the pid alone.
        assert!(!lock_of(me, None).is_stale());
        // A lock not refreshed for longer than STALE_AFTER is stale.
        let mut old = lock_of(me, Some(identity));
        old.time = Utc::now() - chrono::Duration::hours(1);
        assert!(old.is_stale());
    }

    #[test]
    fn a_lock_dated_far_in_the_future_is_stale() {
        // Another host's lock (so the process check does not apply).
        let mut lock = lock_of(1, None);
        lock.hostname = "elsewhere".into();
        lock.time = Utc::now() + chrono::Duration::minutes(2);
        assert!(!lock.is_stale(), "within the clock skew: held");
        lock.time = Utc::now() + chrono::Duration::days(365 * 100);
        assert!(lock.is_stale(), "a century ahead: stale");
        lock.time = Utc::now() + chrono::Duration::minutes(11);
        assert!(lock.is_stale(), "beyond MAX_CLOCK_SKEW: stale");
    }
}
