//! `lifeboat copy`: snapshots into a replica; and `init --replica-of`.

use anyhow::Result;
use lifeboat_ops::{CopyOptions, CopyOutcome};
use lifeboat_store::Repository;

use super::{AnyRepo, Ctx};
use crate::cli::{CopyArgs, InitArgs};
use crate::exit::{self, Code};
use lifeboat_ops::human_bytes as human;

pub fn run(ctx: &Ctx, args: &CopyArgs) -> Result<Code> {
    let url = match &args.to {
        Some(u) => u.clone(),
        None => ctx
            .config
            .copy()?
            .as_ref()
            .and_then(|c| c.to.clone())
            .ok_or_else(|| exit::usage("copy needs --to URL (or `to` in the config's [copy])"))?,
    };
    let dest = ctx.replica_backend(&url, &args.replica)?;
    let opts = CopyOptions {
        no_verify: args.no_verify,
    };
    // The restore key, when given, sends only what the snapshots use.
    let outcome = match ctx.open_any()? {
        AnyRepo::Full(src) => {
            let key = ctx.load_restore_key()?;
            let dest = Repository::open_for_restore_with(dest, &key, &ctx.open_options())?;
            lifeboat_ops::copy(&src, &dest, Some(&src), &opts, &ctx.bars)?
        }
        AnyRepo::Backup(src) => {
            let dest = Repository::open_for_backup(dest, ctx.load_backup_key()?)?;
            lifeboat_ops::copy(&src, &dest, None, &opts, &ctx.bars)?
        }
    };
    let problems = outcome.verify.as_ref().map_or(0, |v| v.problems.len())
        + outcome.copy.source_problems.len();
    if ctx.global.json {
        ctx.print_json(&outcome)?;
    } else {
        print(&outcome, &url)?;
    }
    Ok(if problems > 0 {
        Code::Damaged
    } else {
        Code::Ok
    })
}

fn print(o: &CopyOutcome, url: &str) -> Result<()> {
    let c = &o.copy;
    outln!(
        "copied {} snapshot(s) to {url}: {} pack(s), {}{}{}",
        c.snapshots_copied,
        c.packs_copied,
        human(c.pack_bytes),
        if c.packs_resumed > 0 {
            format!(
                " ({} pack(s) an interrupted copy had sent)",
                c.packs_resumed
            )
        } else {
            String::new()
        },
        if o.exact || c.packs_copied == 0 {
            ""
        } else {
            " (every blob the replica lacked: with the backup key a copy cannot tell which \
             blobs the snapshots use)"
        }
    )?;
    outln!(
        "the replica already held {} snapshot(s); {} it forgot were left out",
        c.snapshots_present,
        c.snapshots_forgotten
    )?;
    for p in &c.source_problems {
        outln!("SOURCE DAMAGED {}", super::status::clean(p))?;
    }
    if c.packs_replaced > 0 {
        outln!(
            "{} pack(s) in the replica did not match their names and were sent again",
            c.packs_replaced
        )?;
    }
    if let Some(v) = &o.verify {
        super::verify::print_problems(v, "replica verified")?;
    }
    Ok(())
}

/// The replica of `[copy] to`, if the config names one, with what it
/// forgot read with `repo`'s key (signed records only). A replica that
/// cannot be opened is left out with a warning: status still prints.
pub fn configured(ctx: &Ctx, repo: &AnyRepo) -> Vec<lifeboat_ops::Replica> {
    let Some(to) = ctx
        .config
        .copy()
        .ok()
        .and_then(|c| c.as_ref())
        .and_then(|c| c.to.clone())
    else {
        return Vec::new();
    };
    let backend = match ctx.replica_backend(&to, &Default::default()) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("the copy at {to} cannot be opened: {e:#}");
            return Vec::new();
        }
    };
    // The metadata identity is all `forgotten/` needs: the backup key's
    // part, which a restore key holds too.
    let key = match repo {
        AnyRepo::Full(r) => Ok(r.backup_key()),
        AnyRepo::Backup(_) => ctx.load_backup_key(),
    };
    let forgotten = key
        .and_then(|k| Ok(Repository::open_for_backup(backend.clone(), k)?.forgotten()?))
        .unwrap_or_else(|e| {
            tracing::warn!("the copy at {to}: {e:#}");
            Default::default()
        });
    vec![lifeboat_ops::Replica {
        to,
        backend,
        forgotten,
    }]
}

/// `init --repo REPLICA --replica-of SOURCE`.
pub fn init_replica(ctx: &Ctx, args: &InitArgs, source_url: &str) -> Result<Code> {
    let replica_url =
        ctx.global.repo.clone().ok_or_else(|| {
            exit::usage("init --replica-of needs --repo (where the replica goes)")
        })?;
    let source = ctx.backend_at(source_url)?;
    let dest = ctx.replica_backend(&replica_url, &args.replica)?;
    let id = match ctx.global.restore_key_file.is_some() {
        true => {
            let key = ctx.load_restore_key()?;
            let src = Repository::open_for_restore_with(source, &key, &ctx.open_options())?;
            src.init_replica(&dest)?;
            Repository::open_for_restore_with(dest.clone(), &key, &ctx.open_options())?
                .config()
                .id
                .clone()
        }
        false => {
            let key = ctx.load_backup_key()?;
            let src = Repository::open_for_backup(source, key.clone())?;
            src.init_replica(&dest)?;
            Repository::open_for_backup(dest.clone(), key)?
                .config()
                .id
                .clone()
        }
    };
    if ctx.global.json {
        ctx.print_json(&serde_json::json!({
            "repository": id,
            "location": dest.location(),
            "replica_of": source_url,
        }))?;
    } else {
        outln!(
            "made {} a replica of repository {id}: the same keys open it; fill it with \
             `lifeboat copy --to {replica_url}`",
            dest.location()
        )?;
    }
    Ok(Code::Ok)
}
