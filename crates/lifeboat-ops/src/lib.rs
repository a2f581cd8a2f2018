//! lifeboat's operations: every multi-step job over the store and the
//! sources, each taking an `*Options` struct and returning a report, as
//! rustic_core's commands do. The CLI parses, calls one of these and
//! prints; nothing here draws on a terminal (progress goes through
//! [`ProgressBars`](lifeboat_store::ProgressBars)).
//!
//! - [`backup()`]: the configured sources into one snapshot (a failed
//!   source leaves the others, tagged `partial`; the MySQL row-hash cache
//!   kept only with the committed snapshot), or [`backup_stream`] for a
//!   command's output, standard input or files;
//! - [`snapshot_before_migration`]: a tagged, checked snapshot;
//! - [`drill`]: restore a snapshot into staging, verify every source, run
//!   the cross-check on the restored data, report RTO and RPO;
//! - [`capture_binlog`] and [`restore_until`]: point-in-time recovery (the
//!   MySQL binary log stored between snapshots, applied after a replay);
//! - [`forget`] and prune;
//! - [`copy()`]: snapshots into a replica, sealed files as they are;
//! - [`upgrade()`]: the repository's format upgrade, with source states
//!   rewritten for the new format;
//! - [`check_references`]: document rows (MySQL) against objects.
//!
//! Errors carry an [`ErrorClass`](lifeboat_store::ErrorClass) through
//! [`Classify`](lifeboat_store::Classify); sources are a [`SourceKind`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backup;
mod check;
mod copy;
pub mod drill;
mod error;
mod pitr;
mod premigration;
pub mod report;
mod retention;
pub mod runs;
mod source;
pub mod status;
mod upgrade;
mod verify;

pub use backup::{backup, backup_stream, BackupOptions, BackupReport, SourcePlan, StreamInput};
pub use check::{check_references, CrossCheck, CrossCheckOptions, DocRef, Documents, Objects};
pub use copy::{copy, copy_holding, CopyHolding, CopyOptions, CopyOutcome, Replica};
pub use error::{Error, Result, SourceFailure};
pub use pitr::{
    apply_until, capture_binlog, derive_mysql, derived, follow_binlog, plan_derived, plan_until,
    proof_due, prove_binlog, restore_derived, restore_until, windows, BinlogCheck, BinlogOptions,
    BinlogReport, BinlogRestoreOptions, CompactReport, DeriveOptions, Derived, ProveReport,
    RestoreUntilOptions, RestoreUntilReport, UntilPlan, Window, WindowCheck, DERIVED,
};
pub use premigration::{
    snapshot_before_migration, Checked, PreMigrationOptions, PreMigrationReport,
};
pub use retention::{
    forget, prune, ForgetOptions, ForgetReport, Listed, PruneAllReport, Selection,
};
pub use source::SourceKind;
pub use status::{status, Objectives, Status, StatusOptions};
pub use upgrade::upgrade;
pub use verify::{verify, verify_data, VerifyAllReport};

/// The tag of pre-migration snapshots, which every retention policy keeps.
pub const PRE_MIGRATION_TAG: &str = "pre-migration";

/// Bytes for people: 1.5 GiB (the CLI's output and the HTML pages).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// An error and its causes on one line (`a: b: c`), for messages that
/// are kept (a failed source's summary in a snapshot, notifications).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cause = c.source();
    }
    out
}
