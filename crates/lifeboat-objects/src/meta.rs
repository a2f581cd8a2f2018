//! What is kept about each object besides its bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// HTTP headers of an object that a restore puts back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Headers {
    /// `Content-Type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// `Content-Encoding`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    /// `Content-Disposition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    /// `Content-Language`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    /// `Cache-Control`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// User metadata (`x-amz-meta-*`), names lower-case without the prefix.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// The `meta` of an object's manifest item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// The ETag without quotes (bucket), or a change tag made of
    /// modification time, change time and inode (directory).
    pub etag: String,
    /// Last-Modified, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// Headers to restore.
    #[serde(flatten)]
    pub headers: Headers,
    /// Unix permission bits (directory source only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// One object as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Key (bucket) or path relative to the root with `/` separators (directory).
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag or change tag.
    pub etag: String,
    /// Last-Modified, RFC 3339.
    pub last_modified: Option<String>,
}
