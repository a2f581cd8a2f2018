//! `copy`: snapshots into a replica (another store, or a local disk for
//! 3-2-1), sealed files moved as they are, then the replica verified.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use lifeboat_store::backend::{Backend, FileKind};
use lifeboat_store::{
    Access, CopyReport, FullAccess, ProgressBars, Repository, SnapshotEntry, VerifyOptions,
    VerifyReport,
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

/// A replica to look at: where it is, and its store.
#[derive(Clone)]
pub struct Replica {
    /// Its URL, as configured.
    pub to: String,
    /// Its store.
    pub backend: Arc<dyn Backend>,
    /// The snapshots its `forget` removed (not missing: left out on purpose).
    pub forgotten: HashSet<lifeboat_store::SnapshotId>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica").field("to", &self.to).finish()
    }
}

/// A replica as `status` and `snapshots` show it: which of this
/// repository's snapshots it holds (by file name: nothing is opened).
#[derive(Debug, Clone, serde::Serialize)]
pub struct CopyHolding {
    /// Where it is.
    pub to: String,
    /// This repository's snapshots it holds.
    pub holds: usize,
    /// This repository's snapshots.
    pub of: usize,
    /// The oldest snapshot it lacks (a copy is behind since then).
    pub missing_since: Option<DateTime<Utc>>,
    /// Why it could not be listed.
    pub error: Option<String>,
    /// The ids it holds (not serialized: `snapshots --json` puts the
    /// copy on each snapshot).
    #[serde(skip)]
    pub ids: HashSet<String>,
}

/// What `replica` holds of `snapshots` (those it forgot left out).
pub fn copy_holding(replica: &Replica, snapshots: &[SnapshotEntry]) -> CopyHolding {
    let snapshots: Vec<&SnapshotEntry> = snapshots
        .iter()
        .filter(|s| !replica.forgotten.contains(&s.id))
        .collect();
    let mut h = CopyHolding {
        to: replica.to.clone(),
        holds: 0,
        of: snapshots.len(),
        missing_since: None,
        error: None,
        ids: HashSet::new(),
    };
    match replica.backend.list(FileKind::Snapshot) {
        Ok(files) => {
            let there: HashSet<String> = files.into_iter().map(|f| f.name).collect();
            for s in snapshots {
                let id = s.id.to_hex();
                if there.contains(&id) {
                    h.holds += 1;
                    h.ids.insert(id);
                } else if h.missing_since.is_none_or(|t| s.snapshot.time < t) {
                    h.missing_since = Some(s.snapshot.time);
                }
            }
        }
        Err(e) => h.error = Some(e.to_string()),
    }
    h
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
    // What every snapshot the replica should hold uses (held ones too: a
    // snapshot file can be there before its data). A damaged source falls
    // back to sending every blob the replica lacks, and says so.
    let mut problems = Vec::new();
    let needed = match full {
        Some(f) => {
            let all: Vec<SnapshotEntry> =
                plan.snapshots.iter().chain(&plan.held).cloned().collect();
            match f.blobs_needed_by(&all) {
                Ok(n) => Some(n),
                Err(e @ lifeboat_store::Error::Damaged { .. }) => {
                    problems.push(e.to_string());
                    None
                }
                Err(e) => return Err(e.into()),
            }
        }
        None => None,
    };
    let bar = bars.bytes("copying packs");
    let mut copy = source.copy(dest, &plan, needed.as_ref(), &*bar)?;
    copy.source_problems.splice(0..0, problems);
    let exact = full.is_some() && needed.is_some();
    // Verified every time, even when nothing was sent: a replica damaged
    // since the last copy says so here.
    let verify = if opts.no_verify {
        None
    } else {
        let bar = bars.counter("verifying the replica");
        Some(dest.verify(&VerifyOptions::default(), &*bar)?)
    };
    Ok(CopyOutcome {
        copy,
        exact,
        verify,
    })
}
