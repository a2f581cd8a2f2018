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
    #[error("{what}: {error}")]
    Io { what: String, error: std::io::Error },
    /// A snapshot's repository record was refused as unsafe to restore (a
    /// name that is no plain directory name, refs git would not accept,
    /// two repositories for one directory): it may be forged.
    #[error("{0}")]
    Refused(String),
    /// The store.
    #[error(transparent)]
    Store(#[from] lifeboat_store::Error),
}

impl lifeboat_store::Classify for Error {
    fn class(&self) -> lifeboat_store::ErrorClass {
        use lifeboat_store::ErrorClass as C;
        match self {
            Error::Git { .. } => C::Source,
            Error::Invalid(_) => C::Usage,
            Error::Mismatch(_) => C::Damaged,
            Error::Refused(_) => C::Refused,
            Error::Io { error, .. } if lifeboat_paths::is_refusal(error) => C::Refused,
            Error::Io { .. } => C::Local,
            Error::Store(e) => e.class(),
        }
    }

    fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Store(e) => e.hint(),
            Error::Refused(_) => Some(
                "nothing was written for it; if the snapshot may be forged see \
                 docs/DISASTER-RECOVERY.md, \"compromised\"",
            ),
            Error::Mismatch(_) => Some(lifeboat_store::hints::DIFFERS),
            _ => None,
        }
    }
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, error: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            error,
        }
    }
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
