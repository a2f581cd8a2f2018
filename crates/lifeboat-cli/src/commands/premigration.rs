//! `lifeboat snapshot-before-migration`: the snapshot (lifeboat-ops), then
//! the exact command that rolls the database back to it.

use anyhow::Result;
use lifeboat_ops::{Checked, PreMigrationOptions, PreMigrationReport, SourceKind};

use super::backup::human;
use super::Ctx;
use crate::cli::PreMigrationArgs;
use crate::exit::Code;

pub fn run(ctx: &Ctx, args: PreMigrationArgs) -> Result<Code> {
    let kinds = if args.sources.is_empty() {
        vec![SourceKind::Mysql]
    } else {
        args.sources.clone()
    };
    let repo = ctx.open_for_backup()?;
    let reader = match ctx.global.restore_key_file {
        Some(_) => Some(ctx.open_full()?),
        None => None,
    };
    let opts = PreMigrationOptions {
        note: args.note.clone(),
        sources: super::plan::plans(ctx, &kinds, repo.id(), args.mysql_url.as_deref())?,
    };
    let planned: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    ctx.note(|r| r.plan_sources(&planned));
    let report = with_repo!(repo, r => lifeboat_ops::snapshot_before_migration(r, reader.as_ref(), opts, &ctx.bars))?;
    ctx.note(|r| r.note_snapshot(&report.backup.id, &report.backup.snapshot));
    for w in &report.backup.warnings {
        eprintln!("WARNING: {w}");
    }
    print(ctx, &args, &report)?;
    Ok(Code::Ok)
}

fn print(ctx: &Ctx, args: &PreMigrationArgs, report: &PreMigrationReport) -> Result<()> {
    let id = report.backup.id;
    let how = match report.checked {
        Checked::EveryItem(n) => format!("all {n} items read back and their SHA-256 checked"),
        Checked::Structure => {
            "repository structure checked (give --restore-key-file to read every byte back)".into()
        }
    };
    let config = ctx
        .global
        .config
        .as_ref()
        .map(|c| format!(" --config {}", c.display()))
        .unwrap_or_default();
    let url = args
        .mysql_url
        .clone()
        .or_else(|| {
            ctx.config
                .mysql()
                .ok()
                .and_then(Option::as_ref)
                .map(|m| m.url.clone())
        })
        .unwrap_or_else(|| "mysql://USER@HOST:PORT/DB".into());
    let rollback = format!(
        "restore {} --source mysql --target {url} --force --allow-source",
        id.to_hex()
    );
    if ctx.global.json {
        return ctx.print_json(&serde_json::json!({
            "id": id.to_hex(),
            "note": args.note,
            "verified": how,
            "rollback": format!("lifeboat{config} {rollback}"),
        }));
    }
    let s = &report.backup.snapshot.stats;
    outln!(
        "pre-migration snapshot {} stored: {} item(s), {} ({how})",
        id.short(),
        s.items,
        human(s.bytes)
    )?;
    outln!("note: {}", args.note)?;
    outln!(
        "kept by every retention policy until released with: lifeboat{config} forget {}",
        id.short()
    )?;
    outln!("to roll the database back to it (this replaces the database's content):")?;
    outln!("  lifeboat{config} --restore-key-file RESTORE_KEY {rollback}")
}
