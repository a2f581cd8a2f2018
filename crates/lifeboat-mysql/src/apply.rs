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
//! - statements (DDL) are never sent: one in the snapshot's database
//!   stops the restore with what to do, others are skipped and listed;
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

use crate::binlog::{self, kind, Boundary, Format, Header, Query, Reader, TableMap, Transactions};
use crate::connect::MysqlOptions;
use crate::error::{Error, Result};
use crate::wire::Conn;

/// A stored binlog file and where in it to begin.
#[derive(Debug, Clone)]
pub struct Piece {
    pub item: ManifestItem,
    /// Events ending at or before this position were in the snapshot.
    pub from: u64,
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
    pub seconds: f64,
}

/// A statement's row events go to the server in BINLOG statements of at
/// most this much base64 (the server keeps the statement's table maps
/// until its last row event), so memory stays bounded whatever one
/// statement changed.
const GROUP_BYTES: usize = 16 << 20;

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
    let conn = Conn::connect(&opts.target)?;
    let mut a = Applier {
        conn,
        opts,
        target_db: target.database,
        report: ApplyReport::default(),
        txns: Transactions::default(),
        open: false,
        tables: HashMap::new(),
        group: String::new(),
        maps: String::new(),
        held: None,
        error: None,
        stopped: false,
        from: 0,
        group_bytes: group_bytes(),
    };
    for piece in pieces {
        a.from = piece.from;
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
    /// The statement's table maps (base64 lines): every BINLOG statement
    /// sent starts with them and ends with a row event marked as the
    /// statement's end. The server ignores, without a word, row events of
    /// a table id it has no map for (as a replica ignores filtered
    /// tables), so a part without its maps would be lost silently.
    maps: String,
    /// The last allowed row event of the statement, held back so the
    /// statement's end can be marked on it.
    held: Option<Vec<u8>>,
    error: Option<Error>,
    stopped: bool,
    from: u64,
    group_bytes: usize,
}

