//! `lifeboat binlog`: the MySQL binary log written since the last stored
//! position, into the store as one log snapshot.

use anyhow::Result;
use lifeboat_mysql::CaptureOptions;
use lifeboat_ops::BinlogOptions;
use sha2::{Digest, Sha256};

use super::Ctx;
use crate::cli::BinlogArgs;
use crate::commands::backup::human;
use crate::exit::{self, Code};

/// The replica id capture connects as: `[mysql] binlog_server_id`, else a
/// fixed number derived from the repository id (high, to stay clear of
/// the ids people give their replicas).
pub fn server_id(configured: Option<u32>, repository_id: &str) -> u32 {
    configured.unwrap_or_else(|| {
        let h = Sha256::digest(repository_id.as_bytes());
        0x4C00_0000 | u32::from_be_bytes([0, h[0], h[1], h[2]])
    })
}

/// The databases a dump of `source` reads: `[mysql] databases`, else the
/// URL's.
pub fn backed_up(source: &lifeboat_mysql::DumpOptions) -> Result<Vec<String>> {
    Ok(match source.databases.is_empty() {
        true => vec![source
            .mysql
            .database()
            .map_err(|e| exit::usage(e.to_string()))?],
        false => source.databases.clone(),
    })
}

pub fn run(ctx: &Ctx, args: &BinlogArgs) -> Result<Code> {
    let cfg = ctx.config.mysql()?.as_ref();
    if !cfg.is_some_and(|c| c.binlog) {
        return Err(exit::usage(
            "binlog capture is off: set `binlog = true` in the config's [mysql] section (the \
             server needs log_bin, binlog_format = ROW and binlog_row_image = FULL, and the \
             user REPLICATION SLAVE and REPLICATION CLIENT)",
        ));
    }
    let source = super::mysql::source_options(ctx, None)?;
    let repo = ctx.open_for_backup()?;
    let opts = BinlogOptions {
        capture: CaptureOptions {
            databases: backed_up(&source)?,
            mysql: source.mysql,
            server_id: server_id(cfg.and_then(|c| c.binlog_server_id), repo.id()),
        },
        hostname: None,
    };
    if args.follow {
        let every = cfg.and_then(|c| c.binlog_flush_secs).unwrap_or(60).max(1);
        let every = std::time::Duration::from_secs(every);
        let mut failed = None;
        with_repo!(repo, r => lifeboat_ops::follow_binlog(r, &opts, every, &ctx.bars, &mut |report| {
            if let Err(e) = print(ctx, report, true) {
                failed = Some(e);
                return false;
            }
            true
        }))?;
        return match failed {
            Some(e) => Err(e),
            None => Ok(Code::Ok),
        };
    }
    ctx.note(|r| r.plan_sources(&["mysql"]));
    let report = with_repo!(repo, r => lifeboat_ops::capture_binlog(r, &opts, &ctx.bars))?;
    ctx.note(|r| {
        r.snapshot = Some(report.id.to_hex());
        r.bytes_read = Some(report.run.segments.iter().map(|s| s.bytes).sum());
        for s in &mut r.sources {
            s.ok = true;
        }
    });
    print(ctx, &report, false)?;
    if report.gap.is_some() {
        return Ok(Code::Warning);
    }
    Ok(Code::Ok)
}

/// One run: a line (or JSON; one line per run when following, as JSON
/// Lines), and the gap it crossed as a warning.
fn print(ctx: &Ctx, report: &lifeboat_ops::BinlogReport, follow: bool) -> Result<()> {
    let run = &report.run;
    if ctx.global.json && follow {
        outln!("{}", serde_json::to_string(report)?)?;
    } else if ctx.global.json {
        ctx.print_json(report)?;
    } else {
        let bytes: u64 = run.segments.iter().map(|s| s.bytes).sum();
        let txns: u64 = run.segments.iter().map(|s| s.transactions).sum();
        outln!(
            "binlog {} stored: {} to {} ({} transaction(s), {}, from {}); covered until {}",
            report.id.short(),
            run.start,
            run.end,
            txns,
            human(bytes),
            report.started_from,
            chrono::DateTime::from_timestamp(run.caught_up_at - 1, 0).map_or(String::new(), |t| t
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string())
        )?;
    }
    if let Some(gap) = &report.gap {
        eprintln!("WARNING: {gap}");
    }
    Ok(())
}
