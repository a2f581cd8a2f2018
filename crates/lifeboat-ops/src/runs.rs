//! Run records: every backup, capture, drill, verify, forget and prune
//! leaves one in the store (`runs/`), failed runs included, so that
//! [`status`](crate::status()) can say when each last worked and last
//! failed. A run that cannot reach the store, or is killed, is kept in a
//! local journal and stored by the next run that can.
//!
//! What the backup key may not read (a drill's tables, a restore-key
//! command's message, which can name tables or objects) goes in
//! [`RunDetail`], sealed to the data recipient; the rest is counts, times,
//! sizes and exit codes.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use lifeboat_store::{Access, FullAccess, Repository};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What kind of command a record is of (prune keeps the newest of each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// `backup` and `snapshot-before-migration`.
    Backup,
    /// `binlog` (a capture run).
    Binlog,
    /// `drill`.
    Drill,
    /// `verify`.
    Verify,
    /// `forget`.
    Forget,
    /// `prune`.
    Prune,
}

impl RunKind {
    /// Every kind.
    pub const ALL: [RunKind; 6] = [
        RunKind::Backup,
        RunKind::Binlog,
        RunKind::Drill,
        RunKind::Verify,
        RunKind::Forget,
        RunKind::Prune,
    ];

    /// Its name in records and output.
    pub fn name(self) -> &'static str {
        match self {
            RunKind::Backup => "backup",
            RunKind::Binlog => "binlog",
            RunKind::Drill => "drill",
            RunKind::Verify => "verify",
            RunKind::Forget => "forget",
            RunKind::Prune => "prune",
        }
    }
}

/// One source's part in a backup run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceRun {
    /// `mysql`, `objects`, `render`, `git`, or for a stream `command`,
    /// `stdin`, `file`.
    pub source: String,
    /// It was stored whole.
    pub ok: bool,
    /// Items stored.
    pub items: u64,
    /// Their plaintext bytes.
    pub bytes: u64,
    /// Drill: items in the snapshot (or the sample).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<u64>,
    /// Drill: seconds to restore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_seconds: Option<f64>,
    /// Drill: seconds to verify it after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_seconds: Option<f64>,
    /// Drill: what did not match, counted (named in the sealed part).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mismatches: Option<u64>,
}

/// A run record, the part the backup key reads (docs/FORMAT.md, "runs/
/// files").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Format of the record (1).
    pub version: u32,
    /// Which command.
    pub kind: RunKind,
    /// The command as typed, without its arguments' values (`backup`,
    /// `snapshot-before-migration`, `verify --read-data`).
    pub command: String,
    /// When it started.
    pub start: DateTime<Utc>,
    /// When it ended; `None`: it never finished (killed, or the host
    /// stopped), found in the journal by a later run.
    pub end: Option<DateTime<Utc>>,
    /// The host it ran on.
    pub host: String,
    /// Its exit status (README, "Exit codes"); `None` when it never finished.
    pub exit_code: Option<i32>,
    /// The snapshot it stored or worked on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// The snapshot's tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Per source (backups and drills).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceRun>,
    /// Plaintext bytes read from the sources (backups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_read: Option<u64>,
    /// Bytes added to the repository (backups, captures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_added: Option<u64>,
    /// Bytes the snapshot holds (backups): its sources' plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_bytes: Option<u64>,
    /// A drill's measured recovery time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_seconds: Option<f64>,
    /// A drill restored a sample of the objects (its RTO is not the whole
    /// recovery's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampled: Option<bool>,
    /// A verify read this share of the data (0 for structure only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_data_percent: Option<f64>,
    /// Problems found (drill, verify), counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problems: Option<u64>,
    /// Backups and captures: the first clause of the error shown to the
    /// user (to its first `: `), words holding a `/` left out, so that no
    /// path or object key is readable with the backup key. The whole
    /// message is in [`RunDetail`], as every restore-key command's is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// [`RunDetail`] as JSON, zstd + age to the data recipient, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
    /// The stored file carries a good signature: it was written with a
    /// restore key. Set by [`list`] from the file, never read from the
    /// record's JSON (so a record cannot claim it).
    #[serde(
        default,
        skip_deserializing,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub signed: bool,
}

