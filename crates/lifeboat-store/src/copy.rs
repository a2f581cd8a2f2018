//! Replicas: a second repository with this one's id, config and keyrings
//! (byte for byte), made by [`Repository::init_replica`] and filled by
//! [`Repository::copy`], which moves sealed files as they are. Nothing is
//! decrypted but metadata, so the backup key is enough; files keep their
//! names, so a snapshot has the same id in every copy.
//!
//! A copy commits as a backup does: packs first (each checked against its
//! name), then index files naming them, then the state files the snapshots
//! name, then the snapshot files, oldest first. Killed anywhere, the next
//! copy goes on: a pack already in the replica is not sent again.
//!
//! Each side's `forget` and `prune` are its own. A replica remembers what
//! it forgot (`forgotten/` files, written by every `forget`), and a copy
//! never brings such a snapshot back.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, FileKind};
use crate::error::{Error, Result};
use crate::id::{sha256_hex, BlobId, PackId, SnapshotId};
use crate::index::IndexPack;
use crate::pack::PackEntry;
use crate::progress::Progress;
use crate::repository::{parse_config, read_config, Access, FullAccess, Repository};
use crate::snapshot::SnapshotEntry;

/// Largest `forgotten/` file read.
const MAX_FORGOTTEN_LEN: usize = 16 << 20;

/// Write an index file after this many packs, as a backup does.
const INDEX_EVERY_PACKS: usize = 8;

/// The plaintext of a `forgotten/` file.
#[derive(Debug, Serialize, Deserialize)]
struct ForgottenFile {
    version: u32,
    time: DateTime<Utc>,
    snapshots: Vec<SnapshotId>,
}

/// What a copy will move.
#[derive(Debug, Clone)]
pub struct CopyPlan {
    /// Snapshots the replica lacks, oldest first.
    pub snapshots: Vec<SnapshotEntry>,
    /// Snapshots the replica already holds.
    pub already: usize,
    /// Snapshots the replica forgot: never copied again.
    pub forgotten: usize,
}

/// What a copy did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CopyReport {
    /// Snapshots copied.
    pub snapshots_copied: usize,
    /// Snapshots the replica already held.
    pub snapshots_present: usize,
    /// Snapshots the replica forgot (left out).
    pub snapshots_forgotten: usize,
    /// Packs sent.
    pub packs_copied: usize,
    /// Packs a killed copy had sent already (indexed, not sent again).
    pub packs_resumed: usize,
    /// Bytes of the packs sent.
    pub pack_bytes: u64,
    /// Index, state and snapshot files written.
    pub files_copied: usize,
}

impl<A: Access> Repository<A> {
    /// Make the empty location `dest` a replica of this repository: its
    /// keyrings, then its config (the file that makes it a repository),
    /// byte for byte. Open it afterwards with the same key.
    pub fn init_replica(&self, dest: &Arc<dyn Backend>) -> Result<()> {
        match read_config(&**dest) {
            Err(Error::NotARepository { .. }) => {}
            Ok(_) | Err(Error::Damaged { .. }) => {
                return Err(Error::AlreadyExists {
                    location: dest.location(),
                })
            }
            Err(e) => return Err(e),
        }
        let config = self.backend().read(FileKind::Config, "config")?;
        // The bytes sent are the config this handle authenticated.
        if parse_config(&config)?.to_bytes() != self.config().to_bytes() {
            return Err(Error::Invalid(
                "the repository's config changed while it was being copied: try again".into(),
            ));
        }
        for f in self.backend().list(FileKind::Keys)? {
            let bytes = self.backend().read(FileKind::Keys, &f.name)?;
            dest.write(FileKind::Keys, &f.name, &bytes)?;
        }
        dest.write(FileKind::Config, "config", &config)?;
        Ok(())
    }

    /// Snapshot ids this repository's `forget` removed (a replica's
    /// memory); unreadable `forgotten/` files are skipped with a warning.
    pub fn forgotten(&self) -> Result<HashSet<SnapshotId>> {
        let mut out = HashSet::new();
        for f in self.backend().list(FileKind::Forgotten)? {
            let parsed = self
                .read_meta_file(FileKind::Forgotten, &f.name, MAX_FORGOTTEN_LEN)
                .and_then(|json| {
                    serde_json::from_slice::<ForgottenFile>(&json).map_err(|e| {
                        Error::damaged(FileKind::Forgotten.path(&f.name), e.to_string())
                    })
                });
            match parsed {
                Ok(file) => out.extend(file.snapshots),
                Err(Error::Backend(e)) if !e.is_not_found() => return Err(Error::Backend(e)),
                Err(e) => tracing::warn!("skipping {}: {e}", FileKind::Forgotten.path(&f.name)),
            }
        }
        Ok(out)
    }

