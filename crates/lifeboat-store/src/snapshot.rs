//! Snapshots and their manifests.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{BlobId, SnapshotId};

/// One backed-up thing: a stream, a table, an object, an env set, a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestItem {
    /// Unique among the items of its source in the snapshot, e.g.
    /// `clinic/patients` (mysql) or `scans/2024/a.pdf` (objects).
    pub name: String,
    /// The source that produced it (`command`, `mysql`, `objects`, ...).
    pub source: String,
    /// What it is, in the source's terms (`stream`, `table`, `object`, ...).
    pub kind: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// SHA-256 of the plaintext, 64 hex digits.
    pub sha256: String,
    /// The blobs whose plaintexts, concatenated, are the item.
    pub blobs: Vec<BlobId>,
    /// Source-side facts to check a restore against (row counts, ETag, ...).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub meta: serde_json::Value,
    /// Format 3: where this item's `sha256` and `meta` are also kept, sealed
    /// to the data recipient, for a writer that cannot read them (a backup
    /// host carrying an object over). An item read with an empty `sha256`
    /// takes both from there ([`Repository::manifest`](crate::Repository::manifest)
    /// resolves it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<InfoRef>,
}

impl ManifestItem {
    /// Every blob the item needs: its content's, then its info blob.
    pub fn needed_blobs(&self) -> impl Iterator<Item = &BlobId> {
        self.blobs.iter().chain(self.info.as_ref().map(|i| &i.blob))
    }

    /// True when `sha256` and `meta` are to be read from [`Self::info`].
    pub fn details_sealed(&self) -> bool {
        self.sha256.is_empty() && self.info.is_some()
    }
}

/// One line of an *info blob* (JSON lines of [`ItemInfo`], sealed to the
/// data recipient like every blob; docs/FORMAT.md, "Info blobs").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoRef {
    /// The info blob.
    pub blob: BlobId,
    /// The line, counted from 0.
    pub line: u32,
}

/// What an info line holds about an item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemInfo {
    /// SHA-256 of the item's plaintext, 64 hex digits.
    pub sha256: String,
    /// The item's `meta`.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub meta: serde_json::Value,
}

/// What one source contributed to a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceSummary {
    /// Items stored.
    pub items: u64,
    /// Their plaintext bytes.
    pub bytes: u64,
    /// Source-level facts (server version, object count, ref list, ...).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub facts: serde_json::Value,
    /// The `state/` file the source left for its next backup, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Further `state/` files the source's state is made of (chunks of a
    /// large state, and the earlier files it is a delta of), kept, like
    /// [`state`](Self::state), while the snapshot exists. A source reads
    /// them through [`Repository::source_state_part`](crate::Repository::source_state_part).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub state_parts: Vec<String>,
    /// Format 3: info blobs this backup stored for the source's state (the
    /// details of items a later backup may carry over without reading
    /// them); needed, like the items' blobs, while the snapshot exists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub info_blobs: Vec<BlobId>,
    /// Set when the source failed during the backup: the snapshot was
    /// stored for the other sources, and this source's items (if any) are
    /// an incomplete set that restores refuse by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where the manifest (JSON lines of [`ManifestItem`]) is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestRef {
    /// Tree blobs, in order.
    pub blobs: Vec<BlobId>,
    /// Plaintext size.
    pub size: u64,
    /// SHA-256 of the plaintext.
    pub sha256: String,
}

/// Counters of one backup run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackupStats {
    /// Items stored.
    pub items: u64,
    /// Plaintext bytes read from sources.
    pub bytes: u64,
    /// Blobs produced by chunking.
    pub blobs: u64,
    /// Blobs that were new (not already in the repository).
    pub new_blobs: u64,
    /// Plaintext bytes of new blobs.
    pub new_plain_bytes: u64,
    /// Bytes added to the repository (packs and index files).
    pub added_bytes: u64,
    /// Wall time of the backup in milliseconds.
    pub duration_ms: u64,
}

/// A snapshot file's plaintext.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Format version (1).
    pub version: u32,
    /// When the backup started.
    pub time: DateTime<Utc>,
    /// The host that ran it.
    pub hostname: String,
    /// User tags (`nightly`, `pre-migration`, ...).
    pub tags: Vec<String>,
    /// A free-text note (`snapshot-before-migration --note`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Per source.
    pub sources: BTreeMap<String, SourceSummary>,
    /// The item list.
    pub manifest: ManifestRef,
    /// What the run did.
    pub stats: BackupStats,
    /// The lifeboat version that wrote it.
    pub program: String,
}

/// The tag of log snapshots: pieces of a stream a source captures between
/// its snapshots (the MySQL binary log), which extend an earlier snapshot
/// rather than stand alone. They are never `latest`, and retention
/// policies leave them to their own rule.
pub const LOG_TAG: &str = "binlog";

impl Snapshot {
    /// A log snapshot (see [`LOG_TAG`]).
    pub fn is_log(&self) -> bool {
        self.tags.iter().any(|t| t == LOG_TAG)
    }

    /// True when the snapshot is dated further ahead of this host's clock
    /// than [`MAX_CLOCK_SKEW`](crate::MAX_CLOCK_SKEW): never `latest`,
    /// and outside every retention rule.
    pub fn is_from_the_future(&self) -> bool {
        let skew = chrono::TimeDelta::from_std(crate::lock::MAX_CLOCK_SKEW)
            .unwrap_or(chrono::TimeDelta::zero());
        self.time > Utc::now() + skew
    }

    /// The blobs the snapshot file names itself: its manifest's, then the
    /// info blobs of its sources (its items name the rest).
    pub fn own_blobs(&self) -> impl Iterator<Item = &BlobId> {
        self.manifest
            .blobs
            .iter()
            .chain(self.sources.values().flat_map(|s| s.info_blobs.iter()))
    }

    /// Sources that failed during the backup (the snapshot is partial).
    pub fn failed_sources(&self) -> Vec<(&str, &str)> {
        self.sources
            .iter()
            .filter_map(|(k, v)| v.error.as_deref().map(|e| (k.as_str(), e)))
            .collect()
    }
}

/// A snapshot with its id.
#[derive(Debug, Clone)]
pub struct SnapshotEntry {
    /// The id (SHA-256 of the stored file).
    pub id: SnapshotId,
    /// The content.
    pub snapshot: Snapshot,
}
