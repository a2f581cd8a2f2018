//! `lifeboat restore`: one item into a file (written to a temporary name
//! and renamed only once its SHA-256 matched) or onto standard output.

use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, Result};
use lifeboat_store::ProgressBars;

use super::Ctx;
use crate::cli::RestoreArgs;
use crate::exit::{self, Code};

pub fn run(ctx: &Ctx, args: RestoreArgs) -> Result<Code> {
    let repo = ctx.open_full()?;
    let snap = repo.find_snapshot(&args.snapshot)?;
    let (index, _) = repo.load_index()?;
    let items = repo.manifest(&index, &snap.snapshot)?;
    match args.source.as_deref() {
        Some("mysql") => return super::mysql::restore(ctx, &repo, &index, &items, &args),
        Some(other) => {
            return Err(exit::usage(format!(
                "unknown source {other:?}: this version replays `mysql`"
            )))
        }
        None => {}
    }
    let to_arg = args
        .to
        .clone()
        .ok_or_else(|| exit::usage("--to PATH|- is required to restore an item"))?;
    let item = match &args.item {
        Some(name) => items.iter().find(|i| &i.name == name).ok_or_else(|| {
            exit::usage(format!(
                "snapshot {} has no item {name:?}; it has: {}",
                snap.id.short(),
                list_names(&items)
            ))
        })?,
        None if items.len() == 1 => &items[0],
        None => {
            return Err(exit::usage(format!(
                "snapshot {} has {} items: choose one with --item ({})",
                snap.id.short(),
                items.len(),
                list_names(&items)
            )))
        }
    };
    let bar = ctx.bars.bytes("restore");
    if to_arg == "-" {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
        repo.restore_item(&index, item, &mut out, &*bar)?;
        out.flush().context("writing to standard output")?;
        return Ok(Code::Ok);
    }
    let to = Path::new(&to_arg);
    if to.exists() && !args.force {
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
    let tmp = dir.join(format!(".lifeboat-restore-{}", std::process::id()));
    let result = (|| -> Result<()> {
        let f =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, f);
        repo.restore_item(&index, item, &mut out, &*bar)?;
        let f = out
            .into_inner()
            .map_err(|e| e.into_error())
            .context("writing the output")?;
        f.sync_all().context("flushing the output to disk")?;
        std::fs::rename(&tmp, to).with_context(|| format!("renaming into {}", to.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    if !ctx.global.quiet {
        eprintln!(
            "restored {} ({} bytes, SHA-256 {}) from snapshot {} to {}",
            item.name,
            item.size,
            item.sha256,
            snap.id.short(),
            to.display()
        );
    }
    Ok(Code::Ok)
}

fn list_names(items: &[lifeboat_store::ManifestItem]) -> String {
    let mut names: Vec<&str> = items.iter().take(10).map(|i| i.name.as_str()).collect();
    if items.len() > 10 {
        names.push("...");
    }
    names.join(", ")
}
