//! `verify`: the structure check (every file a snapshot needs is listed and
//! indexed) and, optionally, the data check (every selected pack is read,
//! its SHA-256 compared with its name, its header with the index, and each
//! blob decrypted and its id recomputed). Damage is reported with every
//! snapshot and item that needs the damaged part.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::backend::FileKind;
use crate::error::{Error, Result};
use crate::id::{sha256_hex, BlobId, PackId};
use crate::index::Index;
use crate::pack::{self, TRAILER_LEN};
use crate::progress::Progress;
use crate::repository::{Access, Repository};

/// Options of [`Repository::verify`].
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions {
    /// Read and decrypt this percentage of packs (chosen at random);
    /// `None` checks structure only. Needs the restore key.
    pub read_data_percent: Option<f64>,
}

/// One thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The damaged or missing part: `data/ab/ab12...`, `blob 12ab...`, a snapshot.
    pub what: String,
    /// What check failed.
    pub detail: String,
    /// `snapshot <id8> item <name>` for everything that cannot be restored
    /// because of it.
    pub needed_by: Vec<String>,
}

/// What verify checked and found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VerifyReport {
    /// Snapshots checked.
    pub snapshots: usize,
    /// Pack files in the repository.
    pub packs: usize,
    /// Pack files read and checked byte by byte.
    pub packs_read: usize,
    /// Blobs decrypted and re-hashed.
    pub blobs_read: u64,
    /// Items of the newest snapshot read whole and checked against their
    /// manifest size and SHA-256 (with `--read-data`).
    #[serde(default)]
    pub items_checked: u64,
    /// Packs no index names (left by an interrupted backup; harmless, the
    /// next backup indexes and reuses them).
    pub unindexed_packs: usize,
    /// Everything wrong. Empty means the repository is sound.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Damage found in the first pass, before attributing it to snapshots.
#[derive(Default)]
struct Damage {
    /// Blob → why it cannot be read.
    blobs: HashMap<BlobId, String>,
    /// Problems with files (packs, index files, snapshots, manifests).
    files: Vec<Problem>,
    /// Pack → the blobs lost with it, so the report names the pack once.
    pack_of: HashMap<BlobId, String>,
    /// State parts already read (many snapshots share them).
    parts_read: std::collections::HashSet<String>,
}

impl Damage {
    /// The problems: files first, then each damaged or lost blob with every
    /// snapshot and item that needs it (blobs lost together named once),
    /// then damaged blobs no snapshot needs (a later backup would dedup
    /// against them).
    fn into_problems(self, blob_users: &BTreeMap<BlobId, BTreeSet<String>>) -> Vec<Problem> {
        let mut problems = self.files;
        let mut by_what: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for (blob, users) in blob_users {
            let (what, detail) = match self.blobs.get(blob) {
                Some(why) => {
                    let pack = self.pack_of.get(blob).cloned().unwrap_or_default();
                    (format!("blob {blob} in {pack}"), why.clone())
                }
                None => (
                    format!("blob {blob}"),
                    "not in any index: its pack or index file is lost".into(),
                ),
            };
            by_what
                .entry((what, detail))
                .or_default()
                .extend(users.iter().cloned());
        }
        for ((what, detail), users) in by_what {
            problems.push(Problem {
                what,
                detail,
                needed_by: users.into_iter().collect(),
            });
        }
        for (blob, why) in &self.blobs {
            if !blob_users.contains_key(blob) {
                let pack = self.pack_of.get(blob).cloned().unwrap_or_default();
                problems.push(Problem {
                    what: format!("blob {blob} in {pack}"),
                    detail: format!("{why} (no snapshot needs it)"),
                    needed_by: vec![],
                });
            }
        }
        problems
    }
}

