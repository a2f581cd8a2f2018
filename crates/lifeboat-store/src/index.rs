//! The index: which pack holds each blob. Index files are written by each
//! backup after the packs they name are stored; the in-memory [`Index`] is
//! the union of all of them.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use serde::{Deserialize, Serialize};

use crate::id::{BlobId, PackId};
use crate::pack::{BlobKind, PackEntry};

/// Largest index file accepted (plaintext), a guard against garbage.
pub(crate) const MAX_INDEX_LEN: usize = 1 << 30;

/// One pack as listed in an index file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IndexPack {
    pub id: PackId,
    pub blobs: Vec<PackEntry>,
}

/// The plaintext of an index file.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct IndexFile {
    pub version: u32,
    pub packs: Vec<IndexPack>,
}

/// Where a blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// The pack holding it.
    pub pack: PackId,
    /// Data or tree.
    pub kind: BlobKind,
    /// Offset of its ciphertext in the pack.
    pub offset: u32,
    /// Length of its ciphertext.
    pub length: u32,
    /// Length of its stored plaintext (a delta blob: of its patch).
    pub plain_length: u32,
    /// A delta blob's base.
    pub base: Option<BlobId>,
}

impl BlobLocation {
    /// The pack header / index entry of blob `id` stored here.
    pub(crate) fn entry(&self, id: BlobId) -> crate::pack::PackEntry {
        crate::pack::PackEntry {
            id,
            kind: self.kind,
            offset: self.offset,
            length: self.length,
            plain_length: self.plain_length,
            base: self.base,
        }
    }
}

/// A blob's place: 24 bytes (a delta's base is in [`Index::bases`]).
#[derive(Clone, Copy)]
struct Slot {
    pack: u32,
    kind: BlobKind,
    offset: u32,
    length: u32,
    plain_length: u32,
    /// Position of a delta blob's base in `bases`, or [`NO_BASE`].
    base: u32,
}

const NO_BASE: u32 = u32::MAX;

/// Key → `V` for millions of keys: a sorted array (no table slack: 56
/// bytes a blob for the index) and a hash table of the keys added since
/// it was last merged into the array (when the table reaches an eighth of
/// it).
pub(crate) struct BlobMap<V, K = BlobId> {
    sorted: Vec<(K, V)>,
    recent: HashMap<K, V>,
}

impl<V, K> Default for BlobMap<V, K> {
    fn default() -> Self {
        BlobMap {
            sorted: Vec::new(),
            recent: HashMap::new(),
        }
    }
}

/// A set of blob ids, 32 bytes each (see [`BlobMap`]).
pub(crate) type BlobSet = BlobMap<()>;

impl<K: Ord + Hash + Copy> BlobMap<(), K> {
    /// Add `id`; false if it was there.
    pub(crate) fn insert(&mut self, id: K) -> bool {
        if self.get(&id).is_some() {
            return false;
        }
        self.insert_new(id, ());
        true
    }

    pub(crate) fn contains(&self, id: &K) -> bool {
        self.get(id).is_some()
    }

    /// Take `id` out.
    pub(crate) fn remove_one(&mut self, id: &K) {
        if self.recent.remove(id).is_none() {
            if let Ok(i) = self.sorted.binary_search_by(|(b, _)| b.cmp(id)) {
                self.sorted.remove(i);
            }
        }
    }
}

impl<V: Copy, K: Ord + Hash + Copy> BlobMap<V, K> {
    pub(crate) fn get(&self, id: &K) -> Option<&V> {
        self.recent.get(id).or_else(|| {
            self.sorted
                .binary_search_by(|(b, _)| b.cmp(id))
                .ok()
                .map(|i| &self.sorted[i].1)
        })
    }

    /// Add a key the map does not hold.
    fn insert_new(&mut self, id: K, value: V) {
        self.recent.insert(id, value);
        if self.recent.len() >= (self.sorted.len() / 8).max(1 << 16) {
            self.merge();
        }
    }

    /// Move the recent keys into the sorted array: sorted apart, then
    /// merged from the back in place.
    fn merge(&mut self) {
        let mut new: Vec<(K, V)> = self.recent.drain().collect();
        self.recent.shrink_to_fit();
        new.sort_unstable_by_key(|a| a.0);
        let old = self.sorted.len();
        let Some(&filler) = new.first() else { return };
        self.sorted.reserve_exact(new.len());
        self.sorted.resize(old + new.len(), filler);
        let (mut i, mut j, mut k) = (old, new.len(), old + new.len());
        while j > 0 {
            if i > 0 && self.sorted[i - 1].0 > new[j - 1].0 {
                self.sorted[k - 1] = self.sorted[i - 1];
                i -= 1;
            } else {
                self.sorted[k - 1] = new[j - 1];
                j -= 1;
            }
            k -= 1;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.sorted.len() + self.recent.len()
    }

    fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.sorted
            .iter()
            .map(|(b, s)| (b, s))
            .chain(self.recent.iter())
    }

    fn remove(&mut self, ids: &HashSet<K>) {
        self.recent.retain(|id, _| !ids.contains(id));
        self.sorted.retain(|(id, _)| !ids.contains(id));
    }
}

/// All blobs known to the repository, compactly (about 60 bytes a blob,
/// twice that while the table grows).
#[derive(Default)]
pub struct Index {
    packs: Vec<PackId>,
    pack_pos: HashMap<PackId, u32>,
    /// Bases of delta blobs (few: most blobs are whole).
    bases: Vec<BlobId>,
    blobs: BlobMap<Slot>,
    /// Further copies of blobs stored more than once, in the order found:
    /// two backups racing, a pack prune kept beside its copies, or copies
    /// planted by a backup host (an index entry proves nothing about the
    /// bytes). Readers fall back to them when a copy does not match its id.
    others: HashMap<BlobId, Vec<Slot>>,
}

