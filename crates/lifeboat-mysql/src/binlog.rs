//! The binary log as lifeboat reads, stores and replays it: event headers,
//! the format description, checksums, positions and where transactions end.
//!
//! Capture ([`crate::capture`]) receives events over the replication
//! protocol and stores them as binlog files the stock `mysqlbinlog` /
//! `mariadb-binlog` reads: the 4-byte magic, the file's format description
//! event, then events exactly as received. Apply ([`crate::apply`]) reads
//! those files back. Both cut the stream at the same transaction ends.
//!
//! Layouts (MySQL's "Binary Log" internals, MariaDB's knowledge base):
//! a v4 event is a 19-byte header (timestamp u32, type u8, server id u32,
//! event size u32, end position u32, flags u16, all little-endian), a
//! post-header whose length the format description gives per type, a body,
//! and, when the format description says CRC32, a 4-byte CRC-32 of
//! everything before it.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The first bytes of every binlog file.
pub const MAGIC: &[u8; 4] = b"\xfebin";
/// Event header length (binlog v4).
pub const HEADER: usize = 19;
/// The largest event lifeboat accepts (the servers' max_allowed_packet cap).
pub const MAX_EVENT: usize = 1 << 30;

/// Event types lifeboat acts on.
pub mod kind {
    pub const QUERY: u8 = 2;
    pub const STOP: u8 = 3;
    pub const ROTATE: u8 = 4;
    pub const INTVAR: u8 = 5;
    pub const RAND: u8 = 13;
    pub const USER_VAR: u8 = 14;
    pub const FORMAT_DESCRIPTION: u8 = 15;
    pub const XID: u8 = 16;
    pub const TABLE_MAP: u8 = 19;
    pub const WRITE_ROWS_V1: u8 = 23;
    pub const UPDATE_ROWS_V1: u8 = 24;
    pub const DELETE_ROWS_V1: u8 = 25;
    pub const HEARTBEAT: u8 = 27;
    /// A gap the server itself logged (events it could not write).
    pub const INCIDENT: u8 = 26;
    /// LOAD DATA logged as a statement: the old events, the file's blocks,
    /// and the statement that loads them (a query event with 13 more
    /// bytes of post-header).
    pub const LOAD_EVENTS: [u8; 6] = [6, 8, 9, 10, 11, 12];
    pub const BEGIN_LOAD_QUERY: u8 = 17;
    pub const EXECUTE_LOAD_QUERY: u8 = 18;
    pub const IGNORABLE: u8 = 28;
    pub const ROWS_QUERY: u8 = 29;
    pub const WRITE_ROWS: u8 = 30;
    pub const UPDATE_ROWS: u8 = 31;
    pub const DELETE_ROWS: u8 = 32;
    /// MySQL 5.6+: a transaction's GTID.
    pub const GTID: u8 = 33;
    pub const ANONYMOUS_GTID: u8 = 34;
    pub const PREVIOUS_GTIDS: u8 = 35;
    /// MariaDB and MySQL: the prepared half of an XA transaction.
    pub const XA_PREPARE: u8 = 38;
    pub const PARTIAL_UPDATE_ROWS: u8 = 39;
    /// MySQL 8.0.20+: a whole transaction, compressed.
    pub const TRANSACTION_PAYLOAD: u8 = 40;
    pub const HEARTBEAT_V2: u8 = 41;
    /// MariaDB: the statement text of the following rows events.
    pub const ANNOTATE_ROWS: u8 = 160;
    pub const BINLOG_CHECKPOINT: u8 = 161;
    /// MariaDB: a transaction's GTID (domain, server, sequence).
    pub const MARIA_GTID: u8 = 162;
    pub const GTID_LIST: u8 = 163;
    pub const START_ENCRYPTION: u8 = 164;
    pub const QUERY_COMPRESSED: u8 = 165;
    pub const WRITE_ROWS_COMPRESSED_V1: u8 = 166;
    pub const DELETE_ROWS_COMPRESSED: u8 = 171;
}

/// `LOG_EVENT_ARTIFICIAL_F`: made up by the server for this stream, not in
/// the file (the rotate that names the file a dump starts in).
pub const ARTIFICIAL: u16 = 0x20;
/// `STMT_END_F` in a rows event's flags: the statement's last rows event.
pub const STMT_END: u16 = 1;

/// An event's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Seconds since 1970 (server clock) when the statement began.
    pub timestamp: u32,
    pub kind: u8,
    pub server_id: u32,
    /// The whole event's length, header and checksum included.
    pub size: u32,
    /// The position just after this event in its file (0 for an event the
    /// server made up for the stream).
    pub log_pos: u32,
    pub flags: u16,
}

impl Header {
    /// The header at the start of `b`.
    pub fn parse(b: &[u8]) -> Option<Header> {
        let b = b.get(..HEADER)?;
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Some(Header {
            timestamp: u32_at(0),
            kind: b[4],
            server_id: u32_at(5),
            size: u32_at(9),
            log_pos: u32_at(13),
            flags: u16::from_le_bytes([b[17], b[18]]),
        })
    }

    /// Whether a rows event (of any version or flavour).
    pub fn is_rows(&self) -> bool {
        matches!(self.kind, 23..=25 | 30..=32 | kind::PARTIAL_UPDATE_ROWS)
            || (kind::WRITE_ROWS_COMPRESSED_V1..=kind::DELETE_ROWS_COMPRESSED).contains(&self.kind)
    }
}

/// What the format description event says about the events after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    /// Events end in a CRC-32.
    pub checksum: bool,
    /// Post-header length per event type (index = type - 1).
    post_header: Vec<u8>,
    /// The server version the file's writer reported.
    pub server_version: String,
}