/// The part of a record only a restore key reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunDetail {
    /// The error shown to the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A drill's per-source results (tables, objects, refs by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<serde_json::Value>,
}

impl RunDetail {
    fn is_empty(&self) -> bool {
        self.error.is_none() && self.drill.is_none()
    }
}

impl RunRecord {
    /// A record of a run of `kind` starting now.
    pub fn begin(kind: RunKind, command: impl Into<String>) -> Self {
        RunRecord {
            version: 1,
            kind,
            command: command.into(),
            start: Utc::now(),
            end: None,
            host: gethostname(),
            exit_code: None,
            snapshot: None,
            tags: Vec::new(),
            sources: Vec::new(),
            bytes_read: None,
            bytes_added: None,
            snapshot_bytes: None,
            rto_seconds: None,
            sampled: None,
            read_data_percent: None,
            problems: None,
            error: None,
            sealed: None,
            signed: false,
        }
    }

    /// It finished with exit status 0 (or 8: stored, with a warning).
    pub fn succeeded(&self) -> bool {
        matches!(self.exit_code, Some(0) | Some(8))
    }

    /// Whether the restore key is needed to read this kind's messages.
    fn message_sealed(&self) -> bool {
        !matches!(self.kind, RunKind::Backup | RunKind::Binlog)
    }

    /// Fill the record from a committed snapshot.
    pub fn note_snapshot(
        &mut self,
        id: &lifeboat_store::SnapshotId,
        snap: &lifeboat_store::Snapshot,
    ) {
        self.snapshot = Some(id.to_hex());
        self.tags = snap.tags.clone();
        self.bytes_read = Some(snap.stats.bytes);
        self.bytes_added = Some(snap.stats.added_bytes);
        self.snapshot_bytes = Some(snap.sources.values().map(|s| s.bytes).sum());
        let planned: Vec<String> = self.sources.iter().map(|s| s.source.clone()).collect();
        self.sources = snap
            .sources
            .iter()
            .map(|(name, s)| SourceRun {
                source: name.clone(),
                ok: s.error.is_none(),
                items: s.items,
                bytes: s.bytes,
                ..Default::default()
            })
            .collect();
        // A planned source missing from the snapshot stored nothing.
        for p in planned {
            if !self.sources.iter().any(|s| s.source == p) {
                self.sources.push(SourceRun {
                    source: p,
                    ..Default::default()
                });
            }
        }
    }

    /// Fill the record from a drill's report; returns the part only the
    /// restore key may read (the per-source results, which name tables,
    /// objects and refs).
    pub fn note_drill(&mut self, r: &crate::drill::DrillReport) -> serde_json::Value {
        self.snapshot = Some(r.snapshot.clone());
        self.tags = r.tags.clone();
        self.rto_seconds = Some(r.rto_seconds);
        self.sampled = Some(r.sample_percent.is_some_and(|p| p < 100.0));
        self.problems = Some(r.problems.len() as u64);
        self.sources = r
            .sources
            .iter()
            .map(|s| SourceRun {
                source: s.source.clone(),
                ok: s.ok(),
                items: s.items,
                bytes: s.bytes,
                expected: Some(s.items_expected),
                restore_seconds: Some(s.restore_seconds),
                verify_seconds: Some(s.verify_seconds),
                mismatches: Some(s.mismatches.len() as u64),
            })
            .collect();
        serde_json::json!({
            "sources": r.sources,
            "problems": r.problems,
            "until": r.until,
            "rpo_seconds": r.rpo_seconds,
        })
    }

    /// Fill the record from a verify's report.
    pub fn note_verify(&mut self, r: &crate::VerifyAllReport, read_data_percent: Option<f64>) {
        self.read_data_percent = Some(read_data_percent.unwrap_or(0.0));
        self.problems = Some(r.problems().count() as u64);
    }

    /// The sources a backup is about to read (so a run that fails before
    /// it stores anything still names them).
    pub fn plan_sources<S: AsRef<str>>(&mut self, names: &[S]) {
        self.sources = names
            .iter()
            .map(|n| SourceRun {
                source: n.as_ref().to_string(),
                ..Default::default()
            })
            .collect();
    }
}

