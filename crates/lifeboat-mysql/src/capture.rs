//! Binlog capture: the server's binary log read over the replication
//! protocol, as a replica reads it (`COM_BINLOG_DUMP`), and stored as
//! binlog files in a backup session, whole transactions only.
//!
//! One run reads from a position until the server says it has sent
//! everything (a non-blocking dump ends with EOF), so what is stored
//! covers every transaction committed before the run asked, and the
//! covered window ends at the server's clock at that moment
//! ([`Run::caught_up_at`]). Each binlog file the run reads from becomes
//! one item: the magic, the file's format description event, then the
//! events from the start position as received, up to the last complete
//! transaction; `mysqlbinlog` reads it as it reads the server's own file.

use lifeboat_store::{Access, BackupSession, ItemWriter, Progress};
use serde::{Deserialize, Serialize};

use crate::binlog::{self, kind, Format, Gtid, Header, Position, Transactions, MAGIC};
use crate::connect::MysqlOptions;
use crate::error::{Error, Result};
use crate::wire::Conn;

/// The source name of binlog runs in a snapshot.
pub const SOURCE: &str = "mysql-binlog";
/// The snapshot tag of binlog runs.
pub const TAG: &str = "binlog";
/// An open transaction is held in memory up to this size before it goes
/// into the item (it then must end before the item does).
const HOLD: usize = 64 << 20;

/// One stored binlog file piece (an item of a binlog run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// The item's name (`binlog/FILE@START`).
    pub item: String,
    /// The server's file it comes from.
    pub file: String,
    /// The first event's start (4: the file's beginning).
    pub start: u64,
    /// The position after its last event.
    pub end: u64,
    /// Server time of its first and last commit (seconds since 1970).
    pub first_commit: Option<i64>,
    pub last_commit: Option<i64>,
    /// Transactions (and DDL statements) it holds.
    pub transactions: u64,
    /// Its bytes, magic and format description included.
    pub bytes: u64,
}

/// What one capture run stored: the facts of a binlog run's snapshot,
/// readable with the backup key (positions, times, counts; no names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// The server (its `server_uuid`, else `hostname:port`), as the dump
    /// records it: positions mean something on this server only.
    pub server: String,
    /// `mariadb` or `mysql`.
    pub flavor: String,
    /// Where the run started.
    pub start: Position,
    /// Where the next run starts: everything before it is stored.
    pub end: Position,
    /// The server's clock when the run asked for the log: every
    /// transaction committed before then is stored (up to `end`).
    pub caught_up_at: i64,
    /// The stored pieces, in log order.
    pub segments: Vec<Segment>,
    /// The last GTID stored per replication domain (MariaDB) or source
    /// (MySQL), for reading.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gtids: Vec<String>,
    /// Statements it stored other than transaction control (BEGIN,
    /// COMMIT, ROLLBACK, SAVEPOINT, XA): schema changes, statement-logged
    /// writes, FLUSH, ANALYZE... A binlog nightly is derived only over runs
    /// holding none (`None`: a run stored before they were counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statements: Option<u64>,
    /// Where the last of those statements ends in the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_statement: Option<Position>,
}

/// What a capture needs to know about the server before it reads.
#[derive(Debug, Clone)]
pub struct ServerLog {
    pub server: String,
    pub flavor: String,
    /// The binlog files the server still has, oldest first, with sizes.
    pub files: Vec<(String, u64)>,
    /// Where the server writes now.
    pub current: Position,
}

impl ServerLog {
    /// Whether the server still has `p`'s file (it may have purged it).
    pub fn has(&self, p: &Position) -> bool {
        self.files.iter().any(|(f, _)| *f == p.file)
    }
}

/// Options of a capture run.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    pub mysql: MysqlOptions,
    /// The replica id to connect as (unique among the server's replicas).
    pub server_id: u32,
    /// The databases backed up: a run counts the statements that may
    /// concern them ([`Run::statements`]); empty: every statement.
    pub databases: Vec<String>,
}

/// A connection ready to capture, its checks passed.
pub struct Capture {
    conn: Conn,
    pub log: ServerLog,
    server_id: u32,
    mysql: MysqlOptions,
    databases: Vec<String>,
    /// Where the open dump stands between runs (follow mode).
    stream: Option<Stream>,
    /// Reads the server's clock and position at a flush (follow mode).
    control: Option<Conn>,
}

