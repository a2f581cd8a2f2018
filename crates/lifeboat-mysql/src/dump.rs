//! The dump: one consistent snapshot, read through one or more connections
//! that provably share it, every table streamed row by row in primary-key
//! order into the backup session.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use lifeboat_store::delta::PatchBuilder;
use lifeboat_store::{Access, BackupSession, ItemWriter, ProgressBars, Repository};

use crate::cache::{self, PendingCache, Segment};
use crate::connect::MysqlOptions;
use crate::encode::{ident, push_row};
use crate::error::{Error, Result};
use crate::records::{DeltaWriter, Prepared, Records, RowHashReport, Written};
use crate::schema::{self, schema_item, SOURCE};
use crate::wire::Conn;

/// Which tables to dump: `include` (empty = all) minus `exclude`. Names
/// may end in `*` to match a prefix.
#[derive(Debug, Clone, Default)]
pub struct TableFilter {
    /// Only these tables (and views).
    pub include: Vec<String>,
    /// Not these.
    pub exclude: Vec<String>,
}

impl TableFilter {
    fn matches(pattern: &str, name: &str) -> bool {
        match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => pattern == name,
        }
    }

    /// True when `name` is dumped.
    pub fn keep(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| Self::matches(p, name)))
            && !self.exclude.iter().any(|p| Self::matches(p, name))
    }
}

/// Options of [`dump`].
#[derive(Debug, Clone)]
pub struct DumpOptions {
    /// The source database.
    pub mysql: MysqlOptions,
    /// Table selection.
    pub filter: TableFilter,
    /// Where the row-hash cache lives (see [`PendingCache`]); `None` keeps
    /// it in a temporary folder for this dump only (the records stored in
    /// the repository still make the dump incremental).
    pub cache_dir: Option<std::path::PathBuf>,
    /// Connections reading at once (1 = one connection); they share one
    /// snapshot, see [`dump`].
    pub connections: usize,
    /// The databases to dump, all on one snapshot (empty: the URL's).
    pub databases: Vec<String>,
}

/// What [`dump`] returns: what it stored, and the row-hash cache it wrote,
/// to keep once the snapshot is committed.
pub struct Dump {
    /// One per database.
    pub reports: Vec<DumpReport>,
    /// `None` without a cache directory.
    pub cache: Option<PendingCache>,
    /// Where the row-hash records came from, and what was stored of them.
    pub row_hashes: RowHashReport,
}

/// What a dump stored.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DumpReport {
    /// The database.
    pub database: String,
    /// Server version.
    pub server_version: String,
    /// `(table, rows, bytes)`.
    pub tables: Vec<(String, u64, u64)>,
    /// Tables without a primary key (they replay only where the session may
    /// turn `sql_require_primary_key` off).
    pub tables_without_primary_key: Vec<String>,
    /// Views, triggers, routines and events.
    pub objects: usize,
    /// Connections that read the rows (fewer than asked when the tables
    /// could not be held still to start them on one snapshot).
    pub connections: usize,
    /// Accounts and roles holding privileges on the database (stored).
    pub accounts: usize,
}

/// Segments: a run of rows ends after a row whose primary-key hash is 0
/// modulo this (about this many rows a segment), so boundaries depend on
/// keys only and stay put when rows change.
const AVG_ROWS: u64 = 2048;
/// Bounds, so a segment is neither tiny nor huge whatever the keys.
const MIN_ROWS: usize = 64;
const MAX_ROWS: usize = 32768;
const MAX_BYTES: usize = 4 << 20;
/// A changed segment is stored as a patch on its previous version at most
/// this many times in a row; then whole again, so restores stay fast.
const MAX_DEPTH: u8 = 8;

