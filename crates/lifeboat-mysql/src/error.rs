//! Errors of the MySQL source; each says what failed and what to do.

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong dumping or replaying.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Could not connect or the connection failed mid-way.
    #[error("MySQL {what}: {driver}")]
    Sql {
        /// What was being done (never contains a password).
        what: String,
        /// The driver's error, shown in the message (not also chained as a
        /// source: sqlx's error repeats its own cause, so a chain printed
        /// the server's words three times).
        driver: sqlx::Error,
    },
    /// The dump's own client (see `wire`): the connection or the server
    /// failed.
    #[error("MySQL {what}: {why}")]
    Wire {
        /// What was being done (never contains a password).
        what: String,
        /// The server's error, or what broke.
        why: String,
    },
    /// The options or URL are unusable.
    #[error("{0}")]
    Invalid(String),
    /// The target refused or is unsafe to write to.
    #[error("{0}")]
    Target(String),
    /// The snapshot holds something replay will not send to a server (a
    /// CREATE text that is not the statement its entry says, names another
    /// database or reaches beyond the target; a row line that is not one the
    /// dump writes): it is damaged or forged.
    #[error("{0}")]
    Refused(String),
    /// The replayed data differs from the manifest.
    #[error("replay check failed: {0}")]
    Mismatch(String),
    /// The store failed.
    /// The target server failed a statement of the replay, or went away
    /// (the target database may be incomplete).
    #[error("{0}")]
    Replay(String),
    /// A snapshot's MySQL items do not fit together (a table's schema
    /// without its rows, a row that cannot be read): damaged or forged.
    #[error("{0}")]
    Damaged(String),
    /// A local file could not be written (the SQL export).
    #[error("{0}")]
    Local(String),
    /// A bug in lifeboat (a thread stopped or panicked).
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] lifeboat_store::Error),
}

impl lifeboat_store::Classify for Error {
    fn class(&self) -> lifeboat_store::ErrorClass {
        use lifeboat_store::ErrorClass as C;
        match self {
            Error::Sql { .. } | Error::Wire { .. } | Error::Replay(_) => C::Source,
            Error::Invalid(_) | Error::Target(_) => C::Usage,
            Error::Refused(_) => C::Refused,
            Error::Mismatch(_) | Error::Damaged(_) => C::Damaged,
            Error::Local(_) => C::Local,
            Error::Internal(_) => C::Internal,
            Error::Store(e) => e.class(),
        }
    }

    fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Store(e) => e.hint(),
            Error::Refused(_) => Some(
                "the snapshot holds SQL that would reach outside the target database: it may \
                 be forged (see docs/DISASTER-RECOVERY.md, \"compromised\"); nothing outside \
                 the target was changed",
            ),
            Error::Replay(_) => Some(
                "the target server refused a statement of the snapshot or went away: the \
                 target database may be incomplete; compare the servers' versions and \
                 settings (lifeboat show), and replay again with --force",
            ),
            Error::Mismatch(_) | Error::Damaged(_) => Some(lifeboat_store::hints::DIFFERS),
            _ => None,
        }
    }
}

pub(crate) trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, sqlx::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|driver| Error::Sql {
            what: what(),
            driver,
        })
    }
}
