//! Applying stored binlog to a replayed database, up to a moment: the
//! second half of a point-in-time restore.
//!
//! The events go to the server as `BINLOG '...'` statements, as
//! `mysqlbinlog` prints them: the server applies row events as a replica
//! does, so triggers do not fire a second time (the rows they wrote are
//! events of their own) and values come back byte for byte, with no
//! decoding of column types here.
//!
//! A stored binlog is hostile input (the backup key writes it), so nothing
//! is passed through as it came:
//! - a row event is sent only for a table the snapshot holds, in the
//!   snapshot's database, whose table map is rewritten to name the target
//!   database; every other table's events are skipped and listed;
//! - a schema change on the snapshot's database (tables, indexes, views,
//!   triggers, routines, events) is tokenized and checked as replay checks
//!   a snapshot's texts (`guard::check_window_ddl`), its database's name
//!   moved to the target's, then sent under the session's logged
//!   `sql_mode`; one that cannot be checked stops the restore with what to
//!   do; tables it creates, renames or drops join or leave the applied set;
//! - account statements (GRANT, CREATE USER...), table maintenance
//!   (ANALYZE, OPTIMIZE...) and other databases' statements are skipped and
//!   listed; any other statement on the snapshot's database stops the
//!   restore (a change logged as a statement cannot be applied safely);
//! - every event's CRC-32 and size are checked, and each statement goes
//!   through the client that never allows a second statement.
//!
//! Transactions are applied inside one of the target's, committed at their
//! end only if they committed at or before `until`; the first later one is
//! rolled back and ends the apply.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use base64::Engine;
use lifeboat_store::{FullAccess, Index, ManifestItem, NoProgress, Repository};
use serde::Serialize;

use crate::binlog::{
    self, kind, Boundary, Format, Header, Query, Reader, Statement, TableMap, Transactions,
};
use crate::connect::MysqlOptions;
use crate::error::{Error, Result};
use crate::guard::{TableChange, WindowDdl};
use crate::wire::Conn;

/// A stored binlog file and where in it to begin.
#[derive(Debug, Clone)]
pub struct Piece {
    pub item: ManifestItem,
    /// Events ending at or before this position were in the snapshot.
    pub from: u64,
    /// Where the stored file's events begin in the server's file (the
    /// segment's start; 4: the file's beginning, its format description
    /// included).
    pub start: u64,
    /// Events starting at or after this position are not applied, and the
    /// apply ends there: a later snapshot's coordinates, which are a
    /// transaction boundary (`None`: to the piece's end).
    pub to: Option<u64>,
}

/// Options of [`apply`].
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// The replayed database (the URL's database).
    pub target: MysqlOptions,
    /// The database the snapshot and the binlog name.
    pub source_database: String,
    /// The snapshot's tables: only their rows are applied.
    pub tables: BTreeSet<String>,
    /// Apply transactions committed at or before this server time
    /// (seconds since 1970); `None`: all.
    pub until: Option<i64>,
    /// Apply up to and including the last transaction of this set (an
    /// error if the stored binlog ends before it).
    pub until_gtid: Option<binlog::GtidSet>,
    /// The binlog stands for a backup (a derived night, the proof of a
    /// full read): each transaction must follow the one before it in its
    /// GTID stream (no hole), and a statement that may have changed the
    /// snapshot's database stops the apply instead of being skipped.
    pub strict: bool,
}

/// What [`apply`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    /// Transactions committed on the target (those with rows of the
    /// snapshot's tables).
    pub transactions: u64,
    /// Row events sent.
    pub row_events: u64,
    /// The last applied commit's server time.
    pub last_commit: Option<i64>,
    /// The first commit after `until` (not applied).
    pub next_commit: Option<i64>,
    /// What was skipped, with how often (other databases' and tables'
    /// rows, statements outside the snapshot's database).
    pub skipped: BTreeMap<String, u64>,
    /// Schema changes applied, in order (as sent, shortened).
    pub schema_changes: Vec<String>,
    pub seconds: f64,
}

/// A statement's row events go to the server in BINLOG statements of at
/// most this much base64 (the server keeps the statement's table maps
/// until its last row event), so memory stays bounded whatever one
/// statement changed.
const GROUP_BYTES: usize = 16 << 20;
/// Tables one statement may map (see the table map case of `event`).
const MAX_MAPS: usize = 1000;
const MAX_MAP_BYTES: usize = 64 << 20;

/// [`GROUP_BYTES`], which a debug build's tests may lower
/// (`LIFEBOAT_TEST_BINLOG_GROUP=BYTES`) to split statements with little data.
fn group_bytes() -> usize {
    #[cfg(debug_assertions)]
    if let Some(n) = std::env::var("LIFEBOAT_TEST_BINLOG_GROUP")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    GROUP_BYTES
}

/// Stop reading: the apply reached `until`.
#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reached the point in time")
    }
}

