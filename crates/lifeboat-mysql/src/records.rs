//! The row-hash records kept in the repository, so that a backup host with
//! an empty disk (a Render Cron Job, a fresh CI runner) still stores only
//! what changed. The local cache ([`crate::cache`]) is then only a faster
//! copy of them.
//!
//! Each snapshot's `mysql` state (a `state/` file, sealed to the metadata
//! recipient: the backup key reads it) lists, per table (keyed names, as on
//! the local disk), a chain of versions: a full copy of the table's cache
//! file, then deltas, each the next night's file expressed against the one
//! before. The versions' bytes are in state parts of at most
//! [`PART_BYTES`]. A delta holds, per segment, "the same as before", an
//! edit of the old row hashes, or a new record, so a scattered 1% change
//! costs a few bytes per changed row, not every hash again. Every version
//! records the SHA-256 of the cache file it gives: a host rebuilds the file
//! version by version and checks each, and a local file is used as the
//! base of a new delta only when its own sum says it is the stored one.
//!
//! Records hold keyed hashes and blob ids, no data. What they can never
//! do is make a snapshot wrong: a record is used only when its blob is in
//! the repository, and a segment is reused only when every row's keyed hash
//! is the same. A stale, foreign or damaged record costs bytes, never
//! correctness. Format: docs/FORMAT.md, "Row-hash records".

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use lifeboat_store::{Access, BackupSession, BlobId, Repository, Snapshot};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cache::{self, CacheNames, Segment};
use crate::schema::SOURCE;

/// The `kind` of the mysql state this module writes.
const KIND: &str = "row-hash-records";
const VERSION: u32 = 1;
const DELTA_MAGIC: &[u8; 4] = b"LBD1";
/// Plaintext bytes of one state part.
pub(crate) const PART_BYTES: usize = 8 << 20;
/// Versions in a chain (the full one included) before a full one again.
/// A full version costs 8 bytes a row (a quarter of the first backup of
/// the clinic database, whose rows are short), a night's delta after a
/// scattered 1% change about 1% of that; a host with an empty disk
/// applies every delta of the chain, one pass over the table's file each
/// (0.2 s for 60 MB). At 16: about 1.5% of the first backup a night for
/// the records, and at most 3 s of rebuilding at scale 1000.
const MAX_CHAIN: usize = 16;

/// [`PART_BYTES`] and [`MAX_CHAIN`], which a debug build's tests may lower
/// (`LIFEBOAT_TEST_RECORDS=PART_BYTES,MAX_CHAIN`) to cross part boundaries
/// and restart chains with little data.
fn limits() -> (usize, usize) {
    #[cfg(debug_assertions)]
    if let Some((p, c)) = std::env::var("LIFEBOAT_TEST_RECORDS").ok().and_then(|v| {
        v.split_once(',')
            .map(|(p, c)| (p.parse().ok(), c.parse().ok()))
    }) {
        if let (Some(p), Some(c)) = (p, c) {
            return (p, c);
        }
    }
    (PART_BYTES, MAX_CHAIN)
}
/// Rows a segment record may hold (the dump cuts at 32,768).
const MAX_HASHES: usize = 1 << 20;

const SAME: u8 = 1;
const EDIT: u8 = 2;
const FULL: u8 = 3;
const OP_END: u8 = 0;
const OP_COPY: u8 = 1;
const OP_LITERAL: u8 = 2;

/// The mysql source's state in a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct State {
    pub kind: String,
    pub version: u32,
    pub tables: Vec<TableRecords>,
}

/// One table's chain of record versions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TableRecords {
    /// Keyed name of the database ([`CacheNames`]).
    pub database: String,
    /// Keyed name of the table.
    pub table: String,
    /// The first is full, the others deltas, each on the one before.
    pub versions: Vec<Version>,
}

/// One version of a table's records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Version {
    /// A delta on the version before (else a whole cache file).
    pub delta: bool,
    /// Plaintext bytes of its parts.
    pub bytes: u64,
    /// SHA-256 (hex) of the cache file this version gives.
    pub sha256: String,
    /// The state parts holding it, in order: its bytes start `start`
    /// bytes into the first (the tables of one dump share parts).
    pub parts: Vec<String>,
    #[serde(default)]
    pub start: u64,
}

