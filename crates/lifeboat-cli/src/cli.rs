//! The command line. Every option that names a repository or a key can also
//! come from the environment, so nightly scripts carry no secrets in argv.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use lifeboat_ops::SourceKind;

fn parse_source(s: &str) -> Result<SourceKind, String> {
    s.parse()
}

/// Back up a MySQL database, an object bucket, Render config and git
/// repositories into one versioned, compressed, encrypted store, and prove
/// restores work.
#[derive(Debug, Parser)]
#[command(name = "lifeboat", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Configuration file (TOML; see config/lifeboat.example.toml).
    #[arg(long, env = "LIFEBOAT_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Repository: a directory, or s3://BUCKET/PREFIX.
    #[arg(long, env = "LIFEBOAT_REPO", global = true, value_name = "URL")]
    pub repo: Option<String>,
    /// The backup key file written by `init` (lets a host add snapshots only).
    #[arg(
        long,
        env = "LIFEBOAT_BACKUP_KEY_FILE",
        global = true,
        value_name = "FILE"
    )]
    pub backup_key_file: Option<PathBuf>,
    /// The restore key file written by `init` (reads everything).
    #[arg(
        long,
        env = "LIFEBOAT_RESTORE_KEY_FILE",
        global = true,
        value_name = "FILE"
    )]
    pub restore_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub s3: S3Args,
    /// Print machine-readable JSON on stdout (read commands).
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output (-v info, -vv debug). LIFEBOAT_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors; no progress bars.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Read what cannot be authenticated: a format-1 repository (until
    /// `lifeboat upgrade`), or, for `upgrade`, this restore key's keyring
    /// written before format 2. Only for a store you trust as it is now:
    /// anyone with write access to it could have replaced it.
    #[arg(long, global = true, env = "LIFEBOAT_TRUST_UNAUTHENTICATED", value_parser = clap::builder::BoolishValueParser::new())]
    pub trust_unauthenticated: bool,
    /// This host never deletes or rewrites a file in the store (its S3
    /// credentials lack s3:DeleteObject): backups and captures release
    /// their locks with a record instead of a DELETE, and forget, prune,
    /// repair, unlock, upgrade and key add/remove are refused here.
    #[arg(long, global = true, env = "LIFEBOAT_APPEND_ONLY", value_parser = clap::builder::BoolishValueParser::new())]
    pub append_only: bool,
    /// The store is under a bucket lock rule of this many days (Cloudflare
    /// R2): nothing deletes or overwrites a file younger than that, and
    /// forget and prune leave such files for a later run.
    #[arg(
        long,
        global = true,
        env = "LIFEBOAT_IMMUTABLE_DAYS",
        value_name = "DAYS"
    )]
    pub immutable_days: Option<f64>,
    /// S3 credentials from the config file (never from flags: argv is public).
    #[arg(skip)]
    pub s3_access_key_id: Option<String>,
    #[arg(skip)]
    pub s3_secret_access_key: Option<String>,
}