impl std::error::Error for Stop {}

/// Apply `pieces` in order to `opts.target`.
pub fn apply(
    repo: &Repository<FullAccess>,
    index: &Index,
    pieces: &[Piece],
    opts: &ApplyOptions,
) -> Result<ApplyReport> {
    let started = Instant::now();
    let target = opts.target.target()?;
    let mut conn = Conn::connect(&opts.target)?;
    // What is applied is a restore, not new history: kept out of the
    // target server's own binlog where the account may say so (a target
    // that replicates then needs the same restore on its replicas).
    if conn.execute("SET SESSION sql_log_bin = 0").is_err() {
        tracing::info!(
            "the target logs what the restore applies (sql_log_bin could not be turned off)"
        );
    }
    // Unqualified names of the window's schema changes are the target's.
    conn.execute(&format!("USE {}", crate::encode::ident(&target.database)))?;
    let session_mode = conn.text_value("SELECT @@SESSION.sql_mode")?;
    crate::guard::check_sql_mode(&session_mode).map_err(Error::Target)?;
    let mut a = Applier {
        conn,
        live: opts.tables.clone(),
        other_dbs: None,
        session_mode,
        opts,
        target_db: target.database,
        report: ApplyReport::default(),
        txns: Transactions::default(),
        open: false,
        tables: HashMap::new(),
        group: String::new(),
        maps: BTreeMap::new(),
        touched: false,
        xa: None,
        prepared: HashMap::new(),
        next_pos: 0,
        piece_start: 4,
        gtid: None,
        ends: opts
            .until_gtid
            .as_ref()
            .map(binlog::GtidSet::ends)
            .unwrap_or_default(),
        held: None,
        error: None,
        stopped: false,
        from: 0,
        to: None,
        group_bytes: group_bytes(),
        seen: Vec::new(),
    };
    for piece in pieces {
        a.from = piece.from;
        a.to = piece.to;
        a.piece_start = piece.start;
        a.tables.clear();
        let mut reader = Reader::new();
        let mut sink = Sink {
            reader: &mut reader,
            applier: &mut a,
        };
        let r = repo.restore_item(index, &piece.item, &mut sink, &NoProgress);
        if a.stopped {
            break;
        }
        if let Some(e) = a.error.take() {
            return Err(e);
        }
        r?;
        reader.finish()?;
        if a.open {
            // A file never ends inside a transaction lifeboat stored.
            return Err(binlog::damaged(format!(
                "stored binlog {} ends inside a transaction",
                piece.item.name
            )));
        }
    }
    a.rollback()?;
    if let (Some(set), false) = (&opts.until_gtid, a.ends.is_empty()) {
        let missing: Vec<String> = a.ends.iter().map(ToString::to_string).collect();
        return Err(Error::Invalid(format!(
            "the stored binlog after the snapshot ends before {} (of --until-gtid {set}): run \
             `lifeboat binlog` if the server has it, or check the GTID (`SELECT \
             @@gtid_binlog_pos` on MariaDB, `@@gtid_executed` on MySQL)",
            missing.join(", ")
        )));
    }
    a.report.seconds = started.elapsed().as_secs_f64();
    Ok(a.report)
}

struct Sink<'a, 'o> {
    reader: &'a mut Reader,
    applier: &'a mut Applier<'o>,
}