/// What the records did in one dump (counts of tables).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RowHashReport {
    /// The local cache file was the stored version.
    pub from_disk: usize,
    /// The records were fetched from the store (an empty or stale disk).
    pub from_store: usize,
    /// No records anywhere (a new table, or the first backup).
    pub none: usize,
    /// Tables whose records were stored whole this time.
    pub stored_full: usize,
    /// Tables whose records were stored as a delta.
    pub stored_delta: usize,
    /// Plaintext bytes of the records stored.
    pub stored_bytes: u64,
}

/// The newest snapshot's records, and what this dump stores.
pub(crate) struct Records<'r, A: Access> {
    repo: &'r Repository<A>,
    parent: Option<(Snapshot, State)>,
    names: CacheNames,
    /// Tables stored by this dump, each with its new version once the
    /// parts holding it are named.
    next: Vec<(TableRecords, Option<NewVersion>)>,
    /// Bytes for the next state part, and the parts written so far.
    buf: Vec<u8>,
    written: Vec<String>,
    /// Parts read lately (several tables' versions share parts).
    cache: PartCache,
    /// [`limits`], read once.
    part_bytes: usize,
    max_chain: usize,
    pub report: RowHashReport,
}

/// A version this dump stores, before its parts have names.
struct NewVersion {
    delta: bool,
    bytes: u64,
    sha256: String,
    /// Indices into `Records::written` of its first and last part.
    first: usize,
    last: usize,
    start: u64,
}

/// The state parts read lately, up to [`PART_CACHE_BYTES`]: a night's
/// deltas of every table usually share one part, which each table's
/// rebuild reads.
#[derive(Default)]
struct PartCache {
    parts: std::collections::VecDeque<(String, std::rc::Rc<[u8]>)>,
}

const PART_CACHE_BYTES: usize = 64 << 20;

impl PartCache {
    fn get<A: Access>(
        &mut self,
        repo: &Repository<A>,
        snapshot: &Snapshot,
        name: &str,
    ) -> lifeboat_store::Result<std::rc::Rc<[u8]>> {
        if let Some(i) = self.parts.iter().position(|(n, _)| n == name) {
            let hit = self.parts.remove(i).expect("found above");
            let body = hit.1.clone();
            self.parts.push_back(hit);
            return Ok(body);
        }
        let body: std::rc::Rc<[u8]> = repo.source_state_part(snapshot, SOURCE, name)?.into();
        self.parts.push_back((name.to_string(), body.clone()));
        while self.parts.iter().map(|(_, b)| b.len()).sum::<usize>() > PART_CACHE_BYTES
            && self.parts.len() > 1
        {
            self.parts.pop_front();
        }
        Ok(body)
    }
}

/// A table's base, as [`Records::prepare`] left it.
pub(crate) struct Prepared {
    /// The local cache file is the stored version and its chain has room:
    /// a delta may build on it.
    base: Option<TableRecords>,
}

impl Prepared {
    /// Whether a delta may build on the local cache file (else the dump
    /// writes none: the records are stored whole).
    pub fn has_base(&self) -> bool {
        self.base.is_some()
    }
}

/// What the dump wrote for one table.
pub(crate) struct Written {
    /// The new cache file (`.lbc.new`) and its SHA-256; `None` when it
    /// could not be written.
    pub full: Option<(PathBuf, [u8; 32])>,
    /// The delta on the base, if one was written.
    pub delta: Option<tempfile::NamedTempFile>,
}

impl<'r, A: Access> Records<'r, A> {
    /// The records of the newest snapshot holding mysql records. An
    /// unreadable state is a warning: the dump reads on without it.
    pub fn load(repo: &'r Repository<A>, names: CacheNames) -> Self {
        Records {
            parent: newest(repo),
            repo,
            names,
            next: Vec::new(),
            buf: Vec::new(),
            written: Vec::new(),
            cache: PartCache::default(),
            part_bytes: limits().0.max(1),
            max_chain: limits().1,
            report: RowHashReport::default(),
        }
    }

    fn parent_table(&self, db_key: &str, table_key: &str) -> Option<&TableRecords> {
        let (_, state) = self.parent.as_ref()?;
        state
            .tables
            .iter()
            .find(|t| t.database == db_key && t.table == table_key)
    }