/// Dump the database into `session`: a `<db>/<table>` item per table and
/// the `<db>/_schema` item. An error (connection lost, query killed) leaves
/// the session to be aborted by the caller: no snapshot.
///
/// Rows are read through `connections` connections that share one
/// snapshot (see [`open_snapshot`]); tables with a one-column integer
/// primary key are cut into key ranges so the connections read at once.
/// Each range streams through its own bounded channel and the items are
/// written in table and key order on this thread, so what is stored is
/// byte for byte what one connection would store, and memory stays bounded
/// (a range not yet wanted waits once its channel is full).
pub fn dump<A: Access>(
    session: &mut BackupSession<A>,
    repo: &Repository<A>,
    opts: &DumpOptions,
    bars: &dyn ProgressBars,
) -> Result<Dump> {
    let wanted = opts.connections.clamp(1, 16);
    let databases = if opts.databases.is_empty() {
        vec![opts.mysql.target()?.database]
    } else {
        opts.databases.clone()
    };
    let repo_id = session.repository_id().to_string();
    // Created first: whatever returns early below drops it, and so
    // removes the cache files this dump began.
    let cache = opts.cache_dir.clone().map(|root| {
        PendingCache::new(
            root,
            repo_id.clone(),
            cache::CacheNames::new(session.derived_key(cache::NAMES_KEY)),
            databases.clone(),
        )
    });
    // Without a cache directory, the records fetched from the store are
    // rebuilt in a folder of this dump's own.
    let scratch = match &opts.cache_dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("lifeboat-row-hashes")
                .tempdir()
                .map_err(|e| Error::Internal(format!("creating a temporary folder: {e}")))?,
        ),
    };
    let cache_root = opts
        .cache_dir
        .clone()
        .or_else(|| scratch.as_ref().map(|d| d.path().to_path_buf()))
        .unwrap_or_default();
    let names = cache::CacheNames::new(session.derived_key(cache::NAMES_KEY));
    let mut records = Records::load(repo, names.clone());
    let (mut conns, identity, coordinates) = open_snapshot(&opts.mysql, &databases, wanted)?;
    let mut plan = plan_units(&mut conns, &databases, &identity, &opts.filter)?;
    let queue = Arc::new(Mutex::new(std::mem::take(&mut plan.units)));
    let (register, registered) = std::sync::mpsc::channel::<(usize, UnitRx)>();
    let readers = conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let (queue, register) = (queue.clone(), register.clone());
            std::thread::Builder::new()
                .name(format!("lifeboat-mysql-{i}"))
                .spawn(move || read_units(conn, &queue, &register))
                .map_err(|e| Error::Internal(format!("starting a reading thread: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    drop(register);
    let writer = Writer {
        cache_names: names,
        row_key: session.derived_key("mysql row hash"),
        cache_root: &cache_root,
        repo_id: &repo_id,
        bars,
    };
    let written = writer.write(session, &mut plan, &registered, &mut records);
    // On an error the receivers are gone and the readers stop at their
    // next send; either way wait for them and end their transactions.
    drop(registered);
    let mut conns = Vec::new();
    for r in readers {
        match r.join() {
            Ok(Ok(conn)) => conns.push(conn),
            Ok(Err(e)) if written.is_ok() => return Err(e),
            Err(_) if written.is_ok() => {
                return Err(Error::Internal(
                    "a reading connection's thread panicked".into(),
                ))
            }
            _ => {}
        }
    }
    written?;
    for conn in &mut conns {
        conn.execute("COMMIT")?;
    }
    let filtered = !opts.filter.include.is_empty() || !opts.filter.exclude.is_empty();
    let row_hashes = records.finish(session, &databases, filtered)?;
    let mut facts = facts(&plan.schemas, &plan.reports);
    facts["row_hashes"] = serde_json::json!(row_hashes);
    if let Some(c) = &coordinates {
        facts["binlog"] = serde_json::json!(c);
    }
    session.set_source_facts(SOURCE, facts);
    drop(scratch);
    Ok(Dump {
        reports: plan.reports,
        cache,
        row_hashes,
    })
}

/// The work of a dump, in the order items are written: each database,
/// each table, range by range.
struct Plan {
    schemas: Vec<crate::schema::Schema>,
    /// Per database, the accounts holding privileges on it.
    accounts: Vec<crate::accounts::Accounts>,
    reports: Vec<DumpReport>,
    units: VecDeque<Unit>,
    /// Per database, per table: how many units (key ranges) it has.
    units_of: Vec<Vec<usize>>,
}

/// Read every database's schema (on the first connection, inside the
/// snapshot) and cut its tables into key ranges, one per unit of work.
fn plan_units(
    conns: &mut [Conn],
    databases: &[String],
    identity: &str,
    filter: &TableFilter,
) -> Result<Plan> {
    let mut plan = Plan {
        schemas: Vec::new(),
        accounts: Vec::new(),
        reports: Vec::new(),
        units: VecDeque::new(),
        units_of: Vec::new(),
    };
    for db in databases {
        // SHOW CREATE qualifies names outside the current database, and a
        // replay must create them in its target: read from inside `db`.
        conns[0].execute(&format!("USE {}", ident(db)))?;
        let schema = schema::read(&mut conns[0], db, format!("{identity}/{db}"), &|t| {
            filter.keep(t)
        })?;
        let mut report = DumpReport {
            database: db.clone(),
            server_version: schema.server.version.clone(),
            objects: schema.views.len()
                + schema.triggers.len()
                + schema.routines.len()
                + schema.events.len(),
            connections: conns.len(),
            ..Default::default()
        };
        let mut counts = Vec::new();
        for table in &schema.tables {
            if table.primary_key.is_empty() {
                tracing::warn!(
                    "table {db}.{} has no primary key: it is dumped in full-row order and replays only \
                     where sql_require_primary_key can be turned off",
                    table.name
                );
                report.tables_without_primary_key.push(table.name.clone());
            }
            let bounds = if conns.len() > 1 {
                split_points(&mut conns[0], table, db)?
            } else {
                Vec::new()
            };
            counts.push(bounds.len() + 1);
            for i in 0..=bounds.len() {
                let lo = i.checked_sub(1).map(|j| bounds[j]);
                let hi = bounds.get(i).copied();
                plan.units.push_back(Unit {
                    seq: plan.units.len(),
                    select: table.select_range(db, lo, hi),
                    table: table.clone(),
                });
            }
        }
        plan.units_of.push(counts);
        plan.schemas.push(schema);
        let accounts = crate::accounts::read(&mut conns[0], db)?;
        for u in &accounts.unreadable {
            tracing::warn!("the account {u} holds privileges on {db} but could not be read; it is not in the snapshot");
        }
        report.accounts = accounts.accounts.len();
        plan.accounts.push(accounts);
        plan.reports.push(report);
    }
    Ok(plan)
}

/// The thread that writes items: units' rows in order, into segments.
struct Writer<'a> {
    cache_names: cache::CacheNames,
    row_key: [u8; 32],
    cache_root: &'a std::path::Path,
    repo_id: &'a str,
    bars: &'a dyn ProgressBars,
}

impl Writer<'_> {
    /// Every table of every database as an item, its units taken in order
    /// from the readers; then each database's schema item.
    fn write<A: Access>(
        &self,
        session: &mut BackupSession<A>,
        plan: &mut Plan,
        registered: &std::sync::mpsc::Receiver<(usize, UnitRx)>,
        records: &mut Records<'_, A>,
    ) -> Result<()> {
        let mut pending = BTreeMap::new();
        let mut seq = 0;
        for (((schema, counts), report), accounts) in plan
            .schemas
            .iter()
            .zip(&plan.units_of)
            .zip(&mut plan.reports)
            .zip(&plan.accounts)
        {
            let db = &schema.database;
            let cache_dir = self.cache_names.folder(self.cache_root, self.repo_id, db);
            for (table, &n) in schema.tables.iter().zip(counts) {
                let prepared = records.prepare(&cache_dir, db, &table.name);
                let bar = self.bars.bytes(&table.name);
                let mut item = session.item(SOURCE, &table.item_name(db), "table", &*bar)?;
                let mut segmenter = Segmenter::new(
                    self.row_key,
                    &cache_dir,
                    &self.cache_names.table(&table.name),
                    &prepared,
                );
                let mut count = 0;
                for _ in 0..n {
                    let rx = loop {
                        if let Some(rx) = pending.remove(&seq) {
                            break rx;
                        }
                        let (k, rx) = registered.recv().map_err(|_| {
                            Error::Internal(format!("the connections reading {db} stopped"))
                        })?;
                        pending.insert(k, rx);
                    };
                    seq += 1;
                    count += copy_unit(&rx, &mut segmenter, &mut item, db, &table.name)?;
                }
                let written = segmenter.finish(&mut item)?;
                let stored = item
                    .finish(serde_json::json!({ "rows": count, "columns": table.columns.len() }))?;
                records.store(session, db, &table.name, prepared, written)?;
                bar.finish();
                report.tables.push((table.name.clone(), count, stored.size));
            }
            // The schema goes after its tables: it can only exist in a
            // snapshot whose tables all exist too (the commit is atomic
            // anyway).
            let json =
                serde_json::to_vec_pretty(schema).map_err(|e| Error::Internal(e.to_string()))?;
            let bar = self.bars.bytes("schema");
            let mut item = session.item(SOURCE, &schema_item(db), "schema", &*bar)?;
            item.push(&json)?;
            item.finish(
                serde_json::json!({ "tables": schema.tables.len(), "objects": report.objects }),
            )?;
            // The accounts: password hashes, so sealed like every item and
            // never printed.
            let json = serde_json::to_vec(accounts).map_err(|e| Error::Internal(e.to_string()))?;
            let bar = self.bars.bytes("accounts");
            let name = crate::accounts::accounts_item(db);
            let mut item = session.item(SOURCE, &name, "accounts", &*bar)?;
            item.push(&json)?;
            item.finish(serde_json::json!({ "accounts": accounts.accounts.len() }))?;
        }
        Ok(())
    }
}

