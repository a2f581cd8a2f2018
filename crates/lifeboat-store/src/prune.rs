//! Retention: which snapshots a policy keeps ([`ForgetPolicy`]), removing
//! the others ([`Repository::forget`]), and deleting the data no snapshot
//! needs any more ([`Repository::prune`]).
//!
//! Prune holds the exclusive lock: while it runs no backup can start, and
//! it refuses to start while a backup holds its (shared) lock; a lock whose
//! holder died goes stale and is ignored. It writes before it deletes: new
//! packs (the kept blobs of mostly-unused packs, copied still encrypted),
//! then index files describing every kept pack, then it removes the old
//! index files, then the unused and repacked packs, then state files no
//! snapshot names. Killed at any point, the repository stays readable: the
//! worst case is duplicate index entries or packs no index names, which the
//! next prune removes. An index file it cannot read stays, with every pack
//! no readable index file names (one junk file must not stop every prune).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serialize;

use crate::backend::FileKind;
use crate::backup::PARTIAL_TAG;
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId, SnapshotId};
use crate::index::{Index, IndexPack};
use crate::pack::{PackBuilder, PackEntry};
use crate::repository::{FullAccess, Repository};
use crate::snapshot::SnapshotEntry;

/// Which snapshots to keep; everything unset keeps nothing by that rule.
/// A snapshot kept by any rule is kept. Time buckets use UTC.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForgetPolicy {
    /// The newest N.
    pub keep_last: usize,
    /// The newest whole (non-partial) snapshot of each of the last N hours
    /// that have one.
    pub keep_hourly: usize,
    /// Likewise per day.
    pub keep_daily: usize,
    /// Likewise per ISO week.
    pub keep_weekly: usize,
    /// Likewise per month.
    pub keep_monthly: usize,
    /// Likewise per year.
    pub keep_yearly: usize,
    /// Every snapshot with one of these tags (e.g. `pre-migration`).
    pub keep_tags: Vec<String>,
}

impl ForgetPolicy {
    /// True when no rule is set (forget would remove everything).
    pub fn is_empty(&self) -> bool {
        self.keep_last == 0
            && self.keep_hourly == 0
            && self.keep_daily == 0
            && self.keep_weekly == 0
            && self.keep_monthly == 0
            && self.keep_yearly == 0
            && self.keep_tags.is_empty()
    }

    /// Decide for each snapshot (any order): kept ones with the rules that
    /// keep them, and the ones to remove. Partial snapshots are kept only
    /// by `keep_last` and tags: a time bucket keeps its newest whole one.
    ///
    /// A snapshot dated in the future (beyond [`MAX_CLOCK_SKEW`]) is kept and
    /// left out of every rule: a broken clock or a forged snapshot (a
    /// backup host can write one) would otherwise count as the newest and
    /// push real ones out of `keep_last` and the time buckets.
    ///
    /// [`MAX_CLOCK_SKEW`]: crate::MAX_CLOCK_SKEW
    pub fn apply(&self, snapshots: &[SnapshotEntry]) -> ForgetPlan {
        let mut sorted: Vec<&SnapshotEntry> = snapshots.iter().collect();
        sorted.sort_by_key(|s| std::cmp::Reverse(s.snapshot.time));
        let mut reasons: BTreeMap<SnapshotId, Vec<String>> = BTreeMap::new();
        let (future, present): (Vec<&SnapshotEntry>, Vec<&SnapshotEntry>) =
            sorted.iter().partition(|s| s.snapshot.is_from_the_future());
        for s in &future {
            reasons
                .entry(s.id)
                .or_default()
                .push("dated in the future: look at it (forged, or a host's clock?)".into());
        }
        let sorted_all = sorted;
        let sorted = present;
        for s in sorted.iter().take(self.keep_last) {
            reasons.entry(s.id).or_default().push("last".into());
        }
        type Bucket = fn(&DateTime<Utc>) -> String;
        let rules: [(&str, usize, Bucket); 5] = [
            ("hourly", self.keep_hourly, |t| {
                format!("{}-{:02}", t.date_naive(), t.hour())
            }),
            ("daily", self.keep_daily, |t| t.date_naive().to_string()),
            ("weekly", self.keep_weekly, |t| {
                let w = t.iso_week();
                format!("{}-W{:02}", w.year(), w.week())
            }),
            ("monthly", self.keep_monthly, |t| {
                format!("{}-{:02}", t.year(), t.month())
            }),
            ("yearly", self.keep_yearly, |t| t.year().to_string()),
        ];
        for (name, n, bucket) in rules {
            if n == 0 {
                continue;
            }
            let mut seen = HashSet::new();
            for s in sorted
                .iter()
                // Partial: tagged so, or any source with an error (the tag
                // alone could be left off by whoever wrote the snapshot).
                .filter(|s| {
                    !s.snapshot.tags.iter().any(|t| t == PARTIAL_TAG)
                        && s.snapshot.failed_sources().is_empty()
                })
            {
                if seen.len() == n && !seen.contains(&bucket(&s.snapshot.time)) {
                    break;
                }
                if seen.insert(bucket(&s.snapshot.time)) {
                    reasons.entry(s.id).or_default().push(name.into());
                }
            }
        }
        for s in &sorted {
            for t in &s.snapshot.tags {
                if self.keep_tags.contains(t) {
                    reasons.entry(s.id).or_default().push(format!("tag {t}"));
                }
            }
        }
        let mut plan = ForgetPlan::default();
        for s in sorted_all {
            match reasons.remove(&s.id) {
                Some(r) => plan.keep.push((s.id, r)),
                None => plan.remove.push(s.id),
            }
        }
        plan
    }
}