    /// Make the local cache file of `table` the stored version when it is
    /// not (fetched and rebuilt, every version checked); say whether a
    /// delta may build on it.
    pub fn prepare(&mut self, dir: &Path, database: &str, table: &str) -> Prepared {
        let max_chain = self.max_chain;
        Prepared {
            base: self
                .local_stored_version(dir, database, table)
                .filter(|b| b.versions.len() < max_chain),
        }
    }

    /// The stored records of `table`, once the local cache file is their
    /// last version (as it was, or rebuilt); `None` when there are none.
    fn local_stored_version(
        &mut self,
        dir: &Path,
        database: &str,
        table: &str,
    ) -> Option<TableRecords> {
        let (db_key, stem) = (self.names.database(database), self.names.table(table));
        let Some(stored) = self.parent_table(&db_key, &stem).cloned() else {
            self.report.none += 1;
            return None;
        };
        let Some(last) = stored.versions.last() else {
            self.report.none += 1;
            return None;
        };
        if cache::local_sum(dir, &stem).as_deref() == Some(last.sha256.as_str()) {
            self.report.from_disk += 1;
            return Some(stored);
        }
        let (snapshot, _) = self.parent.as_ref()?;
        match rebuild(self.repo, snapshot, &mut self.cache, &stored, dir, &stem) {
            Ok(()) => {
                self.report.from_store += 1;
                Some(stored)
            }
            Err(e) => {
                tracing::warn!(
                    "mysql: the stored row-hash records of {database}.{table} cannot be used ({e}): \
                     changed segments of it are stored whole this time"
                );
                self.report.none += 1;
                None
            }
        }
    }

    /// Store what the dump wrote for a table: a delta on the base while
    /// the chain is short and the deltas small, else the whole file.
    pub fn store(
        &mut self,
        session: &BackupSession<A>,
        database: &str,
        table: &str,
        prepared: Prepared,
        written: Written,
    ) -> lifeboat_store::Result<()> {
        let Some((file, sha)) = written.full else {
            return Ok(());
        };
        let sha256 = hex::encode(sha);
        let (db_key, stem) = (self.names.database(database), self.names.table(table));
        let delta = match (prepared.base, written.delta) {
            (Some(base), Some(delta)) => {
                let full_bytes = base.versions.first().map_or(0, |v| v.bytes);
                let deltas: u64 = base.versions.iter().skip(1).map(|v| v.bytes).sum();
                let len = delta
                    .as_file()
                    .metadata()
                    .map(|m| m.len())
                    .unwrap_or(u64::MAX);
                (deltas.saturating_add(len) <= full_bytes).then_some((base, delta))
            }
            _ => None,
        };
        let mut versions = Vec::new();
        let (path, is_delta) = match &delta {
            Some((base, d)) => {
                versions = base.versions.clone();
                (d.path().to_path_buf(), true)
            }
            None => (file, false),
        };
        let (first, start) = (self.written.len(), self.buf.len() as u64);
        let bytes = self.append(session, &path)?;
        if is_delta {
            self.report.stored_delta += 1;
        } else {
            self.report.stored_full += 1;
        }
        self.report.stored_bytes += bytes;
        // Its last byte is in the part being filled, or (the buffer just
        // emptied) in the last one written.
        let last = if self.buf.is_empty() {
            self.written.len().saturating_sub(1)
        } else {
            self.written.len()
        };
        let version = NewVersion {
            delta: is_delta,
            bytes,
            sha256,
            first,
            last,
            start,
        };
        self.next.push((
            TableRecords {
                database: db_key,
                table: stem,
                versions,
            },
            Some(version),
        ));
        Ok(())
    }

    /// Add a file's bytes to the parts, writing each part once full; the
    /// file's length.
    fn append(&mut self, session: &BackupSession<A>, path: &Path) -> lifeboat_store::Result<u64> {
        let io = |e: std::io::Error| {
            lifeboat_store::Error::Invalid(format!(
                "reading the row-hash records {}: {e}",
                path.display()
            ))
        };
        let mut f = File::open(path).map_err(io)?;
        let mut chunk = vec![0u8; 1 << 16];
        let mut total = 0u64;
        loop {
            let n = f.read(&mut chunk).map_err(io)?;
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
            self.buf.extend_from_slice(&chunk[..n]);
            while self.buf.len() >= self.part_bytes {
                let rest = self.buf.split_off(self.part_bytes);
                self.written.push(session.write_state_part(&self.buf)?);
                self.buf = rest;
            }
        }
    }

