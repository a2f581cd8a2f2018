//! One module per command; this one holds what they share: opening the
//! repository with whichever key the user gave.

/// `println!` that returns an error instead of panicking when stdout is
/// closed (`lifeboat snapshots | head`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*).map_err(anyhow::Error::from)
    }};
}

/// Run `$body` with `$r` bound to the repository, whichever key opened it.
macro_rules! with_repo {
    ($repo:expr, $r:ident => $body:expr) => {
        match &$repo {
            $crate::commands::AnyRepo::Backup($r) => $body,
            $crate::commands::AnyRepo::Full($r) => $body,
        }
    };
}

mod backup;
mod binlog;
mod check;
mod copy;
mod daemon;
mod drill;
mod git;
mod init;
mod key;
mod mysql;
mod objects;
mod plan;
mod premigration;
mod read;
mod render;
mod restore;
mod retention;
mod status;
mod verify;

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use lifeboat_store::backend::{open_backend, Backend, S3Options};
use lifeboat_store::secrecy::SecretString;
use lifeboat_store::{BackupAccess, BackupKey, FullAccess, Repository, RestoreKey};

use crate::cli::{Cli, Command, Global, KeyCommand, RepairCommand};
use crate::exit::{self, Code};
use crate::progress::Bars;

/// What every command gets.
pub struct Ctx {
    pub global: Global,
    pub bars: Bars,
    /// Source and staging sections of the config file.
    pub config: crate::config::Config,
    /// The record of this run, for commands that leave one (see
    /// [`lifeboat_ops::runs`]); commands fill it with [`Ctx::note`].
    run: std::cell::RefCell<Option<lifeboat_ops::runs::RunRecord>>,
    /// A drill's per-source table, for the record's sealed part.
    run_drill: std::cell::RefCell<Option<serde_json::Value>>,
    /// The local journal, and this run's entry in it.
    journal: Option<lifeboat_ops::runs::Journal>,
    entry: std::cell::RefCell<Option<lifeboat_ops::runs::Entry>>,
    /// The repository as the command opened it (the record is written
    /// through it, without opening it again).
    opened: std::cell::RefCell<Option<AnyRepo>>,
}

pub fn run(mut cli: Cli) -> Result<Code> {
    let mut config = match cli.global.config.clone() {
        Some(path) => crate::config::Config::load(&path)?,
        None => crate::config::Config::default(),
    };
    apply_config(&mut cli.global, std::mem::take(&mut config.repository));
    // Before anything is recorded: a refused admin command did not run.
    if let Some(name) = deletes(&cli.command).filter(|_| cli.global.append_only) {
        return Err(exit::usage(format!(
            "{name} deletes or rewrites files in the store, and this host is append-only \
             (--append-only, LIFEBOAT_APPEND_ONLY or [repository] append_only): run it on an \
             admin host whose credentials may delete"
        )));
    }
    let recorded = recorded(&cli.command);
    let journal = match recorded {
        Some(_) => journal_dir(cli.global.repo.as_deref()).map(lifeboat_ops::runs::Journal::new),
        None => None,
    };
    let ctx = Ctx {
        bars: Bars::new(cli.global.quiet || cli.global.json),
        global: cli.global,
        config,
        run: Default::default(),
        run_drill: Default::default(),
        journal,
        entry: Default::default(),
        opened: Default::default(),
    };
    let Some((kind, command, journaled)) = recorded else {
        return dispatch(&ctx, cli.command);
    };
    let record = lifeboat_ops::runs::RunRecord::begin(kind, command);
    if let (Some(j), true) = (&ctx.journal, journaled) {
        *ctx.entry.borrow_mut() = j.begin(&record);
    }
    *ctx.run.borrow_mut() = Some(record);
    let result = dispatch(&ctx, cli.command);
    finish_run(&ctx, &result);
    result
}

