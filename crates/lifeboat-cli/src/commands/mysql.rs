//! The MySQL source, wired in: options from flags, environment and the
//! config's `[mysql]` / `[staging]` sections; dump, replay and export.

use std::path::PathBuf;

use anyhow::Result;
use lifeboat_mysql::{DumpOptions, MysqlOptions, ReplayOptions, TableFilter};
use lifeboat_store::secrecy::SecretString;
use lifeboat_store::{FullAccess, Index, ManifestItem, Repository};

use super::Ctx;
use crate::cli::{ExportArgs, RestoreArgs};
use crate::exit::{self, Code};

fn env_secret(name: &str) -> Option<SecretString> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map(SecretString::from)
}

/// The source database: `--mysql-url`/LIFEBOAT_MYSQL_URL or `[mysql] url`;
/// password from LIFEBOAT_MYSQL_PASSWORD or `[mysql] password`.
pub fn source_options(ctx: &Ctx, url_flag: Option<&str>) -> Result<DumpOptions> {
    let cfg = ctx.config.mysql()?.as_ref();
    let url = url_flag
        .map(str::to_string)
        .or_else(|| cfg.map(|c| c.url.clone()))
        .ok_or_else(|| exit::usage("no MySQL database configured: add a [mysql] section to the config, or pass --mysql-url"))?;
    let ssl_mode = cfg
        .and_then(|c| c.ssl_mode.as_deref())
        .map(str::parse)
        .transpose()
        .map_err(|e: lifeboat_mysql::Error| exit::usage(e.to_string()))?;
    Ok(DumpOptions {
        mysql: MysqlOptions {
            url,
            password: env_secret("LIFEBOAT_MYSQL_PASSWORD")
                .or_else(|| cfg.and_then(|c| c.password.clone()).map(SecretString::from)),
            ca_file: cfg.and_then(|c| c.ca_file.clone()),
            ssl_mode,
        },
        filter: TableFilter {
            include: cfg.map(|c| c.include_tables.clone()).unwrap_or_default(),
            exclude: cfg.map(|c| c.exclude_tables.clone()).unwrap_or_default(),
        },
        cache_dir: cache_root(),
        connections: cfg.and_then(|c| c.connections).unwrap_or(2),
        databases: cfg.map(|c| c.databases.clone()).unwrap_or_default(),
    })
}

/// The backup host's cache: LIFEBOAT_CACHE_DIR, else $XDG_CACHE_HOME/lifeboat,
/// else ~/.cache/lifeboat. It holds keyed row hashes, never data.
pub fn cache_root() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("LIFEBOAT_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("lifeboat")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("lifeboat")))
}

/// The database to replay into: `url`, else `[staging] mysql_url`; its
/// password from LIFEBOAT_TARGET_PASSWORD, else `[staging] mysql_password`.
pub fn staging_target(ctx: &Ctx, url: Option<String>) -> Result<MysqlOptions> {
    let staging = ctx.config.staging()?.as_ref();
    let url = url
        .or_else(|| staging.and_then(|s| s.mysql_url.clone()))
        .ok_or_else(|| exit::usage("--source mysql needs --target mysql://USER@HOST:PORT/DB (or [staging] mysql_url in the config)"))?;
    Ok(MysqlOptions {
        url,
        password: env_secret("LIFEBOAT_TARGET_PASSWORD").or_else(|| {
            staging
                .and_then(|s| s.mysql_password.clone())
                .map(SecretString::from)
        }),
        ca_file: staging.and_then(|s| s.mysql_ca_file.clone()),
        ssl_mode: None,
    })
}

/// How `restore --source mysql` replays, from its flags.
fn replay_options(ctx: &Ctx, args: &RestoreArgs) -> Result<ReplayOptions> {
    Ok(ReplayOptions {
        target: staging_target(ctx, args.target.clone())?,
        force: args.force,
        allow_source: args.allow_source,
        trust_object_bodies: args.trust_object_bodies,
        connections: args.connections.unwrap_or(2),
        verify: true,
        definers: args.definers.unwrap_or_default(),
        disable_events: false,
        with_users: args.with_users,
        with_global_grants: args.with_global_grants,
    })
}