/// One unit's rows from its reader into the table's segments; its count.
fn copy_unit<A: Access>(
    rx: &UnitRx,
    segmenter: &mut Segmenter,
    item: &mut ItemWriter<'_, A>,
    db: &str,
    table: &str,
) -> Result<u64> {
    loop {
        match rx.recv() {
            Ok(Msg::Rows(batch)) => {
                for (line, pk) in batch.rows() {
                    segmenter.push_row(line, pk, item)?;
                }
            }
            Ok(Msg::End(rows)) => return Ok(rows),
            Ok(Msg::Failed(e)) => return Err(e),
            Err(_) => {
                return Err(Error::Internal(format!(
                    "the connection reading table {db}.{table} stopped"
                )))
            }
        }
    }
}

/// The source's facts, in the snapshot file the backup key reads: counts
/// and server traits only, no database or table name (item names are
/// sealed with the manifest; history of names is not the host's).
fn facts(schemas: &[crate::schema::Schema], reports: &[DumpReport]) -> serde_json::Value {
    let facts = |schema: &crate::schema::Schema, report: &DumpReport| {
        serde_json::json!({
            "server_version": schema.server.version,
            "flavor": schema.server.flavor,
            "sql_mode": schema.server.sql_mode,
            "gtid": schema.server.gtid,
            "tables": report.tables.len(),
            "rows": report.tables.iter().map(|t| t.1).sum::<u64>(),
            "tables_without_primary_key": report.tables_without_primary_key.len(),
            "connections": report.connections,
        })
    };
    match (schemas, reports) {
        ([schema], [report]) => facts(schema, report),
        _ => serde_json::json!({
            "databases": schemas.iter().zip(reports).map(|(s, r)| facts(s, r)).collect::<Vec<_>>(),
            "tables": reports.iter().map(|r| r.tables.len()).sum::<usize>(),
            "rows": reports.iter().flat_map(|r| &r.tables).map(|t| t.1).sum::<u64>(),
            "connections": reports.first().map_or(1, |r| r.connections),
        }),
    }
}