impl std::io::Write for Sink<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let applier = &mut *self.applier;
        match self.reader.push(buf, &mut |f, e| applier.event(f, e)) {
            Ok(()) => Ok(buf.len()),
            Err(e) => {
                if !applier.stopped {
                    applier.error = Some(e);
                }
                Err(std::io::Error::other(Stop))
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Applier<'o> {
    conn: Conn,
    /// The tables whose rows are applied: the snapshot's, as the window's
    /// schema changes create, rename and drop them.
    live: BTreeSet<String>,
    /// The target server's other databases (lowercased), asked once, when
    /// a schema change needs them.
    other_dbs: Option<std::collections::HashSet<String>>,
    /// The session's sql_mode, set again after each schema change.
    session_mode: String,
    opts: &'o ApplyOptions,
    target_db: String,
    report: ApplyReport,
    txns: Transactions,
    /// A transaction is open on the target.
    open: bool,
    /// Table id → whether its rows are applied (this file's maps).
    tables: HashMap<u64, bool>,
    /// The BINLOG statement being built (base64 lines).
    group: String,
    /// The statement's table maps (base64 lines, by table id): every BINLOG statement
    /// sent starts with them and ends with a row event marked as the
    /// statement's end. The server ignores, without a word, row events of
    /// a table id it has no map for (as a replica ignores filtered
    /// tables), so a part without its maps would be lost silently.
    maps: BTreeMap<u64, String>,
    /// The open transaction sent a row of ours.
    touched: bool,
    /// The open XA transaction's xid, and those prepared in the window
    /// (with whether they hold a row of ours).
    xa: Option<Vec<u8>>,
    prepared: HashMap<Vec<u8>, bool>,
    /// Where the next event of the file begins.
    next_pos: u64,
    piece_start: u64,
    /// The open transaction's GTID, and the ends of --until-gtid not yet
    /// applied.
    gtid: Option<binlog::Gtid>,
    ends: Vec<binlog::Gtid>,
    /// The last allowed row event of the statement, held back so the
    /// statement's end can be marked on it.
    held: Option<Vec<u8>>,
    error: Option<Error>,
    stopped: bool,
    from: u64,
    to: Option<u64>,
    group_bytes: usize,
    /// The last GTID applied or skipped, per stream.
    seen: Vec<binlog::Gtid>,
}

impl Applier<'_> {
    fn skip(&mut self, what: String) {
        *self.report.skipped.entry(what).or_default() += 1;
    }

    fn event(&mut self, f: &Format, e: &[u8]) -> Result<()> {
        let h = Header::parse(e).ok_or_else(|| binlog::damaged("a binlog event is cut short"))?;
        if h.kind == kind::FORMAT_DESCRIPTION {
            // The file's own at its start; a copy before a later start.
            self.next_pos = match self.piece_start {
                4 => 4 + u64::from(h.size),
                start => start,
            };
            // The session must know the format before any event.
            let mut sql = String::from("BINLOG '");
            line(&mut sql, e);
            sql.push_str("\n'");
            return self.send_sql(sql);
        }
        // The events of the snapshot are skipped (positions in 64 bits:
        // a header's wraps past 4 GiB).
        let end = binlog::unwrap_pos(self.next_pos, h.log_pos, h.size);
        self.next_pos = end;
        if end <= self.from {
            return Ok(());
        }
        if self.to.is_some_and(|to| end - u64::from(h.size) >= to) {
            return self.stop_at_position();
        }
        let boundary = self.txns.feed(f, e);
        let at = i64::from(h.timestamp);
        let late = self.opts.until.is_some_and(|u| at > u);
        match h.kind {
            kind::TABLE_MAP => {
                let m = TableMap::parse(f, e)
                    .ok_or_else(|| binlog::damaged("a stored table map event is cut short"))?;
                let ours = m.database == self.opts.source_database.as_bytes()
                    && std::str::from_utf8(m.table).is_ok_and(|t| self.live.contains(t));
                self.tables.insert(m.table_id, ours);
                if ours {
                    let moved = m.with_database(f, e, &self.target_db)?;
                    let mut map = String::new();
                    line(&mut map, &moved);
                    self.maps.insert(m.table_id, map);
                    // A statement maps the tables it touches (a join's, its
                    // triggers' and foreign keys'): a few dozen, never more
                    // than this. A forged file mapping more would make every
                    // part of the statement carry them all.
                    let bytes: usize = self.maps.values().map(String::len).sum();
                    if self.maps.len() > MAX_MAPS || bytes > MAX_MAP_BYTES {
                        return Err(binlog::damaged(format!(
                            "a stored statement maps more than {MAX_MAPS} tables or {} MiB of them",
                            MAX_MAP_BYTES >> 20
                        )));
                    }
                } else {
                    let name = format!(
                        "rows of {}.{} (not a table of the snapshot)",
                        String::from_utf8_lossy(m.database),
                        String::from_utf8_lossy(m.table)
                    );
                    self.skip(name);
                }
            }
            _ if Header::is_rows(&h) => {
                if late {
                    return self.stop(at);
                }
                let (id, flags) = binlog::rows_table(f, e)
                    .ok_or_else(|| binlog::damaged("a stored row event is cut short"))?;
                match self.tables.get(&id) {
                    Some(true) => {
                        if let Some(prev) = self.held.replace(e.to_vec()) {
                            self.push(&prev);
                        }
                        self.touched = true;
                        self.report.row_events += 1;
                        if self.group.len() > self.group_bytes {
                            // Cut here: this part ends as a statement of
                            // its own; the next starts with the maps again.
                            self.end_statement(f)?;
                        }
                    }
                    Some(false) => {}
                    None => {
                        return Err(binlog::damaged(
                            "a stored row event names a table no table map event announced",
                        ))
                    }
                }
                if flags & binlog::STMT_END != 0 {
                    self.end_statement(f)?;
                    self.maps.clear();
                }
            }
            kind::TRANSACTION_PAYLOAD => {
                return Err(Error::Invalid(
                    "the stored binlog holds compressed transactions (MySQL's \
                     binlog_transaction_compression), which lifeboat does not apply yet: turn \
                     binlog_transaction_compression off on the server, or replay the stored \
                     binlog with mysqlbinlog (docs/FORMAT.md)"
                        .into(),
                ))
            }
            kind::XA_PREPARE => {
                if late {
                    return self.stop(at);
                }
                self.xa_prepared()?;
            }
            kind::QUERY | kind::QUERY_COMPRESSED => {
                let q = Query::parse(f, e)
                    .ok_or_else(|| binlog::damaged("a stored query event is cut short"))?;
                // A statement stamped after the moment belongs to a
                // transaction that commits after it.
                if late {
                    return self.stop(at);
                }
                self.query(f, &q, boundary, at)?;
            }
            kind::EXECUTE_LOAD_QUERY => {
                let q = Query::parse(f, e)
                    .ok_or_else(|| binlog::damaged("a stored LOAD DATA event is cut short"))?;
                if late {
                    return self.stop(at);
                }
                // Its rows are in the server's file blocks, not row events:
                // refused on the snapshot's database like any statement.
                self.refuse_or_skip(&q, "a LOAD DATA logged as a statement")?;
                if boundary != Boundary::Inside {
                    self.commit(f, at)?;
                }
            }
            k if kind::LOAD_EVENTS.contains(&k) => {
                return Err(Error::Invalid(
                    "the binlog holds a LOAD DATA in the pre-5.0 event format, which lifeboat \
                     cannot apply: restore --until a time before it, or replay the stored binlog \
                     with mariadb-binlog (docs/FORMAT.md)"
                        .into(),
                ))
            }
            kind::INCIDENT => {
                return Err(Error::Invalid(format!(
                    "the binlog holds an incident event (stamped {at}, seconds since 1970 on the \
                     server's clock): the server logged that changes are missing from its binary \
                     log there. Restore --until a time before it, or from a full snapshot taken \
                     after it"
                )))
            }
            kind::XID if late => return self.stop(at),
            kind::XID => self.commit(f, at)?,
            kind::GTID | kind::MARIA_GTID => {
                let g = binlog::Gtid::parse(f, e);
                if let Some(g) = &g {
                    self.forward(g)?;
                }
                self.gtid = g;
            }
            // Context of statements (never sent) and markers.
            _ => {}
        }
        Ok(())
    }

    /// A logged statement: transaction control is followed (savepoints
    /// rebuilt from their checked names), anything else never sent.
    fn query(&mut self, f: &Format, q: &Query<'_>, boundary: Boundary, at: i64) -> Result<()> {
        match Statement::of(q.sql) {
            Statement::Begin => Ok(()),
            Statement::Commit => self.commit(f, at),
            // Logged (a non-transactional change kept it), with its GTID.
            Statement::Rollback => {
                self.rollback()?;
                self.ended()
            }
            Statement::Savepoint(name) => {
                self.end_statement(f)?;
                self.begin()?;
                self.execute(&format!("SAVEPOINT {}", quote(&name)?))
            }
            Statement::RollbackTo(name) => {
                self.end_statement(f)?;
                self.begin()?;
                self.execute(&format!("ROLLBACK TO SAVEPOINT {}", quote(&name)?))
            }
            // MariaDB names the xid at the end of the branch (its GTID
            // event opened it); MySQL at XA START too.
            Statement::XaStart(xid) | Statement::XaEnd(xid) => {
                self.xa = Some(xid);
                Ok(())
            }
            // One phase: an ordinary transaction.
            Statement::XaCommit(_, true) => self.commit(f, at),
            Statement::XaCommit(xid, false) => match self.prepared.remove(&xid) {
                Some(false) => {
                    self.report.last_commit = Some(at);
                    self.ended()
                }
                Some(true) => Err(xa_refused(
                    "commits an XA transaction that changed the snapshot's tables",
                )),
                None => Err(xa_refused(
                    "commits an XA transaction prepared before the window began",
                )),
            },
            Statement::XaRollback(xid) => {
                // Prepared in the window or before it: nothing of it was
                // applied, nothing is to be.
                self.prepared.remove(&xid);
                self.ended()
            }
            // `CREATE TABLE ... SELECT` opens its transaction with the
            // table (its rows follow as row events).
            Statement::Other
                if boundary == Boundary::Inside && !self.open && Class::of(q.sql) == Class::Ddl =>
            {
                self.statement(q)
            }
            Statement::Other if boundary == Boundary::Inside => {
                // Inside a transaction: a statement-format change (a
                // session that set binlog_format).
                self.refuse_or_skip(q, "a statement inside a transaction")
            }
            Statement::Other => {
                self.statement(q)?;
                self.commit(f, at)
            }
        }
    }

    /// The prepared half of an XA transaction: not applied. Its outcome
    /// comes later as `XA COMMIT` (refused if it changed the snapshot's
    /// tables: the rows would have to wait) or `XA ROLLBACK`; still
    /// prepared at the point in time, it was invisible then.
    fn xa_prepared(&mut self) -> Result<()> {
        let touched = self.touched;
        if let Some(xid) = self.xa.take() {
            self.prepared.insert(xid, touched);
        } else if touched {
            return Err(xa_refused("prepares an XA transaction without naming it"));
        }
        self.rollback()
    }

    /// A statement outside transactions: a schema change on the snapshot's
    /// database is applied once checked; account statements and table
    /// maintenance are skipped; anything else is [`Self::refuse_or_skip`].
    fn statement(&mut self, q: &Query<'_>) -> Result<()> {
        let db = self.opts.source_database.clone();
        let ours = q.database == db.as_bytes() || names_word(q.sql, db.as_bytes());
        match Class::of(q.sql) {
            Class::Account => {
                // Never its text: it may hold a password.
                self.skip(format!("an account statement: {}", first_words(q.sql, 2)));
                Ok(())
            }
            Class::Maintenance => {
                self.skip(format!("table maintenance: {}", short(q.sql)));
                Ok(())
            }
            Class::Database
                if ours && q.sql.len() >= 4 && q.sql[..4].eq_ignore_ascii_case(b"DROP") =>
            {
                Err(Error::Invalid(format!(
                    "the binlog drops database {db} itself ({}) before the point in time: \
                     restore --until a time before it",
                    short(q.sql)
                )))
            }
            Class::Database
                if ours && q.sql.len() >= 5 && q.sql[..5].eq_ignore_ascii_case(b"ALTER") =>
            {
                self.schema_change(q, Class::Database)
            }
            Class::Database => {
                self.skip(format!("a database's definition: {}", short(q.sql)));
                Ok(())
            }
            Class::Ddl if ours => self.schema_change(q, Class::Ddl),
            // `CREATE TABLE ... SELECT f()`: code that may write anywhere.
            Class::Ddl if self.opts.strict && creates_table_from_query(q.sql) => {
                self.refuse_or_skip(q, "a schema change that runs a query")
            }
            Class::Ddl => {
                self.skip(format!(
                    "a schema change in another database ({}): {}",
                    String::from_utf8_lossy(q.database),
                    short(q.sql)
                ));
                Ok(())
            }
            Class::Other => self.refuse_or_skip(q, "a statement"),
        }
    }

    /// A schema change that may concern the snapshot's database: checked
    /// under the sql_mode it was logged with, then sent (the session's
    /// mode set back after), or the restore stops saying why.
    fn schema_change(&mut self, q: &Query<'_>, class: Class) -> Result<()> {
        let db = self.opts.source_database.clone();
        let refuse = |why: String| {
            Error::Invalid(format!(
                "the binlog holds a schema change on database {db} that lifeboat does not apply \
                 ({why}): {}. Restore --until a time before it, from a snapshot taken after it, \
                 or replay the stored binlog with mariadb-binlog (docs/FORMAT.md)",
                short(q.sql)
            ))
        };
        let sql = std::str::from_utf8(q.sql).map_err(|_| refuse("its text is not UTF-8".into()))?;
        let mode = q
            .sql_mode
            .ok_or_else(|| refuse("its event does not record the session's sql_mode".into()))?;
        if !sql.is_ascii() {
            // Read as the source's client wrote it: only a UTF-8 client's
            // bytes mean here what they meant there.
            let charset = match q.charset_client {
                Some(id) => self.conn.text_value(&format!(
                    "SELECT CHARACTER_SET_NAME FROM information_schema.COLLATIONS WHERE ID = {id}"
                ))?,
                None => String::new(),
            };
            if !charset.starts_with("utf8") {
                return Err(refuse(format!(
                    "its text is not ASCII and its client character set is {:?}, not UTF-8",
                    charset
                )));
            }
        }
        self.execute(&format!("SET SESSION sql_mode = {mode}"))
            .map_err(|e| {
                refuse(format!(
                    "its sql_mode {mode} is not one this server has: {e}"
                ))
            })?;
        let done = self.checked_schema_change(q, sql, class, &refuse);
        let back = format!("SET SESSION sql_mode = '{}'", self.session_mode);
        self.execute(&back)?;
        done
    }

    fn checked_schema_change(
        &mut self,
        q: &Query<'_>,
        sql: &str,
        class: Class,
        refuse: &dyn Fn(String) -> Error,
    ) -> Result<()> {
        let expanded = self.conn.text_value("SELECT @@SESSION.sql_mode")?;
        if expanded.split(',').any(|m| m == "ORACLE") {
            return Err(refuse("it was logged under sql_mode ORACLE".into()));
        }
        let d = crate::lexer::Dialect::of_sql_mode(&expanded);
        if self.other_dbs.is_none() {
            let others = crate::replay::other_databases(&mut self.conn, &self.target_db)?;
            self.other_dbs = Some(others);
        }
        let scope = crate::guard::Scope {
            source_db: self.opts.source_database.clone(),
            target_db: self.target_db.clone(),
            other_dbs: self.other_dbs.clone().unwrap_or_default(),
            tables: self.live.iter().cloned().collect(),
            anywhere: false,
        };
        let default_db = String::from_utf8_lossy(q.database);
        let checked = match class {
            Class::Database => {
                crate::guard::check_window_alter_database(sql, d, &scope, &default_db)
            }
            _ => crate::guard::check_window_ddl(sql, d, &scope, &default_db),
        };
        match checked.map_err(refuse)? {
            WindowDdl::Elsewhere => {
                self.skip(format!(
                    "a schema change in another database: {}",
                    short(q.sql)
                ));
                Ok(())
            }
            WindowDdl::Apply { sql, change } => {
                self.conn
                    .execute_bytes(sql.as_bytes(), "applying a schema change from the binlog")
                    .map_err(|e| {
                        Error::Replay(format!(
                            "applying the schema change {} from the binlog: {e}",
                            short(sql.as_bytes())
                        ))
                    })?;
                match change {
                    TableChange::None => {}
                    TableChange::Create(t) => {
                        self.live.insert(t);
                    }
                    TableChange::Drop(ts) => {
                        for t in ts {
                            self.live.remove(&t);
                        }
                    }
                    TableChange::Rename(pairs) => {
                        for (from, to) in pairs {
                            if self.live.remove(&from) {
                                self.live.insert(to);
                            }
                        }
                    }
                }
                self.report.schema_changes.push(short(sql.as_bytes()));
                Ok(())
            }
        }
    }

    /// A statement from the log is never sent: one that may concern the
    /// snapshot's database stops the apply (its effect cannot be had
    /// without running it); others are listed as skipped.
    fn refuse_or_skip(&mut self, q: &Query<'_>, what: &str) -> Result<()> {
        let db = &self.opts.source_database;
        if q.database.eq_ignore_ascii_case(db.as_bytes()) || names_word(q.sql, db.as_bytes()) {
            return Err(Error::Invalid(format!(
                "the binlog holds {what} on database {db} ({}) before the point in time: \
                 lifeboat applies row changes only, and this one it cannot apply without \
                 running it (a schema change, or a change logged as a statement: check that \
                 binlog_format = ROW for every session). Restore --until a time before it, \
                 from a snapshot taken after it, or replay the stored binlog with \
                 mariadb-binlog (docs/FORMAT.md)",
                short(q.sql)
            )));
        }
        if self.opts.strict {
            return Err(Error::Invalid(format!(
                "the binlog holds {what} in another database ({}) that may have changed \
                 database {db} (through a view, trigger or routine): a backup made of this \
                 binlog cannot be restored exactly. Restore from a full snapshot \
                 (`lifeboat snapshots`)",
                String::from_utf8_lossy(q.database)
            )));
        }
        self.skip(format!(
            "{what} in another database ({}): {}",
            String::from_utf8_lossy(q.database),
            short(q.sql)
        ));
        Ok(())
    }

    fn execute(&mut self, sql: &str) -> Result<()> {
        self.conn
            .execute(sql)
            .map_err(|e| Error::Replay(format!("applying the stored binlog: {e}")))
    }

    fn push(&mut self, event: &[u8]) {
        line(&mut self.group, event);
    }

    /// The statement's row events end (or a part of them is due): mark
    /// the last one as the statement's end (the end may have been on a
    /// skipped table's event) and send the statement's maps and these rows
    /// as one BINLOG statement. Nothing is sent without a row of ours.
    fn end_statement(&mut self, f: &Format) -> Result<()> {
        let Some(last) = self.held.take() else {
            self.group.clear();
            return Ok(());
        };
        let last = binlog::with_statement_end(f, &last);
        self.push(&last);
        self.begin()?;
        let mut sql = String::with_capacity(self.group.len() + 1024);
        sql.push_str("BINLOG '");
        for line in self.maps.values() {
            sql.push_str(line);
        }
        sql.push_str(&self.group);
        sql.push_str("\n'");
        self.group.clear();
        self.send_sql(sql)
    }

    fn begin(&mut self) -> Result<()> {
        if !self.open {
            self.conn.execute("START TRANSACTION")?;
            self.open = true;
        }
        Ok(())
    }

    fn commit(&mut self, f: &Format, at: i64) -> Result<()> {
        self.end_statement(f)?;
        self.maps.clear();
        self.touched = false;
        self.xa = None;
        if self.open {
            self.conn.execute("COMMIT")?;
            self.open = false;
            self.report.transactions += 1;
        }
        self.report.last_commit = Some(at);
        self.ended()
    }

    /// A transaction ended committed: with --until-gtid, was it the last?
    fn ended(&mut self) -> Result<()> {
        let Some(g) = self.gtid.take() else {
            return Ok(());
        };
        let had = !self.ends.is_empty();
        self.ends.retain(|end| !binlog::GtidSet::reaches(end, &g));
        if had && self.ends.is_empty() {
            self.stopped = true;
            return Err(Error::Internal(Stop.to_string()));
        }
        Ok(())
    }

    fn rollback(&mut self) -> Result<()> {
        self.group.clear();
        self.maps.clear();
        self.held = None;
        self.touched = false;
        self.xa = None;
        if self.open {
            self.conn.execute("ROLLBACK")?;
            self.open = false;
        }
        Ok(())
    }

    fn stop(&mut self, at: i64) -> Result<()> {
        self.rollback()?;
        self.report.next_commit = Some(at);
        self.stopped = true;
        Err(Error::Internal(Stop.to_string()))
    }

    /// GTIDs only go forward in one server's log: one that goes back
    /// means the stored pieces are not one log (the server's binary log
    /// was reset, or another server took its address), and applying on
    /// would replay transactions of another history.
    fn forward(&mut self, g: &binlog::Gtid) -> Result<()> {
        if self.opts.strict {
            if let Some(hole) = self
                .seen
                .iter()
                .find(|p| binlog::Gtid::same_stream(p, g))
                .and_then(|p| crate::continuity::hole(p, g))
            {
                return Err(binlog::damaged(format!(
                    "the stored binlog is not whole: {hole}. A backup made of it cannot be \
                     restored exactly: restore from a full snapshot (`lifeboat snapshots`)"
                )));
            }
        }
        if let Some(p) = self.seen.iter().find(|p| binlog::GtidSet::reaches(g, p)) {
            return Err(binlog::damaged(format!(
                "the stored binlog goes back from GTID {p} to {g}: it is not one continuous log \
                 of the server (its binary log was reset, or another server took its address). \
                 Restore from a full snapshot taken after that, or --until a moment before it"
            )));
        }
        self.seen.retain(|p| !binlog::Gtid::same_stream(p, g));
        self.seen.push(g.clone());
        Ok(())
    }

    /// The position bound ([`Piece::to`]) was reached: it must be between
    /// transactions.
    fn stop_at_position(&mut self) -> Result<()> {
        if self.open || !self.txns.at_safe_point() {
            return Err(binlog::damaged(
                "the position to stop at is inside a transaction of the stored binlog",
            ));
        }
        self.rollback()?;
        self.stopped = true;
        Err(Error::Internal(Stop.to_string()))
    }

    fn send_sql(&mut self, sql: String) -> Result<()> {
        let len = sql.len();
        self.conn
            .execute_bytes(sql.as_bytes(), "applying binlog events")
            .map_err(|e| match e {
                Error::Wire { why, .. } if why.contains("error 1227") => Error::Target(format!(
                    "the target refused to apply binlog events ({why}): the restoring user needs \
                     BINLOG REPLAY (MariaDB) or BINLOG_ADMIN / SUPER (MySQL) on the target server"
                )),
                Error::Wire { why, .. } => Error::Replay(format!(
                    "applying the stored binlog: {why} (the statement was {len} bytes: if the \
                     target closed the connection, raise its max_allowed_packet above that)"
                )),
                e => e,
            })
    }
}

