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
    /// A local file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
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
    /// The store failed.
    #[error(transparent)]
    Store(#[from] lifeboat_store::Error),
}

impl Error {
    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}
