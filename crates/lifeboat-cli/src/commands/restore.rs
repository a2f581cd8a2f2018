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
    if to_arg != "-" && (args.unverified_stream || args.spool_dir.is_some()) {
        return Err(exit::usage(
            "--unverified-stream and --spool-dir are for --to - (a file is always written \
             under a temporary name and renamed only once its SHA-256 matched)",
        ));
    }
    if to_arg == "-" {
        if args.unverified_stream {
            super::write_output("-", args.force, &mut |out| {
                Ok(repo.restore_item(&index, item, out, &*bar)?)
            })?;
        } else {
            to_stdout_verified(&repo, &index, item, args.spool_dir.as_deref(), &*bar)?;
        }
        return Ok(Code::Ok);
    }
    super::write_output(&to_arg, args.force, &mut |out| {
        Ok(repo.restore_item(&index, item, out, &*bar)?)
    })?;
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

/// Restore `item` into an exclusive, already unlinked temporary file
/// (tempfile: `O_TMPFILE` or create-then-unlink, mode 0600), which
/// `restore_item` checks against the item's size and SHA-256; only then
/// copy it to standard output. The file vanishes when it is closed, also on
/// an error or a kill.
fn to_stdout_verified(
    repo: &lifeboat_store::Repository<lifeboat_store::FullAccess>,
    index: &lifeboat_store::Index,
    item: &lifeboat_store::ManifestItem,
    spool_dir: Option<&std::path::Path>,
    bar: &dyn lifeboat_store::Progress,
) -> Result<()> {
    use anyhow::Context as _;
    use std::io::{Seek as _, Write as _};
    let dir = spool_dir
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let mut spool = tempfile::tempfile_in(&dir)
        .and_then(|f| {
            // O_TMPFILE takes the umask's mode: make the plaintext private.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            }
            Ok(f)
        })
        .with_context(|| {
            format!(
                "creating the verifying spool file in {} (choose another with --spool-dir)",
                dir.display()
            )
        })?;
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, &mut spool);
        repo.restore_item(index, item, &mut w, bar)?;
        w.flush().context("writing the spool file")?;
    }
    spool
        .seek(std::io::SeekFrom::Start(0))
        .context("reading the spool file")?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    std::io::copy(&mut spool, &mut out).context("writing to standard output")?;
    out.flush().context("writing to standard output")
}

fn list_names(items: &[lifeboat_store::ManifestItem]) -> String {
    let mut names: Vec<&str> = items.iter().take(10).map(|i| i.name.as_str()).collect();
    if items.len() > 10 {
        names.push("...");
    }
    names.join(", ")
}
