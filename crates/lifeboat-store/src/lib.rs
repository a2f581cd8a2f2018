//! lifeboat's repository: a content-addressed, deduplicated, compressed and
//! encrypted store of snapshots. It knows nothing about the sources that
//! feed it; they hand it named byte streams ("items") with some facts.
//!
//! Layers, bottom up (see ARCHITECTURE.md and docs/FORMAT.md):
//! - [`backend`]: named files of opaque bytes (local directory or S3);
//! - packs, index, snapshots: encrypted files whose names are the SHA-256 of
//!   their bytes;
//! - [`Repository`]: opened with a [`BackupKey`] (write-only for data) or a
//!   [`RestoreKey`] (everything); the type parameter says which.
//!
//! ```
//! # fn main() -> lifeboat_store::Result<()> {
//! use lifeboat_store::{backend::LocalBackend, BackupOptions, InitOptions, Repository, RestoreKey};
//! use std::sync::Arc;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let backend = Arc::new(LocalBackend::new(dir.path()));
//! let restore_key = RestoreKey::generate();
//! let (_, backup_key) = Repository::init(backend.clone(), &restore_key, &InitOptions::default())?;
//!
//! // A backup host holds only the backup key.
//! let repo = Repository::open_for_backup(backend.clone(), backup_key)?;
//! let (id, _) = lifeboat_store::backup_reader(
//!     &repo, BackupOptions::default(), "command", "hello.txt", &mut &b"hello"[..], None)?;
//!
//! // Reading needs the restore key.
//! let repo = Repository::open_for_restore(backend, &restore_key)?;
//! let (index, _) = repo.load_index()?;
//! let snap = repo.find_snapshot(&id.to_hex())?;
//! let items = repo.manifest(&index, &snap.snapshot)?;
//! let mut out = Vec::new();
//! repo.restore_item(&index, &items[0], &mut out, &lifeboat_store::NoProgress)?;
//! assert_eq!(out, b"hello");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backend;
mod backup;
mod chunker;
mod copy;
mod crypto;
pub mod delta;
mod error;
#[cfg(test)]
mod fuzz;
#[doc(hidden)]
pub mod fuzzing;
mod id;
mod index;
mod lock;
mod object_lock;
mod pack;
mod parallel;
mod progress;
mod prune;
mod repair;
mod repository;
mod runs;
mod snapshot;
mod upgrade;
mod verify;

pub use backup::{backup_reader, BackupOptions, BackupSession, ItemWriter, PARTIAL_TAG};
pub use chunker::ChunkerParams;
pub use copy::{CopyPlan, CopyReport};
pub use crypto::{create_private_dir, write_secret_file, BackupKey, RestoreKey};
pub use error::{hints, BackendError, BackendErrorKind, Classify, Error, ErrorClass, Result};
pub use id::{sha256, sha256_hex, BlobId, PackId, SnapshotId};
pub use index::{BlobLocation, Index};
pub use lock::{
    hostname, lock_states, process_alive, process_identity, LockInfo, LockState, MAX_CLOCK_SKEW,
    STALE_AFTER,
};
pub use object_lock::{undelete, LockReport, UndeleteReport};
pub use pack::{BlobKind, PackEntry, PACK_MAGIC};
pub use progress::{NoProgress, Progress, ProgressBars};
pub use prune::{ForgetPlan, ForgetPolicy, PruneOptions, PruneReport};
pub use repair::{RepairOptions, RepairReport};
pub use repository::{
    Access, BackupAccess, FullAccess, InitOptions, KeyEntry, ObjectLock, OpenOptions, RepoConfig,
    Repository, Unreadable, FORMAT_VERSION,
};
pub use runs::{RunFile, MAX_RUN_LEN};
pub use snapshot::{
    BackupStats, InfoRef, ItemInfo, ManifestItem, ManifestRef, Snapshot, SnapshotEntry,
    SourceSummary, LOG_TAG,
};
pub use upgrade::{StateRewriter, UpgradeOptions, UpgradeReport};
pub use verify::{Problem, VerifyOptions, VerifyReport};

/// The age library, re-exported so callers name the same `SecretString`.
pub use age::secrecy;
