//! The dump's own MySQL client: the classic protocol over a blocking socket
//! (TCP, or TLS through rustls), text-protocol queries only, every row
//! handed to the caller as slices of one receive buffer.
//!
//! Why not sqlx here: the dump reads every row of the database, and sqlx's
//! row path (two nested async streams, a row object and a shared buffer
//! handle per row) cost about 300 ns a row, a third of the dump's client
//! CPU (docs/BENCHMARKS.md). This reader parses the packets where they lie.
//!
//! Replay and its read-back check use it too, for another reason: every
//! statement a replay sends comes from a snapshot, which a compromised
//! backup host can forge. sqlx always announces `CLIENT_MULTI_STATEMENTS`
//! (not configurable), so `a; b` would run two statements; this client never
//! does, so the server itself refuses anything after the first statement
//! (a syntax error), whatever lifeboat's own checks (`guard`) missed.
//!
//! What it speaks, and what it deliberately does not:
//! - handshake v10 with `CLIENT_PROTOCOL_41`; TLS by `SSLRequest`, with the
//!   same verification modes as sqlx (see [`SslMode`]);
//! - `mysql_native_password` and `caching_sha2_password` (fast path, and
//!   the full login over TLS); a full login without TLS, which needs the
//!   server's RSA key, is refused with what to do;
//! - `COM_QUERY` with one statement (no `CLIENT_MULTI_STATEMENTS`: a
//!   statement can never smuggle a second one; no `CLIENT_LOCAL_FILES`: the
//!   server cannot ask for a client file, and a request is refused anyway),
//!   EOF-terminated results; an OK or EOF packet announcing more results
//!   (which only a second statement could produce) is an error;
//! - packets of 16 MiB and more (a row with a big BLOB) are joined.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use lifeboat_store::secrecy::ExposeSecret;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::connect::{MysqlOptions, SslMode};
use crate::error::{Error, Result};

const LONG_PASSWORD: u32 = 1;
const LONG_FLAG: u32 = 4;
const PROTOCOL_41: u32 = 0x200;
const SSL: u32 = 0x800;
const TRANSACTIONS: u32 = 0x2000;
const SECURE_CONNECTION: u32 = 0x8000;
const MULTI_RESULTS: u32 = 0x2_0000;
const PLUGIN_AUTH: u32 = 0x8_0000;
const PLUGIN_AUTH_LENENC_DATA: u32 = 0x20_0000;
/// Never announced: `CLIENT_LOCAL_FILES` and `CLIENT_MULTI_STATEMENTS`.
#[cfg(test)]
pub(crate) const NEVER: u32 = 0x80 | 0x1_0000;
/// `SERVER_MORE_RESULTS_EXISTS` in an OK or EOF packet's status.
const MORE_RESULTS: u16 = 0x0008;
/// utf8mb4_general_ci, as sqlx announces it.
const UTF8MB4: u8 = 45;
const MAX_PACKET: u32 = 1 << 30;
/// A payload of this length continues in the next packet.
const FULL: usize = 0xFF_FFFF;
/// How long a read or write may wait.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);
/// Receive buffer: reads of this size keep system calls few.
const READ_SIZE: usize = 256 * 1024;

enum Io {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    /// A recorded server's replies (fuzzing): read from them, writes dropped.
    Replay(std::io::Cursor<Vec<u8>>),
    /// While the socket moves into a TLS stream, or after that failed.
    Gone,
}

fn gone() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotConnected, "no connection")
}

impl Io {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Io::Plain(s) => s.read(buf),
            Io::Tls(s) => s.read(buf),
            Io::Replay(c) => c.read(buf),
            Io::Gone => Err(gone()),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Io::Plain(s) => s.write_all(buf),
            Io::Tls(s) => s.write_all(buf).and_then(|()| s.flush()),
            Io::Replay(_) => Ok(()),
            Io::Gone => Err(gone()),
        }
    }
}

/// Where a packet's payload lies: in the receive buffer, or joined in
/// `big` when it came in several packets.
#[derive(Clone, Copy)]
struct Payload {
    big: bool,
    start: usize,
    len: usize,
}

/// One row of a result: its fields as slices of the packet.
pub(crate) struct Row<'a> {
    data: &'a [u8],
    fields: &'a [Option<(usize, usize)>],
}

