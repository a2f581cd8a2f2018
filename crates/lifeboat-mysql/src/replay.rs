//! Replay: a snapshot's tables and objects into a named target database,
//! tables in parallel over several connections with multi-row inserts,
//! then every table read back and checked against the manifest.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use futures_util::TryStreamExt;
use lifeboat_store::{FullAccess, Index, ManifestItem, NoProgress, ProgressBars, Repository};
use sha2::{Digest, Sha256};
use sqlx::MySqlConnection;

use crate::connect::MysqlOptions;
use crate::encode::{ident, push_row, Lines};
use crate::error::{Context, Error, Result};
use crate::schema::{
    adapt_for_target, defer_keys, flavor, quote, sql_mode_literal, text_value, DeferredKeys,
    Object, Schema, Table, SOURCE,
};

/// Options of [`replay`].
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The target: `mysql://USER@HOST:PORT/DATABASE` (created if absent).
    pub target: MysqlOptions,
    /// Replace a target database that already has tables or objects.
    pub force: bool,
    /// Allow the target to be the very database the snapshot came from.
    pub allow_source: bool,
    /// Parallel connections for loading and checking (default 2).
    pub connections: usize,
    /// Read every table back and compare with the manifest afterwards (as
    /// [`verify_database`] does). Off only for callers that verify later.
    pub verify: bool,
}

/// One table's check after a replay.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableCheck {
    /// The table.
    pub table: String,
    /// Rows in the manifest.
    pub rows_expected: u64,
    /// Rows read back from the target.
    pub rows_found: u64,
    /// The content checksum (SHA-256 of the rows as lifeboat encodes them)
    /// matches the manifest.
    pub checksum_matches: bool,
}

/// What a replay did and found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReplayReport {
    /// The source database name.
    pub source_database: String,
    /// `user@host:port/db` of the target.
    pub target: String,
    /// Per table, in name order.
    pub tables: Vec<TableCheck>,
    /// Views, triggers, routines, events created (and found afterwards).
    pub objects_created: usize,
    /// Objects expected from the snapshot.
    pub objects_expected: usize,
    /// Seconds spent loading data and creating objects.
    pub load_seconds: f64,
    /// Seconds spent reading the target back to check it.
    pub check_seconds: f64,
}

impl ReplayReport {
    /// True when every table and object matches.
    pub fn ok(&self) -> bool {
        self.objects_created == self.objects_expected
            && self
                .tables
                .iter()
                .all(|t| t.checksum_matches && t.rows_found == t.rows_expected)
    }
}

/// Find the MySQL schema in a manifest and read it.
/// The MySQL databases a snapshot holds, from its manifest, in order.
pub fn databases(items: &[ManifestItem]) -> Vec<String> {
    items
        .iter()
        .filter(|i| i.source == SOURCE && i.kind == "schema")
        .filter_map(|i| i.name.split_once('/').map(|(db, _)| db.to_string()))
        .collect()
}

/// The manifest with only `database`'s MySQL items (other sources' items
/// stay). Without `database`, the snapshot's only database; several is an
/// error naming them. (Database names cannot hold `/`, so the item name's
/// first part is the database.)
pub fn select_database(
    items: &[ManifestItem],
    database: Option<&str>,
) -> Result<Vec<ManifestItem>> {
    let all = databases(items);
    let db = match (database, all.as_slice()) {
        (Some(d), _) if all.iter().any(|a| a == d) => d.to_string(),
        (Some(d), _) => {
            return Err(Error::Invalid(format!(
                "this snapshot holds no MySQL database {d:?} (it holds: {})",
                all.join(", ")
            )))
        }
        (None, [one]) => one.clone(),
        (None, []) => return Ok(items.to_vec()),
        (None, many) => {
            return Err(Error::Invalid(format!(
                "this snapshot holds the MySQL databases {}: choose one with --database",
                many.join(", ")
            )))
        }
    };
    let prefix = format!("{db}/");
    Ok(items
        .iter()
        .filter(|i| i.source != SOURCE || i.name.starts_with(&prefix))
        .cloned()
        .collect())
}

