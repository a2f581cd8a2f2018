//! The backup host's local cache of row hashes: for every stored segment of
//! a table (a run of rows between primary-key-defined boundaries), its blob
//! id and a keyed 8-byte hash of each row. With it the next dump knows which
//! rows changed without reading the store (the backup key cannot), and
//! stores a changed segment as a patch against the old one.
//!
//! It holds no data, only keyed hashes; files are 0600 in a 0700 folder.
//! It is written next to the live one (`.new`) and swapped in only after the
//! snapshot is committed. A lost or damaged cache costs one full-size
//! night, never correctness: every record carries a checksum, and a record
//! is only used when its blob is in the repository.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use lifeboat_store::BlobId;
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 4] = b"LBC1";
/// How far ahead to look for a segment that moved (inserted/deleted segments).
const WINDOW: usize = 256;

/// One stored segment as remembered.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub key: u64,
    pub blob: BlobId,
    pub depth: u8,
    pub hashes: Vec<u64>,
}

/// A segment's record in a cache file (before its checksum): key, blob,
/// depth, row count and row hashes, little-endian.
pub(crate) fn record_bytes(s: &Segment) -> Vec<u8> {
    let mut b = Vec::with_capacity(45 + s.hashes.len() * 8);
    b.extend_from_slice(&s.key.to_le_bytes());
    b.extend_from_slice(&s.blob.0);
    b.push(s.depth);
    b.extend_from_slice(&(s.hashes.len() as u32).to_le_bytes());
    for h in &s.hashes {
        b.extend_from_slice(&h.to_le_bytes());
    }
    b
}

/// The purpose of the key of [`CacheNames`] (see `BackupSession::derived_key`).
pub(crate) const NAMES_KEY: &str = "mysql-cache-names";

/// How database and table names become file names in the cache: keyed
/// (HMAC-SHA256 under a key derived from the dedup secret, prefixed `k-`),
/// so a backup host's disk names no database or table. Names without the
/// prefix are of older lifeboats (hex of the name) and are removed.
#[derive(Clone)]
pub(crate) struct CacheNames(zeroize::Zeroizing<[u8; 32]>);

impl CacheNames {
    /// Names keyed by `key` (`BackupSession::derived_key("mysql-cache-names")`).
    pub fn new(key: [u8; 32]) -> Self {
        Self(zeroize::Zeroizing::new(key))
    }

    fn name(&self, kind: &str, name: &str) -> String {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&*self.0)
            .expect("HMAC takes any key length");
        mac.update(kind.as_bytes());
        mac.update(&[0]);
        mac.update(name.as_bytes());
        format!("k-{}", &hex::encode(mac.finalize().into_bytes())[..32])
    }

    /// The cache folder of one database in one repository.
    pub(crate) fn folder(&self, root: &Path, repository: &str, database: &str) -> PathBuf {
        root.join(repository)
            .join("mysql")
            .join(self.database(database))
    }

    /// The keyed name of a database (its folder's name).
    pub(crate) fn database(&self, database: &str) -> String {
        self.name("database", database)
    }

    /// The file stem of a table's cache.
    pub(crate) fn table(&self, table: &str) -> String {
        self.name("table", table)
    }
}

pub(crate) fn table_file(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}.lbc"))
}

/// Remove caches named by older lifeboats (the hex of the name itself).
fn remove_unkeyed(root: &Path, repository: &str, database_dir: &Path) {
    let top = root.join(repository).join("mysql");
    for dir in [top.as_path(), database_dir] {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if name.to_string_lossy().starts_with("k-") {
                continue;
            }
            let p = e.path();
            let _ = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
    }
}

/// Reads the previous segments of a table in order, with a look-ahead window.
pub(crate) struct Reader {
    file: Option<BufReader<File>>,
    window: VecDeque<Segment>,
}

impl Reader {
    pub fn open(dir: &Path, table: &str) -> Reader {
        Self::open_path(&table_file(dir, table))
    }

    /// The records of the cache file at `path` (none if it is not one).
    pub fn open_path(path: &Path) -> Reader {
        let file = File::open(path).ok().and_then(|f| {
            let mut r = BufReader::with_capacity(1 << 16, f);
            let mut magic = [0u8; 4];
            r.read_exact(&mut magic)
                .ok()
                .filter(|_| &magic == MAGIC)
                .map(|_| r)
        });
        Reader {
            file,
            window: VecDeque::new(),
        }
    }