impl<A: Access> Repository<A> {
    /// Check the repository. Returns a report; an `Err` means verify itself
    /// could not run (backend unreachable, wrong key), not that damage was found.
    pub fn verify(&self, opts: &VerifyOptions, progress: &dyn Progress) -> Result<VerifyReport> {
        if opts.read_data_percent.is_some() && self.access.data_identities().is_empty() {
            return Err(Error::NeedRestoreKey {
                operation: "verify --read-data",
            });
        }
        let mut report = VerifyReport::default();
        let mut damage = Damage::default();

        let listing = self.backend().list(FileKind::Pack)?;
        let (index, bad_index) = self.load_index_over(&listing, true)?;
        let packs: BTreeMap<String, u64> = listing.into_iter().map(|f| (f.name, f.size)).collect();
        report.packs = packs.len();
        for u in bad_index {
            damage.files.push(Problem {
                what: u.file,
                detail: u.detail,
                needed_by: vec![],
            });
        }
        let (snapshots, bad_snaps) = self.snapshots()?;
        for u in bad_snaps {
            damage.files.push(Problem {
                what: u.file,
                detail: format!("{} (this snapshot is lost)", u.detail),
                needed_by: vec![],
            });
        }
        report.snapshots = snapshots.len();
        let bad_runs = self.each_run(|_| {})?;
        for u in bad_runs {
            damage.files.push(Problem {
                what: u.file,
                detail: format!(
                    "{} (a run record: restores are unaffected; status no longer counts that run)",
                    u.detail
                ),
                needed_by: vec![],
            });
        }

        // Forgotten records that do not verify (copies ignore them).
        let (_, bad_forgotten) = self.read_forgotten()?;
        for u in bad_forgotten {
            damage.files.push(Problem {
                what: u.file,
                detail: u.detail,
                needed_by: vec![],
            });
        }
        // Object lock: files in use locked for less than promised.
        damage.files.extend(self.check_retention()?);
        self.check_structure(&index, &packs, &mut report, &mut damage);
        if let Some(pct) = opts.read_data_percent {
            self.read_data(&index, &packs, pct, progress, &mut report, &mut damage)?;
        }
        // Attribute damage to the snapshots and items that need it.
        let mut blob_users: BTreeMap<BlobId, BTreeSet<String>> = BTreeMap::new();
        // With --read-data, the newest snapshot's items are also read whole
        // and checked against their size and SHA-256: blob ids prove each
        // blob, not that a manifest line says the truth about its item (a
        // backup host could write one that does not).
        let newest = snapshots
            .iter()
            .rfind(|s| !s.snapshot.is_from_the_future())
            .map(|s| s.id)
            .filter(|_| opts.read_data_percent.is_some());
        for snap in &snapshots {
            let read_items = Some(snap.id) == newest;
            self.check_snapshot(
                snap,
                &index,
                read_items,
                &mut report,
                &mut damage,
                &mut blob_users,
            )?;
        }
        report.problems = damage.into_problems(&blob_users);
        Ok(report)
    }

    /// Every indexed blob lies inside an existing pack; packs no index
    /// names are counted.
    fn check_structure(
        &self,
        index: &Index,
        packs: &BTreeMap<String, u64>,
        report: &mut VerifyReport,
        damage: &mut Damage,
    ) {
        let indexed: BTreeSet<PackId> = index.packs().iter().copied().collect();
        report.unindexed_packs = packs
            .keys()
            .filter(|n| {
                n.parse::<PackId>()
                    .map(|p| !indexed.contains(&p))
                    .unwrap_or(true)
            })
            .count();
        for (id, loc) in index.iter() {
            let name = loc.pack.to_hex();
            let path = FileKind::Pack.path(&name);
            match packs.get(&name) {
                None => {
                    damage.blobs.insert(id, "its pack file is missing".into());
                    damage.pack_of.insert(id, path);
                }
                Some(&size)
                    if loc.offset as u64 + loc.length as u64 + TRAILER_LEN as u64 > size =>
                {
                    damage.blobs.insert(id, "its pack file is truncated".into());
                    damage.pack_of.insert(id, path);
                }
                Some(_) => {}
            }
        }
    }

