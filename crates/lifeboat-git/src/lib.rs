//! lifeboat's git source.
//!
//! [`backup`] keeps a bare mirror per repository (branches and tags) on the
//! backup host, fetches it, and stores a `git bundle` of what is new since
//! the previous snapshot, verified with `git bundle verify` first; when no
//! ref moved, the previous bundles are carried over and nothing is stored.
//! The ref list and HEAD are the snapshot's facts. [`restore_to_dir`]
//! fetches the chain of bundles into a new repository and checks every ref
//! and the object graph; [`push_to`] does so in a scratch repository and
//! pushes to a new remote.
//!
//! What a bundle does not hold: reflogs, hooks, repository config, Git LFS
//! content, and GitHub's issues, pull requests, wikis and releases.

mod backup;
mod error;
mod git;
mod restore;

pub use backup::{backup, default_name, GitRepoOptions, RepoReport, BUNDLE_KIND};
pub use error::{Error, Result};
pub use git::redact_url;
pub use restore::{push_to, repositories, restore_to_dir, GitRestoreReport, SnapshotRepo};

/// The source name in snapshots.
pub const SOURCE: &str = "git";
