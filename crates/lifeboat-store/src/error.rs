//! Errors of the store. Every variant says what was being done, to what, and
//! (through [`Error::hint`]) what the operator can do about it.

use std::io;

/// Result alias used throughout the store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an error is, for whoever reports it: the CLI maps
/// each class to one exit code (README.md, "Exit codes"), and a
/// multi-source backup goes on past a [`Source`](Self::Source) failure of
/// one source only. Every library error of lifeboat has one
/// ([`Classify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorClass {
    /// A bad option, config value, name or id given by the user, or an
    /// unsafe target (exit 2).
    Usage,
    /// A data source (database, bucket, API, command, git remote) failed
    /// or refused (exit 3).
    Source,
    /// The repository, or data restored from it, failed an integrity check
    /// (exit 4).
    Damaged,
    /// A snapshot was refused as unsafe to restore: a name that is no safe
    /// path, SQL that reaches outside the target (exit 4; nothing is
    /// damaged, but the snapshot may be forged).
    Refused,
    /// Wrong key, missing key, no passphrase (exit 5).
    Key,
    /// Another process holds the repository lock (exit 6).
    Locked,
    /// The store could not be reached, refused access, or its disk failed
    /// (exit 7).
    Storage,
    /// Done, but something needs a look (exit 8).
    NeedsALook,
    /// A local file could not be read or written: an output file, a
    /// temporary file, a staging directory (exit 1).
    Local,
    /// A bug in lifeboat: a worker stopped, a step ran out of order (exit 1).
    Internal,
}

/// Hints the sources' errors share.
pub mod hints {
    /// Restored data differs from what the snapshot says.
    pub const DIFFERS: &str = "run `lifeboat verify --read-data`; restore from an older \
                               snapshot if this one is damaged";
}

/// An error that knows its [`ErrorClass`] and, when there is one, the next
/// step for the operator.
pub trait Classify: std::error::Error {
    /// The class.
    fn class(&self) -> ErrorClass;
    /// One line telling the operator what to do next.
    fn hint(&self) -> Option<&'static str> {
        None
    }
}

/// What a backend failure was, so callers can tell "absent" from "broken".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendErrorKind {
    /// The file does not exist.
    NotFound,
    /// Permission denied, bad credentials, missing bucket.
    Access,
    /// A bucket lock rule (`[repository] immutable_days`) protects the
    /// file: refused here, before any request.
    Protected,
    /// Anything else: network, timeouts after retries, disk errors.
    Other,
}

/// A failure of the storage backend (local disk or S3), after retries.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {message}")]
pub struct BackendError {
    /// The kind of failure.
    pub kind: BackendErrorKind,
    /// The operation (`read`, `write`, `list`, `remove`).
    pub op: &'static str,
    /// The file or prefix it was done to.
    pub path: String,
    /// The underlying error, already stripped of credentials.
    pub message: String,
    /// A local directory's (not a remote store's): what to check differs.
    pub local: bool,
}

impl BackendError {
    pub(crate) fn new(
        kind: BackendErrorKind,
        op: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            op,
            path: path.into(),
            message: message.into(),
            local: false,
        }
    }

    /// A failure of the local directory backend.
    pub(crate) fn local(
        kind: BackendErrorKind,
        op: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            local: true,
            ..Self::new(kind, op, path, message)
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<String>, err: &io::Error) -> Self {
        let kind = match err.kind() {
            io::ErrorKind::NotFound => BackendErrorKind::NotFound,
            io::ErrorKind::PermissionDenied => BackendErrorKind::Access,
            _ => BackendErrorKind::Other,
        };
        Self::local(kind, op, path, err.to_string())
    }

    /// True when the file simply does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind == BackendErrorKind::NotFound
    }
}

