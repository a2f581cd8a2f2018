//! A repository under S3 Object Lock (docs/FORMAT.md, "Object lock"):
//! `prune` keeps every file in use locked and purges old versions whose
//! lock has passed, `verify` names files locked for less than promised,
//! and `repair undelete` brings back every file as it was at a moment
//! before a mass delete or overwrite.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

use crate::backend::{is_own_name, parse_path, FileKind, FileVersion, Locking};
use crate::error::{BackendErrorKind, Error, Result};
use crate::repository::{Access, FullAccess, ObjectLock, Repository};
use crate::verify::Problem;

/// Whether files of `kind` are kept locked (locks and run records come
/// and go; they are locked when written, not extended).
fn kept(kind: FileKind) -> bool {
    !matches!(kind, FileKind::Lock | FileKind::Run)
}

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
    /// Files written since that moment (or absent then), left as they are.
    pub newer: usize,
    /// Files that could not be brought back, and why (the others were).
    pub failed: Vec<String>,
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
        let problem = |what: String, detail: String| {
            if let Ok(mut p) = problems.lock() {
                p.push(Problem {
                    what,
                    detail,
                    needed_by: Vec::new(),
                });
            }
        };
        self.each_parallel(&files, |kind, name| {
            let r = locking.retention(kind, name)?;
            let detail = match (r.until, r.mode) {
                (None, _) | (_, None) => Some(
                    "not locked (the repository keeps every file under object lock): run \
                     `lifeboat prune`, which locks it"
                        .to_string(),
                ),
                (_, Some(m)) if m != lock.mode => Some(format!(
                    "locked in {m:?} mode, not the repository's {:?} (a file put back \
                     over it?): see `lifeboat repair undelete`",
                    lock.mode
                )),
                (Some(u), _) if u < floor => Some(format!(
                    "locked only until {} (the repository keeps files in use locked for {} \
                     days): run `lifeboat prune`, which extends it",
                    u.format("%Y-%m-%d %H:%M:%S UTC"),
                    lock.days
                )),
                _ => None,
            };
            if let Some(d) = detail {
                problem(kind.path(name), d);
            }
            Ok(())
        })?;
        // A file lifeboat never rewrites whose versions hold different
        // bytes was overwritten: the earlier version is the real one.
        for (path, versions) in by_path(locking.versions()?) {
            let Some((kind, _)) = parse_path(&path) else {
                continue;
            };
            if kind == FileKind::Config || !kept(kind) {
                continue;
            }
            // The first version is lifeboat's (its name is the hash of new
            // bytes); the current one must hold the same.
            let first = versions.iter().find(|v| !v.delete_marker);
            let now = versions.last().filter(|v| !v.delete_marker);
            let changed = match (first, now) {
                (Some(f), Some(n)) => f.etag.is_some() && n.etag != f.etag,
                _ => false,
            };
            if changed {
                problem(
                    path,
                    "overwritten with other bytes (the store keeps the earlier version): run \
                     `lifeboat repair undelete --as-of` a moment before it"
                        .into(),
                );
            }
        }
        let mut p = problems.into_inner().unwrap_or_default();
        p.sort_by(|a, b| a.what.cmp(&b.what));
        Ok(p)
    }

    /// Every current file of the kinds kept locked (names lifeboat
    /// writes only: a stray key is not its file).
    fn kept_files(&self) -> Result<Vec<(FileKind, String)>> {
        let mut files = Vec::new();
        for kind in FileKind::ALL.into_iter().filter(|k| kept(*k)) {
            for f in self.backend().list(kind)? {
                if is_own_name(kind, &f.name) {
                    files.push((kind, f.name));
                }
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
        crate::parallel::for_each(files, self.backend().connections(), |(kind, name)| {
            f(*kind, name)
        })
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
            let until = locking.retention(kind, name)?.until;
            if until.is_none_or(|u| u < now + Duration::seconds(secs / 2)) {
                locking.extend(kind, name, lock.mode, now + Duration::seconds(secs))?;
                extended.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })?;
        Ok(extended.into_inner())
    }

    /// After a prune: delete for good the versions of files deleted more
    /// than the retention ago (the newest version of the path is a delete
    /// marker that old) once their lock has passed. Versions of a file
    /// that is still there are never purged: lifeboat never rewrites one,
    /// so an older version is what an attacker's overwrite replaced.
    pub(crate) fn purge_old_versions(&self) -> Result<LockReport> {
        let Some((lock, locking)) = self.locked() else {
            return Ok(LockReport::default());
        };
        let before = Utc::now() - Duration::seconds(lock.secs() as i64);
        let mut report = LockReport::default();
        for (path, versions) in by_path(locking.versions()?) {
            if parse_path(&path).is_none() {
                continue;
            }
            let Some(last) = versions.last() else {
                continue;
            };
            if !last.delete_marker || last.modified >= before {
                continue;
            }
            let mut left = 0;
            for v in versions.iter().filter(|v| !v.delete_marker) {
                match locking.purge(&path, &v.version) {
                    Ok(()) => report.purged += 1,
                    Err(e) if e.kind == BackendErrorKind::Access => {
                        report.still_locked += 1;
                        left += 1;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if left == 0 {
                for m in versions.iter().filter(|v| v.delete_marker) {
                    locking.purge(&path, &m.version)?;
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
        // Only lifeboat's own files (locks come and go).
        let Some((kind, name)) = parse_path(&path) else {
            continue;
        };
        if kind == FileKind::Lock {
            continue;
        }
        // Absent at that moment (never written, or deleted): leave it.
        if versions
            .iter()
            .rev()
            .find(|v| v.modified <= as_of)
            .is_none_or(|v| v.delete_marker)
        {
            report.newer += 1;
            continue;
        }
        let chosen = match pick(locking, &path, kind, &name, &versions, as_of) {
            Ok(Some(v)) => v,
            Ok(None) => {
                report.failed.push(format!(
                    "{path}: no version from before then holds the bytes its name is the hash of"
                ));
                continue;
            }
            Err(e) => {
                report.failed.push(format!("{path}: {e}"));
                continue;
            }
        };
        let now = versions.last();
        let same = now.is_some_and(|n| {
            !n.delete_marker
                && (n.version == chosen.version || (n.etag.is_some() && n.etag == chosen.etag))
        });
        if same {
            report.unchanged += 1;
        } else {
            match locking.revive(&path, &chosen.version) {
                Ok(()) => report.revived += 1,
                Err(e) => report.failed.push(format!("{path}: {e}")),
            }
        }
    }
    Ok(report)
}

/// The version of `path` to bring back for `as_of`: the newest written by
/// then; for a file named by the hash of its bytes, the newest by then
/// whose bytes match its name (read only when versions differ).
fn pick<'v>(
    locking: &dyn Locking,
    path: &str,
    kind: FileKind,
    name: &str,
    versions: &'v [FileVersion],
    as_of: DateTime<Utc>,
) -> Result<Option<&'v FileVersion>> {
    let candidates: Vec<&FileVersion> = versions
        .iter()
        .rev()
        .filter(|v| v.modified <= as_of && !v.delete_marker)
        .collect();
    let Some(newest) = candidates.first() else {
        return Ok(None);
    };
    let all_same = candidates
        .iter()
        .all(|v| v.etag.is_some() && v.etag == newest.etag);
    if kind == FileKind::Config || all_same {
        return Ok(Some(newest));
    }
    for v in candidates {
        if crate::id::sha256_hex(&locking.read_version(path, &v.version)?) == name {
            return Ok(Some(v));
        }
    }
    Ok(None)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_lifeboat_writes_are_its_files() {
        let h = "ab".repeat(32);
        assert_eq!(
            parse_path(&format!("data/ab/{h}")),
            Some((FileKind::Pack, h.clone()))
        );
        assert_eq!(
            parse_path("config"),
            Some((FileKind::Config, "config".into()))
        );
        assert_eq!(
            parse_path(&format!("snapshots/{h}")),
            Some((FileKind::Snapshot, h.clone()))
        );
        for stray in [
            "data/".to_string(),
            "data/x".to_string(),
            format!("data/cd/{h}"),
            format!("data//{h}"),
            "%41".to_string(),
            format!("index/{h}/x"),
            format!("index/{}", h.to_uppercase()),
            "../x".to_string(),
            "configs".to_string(),
        ] {
            assert_eq!(parse_path(&stray), None, "{stray}");
        }
    }
}
