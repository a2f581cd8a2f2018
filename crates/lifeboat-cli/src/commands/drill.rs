//! `lifeboat drill`: the staging environment from `[staging]`, the drill
//! itself in lifeboat-restore, the report on stdout and in files.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use lifeboat_restore::drill::{self, DrillPlan, ObjectsStaging};
use lifeboat_restore::CrossCheckOptions;

use super::Ctx;
use crate::cli::DrillArgs;
use crate::exit::{self, Code};

pub fn run(ctx: &Ctx, args: &DrillArgs) -> Result<Code> {
    let staging = ctx.config.staging.as_ref().ok_or_else(|| {
        exit::usage(
            "a drill needs a [staging] section (mysql_url, objects_bucket or dir) in the config",
        )
    })?;
    if let Some(p) = args.sample {
        if !(p > 0.0 && p <= 100.0) {
            return Err(exit::usage("--sample is a percentage above 0, at most 100"));
        }
    }
    let repo = ctx.open_full()?;
    let snap = repo.find_snapshot(&args.snapshot)?;
    let (index, _) = repo.load_index()?;
    let items = repo.manifest(&index, &snap.snapshot)?;
    let items = lifeboat_mysql::select_database(&items, args.database.as_deref())
        .map_err(super::mysql::map_replay_error)?;
    let scratch = staging.dir.as_ref().map(|d| d.join("drill"));
    let mut plan = DrillPlan {
        connections: args.connections.max(1),
        sample_percent: args.sample,
        seed: chrono::Utc::now().timestamp() as u64,
        scratch: scratch.clone(),
        before_verify: args.exec_before_verify.clone(),
        health_url: args
            .health_url
            .clone()
            .or_else(|| staging.health_url.clone()),
        ..Default::default()
    };
    let has = |s: &str| snap.snapshot.sources.contains_key(s);
    let mut unstaged = Vec::new();
    if has("mysql") {
        match &staging.mysql_url {
            Some(_) => plan.mysql = Some(super::mysql::staging_target(ctx, None)?),
            None => unstaged.push("mysql (set [staging] mysql_url)"),
        }
    }
    if has("objects") {
        plan.objects =
            match (
                &staging.objects_bucket,
                &scratch,
                ctx.config.objects.as_ref(),
            ) {
                (Some(b), _, Some(c)) => Some(ObjectsStaging::Bucket(
                    super::objects::bucket_options(c, b, &staging.objects_prefix),
                )),
                (None, Some(d), _) => Some(ObjectsStaging::Dir(d.join("objects"))),
                _ => {
                    unstaged.push("objects (set [staging] objects_bucket with [objects], or dir)");
                    None
                }
            };
    }
    if (has("render") || has("git")) && scratch.is_none() {
        unstaged.push("render and git (set [staging] dir)");
    }
    if has("mysql") && has("objects") {
        plan.cross_check = Some(CrossCheckOptions {
            table: args.table.clone(),
            bucket: ctx.config.objects.as_ref().and_then(|o| o.bucket.clone()),
        });
    }
    let mut report = drill::run(&repo, &index, &snap, &items, &plan, &ctx.bars);
    for u in unstaged {
        report
            .problems
            .push(format!("not drilled, no staging for {u}"));
    }
    let md = drill::markdown(&report);
    if let Some(path) = &args.report {
        let json = serde_json::to_vec_pretty(&report).context("serializing the report")?;
        // Through a temporary file renamed into place (a planted link is
        // replaced, not written through).
        lifeboat_paths::write_file(path, &json, true, Some(0o644))
            .with_context(|| format!("writing {}", path.display()))?;
        let md_path: PathBuf = if path.extension().is_some_and(|e| e == "json") {
            path.with_extension("md")
        } else {
            PathBuf::from(format!("{}.md", path.display()))
        };
        lifeboat_paths::write_file(&md_path, md.as_bytes(), true, Some(0o644))
            .with_context(|| format!("writing {}", md_path.display()))?;
    }
    if ctx.global.json {
        ctx.print_json(&report)?;
    } else {
        outln!("{md}")?;
    }
    if report.ok() {
        Ok(Code::Ok)
    } else {
        Err(exit::damaged(format!(
            "the drill FAILED with {} problem(s); the first: {}",
            report.problems.len(),
            report.problems[0]
        )))
    }
}