/// What a logged statement is, by its first words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// GRANT, REVOKE, CREATE/DROP/ALTER/RENAME USER or ROLE, SET PASSWORD.
    Account,
    /// ANALYZE, OPTIMIZE, REPAIR, CHECK TABLE: no logical change.
    Maintenance,
    /// CREATE/ALTER/DROP DATABASE or SCHEMA.
    Database,
    /// CREATE, ALTER, DROP, RENAME, TRUNCATE of anything else.
    Ddl,
    Other,
}

impl Class {
    pub(crate) fn of(sql: &[u8]) -> Class {
        // Comments before the first word (a client's /* ... */) count as
        // Other: the guard's lexer is not run for a classification.
        let mut words = sql
            .split(|b| b.is_ascii_whitespace() || *b == b'(')
            .filter(|w| !w.is_empty())
            .map(|w| w.to_ascii_uppercase());
        let first = words.next().unwrap_or_default();
        let mut next = words.next().unwrap_or_default();
        if first == b"CREATE" && next == b"OR" {
            next = words.nth(1).unwrap_or_default();
        }
        let is = |w: &[u8], any: &[&str]| any.iter().any(|a| a.as_bytes() == w);
        match first.as_slice() {
            b"GRANT" | b"REVOKE" => Class::Account,
            b"SET" if is(&next, &["PASSWORD", "DEFAULT"]) => Class::Account,
            b"ANALYZE" | b"OPTIMIZE" | b"REPAIR" | b"CHECK" => Class::Maintenance,
            b"CREATE" | b"DROP" | b"ALTER" | b"RENAME" if is(&next, &["USER", "ROLE"]) => {
                Class::Account
            }
            b"CREATE" | b"DROP" | b"ALTER" if is(&next, &["DATABASE", "SCHEMA"]) => Class::Database,
            b"CREATE" | b"DROP" | b"ALTER" | b"RENAME" | b"TRUNCATE" => Class::Ddl,
            _ => Class::Other,
        }
    }
}