pub(crate) fn load_schema(
    repo: &Repository<FullAccess>,
    index: &Index,
    items: &[ManifestItem],
) -> Result<(Schema, HashMap<String, ManifestItem>)> {
    let schemas: Vec<&ManifestItem> = items
        .iter()
        .filter(|i| i.source == SOURCE && i.kind == "schema")
        .collect();
    let item = match schemas.as_slice() {
        [one] => *one,
        [] => return Err(Error::Invalid("this snapshot holds no MySQL backup (no mysql schema item)".into())),
        many => {
            return Err(Error::Invalid(format!(
                "this snapshot holds {} MySQL databases; replaying several at once is not supported yet",
                many.len()
            )))
        }
    };
    let mut json = Vec::new();
    repo.restore_item(index, item, &mut json, &NoProgress)?;
    let schema: Schema = serde_json::from_slice(&json).map_err(|e| {
        Error::Invalid(format!(
            "the MySQL schema item {} is unreadable: {e}",
            item.name
        ))
    })?;
    let tables = items
        .iter()
        .filter(|i| i.source == SOURCE && i.kind == "table")
        .map(|i| (i.name.clone(), i.clone()))
        .collect();
    Ok((schema, tables))
}

/// Tables whose rows take at least this much get their secondary indexes
/// and foreign keys after the load.
const DEFER_KEYS_FROM: u64 = 32 << 20;

/// Rows recorded for a table item.
fn rows_of(item: &ManifestItem) -> u64 {
    item.meta.get("rows").and_then(|r| r.as_u64()).unwrap_or(0)
}