impl Format {
    /// Read a format description event (whole, as received).
    pub fn parse(event: &[u8]) -> Result<Format> {
        let bad = |why: &str| damaged(format!("a binlog format description event {why}"));
        let h = Header::parse(event).ok_or_else(|| bad("is cut short"))?;
        if h.kind != kind::FORMAT_DESCRIPTION || h.size as usize != event.len() {
            return Err(bad("is not one"));
        }
        // binlog version u16, server version [50], created u32, header
        // length u8, post-header lengths, checksum algorithm u8, CRC u32.
        let body = &event[HEADER..];
        if body.len() < 2 + 50 + 4 + 1 + 5 {
            return Err(bad("is cut short"));
        }
        if u16::from_le_bytes([body[0], body[1]]) != 4 || body[56] as usize != HEADER {
            return Err(bad("is not binlog version 4"));
        }
        let version = &body[2..52];
        let version = &version[..version.iter().position(|b| *b == 0).unwrap_or(50)];
        let alg = body[body.len() - 5];
        let checksum = match alg {
            0 => false,
            1 => true,
            other => {
                return Err(bad(&format!(
                    "names checksum algorithm {other}, not CRC32 or none"
                )))
            }
        };
        let f = Format {
            checksum,
            post_header: body[57..body.len() - 5].to_vec(),
            server_version: String::from_utf8_lossy(version).into_owned(),
        };
        f.check(event)?;
        // The layouts lifeboat reads (and the server reads the same way):
        // anything else is not a format a server writes, and a table map
        // whose id overlapped its names could be read two ways.
        let usual = |k: u8, ok: &[usize]| ok.contains(&f.post_header(k));
        if !usual(kind::TABLE_MAP, &[6, 8])
            || !usual(kind::QUERY, &[13])
            || !usual(kind::ROTATE, &[8])
        {
            return Err(bad("gives event layouts no server writes"));
        }
        Ok(f)
    }

    /// Post-header length of event type `kind`.
    pub fn post_header(&self, kind: u8) -> usize {
        match kind.checked_sub(1) {
            Some(i) => self
                .post_header
                .get(usize::from(i))
                .copied()
                .unwrap_or(0)
                .into(),
            None => 0,
        }
    }

    /// Check `event`'s CRC-32 (when the format has one) and size.
    pub fn check(&self, event: &[u8]) -> Result<()> {
        let h = Header::parse(event).ok_or_else(|| damaged("a binlog event is cut short"))?;
        if h.size as usize != event.len()
            || event.len() < HEADER + if self.checksum { 4 } else { 0 }
        {
            return Err(damaged(format!(
                "a binlog event of type {} claims {} bytes and has {}",
                h.kind,
                h.size,
                event.len()
            )));
        }
        if self.checksum {
            let (data, sum) = event.split_at(event.len() - 4);
            let want = u32::from_le_bytes([sum[0], sum[1], sum[2], sum[3]]);
            if crc32fast::hash(data) != want {
                return Err(damaged(format!(
                    "a binlog event (type {}, ending at position {}) fails its CRC-32",
                    h.kind, h.log_pos
                )));
            }
        }
        Ok(())
    }

    /// The event without header and checksum: post-header and body.
    pub fn payload<'a>(&self, event: &'a [u8]) -> &'a [u8] {
        let end = event.len() - if self.checksum { 4 } else { 0 };
        event.get(HEADER..end).unwrap_or_default()
    }

    /// `event` with its payload replaced by `payload`: size fixed, CRC
    /// recomputed (header fields other than the size are kept).
    pub fn rebuild(&self, event: &[u8], payload: &[u8]) -> Vec<u8> {
        let size = HEADER + payload.len() + if self.checksum { 4 } else { 0 };
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(&event[..HEADER]);
        out[9..13].copy_from_slice(&(size as u32).to_le_bytes());
        out.extend_from_slice(payload);
        if self.checksum {
            let sum = crc32fast::hash(&out);
            out.extend_from_slice(&sum.to_le_bytes());
        }
        out
    }
}

pub(crate) fn damaged(why: impl Into<String>) -> Error {
    Error::Damaged(why.into())
}

/// A place in the server's binary log: a file name and a byte offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub file: String,
    pub pos: u64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

impl Position {
    /// The file's base name and sequence number (`bin.000012` → `bin`, 12).
    fn sequence(&self) -> Option<(&str, u64)> {
        let (base, seq) = self.file.rsplit_once('.')?;
        Some((base, seq.parse().ok()?))
    }

    /// Order within one server's log: by file sequence, then offset.
    /// `None` for positions of differently named logs.
    pub fn cmp_in_log(&self, other: &Position) -> Option<std::cmp::Ordering> {
        let (a, b) = (self.sequence()?, other.sequence()?);
        if a.0 != b.0 {
            return None;
        }
        Some((a.1, self.pos).cmp(&(b.1, other.pos)))
    }

    /// A file name the server could have written: the stored facts are
    /// read with the backup key, which a thief of the host holds, so a name
    /// is sent to the server only if it is plain.
    pub fn check(&self) -> Result<()> {
        let plain = !self.file.is_empty()
            && self.file.len() <= 255
            && self
                .file
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !plain || self.sequence().is_none() || self.pos < 4 || self.pos > u64::from(u32::MAX) {
            return Err(Error::Refused(format!(
                "{self:?} is not a binary log position a server writes (NAME.NUMBER and an offset of at least 4)"
            )));
        }
        Ok(())
    }
}

/// The 64-bit end position of an event whose header says `log_pos` (32
/// bits: it wraps in a file past 4 GiB) and which comes after an event
/// ending at `prev_end`. The stream may leave events out (MariaDB sends
/// no annotate-rows event to a replica that did not ask for them), so
/// the end is the first position with those low bits at or after
/// `prev_end + size`.
pub fn unwrap_pos(prev_end: u64, log_pos: u32, size: u32) -> u64 {
    let least = prev_end + u64::from(size);
    let c = (least & !0xFFFF_FFFF) | u64::from(log_pos);
    if c < least {
        c + (1 << 32)
    } else {
        c
    }
}

