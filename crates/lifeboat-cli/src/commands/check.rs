//! `lifeboat check-references`: the document rows against the objects,
//! each side from a snapshot or live.

use anyhow::Result;
use lifeboat_ops::{check_references, CrossCheckOptions, DocRef, Documents, Objects};

use super::Ctx;
use crate::cli::CheckReferencesArgs;
use crate::exit::{self, Code};

/// The cross-check's table and columns: the flag's table, the `[check]`
/// section's column names (defaults: `storage_provider`, `storage_bucket`,
/// `storage_key`).
pub fn cross_check_options(
    ctx: &Ctx,
    table: &str,
    bucket: Option<String>,
) -> Result<CrossCheckOptions> {
    let mut opts = CrossCheckOptions {
        table: table.to_string(),
        bucket,
        ..Default::default()
    };
    if let Some(c) = ctx.config.check()? {
        for (field, value) in [
            (&mut opts.provider_column, &c.provider_column),
            (&mut opts.bucket_column, &c.bucket_column),
            (&mut opts.key_column, &c.key_column),
        ] {
            if let Some(v) = value {
                *field = v.clone();
            }
        }
    }
    Ok(opts)
}

pub fn run(ctx: &Ctx, args: CheckReferencesArgs) -> Result<Code> {
    let opts = cross_check_options(ctx, &args.table, args.row_bucket.clone())?;
    let live_source = if args.live_objects {
        Some(super::objects::source(ctx)?)
    } else {
        None
    };
    let live_db = if args.live_db {
        Some(super::mysql::source_options(ctx, None)?.mysql)
    } else {
        None
    };
    let report = match (&live_db, &live_source) {
        (Some(db), Some(src)) => check_references(Documents::Live(db), Objects::Live(src), &opts)?,
        _ => {
            let repo = ctx.open_full()?;
            let snap = repo.find_snapshot(&args.snapshot)?;
            let (index, _) = repo.load_index()?;
            let items = repo.manifest(&index, &snap.snapshot)?;
            let items = lifeboat_mysql::select_database(&items, args.database.as_deref())?;
            let docs = match &live_db {
                Some(db) => Documents::Live(db),
                None => Documents::Snapshot {
                    repo: &repo,
                    index: &index,
                    items: &items,
                },
            };
            let objects = match &live_source {
                Some(s) => Objects::Live(s),
                None => {
                    if !items.iter().any(|i| i.source == lifeboat_objects::SOURCE) {
                        return Err(exit::usage(format!(
                            "snapshot {} holds no objects: back up with --source objects, or pass --live-objects",
                            snap.id.short()
                        )));
                    }
                    Objects::Snapshot(&items)
                }
            };
            check_references(docs, objects, &opts)?
        }
    };
    if ctx.global.json {
        ctx.print_json(&report)?;
    } else {
        let show = |title: &str, list: &[DocRef]| -> Result<()> {
            if list.is_empty() {
                return Ok(());
            }
            outln!("{title} ({}):", list.len())?;
            for d in list.iter().take(50) {
                match &d.detail {
                    Some(why) => outln!("  row {}: {} ({why})", d.id, d.key)?,
                    None => outln!("  row {}: {}", d.id, d.key)?,
                }
            }
            if list.len() > 50 {
                outln!("  ... and {} more (--json lists all)", list.len() - 50)?;
            }
            Ok(())
        };
        show("rows whose object is MISSING", &report.missing)?;
        show("rows whose object DIFFERS", &report.differs)?;
        show("rows still on local storage", &report.local)?;
        show("rows in another bucket (not checked)", &report.elsewhere)?;
        if !report.orphans.is_empty() {
            outln!("objects no row points at ({}):", report.orphans.len())?;
            for k in report.orphans.iter().take(50) {
                outln!("  {k}")?;
            }
        }
        outln!(
            "{} rows, {} objects: {} missing, {} different, {} orphan objects, {} local rows",
            report.rows,
            report.objects,
            report.missing.len(),
            report.differs.len(),
            report.orphans.len(),
            report.local.len()
        )?;
    }
    if report.ok() {
        Ok(Code::Ok)
    } else {
        Err(anyhow::Error::new(exit::Exit {
            code: Code::Damaged,
            message: format!(
                "{} document row(s) point at missing or different objects",
                report.missing.len() + report.differs.len()
            ),
            hint: Some(
                "find the files in an older snapshot (`lifeboat show`) and put them back with \
                 `lifeboat restore SNAPSHOT --source objects --key KEY --target s3://BUCKET`",
            ),
        }))
    }
}
