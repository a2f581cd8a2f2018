//! Errors of the Render source. None of them carries a secret: not the API
//! key, not an env var value, not a secret file's content.

/// What went wrong, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 401: the key is wrong or revoked.
    #[error(
        "Render rejected the API key (401 Unauthorized on {path}): check [render] api_key; \
         keys are made under Account Settings > API Keys in the Render Dashboard"
    )]
    Unauthorized { path: String },
    /// 403: the key's user cannot see this resource.
    #[error(
        "Render refused {path} (403 Forbidden): the API key's user is not allowed to read it \
         (is it a member of the workspace that owns the service?)"
    )]
    Forbidden { path: String },
    /// 404.
    #[error("Render has no {path} (404 Not Found): was the service or group deleted or renamed?")]
    NotFound { path: String },
    /// Any other error status, or a 429/5xx that outlasted the retries.
    #[error("Render answered {status} to {method} {path}: {message}")]
    Http {
        method: String,
        path: String,
        status: u16,
        message: String,
    },
    /// No answer at all.
    #[error("could not reach Render at {url}: {message}; check [render] api_url and the network")]
    Transport { url: String, message: String },
    /// An answer lifeboat does not understand.
    #[error("Render's answer to {path} is not what lifeboat expects: {what}")]
    Shape { path: String, what: String },
    /// Bad options or arguments.
    #[error("{0}")]
    Invalid(String),
    /// A restored copy differs from the snapshot.
    #[error("{0}")]
    Mismatch(String),
    /// Reading or writing local files.
    #[error("{what}: {error}")]
    Io { what: String, error: std::io::Error },
    /// A snapshot's record was refused as unsafe to write as files (a name
    /// that is no plain file name, two services for one file): it may be
    /// forged.
    #[error("{0}")]
    Refused(String),
    /// A bug in lifeboat.
    #[error("internal error: {0}")]
    Internal(String),
    /// The store.
    #[error(transparent)]
    Store(#[from] lifeboat_store::Error),
}

impl lifeboat_store::Classify for Error {
    fn class(&self) -> lifeboat_store::ErrorClass {
        use lifeboat_store::ErrorClass as C;
        match self {
            Error::Unauthorized { .. }
            | Error::Forbidden { .. }
            | Error::NotFound { .. }
            | Error::Http { .. }
            | Error::Transport { .. }
            | Error::Shape { .. } => C::Source,
            Error::Invalid(_) => C::Usage,
            Error::Mismatch(_) => C::Damaged,
            Error::Refused(_) => C::Refused,
            Error::Io { error, .. } if lifeboat_paths::is_refusal(error) => C::Refused,
            Error::Io { .. } => C::Local,
            Error::Internal(_) => C::Internal,
            Error::Store(e) => e.class(),
        }
    }

    fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Store(e) => e.hint(),
            Error::Refused(_) => Some(
                "nothing was written for it; --render-yaml and --to-service use no names as \
                 files; if the snapshot may be forged see docs/DISASTER-RECOVERY.md, \
                 \"compromised\"",
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
