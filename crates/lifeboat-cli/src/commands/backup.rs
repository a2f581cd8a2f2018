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
            let opts = BackupOptions { snapshot, sources };
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
    )
}

/// Bytes for people: 1.5 GiB.
pub use lifeboat_ops::human_bytes as human;
