//! The MySQL source, wired in: options from flags, environment and the
//! config's `[mysql]` / `[staging]` sections; dump, replay and export.

use std::path::PathBuf;

use anyhow::Result;
use lifeboat_mysql::{DumpOptions, MysqlOptions, ReplayOptions, TableFilter};
use lifeboat_store::secrecy::SecretString;
use lifeboat_store::{Access, BackupSession, FullAccess, Index, ManifestItem, Repository};

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
    let cfg = ctx.config.mysql.as_ref();
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

/// The row-hash cache files a dump wrote, to keep once the snapshot is
/// committed (or drop if it is not).
pub struct PendingCache {
    root: PathBuf,
    repository: String,
    names: lifeboat_mysql::CacheNames,
    databases: Vec<String>,
}

impl PendingCache {
    pub fn commit(&self) {
        for db in &self.databases {
            lifeboat_mysql::commit_cache(&self.root, &self.repository, &self.names, db);
        }
    }
    pub fn discard(&self) {
        for db in &self.databases {
            lifeboat_mysql::discard_cache(&self.root, &self.repository, &self.names, db);
        }
    }
}

/// Dump into an open session; a failure is a source failure (exit 3).
pub fn backup<A: Access>(
    ctx: &Ctx,
    session: &mut BackupSession<A>,
    url_flag: Option<&str>,
) -> Result<Option<PendingCache>> {
    let opts = source_options(ctx, url_flag)?;
    let databases = if opts.databases.is_empty() {
        opts.mysql.database().map(|d| vec![d])
    } else {
        Ok(opts.databases.clone())
    };
    let pending = match (&opts.cache_dir, databases) {
        (Some(root), Ok(databases)) => Some(PendingCache {
            root: root.clone(),
            repository: session.repository_id().to_string(),
            names: lifeboat_mysql::CacheNames::new(
                session.derived_key(lifeboat_mysql::CACHE_NAMES_KEY),
            ),
            databases,
        }),
        _ => None,
    };
    match lifeboat_mysql::dump(session, &opts, &ctx.bars) {
        Ok(reports) => {
            for report in reports {
                let rows: u64 = report.tables.iter().map(|t| t.1).sum();
                tracing::info!(
                    "mysql: {} tables, {rows} rows, {} objects from {} ({}; {} connection(s))",
                    report.tables.len(),
                    report.objects,
                    report.database,
                    report.server_version,
                    report.connections
                );
            }
            Ok(pending)
        }
        Err(e) => {
            if let Some(p) = &pending {
                p.discard();
            }
            Err(match e {
                lifeboat_mysql::Error::Store(e) => e.into(),
                e => exit::source(format!("MySQL dump failed: {e}")),
            })
        }
    }
}

pub fn map_replay_error(e: lifeboat_mysql::Error) -> anyhow::Error {
    match e {
        lifeboat_mysql::Error::Store(e) => e.into(),
        lifeboat_mysql::Error::Mismatch(m) => exit::damaged(format!(
            "the replayed database does not match the snapshot: {m}"
        )),
        lifeboat_mysql::Error::Refused(m) => exit::damaged(m),
        lifeboat_mysql::Error::Target(m) | lifeboat_mysql::Error::Invalid(m) => exit::usage(m),
        other => anyhow::Error::new(other),
    }
}

/// The database to replay into: `url`, else `[staging] mysql_url`; its
/// password from LIFEBOAT_TARGET_PASSWORD, else `[staging] mysql_password`.
pub fn staging_target(ctx: &Ctx, url: Option<String>) -> Result<MysqlOptions> {
    let staging = ctx.config.staging.as_ref();
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

/// `restore --source mysql --target URL`.
pub fn restore(
    ctx: &Ctx,
    repo: &Repository<FullAccess>,
    index: &Index,
    items: &[ManifestItem],
    args: &RestoreArgs,
) -> Result<Code> {
    let opts = ReplayOptions {
        target: staging_target(ctx, args.target.clone())?,
        force: args.force,
        allow_source: args.allow_source,
        trust_object_bodies: args.trust_object_bodies,
        connections: args.connections,
        verify: true,
    };
    let items = lifeboat_mysql::select_database(items, args.database.as_deref())
        .map_err(map_replay_error)?;
    let report =
        lifeboat_mysql::replay(repo, index, &items, &opts, &ctx.bars).map_err(map_replay_error)?;
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
    Ok(Code::Ok)
}

/// `export SNAPSHOT --source mysql --to FILE`.
pub fn export(ctx: &Ctx, args: ExportArgs) -> Result<Code> {
    if args.source != "mysql" {
        return Err(exit::usage(format!(
            "export supports --source mysql (not {:?})",
            args.source
        )));
    }
    let repo = ctx.open_full()?;
    let snap = repo.find_snapshot(&args.snapshot)?;
    let (index, _) = repo.load_index()?;
    let items = repo.manifest(&index, &snap.snapshot)?;
    let items = lifeboat_mysql::select_database(&items, args.database.as_deref())
        .map_err(map_replay_error)?;
    super::write_output(&args.to, args.force, &mut |out| {
        lifeboat_mysql::export(&repo, &index, &items, out).map_err(map_replay_error)
    })?;
    if args.to == "-" {
        return Ok(Code::Ok);
    }
    if !ctx.global.quiet {
        eprintln!(
            "exported the MySQL backup of snapshot {} to {}",
            snap.id.short(),
            args.to
        );
    }
    Ok(Code::Ok)
}
