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
}

/// A connection ready to capture, its checks passed.
pub struct Capture {
    conn: Conn,
    pub log: ServerLog,
    server_id: u32,
}

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
        let server = server_identity(&mut conn)?;
        Ok(Capture {
            conn,
            log: ServerLog {
                server,
                flavor: flavor.into(),
                files,
                current,
            },
            server_id: opts.server_id,
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
        let conn = &mut self.conn;
        conn.execute("SET @master_binlog_checksum = @@global.binlog_checksum")?;
        conn.execute("SET @mariadb_slave_capability = 4")?;
        let caught_up_at: i64 = conn
            .text_value("SELECT UNIX_TIMESTAMP()")?
            .parse()
            .map_err(|_| Error::Invalid("the server's clock could not be read".into()))?;
        let pos = u32::try_from(start.pos)
            .map_err(|_| Error::Invalid(format!("binlog position {start} is out of range")))?;
        conn.binlog_dump(&start.file, pos, self.server_id, true)?;
        let mut run = Run {
            server: self.log.server.clone(),
            flavor: self.log.flavor.clone(),
            start: start.clone(),
            end: start.clone(),
            caught_up_at,
            segments: Vec::new(),
            gtids: Vec::new(),
        };
        let mut at = start.clone();
        let mut gtids = Gtids::default();
        loop {
            // Each file starts with a made-up rotate naming it, then its
            // format description.
            let Some(fde) = next_format(conn, &mut at)? else {
                break;
            };
            let (seg, next) = segment(conn, session, &fde, &at, &mut gtids, progress)?;
            if let Some(seg) = seg {
                run.segments.push(seg);
            }
            match next {
                Next::Rotated(p) => {
                    run.end = p.clone();
                    at = p;
                }
                Next::CaughtUp(p) => {
                    run.end = p;
                    break;
                }
            }
        }
        run.gtids = gtids.list();
        Ok(run)
    }

    fn oldest(&self) -> String {
        self.log
            .files
            .first()
            .map_or("no file".into(), |(f, _)| format!("{f} and later"))
    }
}

/// The server's current write position.
fn current_position(conn: &mut Conn) -> Result<Position> {
    let rows = match conn.text_rows("SHOW MASTER STATUS") {
        Ok(r) => r,
        Err(_) => conn
            .text_rows("SHOW BINARY LOG STATUS")
            .map_err(|e| grant_hint(e, "reading the binary log position"))?,
    };
    let r = rows.into_iter().next().unwrap_or_default();
    let file = r.first().cloned().flatten().unwrap_or_default();
    let pos = r
        .get(1)
        .cloned()
        .flatten()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    if file.is_empty() {
        return Err(Error::Invalid(
            "the server reports no binary log position (SHOW MASTER STATUS is empty): is log_bin on, \
             and does the user have REPLICATION CLIENT?"
                .into(),
        ));
    }
    Ok(Position { file, pos })
}

/// The server's identity as the dump records it.
pub(crate) fn server_identity(conn: &mut Conn) -> Result<String> {
    let uuid = conn.text_value("SELECT @@server_uuid").unwrap_or_default();
    let host_port = if uuid.is_empty() {
        conn.text_rows("SELECT @@hostname, @@port")?
    } else {
        Vec::new()
    };
    Ok(crate::dump::identity(uuid, host_port))
}

/// The last GTID per domain (MariaDB) or source uuid (MySQL).
#[derive(Default)]
struct Gtids(std::collections::BTreeMap<String, Gtid>);

impl Gtids {
    fn see(&mut self, g: Gtid) {
        let key = match &g {
            Gtid::Maria { domain, .. } => domain.to_string(),
            Gtid::Mysql { uuid, .. } => hex::encode(uuid),
        };
        self.0.insert(key, g);
    }

    fn list(&self) -> Vec<String> {
        self.0.values().map(Gtid::to_string).collect()
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
        last_pos: at.pos,
        rotated: None,
    };
    // Until the first event to store, no item.
    let first = loop {
        match st.next(conn, gtids)? {
            Step::Read => {}
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
    let next = loop {
        match st.next(conn, gtids)? {
            Step::Read => {}
            Step::Store => st.store(&mut w)?,
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
            return Ok(Step::Read);
        }
        let f = &self.format;
        f.check(event)?;
        // Made up for the stream (not in the file): not stored.
        if h.log_pos == 0 || h.flags & binlog::ARTIFICIAL != 0 {
            return Ok(Step::Read);
        }
        if u64::from(h.log_pos) <= self.last_pos {
            return Err(binlog::damaged(format!(
                "the server sent binlog events out of order ({} after {} in {})",
                h.log_pos, self.last_pos, self.seg.file
            )));
        }
        self.last_pos = u64::from(h.log_pos);
        let rotate = (h.kind == kind::ROTATE)
            .then(|| binlog::rotate_target(f, event))
            .flatten();
        if let Some(g) = Gtid::parse(f, event) {
            self.gtid = Some(g);
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

    fn store<A: Access>(&mut self, w: &mut ItemWriter<'_, A>) -> Result<()> {
        w.push(&self.pending)?;
        self.seg.bytes += self.pending.len() as u64;
        self.spilled = !self.txns.at_safe_point();
        self.pending.clear();
        Ok(())
    }
}
