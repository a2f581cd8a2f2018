//! Entry points for fuzzing every parser of stored data: the libFuzzer
//! targets in `fuzz/` (coverage-guided, `scripts/fuzz.sh`) and the quick
//! proptest versions in the test suite call the same functions. Each feeds
//! one parser arbitrary bytes and asserts what must hold of whatever it
//! accepts (bounds, nothing allocated by a length field); a panic is a
//! finding. Not an API: hidden from the docs, stable for nobody.
//!
//! Sealed inputs (metadata files, pack headers) are opened with a fixed,
//! throwaway identity and tag key, so seeds sealed to them stay valid
//! across runs (`seal_seed` makes them). They protect nothing.

use std::sync::OnceLock;

use age::x25519;

use crate::crypto::{self, DedupKey};
use crate::index::{Index, IndexFile, MAX_INDEX_LEN};
use crate::pack::{self, MAX_BLOB_LEN, MAX_HEADER_LEN, TRAILER_LEN};
use crate::snapshot::{ItemInfo, ManifestItem, Snapshot};

/// The fuzzing identity: a throwaway key, public in this file.
const IDENTITY: &str = "AGE-SECRET-KEY-13WPR9REPSA3X3D9RYG6D7RG3WUZ5CU80ASA8TLWTWDMDCWMG4D0Q6TTZC2";
/// The fuzzing dedup secret (tags of pack headers and metadata files).
const DEDUP: &str = "1111111111111111111111111111111111111111111111111111111111111111";

struct Keys {
    identity: x25519::Identity,
    dedup: DedupKey,
}

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| Keys {
        identity: IDENTITY.parse().expect("the fuzzing identity parses"),
        dedup: DedupKey::from_hex(DEDUP).expect("the fuzzing secret parses"),
    })
}

/// `config`: a repository's plaintext config file.
pub fn config(data: &[u8]) {
    if let Ok(c) = crate::repository::parse_config(data) {
        assert!(c.chunker.validate().is_ok());
        assert!((1 << 20..=1 << 30).contains(&c.pack_size));
    }
}

/// An index file's JSON, loaded into an [`Index`]: every entry findable,
/// and dropping broken delta chains ends.
pub fn index_file(data: &[u8]) {
    if let Ok(file) = serde_json::from_slice::<IndexFile>(data) {
        let mut index = Index::default();
        for p in &file.packs {
            index.add_pack(p);
        }
        for p in &file.packs {
            for b in &p.blobs {
                assert!(!index.copies(&b.id).is_empty());
            }
        }
        let _ = index.drop_broken_deltas();
    }
}

/// A snapshot file's JSON.
pub fn snapshot(data: &[u8]) {
    if let Ok(s) = serde_json::from_slice::<Snapshot>(data) {
        let _ = s.own_blobs().count();
        let _ = s.failed_sources();
        let _ = s.is_from_the_future();
    }
}

/// Manifest lines and info lines (JSON, one per line).
pub fn manifest(data: &[u8]) {
    for line in data.split(|b| *b == b'\n') {
        if let Ok(item) = serde_json::from_slice::<ManifestItem>(line) {
            let _ = item.needed_blobs().count();
        }
        let _ = serde_json::from_slice::<ItemInfo>(line);
    }
}

/// A lock file's JSON.
pub fn lock(data: &[u8]) {
    let _ = serde_json::from_slice::<crate::lock::LockInfo>(data);
}

/// Backup and restore key files.
pub fn key_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crypto::BackupKey::parse(&text, "fuzz");
    let _ = crypto::RestoreKey::parse(&text, "fuzz");
}

/// A delta blob applied to a base: `data` is the base, a 0xFF byte, then
/// the patch (the first 0xFF splits; without one, the base is empty).
pub fn delta(data: &[u8]) {
    let (base, patch) = match data.iter().position(|b| *b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    if let Ok(out) = crate::delta::apply(base, patch, 1 << 16) {
        assert!(out.len() <= 1 << 16);
    }
}

/// A sealed metadata file (age, then zstd), opened with the fuzzing
/// identity within a limit, then its tag line checked as any label.
pub fn sealed(data: &[u8]) {
    let k = keys();
    let limit = 4096;
    if let Ok(out) = crypto::open(&[&k.identity], data, limit) {
        assert!(out.len() <= limit);
        if let Some((tag, body)) = crypto::split_tag_line(&out) {
            let _ = k.dedup.check_file_tag("snapshots", body, &tag);
        }
    }
    let _ = crypto::open(&[&k.identity], data, MAX_INDEX_LEN);
}

/// A whole pack: trailer, sealed header, entries within the pack.
pub fn pack(data: &[u8]) {
    let k = keys();
    for auth in [Some(&k.dedup), None] {
        if let Ok(header) = pack::parse_pack(data, &k.identity, auth, "fuzz") {
            for e in header.entries {
                assert!(e.length <= MAX_BLOB_LEN && e.plain_length <= MAX_BLOB_LEN);
                assert!(e.offset as usize + e.length as usize <= data.len());
            }
        }
    }
}

/// A pack's trailer, for a pack of the length in the first 8 bytes.
pub fn pack_trailer(data: &[u8]) {
    let (len, trailer) = data.split_at(data.len().min(8));
    let mut n = [0u8; 8];
    n[..len.len()].copy_from_slice(len);
    let pack_len = u64::from_le_bytes(n);
    if let Ok(h) = pack::parse_trailer(trailer, pack_len, "fuzz") {
        assert!(h <= MAX_HEADER_LEN);
        assert!(h as u64 + TRAILER_LEN as u64 <= pack_len);
    }
}

/// `plain` sealed to the fuzzing identity with a tag line for `label` (a
/// seed for [`sealed`]), or, for `label == "pack"`, a pack holding one
/// blob of `plain` (a seed for [`pack`]).
pub fn seal_seed(label: &str, plain: &[u8]) -> Vec<u8> {
    let k = keys();
    let recipient = k.identity.to_public();
    if label == "pack" {
        let mut b = pack::PackBuilder::with_buffer(Vec::new(), 1 << 20);
        let sealed = crypto::seal(&recipient, 1, plain);
        let id = k.dedup.blob_id(plain);
        b.add(id, pack::BlobKind::Data, &sealed, plain.len(), None);
        return b.finish(&recipient, Some(&k.dedup)).1;
    }
    let tag = k.dedup.file_tag(label, plain);
    crypto::seal(&recipient, 3, &crypto::with_tag_line(&tag, plain))
}

/// A seed for [`sealed`] opened (to check the seeds are valid).
pub fn open_seed(data: &[u8]) -> Option<Vec<u8>> {
    crypto::open(&[&keys().identity], data, MAX_INDEX_LEN).ok()
}

/// A seed for [`pack`] parsed: whether its header is a legacy (untagged) one.
pub fn parse_pack_seed(data: &[u8]) -> Option<bool> {
    let k = keys();
    pack::parse_pack(data, &k.identity, Some(&k.dedup), "seed")
        .ok()
        .map(|h| h.legacy)
}
