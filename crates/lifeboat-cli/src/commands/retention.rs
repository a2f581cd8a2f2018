//! `forget` (retention policy) and `prune` (delete unused data). Both need
//! the restore key: a backup host can add snapshots, never remove them.

use anyhow::Result;
use lifeboat_store::{ForgetPolicy, PruneOptions, PruneReport, SnapshotId};

use super::backup::human;
use super::Ctx;
use crate::cli::{ForgetArgs, PruneArgs};
use crate::exit::{self, Code};

/// Always kept by a policy: released only by forgetting it by id.
const PRE_MIGRATION: &str = "pre-migration";

fn policy(ctx: &Ctx, a: &ForgetArgs) -> ForgetPolicy {
    let flags = [
        a.keep_last,
        a.keep_hourly,
        a.keep_daily,
        a.keep_weekly,
        a.keep_monthly,
        a.keep_yearly,
    ];
    let mut p = if flags.iter().any(Option::is_some) || !a.keep_tags.is_empty() {
        ForgetPolicy {
            keep_last: a.keep_last.unwrap_or(0),
            keep_hourly: a.keep_hourly.unwrap_or(0),
            keep_daily: a.keep_daily.unwrap_or(0),
            keep_weekly: a.keep_weekly.unwrap_or(0),
            keep_monthly: a.keep_monthly.unwrap_or(0),
            keep_yearly: a.keep_yearly.unwrap_or(0),
            keep_tags: a.keep_tags.clone(),
        }
    } else if let Some(r) = &ctx.config.retention {
        ForgetPolicy {
            keep_last: r.keep_last,
            keep_hourly: r.keep_hourly,
            keep_daily: r.keep_daily,
            keep_weekly: r.keep_weekly,
            keep_monthly: r.keep_monthly,
            keep_yearly: r.keep_yearly,
            keep_tags: r.keep_tags.clone(),
        }
    } else {
        ForgetPolicy::default()
    };
    if !p.keep_tags.iter().any(|t| t == PRE_MIGRATION) {
        p.keep_tags.push(PRE_MIGRATION.into());
    }
    p
}

pub fn forget(ctx: &Ctx, args: ForgetArgs) -> Result<Code> {
    let repo = ctx.open_full()?;
    let (all, bad) = repo.snapshots()?;
    for u in &bad {
        tracing::warn!("unreadable snapshot file {}: {}", u.file, u.detail);
    }
    let (keep, remove): (Vec<(SnapshotId, Vec<String>)>, Vec<SnapshotId>) = if args
        .snapshots
        .is_empty()
    {
        let p = policy(ctx, &args);
        if p.keep_last
            + p.keep_hourly
            + p.keep_daily
            + p.keep_weekly
            + p.keep_monthly
            + p.keep_yearly
            == 0
            && p.keep_tags.len() <= 1
        {
            return Err(exit::usage(
                    "no retention policy: give --keep-last/--keep-daily/... (or a [retention] section); \
                     to remove given snapshots, name them",
                ));
        }
        let plan = p.apply(&all);
        (plan.keep, plan.remove)
    } else {
        let mut ids = Vec::new();
        for spec in &args.snapshots {
            ids.push(repo.find_snapshot(spec)?.id);
        }
        let keep = all
            .iter()
            .filter(|s| !ids.contains(&s.id))
            .map(|s| (s.id, vec!["not named".to_string()]))
            .collect();
        (keep, ids)
    };
    let by_id = |id: &SnapshotId| all.iter().find(|s| &s.id == id);
    if ctx.global.json {
        ctx.print_json(&serde_json::json!({
            "keep": keep.iter().map(|(id, why)| serde_json::json!({"id": id.to_hex(), "reasons": why})).collect::<Vec<_>>(),
            "remove": remove.iter().map(|id| id.to_hex()).collect::<Vec<_>>(),
            "dry_run": args.dry_run,
        }))?;
    } else {
        for (id, why) in &keep {
            if let Some(s) = by_id(id) {
                outln!(
                    "keep   {} {} [{}] ({})",
                    id.short(),
                    s.snapshot.time.format("%Y-%m-%d %H:%M:%S"),
                    s.snapshot.tags.join(","),
                    why.join(", ")
                )?;
            }
        }
        for id in &remove {
            if let Some(s) = by_id(id) {
                outln!(
                    "remove {} {} [{}]",
                    id.short(),
                    s.snapshot.time.format("%Y-%m-%d %H:%M:%S"),
                    s.snapshot.tags.join(",")
                )?;
            }
        }
        outln!(
            "{} kept, {} {}",
            keep.len(),
            remove.len(),
            if args.dry_run {
                "would be removed (dry run)"
            } else {
                "removed"
            }
        )?;
    }
    if args.dry_run {
        return Ok(Code::Ok);
    }
    repo.forget(&remove)?;
    if args.prune {
        return prune(
            ctx,
            &PruneArgs {
                dry_run: false,
                max_unused: 20.0,
            },
        );
    }
    Ok(Code::Ok)
}

pub fn prune(ctx: &Ctx, args: &PruneArgs) -> Result<Code> {
    if !(0.0..=100.0).contains(&args.max_unused) {
        return Err(exit::usage("--max-unused is a percentage, 0 to 100"));
    }
    let repo = ctx.open_full()?;
    let report = repo.prune(&PruneOptions {
        dry_run: args.dry_run,
        repack_unused_share: args.max_unused / 100.0,
    })?;
    if ctx.global.json {
        ctx.print_json(&report)?;
    } else {
        print_report(&report, args.dry_run)?;
    }
    Ok(Code::Ok)
}

fn print_report(r: &PruneReport, dry: bool) -> Result<()> {
    let verb = if dry { "would" } else { "did" };
    outln!(
        "{} snapshot(s) keep {} blob(s); prune {verb}: remove {} unused pack(s) and {} unindexed pack(s), \
         repack {} into {}, drop {} blob(s), replace {} index file(s), remove {} state file(s)",
        r.snapshots,
        r.blobs_used,
        r.packs_removed,
        r.unindexed_packs_removed,
        r.packs_repacked,
        r.packs_written,
        r.blobs_removed,
        r.index_files_replaced,
        r.state_files_removed
    )?;
    outln!(
        "packs: {} -> {}{}",
        human(r.bytes_before),
        human(r.bytes_after),
        if dry { " (estimated)" } else { "" }
    )?;
    Ok(())
}
