//! Pack files: many encrypted blobs in one file, with an encrypted header
//! at the end listing them. Byte layout in docs/FORMAT.md, "Pack files".

use serde::{Deserialize, Serialize};

use crate::crypto::{self, DedupKey};
use crate::error::{Error, Result};
use crate::id::{sha256, BlobId, PackId};

/// The four bytes every pack file ends with.
pub const PACK_MAGIC: &[u8; 4] = b"LBP1";
/// Length of the trailer: header length (u32 LE) and magic.
pub const TRAILER_LEN: usize = 8;
/// Largest pack header accepted when reading (a guard against garbage lengths).
pub(crate) const MAX_HEADER_LEN: usize = 64 * 1024 * 1024;
/// No blob is larger than this, sealed or plain (chunks are at most 16 MiB,
/// MySQL segments 4 MiB): a length field beyond it is damage, and nothing
/// allocates by it.
pub(crate) const MAX_BLOB_LEN: u32 = 64 * 1024 * 1024;

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    /// Backed-up content, encrypted to the data recipient.
    Data,
    /// Manifest content (item lists), also encrypted to the data recipient.
    Tree,
}

/// One blob's place in a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackEntry {
    /// The blob.
    pub id: BlobId,
    /// Data or tree.
    #[serde(rename = "type")]
    pub kind: BlobKind,
    /// Byte offset in the pack.
    pub offset: u32,
    /// Stored (encrypted) length.
    pub length: u32,
    /// Plaintext length of what is stored (for a delta blob: of the patch).
    pub plain_length: u32,
    /// Set when the blob is stored as a line patch against this other blob
    /// (see docs/FORMAT.md, "Delta blobs"); its id is still the HMAC of the
    /// full plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BlobId>,
}

#[derive(Serialize, Deserialize)]
struct PackHeader {
    version: u32,
    blobs: Vec<PackEntry>,
}

/// Builds one pack in memory.
pub(crate) struct PackBuilder {
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
}

impl PackBuilder {
    /// Start a pack in `buf` (cleared; its capacity is reused).
    pub(crate) fn with_buffer(mut buf: Vec<u8>, capacity: usize) -> Self {
        buf.clear();
        buf.reserve(capacity);
        Self {
            buf,
            entries: Vec::new(),
        }
    }

    #[cfg(test)]
    pub(crate) fn new(capacity: usize) -> Self {
        Self::with_buffer(Vec::new(), capacity)
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn add(
        &mut self,
        id: BlobId,
        kind: BlobKind,
        sealed: &[u8],
        plain_length: usize,
        base: Option<BlobId>,
    ) {
        self.entries.push(PackEntry {
            id,
            kind,
            offset: self.buf.len() as u32,
            length: sealed.len() as u32,
            plain_length: plain_length as u32,
            base,
        });
        self.buf.extend_from_slice(sealed);
    }

    /// Close the pack: append the header sealed to the metadata recipient,
    /// with its tag line when `auth` is given (format 2).
    pub(crate) fn finish(
        mut self,
        meta: &dyn age::Recipient,
        auth: Option<&DedupKey>,
    ) -> (PackId, Vec<u8>, Vec<PackEntry>) {
        let header = PackHeader {
            version: 1,
            blobs: self.entries,
        };
        let json = serde_json::to_vec(&header).expect("pack header serializes");
        let sealed = match auth {
            Some(k) => {
                let tag = k.file_tag(HEADER_LABEL, &bound(&sha256(&self.buf), &json));
                crypto::seal(meta, 3, &crypto::with_tag_line(&tag, &json))
            }
            None => crypto::seal(meta, 3, &json),
        };
        self.buf.extend_from_slice(&sealed);
        self.buf
            .extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(PACK_MAGIC);
        let id = PackId(sha256(&self.buf));
        (id, self.buf, header.blobs)
    }
}

/// Parse a trailer; returns the header's length.
pub(crate) fn parse_trailer(trailer: &[u8], pack_len: u64, what: &str) -> Result<usize> {
    if trailer.len() != TRAILER_LEN || &trailer[4..] != PACK_MAGIC {
        return Err(Error::damaged(what, "pack trailer magic missing"));
    }
    let len = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]) as usize;
    if len > MAX_HEADER_LEN || len as u64 + TRAILER_LEN as u64 > pack_len {
        return Err(Error::damaged(
            what,
            format!("pack header length {len} impossible"),
        ));
    }
    Ok(len)
}

/// The label a pack header's tag binds (docs/FORMAT.md, "Authentication").
pub(crate) const HEADER_LABEL: &str = "pack-header";

/// A pack header as read.
#[derive(Debug)]
pub(crate) struct Header {
    pub entries: Vec<PackEntry>,
    /// Format 2 read a header without a tag: a pack written before the
    /// upgrade. Only an (authenticated) index entry vouches for its blobs.
    pub legacy: bool,
}