/// An open dump between runs: the file and its format description.
struct Stream {
    at: Position,
    fde: Option<Vec<u8>>,
}

/// How often a following dump asks for a heartbeat when the server has
/// nothing to send, and how long a silent connection is trusted.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(1);
const SILENCE: std::time::Duration = std::time::Duration::from_secs(30);

fn grant_hint(e: Error, what: &str) -> Error {
    match e {
        Error::Wire { why, .. } if why.contains("error 1227") || why.contains("error 1045") => {
            Error::Invalid(format!(
                "{what}: the server refused ({why}). Binlog capture reads the log as a replica: \
                 GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO the backup user (MariaDB \
                 10.5+: REPLICATION SLAVE, BINLOG MONITOR; Aiven's admin user has them)"
            ))
        }
        e => e,
    }
}

impl Capture {
    /// Connect and check that the server's log can be captured: binary
    /// logging on, `binlog_format` ROW, `binlog_row_image` FULL, and the
    /// privileges to read it. Each failure says what to set or grant;
    /// nothing is stored before these pass.
    pub fn connect(opts: &CaptureOptions) -> Result<Capture> {
        let mut conn = Conn::connect(&opts.mysql)?;
        let flavor = if conn.server_version.contains("MariaDB") {
            "mariadb"
        } else {
            "mysql"
        };
        let rows = conn.text_rows("SELECT @@log_bin, @@binlog_format, @@binlog_row_image")?;
        let r = rows.into_iter().next().unwrap_or_default();
        let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
        if get(0) != "1" {
            return Err(Error::Invalid(
                "binary logging is off on the server (log_bin = OFF): point-in-time capture \
                 reads the binary log; start the server with --log-bin (Aiven: it is always on)"
                    .into(),
            ));
        }
        if !get(1).eq_ignore_ascii_case("ROW") {
            return Err(Error::Invalid(format!(
                "binlog_format is {} on the server; point-in-time capture needs ROW (every \
                 changed row as it was written): SET GLOBAL binlog_format = 'ROW' and make it \
                 permanent in the server's configuration",
                get(1)
            )));
        }
        if !get(2).eq_ignore_ascii_case("FULL") {
            return Err(Error::Invalid(format!(
                "binlog_row_image is {} on the server; point-in-time capture needs FULL (whole \
                 rows, so a replay does not depend on the target's columns): SET GLOBAL \
                 binlog_row_image = 'FULL' and make it permanent in the server's configuration",
                get(2)
            )));
        }
        let files = conn
            .text_rows("SHOW BINARY LOGS")
            .map_err(|e| grant_hint(e, "listing the binary logs"))?
            .into_iter()
            .filter_map(|r| {
                let name = r.first().cloned().flatten()?;
                let size = r.get(1).cloned().flatten()?.parse().ok()?;
                Some((name, size))
            })
            .collect::<Vec<_>>();
        let current = current_position(&mut conn)?;
        let server = crate::dump::server_identity(&mut conn)?;
        Ok(Capture {
            conn,
            log: ServerLog {
                server,
                flavor: flavor.into(),
                files,
                current,
            },
            server_id: opts.server_id,
            mysql: opts.mysql.clone(),
            databases: opts.databases.clone(),
            stream: None,
            control: None,
        })
    }

    /// Read from `start` until the server has sent everything, storing
    /// each file's piece as an item of `session`. An error leaves the
    /// session to be aborted by the caller (nothing of this run stored).
    pub fn run<A: Access>(
        mut self,
        session: &mut BackupSession<A>,
        start: &Position,
        progress: &dyn Progress,
    ) -> Result<Run> {
        self.check_start(start)?;
        self.prepare()?;
        // Everything stamped before this moment is in the log the server
        // has when the dump starts, and the dump reads to its end.
        let caught_up_at = server_clock(&mut self.conn)?;
        self.dump(start, true)?;
        let mut run = self.read_run(session, progress, &mut |_, _| Ok(None))?;
        run.caught_up_at = caught_up_at;
        Ok(run)
    }

