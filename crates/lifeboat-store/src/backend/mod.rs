//! Raw storage: named files of bytes, nothing more. The layers above
//! (packs, indexes, snapshots) give the bytes meaning and encrypt them; a
//! backend never sees plaintext.

mod immutable;
mod local;
pub mod s3;
mod s3_lock;

use std::sync::Arc;

pub use immutable::{Immutability, Immutable};
pub use local::LocalBackend;
pub use s3::{S3Backend, S3Options};

use crate::error::{BackendError, BackendErrorKind, Error, Result};

/// The kinds of file a repository holds, each in its own folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// `config`: the one plaintext file.
    Config,
    /// `keys/`: the repository secrets, encrypted to each restore key.
    Keys,
    /// `data/XX/`: pack files.
    Pack,
    /// `index/`: where each blob is.
    Index,
    /// `snapshots/`: one file per snapshot.
    Snapshot,
    /// `locks/`: who is using the repository.
    Lock,
    /// `state/`: per-source state a later backup reads with the backup key
    /// (e.g. the object list that lets unchanged objects be carried over).
    State,
    /// `runs/`: one record per run of a command, failed ones included.
    Run,
    /// `forgotten/`: the snapshot ids `forget` removed, so a copy never
    /// brings them back into this repository.
    Forgotten,
}

impl FileKind {
    /// The folder of this kind, relative to the repository root.
    pub fn dir(self) -> &'static str {
        match self {
            FileKind::Config => "",
            FileKind::Keys => "keys",
            FileKind::Pack => "data",
            FileKind::Index => "index",
            FileKind::Snapshot => "snapshots",
            FileKind::Lock => "locks",
            FileKind::State => "state",
            FileKind::Run => "runs",
            FileKind::Forgotten => "forgotten",
        }
    }

    /// The path of a file of this kind, relative to the repository root.
    pub fn path(self, name: &str) -> String {
        match self {
            FileKind::Config => "config".to_string(),
            FileKind::Pack => format!("data/{}/{}", &name[..name.len().min(2)], name),
            _ => format!("{}/{}", self.dir(), name),
        }
    }

    /// Every kind, in the order verify reports them.
    pub const ALL: [FileKind; 9] = [
        FileKind::Config,
        FileKind::Keys,
        FileKind::Pack,
        FileKind::Index,
        FileKind::Snapshot,
        FileKind::State,
        FileKind::Lock,
        FileKind::Run,
        FileKind::Forgotten,
    ];
}

/// S3 Object Lock's two modes: governance (a role with
/// s3:BypassGovernanceRetention may still shorten it) and compliance (no
/// one may, not even the account's root, until it ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// Shortened only with s3:BypassGovernanceRetention.
    Governance,
    /// Never shortened.
    Compliance,
}

/// One version of one file in a versioned bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileVersion {
    /// The path relative to the repository (`data/ab/ab12...`, `config`).
    pub path: String,
    /// The store's version id.
    pub version: String,
    /// When it was written.
    pub modified: chrono::DateTime<chrono::Utc>,
    /// The current version of its path.
    pub latest: bool,
    /// A delete marker (the path reads as absent while it is the latest).
    pub delete_marker: bool,
    /// Its ETag (the MD5 of its bytes for a plain upload): two versions
    /// with the same one hold the same bytes.
    pub etag: Option<String>,
}

/// A file's object lock as the store reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Locked until then.
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// In this mode.
    pub mode: Option<LockMode>,
}

/// Whether `name` is a name lifeboat gives a file of `kind` (anything
/// else under the repository's prefix is not its own: a folder marker a
/// console made, a planted key).
pub fn is_own_name(kind: FileKind, name: &str) -> bool {
    match kind {
        FileKind::Config => name == "config",
        _ => name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
    }
}

/// The kind and name of a path relative to the repository, when it is a
/// path lifeboat writes (`data/ab/ab12..`, `index/..`, `config`).
pub fn parse_path(path: &str) -> Option<(FileKind, String)> {
    if path == "config" {
        return Some((FileKind::Config, path.to_string()));
    }
    let (dir, rest) = path.split_once('/')?;
    let kind = FileKind::ALL
        .into_iter()
        .find(|k| *k != FileKind::Config && k.dir() == dir)?;
    let name = match kind {
        FileKind::Pack => {
            let (fan, name) = rest.split_once('/')?;
            (name.get(..2) == Some(fan)).then_some(name)?
        }
        _ => rest,
    };
    is_own_name(kind, name).then(|| (kind, name.to_string()))
}

/// What a bucket with S3 Object Lock (versioned, write-once versions) can
/// do beyond plain files. Paths are relative to the repository.
pub trait Locking: Send + Sync {
    /// Whether the bucket has Object Lock enabled.
    fn lock_enabled(&self) -> Result<bool, BackendError>;
    /// From now on every write carries this retention: `mode` for `secs`.
    fn retain_writes(&self, mode: LockMode, secs: u64);
    /// A file's (current version's) lock.
    fn retention(&self, kind: FileKind, name: &str) -> Result<Retention, BackendError>;
    /// One version's bytes.
    fn read_version(&self, path: &str, version: &str) -> Result<Vec<u8>, BackendError>;
    /// Lock a file's current version until `until` (S3 refuses to shorten).
    fn extend(
        &self,
        kind: FileKind,
        name: &str,
        mode: LockMode,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), BackendError>;
    /// Every version of every file of the repository.
    fn versions(&self) -> Result<Vec<FileVersion>, BackendError>;
    /// Delete one version for good (refused while it is locked).
    fn purge(&self, path: &str, version: &str) -> Result<(), BackendError>;
    /// Make an older version of `path` the current one again (a copy of it
    /// on top, with the write retention).
    fn revive(&self, path: &str, version: &str) -> Result<(), BackendError>;
}