/// S3 repository settings; anything unset falls back to the AWS_* variables.
#[derive(Debug, Args)]
pub struct S3Args {
    /// S3 endpoint, e.g. https://ACCOUNT.r2.cloudflarestorage.com.
    #[arg(long, env = "LIFEBOAT_S3_ENDPOINT", global = true, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// S3 region (`auto` for R2).
    #[arg(long, env = "LIFEBOAT_S3_REGION", global = true)]
    pub s3_region: Option<String>,
    /// Parallel S3 transfers.
    #[arg(long, env = "LIFEBOAT_S3_CONNECTIONS", global = true, value_name = "N")]
    pub s3_connections: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a repository and its two keys (or, with --replica-of, a
    /// replica of an existing one, with its keys).
    Init(InitArgs),
    /// Copy snapshots into a replica made by `init --replica-of` (another
    /// store, or a local disk): sealed files as they are, only what the
    /// replica lacks, resumable; the backup key suffices. Then verifies
    /// the replica.
    Copy(CopyArgs),
    /// Store a new snapshot.
    Backup(BackupArgs),
    /// List snapshots (works with the backup key alone).
    Snapshots,
    /// Could you recover now? Per source the last good snapshot and its
    /// age, the last failure, the last drill and verify, the point-in-time
    /// window, each `[objectives]` checked (exit 8 when one is missed).
    /// Works with the backup key alone.
    Status(StatusArgs),
    /// Write the dashboard: one self-contained HTML page (objectives,
    /// snapshots per source, bytes, durations, drill RTO, the latest drill,
    /// point-in-time coverage). Works with the backup key alone.
    Report(ReportArgs),
    /// Store the MySQL binary log written since the last stored position
    /// (the first time: since the newest full snapshot) and exit; for a
    /// cron job every few minutes. Needs `[mysql] binlog = true`.
    Binlog(BinlogArgs),
    /// List the items of a snapshot (needs the restore key).
    Show(ShowArgs),
    /// Restore an item of a snapshot into a file or stdout.
    Restore(Box<RestoreArgs>),
    /// Write a source's backup in a portable format (MySQL: a SQL file).
    Export(ExportArgs),
    /// What changed between two snapshots (Render: names only, values
    /// redacted unless --show-values).
    Diff(DiffArgs),
    /// Before a schema change: a verified MySQL snapshot tagged
    /// pre-migration (kept by every retention policy), and the exact
    /// command to roll back.
    SnapshotBeforeMigration(PreMigrationArgs),
    /// Restore a snapshot into the [staging] environment, verify every
    /// source, cross-check rows against objects, and report RTO and RPO
    /// (exit 4 on any mismatch).
    Drill(DrillArgs),
    /// Run the [[schedule]] jobs of the config (backup, drill, forget,
    /// prune, verify) at their cron times, one at a time, and send [notify]
    /// after each.
    Daemon(DaemonArgs),
    /// Remove snapshots by a retention policy (flags, else [retention]);
    /// `pre-migration` snapshots are always kept. Their data goes with prune.
    Forget(ForgetArgs),
    /// Delete data no snapshot needs (takes the exclusive lock: waits for
    /// no backup, refuses while one runs).
    Prune(PruneArgs),
    /// Check the repository; with --read-data, every byte.
    Verify(VerifyArgs),
    /// Cross-check document rows (MySQL) against stored objects: rows whose
    /// object is missing or differs (exit 4), orphan objects, local rows.
    CheckReferences(CheckReferencesArgs),
    /// Manage restore keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Remove locks left by processes that are gone.
    Unlock,
    /// Recover what can be recovered of a damaged repository.
    #[command(subcommand)]
    Repair(RepairCommand),
    /// Move a repository to the current format (3: objects' hashes and
    /// metadata out of the backup key's reach; from 1, also authenticated
    /// keyrings, signed config, tagged files), or authenticate this restore
    /// key's keyring in an upgraded one. Snapshot ids may change. Needs the
    /// restore key; takes the exclusive lock. From format 1, backup hosts
    /// then need a backup key re-issued with `key export-backup-key`.
    Upgrade(UpgradeArgs),
}

#[derive(Debug, Subcommand)]
pub enum RepairCommand {
    /// Rebuild the index from the packs' own headers (after index files
    /// were lost or damaged); names the snapshots that still miss data.
    /// Needs the restore key; takes the exclusive lock.
    Index {
        /// Show what would be rebuilt; write and delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// After a mass delete or overwrite (ransomware): bring back every
    /// file as it was at --as-of, from the versions an S3 bucket with
    /// object lock keeps, then verify. Files written since are left.
    /// Needs the restore key.
    Undelete {
        /// The moment before the attack: RFC 3339 or YYYY-MM-DD HH:MM:SS (UTC).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        as_of: chrono::DateTime<chrono::Utc>,
    },
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Protect the restore key with a passphrase (read from
    /// LIFEBOAT_RESTORE_KEY_PASSPHRASE, or asked on the terminal).
    #[arg(long)]
    pub passphrase: bool,
    /// zstd level for stored data, -7 (fastest) to 22 (smallest); kept in
    /// the repository's config. 1 is faster than 3 and, on SQL dumps,
    /// also smaller (docs/BENCHMARKS.md).
    #[arg(
        long,
        value_name = "LEVEL",
        default_value_t = 1,
        allow_negative_numbers = true
    )]
    pub compression_level: i32,
    /// Make --repo a replica of this repository instead: its config and
    /// keyrings byte for byte, opened with the key given (the backup key
    /// suffices). Then `lifeboat copy --to` it.
    #[arg(long, value_name = "URL", conflicts_with_all = ["passphrase", "compression_level", "object_lock_days"])]
    pub replica_of: Option<String>,
    /// Keep every file under S3 Object Lock for N days (the bucket must
    /// have object lock enabled); prune keeps the files in use locked.
    #[arg(long, value_name = "N")]
    pub object_lock_days: Option<u32>,
    /// `governance` (a role with s3:BypassGovernanceRetention may shorten
    /// it) or `compliance` (no one may).
    #[arg(long, value_name = "MODE", default_value = "governance", value_parser = parse_lock_mode, requires = "object_lock_days")]
    pub object_lock_mode: lifeboat_store::backend::LockMode,
    #[command(flatten)]
    pub replica: ReplicaS3Args,
}

/// The replica's S3 settings (`copy --to`, `init --replica-of`'s --repo);
/// unset ones come from `[copy]`, then from the repository's. Credentials:
/// `[copy]` or LIFEBOAT_COPY_ACCESS_KEY_ID / LIFEBOAT_COPY_SECRET_ACCESS_KEY.
#[derive(Debug, Args, Clone, Default)]
pub struct ReplicaS3Args {
    /// The replica's S3 endpoint.
    #[arg(long, env = "LIFEBOAT_COPY_S3_ENDPOINT", value_name = "URL")]
    pub to_s3_endpoint: Option<String>,
    /// The replica's S3 region.
    #[arg(long, env = "LIFEBOAT_COPY_S3_REGION")]
    pub to_s3_region: Option<String>,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The replica: a directory or s3://BUCKET/PREFIX (else `[copy] to`).
    #[arg(long, env = "LIFEBOAT_COPY_TO", value_name = "URL")]
    pub to: Option<String>,
    #[command(flatten)]
    pub replica: ReplicaS3Args,
    /// Do not verify the replica afterwards.
    #[arg(long)]
    pub no_verify: bool,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Back up a configured source (repeatable): `mysql`, `objects`,
    /// `render`, `git`.
    #[arg(long = "source", value_name = "SOURCE", value_parser = parse_source, conflicts_with_all = ["stdin", "stdin_from_command", "file"])]
    pub sources: Vec<SourceKind>,
    /// Objects: read every object again instead of carrying unchanged
    /// ones over from the previous snapshot's list (after a backup host
    /// was compromised: its lists could swap two objects of one size).
    #[arg(long)]
    pub reread_objects: bool,
    /// Read the whole MySQL database even when `[mysql] binlog_nightly`
    /// would derive this backup from the stored binlog.
    #[arg(long)]
    pub full: bool,
    /// The MySQL database for `--source mysql` (else the config's [mysql] url).
    #[arg(
        long,
        env = "LIFEBOAT_MYSQL_URL",
        value_name = "mysql://USER@HOST:PORT/DB"
    )]
    pub mysql_url: Option<String>,
    /// Run this shell command and store its standard output. If it exits
    /// non-zero or is killed, no snapshot is stored.
    #[arg(long, value_name = "CMD", conflicts_with = "stdin")]
    pub stdin_from_command: Option<String>,
    /// Store lifeboat's own standard input.
    #[arg(long)]
    pub stdin: bool,
    /// Name of the item in the snapshot.
    #[arg(long, value_name = "NAME")]
    pub item: Option<String>,
    /// Store files (each an item named by its path as given).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["stdin", "stdin_from_command"])]
    pub file: Vec<PathBuf>,
    /// Tag the snapshot (repeatable), e.g. nightly, pre-migration.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Hostname to record instead of this machine's.
    #[arg(long)]
    pub host: Option<String>,
    /// A note to keep with the snapshot.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
}