impl<'a> Row<'a> {
    /// Field `i` (`None` for NULL or past the end).
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        let (s, e) = (*self.fields.get(i)?)?;
        Some(&self.data[s..e])
    }

    /// How many fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }
}

/// A connection.
pub(crate) struct Conn {
    io: Io,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    big: Vec<u8>,
    /// Outgoing packets, kept between queries.
    out: Vec<u8>,
    seq: u8,
    /// The capabilities this client announced at login.
    caps: u32,
    /// The server's version string from the handshake.
    pub server_version: String,
    /// `user@host:port`, for messages.
    who: String,
}

fn protocol(what: &str, why: impl std::fmt::Display) -> Error {
    Error::Wire {
        what: what.to_string(),
        why: why.to_string(),
    }
}

impl Conn {
    /// Connect and log in as `opts` says, then set the session as sqlx does
    /// for the rest of lifeboat: UTC time zone, utf8mb4.
    pub fn connect(opts: &MysqlOptions) -> Result<Conn> {
        let t = opts.target()?;
        let who = t.display();
        let what = format!("connecting to {who}");
        let tcp = TcpStream::connect((t.host.as_str(), t.port)).map_err(|e| {
            protocol(
                &what,
                format!("{e} (is the server up and the host and port right?)"),
            )
        })?;
        let _ = tcp.set_nodelay(true);
        // A server that stops answering is an error, not a backup hanging
        // for ever: as long as the server itself waits on a stalled client
        // (the session's net_write_timeout, set to an hour by the dump).
        let _ = tcp.set_read_timeout(Some(READ_TIMEOUT));
        let _ = tcp.set_write_timeout(Some(READ_TIMEOUT));
        let mut c = Conn::over(Io::Plain(tcp), READ_SIZE, who.clone());
        c.login(opts, &t.host, &t.user).map_err(|e| match e {
            Error::Wire { why, .. } => protocol(&what, why),
            e => e,
        })?;
        c.execute("SET time_zone='+00:00', NAMES utf8mb4 COLLATE utf8mb4_general_ci")?;
        Ok(c)
    }

    /// A connection whose server says `replies` (its packets, as sent after
    /// a query), for fuzzing the reader.
    pub(crate) fn replaying(replies: Vec<u8>) -> Conn {
        Conn::over(
            Io::Replay(std::io::Cursor::new(replies)),
            4096,
            "fuzz".into(),
        )
    }

    /// A connection over `io`, not yet logged in.
    fn over(io: Io, buffer: usize, who: String) -> Conn {
        Conn {
            io,
            buf: vec![0; buffer],
            start: 0,
            end: 0,
            big: Vec::new(),
            out: Vec::new(),
            seq: 0,
            caps: 0,
            server_version: String::new(),
            who,
        }
    }