fn gethostname() -> String {
    std::env::var("LIFEBOAT_HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(lifeboat_store::hostname)
}

/// How a run ended, to finish its record.
pub struct Outcome {
    /// Exit status.
    pub exit_code: i32,
    /// The message shown to the user, if it failed.
    pub error: Option<String>,
    /// A drill's per-source table (sealed to the data recipient).
    pub drill: Option<serde_json::Value>,
}

/// Finish `record` with `outcome`, sealing what the backup key may not
/// read with `repo`'s data recipient.
pub fn finish<A: Access>(repo: &Repository<A>, record: &mut RunRecord, outcome: Outcome) {
    record.end = Some(Utc::now());
    record.exit_code = Some(outcome.exit_code);
    let mut detail = RunDetail {
        error: None,
        drill: outcome.drill,
    };
    if let Some(e) = outcome.error {
        if !record.message_sealed() {
            record.error = Some(summary(&e));
        }
        detail.error = Some(e);
    }
    if detail.is_empty() {
        return;
    }
    let seal = |d: &RunDetail| {
        serde_json::to_vec(d).ok().map(|json| {
            base64::engine::general_purpose::STANDARD.encode(repo.seal_for_restore_key(&json))
        })
    };
    record.sealed = seal(&detail);
    // A drill of thousands of tables: its table is left out rather than
    // the record (which must stay under the store's limit).
    if record
        .sealed
        .as_ref()
        .is_some_and(|s| s.len() > lifeboat_store::MAX_RUN_LEN / 2)
    {
        detail.drill = None;
        if let Some(e) = detail.error.as_mut() {
            truncate(e, 16 << 10);
        }
        record.sealed = seal(&detail);
    }
}

/// What the backup key may read of an error message: its first clause,
/// without any word holding a path separator (a file or object name).
pub fn summary(message: &str) -> String {
    let first = message.lines().next().unwrap_or_default();
    let first = first.split(": ").next().unwrap_or_default();
    let mut out: Vec<&str> = Vec::new();
    for word in first.split(' ') {
        match word.contains('/') || word.contains('\\') {
            true if out.last() != Some(&"…") => out.push("…"),
            true => {}
            false => out.push(word),
        }
    }
    let mut s = out.join(" ");
    truncate(&mut s, 300);
    s
}

/// Finish a record without the repository (it could not be opened): only
/// the message's [`summary`] is kept, for backups and captures.
pub fn finish_unsealed(record: &mut RunRecord, exit_code: i32, error: Option<String>) {
    record.end = Some(Utc::now());
    record.exit_code = Some(exit_code);
    if !record.message_sealed() {
        record.error = error.as_deref().map(summary);
    }
}

/// Store a record.
pub fn store<A: Access>(repo: &Repository<A>, record: &RunRecord) -> Result<String> {
    let json = serde_json::to_vec(record).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(repo.write_run(&json)?)
}

/// Longest message kept of a record read back (a forged record may hold
/// a quarter of a megabyte of it).
const MAX_MESSAGE: usize = 2000;

/// Every readable run record, oldest first, with its file name; the
/// number of files that did not read or parse, or are dated ahead of this
/// host's clock by more than the skew allowed (a record from the future
/// would stay "newest" for good). Without `with_sealed` the sealed parts
/// are dropped as they are read (status needs none of them).
pub fn list<A: Access>(
    repo: &Repository<A>,
    with_sealed: bool,
) -> Result<(Vec<(String, RunRecord)>, usize)> {
    let scan = scan(repo, with_sealed)?;
    Ok((scan.listed, scan.unreadable + scan.ahead.len()))
}

/// What one pass over `runs/` found.
struct Scan {
    /// What [`list`] gives, oldest first.
    listed: Vec<(String, RunRecord)>,
    /// Files that do not read, authenticate or parse.
    unreadable: usize,
    /// Readable records dated ahead of the clock (forged).
    ahead: Vec<String>,
}

fn scan<A: Access>(repo: &Repository<A>, with_sealed: bool) -> Result<Scan> {
    let skew = TimeDelta::from_std(lifeboat_store::MAX_CLOCK_SKEW).unwrap_or_default();
    let latest = Utc::now() + skew;
    let mut unreadable = 0;
    let mut ahead = Vec::new();
    let mut out = Vec::new();
    let bad = repo.each_run(|f| match serde_json::from_slice::<RunRecord>(&f.body) {
        Ok(r) if r.version == 1 && (r.start > latest || r.end.is_some_and(|e| e > latest)) => {
            ahead.push(f.name)
        }
        Ok(mut r) if r.version == 1 => {
            r.signed = f.signed;
            if !with_sealed {
                r.sealed = None;
            }
            if let Some(e) = r.error.as_mut() {
                truncate(e, MAX_MESSAGE);
            }
            truncate(&mut r.command, 100);
            truncate(&mut r.host, 255);
            r.tags.truncate(32);
            r.sources.truncate(64);
            for s in &mut r.sources {
                truncate(&mut s.source, 64);
            }
            out.push((f.name, r))
        }
        _ => unreadable += 1,
    })?;
    unreadable += bad.len();
    out.sort_by(|a, b| a.1.start.cmp(&b.1.start).then(a.0.cmp(&b.0)));
    Ok(Scan {
        listed: out,
        unreadable,
        ahead,
    })
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut at = max;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
        s.push('…');
    }
}

