//! Backups: the configured sources into one snapshot, or one stream (a
//! command's output, standard input, files) as one item.
//!
//! A source that fails leaves the others to be stored, in a snapshot
//! tagged `partial` whose summary carries the failure; a failure of the
//! repository, or of the only source, stores nothing. The MySQL row-hash
//! cache becomes the next dump's only once the snapshot is committed: the
//! dump hands back a [`PendingCache`], kept here with the committed
//! snapshot's id and discarded otherwise (when dropped).

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use lifeboat_mysql::PendingCache;
use lifeboat_objects::ObjectsBackupOptions;
use lifeboat_store::{
    Access, BackupSession, Classify, ErrorClass, ProgressBars, Repository, Snapshot, SnapshotId,
};

use crate::error::{Error, Result, SourceFailure};
use crate::SourceKind;

/// What to back up from one source, ready to run.
pub enum SourcePlan {
    /// A database (or several, on one snapshot).
    Mysql(lifeboat_mysql::DumpOptions),
    /// A bucket or an upload directory.
    Objects {
        /// Where.
        source: lifeboat_objects::Source,
        /// How.
        options: ObjectsBackupOptions,
    },
    /// A Render account.
    Render(lifeboat_render::Client),
    /// git repositories.
    Git(Vec<lifeboat_git::GitRepoOptions>),
}

impl SourcePlan {
    /// Which source.
    pub fn kind(&self) -> SourceKind {
        match self {
            SourcePlan::Mysql(_) => SourceKind::Mysql,
            SourcePlan::Objects { .. } => SourceKind::Objects,
            SourcePlan::Render(_) => SourceKind::Render,
            SourcePlan::Git(_) => SourceKind::Git,
        }
    }
}

/// Options of [`backup`].
pub struct BackupOptions {
    /// Tags, host, note of the snapshot.
    pub snapshot: lifeboat_store::BackupOptions,
    /// The sources, in the order they run.
    pub sources: Vec<SourcePlan>,
    /// Derive the MySQL part from the stored binlog when a full read is
    /// not due ([`derive_mysql`](crate::pitr::derive_mysql)); `None`:
    /// always a full read.
    pub derive_mysql: Option<crate::pitr::DeriveOptions>,
}

/// What a backup stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupReport {
    /// The snapshot's id.
    pub id: SnapshotId,
    /// The snapshot.
    pub snapshot: Snapshot,
    /// Sources that failed; the snapshot is then tagged `partial` and
    /// holds the others.
    pub failed: Vec<SourceFailure>,
    /// Stored, but worth a look (many objects gone from the bucket).
    pub warnings: Vec<String>,
    /// The MySQL part was derived from the stored binlog: what it records.
    pub mysql_derived: Option<crate::pitr::Derived>,
    /// Derivation was asked for but a full read was made: why.
    pub mysql_full_read: Option<String>,
}

impl BackupReport {
    /// A source failed: the snapshot holds only the others.
    pub fn is_partial(&self) -> bool {
        !self.failed.is_empty()
    }
}

