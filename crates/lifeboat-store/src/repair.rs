//! `repair index`: rebuild the index from the packs themselves.
//!
//! Every pack ends with a header (sealed to the metadata recipient) that
//! lists its blobs, so the index is redundant: when index files are lost
//! or damaged, reading each pack's header gives it back. For a pack whose
//! header cannot be read, the entries a readable old index file gives for
//! it are kept (each blob is still checked against its id when read).
//!
//! Like prune, repair writes before it deletes, under the exclusive lock:
//! the new index files first, then the old ones it replaces. Killed at any
//! point the repository stays readable (at worst with duplicate entries).
//! Afterwards it names the snapshots that still need a blob no pack holds:
//! those have lost data, and `verify` names their items.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::backend::FileKind;
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId};
use crate::index::{Index, IndexPack};
use crate::pack::PackEntry;
use crate::progress::Progress;
use crate::repository::{FullAccess, Repository};

/// Settings of [`Repository::repair_index`].
#[derive(Debug, Clone, Default)]
pub struct RepairOptions {
    /// Report what would change; write and delete nothing.
    pub dry_run: bool,
}

/// What [`Repository::repair_index`] found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairReport {
    /// Packs in the repository.
    pub packs: usize,
    /// Packs indexed from their own header.
    pub packs_from_header: usize,
    /// Packs whose header was unreadable but a readable old index named.
    pub packs_from_old_index: usize,
    /// Packs that could not be indexed at all, with why (their blobs are
    /// lost unless another pack holds them).
    pub unreadable_packs: Vec<String>,
    /// Old index files that could not be read.
    pub damaged_index_files: Vec<String>,
    /// Blobs in the new index.
    pub blobs: usize,
    /// Index files written.
    pub index_files_written: usize,
    /// Old index files removed.
    pub index_files_removed: usize,
    /// Snapshots that need a blob no pack holds, with how many it misses.
    pub snapshots_missing_data: Vec<(String, usize)>,
}

impl Repository<FullAccess> {
    /// Rebuild the index from pack headers; see the module documentation.
    pub fn repair_index(
        &self,
        opts: &RepairOptions,
        progress: &dyn Progress,
    ) -> Result<RepairReport> {
        let _lock = self.lock(true)?;
        let backend = self.backend().clone();
        let mut report = RepairReport::default();

        // What the old index files say, per pack (readable files only).
        let mut old: HashMap<PackId, Vec<PackEntry>> = HashMap::new();
        let (old_files, damaged) = self.each_index_file(|file| {
            for p in file.packs {
                old.entry(p.id).or_insert(p.blobs);
            }
        })?;
        report.damaged_index_files = damaged.into_iter().map(|u| u.detail).collect();

        let packs = backend.list(FileKind::Pack)?;
        report.packs = packs.len();
        progress.set_length(packs.len() as u64);
        let mut rebuilt: Vec<IndexPack> = Vec::new();
        for f in &packs {
            progress.inc(1);
            let Ok(id) = f.name.parse::<PackId>() else {
                continue;
            };
            let header = if f.size < crate::pack::TRAILER_LEN as u64 {
                Err(Error::damaged(
                    FileKind::Pack.path(&f.name),
                    "shorter than a pack trailer",
                ))
            } else {
                self.read_pack_header(&f.name, f.size)
            };
            match header {
                Ok(blobs) => {
                    report.packs_from_header += 1;
                    rebuilt.push(IndexPack { id, blobs });
                }
                Err(Error::Backend(e)) if !e.is_not_found() => return Err(Error::Backend(e)),
                Err(e) => match old.remove(&id) {
                    Some(blobs) => {
                        tracing::warn!("{e}: keeping what the old index says of it");
                        report.packs_from_old_index += 1;
                        rebuilt.push(IndexPack { id, blobs });
                    }
                    None => report.unreadable_packs.push(e.to_string()),
                },
            }
        }
        progress.finish();

        let mut index = Index::default();
        for p in &rebuilt {
            index.add_pack(p);
        }
        report.blobs = index.len();
        report.snapshots_missing_data = self.snapshots_missing(&index)?;

        if !opts.dry_run {
            let written = self.write_index_files(&rebuilt)?;
            report.index_files_written = written.len();
            for name in old_files.iter().filter(|n| !written.contains(*n)) {
                backend.remove(FileKind::Index, name)?;
                report.index_files_removed += 1;
            }
        }
        Ok(report)
    }

    /// Snapshots needing blobs (manifest, items, delta bases) `index` lacks.
    fn snapshots_missing(&self, index: &Index) -> Result<Vec<(String, usize)>> {
        let (snapshots, _) = self.snapshots()?;
        let mut out = Vec::new();
        for s in &snapshots {
            let mut need: HashSet<BlobId> = s.snapshot.own_blobs().copied().collect();
            if need.iter().all(|b| index.contains(b)) {
                match self.manifest_lines(index, &s.snapshot) {
                    Ok(items) => need.extend(items.iter().flat_map(|i| i.needed_blobs())),
                    Err(Error::Damaged { what, detail }) => {
                        tracing::warn!("snapshot {}: manifest {what}: {detail}", s.id);
                        out.push((s.id.to_hex(), s.snapshot.manifest.blobs.len()));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let missing = index.close_over_bases(&mut need).len();
            if missing > 0 {
                out.push((s.id.to_hex(), missing));
            }
        }
        Ok(out)
    }
}
