//! The git source, wired in: `[[git]]` entries from the config; backup, and
//! restore by clone (`--to DIR`) or push (`--push-to URL`).

use std::path::PathBuf;

use anyhow::Result;
use lifeboat_git::GitRepoOptions;
use lifeboat_store::secrecy::SecretString;
use lifeboat_store::{FullAccess, Index, ManifestItem, Repository, Snapshot};

use super::Ctx;
use crate::cli::RestoreArgs;
use crate::exit::{self, Code};

/// The configured repositories, their mirrors under the cache directory.
pub fn options(ctx: &Ctx, repository_id: &str) -> Result<Vec<GitRepoOptions>> {
    let git = ctx.config.git()?;
    if git.is_empty() {
        return Err(exit::usage(
            "no git repositories configured: add a [[git]] section with url = \"...\"",
        ));
    }
    let root = super::mysql::cache_root()
        .map(|r| r.join(repository_id).join("git"))
        .ok_or_else(|| {
            exit::usage("no cache directory for git mirrors: set LIFEBOAT_CACHE_DIR or HOME")
        })?;
    Ok(git
        .iter()
        .map(|c| {
            let mut o = GitRepoOptions::new(&c.url, &root);
            if let Some(n) = &c.name {
                o.name = n.clone();
            }
            o.token = c.token.clone().map(SecretString::from);
            o.ssh_command = c.ssh_command.clone();
            if let Some(d) = &c.mirror_dir {
                o.mirror_dir = d.clone();
            }
            if let Some(m) = c.max_chain {
                o.max_chain = m.max(1);
            }
            o
        })
        .collect())
}

/// `restore --source git --to DIR | --push-to URL [--repository NAME]`.
pub fn restore(
    ctx: &Ctx,
    repo: &Repository<FullAccess>,
    index: &Index,
    snapshot: &Snapshot,
    items: &[ManifestItem],
    args: &RestoreArgs,
) -> Result<Code> {
    let mut repos = lifeboat_git::repositories(snapshot)?;
    if let Some(name) = &args.repository {
        repos.retain(|r| &r.name == name);
        if repos.is_empty() {
            return Err(exit::usage(format!(
                "the snapshot has no repository named {name:?}"
            )));
        }
    }
    let mut reports = Vec::new();
    if let Some(url) = &args.push_to {
        let [r] = repos.as_slice() else {
            return Err(exit::usage(
                "--push-to takes one repository: choose it with --repository NAME",
            ));
        };
        let cfg = ctx.config.git()?.iter().find(|c| {
            c.name.as_deref() == Some(r.name.as_str())
                || lifeboat_git::default_name(&c.url) == r.name
        });
        let token = cfg.and_then(|c| c.token.clone()).map(SecretString::from);
        let ssh = cfg.and_then(|c| c.ssh_command.clone());
        reports.push(lifeboat_git::push_to(
            repo, index, items, r, url, token, ssh,
        )?);
    } else {
        let base: PathBuf =
            match (
                &args.to,
                ctx.config.staging()?.as_ref().and_then(|s| s.dir.clone()),
            ) {
                (Some(to), _) => to.into(),
                (None, Some(d)) => d.join("git"),
                (None, None) => return Err(exit::usage(
                    "--source git needs --to DIR or --push-to URL (or [staging] dir in the config)",
                )),
            };
        let one = repos.len() == 1;
        for r in &repos {
            let dir = if one {
                base.clone()
            } else {
                base.join(&r.name)
            };
            reports.push(lifeboat_git::restore_to_dir(
                repo, index, items, r, &dir, false,
            )?);
        }
    }
    if ctx.global.json {
        ctx.print_json(&reports)?;
    } else {
        for r in &reports {
            let whereto = r
                .pushed_to
                .clone()
                .unwrap_or_else(|| r.path.display().to_string());
            outln!(
                "restored {} into {whereto}: {} branches and tags from {} bundle(s), HEAD {}; refs and objects checked",
                r.name,
                r.refs,
                r.bundles,
                r.head.as_deref().unwrap_or("(none)")
            )?;
        }
    }
    Ok(Code::Ok)
}
