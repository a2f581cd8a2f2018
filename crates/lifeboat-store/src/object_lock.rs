//! A repository under S3 Object Lock (docs/FORMAT.md, "Object lock"):
//! `prune` keeps every file in use locked and purges old versions whose
//! lock has passed, `verify` names files locked for less than promised,
//! and `repair undelete` brings back every file as it was at a moment
//! before a mass delete or overwrite.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

use crate::backend::{FileKind, FileVersion, Locking};
use crate::error::{BackendErrorKind, Error, Result};
use crate::repository::{Access, FullAccess, ObjectLock, Repository};
use crate::verify::Problem;

/// The kinds whose files are kept locked (locks and run records come and
/// go; they are locked when written, not extended).
const KEPT: [FileKind; 7] = [
    FileKind::Config,
    FileKind::Keys,
    FileKind::Pack,
    FileKind::Index,
    FileKind::Snapshot,
    FileKind::State,
    FileKind::Forgotten,
];

/// What prune did about object lock.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LockReport {
    /// Files in use whose lock was extended.
    pub extended: usize,
    /// Old versions (overwritten or deleted more than the retention ago)
    /// deleted for good.
    pub purged: usize,
    /// Old versions left because they are still locked: a later prune
    /// removes them.
    pub still_locked: usize,
}

/// What `repair undelete` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UndeleteReport {
    /// Files brought back as they were at the moment asked for.
    pub revived: usize,
    /// Files already as they were.
    pub unchanged: usize,
    /// Files written since that moment, left as they are.
    pub newer: usize,
}

impl<A: Access> Repository<A> {
    /// The repository's object lock and the store's locking, when both are on.
    fn locked(&self) -> Option<(ObjectLock, &dyn Locking)> {
        Some((self.config().object_lock?, self.backend().locking()?))
    }

    /// Files in use locked for less than a quarter of the retention from
    /// now (prune keeps them at half or more; run it more often), or not
    /// at all. Empty when the repository has no object lock.
    pub fn check_retention(&self) -> Result<Vec<Problem>> {
        let Some((lock, locking)) = self.locked() else {
            return Ok(Vec::new());
        };
        let secs = lock.secs() as i64;
        let floor = Utc::now() + Duration::seconds(secs / 4);
        let files = self.kept_files()?;
        let problems = Mutex::new(Vec::new());
        self.each_parallel(&files, |kind, name| {
            let until = locking.retention(kind, name)?;
            if until.is_none_or(|u| u < floor) {
                if let Ok(mut p) = problems.lock() {
                    p.push(Problem {
                        what: kind.path(name),
                        detail: match until {
                            Some(u) => format!(
                                "locked only until {} (the repository keeps files in use locked \
                                 for {} days): run `lifeboat prune`, which extends it",
                                u.format("%Y-%m-%d %H:%M:%S UTC"),
                                lock.days
                            ),
                            None => "not locked (the repository keeps every file under object \
                                     lock): run `lifeboat prune`, which locks it"
                                .into(),
                        },
                        needed_by: Vec::new(),
                    });
                }
            }
            Ok(())
        })?;
        let mut p = problems.into_inner().unwrap_or_default();
        p.sort_by(|a, b| a.what.cmp(&b.what));
        Ok(p)
    }

    /// Every current file of the kinds kept locked.
    fn kept_files(&self) -> Result<Vec<(FileKind, String)>> {
        let mut files = Vec::new();
        for kind in KEPT {
            for f in self.backend().list(kind)? {
                files.push((kind, f.name));
            }
        }
        Ok(files)
    }