    fn login(&mut self, opts: &MysqlOptions, host: &str, user: &str) -> Result<()> {
        let what = "handshake";
        let p = self.packet(what)?;
        let hs = self.bytes(p).to_vec();
        if hs.first() == Some(&0xFF) {
            return Err(server_error(what, &hs));
        }
        let hs = Handshake::parse(&hs)
            .ok_or_else(|| protocol(what, "the server's greeting is not a MySQL handshake"))?;
        self.server_version = hs.version.clone();
        let mode = opts.ssl_mode.unwrap_or(if opts.ca_file.is_some() {
            SslMode::VerifyCa
        } else {
            SslMode::Preferred
        });
        let server_tls = hs.caps & SSL != 0;
        let tls = match mode {
            SslMode::Disabled => false,
            SslMode::Preferred => server_tls,
            _ if server_tls => true,
            _ => {
                return Err(protocol(
                    what,
                    "the server does not offer TLS, and ssl_mode requires it",
                ))
            }
        };
        let mut caps = LONG_PASSWORD
            | LONG_FLAG
            | PROTOCOL_41
            | TRANSACTIONS
            | SECURE_CONNECTION
            | MULTI_RESULTS
            | PLUGIN_AUTH
            | PLUGIN_AUTH_LENENC_DATA;
        caps &= hs.caps | PROTOCOL_41;
        self.caps = caps;
        if tls {
            caps |= SSL;
            self.caps = caps;
            let mut req = Vec::with_capacity(32);
            req.extend_from_slice(&caps.to_le_bytes());
            req.extend_from_slice(&MAX_PACKET.to_le_bytes());
            req.push(UTF8MB4);
            req.extend_from_slice(&[0; 23]);
            self.send(what, &req)?;
            self.start_tls(opts, mode, host)?;
        }
        let password: &str = opts.password.as_ref().map_or("", |p| p.expose_secret());
        let mut plugin = hs.plugin.clone();
        let mut nonce = hs.nonce.clone();
        let auth = scramble(&plugin, password, &nonce)?;
        let mut resp = Vec::with_capacity(64 + user.len());
        resp.extend_from_slice(&caps.to_le_bytes());
        resp.extend_from_slice(&MAX_PACKET.to_le_bytes());
        resp.push(UTF8MB4);
        resp.extend_from_slice(&[0; 23]);
        resp.extend_from_slice(user.as_bytes());
        resp.push(0);
        if caps & PLUGIN_AUTH_LENENC_DATA != 0 {
            put_lenenc(&mut resp, auth.len() as u64);
        } else {
            resp.push(auth.len() as u8);
        }
        resp.extend_from_slice(&auth);
        if caps & PLUGIN_AUTH != 0 {
            resp.extend_from_slice(plugin.as_bytes());
            resp.push(0);
        }
        self.send(what, &resp)?;
        loop {
            let p = self.packet(what)?;
            let pkt = self.bytes(p).to_vec();
            match pkt.first() {
                Some(0x00) => return Ok(()),
                Some(0xFF) => return Err(server_error("login", &pkt)),
                Some(0xFE) => {
                    // Auth switch: another plugin, a new nonce.
                    let rest = &pkt[1..];
                    let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
                    plugin = String::from_utf8_lossy(&rest[..end]).into_owned();
                    let data = rest.get(end + 1..).unwrap_or_default();
                    nonce = data.strip_suffix(&[0]).unwrap_or(data).to_vec();
                    let auth = scramble(&plugin, password, &nonce)?;
                    self.send(what, &auth)?;
                }
                Some(0x01) if plugin == "caching_sha2_password" => match pkt.get(1) {
                    Some(0x03) => {} // fast login accepted; an OK follows
                    Some(0x04) if tls => {
                        let mut clear = password.as_bytes().to_vec();
                        clear.push(0);
                        self.send(what, &clear)?;
                    }
                    Some(0x04) => {
                        return Err(protocol(
                            what,
                            "caching_sha2_password wants a full login, which lifeboat only does over TLS: \
                             set ssl_mode to required, verify-ca or verify-identity",
                        ))
                    }
                    _ => return Err(protocol(what, "unexpected caching_sha2_password message")),
                },
                _ => return Err(protocol(what, format!("unexpected packet during login ({plugin})"))),
            }
        }
    }