    /// Remember that `ids` were forgotten (before their files go).
    pub(crate) fn remember_forgotten(&self, ids: &[SnapshotId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let file = ForgottenFile {
            version: 1,
            time: Utc::now(),
            snapshots: ids.to_vec(),
        };
        let json = serde_json::to_vec(&file).expect("forgotten serializes");
        self.write_meta_file(FileKind::Forgotten, &json)?;
        Ok(())
    }

    /// Check that `dest` is a replica of this repository (same id, the
    /// same config byte for byte) and list what a copy would move.
    pub fn copy_plan<B: Access>(&self, dest: &Repository<B>) -> Result<CopyPlan> {
        if dest.config().id != self.config().id {
            return Err(Error::Invalid(format!(
                "{} is not a replica of this repository (another repository id): make one \
                 with `lifeboat init --repo DEST --replica-of SOURCE`",
                dest.backend().location()
            )));
        }
        let ours = self.backend().read(FileKind::Config, "config")?;
        let theirs = dest.backend().read(FileKind::Config, "config")?;
        if ours != theirs {
            return Err(Error::Invalid(format!(
                "the config of {} differs from this repository's (a key was added or removed, \
                 or one side was upgraded, after the replica was made): copy `config` and \
                 `keys/` to it again from an admin host, or make a new replica",
                dest.backend().location()
            )));
        }
        let (mine, bad) = self.snapshots()?;
        if let Some(b) = bad.first() {
            tracing::warn!("not copying unreadable {}: {}", b.file, b.detail);
        }
        let present: HashSet<String> = dest
            .backend()
            .list(FileKind::Snapshot)?
            .into_iter()
            .map(|f| f.name)
            .collect();
        let forgotten = dest.forgotten()?;
        let mut plan = CopyPlan {
            snapshots: Vec::new(),
            already: 0,
            forgotten: 0,
        };
        for s in mine {
            if present.contains(&s.id.to_hex()) {
                plan.already += 1;
            } else if forgotten.contains(&s.id) {
                plan.forgotten += 1;
            } else {
                plan.snapshots.push(s);
            }
        }
        Ok(plan)
    }

    /// Copy what `plan` names into `dest`. `needed` limits the blobs sent
    /// to those the plan's snapshots use (the restore key can tell, see
    /// [`Repository::blobs_needed_by`]); without it, every blob of this
    /// repository that the replica lacks is sent.
    pub fn copy<B: Access>(
        &self,
        dest: &Repository<B>,
        plan: &CopyPlan,
        needed: Option<&HashSet<BlobId>>,
        progress: &dyn Progress,
    ) -> Result<CopyReport> {
        let mut report = CopyReport {
            snapshots_present: plan.already,
            snapshots_forgotten: plan.forgotten,
            ..Default::default()
        };
        if plan.snapshots.is_empty() {
            return Ok(report);
        }
        // Neither side's prune may run meanwhile: ours would delete packs
        // about to be read, theirs packs the new index files name.
        let _ours = self.lock(false)?;
        let _theirs = dest.lock(false)?;
        let listing = self.backend().list(FileKind::Pack)?;
        let (index, _) = self.load_index_over(&listing, false)?;
        let dest_listing = dest.backend().list(FileKind::Pack)?;
        let (dest_index, _) = dest.load_index_over(&dest_listing, false)?;
        let dest_packs: HashSet<&str> = dest_listing.iter().map(|f| f.name.as_str()).collect();

        // The packs holding a wanted blob the replica lacks.
        let mut wanted: HashSet<BlobId> = match needed {
            Some(n) => n.clone(),
            None => index.iter().map(|(id, _)| id).collect(),
        };
        if let Some(id) = index.close_over_bases(&mut wanted).first() {
            return Err(Error::damaged(
                format!("blob {id}"),
                "a snapshot to copy needs it and no index of this repository names it: run \
                 `lifeboat verify`",
            ));
        }
        let packs: HashSet<PackId> = wanted
            .iter()
            .filter(|id| !dest_index.contains(id))
            .filter_map(|id| index.get(id).map(|l| l.pack))
            .collect();
        let mut entries: BTreeMap<PackId, Vec<PackEntry>> =
            packs.iter().map(|p| (*p, Vec::new())).collect();
        for (id, loc) in index.iter_copies() {
            if let Some(v) = entries.get_mut(&loc.pack) {
                v.push(PackEntry {
                    id,
                    kind: loc.kind,
                    offset: loc.offset,
                    length: loc.length,
                    plain_length: loc.plain_length,
                    base: loc.base,
                });
            }
        }
        let sizes: BTreeMap<&str, u64> =
            listing.iter().map(|f| (f.name.as_str(), f.size)).collect();
        progress.set_length(
            entries
                .keys()
                .filter(|p| !dest_packs.contains(p.to_hex().as_str()))
                .filter_map(|p| sizes.get(p.to_hex().as_str()))
                .sum(),
        );

        // Packs, several at a time; an index file every few.
        let queue = Mutex::new(entries.into_iter());
        let done: Mutex<Vec<IndexPack>> = Mutex::new(Vec::new());
        let error: Mutex<Option<Error>> = Mutex::new(None);
        let (copied, resumed, bytes, indexes) = (
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicU64::new(0),
            AtomicUsize::new(0),
        );
        let flush = |min: usize| -> Result<()> {
            let batch = {
                let mut d = done
                    .lock()
                    .map_err(|_| Error::Internal("copy index poisoned".into()))?;
                if d.len() < min.max(1) {
                    return Ok(());
                }
                std::mem::take(&mut *d)
            };
            let written = dest.write_index_files(&batch)?;
            indexes.fetch_add(written.len(), Ordering::Relaxed);
            Ok(())
        };
        let threads = dest
            .backend()
            .connections()
            .min(self.backend().connections())
            .max(1);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| loop {
                    if error.lock().map(|e| e.is_some()).unwrap_or(true) {
                        return;
                    }
                    let Some((pack, blobs)) = queue.lock().ok().and_then(|mut q| q.next()) else {
                        return;
                    };
                    let name = pack.to_hex();
                    let step = || -> Result<()> {
                        if dest_packs.contains(name.as_str()) {
                            resumed.fetch_add(1, Ordering::Relaxed);
                        } else {
                            let data = self.backend().read(FileKind::Pack, &name)?;
                            if sha256_hex(&data) != name {
                                return Err(Error::damaged(
                                    FileKind::Pack.path(&name),
                                    "content does not match its name (SHA-256): not copied; \
                                     run `lifeboat verify` on the source",
                                ));
                            }
                            dest.backend().write(FileKind::Pack, &name, &data)?;
                            copied.fetch_add(1, Ordering::Relaxed);
                            bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                            progress.inc(data.len() as u64);
                        }
                        if let Ok(mut d) = done.lock() {
                            d.push(IndexPack { id: pack, blobs });
                        }
                        flush(INDEX_EVERY_PACKS)
                    };
                    if let Err(e) = step() {
                        if let Ok(mut slot) = error.lock() {
                            slot.get_or_insert(e);
                        }
                        return;
                    }
                });
            }
        });
        if let Some(e) = error.into_inner().ok().flatten() {
            // What was sent is findable by the next copy (it is in the
            // replica's listing), indexed or not.
            let _ = flush(1);
            return Err(e);
        }
        flush(1)?;
        report.packs_copied = copied.load(Ordering::Relaxed);
        report.packs_resumed = resumed.load(Ordering::Relaxed);
        report.pack_bytes = bytes.load(Ordering::Relaxed);
        report.files_copied = indexes.load(Ordering::Relaxed);

        // State files the snapshots name, then the snapshots, oldest first.
        let dest_states: HashSet<String> = dest
            .backend()
            .list(FileKind::State)?
            .into_iter()
            .map(|f| f.name)
            .collect();
        let mut sent = HashSet::new();
        for s in &plan.snapshots {
            for v in s.snapshot.sources.values() {
                for name in v.state.iter().chain(&v.state_parts) {
                    if dest_states.contains(name) || !sent.insert(name.clone()) {
                        continue;
                    }
                    copy_file(self.backend(), dest.backend(), FileKind::State, name)?;
                    report.files_copied += 1;
                }
            }
        }
        for s in &plan.snapshots {
            copy_file(
                self.backend(),
                dest.backend(),
                FileKind::Snapshot,
                &s.id.to_hex(),
            )?;
            report.files_copied += 1;
            report.snapshots_copied += 1;
        }
        progress.finish();
        Ok(report)
    }
}

impl Repository<FullAccess> {
    /// Every blob `snapshots` need (their own, their items', delta bases).
    pub fn blobs_needed_by(&self, snapshots: &[SnapshotEntry]) -> Result<HashSet<BlobId>> {
        let (index, _) = self.load_index()?;
        Ok(self.used_blobs(snapshots, &index)?.0)
    }
}

/// One sealed file, moved as it is after checking it against its name.
fn copy_file(
    from: &Arc<dyn Backend>,
    to: &Arc<dyn Backend>,
    kind: FileKind,
    name: &str,
) -> Result<()> {
    let data = from.read(kind, name)?;
    if sha256_hex(&data) != name {
        return Err(Error::damaged(
            kind.path(name),
            "content does not match its name (SHA-256): not copied",
        ));
    }
    to.write(kind, name, &data)?;
    Ok(())
}
