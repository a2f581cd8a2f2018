//! Repository locks. A backup holds a shared lock, prune (which deletes)
//! an exclusive one. A lock is refreshed every few minutes; one older than
//! [`STALE_AFTER`], or whose process is gone from this host, is stale and
//! ignored, so a crashed run never blocks the next nightly one.
//!
//! Taking, refreshing and releasing a lock never needs a DELETE: a host
//! whose credentials cannot delete (an append-only backup host) releases
//! its lock by writing a release record naming its holder id, and each
//! refresh supersedes the one before. Those files stay until an admin
//! command that may delete (`prune`, `unlock`) clears them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Random, the same for every file of one lock (its refreshes and its
    /// release record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// A release record: the lock of `holder` is gone (written instead of
    /// deleting the lock's files when they cannot be deleted).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub released: bool,
    /// In a release record: the secret whose SHA-256 is `holder`. Only the
    /// process that took the lock knows it, so no one else (a backup-key
    /// holder forging a record) can release a lock that is still held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl LockInfo {
    /// A release record whose secret proves it comes from the holder.
    fn releases(&self) -> Option<&str> {
        let holder = self.holder.as_deref()?;
        let secret = self.secret.as_deref()?;
        (self.released && crate::id::sha256_hex(secret.as_bytes()) == holder).then_some(holder)
    }
}

/// What a lock file means now, given every other lock file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockState {
    /// Held: blocks what conflicts with it.
    Live,
    /// Its process is gone or it was not refreshed in time.
    Stale,
    /// Its holder wrote a release record (or this is that record).
    Released,
    /// Its holder refreshed it since: a newer file of the same lock counts.
    Superseded,
    /// Not a lock file lifeboat can read.
    Unreadable,
}