/// Where the snapshot stands in the server's binary log: the start of the
/// point-in-time window a binlog capture extends.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum SnapshotCoordinates {
    /// The position whose every earlier transaction, and no later one, the
    /// snapshot holds; `how` says why that is certain (`snapshot-status`:
    /// MariaDB's `binlog_snapshot_*` of the snapshot transaction itself;
    /// `lock`: read while `LOCK TABLES ... READ` held every dumped table).
    At {
        file: String,
        pos: u64,
        server: String,
        how: String,
    },
    /// The server logs, but the position could not be tied to the
    /// snapshot: no point-in-time window starts from it.
    Unavailable { unavailable: String },
}

/// Open `n` connections reading one snapshot: each starts `START
/// TRANSACTION WITH CONSISTENT SNAPSHOT` while another connection holds
/// `LOCK TABLES ... READ` on every base table of the database, so no write
/// to any of them can commit between the first snapshot and the last: all
/// see the same state. The lock is held for n round trips. When it cannot
/// be taken (no LOCK TABLES privilege, or a transaction keeps it waiting
/// past `lock_wait_timeout` = 10 s, while writers queue behind it), one
/// connection reads everything. Returns the connections, the server's
/// identity and, when the server writes a binary log, the snapshot's place
/// in it (MySQL: the lock is then taken for one connection too, to read it).
pub(crate) fn open_snapshot(
    mysql: &MysqlOptions,
    databases: &[String],
    n: usize,
) -> Result<(Vec<Conn>, String, Option<SnapshotCoordinates>)> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut conn = Conn::connect(mysql)?;
        conn.execute(
            "SET SESSION net_write_timeout = 3600, net_read_timeout = 3600, wait_timeout = 86400",
        )?;
        conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")?;
        conns.push(conn);
    }
    let mariadb = conns[0].server_version.contains("MariaDB");
    let logging = conns[0].text_value("SELECT @@log_bin")? == "1";
    let mut lock = None;
    let mut lock_error = None;
    if n > 1 || (logging && !mariadb) {
        let mut l = Conn::connect(mysql)?;
        match lock_tables(&mut l, databases) {
            Ok(()) => lock = Some(l),
            Err(e) => {
                tracing::warn!(
                    "could not hold the tables still for a moment ({e}); reading through one connection"
                );
                lock_error = Some(e.to_string());
                conns.truncate(1);
            }
        }
    }
    for conn in &mut conns {
        conn.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")?;
    }
    let mut at = None;
    if logging && !mariadb {
        if let Some(l) = lock.as_mut() {
            at = log_position(l).ok().flatten().map(|p| (p, "lock"));
        }
    }
    if let Some(mut l) = lock {
        l.execute("UNLOCK TABLES")?;
    }
    if logging && mariadb {
        let rows = conns[0].text_rows("SHOW STATUS LIKE 'binlog_snapshot_%'")?;
        let value = |name: &str| {
            rows.iter()
                .find(|r| {
                    r.first()
                        .cloned()
                        .flatten()
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
                })
                .and_then(|r| r.get(1).cloned().flatten())
        };
        let v = vec![
            value("Binlog_snapshot_file"),
            value("Binlog_snapshot_position"),
        ];
        at = first_two(vec![v]).map(|p| (p, "snapshot-status"));
    }
    let identity = server_identity(&mut conns[0])?;
    let coordinates = logging.then(|| match at {
        Some(((file, pos), how)) => SnapshotCoordinates::At {
            file,
            pos,
            server: identity.clone(),
            how: how.into(),
        },
        None => SnapshotCoordinates::Unavailable {
            unavailable: match lock_error {
                Some(e) => format!("the dump could not take LOCK TABLES ... READ to read its binlog position ({e})"),
                None => "the server did not report the snapshot's binlog position".into(),
            },
        },
    });
    Ok((conns, identity, coordinates))
}