/// What a pack header's tag covers: the SHA-256 of the pack's blobs (the
/// bytes before the header), then the header JSON. So a header cannot be
/// moved onto other bytes: a backup would otherwise dedup against blobs
/// that are not there.
fn bound(data_sha256: &[u8; 32], json: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(32 + json.len());
    v.extend_from_slice(data_sha256);
    v.extend_from_slice(json);
    v
}

/// Decrypt and parse a pack header, and check its entries lie inside the
/// pack. With `auth` (format 2) a tagged header must authenticate against
/// `data_sha256`, the SHA-256 of the pack's bytes before the header; an
/// untagged one is returned marked `legacy`, for the caller to decide.
pub(crate) fn parse_header(
    sealed: &[u8],
    header_start: u64,
    meta: &dyn age::Identity,
    auth: Option<&DedupKey>,
    data_sha256: &[u8; 32],
    what: &str,
) -> Result<Header> {
    let plain = crypto::open(&[meta], sealed, MAX_HEADER_LEN + crypto::TAG_LINE_LEN)
        .map_err(|e| e.into_error(what))?;
    let (json, legacy) = match (auth, crypto::split_tag_line(&plain)) {
        (Some(k), Some((tag, body))) => {
            if !k.check_file_tag(HEADER_LABEL, &bound(data_sha256, body), &tag) {
                return Err(Error::damaged(
                    what,
                    "pack header authentication failed: not written with this repository's keys \
                     for these bytes (forged, or moved onto another pack)",
                ));
            }
            (body, false)
        }
        (Some(_), None) => (&plain[..], true),
        (None, _) => (&plain[..], false),
    };
    let header: PackHeader = serde_json::from_slice(json)
        .map_err(|e| Error::damaged(what, format!("pack header: {e}")))?;
    if header.version != 1 {
        return Err(Error::damaged(
            what,
            format!("pack version {} unknown", header.version),
        ));
    }
    for e in &header.blobs {
        if e.length > MAX_BLOB_LEN || e.plain_length > MAX_BLOB_LEN {
            return Err(Error::damaged(
                what,
                format!("blob {} has an impossible length", e.id),
            ));
        }
        if e.offset as u64 + e.length as u64 > header_start {
            return Err(Error::damaged(
                what,
                format!("blob {} lies outside the pack", e.id),
            ));
        }
    }
    Ok(Header {
        entries: header.blobs,
        legacy,
    })
}

/// Read every entry of a whole pack held in memory.
pub(crate) fn parse_pack(
    data: &[u8],
    meta: &dyn age::Identity,
    auth: Option<&DedupKey>,
    what: &str,
) -> Result<Header> {
    if data.len() < TRAILER_LEN {
        return Err(Error::damaged(what, "pack shorter than its trailer"));
    }
    let t = data.len() - TRAILER_LEN;
    let hlen = parse_trailer(&data[t..], data.len() as u64, what)?;
    let start = t - hlen;
    parse_header(
        &data[start..t],
        start as u64,
        meta,
        auth,
        &sha256(&data[..start]),
        what,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::x25519::Identity;

    #[test]
    fn build_and_parse() {
        let meta = Identity::generate();
        let mut b = PackBuilder::new(0);
        b.add(BlobId([1; 32]), BlobKind::Data, b"aaaa", 10, None);
        b.add(
            BlobId([2; 32]),
            BlobKind::Tree,
            b"bbbbbb",
            20,
            Some(BlobId([1; 32])),
        );
        let key = DedupKey::generate();
        let (id, bytes, entries) = b.finish(&meta.to_public(), Some(&key));
        assert_eq!(id.0, sha256(&bytes));
        assert_eq!(&bytes[bytes.len() - 4..], PACK_MAGIC);
        let parsed = parse_pack(&bytes, &meta, Some(&key), "p").unwrap();
        assert!(!parsed.legacy);
        let parsed = parsed.entries;
        assert_eq!(parsed, entries);
        assert_eq!(parsed[1].offset, 4);
        assert_eq!(&bytes[4..10], b"bbbbbb");
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 6] ^= 0xff;
        assert!(parse_pack(&bad, &meta, Some(&key), "p").is_err());
        // Another repository's key does not authenticate the header.
        assert!(parse_pack(&bytes, &meta, Some(&DedupKey::generate()), "p").is_err());
    }

    #[test]
    fn a_format_1_header_is_legacy_in_format_2() {
        let meta = Identity::generate();
        let mut b = PackBuilder::new(0);
        b.add(BlobId([1; 32]), BlobKind::Data, b"aaaa", 10, None);
        let (_, bytes, entries) = b.finish(&meta.to_public(), None);
        let v1 = parse_pack(&bytes, &meta, None, "p").unwrap();
        assert!(!v1.legacy);
        assert_eq!(v1.entries, entries);
        let v2 = parse_pack(&bytes, &meta, Some(&DedupKey::generate()), "p").unwrap();
        assert!(v2.legacy, "an untagged header read by format 2 is legacy");
    }
}
