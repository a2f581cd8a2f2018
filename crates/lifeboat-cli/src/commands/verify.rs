//! `lifeboat verify`: structure, and with --read-data every byte.

use anyhow::Result;
use lifeboat_store::{
    Access, Progress, ProgressBars, RepairOptions, Repository, VerifyOptions, VerifyReport,
};

use super::{AnyRepo, Ctx};
use crate::cli::VerifyArgs;
use crate::exit::{self, Code};

pub fn run(ctx: &Ctx, args: VerifyArgs) -> Result<Code> {
    let percent = match (&args.read_data, &args.read_data_subset) {
        (true, _) => Some(100.0),
        (false, Some(s)) => Some(parse_percent(s)?),
        (false, None) => None,
    };
    let opts = VerifyOptions {
        read_data_percent: percent,
    };
    let bar = ctx.bars.bytes("verify");
    let report = if percent.is_some() {
        run_on(&ctx.open_full()?, &opts, &*bar)?
    } else {
        match ctx.open_any()? {
            AnyRepo::Backup(r) => run_on(&r, &opts, &*bar)?,
            AnyRepo::Full(r) => run_on(&r, &opts, &*bar)?,
        }
    };
    if ctx.global.json {
        ctx.print_json(&report)?;
    } else {
        for p in &report.problems {
            outln!("DAMAGED {}: {}", p.what, p.detail)?;
            for n in &p.needed_by {
                outln!("    needed by {n}")?;
            }
        }
        if report.items_checked > 0 {
            outln!(
                "read the newest snapshot's {} item(s) whole and compared each with its size and SHA-256",
                report.items_checked
            )?;
        }
        outln!(
            "checked {} snapshot(s), {} pack(s), read {} pack(s) and {} blob(s): {}",
            report.snapshots,
            report.packs,
            report.packs_read,
            report.blobs_read,
            if report.is_ok() {
                "no problems".to_string()
            } else {
                format!("{} problem(s)", report.problems.len())
            }
        )?;
        if report.unindexed_packs > 0 {
            outln!(
                "{} pack(s) not yet indexed (left by an interrupted backup; the next backup reuses them)",
                report.unindexed_packs
            )?;
        }
    }
    if report.is_ok() {
        Ok(Code::Ok)
    } else {
        Err(exit::damaged(format!(
            "verify found {} problem(s) in the repository",
            report.problems.len()
        )))
    }
}

fn run_on<A: Access>(
    repo: &Repository<A>,
    opts: &VerifyOptions,
    bar: &dyn Progress,
) -> Result<VerifyReport> {
    Ok(repo.verify(opts, bar)?)
}

fn parse_percent(s: &str) -> Result<f64> {
    let n: f64 = s.trim_end_matches('%').parse().map_err(|_| {
        exit::usage(format!(
            "--read-data-subset {s:?}: give a percentage such as 10%"
        ))
    })?;
    if !(n > 0.0 && n <= 100.0) {
        return Err(exit::usage(format!(
            "--read-data-subset {s}: must be more than 0% and at most 100%"
        )));
    }
    Ok(n)
}

/// `lifeboat repair index`.
pub fn repair_index(ctx: &Ctx, dry_run: bool) -> Result<Code> {
    let repo = ctx.open_full()?;
    let bar = ctx.bars.counter("pack headers");
    let r = repo.repair_index(&RepairOptions { dry_run }, &*bar)?;
    if ctx.global.json {
        ctx.print_json(&r)?;
    } else {
        for f in &r.damaged_index_files {
            outln!("damaged index file: {f}")?;
        }
        for p in &r.unreadable_packs {
            outln!("UNREADABLE {p}")?;
        }
        let verb = if dry_run { "would index" } else { "indexed" };
        outln!(
            "{} pack(s): {verb} {} from their headers and {} from the old index ({} blob(s)); \
             {} index file(s) {}, {} removed",
            r.packs,
            r.packs_from_header,
            r.packs_from_old_index,
            r.blobs,
            r.index_files_written,
            if dry_run { "to write" } else { "written" },
            r.index_files_removed
        )?;
        for (snap, missing) in &r.snapshots_missing_data {
            outln!(
                "MISSING DATA snapshot {}: {missing} blob(s) are in no pack",
                &snap[..snap.len().min(12)]
            )?;
        }
    }
    if r.snapshots_missing_data.is_empty() {
        Ok(Code::Ok)
    } else {
        Err(exit::damaged(format!(
            "{} snapshot(s) need data no pack holds: `lifeboat verify` names their items; \
             `lifeboat forget` them once nothing else can be recovered",
            r.snapshots_missing_data.len()
        )))
    }
}