/// Where transactions end, event by event: capture stores whole
/// transactions only, apply commits or rolls back at each end.
#[derive(Debug, Default, Clone)]
pub struct Transactions {
    /// Inside `BEGIN` ... `COMMIT`/XID (MariaDB: after a GTID event that
    /// is not standalone).
    open: bool,
    /// After a GTID event, before its transaction or statement.
    gtid: bool,
}

/// What an event means for transaction boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    /// Not an end: a transaction goes on (or none is open).
    Inside,
    /// A transaction ends here and commits (XID, COMMIT, a DDL statement,
    /// a compressed whole transaction).
    Commit,
    /// A transaction ends here without effect (`ROLLBACK`).
    Rollback,
}

impl Transactions {
    /// Feed the next event; says whether a transaction ended with it.
    pub fn feed(&mut self, f: &Format, event: &[u8]) -> Boundary {
        let Some(h) = Header::parse(event) else {
            return Boundary::Inside;
        };
        match h.kind {
            // MariaDB writes no BEGIN: its GTID event opens the transaction
            // unless flagged standalone (a DDL statement follows alone).
            kind::MARIA_GTID => {
                let flags = f.payload(event).get(12).copied().unwrap_or(0);
                self.open = flags & 1 == 0;
                self.gtid = !self.open;
                Boundary::Inside
            }
            kind::GTID | kind::ANONYMOUS_GTID => {
                self.gtid = true;
                Boundary::Inside
            }
            kind::XID | kind::TRANSACTION_PAYLOAD => self.end(Boundary::Commit),
            // The prepared half of an XA transaction ends its group.
            kind::XA_PREPARE => self.end(Boundary::Commit),
            kind::QUERY | kind::QUERY_COMPRESSED => {
                let q = Query::parse(f, event).map(|q| q.sql).unwrap_or_default();
                match Statement::of(q) {
                    Statement::Begin | Statement::XaStart(_) => {
                        self.open = true;
                        self.gtid = false;
                        Boundary::Inside
                    }
                    Statement::Commit => self.end(Boundary::Commit),
                    Statement::Rollback => self.end(Boundary::Rollback),
                    _ if self.open => Boundary::Inside,
                    _ => self.end(Boundary::Commit),
                }
            }
            _ => Boundary::Inside,
        }
    }

    fn end(&mut self, b: Boundary) -> Boundary {
        self.open = false;
        self.gtid = false;
        b
    }

    /// Between transactions: a stream may be cut here.
    pub fn at_safe_point(&self) -> bool {
        !self.open && !self.gtid
    }
}

/// What a logged statement is, as far as transactions go. The server
/// logs these in its own spelling; anything else is `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    Begin,
    Commit,
    Rollback,
    /// `SAVEPOINT name` (the name unquoted).
    Savepoint(Vec<u8>),
    /// `ROLLBACK TO [SAVEPOINT] name`.
    RollbackTo(Vec<u8>),
    /// `XA START xid` (the xid as written).
    XaStart(Vec<u8>),
    /// `XA END xid`.
    XaEnd(Vec<u8>),
    /// `XA COMMIT xid [ONE PHASE]`: (xid, one phase).
    XaCommit(Vec<u8>, bool),
    /// `XA ROLLBACK xid`.
    XaRollback(Vec<u8>),
    Other,
}

impl Statement {
    pub fn of(sql: &[u8]) -> Statement {
        // The first words tell (a big statement is not split whole); a
        // name cut off there makes the statement `Other`.
        let mut words: Vec<&[u8]> = sql
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .take(9)
            .collect();
        if words.len() == 9 {
            words[8] = b"\0";
        }
        let is = |i: usize, w: &str| {
            words
                .get(i)
                .is_some_and(|x| x.eq_ignore_ascii_case(w.as_bytes()))
        };
        let rest = |i: usize| -> Vec<u8> { words.get(i..).unwrap_or_default().join(&b' ') };
        let n = words.len();
        if (is(0, "BEGIN") && (n == 1 || is(1, "WORK"))) || (is(0, "START") && is(1, "TRANSACTION"))
        {
            Statement::Begin
        } else if is(0, "COMMIT") && (n == 1 || (n == 2 && is(1, "WORK"))) {
            Statement::Commit
        } else if is(0, "ROLLBACK") && (n == 1 || (n == 2 && is(1, "WORK"))) {
            Statement::Rollback
        } else if is(0, "ROLLBACK") && (is(1, "TO") || (is(1, "WORK") && is(2, "TO"))) {
            let at = if is(1, "WORK") { 3 } else { 2 };
            let at = if is(at, "SAVEPOINT") { at + 1 } else { at };
            match identifier(&rest(at)) {
                Some(name) => Statement::RollbackTo(name),
                None => Statement::Other,
            }
        } else if is(0, "SAVEPOINT") {
            match identifier(&rest(1)) {
                Some(name) => Statement::Savepoint(name),
                None => Statement::Other,
            }
        } else if is(0, "XA") && (is(1, "START") || is(1, "BEGIN")) {
            Statement::XaStart(rest(2))
        } else if is(0, "XA") && is(1, "END") {
            Statement::XaEnd(rest(2))
        } else if is(0, "XA") && is(1, "COMMIT") {
            let one = n >= 4 && is(n - 2, "ONE") && is(n - 1, "PHASE");
            let end = if one { n - 2 } else { n };
            Statement::XaCommit(words[2.min(end)..end].join(&b' '), one)
        } else if is(0, "XA") && is(1, "ROLLBACK") {
            Statement::XaRollback(rest(2))
        } else {
            Statement::Other
        }
    }
}