/// The sealed part of a record, opened with the restore key.
pub fn detail(repo: &Repository<FullAccess>, record: &RunRecord) -> Option<RunDetail> {
    let text = record.sealed.as_deref()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    let plain = repo
        .open_sealed(
            &bytes,
            lifeboat_store::MAX_RUN_LEN,
            "a run record's sealed part",
        )
        .ok()?;
    serde_json::from_slice(&plain).ok()
}

/// Delete all but the newest `keep` records of each kind; returns how
/// many were deleted.
///
/// Records no one should have written go first, whatever their date:
/// unsigned drills (a drill needs the restore key, which signs) and
/// readable records dated ahead of this host's clock (forged: `list`
/// leaves them out).
pub fn trim(repo: &Repository<FullAccess>, keep: usize) -> Result<usize> {
    let Scan {
        listed: all,
        ahead: mut doomed,
        ..
    } = scan(repo, false)?;
    for kind in RunKind::ALL {
        let mut of: Vec<&String> = Vec::new();
        for (n, r) in all.iter().filter(|(_, r)| r.kind == kind) {
            if kind == RunKind::Drill && !r.signed {
                doomed.push(n.clone());
            } else {
                of.push(n);
            }
        }
        let extra = of.len().saturating_sub(keep);
        doomed.extend(of.into_iter().take(extra).cloned());
    }
    // A bucket lock rule keeps young records: a later trim deletes them.
    let protected = repo.protected_files(lifeboat_store::backend::FileKind::Run)?;
    doomed.retain(|n| !protected.contains_key(n));
    repo.remove_runs(&doomed)?;
    Ok(doomed.len())
}

/// The local journal: a run's record from its start, so a run that is
/// killed, or cannot reach the store, is stored by the next one that can.
/// Files are JSON records (no secret: a sealed part is sealed before it is
/// written), mode 0600, in a private folder.
pub struct Journal {
    dir: PathBuf,
}

/// The journal entry of a run in progress.
pub struct Entry {
    path: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Journaled {
    /// The process that writes it, while the run is in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    process: Option<String>,
    record: RunRecord,
}

impl Journaled {
    /// `record`'s run, in progress in this process.
    fn running(record: &RunRecord) -> Self {
        let pid = std::process::id();
        Journaled {
            pid: Some(pid),
            process: lifeboat_store::process_identity(pid),
            record: record.clone(),
        }
    }
}

impl Journal {
    /// The journal in `dir` (created, private, when first written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Journal { dir: dir.into() }
    }