    /// Start following the log from `start`: a dump that waits for new
    /// events, with a heartbeat every second when there are none. Read it
    /// run by run with [`next_run`](Self::next_run).
    pub fn follow(&mut self, start: &Position) -> Result<()> {
        self.check_start(start)?;
        self.prepare()?;
        let ns = HEARTBEAT.as_nanos();
        self.conn
            .execute(&format!("SET @master_heartbeat_period = {ns}"))?;
        self.conn.set_read_timeout(SILENCE);
        self.control = Some(Conn::connect(&self.mysql)?);
        self.dump(start, false)
    }

    /// Store what the server sends until `every` has passed and everything
    /// the server had written at that moment is stored: one run, whose
    /// `caught_up_at` is the server's clock at that moment. The dump stays
    /// open for the next run.
    pub fn next_run<A: Access>(
        &mut self,
        session: &mut BackupSession<A>,
        every: std::time::Duration,
        progress: &dyn Progress,
    ) -> Result<Run> {
        let mut control = self
            .control
            .take()
            .ok_or_else(|| Error::Internal("next_run before follow".into()))?;
        let started = std::time::Instant::now();
        let mut target: Option<(i64, Position)> = None;
        let r = self.read_run(session, progress, &mut |pos, _| {
            if target.is_none() && started.elapsed() >= every {
                // The clock first: whatever committed before it is in the
                // log before the position read after it.
                let t = server_clock(&mut control)?;
                target = Some((t, current_position(&mut control)?));
            }
            Ok(match &target {
                Some((t, p)) if matches!(pos.cmp_in_log(p), Some(o) if o.is_ge()) => Some(*t),
                _ => None,
            })
        });
        self.control = Some(control);
        r
    }

    fn check_start(&self, start: &Position) -> Result<()> {
        start.check()?;
        if !self.log.has(start) {
            return Err(Error::Invalid(format!(
                "the server no longer has binary log {} (it keeps {}): the events between the \
                 last stored position {start} and its oldest file are lost to point-in-time \
                 recovery; take a full backup to start a new window",
                start.file,
                self.oldest()
            )));
        }
        Ok(())
    }

    fn prepare(&mut self) -> Result<()> {
        self.conn
            .execute("SET @master_binlog_checksum = @@global.binlog_checksum")?;
        self.conn.execute("SET @mariadb_slave_capability = 4")
    }

    fn dump(&mut self, start: &Position, non_block: bool) -> Result<()> {
        let pos = u32::try_from(start.pos).map_err(|_| {
            Error::Invalid(format!(
                "binlog position {start} lies past 4 GiB into its file, which the replication \
                 protocol cannot ask for: take a full backup (`lifeboat backup`) to start a new \
                 window after it"
            ))
        })?;
        self.conn
            .binlog_dump(&start.file, pos, self.server_id, non_block)?;
        self.stream = Some(Stream {
            at: start.clone(),
            fde: None,
        });
        Ok(())
    }

    /// One run from where the stream stands: until EOF, or until `stop`
    /// (asked at every point between transactions) gives the run's
    /// catch-up time.
    fn read_run<A: Access>(
        &mut self,
        session: &mut BackupSession<A>,
        progress: &dyn Progress,
        stop: &mut StopFn<'_>,
    ) -> Result<Run> {
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| Error::Internal("reading a run with no dump open".into()))?;
        let conn = &mut self.conn;
        let mut run = Run {
            server: self.log.server.clone(),
            flavor: self.log.flavor.clone(),
            start: stream.at.clone(),
            end: stream.at.clone(),
            caught_up_at: 0,
            segments: Vec::new(),
            gtids: Vec::new(),
            statements: Some(0),
            last_statement: None,
        };
        let mut gtids = Gtids {
            databases: self.databases.clone(),
            ..Gtids::default()
        };
        loop {
            // Each file starts with a made-up rotate naming it, then its
            // format description.
            let fde = match stream.fde.clone() {
                Some(f) => f,
                None => match next_format(conn, &mut stream.at)? {
                    Some(f) => {
                        stream.fde = Some(f.clone());
                        f
                    }
                    None => break,
                },
            };
            let (seg, next) = segment(conn, session, &fde, &stream.at, &mut gtids, progress, stop)?;
            if let Some(seg) = seg {
                run.segments.push(seg);
            }
            match next {
                Next::Rotated(p) => {
                    run.end = p.clone();
                    stream.at = p;
                    stream.fde = None;
                }
                Next::CaughtUp(p) => {
                    run.end = p.clone();
                    stream.at = p;
                    break;
                }
                Next::Flushed(p, t) => {
                    run.end = p.clone();
                    run.caught_up_at = t;
                    stream.at = p;
                    break;
                }
            }
        }
        run.gtids = gtids.list();
        run.statements = Some(gtids.statements);
        run.last_statement = gtids.last_statement.take();
        Ok(run)
    }

    fn oldest(&self) -> String {
        self.log
            .files
            .first()
            .map_or("no file".into(), |(f, _)| format!("{f} and later"))
    }
}