    /// Name the new state in the session: this dump's tables, and the
    /// stored records of tables it did not dump, so that the newest
    /// snapshot has them all (a pre-migration snapshot of one database or
    /// a few tables leaves the next nightly its records). Only a table that
    /// left a database dumped whole (dropped or renamed) loses them.
    pub fn finish(
        mut self,
        session: &mut BackupSession<A>,
        dumped: &[String],
        filtered: bool,
    ) -> lifeboat_store::Result<RowHashReport> {
        if !self.buf.is_empty() {
            self.written.push(session.write_state_part(&self.buf)?);
            self.buf.clear();
        }
        let written = std::mem::take(&mut self.written);
        let mut tables: Vec<TableRecords> = Vec::new();
        for (mut t, new) in std::mem::take(&mut self.next) {
            if let Some(v) = new {
                let parts = written.get(v.first..=v.last).ok_or_else(|| {
                    lifeboat_store::Error::Invalid(
                        "row-hash records: a version without its parts".into(),
                    )
                })?;
                t.versions.push(Version {
                    delta: v.delta,
                    bytes: v.bytes,
                    sha256: v.sha256,
                    parts: parts.to_vec(),
                    start: v.start,
                });
            }
            tables.push(t);
        }
        let dumped: BTreeSet<String> = dumped.iter().map(|d| self.names.database(d)).collect();
        let stored: BTreeSet<(String, String)> = tables
            .iter()
            .map(|t| (t.database.clone(), t.table.clone()))
            .collect();
        if let Some((_, old)) = self.parent.take() {
            tables.extend(old.tables.into_iter().filter(|t| {
                (filtered || !dumped.contains(&t.database))
                    && !stored.contains(&(t.database.clone(), t.table.clone()))
            }));
        }
        let parts: Vec<String> = tables
            .iter()
            .flat_map(|t| &t.versions)
            .flat_map(|v| &v.parts)
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let state = State {
            kind: KIND.into(),
            version: VERSION,
            tables,
        };
        let json = serde_json::to_vec(&state).map_err(|e| {
            lifeboat_store::Error::Invalid(format!("serializing the mysql state: {e}"))
        })?;
        session.set_source_state(SOURCE, &json)?;
        session.set_source_state_parts(SOURCE, parts);
        Ok(self.report)
    }
}

/// The newest snapshot with mysql records, and its state.
fn newest<A: Access>(repo: &Repository<A>) -> Option<(Snapshot, State)> {
    let (snapshots, _) = match repo.snapshots() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("mysql: listing snapshots for the row-hash records failed ({e})");
            return None;
        }
    };
    for s in snapshots.into_iter().rev() {
        let Some(summary) = s.snapshot.sources.get(SOURCE) else {
            continue;
        };
        if summary.state.is_none() || summary.error.is_some() {
            continue;
        }
        return match repo.source_state(&s.snapshot, SOURCE) {
            Ok(Some(raw)) => match serde_json::from_slice::<State>(&raw) {
                Ok(st) if st.kind == KIND && st.version == VERSION => Some((s.snapshot, st)),
                _ => {
                    tracing::warn!(
                        "mysql: the state of snapshot {} is not row-hash records this lifeboat reads",
                        s.id.short()
                    );
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(
                    "mysql: the state of snapshot {} is unreadable ({e})",
                    s.id.short()
                );
                None
            }
        };
    }
    None
}

/// Reads a version's bytes from its parts, one part at a time (bounded
/// memory), from `start` bytes into the first.
struct PartsReader<'a, A: Access> {
    repo: &'a Repository<A>,
    snapshot: &'a Snapshot,
    cache: &'a mut PartCache,
    parts: std::slice::Iter<'a, String>,
    skip: u64,
    current: std::io::Cursor<std::rc::Rc<[u8]>>,
}

