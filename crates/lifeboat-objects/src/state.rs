//! The state a backup leaves for the next one (stored by the store under
//! `state/`, sealed to the metadata recipient so a backup host can read it
//! with the backup key): per object a keyed hash of its key, its size and
//! blob ids, and what decides whether it changed (ETag, Last-Modified).
//!
//! A state is stored in parts (state format 3, docs/FORMAT.md, "state/
//! files"): a head naming the location and the object count, and the
//! entries in key order, cut into parts where an entry's keyed hash says so
//! (content-defined, about [`PART_ENTRIES`] entries each). A part whose
//! entries did not change is the same file as the night before: an
//! unchanged night writes no part. The previous state is read as a stream
//! beside the listing, which comes in the same key order: memory holds one
//! part and 16 bytes per object of the previous state, never the list.
//!
//! Each part (and the single-file state older versions wrote) is a
//! [`State`] with one of two entry versions:
//! - 2 (repositories in format 3): an object's SHA-256 and meta (headers,
//!   user metadata, content-disposition: a patient's name may be in it) are
//!   not here but in an info blob sealed to the data recipient; the entry
//!   names its line, which a carried item refers to unread.
//! - 1 (format 2): SHA-256 and meta in clear, readable with the backup
//!   key. Written only into format-2 repositories; `lifeboat upgrade`
//!   rewrites every such state without them ([`scrub`]).

use std::collections::{HashMap, VecDeque};

use hmac::{Hmac, Mac};
use lifeboat_store::{Access, BackupSession, BlobId, InfoRef, Repository, Snapshot};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::meta::ObjectMeta;
use crate::SOURCE;

/// The state format with details sealed in info blobs (format 3).
pub(crate) const SEALED: u32 = 2;
/// The state format with details in clear (format 2 repositories).
pub(crate) const CLEAR: u32 = 1;
/// The head of a state stored in parts.
pub(crate) const CHUNKED: u32 = 3;

/// Entries per part on average: a part ends after an entry whose keyed
/// hash is 0 modulo this (about 200 KiB of JSON, 100 KiB sealed).
pub(crate) const PART_ENTRIES: u32 = 2048;
/// A part ends here whatever the hashes say.
const MAX_PART_ENTRIES: usize = 16 * PART_ENTRIES as usize;

/// The head of a state in parts (the `state` file; its parts are the
/// summary's `state_parts`, in key order). It has no `objects` list, so a
/// reader of single-file states finds it unreadable rather than empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Head {
    version: u32,
    location: String,
    /// Entries in all parts.
    count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct State {
    pub version: u32,
    /// The location this state describes (a bucket or directory).
    pub location: String,
    pub objects: Vec<Entry>,
}

/// One object. Version 1 entries have `sha256` and `meta`; version 2
/// entries `etag`, `last_modified` and `info`; an entry scrubbed by an
/// upgrade has neither (it only counts for deletions).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// HMAC-SHA256 of the key under a key derived from the dedup secret.
    pub k: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default)]
    pub blobs: Vec<BlobId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<ObjectMeta>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub etag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<InfoRef>,
}

/// What an entry says about its object's content, when it says enough to
/// carry the object over unread.
pub(crate) enum Details {
    /// SHA-256 and meta in clear (a version-1 entry).
    Clear,
    /// Sealed in an info blob's line (a version-2 entry).
    Sealed,
}

impl Entry {
    pub fn etag(&self) -> &str {
        self.meta.as_ref().map_or(&self.etag, |m| &m.etag)
    }

    pub fn last_modified(&self) -> Option<&str> {
        match &self.meta {
            Some(m) => m.last_modified.as_deref(),
            None => self.last_modified.as_deref(),
        }
    }

    pub fn details(&self) -> Option<Details> {
        match (&self.sha256, &self.meta, self.info) {
            (Some(_), Some(_), _) => Some(Details::Clear),
            (_, _, Some(_)) => Some(Details::Sealed),
            _ => None,
        }
    }

    /// Every blob carrying the object over needs.
    pub fn needed_blobs(&self) -> Vec<BlobId> {
        let mut v = self.blobs.clone();
        v.extend(self.info.map(|i| i.blob));
        v
    }
}