/// Asked between transactions with the position reached (and whether the
/// server is idle): `Some(time)` ends the run, caught up at that time.
type StopFn<'a> = dyn FnMut(&Position, bool) -> Result<Option<i64>> + 'a;

/// The server's clock (seconds since 1970).
fn server_clock(conn: &mut Conn) -> Result<i64> {
    conn.text_value("SELECT UNIX_TIMESTAMP()")?
        .parse()
        .map_err(|_| Error::Invalid("the server's clock could not be read".into()))
}

/// The server's current write position.
fn current_position(conn: &mut Conn) -> Result<Position> {
    match crate::dump::log_position(conn)
        .map_err(|e| grant_hint(e, "reading the binary log position"))?
    {
        Some((file, pos)) => Ok(Position { file, pos }),
        None => Err(Error::Invalid(
            "the server reports no binary log position (SHOW MASTER STATUS is empty): is log_bin on, \
             and does the user have REPLICATION CLIENT?"
                .into(),
        )),
    }
}

/// The last GTID per domain (MariaDB) or source uuid (MySQL), and the
/// statements other than transaction control, of what a run stored.
#[derive(Default)]
struct Gtids {
    last: std::collections::BTreeMap<String, Gtid>,
    statements: u64,
    last_statement: Option<Position>,
    /// See [`CaptureOptions::databases`].
    databases: Vec<String>,
}

impl Gtids {
    /// Whether a statement other than transaction control may change
    /// what is backed up: it runs in one of the databases, names one, or
    /// is not a schema, account or maintenance statement (a write logged
    /// as a statement may reach them through a view, a trigger or a
    /// routine of another database).
    fn concerns(&self, q: &binlog::Query<'_>) -> bool {
        if self.databases.is_empty() {
            return true;
        }
        let text = String::from_utf8_lossy(q.sql).to_lowercase();
        let own = self.databases.iter().any(|d| {
            q.database.eq_ignore_ascii_case(d.as_bytes()) || text.contains(&d.to_lowercase())
        });
        // `CREATE TABLE ... SELECT f()` runs code that may write anywhere.
        own || crate::apply::creates_table_from_query(q.sql)
            || !matches!(
                crate::apply::Class::of(q.sql),
                crate::apply::Class::Ddl
                    | crate::apply::Class::Database
                    | crate::apply::Class::Account
                    | crate::apply::Class::Maintenance
            )
    }

    fn see(&mut self, g: Gtid) {
        let key = match &g {
            Gtid::Maria { domain, .. } => domain.to_string(),
            Gtid::Mysql { uuid, .. } => hex::encode(uuid),
        };
        self.last.insert(key, g);
    }

    fn list(&self) -> Vec<String> {
        self.last.values().map(Gtid::to_string).collect()
    }
}

/// Read up to a file's format description: `None` at the end of the
/// stream. A made-up rotate names the file (`at` moves there).
fn next_format(conn: &mut Conn, at: &mut Position) -> Result<Option<Vec<u8>>> {
    loop {
        let Some(event) = conn.binlog_event()? else {
            return Ok(None);
        };
        let h = Header::parse(event)
            .ok_or_else(|| binlog::damaged("the server sent a cut-short binlog event"))?;
        match h.kind {
            kind::ROTATE => {
                // Made up by the server to name the file; whether it ends
                // in a CRC-32 is not known before the format description,
                // so a matching CRC says it does.
                let body = event.get(binlog::HEADER..).unwrap_or_default();
                let crc = event.len() >= binlog::HEADER + 12 && {
                    let (data, sum) = event.split_at(event.len() - 4);
                    crc32fast::hash(data).to_le_bytes() == sum
                };
                let body = &body[..body.len() - if crc { 4 } else { 0 }];
                let pos = body
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map_or(4, u64::from_le_bytes);
                let file = String::from_utf8_lossy(body.get(8..).unwrap_or_default()).into_owned();
                let p = Position { file, pos };
                p.check()?;
                if p.file != at.file {
                    *at = p;
                }
            }
            kind::FORMAT_DESCRIPTION => {
                Format::parse(event)?;
                return Ok(Some(event.to_vec()));
            }
            kind::HEARTBEAT | kind::HEARTBEAT_V2 => {}
            other => {
                return Err(binlog::damaged(format!(
                    "the server sent a binlog event of type {other} before the file's format description"
                )))
            }
        }
    }
}

