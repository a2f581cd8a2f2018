//! The state a backup leaves for the next one (stored by the store under
//! `state/`, sealed to the metadata recipient so a backup host can read it
//! with the backup key): per object a keyed hash of its key, its size, ETag,
//! headers, SHA-256 and blob ids. Keys are hashed so the backup key does not
//! reveal file names; sizes, ETags and headers are visible to it (as they
//! are to anyone holding the bucket's read credentials on that host).

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use lifeboat_store::{Access, BlobId, Repository};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::Result;
use crate::meta::ObjectMeta;
use crate::SOURCE;

/// Version of the state format.
const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct State {
    pub version: u32,
    /// The location this state describes (a bucket or directory).
    pub location: String,
    pub objects: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// HMAC-SHA256 of the key under a key derived from the dedup secret.
    pub k: String,
    pub size: u64,
    pub sha256: String,
    pub blobs: Vec<BlobId>,
    pub meta: ObjectMeta,
}

impl State {
    pub fn new(location: &str) -> Self {
        State {
            version: VERSION,
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
                Ok(s) if s.version == VERSION && s.location == location => return Ok(Some(s)),
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
