//! `snapshot-before-migration`: a snapshot tagged `pre-migration` (kept by
//! every retention policy until forgotten by id) with a note, checked at
//! once: every item read back with the restore key, else the repository's
//! structure.

use lifeboat_store::{Access, FullAccess, NoProgress, ProgressBars, Repository, VerifyOptions};

use crate::backup::{backup, BackupOptions, BackupReport, SourcePlan};
use crate::error::{Error, Result};
use crate::PRE_MIGRATION_TAG;

/// Options of [`snapshot_before_migration`].
pub struct PreMigrationOptions {
    /// What the migration is (kept with the snapshot).
    pub note: String,
    /// The sources (usually the database alone).
    pub sources: Vec<SourcePlan>,
}

/// How the snapshot was checked.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Checked {
    /// Every item read back and its SHA-256 compared (restore key).
    EveryItem(usize),
    /// The repository's structure (backup key alone).
    Structure,
}

/// What [`snapshot_before_migration`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PreMigrationReport {
    /// The backup.
    pub backup: BackupReport,
    /// The check.
    pub checked: Checked,
}

/// Back up `opts.sources` as a pre-migration snapshot into `repo`, then
/// check it: with `reader` (the repository opened with the restore key)
/// every item is read back; otherwise the structure is verified. A source
/// that fails is an error here (the migration must wait), though the
/// snapshot of the others is stored.
pub fn snapshot_before_migration<A: Access>(
    repo: &Repository<A>,
    reader: Option<&Repository<FullAccess>>,
    opts: PreMigrationOptions,
    bars: &dyn ProgressBars,
) -> Result<PreMigrationReport> {
    let report = backup(
        repo,
        BackupOptions {
            snapshot: lifeboat_store::BackupOptions {
                tags: vec![PRE_MIGRATION_TAG.into()],
                hostname: None,
                note: Some(opts.note),
            },
            sources: opts.sources,
            // What a migration may have to be undone to: a real dump,
            // restored without the binlog.
            derive_mysql: None,
        },
        bars,
    )?;
    if report.is_partial() {
        return Err(Error::Partial {
            id: report.id,
            failed: report.failed,
        });
    }
    let checked = match reader {
        Some(full) => {
            let (index, _) = full.load_index()?;
            let items = full.manifest(&index, &report.snapshot)?;
            for item in &items {
                full.restore_item(&index, item, &mut std::io::sink(), &NoProgress)?;
            }
            Checked::EveryItem(items.len())
        }
        None => {
            let verified = repo.verify(&VerifyOptions::default(), &NoProgress)?;
            if let Some(p) = verified.problems.first() {
                return Err(Error::Damaged(format!(
                    "snapshot {} was stored, but the repository has problems: {}: {}",
                    report.id.short(),
                    p.what,
                    p.detail
                )));
            }
            Checked::Structure
        }
    };
    Ok(PreMigrationReport {
        backup: report,
        checked,
    })
}