/// Commands that leave a run record: their kind, their name as recorded,
/// and whether the journal notes their start (so a kill is recorded).
/// `binlog --follow` is not journaled: the daemon stops it on purpose
/// around a prune.
fn recorded(command: &Command) -> Option<(lifeboat_ops::runs::RunKind, String, bool)> {
    use lifeboat_ops::runs::RunKind;
    Some(match command {
        Command::Backup(_) => (RunKind::Backup, "backup".into(), true),
        Command::SnapshotBeforeMigration(_) => {
            (RunKind::Backup, "snapshot-before-migration".into(), true)
        }
        Command::Binlog(a) if a.follow => (RunKind::Binlog, "binlog --follow".into(), false),
        Command::Binlog(_) => (RunKind::Binlog, "binlog".into(), true),
        Command::Drill(_) => (RunKind::Drill, "drill".into(), true),
        Command::Verify(a) if a.read_data => (RunKind::Verify, "verify --read-data".into(), true),
        Command::Verify(a) if a.read_data_subset.is_some() => {
            (RunKind::Verify, "verify --read-data-subset".into(), true)
        }
        Command::Verify(_) => (RunKind::Verify, "verify".into(), true),
        // A dry run changes nothing, in the store either.
        Command::Forget(a) if a.dry_run => return None,
        Command::Prune(a) if a.dry_run => return None,
        Command::Forget(_) => (RunKind::Forget, "forget".into(), true),
        Command::Prune(_) => (RunKind::Prune, "prune".into(), true),
        _ => return None,
    })
}

/// Where the run journal of this repository lives: `LIFEBOAT_STATE_DIR`,
/// else `$XDG_STATE_HOME/lifeboat`, else `~/.local/state/lifeboat`; then
/// `journal/<first 16 hex digits of SHA-256(repository URL)>`.
fn journal_dir(repo: Option<&str>) -> Option<std::path::PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from)
    };
    let root = env("LIFEBOAT_STATE_DIR")
        .or_else(|| env("XDG_STATE_HOME").map(|d| d.join("lifeboat")))
        .or_else(|| env("HOME").map(|d| d.join(".local").join("state").join("lifeboat")))?;
    let url = repo?;
    let key = lifeboat_store::sha256_hex(url.as_bytes());
    Some(root.join("journal").join(&key[..16]))
}

/// Finish, store (or journal) this run's record, then store what the
/// journal kept from earlier runs. Never changes the command's outcome.
fn finish_run(ctx: &Ctx, result: &Result<Code>) {
    use lifeboat_ops::runs;
    let journal = ctx.journal.as_ref();
    let entry = ctx.entry.borrow_mut().take();
    let Some(mut record) = ctx.run.borrow_mut().take() else {
        return;
    };
    let (code, message) = match result {
        Ok(code) => (*code as i32, None),
        Err(e) => (exit::classify(e).0 as i32, Some(exit::render(e))),
    };
    let opened = ctx.opened.borrow().clone();
    let repo = match opened {
        Some(r) => Ok(r),
        None => match record.kind {
            runs::RunKind::Backup | runs::RunKind::Binlog => ctx.open_for_backup(),
            _ => ctx.open_any(),
        },
    };
    let outcome = runs::Outcome {
        exit_code: code,
        error: message,
        drill: ctx.run_drill.borrow_mut().take(),
    };
    let stored = match &repo {
        Ok(repo) => {
            with_repo!(repo, r => runs::finish(r, &mut record, outcome));
            with_repo!(repo, r => runs::store(r, &record)).map_err(|e| e.to_string())
        }
        Err(e) => {
            runs::finish_unsealed(&mut record, code, outcome.error);
            Err(exit::render(e))
        }
    };
    if let Err(why) = stored {
        match journal {
            Some(j) => {
                j.keep(&record);
                tracing::warn!(
                    "the run record could not be stored ({why}); kept in the local journal for \
                     the next run"
                );
            }
            None => tracing::warn!("the run record could not be stored: {why}"),
        }
    }
    if let Some(e) = entry {
        e.close();
    }
    if let (Some(j), Ok(repo)) = (journal, &repo) {
        let n = with_repo!(repo, r => j.flush(r, None));
        if n > 0 {
            tracing::info!("stored {n} run record(s) kept in the local journal");
        }
    }
}

impl Ctx {
    /// Add to this run's record.
    pub fn note(&self, f: impl FnOnce(&mut lifeboat_ops::runs::RunRecord)) {
        if let Some(r) = self.run.borrow_mut().as_mut() {
            f(r);
            if let (Some(j), Some(e)) = (&self.journal, self.entry.borrow().as_ref()) {
                j.update(e, r);
            }
        }
    }

    /// Keep a drill's per-source table for the record's sealed part.
    pub fn note_drill(&self, report: &lifeboat_ops::drill::DrillReport) {
        let mut detail = None;
        self.note(|r| detail = Some(r.note_drill(report)));
        *self.run_drill.borrow_mut() = detail;
    }