impl Applier<'_> {
    fn skip(&mut self, what: String) {
        *self.report.skipped.entry(what).or_default() += 1;
    }

    fn event(&mut self, f: &Format, e: &[u8]) -> Result<()> {
        let h = Header::parse(e).ok_or_else(|| binlog::damaged("a binlog event is cut short"))?;
        if h.kind == kind::FORMAT_DESCRIPTION {
            // The session must know the format before any event.
            return self.send_binlog(&[e.to_vec()]);
        }
        if h.log_pos != 0 && u64::from(h.log_pos) <= self.from {
            return Ok(());
        }
        let boundary = self.txns.feed(f, e);
        let late = self.opts.until.is_some_and(|u| i64::from(h.timestamp) > u);
        match h.kind {
            kind::TABLE_MAP => {
                let m = TableMap::parse(f, e)
                    .ok_or_else(|| binlog::damaged("a stored table map event is cut short"))?;
                let ours = m.database == self.opts.source_database.as_bytes()
                    && std::str::from_utf8(m.table).is_ok_and(|t| self.opts.tables.contains(t));
                self.tables.insert(m.table_id, ours);
                if ours {
                    let moved = m.with_database(f, e, &self.target_db)?;
                    self.push(&moved);
                    let at = self.maps.len();
                    self.maps.push('\n');
                    base64::engine::general_purpose::STANDARD.encode_string(&moved, &mut self.maps);
                    debug_assert!(self.group.ends_with(&self.maps[at + 1..]));
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
                    return self.stop(i64::from(h.timestamp));
                }
                let (id, flags) = binlog::rows_table(f, e)
                    .ok_or_else(|| binlog::damaged("a stored row event is cut short"))?;
                match self.tables.get(&id) {
                    Some(true) => {
                        if let Some(prev) = self.held.replace(e.to_vec()) {
                            self.push(&prev);
                        }
                        self.report.row_events += 1;
                        if self.group.len() > self.group_bytes {
                            // Cut here: this part ends as a statement of
                            // its own; the next starts with the maps again.
                            self.end_statement(f)?;
                            self.group = self.maps.clone();
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
            kind::QUERY | kind::QUERY_COMPRESSED => {
                let q = Query::parse(f, e)
                    .ok_or_else(|| binlog::damaged("a stored query event is cut short"))?;
                match boundary {
                    Boundary::Inside => {
                        let begin = q.sql.len() >= 5 && q.sql[..5].eq_ignore_ascii_case(b"BEGIN");
                        if !begin {
                            self.skip(format!(
                                "a statement inside a transaction: {}",
                                short(q.sql)
                            ));
                        }
                    }
                    Boundary::Rollback => self.rollback()?,
                    Boundary::Commit if late => return self.stop(i64::from(h.timestamp)),
                    Boundary::Commit => {
                        let commit = q.sql.len() >= 6 && q.sql[..6].eq_ignore_ascii_case(b"COMMIT");
                        if !commit {
                            self.statement(&q)?;
                        }
                        self.commit(f, i64::from(h.timestamp))?;
                    }
                }
            }
            kind::XID if late => return self.stop(i64::from(h.timestamp)),
            kind::XID => self.commit(f, i64::from(h.timestamp))?,
            // Context of statements (never sent) and markers.
            _ => {}
        }
        Ok(())
    }

    /// A statement outside a transaction (DDL and the like): never sent.
    fn statement(&mut self, q: &Query<'_>) -> Result<()> {
        let db = self.opts.source_database.as_bytes();
        let mentions =
            |s: &[u8]| !db.is_empty() && s.windows(db.len()).any(|w| w.eq_ignore_ascii_case(db));
        if q.database.eq_ignore_ascii_case(db) || mentions(q.sql) {
            return Err(Error::Invalid(format!(
                "the binlog holds a schema change of database {} ({}) before the point in \
                 time: lifeboat does not apply statements from a binlog yet. Restore --until a \
                 time before it, or from a snapshot taken after it",
                self.opts.source_database,
                short(q.sql)
            )));
        }
        self.skip(format!(
            "a statement in another database ({}): {}",
            String::from_utf8_lossy(q.database),
            short(q.sql)
        ));
        Ok(())
    }

    fn push(&mut self, event: &[u8]) {
        self.group.push('\n');
        base64::engine::general_purpose::STANDARD.encode_string(event, &mut self.group);
    }

    /// The statement's row events end: mark the last one (the end may have
    /// been on a skipped table's event) and send maps and rows as one
    /// BINLOG statement. Maps without a row event of ours are not sent.
    fn end_statement(&mut self, f: &Format) -> Result<()> {
        let Some(last) = self.held.take() else {
            self.group.clear();
            return Ok(());
        };
        let last = binlog::with_statement_end(f, &last);
        self.push(&last);
        self.begin()?;
        let group = std::mem::take(&mut self.group);
        self.send(&group)
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
        if self.open {
            self.conn.execute("COMMIT")?;
            self.open = false;
            self.report.transactions += 1;
        }
        self.report.last_commit = Some(at);
        Ok(())
    }

    fn rollback(&mut self) -> Result<()> {
        self.group.clear();
        self.maps.clear();
        self.held = None;
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

    fn send_binlog(&mut self, events: &[Vec<u8>]) -> Result<()> {
        let mut s = String::new();
        for e in events {
            s.push('\n');
            base64::engine::general_purpose::STANDARD.encode_string(e, &mut s);
        }
        self.send(&s)
    }

    fn send(&mut self, base64_lines: &str) -> Result<()> {
        let sql = format!("BINLOG '{base64_lines}\n'");
        self.conn
            .execute_bytes(sql.as_bytes(), "applying binlog events")
            .map_err(|e| match e {
                Error::Wire { why, .. } if why.contains("error 1227") => Error::Target(format!(
                    "the target refused to apply binlog events ({why}): the restoring user needs \
                     BINLOG REPLAY (MariaDB) or BINLOG_ADMIN / SUPER (MySQL) on the target server"
                )),
                Error::Wire { why, .. } => {
                    Error::Replay(format!("applying the stored binlog: {why}"))
                }
                e => e,
            })
    }
}

/// The start of a statement, for messages.
fn short(sql: &[u8]) -> String {
    let s = String::from_utf8_lossy(&sql[..sql.len().min(80)]).into_owned();
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if sql.len() > 80 {
        format!("{s}...")
    } else {
        s
    }
}