    fn start_tls(&mut self, opts: &MysqlOptions, mode: SslMode, host: &str) -> Result<()> {
        let what = "starting TLS";
        let _ = rustls::crypto::ring::default_provider().install_default();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| protocol(what, e))?;
        let config = match mode {
            SslMode::VerifyCa | SslMode::VerifyIdentity => {
                let mut roots =
                    RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                if let Some(ca) = &opts.ca_file {
                    let pem = std::fs::read(ca).map_err(|e| {
                        protocol(what, format!("reading the CA file {}: {e}", ca.display()))
                    })?;
                    for cert in CertificateDer::pem_slice_iter(&pem) {
                        let cert = cert.map_err(|e| {
                            protocol(
                                what,
                                format!(
                                    "the CA file {} is not PEM certificates: {e}",
                                    ca.display()
                                ),
                            )
                        })?;
                        roots.add(cert).map_err(|e| protocol(what, e))?;
                    }
                }
                if mode == SslMode::VerifyIdentity {
                    builder.with_root_certificates(roots).with_no_client_auth()
                } else {
                    let chain = WebPkiServerVerifier::builder_with_provider(
                        Arc::new(roots),
                        provider.clone(),
                    )
                    .build()
                    .map_err(|e| protocol(what, e))?;
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(Lenient {
                            chain: Some(chain),
                            provider,
                        }))
                        .with_no_client_auth()
                }
            }
            _ => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Lenient {
                    chain: None,
                    provider,
                }))
                .with_no_client_auth(),
        };
        let name = ServerName::try_from(host.to_string()).map_err(|e| protocol(what, e))?;
        let conn =
            rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| protocol(what, e))?;
        let Io::Plain(tcp) = std::mem::replace(&mut self.io, Io::Gone) else {
            return Err(protocol(what, "TLS started twice"));
        };
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| protocol(what, format!("{e} (check the CA file and ssl_mode)")))?;
        }
        self.io = Io::Tls(Box::new(tls));
        Ok(())
    }

    /// Make sure `need` bytes from `start` are in the buffer.
    fn fill(&mut self, need: usize, what: &str) -> Result<()> {
        while self.end - self.start < need {
            if self.start + need > self.buf.len() {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                if need > self.buf.len() {
                    self.buf.resize(need.next_power_of_two(), 0);
                }
            }
            let want = (self.buf.len() - self.end).min(READ_SIZE.max(need));
            let n = self
                .io
                .read(&mut self.buf[self.end..self.end + want])
                .map_err(|e| {
                    protocol(what, format!("{e} (the connection to {} failed)", self.who))
                })?;
            if n == 0 {
                return Err(protocol(
                    what,
                    format!(
                        "the server closed the connection ({} went away or the session was killed)",
                        self.who
                    ),
                ));
            }
            self.end += n;
        }
        Ok(())
    }

    /// The next packet (joined when it spans several).
    fn packet(&mut self, what: &str) -> Result<Payload> {
        let mut first = true;
        loop {
            self.fill(4, what)?;
            let h = &self.buf[self.start..self.start + 4];
            let len = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
            if h[3] != self.seq {
                return Err(protocol(what, "packets out of order"));
            }
            self.seq = self.seq.wrapping_add(1);
            self.fill(4 + len, what)?;
            let start = self.start + 4;
            self.start += 4 + len;
            if first && len < FULL {
                return Ok(Payload {
                    big: false,
                    start,
                    len,
                });
            }
            if first {
                self.big.clear();
                first = false;
            }
            if self.big.len() + len > MAX_PACKET as usize {
                return Err(protocol(
                    what,
                    "the server sent a packet over 1 GiB (the limit this client announced)",
                ));
            }
            // Copy out before the next fill moves the buffer.
            let chunk = start..start + len;
            self.big.extend_from_slice(&self.buf[chunk]);
            if len < FULL {
                return Ok(Payload {
                    big: true,
                    start: 0,
                    len: self.big.len(),
                });
            }
        }
    }

    fn bytes(&self, p: Payload) -> &[u8] {
        if p.big {
            &self.big[p.start..p.start + p.len]
        } else {
            &self.buf[p.start..p.start + p.len]
        }
    }

    fn send(&mut self, what: &str, payload: &[u8]) -> Result<()> {
        self.send_parts(what, None, payload)
    }

    /// Send `head` (one byte, if any) and `payload` as one logical packet,
    /// cut into 16 MiB pieces, copied once into the reused output buffer.
    fn send_parts(&mut self, what: &str, head: Option<u8>, payload: &[u8]) -> Result<()> {
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let total = payload.len() + usize::from(head.is_some());
        out.reserve(total + 4 * (total / FULL + 1));
        let mut head = head;
        let mut rest = payload;
        loop {
            let n = (rest.len() + usize::from(head.is_some())).min(FULL);
            out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
            out.push(self.seq);
            self.seq = self.seq.wrapping_add(1);
            let mut take = n;
            if let Some(h) = head.take() {
                out.push(h);
                take -= 1;
            }
            out.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if n < FULL {
                break;
            }
        }
        let r = self
            .io
            .write_all(&out)
            .map_err(|e| protocol(what, format!("{e} (the connection to {} failed)", self.who)));
        // Keep a modest buffer, not the biggest statement ever sent.
        if out.capacity() <= 8 << 20 {
            self.out = out;
        }
        r
    }

    /// Send a query; returns the column count (0: no result set).
    fn query(&mut self, sql: &[u8], what: &str) -> Result<usize> {
        self.seq = 0;
        self.send_parts(what, Some(3), sql)?; // COM_QUERY
        let p = self.packet(what)?;
        let head = self.bytes(p);
        match head.first() {
            Some(0x00) => {
                let mut i = 1;
                let _affected = lenenc(head, &mut i);
                let _insert_id = lenenc(head, &mut i);
                let status = head
                    .get(i..i + 2)
                    .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]));
                if status & MORE_RESULTS != 0 {
                    return Err(more_results(what));
                }
                Ok(0)
            }
            Some(0xFF) => Err(server_error(what, head)),
            Some(0xFB) => Err(protocol(what, "the server asked for a local file; refused")),
            _ => {
                let mut i = 0;
                let n = lenenc(head, &mut i).ok_or_else(|| protocol(what, "bad column count"))?;
                // Column definitions, then EOF.
                for _ in 0..n {
                    self.packet(what)?;
                }
                let p = self.packet(what)?;
                if !is_eof(self.bytes(p)) {
                    return Err(protocol(what, "no EOF after the columns"));
                }
                usize::try_from(n).map_err(|_| protocol(what, "bad column count"))
            }
        }
    }

    /// Run `sql`, calling `each` with every row; returns the row count.
    /// An error from `each` stops reading (the connection is then unusable).
    pub fn stream(
        &mut self,
        sql: &str,
        each: &mut dyn FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<u64> {
        let what = crate::schema::short(sql);
        let n = self.query(sql.as_bytes(), &what)?;
        if n == 0 {
            return Ok(0);
        }
        let mut fields = Vec::with_capacity(n);
        let mut rows = 0u64;
        loop {
            let p = self.packet(&what)?;
            let data = self.bytes(p);
            if is_eof(data) {
                let status = data
                    .get(3..5)
                    .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]));
                if status & MORE_RESULTS != 0 {
                    return Err(more_results(&what));
                }
                return Ok(rows);
            }
            if data.first() == Some(&0xFF) {
                return Err(server_error(&what, data));
            }
            fields.clear();
            let mut i = 0;
            for _ in 0..n {
                if data.get(i) == Some(&0xFB) {
                    i += 1;
                    fields.push(None);
                    continue;
                }
                let len =
                    lenenc(data, &mut i).ok_or_else(|| protocol(&what, "a row is cut short"))?;
                let end = usize::try_from(len)
                    .ok()
                    .and_then(|l| i.checked_add(l))
                    .filter(|e| *e <= data.len())
                    .ok_or_else(|| protocol(&what, "a row is cut short"))?;
                fields.push(Some((i, end)));
                i = end;
            }
            each(&Row {
                data,
                fields: &fields,
            })?;
            rows += 1;
        }
    }

    /// Run a statement, discarding any rows.
    pub fn execute(&mut self, sql: &str) -> Result<()> {
        self.stream(sql, &mut |_| Ok(())).map(|_| ())
    }

    /// Run one statement that returns no rows (DDL, INSERT, SET), given as
    /// bytes (row data need not be UTF-8); `what` names it in errors. The
    /// server's error comes back with its code and message. A statement
    /// that returns rows is an error (nothing replay sends does).
    pub fn execute_bytes(&mut self, sql: &[u8], what: &str) -> Result<()> {
        match self.query(sql, what)? {
            0 => Ok(()),
            _ => {
                // Drain the rows so the connection stays usable, then refuse.
                loop {
                    let p = self.packet(what)?;
                    let data = self.bytes(p);
                    if is_eof(data) || data.first() == Some(&0xFF) {
                        break;
                    }
                }
                Err(protocol(what, "the statement returned rows; expected none"))
            }
        }
    }

    /// How long a read may wait before the connection counts as lost
    /// (a following binlog dump gets a heartbeat every second).
    pub fn set_read_timeout(&mut self, d: std::time::Duration) {
        let _ = match &self.io {
            Io::Plain(s) => s.set_read_timeout(Some(d)),
            Io::Tls(s) => s.sock.set_read_timeout(Some(d)),
            Io::Replay(_) | Io::Gone => Ok(()),
        };
    }

    /// Ask the server for its binary log from `file` at `pos`, as a
    /// replica does (`COM_BINLOG_DUMP`), under `server_id` (which must
    /// differ from every replica's: the server drops an older connection
    /// with the same id). With `non_block` the server ends the stream with
    /// an EOF packet once it has sent everything it has; otherwise it waits
    /// for new events. Read them with [`binlog_event`](Self::binlog_event).
    pub fn binlog_dump(
        &mut self,
        file: &str,
        pos: u32,
        server_id: u32,
        non_block: bool,
    ) -> Result<()> {
        let mut p = Vec::with_capacity(10 + file.len());
        p.extend_from_slice(&pos.to_le_bytes());
        p.extend_from_slice(&u16::from(non_block).to_le_bytes());
        p.extend_from_slice(&server_id.to_le_bytes());
        p.extend_from_slice(file.as_bytes());
        self.seq = 0;
        self.send_parts("requesting the binary log", Some(0x12), &p)
    }

    /// The next event of a binlog stream (header, body and checksum, as the
    /// server sent it), or `None` when a non-blocking stream has caught up.
    /// A server error (a purged file, a missing privilege) is an error with
    /// the server's code and message.
    pub fn binlog_event(&mut self) -> Result<Option<&[u8]>> {
        let what = "reading the binary log";
        let p = self.packet(what)?;
        // Each packet of a dump has its own sequence; the next one follows.
        let data = self.bytes(p);
        match data.first() {
            Some(0x00) => Ok(Some(&data[1..])),
            Some(0xFE) if data.len() < 9 => Ok(None),
            Some(0xFF) => Err(server_error(what, data)),
            _ => Err(protocol(
                what,
                "a packet that is neither an event, EOF nor an error",
            )),
        }
    }

    /// The capabilities this client announced (tests check that
    /// `CLIENT_MULTI_STATEMENTS` and `CLIENT_LOCAL_FILES` are not among them).
    #[cfg(test)]
    pub fn announced(&self) -> u32 {
        self.caps
    }

    /// Every row of `sql` as text (binary values lossily).
    pub fn text_rows(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        let mut out = Vec::new();
        self.stream(sql, &mut |r| {
            out.push(
                (0..r.len())
                    .map(|i| r.get(i).map(|b| String::from_utf8_lossy(b).into_owned()))
                    .collect(),
            );
            Ok(())
        })?;
        Ok(out)
    }

    /// The first value of the first row, or an empty string.
    pub fn text_value(&mut self, sql: &str) -> Result<String> {
        Ok(self
            .text_rows(sql)?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
            .unwrap_or_default())
    }
}

