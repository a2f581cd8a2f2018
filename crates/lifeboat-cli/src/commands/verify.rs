//! `lifeboat verify`: structure, and with --read-data every byte.

use anyhow::Result;
use lifeboat_ops::VerifyAllReport;
use lifeboat_store::{ProgressBars, RepairOptions, VerifyOptions};

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
    let report: VerifyAllReport = if percent.is_some() {
        lifeboat_ops::verify_data(&ctx.open_full()?, &opts, &*bar)?
    } else {
        match ctx.open_any()? {
            AnyRepo::Backup(r) => lifeboat_ops::verify(&r, &opts, &*bar)?,
            AnyRepo::Full(r) => lifeboat_ops::verify(&r, &opts, &*bar)?,
        }
    };
    ctx.note(|r| r.note_verify(&report, percent));
    if ctx.global.json {
        ctx.print_json(&report)?;
    } else {
        for p in report.problems() {
            outln!(
                "DAMAGED {}: {}",
                super::status::clean(&p.what),
                super::status::clean(&p.detail)
            )?;
            for n in &p.needed_by {
                outln!("    needed by {n}")?;
            }
        }
        let b = &report.binlog;
        for w in &b.windows {
            outln!(
                "point-in-time window {} to {} (snapshot {}): {} binlog run(s), {} segment(s){}",
                w.window.from.format("%Y-%m-%d %H:%M:%S"),
                w.window.until.format("%Y-%m-%d %H:%M:%S UTC"),
                w.window.snapshot.short(),
                w.runs,
                w.segments,
                w.transactions
                    .map(|t| format!(", {t} transaction(s) read and linked"))
                    .unwrap_or_default()
            )?;
        }
        if b.runs_before_windows > 0 {
            outln!(
                "{} binlog run(s) older than every window (binlog retention dropped what they continued)",
                b.runs_before_windows
            )?;
        }
        let store = &report.store;
        if store.items_checked > 0 {
            outln!(
                "read the newest snapshot's {} item(s) whole and compared each with its size and SHA-256",
                store.items_checked
            )?;
        }
        outln!(
            "checked {} snapshot(s), {} pack(s), read {} pack(s) and {} blob(s): {}",
            store.snapshots,
            store.packs,
            store.packs_read,
            store.blobs_read,
            if report.is_ok() {
                "no problems".to_string()
            } else {
                format!("{} problem(s)", report.problems().count())
            }
        )?;
        if store.unindexed_packs > 0 {
            outln!(
                "{} pack(s) not yet indexed (left by an interrupted backup or prune; a backup reuses them, prune removes the rest)",
                store.unindexed_packs
            )?;
        }
    }
    if report.is_ok() {
        Ok(Code::Ok)
    } else {
        Err(exit::damaged(format!(
            "verify found {} problem(s) in the repository",
            report.problems().count()
        )))
    }
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
/// A structure verify's problems, then one line `WHAT: N snapshot(s), ...`.
pub fn print_problems(v: &lifeboat_store::VerifyReport, what: &str) -> Result<()> {
    for p in &v.problems {
        outln!(
            "DAMAGED {}: {}",
            super::status::clean(&p.what),
            super::status::clean(&p.detail)
        )?;
    }
    outln!(
        "{what}: {} snapshot(s), {} pack(s), {}",
        v.snapshots,
        v.packs,
        if v.problems.is_empty() {
            "no problems".to_string()
        } else {
            format!("{} problem(s)", v.problems.len())
        }
    )?;
    Ok(())
}

/// `repair undelete --as-of TIME`, then a verify of the result.
pub fn undelete(ctx: &Ctx, as_of: chrono::DateTime<chrono::Utc>) -> Result<Code> {
    // On the raw store first: the config may be what was overwritten.
    let r = lifeboat_store::undelete(&*ctx.backend()?, as_of)?;
    let repo = ctx.open_full()?;
    repo.keep_locked()?;
    let bar = ctx.bars.counter("verifying");
    let v = repo.verify(&lifeboat_store::VerifyOptions::default(), &*bar)?;
    if ctx.global.json {
        ctx.print_json(&serde_json::json!({"undelete": r, "verify": v}))?;
    } else {
        outln!(
            "brought back {} file(s) as they were at {}; {} unchanged; {} written since left as \
             they are",
            r.revived,
            as_of.format("%Y-%m-%d %H:%M:%S UTC"),
            r.unchanged,
            r.newer
        )?;
        for f in &r.failed {
            outln!("NOT BROUGHT BACK {}", super::status::clean(f))?;
        }
        print_problems(&v, "verify")?;
    }
    Ok(if v.problems.is_empty() && r.failed.is_empty() {
        Code::Ok
    } else {
        Code::Damaged
    })
}

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