#[derive(Debug, Args)]
pub struct PreMigrationArgs {
    /// What the migration is (kept with the snapshot).
    #[arg(long, value_name = "TEXT")]
    pub note: String,
    /// Sources to include (repeatable; default mysql).
    #[arg(long = "source", value_name = "SOURCE", value_parser = parse_source)]
    pub sources: Vec<SourceKind>,
    /// The MySQL database (else the config's [mysql] url).
    #[arg(
        long,
        env = "LIFEBOAT_MYSQL_URL",
        value_name = "mysql://USER@HOST:PORT/DB"
    )]
    pub mysql_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// `latest`, or a snapshot id (at least 4 hex digits).
    pub snapshot: String,
}

#[derive(Debug, Args)]
pub struct BinlogArgs {
    /// Keep streaming: store a log snapshot every `[mysql]
    /// binlog_flush_secs` (default 60) until stopped; reconnects by itself.
    #[arg(long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// `latest`, or a snapshot id (at least 4 hex digits).
    pub snapshot: String,
    /// With several MySQL databases in the snapshot: the one to use.
    #[arg(long, value_name = "NAME")]
    pub database: Option<String>,
    /// The item to restore (may be left out when the snapshot has one item).
    #[arg(long)]
    pub item: Option<String>,
    /// Output file, or `-` for standard output (item restores); a directory
    /// with --source objects. With `-`, the whole item is first restored
    /// into an exclusive temporary file (mode 0600, already unlinked, in
    /// --spool-dir or the system temp dir; it needs room for the item and
    /// holds its PLAINTEXT until the restore ends) and checked against its
    /// SHA-256: not a byte reaches standard output unless all of it matched.
    #[arg(long, value_name = "PATH|-", required_unless_present = "source")]
    pub to: Option<String>,
    /// With `--to -`: where the verifying spool file goes (default: the
    /// system temp dir, TMPDIR). It holds plaintext: choose a private,
    /// preferably encrypted, disk.
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,
    /// With `--to -`: stream the item as it is read, without a spool. The
    /// SHA-256 is only checked at the end, so on a damaged or forged
    /// snapshot the output may be PARTIAL OR FORGED while it is already in
    /// the next program (e.g. `| mariadb`); the exit status (4) is the only
    /// sign. For items too big to spool, into a consumer that can roll back.
    #[arg(long)]
    pub unverified_stream: bool,
    /// Overwrite an existing output file; with --source mysql, drop and
    /// recreate a non-empty target database.
    #[arg(long)]
    pub force: bool,
    /// mysql: restore to this moment: the newest full snapshot taken at
    /// or before it (SNAPSHOT: `latest`, or an id to start from it or an
    /// older one), then the stored binlog's transactions committed at or
    /// before it. RFC 3339 (2026-12-06T14:03:00Z) or `YYYY-MM-DD HH:MM:SS`
    /// in UTC.
    #[arg(long, value_name = "TIME", value_parser = parse_time, requires = "source")]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// mysql: restore up to and including the last transaction of this GTID
    /// set (MariaDB 0-1-105, MySQL UUID:1-77), from the newest full
    /// snapshot taken before it.
    #[arg(
        long,
        value_name = "SET",
        requires = "source",
        conflicts_with = "until",
        value_parser = parse_gtid_set
    )]
    pub until_gtid: Option<String>,
    /// Prove the stored binlog: restore the MySQL database by replaying
    /// the newest full snapshot before SNAPSHOT and applying the stored
    /// binlog up to exactly SNAPSHOT's coordinates, then compare every
    /// table with SNAPSHOT (exit 4 naming the tables that differ). What a
    /// periodic full backup proves about the nights between.
    #[arg(
        long,
        requires = "source",
        conflicts_with_all = ["until", "until_gtid"]
    )]
    pub from_binlog: bool,
    /// Restore a whole source instead of one item: `mysql`, `objects`,
    /// `render`, `git`.
    #[arg(long, value_name = "SOURCE", value_parser = parse_source)]
    pub source: Option<SourceKind>,
    /// mysql: the database to replay into (else [staging] mysql_url; its
    /// password from LIFEBOAT_TARGET_PASSWORD). objects: s3://BUCKET/PREFIX
    /// at the [objects] endpoint (else [staging] objects_bucket).
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Allow the target to be the database, bucket or Render service the
    /// snapshot came from.
    #[arg(long)]
    pub allow_source: bool,
    /// mysql: also replay views, triggers, routines and events whose bodies
    /// name another database on the target server or use statements replay
    /// refuses (GRANT, SET GLOBAL, dynamic SQL...). They run later with the
    /// target account's privileges: only for a snapshot you know is yours.
    #[arg(long)]
    pub trust_object_bodies: bool,
    /// mysql: who the views, triggers, routines and events belong to:
    /// `keep` their definers (refused if this account may not set them),
    /// `current-user` (this account, each rewrite reported), `invoker`
    /// (also SQL SECURITY INVOKER), or `auto` (default): keep where this
    /// account may, else current-user.
    #[arg(long, value_name = "RULE")]
    pub definers: Option<lifeboat_mysql::Definers>,
    /// mysql: also re-create the accounts that held privileges on the
    /// database (stored with every snapshot: password hashes, plugins,
    /// roles) with their grants on it; accounts that exist are left alone
    /// and listed.
    #[arg(long)]
    pub with_users: bool,
    /// mysql, with --with-users: also their server-wide grants (SUPER,
    /// FILE, PROCESS...), which are listed and skipped otherwise.
    #[arg(long, requires = "with_users")]
    pub with_global_grants: bool,
    /// objects: only keys starting with this.
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// objects: only this key.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// mysql: parallel connections for the replay (default 2).
    #[arg(long)]
    pub connections: Option<usize>,
    /// render: write one NAME.env per service and env group (0600) and
    /// their secret files into DIR.
    #[arg(long, value_name = "DIR")]
    pub to_env_dir: Option<PathBuf>,
    /// render: the reader the .env files are written for, so that it reads
    /// every value back exactly: `shell` (default: `set -a; . FILE`, every
    /// value), `python` (python-dotenv), `node` (Node's dotenv),
    /// `compose` (Docker Compose env_file) or `rust` (dotenvy). A value the
    /// reader cannot represent is an error naming it.
    #[arg(long, value_name = "READER")]
    pub env_dialect: Option<lifeboat_render::Dialect>,
    /// render: write one NAME.json per service and env group (0600):
    /// {"name","id","env":{..},"secret_files":{..}}, for any value.
    #[arg(long, value_name = "DIR")]
    pub to_env_json: Option<PathBuf>,
    /// render: write a Blueprint (render.yaml) that recreates the services;
    /// values are `sync: false`.
    #[arg(long, value_name = "FILE")]
    pub render_yaml: Option<String>,
    /// render: put the env vars and secret files of --service into this
    /// service through the API (shows the change; applies it with --yes).
    #[arg(long, value_name = "NAME")]
    pub to_service: Option<String>,
    /// render: the snapshot's service (or env-group/NAME) for --to-service.
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Apply a change that was shown (--to-service).
    #[arg(long)]
    pub yes: bool,
    /// git: push every branch and tag to this new, empty remote.
    #[arg(long, value_name = "URL")]
    pub push_to: Option<String>,
    /// Restore a source that failed during a partial backup (its items are
    /// an incomplete set).
    #[arg(long)]
    pub allow_partial: bool,
    /// git: only this repository (by name).
    #[arg(long, value_name = "NAME")]
    pub repository: Option<String>,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// The snapshot to drill.
    #[arg(default_value = "latest")]
    pub snapshot: String,
    /// With several MySQL databases in the snapshot: the one to use.
    #[arg(long, value_name = "NAME")]
    pub database: Option<String>,
    /// Write the report here as JSON, and as Markdown next to it (.md).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Restore only this percentage of the objects (a different sample each
    /// run), to keep nightly drills cheap.
    #[arg(long, value_name = "PERCENT")]
    pub sample: Option<f64>,
    /// Run this shell command between restore and verification.
    #[arg(long, value_name = "CMD")]
    pub exec_before_verify: Option<String>,
    /// GET this URL after verification (else [staging] health_url).
    #[arg(long, value_name = "URL")]
    pub health_url: Option<String>,
    /// The documents table for the rows vs objects cross-check.
    #[arg(long, default_value = "medical_documents")]
    pub table: String,
    /// Parallel connections for the replay and checks.
    #[arg(long, default_value_t = 2)]
    pub connections: usize,
    /// Restore the staging database to this moment: the newest full
    /// snapshot taken at or before it (checked against its manifest), then
    /// the stored binlog up to it. RFC 3339 or `YYYY-MM-DD HH:MM:SS` UTC.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Run this job once now, with notifications, and exit with its status
    /// (for cron, systemd timers, Render Cron Jobs).
    #[arg(long, value_name = "JOB")]
    pub once: Option<String>,
    /// Check the schedules and print their next runs; run nothing.
    #[arg(long)]
    pub check: bool,
    /// Arguments for the --once job, after `--`.
    #[arg(last = true)]
    pub job_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Remove exactly these snapshots instead of applying a policy.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Keep the newest N snapshots.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<usize>,
    /// Keep the newest whole snapshot of each of the last N hours.
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<usize>,
    /// ... of each of the last N days (UTC).
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<usize>,
    /// ... of each of the last N ISO weeks.
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<usize>,
    /// ... of each of the last N months.
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<usize>,
    /// ... of each of the last N years.
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<usize>,
    /// Keep every snapshot with this tag (repeatable).
    #[arg(long = "keep-tag", value_name = "TAG")]
    pub keep_tags: Vec<String>,
    /// Show what would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Prune right after.
    #[arg(long)]
    pub prune: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Show what would be deleted; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Repack a pack when more than this percentage of it is unused.
    #[arg(long, value_name = "PERCENT", default_value_t = 20.0)]
    pub max_unused: f64,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older snapshot.
    pub from: String,
    /// The newer snapshot.
    #[arg(default_value = "latest")]
    pub to: String,
    /// What to compare: `render` (services, settings, env var names).
    #[arg(long, value_name = "SOURCE", default_value = "render", value_parser = parse_source)]
    pub source: SourceKind,
    /// Show old and new values (needs the restore key; prints secrets).
    #[arg(long)]
    pub show_values: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// `latest`, or a snapshot id (at least 4 hex digits).
    pub snapshot: String,
    /// With several MySQL databases in the snapshot: the one to use.
    #[arg(long, value_name = "NAME")]
    pub database: Option<String>,
    /// What to export: `mysql` (a plain SQL file for the stock client).
    #[arg(long, value_name = "SOURCE", value_parser = parse_source)]
    pub source: SourceKind,
    /// Output file, or `-` for standard output.
    #[arg(long, value_name = "PATH|-")]
    pub to: String,
    /// Overwrite an existing output file.
    #[arg(long)]
    pub force: bool,
    /// Write view, routine and trigger bodies that name other databases or
    /// use statements lifeboat refuses (GRANT, PREPARE...), for a snapshot
    /// that is certainly yours. Heads, tables and rows are always checked.
    #[arg(long)]
    pub trust_object_bodies: bool,
    /// Also write the accounts that use the database (CREATE USER with
    /// their password hashes, and their grants on it) to this file, mode
    /// 0600; never to standard output.
    #[arg(long, value_name = "PATH")]
    pub users_to: Option<String>,
    /// With --users-to: the database the grants name, the one the SQL file
    /// will be loaded into (default: the snapshot's own).
    #[arg(long, value_name = "NAME", requires = "users_to")]
    pub grants_on: Option<String>,
    /// With --users-to: also server-wide privileges and grants on other
    /// databases (skipped and listed by default).
    #[arg(long, requires = "users_to")]
    pub with_global_grants: bool,
}