/// `restore SNAPSHOT --source mysql --until TIME --target URL`.
pub fn restore_until(
    ctx: &Ctx,
    repo: &Repository<FullAccess>,
    args: &RestoreArgs,
    until: chrono::DateTime<chrono::Utc>,
) -> Result<Code> {
    let (index, _) = repo.load_index()?;
    let opts = lifeboat_ops::RestoreUntilOptions {
        snapshot: args.snapshot.clone(),
        until,
        until_gtid: args
            .until_gtid
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(exit::usage)?,
        database: args.database.clone(),
        replay: replay_options(ctx, args)?,
    };
    let report = lifeboat_ops::restore_until(repo, &index, &opts, &ctx.bars)?;
    print_until(ctx, &report)
}

/// `restore SNAPSHOT --source mysql` of a backup derived from the stored
/// binlog: its full snapshot, then the binlog up to exactly its end.
pub fn restore_derived(
    ctx: &Ctx,
    repo: &Repository<FullAccess>,
    args: &RestoreArgs,
) -> Result<Code> {
    let (index, _) = repo.load_index()?;
    let opts = binlog_restore_options(ctx, args)?;
    let report = lifeboat_ops::restore_derived(repo, &index, &opts, &ctx.bars)?;
    print_until(ctx, &report)
}

/// The full snapshot replayed (and checked), and what the binlog apply
/// skipped.
fn print_replayed(
    id: &lifeboat_store::SnapshotId,
    time: chrono::DateTime<chrono::Utc>,
    replay: &lifeboat_mysql::ReplayReport,
    applied: &lifeboat_mysql::ApplyReport,
) -> Result<()> {
    outln!(
        "replayed snapshot {} ({}) into {} and checked it: {} tables match",
        id.short(),
        time.format("%Y-%m-%d %H:%M:%S UTC"),
        replay.target,
        replay.tables.len()
    )?;
    for (what, n) in &applied.skipped {
        outln!("skipped: {what} ({n}x)")?;
    }
    Ok(())
}

fn print_until(ctx: &Ctx, report: &lifeboat_ops::RestoreUntilReport) -> Result<Code> {
    if ctx.global.json {
        return ctx.print_json(report).map(|()| Code::Ok);
    }
    let a = &report.applied;
    print_replayed(&report.snapshot, report.snapshot_time, &report.replay, a)?;
    let last = a
        .last_commit
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map_or("none".into(), |t| {
            t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
        });
    outln!(
        "applied the binlog up to {}: {} transaction(s), {} row event(s) in {:.1}s (last commit {last}; the window is stored until {})",
        report.until.format("%Y-%m-%d %H:%M:%S UTC"),
        a.transactions,
        a.row_events,
        a.seconds,
        report.window_until.format("%Y-%m-%d %H:%M:%S UTC"),
    )?;
    Ok(Code::Ok)
}

fn binlog_restore_options(
    ctx: &Ctx,
    args: &RestoreArgs,
) -> Result<lifeboat_ops::BinlogRestoreOptions> {
    Ok(lifeboat_ops::BinlogRestoreOptions {
        snapshot: args.snapshot.clone(),
        database: args.database.clone(),
        replay: replay_options(ctx, args)?,
    })
}

/// `restore --source mysql --from-binlog`: the proof that the stored
/// binlog between two full snapshots gives the later one.
pub fn restore_from_binlog(
    ctx: &Ctx,
    repo: &Repository<FullAccess>,
    args: &RestoreArgs,
) -> Result<Code> {
    let (index, _) = repo.load_index()?;
    let opts = binlog_restore_options(ctx, args)?;
    let report = lifeboat_ops::prove_binlog(repo, &index, &opts, &ctx.bars)?;
    if ctx.global.json {
        return ctx.print_json(&report).map(|()| Code::Ok);
    }
    let a = &report.applied;
    print_replayed(&report.base, report.base_time, &report.replay, a)?;
    outln!(
        "applied the stored binlog of {} run(s) up to snapshot {}'s coordinates: {} \
         transaction(s), {} row event(s) in {:.1}s",
        report.runs.len(),
        report.snapshot.short(),
        a.transactions,
        a.row_events,
        a.seconds
    )?;
    let rows: u64 = report.check.tables.iter().map(|t| t.rows_found).sum();
    outln!(
        "the result equals snapshot {} ({}): {} tables, {rows} rows, checksums match",
        report.snapshot.short(),
        report.snapshot_time.format("%Y-%m-%d %H:%M:%S UTC"),
        report.check.tables.len()
    )?;
    Ok(Code::Ok)
}