    /// `--read-data`: read `pct`% of the packs whole, every blob in them
    /// opened and checked against its id.
    fn read_data(
        &self,
        index: &Index,
        packs: &BTreeMap<String, u64>,
        pct: f64,
        progress: &dyn Progress,
        report: &mut VerifyReport,
        damage: &mut Damage,
    ) -> Result<()> {
        let pct = pct.clamp(0.0, 100.0);
        let mut names: Vec<&String> = packs.keys().collect();
        let want = ((names.len() as f64) * pct / 100.0).ceil() as usize;
        if want < names.len() {
            use rand::seq::SliceRandom;
            names.shuffle(&mut rand::rng());
            names.truncate(want);
            names.sort();
        }
        let by_pack = blobs_by_pack(index);
        progress.set_length(names.iter().map(|n| packs[*n]).sum());
        let results = self.read_packs(index, &names, &by_pack, packs, progress)?;
        let good: HashSet<BlobId> = results
            .iter()
            .flat_map(|r| r.good_blobs.iter().copied())
            .collect();
        for r in results {
            report.packs_read += 1;
            report.blobs_read += r.blobs_read;
            if let Some(p) = r.file_problem {
                damage.files.push(p);
            }
            for (id, why) in r.bad_blobs {
                if good.contains(&id) {
                    // Damage all the same (or a copy planted under an
                    // existing id), but readers and prune use the good
                    // copy: no snapshot loses anything.
                    damage.files.push(Problem {
                        what: format!("blob {id} in {}", r.path),
                        detail: format!(
                            "{why} (another copy reads back: nothing is lost, and \
                             `lifeboat prune` drops this one)"
                        ),
                        needed_by: vec![],
                    });
                    continue;
                }
                damage.pack_of.insert(id, r.path.clone());
                damage.blobs.insert(id, why);
            }
        }
        progress.finish();
        Ok(())
    }

    /// One snapshot: its state files readable, every blob it needs noted
    /// (with who needs it) when damaged or unindexed, and, for the newest
    /// with `--read-data`, every item read whole and checked.
    fn check_snapshot(
        &self,
        snap: &crate::snapshot::SnapshotEntry,
        index: &Index,
        read_items: bool,
        report: &mut VerifyReport,
        damage: &mut Damage,
        blob_users: &mut BTreeMap<BlobId, BTreeSet<String>>,
    ) -> Result<()> {
        let short = snap.id.short();
        let mut need = |damage: &Damage, blob: &BlobId, who: String| {
            if damage.blobs.contains_key(blob) || !index.contains(blob) {
                blob_users.entry(*blob).or_default().insert(who);
            }
        };
        for b in &snap.snapshot.manifest.blobs {
            need(damage, b, format!("snapshot {short} (its manifest)"));
        }
        for (source, summary) in &snap.snapshot.sources {
            for b in &summary.info_blobs {
                need(
                    damage,
                    b,
                    format!("snapshot {short} (info of {source}'s state)"),
                );
            }
            for part in &summary.state_parts {
                if !damage.parts_read.insert(part.clone()) {
                    continue;
                }
                if let Err(e) = self.source_state_part(&snap.snapshot, source, part) {
                    damage.files.push(Problem {
                        what: FileKind::State.path(part),
                        detail: format!(
                            "{e} (restores are unaffected; the next backup of {source} \
                             does more work)"
                        ),
                        needed_by: vec![format!("snapshot {short} (state of {source})")],
                    });
                }
            }
            let Some(state) = &summary.state else {
                continue;
            };
            if let Err(e) = self.source_state(&snap.snapshot, source) {
                damage.files.push(Problem {
                    what: FileKind::State.path(state),
                    detail: format!(
                        "{e} (restores are unaffected; the next backup of {source} \
                         reads everything again)"
                    ),
                    needed_by: vec![format!("snapshot {short} (state of {source})")],
                });
            }
        }
        if self.access.data_identities().is_empty() {
            return Ok(()); // manifests need the restore key; their blobs were checked above
        }
        let mut items = match self.manifest_lines(index, &snap.snapshot) {
            Ok(items) => items,
            Err(e) => {
                damage.files.push(Problem {
                    what: format!("snapshot {short}"),
                    detail: format!("its manifest cannot be read: {e}"),
                    needed_by: vec![format!("snapshot {short} (every item)")],
                });
                return Ok(());
            }
        };
        if read_items {
            self.check_items(index, &mut items, &short, report, damage)?;
        }
        for item in items {
            for b in item.needed_blobs() {
                need(damage, b, format!("snapshot {short} item {}", item.name));
            }
        }
        Ok(())
    }