    fn write(&self, name: &str, j: &Journaled) -> std::io::Result<PathBuf> {
        private_dir(&self.dir)?;
        let path = self.dir.join(name);
        let json = serde_json::to_vec(j).map_err(std::io::Error::other)?;
        let tmp = lifeboat_paths::temp_in(&self.dir)?;
        {
            use std::io::Write as _;
            let mut f = tmp.as_file();
            f.write_all(&json)?;
            f.sync_all()?;
        }
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(path)
    }

    /// Note that `record`'s run started (this process).
    pub fn begin(&self, record: &RunRecord) -> Option<Entry> {
        let pid = std::process::id();
        let name = format!(
            "run-{}-{pid}.json",
            record.start.timestamp_nanos_opt().unwrap_or_default()
        );
        match self.write(&name, &Journaled::running(record)) {
            Ok(path) => Some(Entry { path }),
            Err(e) => {
                tracing::warn!("run journal {}: {e}", self.dir.display());
                None
            }
        }
    }

    /// Write `record` as it now stands into the entry of its run (so a
    /// run killed later still names, say, the sources it was reading).
    pub fn update(&self, entry: &Entry, record: &RunRecord) {
        let Some(name) = entry.path.file_name().and_then(|n| n.to_str()) else {
            return;
        };
        if let Err(e) = self.write(name, &Journaled::running(record)) {
            tracing::warn!("run journal {}: {e}", self.dir.display());
        }
    }

    /// Keep a finished record the store could not take.
    pub fn keep(&self, record: &RunRecord) {
        let name = format!(
            "done-{}-{}.json",
            record.start.timestamp_nanos_opt().unwrap_or_default(),
            std::process::id()
        );
        let j = Journaled {
            pid: None,
            process: None,
            record: record.clone(),
        };
        if let Err(e) = self.write(&name, &j) {
            tracing::warn!("run journal {}: {e}", self.dir.display());
        }
    }

    /// Store what the journal holds: finished records the store could not
    /// take, and runs whose process is gone (stored as never finished).
    /// Returns how many were stored.
    pub fn flush<A: Access>(&self, repo: &Repository<A>, current: Option<&Entry>) -> usize {
        // Only a folder of ours alone: what is in it gets stored, and
        // signed when this run holds a restore key.
        if let Err(e) = check_private(&self.dir) {
            if self.dir.exists() {
                tracing::warn!("run journal not used: {e}");
            }
            return 0;
        }
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut stored = 0;
        for e in dir.flatten() {
            let path = e.path();
            if current.is_some_and(|c| c.path == path) {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".json") || !(name.starts_with("run-") || name.starts_with("done-"))
            {
                continue;
            }
            let Some(j) = read_journaled(&path) else {
                let _ = std::fs::remove_file(&path);
                continue;
            };
            if let Some(pid) = j.pid {
                if lifeboat_store::process_alive(pid, j.process.as_deref()) {
                    continue; // still running
                }
            }
            if store(repo, &j.record).is_ok() {
                let _ = std::fs::remove_file(&path);
                stored += 1;
            }
        }
        stored
    }
}

/// A journal file: a regular file (not a link, a pipe or a device) of at
/// most a record's size.
fn read_journaled(path: &Path) -> Option<Journaled> {
    use std::io::Read as _;
    let m = std::fs::symlink_metadata(path).ok()?;
    if !m.file_type().is_file() || m.len() > lifeboat_store::MAX_RUN_LEN as u64 {
        return None;
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(lifeboat_store::MAX_RUN_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    if bytes.len() > lifeboat_store::MAX_RUN_LEN {
        return None;
    }
    serde_json::from_slice(&bytes).ok()
}

/// Create `dir` (mode 0700) if it is missing, then [`check_private`] it.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(dir).is_err() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir)?;
    }
    check_private(dir)
}