fn more_results(what: &str) -> Error {
    protocol(
        what,
        "the server announced more results than one statement gives; refused",
    )
}

fn is_eof(p: &[u8]) -> bool {
    p.first() == Some(&0xFE) && p.len() < 9
}

/// `ERR` packet: `error CODE (STATE): message`.
fn server_error(what: &str, p: &[u8]) -> Error {
    let code = p.get(1..3).map_or(0, |c| u16::from_le_bytes([c[0], c[1]]));
    let rest = p.get(3..).unwrap_or_default();
    let (state, msg) = match rest.strip_prefix(b"#") {
        Some(r) if r.len() >= 5 => (String::from_utf8_lossy(&r[..5]).into_owned(), &r[5..]),
        _ => (String::new(), rest),
    };
    protocol(
        what,
        format!("error {code} ({state}): {}", String::from_utf8_lossy(msg)),
    )
}

/// A length-encoded integer at `*i` (`None` past the end or for NULL's 0xFB).
fn lenenc(b: &[u8], i: &mut usize) -> Option<u64> {
    let c = *b.get(*i)?;
    let width = match c {
        0xFB | 0xFF => return None,
        0xFC => 2,
        0xFD => 3,
        0xFE => 8,
        c => {
            *i += 1;
            return Some(u64::from(c));
        }
    };
    let bytes = b.get(*i + 1..*i + 1 + width)?;
    *i += 1 + width;
    let mut v = [0u8; 8];
    v[..width].copy_from_slice(bytes);
    Some(u64::from_le_bytes(v))
}

