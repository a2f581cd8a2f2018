//! `lifeboat snapshot-before-migration`: a snapshot tagged `pre-migration`
//! (kept by every retention policy until forgotten by id), verified, and
//! the exact command that rolls the database back to it.

use anyhow::Result;
use lifeboat_store::{NoProgress, VerifyOptions};

use super::backup::human;
use super::{AnyRepo, Ctx};
use crate::cli::{BackupArgs, PreMigrationArgs};
use crate::exit::{self, Code};

pub fn run(ctx: &Ctx, args: PreMigrationArgs) -> Result<Code> {
    let sources = if args.sources.is_empty() {
        vec!["mysql".to_string()]
    } else {
        args.sources.clone()
    };
    let bargs = BackupArgs {
        sources,
        mysql_url: args.mysql_url.clone(),
        stdin_from_command: None,
        stdin: false,
        item: None,
        file: Vec::new(),
        tags: vec!["pre-migration".into()],
        host: None,
        note: Some(args.note.clone()),
    };
    let repo = if ctx.global.backup_key_file.is_some() {
        AnyRepo::Backup(ctx.open_backup()?)
    } else {
        ctx.open_any()?
    };
    let (id, snap, warnings) = match &repo {
        AnyRepo::Backup(r) => super::backup::backup(ctx, r, &bargs)?,
        AnyRepo::Full(r) => super::backup::backup(ctx, r, &bargs)?,
    };
    for w in &warnings {
        eprintln!("WARNING: {w}");
    }
    // Verify: every byte of this snapshot with the restore key, else the
    // repository's structure.
    let how = if ctx.global.restore_key_file.is_some() {
        let full = ctx.open_full()?;
        let (index, _) = full.load_index()?;
        let items = full.manifest(&index, &snap)?;
        for item in &items {
            full.restore_item(&index, item, &mut std::io::sink(), &NoProgress)?;
        }
        format!(
            "all {} items read back and their SHA-256 checked",
            items.len()
        )
    } else {
        let report = match &repo {
            AnyRepo::Backup(r) => r.verify(&VerifyOptions::default(), &NoProgress)?,
            AnyRepo::Full(r) => r.verify(&VerifyOptions::default(), &NoProgress)?,
        };
        if let Some(p) = report.problems.first() {
            return Err(exit::damaged(format!(
                "snapshot {} was stored, but the repository has problems: {}: {}",
                id.short(),
                p.what,
                p.detail
            )));
        }
        "repository structure checked (give --restore-key-file to read every byte back)".into()
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
        .or_else(|| ctx.config.mysql.as_ref().map(|m| m.url.clone()))
        .unwrap_or_else(|| "mysql://USER@HOST:PORT/DB".into());
    if ctx.global.json {
        ctx.print_json(&serde_json::json!({
            "id": id.to_hex(),
            "note": args.note,
            "verified": how,
            "rollback": format!("lifeboat{config} restore {} --source mysql --target {url} --force --allow-source", id.to_hex()),
        }))?;
        return Ok(Code::Ok);
    }
    outln!(
        "pre-migration snapshot {} stored: {} item(s), {} ({how})",
        id.short(),
        snap.stats.items,
        human(snap.stats.bytes)
    )?;
    outln!("note: {}", args.note)?;
    outln!(
        "kept by every retention policy until released with: lifeboat{config} forget {}",
        id.short()
    )?;
    outln!("to roll the database back to it (this replaces the database's content):")?;
    outln!(
        "  lifeboat{config} --restore-key-file RESTORE_KEY restore {} --source mysql --target {url} --force --allow-source",
        id.to_hex()
    )?;
    Ok(Code::Ok)
}
