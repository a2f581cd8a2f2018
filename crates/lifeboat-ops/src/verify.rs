//! `verify`: the store's own checks, then the stored binlog's: its
//! point-in-time windows from the runs' facts (any key), and with
//! `--read-data` every segment read whole and linked to the next.

use lifeboat_store::{
    Access, FullAccess, Problem, Progress, Repository, VerifyOptions, VerifyReport,
};

use crate::error::Result;
use crate::pitr::{check_binlog, read_binlog, BinlogCheck};

/// What [`verify`] found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VerifyAllReport {
    /// The store's structure and, with the data read, its bytes.
    #[serde(flatten)]
    pub store: VerifyReport,
    /// The stored binlog's windows and continuity.
    pub binlog: BinlogCheck,
}

impl VerifyAllReport {
    /// True when nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.store.is_ok() && self.binlog.problems.is_empty()
    }

    /// Everything wrong, the store's first.
    pub fn problems(&self) -> impl Iterator<Item = &Problem> {
        self.store.problems.iter().chain(&self.binlog.problems)
    }
}

/// Structure only (the backup key suffices): the store's checks and the
/// binlog windows from the runs' facts.
pub fn verify<A: Access>(
    repo: &Repository<A>,
    opts: &VerifyOptions,
    bar: &dyn Progress,
) -> Result<VerifyAllReport> {
    verify_with(repo, opts, bar).map(|(report, _)| report)
}

/// [`verify`], and the snapshots it read (for [`verify_data`]).
fn verify_with<A: Access>(
    repo: &Repository<A>,
    opts: &VerifyOptions,
    bar: &dyn Progress,
) -> Result<(VerifyAllReport, Vec<lifeboat_store::SnapshotEntry>)> {
    let store = repo.verify(opts, bar)?;
    let (all, _) = repo.snapshots()?;
    let binlog = check_binlog(&all);
    Ok((VerifyAllReport { store, binlog }, all))
}

/// With the data read (the restore key): as [`verify`], and when every
/// pack is read (`read_data_percent` 100), every stored binlog segment of
/// every window too.
pub fn verify_data(
    repo: &Repository<FullAccess>,
    opts: &VerifyOptions,
    bar: &dyn Progress,
) -> Result<VerifyAllReport> {
    let (mut report, all) = verify_with(repo, opts, bar)?;
    if opts.read_data_percent.is_some_and(|p| p >= 100.0) {
        let (index, _) = repo.load_index()?;
        read_binlog(repo, &index, &all, &mut report.binlog)?;
    }
    Ok(report)
}