fn put_lenenc(out: &mut Vec<u8>, v: u64) {
    match v {
        0..=250 => out.push(v as u8),
        251..=0xFFFF => {
            out.push(0xFC);
            out.extend_from_slice(&(v as u16).to_le_bytes());
        }
        0x1_0000..=0xFF_FFFF => {
            out.push(0xFD);
            out.extend_from_slice(&(v as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xFE);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// Fuzzing entry points into the protocol reader (see `crate::fuzzing`).
pub(crate) mod fuzzing {
    use super::{Conn, Handshake};

    /// `replies` as a server's answer to a query, read as rows, and as a
    /// statement that returns none; and as a greeting.
    pub fn replies(replies: &[u8]) {
        let _ = Handshake::parse(replies);
        let mut conn = Conn::replaying(replies.to_vec());
        let mut total = 0usize;
        let _ = conn.stream("SELECT 1", &mut |row| {
            for i in 0..row.len() {
                total += row.get(i).map_or(0, <[u8]>::len);
            }
            Ok(())
        });
        let mut conn = Conn::replaying(replies.to_vec());
        let _ = conn.execute_bytes(b"DO 1", "fuzz");
    }
}

/// The server's greeting.
struct Handshake {
    version: String,
    caps: u32,
    nonce: Vec<u8>,
    plugin: String,
}

impl Handshake {
    fn parse(p: &[u8]) -> Option<Handshake> {
        if *p.first()? != 10 {
            return None;
        }
        let vend = 1 + p.get(1..)?.iter().position(|b| *b == 0)?;
        let version = String::from_utf8_lossy(&p[1..vend]).into_owned();
        let mut i = vend + 1 + 4; // connection id
        let mut nonce = p.get(i..i + 8)?.to_vec();
        i += 8 + 1;
        let lo = u16::from_le_bytes([*p.get(i)?, *p.get(i + 1)?]);
        i += 2;
        let mut caps = u32::from(lo);
        let mut plugin = "mysql_native_password".to_string();
        if p.len() > i {
            i += 1 + 2; // charset, status
            let hi = u16::from_le_bytes([*p.get(i)?, *p.get(i + 1)?]);
            caps |= u32::from(hi) << 16;
            i += 2;
            let data_len = usize::from(*p.get(i)?);
            i += 1 + 10;
            if caps & SECURE_CONNECTION != 0 {
                let n = data_len.saturating_sub(8).max(13);
                let part = p.get(i..(i + n).min(p.len()))?;
                nonce.extend_from_slice(part.strip_suffix(&[0]).unwrap_or(part));
                i += n;
            }
            if caps & PLUGIN_AUTH != 0 {
                if let Some(rest) = p.get(i..) {
                    let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
                    if end > 0 {
                        plugin = String::from_utf8_lossy(&rest[..end]).into_owned();
                    }
                }
            }
        }
        Some(Handshake {
            version,
            caps,
            nonce,
            plugin,
        })
    }
}

/// The login response for `plugin`.
fn scramble(plugin: &str, password: &str, nonce: &[u8]) -> Result<Vec<u8>> {
    if password.is_empty() {
        return Ok(Vec::new());
    }
    match plugin {
        "mysql_native_password" => Ok(xor_scramble::<Sha1>(password, nonce, true)),
        "caching_sha2_password" => Ok(xor_scramble::<Sha256>(password, nonce, false)),
        other => Err(protocol(
            "login",
            format!(
                "the server wants the {other} login plugin, which lifeboat's dump does not speak; \
                 give the backup user mysql_native_password or caching_sha2_password"
            ),
        )),
    }
}

/// `H(password) XOR H(nonce, H(H(password)))`: mysql_native_password with
/// SHA-1 (`nonce_first`), and caching_sha2_password's fast path with
/// SHA-256, which hashes `H(H(password))` before the nonce.
fn xor_scramble<D: Digest>(password: &str, nonce: &[u8], nonce_first: bool) -> Vec<u8> {
    let h1 = D::digest(password.as_bytes());
    let h2 = D::digest(&h1);
    let mut d = D::new();
    if nonce_first {
        d.update(nonce);
        d.update(&h2);
    } else {
        d.update(&h2);
        d.update(nonce);
    }
    let h3 = d.finalize();
    h1.iter().zip(h3.iter()).map(|(a, b)| a ^ b).collect()
}

/// The certificate check of `verify-ca` (`chain`: the chain against the
/// roots, any name) and of `required` / `preferred` (no `chain`: any
/// certificate). The handshake's signatures are checked either way, with
/// the provider's algorithms (what the webpki verifier uses too).
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            r => r,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_encode_and_decode_at_every_width() {
        for v in [
            0u64,
            1,
            250,
            251,
            0xFFFF,
            0x1_0000,
            0xFF_FFFF,
            0x100_0000,
            u64::MAX,
        ] {
            let mut b = Vec::new();
            put_lenenc(&mut b, v);
            let mut i = 0;
            assert_eq!(lenenc(&b, &mut i), Some(v), "{v}");
            assert_eq!(i, b.len());
            // Cut short: no value, no panic.
            let mut i = 0;
            if b.len() > 1 {
                assert_eq!(lenenc(&b[..b.len() - 1], &mut i), None);
            }
        }
        assert_eq!(lenenc(&[0xFB], &mut 0), None);
    }

    /// What a server checks: from the reply and the stored hash it gets
    /// back H(password), whose hash must be the stored one.
    fn server_accepts<D: Digest>(
        reply: &[u8],
        password: &str,
        nonce: &[u8],
        nonce_first: bool,
    ) -> bool {
        let stored = D::digest(D::digest(password.as_bytes()));
        let mut d = D::new();
        if nonce_first {
            d.update(nonce);
            d.update(&stored);
        } else {
            d.update(&stored);
            d.update(nonce);
        }
        let mask = d.finalize();
        let h1: Vec<u8> = reply.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect();
        D::digest(&h1).as_slice() == stored.as_slice()
    }

    #[test]
    fn login_replies_are_what_the_servers_check() {
        let nonce = b"0123456789abcdefghij";
        let native = scramble("mysql_native_password", "s3cret", nonce).unwrap();
        assert_eq!(native.len(), 20);
        assert!(server_accepts::<Sha1>(&native, "s3cret", nonce, true));
        assert!(!server_accepts::<Sha1>(&native, "other", nonce, true));
        let sha2 = scramble("caching_sha2_password", "s3cret", nonce).unwrap();
        assert_eq!(sha2.len(), 32);
        assert!(server_accepts::<Sha256>(&sha2, "s3cret", nonce, false));
        assert!(scramble("mysql_native_password", "", nonce)
            .unwrap()
            .is_empty());
        let e = scramble("client_ed25519", "pw", nonce)
            .unwrap_err()
            .to_string();
        assert!(e.contains("client_ed25519") && !e.contains("pw\""), "{e}");
    }

    #[test]
    fn a_mariadb_greeting_parses() {
        // Version, id, nonce part 1, filler, caps lo, charset, status, caps
        // hi, nonce length, reserved, nonce part 2, plugin.
        let mut p = vec![10];
        p.extend_from_slice(b"10.11.19-MariaDB\0");
        p.extend_from_slice(&7u32.to_le_bytes());
        p.extend_from_slice(b"abcdefgh\0");
        let caps = PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH | SSL;
        p.extend_from_slice(&(caps as u16).to_le_bytes());
        p.push(45);
        p.extend_from_slice(&2u16.to_le_bytes());
        p.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
        p.push(21);
        p.extend_from_slice(&[0; 10]);
        p.extend_from_slice(b"ijklmnopqrst\0");
        p.extend_from_slice(b"mysql_native_password\0");
        let h = Handshake::parse(&p).unwrap();
        assert_eq!(h.version, "10.11.19-MariaDB");
        assert_eq!(h.nonce, b"abcdefghijklmnopqrst");
        assert_eq!(h.plugin, "mysql_native_password");
        assert_ne!(h.caps & SSL, 0);
        assert!(Handshake::parse(&p[..20]).is_none());
        assert!(Handshake::parse(b"\x09").is_none());
    }

    #[test]
    fn server_errors_name_code_state_and_message() {
        let mut p = vec![0xFF];
        p.extend_from_slice(&1317u16.to_le_bytes());
        p.extend_from_slice(b"#70100Query execution was interrupted");
        let e = server_error("SELECT", &p).to_string();
        assert!(
            e.contains("1317") && e.contains("70100") && e.contains("interrupted"),
            "{e}"
        );
    }
}
