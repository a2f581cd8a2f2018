//! Errors of the operations. Each knows its [`ErrorClass`], so the CLI
//! maps it to an exit code in one place.

use lifeboat_store::{Classify, ErrorClass};

use crate::SourceKind;

/// A source that failed during a backup (the others went on).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceFailure {
    /// Which.
    pub source: SourceKind,
    /// What it said (its error and causes, no secret).
    pub message: String,
    /// The error's class.
    pub class: ErrorClass,
}

impl std::fmt::Display for SourceFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.source, self.message)
    }
}

/// What can go wrong in an operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] lifeboat_store::Error),
    /// The MySQL source failed.
    #[error(transparent)]
    Mysql(#[from] lifeboat_mysql::Error),
    /// The objects source failed.
    #[error(transparent)]
    Objects(#[from] lifeboat_objects::Error),
    /// The Render source failed.
    #[error(transparent)]
    Render(#[from] lifeboat_render::Error),
    /// The git source failed.
    #[error(transparent)]
    Git(#[from] lifeboat_git::Error),
    /// The options do not allow the operation.
    #[error("{0}")]
    Invalid(String),
    /// A stream being backed up (a command's output, standard input, a
    /// file) failed: nothing was stored.
    #[error("{0}")]
    Input(String),
    /// A source of a backup failed (the error says why, and its class is
    /// that of the cause).
    #[error("{} failed: {error}", .kind.activity())]
    Source {
        /// Which.
        kind: SourceKind,
        /// Why.
        error: Box<Error>,
    },
    /// A snapshot was stored without the sources that failed (tagged
    /// `partial`).
    #[error("snapshot {} was stored PARTIAL (tag `partial`): the other sources are in it, but these failed and are not:\n  {}", .id.short(), list(.failed))]
    Partial {
        /// The snapshot.
        id: lifeboat_store::SnapshotId,
        /// What failed.
        failed: Vec<SourceFailure>,
    },
    /// Every source of a backup failed: nothing was stored.
    #[error("every source failed, nothing stored:\n  {}", list(.0))]
    AllSourcesFailed(Vec<SourceFailure>),
    /// A local file could not be written (a report, an output file).
    #[error("{what}: {error}")]
    Local {
        /// What was being done, to which file.
        what: String,
        /// Why.
        error: std::io::Error,
    },
    /// Something stored failed a check (verify after a pre-migration
    /// snapshot).
    #[error("{0}")]
    Damaged(String),
    /// The source no longer has what the store needs next (binlog the
    /// server purged before it was captured): nothing was stored.
    #[error("{0}")]
    Gap(String),
}

fn list(failures: &[SourceFailure]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n  ")
}

impl Classify for Error {
    fn class(&self) -> ErrorClass {
        match self {
            Error::Store(e) => e.class(),
            Error::Mysql(e) => e.class(),
            Error::Objects(e) => e.class(),
            Error::Render(e) => e.class(),
            Error::Git(e) => e.class(),
            Error::Source { error, .. } => error.class(),
            Error::Invalid(_) => ErrorClass::Usage,
            Error::Input(_)
            | Error::AllSourcesFailed(_)
            | Error::Partial { .. }
            | Error::Gap(_) => ErrorClass::Source,
            Error::Damaged(_) => ErrorClass::Damaged,
            Error::Local { error, .. } if lifeboat_paths::is_refusal(error) => ErrorClass::Refused,
            Error::Local { .. } => ErrorClass::Local,
        }
    }

    fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Store(e) => e.hint(),
            Error::Mysql(e) => e.hint(),
            Error::Objects(e) => e.hint(),
            Error::Render(e) => e.hint(),
            Error::Git(e) => e.hint(),
            Error::Source { error, .. } if error.class() == ErrorClass::Source => {
                Some("no snapshot was stored; fix the source and run the backup again")
            }
            Error::Source { error, .. } => error.hint(),
            Error::Input(_) | Error::AllSourcesFailed(_) => {
                Some("no snapshot was stored; fix the source and run the backup again")
            }
            Error::Damaged(_) => {
                Some("run `lifeboat verify --read-data` to list every damaged file and the snapshots that need it")
            }
            Error::Partial { .. } => Some(
                "restore the other sources from this snapshot; for the failed ones take an \
                 earlier snapshot, and fix them before the next backup",
            ),
            Error::Invalid(_) | Error::Local { .. } | Error::Gap(_) => None,
        }
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