enum Next {
    /// The file ended with a rotate to this position.
    Rotated(Position),
    /// The server has sent everything; the next run starts here.
    CaughtUp(Position),
    /// The run ends here (follow mode), caught up at this server time.
    Flushed(Position, i64),
}

/// Store one file's events from `at` until a rotate or the end of the
/// stream: an item is made only if an event is stored.
fn segment<A: Access>(
    conn: &mut Conn,
    session: &mut BackupSession<A>,
    fde: &[u8],
    at: &Position,
    gtids: &mut Gtids,
    progress: &dyn Progress,
    stop: &mut StopFn<'_>,
) -> Result<(Option<Segment>, Next)> {
    let name = format!("binlog/{}@{}", at.file, at.pos);
    let mut st = SegmentState {
        format: Format::parse(fde)?,
        seg: Segment {
            item: name.clone(),
            file: at.file.clone(),
            start: at.pos,
            end: at.pos,
            first_commit: None,
            last_commit: None,
            transactions: 0,
            bytes: 0,
        },
        pending: Vec::new(),
        spilled: false,
        txns: Transactions::default(),
        gtid: None,
        // At a file's start its format description (at 4) comes first.
        last_pos: if at.pos == 4 {
            4 + fde.len() as u64
        } else {
            at.pos
        },
        rotated: None,
    };
    // Until the first event to store, no item.
    let first = loop {
        match st.next(conn, gtids)? {
            Step::Read => {}
            Step::Idle => {
                if let Some(next) = st.stop(stop, true)? {
                    break Some(next);
                }
            }
            Step::Store => break None,
            Step::End(next) => break Some(next),
        }
    };
    if let Some(next) = first {
        return Ok((None, next));
    }
    let mut w = session.item(SOURCE, &name, "binlog", progress)?;
    w.push(MAGIC)?;
    w.push(fde)?;
    st.seg.bytes += (MAGIC.len() + fde.len()) as u64;
    st.store(&mut w)?;
    let mut next = st.stop(stop, false)?;
    let next = loop {
        if let Some(n) = next.take() {
            break n;
        }
        match st.next(conn, gtids)? {
            Step::Read => {}
            Step::Idle => next = st.stop(stop, true)?,
            Step::Store => {
                st.store(&mut w)?;
                next = st.stop(stop, false)?;
            }
            Step::End(next) => break next,
        }
    };
    if st.spilled {
        return Err(Error::Wire {
            what: "reading the binary log".into(),
            why: "the stream ended inside a transaction larger than 64 MiB; run again".into(),
        });
    }
    w.finish(serde_json::json!({
        "file": st.seg.file,
        "start": st.seg.start,
        "end": st.seg.end,
    }))?;
    Ok((Some(st.seg), next))
}

/// One file's events being read.
struct SegmentState {
    format: Format,
    seg: Segment,
    /// Events not yet in the item: the open transaction's.
    pending: Vec<u8>,
    /// Events of an open (big) transaction are already in the item.
    spilled: bool,
    txns: Transactions,
    gtid: Option<Gtid>,
    last_pos: u64,
    /// The file ended with a rotate to here.
    rotated: Option<Position>,
}

enum Step {
    /// An event was read and held.
    Read,
    /// A heartbeat: the server has nothing more for now.
    Idle,
    /// What is held should go into the item.
    Store,
    /// The file or the stream ended.
    End(Next),
}