    fn read_one(&mut self) -> Option<Segment> {
        let r = self.file.as_mut()?;
        let mut head = [0u8; 45];
        let seg = (|| {
            r.read_exact(&mut head).ok()?;
            let key = u64::from_le_bytes(head[..8].try_into().ok()?);
            let mut blob = [0u8; 32];
            blob.copy_from_slice(&head[8..40]);
            let depth = head[40];
            let n = u32::from_le_bytes(head[41..45].try_into().ok()?) as usize;
            if n > 10_000_000 {
                return None;
            }
            let mut raw = vec![0u8; n * 8];
            r.read_exact(&mut raw).ok()?;
            let mut sum = [0u8; 8];
            r.read_exact(&mut sum).ok()?;
            let hashes = raw
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect();
            let seg = Segment {
                key,
                blob: BlobId(blob),
                depth,
                hashes,
            };
            (Sha256::digest(record_bytes(&seg))[..8] == sum).then_some(seg)
        })();
        if seg.is_none() {
            // End of file, or damage: stop using the rest.
            self.file = None;
        }
        seg
    }

    /// How many records read back from here on (to the end, or damage).
    pub fn count(mut self) -> usize {
        let mut n = self.window.len();
        self.window.clear();
        while self.read_one().is_some() {
            n += 1;
        }
        n
    }

    /// The previous segment with `key`, if it is near; skips those before it.
    pub fn find(&mut self, key: u64) -> Option<Segment> {
        while self.window.len() < WINDOW {
            match self.read_one() {
                Some(s) => self.window.push_back(s),
                None => break,
            }
        }
        let pos = self.window.iter().position(|s| s.key == key)?;
        self.window.drain(..pos);
        self.window.pop_front()
    }
}

/// The file holding the SHA-256 (hex) of a table's cache file, written
/// with it: the stored copy's checksum says whether the local file is the
/// version a stored delta builds on, without reading it.
pub(crate) fn sum_file(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}.lbc.sum"))
}

/// The SHA-256 the local cache file of a table claims (its sum file), if
/// both are there.
pub(crate) fn local_sum(dir: &Path, stem: &str) -> Option<String> {
    if !table_file(dir, stem).is_file() {
        return None;
    }
    let s = fs::read_to_string(sum_file(dir, stem)).ok()?;
    let s = s.trim();
    (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_string())
}

/// Write a sum file (`path`, see [`sum_file`]) naming `sha256` (hex).
pub(crate) fn write_sum(path: &Path, sha256: &str) -> std::io::Result<()> {
    create_private(path)?.write_all(sha256.as_bytes())
}

/// Create (truncate) a file only its owner can read, in a 0700 folder.
pub(crate) fn create_private(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        lifeboat_store::create_private_dir(dir)?;
    }
    let mut o = fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// Writes segments as a cache file (`<table>.lbc.new` for a dump), and
/// the SHA-256 of everything it wrote.
pub(crate) struct Writer {
    out: Option<BufWriter<File>>,
    sha: Sha256,
    path: PathBuf,
}

impl Writer {
    pub fn create(dir: &Path, table: &str) -> Writer {
        Self::create_at(table_file(dir, table).with_extension("lbc.new"))
    }

    /// A cache file at `path`.
    pub fn create_at(path: PathBuf) -> Writer {
        let out = create_private(&path)
            .map(|f| BufWriter::with_capacity(1 << 16, f))
            .and_then(|mut w| w.write_all(MAGIC).map(|_| w));
        if let Err(e) = &out {
            tracing::warn!(
                "row-hash cache {} unusable ({e}): the next backup stores changed segments whole",
                path.display()
            );
        }
        let mut sha = Sha256::new();
        sha.update(MAGIC);
        Writer {
            out: out.ok(),
            sha,
            path,
        }
    }

    pub fn add(&mut self, seg: &Segment) {
        let Some(out) = self.out.as_mut() else { return };
        let rec = record_bytes(seg);
        let sum = Sha256::digest(&rec);
        if out
            .write_all(&rec)
            .and_then(|_| out.write_all(&sum[..8]))
            .is_err()
        {
            self.out = None;
        }
        self.sha.update(&rec);
        self.sha.update(&sum[..8]);
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flush; the SHA-256 of the file, or `None` (and no file) when it
    /// could not be written whole.
    pub fn finish(self) -> Option<[u8; 32]> {
        let ok = self.out.is_some_and(|mut out| out.flush().is_ok());
        if !ok {
            let _ = fs::remove_file(&self.path);
            return None;
        }
        Some(self.sha.finalize().into())
    }
}

/// Apply `f` to every `.new` file of a database's cache folder.
fn each_new(dir: &Path, f: impl Fn(&Path)) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "new") {
            f(&p);
        }
    }
}

