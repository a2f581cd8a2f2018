//! `lifeboat restore`: one item into a file (written to a temporary name
//! and renamed only once its SHA-256 matched) or onto standard output.

use anyhow::Result;
use lifeboat_store::ProgressBars;

use lifeboat_ops::SourceKind;

use super::Ctx;
use crate::cli::RestoreArgs;
use crate::exit::{self, Code};

pub fn run(ctx: &Ctx, args: RestoreArgs) -> Result<Code> {
    let repo = ctx.open_full()?;
    if args.until.is_some() || args.until_gtid.is_some() {
        if args.source != Some(SourceKind::Mysql) {
            return Err(exit::usage(
                "--until and --until-gtid restore MySQL only: add --source mysql",
            ));
        }
        let until = args.until.unwrap_or_else(chrono::Utc::now);
        return super::mysql::restore_until(ctx, &repo, &args, until);
    }
    if args.from_binlog {
        if args.source != Some(SourceKind::Mysql) {
            return Err(exit::usage(
                "--from-binlog restores MySQL only: add --source mysql",
            ));
        }
        return super::mysql::restore_from_binlog(ctx, &repo, &args);
    }
    let snap = repo.find_snapshot(&args.snapshot)?;
    let (index, _) = repo.load_index()?;
    let items = repo.manifest(&index, &snap.snapshot)?;
    check_flags(&args)?;
    if let Some(source) = args.source {
        let failed = snap
            .snapshot
            .sources
            .get(source.name())
            .and_then(|s| s.error.as_ref());
        if let (Some(error), false) = (failed, args.allow_partial) {
            return Err(exit::usage(format!(
                "in snapshot {}, {source} failed during the backup ({error}): what it holds of \
                 {source} is incomplete. Restore {source} from an earlier snapshot \
                 (`lifeboat snapshots`), or pass --allow-partial to take what there is",
                snap.id.short()
            )));
        }
        if source == SourceKind::Mysql && lifeboat_ops::derived(&snap).is_some() {
            return super::mysql::restore_derived(ctx, &repo, &args);
        }
        return match source {
            SourceKind::Mysql => super::mysql::restore(ctx, &repo, &index, &items, &args),
            SourceKind::Objects => super::objects::restore(ctx, &repo, &index, items, &args),
            SourceKind::Render => super::render::restore(ctx, &repo, &index, &items, &args),
            SourceKind::Git => {
                super::git::restore(ctx, &repo, &index, &snap.snapshot, &items, &args)
            }
        };
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

/// A flag that does not apply to what is restored is a usage error naming
/// it (it would otherwise be silently ignored).
fn check_flags(a: &RestoreArgs) -> Result<()> {
    use SourceKind::{Git, Mysql, Objects, Render};
    // (flag, given, restores it applies to; None: one item)
    let flags: [(&str, bool, &[Option<SourceKind>]); 22] = [
        ("--item", a.item.is_some(), &[None]),
        ("--spool-dir", a.spool_dir.is_some(), &[None]),
        ("--unverified-stream", a.unverified_stream, &[None]),
        ("--to", a.to.is_some(), &[None, Some(Objects), Some(Git)]),
        ("--database", a.database.is_some(), &[Some(Mysql)]),
        (
            "--target",
            a.target.is_some(),
            &[Some(Mysql), Some(Objects)],
        ),
        (
            "--allow-source",
            a.allow_source,
            &[Some(Mysql), Some(Objects), Some(Render)],
        ),
        (
            "--trust-object-bodies",
            a.trust_object_bodies,
            &[Some(Mysql)],
        ),
        ("--connections", a.connections.is_some(), &[Some(Mysql)]),
        ("--definers", a.definers.is_some(), &[Some(Mysql)]),
        ("--with-users", a.with_users, &[Some(Mysql)]),
        ("--with-global-grants", a.with_global_grants, &[Some(Mysql)]),
        ("--prefix", a.prefix.is_some(), &[Some(Objects)]),
        ("--key", a.key.is_some(), &[Some(Objects)]),
        ("--to-env-dir", a.to_env_dir.is_some(), &[Some(Render)]),
        ("--env-dialect", a.env_dialect.is_some(), &[Some(Render)]),
        ("--to-env-json", a.to_env_json.is_some(), &[Some(Render)]),
        ("--render-yaml", a.render_yaml.is_some(), &[Some(Render)]),
        ("--to-service", a.to_service.is_some(), &[Some(Render)]),
        ("--service", a.service.is_some(), &[Some(Render)]),
        ("--yes", a.yes, &[Some(Render)]),
        ("--push-to", a.push_to.is_some(), &[Some(Git)]),
    ];
    let repository = ("--repository", a.repository.is_some(), &[Some(Git)][..]);
    let allow_partial = (
        "--allow-partial",
        a.allow_partial,
        &[Some(Mysql), Some(Objects), Some(Render), Some(Git)][..],
    );
    for (flag, given, applies) in flags.into_iter().chain([repository, allow_partial]) {
        if given && !applies.contains(&a.source) {
            let what = match a.source {
                Some(s) => format!("--source {s}"),
                None => "an item restore".to_string(),
            };
            let to: Vec<String> = applies
                .iter()
                .map(|s| match s {
                    Some(s) => format!("--source {s}"),
                    None => "an item restore".into(),
                })
                .collect();
            return Err(exit::usage(format!(
                "{flag} does not apply to {what}; it is for {}",
                to.join(" or ")
            )));
        }
    }
    Ok(())
}

fn list_names(items: &[lifeboat_store::ManifestItem]) -> String {
    let mut names: Vec<&str> = items.iter().take(10).map(|i| i.name.as_str()).collect();
    if items.len() > 10 {
        names.push("...");
    }
    names.join(", ")
}
