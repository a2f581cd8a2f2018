//! `lifeboat backup`: the configured sources, a command's output, standard
//! input, or files.

use anyhow::Result;
use lifeboat_ops::{BackupOptions, BackupReport, StreamInput};

use super::Ctx;
use crate::cli::BackupArgs;
use crate::exit::{self, Code};

pub fn run(ctx: &Ctx, args: BackupArgs) -> Result<Code> {
    let repo = ctx.open_for_backup()?;
    let snapshot = lifeboat_store::BackupOptions {
        tags: args.tags.clone(),
        hostname: args.host.clone(),
        note: args.note.clone(),
    };
    let mut stdin = std::io::stdin();
    let input = stream_input(&args, &mut stdin)?;
    let planned: Vec<String> = match &input {
        Some(StreamInput::Command(_)) => vec!["command".into()],
        Some(StreamInput::Files(_)) => vec!["file".into()],
        Some(StreamInput::Reader(_)) => vec!["stdin".into()],
        None => super::plan::chosen(ctx, &args.sources)?
            .iter()
            .map(|k| k.name().to_string())
            .collect(),
    };
    ctx.note(|r| r.plan_sources(&planned));
    let report = match input {
        Some(input) => {
            let item = args.item.as_deref();
            let (id, snapshot) = with_repo!(repo, r => lifeboat_ops::backup_stream(r, snapshot, input, item, &ctx.bars))?;
            BackupReport {
                id,
                snapshot,
                failed: Vec::new(),
                warnings: Vec::new(),
                mysql_derived: None,
                mysql_full_read: None,
            }
        }
        None => {
            let kinds = super::plan::chosen(ctx, &args.sources)?;
            let mut sources =
                super::plan::plans(ctx, &kinds, repo.id(), args.mysql_url.as_deref())?;
            for s in &mut sources {
                if let lifeboat_ops::SourcePlan::Objects { options, .. } = s {
                    options.reread = args.reread_objects;
                }
            }
            let derive_mysql = derive_options(ctx, repo.id(), args.full)?;
            let opts = BackupOptions {
                snapshot,
                sources,
                derive_mysql,
            };
            with_repo!(repo, r => lifeboat_ops::backup(r, opts, &ctx.bars))?
        }
    };
    ctx.note(|r| r.note_snapshot(&report.id, &report.snapshot));
    print(ctx, &report)?;
    if report.is_partial() {
        let (id, failed) = (report.id, report.failed);
        return Err(lifeboat_ops::Error::Partial { id, failed }.into());
    }
    for w in &report.warnings {
        eprintln!("WARNING: {w}");
    }
    Ok(match report.warnings.is_empty() {
        true => Code::Ok,
        false => Code::Warning,
    })
}

/// `[mysql] binlog_nightly = true`: the MySQL part derived from the
/// stored binlog between full reads (every `full_read_days`, default 7).
fn derive_options(
    ctx: &Ctx,
    repository_id: &str,
    full: bool,
) -> Result<Option<lifeboat_ops::DeriveOptions>> {
    let Some(cfg) = ctx.config.mysql()?.as_ref() else {
        return Ok(None);
    };
    if !cfg.binlog_nightly {
        return Ok(None);
    }
    if !cfg.binlog {
        return Err(exit::usage(
            "[mysql] binlog_nightly needs binlog capture: set `binlog = true` in [mysql] too",
        ));
    }
    let days = cfg.full_read_days.unwrap_or(7.0);
    if !(days.is_finite() && days > 0.0) {
        return Err(exit::usage(format!(
            "[mysql] full_read_days must be a number of days above 0 (it is {days})"
        )));
    }
    let source = super::mysql::source_options(ctx, None)?;
    Ok(Some(lifeboat_ops::DeriveOptions {
        capture: lifeboat_mysql::CaptureOptions {
            databases: super::binlog::backed_up(&source)?,
            mysql: source.mysql,
            // Not the follower's id: a server drops a replica connection
            // when another one connects with the same id.
            server_id: super::binlog::server_id(cfg.binlog_server_id, repository_id)
                .wrapping_add(1),
        },
        full_every: chrono::TimeDelta::seconds((days * 86_400.0) as i64),
        hostname: None,
        full_now: full,
    }))
}

/// The stream to back up, if the flags name one (else the sources).
fn stream_input<'a>(
    args: &'a BackupArgs,
    stdin: &'a mut std::io::Stdin,
) -> Result<Option<StreamInput<'a>>> {
    Ok(
        match (&args.stdin_from_command, args.file.is_empty(), args.stdin) {
            (Some(cmd), _, _) => Some(StreamInput::Command(cmd)),
            (None, false, _) => Some(StreamInput::Files(&args.file)),
            (None, true, true) => Some(StreamInput::Reader(stdin)),
            (None, true, false) if args.item.is_some() => {
                return Err(exit::usage(
                    "say what to back up: --stdin-from-command CMD, --stdin, or --file PATH",
                ))
            }
            _ => None,
        },
    )
}

fn print(ctx: &Ctx, report: &BackupReport) -> Result<()> {
    let snap = &report.snapshot;
    if ctx.global.json {
        return ctx.print_json(&serde_json::json!({
            "id": report.id.to_hex(),
            "time": snap.time,
            "tags": snap.tags,
            "stats": snap.stats,
            "mysql_derived": report.mysql_derived,
            "mysql_full_read": report.mysql_full_read,
        }));
    }
    let s = &snap.stats;
    outln!(
        "snapshot {} saved: {} item(s), {} read, {} new, {} added to the repository in {:.1}s",
        report.id.short(),
        s.items,
        human(s.bytes),
        human(s.new_plain_bytes),
        human(s.added_bytes),
        s.duration_ms as f64 / 1000.0
    )?;
    if let Some(d) = &report.mysql_derived {
        outln!(
            "mysql: derived from full snapshot {} and the stored binlog up to {} (binlog run {}): no rows read",
            d.base.short(),
            d.end,
            d.run.short()
        )?;
    }
    if let Some(why) = &report.mysql_full_read {
        outln!("mysql: a full read: {why}")?;
    }
    Ok(())
}

/// Bytes for people: 1.5 GiB.
pub use lifeboat_ops::human_bytes as human;