/// `(file, position)` from the first row's first two values.
fn first_two(rows: Vec<Vec<Option<String>>>) -> Option<(String, u64)> {
    let r = rows.into_iter().next()?;
    let file = r.first().cloned().flatten().filter(|f| !f.is_empty())?;
    let pos = r.get(1).cloned().flatten()?.parse().ok()?;
    Some((file, pos))
}

/// `LOCK TABLES` every base table of `databases` for reading, in one
/// statement (each LOCK TABLES releases the locks before it).
fn lock_tables(conn: &mut Conn, databases: &[String]) -> Result<()> {
    conn.execute("SET SESSION lock_wait_timeout = 10")?;
    let mut names = Vec::new();
    for db in databases {
        let rows = conn.text_rows(&format!(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_TYPE = 'BASE TABLE'",
            schema::quote(db)
        ))?;
        names.extend(
            rows.into_iter()
                .filter_map(|r| r.into_iter().next().flatten())
                .map(|t| format!("{}.{} READ", ident(db), ident(&t))),
        );
    }
    if names.is_empty() {
        return Ok(());
    }
    conn.execute(&format!("LOCK TABLES {}", names.join(", ")))
}

/// Bounds splitting a table with a one-column integer primary key into
/// ranges of about [`RANGE_BYTES`] (by the server's size estimate); empty
/// when it is not split.
fn split_points(conn: &mut Conn, table: &crate::schema::Table, db: &str) -> Result<Vec<i64>> {
    let [pk] = table.primary_key.as_slice() else {
        return Ok(Vec::new());
    };
    let size = conn
        .text_value(&format!(
            "SELECT DATA_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {}",
            schema::quote(db),
            schema::quote(&table.name)
        ))?
        .parse::<u64>()
        .unwrap_or(0);
    let parts = (size / RANGE_BYTES).clamp(1, 256) as i128;
    if parts < 2 {
        return Ok(Vec::new());
    }
    let row = conn.text_rows(&format!(
        "SELECT MIN({c}), MAX({c}) FROM {}.{}",
        ident(db),
        ident(&table.name),
        c = ident(pk)
    ))?;
    let int = |i: usize| -> Option<i128> {
        row.first()?
            .get(i)?
            .as_deref()?
            .parse::<i64>()
            .ok()
            .map(i128::from)
    };
    let (Some(min), Some(max)) = (int(0), int(1)) else {
        return Ok(Vec::new()); // not an integer key, or an empty table
    };
    let span = max - min + 1;
    let mut bounds: Vec<i64> = (1..parts)
        .map(|i| (min + span * i / parts) as i64)
        .collect();
    bounds.dedup();
    Ok(bounds)
}

