//! Errors of the git source. Messages quote git's stderr with credentials
//! cut out of any URL.

/// What went wrong, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A git command failed.
    #[error("git {command} failed: {stderr}")]
    Git { command: String, stderr: String },
    /// Bad options or arguments.
    #[error("{0}")]
    Invalid(String),
    /// A bundle or a restored repository does not match the snapshot.
    #[error("{0}")]
    Mismatch(String),
    /// Local files.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The store.
    #[error(transparent)]
    Store(#[from] lifeboat_store::Error),
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