/// A whole identifier: `` `name` `` (with `` ` `` doubled inside) or a
/// plain word; `None` for anything more.
fn identifier(s: &[u8]) -> Option<Vec<u8>> {
    if let Some(inner) = s.strip_prefix(b"`").and_then(|r| r.strip_suffix(b"`")) {
        let mut out = Vec::new();
        let mut i = 0;
        while i < inner.len() {
            if inner[i] == b'`' {
                if inner.get(i + 1) != Some(&b'`') {
                    return None;
                }
                i += 1;
            }
            out.push(inner[i]);
            i += 1;
        }
        return (!out.is_empty()).then_some(out);
    }
    let plain = !s.is_empty()
        && s.iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$');
    plain.then(|| s.to_vec())
}

/// A query event's parts.
#[derive(Debug)]
pub struct Query<'a> {
    /// The default database the statement ran in.
    pub database: &'a [u8],
    pub sql: &'a [u8],
    /// The session's `sql_mode` as the server's bit set (status variable
    /// 1), when the status block holds it before any variable this parser
    /// does not know.
    pub sql_mode: Option<u64>,
    /// The session's `character_set_client` collation id (status variable
    /// 4), likewise.
    pub charset_client: Option<u16>,
}

impl<'a> Query<'a> {
    /// Post-header: thread id u32, seconds u32, database length u8, error
    /// code u16, status block length u16; then the status block, the
    /// database and a NUL, the statement.
    pub fn parse(f: &Format, event: &'a [u8]) -> Option<Query<'a>> {
        let p = f.payload(event);
        // Its own post-header: a query's (13), or a LOAD DATA's execute
        // event's (26, the query's first).
        let h = Header::parse(event)?;
        let post = f.post_header(h.kind).max(13);
        let head = p.get(..post)?;
        let db_len = usize::from(head[8]);
        let status = usize::from(u16::from_le_bytes([head[11], head[12]]));
        let db_start = post.checked_add(status)?;
        let database = p.get(db_start..db_start + db_len)?;
        let sql = p.get(db_start + db_len + 1..)?;
        let (sql_mode, charset_client) = status_vars(p.get(post..db_start)?);
        Some(Query {
            database,
            sql,
            sql_mode,
            charset_client,
        })
    }
}

/// The sql_mode and client charset of a query event's status block: each
/// variable is a code byte and a value whose size the code fixes (MySQL's
/// and MariaDB's `log_event.h` layouts). The walk stops at the first code
/// it does not know: what follows cannot be told apart.
fn status_vars(mut b: &[u8]) -> (Option<u64>, Option<u16>) {
    let (mut mode, mut charset) = (None, None);
    let byte_len = |b: &[u8], at: usize| b.get(at).map(|n| usize::from(*n));
    while let Some((&code, rest)) = b.split_first() {
        let size = match code {
            0 => Some(4),                              // flags2
            1 => Some(8),                              // sql_mode
            2 => byte_len(rest, 0).map(|n| n + 2),     // catalog, NUL-ended
            3 => Some(4),                              // auto_increment
            4 => Some(6),                              // charset
            5 | 6 => byte_len(rest, 0).map(|n| n + 1), // time zone, catalog
            7 | 8 => Some(2),                          // lc_time_names, db charset
            9 => Some(8),                              // table map for update
            10 => Some(4),                             // master data written
            11 => byte_len(rest, 0).and_then(|u| byte_len(rest, u + 1).map(|h| u + h + 2)), // invoker
            13 => Some(3),           // microseconds
            16 | 19 | 20 => Some(1), // MySQL 8 flags
            17 => Some(8),           // ddl logged with xid
            18 => Some(2),           // utf8mb4 collation
            128 => Some(3),          // MariaDB hrnow
            129 => Some(8),          // MariaDB xid
            _ => None,
        };
        let Some(value) = size.and_then(|n| rest.get(..n)) else {
            break;
        };
        match code {
            1 => mode = value.try_into().ok().map(u64::from_le_bytes),
            4 => charset = Some(u16::from_le_bytes([value[0], value[1]])),
            _ => {}
        }
        b = &rest[value.len()..];
    }
    (mode, charset)
}

/// A table map event's parts.
#[derive(Debug)]
pub struct TableMap<'a> {
    pub table_id: u64,
    pub database: &'a [u8],
    pub table: &'a [u8],
    /// Where the database name's length byte is in the payload (for
    /// rewriting the name).
    db_at: usize,
}