/// Hashes keys for the state.
pub(crate) struct KeyHasher([u8; 32]);

impl KeyHasher {
    pub fn new(secret: [u8; 32]) -> Self {
        KeyHasher(secret)
    }

    pub fn hash(&self, key: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(key.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// The first 128 bits of an entry's keyed hash, or `None` if `k` is not one.
fn key_bits(k: &str) -> Option<u128> {
    if k.len() != 64 {
        return None;
    }
    u128::from_str_radix(&k[..32], 16).ok()
}

/// Whether a part ends after the entry with keyed hash `k`.
fn cuts_after(k: &str) -> bool {
    k.get(56..)
        .and_then(|tail| u32::from_str_radix(tail, 16).ok())
        .is_some_and(|v| v % PART_ENTRIES == 0)
}

/// A state's entries as a stream, with the keyed hashes of all of them
/// (16 bytes each) to tell a listed key that is new from one further on.
pub(crate) struct Previous<'r, A: Access> {
    repo: &'r Repository<A>,
    snapshot: Snapshot,
    /// Parts not yet read, in order.
    parts: VecDeque<String>,
    current: std::vec::IntoIter<Entry>,
    /// 128 bits of every entry's keyed hash, sorted, each once.
    keys: Vec<u128>,
    /// One bit per key: listed tonight.
    found: Vec<u64>,
    /// Objects in the state (distinct keys).
    pub count: u64,
    /// Of those, listed tonight (whatever order the state was in).
    pub matched: u64,
    /// Parts read and checked, by the SHA-256 of their plaintext.
    reusable: HashMap<[u8; 32], String>,
    location: String,
    /// The snapshot's short id, for warnings.
    id: String,
}

/// A single-file state or a part: a [`State`] of a known entry version,
/// of `location`; else why not.
fn parse_state(raw: &[u8], location: &str) -> std::result::Result<State, String> {
    match serde_json::from_slice::<State>(raw) {
        Ok(s) if [CLEAR, SEALED].contains(&s.version) && s.location == location => Ok(s),
        Ok(_) => Err("another format or location".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Why a previous state is not used (the backup then reads every object).
fn unusable(snapshot: &str, why: impl std::fmt::Display) {
    tracing::warn!(
        "the object list of snapshot {snapshot} is unreadable ({why}): reading every object"
    );
}

impl<'r, A: Access> Previous<'r, A> {
    /// The state of the newest snapshot that backed up `location`. An
    /// unreadable state is not fatal: the backup reads everything again.
    pub fn open(repo: &'r Repository<A>, location: &str) -> Result<Option<Self>> {
        let (snapshots, _) = repo.snapshots()?;
        let Some(snap) = snapshots.into_iter().rev().find(|s| {
            s.snapshot.sources.get(SOURCE).is_some_and(|summary| {
                summary.facts.get("location").and_then(|l| l.as_str()) == Some(location)
                    && summary.state.is_some()
            })
        }) else {
            return Ok(None);
        };
        let (id, snapshot) = (snap.id.short(), snap.snapshot);
        let raw = match repo.source_state(&snapshot, SOURCE) {
            Ok(Some(raw)) => raw,
            Ok(None) => return Ok(None),
            Err(e) => {
                unusable(&id, e);
                return Ok(None);
            }
        };
        let mut prev = Previous {
            repo,
            parts: VecDeque::new(),
            current: Vec::new().into_iter(),
            keys: Vec::new(),
            found: Vec::new(),
            count: 0,
            matched: 0,
            reusable: HashMap::new(),
            location: location.to_string(),
            snapshot,
            id,
        };
        if let Ok(head) = serde_json::from_slice::<Head>(&raw) {
            if head.version != CHUNKED || head.location != location {
                unusable(&prev.id, "another format or location");
                return Ok(None);
            }
            let names = prev.snapshot.sources[SOURCE].state_parts.clone();
            // A part named twice would be read twice (a forged list could
            // name one part a million times).
            let distinct: std::collections::HashSet<&String> = names.iter().collect();
            if distinct.len() != names.len() {
                unusable(&prev.id, "a part is named twice");
                return Ok(None);
            }
            prev.keys.reserve(head.count.min(1 << 24) as usize);
            // First pass: the keys, and which parts read back as stored.
            for name in &names {
                let Some(part) = prev.read_part(name) else {
                    return Ok(None);
                };
                if !prev.keep_keys(&part.objects) {
                    return Ok(None);
                }
            }
            if prev.keys.len() as u64 != head.count {
                unusable(
                    &prev.id,
                    "its parts do not hold the entries its head counts",
                );
                return Ok(None);
            }
            prev.parts = names.into();
        } else {
            match parse_state(&raw, location) {
                Ok(s) => {
                    if !prev.keep_keys(&s.objects) {
                        return Ok(None);
                    }
                    prev.current = s.objects.into_iter();
                }
                Err(why) => {
                    unusable(&prev.id, why);
                    return Ok(None);
                }
            }
        }
        prev.keys.sort_unstable();
        prev.keys.dedup();
        prev.count = prev.keys.len() as u64;
        prev.found = vec![0; prev.keys.len().div_ceil(64)];
        Ok(Some(prev))
    }

    /// A part of the state, checked; remembered as reusable by the SHA-256
    /// of its plaintext. `None` (with a warning) if it does not read.
    fn read_part(&mut self, name: &str) -> Option<State> {
        let raw = match self.repo.source_state_part(&self.snapshot, SOURCE, name) {
            Ok(raw) => raw,
            Err(e) => {
                unusable(&self.id, e);
                return None;
            }
        };
        match parse_state(&raw, &self.location) {
            Ok(s) => {
                self.reusable
                    .insert(Sha256::digest(&raw).into(), name.to_string());
                Some(s)
            }
            Err(why) => {
                unusable(&self.id, why);
                None
            }
        }
    }

    /// Keep 128 bits of each entry's keyed hash; false (with a warning)
    /// if an entry has none.
    fn keep_keys(&mut self, entries: &[Entry]) -> bool {
        for e in entries {
            let Some(bits) = key_bits(&e.k) else {
                unusable(&self.id, "an entry without a keyed hash");
                return false;
            };
            self.keys.push(bits);
        }
        true
    }

    fn next_entry(&mut self) -> Option<Entry> {
        loop {
            if let Some(e) = self.current.next() {
                return Some(e);
            }
            let name = self.parts.pop_front()?;
            match self.read_part(&name) {
                Some(part) => self.current = part.objects.into_iter(),
                None => {
                    // Read before, not now: what is left counts as new.
                    self.parts.clear();
                    return None;
                }
            }
        }
    }

    /// The entry of the object whose keyed hash is `k`, if the state has
    /// one. Keys must be asked for in the order the state was written
    /// (the listing's key order): entries passed over are deleted objects.
    /// Asked out of order, an entry passed over already is not found and
    /// its object is read again (correct, only slower).
    pub fn take(&mut self, k: &str) -> Option<Entry> {
        let bits = key_bits(k)?;
        let i = self.keys.binary_search(&bits).ok()?;
        // Counted here, not by the stream: a list out of order (forged or
        // not) must not make objects that are there look deleted.
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        if self.found[word] & bit == 0 {
            self.found[word] |= bit;
            self.matched += 1;
        }
        while let Some(e) = self.next_entry() {
            if e.k == k {
                return Some(e);
            }
        }
        None
    }

    /// Parts read and checked, by the SHA-256 of their plaintext: a new
    /// part with the same bytes is that file.
    pub fn reusable(&self) -> &HashMap<[u8; 32], String> {
        &self.reusable
    }
}

/// Writes a state in parts, reusing a previous part whose bytes are the same.
pub(crate) struct Writer {
    location: String,
    version: u32,
    part: Vec<Entry>,
    names: Vec<String>,
    count: u64,
    reusable: HashMap<[u8; 32], String>,
    /// Parts written, and reused from the previous state.
    pub written: u64,
    /// Parts reused.
    pub reused: u64,
}

impl Writer {
    pub fn new(location: &str, version: u32, reusable: HashMap<[u8; 32], String>) -> Self {
        Writer {
            location: location.to_string(),
            version,
            part: Vec::new(),
            names: Vec::new(),
            count: 0,
            reusable,
            written: 0,
            reused: 0,
        }
    }

    /// Add the next entry (in key order).
    pub fn push<A: Access>(&mut self, session: &BackupSession<A>, e: Entry) -> Result<()> {
        // A format-2 repository keeps its single-file state (its upgrade
        // rewrites state files, not parts): memory then grows with the list.
        let cut =
            self.version != CLEAR && (cuts_after(&e.k) || self.part.len() + 1 >= MAX_PART_ENTRIES);
        self.part.push(e);
        self.count += 1;
        if cut {
            self.flush(session)?;
        }
        Ok(())
    }

    fn flush<A: Access>(&mut self, session: &BackupSession<A>) -> Result<()> {
        if self.part.is_empty() {
            return Ok(());
        }
        let part = State {
            version: self.version,
            location: self.location.clone(),
            objects: std::mem::take(&mut self.part),
        };
        let json = serde_json::to_vec(&part).expect("state serializes");
        let sha: [u8; 32] = Sha256::digest(&json).into();
        let name = match self.reusable.get(&sha) {
            Some(name) => {
                self.reused += 1;
                name.clone()
            }
            None => {
                self.written += 1;
                session.write_state_part(&json)?
            }
        };
        self.names.push(name);
        Ok(())
    }

    /// Store the last part and the head, and name them in the session.
    pub fn finish<A: Access>(mut self, session: &mut BackupSession<A>) -> Result<()> {
        if self.version == CLEAR {
            let state = State {
                version: CLEAR,
                location: self.location,
                objects: self.part,
            };
            let json = serde_json::to_vec(&state).expect("state serializes");
            return Ok(session.set_source_state(SOURCE, &json)?);
        }
        self.flush(session)?;
        let head = Head {
            version: CHUNKED,
            location: self.location,
            count: self.count,
        };
        let json = serde_json::to_vec(&head).expect("state serializes");
        session.set_source_state(SOURCE, &json)?;
        session.set_source_state_parts(SOURCE, self.names);
        Ok(())
    }
}

/// An objects state without what the backup key must not read: SHA-256s
/// and meta of version-1 entries are dropped (an object listed in it is
/// then read again by the next backup, which stores nothing new for it but
/// its info line). `None` when there is nothing to drop, or the body is not
/// an objects state. For `lifeboat upgrade` (format 2 → 3).
pub fn scrub(body: &[u8]) -> Option<Vec<u8>> {
    let mut state: State = serde_json::from_slice(body).ok()?;
    if !state
        .objects
        .iter()
        .any(|e| e.sha256.is_some() || e.meta.is_some())
    {
        return None;
    }
    for e in &mut state.objects {
        *e = Entry {
            k: std::mem::take(&mut e.k),
            size: e.size,
            blobs: std::mem::take(&mut e.blobs),
            info: e.info,
            ..Entry::default()
        };
    }
    state.version = SEALED;
    Some(serde_json::to_vec(&state).expect("state serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_drops_hashes_and_meta_and_leaves_a_scrubbed_state_alone() {
        let v1 = br#"{"version":1,"location":"dir:/x","objects":[{"k":"aa","size":3,"sha256":"00","blobs":[],"meta":{"etag":"e","content_disposition":"attachment; filename=jane-doe.pdf","metadata":{"patient":"Jane Doe"}}}]}"#;
        let out = scrub(v1).expect("something to drop");
        let text = String::from_utf8(out.clone()).expect("utf-8");
        assert!(!text.contains("Jane") && !text.contains("jane") && !text.contains("sha256"));
        assert!(!text.contains("\"etag\""), "{text}");
        let s: State = serde_json::from_slice(&out).expect("a state");
        assert_eq!(s.version, SEALED);
        assert_eq!((s.objects[0].k.as_str(), s.objects[0].size), ("aa", 3));
        assert!(s.objects[0].details().is_none(), "cannot be carried");
        assert!(scrub(&out).is_none(), "nothing left to drop");
        assert!(
            scrub(br#"{"version":1,"items":{}}"#).is_none(),
            "not an objects state"
        );
    }
}
