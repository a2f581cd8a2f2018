//! Pack files: many encrypted blobs in one file, with an encrypted header
//! at the end listing them. Byte layout in docs/FORMAT.md, "Pack files".

use serde::{Deserialize, Serialize};

use crate::crypto;
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

    /// Close the pack: append the header sealed to the metadata recipient.
    pub(crate) fn finish(mut self, meta: &dyn age::Recipient) -> (PackId, Vec<u8>, Vec<PackEntry>) {
        let header = PackHeader {
            version: 1,
            blobs: self.entries,
        };
        let json = serde_json::to_vec(&header).expect("pack header serializes");
        let sealed = crypto::seal(meta, 3, &json);
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

/// Decrypt and parse a pack header, and check its entries lie inside the pack.
pub(crate) fn parse_header(
    sealed: &[u8],
    header_start: u64,
    meta: &dyn age::Identity,
    what: &str,
) -> Result<Vec<PackEntry>> {
    let json = crypto::open(&[meta], sealed, MAX_HEADER_LEN).map_err(|e| e.into_error(what))?;
    let header: PackHeader = serde_json::from_slice(&json)
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
    Ok(header.blobs)
}

/// Read every entry of a whole pack held in memory.
pub(crate) fn parse_pack(
    data: &[u8],
    meta: &dyn age::Identity,
    what: &str,
) -> Result<Vec<PackEntry>> {
    if data.len() < TRAILER_LEN {
        return Err(Error::damaged(what, "pack shorter than its trailer"));
    }
    let t = data.len() - TRAILER_LEN;
    let hlen = parse_trailer(&data[t..], data.len() as u64, what)?;
    let start = t - hlen;
    parse_header(&data[start..t], start as u64, meta, what)
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
        let (id, bytes, entries) = b.finish(&meta.to_public());
        assert_eq!(id.0, sha256(&bytes));
        assert_eq!(&bytes[bytes.len() - 4..], PACK_MAGIC);
        let parsed = parse_pack(&bytes, &meta, "p").unwrap();
        assert_eq!(parsed, entries);
        assert_eq!(parsed[1].offset, 4);
        assert_eq!(&bytes[4..10], b"bbbbbb");
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 6] ^= 0xff;
        assert!(parse_pack(&bad, &meta, "p").is_err());
    }
}