/// `dir` is a real directory (not a link) of this user that no one else
/// may write or read, in a parent no one else may write (or a sticky one,
/// like /tmp): nobody else can plant a record, a link or a pipe in it.
#[cfg(unix)]
fn check_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let bad = |why: &str| {
        std::io::Error::other(format!(
            "{} {why}: the run journal must be a directory of this user's own, mode 0700 \
             (set LIFEBOAT_STATE_DIR to one)",
            dir.display()
        ))
    };
    let m = std::fs::symlink_metadata(dir)?;
    if m.file_type().is_symlink() || !m.is_dir() {
        return Err(bad("is not a directory (a link?)"));
    }
    if me.is_some_and(|me| m.uid() != me) {
        return Err(bad("belongs to another user"));
    }
    if m.mode() & 0o077 != 0 {
        return Err(bad("is open to other users"));
    }
    // No folder on the way may be another user's to change: they could
    // swap the journal for theirs between this check and its use.
    lifeboat_paths::check_trusted_path(dir).map_err(|e| bad(&format!("is not safe ({e})")))
}

#[cfg(not(unix))]
fn check_private(_: &Path) -> std::io::Result<()> {
    Ok(())
}

impl Entry {
    /// The run finished and its record is stored (or kept as `done-`).
    pub fn close(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use lifeboat_store::backend::LocalBackend;
    use lifeboat_store::{InitOptions, RestoreKey};

    use super::*;

    #[test]
    fn records_are_signed_with_the_restore_key_only_and_trim_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(LocalBackend::new(dir.path()));
        let (full, backup_key) = Repository::init(
            backend.clone(),
            &RestoreKey::generate(),
            &InitOptions::default(),
        )
        .unwrap();
        let backup = Repository::open_for_backup(backend, backup_key).unwrap();
        for i in 0..5 {
            let mut r = RunRecord::begin(RunKind::Backup, "backup");
            r.start += chrono::TimeDelta::seconds(i);
            finish_unsealed(&mut r, 0, None);
            store(&backup, &r).unwrap();
        }
        for i in 0..3 {
            let mut r = RunRecord::begin(RunKind::Drill, "drill");
            r.start += chrono::TimeDelta::seconds(i);
            finish(
                &full,
                &mut r,
                Outcome {
                    exit_code: 4,
                    error: Some("table `patients` differs".into()),
                    drill: Some(serde_json::json!({"sources": []})),
                },
            );
            // The restore-key command's message is sealed, not in the clear.
            assert!(r.error.is_none());
            assert!(r.sealed.is_some());
            store(&full, &r).unwrap();
        }
        let (all, bad) = list(&backup, true).unwrap();
        assert_eq!((all.len(), bad), (8, 0));
        for (_, r) in &all {
            assert_eq!(r.signed, r.kind == RunKind::Drill, "{r:?}");
        }
        let drill = &all
            .iter()
            .find(|(_, r)| r.kind == RunKind::Drill)
            .unwrap()
            .1;
        let d = detail(&full, drill).unwrap();
        assert_eq!(d.error.as_deref(), Some("table `patients` differs"));
        assert_eq!(trim(&full, 2).unwrap(), 4);
        let (left, _) = list(&backup, true).unwrap();
        let starts = |k: RunKind| -> Vec<DateTime<Utc>> {
            left.iter()
                .filter(|(_, r)| r.kind == k)
                .map(|(_, r)| r.start)
                .collect()
        };
        let newest = |k: RunKind| -> Vec<DateTime<Utc>> {
            let mut v: Vec<_> = all
                .iter()
                .filter(|(_, r)| r.kind == k)
                .map(|(_, r)| r.start)
                .collect();
            v.drain(..v.len() - 2);
            v
        };
        assert_eq!(starts(RunKind::Backup), newest(RunKind::Backup));
        assert_eq!(starts(RunKind::Drill), newest(RunKind::Drill));
    }