impl<A: Access> Read for PartsReader<'_, A> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.current.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let Some(name) = self.parts.next() else {
                return Ok(0);
            };
            let body = self
                .cache
                .get(self.repo, self.snapshot, name)
                .map_err(std::io::Error::other)?;
            if self.skip > body.len() as u64 {
                return Err(std::io::Error::other(
                    "a version starts past the end of its first part",
                ));
            }
            self.current = std::io::Cursor::new(body);
            self.current.set_position(std::mem::take(&mut self.skip));
        }
    }
}

/// Rebuild a table's cache file from its stored chain into `dir`: the
/// full version, then each delta, every step checked against its SHA-256;
/// the local file is replaced only at the end.
fn rebuild<A: Access>(
    repo: &Repository<A>,
    snapshot: &Snapshot,
    cache: &mut PartCache,
    stored: &TableRecords,
    dir: &Path,
    stem: &str,
) -> Result<(), String> {
    let tmp = |i: usize| dir.join(format!("{stem}.lbc.fetch{i}"));
    fn parts<'a, A: Access>(
        repo: &'a Repository<A>,
        snapshot: &'a Snapshot,
        cache: &'a mut PartCache,
        v: &'a Version,
    ) -> std::io::Take<PartsReader<'a, A>> {
        PartsReader {
            repo,
            snapshot,
            cache,
            parts: v.parts.iter(),
            skip: v.start,
            current: std::io::Cursor::new(std::rc::Rc::from(Vec::new())),
        }
        .take(v.bytes)
    }
    let result = (|| {
        let mut at: Option<PathBuf> = None;
        for (i, v) in stored.versions.iter().enumerate() {
            let out = tmp(i % 2);
            let sha = match (at.as_deref(), v.delta) {
                (None, false) => copy_checked(parts(repo, snapshot, cache, v), &out)?,
                (Some(prev), true) => apply(prev, parts(repo, snapshot, cache, v), &out)?.0,
                _ => return Err("a chain must start with one full version".to_string()),
            };
            if hex::encode(sha) != v.sha256 {
                return Err(format!(
                    "version {} of {} does not give its checksum",
                    i + 1,
                    stored.versions.len()
                ));
            }
            at = Some(out);
        }
        let last = at.ok_or_else(|| "the chain is empty".to_string())?;
        fs::rename(&last, cache::table_file(dir, stem)).map_err(|e| e.to_string())?;
        let sha256 = stored.versions.last().map_or("", |v| v.sha256.as_str());
        cache::write_sum(&cache::sum_file(dir, stem), sha256).map_err(|e| e.to_string())
    })();
    for i in 0..2 {
        let _ = fs::remove_file(tmp(i));
    }
    result
}

/// Copy a full version to `out`; its SHA-256.
fn copy_checked(mut from: impl Read, out: &Path) -> Result<[u8; 32], String> {
    let mut f = cache::create_private(out).map_err(|e| e.to_string())?;
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = from.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        f.write_all(&buf[..n]).map_err(|e| e.to_string())?;
    }
    Ok(sha.finalize().into())
}

/// Apply a delta to the cache file `base`, writing the next one to `out`;
/// its SHA-256 and how many segments it holds. Hostile input: every count
/// is bounded, every copy checked.
pub(crate) fn apply(
    base: &Path,
    delta: impl Read,
    out: &Path,
) -> Result<([u8; 32], usize), String> {
    let mut old = cache::Reader::open_path(base);
    let mut r = BufReader::with_capacity(1 << 16, delta);
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic)
        .map_err(|_| "the delta is empty".to_string())?;
    if &magic != DELTA_MAGIC {
        return Err("not a row-hash delta".into());
    }
    let mut w = cache::Writer::create_at(out.to_path_buf());
    let missing = |key: u64| format!("the delta names segment {key:016x}, which its base lacks");
    let mut segments = 0;
    loop {
        let mut tag = [0u8; 1];
        if r.read(&mut tag).map_err(|e| e.to_string())? == 0 {
            break;
        }
        let seg = match tag[0] {
            SAME => {
                let key = read_u64(&mut r)?;
                old.find(key).ok_or_else(|| missing(key))?
            }
            EDIT => {
                let key = read_u64(&mut r)?;
                let (blob, depth) = read_blob_depth(&mut r)?;
                let base = old.find(key).ok_or_else(|| missing(key))?;
                let hashes = read_ops(&mut r, &base.hashes)?;
                Segment {
                    key,
                    blob,
                    depth,
                    hashes,
                }
            }
            FULL => {
                let key = read_u64(&mut r)?;
                let (blob, depth) = read_blob_depth(&mut r)?;
                let n = read_u32(&mut r)? as usize;
                if n > MAX_HASHES {
                    return Err(format!("a segment of {n} rows"));
                }
                let hashes = (0..n).map(|_| read_u64(&mut r)).collect::<Result<_, _>>()?;
                Segment {
                    key,
                    blob,
                    depth,
                    hashes,
                }
            }
            t => return Err(format!("unknown entry {t} in a row-hash delta")),
        };
        w.add(&seg);
        segments += 1;
    }
    let sha = w
        .finish()
        .ok_or_else(|| format!("writing {} failed", out.display()))?;
    Ok((sha, segments))
}

