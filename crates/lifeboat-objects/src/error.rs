//! Errors of the objects source; each says what failed and what to do.

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong backing up or restoring objects.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bucket refused or failed a request (after retries).
    #[error("{what}: {detail}")]
    S3 {
        /// The operation and object, e.g. `listing s3://uploads/`.
        what: String,
        /// The service's answer (never a credential).
        detail: String,
    },
    /// A local file or directory could not be written (a restore).
    #[error("{path}: {error}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        error: std::io::Error,
    },
    /// The options are unusable.
    #[error("{0}")]
    Invalid(String),
    /// The restore target is unsafe to write to.
    #[error("{0}")]
    Target(String),
    /// Restored data differs from the manifest, or some objects failed.
    #[error("restore check failed: {0}")]
    Mismatch(String),
    /// An upload directory (the source) could not be read.
    #[error("reading {path}: {error}")]
    Read {
        /// The path.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// A snapshot's object was refused as unsafe to restore there (a key
    /// that is no safe path, two objects for one file): it may be forged.
    #[error("{0}")]
    Refused(String),
    /// A bug in lifeboat (a thread panicked, a download out of order).
    #[error("internal error: {0}")]
    Internal(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] lifeboat_store::Error),
}

impl Error {
    pub(crate) fn io(path: impl AsRef<std::path::Path>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            error,
        }
    }

    pub(crate) fn read(path: impl AsRef<std::path::Path>, error: std::io::Error) -> Self {
        Error::Read {
            path: path.as_ref().display().to_string(),
            error,
        }
    }
}

impl lifeboat_store::Classify for Error {
    fn class(&self) -> lifeboat_store::ErrorClass {
        use lifeboat_store::ErrorClass as C;
        match self {
            Error::S3 { .. } | Error::Read { .. } => C::Source,
            Error::Io { error, .. } if lifeboat_paths::is_refusal(error) => C::Refused,
            Error::Io { .. } => C::Local,
            Error::Invalid(_) | Error::Target(_) => C::Usage,
            Error::Mismatch(_) => C::Damaged,
            Error::Refused(_) => C::Refused,
            Error::Internal(_) => C::Internal,
            Error::Store(e) => e.class(),
        }
    }

    fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Store(e) => e.hint(),
            Error::Refused(_) => Some(
                "nothing was written for it; restore the other objects, or into a bucket; \
                 if the snapshot may be forged see docs/DISASTER-RECOVERY.md, \"compromised\"",
            ),
            Error::Mismatch(_) => Some(lifeboat_store::hints::DIFFERS),
            _ => None,
        }
    }
}