/// Refuse a file name that is not one plain name: names come from the
/// store (a snapshot's state names, index entries), so `../x`, `a/b` or
/// `.tmp-*` must not reach a path or key.
pub(crate) fn check_name(kind: FileKind, name: &str) -> Result<(), BackendError> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if plain {
        Ok(())
    } else {
        Err(BackendError::new(
            BackendErrorKind::NotFound,
            "open",
            format!("{}/{name:?}", kind.dir()),
            "not a file name lifeboat writes (a path or a hidden name): refused",
        ))
    }
}

/// A listed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Its name (without folder).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written, as the store says (S3's LastModified, a
    /// file's mtime); `None` where the store does not say.
    pub modified: Option<chrono::DateTime<chrono::Utc>>,
}

/// A place to keep repository files. Implementations must make `write`
/// atomic (a reader sees the whole file or none of it) and durable once it
/// returns; they retry transient failures themselves.
pub trait Backend: Send + Sync + 'static {
    /// Where this is, for messages (never includes credentials).
    fn location(&self) -> String;
    /// All files of one kind.
    fn list(&self, kind: FileKind) -> Result<Vec<FileInfo>, BackendError>;
    /// A whole file.
    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>, BackendError>;
    /// `length` bytes from `offset`.
    fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, BackendError>;
    /// Store a file, atomically.
    fn write(&self, kind: FileKind, name: &str, data: &[u8]) -> Result<(), BackendError>;
    /// Store a file whose bytes are shared with the caller. Backends that
    /// must own the bytes (S3) borrow the buffer instead of copying it, and
    /// the caller reuses it afterwards: pack buffers are pooled so a backup
    /// never churns 16 MiB allocations (glibc would keep them as fragments).
    fn write_shared(
        &self,
        kind: FileKind,
        name: &str,
        data: Arc<Vec<u8>>,
    ) -> Result<(), BackendError> {
        self.write(kind, name, &data)
    }
    /// Delete a file; deleting a missing file is not an error.
    fn remove(&self, kind: FileKind, name: &str) -> Result<(), BackendError>;
    /// Delete partial files left by writers that died (local temp files);
    /// returns how many. Backends with atomic uploads have none.
    fn remove_partial_writes(&self) -> Result<usize, BackendError> {
        Ok(0)
    }
    /// How many transfers may usefully run at once.
    fn connections(&self) -> usize {
        2
    }
    /// The bucket's Object Lock operations, where the store has them (S3).
    fn locking(&self) -> Option<&dyn Locking> {
        None
    }
    /// The bucket lock rule files are under, when this host was told of
    /// one ([`Immutable`]).
    fn immutability(&self) -> Option<Immutability> {
        None
    }
}

/// A backend this host only adds to: `remove` is refused here, before any
/// request, so an append-only backup host (S3 credentials without
/// `s3:DeleteObject`) never sends a DELETE the store would deny and its
/// audit log would record. Everything else is passed through.
pub struct AppendOnly(Arc<dyn Backend>);

impl AppendOnly {
    /// Wrap `inner`.
    pub fn wrap(inner: Arc<dyn Backend>) -> Arc<dyn Backend> {
        Arc::new(AppendOnly(inner))
    }
}

impl Backend for AppendOnly {
    fn location(&self) -> String {
        self.0.location()
    }
    fn list(&self, kind: FileKind) -> Result<Vec<FileInfo>, BackendError> {
        self.0.list(kind)
    }
    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>, BackendError> {
        self.0.read(kind, name)
    }
    fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, BackendError> {
        self.0.read_range(kind, name, offset, length)
    }
    fn write(&self, kind: FileKind, name: &str, data: &[u8]) -> Result<(), BackendError> {
        self.0.write(kind, name, data)
    }
    fn write_shared(
        &self,
        kind: FileKind,
        name: &str,
        data: Arc<Vec<u8>>,
    ) -> Result<(), BackendError> {
        self.0.write_shared(kind, name, data)
    }
    fn remove(&self, kind: FileKind, name: &str) -> Result<(), BackendError> {
        Err(BackendError::new(
            BackendErrorKind::Access,
            "remove",
            kind.path(name),
            "this host is append-only ([repository] append_only): deleting is for an admin host",
        ))
    }
    fn remove_partial_writes(&self) -> Result<usize, BackendError> {
        Ok(0)
    }
    fn connections(&self) -> usize {
        self.0.connections()
    }
    fn locking(&self) -> Option<&dyn Locking> {
        self.0.locking()
    }
    fn immutability(&self) -> Option<Immutability> {
        self.0.immutability()
    }
}

/// Open a backend from a repository URL: a path (the default) or
/// `s3://bucket/prefix`. S3 settings not in `s3` come from the standard
/// AWS environment variables.
pub fn open_backend(url: &str, s3: &S3Options) -> Result<Arc<dyn Backend>> {
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::Invalid(format!(
                "repository URL {url:?} names no bucket: use s3://BUCKET/PREFIX"
            )));
        }
        Ok(Arc::new(S3Backend::open(bucket, prefix, s3)?))
    } else if url.contains("://") {
        Err(Error::Invalid(format!(
            "repository URL {url:?}: only a local path or s3://BUCKET/PREFIX is supported"
        )))
    } else if url.is_empty() {
        Err(Error::Invalid(
            "no repository given: pass --repo or set LIFEBOAT_REPO".into(),
        ))
    } else {
        Ok(Arc::new(LocalBackend::new(url)))
    }
}