/// Every lock file with what it means now. `Live` ones are the locks held.
pub fn lock_states(locks: &[(String, Option<LockInfo>)]) -> Vec<LockState> {
    let released: HashSet<&str> = locks
        .iter()
        .filter_map(|(_, i)| i.as_ref()?.releases())
        .collect();
    let mut newest: HashMap<&str, (DateTime<Utc>, &str)> = HashMap::new();
    for (name, info) in locks {
        // Only a lock file supersedes another (not a release record,
        // which may be forged).
        if let Some((holder, time)) = info
            .as_ref()
            .filter(|i| !i.released)
            .and_then(|i| Some((i.holder.as_deref()?, i.time)))
        {
            let e = newest.entry(holder).or_insert((time, name));
            if (time, name.as_str()) > (e.0, e.1) {
                *e = (time, name);
            }
        }
    }
    locks
        .iter()
        .map(|(name, info)| {
            let Some(info) = info else {
                return LockState::Unreadable;
            };
            let holder = info.holder.as_deref();
            if info.released || holder.is_some_and(|h| released.contains(h)) {
                LockState::Released
            } else if holder.is_some_and(|h| newest.get(h).is_some_and(|n| n.1 != name)) {
                LockState::Superseded
            } else if info.is_stale() {
                LockState::Stale
            } else {
                LockState::Live
            }
        })
        .collect()
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
    release: Arc<Release>,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Writes a lock's release record: (holder, secret, exclusive) -> file name.
type WriteRelease = Box<dyn Fn(&str, &str, bool) -> Result<String> + Send + Sync>;

/// How to let go of one lock: delete its file, or, where this host may not
/// delete (or a refresh left an older file behind), write a release record.
struct Release {
    /// Writes release records (a repository handle, type-erased).
    write: WriteRelease,
    backend: Arc<dyn Backend>,
    holder: String,
    /// Whose SHA-256 is `holder`: revealed in the release record only.
    secret: String,
    exclusive: bool,
    /// The lock's current file.
    name: Mutex<String>,
    /// A refresh could not delete the file it replaced.
    left_behind: AtomicBool,
}

impl Release {
    /// Replace the current file by `new`, deleting the old one if this host may.
    fn refreshed(&self, new: String) {
        let old = self
            .name
            .lock()
            .map(|mut n| std::mem::replace(&mut *n, new))
            .ok();
        if let Some(old) = old {
            if self.left_behind.load(Ordering::Relaxed) || !self.delete(&old) {
                self.left_behind.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Delete one of this lock's files; false when it stays.
    fn delete(&self, name: &str) -> bool {
        match self.backend.remove(FileKind::Lock, name) {
            Ok(()) => true,
            Err(e) if e.kind == crate::error::BackendErrorKind::Access => {
                tracing::debug!("lock {name} stays (this host may not delete): {e}");
                false
            }
            Err(e) => {
                tracing::debug!("could not remove lock {name}: {e}");
                false
            }
        }
    }

    /// Let go: delete the lock's file, or say in a release record that its
    /// files no longer count.
    fn release(&self) {
        let name = self.name.lock().map(|n| n.clone()).unwrap_or_default();
        if !self.left_behind.load(Ordering::Relaxed) && self.delete(&name) {
            return;
        }
        if let Err(e) = (self.write)(&self.holder, &self.secret, self.exclusive) {
            tracing::warn!(
                "could not release the repository lock ({e}): it counts as held until it is \
                 {} minutes old",
                STALE_AFTER.as_secs() / 60
            );
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.release.release();
    }
}

impl<A: Access> Repository<A> {
    /// Write one lock file; with `secret`, the release record of `holder`.
    fn write_lock(&self, exclusive: bool, holder: &str, secret: Option<&str>) -> Result<String> {
        let info = LockInfo {
            hostname: hostname(),
            pid: std::process::id(),
            time: Utc::now(),
            exclusive,
            nonce: rand::random(),
            process: process_identity(std::process::id()),
            holder: Some(holder.to_string()),
            released: secret.is_some(),
            secret: secret.map(str::to_string),
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

    /// Remove every lock file that no longer counts (stale, released,
    /// superseded, unreadable) and partial files left by dead writers;
    /// returns how many lock files. Needs a host that may delete.
    pub fn remove_stale_locks(&self) -> Result<usize> {
        let partial = self.inner.backend.remove_partial_writes()?;
        if partial > 0 {
            tracing::info!("removed {partial} partial file(s) left by interrupted writes");
        }
        let locks = self.locks()?;
        let mut n = 0;
        for ((name, _), state) in locks.iter().zip(lock_states(&locks)) {
            if state != LockState::Live {
                self.inner.backend.remove(FileKind::Lock, name)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// The first held lock that conflicts with taking one (`exclusive` or
    /// not), other than the file `mine`.
    fn conflict(&self, exclusive: bool, mine: Option<&str>) -> Result<Option<LockInfo>> {
        let locks = self.locks()?;
        let states = lock_states(&locks);
        Ok(locks
            .into_iter()
            .zip(states)
            .filter(|((name, _), state)| *state == LockState::Live && Some(name.as_str()) != mine)
            .filter_map(|((_, info), _)| info)
            .find(|info| exclusive || info.exclusive))
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

    /// Look, then write, then look again: nothing is written while a
    /// conflicting lock is plainly held (a backup waiting for a prune adds
    /// no file per attempt), and two takers racing both see each other.
    fn try_lock(&self, exclusive: bool) -> Result<LockGuard> {
        let locked = |info: LockInfo| {
            Error::Locked(format!(
                "{} lock held by pid {} on {} since {}",
                if info.exclusive { "an exclusive" } else { "a" },
                info.pid,
                info.hostname,
                info.time.format("%Y-%m-%d %H:%M:%S UTC")
            ))
        };
        if let Some(info) = self.conflict(exclusive, None)? {
            return Err(locked(info));
        }
        let secret = hex::encode(rand::random::<[u8; 16]>());
        let holder = crate::id::sha256_hex(secret.as_bytes());
        let mine = self.write_lock(exclusive, &holder, None)?;
        let writer = self.clone();
        let release = Arc::new(Release {
            write: Box::new(move |holder, secret, exclusive| {
                writer.write_lock(exclusive, holder, Some(secret))
            }),
            backend: self.inner.backend.clone(),
            holder: holder.clone(),
            secret,
            exclusive,
            name: Mutex::new(mine.clone()),
            left_behind: AtomicBool::new(false),
        });
        match self.conflict(exclusive, Some(&mine)) {
            Ok(None) => {}
            Ok(Some(info)) => {
                release.release();
                return Err(locked(info));
            }
            Err(e) => {
                release.release();
                return Err(e);
            }
        }
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let repo = self.clone();
        let refresh = release.clone();
        let thread = std::thread::Builder::new()
            .name("lifeboat-lock".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stop_rx.recv_timeout(REFRESH_EVERY)
                {
                    match repo.write_lock(exclusive, &holder, None) {
                        Ok(new) => refresh.refreshed(new),
                        Err(e) => tracing::warn!("could not refresh the repository lock: {e}"),
                    }
                }
            })
            .map_err(|e| {
                release.release();
                Error::io("starting the lock refresher", e)
            })?;
        Ok(LockGuard {
            release,
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
            holder: None,
            released: false,
            secret: None,
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
    fn a_host_that_may_not_delete_leaves_no_lock_that_counts_and_prune_clears_them() {
        use crate::backend::{AppendOnly, LocalBackend};
        use crate::{BackupOptions, InitOptions, PruneOptions, RestoreKey};
        let dir = tempfile::tempdir().unwrap();
        let full: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("repo")));
        let key = RestoreKey::generate();
        let (admin, _) = Repository::init(full.clone(), &key, &InitOptions::default()).unwrap();
        let host = Repository::open_for_backup(AppendOnly::wrap(full.clone()), admin.backup_key())
            .unwrap();
        for night in 0..3 {
            let mut s = host.begin_backup(BackupOptions::default()).unwrap();
            let mut w = s.item("x", "a", "stream", &crate::NoProgress).unwrap();
            w.push(format!("night {night}").as_bytes()).unwrap();
            w.finish(serde_json::Value::Null).unwrap();
            s.commit().unwrap();
        }
        // A refresh on such a host supersedes the file before it, which
        // stays; the release ends both.
        let guard = host.lock(false).unwrap();
        let new = host.write_lock(false, &guard.release.holder, None).unwrap();
        guard.release.refreshed(new);
        let locks = admin.locks().unwrap();
        let mut states = lock_states(&locks);
        states.sort_by_key(|s| format!("{s:?}"));
        assert_eq!(
            states.iter().filter(|s| **s == LockState::Live).count(),
            1,
            "{states:?}"
        );
        assert_eq!(
            states
                .iter()
                .filter(|s| **s == LockState::Superseded)
                .count(),
            1,
            "{states:?}"
        );
        drop(guard);
        // Each lock's files and its release record stay; none counts.
        let locks = admin.locks().unwrap();
        assert_eq!(locks.len(), 9, "{locks:?}");
        let states = lock_states(&locks);
        assert!(
            states.iter().all(|s| *s == LockState::Released),
            "{states:?}"
        );
        // So an exclusive lock is not held off by them, and prune, on a
        // host that may delete, clears them.
        let report = admin.prune(&PruneOptions::default()).unwrap();
        assert_eq!(report.lock_files_removed, 9);
        assert!(admin.locks().unwrap().is_empty());
    }

    #[test]
    fn a_refreshed_lock_supersedes_its_old_file_and_only_its_holders_release_ends_them() {
        // Holder "a" is sha256("secret a"); its release record shows the secret.
        let a = crate::id::sha256_hex(b"secret a");
        let info = |holder: &str, minutes_ago: i64, secret: Option<&str>| LockInfo {
            hostname: "elsewhere".into(),
            pid: 1,
            time: Utc::now() - chrono::Duration::minutes(minutes_ago),
            exclusive: true,
            nonce: 1,
            process: None,
            holder: Some(holder.into()),
            released: secret.is_some(),
            secret: secret.map(str::to_string),
        };
        let mut locks = vec![
            ("a1".to_string(), Some(info(&a, 10, None))),
            ("a2".to_string(), Some(info(&a, 5, None))),
            ("b1".to_string(), Some(info("b", 3, None))),
            (
                "old".to_string(),
                Some(LockInfo {
                    holder: None,
                    ..info("", 2, None)
                }),
            ),
            ("junk".to_string(), None),
        ];
        use LockState::*;
        assert_eq!(
            lock_states(&locks),
            [Superseded, Live, Live, Live, Unreadable]
        );
        // A forged release (anyone who can write a lock file) names the
        // holder but cannot show its secret: the lock stays held.
        locks.push(("forged".to_string(), Some(info(&a, 0, Some("guess")))));
        assert_eq!(lock_states(&locks)[1], Live);
        locks.pop();
        locks.push(("a3".to_string(), Some(info(&a, 0, Some("secret a")))));
        assert_eq!(
            lock_states(&locks),
            [Released, Released, Live, Live, Unreadable, Released]
        );
        // A lock not refreshed for longer than STALE_AFTER is stale.
        locks[2].1.as_mut().unwrap().time = Utc::now() - chrono::Duration::hours(1);
        assert_eq!(lock_states(&locks)[2], Stale);
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