#[derive(Debug, Args)]
pub struct CheckReferencesArgs {
    /// The snapshot holding the rows and objects (unless both are live).
    #[arg(default_value = "latest")]
    pub snapshot: String,
    /// With several MySQL databases in the snapshot: the one to use.
    #[arg(long, value_name = "NAME")]
    pub database: Option<String>,
    /// Read the rows from the live database of [mysql] instead.
    #[arg(long)]
    pub live_db: bool,
    /// List the live bucket or directory of [objects] instead.
    #[arg(long)]
    pub live_objects: bool,
    /// The table of documents.
    #[arg(long, default_value = "medical_documents")]
    pub table: String,
    /// Check only rows whose storage_bucket is this (others are listed apart).
    #[arg(long, value_name = "BUCKET")]
    pub row_bucket: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Where to write the page.
    #[arg(long, value_name = "FILE")]
    pub html: String,
    /// Days of history in the charts.
    #[arg(long, default_value_t = 60)]
    pub days: u32,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print Prometheus' text exposition format instead.
    #[arg(long, conflicts_with = "metrics_file")]
    pub prometheus: bool,
    /// Also write the Prometheus text to this file, atomically (for
    /// node_exporter's textfile collector: a `.prom` file in its folder).
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<std::path::PathBuf>,
    /// How many of the newest run records to list.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Read, decrypt and re-hash every blob (needs the restore key).
    #[arg(long, conflicts_with = "read_data_subset")]
    pub read_data: bool,
    /// Like --read-data on a random N% of the pack files, e.g. 10%.
    #[arg(long, value_name = "N%")]
    pub read_data_subset: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List the restore keys of the repository.
    List,
    /// Make a new restore key that reads everything (needs a current one).
    Add {
        /// Where to write the new key (mode 0600; must not exist).
        #[arg(long, value_name = "FILE")]
        new_key_file: PathBuf,
        /// Protect the new key with a passphrase (LIFEBOAT_NEW_KEY_PASSPHRASE or the terminal).
        #[arg(long)]
        passphrase: bool,
    },
    /// Remove a restore key by its public key (age1...).
    Remove {
        /// The key's public key, as shown by `key list`.
        recipient: String,
    },
    /// Write the backup key again (for a new backup host; needs the restore key).
    ExportBackupKey {
        /// Where to write it (mode 0600; must not exist).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// Another restore key file whose keyring to authenticate too (every
    /// restore key of the repository should be given, here or in a later
    /// `upgrade`; a key not given cannot open the repository until then).
    #[arg(long, value_name = "FILE")]
    pub also_key: Vec<std::path::PathBuf>,
}

fn parse_lock_mode(s: &str) -> Result<lifeboat_store::backend::LockMode, String> {
    match s {
        "governance" => Ok(lifeboat_store::backend::LockMode::Governance),
        "compliance" => Ok(lifeboat_store::backend::LockMode::Compliance),
        _ => Err(format!("{s:?}: give governance or compliance")),
    }
}

/// A moment: RFC 3339, or `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .map(|t| t.and_utc())
        .map_err(|_| {
            format!("{s:?} is not a time: give RFC 3339 (2026-12-06T14:03:00Z) or YYYY-MM-DD HH:MM:SS in UTC")
        })
}

/// A GTID set, checked here (kept as text: the parsed set is large for an
/// argument struct).
pub fn parse_gtid_set(s: &str) -> Result<String, String> {
    s.parse::<lifeboat_mysql::binlog::GtidSet>()?;
    Ok(s.to_string())
}