/// What a policy decided, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ForgetPlan {
    /// Kept snapshots with the rules that keep them.
    pub keep: Vec<(SnapshotId, Vec<String>)>,
    /// Snapshots to remove.
    pub remove: Vec<SnapshotId>,
}

/// How `prune` works.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PruneOptions {
    /// Compute and report, change nothing.
    pub dry_run: bool,
    /// Repack a pack when more than this share of its bytes is unused
    /// (0.0..=1.0); below it the pack is kept whole.
    pub repack_unused_share: f64,
    /// Copy the blobs of packs smaller than a quarter of the pack size
    /// into full-size packs when that makes fewer packs (each backup ends
    /// with a small pack; binlog capture runs make one a minute).
    pub compact_small: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            dry_run: false,
            repack_unused_share: 0.2,
            compact_small: true,
        }
    }
}

/// What `prune` did (or would do, dry).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PruneReport {
    /// Snapshots whose data is kept.
    pub snapshots: usize,
    /// Pack files before.
    pub packs: usize,
    /// Packs deleted because no blob in them is used.
    pub packs_removed: usize,
    /// Mostly-unused packs whose used blobs were copied into new packs.
    pub packs_repacked: usize,
    /// Small packs whose blobs were copied into full-size packs.
    pub packs_compacted: usize,
    /// New packs those copies went into.
    pub packs_written: usize,
    /// Packs no index named (left by killed backups).
    pub unindexed_packs_removed: usize,
    /// Blobs the snapshots need (delta bases included).
    pub blobs_used: usize,
    /// Blobs dropped from the index.
    pub blobs_removed: usize,
    /// Index files replaced by new ones.
    pub index_files_replaced: usize,
    /// State files no remaining snapshot names.
    pub state_files_removed: usize,
    /// Lock files that no longer count: released, superseded or stale
    /// (append-only backup hosts leave them; prune clears them).
    pub lock_files_removed: usize,
    /// Index files that could not be read: left as they are, with every
    /// pack no readable index file names (run `lifeboat repair index`).
    pub unreadable_index_files: Vec<String>,
    /// Object lock: files extended, old versions purged or still locked.
    pub object_lock: crate::LockReport,
    /// Files prune would have deleted (or packs it would have repacked)
    /// that the bucket lock rule still protects (`[repository]
    /// immutable_days`): left for a later prune.
    pub protected_left: usize,
    /// When the last of those is free.
    pub protected_until: Option<DateTime<Utc>>,
    /// Bytes of pack files before.
    pub bytes_before: u64,
    /// Bytes of pack files after (estimated when dry).
    pub bytes_after: u64,
}

impl Repository<FullAccess> {
    /// The files of `kind` a bucket lock rule still protects
    /// (`[repository] immutable_days`), with until when; none without one.
    pub fn protected_files(&self, kind: FileKind) -> Result<HashMap<String, DateTime<Utc>>> {
        match self.backend().immutability() {
            None => Ok(HashMap::new()),
            Some(rule) => Ok(rule.protected_in(&self.backend().list(kind)?, Utc::now())),
        }
    }

    /// Remove snapshot files (their data stays until [`prune`](Self::prune)).
    /// Refuses, removing none, when the bucket lock rule still protects
    /// one of them.
    pub fn forget(&self, ids: &[SnapshotId]) -> Result<()> {
        let _lock = self.lock(false)?;
        self.check_forgettable(ids)?;
        // Remembered first: a replica never gets them back from a copy.
        self.remember_forgotten(ids)?;
        for id in ids {
            self.backend()
                .remove(FileKind::Snapshot, &id.to_hex())
                .map_err(Error::Backend)?;
        }
        Ok(())
    }

    /// Refuse, naming the first, when a bucket lock rule still protects
    /// one of these snapshot files (what [`forget`](Self::forget) checks
    /// first; a dry run asks it too).
    pub fn check_forgettable(&self, ids: &[SnapshotId]) -> Result<()> {
        let protected = self.protected_files(FileKind::Snapshot)?;
        if let Some((id, until)) = ids
            .iter()
            .find_map(|id| Some((id, protected.get(&id.to_hex())?)))
        {
            return Err(Error::Invalid(format!(
                "snapshot {id} is protected by the bucket's lock rule until {} ([repository] \
                 immutable_days): nothing was forgotten; forget it after then (a retention \
                 policy keeps such snapshots by itself and forgets them later)",
                until.format("%Y-%m-%d %H:%M UTC")
            )));
        }
        Ok(())
    }

