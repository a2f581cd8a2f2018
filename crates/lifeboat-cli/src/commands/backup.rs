//! `lifeboat backup`: store a command's output, standard input, or files.

use std::io::Read;
use std::process::{Command as Process, Stdio};

use anyhow::{Context as _, Result};
use lifeboat_store::{Access, BackupOptions, ProgressBars, Repository, Snapshot, SnapshotId};

use super::{AnyRepo, Ctx};
use crate::cli::BackupArgs;
use crate::exit::{self, Code};

pub fn run(ctx: &Ctx, args: BackupArgs) -> Result<Code> {
    // A backup host has only the backup key; a restore key works as well.
    let repo = if ctx.global.backup_key_file.is_some() {
        AnyRepo::Backup(ctx.open_backup()?)
    } else {
        ctx.open_any()?
    };
    let (id, snap, warnings) = match &repo {
        AnyRepo::Backup(r) => backup(ctx, r, &args)?,
        AnyRepo::Full(r) => backup(ctx, r, &args)?,
    };
    if ctx.global.json {
        ctx.print_json(&serde_json::json!({
            "id": id.to_hex(),
            "time": snap.time,
            "tags": snap.tags,
            "stats": snap.stats,
        }))?;
    } else {
        let s = &snap.stats;
        outln!(
            "snapshot {} saved: {} item(s), {} read, {} new, {} added to the repository in {:.1}s",
            id.short(),
            s.items,
            human(s.bytes),
            human(s.new_plain_bytes),
            human(s.added_bytes),
            s.duration_ms as f64 / 1000.0
        )?;
    }
    if warnings.is_empty() {
        return Ok(Code::Ok);
    }
    for w in &warnings {
        eprintln!("WARNING: {w}");
    }
    Ok(Code::Warning)
}