impl<'a> TableMap<'a> {
    /// Post-header: table id (6 bytes, 4 in old formats), flags u16; body:
    /// database length u8, name, NUL, table length u8, name, NUL, columns...
    pub fn parse(f: &Format, event: &'a [u8]) -> Option<TableMap<'a>> {
        let p = f.payload(event);
        let post = f.post_header(kind::TABLE_MAP);
        let table_id = table_id(p, post)?;
        let db_len = usize::from(*p.get(post)?);
        let database = p.get(post + 1..post + 1 + db_len)?;
        let t = post + 1 + db_len + 1;
        let t_len = usize::from(*p.get(t)?);
        let table = p.get(t + 1..t + 1 + t_len)?;
        let rest_at = t + 1 + t_len + 1;
        if p.get(post + 1 + db_len) != Some(&0) || p.get(rest_at - 1) != Some(&0) {
            return None;
        }
        Some(TableMap {
            table_id,
            database,
            table,
            db_at: post,
        })
    }

    /// The same event naming database `db` instead (CRC recomputed).
    pub fn with_database(&self, f: &Format, event: &[u8], db: &str) -> Result<Vec<u8>> {
        let len = u8::try_from(db.len())
            .map_err(|_| Error::Invalid(format!("database name {db:?} is too long")))?;
        let p = f.payload(event);
        let mut out = Vec::with_capacity(p.len() + db.len());
        out.extend_from_slice(&p[..self.db_at]);
        out.push(len);
        out.extend_from_slice(db.as_bytes());
        out.push(0);
        let t = self.db_at + 1 + self.database.len() + 1;
        out.extend_from_slice(&p[t..]);
        let moved = f.rebuild(event, &out);
        // What the server will read from it: the same table, another name.
        match TableMap::parse(f, &moved) {
            Some(m)
                if m.table_id == self.table_id
                    && m.table == self.table
                    && m.database == db.as_bytes() =>
            {
                Ok(moved)
            }
            _ => Err(damaged(
                "a stored table map event cannot be moved to another database",
            )),
        }
    }
}

/// The table id at the start of a post-header (6 bytes; 4 when the
/// post-header is 6 bytes long, as in MySQL 5.1.3 and older).
fn table_id(p: &[u8], post: usize) -> Option<u64> {
    let width = if post == 6 { 4 } else { 6 };
    let b = p.get(..width)?;
    let mut v = [0u8; 8];
    v[..width].copy_from_slice(b);
    Some(u64::from_le_bytes(v))
}

/// A rows event's table id and flags (`None` for a layout no server
/// writes: post-header 6, 8 or 10 bytes).
pub fn rows_table(f: &Format, event: &[u8]) -> Option<(u64, u16)> {
    let h = Header::parse(event)?;
    let p = f.payload(event);
    let post = f.post_header(h.kind);
    if ![6, 8, 10].contains(&post) {
        return None;
    }
    let id = table_id(p, post)?;
    let at = if post == 6 { 4 } else { 6 };
    let flags = p.get(at..at + 2)?;
    Some((id, u16::from_le_bytes([flags[0], flags[1]])))
}

/// A rows event with `STMT_END_F` set (CRC recomputed).
pub fn with_statement_end(f: &Format, event: &[u8]) -> Vec<u8> {
    let Some(h) = Header::parse(event) else {
        return event.to_vec();
    };
    let at = if f.post_header(h.kind) == 6 { 4 } else { 6 };
    let mut p = f.payload(event).to_vec();
    if let Some(b) = p.get_mut(at) {
        *b |= STMT_END as u8;
    }
    f.rebuild(event, &p)
}

/// A transaction's GTID, as the server writes it in the event that opens
/// it: MariaDB's `domain-server-sequence`, MySQL's `uuid:number`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gtid {
    Maria { domain: u32, server: u32, seq: u64 },
    Mysql { uuid: [u8; 16], number: u64 },
}

impl Gtid {
    /// Of the same replication domain (MariaDB) or source (MySQL).
    pub fn same_stream(a: &Gtid, b: &Gtid) -> bool {
        match (a, b) {
            (Gtid::Maria { domain: x, .. }, Gtid::Maria { domain: y, .. }) => x == y,
            (Gtid::Mysql { uuid: x, .. }, Gtid::Mysql { uuid: y, .. }) => x == y,
            _ => false,
        }
    }
}

impl std::fmt::Display for Gtid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Gtid::Maria {
                domain,
                server,
                seq,
            } => write!(f, "{domain}-{server}-{seq}"),
            Gtid::Mysql { uuid, number } => {
                let h = hex::encode(uuid);
                write!(
                    f,
                    "{}-{}-{}-{}-{}:{number}",
                    &h[..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..]
                )
            }
        }
    }
}

impl Gtid {
    /// The GTID a GTID event carries. MariaDB (type 162): post-header
    /// sequence u64, domain u32, flags u8; the server id is the header's.
    /// MySQL (type 33): flags u8, source uuid [16], number i64.
    pub fn parse(f: &Format, event: &[u8]) -> Option<Gtid> {
        let h = Header::parse(event)?;
        let p = f.payload(event);
        match h.kind {
            kind::MARIA_GTID => {
                let seq = u64::from_le_bytes(p.get(..8)?.try_into().ok()?);
                let domain = u32::from_le_bytes(p.get(8..12)?.try_into().ok()?);
                Some(Gtid::Maria {
                    domain,
                    server: h.server_id,
                    seq,
                })
            }
            kind::GTID => {
                let uuid: [u8; 16] = p.get(1..17)?.try_into().ok()?;
                let number = i64::from_le_bytes(p.get(17..25)?.try_into().ok()?);
                Some(Gtid::Mysql {
                    uuid,
                    number: u64::try_from(number).ok()?,
                })
            }
            _ => None,
        }
    }
}

/// A set of GTIDs as the servers print them: MariaDB's `D-S-N,...` (per
/// replication domain, the transactions up to sequence N) or MySQL's
/// `uuid:A-B:C,...`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidSet {
    maria: std::collections::BTreeMap<u32, u64>,
    mysql: std::collections::BTreeMap<[u8; 16], Vec<(u64, u64)>>,
}

impl std::str::FromStr for GtidSet {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<GtidSet, String> {
        let bad = |part: &str| {
            format!(
                "{part:?} is not a GTID: give MariaDB's DOMAIN-SERVER-SEQUENCE (0-1-105) or \
                 MySQL's UUID:NUMBER[-NUMBER] (3E11FA47-71CA-11E1-9E33-C80AA9429562:1-77), \
                 several separated by commas"
            )
        };
        let mut set = GtidSet::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if let Some((uuid, ranges)) = part.split_once(':') {
                let hexed: String = uuid.chars().filter(|c| *c != '-').collect();
                let id: [u8; 16] = hex::decode(&hexed)
                    .ok()
                    .and_then(|v| v.try_into().ok())
                    .ok_or_else(|| bad(part))?;
                for r in ranges.split(':') {
                    let (a, b) = r.split_once('-').unwrap_or((r, r));
                    let (a, b): (u64, u64) = (
                        a.parse().map_err(|_| bad(part))?,
                        b.parse().map_err(|_| bad(part))?,
                    );
                    if a == 0 || b < a {
                        return Err(bad(part));
                    }
                    set.mysql.entry(id).or_default().push((a, b));
                }
            } else {
                let n: Vec<&str> = part.split('-').collect();
                let [d, _server, seq] = n.as_slice() else {
                    return Err(bad(part));
                };
                let d: u32 = d.parse().map_err(|_| bad(part))?;
                let seq: u64 = seq.parse().map_err(|_| bad(part))?;
                _server.parse::<u32>().map_err(|_| bad(part))?;
                let e = set.maria.entry(d).or_default();
                *e = (*e).max(seq);
            }
        }
        if set.maria.is_empty() && set.mysql.is_empty() {
            return Err(bad(s));
        }
        Ok(set)
    }
}