    fn remember(&self, repo: AnyRepo) {
        let mut opened = self.opened.borrow_mut();
        // A full handle wins: it seals nothing differently, but it is the
        // one restore-key commands hold.
        if opened.is_none() || matches!(repo, AnyRepo::Full(_)) {
            *opened = Some(repo);
        }
    }
}

/// The commands that delete or rewrite files in the store: an admin
/// host's, refused on an append-only one before they start.
fn deletes(command: &Command) -> Option<&'static str> {
    Some(match command {
        Command::Forget(_) => "forget",
        Command::Prune(_) => "prune",
        Command::Unlock => "unlock",
        Command::Repair(_) => "repair",
        Command::Upgrade(_) => "upgrade",
        Command::Key(KeyCommand::Add { .. }) => "key add",
        Command::Key(KeyCommand::Remove { .. }) => "key remove",
        _ => return None,
    })
}

fn dispatch(ctx: &Ctx, command: Command) -> Result<Code> {
    match command {
        Command::Init(a) => init::run(ctx, a),
        Command::Copy(a) => copy::run(ctx, &a),
        Command::Backup(a) => backup::run(ctx, a),
        Command::Snapshots => read::snapshots(ctx),
        Command::Status(a) => status::run(ctx, &a),
        Command::Report(a) => status::report(ctx, &a),
        Command::Binlog(a) => binlog::run(ctx, &a),
        Command::Show(a) => read::show(ctx, a),
        Command::Restore(a) => restore::run(ctx, *a),
        Command::Verify(a) => verify::run(ctx, a),
        Command::CheckReferences(a) => check::run(ctx, a),
        Command::Export(a) => mysql::export(ctx, a),
        Command::Diff(a) => render::diff(ctx, a),
        Command::Drill(a) => drill::run(ctx, &a),
        Command::Daemon(a) => daemon::run(ctx, &a),
        Command::SnapshotBeforeMigration(a) => premigration::run(ctx, a),
        Command::Forget(a) => retention::forget(ctx, a),
        Command::Prune(a) => retention::prune(ctx, &a),
        Command::Key(k) => key::run(ctx, k),
        Command::Unlock => read::unlock(ctx),
        Command::Repair(RepairCommand::Index { dry_run }) => verify::repair_index(ctx, dry_run),
        Command::Repair(RepairCommand::Undelete { as_of }) => verify::undelete(ctx, as_of),
        Command::Upgrade(a) => key::upgrade(ctx, &a),
    }
}

/// Fill what the command line left unset from the config file.
fn apply_config(g: &mut Global, r: crate::config::RepositoryConfig) {
    g.repo = g.repo.take().or(r.url);
    g.backup_key_file = g.backup_key_file.take().or(r.backup_key_file);
    g.restore_key_file = g.restore_key_file.take().or(r.restore_key_file);
    g.s3.s3_endpoint = g.s3.s3_endpoint.take().or(r.endpoint);
    g.s3.s3_region = g.s3.s3_region.take().or(r.region);
    g.s3.s3_connections = g.s3.s3_connections.or(r.connections);
    g.append_only |= r.append_only;
    g.immutable_days = g.immutable_days.or(r.immutable_days);
    g.s3_access_key_id = r.access_key_id;
    g.s3_secret_access_key = r.secret_access_key;
}

/// Read a restore key file, asking for its passphrase (from `env`, else
/// the terminal with `prompt`) only when it is protected.
pub fn load_restore_key_file(path: &Path, env: &str, prompt: &str) -> Result<RestoreKey> {
    let pass = if RestoreKey::file_needs_passphrase(path)? {
        Some(passphrase(env, prompt, false)?)
    } else {
        None
    };
    Ok(RestoreKey::load(path, pass.as_ref())?)
}

/// Either handle: read commands take whichever key is at hand.
#[derive(Clone)]
pub enum AnyRepo {
    Backup(Repository<BackupAccess>),
    Full(Repository<FullAccess>),
}

impl AnyRepo {
    /// The repository's id.
    pub fn id(&self) -> &str {
        with_repo!(self, r => &r.config().id)
    }
}

impl Ctx {
    pub fn backend(&self) -> Result<Arc<dyn Backend>> {
        let url =
            self.global.repo.as_deref().ok_or_else(|| {
                exit::usage("no repository given: pass --repo or set LIFEBOAT_REPO")
            })?;
        self.backend_at(url)
    }

