//! `forget` (a retention policy, or named snapshots) and `prune`. Both need
//! the restore key: a backup host can add snapshots, never remove them.
//! A snapshot tagged `pre-migration` is kept by every policy: it goes only
//! when forgotten by id.

use chrono::{DateTime, Utc};
use lifeboat_store::{
    ForgetPolicy, FullAccess, PruneOptions, PruneReport, Repository, SnapshotEntry, SnapshotId,
};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::PRE_MIGRATION_TAG;

/// Which snapshots to forget.
pub enum Selection {
    /// Those a policy does not keep (`pre-migration` is always kept).
    Policy(ForgetPolicy),
    /// Exactly these (ids or unique id prefixes, `latest`).
    Named(Vec<String>),
}

/// Options of [`forget`].
pub struct ForgetOptions {
    /// What goes.
    pub selection: Selection,
    /// Report, change nothing.
    pub dry_run: bool,
    /// Prune afterwards (not in a dry run).
    pub prune: Option<PruneOptions>,
    /// With a policy: log snapshots (the stored binlog) older than this
    /// go, whatever snapshots are kept; `None` keeps them all.
    pub keep_log: Option<chrono::TimeDelta>,
}

/// A snapshot in a [`ForgetReport`].
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// Its id.
    pub id: SnapshotId,
    /// When it was taken.
    pub time: DateTime<Utc>,
    /// Its tags.
    pub tags: Vec<String>,
    /// Why it is kept (rules that chose it); empty for those removed.
    pub reasons: Vec<String>,
}

/// What [`forget`] did (or would do).
#[derive(Debug, Clone, Serialize)]
pub struct ForgetReport {
    /// Snapshots kept.
    pub keep: Vec<Listed>,
    /// Snapshots removed.
    pub remove: Vec<Listed>,
    /// Nothing was changed.
    pub dry_run: bool,
    /// What the prune afterwards did.
    pub prune: Option<PruneAllReport>,
}