/// Back up every source of `opts` into one snapshot.
pub fn backup<A: Access>(
    repo: &Repository<A>,
    opts: BackupOptions,
    bars: &dyn ProgressBars,
) -> Result<BackupReport> {
    if opts.sources.is_empty() {
        return Err(Error::Invalid("no source to back up".into()));
    }
    let count = opts.sources.len();
    let mut session = repo.begin_backup(opts.snapshot)?;
    let mut caches = Vec::new();
    let mut warnings = Vec::new();
    let mut failed = Vec::new();
    let mut mysql_derived = None;
    let mut mysql_full_read = None;
    for plan in opts.sources {
        let kind = plan.kind();
        let derive = match (&plan, &opts.derive_mysql) {
            (SourcePlan::Mysql(_), Some(d)) => Some(d),
            _ => None,
        };
        let result = match derive.map(|d| crate::pitr::derive_mysql(repo, d, bars)) {
            Some(Ok(Ok(d))) => {
                tracing::info!(
                    "mysql: derived from full snapshot {} and the stored binlog up to {} (run {}): no rows read",
                    d.base.short(),
                    d.end,
                    d.run.short()
                );
                record_derived(&mut session, &d).map(|()| {
                    mysql_derived = Some(d);
                    SourceDone {
                        cache: None,
                        warning: None,
                    }
                })
            }
            Some(Err(e)) => Err(e),
            Some(Ok(Err(why))) => {
                tracing::info!("mysql: a full read: {why}");
                mysql_full_read = Some(why);
                back_up_source(&mut session, repo, plan, bars)
            }
            None => back_up_source(&mut session, repo, plan, bars),
        };
        match result {
            Ok(done) => {
                caches.extend(done.cache);
                warnings.extend(done.warning);
            }
            // A broken repository or bad options end the run, as does the
            // failure of the only source; a failing source among several
            // leaves the others to be stored.
            Err(e) if count > 1 && goes_on(e.class()) => {
                let message = crate::chain(&e);
                tracing::error!("{kind} failed, the other sources go on: {message}");
                session.set_source_failed(kind.name(), &message);
                failed.push(SourceFailure {
                    source: kind,
                    message,
                    class: e.class(),
                });
            }
            Err(e) => {
                session.abort();
                return Err(Error::Source {
                    kind,
                    error: Box::new(e),
                });
            }
        }
    }
    if failed.len() == count {
        session.abort();
        return Err(Error::AllSourcesFailed(failed));
    }
    // Dropped unkept if the commit fails: the caches are discarded.
    let (id, snapshot) = session.commit()?;
    for cache in caches {
        cache.keep(&id);
    }
    // A full read where nights are derived: the binlog up to its
    // coordinates stored at once, so the proof that the nights before it
    // were right (`restore --from-binlog`) can run now.
    if let (Some(d), Some(_)) = (&opts.derive_mysql, &mysql_full_read) {
        let capture = crate::pitr::BinlogOptions {
            capture: d.capture.clone(),
            hostname: d.hostname.clone(),
        };
        if let Err(e) = crate::pitr::capture_binlog(repo, &capture, bars) {
            warnings.push(format!(
                "mysql: the binlog after the full read could not be stored ({e}); the next \
                 backup or `lifeboat binlog` stores it"
            ));
        }
    }
    Ok(BackupReport {
        id,
        snapshot,
        failed,
        warnings,
        mysql_derived,
        mysql_full_read,
    })
}

/// The MySQL part of the snapshot is `d`: its facts, no item.
fn record_derived<A: Access>(
    session: &mut BackupSession<A>,
    d: &crate::pitr::Derived,
) -> Result<()> {
    let value = serde_json::to_value(d)
        .map_err(|e| Error::Invalid(format!("recording the derived MySQL backup: {e}")))?;
    let mut facts = serde_json::Map::new();
    facts.insert(crate::pitr::DERIVED.to_string(), value);
    session.set_source_facts(lifeboat_mysql::SOURCE, serde_json::Value::Object(facts));
    Ok(())
}

/// Whether a failure of one source lets the others go on.
fn goes_on(class: ErrorClass) -> bool {
    matches!(
        class,
        ErrorClass::Source | ErrorClass::Local | ErrorClass::Internal
    )
}

/// What one source left to do once the snapshot is committed.
struct SourceDone {
    cache: Option<PendingCache>,
    warning: Option<String>,
}

fn back_up_source<A: Access>(
    session: &mut BackupSession<A>,
    repo: &Repository<A>,
    plan: SourcePlan,
    bars: &dyn ProgressBars,
) -> Result<SourceDone> {
    let mut done = SourceDone {
        cache: None,
        warning: None,
    };
    match plan {
        SourcePlan::Mysql(opts) => {
            let dump = lifeboat_mysql::dump(session, repo, &opts, bars)?;
            let h = &dump.row_hashes;
            tracing::info!(
                "mysql: row-hash records of {} table(s) from the local cache, {} from the store, {} without; \
                 stored {} whole and {} as deltas ({} bytes)",
                h.from_disk,
                h.from_store,
                h.none,
                h.stored_full,
                h.stored_delta,
                h.stored_bytes
            );
            for r in &dump.reports {
                let rows: u64 = r.tables.iter().map(|t| t.1).sum();
                tracing::info!(
                    "mysql: {} tables, {rows} rows, {} objects from {} ({}; {} connection(s))",
                    r.tables.len(),
                    r.objects,
                    r.database,
                    r.server_version,
                    r.connections
                );
            }
            done.cache = dump.cache;
        }
        SourcePlan::Objects { source, options } => {
            let r = lifeboat_objects::backup(session, repo, &source, &options, bars)?;
            tracing::info!(
                "objects: {} objects ({} bytes) from {}: {} carried over, {} read ({} bytes), {} GETs",
                r.objects,
                r.bytes,
                r.location,
                r.carried,
                r.fetched,
                r.fetched_bytes,
                r.requests.gets
            );
            for key in &r.vanished {
                tracing::warn!(
                    "objects: {key} was deleted while the backup ran; not in the snapshot"
                );
            }
            done.warning = r.alarm;
        }
        SourcePlan::Render(client) => {
            let r = lifeboat_render::backup(session, &client)?;
            let c = r.counts;
            tracing::info!(
                "render: {} services, {} env vars, {} secret files, {} env groups, {} custom domains ({} requests, {} rate-limited, {} retried)",
                c.services,
                c.env_vars,
                c.secret_files,
                c.env_groups,
                c.custom_domains,
                r.requests.sent,
                r.requests.rate_limited,
                r.requests.retried
            );
        }
        SourcePlan::Git(repos) => {
            for r in lifeboat_git::backup(session, repo, &repos)? {
                if r.unchanged {
                    tracing::info!("git: {}: {} refs unchanged, nothing stored", r.name, r.refs);
                } else {
                    tracing::info!(
                        "git: {}: {} refs, {} bundle of {} bytes (verified), chain of {}",
                        r.name,
                        r.refs,
                        if r.full { "full" } else { "incremental" },
                        r.bundle_bytes,
                        r.chain
                    );
                }
            }
        }
    }
    Ok(done)
}

