//! lifeboat's objects source.
//!
//! - [`backup`]: a bucket (ListObjectsV2 paging, ranged GETs pinned to the
//!   listed ETag, `connections` in flight) or a local upload directory into
//!   a backup session, one `objects` item per object. Objects whose key,
//!   size and ETag match the previous snapshot of the same location are
//!   carried over by reference without being read: the object list is kept
//!   as the source's state, readable with the backup key, with keys hashed;
//!   each object's SHA-256 and meta (headers, user metadata) are in info
//!   blobs sealed to the data recipient, which carried items refer to.
//! - [`restore`]: into a directory (keys cannot escape it) or another bucket,
//!   each object checked by SHA-256, uploads also by their MD5 ETags.
//!
//! Cloudflare R2: region `auto`, path style, checksums only "when required"
//! (the store's [`S3Options`](lifeboat_store::backend::S3Options) settings).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backup;
mod bucket;
mod dir;
mod error;
mod meta;
mod restore;
mod state;

pub use backup::{backup, ObjectsBackupOptions, ObjectsReport, Requests, Source};
pub use bucket::{Bucket, BucketOptions, Counters};
pub use error::{Error, Result};
pub use meta::{Headers, Listed, ObjectMeta};
pub use restore::{
    path_for_key, restore, select, ObjectsRestoreOptions, ObjectsRestoreReport, Target,
    METADATA_FILE,
};
pub use state::scrub as scrub_state;

/// The source name in manifests and snapshots.
pub const SOURCE: &str = "objects";
