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
use chrono::{DateTime, Utc};
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
    /// The error shown to the user, for commands run with the backup key
    /// (their host printed it; it is that host's to read). Restore-key
    /// commands keep theirs in [`RunDetail`].
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
    match (outcome.error, record.message_sealed()) {
        (Some(e), true) => detail.error = Some(e),
        (e, false) => record.error = e,
        (None, true) => {}
    }
    if !detail.is_empty() {
        if let Ok(json) = serde_json::to_vec(&detail) {
            let sealed = repo.seal_for_restore_key(&json);
            record.sealed = Some(base64::engine::general_purpose::STANDARD.encode(sealed));
        }
    }
}

/// Finish a record without the repository (it could not be opened): a
/// restore-key command's message is then dropped, not kept in the clear.
pub fn finish_unsealed(record: &mut RunRecord, exit_code: i32, error: Option<String>) {
    record.end = Some(Utc::now());
    record.exit_code = Some(exit_code);
    if !record.message_sealed() {
        record.error = error;
    }
}

/// Store a record.
pub fn store<A: Access>(repo: &Repository<A>, record: &RunRecord) -> Result<String> {
    let json = serde_json::to_vec(record).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(repo.write_run(&json)?)
}

/// Every readable run record, oldest first, with its file name; the
/// number of files that did not read or parse.
pub fn list<A: Access>(repo: &Repository<A>) -> Result<(Vec<(String, RunRecord)>, usize)> {
    let (files, bad) = repo.runs()?;
    let mut unreadable = bad.len();
    let mut out = Vec::new();
    for f in files {
        match serde_json::from_slice::<RunRecord>(&f.body) {
            Ok(mut r) if r.version == 1 => {
                r.signed = f.signed;
                out.push((f.name, r))
            }
            _ => unreadable += 1,
        }
    }
    out.sort_by(|a, b| a.1.start.cmp(&b.1.start).then(a.0.cmp(&b.0)));
    Ok((out, unreadable))
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
pub fn trim(repo: &Repository<FullAccess>, keep: usize) -> Result<usize> {
    let (all, _) = list(repo)?;
    let mut doomed = Vec::new();
    for kind in RunKind::ALL {
        let of: Vec<&String> = all
            .iter()
            .filter(|(_, r)| r.kind == kind)
            .map(|(n, _)| n)
            .collect();
        let extra = of.len().saturating_sub(keep);
        doomed.extend(of.into_iter().take(extra).cloned());
    }
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

impl Journal {
    /// The journal in `dir` (created, private, when first written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Journal { dir: dir.into() }
    }

    fn write(&self, name: &str, j: &Journaled) -> std::io::Result<PathBuf> {
        lifeboat_store::create_private_dir(&self.dir)?;
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
        let j = Journaled {
            pid: Some(pid),
            process: lifeboat_store::process_identity(pid),
            record: record.clone(),
        };
        match self.write(&name, &j) {
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
        let pid = std::process::id();
        let j = Journaled {
            pid: Some(pid),
            process: lifeboat_store::process_identity(pid),
            record: record.clone(),
        };
        if let Err(e) = self.write(name, &j) {
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

fn read_journaled(path: &Path) -> Option<Journaled> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() > lifeboat_store::MAX_RUN_LEN {
        return None;
    }
    serde_json::from_slice(&bytes).ok()
}

impl Entry {
    /// The run finished and its record is stored (or kept as `done-`).
    pub fn close(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