    #[test]
    fn a_journal_stores_what_a_killed_or_cut_off_run_left() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(LocalBackend::new(dir.path().join("repo")));
        let (full, _) =
            Repository::init(backend, &RestoreKey::generate(), &InitOptions::default()).unwrap();
        let journal = Journal::new(dir.path().join("journal"));
        // A run of a process that is gone (pid 0 never is ours).
        let gone = Journaled {
            pid: Some(u32::MAX - 1),
            process: None,
            record: RunRecord::begin(RunKind::Verify, "verify"),
        };
        journal.write("run-1-4294967294.json", &gone).unwrap();
        // A finished record the store did not take.
        let mut done = RunRecord::begin(RunKind::Prune, "prune");
        finish_unsealed(&mut done, 7, Some("unreachable".into()));
        journal.keep(&done);
        // This process's own run stays.
        let mine = RunRecord::begin(RunKind::Backup, "backup");
        let entry = journal.begin(&mine).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("journal"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
        assert_eq!(journal.flush(&full, None), 2);
        let (all, _) = list(&full, true).unwrap();
        let kinds: Vec<RunKind> = all.iter().map(|(_, r)| r.kind).collect();
        assert_eq!(kinds.len(), 2);
        assert!(kinds.contains(&RunKind::Verify) && kinds.contains(&RunKind::Prune));
        let verify = &all
            .iter()
            .find(|(_, r)| r.kind == RunKind::Verify)
            .unwrap()
            .1;
        assert_eq!((verify.end, verify.exit_code), (None, None));
        // A restore-key command's message is dropped without the store.
        let prune = &all
            .iter()
            .find(|(_, r)| r.kind == RunKind::Prune)
            .unwrap()
            .1;
        assert_eq!((prune.exit_code, prune.error.as_deref()), (Some(7), None));
        entry.close();
        assert_eq!(
            std::fs::read_dir(dir.path().join("journal"))
                .unwrap()
                .count(),
            0
        );
    }
}

#[cfg(test)]
mod summary_tests {
    #[test]
    fn the_summary_names_no_path_or_object() {
        assert_eq!(
            super::summary("objects backup failed: reading /up/patient-4711.pdf: denied"),
            "objects backup failed"
        );
        assert_eq!(
            super::summary("no repository at /var/backups/x (config missing)\nmore"),
            "no repository at … (config missing)"
        );
        assert_eq!(
            super::summary("the command exited with status 3: echo ... (arguments not shown)"),
            "the command exited with status 3"
        );
    }
}

#[cfg(all(test, target_os = "linux"))]
mod journal_tests {
    use std::sync::Arc;

    use lifeboat_store::backend::LocalBackend;
    use lifeboat_store::{InitOptions, RestoreKey};

    use super::*;

    /// Links, pipes and huge files in the journal are skipped, never read
    /// (a pipe would hang the run, /dev/zero fill its memory); a journal
    /// folder that is a link, or another user's, is not used at all.
    #[test]
    fn a_journal_someone_else_could_write_is_not_believed() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(LocalBackend::new(dir.path().join("repo")));
        let (full, _) =
            Repository::init(backend, &RestoreKey::generate(), &InitOptions::default()).unwrap();
        let jdir = dir.path().join("journal");
        let journal = Journal::new(&jdir);
        let mut r = RunRecord::begin(RunKind::Drill, "drill");
        finish_unsealed(&mut r, 0, None);
        journal.keep(&r);
        std::os::unix::fs::symlink("/dev/zero", jdir.join("done-1-1.json")).unwrap();
        let fifo = jdir.join("done-2-2.json");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        // Only the real record is stored.
        assert_eq!(journal.flush(&full, None), 1);
        assert_eq!(list(&full, false).unwrap().0.len(), 1);

        // The journal folder a link to elsewhere: not written, not read.
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let linked = dir.path().join("linked");
        std::os::unix::fs::symlink(&elsewhere, &linked).unwrap();
        let j2 = Journal::new(&linked);
        assert!(j2
            .begin(&RunRecord::begin(RunKind::Backup, "backup"))
            .is_none());
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);

        // Another user's folder (when the test may give one away).
        let theirs = dir.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        let given = std::process::Command::new("chown")
            .args(["65534", theirs.to_str().unwrap()])
            .status()
            .is_ok_and(|s| s.success());
        if given {
            let j3 = Journal::new(&theirs);
            std::fs::write(
                theirs.join("done-3-3.json"),
                serde_json::to_vec(&serde_json::json!({"record": r})).unwrap(),
            )
            .unwrap();
            assert_eq!(j3.flush(&full, None), 0);
            assert!(j3
                .begin(&RunRecord::begin(RunKind::Backup, "backup"))
                .is_none());
        }
    }
}