/// After the snapshot is committed: the `.new` files become the cache.
/// Call only after a successful commit; a failed backup leaves the old cache.
/// The row-hash cache files a dump wrote (`.new` beside the current ones):
/// they become the cache for the next dump only once the snapshot holding
/// this one is committed ([`keep`](Self::keep)). Dropped unkept (the
/// backup failed, or the caller forgot), they are removed: a lost cache
/// costs one bigger night, a cache of an uncommitted dump would be wrong.
#[must_use = "keep it with the id of the committed snapshot, or it is discarded"]
pub struct PendingCache {
    root: PathBuf,
    repository: String,
    names: CacheNames,
    databases: Vec<String>,
    settled: bool,
}

impl PendingCache {
    pub(crate) fn new(
        root: PathBuf,
        repository: String,
        names: CacheNames,
        databases: Vec<String>,
    ) -> Self {
        Self {
            root,
            repository,
            names,
            databases,
            settled: false,
        }
    }

    /// Make this dump's row hashes the cache of the next dump. Takes the id
    /// of the committed snapshot, which exists only once the commit
    /// succeeded.
    pub fn keep(mut self, _committed: &lifeboat_store::SnapshotId) {
        for db in &self.databases {
            commit_cache(&self.root, &self.repository, &self.names, db);
        }
        self.settled = true;
    }
}

impl Drop for PendingCache {
    fn drop(&mut self) {
        if !self.settled {
            for db in &self.databases {
                discard_cache(&self.root, &self.repository, &self.names, db);
            }
        }
    }
}

fn commit_cache(root: &Path, repository: &str, names: &CacheNames, database: &str) {
    let dir = names.folder(root, repository, database);
    each_new(&dir, |p| {
        let _ = fs::rename(p, p.with_extension(""));
    });
    remove_unkeyed(root, repository, &dir);
}

/// Drop the `.new` files of a backup that did not commit.
fn discard_cache(root: &Path, repository: &str, names: &CacheNames, database: &str) {
    each_new(&names.folder(root, repository, database), |p| {
        let _ = fs::remove_file(p);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_commit_read_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let names = CacheNames::new([7; 32]);
        let f = names.folder(dir.path(), "repo", "db");
        let stem = names.table("t");
        // An older lifeboat's cache (hex names), removed at the next commit.
        let legacy = dir.path().join("repo/mysql").join(hex::encode("db"));
        fs::create_dir_all(&legacy).unwrap();
        fs::write(legacy.join(format!("{}.lbc", hex::encode("t"))), b"old").unwrap();
        let seg = |k: u64| Segment {
            key: k,
            blob: BlobId([k as u8; 32]),
            depth: 1,
            hashes: vec![k, k + 1, k + 2],
        };
        let mut w = Writer::create(&f, &stem);
        for k in [1, 2, 3] {
            w.add(&seg(k));
        }
        w.finish();
        // Not committed yet: nothing to read.
        assert!(Reader::open(&f, &stem).find(1).is_none());
        commit_cache(dir.path(), "repo", &names, "db");
        assert!(!legacy.exists(), "unkeyed names are removed");
        // No database or table name on disk.
        for e in fs::read_dir(dir.path().join("repo/mysql")).unwrap() {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                n.starts_with("k-") && !n.contains(&hex::encode("db")),
                "{n}"
            );
        }
        assert_ne!(names.table("t"), CacheNames::new([8; 32]).table("t"));
        let mut r = Reader::open(&f, &stem);
        assert_eq!(r.find(2).unwrap().hashes, vec![2, 3, 4]);
        assert!(r.find(1).is_none(), "segments before a match are skipped");
        assert_eq!(r.find(3).unwrap().blob, BlobId([3; 32]));
        // A flipped byte makes the rest of the file unused, not wrong.
        let path = table_file(&f, &stem);
        let mut bytes = fs::read(&path).unwrap();
        bytes[4 + 45 + 8 + 3] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert!(Reader::open(&f, &stem).find(1).is_none());
    }
}