    /// The backend at `url` with the repository's S3 settings.
    pub fn backend_at(&self, url: &str) -> Result<Arc<dyn Backend>> {
        let s3 = S3Options {
            endpoint: self.global.s3.s3_endpoint.clone(),
            region: self.global.s3.s3_region.clone(),
            connections: self.global.s3.s3_connections,
            access_key_id: self.global.s3_access_key_id.clone(),
            secret_access_key: self.global.s3_secret_access_key.clone(),
            ..Default::default()
        };
        self.open_url(url, &s3)
    }

    /// A replica's backend: `url` with the replica's S3 settings (flags,
    /// then `[copy]`, then the repository's own).
    pub fn replica_backend(
        &self,
        url: &str,
        args: &crate::cli::ReplicaS3Args,
    ) -> Result<Arc<dyn Backend>> {
        let copy = self.config.copy()?.as_ref();
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let s3 = S3Options {
            endpoint: args
                .to_s3_endpoint
                .clone()
                .or_else(|| copy.and_then(|c| c.endpoint.clone()))
                .or_else(|| self.global.s3.s3_endpoint.clone()),
            region: args
                .to_s3_region
                .clone()
                .or_else(|| copy.and_then(|c| c.region.clone()))
                .or_else(|| self.global.s3.s3_region.clone()),
            connections: copy
                .and_then(|c| c.connections)
                .or(self.global.s3.s3_connections),
            access_key_id: env("LIFEBOAT_COPY_ACCESS_KEY_ID")
                .or_else(|| copy.and_then(|c| c.access_key_id.clone()))
                .or_else(|| self.global.s3_access_key_id.clone()),
            secret_access_key: env("LIFEBOAT_COPY_SECRET_ACCESS_KEY")
                .or_else(|| copy.and_then(|c| c.secret_access_key.clone()))
                .or_else(|| self.global.s3_secret_access_key.clone()),
            ..Default::default()
        };
        self.open_url(url, &s3)
    }

    /// The backend at `url`, refusing deletes here when this host is
    /// append-only, and those of files a bucket lock rule protects.
    fn open_url(&self, url: &str, s3: &S3Options) -> Result<Arc<dyn Backend>> {
        use lifeboat_store::backend::{AppendOnly, Immutability, Immutable};
        let mut backend = open_backend(url, s3)?;
        if let Some(days) = self.global.immutable_days {
            let rule = Immutability::from_days(days).map_err(exit::usage)?;
            backend = Immutable::wrap(backend, rule);
        }
        if self.global.append_only {
            backend = AppendOnly::wrap(backend);
        }
        Ok(backend)
    }

    pub fn restore_key_path(&self) -> Result<&Path> {
        self.global.restore_key_file.as_deref().ok_or_else(|| {
            anyhow::Error::new(lifeboat_store::Error::NeedRestoreKey {
                operation: "this command",
            })
        })
    }

    pub fn load_restore_key(&self) -> Result<RestoreKey> {
        load_restore_key_file(
            self.restore_key_path()?,
            "LIFEBOAT_RESTORE_KEY_PASSPHRASE",
            "Restore key passphrase: ",
        )
    }

    pub fn open_full(&self) -> Result<Repository<FullAccess>> {
        let backend = self.backend()?;
        let key = self.load_restore_key()?;
        let repo = Repository::open_for_restore_with(backend, &key, &self.open_options())?;
        self.remember(AnyRepo::Full(repo.clone()));
        Ok(repo)
    }

    /// What the user said to trust (`--trust-unauthenticated`).
    pub fn open_options(&self) -> lifeboat_store::OpenOptions {
        lifeboat_store::OpenOptions {
            trust_unauthenticated: self.global.trust_unauthenticated,
        }
    }

    pub fn load_backup_key(&self) -> Result<BackupKey> {
        let path = self.global.backup_key_file.as_deref().ok_or_else(|| {
            exit::usage(
                "no backup key given: pass --backup-key-file or set LIFEBOAT_BACKUP_KEY_FILE",
            )
        })?;
        Ok(BackupKey::load(path)?)
    }

    pub fn open_backup(&self) -> Result<Repository<BackupAccess>> {
        let repo = Repository::open_for_backup(self.backend()?, self.load_backup_key()?)?;
        self.remember(AnyRepo::Backup(repo.clone()));
        Ok(repo)
    }