fn read_u64(r: &mut impl Read) -> Result<u64, String> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)
        .map_err(|_| "the delta ends early".to_string())?;
    Ok(u64::from_le_bytes(b))
}

fn read_u32(r: &mut impl Read) -> Result<u32, String> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)
        .map_err(|_| "the delta ends early".to_string())?;
    Ok(u32::from_le_bytes(b))
}

fn read_blob_depth(r: &mut impl Read) -> Result<(BlobId, u8), String> {
    let mut b = [0u8; 33];
    r.read_exact(&mut b)
        .map_err(|_| "the delta ends early".to_string())?;
    let mut blob = [0u8; 32];
    blob.copy_from_slice(&b[..32]);
    Ok((BlobId(blob), b[32]))
}

/// The new row hashes: runs copied from `old` and literal hashes.
fn read_ops(r: &mut impl Read, old: &[u64]) -> Result<Vec<u64>, String> {
    let mut out = Vec::with_capacity(old.len());
    loop {
        let mut op = [0u8; 1];
        r.read_exact(&mut op)
            .map_err(|_| "the delta ends early".to_string())?;
        match op[0] {
            OP_END => return Ok(out),
            OP_COPY => {
                let (start, len) = (read_u32(r)? as usize, read_u32(r)? as usize);
                let run = start
                    .checked_add(len)
                    .and_then(|end| old.get(start..end))
                    .ok_or("a copy past the end of its base segment")?;
                out.extend_from_slice(run);
            }
            OP_LITERAL => {
                let n = read_u32(r)? as usize;
                if n > MAX_HASHES {
                    return Err(format!("{n} literal row hashes"));
                }
                for _ in 0..n {
                    out.push(read_u64(r)?);
                }
            }
            o => return Err(format!("unknown operation {o} in a row-hash delta")),
        }
        if out.len() > MAX_HASHES {
            return Err("a segment of too many rows".into());
        }
    }
}

/// Four segments of five rows: the base of the fuzzing entry point and
/// its seed.
pub(crate) fn seed_segments() -> Vec<Segment> {
    (0..4u64)
        .map(|key| Segment {
            key,
            blob: BlobId([key as u8; 32]),
            depth: 0,
            hashes: (0..5).map(|i| key * 100 + i).collect(),
        })
        .collect()
}

/// A delta on [`seed_segments`]: one kept, one edited, one new, the
/// others gone (the seed of the fuzzing entry point).
#[cfg(test)]
pub(crate) fn seed_delta() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = seed_segments();
    let mut edited = old[1].clone();
    edited.hashes[2] = 7;
    edited.hashes.push(8);
    edited.blob = BlobId([9; 32]);
    let new_seg = Segment {
        key: 40,
        blob: BlobId([40; 32]),
        depth: 0,
        hashes: vec![1, 2],
    };
    let mut d = DeltaWriter::create(dir.path());
    d.add(Some(&old[0]), &old[0]);
    d.add(Some(&old[1]), &edited);
    d.add(None, &new_seg);
    let f = d.finish().expect("delta");
    fs::read(f.path()).expect("delta bytes")
}

/// Writes a table's delta while the dump runs: for each new segment,
/// against the previous one with its key (as the dump found it).
pub(crate) struct DeltaWriter {
    out: Option<std::io::BufWriter<tempfile::NamedTempFile>>,
}