impl std::fmt::Display for GtidSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self
            .maria
            .iter()
            .map(|(d, s)| format!("{d}-*-{s}"))
            .collect();
        for (id, ranges) in &self.mysql {
            let g = Gtid::Mysql {
                uuid: *id,
                number: 0,
            }
            .to_string();
            let uuid = g.trim_end_matches(":0");
            let r: Vec<String> = ranges
                .iter()
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect();
            parts.push(format!("{uuid}:{}", r.join(":")));
        }
        f.write_str(&parts.join(","))
    }
}

impl GtidSet {
    /// The transactions whose end the set names: per MariaDB domain its
    /// last sequence, per MySQL source the end of each range.
    pub fn ends(&self) -> Vec<Gtid> {
        let mut out: Vec<Gtid> = self
            .maria
            .iter()
            .map(|(d, s)| Gtid::Maria {
                domain: *d,
                server: 0,
                seq: *s,
            })
            .collect();
        for (id, ranges) in &self.mysql {
            if let Some(end) = ranges.iter().map(|r| r.1).max() {
                out.push(Gtid::Mysql {
                    uuid: *id,
                    number: end,
                });
            }
        }
        out
    }

    /// Whether `g` is at or past one of the set's ends (same domain or
    /// source): once every end is, the set is applied.
    pub fn reaches(end: &Gtid, g: &Gtid) -> bool {
        match (end, g) {
            (
                Gtid::Maria {
                    domain: a, seq: s, ..
                },
                Gtid::Maria {
                    domain: b, seq: t, ..
                },
            ) => a == b && t >= s,
            (Gtid::Mysql { uuid: a, number: s }, Gtid::Mysql { uuid: b, number: t }) => {
                a == b && t >= s
            }
            _ => false,
        }
    }
}

/// A rotate event's target: position u64, then the file name.
pub fn rotate_target(f: &Format, event: &[u8]) -> Option<Position> {
    let p = f.payload(event);
    let pos = u64::from_le_bytes(p.get(..8)?.try_into().ok()?);
    let file = String::from_utf8(p.get(8..)?.to_vec()).ok()?;
    Some(Position { file, pos })
}

/// Splits a binlog file (magic, then events) into events, each checked
/// against the file's format description; push-fed so a file streams
/// through in bounded memory.
pub struct Reader {
    buf: Vec<u8>,
    magic: bool,
    pub format: Option<Format>,
}

impl Default for Reader {
    fn default() -> Self {
        Reader::new()
    }
}

impl Reader {
    pub fn new() -> Reader {
        Reader {
            buf: Vec::new(),
            magic: false,
            format: None,
        }
    }