/// Replay the MySQL backup in `items` into `opts.target`, then check it.
/// Returns the report; a mismatch is an [`Error::Mismatch`] naming the tables.
pub fn replay(
    repo: &Repository<FullAccess>,
    index: &Index,
    items: &[ManifestItem],
    opts: &ReplayOptions,
    bars: &dyn ProgressBars,
) -> Result<ReplayReport> {
    let (schema, table_items) = load_schema(repo, index, items)?;
    let target = opts.target.target()?;
    let rt = runtime()?;
    let started = Instant::now();
    // Big tables get their secondary indexes and foreign keys after the
    // rows: one sorted build each instead of an index insert per row.
    let deferred: HashMap<&str, DeferredKeys> = schema
        .tables
        .iter()
        .filter(|t| {
            table_items
                .get(&t.item_name(&schema.database))
                .is_some_and(|i| i.size >= DEFER_KEYS_FROM)
        })
        .filter_map(|t| defer_keys(&t.create).map(|d| (t.name.as_str(), d)))
        .collect();

    // Prepare the database on one connection.
    let target_flavor = rt.block_on(async {
        let mut conn = opts.target.connect(None).await?;
        let uuid = text_value(&mut conn, "SELECT @@server_uuid")
            .await
            .unwrap_or_default();
        let host_port = if uuid.is_empty() {
            crate::schema::text_rows(&mut conn, "SELECT @@hostname, @@port").await?
        } else {
            Vec::new()
        };
        let identity = crate::dump::identity(uuid, host_port);
        if format!("{identity}/{}", target.database) == schema.server.source && !opts.allow_source {
            return Err(Error::Target(format!(
                "{} is the database this snapshot was taken from: refusing to overwrite it \
                 (restore into another database, or pass --allow-source if that is really meant)",
                target.display()
            )));
        }
        let db = ident(&target.database);
        let existing = text_value(
            &mut conn,
            &format!(
                "SELECT (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = {q}) + \
                 (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {q}) + \
                 (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = {q})",
                q = quote(&target.database)
            ),
        )
        .await?;
        if existing != "0" && !existing.is_empty() {
            if !opts.force {
                return Err(Error::Target(format!(
                    "the target database {} is not empty ({existing} tables/routines/events): \
                     choose an empty one, or pass --force to drop and recreate it",
                    target.display()
                )));
            }
            exec(&mut conn, &format!("DROP DATABASE {db}")).await?;
        }
        exec(
            &mut conn,
            &format!(
                "CREATE DATABASE IF NOT EXISTS {db} CHARACTER SET {}",
                if schema.server.character_set.is_empty() { "utf8mb4" } else { &schema.server.character_set }
            ),
        )
        .await?;
        let version = text_value(&mut conn, "SELECT VERSION()").await?;
        let fl = flavor(&version);
        exec(&mut conn, &format!("USE {db}")).await?;
        session_setup(&mut conn, &schema).await?;
        for t in &schema.tables {
            let create = deferred.get(t.name.as_str()).map_or(&t.create, |d| &d.create);
            exec(&mut conn, &adapt_for_target(create, fl)).await.map_err(|e| {
                Error::Target(format!("creating table {}: {e}", t.name))
            })?;
        }
        Ok::<_, Error>(fl)
    })?;

    // Load tables in parallel, largest first.
    let mut queue: Vec<(&Table, &ManifestItem)> = schema
        .tables
        .iter()
        .map(|t| {
            let item = table_items
                .get(&t.item_name(&schema.database))
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "the snapshot has the schema of table {} but not its rows",
                        t.name
                    ))
                })?;
            Ok((t, item))
        })
        .collect::<Result<_>>()?;
    queue.sort_by_key(|(_, i)| std::cmp::Reverse(i.size));
    let queue = Mutex::new(queue.into_iter());
    let workers = opts.connections.max(1);
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    let rt = runtime()?;
                    let mut conn = rt.block_on(async {
                        let mut c = opts.target.connect(Some(&target.database)).await?;
                        session_setup(&mut c, &schema).await?;
                        Ok::<_, Error>(c)
                    })?;
                    let max_packet: usize = rt
                        .block_on(text_value(&mut conn, "SELECT @@max_allowed_packet"))?
                        .parse()
                        .unwrap_or(4 << 20);
                    let batch = (max_packet / 2).clamp(64 << 10, 4 << 20);
                    loop {
                        let next = queue
                            .lock()
                            .map_err(|_| Error::Invalid("replay queue poisoned".into()))?
                            .next();
                        let Some((table, item)) = next else {
                            return Ok(());
                        };
                        let bar = bars.bytes(&table.name);
                        let mut w = BatchWriter {
                            rt: &rt,
                            conn: &mut conn,
                            prefix: table.insert_prefix(),
                            stmt: Vec::with_capacity(batch + 64 * 1024),
                            rows_in_stmt: 0,
                            batch,
                            error: None,
                        };
                        let mut lines = Lines::new(|line: &[u8]| w.add_line(line));
                        let loaded = match repo.restore_item(index, item, &mut lines, &*bar) {
                            Ok(()) => lines
                                .finish()
                                .and_then(|()| w.run())
                                .map_err(|e| e.to_string()),
                            // A failed INSERT surfaces as a write error of the item.
                            Err(e) => Err(w.error.take().ok_or(e)?),
                        };
                        loaded.map_err(|e| {
                            Error::Target(format!("loading table {}: {e}", table.name))
                        })?;
                        if let Some(d) = deferred.get(table.name.as_str()) {
                            for clauses in [&d.indexes, &d.foreign_keys] {
                                if clauses.is_empty() {
                                    continue;
                                }
                                let alter = format!(
                                    "ALTER TABLE {} {}",
                                    ident(&table.name),
                                    clauses.join(", ")
                                );
                                rt.block_on(exec(&mut conn, &alter)).map_err(|e| {
                                    Error::Target(format!(
                                        "adding the indexes and foreign keys of table {} after its rows: {e}",
                                        table.name
                                    ))
                                })?;
                            }
                        }
                        bar.finish();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| Error::Invalid("a replay thread panicked".into()))??;
        }
        Ok(())
    })?;

    // Objects after the data, so triggers do not fire during the load.
    let objects_expected =
        schema.views.len() + schema.triggers.len() + schema.routines.len() + schema.events.len();
    let objects_created = rt.block_on(async {
        let mut conn = opts.target.connect(Some(&target.database)).await?;
        session_setup(&mut conn, &schema).await?;
        create_objects(&mut conn, &schema, target_flavor).await?;
        count_objects(&mut conn, &target.database).await
    })?;
    let load_seconds = started.elapsed().as_secs_f64();

    let mut report = ReplayReport {
        source_database: schema.database.clone(),
        target: target.display(),
        tables: Vec::new(),
        objects_created,
        objects_expected,
        load_seconds,
        check_seconds: 0.0,
    };
    if opts.verify {
        let checked = Instant::now();
        report.tables = check_tables(
            &opts.target,
            &schema,
            &table_items,
            &target.database,
            workers,
        )?;
        report.check_seconds = checked.elapsed().as_secs_f64();
        judge(&report)?;
    }
    Ok(report)
}

/// Read every table of the MySQL backup in `items` back from `target` (a
/// database it was replayed into, perhaps earlier) and compare rows and
/// content checksums with the manifest, and count its views, triggers,
/// routines and events. Returns the report when everything matches; a
/// difference is an [`Error::Mismatch`] naming the tables.
pub fn verify_database(
    repo: &Repository<FullAccess>,
    index: &Index,
    items: &[ManifestItem],
    target: &MysqlOptions,
    connections: usize,
) -> Result<ReplayReport> {
    let (schema, table_items) = load_schema(repo, index, items)?;
    let t = target.target()?;
    let rt = runtime()?;
    let objects_expected =
        schema.views.len() + schema.triggers.len() + schema.routines.len() + schema.events.len();
    let objects_created = rt.block_on(async {
        let mut conn = target.connect(Some(&t.database)).await?;
        count_objects(&mut conn, &t.database).await
    })?;
    let checked = Instant::now();
    let tables = check_tables(
        target,
        &schema,
        &table_items,
        &t.database,
        connections.max(1),
    )?;
    let report = ReplayReport {
        source_database: schema.database.clone(),
        target: t.display(),
        tables,
        objects_created,
        objects_expected,
        load_seconds: 0.0,
        check_seconds: checked.elapsed().as_secs_f64(),
    };
    judge(&report)?;
    Ok(report)
}