impl SegmentState {
    fn next(&mut self, conn: &mut Conn, gtids: &mut Gtids) -> Result<Step> {
        if let Some(r) = self.rotated.take() {
            return Ok(Step::End(Next::Rotated(r)));
        }
        let Some(event) = conn.binlog_event()? else {
            return Ok(Step::End(Next::CaughtUp(Position {
                file: self.seg.file.clone(),
                pos: self.seg.end,
            })));
        };
        let h = Header::parse(event)
            .ok_or_else(|| binlog::damaged("the server sent a cut-short binlog event"))?;
        if matches!(h.kind, kind::HEARTBEAT | kind::HEARTBEAT_V2) {
            return Ok(Step::Idle);
        }
        let f = &self.format;
        f.check(event)?;
        // The server moves to its next file (after a restart the old one
        // ends with a stop event, not a rotate): a made-up rotate names it.
        if h.kind == kind::ROTATE && (h.log_pos == 0 || h.flags & binlog::ARTIFICIAL != 0) {
            if let Some(r) = binlog::rotate_target(f, event) {
                if r.file != self.seg.file {
                    if !self.txns.at_safe_point() {
                        return Err(binlog::damaged(
                            "the server moved to its next binlog file inside a transaction",
                        ));
                    }
                    r.check()?;
                    return Ok(Step::End(Next::Rotated(r)));
                }
            }
        }
        // Made up for the stream (not in the file): not stored.
        if h.log_pos == 0 || h.flags & binlog::ARTIFICIAL != 0 {
            return Ok(Step::Read);
        }
        // A header's end position is 32 bits and wraps in a file past
        // 4 GiB (one huge transaction): positions are kept in 64 bits.
        let end = binlog::unwrap_pos(self.last_pos, h.log_pos, h.size);
        self.last_pos = end;
        let rotate = (h.kind == kind::ROTATE)
            .then(|| binlog::rotate_target(f, event))
            .flatten();
        if let Some(g) = Gtid::parse(f, event) {
            self.gtid = Some(g);
        }
        if matches!(h.kind, kind::QUERY | kind::QUERY_COMPRESSED) {
            // An unreadable one counts.
            // XA is counted too: the apply refuses a prepared transaction's
            // commit.
            let counts =
                binlog::Query::parse(f, event).is_none_or(|q| match binlog::Statement::of(q.sql) {
                    binlog::Statement::Begin
                    | binlog::Statement::Commit
                    | binlog::Statement::Rollback
                    | binlog::Statement::Savepoint(_)
                    | binlog::Statement::RollbackTo(_) => false,
                    binlog::Statement::Other => gtids.concerns(&q),
                    _ => true,
                });
            if counts {
                gtids.statements += 1;
                gtids.last_statement = Some(Position {
                    file: self.seg.file.clone(),
                    pos: end,
                });
            }
        }
        let boundary = self.txns.feed(f, event);
        self.pending.extend_from_slice(event);
        if boundary == binlog::Boundary::Commit {
            let t = i64::from(h.timestamp);
            self.seg.first_commit.get_or_insert(t);
            self.seg.last_commit = Some(t);
            self.seg.transactions += 1;
        }
        let safe = self.txns.at_safe_point();
        if safe {
            self.seg.end = self.last_pos;
            if let Some(g) = self.gtid.take() {
                gtids.see(g);
            }
        }
        if let Some(r) = rotate {
            if !safe {
                return Err(binlog::damaged(
                    "the server rotated its binlog inside a transaction",
                ));
            }
            r.check()?;
            // The rotate is the file's last event: stored with it, then
            // the next call ends the file.
            self.rotated = Some(r);
            return Ok(Step::Store);
        }
        Ok(if safe || self.pending.len() > HOLD {
            Step::Store
        } else {
            Step::Read
        })
    }

    /// Between transactions, ask `stop` whether the run ends here.
    fn stop(&mut self, stop: &mut StopFn<'_>, idle: bool) -> Result<Option<Next>> {
        if !self.txns.at_safe_point() || !self.pending.is_empty() || self.rotated.is_some() {
            return Ok(None);
        }
        let here = Position {
            file: self.seg.file.clone(),
            pos: self.seg.end,
        };
        Ok(stop(&here, idle)?.map(|t| Next::Flushed(here, t)))
    }

    fn store<A: Access>(&mut self, w: &mut ItemWriter<'_, A>) -> Result<()> {
        w.push(&self.pending)?;
        self.seg.bytes += self.pending.len() as u64;
        self.spilled = !self.txns.at_safe_point();
        self.pending.clear();
        Ok(())
    }
}