    /// Add bytes; calls `each` with every complete event (the format
    /// description first, which sets [`format`](Self::format)).
    pub fn push(
        &mut self,
        mut data: &[u8],
        each: &mut dyn FnMut(&Format, &[u8]) -> Result<()>,
    ) -> Result<()> {
        while !data.is_empty() {
            if !self.magic {
                let need = 4 - self.buf.len();
                let take = need.min(data.len());
                self.buf.extend_from_slice(&data[..take]);
                data = &data[take..];
                if self.buf.len() == 4 {
                    if self.buf != MAGIC {
                        return Err(damaged(
                            "a stored binlog file does not start with the binlog magic",
                        ));
                    }
                    self.magic = true;
                    self.buf.clear();
                }
                continue;
            }
            if self.buf.len() < HEADER {
                let take = (HEADER - self.buf.len()).min(data.len());
                self.buf.extend_from_slice(&data[..take]);
                data = &data[take..];
                continue;
            }
            let h =
                Header::parse(&self.buf).ok_or_else(|| damaged("a binlog event is cut short"))?;
            let size = h.size as usize;
            if !(HEADER..=MAX_EVENT).contains(&size) {
                return Err(damaged(format!(
                    "a stored binlog event claims {size} bytes"
                )));
            }
            let take = (size - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == size {
                let event = std::mem::take(&mut self.buf);
                self.event(&event, each)?;
                self.buf = event;
                self.buf.clear();
            }
        }
        Ok(())
    }

    fn event(
        &mut self,
        event: &[u8],
        each: &mut dyn FnMut(&Format, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let h = Header::parse(event).ok_or_else(|| damaged("a binlog event is cut short"))?;
        if h.kind == kind::FORMAT_DESCRIPTION {
            if self.format.is_some() {
                return Err(damaged(
                    "a stored binlog file has a second format description event",
                ));
            }
            self.format = Some(Format::parse(event)?);
        }
        let f = self.format.as_ref().ok_or_else(|| {
            damaged("a stored binlog file does not begin with a format description event")
        })?;
        f.check(event)?;
        each(f, event)
    }

    /// The end of the file: nothing may be left over.
    pub fn finish(&self) -> Result<()> {
        if !self.buf.is_empty() || !self.magic {
            return Err(damaged("a stored binlog file ends inside an event"));
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An event of `kind` with `payload`, ending at `log_pos`, with a CRC.
    pub fn event(kind: u8, timestamp: u32, log_pos: u32, payload: &[u8]) -> Vec<u8> {
        let mut e = Vec::new();
        e.extend_from_slice(&timestamp.to_le_bytes());
        e.push(kind);
        e.extend_from_slice(&1u32.to_le_bytes());
        let size = (HEADER + payload.len() + 4) as u32;
        e.extend_from_slice(&size.to_le_bytes());
        e.extend_from_slice(&log_pos.to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        e.extend_from_slice(payload);
        let sum = crc32fast::hash(&e);
        e.extend_from_slice(&sum.to_le_bytes());
        e
    }

    /// A format description as MySQL 8.0 writes it: binlog version 4,
    /// version string, created, header length 19, one post-header length
    /// per type (41 types in 8.0), CRC32. Written from the documented
    /// layout, not copied from a file.
    pub fn mysql8_format() -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&4u16.to_le_bytes());
        let mut v = b"8.0.36".to_vec();
        v.resize(50, 0);
        p.extend_from_slice(&v);
        p.extend_from_slice(&0u32.to_le_bytes());
        p.push(19);
        let mut post = vec![0u8; 41];
        post[usize::from(kind::QUERY) - 1] = 13;
        post[usize::from(kind::ROTATE) - 1] = 8;
        post[usize::from(kind::FORMAT_DESCRIPTION) - 1] = 98;
        post[usize::from(kind::TABLE_MAP) - 1] = 8;
        for k in [kind::WRITE_ROWS, kind::UPDATE_ROWS, kind::DELETE_ROWS] {
            post[usize::from(k) - 1] = 10;
        }
        post[usize::from(kind::GTID) - 1] = 42;
        post[usize::from(kind::TRANSACTION_PAYLOAD) - 1] = 40;
        p.extend_from_slice(&post);
        p.push(1);
        event(kind::FORMAT_DESCRIPTION, 0, 0, &p)
    }

    /// A binlog file in MySQL 8's layouts (format description, GTID,
    /// BEGIN, table map, write rows, XID, DDL): a fuzzing seed.
    pub fn seed_file() -> Vec<u8> {
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&mysql8_format());
        let mut g = vec![1u8];
        g.extend_from_slice(&[7; 16]);
        g.extend_from_slice(&5i64.to_le_bytes());
        g.extend_from_slice(&[0; 17]);
        file.extend_from_slice(&event(kind::GTID, 1, 200, &g));
        file.extend_from_slice(&query_event(b"shop", b"BEGIN"));
        let mut m = vec![9, 0, 0, 0, 0, 0, 1, 0];
        m.extend_from_slice(b"\x04shop\x00\x01t\x00\x02\x03\x0f\x02\x14\x00\x02");
        file.extend_from_slice(&event(kind::TABLE_MAP, 1, 300, &m));
        let mut w = vec![9, 0, 0, 0, 0, 0, 1, 0, 2, 0, 2, 0xff, 0xfc];
        w.extend_from_slice(&1i32.to_le_bytes());
        w.extend_from_slice(b"\x01a");
        file.extend_from_slice(&event(kind::WRITE_ROWS, 1, 400, &w));
        file.extend_from_slice(&event(kind::XID, 1, 431, &77u64.to_le_bytes()));
        file.extend_from_slice(&query_event(b"shop", b"ALTER TABLE t ADD c INT"));
        file
    }

    #[test]
    fn the_seed_file_reads_whole() {
        let file = seed_file();
        let mut r = Reader::new();
        let mut kinds = Vec::new();
        r.push(&file, &mut |_, e| {
            kinds.push(Header::parse(e).unwrap().kind);
            Ok(())
        })
        .unwrap();
        r.finish().unwrap();
        assert_eq!(kinds.len(), 7);
        crate::fuzzing::binlog_file(&file);
    }

    #[test]
    fn a_mysql8_format_description_and_crc_check() {
        let fde = mysql8_format();
        let f = Format::parse(&fde).unwrap();
        assert!(f.checksum);
        assert_eq!(f.server_version, "8.0.36");
        assert_eq!(f.post_header(kind::TABLE_MAP), 8);
        assert_eq!(f.post_header(kind::WRITE_ROWS), 10);
        let mut bad = fde.clone();
        bad[30] ^= 1;
        assert!(Format::parse(&bad).is_err());
    }

    #[test]
    fn a_mysql8_gtid_event_names_its_transaction() {
        let f = Format::parse(&mysql8_format()).unwrap();
        // flags, uuid, gno, then the logical clock and times (not read).
        let mut p = vec![1u8];
        let uuid: Vec<u8> = (1..=16).collect();
        p.extend_from_slice(&uuid);
        p.extend_from_slice(&42i64.to_le_bytes());
        p.extend_from_slice(&[2; 17]);
        let e = event(kind::GTID, 1_700_000_000, 500, &p);
        f.check(&e).unwrap();
        assert_eq!(
            Gtid::parse(&f, &e).unwrap().to_string(),
            "01020304-0506-0708-090a-0b0c0d0e0f10:42"
        );
    }

    #[test]
    fn a_mysql8_payload_event_ends_a_transaction() {
        let f = Format::parse(&mysql8_format()).unwrap();
        let mut t = Transactions::default();
        let begin = query_event(b"", b"BEGIN");
        assert_eq!(t.feed(&f, &begin), Boundary::Inside);
        assert!(!t.at_safe_point());
        let payload = event(kind::TRANSACTION_PAYLOAD, 1, 900, &[0; 50]);
        assert_eq!(t.feed(&f, &payload), Boundary::Commit);
        assert!(t.at_safe_point());
        assert_eq!(
            t.feed(&f, &query_event(b"d", b"CREATE TABLE t (a int)")),
            Boundary::Commit
        );
    }

    pub fn query_event(db: &[u8], sql: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&7u32.to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes());
        p.push(db.len() as u8);
        p.extend_from_slice(&0u16.to_le_bytes());
        p.extend_from_slice(&0u16.to_le_bytes());
        p.extend_from_slice(db);
        p.push(0);
        p.extend_from_slice(sql);
        event(kind::QUERY, 1, 100, &p)
    }

    #[test]
    fn a_table_map_names_its_table_and_can_name_another_database() {
        let f = Format::parse(&mysql8_format()).unwrap();
        let mut p = vec![9, 0, 0, 0, 0, 0, 1, 0];
        p.extend_from_slice(b"\x04clin\x00\x08patients\x00\x02\x03\x0f");
        let e = event(kind::TABLE_MAP, 1, 300, &p);
        let m = TableMap::parse(&f, &e).unwrap();
        assert_eq!(
            (m.table_id, m.database, m.table),
            (9, &b"clin"[..], &b"patients"[..])
        );
        let moved = m.with_database(&f, &e, "staging_db").unwrap();
        f.check(&moved).unwrap();
        let m2 = TableMap::parse(&f, &moved).unwrap();
        assert_eq!(
            (m2.table_id, m2.database, m2.table),
            (9, &b"staging_db"[..], &b"patients"[..])
        );
        assert!(f.payload(&moved).ends_with(b"\x02\x03\x0f"));
    }

    #[test]
    fn gtid_sets_of_both_flavours() {
        let m: GtidSet = "0-1-105, 1-2-7,0-1-100".parse().unwrap();
        assert_eq!(m.ends().len(), 2);
        assert!(GtidSet::reaches(
            &m.ends()[0],
            &Gtid::Maria {
                domain: 0,
                server: 9,
                seq: 105
            }
        ));
        assert!(!GtidSet::reaches(
            &m.ends()[0],
            &Gtid::Maria {
                domain: 0,
                server: 1,
                seq: 104
            }
        ));
        let y: GtidSet = "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-77:80"
            .parse()
            .unwrap();
        let end = &y.ends()[0];
        assert_eq!(end.to_string(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:80");
        for bad in [
            "",
            "0-1",
            "x-1-2",
            "3E11FA47:1",
            "3E11FA47-71CA-11E1-9E33-C80AA9429562:5-2",
        ] {
            assert!(bad.parse::<GtidSet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn positions_past_4_gib_and_left_out_events() {
        assert_eq!(unwrap_pos(100, 150, 50), 150);
        // An annotate-rows event the stream left out: a gap.
        assert_eq!(unwrap_pos(100, 228, 50), 228);
        // Past 4 GiB the header wraps.
        let prev = (1u64 << 32) - 10;
        assert_eq!(unwrap_pos(prev, 40, 50), (1u64 << 32) + 40);
        assert_eq!(unwrap_pos((1 << 32) + 40, 90, 50), (1 << 32) + 90);
    }

    #[test]
    fn statements_that_shape_transactions_are_told_apart() {
        use Statement as S;
        assert_eq!(S::of(b"BEGIN"), S::Begin);
        assert_eq!(S::of(b"COMMIT"), S::Commit);
        assert_eq!(S::of(b"ROLLBACK"), S::Rollback);
        assert_eq!(S::of(b"ROLLBACK TO `s1`"), S::RollbackTo(b"s1".to_vec()));
        assert_eq!(
            S::of(b"ROLLBACK TO SAVEPOINT `a``b`"),
            S::RollbackTo(b"a`b".to_vec())
        );
        assert_eq!(S::of(b"SAVEPOINT s_2"), S::Savepoint(b"s_2".to_vec()));
        assert_eq!(S::of(b"SAVEPOINT `x`; DROP TABLE t"), S::Other);
        assert_eq!(S::of(b"XA ROLLBACK 'x1'"), S::XaRollback(b"'x1'".to_vec()));
        assert_eq!(
            S::of(b"XA COMMIT 'x1' ONE PHASE"),
            S::XaCommit(b"'x1'".to_vec(), true)
        );
        assert_eq!(S::of(b"XA START 'x1'"), S::XaStart(b"'x1'".to_vec()));
        assert_eq!(S::of(b"COMMIT AND CHAIN"), S::Other);
        assert_eq!(S::of(b"ROLLBACKx"), S::Other);
        assert_eq!(S::of(b"CREATE TABLE t (a int)"), S::Other);
    }

    #[test]
    fn positions_order_within_one_log_and_refuse_odd_names() {
        let p = |f: &str, n| Position {
            file: f.into(),
            pos: n,
        };
        assert_eq!(
            p("bin.000009", 900).cmp_in_log(&p("bin.000010", 4)),
            Some(std::cmp::Ordering::Less)
        );
        assert_eq!(p("bin.000010", 900).cmp_in_log(&p("other.000010", 4)), None);
        assert!(p("bin.000001", 4).check().is_ok());
        for bad in ["../x.1", "bin", "a b.1", "bin.0001\0"] {
            assert!(p(bad, 4).check().is_err(), "{bad}");
        }
        assert!(p("bin.000001", 3).check().is_err());
    }

    #[test]
    fn the_reader_checks_magic_format_and_crc() {
        let fde = mysql8_format();
        let q = query_event(b"d", b"DROP TABLE t");
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&fde);
        file.extend_from_slice(&q);
        // One byte at a time and whole give the same events.
        for step in [1, 7, file.len()] {
            let mut r = Reader::new();
            let mut seen = Vec::new();
            for c in file.chunks(step) {
                r.push(c, &mut |_, e| {
                    seen.push(Header::parse(e).unwrap().kind);
                    Ok(())
                })
                .unwrap();
            }
            r.finish().unwrap();
            assert_eq!(seen, vec![kind::FORMAT_DESCRIPTION, kind::QUERY]);
        }
        let mut bad = file.clone();
        let n = bad.len();
        bad[n - 6] ^= 0x40;
        let mut r = Reader::new();
        assert!(r.push(&bad, &mut |_, _| Ok(())).is_err());
        let mut r = Reader::new();
        r.push(&file[..file.len() - 3], &mut |_, _| Ok(())).unwrap();
        assert!(r.finish().is_err());
    }
}