impl DeltaWriter {
    /// A delta in `dir` (a hidden temporary file, 0600, gone when dropped).
    pub fn create(dir: &Path) -> DeltaWriter {
        let out = lifeboat_store::create_private_dir(dir)
            .and_then(|_| tempfile::Builder::new().prefix(".lbd").tempfile_in(dir))
            .map(|f| std::io::BufWriter::with_capacity(1 << 16, f))
            .and_then(|mut w| w.write_all(DELTA_MAGIC).map(|_| w));
        DeltaWriter { out: out.ok() }
    }

    /// Record `new`, whose previous version (same key) is `old`, if the
    /// dump found one.
    pub fn add(&mut self, old: Option<&Segment>, new: &Segment) {
        let Some(out) = self.out.as_mut() else { return };
        let mut b = Vec::with_capacity(64);
        match old {
            Some(o) if o.blob == new.blob && o.depth == new.depth && o.hashes == new.hashes => {
                b.push(SAME);
                b.extend_from_slice(&new.key.to_le_bytes());
            }
            Some(o) => {
                b.push(EDIT);
                b.extend_from_slice(&new.key.to_le_bytes());
                b.extend_from_slice(&new.blob.0);
                b.push(new.depth);
                edit_ops(&o.hashes, &new.hashes, &mut b);
            }
            None => {
                // A cache file's record without its checksum.
                b.push(FULL);
                b.extend_from_slice(&cache::record_bytes(new));
            }
        }
        if out.write_all(&b).is_err() {
            self.out = None;
        }
    }

    /// The finished delta, or `None` if it could not be written.
    pub fn finish(self) -> Option<tempfile::NamedTempFile> {
        let mut out = self.out?;
        out.flush().ok()?;
        out.into_inner().ok()
    }
}

