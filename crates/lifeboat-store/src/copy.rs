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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, FileKind};
use crate::crypto;
use crate::error::{Error, Result};
use crate::id::{sha256_hex, BlobId, PackId, SnapshotId};
use crate::index::IndexPack;
use crate::pack::PackEntry;
use crate::progress::Progress;
use crate::repository::{parse_config, read_config, Access, FullAccess, Repository, Unreadable};
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
    /// The config signing key's signature (hex) of
    /// `"lifeboat forgotten v1\n" ‖ JSON of this with signature ""`: only a
    /// restore key's `forget` writes one a copy believes (the backup key
    /// could otherwise hide snapshots from a replica for good).
    #[serde(default)]
    signature: String,
}

impl ForgottenFile {
    fn signing_input(&self) -> Vec<u8> {
        let unsigned = ForgottenFile {
            signature: String::new(),
            snapshots: self.snapshots.clone(),
            ..*self
        };
        let mut m = b"lifeboat forgotten v1\n".to_vec();
        m.extend(serde_json::to_vec(&unsigned).expect("forgotten serializes"));
        m
    }
}

/// What a copy will move.
#[derive(Debug, Clone)]
pub struct CopyPlan {
    /// Snapshots the replica lacks (or holds a damaged file of), oldest
    /// first.
    pub snapshots: Vec<SnapshotEntry>,
    /// Snapshots the replica holds: their data is checked and completed
    /// too (a snapshot file can be there before its packs).
    pub held: Vec<SnapshotEntry>,
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
    /// Packs the replica had that did not match their name, sent again.
    pub packs_replaced: usize,
    /// What is wrong in this repository (it is copied as it is; run
    /// `lifeboat verify` on it).
    pub source_problems: Vec<String>,
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
        // A replica of a repository under object lock is locked alike
        // where its store can (a local disk cannot).
        if let (Some(lock), Some(locking)) = (self.config().object_lock, dest.locking()) {
            if !locking.lock_enabled()? {
                return Err(Error::Invalid(format!(
                    "this repository keeps its files under S3 Object Lock and the bucket of {} \
                     does not have it enabled: make the replica in a bucket with object lock \
                     (or on a local disk)",
                    dest.location()
                )));
            }
            locking.retain_writes(lock.mode, lock.secs());
        }
        // Only the keyrings the config names (a stray file is not copied).
        for f in self.backend().list(FileKind::Keys)? {
            if !self.config().keys.iter().any(|k| k.file == f.name) {
                continue;
            }
            let bytes = self.backend().read(FileKind::Keys, &f.name)?;
            dest.write(FileKind::Keys, &f.name, &bytes)?;
        }
        dest.write(FileKind::Config, "config", &config)?;
        Ok(())
    }

    /// Snapshot ids this repository's `forget` removed (a replica's
    /// memory); unreadable `forgotten/` files are skipped with a warning.
    pub fn forgotten(&self) -> Result<HashSet<SnapshotId>> {
        let (ids, bad) = self.read_forgotten()?;
        for u in bad {
            tracing::warn!("skipping {}: {}", u.file, u.detail);
        }
        Ok(ids)
    }

    /// The ids of the `forgotten/` records that read and verify, and the
    /// records that do not (`verify` names them: a planted one could hide
    /// snapshots from a copy).
    pub(crate) fn read_forgotten(&self) -> Result<(HashSet<SnapshotId>, Vec<Unreadable>)> {
        let mut out = HashSet::new();
        let mut bad = Vec::new();
        for f in self.backend().list(FileKind::Forgotten)? {
            if f.size > MAX_FORGOTTEN_LEN as u64 {
                bad.push(Unreadable {
                    file: format!("forgotten/{:?}", f.name),
                    detail: format!("{} bytes: larger than any forgotten record", f.size),
                });
                continue;
            }
            let parsed = self
                .read_meta_file(FileKind::Forgotten, &f.name, MAX_FORGOTTEN_LEN)
                .and_then(|json| {
                    serde_json::from_slice::<ForgottenFile>(&json).map_err(|e| {
                        Error::damaged(FileKind::Forgotten.path(&f.name), e.to_string())
                    })
                });
            let signed = |f: &ForgottenFile| match self.config().verify_key.as_deref() {
                Some(key) => crypto::verify_signature(key, &f.signing_input(), &f.signature),
                None => false,
            };
            match parsed {
                Ok(file) if signed(&file) => out.extend(file.snapshots),
                Ok(_) => bad.push(Unreadable {
                    file: FileKind::Forgotten.path(&f.name),
                    detail: "not signed by a restore key's forget (planted?): copies ignore it"
                        .into(),
                }),
                Err(Error::Backend(e)) if !e.is_not_found() => return Err(Error::Backend(e)),
                Err(e) => bad.push(Unreadable {
                    file: FileKind::Forgotten.path(&f.name),
                    detail: e.to_string(),
                }),
            }
        }
        Ok((out, bad))
    }

    /// Remember that `ids` were forgotten (before their files go).
    pub(crate) fn remember_forgotten(&self, ids: &[SnapshotId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut file = ForgottenFile {
            version: 1,
            time: Utc::now(),
            snapshots: ids.to_vec(),
            signature: String::new(),
        };
        // A format-1 repository has no signing key: nothing a copy could
        // believe, so nothing is written.
        let Some(signature) = self.access.sign_hex(&file.signing_input()) else {
            return Ok(());
        };
        file.signature = signature;
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
        // A replica's snapshot file counts as held only with the size of
        // ours (a damaged or planted one is sent again; the same size with
        // other bytes fails its name's hash in verify).
        let sizes: HashMap<String, u64> = self
            .backend()
            .list(FileKind::Snapshot)?
            .into_iter()
            .map(|f| (f.name, f.size))
            .collect();
        let present: HashMap<String, u64> = dest
            .backend()
            .list(FileKind::Snapshot)?
            .into_iter()
            .map(|f| (f.name, f.size))
            .collect();
        let forgotten = dest.forgotten()?;
        let mut plan = CopyPlan {
            snapshots: Vec::new(),
            held: Vec::new(),
            already: 0,
            forgotten: 0,
        };
        for s in mine {
            let name = s.id.to_hex();
            if present
                .get(&name)
                .is_some_and(|n| Some(n) == sizes.get(&name))
            {
                plan.already += 1;
                plan.held.push(s);
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
        // Neither side's prune may run meanwhile: ours would delete packs
        // about to be read, theirs packs the new index files name.
        let _ours = self.lock(false)?;
        let _theirs = dest.lock(false)?;
        let listing = self.backend().list(FileKind::Pack)?;
        // Index entries naming packs this repository lacks: its own damage,
        // which the replica will share (a backup-key verify of the replica
        // cannot see it: say it here).
        let (index, lost, _) = self.load_index_split(&listing)?;
        for p in lost {
            report.source_problems.push(format!(
                "{}: named by an index file but missing here: what it held is not in the copy \
                 either",
                FileKind::Pack.path(&p.to_hex())
            ));
        }
        let dest_listing = dest.backend().list(FileKind::Pack)?;
        let (dest_index, _) = dest.load_index_over(&dest_listing, false)?;
        let dest_packs: HashSet<&str> = dest_listing.iter().map(|f| f.name.as_str()).collect();

        // The packs holding a wanted blob the replica lacks: every copy of
        // it (an index entry proves nothing about the bytes; a reader
        // falls back to another copy, so the replica gets them all).
        let mut wanted: HashSet<BlobId> = match needed {
            Some(n) => n.clone(),
            None => index.iter().map(|(id, _)| id).collect(),
        };
        for id in index.close_over_bases(&mut wanted) {
            report.source_problems.push(format!(
                "blob {id}: a snapshot needs it and no index here names it"
            ));
        }
        let packs: HashSet<PackId> = wanted
            .iter()
            .filter(|id| !dest_index.contains(id))
            .flat_map(|id| index.copies(id).into_iter().map(|l| l.pack))
            .collect();
        let mut entries: BTreeMap<PackId, Vec<PackEntry>> =
            packs.iter().map(|p| (*p, Vec::new())).collect();
        for (id, loc) in index.iter_copies() {
            if let Some(v) = entries.get_mut(&loc.pack) {
                v.push(loc.entry(id));
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
        let entries: Vec<(PackId, Vec<PackEntry>)> = entries.into_iter().collect();
        let done: Mutex<Vec<IndexPack>> = Mutex::new(Vec::new());
        let (copied, resumed, replaced, bytes, indexes) = (
            AtomicUsize::new(0),
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
            .min(self.backend().connections());
        let sent = crate::parallel::for_each(&entries, threads, |(pack, blobs)| {
            let name = pack.to_hex();
            // Left by a killed copy (or planted): kept only if its bytes
            // match its name.
            let kept = dest_packs.contains(name.as_str())
                && match dest.backend().read(FileKind::Pack, &name) {
                    Ok(d) => sha256_hex(&d) == name,
                    Err(e) if e.is_not_found() => false,
                    Err(e) => return Err(e.into()),
                };
            if kept {
                resumed.fetch_add(1, Ordering::Relaxed);
            } else {
                if dest_packs.contains(name.as_str()) {
                    replaced.fetch_add(1, Ordering::Relaxed);
                }
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
                d.push(IndexPack {
                    id: *pack,
                    blobs: blobs.clone(),
                });
            }
            flush(INDEX_EVERY_PACKS)
        });
        if let Err(e) = sent {
            // What was sent is findable by the next copy (it is in the
            // replica's listing), indexed or not.
            let _ = flush(1);
            return Err(e);
        }
        flush(1)?;
        report.packs_copied = copied.load(Ordering::Relaxed);
        report.packs_resumed = resumed.load(Ordering::Relaxed);
        report.packs_replaced = replaced.load(Ordering::Relaxed);
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
        for s in plan.snapshots.iter().chain(&plan.held) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::LocalBackend;
    use crate::{BackupOptions, InitOptions, NoProgress, RestoreKey};

    fn copy_all(src: &Repository<FullAccess>, dest: &Repository<FullAccess>) -> CopyReport {
        let plan = src.copy_plan(dest).unwrap();
        src.copy(dest, &plan, None, &NoProgress).unwrap()
    }

    #[test]
    fn planted_files_in_a_replica_do_not_pass_for_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let a: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("a")));
        let b: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("b")));
        let key = RestoreKey::generate();
        let (src, _) = Repository::init(a.clone(), &key, &InitOptions::default()).unwrap();
        let data = b"a row of the clinic's data\n".repeat(40_000);
        let (id, _) = crate::backup_reader(
            &src,
            BackupOptions::default(),
            "x",
            "data",
            &mut &data[..],
            None,
        )
        .unwrap();
        src.init_replica(&b).unwrap();
        let dest = Repository::open_for_restore(b.clone(), &key).unwrap();

        // Someone with the store's credentials puts the (authentic)
        // snapshot file into the replica before its data, and a damaged
        // copy of its pack under the pack's name.
        let snap = a.read(FileKind::Snapshot, &id.to_hex()).unwrap();
        b.write(FileKind::Snapshot, &id.to_hex(), &snap).unwrap();
        let pack = a
            .list(FileKind::Pack)
            .unwrap()
            .into_iter()
            .max_by_key(|f| f.size)
            .unwrap()
            .name;
        let mut bad = a.read(FileKind::Pack, &pack).unwrap();
        let middle = bad.len() / 2;
        bad[middle] ^= 1;
        b.write(FileKind::Pack, &pack, &bad).unwrap();
        // And a forgotten record for the snapshot, not signed.
        let forged = ForgottenFile {
            version: 1,
            time: Utc::now(),
            snapshots: vec![id],
            signature: String::new(),
        };
        dest.write_meta_file(FileKind::Forgotten, &serde_json::to_vec(&forged).unwrap())
            .unwrap();
        assert!(
            dest.forgotten().unwrap().is_empty(),
            "unsigned: not believed"
        );
        let named = dest.verify(&Default::default(), &NoProgress).unwrap();
        assert!(
            named
                .problems
                .iter()
                .any(|p| p.what.starts_with("forgotten/") && p.detail.contains("not signed")),
            "{:?}",
            named.problems
        );

        let report = copy_all(&src, &dest);
        assert_eq!(report.snapshots_present, 1, "{report:?}");
        assert_eq!(report.packs_replaced, 1, "{report:?}");
        assert_eq!(
            b.read(FileKind::Pack, &pack).unwrap(),
            a.read(FileKind::Pack, &pack).unwrap()
        );
        let (index, _) = dest.load_index().unwrap();
        let snapshot = dest.find_snapshot(&id.to_hex()).unwrap();
        let items = dest.manifest(&index, &snapshot.snapshot).unwrap();
        let mut out = Vec::new();
        dest.restore_item(&index, &items[0], &mut out, &NoProgress)
            .unwrap();
        assert_eq!(out, data);

        // A signed record (a forget on the replica) is believed.
        dest.forget(&[id]).unwrap();
        assert!(dest.forgotten().unwrap().contains(&id));
        let plan = src.copy_plan(&dest).unwrap();
        assert_eq!((plan.snapshots.len(), plan.forgotten), (0, 1));
    }

    #[test]
    fn a_name_from_the_store_never_becomes_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let a = LocalBackend::new(dir.path().join("a"));
        std::fs::write(dir.path().join("secret"), b"x").unwrap();
        for name in ["../../secret", "../secret", "a/b", ".tmp-x", "", "a\nb"] {
            let err = a.read(FileKind::State, name).unwrap_err();
            assert!(err.is_not_found(), "{name:?}: {err}");
            assert!(a.write(FileKind::State, name, b"y").is_err(), "{name:?}");
        }
    }
}