/// Every table read back with the dump's own query and encoder.
fn check_tables(
    target: &MysqlOptions,
    schema: &Schema,
    table_items: &HashMap<String, ManifestItem>,
    database: &str,
    workers: usize,
) -> Result<Vec<TableCheck>> {
    let checks = Mutex::new(Vec::new());
    let tables = Mutex::new(schema.tables.iter());
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    let rt = runtime()?;
                    rt.block_on(async {
                        let mut conn = target.connect(Some(database)).await?;
                        loop {
                            let next = tables
                                .lock()
                                .map_err(|_| Error::Invalid("poisoned".into()))?
                                .next();
                            let Some(t) = next else { return Ok(()) };
                            let (rows, sha) = table_checksum(&mut conn, t, database).await?;
                            let item = table_items.get(&t.item_name(&schema.database));
                            let check = TableCheck {
                                table: t.name.clone(),
                                rows_expected: item.map(rows_of).unwrap_or(0),
                                rows_found: rows,
                                checksum_matches: item.is_some_and(|i| sha == i.sha256),
                            };
                            checks
                                .lock()
                                .map_err(|_| Error::Invalid("poisoned".into()))?
                                .push(check);
                        }
                    })
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| Error::Invalid("a check thread panicked".into()))??;
        }
        Ok(())
    })?;
    let mut tables = checks
        .into_inner()
        .map_err(|_| Error::Invalid("poisoned".into()))?;
    tables.sort_by(|a, b| a.table.cmp(&b.table));
    Ok(tables)
}

/// A mismatch error naming every table (and the object count) that differs.
fn judge(report: &ReplayReport) -> Result<()> {
    let bad: Vec<String> = report
        .tables
        .iter()
        .filter(|t| !t.checksum_matches || t.rows_found != t.rows_expected)
        .map(|t| {
            format!(
                "{} ({} rows, expected {}; checksum {})",
                t.table,
                t.rows_found,
                t.rows_expected,
                if t.checksum_matches { "ok" } else { "differs" }
            )
        })
        .collect();
    if !bad.is_empty() {
        return Err(Error::Mismatch(format!(
            "tables differ from the snapshot: {}",
            bad.join(", ")
        )));
    }
    if report.objects_created != report.objects_expected {
        return Err(Error::Mismatch(format!(
            "{} of {} views/triggers/routines/events exist after the replay",
            report.objects_created, report.objects_expected
        )));
    }
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Invalid(format!("starting the MySQL client: {e}")))
}

async fn exec(conn: &mut MySqlConnection, sql: &str) -> Result<()> {
    sqlx::raw_sql(sql)
        .execute(&mut *conn)
        .await
        .map(|_| ())
        .context(|| crate::schema::short(sql))
}