/// One event as a line of a BINLOG statement: a newline, then its base64.
fn line(out: &mut String, event: &[u8]) {
    out.push('\n');
    base64::engine::general_purpose::STANDARD.encode_string(event, out);
}

/// `name` as a quoted identifier (a savepoint's, from the log).
fn quote(name: &[u8]) -> Result<String> {
    let s = std::str::from_utf8(name)
        .ok()
        .filter(|s| !s.is_empty() && s.len() <= 64 && !s.chars().any(char::is_control))
        .ok_or_else(|| binlog::damaged("a stored savepoint name is not one a server writes"))?;
    Ok(format!("`{}`", s.replace('`', "``")))
}

fn xa_refused(what: &str) -> Error {
    Error::Invalid(format!(
        "the binlog {what}: lifeboat does not apply XA transactions. Restore --until a time \
         before it, or replay the stored binlog with mariadb-binlog (docs/FORMAT.md)"
    ))
}

/// Whether `word` appears in `sql` as a whole name (not inside a longer
/// one: `shop` is not in `shop2` or `shop_archive`).
/// `CREATE [OR REPLACE] [TEMPORARY] TABLE ... SELECT`: a schema change
/// that runs a query (whose functions may write anywhere). A view's or a
/// routine's SELECT does not run when it is created.
pub(crate) fn creates_table_from_query(sql: &[u8]) -> bool {
    let text = String::from_utf8_lossy(sql).to_lowercase();
    let Some((head, _)) = text.split_once("select") else {
        return false;
    };
    let mut words = head.split(|c: char| c.is_whitespace() || c == '(');
    words.next() == Some("create") && head.split_whitespace().any(|w| w == "table")
}