/// A table is read in ranges of about this much data when it can be split.
const RANGE_BYTES: u64 = 16 << 20;

/// One range of one table, in the order items are written.
struct Unit {
    seq: usize,
    select: String,
    table: crate::schema::Table,
}

/// What a reading connection sends for one unit.
enum Msg {
    Rows(Batch),
    End(u64),
    Failed(Error),
}

type UnitRx = std::sync::mpsc::Receiver<Msg>;

/// One connection's loop: take the next unit, announce its channel, stream
/// its rows. Returns the connection when the work is done.
fn read_units(
    mut conn: Conn,
    queue: &Mutex<VecDeque<Unit>>,
    register: &std::sync::mpsc::Sender<(usize, UnitRx)>,
) -> Result<Conn> {
    loop {
        let Some(unit) = queue.lock().ok().and_then(|mut q| q.pop_front()) else {
            return Ok(conn);
        };
        // A few batches ahead per range: bounded memory.
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        if register.send((unit.seq, rx)).is_err() {
            return Ok(conn); // the writer stopped
        }
        match read_table(&mut conn, &unit, &tx) {
            Ok(rows) => {
                let _ = tx.send(Msg::End(rows));
            }
            Err(e) => {
                let stop = Error::Wire {
                    what: "reading".into(),
                    why: e.to_string(),
                };
                let _ = tx.send(Msg::Failed(e));
                return Err(stop);
            }
        }
    }
}

/// Encoded rows on their way from the reading thread to the segmenter.
#[derive(Default)]
struct Batch {
    lines: Vec<u8>,
    line_ends: Vec<usize>,
    keys: Vec<u8>,
    key_ends: Vec<usize>,
}

/// Send rows to the segmenter in batches of about this many bytes.
const BATCH_BYTES: usize = 256 * 1024;

impl Batch {
    fn rows(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let mut l = 0;
        let mut k = 0;
        self.line_ends
            .iter()
            .zip(&self.key_ends)
            .map(move |(&le, &ke)| {
                let r = (&self.lines[l..le], &self.keys[k..ke]);
                l = le;
                k = ke;
                r
            })
    }
}

/// Read one range of a table in key order, encode each row, and send
/// batches; returns the number of rows.
fn read_table(conn: &mut Conn, unit: &Unit, tx: &std::sync::mpsc::SyncSender<Msg>) -> Result<u64> {
    let table = &unit.table;
    let kinds: Vec<_> = table.columns.iter().map(|c| c.kind).collect();
    // Which columns form the segment key: the primary key, or all.
    let is_key: Vec<bool> = if table.primary_key.is_empty() {
        vec![true; kinds.len()]
    } else {
        table
            .columns
            .iter()
            .map(|c| table.primary_key.contains(&c.name))
            .collect()
    };
    let mut batch = Batch::default();
    let stopped = || Error::Internal(format!("storing table {} stopped", table.name));
    let count = conn
        .stream(&unit.select, &mut |row| {
            if row.len() != kinds.len() {
                return Err(Error::Wire {
                    what: format!("dump of table {}", table.name),
                    why: format!(
                    "it returned {} columns where its schema has {}: was it altered during the dump? Run the backup again",
                    row.len(),
                    kinds.len()
                )});
            }
            push_row(
                &mut batch.lines,
                &kinds,
                Some((&is_key, &mut batch.keys)),
                |i| Ok::<_, Error>(row.get(i)),
            )?;
            batch.line_ends.push(batch.lines.len());
            batch.key_ends.push(batch.keys.len());
            if batch.lines.len() >= BATCH_BYTES {
                tx.send(Msg::Rows(std::mem::take(&mut batch)))
                    .map_err(|_| stopped())?;
            }
            Ok(())
        })
        .map_err(|e| match e {
            Error::Wire { what, why } => Error::Wire {
                what: format!("reading table {} ({what})", table.name),
                why,
            },
            e => e,
        })?;
    if !batch.line_ends.is_empty() {
        tx.send(Msg::Rows(batch)).map_err(|_| stopped())?;
    }
    Ok(count)
}