    /// For adding snapshots: the backup key if given (a backup host has
    /// only that), else whichever key is.
    pub fn open_for_backup(&self) -> Result<AnyRepo> {
        if self.global.backup_key_file.is_some() {
            Ok(AnyRepo::Backup(self.open_backup()?))
        } else {
            self.open_any()
        }
    }

    /// The restore key if given, else the backup key.
    pub fn open_any(&self) -> Result<AnyRepo> {
        if self.global.restore_key_file.is_some() {
            Ok(AnyRepo::Full(self.open_full()?))
        } else if self.global.backup_key_file.is_some() {
            Ok(AnyRepo::Backup(self.open_backup()?))
        } else {
            Err(exit::usage(
                "no key given: pass --backup-key-file or --restore-key-file (or LIFEBOAT_BACKUP_KEY_FILE / LIFEBOAT_RESTORE_KEY_FILE)",
            ))
        }
    }

    /// Print JSON on stdout.
    pub fn print_json(&self, value: &impl serde::Serialize) -> Result<()> {
        let s = serde_json::to_string_pretty(value).context("serializing output")?;
        outln!("{s}")?;
        Ok(())
    }
}

/// Write an output file (or standard output for `-`) so that a failed or
/// interrupted write never leaves a plausible-looking file: a temporary
/// name in the same folder, fsync, then rename. Refuses to overwrite
/// without `force`.
pub fn write_output(
    to: &str,
    force: bool,
    write: &mut dyn FnMut(&mut dyn std::io::Write) -> Result<()>,
) -> Result<()> {
    use std::io::Write as _;
    if to == "-" {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
        write(&mut out)?;
        return out.flush().context("writing to standard output");
    }
    let to = Path::new(to);
    if to.is_dir() {
        return Err(exit::usage(format!(
            "{} is a directory: give the path of a file to write (whole sources restore into \
             directories with --source)",
            to.display()
        )));
    }
    // A device or a pipe, or a link to one, is never replaced, even with
    // --force (a round-7 attack replaced the /dev/stdout link with a
    // file). A link to a regular file, or to nothing, is replaced by the
    // file and never followed (a planted link reaches nothing).
    if let Ok(m) = std::fs::symlink_metadata(to) {
        let special = match m.file_type().is_symlink() {
            true => std::fs::metadata(to).is_ok_and(|t| !t.is_file()),
            false => !m.file_type().is_file(),
        };
        if special {
            return Err(exit::usage(format!(
                "{} exists and is not a regular file: give the path of a new or regular file \
                 (or `-` for standard output where that is allowed)",
                to.display()
            )));
        }
    }
    if to.exists() && !force {
        return Err(exit::usage(format!(
            "{} exists; pass --force to overwrite it",
            to.display()
        )));
    }
    let dir = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Exclusive (O_EXCL, random name, mode 0600): a link planted at a
    // predictable name is never followed. Dropped (deleted) on any error.
    let tmp = lifeboat_paths::temp_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, tmp);
    write(&mut out)?;
    let tmp = out
        .into_inner()
        .map_err(|e| e.into_error())
        .context("writing the output")?;
    // Renamed into place: a link at `to` is replaced, not written through;
    // without --force, a file that appeared meanwhile is not overwritten.
    lifeboat_paths::publish(tmp, to, force, None).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            exit::usage(format!(
                "{} exists; pass --force to overwrite it",
                to.display()
            ))
        } else {
            anyhow::Error::new(e).context(format!("renaming into {}", to.display()))
        }
    })?;
    Ok(())
}

/// A passphrase from `env`, or asked on the terminal (twice when `confirm`).
pub fn passphrase(env: &str, prompt: &str, confirm: bool) -> Result<SecretString> {
    if let Ok(p) = std::env::var(env) {
        if p.is_empty() {
            return Err(exit::usage(format!("{env} is set but empty")));
        }
        return Ok(SecretString::from(p));
    }
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Err(anyhow::Error::new(exit::Exit {
            code: Code::Key,
            message: format!(
                "a passphrase is needed and there is no terminal to ask it on: set {env}"
            ),
            hint: None,
        }));
    }
    let first = rpassword::prompt_password(prompt).context("reading the passphrase")?;
    if first.is_empty() {
        return Err(exit::usage("the passphrase must not be empty"));
    }
    if confirm {
        let again = rpassword::prompt_password("Again: ").context("reading the passphrase")?;
        if again != first {
            return Err(exit::usage("the two passphrases differ"));
        }
    }
    Ok(SecretString::from(first))
}