fn names_word(sql: &[u8], word: &[u8]) -> bool {
    if word.is_empty() || sql.len() < word.len() {
        return false;
    }
    let part = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
    (0..=sql.len() - word.len()).any(|i| {
        sql[i..i + word.len()].eq_ignore_ascii_case(word)
            && (i == 0 || !part(sql[i - 1]))
            && sql.get(i + word.len()).is_none_or(|b| !part(*b))
    })
}

/// The start of a statement, for messages, its strings' contents left
/// out (a connection string's or a password's).
fn short(sql: &[u8]) -> String {
    let mut out = Vec::with_capacity(90);
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < sql.len() && out.len() < 80 {
        let b = sql[i];
        match quote {
            Some(_) if b == b'\\' => i += 1,
            Some(q) if b == q && sql.get(i + 1) == Some(&q) => i += 1,
            Some(q) if b == q => {
                out.extend_from_slice(b"...");
                out.push(b);
                quote = None;
            }
            Some(_) => {}
            None => {
                if b == b'\'' || b == b'"' {
                    quote = Some(b);
                }
                out.push(b);
            }
        }
        i += 1;
    }
    if quote.is_some() {
        out.extend_from_slice(b"...");
    }
    let s: String = String::from_utf8_lossy(&out)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if i < sql.len() {
        format!("{s}...")
    } else {
        s
    }
}