/// Cuts a table's rows into segments and stores each whole, unchanged
/// (deduplicated), or as a patch on its previous version.
struct Segmenter {
    /// Keyed row and key hashes: SipHash-1-3 (a keyed PRF, 64-bit), fast
    /// on short rows; the key is derived from the repository's dedup secret.
    sip: (u64, u64),
    buf: Vec<u8>,
    hashes: Vec<u64>,
    key: Option<u64>,
    previous: cache::Reader,
    next: cache::Writer,
    /// The delta of the stored records, when they have a base.
    delta: Option<DeltaWriter>,
    /// The table's cache folder and file stem.
    dir: std::path::PathBuf,
    stem: String,
}

impl Segmenter {
    fn new(row_key: [u8; 32], dir: &std::path::Path, stem: &str, prepared: &Prepared) -> Self {
        Segmenter {
            sip: (
                u64::from_le_bytes([
                    row_key[0], row_key[1], row_key[2], row_key[3], row_key[4], row_key[5],
                    row_key[6], row_key[7],
                ]),
                u64::from_le_bytes([
                    row_key[8],
                    row_key[9],
                    row_key[10],
                    row_key[11],
                    row_key[12],
                    row_key[13],
                    row_key[14],
                    row_key[15],
                ]),
            ),
            buf: Vec::with_capacity(1 << 20),
            hashes: Vec::with_capacity(AVG_ROWS as usize * 2),
            key: None,
            previous: cache::Reader::open(dir, stem),
            next: cache::Writer::create(dir, stem),
            delta: prepared.has_base().then(|| DeltaWriter::create(dir)),
            dir: dir.to_path_buf(),
            stem: stem.to_string(),
        }
    }

    fn hash(&self, data: &[u8]) -> u64 {
        use std::hash::Hasher;
        let mut h = siphasher::sip::SipHasher13::new_with_keys(self.sip.0, self.sip.1);
        h.write(data);
        h.finish()
    }

    fn push_row<A: Access>(
        &mut self,
        line: &[u8],
        pk: &[u8],
        item: &mut ItemWriter<'_, A>,
    ) -> Result<()> {
        let pk_hash = self.hash(pk);
        if self.key.is_none() {
            self.key = Some(pk_hash);
        }
        self.hashes.push(self.hash(line));
        self.buf.extend_from_slice(line);
        let n = self.hashes.len();
        if (n >= MIN_ROWS && pk_hash.is_multiple_of(AVG_ROWS))
            || n >= MAX_ROWS
            || self.buf.len() >= MAX_BYTES
        {
            self.store(item)?;
        }
        Ok(())
    }

    /// The last segment stored; the cache file (with its sum file beside
    /// it) and the delta written.
    fn finish<A: Access>(mut self, item: &mut ItemWriter<'_, A>) -> Result<Written> {
        if !self.hashes.is_empty() {
            self.store(item)?;
        }
        let path = self.next.path().to_path_buf();
        let full = self.next.finish().and_then(|sha| {
            let sum = cache::sum_file(&self.dir, &self.stem).with_extension("sum.new");
            cache::write_sum(&sum, &hex::encode(sha))
                .ok()
                .map(|_| (path, sha))
        });
        Ok(Written {
            full,
            delta: self.delta.and_then(DeltaWriter::finish),
        })
    }

