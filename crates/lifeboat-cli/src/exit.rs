//! Exit codes, so scripts can tell failures apart. Documented in README.md.

use lifeboat_store::Error as StoreError;

/// The exit statuses of `lifeboat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Everything worked.
    Ok = 0,
    /// Any failure not listed below.
    Failure = 1,
    /// Bad command line or config (clap uses 2 as well).
    Usage = 2,
    /// The source (a command, a database, a bucket) failed; nothing was committed.
    Source = 3,
    /// The repository is damaged (verify found problems, a check failed).
    Damaged = 4,
    /// Wrong key, missing key, or the backup key where the restore key is needed.
    Key = 5,
    /// Another process holds the repository lock.
    Locked = 6,
    /// The storage backend could not be reached or refused access.
    Storage = 7,
    /// The snapshot was stored, but something needs a look (e.g. many
    /// objects disappeared from the bucket since the previous snapshot).
    Warning = 8,
}

impl From<Code> for std::process::ExitCode {
    fn from(c: Code) -> Self {
        std::process::ExitCode::from(c as u8)
    }
}

/// A failure with a chosen exit code, raised by the commands themselves.
#[derive(Debug)]
pub struct Exit {
    pub code: Code,
    pub message: String,
    pub hint: Option<&'static str>,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Exit {
        code: Code::Usage,
        message: message.into(),
        hint: None,
    })
}

pub fn source(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Exit {
        code: Code::Source,
        message: message.into(),
        hint: Some("no snapshot was stored; fix the source and run the backup again"),
    })
}

pub fn damaged(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Exit {
        code: Code::Damaged,
        message: message.into(),
        hint: Some(
            "restore what you can from an older snapshot; see docs/FORMAT.md to salvage by hand",
        ),
    })
}

/// The exit code and hint for an error chain.
pub fn classify(err: &anyhow::Error) -> (Code, Option<&'static str>) {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<std::io::Error>() {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return (Code::Ok, None); // the reader went away (`| head`): not a failure
            }
        }
        if let Some(e) = cause.downcast_ref::<Exit>() {
            return (e.code, e.hint);
        }
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            let code = match e {
                StoreError::WrongKey { .. }
                | StoreError::NeedRestoreKey { .. }
                | StoreError::KeyFile { .. } => Code::Key,
                StoreError::Damaged { .. } | StoreError::Unauthenticated { .. } => Code::Damaged,
                StoreError::Locked(_) => Code::Locked,
                StoreError::Backend(_) | StoreError::NotARepository { .. } => Code::Storage,
                StoreError::Source(_) => Code::Source,
                StoreError::Invalid(_)
                | StoreError::NotFound(_)
                | StoreError::AlreadyExists { .. } => Code::Usage,
                StoreError::Io { .. } | StoreError::Internal(_) => Code::Failure,
            };
            return (code, e.hint());
        }
    }
    (Code::Failure, None)
}

/// The error and its causes on one line.
pub fn render(err: &anyhow::Error) -> String {
    format!("{err:#}")
}