impl Index {
    pub(crate) fn add_pack(&mut self, pack: &IndexPack) {
        let pos = *self.pack_pos.entry(pack.id).or_insert_with(|| {
            self.packs.push(pack.id);
            (self.packs.len() - 1) as u32
        });
        for e in &pack.blobs {
            let base = match e.base {
                Some(b) => {
                    self.bases.push(b);
                    (self.bases.len() - 1) as u32
                }
                None => NO_BASE,
            };
            let slot = Slot {
                pack: pos,
                kind: e.kind,
                offset: e.offset,
                length: e.length,
                plain_length: e.plain_length,
                base,
            };
            let same = |s: &Slot| s.pack == pos && s.offset == e.offset;
            match self.blobs.get(&e.id) {
                None => self.blobs.insert_new(e.id, slot),
                Some(first) if same(first) => {}
                Some(_) => {
                    let more = self.others.entry(e.id).or_default();
                    if !more.iter().any(same) {
                        more.push(slot);
                    }
                }
            }
        }
    }

    fn location(&self, s: &Slot) -> BlobLocation {
        BlobLocation {
            pack: self.packs[s.pack as usize],
            kind: s.kind,
            offset: s.offset,
            length: s.length,
            plain_length: s.plain_length,
            base: self.base(s),
        }
    }

    fn base(&self, s: &Slot) -> Option<BlobId> {
        (s.base != NO_BASE).then(|| self.bases[s.base as usize])
    }

    /// Where `id` is stored, if anywhere (its first copy).
    pub fn get(&self, id: &BlobId) -> Option<BlobLocation> {
        self.blobs.get(id).map(|s| self.location(s))
    }

    /// Every stored copy of `id`, the first one first.
    pub fn copies(&self, id: &BlobId) -> Vec<BlobLocation> {
        self.blobs
            .get(id)
            .into_iter()
            .chain(self.others.get(id).into_iter().flatten())
            .map(|s| self.location(s))
            .collect()
    }

    /// Every copy of every blob.
    pub(crate) fn iter_copies(&self) -> impl Iterator<Item = (BlobId, BlobLocation)> + '_ {
        self.iter().chain(
            self.others
                .iter()
                .flat_map(|(id, v)| v.iter().map(|s| (*id, self.location(s)))),
        )
    }

    /// True when `id` is stored.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.blobs.get(id).is_some()
    }

    /// Number of distinct blobs.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// True when no blob is known.
    pub fn is_empty(&self) -> bool {
        self.blobs.len() == 0
    }

    /// Every pack named by an index.
    pub fn packs(&self) -> &[PackId] {
        &self.packs
    }

    /// Add to `blobs` the delta bases they need, and theirs, and so on;
    /// returns the blobs (asked for or bases) that no index names.
    pub(crate) fn close_over_bases(&self, blobs: &mut HashSet<BlobId>) -> Vec<BlobId> {
        let mut missing = Vec::new();
        let mut stack: Vec<BlobId> = blobs.iter().copied().collect();
        while let Some(id) = stack.pop() {
            match self.get(&id) {
                Some(loc) => {
                    if let Some(base) = loc.base {
                        if blobs.insert(base) {
                            stack.push(base);
                        }
                    }
                }
                None => missing.push(id),
            }
        }
        missing
    }

    /// Remove delta blobs whose base (or its base, ...) is not indexed, so
    /// nothing is deduplicated against a blob that cannot be rebuilt;
    /// returns how many were removed.
    pub(crate) fn drop_broken_deltas(&mut self) -> usize {
        let mut removed = 0;
        loop {
            let broken: Vec<BlobId> = self
                .blobs
                .iter()
                .filter(|(_, s)| self.base(s).is_some_and(|b| self.blobs.get(&b).is_none()))
                .map(|(id, _)| *id)
                .collect();
            if broken.is_empty() {
                return removed;
            }
            removed += broken.len();
            let broken: HashSet<BlobId> = broken.into_iter().collect();
            self.blobs.remove(&broken);
            self.others.retain(|id, _| !broken.contains(id));
        }
    }

    /// Every blob with its location.
    pub fn iter(&self) -> impl Iterator<Item = (BlobId, BlobLocation)> + '_ {
        self.blobs.iter().map(|(id, s)| (*id, self.location(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_set_finds_every_blob_across_merges() {
        let id = |i: u32| {
            let mut b = [0u8; 32];
            b[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
            b[4..8].copy_from_slice(&i.to_le_bytes());
            BlobId(b)
        };
        let mut set = BlobSet::default();
        let n = 300_000;
        for i in 0..n {
            assert!(set.insert(id(i)), "{i} is new");
        }
        assert!(set.sorted.len() > n as usize / 2, "merged into the array");
        assert!(set.sorted.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(set.len(), n as usize);
        for i in (0..n).step_by(7) {
            assert!(set.contains(&id(i)));
            assert!(!set.insert(id(i)), "{i} is there");
        }
        assert!(!set.contains(&id(n)));
        let gone: HashSet<BlobId> = (0..n).step_by(2).map(id).collect();
        set.remove(&gone);
        assert_eq!(set.len(), n as usize / 2);
        assert!(set.contains(&id(1)) && !set.contains(&id(2)));
    }
}
