//! `forget` (retention policy, or named snapshots) and `prune`: the work is
//! lifeboat-ops'; this parses and prints.

use anyhow::Result;
use lifeboat_ops::{ForgetOptions, ForgetReport, PruneAllReport, Selection};
use lifeboat_store::{ForgetPolicy, PruneOptions};

use super::backup::human;
use super::Ctx;
use crate::cli::{ForgetArgs, PruneArgs};
use crate::exit::{self, Code};

fn policy(ctx: &Ctx, a: &ForgetArgs) -> Result<ForgetPolicy> {
    let flags = [
        a.keep_last,
        a.keep_hourly,
        a.keep_daily,
        a.keep_weekly,
        a.keep_monthly,
        a.keep_yearly,
    ];
    Ok(
        if flags.iter().any(Option::is_some) || !a.keep_tags.is_empty() {
            ForgetPolicy {
                keep_last: a.keep_last.unwrap_or(0),
                keep_hourly: a.keep_hourly.unwrap_or(0),
                keep_daily: a.keep_daily.unwrap_or(0),
                keep_weekly: a.keep_weekly.unwrap_or(0),
                keep_monthly: a.keep_monthly.unwrap_or(0),
                keep_yearly: a.keep_yearly.unwrap_or(0),
                keep_tags: a.keep_tags.clone(),
            }
        } else if let Some(r) = ctx.config.retention()? {
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
        },
    )
}

pub fn forget(ctx: &Ctx, args: ForgetArgs) -> Result<Code> {
    let selection = if args.snapshots.is_empty() {
        Selection::Policy(policy(ctx, &args)?)
    } else {
        Selection::Named(args.snapshots.clone())
    };
    let repo = ctx.open_full()?;
    let report = lifeboat_ops::forget(
        &repo,
        ForgetOptions {
            selection,
            dry_run: args.dry_run,
            prune: args.prune.then_some(PruneOptions::default()),
            keep_log: Some(keep_log(ctx)?),
        },
    )?;
    if ctx.global.json {
        ctx.print_json(&serde_json::json!({
            "keep": report.keep.iter().map(|k| serde_json::json!({"id": k.id.to_hex(), "reasons": k.reasons})).collect::<Vec<_>>(),
            "remove": report.remove.iter().map(|r| r.id.to_hex()).collect::<Vec<_>>(),
            "dry_run": args.dry_run,
        }))?;
    } else {
        print_forget(&report)?;
    }
    if let Some(p) = &report.prune {
        if ctx.global.json {
            ctx.print_json(p)?;
        } else {
            print_prune(p, false)?;
        }
    }
    Ok(Code::Ok)
}

fn print_forget(r: &ForgetReport) -> Result<()> {
    for k in &r.keep {
        outln!(
            "keep   {} {} [{}] ({})",
            k.id.short(),
            k.time.format("%Y-%m-%d %H:%M:%S"),
            super::status::clean(&k.tags.join(",")),
            k.reasons.join(", ")
        )?;
    }
    for k in &r.remove {
        outln!(
            "remove {} {} [{}]",
            k.id.short(),
            k.time.format("%Y-%m-%d %H:%M:%S"),
            super::status::clean(&k.tags.join(","))
        )?;
    }
    outln!(
        "{} kept, {} {}",
        r.keep.len(),
        r.remove.len(),
        if r.dry_run {
            "would be removed (dry run)"
        } else {
            "removed"
        }
    )
}

pub fn prune(ctx: &Ctx, args: &PruneArgs) -> Result<Code> {
    if !(0.0..=100.0).contains(&args.max_unused) {
        return Err(exit::usage("--max-unused is a percentage, 0 to 100"));
    }
    let repo = ctx.open_full()?;
    let report = lifeboat_ops::prune(
        &repo,
        &PruneOptions {
            dry_run: args.dry_run,
            repack_unused_share: args.max_unused / 100.0,
            ..PruneOptions::default()
        },
    )?;
    if ctx.global.json {
        ctx.print_json(&report)?;
    } else {
        print_prune(&report, args.dry_run)?;
    }
    Ok(Code::Ok)
}

fn print_prune(all: &PruneAllReport, dry: bool) -> Result<()> {
    let verb = if dry { "would" } else { "did" };
    let r = &all.prune;
    if all.binlog.runs_merged > 0 {
        outln!(
            "binlog: {verb} merge {} run(s) into {}",
            all.binlog.runs_merged,
            all.binlog.runs_written
        )?;
    }
    outln!(
        "{} snapshot(s) keep {} blob(s); prune {verb}: remove {} unused pack(s) and {} unindexed pack(s), \
         repack {} and compact {} small into {}, drop {} blob(s), replace {} index file(s), remove {} state file(s)",
        r.snapshots,
        r.blobs_used,
        r.packs_removed,
        r.unindexed_packs_removed,
        r.packs_repacked,
        r.packs_compacted,
        r.packs_written,
        r.blobs_removed,
        r.index_files_replaced,
        r.state_files_removed
    )?;
    let l = &r.object_lock;
    if l.extended + l.purged + l.still_locked > 0 {
        outln!(
            "object lock: extended {} file(s) in use; purged {} old version(s); {} old \
             version(s) still locked are left for a later prune",
            l.extended,
            l.purged,
            l.still_locked
        )?;
    }
    if !r.unreadable_index_files.is_empty() {
        outln!(
            "left {} index file(s) that cannot be read ({}), and every pack no other index file \
             names: run `lifeboat verify`, then `lifeboat repair index`",
            r.unreadable_index_files.len(),
            r.unreadable_index_files.join(", ")
        )?;
    }
    if r.protected_left > 0 {
        let until = r
            .protected_until
            .map(|t| t.format(" (the last until %Y-%m-%d %H:%M UTC)").to_string())
            .unwrap_or_default();
        outln!(
            "bucket lock rule: {} file(s) it still protects are left for a later prune{until}",
            r.protected_left
        )?;
    }
    if r.lock_files_removed > 0 {
        outln!(
            "removed {} lock file(s) that no longer count (released, superseded or stale)",
            r.lock_files_removed
        )?;
    }
    outln!(
        "packs: {} -> {}{}",
        human(r.bytes_before),
        human(r.bytes_after),
        if dry { " (estimated)" } else { "" }
    )?;
    Ok(())
}

/// `[retention] binlog` (default 14 days): how long the stored binlog is kept.
fn keep_log(ctx: &Ctx) -> Result<chrono::TimeDelta> {
    match ctx
        .config
        .retention()?
        .as_ref()
        .and_then(|r| r.binlog.as_deref())
    {
        Some(s) => crate::config::parse_duration(s)
            .and_then(|d| chrono::TimeDelta::from_std(d).map_err(|e| e.to_string()))
            .map_err(|e| exit::usage(format!("[retention] binlog: {e}"))),
        None => Ok(chrono::TimeDelta::days(14)),
    }
}