    /// Run `f` on every file, a few at a time; the first error wins.
    fn each_parallel(
        &self,
        files: &[(FileKind, String)],
        f: impl Fn(FileKind, &str) -> Result<()> + Sync,
    ) -> Result<()> {
        let next = AtomicUsize::new(0);
        let error: Mutex<Option<Error>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..self.backend().connections().max(1) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((kind, name)) = files.get(i) else {
                        return;
                    };
                    if let Err(e) = f(*kind, name) {
                        if let Ok(mut slot) = error.lock() {
                            slot.get_or_insert(e);
                        }
                        return;
                    }
                });
            }
        });
        match error.into_inner().ok().flatten() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Repository<FullAccess> {
    /// Lock every file in use whose lock ends within half the retention
    /// (or that has none) for the whole retention from now; returns how
    /// many. `prune` runs it, and so does `repair undelete` for the files
    /// it brought back.
    pub fn keep_locked(&self) -> Result<usize> {
        let Some((lock, locking)) = self.locked() else {
            return Ok(0);
        };
        let secs = lock.secs() as i64;
        let now = Utc::now();
        let extended = AtomicUsize::new(0);
        let files = self.kept_files()?;
        self.each_parallel(&files, |kind, name| {
            let until = locking.retention(kind, name)?;
            if until.is_none_or(|u| u < now + Duration::seconds(secs / 2)) {
                locking.extend(kind, name, lock.mode, now + Duration::seconds(secs))?;
                extended.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })?;
        Ok(extended.into_inner())
    }

    /// After a prune: extend the lock of every file in use that ends
    /// within half the retention, and purge versions overwritten or deleted
    /// more than the retention ago whose lock has passed.
    pub(crate) fn maintain_locks(&self) -> Result<LockReport> {
        let Some((lock, locking)) = self.locked() else {
            return Ok(LockReport::default());
        };
        let secs = lock.secs() as i64;
        let now = Utc::now();
        let mut report = LockReport {
            extended: self.keep_locked()?,
            ..Default::default()
        };
        // A version is old once something newer (a version or a delete
        // marker) replaced it more than the retention ago: kept that long
        // for `repair undelete`, whatever its own lock.
        let before = now - Duration::seconds(secs);
        for (path, versions) in by_path(locking.versions()?) {
            let replaced_at = |i: usize| versions.get(i + 1).map(|n: &FileVersion| n.modified);
            let only_markers = versions.iter().all(|v| v.delete_marker);
            for (i, v) in versions.iter().enumerate() {
                let old = match replaced_at(i) {
                    Some(t) => !v.latest && t < before,
                    // The newest: only a lone delete marker is old.
                    None => v.delete_marker && only_markers && v.modified < before,
                };
                if !old {
                    continue;
                }
                match locking.purge(&path, &v.version) {
                    Ok(()) => report.purged += 1,
                    Err(e) if e.kind == BackendErrorKind::Access => report.still_locked += 1,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(report)
    }
}

/// Bring back every file as it was at `as_of`: a file deleted or
/// overwritten since gets that moment's version back on top (a new
/// version, locked). Files written since are left as they are.
/// Needs a versioned bucket (S3 Object Lock). Works on the raw store:
/// the config itself may be what was overwritten; open the repository
/// afterwards (which authenticates what came back) and verify it.
pub fn undelete(
    backend: &dyn crate::backend::Backend,
    as_of: DateTime<Utc>,
) -> Result<UndeleteReport> {
    let locking = backend.locking().ok_or_else(|| {
        Error::Invalid(format!(
            "{} keeps no old versions: undelete needs an S3 bucket with versioning \
             (object lock)",
            backend.location()
        ))
    })?;
    let mut report = UndeleteReport::default();
    for (path, versions) in by_path(locking.versions()?) {
        if path.starts_with("locks/") {
            continue;
        }
        let then = versions.iter().rev().find(|v| v.modified <= as_of);
        let now = versions.last();
        match (then, now) {
            (Some(t), Some(n)) if !t.delete_marker => {
                if n.version == t.version {
                    report.unchanged += 1;
                } else {
                    locking.revive(&path, &t.version)?;
                    report.revived += 1;
                }
            }
            _ => report.newer += 1,
        }
    }
    Ok(report)
}

/// Versions grouped by path, oldest first.
fn by_path(all: Vec<FileVersion>) -> BTreeMap<String, Vec<FileVersion>> {
    let mut out: BTreeMap<String, Vec<FileVersion>> = BTreeMap::new();
    for v in all {
        out.entry(v.path.clone()).or_default().push(v);
    }
    for v in out.values_mut() {
        // Equal times: the latest one last.
        v.sort_by(|a, b| a.modified.cmp(&b.modified).then(a.latest.cmp(&b.latest)));
    }
    out
}