/// What a stream backup reads.
pub enum StreamInput<'a> {
    /// The standard output of `sh -c COMMAND` (item source `command`); a
    /// command that exits non-zero or is killed stores nothing.
    Command(&'a str),
    /// A reader, e.g. standard input (item source `stdin`).
    Reader(&'a mut dyn Read),
    /// Files, one item each, named by their paths (item source `file`).
    Files(&'a [PathBuf]),
}

/// Back up one stream as item `name` (files: one item per file) and
/// commit a snapshot. A failing input stores nothing.
pub fn backup_stream<A: Access>(
    repo: &Repository<A>,
    opts: lifeboat_store::BackupOptions,
    input: StreamInput<'_>,
    name: Option<&str>,
    bars: &dyn ProgressBars,
) -> Result<(SnapshotId, Snapshot)> {
    let bar = bars.bytes("backup");
    let mut session = repo.begin_backup(opts)?;
    let item_name = || name.ok_or_else(|| Error::Invalid("--item NAME is required".into()));
    match input {
        StreamInput::Files(paths) => {
            for path in paths {
                let shown = path.display().to_string();
                let mut f = std::fs::File::open(path)
                    .map_err(|e| Error::Input(format!("opening {shown}: {e}")))?;
                let mut item = session.item("file", &shown, "file", &*bar)?;
                copy(&mut f, &mut |b| item.push(b).map_err(Into::into))?;
                item.finish(serde_json::Value::Null)?;
            }
        }
        StreamInput::Reader(reader) => {
            let name = item_name()?;
            let mut item = session.item("stdin", name, "stream", &*bar)?;
            copy(reader, &mut |b| item.push(b).map_err(Into::into))?;
            item.finish(serde_json::Value::Null)?;
        }
        StreamInput::Command(cmd) => {
            let name = item_name()?;
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| Error::Input(format!("starting the command: {e}")))?;
            let mut out = child
                .stdout
                .take()
                .ok_or_else(|| Error::Input("the command has no standard output".into()))?;
            let mut item = session.item("command", name, "stream", &*bar)?;
            let copied = copy(&mut out, &mut |b| item.push(b).map_err(Into::into));
            drop(out);
            if let Err(e) = copied {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
            let status = child
                .wait()
                .map_err(|e| Error::Input(format!("waiting for the command: {e}")))?;
            if !status.success() {
                // Only the program's name: its arguments may hold a password
                // (`mariadb-dump -pSECRET`), and this message reaches logs
                // and notifications.
                let program = cmd.split_whitespace().next().unwrap_or("");
                return Err(Error::Input(format!(
                    "the command {}: {program} ... (arguments not shown)",
                    describe_status(status)
                )));
            }
            item.finish(serde_json::json!({ "command": cmd }))?;
        }
    }
    let committed = session.commit()?;
    bar.finish();
    Ok(committed)
}

/// Read `from` to its end in 1 MiB pieces; a read error is the input's.
fn copy(from: &mut dyn Read, to: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => to(&buf[..n])?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Input(format!("reading the input: {e}"))),
        }
    }
}

fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = status.signal() {
        return format!("was killed by signal {sig}");
    }
    match status.code() {
        Some(c) => format!("exited with status {c}"),
        None => "failed".into(),
    }
}