    /// Delete what no snapshot needs; see the module documentation.
    pub fn prune(&self, opts: &PruneOptions) -> Result<PruneReport> {
        let _lock = self.lock(true)?;
        // Object lock: files in use stay locked first of all, whatever
        // stops this prune below (a damaged snapshot must not let every
        // lock lapse while someone looks into it).
        let extended = if opts.dry_run { 0 } else { self.keep_locked()? };
        let backend = self.backend().clone();
        let (snapshots, bad) = self.snapshots()?;
        if let Some(b) = bad.first() {
            return Err(Error::damaged(
                &b.file,
                format!(
                    "{}; prune needs every snapshot to know what is used: run `lifeboat verify` and remove or repair it first",
                    b.detail
                ),
            ));
        }
        // One listing of the packs for the index and the plan (the
        // exclusive lock keeps backups from adding any meanwhile).
        let listing = backend.list(FileKind::Pack)?;
        let index_files = backend.list(FileKind::Index)?;
        let state_files = backend.list(FileKind::State)?;
        // An index file that cannot be read (damaged, or planted by anyone
        // who may write to the store) does not stop prune, which would
        // let one junk file hold off every prune for good. What it names
        // is unknown, so it stays, and so does every pack no readable
        // index file names; a snapshot needing a blob only it named stops
        // prune below (`used_blobs`). `repair index` deals with it.
        let (index, bad) = self.load_index_over(&listing, true)?;
        let unreadable: HashSet<String> = bad
            .iter()
            .filter_map(|b| b.file.rsplit('/').next().map(str::to_string))
            .collect();
        let (used, states) = self.used_blobs(&snapshots, &index)?;
        let hold = self.hold(&listing, &index_files, &state_files)?;
        let kept_copy = self.choose_copies(&index, &used, &listing)?;
        let stored: BTreeMap<String, u64> = listing.into_iter().map(|f| (f.name, f.size)).collect();
        let mut report = PruneReport {
            unreadable_index_files: bad.into_iter().map(|b| b.file).collect(),
            snapshots: snapshots.len(),
            packs: stored.len(),
            blobs_used: used.len(),
            bytes_before: stored.values().sum(),
            ..Default::default()
        };
        let small_below = u64::from(self.config().pack_size) / 4;
        let mut plan = plan_packs(
            &index,
            &used,
            &kept_copy,
            &stored,
            &hold,
            opts,
            small_below,
            &mut report,
        )?;
        // Index and state files the rule protects stay; the packs those
        // index files name stay with them (`hold.pinned`).
        let old_indexes: Vec<String> = index_files
            .into_iter()
            .map(|f| f.name)
            .filter(|n| !unreadable.contains(n) && !report.hold(&hold.indexes, n))
            .collect();
        let old_states: Vec<String> = state_files
            .into_iter()
            .map(|f| f.name)
            .filter(|n| !states.contains(n) && !report.hold(&hold.states, n))
            .collect();
        report.state_files_removed = old_states.len();
        report.index_files_replaced = old_indexes.len();
        if opts.dry_run {
            let rewritten = rewritten_bytes(&plan.repack);
            report.packs_written = rewritten.div_ceil(u64::from(self.config().pack_size)) as usize;
            report.bytes_after = report.bytes_before
                - plan
                    .remove
                    .iter()
                    .filter_map(|n| stored.get(n))
                    .sum::<u64>()
                + rewritten;
            return Ok(report);
        }
        // 1. Repacked data, still encrypted, into new packs.
        for pack in self.repack(&plan.repack)? {
            plan.keep.push(pack);
            report.packs_written += 1;
        }
        // 2. Index files naming every kept pack, 3. the old ones removed
        // (an old file with the same content has the same name: kept).
        // Nothing to drop and every index file kept by the rule: new files
        // would only repeat them (and, protected in turn, pile up).
        let idle = plan.remove.is_empty() && plan.repack.is_empty() && old_indexes.is_empty();
        let written = match idle {
            true => Default::default(),
            false => self.write_index_files(&plan.keep)?,
        };
        for name in old_indexes.iter().filter(|n| !written.contains(*n)) {
            backend.remove(FileKind::Index, name)?;
        }
        // 4. Packs, 5. state files.
        for name in &plan.remove {
            backend.remove(FileKind::Pack, name)?;
        }
        for name in &old_states {
            backend.remove(FileKind::State, name)?;
        }
        // 6. Lock files that no longer count (this prune's own is live).
        report.lock_files_removed = self.remove_stale_locks()?;
        // 7. Object lock: files in use stay locked; old versions go once
        // their lock has passed.
        report.object_lock = crate::LockReport {
            extended,
            ..self.purge_old_versions()?
        };
        report.bytes_after = backend.list(FileKind::Pack)?.iter().map(|f| f.size).sum();
        Ok(report)
    }

    /// Everything the snapshots need (their own blobs, their items' blobs
    /// and info blobs, delta bases), and the state files they name.
    pub(crate) fn used_blobs(
        &self,
        snapshots: &[SnapshotEntry],
        index: &Index,
    ) -> Result<(HashSet<BlobId>, HashSet<String>)> {
        let mut used: HashSet<BlobId> = HashSet::new();
        let mut states = HashSet::new();
        for s in snapshots {
            used.extend(s.snapshot.own_blobs().copied());
            for item in self.manifest_lines(index, &s.snapshot)? {
                used.extend(item.needed_blobs());
            }
            for v in s.snapshot.sources.values() {
                states.extend(v.state.iter().chain(&v.state_parts).cloned());
            }
        }
        if let Some(id) = index.close_over_bases(&mut used).first() {
            return Err(Error::damaged(
                format!("blob {id}"),
                "a snapshot needs it and no index names it: run `lifeboat verify`; prune stops rather than guess",
            ));
        }
        Ok((used, states))
    }

