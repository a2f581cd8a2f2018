//! The state a backup leaves for the next one (stored by the store under
//! `state/`, sealed to the metadata recipient so a backup host can read it
//! with the backup key): per object a keyed hash of its key, its size and
//! blob ids, and what decides whether it changed (ETag, Last-Modified).
//!
//! Two versions (docs/FORMAT.md, "state/ files"):
//! - 2 (repositories in format 3): an object's SHA-256 and meta (headers,
//!   user metadata, content-disposition: a patient's name may be in it) are
//!   not here but in an info blob sealed to the data recipient; the entry
//!   names its line, which a carried item refers to unread.
//! - 1 (format 2): SHA-256 and meta in clear, readable with the backup
//!   key. Written only into format-2 repositories; `lifeboat upgrade`
//!   rewrites every such state without them ([`scrub`]).

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use lifeboat_store::{Access, BlobId, InfoRef, Repository};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::Result;
use crate::meta::ObjectMeta;
use crate::SOURCE;

/// The state format with details sealed in info blobs (format 3).
pub(crate) const SEALED: u32 = 2;
/// The state format with details in clear (format 2 repositories).
pub(crate) const CLEAR: u32 = 1;

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
pub(crate) enum Details<'a> {
    /// SHA-256 and meta in clear (a version-1 entry).
    Clear {
        sha256: &'a str,
        meta: &'a ObjectMeta,
    },
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

    pub fn details(&self) -> Option<Details<'_>> {
        match (&self.sha256, &self.meta, self.info) {
            (Some(sha256), Some(meta), _) => Some(Details::Clear { sha256, meta }),
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

impl State {
    pub fn new(location: &str, version: u32) -> Self {
        State {
            version,
            location: location.to_string(),
            objects: Vec::new(),
        }
    }

    pub fn into_map(self) -> HashMap<String, Entry> {
        self.objects.into_iter().map(|e| (e.k.clone(), e)).collect()
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

/// The state of the newest snapshot that backed up `location`. An
/// unreadable state is not fatal: the backup reads everything again.
pub(crate) fn previous<A: Access>(repo: &Repository<A>, location: &str) -> Result<Option<State>> {
    let (snapshots, _) = repo.snapshots()?;
    for snap in snapshots.iter().rev() {
        let Some(summary) = snap.snapshot.sources.get(SOURCE) else {
            continue;
        };
        if summary.facts.get("location").and_then(|l| l.as_str()) != Some(location) {
            continue;
        }
        if summary.state.is_none() {
            continue;
        }
        match repo.source_state(&snap.snapshot, SOURCE) {
            Ok(Some(raw)) => match serde_json::from_slice::<State>(&raw) {
                Ok(s) if [CLEAR, SEALED].contains(&s.version) && s.location == location => {
                    return Ok(Some(s))
                }
                Ok(_) => tracing::warn!(
                    "the object list of snapshot {} has another format: reading every object",
                    snap.id.short()
                ),
                Err(e) => tracing::warn!(
                    "the object list of snapshot {} is unreadable ({e}): reading every object",
                    snap.id.short()
                ),
            },
            Ok(None) => {}
            Err(e) => tracing::warn!(
                "the object list of snapshot {} is unreadable ({e}): reading every object",
                snap.id.short()
            ),
        }
        return Ok(None);
    }
    Ok(None)
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
