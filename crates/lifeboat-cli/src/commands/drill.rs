//! `lifeboat drill`: `[staging]` from the config, the drill itself in
//! lifeboat-ops, the report on stdout.

use anyhow::Result;
use lifeboat_ops::drill::{self, DrillOptions, Staging};

use super::Ctx;
use crate::cli::DrillArgs;
use crate::exit::{self, Code};

pub fn run(ctx: &Ctx, args: &DrillArgs) -> Result<Code> {
    let staging = match ctx.config.staging()? {
        Some(s) => Staging {
            mysql: match &s.mysql_url {
                Some(_) => Some(super::mysql::staging_target(ctx, None)?),
                None => None,
            },
            objects_bucket: match (&s.objects_bucket, ctx.config.objects()?) {
                (Some(b), Some(c)) => Some(super::objects::bucket_options(c, b, &s.objects_prefix)),
                _ => None,
            },
            dir: s.dir.clone(),
            health_url: s.health_url.clone(),
        },
        None => Staging::default(),
    };
    let opts = DrillOptions {
        snapshot: args.snapshot.clone(),
        database: args.database.clone(),
        staging,
        connections: args.connections,
        sample_percent: args.sample,
        before_verify: args.exec_before_verify.clone(),
        health_url: args.health_url.clone(),
        cross_check: super::check::cross_check_options(
            ctx,
            &args.table,
            ctx.config
                .objects()?
                .as_ref()
                .and_then(|o| o.bucket.clone()),
        )?,
        report_file: args.report.clone(),
        until: args.until,
        expected_sources: super::status::configured_sources(ctx),
    };
    let repo = ctx.open_full()?;
    let report = drill::drill(&repo, &opts, &ctx.bars)?;
    ctx.note_drill(&report);
    if ctx.global.json {
        ctx.print_json(&report)?;
    } else {
        outln!("{}", drill::markdown(&report))?;
    }
    if report.ok() {
        return Ok(Code::Ok);
    }
    Err(anyhow::Error::new(exit::Exit {
        code: Code::Damaged,
        message: format!(
            "the drill FAILED with {} problem(s); the first: {}",
            report.problems.len(),
            report.problems[0]
        ),
        hint: Some(
            "the report names every problem and its source; a recovery from this snapshot \
             would meet the same (docs/DISASTER-RECOVERY.md)",
        ),
    }))
}