    /// What a bucket lock rule keeps from this prune: the packs, index and
    /// state files it still protects, and the packs those index files name
    /// (a pack is never deleted while an index file naming it stays).
    fn hold(
        &self,
        packs: &[crate::backend::FileInfo],
        indexes: &[crate::backend::FileInfo],
        states: &[crate::backend::FileInfo],
    ) -> Result<Hold> {
        let Some(rule) = self.backend().immutability() else {
            return Ok(Hold::default());
        };
        let now = Utc::now();
        let indexes = rule.protected_in(indexes, now);
        let mut pinned = HashSet::new();
        for name in indexes.keys() {
            match self.read_index_file(name) {
                Ok(file) => pinned.extend(file.packs.iter().map(|p| p.id)),
                // Unreadable: left alone, as are the packs no readable index
                // file names (see `prune`).
                Err(Error::Backend(e)) if !e.is_not_found() => return Err(Error::Backend(e)),
                Err(_) => {}
            }
        }
        Ok(Hold {
            packs: rule.protected_in(packs, now),
            indexes,
            states: rule.protected_in(states, now),
            pinned,
        })
    }

    /// For each used blob stored more than once, the copy to keep: one that
    /// reads back (an index entry proves nothing about the bytes: a backup
    /// host can name a copy of its own under an existing id); the others
    /// are unused. None reads back: stop, deleting nothing. The newest
    /// pack's copy is tried first: a repack's copy wins over the pack it
    /// came from while a bucket lock rule keeps that one (and its index
    /// file) a while longer, so the next prune does not copy it again.
    fn choose_copies(
        &self,
        index: &Index,
        used: &HashSet<BlobId>,
        packs: &[crate::backend::FileInfo],
    ) -> Result<HashMap<BlobId, (PackId, u32)>> {
        let written: HashMap<PackId, Option<DateTime<Utc>>> = packs
            .iter()
            .filter_map(|f| Some((f.name.parse().ok()?, f.modified)))
            .collect();
        let mut kept_copy = HashMap::new();
        for id in used {
            let mut copies = index.copies(id);
            if copies.len() < 2 {
                continue;
            }
            copies.sort_by_key(|c| std::cmp::Reverse(written.get(&c.pack).copied().flatten()));
            let mut good = None;
            for loc in &copies {
                match self.read_copy(index, id, loc, 0) {
                    Ok(_) => {
                        good = Some((loc.pack, loc.offset));
                        break;
                    }
                    Err(Error::Damaged { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            let good = good.ok_or_else(|| {
                Error::damaged(
                    format!("blob {id}"),
                    "a snapshot needs it and none of its copies reads back: run `lifeboat verify`; prune stops rather than guess",
                )
            })?;
            kept_copy.insert(*id, good);
        }
        Ok(kept_copy)
    }

    /// The kept blobs of `repack`, still sealed, copied into new packs.
    fn repack(&self, repack: &[(PackId, Vec<PackEntry>)]) -> Result<Vec<IndexPack>> {
        let backend = self.backend();
        let limit = self.config().pack_size as usize;
        let meta = self.inner.meta_recipient.clone();
        let mut written = Vec::new();
        let mut builder = PackBuilder::with_buffer(Vec::new(), limit + (4 << 20));
        for (old, entries) in repack {
            let bytes = backend.read(FileKind::Pack, &old.to_hex())?;
            if crate::id::sha256(&bytes) != old.0 {
                return Err(Error::damaged(
                    FileKind::Pack.path(&old.to_hex()),
                    "content does not match its name (SHA-256): not repacking damaged data; run `lifeboat verify`",
                ));
            }
            for e in entries {
                let (a, b) = (e.offset as usize, e.offset as usize + e.length as usize);
                let sealed = bytes.get(a..b).ok_or_else(|| {
                    Error::damaged(
                        FileKind::Pack.path(&old.to_hex()),
                        "a blob lies outside the pack",
                    )
                })?;
                builder.add(e.id, e.kind, sealed, e.plain_length as usize, e.base);
                if builder.len() >= limit {
                    let full = std::mem::replace(
                        &mut builder,
                        PackBuilder::with_buffer(Vec::new(), limit + (4 << 20)),
                    );
                    written.push(self.store_pack(full, &meta)?);
                }
            }
        }
        if !builder.is_empty() {
            written.push(self.store_pack(builder, &meta)?);
        }
        Ok(written)
    }

    fn store_pack(&self, builder: PackBuilder, meta: &dyn age::Recipient) -> Result<IndexPack> {
        let (id, bytes, blobs) = builder.finish(meta, self.auth());
        self.backend().write(FileKind::Pack, &id.to_hex(), &bytes)?;
        Ok(IndexPack { id, blobs })
    }
}

/// What a bucket lock rule keeps from a prune (empty without one): files
/// it protects, with until when, and the packs protected index files name.
#[derive(Default)]
struct Hold {
    packs: HashMap<String, DateTime<Utc>>,
    indexes: HashMap<String, DateTime<Utc>>,
    states: HashMap<String, DateTime<Utc>>,
    pinned: HashSet<PackId>,
}

impl PruneReport {
    /// Whether `held` keeps `name`; counted as left for later when so.
    fn hold(&mut self, held: &HashMap<String, DateTime<Utc>>, name: &str) -> bool {
        let Some(until) = held.get(name) else {
            return false;
        };
        self.protected_left += 1;
        self.protected_until = self.protected_until.max(Some(*until));
        true
    }
}

/// What prune does with each pack.
struct PackPlan {
    /// Packs kept (whole), as the new index files name them.
    keep: Vec<IndexPack>,
    /// Packs removed (unused, unindexed, or repacked).
    remove: Vec<String>,
    /// Packs whose used blobs are copied into new packs: (pack, those blobs).
    repack: Vec<(PackId, Vec<PackEntry>)>,
}

/// Decide, pack by pack, from which of its entries (every copy) are used:
/// remove, repack (more unused than `opts` allows, or small: under
/// `small_below` bytes, when that makes fewer packs) or keep whole. Counts
/// go into `report`. A pack an index names with used blobs but the backend
/// lacks: their data is lost; stop.
///
/// Under a bucket lock rule (`hold`): a pack the rule protects is kept
/// whole or left (never repacked: the copy could not replace it yet); an
/// older pack a protected index file names may be repacked, but it is
/// deleted only by a prune after that index file is free.
#[allow(clippy::too_many_arguments)]
fn plan_packs(
    index: &Index,
    used: &HashSet<BlobId>,
    kept_copy: &HashMap<BlobId, (PackId, u32)>,
    stored: &BTreeMap<String, u64>,
    hold: &Hold,
    opts: &PruneOptions,
    small_below: u64,
    report: &mut PruneReport,
) -> Result<PackPlan> {
    let mut by_pack: HashMap<PackId, Vec<(PackEntry, bool)>> = HashMap::new();
    for (id, loc) in index.iter_copies() {
        let is_used = used.contains(&id)
            && kept_copy
                .get(&id)
                .is_none_or(|c| *c == (loc.pack, loc.offset));
        by_pack
            .entry(loc.pack)
            .or_default()
            .push((loc.entry(id), is_used));
    }
    let mut plan = PackPlan {
        keep: Vec::new(),
        remove: Vec::new(),
        repack: Vec::new(),
    };
    // Small packs kept whole so far: (name, id, used entries, bytes used).
    type Small = (String, PackId, Vec<PackEntry>, u64, usize);
    let mut small: Vec<(Small, IndexPack)> = Vec::new();
    // Deleted now, or left for a later prune: the rule protects it, or an
    // index file it protects names it (counted in `report` either way).
    let remove = |plan: &mut PackPlan, report: &mut PruneReport, name: &String, id: PackId| {
        let mut held = report.hold(&hold.packs, name);
        if !held && hold.pinned.contains(&id) {
            // Free when the index files naming it are: not known here
            // which; the rule's whole length from now bounds it.
            let until = hold.indexes.values().max().copied();
            report.protected_left += 1;
            report.protected_until = report.protected_until.max(until);
            held = true;
        }
        if !held {
            plan.remove.push(name.clone());
        }
    };
    for (name, size) in stored {
        let Ok(pack_id) = name.parse::<PackId>() else {
            continue;
        };
        let young = hold.packs.contains_key(name);
        let Some(entries) = by_pack.remove(&pack_id) else {
            // An unreadable index file may name it: kept.
            if !report.unreadable_index_files.is_empty() {
                continue;
            }
            if !young {
                report.unindexed_packs_removed += 1;
            }
            remove(&mut plan, report, name, pack_id);
            continue;
        };
        let total: u64 = entries.iter().map(|(e, _)| u64::from(e.length)).sum();
        let unused: u64 = entries
            .iter()
            .filter(|(_, u)| !u)
            .map(|(e, _)| u64::from(e.length))
            .sum();
        let unused_count = entries.iter().filter(|(_, u)| !u).count();
        if unused == total {
            if !young && !hold.pinned.contains(&pack_id) {
                report.packs_removed += 1;
                report.blobs_removed += unused_count;
            }
            remove(&mut plan, report, name, pack_id);
        } else if !young
            && unused_count > 0
            && unused as f64 > opts.repack_unused_share * total as f64
        {
            report.packs_repacked += 1;
            report.blobs_removed += unused_count;
            let kept = entries.into_iter().filter(|(_, u)| *u).map(|(e, _)| e);
            plan.repack.push((pack_id, kept.collect()));
            remove(&mut plan, report, name, pack_id);
        } else {
            // Kept whole; its unused blobs stay indexed (and reusable),
            // but not a copy set aside for another that reads back.
            let kept_whole = IndexPack {
                id: pack_id,
                blobs: entries
                    .iter()
                    .filter(|(e, u)| *u || !kept_copy.contains_key(&e.id))
                    .map(|(e, _)| *e)
                    .collect(),
            };
            if opts.compact_small && *size < small_below && !young {
                let all = entries.len();
                let used: Vec<PackEntry> = entries
                    .into_iter()
                    .filter(|(_, u)| *u)
                    .map(|(e, _)| e)
                    .collect();
                let unused = all - used.len();
                let bytes = used.iter().map(|e| u64::from(e.length)).sum();
                small.push(((name.clone(), pack_id, used, bytes, unused), kept_whole));
            } else {
                plan.keep.push(kept_whole);
            }
        }
    }
    // Compacting small packs must make fewer of them, or a second prune
    // would copy the same blobs again.
    let small_bytes: u64 = small.iter().map(|((_, _, _, b, _), _)| *b).sum();
    let after = small_bytes.div_ceil((small_below * 4).max(1));
    if small.len() >= 2 && after < small.len() as u64 {
        for ((name, id, used, _, unused), _) in small {
            report.packs_compacted += 1;
            report.blobs_removed += unused;
            plan.repack.push((id, used));
            remove(&mut plan, report, &name, id);
        }
    } else {
        plan.keep.extend(small.into_iter().map(|(_, whole)| whole));
    }
    if let Some((pack, entries)) = by_pack.iter().find(|(_, e)| e.iter().any(|(_, u)| *u)) {
        return Err(Error::damaged(
            format!("pack {pack}"),
            format!(
                "indexed with {} used blob(s) but missing from the repository: run `lifeboat verify`",
                entries.len()
            ),
        ));
    }
    Ok(plan)
}

fn rewritten_bytes(repack: &[(PackId, Vec<PackEntry>)]) -> u64 {
    repack
        .iter()
        .flat_map(|(_, e)| e.iter().map(|e| u64::from(e.length)))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{BackupStats, ManifestRef, Snapshot};

    fn snap(n: u8, time: &str, tags: &[&str]) -> SnapshotEntry {
        SnapshotEntry {
            id: SnapshotId([n; 32]),
            snapshot: Snapshot {
                version: 1,
                time: chrono::NaiveDateTime::parse_from_str(time, "%Y-%m-%d %H:%M")
                    .unwrap_or_else(|_| panic!("{time}"))
                    .and_utc(),
                hostname: "h".into(),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                note: None,
                sources: Default::default(),
                manifest: ManifestRef {
                    blobs: Vec::new(),
                    size: 0,
                    sha256: String::new(),
                },
                stats: BackupStats::default(),
                program: String::new(),
            },
        }
    }

    /// Backdate every file of the repository at `root` except locks by
    /// `days`, as the store's clock would see them after that long.
    fn age_all(root: &std::path::Path, days: u64) {
        let then = std::time::SystemTime::now() - std::time::Duration::from_secs(days * 86_400);
        let mut dirs = vec![root.to_path_buf()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    if !p.ends_with("locks") {
                        dirs.push(p);
                    }
                } else {
                    let f = std::fs::File::options().write(true).open(&p).unwrap();
                    f.set_modified(then).unwrap();
                }
            }
        }
    }

    fn names(root: &std::path::Path, kind: FileKind) -> Vec<String> {
        let b = crate::backend::LocalBackend::new(root);
        let mut n: Vec<String> = crate::backend::Backend::list(&b, kind)
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        n.sort();
        n
    }

    #[test]
    fn under_a_bucket_lock_rule_prune_deletes_only_free_files_and_never_a_pack_an_index_still_names(
    ) {
        use crate::backend::{Backend, Immutability, Immutable, LocalBackend};
        use crate::{BackupOptions, InitOptions, RestoreKey};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let local: Arc<dyn Backend> = Arc::new(LocalBackend::new(&root));
        let rule = Immutability::from_days(7.0).unwrap();
        let key = RestoreKey::generate();
        Repository::init(local.clone(), &key, &InitOptions::default()).unwrap();
        // A fresh handle each step: the wrapper learns ages from listings.
        let admin =
            || Repository::open_for_restore(Immutable::wrap(local.clone(), rule), &key).unwrap();
        let mut rng = 7u64;
        let mut bytes = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng as u8
                })
                .collect()
        };
        let shared = bytes(300_000);
        let mut own = Vec::new();
        let mut snaps = Vec::new();
        for night in 0..3 {
            let host = Repository::open_for_backup(local.clone(), admin().backup_key()).unwrap();
            let mut s = host.begin_backup(BackupOptions::default()).unwrap();
            let data = bytes(300_000);
            for (name, content) in [("shared", &shared), ("own", &data)] {
                let mut w = s.item("x", name, "stream", &crate::NoProgress).unwrap();
                w.push(content).unwrap();
                w.finish(serde_json::Value::Null).unwrap();
            }
            snaps.push(s.commit().unwrap().0);
            own.push(data);
            let _ = night;
        }
        let packs = names(&root, FileKind::Pack);
        assert!(packs.len() >= 3, "a pack a night at least");
        let no_repack = PruneOptions {
            repack_unused_share: 0.0,
            compact_small: false,
            ..PruneOptions::default()
        };
        // Everything young: a forget is refused whole, and prune deletes
        // nothing (it would replace the index files).
        let e = admin().forget(&snaps[..1]).unwrap_err();
        assert!(e.to_string().contains("bucket's lock rule"), "{e}");
        assert_eq!(admin().snapshots().unwrap().0.len(), 3);
        let indexes = names(&root, FileKind::Index);
        let r = admin().prune(&no_repack).unwrap();
        assert_eq!((r.packs_removed, r.packs_repacked), (0, 0));
        assert_eq!(r.protected_left, indexes.len(), "{r:?}");
        assert!(r.protected_until.unwrap() > Utc::now() + chrono::Duration::days(6));
        assert_eq!(names(&root, FileKind::Pack), packs);
        assert!(indexes
            .iter()
            .all(|i| names(&root, FileKind::Index).contains(i)));
        // Eight days on, everything is free: one prune compacts the small
        // packs into one and replaces the index files with its own (young
        // again, naming that pack).
        age_all(&root, 8);
        let r = admin().prune(&PruneOptions::default()).unwrap();
        assert_eq!(r.protected_left, 0, "{r:?}");
        assert_eq!(r.packs_compacted, packs.len(), "{r:?}");
        assert_eq!(names(&root, FileKind::Pack).len(), 1);
        // Eight days more: that pack is free, and a prune names it in index
        // files of its own, young again.
        age_all(&root, 8);
        let r = admin().prune(&no_repack).unwrap();
        assert_eq!(r.protected_left, 0, "{r:?}");
        let young_index = names(&root, FileKind::Index);
        assert!(young_index.iter().all(|i| !indexes.contains(i)));
        // Night 0 forgotten: the pack holds the shared item (used) and its
        // own (unused), so it is repacked; but the young index names it,
        // so it stays beside its copy until that index file is free.
        admin().forget(&snaps[..1]).unwrap();
        let r = admin().prune(&no_repack).unwrap();
        assert_eq!((r.packs_repacked, r.packs_written), (1, 1), "{r:?}");
        assert_eq!(r.packs_removed, 0, "{r:?}");
        assert_eq!(r.protected_left, 1 + young_index.len(), "{r:?}");
        let now = names(&root, FileKind::Pack);
        assert_eq!(now.len(), 2, "the repacked pack stays beside its copy");
        // A second prune at once copies nothing again: the newer copy wins;
        // with nothing to drop it writes no index file either.
        let index_before = names(&root, FileKind::Index);
        let r = admin().prune(&no_repack).unwrap();
        assert_eq!((r.packs_repacked, r.packs_removed), (0, 0), "{r:?}");
        assert_eq!(names(&root, FileKind::Pack), now);
        assert_eq!(names(&root, FileKind::Index), index_before);
        // Whatever the index files say, every pack they name exists, and
        // both remaining snapshots read back.
        let check = |expect_packs: usize| {
            let repo = admin();
            let listed: HashSet<String> = names(&root, FileKind::Pack).into_iter().collect();
            assert_eq!(listed.len(), expect_packs);
            repo.each_index_file(|f| {
                for p in &f.packs {
                    assert!(
                        listed.contains(&p.id.to_hex()),
                        "index names a deleted pack"
                    );
                }
            })
            .unwrap();
            let report = repo
                .verify(
                    &crate::VerifyOptions {
                        read_data_percent: Some(100.0),
                    },
                    &crate::NoProgress,
                )
                .unwrap();
            assert!(report.problems.is_empty(), "{:?}", report.problems);
            let (index, _) = repo.load_index().unwrap();
            for (n, snap) in snaps.iter().enumerate().skip(1) {
                let entry = repo.find_snapshot(&snap.to_hex()).unwrap();
                for item in repo.manifest(&index, &entry.snapshot).unwrap() {
                    let mut out = Vec::new();
                    repo.restore_item(&index, &item, &mut out, &crate::NoProgress)
                        .unwrap();
                    let want = if item.name == "shared" {
                        &shared
                    } else {
                        &own[n]
                    };
                    assert!(out == *want, "{} of night {n}", item.name);
                }
            }
        };
        check(2);
        // Once the rule frees them: the old pack and index files go.
        age_all(&root, 8);
        let r = admin().prune(&no_repack).unwrap();
        assert_eq!(r.protected_left, 0, "{r:?}");
        assert_eq!(r.packs_removed, 1, "{r:?}");
        check(1);
    }

    #[test]
    fn a_junk_index_file_does_not_stop_prune_and_holds_back_only_unindexed_packs() {
        use crate::backend::{Backend, Immutability, Immutable, LocalBackend};
        use crate::{BackupOptions, InitOptions, RestoreKey};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let local: Arc<dyn Backend> = Arc::new(LocalBackend::new(&root));
        let key = RestoreKey::generate();
        let (admin, _) = Repository::init(local.clone(), &key, &InitOptions::default()).unwrap();
        let mut snaps = Vec::new();
        for night in 0..2u8 {
            let host = Repository::open_for_backup(local.clone(), admin.backup_key()).unwrap();
            let mut s = host.begin_backup(BackupOptions::default()).unwrap();
            let mut w = s.item("x", "a", "stream", &crate::NoProgress).unwrap();
            w.push(&vec![night; 200_000]).unwrap();
            w.finish(serde_json::Value::Null).unwrap();
            snaps.push(s.commit().unwrap().0);
        }
        // Planted by whoever may write to the store, and a pack no index
        // names (a killed backup's, or one only the junk "names").
        let junk = "ab".repeat(32);
        local
            .write(FileKind::Index, &junk, b"not an index file")
            .unwrap();
        let stray = "cd".repeat(32);
        local.write(FileKind::Pack, &stray, b"stray").unwrap();
        admin.forget(&snaps[..1]).unwrap();
        let r = admin.prune(&PruneOptions::default()).unwrap();
        assert_eq!(r.unreadable_index_files, vec![FileKind::Index.path(&junk)]);
        assert!(r.packs_removed >= 1, "night 0's data goes: {r:?}");
        assert_eq!(r.unindexed_packs_removed, 0, "{r:?}");
        assert!(names(&root, FileKind::Index).contains(&junk));
        assert!(names(&root, FileKind::Pack).contains(&stray));
        // The same under a bucket lock rule, the junk young.
        let ruled = Repository::open_for_restore(
            Immutable::wrap(local.clone(), Immutability::from_days(7.0).unwrap()),
            &key,
        )
        .unwrap();
        ruled.prune(&PruneOptions::default()).unwrap();
        let (index, _) = admin.load_index().unwrap();
        let entry = admin.find_snapshot(&snaps[1].to_hex()).unwrap();
        for item in admin.manifest(&index, &entry.snapshot).unwrap() {
            let mut out = Vec::new();
            admin
                .restore_item(&index, &item, &mut out, &crate::NoProgress)
                .unwrap();
            assert!(out == vec![1u8; 200_000]);
        }
        // Once the junk is gone (repair), the stray pack goes too.
        local.remove(FileKind::Index, &junk).unwrap();
        let r = admin.prune(&PruneOptions::default()).unwrap();
        assert!(r.unreadable_index_files.is_empty());
        assert_eq!(r.unindexed_packs_removed, 1, "{r:?}");
    }

    #[test]
    fn daily_weekly_last_and_tags_keep_what_restic_would() {
        let snaps = vec![
            snap(1, "2026-11-01 02:00", &["nightly"]),
            snap(2, "2026-11-02 02:00", &["nightly"]),
            snap(3, "2026-11-02 14:00", &["pre-migration"]),
            snap(4, "2026-11-03 02:00", &["nightly"]),
            snap(5, "2026-11-04 02:00", &["nightly"]),
            snap(6, "2026-11-04 09:00", &["nightly", "partial"]),
            snap(7, "2026-11-10 02:00", &["nightly"]),
        ];
        let p = ForgetPolicy {
            keep_daily: 3,
            keep_tags: vec!["pre-migration".into()],
            ..Default::default()
        };
        let plan = p.apply(&snaps);
        let kept: Vec<u8> = plan.keep.iter().map(|(id, _)| id.0[0]).collect();
        // Days 11-10, 11-04 (the whole one: 6 is partial), 11-03; and the tag.
        assert_eq!(kept, vec![7, 5, 4, 3]);
        let removed: Vec<u8> = plan.remove.iter().map(|id| id.0[0]).collect();
        assert_eq!(removed, vec![6, 2, 1]);
        let p = ForgetPolicy {
            keep_last: 1,
            keep_weekly: 2,
            ..Default::default()
        };
        let kept: Vec<u8> = p.apply(&snaps).keep.iter().map(|(id, _)| id.0[0]).collect();
        // Newest (7, also week 46) and week 45's newest whole one (5).
        assert_eq!(kept, vec![7, 5]);
        assert!(ForgetPolicy::default().is_empty());
        assert_eq!(ForgetPolicy::default().apply(&snaps).remove.len(), 7);
    }

    #[test]
    fn a_year_of_nightlies_keeps_one_per_bucket_and_the_newest_of_each() {
        // 02:00 every day from 2025-10-01 to 2026-11-24, plus a second run
        // at 14:00 on the first of each month.
        let start = chrono::NaiveDate::from_ymd_opt(2025, 10, 1).unwrap();
        let mut snaps = Vec::new();
        let mut n: u32 = 0;
        for d in 0..420 {
            let day = start + chrono::Duration::days(d);
            for hour in [2u32, 14] {
                if hour == 14 && day.day() != 1 {
                    continue;
                }
                n += 1;
                let mut id = [0u8; 32];
                id[..4].copy_from_slice(&n.to_le_bytes());
                let t = format!("{} {hour:02}:00", day.format("%Y-%m-%d"));
                let mut e = snap(0, &t, &["nightly"]);
                e.id = SnapshotId(id);
                snaps.push(e);
            }
        }
        let p = ForgetPolicy {
            keep_daily: 7,
            keep_weekly: 4,
            keep_monthly: 12,
            keep_yearly: 3,
            ..Default::default()
        };
        let plan = p.apply(&snaps);
        let time = |id: &SnapshotId| snaps.iter().find(|s| &s.id == id).unwrap().snapshot.time;
        // Every kept snapshot is the newest of some bucket of its rule.
        for (id, why) in &plan.keep {
            let t = time(id);
            for rule in why {
                let same = |o: &DateTime<Utc>| match rule.as_str() {
                    "daily" => o.date_naive() == t.date_naive(),
                    "weekly" => o.iso_week() == t.iso_week(),
                    "monthly" => (o.year(), o.month()) == (t.year(), t.month()),
                    "yearly" => o.year() == t.year(),
                    other => panic!("unexpected rule {other}"),
                };
                assert!(
                    snaps
                        .iter()
                        .all(|s| !same(&s.snapshot.time) || s.snapshot.time <= t),
                    "{t} kept by {rule} but a newer one shares its bucket"
                );
            }
        }
        let count = |rule: &str| {
            plan.keep
                .iter()
                .filter(|(_, w)| w.iter().any(|r| r == rule))
                .count()
        };
        assert_eq!(count("daily"), 7);
        assert_eq!(count("weekly"), 4);
        assert_eq!(count("monthly"), 12);
        assert_eq!(count("yearly"), 2, "only 2025 and 2026 exist");
        // Overlaps (today is daily, weekly, monthly and yearly at once).
        assert!(plan.keep.len() < 7 + 4 + 12 + 2);
        assert_eq!(plan.keep.len() + plan.remove.len(), snaps.len());
        // The first-of-month 14:00 runs win their month over the 02:00 ones
        // only when nothing newer in that month exists: never, except for
        // the current month's first day being the newest. Monthly picks are
        // each month's last day.
        for (id, why) in &plan.keep {
            if why.iter().any(|r| r == "monthly") && !why.iter().any(|r| r == "daily") {
                let t = time(id);
                let next = t.date_naive() + chrono::Duration::days(1);
                assert_eq!(next.day(), 1, "{t} is not the last day of its month");
            }
        }
    }
}
