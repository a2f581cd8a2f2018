//! `copy`: snapshots into a replica (another store, or a local disk for
//! 3-2-1), sealed files moved as they are, then the replica verified.

use lifeboat_store::{
    Access, CopyReport, FullAccess, ProgressBars, Repository, VerifyOptions, VerifyReport,
};

use crate::error::Result;

/// Options of [`copy`].
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Skip the replica's verify afterwards.
    pub no_verify: bool,
}

/// What [`copy`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CopyOutcome {
    /// The copy.
    #[serde(flatten)]
    pub copy: CopyReport,
    /// Whether only the blobs the copied snapshots use were sent (the
    /// restore key reads what they use) or every blob the replica lacked.
    pub exact: bool,
    /// The replica's verify afterwards (structure: every snapshot's
    /// files and blobs present and authentic).
    pub verify: Option<VerifyReport>,
}

/// Copy every snapshot of `source` that `dest` (a replica) neither holds
/// nor forgot. With `full` (the source opened with the restore key), only
/// the blobs those snapshots use travel; without, every blob the replica
/// lacks does.
pub fn copy<A: Access, B: Access>(
    source: &Repository<A>,
    dest: &Repository<B>,
    full: Option<&Repository<FullAccess>>,
    opts: &CopyOptions,
    bars: &dyn ProgressBars,
) -> Result<CopyOutcome> {
    let plan = source.copy_plan(dest)?;
    let needed = match (full, plan.snapshots.is_empty()) {
        (Some(f), false) => Some(f.blobs_needed_by(&plan.snapshots)?),
        _ => None,
    };
    let bar = bars.bytes("copying packs");
    let copy = source.copy(dest, &plan, needed.as_ref(), &*bar)?;
    let verify = if opts.no_verify || copy.snapshots_copied == 0 {
        None
    } else {
        let bar = bars.counter("verifying the replica");
        Some(dest.verify(&VerifyOptions::default(), &*bar)?)
    };
    Ok(CopyOutcome {
        copy,
        exact: full.is_some(),
        verify,
    })
}
