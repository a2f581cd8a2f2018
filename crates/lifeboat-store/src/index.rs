//! The index: which pack holds each blob. Index files are written by each
//! backup after the packs they name are stored; the in-memory [`Index`] is
//! the union of all of them.

use std::collections::{HashMap, HashSet};

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

#[derive(Clone, Copy)]
struct Slot {
    pack: u32,
    kind: BlobKind,
    offset: u32,
    length: u32,
    plain_length: u32,
    base: Option<BlobId>,
}

/// All blobs known to the repository, compactly (about 120 bytes a blob).
#[derive(Default)]
pub struct Index {
    packs: Vec<PackId>,
    pack_pos: HashMap<PackId, u32>,
    blobs: HashMap<BlobId, Slot>,
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
            let slot = Slot {
                pack: pos,
                kind: e.kind,
                offset: e.offset,
                length: e.length,
                plain_length: e.plain_length,
                base: e.base,
            };
            let same = |s: &Slot| s.pack == pos && s.offset == e.offset;
            match self.blobs.entry(e.id) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(slot);
                }
                std::collections::hash_map::Entry::Occupied(o) if same(o.get()) => {}
                std::collections::hash_map::Entry::Occupied(_) => {
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
            base: s.base,
        }
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
        self.blobs.contains_key(id)
    }

    /// Number of distinct blobs.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// True when no blob is known.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
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
                .filter(|(_, s)| s.base.is_some_and(|b| !self.blobs.contains_key(&b)))
                .map(|(id, _)| *id)
                .collect();
            if broken.is_empty() {
                return removed;
            }
            removed += broken.len();
            for id in broken {
                self.blobs.remove(&id);
                self.others.remove(&id);
            }
        }
    }

    /// Every blob with its location.
    pub fn iter(&self) -> impl Iterator<Item = (BlobId, BlobLocation)> + '_ {
        self.blobs
            .keys()
            .filter_map(|id| self.get(id).map(|l| (*id, l)))
    }
}
