//! `lifeboat restore`: one item into a file (written to a temporary name
//! and renamed only once its SHA-256 matched) or onto standard output.

use anyhow::Result;
use lifeboat_store::ProgressBars;

use super::Ctx;
use crate::cli::RestoreArgs;
use crate::exit::{self, Code};

pub fn run(ctx: &Ctx, args: RestoreArgs) -> Result<Code> {
    let repo = ctx.open_full()?;
    let snap = repo.find_snapshot(&args.snapshot)?;
    let (index, _) = repo.load_index()?;
    let items = repo.manifest(&index, &snap.snapshot)?;
    if let Some(source) = args.source.as_deref() {
        let failed = snap
            .snapshot
            .sources
            .get(source)
            .and_then(|s| s.error.as_ref());
        if let (Some(error), false) = (failed, args.allow_partial) {
            return Err(exit::usage(format!(
                "in snapshot {}, {source} failed during the backup ({error}): what it holds of \
                 {source} is incomplete. Restore {source} from an earlier snapshot \
                 (`lifeboat snapshots`), or pass --allow-partial to take what there is",
                snap.id.short()
            )));
        }
    }
    match args.source.as_deref() {
        Some("mysql") => return super::mysql::restore(ctx, &repo, &index, &items, &args),
        Some("objects") => return super::objects::restore(ctx, &repo, &index, items, &args),
        Some("render") => return super::render::restore(ctx, &repo, &index, &items, &args),
        Some("git") => {
            return super::git::restore(ctx, &repo, &index, &snap.snapshot, &items, &args)
        }
        Some(other) => {
            return Err(exit::usage(format!(
                "unknown source {other:?}: sources are mysql, objects, render and git"
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
    super::write_output(&to_arg, args.force, &mut |out| {
        Ok(repo.restore_item(&index, item, out, &*bar)?)
    })?;
    if to_arg == "-" {
        return Ok(Code::Ok);
    }
    if !ctx.global.quiet {
        eprintln!(
            "restored {} ({} bytes, SHA-256 {}) from snapshot {} to {}",
            item.name,
            item.size,
            item.sha256,
            snap.id.short(),
            to_arg
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