/// Operations turning `old` into `new`: a run of `old` where the next new
/// hash continues one, else a literal (a changed or inserted row).
fn edit_ops(old: &[u64], new: &[u64], b: &mut Vec<u8>) {
    let mut at: std::collections::HashMap<u64, usize> =
        std::collections::HashMap::with_capacity(old.len());
    for (i, h) in old.iter().enumerate().rev() {
        at.insert(*h, i);
    }
    let mut literals: Vec<u64> = Vec::new();
    let mut run: Option<(usize, usize)> = None;
    let flush_literals = |literals: &mut Vec<u64>, b: &mut Vec<u8>| {
        if !literals.is_empty() {
            b.push(OP_LITERAL);
            b.extend_from_slice(&(literals.len() as u32).to_le_bytes());
            for h in literals.drain(..) {
                b.extend_from_slice(&h.to_le_bytes());
            }
        }
    };
    let flush_run = |run: &mut Option<(usize, usize)>, b: &mut Vec<u8>| {
        if let Some((start, len)) = run.take() {
            b.push(OP_COPY);
            b.extend_from_slice(&(start as u32).to_le_bytes());
            b.extend_from_slice(&(len as u32).to_le_bytes());
        }
    };
    for h in new {
        if let Some((start, len)) = run.as_mut() {
            if old.get(*start + *len) == Some(h) {
                *len += 1;
                continue;
            }
        }
        flush_run(&mut run, b);
        match at.get(h) {
            Some(&i) => {
                flush_literals(&mut literals, b);
                run = Some((i, 1));
            }
            None => literals.push(*h),
        }
    }
    flush_run(&mut run, b);
    flush_literals(&mut literals, b);
    b.push(OP_END);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(key: u64, hashes: Vec<u64>) -> Segment {
        Segment {
            key,
            blob: BlobId([key as u8; 32]),
            depth: 0,
            hashes,
        }
    }

    /// A delta written against one file, applied to it, gives the next
    /// file byte for byte (what a host with an empty disk rebuilds).
    #[test]
    fn delta_applies_to_the_file_it_was_written_against() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.lbc");
        let mut w = cache::Writer::create_at(base.clone());
        let old: Vec<Segment> = (1..=5u64)
            .map(|k| seg(k, (0..100).map(|i| k * 1000 + i).collect()))
            .collect();
        for s in &old {
            w.add(s);
        }
        w.finish().unwrap();
        // Next night: 1 unchanged, 2 with an update, an insert and a
        // delete, 3 gone, 4 new blob same rows, 6 new; 5 unchanged.
        let mut s2 = old[1].clone();
        s2.hashes[10] = 7;
        s2.hashes.insert(50, 8);
        s2.hashes.remove(80);
        s2.blob = BlobId([22; 32]);
        s2.depth = 1;
        let mut s4 = old[3].clone();
        s4.blob = BlobId([44; 32]);
        let new = vec![
            old[0].clone(),
            s2,
            s4,
            seg(6, vec![1, 2, 3]),
            old[4].clone(),
        ];
        let expected = dir.path().join("expected.lbc");
        let mut w = cache::Writer::create_at(expected.clone());
        let mut d = DeltaWriter::create(dir.path());
        let mut reader = cache::Reader::open_path(&base);
        for s in &new {
            let found = reader.find(s.key);
            d.add(found.as_ref(), s);
            w.add(s);
        }
        let want = w.finish().unwrap();
        let delta = d.finish().unwrap();
        let out = dir.path().join("out.lbc");
        let (got, segments) = apply(&base, File::open(delta.path()).unwrap(), &out).unwrap();
        assert_eq!((got, segments), (want, new.len()));
        assert_eq!(fs::read(&out).unwrap(), fs::read(&expected).unwrap());
        // Small: an edit, not every hash again.
        let len = fs::metadata(delta.path()).unwrap().len();
        assert!(len < 500, "{len} bytes");
        // Applied to another base it fails, never gives something else
        // silently (the chain's checksum catches any other difference).
        let other = dir.path().join("other.lbc");
        let mut w = cache::Writer::create_at(other.clone());
        w.add(&seg(1, vec![1]));
        w.finish().unwrap();
        assert!(apply(&other, File::open(delta.path()).unwrap(), &out).is_err());
    }

    #[test]
    fn hostile_deltas_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.lbc");
        let mut w = cache::Writer::create_at(base.clone());
        w.add(&seg(1, vec![1, 2, 3]));
        w.finish().unwrap();
        let out = dir.path().join("out.lbc");
        let mut copy_past_end = DELTA_MAGIC.to_vec();
        copy_past_end.push(EDIT);
        copy_past_end.extend_from_slice(&1u64.to_le_bytes());
        copy_past_end.extend_from_slice(&[0; 33]);
        copy_past_end.push(OP_COPY);
        copy_past_end.extend_from_slice(&2u32.to_le_bytes());
        copy_past_end.extend_from_slice(&u32::MAX.to_le_bytes());
        let mut huge = DELTA_MAGIC.to_vec();
        huge.push(FULL);
        huge.extend_from_slice(&[0; 41]);
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        for (bad, why) in [
            (b"LBDX".to_vec(), "not a row-hash delta"),
            (copy_past_end, "past the end"),
            (huge, "rows"),
            ([DELTA_MAGIC.as_slice(), &[9]].concat(), "unknown entry"),
            ([DELTA_MAGIC.as_slice(), &[SAME, 1]].concat(), "ends early"),
        ] {
            let e = apply(&base, bad.as_slice(), &out).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// How fast a rebuild applies one night's delta to a big file (run by
    /// hand: `cargo test --release -p lifeboat-mysql --lib rebuild_speed -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn rebuild_speed() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.lbc");
        let mut w = cache::Writer::create_at(base.clone());
        let segs: Vec<Segment> = (0..3800u64)
            .map(|k| Segment {
                key: k,
                blob: BlobId([k as u8; 32]),
                depth: 0,
                hashes: (0..2048).map(|i| k * 5000 + i).collect(),
            })
            .collect();
        for s in &segs {
            w.add(s);
        }
        w.finish().unwrap();
        let mut d = DeltaWriter::create(dir.path());
        for s in &segs {
            let mut n = s.clone();
            n.hashes[7] ^= 1;
            n.blob = BlobId([9; 32]);
            d.add(Some(s), &n);
        }
        let delta = d.finish().unwrap();
        let t = std::time::Instant::now();
        let out = dir.path().join("out.lbc");
        apply(&base, File::open(delta.path()).unwrap(), &out).unwrap();
        eprintln!(
            "apply of {} MB: {:?}",
            fs::metadata(&base).unwrap().len() >> 20,
            t.elapsed()
        );
    }
}