/// Forget snapshots, and prune if asked.
pub fn forget(repo: &Repository<FullAccess>, opts: ForgetOptions) -> Result<ForgetReport> {
    let (all, bad) = repo.snapshots()?;
    for u in &bad {
        tracing::warn!("unreadable snapshot file {}: {}", u.file, u.detail);
    }
    let (keep, remove): (Vec<(SnapshotId, Vec<String>)>, Vec<SnapshotId>) = match opts.selection {
        Selection::Policy(mut policy) => {
            if policy.keep_last
                + policy.keep_hourly
                + policy.keep_daily
                + policy.keep_weekly
                + policy.keep_monthly
                + policy.keep_yearly
                == 0
                && policy.keep_tags.iter().all(|t| t == PRE_MIGRATION_TAG)
            {
                return Err(Error::Invalid(
                    "no retention policy: give --keep-last/--keep-daily/... (or a [retention] \
                     section); to remove given snapshots, name them"
                        .into(),
                ));
            }
            if !policy.keep_tags.iter().any(|t| t == PRE_MIGRATION_TAG) {
                policy.keep_tags.push(PRE_MIGRATION_TAG.into());
            }
            // Log snapshots (the stored binlog) extend the snapshots
            // before them: a count of snapshots means nothing for them,
            // so the policy sees only the others and keeps them all.
            let (logs, snapshots): (Vec<_>, Vec<_>) =
                all.iter().cloned().partition(|s| s.snapshot.is_log());
            let mut plan = policy.apply(&snapshots);
            let cutoff = opts.keep_log.map(|d| chrono::Utc::now() - d);
            for s in &logs {
                match cutoff {
                    Some(c) if s.snapshot.time < c => plan.remove.push(s.id),
                    _ => plan
                        .keep
                        .push((s.id, vec!["point-in-time log".to_string()])),
                }
            }
            // A derived MySQL backup kept keeps what it is made of: its
            // full snapshot and the binlog runs after it.
            loop {
                let kept = |id: &SnapshotId| plan.keep.iter().any(|(k, _)| k == id);
                let needed = crate::pitr::needed_by_derived(&all, &kept);
                let moved: Vec<(SnapshotId, SnapshotId)> = needed
                    .into_iter()
                    .filter(|(id, _)| plan.remove.contains(id))
                    .collect();
                if moved.is_empty() {
                    break;
                }
                for (id, by) in moved {
                    if let Some(p) = plan.remove.iter().position(|r| *r == id) {
                        plan.remove.remove(p);
                        plan.keep
                            .push((id, vec![format!("needed by derived backup {}", by.short())]));
                    }
                }
            }
            // A bucket lock rule keeps young snapshot files: the policy
            // forgets them on a later run, once they are free.
            let protected = repo.protected_files(lifeboat_store::backend::FileKind::Snapshot)?;
            let (held, free): (Vec<SnapshotId>, Vec<SnapshotId>) = plan
                .remove
                .into_iter()
                .partition(|id| protected.contains_key(&id.to_hex()));
            for id in held {
                let until = protected[&id.to_hex()].format("%Y-%m-%d %H:%M UTC");
                plan.keep
                    .push((id, vec![format!("bucket lock rule until {until}")]));
            }
            (plan.keep, free)
        }
        Selection::Named(specs) => {
            let mut ids = Vec::new();
            for spec in &specs {
                ids.push(repo.find_snapshot(spec)?.id);
            }
            let needed = crate::pitr::needed_by_derived(&all, &|id| !ids.contains(id));
            if let Some((id, by)) = needed.iter().find(|(id, _)| ids.contains(id)) {
                let users: Vec<String> = needed
                    .iter()
                    .filter(|(n, _)| n == id)
                    .map(|(_, b)| b.short())
                    .collect();
                return Err(Error::Invalid(format!(
                    "snapshot {} is needed by derived MySQL backup(s) {} (their content is it \
                     and the binlog after it): forget those too, or keep it (first: {})",
                    id.short(),
                    users.join(", "),
                    by.short()
                )));
            }
            repo.check_forgettable(&ids)?;
            let keep = all
                .iter()
                .filter(|s| !ids.contains(&s.id))
                .map(|s| (s.id, vec!["not named".to_string()]))
                .collect();
            (keep, ids)
        }
    };
    let listed = |id: &SnapshotId, reasons: Vec<String>| {
        all.iter()
            .find(|s| &s.id == id)
            .map(|s: &SnapshotEntry| Listed {
                id: s.id,
                time: s.snapshot.time,
                tags: s.snapshot.tags.clone(),
                reasons,
            })
    };
    let mut report = ForgetReport {
        keep: keep
            .into_iter()
            .filter_map(|(id, why)| listed(&id, why))
            .collect(),
        remove: remove
            .iter()
            .filter_map(|id| listed(id, Vec::new()))
            .collect(),
        dry_run: opts.dry_run,
        prune: None,
    };
    if opts.dry_run {
        return Ok(report);
    }
    repo.forget(&remove)?;
    if let Some(p) = &opts.prune {
        report.prune = Some(prune(repo, p)?);
    }
    Ok(report)
}

/// What [`prune`] did (or would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneAllReport {
    /// The store's prune.
    #[serde(flatten)]
    pub prune: PruneReport,
    /// Binlog runs merged before it.
    pub binlog: crate::pitr::CompactReport,
    /// Run records deleted (the newest [`RUNS_KEPT`] of each kind stay).
    pub runs_removed: usize,
}

/// Run records prune keeps of each kind (backup, binlog, drill, ...).
pub const RUNS_KEPT: usize = 200;

/// Prune: first merge the stored binlog's small runs
/// ([`compact_runs`](crate::pitr::compact_runs)), then delete and repack
/// what no snapshot needs and compact small packs.
pub fn prune(repo: &Repository<FullAccess>, opts: &PruneOptions) -> Result<PruneAllReport> {
    let binlog = crate::pitr::compact_runs(repo, opts.dry_run)?;
    let prune = repo.prune(opts)?;
    let runs_removed = match opts.dry_run {
        true => 0,
        false => crate::runs::trim(repo, RUNS_KEPT)?,
    };
    Ok(PruneAllReport {
        prune,
        runs_removed,
        binlog,
    })
}