    /// Every item read whole and checked against its size and SHA-256 (its
    /// details resolved from info lines first).
    fn check_items(
        &self,
        index: &Index,
        items: &mut [crate::ManifestItem],
        short: &str,
        report: &mut VerifyReport,
        damage: &mut Damage,
    ) -> Result<()> {
        let damaged = |what, detail| Problem {
            what,
            detail,
            needed_by: vec![format!("snapshot {short}")],
        };
        match self.resolve_info(index, items) {
            Ok(()) => {}
            Err(Error::Damaged { what, detail }) => damage.files.push(damaged(what, detail)),
            Err(e) => return Err(e),
        }
        for item in items.iter().filter(|i| !i.details_sealed()) {
            report.items_checked += 1;
            match self.read_item(index, item, &mut std::io::sink(), &crate::NoProgress) {
                Ok(()) => {}
                Err(Error::Damaged { detail, .. }) => damage
                    .files
                    .push(damaged(format!("item {}", item.name), detail)),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn read_packs(
        &self,
        index: &Index,
        names: &[&String],
        by_pack: &HashMap<PackId, Vec<(BlobId, crate::index::BlobLocation)>>,
        sizes: &BTreeMap<String, u64>,
        progress: &dyn Progress,
    ) -> Result<Vec<PackCheck>> {
        let threads = self.backend().connections().clamp(1, 4);
        let (tx, rx) = crossbeam_channel::unbounded::<&String>();
        for n in names {
            let _ = tx.send(n);
        }
        drop(tx);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let rx = rx.clone();
                    s.spawn(move || -> Result<Vec<PackCheck>> {
                        let mut out = Vec::new();
                        for name in rx {
                            out.push(self.check_pack(index, name, by_pack)?);
                            progress.inc(sizes.get(name).copied().unwrap_or(0));
                        }
                        Ok(out)
                    })
                })
                .collect();
            let mut all = Vec::new();
            for h in handles {
                all.extend(
                    h.join()
                        .map_err(|_| Error::Invalid("a verify thread panicked".into()))??,
                );
            }
            Ok(all)
        })
    }

    fn check_pack(
        &self,
        index: &Index,
        name: &str,
        by_pack: &HashMap<PackId, Vec<(BlobId, crate::index::BlobLocation)>>,
    ) -> Result<PackCheck> {
        let path = FileKind::Pack.path(name);
        let mut check = PackCheck {
            path: path.clone(),
            ..Default::default()
        };
        let read = || self.backend().read(FileKind::Pack, name);
        let mut data = match read() {
            Ok(d) => d,
            Err(e) if e.is_not_found() => return Ok(check), // removed since listing
            Err(e) => return Err(e.into()),
        };
        for _ in 0..2 {
            if sha256_hex(&data) == name {
                break;
            }
            // Read again before calling it damaged: bytes can be corrupted
            // on the way (a proxy, a bad NIC), not in the store.
            tracing::warn!("{path}: content does not match its name; reading it again");
            data = read()?;
        }
        let mut problems = Vec::new();
        if sha256_hex(&data) != name {
            problems.push("content does not match its name (SHA-256)".to_string());
        }
        let indexed = name
            .parse::<PackId>()
            .ok()
            .and_then(|id| by_pack.get(&id))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        // A header without a tag in format 2 (a pack from before the
        // upgrade) is trusted only as far as the authenticated index goes:
        // its entries are compared with the index, never added to it.
        let header = pack::parse_pack(&data, &self.key().metadata_identity, self.auth(), &path)
            .and_then(|h| match h.legacy {
                true if indexed.is_empty() => Err(Error::damaged(
                    &path,
                    "a header without a tag (format 1) that no index names: not trusted",
                )),
                true => Ok((h.entries, false)),
                false => Ok((h.entries, true)),
            });
        match &header {
            Ok((entries, _)) => {
                let in_header: HashMap<BlobId, _> = entries.iter().map(|e| (e.id, e)).collect();
                for (id, loc) in indexed {
                    match in_header.get(id) {
                        Some(e) if e.offset == loc.offset && e.length == loc.length => {}
                        _ => {
                            problems.push(format!(
                                "the index places blob {id} where the pack header does not"
                            ));
                        }
                    }
                }
            }
            Err(e) => problems.push(format!("header unreadable: {e}")),
        }
        // Decrypt every blob the index or the header knows of.
        type Entry = (BlobId, crate::pack::BlobKind, u32, u32, u32, Option<BlobId>);
        let mut blobs: Vec<Entry> = indexed
            .iter()
            .map(|(id, l)| (*id, l.kind, l.offset, l.length, l.plain_length, l.base))
            .collect();
        if let Ok((entries, true)) = &header {
            let known: std::collections::HashSet<BlobId> = blobs.iter().map(|b| b.0).collect();
            blobs.extend(
                entries
                    .iter()
                    .filter(|e| !known.contains(&e.id))
                    .map(|e| (e.id, e.kind, e.offset, e.length, e.plain_length, e.base)),
            );
        }
        for (id, kind, offset, length, plain, base) in blobs {
            let (start, end) = (offset as usize, offset as usize + length as usize);
            let Some(raw) = data.get(start..end) else {
                check
                    .bad_blobs
                    .push((id, "lies beyond the end of its pack".into()));
                continue;
            };
            check.blobs_read += 1;
            // A delta blob is checked whole: its base is read too (a damaged
            // base makes this blob unreadable as well, and so it is reported).
            let base = match base {
                Some(b) => match self.read_blob(index, &b) {
                    Ok(p) => Some(p),
                    Err(Error::Damaged { detail, .. }) => {
                        check
                            .bad_blobs
                            .push((id, format!("its delta base {b} is unreadable: {detail}")));
                        continue;
                    }
                    Err(e) => return Err(e),
                },
                None => None,
            };
            match self.open_blob(&id, kind, plain, raw, &path, base.as_deref()) {
                Ok(_) => check.good_blobs.push(id),
                Err(Error::Damaged { detail, .. }) => check.bad_blobs.push((id, detail)),
                Err(e) => return Err(e),
            }
        }
        if !problems.is_empty() {
            check.file_problem = Some(Problem {
                what: path,
                detail: problems.join("; "),
                needed_by: vec![],
            });
        }
        Ok(check)
    }
}

#[derive(Default)]
struct PackCheck {
    path: String,
    blobs_read: u64,
    bad_blobs: Vec<(BlobId, String)>,
    good_blobs: Vec<BlobId>,
    file_problem: Option<Problem>,
}

fn blobs_by_pack(index: &Index) -> HashMap<PackId, Vec<(BlobId, crate::index::BlobLocation)>> {
    let mut m: HashMap<PackId, Vec<_>> = HashMap::new();
    for (id, loc) in index.iter_copies() {
        m.entry(loc.pack).or_default().push((id, loc));
    }
    m
}