/// The first `n` words of a statement (for one that may hold a secret).
fn first_words(sql: &[u8], n: usize) -> String {
    let words: Vec<String> = sql
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .take(n)
        .map(|w| {
            String::from_utf8_lossy(w)
                .chars()
                .filter(|c| c.is_ascii_alphabetic())
                .collect()
        })
        .collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_table_made_from_a_query_runs_code_when_created() {
        for yes in [
            "CREATE TABLE ctas AS SELECT f() AS c",
            "create or replace table x (a int) select 1",
            "CREATE TEMPORARY TABLE t SELECT * FROM clinic.t",
        ] {
            assert!(creates_table_from_query(yes.as_bytes()), "{yes}");
        }
        for no in [
            "CREATE ALGORITHM=UNDEFINED DEFINER=`a`@`%` SQL SECURITY DEFINER VIEW `v` AS select 1",
            "CREATE TABLE t (id INT)",
            "CREATE DEFINER=`a`@`%` PROCEDURE p() BEGIN SELECT 1; END",
            "ALTER TABLE t ADD COLUMN selected INT",
        ] {
            assert!(!creates_table_from_query(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn messages_leave_strings_and_account_statements_out() {
        assert_eq!(
            short(b"CREATE TABLE f (a INT) CONNECTION='mysql://app:FedPass999@10.0.0.1/db/t'"),
            "CREATE TABLE f (a INT) CONNECTION='...'"
        );
        assert_eq!(
            short(b"SELECT 'it''s', \"a\\\"b\""),
            "SELECT '...', \"...\""
        );
        assert_eq!(
            first_words(b"CREATE USER u1@'%' IDENTIFIED BY 'PlainPW123'", 2),
            "CREATE USER"
        );
        let long = format!("ALTER TABLE t COMMENT '{}' , ADD x INT", "p".repeat(200));
        assert!(!short(long.as_bytes()).contains("pp"));
    }
}