/// The session settings of a replay connection: the source's sql_mode (our
/// literals use backslash escapes, so never NO_BACKSLASH_ESCAPES), no
/// foreign-key or unique checks during the load, UTC.
async fn session_setup(conn: &mut MySqlConnection, schema: &Schema) -> Result<()> {
    exec(
        conn,
        &format!(
            "SET SESSION sql_mode = {}, FOREIGN_KEY_CHECKS = 0, UNIQUE_CHECKS = 0, time_zone = '+00:00'",
            sql_mode_literal(&schema.server.sql_mode)
        ),
    )
    .await?;
    if schema.tables.iter().any(|t| t.primary_key.is_empty()) {
        // MySQL 8.0.13+ (Aiven turns it on). MariaDB has no such variable.
        if let Err(e) = exec(conn, "SET SESSION sql_require_primary_key = 0").await {
            let msg = e.to_string();
            if !msg.contains("Unknown system variable") {
                let names: Vec<&str> = schema
                    .tables
                    .iter()
                    .filter(|t| t.primary_key.is_empty())
                    .map(|t| t.name.as_str())
                    .collect();
                return Err(Error::Target(format!(
                    "tables without a primary key ({}) cannot be created: the target requires primary keys \
                     and this user may not turn sql_require_primary_key off ({msg})",
                    names.join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// Views in an order where each comes after the views it names.
pub(crate) fn views_in_order(views: &[Object]) -> Vec<&Object> {
    let mut left: Vec<&Object> = views.iter().collect();
    let mut out = Vec::new();
    while !left.is_empty() {
        let pos = left
            .iter()
            .position(|v| {
                !left.iter().any(|o| {
                    o.name != v.name
                        && v.create
                            .contains(&format!("`{}`", o.name.replace('`', "``")))
                })
            })
            .unwrap_or(0); // a cycle cannot exist among views; keep going regardless
        out.push(left.remove(pos));
    }
    out
}

async fn create_objects(
    conn: &mut MySqlConnection,
    schema: &Schema,
    target_flavor: &str,
) -> Result<()> {
    let views = views_in_order(&schema.views);
    let rest = schema
        .triggers
        .iter()
        .chain(&schema.routines)
        .chain(&schema.events);
    for obj in views.into_iter().chain(rest) {
        exec(
            conn,
            &format!("SET SESSION sql_mode = {}", sql_mode_literal(&obj.sql_mode)),
        )
        .await?;
        exec(conn, &adapt_for_target(&obj.create, target_flavor))
            .await
            .map_err(|e| {
                Error::Target(format!(
                    "creating {} {}: {e}",
                    obj.kind.to_lowercase(),
                    obj.name
                ))
            })?;
    }
    Ok(())
}

async fn count_objects(conn: &mut MySqlConnection, db: &str) -> Result<usize> {
    let q = quote(db);
    let n = text_value(
        conn,
        &format!(
            "SELECT (SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = {q}) + \
             (SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = {q}) + \
             (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {q}) + \
             (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = {q})"
        ),
    )
    .await?;
    Ok(n.parse().unwrap_or(0))
}

/// Rows and content checksum of a table, computed exactly as the dump
/// computes them (same SELECT, same encoder).
pub(crate) async fn table_checksum(
    conn: &mut MySqlConnection,
    t: &Table,
    db: &str,
) -> Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let select = t.select(db);
    let mut rows = sqlx::raw_sql(&select).fetch(&mut *conn);
    let kinds: Vec<_> = t.columns.iter().map(|c| c.kind).collect();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut n = 0u64;
    while let Some(row) = rows
        .try_next()
        .await
        .context(|| format!("reading back table {}", t.name))?
    {
        push_row(&mut buf, &kinds, None, |i| {
            sqlx::Row::try_get_unchecked(&row, i)
        })
        .context(|| format!("reading table {}", t.name))?;
        n += 1;
        if buf.len() >= 1 << 20 {
            hasher.update(&buf);
            buf.clear();
        }
    }
    hasher.update(&buf);
    Ok((n, hex::encode(hasher.finalize())))
}

/// Turns the row lines of a table item into multi-row INSERTs of about
/// `batch` bytes and runs them.
struct BatchWriter<'a> {
    rt: &'a tokio::runtime::Runtime,
    conn: &'a mut MySqlConnection,
    prefix: String,
    stmt: Vec<u8>,
    rows_in_stmt: usize,
    batch: usize,
    error: Option<String>,
}

impl BatchWriter<'_> {
    fn add_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.rows_in_stmt == 0 {
            self.stmt.clear();
            self.stmt.extend_from_slice(self.prefix.as_bytes());
        } else {
            self.stmt.push(b',');
        }
        self.stmt.extend_from_slice(line);
        self.rows_in_stmt += 1;
        if self.stmt.len() >= self.batch {
            self.run()?;
        }
        Ok(())
    }

    fn run(&mut self) -> std::io::Result<()> {
        if self.rows_in_stmt == 0 {
            return Ok(());
        }
        self.rows_in_stmt = 0;
        // Our own encoder wrote every byte; only text values carry UTF-8 from
        // the source, and binary values are hex: the statement is valid UTF-8
        // unless the source held invalid UTF-8 in a text column.
        let sql = String::from_utf8_lossy(&self.stmt);
        let r = self
            .rt
            .block_on(sqlx::raw_sql(&sql).execute(&mut *self.conn));
        if let Err(e) = r {
            let msg = e.to_string();
            self.error = Some(msg.clone());
            return Err(std::io::Error::other(msg));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_come_after_the_views_they_use() {
        let v = |name: &str, create: &str| Object {
            name: name.into(),
            kind: "VIEW".into(),
            sql_mode: String::new(),
            create: create.into(),
        };
        let views = vec![
            v("a_top", "CREATE VIEW `a_top` AS select * from `m_mid`"),
            v("m_mid", "CREATE VIEW `m_mid` AS select * from `z_base`"),
            v("z_base", "CREATE VIEW `z_base` AS select 1"),
        ];
        let order: Vec<&str> = views_in_order(&views)
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        assert_eq!(order, ["z_base", "m_mid", "a_top"]);
    }
}