    /// The segment's bytes, handed to the store without a copy.
    fn take_buf(&mut self) -> Vec<u8> {
        let next = Vec::with_capacity(self.buf.capacity());
        std::mem::replace(&mut self.buf, next)
    }

    fn store<A: Access>(&mut self, item: &mut ItemWriter<'_, A>) -> Result<()> {
        let key = self.key.take().unwrap_or(0);
        let found = self.previous.find(key);
        let (depth, blob) = match &found {
            // Unchanged (every row's keyed hash is the same): the same
            // content, so the same blob, already stored.
            Some(old) if old.hashes == self.hashes => {
                (old.depth, item.push_unchanged_blob(&self.buf, old.blob)?)
            }
            previous => {
                // Changed: a patch on the old blob while the chain is short
                // and the patch small, else the segment whole.
                let patched = previous
                    .as_ref()
                    .filter(|old| old.depth < MAX_DEPTH)
                    .and_then(|old| {
                        make_patch(&old.hashes, &self.hashes, &self.buf)
                            .map(|patch| (old.depth + 1, (old.blob, patch)))
                    });
                let (depth, delta) = match patched {
                    Some((depth, delta)) => (depth, Some(delta)),
                    None => (0, None),
                };
                (depth, item.push_blob(self.take_buf(), delta)?)
            }
        };
        let seg = Segment {
            key,
            blob,
            depth,
            hashes: std::mem::take(&mut self.hashes),
        };
        self.next.add(&seg);
        if let Some(d) = self.delta.as_mut() {
            d.add(found.as_ref(), &seg);
        }
        self.hashes = seg.hashes;
        self.hashes.clear();
        self.buf.clear();
        Ok(())
    }
}

/// A patch turning the old segment (known only by its row hashes) into the
/// new one, or `None` when changed rows are over half of it (store whole).
fn make_patch(old: &[u64], new: &[u64], data: &[u8]) -> Option<Vec<u8>> {
    let mut at: std::collections::HashMap<u64, usize> =
        std::collections::HashMap::with_capacity(old.len());
    for (i, h) in old.iter().enumerate().rev() {
        at.insert(*h, i);
    }
    let mut patch = PatchBuilder::new();
    let mut start = 0;
    for h in new {
        let end = start
            + data[start..]
                .iter()
                .position(|b| *b == b'\n')
                .map(|p| p + 1)?;
        match at.get(h) {
            Some(&i) => patch.copy(i),
            None => patch.literal(&data[start..end]),
        }
        start = end;
    }
    if patch.literal_bytes() * 2 > data.len() {
        return None;
    }
    Some(patch.finish())
}

/// Who the server is, to recognise it again at replay time (a replay onto
/// the source is refused) and to tie binlog positions to it:
/// `@@server_uuid` on MySQL, `hostname:port` on MariaDB (which has none).
pub(crate) fn server_identity(conn: &mut Conn) -> Result<String> {
    let uuid = conn.text_value("SELECT @@server_uuid").unwrap_or_default();
    if !uuid.is_empty() {
        return Ok(uuid);
    }
    let r = conn
        .text_rows("SELECT @@hostname, @@port")?
        .into_iter()
        .next()
        .unwrap_or_default();
    Ok(format!(
        "{}:{}",
        r.first().cloned().flatten().unwrap_or_default(),
        r.get(1).cloned().flatten().unwrap_or_default()
    ))
}

/// Where the server writes its binary log now (`SHOW MASTER STATUS`, or
/// MySQL 8.4's `SHOW BINARY LOG STATUS`); `None` when it reports none.
pub(crate) fn log_position(conn: &mut Conn) -> Result<Option<(String, u64)>> {
    let rows = match conn.text_rows("SHOW MASTER STATUS") {
        Ok(r) => r,
        Err(_) => conn.text_rows("SHOW BINARY LOG STATUS")?,
    };
    Ok(first_two(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        let f = TableFilter {
            include: vec![],
            exclude: vec!["tmp_*".into(), "sessions".into()],
        };
        assert!(f.keep("patients"));
        assert!(!f.keep("tmp_import"));
        assert!(!f.keep("sessions"));
        let f = TableFilter {
            include: vec!["app*".into()],
            exclude: vec![],
        };
        assert!(f.keep("appointments") && !f.keep("patients"));
    }
}