/// The error type of every store operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No repository at the given location.
    #[error("no lifeboat repository at {location}")]
    NotARepository {
        /// Where we looked.
        location: String,
    },
    /// `init` on a location that already holds a repository.
    #[error("a repository already exists at {location}")]
    AlreadyExists {
        /// Where.
        location: String,
    },
    /// The key given does not open this repository.
    #[error("wrong key: {detail}")]
    WrongKey {
        /// What did not match.
        detail: String,
    },
    /// The operation needs the restore key but only the backup key was given.
    #[error("{operation} needs the restore key; the backup key can add snapshots but never read backed-up data")]
    NeedRestoreKey {
        /// What was attempted.
        operation: &'static str,
    },
    /// A key file could not be read or parsed.
    #[error("key file {path}: {detail}")]
    KeyFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The repository (or this key's keyring) cannot be authenticated and
    /// the caller did not say to trust it.
    #[error("not authenticated: {detail}")]
    Unauthenticated {
        /// What could not be authenticated.
        detail: String,
    },
    /// Stored data failed an integrity check.
    #[error("damaged repository: {what}: {detail}")]
    Damaged {
        /// The damaged file or blob.
        what: String,
        /// What check failed.
        detail: String,
    },
    /// The storage backend failed. (Not a `source()`: the message is in
    /// the display already, and a report of the chain would repeat it.)
    #[error("storage: {0}")]
    Backend(BackendError),
    /// A snapshot, item or key named by the user does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The input was unusable (bad option, bad URL, ambiguous id).
    #[error("{0}")]
    Invalid(String),
    /// An exclusive lock held by another process blocks the operation.
    #[error("repository is locked: {0}")]
    Locked(String),
    /// The data source feeding a backup failed; nothing was committed.
    #[error("source failed: {0}")]
    Source(String),
    /// A bug in lifeboat, not in the input or the store (a worker thread
    /// stopped, a step run out of order): report it.
    #[error("internal error: {0}")]
    Internal(String),
    /// A local I/O error outside the backend (output file, temp file).
    #[error("{context}: {error}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        error: io::Error,
    },
}

impl From<BackendError> for Error {
    fn from(e: BackendError) -> Self {
        Error::Backend(e)
    }
}

impl Classify for Error {
    fn class(&self) -> ErrorClass {
        match self {
            Error::NotARepository { .. } | Error::Backend(_) => ErrorClass::Storage,
            Error::AlreadyExists { .. } | Error::NotFound(_) | Error::Invalid(_) => {
                ErrorClass::Usage
            }
            Error::WrongKey { .. } | Error::NeedRestoreKey { .. } | Error::KeyFile { .. } => {
                ErrorClass::Key
            }
            Error::Unauthenticated { .. } | Error::Damaged { .. } => ErrorClass::Damaged,
            Error::Locked(_) => ErrorClass::Locked,
            Error::Source(_) => ErrorClass::Source,
            Error::Internal(_) => ErrorClass::Internal,
            Error::Io { .. } => ErrorClass::Local,
        }
    }

    fn hint(&self) -> Option<&'static str> {
        Error::hint(self)
    }
}

impl Error {
    pub(crate) fn damaged(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Damaged {
            what: what.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, error: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            error,
        }
    }

    /// One line telling the operator what to do next, when there is one.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            Error::NotARepository { .. } => {
                "check --repo / LIFEBOAT_REPO, or create one with `lifeboat init`"
            }
            Error::AlreadyExists { .. } => "choose an empty location, or use the existing repository with its keys",
            Error::WrongKey { .. } => {
                "use the key written by `lifeboat init` for this repository, or one added with `lifeboat key add`"
            }
            Error::NeedRestoreKey { .. } => {
                "pass --restore-key-file (or LIFEBOAT_RESTORE_KEY_FILE) on a machine trusted to read backups"
            }
            Error::KeyFile { .. } => "check the path and that the file is the one `lifeboat init` wrote",
            Error::Damaged { .. } => {
                "run `lifeboat verify --read-data` to list every damaged file and the snapshots that need it"
            }
            Error::Unauthenticated { .. } => {
                "if this is your store and you trust it as it is now, pass --trust-unauthenticated once to run `lifeboat upgrade`; if you upgraded it already, it was replaced: see docs/DISASTER-RECOVERY.md"
            }
            Error::Backend(e) if e.kind == BackendErrorKind::Protected => {
                "nothing is wrong with the store: the bucket lock rule frees the file at the time given; run this again after then"
            }
            Error::Backend(e) if !e.local => {
                "check the repository location, credentials and network; then retry"
            }
            Error::Backend(_) => {
                "check the repository directory: that it exists and is a directory, that this \
                 user may write there, and that its disk has free space"
            }
            Error::Locked(_) => "wait for the other process, or remove a lock left by a dead process with `lifeboat unlock`",
            _ => return None,
        })
    }
}