/// Returns the snapshot and warnings to report once it is stored.
pub(super) fn backup<A: Access>(
    ctx: &Ctx,
    repo: &Repository<A>,
    args: &BackupArgs,
) -> Result<(SnapshotId, Snapshot, Vec<String>)> {
    let opts = BackupOptions {
        tags: args.tags.clone(),
        hostname: args.host.clone(),
        note: args.note.clone(),
    };
    let bar = ctx.bars.bytes("backup");
    let mut session = repo.begin_backup(opts)?;
    let mut sources = args.sources.clone();
    let raw_input = args.stdin || args.stdin_from_command.is_some() || !args.file.is_empty();
    if sources.is_empty() && !raw_input && args.item.is_none() {
        sources = configured_sources(ctx);
        if sources.is_empty() {
            return Err(exit::usage(
                "nothing to back up: configure sources ([mysql], [objects], [render], [[git]]) \
                 in --config FILE, or give --source, --stdin-from-command, --stdin or --file",
            ));
        }
    }
    if !sources.is_empty() {
        let mut caches = Vec::new();
        let mut warnings = Vec::new();
        let mut failed = Vec::new();
        for source in &sources {
            let r = match source.as_str() {
                "mysql" => super::mysql::backup(ctx, &mut session, args.mysql_url.as_deref()),
                "objects" => super::objects::backup(ctx, repo, &mut session).map(|alarm| {
                    warnings.extend(alarm);
                    None
                }),
                "render" => super::render::backup(ctx, &mut session).map(|_| None),
                "git" => super::git::backup(ctx, repo, &mut session).map(|_| None),
                other => Err(exit::usage(format!(
                    "unknown source {other:?}: sources are mysql, objects, render and git"
                ))),
            };
            match r {
                Ok(cache) => caches.extend(cache),
                // A broken repository or a bad command line ends the run;
                // a source that fails leaves the others to be stored.
                Err(e) if !is_source_failure(&e) || sources.len() == 1 => {
                    session.abort();
                    caches.iter().for_each(|c| c.discard());
                    return Err(e);
                }
                Err(e) => {
                    let message = exit::render(&e);
                    tracing::error!("{source} failed, the other sources go on: {message}");
                    session.set_source_failed(source, &message);
                    failed.push(format!("{source}: {message}"));
                }
            }
        }
        if failed.len() == sources.len() {
            session.abort();
            caches.iter().for_each(|c| c.discard());
            return Err(exit::source(format!(
                "every source failed, nothing stored:\n  {}",
                failed.join("\n  ")
            )));
        }
        // The row-hash caches become current only with a committed snapshot.
        let committed = session.commit();
        for c in &caches {
            if committed.is_ok() {
                c.commit();
            } else {
                c.discard();
            }
        }
        let (id, snap) = committed?;
        if !failed.is_empty() {
            return Err(exit::source(format!(
                "snapshot {} was stored PARTIAL (tag `partial`): the other sources are in it, \
                 but these failed and are not:\n  {}",
                id.short(),
                failed.join("\n  ")
            )));
        }
        return Ok((id, snap, warnings));
    }
    if !args.file.is_empty() {
        for path in &args.file {
            let name = path.display().to_string();
            let mut f = std::fs::File::open(path).with_context(|| format!("opening {name}"))?;
            let mut item = session.item("file", &name, "file", &*bar)?;
            std::io::copy(&mut f, &mut item)
                .map_err(|e| exit::source(format!("reading {name}: {e}")))?;
            item.finish(serde_json::Value::Null)?;
        }
        let (id, snap) = session.commit()?;
        bar.finish();
        return Ok((id, snap, Vec::new()));
    }
    let name = args
        .item
        .as_deref()
        .ok_or_else(|| exit::usage("--item NAME is required"))?;
    if let Some(cmd) = &args.stdin_from_command {
        let mut child = Process::new("sh")
            .arg("-c")
            .arg(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| exit::source(format!("starting the command: {e}")))?;
        let mut out = child.stdout.take().context("the command's stdout")?;
        let mut item = session.item("command", name, "stream", &*bar)?;
        let copied = copy(&mut out, &mut |b| item.push(b).map_err(Into::into));
        drop(out);
        if let Err(e) = copied {
            let _ = child.kill();
            let _ = child.wait();
            drop(item);
            session.abort();
            return Err(e);
        }
        let status = child.wait().context("waiting for the command")?;
        if !status.success() {
            drop(item);
            session.abort();
            // Only the program's name: its arguments may hold a password
            // (`mariadb-dump -pSECRET`), and this message reaches logs and
            // notifications.
            let program = cmd.split_whitespace().next().unwrap_or("");
            return Err(exit::source(format!(
                "the command {}: {program} ... (arguments not shown)",
                describe_status(status)
            )));
        }
        item.finish(serde_json::json!({ "command": cmd }))?;
    } else if args.stdin {
        let mut item = session.item("stdin", name, "stream", &*bar)?;
        let stdin = std::io::stdin();
        let copied = copy(&mut stdin.lock(), &mut |b| item.push(b).map_err(Into::into));
        if let Err(e) = copied {
            drop(item);
            session.abort();
            return Err(e);
        }
        item.finish(serde_json::Value::Null)?;
    } else {
        return Err(exit::usage(
            "say what to back up: --stdin-from-command CMD, --stdin, or --file PATH",
        ));
    }
    let (id, snap) = session.commit()?;
    bar.finish();
    Ok((id, snap, Vec::new()))
}

/// The sources the config file describes, in backup order.
fn configured_sources(ctx: &Ctx) -> Vec<String> {
    let c = &ctx.config;
    [
        ("mysql", c.mysql.is_some()),
        ("objects", c.objects.is_some()),
        ("render", c.render.is_some()),
        ("git", !c.git.is_empty()),
    ]
    .into_iter()
    .filter(|(_, on)| *on)
    .map(|(s, _)| s.to_string())
    .collect()
}

/// Whether an error is the source's (unreachable, refused, broken input)
/// rather than the repository's or the command line's.
fn is_source_failure(e: &anyhow::Error) -> bool {
    matches!(exit::classify(e).0, Code::Source | Code::Failure)
}

/// Read `from` to its end in 1 MiB pieces; a read error is a source failure.
fn copy(from: &mut dyn Read, to: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => to(&buf[..n])?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(exit::source(format!("reading the input: {e}"))),
        }
    }
}

fn describe_status(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return format!("was killed by signal {sig}");
        }
    }
    match status.code() {
        Some(c) => format!("exited with status {c}"),
        None => "failed".into(),
    }
}

/// Bytes for people: 1.5 GiB.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