/// `restore --source mysql --target URL`.
pub fn restore(
    ctx: &Ctx,
    repo: &Repository<FullAccess>,
    index: &Index,
    items: &[ManifestItem],
    args: &RestoreArgs,
) -> Result<Code> {
    let opts = replay_options(ctx, args)?;
    let items = lifeboat_mysql::select_database(items, args.database.as_deref())?;
    let report = lifeboat_mysql::replay(repo, index, &items, &opts, &ctx.bars)?;
    if ctx.global.json {
        ctx.print_json(&report)?;
    } else {
        outln!(
            "{:<28} {:>12} {:>12}  checksum",
            "table",
            "rows",
            "expected"
        )?;
        for t in &report.tables {
            outln!(
                "{:<28} {:>12} {:>12}  {}",
                t.table,
                t.rows_found,
                t.rows_expected,
                if t.checksum_matches {
                    "match"
                } else {
                    "DIFFERS"
                }
            )?;
        }
        for r in &report.rewritten {
            outln!("rewritten: {r}")?;
        }
        for n in &report.notes {
            outln!("note: {n}")?;
        }
        if let Some(a) = &report.accounts {
            outln!(
                "accounts: {} created ({} grants), {} left alone because they exist{}",
                a.created.len(),
                a.granted,
                a.existing.len(),
                if a.existing.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", a.existing.join(", "))
                }
            )?;
            for s in &a.skipped {
                outln!("not restored: {s}")?;
            }
            for f in &a.failed {
                outln!("FAILED: {f}")?;
            }
        }
        if let Some(s) = &report.schema {
            outln!("{}", lifeboat_mysql::schema_line(s))?;
        }
        outln!(
            "replayed {} tables and {} of {} objects into {} in {:.1}s; checked in {:.1}s: every table matches the snapshot",
            report.tables.len(),
            report.objects_created,
            report.objects_expected,
            report.target,
            report.load_seconds,
            report.check_seconds
        )?;
    }
    if report
        .accounts
        .as_ref()
        .is_some_and(|a| !a.failed.is_empty())
    {
        eprintln!("WARNING: some accounts or grants could not be restored (FAILED lines above)");
        return Ok(Code::Warning);
    }
    Ok(Code::Ok)
}

/// `export SNAPSHOT --source mysql --to FILE`.
pub fn export(ctx: &Ctx, args: ExportArgs) -> Result<Code> {
    if args.source != lifeboat_ops::SourceKind::Mysql {
        return Err(exit::usage(format!(
            "export supports --source mysql (not {})",
            args.source
        )));
    }
    let repo = ctx.open_full()?;
    let snap = repo.find_snapshot(&args.snapshot)?;
    if let Some(d) = lifeboat_ops::derived(&snap) {
        return Err(exit::usage(format!(
            "snapshot {}'s MySQL backup is derived: full snapshot {} and the stored binlog up \
             to {}, no SQL of its own. Restore it into a database (`lifeboat restore {} \
             --source mysql --target URL`) and dump that, or export full snapshot {} and \
             apply the stored binlog with mysqlbinlog (docs/FORMAT.md)",
            snap.id.short(),
            d.base.short(),
            d.end,
            snap.id.short(),
            d.base.short()
        )));
    }
    let (index, _) = repo.load_index()?;
    let items = repo.manifest(&index, &snap.snapshot)?;
    let items = lifeboat_mysql::select_database(&items, args.database.as_deref())?;
    if args.users_to.as_deref() == Some("-") {
        return Err(exit::usage(
            "--users-to writes password hashes: give a file (it is written with mode 0600), \
             not standard output",
        ));
    }
    let opts = lifeboat_mysql::ExportOptions {
        trust_object_bodies: args.trust_object_bodies,
    };
    super::write_output(&args.to, args.force, &mut |out| {
        Ok(lifeboat_mysql::export(&repo, &index, &items, &opts, out)?)
    })?;
    let mut skipped = Vec::new();
    if let Some(users_to) = &args.users_to {
        let opts = lifeboat_mysql::AccountsExportOptions {
            grants_on: args.grants_on.clone(),
            with_global_grants: args.with_global_grants,
        };
        super::write_output(users_to, args.force, &mut |out| {
            skipped = lifeboat_mysql::export_accounts(&repo, &index, &items, &opts, out)?;
            Ok(())
        })?;
    }
    for s in &skipped {
        eprintln!("skipped: {s}");
    }
    if !ctx.global.quiet && args.to != "-" {
        eprintln!(
            "exported the MySQL backup of snapshot {} to {}",
            snap.id.short(),
            args.to
        );
    }
    if let (false, Some(u)) = (ctx.global.quiet, &args.users_to) {
        eprintln!("wrote its accounts to {u} (password hashes: keep it like a password)");
    }
    Ok(Code::Ok)
}
